/**
 * The state's text made from the texts of a model's parts (lib/router/state/model-text.ts) is JSON.stringify's,
 * byte for byte; a recorded text is used only for a frozen part.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { changedParts, keepTexts, modelText, PART_TEXT_MIN, type FreshTexts } from '../../lib/router/state/model-text.js';
import { replay } from '../../lib/router/state/nat-log.js';
import { StateError } from '../../lib/util/errors.js';
import type { RouterModel } from '../../lib/router/model.js';
import { deepFreeze } from '../../lib/router/warm-cache.js';

const big = (n: number) => Array.from({ length: n }, (_, i) => ({ id: i, port: 1000 + i, cidr: `10.${i % 250}.0.0/16`, note: i % 3 ? undefined : 'x"\\\u2028' }));

test('the same text as JSON.stringify: key order (integer-like first), undefined and function members left out, nested slots', () => {
  const models: object[] = [
    {},
    { version: 1, namespace: 'cs-net-1', extra: {} },
    { b: 1, a: [1, undefined, null], 10: 'ten', 2: 'two', f: () => 1, u: undefined, extra: { z: big(3), 5: { u: undefined }, a: null, f: () => 0 } },
    { extra: null, list: big(200) },
    { extra: [1, 2], s: 'é\n' },
    { version: 1, extra: { firewall: { fw: { 42: { rules: big(300) } } }, dhcp: { tiers: {} } }, staticNats: big(100) },
  ];
  for (const m of models) assert.is(modelText(m), `${JSON.stringify(m)}\n`);
});

test('large parts\' texts are handed out for recording; a recorded text is reused for a frozen part only', () => {
  const rules = big(400);
  const m = { version: 1, extra: { firewall: { rules }, small: { a: 1 } }, staticNats: [] as unknown[] };
  const fresh: FreshTexts = new Map();
  const text = modelText(m, fresh);
  assert.is(text, `${JSON.stringify(m)}\n`);
  assert.ok(fresh.has(m.extra.firewall) && fresh.get(m.extra.firewall)!.length >= PART_TEXT_MIN, 'the large slot\'s text');
  assert.not.ok(fresh.has(m.extra.small), 'not a small one');
  // recorded while not frozen: not used (a part that can change keeps no text)
  const unfrozen = { rules: big(400) };
  keepTexts(new Map([[unfrozen, '"stale"']]));
  assert.is(modelText({ extra: { firewall: unfrozen } }), `${JSON.stringify({ extra: { firewall: unfrozen } })}\n`);
  // frozen: the recorded text is what the model's text holds (so it is the part's own, as StoredModels records it)
  const frozen = deepFreeze({ rules: big(400) });
  keepTexts(new Map([[frozen, '"recorded"']]));
  assert.is(modelText({ extra: { firewall: frozen }, staticNats: frozen }), '{"extra":{"firewall":"recorded"},"staticNats":"recorded"}\n');
});

test('changed parts: set on the parsed text before, they give the text after, byte for byte; members added, removed or reordered are not parts', () => {
  const was = deepFreeze({ version: 1, tiers: { 42: { gw: '10.0.0.1' } }, staticNats: big(50), extra: { firewall: { rules: big(300) }, dhcp: { hosts: big(3) }, vmdata: { vms: {} } } });
  const now = { ...was, tiers: structuredClone(was.tiers), extra: { ...was.extra, dhcp: { hosts: big(4) }, vmdata: structuredClone(was.extra.vmdata) } };
  const parts = changedParts(was, now)!;
  assert.equal(Object.keys(parts), ['extra.dhcp'], 'only the part whose text changed (a copy with the same text is not one)');
  const replayed = replay('log', JSON.parse(modelText(was)) as RouterModel, [{ parts: JSON.parse(JSON.stringify(parts)) as Record<string, unknown> }]);
  assert.is(modelText(replayed), modelText(now));
  const top = { ...was, staticNats: big(51) };
  assert.equal(Object.keys(changedParts(was, top)!), ['staticNats'], 'a member');
  assert.is(changedParts(was, { ...was, pbrTables: {} }), undefined, 'a member added');
  assert.is(changedParts(was, { ...was, extra: { ...was.extra, lb: {} } }), undefined, 'a slot added');
  const { vmdata: _gone, ...fewer } = was.extra;
  assert.is(changedParts(was, { ...was, extra: fewer }), undefined, 'a slot removed');
  assert.is(changedParts(was, { version: 1, staticNats: was.staticNats, tiers: was.tiers, extra: was.extra }), undefined, 'members reordered');
  assert.is(changedParts(was, { ...was, extra: { ...was.extra, dhcp: undefined } }), undefined, 'a part without a JSON value');
  assert.throws(() => replay('log', JSON.parse('{"version":1,"extra":{}}') as RouterModel, [{ parts: { 'extra.dhcp': {} } }]), (e: unknown) => e instanceof StateError, 'a record replacing a slot the model does not hold');
});

test.run();
