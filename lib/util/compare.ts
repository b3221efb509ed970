/** Comparing values without serialising them: structural equality, and the differing middle of two sequences. */

/** Structural equality of plain data (strings, numbers, arrays, plain objects). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b) || Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (!sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  return true;
}

/**
 * The parts of two sequences that differ, after their common prefix and suffix: a change to a large set
 * (one element added, removed or re-pointed) then costs a scan, not a serialisation of every element. Sound
 * for sequences of unique keys: an element of one middle cannot sit in the other's prefix or suffix.
 */
export function changedMiddle<T>(a: readonly T[], b: readonly T[], eq: (x: T, y: T) => boolean): [T[], T[]] {
  let p = 0;
  const n = Math.min(a.length, b.length);
  while (p < n && eq(a[p], b[p])) p++;
  let s = 0;
  while (s < n - p && eq(a[a.length - 1 - s], b[b.length - 1 - s])) s++;
  return [a.slice(p, a.length - s), b.slice(p, b.length - s)];
}

/**
 * Code-unit order of two strings. Used instead of String.prototype.localeCompare, whose first call in a process
 * loads ICU's collator (10–40 ms measured here: a third of a cold small command's own work), and whose order
 * depends on the locale data; for the machine-made text sorted here (addresses, MACs, ids, names) the order only
 * has to be stable.
 */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Natural order: runs of digits compare as numbers ("lb-9" before "lb-10"), the rest in code-unit order. */
export function compareNatural(a: string, b: string): number {
  const ra = a.match(/\d+|\D+/g) ?? [];
  const rb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const x = ra[i];
    const y = rb[i];
    if (x === y) continue;
    const dx = x.charCodeAt(0) <= 57 && x.charCodeAt(0) >= 48;
    const dy = y.charCodeAt(0) <= 57 && y.charCodeAt(0) >= 48;
    if (dx && dy) {
      const nx = x.replace(/^0+(?=\d)/, '');
      const ny = y.replace(/^0+(?=\d)/, '');
      if (nx.length !== ny.length) return nx.length - ny.length;
      if (nx !== ny) return compareText(nx, ny);
    }
    return compareText(x, y);
  }
  return ra.length - rb.length;
}
