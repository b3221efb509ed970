/** The in-memory executor (no kernel). The same scenarios run against the kernel in semantics.test.ts. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as N from '../../lib/nft/index.js';
import { rejected } from '../helpers/expect.js';

const T: N.TableRef = { family: 'inet', name: 'netns_router' };

async function rejects(p: Promise<unknown>, code: N.NftErrorCode, index?: number): Promise<N.NftError> {
  const e = await rejected(p, N.NftError, { code, executor: 'fake', ...(index !== undefined ? { index } : {}) });
  if (index !== undefined) assert.ok(e.command !== undefined, 'command JSON attached');
  return e;
}

function base(): N.Transaction {
  return N.replaceTable(T, [
    N.baseChain('fwd', { type: 'filter', hook: 'forward', priority: N.ROUTER_PRIORITIES.filter, policy: 'drop' }),
    N.chain('c1'),
    N.set('nets', 'ipv4_addr', { flags: ['interval'], elements: [{ key: '10.0.0.0/8' }] }),
    N.map('fwd_addr', ['ipv4_addr', 'inet_service'], 'ipv4_addr', { elements: [{ key: ['203.0.113.1', 80], value: '10.1.1.5' }] }),
    N.verdictMap('vm', 'ipv4_addr'),
    N.namedCounter('cnt'),
    N.rule('fwd', [N.ct.state('established', 'related'), N.counter('cnt'), N.accept()]),
    N.rule('fwd', [N.ip.saddr(N.setRef('nets')), N.jump('c1')]),
  ]);
}

test('missing objects → ENOENT naming the command', async () => {
  const f = N.openFake();
  await rejects(f.apply(new N.Transaction(T).add(N.chain('c'))), 'ENOENT', 0);
  await f.apply(base());
  await rejects(f.apply(new N.Transaction(T).add(N.rule('nochain', [N.accept()]))), 'ENOENT', 0);
  await rejects(f.apply(new N.Transaction(T).add(N.element('noset', '1.1.1.1'))), 'ENOENT', 0);
  await rejects(f.apply(new N.Transaction(T).add(N.rule('c1', [N.ip.saddr(N.setRef('noset')), N.accept()]))), 'ENOENT', 0);
  await rejects(f.apply(new N.Transaction(T).add(N.rule('c1', [N.counter('nocounter')]))), 'ENOENT', 0);
  await rejects(f.apply(new N.Transaction(T).add(N.element('vm', '1.1.1.1', N.jump('nochain')))), 'ENOENT', 0);
  await rejects(f.apply(new N.Transaction(T).delete(N.chain('nochain'))), 'ENOENT', 0);
  await rejects(f.apply(new N.Transaction(T).delete(N.set('noset', 'ipv4_addr'))), 'ENOENT', 0);
  await rejects(f.apply(new N.Transaction(T).delete(N.rule('c1', [], { handle: 9999 }))), 'ENOENT', 0);
  await rejects(f.apply(new N.Transaction(T).replace(N.rule('c1', [N.drop()], { handle: 9999 }))), 'ENOENT', 0);
  await rejects(f.apply(new N.Transaction(T).delete(N.element('nets', '172.16.0.0/12'))), 'ENOENT', 0);
  await rejects(f.apply(new N.Transaction({ family: 'ip', name: 'nope' }).delete(N.table())), 'ENOENT', 0);
  await rejects(f.apply(new N.Transaction(T).flush(N.chain('nochain'))), 'ENOENT', 0);
});

test('create of an existing object → EEXIST; add is idempotent', async () => {
  const f = N.openFake();
  await f.apply(base());
  await f.apply(new N.Transaction(T).add(N.table(), N.chain('c1'), N.namedCounter('cnt'), N.element('nets', '10.0.0.0/8')));
  await rejects(f.apply(new N.Transaction(T).create(N.table())), 'EEXIST', 0);
  await rejects(f.apply(new N.Transaction(T).create(N.chain('c1'))), 'EEXIST', 0);
  await rejects(f.apply(new N.Transaction(T).create(N.set('nets', 'ipv4_addr', { flags: ['interval'] }))), 'EEXIST', 0);
  await rejects(f.apply(new N.Transaction(T).create(N.element('nets', '10.0.0.0/8'))), 'EEXIST', 0);
  await rejects(f.apply(new N.Transaction(T).add(N.set('nets', 'ipv6_addr'))), 'EEXIST', 0);
  // a map entry with another value cannot be added over the old one…
  await rejects(f.apply(new N.Transaction(T).add(N.element('fwd_addr', ['203.0.113.1', 80], '10.1.1.6'))), 'EEXIST', 0);
  // …but delete + add in one transaction re-points it
  await f.apply(N.updateElements(T, 'fwd_addr', { delete: [['203.0.113.1', 80]], add: [{ key: ['203.0.113.1', 80], value: '10.1.1.6' }] }));
  const m = await f.listSet(T, 'fwd_addr');
  assert.equal(m.elements, [[{ concat: ['203.0.113.1', 80] }, '10.1.1.6']]);
});

test('chains: busy, base-chain changes, jumps to base chains', async () => {
  const f = N.openFake();
  await f.apply(base());
  await rejects(f.apply(new N.Transaction(T).delete(N.chain('c1'))), 'EBUSY', 0);
  await rejects(f.apply(new N.Transaction(T).add(N.rule('c1', [N.jump('fwd')]))), 'EOPNOTSUPP', 0);
  await rejects(f.apply(new N.Transaction(T).add(N.baseChain('c1', { type: 'filter', hook: 'input', priority: 0 }))), 'EEXIST', 0);
  await rejects(f.apply(new N.Transaction(T).add(N.baseChain('fwd', { type: 'filter', hook: 'forward', priority: 5 }))), 'EOPNOTSUPP', 0);
  await f.apply(new N.Transaction(T).add(N.baseChain('fwd', { type: 'filter', hook: 'forward', priority: N.ROUTER_PRIORITIES.filter, policy: 'accept' })));
  assert.is((await f.list(T)).chains.find((c) => c.name === 'fwd')?.policy, 'accept', 'policy updated');
  await rejects(f.apply(new N.Transaction(T).delete(N.set('nets', 'ipv4_addr'))), 'EBUSY', 0);
  await rejects(f.apply(new N.Transaction(T).delete(N.namedCounter('cnt'))), 'EBUSY', 0);
  // a vmap element jumping to a chain also pins it
  await f.apply(new N.Transaction(T).add(N.chain('c2'), N.element('vm', '1.1.1.1', N.jump('c2'))));
  await rejects(f.apply(new N.Transaction(T).delete(N.chain('c2'))), 'EBUSY', 0);
  await f.apply(new N.Transaction(T).delete(N.element('vm', '1.1.1.1')).delete(N.chain('c2')));
  // deleting a chain deletes its rules and releases what they referenced
  await f.apply(new N.Transaction(T).delete(N.chain('fwd')).delete(N.chain('c1')).delete(N.set('nets', 'ipv4_addr')));
  assert.equal((await f.list(T)).chains.map((c) => c.name), []);
});

test('atomicity: a bad last command applies nothing', async () => {
  const f = N.openFake();
  await f.apply(base());
  const before = JSON.stringify(f.dump());
  const bad = new N.Transaction(T)
    .add(N.chain('new1'))
    .add(N.rule('c1', [N.drop()]))
    .add(N.element('nets', '172.16.0.0/12'))
    .flush(N.table())
    .add(N.rule('c1', [N.jump('missing')]));
  const e = await rejects(f.apply(bad), 'ENOENT', 4);
  assert.equal(e.command, { add: { rule: { family: 'inet', table: 'netns_router', chain: 'c1', expr: [{ jump: { target: 'missing' } }] } } });
  assert.is(JSON.stringify(f.dump()), before, 'state unchanged');
  // also when the first command creates the table
  const f2 = N.openFake();
  await rejects(f2.apply(new N.Transaction(T).add(N.table(), N.chain('a'), N.rule('a', [N.jump('b')]))), 'ENOENT', 2);
  assert.equal(f2.dump(), []);
  // check() never changes anything
  await f2.check(base());
  assert.equal(f2.dump(), []);
  assert.is(f2.history.length, 0);
});

test('whole-table replacement is idempotent and removes what is not listed', async () => {
  const f = N.openFake();
  await f.apply(base());
  await f.apply(new N.Transaction(T).add(N.chain('stray'), N.element('nets', '192.168.0.0/16')));
  await f.apply(base());
  const once = N.stripHandles(f.dump());
  await f.apply(base());
  assert.equal(N.stripHandles(f.dump()), once);
  assert.not.ok(once[0].chains.some((c) => c.name === 'stray'));
  assert.equal((await f.listSet(T, 'nets', 'set')).elements, [{ prefix: { addr: '10.0.0.0', len: 8 } }]);
  // other tables are not touched by a replacement
  const other: N.TableRef = { family: 'ip', name: 'someone_else' };
  await f.apply(new N.Transaction(other).add(N.table(), N.chain('x')));
  await f.apply(base());
  assert.equal(f.tableNames().sort(), ['inet netns_router', 'ip someone_else']);
});

test('sets: elements, intervals, flush', async () => {
  const f = N.openFake();
  await f.apply(base());
  await f.apply(new N.Transaction(T).add(N.elements('nets', [{ key: '172.16.0.0/12' }, { key: '192.168.1.0-192.168.1.255' }, { key: '198.51.100.7', comment: 'one' }])));
  const s = await f.listSet(T, 'nets');
  assert.is(s.kind, 'set');
  assert.equal(s.elements, [
    { prefix: { addr: '10.0.0.0', len: 8 } }, { prefix: { addr: '172.16.0.0', len: 12 } },
    { prefix: { addr: '192.168.1.0', len: 24 } }, { elem: { val: '198.51.100.7', comment: 'one' } },
  ], 'aligned range listed as a prefix');
  await rejects(f.apply(new N.Transaction(T).add(N.element('nets', '10.1.0.0/16'))), 'EEXIST', 0);
  await rejects(f.apply(new N.Transaction(T).add(N.elements('nets', [{ key: '11.0.0.0/16' }, { key: '11.0.0.0/8' }]))), 'EEXIST', 0);
  await rejects(f.apply(new N.Transaction(T).delete(N.element('nets', '10.1.0.0/16'))), 'ENOENT', 0);
  await f.apply(new N.Transaction(T).delete(N.element('nets', '192.168.1.0/24')));
  await f.apply(new N.Transaction(T).flush(N.table()));
  assert.is((await f.listSet(T, 'nets')).elements.length, 3, 'flush table keeps set elements');
  assert.is((await f.list(T)).rules.length, 0, 'flush table empties chains');
  await f.apply(new N.Transaction(T).flush(N.set('nets', 'ipv4_addr')));
  assert.is((await f.listSet(T, 'nets')).elements.length, 0);
  await rejects(f.listSet(T, 'nets', 'map'), 'ENOENT');
  await rejects(f.listSet(T, 'nope'), 'ENOENT');
  // a non-interval set refuses prefixes
  await f.apply(new N.Transaction(T).add(N.set('plain', 'ipv4_addr')));
  await rejects(f.apply(new N.Transaction(T).add(N.element('plain', '10.0.0.0/8'))), 'E_NFT_FAILED', 0);
});

test('rules: positions, replace keeps the handle, delete', async () => {
  const f = N.openFake();
  await f.apply(new N.Transaction(T).add(N.table(), N.chain('c'), N.rule('c', [N.counter()], { comment: 'a' }), N.rule('c', [N.counter()], { comment: 'c' })));
  const comments = async (): Promise<Array<string | undefined>> => (await f.list(T)).rules.map((r) => r.comment);
  const handles = async (): Promise<number[]> => (await f.list(T)).rules.map((r) => r.handle!);
  const [ha, hc] = await handles();
  await f.apply(new N.Transaction(T).add(N.rule('c', [N.counter()], { handle: ha, comment: 'b' })));
  await f.apply(new N.Transaction(T).insert(N.rule('c', [N.counter()], { comment: '0' })));
  await f.apply(new N.Transaction(T).insert(N.rule('c', [N.counter()], { handle: hc, comment: 'b2' })));
  assert.equal(await comments(), ['0', 'a', 'b', 'b2', 'c']);
  await f.apply(new N.Transaction(T).replace(N.rule('c', [N.drop()], { handle: hc, comment: 'C' })));
  const l = await f.list(T);
  const r = l.rules.find((x) => x.handle === hc)!;
  assert.equal([r.comment, r.expr], ['C', [{ drop: null }]]);
  await f.apply(new N.Transaction(T).delete(N.rule('c', [], { handle: ha })));
  assert.equal(await comments(), ['0', 'b', 'b2', 'C']);
  await f.apply(new N.Transaction(T).add(N.rule('c', [N.counter()], { index: 0, comment: 'i' })));
  assert.equal(await comments(), ['0', 'i', 'b', 'b2', 'C']);
  await rejects(f.apply(new N.Transaction(T).add(N.rule('c', [N.counter()], { index: 99 }))), 'ENOENT', 0);
  await f.apply(new N.Transaction(T).flush(N.chain('c')));
  assert.equal(await comments(), []);
});

test('listing shape, terse, dump, history, close', async () => {
  const f = N.openFake();
  await f.apply(base());
  const l = await f.list(T);
  assert.equal(l.table.name, 'netns_router');
  assert.equal(l.chains.map((c) => c.name), ['fwd', 'c1']);
  assert.equal(l.chains[0], { family: 'inet', table: 'netns_router', name: 'fwd', handle: l.chains[0].handle, type: 'filter', hook: 'forward', prio: -10, policy: 'drop' });
  assert.equal(l.sets.map((s) => s.name), ['nets']);
  assert.equal(l.maps.map((s) => [s.name, s.map]), [['fwd_addr', 'ipv4_addr'], ['vm', 'verdict']]);
  assert.equal(l.counters.map((c) => c.name), ['cnt']);
  assert.is(l.rules.length, 2);
  const terse = await f.list(T, { terse: true });
  assert.is(terse.sets[0].elem, undefined, 'terse listing has no elements');
  assert.is(f.history.length, 1);
  await rejects(f.list({ family: 'ip', name: 'nope' }), 'ENOENT');
  await f.close();
  await rejects(f.apply(base()), 'E_NFT_EXECUTOR');
});

test.run();
