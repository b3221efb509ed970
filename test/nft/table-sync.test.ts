/**
 * syncTable against the real kernel: in-place changes give exactly the ruleset a fresh replacement gives
 * (checked after every step of a random walk over contents), keep untouched objects (same handles), are
 * guarded by the stamp (a hand-edited table is replaced, never patched), and re-create a base chain that moves.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as N from '../../lib/nft/index.js';
import { changedMiddle, sameValue } from '../../lib/util/compare.js';
import { addNs, delNs, nsSh, nsTables } from './helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { routerTableObjects, type NatPlan } from '../../lib/router/router-table.js';

requireSandbox();

const T: N.TableRef = { family: 'inet', name: 'nftt_sync' };

/** A table listing made comparable: no handles or counter values, objects sorted, elements sorted. */
function normalized(ns: string, withHandles = false): string {
  const doc = JSON.parse(nsSh(ns, 'nft', ['-j', 'list', 'table', T.family, T.name]).stdout) as { nftables: Array<Record<string, Record<string, unknown>>> };
  // the stamp differs by design (it holds the namespace's generation id)
  const items = doc.nftables.filter((i) => !('metainfo' in i) && !('table' in i) && i.set?.name !== N.FINGERPRINT_SET);
  const clean = withHandles ? items : N.stripHandles(items);
  const keyOf = (o: Record<string, Record<string, unknown>>): string => {
    const [kind, body] = Object.entries(o)[0];
    if (Array.isArray(body.elem)) body.elem = N.sortedElements(body.elem as N.JsonElem[]);
    return kind === 'rule' ? `z ${String(body.chain)}` : `${kind} ${String(body.name)}`;
  };
  // rules keep their order inside a chain (stable sort)
  return clean.map((o) => ({ k: keyOf(o), o })).sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0)).map((x) => JSON.stringify(x.o)).join('\n');
}

/** Pseudo-random contents: chains, rules, sets of several kinds, vmaps jumping to chains. */
function contents(seed: number): N.NftObject[] {
  let s = seed * 7919 + 13;
  const r = (n: number): number => { s = (s * 1103515245 + 12345) & 0x7fffffff; return s % n; };
  const objs: N.NftObject[] = [];
  const nChains = 1 + r(4);
  const chains = Array.from({ length: nChains }, (_, i) => `c${(i + r(3)) % 6}`).filter((c, i, a) => a.indexOf(c) === i);
  for (const c of chains) objs.push(N.chain(c));
  objs.push(N.baseChain('filt', { type: 'filter', hook: 'forward', priority: N.ROUTER_PRIORITIES.filter, policy: r(2) ? 'accept' : 'drop' }));
  if (r(2)) objs.push(N.baseChain('pre', { type: 'nat', hook: 'prerouting', priority: { base: 'dstnat', offset: -10 } }));
  // sets: a hash set, an interval set (sometimes of another type), a concatenated interval set, a map
  const ports = Array.from({ length: r(6) }, () => 1000 + r(50)).filter((p, i, a) => a.indexOf(p) === i);
  objs.push(N.set('ports', 'inet_service', ports.length ? { elements: ports.map((p) => ({ key: p })) } : {}));
  const nets = Array.from({ length: r(5) }, () => r(200)).filter((p, i, a) => a.indexOf(p) === i);
  if (r(3)) objs.push(N.set('nets', 'ipv4_addr', { flags: ['interval'], ...(nets.length ? { elements: nets.map((n) => ({ key: `10.${n}.0.0/16` })) } : {}) }));
  else objs.push(N.set('nets', 'ipv6_addr', { flags: ['interval'], elements: [{ key: 'fd00::/64' }] }));
  const pairs = Array.from({ length: r(4) }, (_, i) => [`192.168.${r(4) * 10 + i}.0/24`, [2000 + i * 10, 2005 + i * 10]] as const);
  objs.push(N.set('pairs', ['ipv4_addr', 'inet_service'], { flags: ['interval'], ...(pairs.length ? { elements: pairs.map(([c, [a, b]]) => ({ key: [c, N.portRange(a, b)] })) } : {}) }));
  const pf = Array.from({ length: r(5) }, (_, i) => ({ key: `203.0.113.${i + 1}`, value: `10.0.0.${1 + r(3)}` }));
  objs.push(N.map('dnat_to', 'ipv4_addr', 'ipv4_addr', pf.length ? { elements: pf } : {}));
  const vm = chains.filter(() => r(2)).map((c, i) => ({ key: N.ifname(`g${i}`), value: r(4) ? N.jump(c) : N.drop() }));
  objs.push(N.verdictMap('by_if', 'ifname', vm.length ? { elements: vm } : {}));
  for (const c of chains) {
    for (let i = r(4); i > 0; i--) {
      const k = r(4);
      if (k === 0) objs.push(N.rule(c, [N.tcp.dport(N.setRef('ports')), N.accept()]));
      else if (k === 1 && objs.some((o) => o.kind === 'set' && o.name === 'nets' && o.type === 'ipv4_addr')) objs.push(N.rule(c, [N.ip.saddr(N.setRef('nets')), N.drop()], { comment: `n${i}` }));
      else if (k === 2) objs.push(N.rule(c, [N.udp.dport(5000 + r(10)), N.counter(), N.ret()]));
      else objs.push(N.rule(c, [N.lookup(N.concatKey(N.F.ipSaddr, N.F.thDport), 'pairs'), N.accept()]));
    }
  }
  objs.push(N.rule('filt', [N.ct.state('established', 'related'), N.accept()]));
  if (r(2)) objs.push(N.rule('filt', [N.vmap(N.F.iifname, 'by_if')]));
  if (chains.length && r(2)) objs.push(N.rule('filt', [N.meta.iifname('x0'), N.jump(chains[0])]));
  if (objs.some((o) => o.kind === 'chain' && o.name === 'pre')) objs.push(N.rule('pre', [N.dnat({ family: 'ip', addr: N.mapLookup(N.F.ipDaddr, 'dnat_to') })]));
  return objs;
}

test('a random walk of in-place changes always lists exactly as a fresh replacement', async () => {
  const a = addNs('sync-a-');
  const b = addNs('sync-b-');
  const ex = N.openLibnftables({ netns: a });
  const ref = N.openLibnftables({ netns: b });
  const gen = N.NftGenerationReader.open(a);
  try {
    let prev: N.NftObject[] | undefined;
    const modes: Record<string, number> = {};
    for (let step = 0; step < 40; step++) {
      const want = contents(step);
      const res = await N.syncTable(ex, T, want, prev, { generation: () => gen.read() });
      modes[res.mode] = (modes[res.mode] ?? 0) + 1;
      if (step === 0) assert.is(res.mode, 'replace', 'first apply creates the table');
      else assert.ok(res.mode !== 'replace', `step ${step}: changed in place (${res.reason ?? ''} ${res.error?.message ?? ''})`);
      await ref.apply(N.replacementOf(T, want, N.tableContents(want)));
      assert.fixture(normalized(a), normalized(b), `step ${step}`);
      prev = want;
    }
    assert.ok((modes.diff ?? 0) >= 30, JSON.stringify(modes));
  } finally {
    gen.close();
    await ex.close(); await ref.close();
    delNs(a); delNs(b);
  }
});

test('unchanged contents: nothing re-created (same handles); a small change touches only its objects', async () => {
  const a = addNs('sync-h-');
  const ex = N.openLibnftables({ netns: a });
  try {
    const base = contents(3);
    await N.syncTable(ex, T, base);
    const before = normalized(a, true);
    const again = await N.syncTable(ex, T, base, base);
    assert.is(again.mode, 'unchanged');
    assert.is(again.operations, 2, 'only the fingerprint is swapped');
    assert.is(normalized(a, true), before, 'handles unchanged');
    // restore-style: no assumption given, the kernel already holds it
    assert.is((await N.syncTable(ex, T, base)).mode, 'unchanged');

    const plus = [...base, N.element('ports', 4242)];
    const res = await N.syncTable(ex, T, plus, base);
    assert.is(res.mode, 'diff');
    assert.is(res.operations, 3, 'fingerprint out, element in, fingerprint in');
    const listed = await ex.listSet(T, 'ports', 'set');
    assert.ok(listed.elements.some((e) => e === 4242), JSON.stringify(listed.elements));
    // every chain and rule kept its handle
    const handles = (txt: string) => txt.split('\n').filter((l) => l.startsWith('{"rule"') || l.startsWith('{"chain"')).join('\n');
    assert.is(handles(normalized(a, true)), handles(before));
  } finally {
    await ex.close();
    delNs(a);
  }
});

test('a table edited by hand is replaced, not patched; wrong contents too; a moved base chain is re-created', async () => {
  const a = addNs('sync-g-');
  const ex = N.openLibnftables({ netns: a });
  const g = N.NftGenerationReader.open(a);
  const opts = { generation: () => g.read() };
  try {
    const base = contents(5);
    await N.syncTable(ex, T, base, undefined, opts);
    assert.is((await N.syncTable(ex, T, base, base, opts)).mode, 'unchanged', 'the stamp holds our generation');
    nsSh(a, 'nft', ['add', 'rule', 'inet', T.name, 'filt', 'tcp', 'dport', '9999', 'drop']);
    nsSh(a, 'nft', ['add', 'element', 'inet', T.name, 'ports', '{ 9998 }']);
    const next = contents(6);
    const res = await N.syncTable(ex, T, next, base, opts);
    assert.is(res.mode, 'replace');
    assert.is(res.reason, 'changed-outside');
    const text = nsSh(a, 'nft', ['list', 'table', 'inet', T.name]).stdout;
    assert.not.ok(text.includes('9999') || text.includes('9998'), 'hand edits gone');
    // a wrong assumption about the contents (a stale state file, say)
    const res1 = await N.syncTable(ex, T, contents(7), base, opts);
    assert.is(res1.mode, 'replace');
    assert.is(res1.reason, 'other-contents');

    const moved = contents(7).map((o) => (o.kind === 'chain' && o.name === 'filt' ? { ...o, priority: { base: 'filter' as const, offset: 5 } } : o));
    const res2 = await N.syncTable(ex, T, moved, contents(7), opts);
    assert.is(res2.mode, 'diff', 'a base chain that moves is re-created inside the in-place transaction');
    assert.ok(nsSh(a, 'nft', ['list', 'chain', 'inet', T.name, 'filt']).stdout.includes('priority filter + 5'));
    assert.is((await N.syncTable(ex, T, moved, moved, opts)).mode, 'unchanged');
  } finally {
    g.close();
    await ex.close();
    delNs(a);
  }
});

test('a companion table changes in the same guarded transaction: created, changed in place, guarded, deleted when empty', async () => {
  const a = addNs('sync-c-');
  const ex = N.openLibnftables({ netns: a });
  const g = N.NftGenerationReader.open(a);
  const C: N.TableRef = { family: 'netdev', name: 'companion' };
  nsSh(a, 'ip', ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
  const comp = (ips: string[]): N.NftObject[] => (ips.length ? [
    N.set('ips', 'ipv4_addr', { elements: ips.map((key) => ({ key })) }),
    N.baseChain('in_d0', { type: 'filter', hook: 'ingress', device: 'd0', priority: { base: 'filter' }, policy: 'accept' }),
    N.rule('in_d0', [N.match(N.arp.operation, N.symbol('request')), N.lookup(N.arp.daddrIp, 'ips'), N.counter()]),
  ] : []);
  const opts = (want: string[], assumed?: string[], extra: Partial<N.SyncOptions> = {}): N.SyncOptions => ({
    generation: () => g.read(), companions: [{ table: C, want: comp(want), ...(assumed ? { assumed: comp(assumed) } : {}) }], ...extra,
  });
  const ips = (): string => nsSh(a, 'nft', ['list', 'set', 'netdev', 'companion', 'ips']).stdout;
  try {
    const base = contents(3);
    const first = await N.syncTable(ex, T, base, undefined, opts(['192.0.2.1', '192.0.2.2']));
    assert.is(first.mode, 'replace', 'first apply: both tables made');
    assert.match(ips(), /192\.0\.2\.1, 192\.0\.2\.2/);
    const chainHandle = (): string => nsSh(a, 'nft', ['-a', 'list', 'chain', 'netdev', 'companion', 'in_d0']).stdout.match(/# handle (\d+)/)![1];
    const h0 = chainHandle();
    const d = await N.syncTable(ex, T, base, base, opts(['192.0.2.1', '192.0.2.3'], ['192.0.2.1', '192.0.2.2']));
    assert.is(d.mode, 'diff');
    assert.is(d.operations, 4, 'stamp out, element out, element in, stamp in');
    assert.match(ips(), /192\.0\.2\.1, 192\.0\.2\.3/);
    assert.is(chainHandle(), h0, 'the ingress chain kept its handle');
    assert.is((await N.syncTable(ex, T, base, base, opts(['192.0.2.1', '192.0.2.3'], ['192.0.2.1', '192.0.2.3']))).mode, 'unchanged');
    // the companion is part of the fingerprint: a wrong assumption about it is noticed
    const wrong = await N.syncTable(ex, T, base, base, opts(['192.0.2.4'], ['192.0.2.9']));
    assert.is(wrong.mode, 'replace');
    assert.is(wrong.reason, 'other-contents');
    assert.match(ips(), /192\.0\.2\.4/);
    // a hand edit of the companion bumps the generation: replaced
    nsSh(a, 'nft', ['add', 'element', 'netdev', 'companion', 'ips', '{ 192.0.2.77 }']);
    const edited = await N.syncTable(ex, T, base, base, opts(['192.0.2.4'], ['192.0.2.4']));
    assert.is(edited.reason, 'changed-outside');
    assert.not.match(ips(), /192\.0\.2\.77/);
    // asked to replace (a device the chain was bound to was re-created)
    const asked = await N.syncTable(ex, T, base, base, opts(['192.0.2.4'], ['192.0.2.4'], { replace: true }));
    assert.is(asked.mode, 'replace');
    assert.is(asked.reason, 'asked');
    // nothing left to answer: the companion table goes, in place
    const gone = await N.syncTable(ex, T, base, base, opts([], ['192.0.2.4']));
    assert.is(gone.mode, 'diff');
    assert.not.ok(nsTables(a).includes('netdev companion'), nsTables(a).join());
    assert.ok(nsTables(a).includes(`inet ${T.name}`));
    assert.is((await N.syncTable(ex, T, base, base, opts([], []))).mode, 'unchanged');
  } finally {
    g.close();
    await ex.close();
    delNs(a);
  }
});

test('the fake executor agrees with the kernel on in-place changes', async () => {
  // the same walk of in-place changes on the fake and on a kernel namespace: after every step both list the same
  const ns = addNs('sync-f-');
  const kernel = N.openLibnftables({ netns: ns });
  const gen = N.NftGenerationReader.open(ns);
  const fake = N.openFake();
  const norm = async (x: N.NftExecutor) => {
    const l = N.stripHandles(await x.list(T));
    l.sets = l.sets.filter((st) => st.name !== N.FINGERPRINT_SET);
    const byText = <X>(xs: X[]) => xs.map((v) => JSON.stringify(v)).sort();
    const sets = [...l.sets, ...l.maps].map((st) => ({ ...st, elem: st.elem ? N.sortedElements(st.elem) : [] }));
    const rules = [...l.rules].sort((p, q) => (p.chain < q.chain ? -1 : p.chain > q.chain ? 1 : 0));
    return JSON.stringify([byText(l.chains), byText(sets), rules, byText(l.counters)]);
  };
  try {
    let prev: N.NftObject[] | undefined;
    for (let step = 0; step < 25; step++) {
      const want = contents(100 + step);
      const res = await N.syncTable(fake, T, want, prev);
      if (step > 0) assert.ok(res.mode !== 'replace', `step ${step}: ${res.reason} ${res.error?.message ?? ''}`);
      await N.syncTable(kernel, T, want, prev, { generation: () => gen.read() });
      const [f, k] = [await norm(fake), await norm(kernel)];
      assert.ok((JSON.parse(k) as unknown[][])[0].length >= 1, `step ${step}: the kernel lists the table's chains`);
      assert.is(f, k, `step ${step}: the fake lists what the kernel lists`);
      prev = want;
    }
  } finally {
    gen.close();
    await kernel.close();
    await fake.close();
    delNs(ns);
  }
});

test('a bridge table (the guest-segment filter\'s shape) changes in place: element updates, dynamic sets keep what the kernel learned', async () => {
  const ns = addNs('nftt-br');
  try {
    const B: N.TableRef = { family: 'bridge', name: 'nftt_br' };
    const mac = (i: number) => N.etherAddr(`02:00:00:00:00:${i.toString(16).padStart(2, '0')}`);
    const want = (n: number): N.NftObject[] => [
      N.chain('per_mac'),
      N.set('macs', ['ether_addr', 'ipv4_addr'], n ? { elements: Array.from({ length: n }, (_, i) => ({ key: [mac(i), `10.0.0.${i + 1}`] })) } : {}),
      N.verdictMap('by_mac', 'ether_addr', n ? { elements: Array.from({ length: n }, (_, i) => ({ key: mac(i), value: N.jump('per_mac') })) } : {}),
      N.set('seen', 'ifname', { flags: ['timeout'], timeout: 600 }),
      N.baseChain('pre', { type: 'filter', hook: 'prerouting', priority: N.ROUTER_PRIORITIES.bridgeFilter }),
      N.rule('pre', [N.setStmt('update', N.F.iifname, 'seen'), N.vmap(N.F.etherSaddr, 'by_mac')]),
      N.rule('per_mac', [N.match(N.payload('ether', 'type'), N.symbol('ip')), N.lookup(N.concatKey(N.F.etherSaddr, N.F.ipSaddr), 'macs', '!='), N.drop()]),
    ];
    const ex = N.openLibnftables({ netns: ns });
    try {
      assert.is((await N.syncTable(ex, B, want(3))).mode, 'replace');
      // what the packet path would have learned: an element the sync does not know of
      nsSh(ns, 'nft', ['add', 'element', 'bridge', 'nftt_br', 'seen', '{ "tv0" }']);
      const r = await N.syncTable(ex, B, want(4), want(3));
      assert.is(r.mode, 'diff');
      assert.is(r.operations, 4, 'the stamp (2) and one element in each of two sets');
      const listed = nsSh(ns, 'nft', ['list', 'table', 'bridge', 'nftt_br']).stdout;
      assert.match(listed, /"tv0"/, 'the learned element is still there');
      assert.match(listed, /02:00:00:00:00:03 \. 10\.0\.0\.4/);
      assert.match(listed, /priority filter - 10/);
    } finally {
      await ex.close();
    }
  } finally {
    delNs(ns);
  }
});

test('frozen element lists (a large router\'s NAT maps): made once, compared by identity, the same fingerprint as fresh copies; a list extended by element objects is copied, not written', () => {
  const freezeDeep = <T>(x: T): T => { if (typeof x === 'object' && x !== null && !Object.isFrozen(x)) { Object.freeze(x); for (const v of Object.values(x)) freezeDeep(v); } return x; };
  const staticNat = Array.from({ length: 300 }, (_, i) => ({ publicIp: `198.18.${1 + (i >> 7)}.${(i & 127) + 1}`, privateIp: `10.0.${i >> 7}.${(i & 127) + 1}` }));
  const portForwards = Array.from({ length: 40 }, (_, i) => ({ publicIp: '203.0.113.10', protocol: 'tcp' as const, publicPorts: [1000 + i, 1000 + i] as [number, number], privateIp: '10.0.9.9', privatePorts: [80, 80] as [number, number] }));
  const plan = (frozen: boolean): NatPlan => {
    const p = { publicIfs: ['pub0'], sourceNat: [], staticNat: structuredClone(staticNat), portForwards: structuredClone(portForwards) };
    if (frozen) { freezeDeep(p.staticNat); freezeDeep(p.portForwards); }
    return p;
  };
  const frozen = plan(true);
  const elems = (objs: N.NftObject[], name: string) => (objs.find((o) => (o.kind === 'map' || o.kind === 'set') && o.name === name) as { elements?: unknown[] }).elements!;
  const a = routerTableObjects(frozen);
  const b = routerTableObjects(frozen);
  const c = routerTableObjects(plan(false));
  for (const name of ['static_dnat', 'static_snat', 'pf_addr', 'pf_port']) {
    assert.ok(elems(a, name) === elems(b, name), `${name}: the same list while the input is the same`);
    assert.ok(Object.isFrozen(elems(a, name)) && Object.isFrozen(elems(a, name)[0]), `${name}: shared, so frozen`);
    assert.ok(elems(a, name) !== elems(c, name), `${name}: an unfrozen input is compiled afresh`);
    assert.equal(elems(a, name), elems(c, name));
  }
  const fa = N.tableContents(a);
  const fc = N.tableContents(c);
  assert.is(fa.fingerprint, fc.fingerprint, 'frozen or not: the same contents');
  assert.is(N.tableContents([...b]).fingerprint, fa.fingerprint, 'digested from the memo: the same fingerprint');
  // a frozen list extended by element objects: the set holds both, the list is left as it was
  const extra = N.elements('static_dnat', [{ key: '198.18.9.9', value: '10.0.9.1' }]);
  const ext = N.tableContents([...a, extra]);
  assert.is(ext.sets.get('static_dnat')!.items.length, 301);
  assert.is(elems(a, 'static_dnat').length, 300);
  assert.is.not(ext.fingerprint, fa.fingerprint);
});

test('changedMiddle: deleting the old middle and adding the new one turns any unique sequence into another', () => {
  let seed = 7;
  const r = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  for (let round = 0; round < 500; round++) {
    const a = [...new Set(Array.from({ length: r(12) }, () => r(20)))];
    const b = [...a];
    for (let k = r(4); k > 0; k--) {
      const op = r(3);
      if (op === 0 && b.length) b.splice(r(b.length), 1);
      else if (op === 1) { const v = 20 + r(20); if (!b.includes(v)) b.splice(r(b.length + 1), 0, v); }
      else if (b.length) b[r(b.length)] = 40 + r(20);
    }
    const uniq = [...new Set(b)];
    const [am, bm] = changedMiddle(a, uniq, (x, y) => x === y);
    const result = new Set(a);
    for (const x of am) if (!bm.includes(x)) result.delete(x);
    for (const x of bm) result.add(x);
    assert.equal([...result].sort(), [...uniq].sort(), `${JSON.stringify(a)} → ${JSON.stringify(uniq)}`);
  }
  assert.ok(sameValue({ key: ['1.2.3.4', N.symbol('tcp'), 80], value: '10.0.0.1' }, { key: ['1.2.3.4', N.symbol('tcp'), 80], value: '10.0.0.1' }));
  assert.not.ok(sameValue({ key: ['1.2.3.4', N.symbol('tcp'), 80] }, { key: ['1.2.3.4', N.symbol('udp'), 80] }));
  assert.not.ok(sameValue({ key: 1 }, { key: 1, value: 2 }));
});

/** One owner's contents in a shared table: every name carries its prefix (chains, sets, a vmap jumping to a chain). */
function scoped(p: string, ports: number[], extraChain = false): N.NftObject[] {
  return [
    N.chain(`${p}c`),
    ...(extraChain ? [N.chain(`${p}x`)] : []),
    N.set(`${p}ports`, 'inet_service', ports.length ? { elements: ports.map((k) => ({ key: k })) } : {}),
    N.verdictMap(`${p}by_if`, 'ifname', { elements: [{ key: N.ifname('g0'), value: N.jump(`${p}c`) }] }),
    N.baseChain(`${p}filt`, { type: 'filter', hook: 'forward', priority: N.ROUTER_PRIORITIES.filter }),
    N.rule(`${p}filt`, [N.vmap(N.F.iifname, `${p}by_if`)]),
    N.rule(`${p}c`, [N.tcp.dport(N.setRef(`${p}ports`)), N.accept()]),
    ...(extraChain ? [N.rule(`${p}x`, [N.udp.dport(53), N.drop()])] : []),
  ];
}

/** The objects of one prefix in the shared table, with handles (rules: of its chains). */
function scopeListing(ns: string, p: string): string {
  const doc = JSON.parse(nsSh(ns, 'nft', ['-j', 'list', 'table', T.family, T.name]).stdout) as { nftables: Array<Record<string, { name?: string; chain?: string }>> };
  return doc.nftables.filter((o) => !('table' in o) && Object.values(o).some((v) => (v.chain ?? v.name ?? '').startsWith(p))).map((o) => JSON.stringify(o)).join('\n');
}

test('scoped mode: owners of one table change, replace and delete only their own objects, each guarded by its own stamp', async () => {
  const a = addNs('sync-s-');
  const ex = N.openLibnftables({ netns: a });
  const A = 'ra_'; const B = 'rb_';
  try {
    // a name outside the scope is a defect of the caller
    let stray = '';
    try { await N.syncTable(ex, T, [N.chain('c')], undefined, { scope: { prefix: A } }); } catch (e) { stray = String(e); }
    assert.match(stray, /outside the scope/);
    const a1 = scoped(A, [1, 2]);
    const b1 = scoped(B, [7]);
    assert.is((await N.syncTable(ex, T, a1, undefined, { scope: { prefix: A } })).mode, 'replace', 'A created (table added)');
    assert.is((await N.syncTable(ex, T, b1, undefined, { scope: { prefix: B } })).mode, 'replace', 'B created beside A');
    assert.ok(scopeListing(a, A).includes(`${A}contents_stamp`) && scopeListing(a, B).includes(`${B}contents_stamp`), 'one stamp each');
    const bBefore = scopeListing(a, B);
    // A changes in place: B untouched (same handles)
    const a2 = scoped(A, [1, 3], true);
    const r2 = await N.syncTable(ex, T, a2, a1, { scope: { prefix: A } });
    assert.is(r2.mode, 'diff');
    assert.is(scopeListing(a, B), bBefore, 'B untouched by A\'s change');
    // A's objects hold other contents than its stamp says (a rule added by hand, its stamp gone: without the
    // generation reader only the fingerprint guards): A is replaced — its objects only
    nsSh(a, 'nft', ['add', 'rule', T.family, T.name, `${A}c`, 'tcp', 'dport', '9', 'drop']);
    nsSh(a, 'nft', ['flush', 'set', T.family, T.name, `${A}contents_stamp`]);
    const r3 = await N.syncTable(ex, T, a1, a2, { scope: { prefix: A } });
    assert.is(r3.mode, 'replace');
    assert.not.ok(scopeListing(a, A).includes('"x"') || scopeListing(a, A).includes(`${A}x`), 'A\'s stale chain deleted');
    assert.not.ok(/"right":\s*9\b/.test(scopeListing(a, A)), 'the hand-made rule is gone');
    assert.is(scopeListing(a, B), bBefore, 'B untouched by A\'s replacement');
    // the table is still there for both; B's next in-place change works (its stamp was not disturbed)
    const r4 = await N.syncTable(ex, T, scoped(B, [7, 8]), b1, { scope: { prefix: B } });
    assert.is(r4.mode, 'diff', `${r4.reason ?? ''}`);
    // the scope's deletion removes A's objects only
    await ex.apply(await N.scopeDeletion(ex, T, A));
    assert.is(scopeListing(a, A), '');
    assert.ok(scopeListing(a, B).includes(`${B}ports`));
    assert.ok(nsTables(a).includes(`${T.family} ${T.name}`), 'the table stays');
  } finally {
    await ex.close();
    delNs(a);
  }
});

/** The elements of a set as listed: key text → seconds left (`expires`; undefined for an element that stays). */
function heldElements(ns: string, table: N.TableRef, name: string): Map<string, number | undefined> {
  const doc = JSON.parse(nsSh(ns, 'nft', ['-j', 'list', 'set', table.family, table.name, name]).stdout) as { nftables: Array<{ set?: { elem?: unknown[] } }> };
  const out = new Map<string, number | undefined>();
  for (const e of doc.nftables.find((o) => o.set)?.set?.elem ?? []) {
    const w = e && typeof e === 'object' && 'elem' in e ? (e as { elem: { val: unknown; expires?: number } }).elem : { val: e };
    out.set(JSON.stringify(w.val), (w as { expires?: number }).expires);
  }
  return out;
}

test('carried sets: a table replaced whole keeps what the kernel put in them, with the lifetime each element had left; a set whose type changed starts empty; scoped mode too', async () => {
  const a = addNs('sync-c-');
  const ex = N.openLibnftables({ netns: a });
  const g = N.NftGenerationReader.open(a);
  const want = (guardType: N.KeyType[] = ['ipv4_addr', 'inet_service'], p = ''): N.NftObject[] => [
    N.set(`${p}guards`, guardType, { flags: ['timeout'], timeout: 600, size: 8 }),
    N.set(`${p}learned`, ['ether_addr', 'ifname'], { flags: ['timeout'], timeout: 60 }),
    N.set(`${p}plain`, 'ipv4_addr'),
    N.baseChain(`${p}fwd`, { type: 'filter', hook: 'forward', priority: N.ROUTER_PRIORITIES.filter }),
    N.rule(`${p}fwd`, [N.lookup(N.concatKey(N.F.ipSaddr, N.F.tcpSport), `${p}guards`), N.drop()]),
  ];
  const opts = { generation: () => g.read(), carry: ['guards', 'learned'] };
  try {
    await N.syncTable(ex, T, want(), undefined, opts);
    // what the packet path or the caller put in outside the contents; and an element of a set not carried
    nsSh(a, 'nft', ['add', 'element', 'inet', T.name, 'guards', '{ 10.0.0.1 . 22, 10.0.0.2 . 51820 timeout 20s }']);
    nsSh(a, 'nft', ['add', 'element', 'inet', T.name, 'learned', '{ 02:00:00:00:00:01 . "vnet7" }']);
    nsSh(a, 'nft', ['add', 'element', 'inet', T.name, 'plain', '{ 192.0.2.9 }']);
    await new Promise((r) => setTimeout(r, 2100));
    // someone else commits in the namespace: the next sync replaces the table whole
    nsSh(a, 'nft', ['add', 'table', 'ip', 'other_t']);
    const r = await N.syncTable(ex, T, want(), want(), opts);
    assert.is(r.mode, 'replace');
    assert.is(r.reason, 'changed-outside');
    const guards = heldElements(a, T, 'guards');
    assert.equal([...guards.keys()].sort(), ['{"concat":["10.0.0.1",22]}', '{"concat":["10.0.0.2",51820]}'], 'both guards carried');
    const left1 = guards.get('{"concat":["10.0.0.1",22]}')!;
    const left2 = guards.get('{"concat":["10.0.0.2",51820]}')!;
    assert.ok(left1 >= 590 && left1 <= 598, `the default lifetime, less the time it had run (${left1} s left)`);
    assert.ok(left2 >= 10 && left2 <= 18, `its own lifetime, less the time it had run (${left2} s left)`);
    assert.equal([...heldElements(a, T, 'learned').keys()], ['{"concat":["02:00:00:00:00:01","vnet7"]}'], 'a MAC . port carried');
    assert.is(heldElements(a, T, 'plain').size, 0, 'a set not carried starts as its contents say');
    assert.is((await N.syncTable(ex, T, want(), want(), opts)).mode, 'unchanged', 'the carried elements are not part of the contents');
    // the key type changed (a new version's compile): those guards cannot be typed so; they are not carried
    nsSh(a, 'nft', ['delete', 'table', 'ip', 'other_t']);
    const changed = want(['ipv4_addr', 'inet_service', 'ipv4_addr']).map((o) => (o.kind === 'rule' ? N.rule('fwd', [N.lookup(N.concatKey(N.F.ipSaddr, N.F.tcpSport, N.F.ipDaddr), 'guards'), N.drop()]) : o));
    const r2 = await N.syncTable(ex, T, changed, want(), opts);
    assert.is(r2.mode, 'replace');
    assert.is(heldElements(a, T, 'guards').size, 0);
    assert.is(heldElements(a, T, 'learned').size, 1, 'the other set is still carried');
    // scoped mode: an owner's replacement carries its own sets and leaves another owner's alone
    const S = 'rs_';
    const sw = want(undefined, S);
    const sOpts = { scope: { prefix: S }, carry: [`${S}guards`] };
    await N.syncTable(ex, T, sw, undefined, sOpts);
    nsSh(a, 'nft', ['add', 'element', 'inet', T.name, `${S}guards`, '{ 10.9.0.1 . 443 }']);
    nsSh(a, 'nft', ['flush', 'set', T.family, T.name, `${S}contents_stamp`]);
    const r3 = await N.syncTable(ex, T, sw, sw, sOpts);
    assert.is(r3.mode, 'replace');
    assert.equal([...heldElements(a, T, `${S}guards`).keys()], ['{"concat":["10.9.0.1",443]}']);
    assert.is(heldElements(a, T, 'learned').size, 1, 'the main owner\'s set untouched');
  } finally {
    g.close();
    await ex.close();
    delNs(a);
  }
});

test.run();
