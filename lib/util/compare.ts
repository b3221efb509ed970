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
