/**
 * The state's text of a model (compact JSON, what StateStore.serialize writes), made from the texts of its parts:
 * a part that is frozen and whose text was recorded (`keepTexts`) is not serialised again. A large router's
 * consecutive models share their untouched parts (a 10,000-rule firewall slot, a NAT list: StoredModels and
 * `draftOf` in warm-cache.ts), so a command serialises what it changed, not the router (~10 ms at 10,000 rules).
 *
 * The text is byte for byte JSON.stringify's: the same key order (own enumerable keys, integer-like first), the
 * same skipping of undefined and function values; test/router/model-text.test.ts compares them.
 */

/** Texts of frozen parts of stored models, by identity (a frozen part never changes, so its text holds). */
const texts = new WeakMap<object, string>();

/** Parts whose text is at least this long are recorded (smaller ones cost less to serialise than to keep). */
export const PART_TEXT_MIN = 2048;

/** Texts made for parts not yet frozen, recorded by `keepTexts` once they are. */
export type FreshTexts = Map<object, string>;

/** The recorded text of a frozen part, if any. */
export function partText(part: object): string | undefined {
  return texts.get(part);
}

/** Record the texts of `fresh` whose parts are frozen now (StoredModels.set, after deepFreeze). */
export function keepTexts(fresh: FreshTexts): void {
  for (const [part, text] of fresh) if (Object.isFrozen(part)) texts.set(part, text);
}

/** A part's text: its recorded one, or made now (and handed to `fresh` when large). */
function valueText(v: unknown, fresh?: FreshTexts): string | undefined {
  if (typeof v !== 'object' || v === null) return JSON.stringify(v);
  const known = texts.get(v);
  if (known !== undefined) return known;
  const t = JSON.stringify(v);
  if (fresh && t.length >= PART_TEXT_MIN) fresh.set(v, t);
  return t;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const sameKeys = (a: object, b: object): boolean => {
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
};

/**
 * What `now` changed of `was`, part by part: `{ member: value }` and `{ 'extra.<slot>': value }` for each model
 * member and module slot whose text differs (parts that are the same object are not looked at). Undefined when
 * the two do not have the same members and slots in the same order, or a changed part has no JSON value
 * (undefined): setting the parts on `was`'s parsed text then would not give `now`'s text, byte for byte.
 */
export function changedParts(was: object, now: object): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  const walk = (a: Record<string, unknown>, b: Record<string, unknown>, prefix: string): boolean => {
    if (!sameKeys(a, b)) return false;
    for (const k of Object.keys(b)) {
      const va = a[k];
      const vb = b[k];
      if (va === vb) continue;
      if (!prefix && k === 'extra' && isRecord(va) && isRecord(vb)) {
        if (!walk(va, vb, 'extra.')) return false;
        continue;
      }
      const t = valueText(vb);
      if (t === undefined) return false;
      if (t !== valueText(va)) out[prefix + k] = vb;
    }
    return true;
  };
  return walk(was as Record<string, unknown>, now as Record<string, unknown>, '') ? out : undefined;
}

/** `{…}` of `o`, each member's text from valueText; the member named `inner`, an object, composed the same way. */
function objectText(o: Record<string, unknown>, fresh: FreshTexts | undefined, inner?: string): string {
  let out = '{';
  for (const k of Object.keys(o)) {
    const v = o[k];
    const t = k === inner && typeof v === 'object' && v !== null && !Array.isArray(v)
      ? objectText(v as Record<string, unknown>, fresh) : valueText(v, fresh);
    if (t === undefined) continue; // JSON.stringify leaves such members out (undefined, functions)
    out += `${out.length > 1 ? ',' : ''}${JSON.stringify(k)}:${t}`;
  }
  return `${out}}`;
}

/**
 * The model's state text (JSON.stringify(m) + newline), reusing the recorded texts of its frozen parts: the
 * model's members and the module slots under `extra`; `fresh` receives the texts made for large parts.
 */
export function modelText(m: object, fresh?: FreshTexts): string {
  return `${objectText(m as Record<string, unknown>, fresh, 'extra')}\n`;
}
