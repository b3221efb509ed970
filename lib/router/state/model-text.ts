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

function valueText(v: unknown, fresh: FreshTexts | undefined): string | undefined {
  if (typeof v !== 'object' || v === null) return JSON.stringify(v);
  const known = texts.get(v);
  if (known !== undefined) return known;
  const t = JSON.stringify(v);
  if (fresh && t.length >= PART_TEXT_MIN) fresh.set(v, t);
  return t;
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
