/**
 * Executors against the real kernel (inside the test sandbox): libnftables (FFI) and the nft CLI
 * produce the same ruleset, transactions are atomic, errors name the failing command, whole-table
 * replacement is idempotent, element updates and set listings work, contexts bind to their namespace.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import * as N from '../../lib/nft/index.js';
import { openNftCli } from '../../lib/nft/nft-cli.js';
import { deleteNetns } from '../../lib/netns/namespaces.js';
import { addNs, delNs, nsSh, nsTables, sh } from './helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { rejected } from '../helpers/expect.js';

requireSandbox();

const T: N.TableRef = { family: 'inet', name: 'nftt_kernel' };

/** A transaction using every kind of object and most of the DSL. */
function representative(): N.Transaction {
  const pfKey = (): N.Expr => N.concatKey(N.F.ipDaddr, N.F.l4proto, N.F.thDport);
  return N.replaceTable(T, [
    N.baseChain('raw_pre', { type: 'filter', hook: 'prerouting', priority: N.ROUTER_PRIORITIES.raw }),
    N.baseChain('nat_pre', { type: 'nat', hook: 'prerouting', priority: N.ROUTER_PRIORITIES.dstnat }),
    N.baseChain('nat_out', { type: 'nat', hook: 'output', priority: { base: 'dstnat', offset: -10 } }),
    N.baseChain('nat_post', { type: 'nat', hook: 'postrouting', priority: N.ROUTER_PRIORITIES.srcnat }),
    N.baseChain('fwd', { type: 'filter', hook: 'forward', priority: N.ROUTER_PRIORITIES.filter, policy: 'drop' }),
    N.baseChain('inp', { type: 'filter', hook: 'input', priority: { base: 'filter', offset: 0 }, policy: 'accept' }),
    N.chain('from_guest'),
    N.set('guest_nets', 'ipv4_addr', { flags: ['interval'], elements: [{ key: '10.1.0.0/16' }, { key: '10.2.0.1-10.2.0.99', comment: 'dhcp pool' }] }),
    N.set('guest_nets6', 'ipv6_addr', { flags: ['interval'], elements: [{ key: 'fd00:1::/64' }] }),
    N.set('public_ifs', 'ifname', { elements: [{ key: N.ifname('eth0') }, { key: N.ifname('pub1') }] }),
    N.set('open_ports', 'inet_service', { elements: [{ key: 22 }, { key: 443 }] }),
    N.map('pf_addr', ['ipv4_addr', 'inet_proto', 'inet_service'], 'ipv4_addr', {
      elements: [{ key: ['203.0.113.10', N.symbol('tcp'), 80], value: '10.1.1.5' }, { key: ['203.0.113.10', N.symbol('udp'), 53], value: '10.1.1.6', comment: 'dns' }],
    }),
    N.map('pf_port', ['ipv4_addr', 'inet_proto', 'inet_service'], 'inet_service', {
      elements: [{ key: ['203.0.113.10', N.symbol('tcp'), 80], value: 8080 }, { key: ['203.0.113.10', N.symbol('udp'), 53], value: 53 }],
    }),
    N.map('snat_src', 'ipv4_addr', 'ipv4_addr', { flags: ['interval'], elements: [{ key: '10.1.0.0/16', value: '203.0.113.10' }] }),
    N.verdictMap('by_iif', 'ifname', { elements: [{ key: N.ifname('guest0'), value: N.jump('from_guest') }, { key: N.ifname('bad0'), value: N.drop() }] }),
    N.namedCounter('fwd_accepted', { comment: 'accepted forwards' }),
    N.rule('raw_pre', [N.ip.saddr('127.0.0.0/8'), N.meta.iifname('lo', '!='), N.drop()], { comment: 'martians' }),
    N.rule('nat_pre', [N.meta.l4proto(['tcp', 'udp']), N.dnat({ addr: N.mapLookup(pfKey(), 'pf_addr'), port: N.mapLookup(pfKey(), 'pf_port') })], { comment: 'port forwards' }),
    N.rule('nat_pre', [N.ip.daddr('203.0.113.20'), N.tcp.dport(N.portRange(1000, 1999)), N.dnat({ addr: '10.1.1.7', port: [2000, 2999] })]),
    N.rule('nat_out', [N.ip.daddr('203.0.113.21'), N.dnat({ addr: '10.1.1.8' })]),
    N.rule('nat_post', [N.meta.oifname(N.setRef('public_ifs')), N.snat({ addr: N.mapLookup(N.F.ipSaddr, 'snat_src') })], { comment: 'source NAT' }),
    N.rule('nat_post', [N.meta.oifname('pub2'), N.ip.saddr('10.3.0.0/16'), N.meta.l4proto(['tcp', 'udp']), N.snat({ addr: '203.0.113.30-203.0.113.31', port: [1024, 65535] })]),
    N.rule('nat_post', [N.meta.oifname('pub3'), N.masquerade()]),
    N.rule('fwd', [N.ct.state('established', 'related'), N.counter('fwd_accepted'), N.accept()]),
    N.rule('fwd', [N.ct.state('invalid'), N.drop()]),
    N.rule('fwd', [N.vmap(N.F.iifname, 'by_iif')]),
    N.rule('fwd', [N.ip6.saddr(N.setRef('guest_nets6')), N.ip6.daddr('2001:db8::/32', '!='), N.accept()]),
    N.rule('from_guest', [N.ip.saddr(N.setRef('guest_nets'), '!='), N.log({ prefix: 'spoof: ', level: 'warn' }), N.drop()]),
    N.rule('from_guest', [N.tcp.dport([22, N.portRange(8000, 8080)]), N.limit({ rate: 10, per: 'second', burst: 20 }), N.accept()]),
    N.rule('from_guest', [N.udp.dport(N.setRef('open_ports')), N.counter(), N.accept()]),
    N.rule('from_guest', [N.icmp.type('echo-request'), N.accept()]),
    N.rule('from_guest', [N.meta.nfproto('ipv6'), N.icmpv6.type(['nd-neighbor-solicit', 'echo-request']), N.accept()]),
    N.rule('from_guest', [N.reject({ icmpx: 'admin-prohibited' })]),
    N.rule('inp', [N.tcp.dport(22), N.ct.state('new'), N.reject({ tcpReset: true })]),
    N.rule('inp', [N.ip.saddr(['10.9.0.1', '10.9.0.2']), N.goto('from_guest')]),
    N.rule('inp', [N.icmp.type('echo-request'), N.icmp.code(0), N.ret()]),
  ]);
}

function rawList(ns: string): unknown {
  const out = nsSh(ns, 'nft', ['-j', 'list', 'table', T.family, T.name]).stdout;
  const doc = JSON.parse(out) as { nftables: unknown[] };
  return N.stripHandles(doc.nftables.filter((i) => !('metainfo' in (i as object))));
}

const expectNftError = (p: Promise<unknown>, code: N.NftErrorCode): Promise<N.NftError> => rejected(p, N.NftError, { code });

test('libnftables and nft CLI produce the same ruleset', async () => {
  const a = addNs('ffi');
  const b = addNs('cli');
  const ffi = N.openLibnftables({ netns: a });
  const cli = openNftCli({ netns: b });
  try {
    const tx = representative();
    await ffi.apply(tx);
    await cli.apply(tx);
    const la = rawList(a);
    const lb = rawList(b);
    assert.equal(la, lb, 'nft -j list table outputs without handles');
    assert.ok(JSON.stringify(la).includes('"dhcp pool"'));
    // the executors' own listings agree too
    assert.equal(N.stripHandles(await ffi.list(T)), N.stripHandles(await cli.list(T)));
    // and agree with the fake on names, comments and elements
    const fake = N.openFake();
    await fake.apply(tx);
    const names = (l: N.ListedTable): unknown => ({
      chains: l.chains.map((c) => [c.name, c.type, c.hook, c.prio, c.policy]),
      comments: l.rules.map((r) => [r.chain, r.comment]),
      sets: [...l.sets, ...l.maps].map((s) => [s.name, N.sortedElements(s.elem ?? [])]),
      counters: l.counters.map((c) => [c.name, c.comment]),
    });
    assert.equal(names(N.stripHandles(await fake.list(T))), names(N.stripHandles(await ffi.list(T))));
  } finally {
    await ffi.close();
    await cli.close();
    delNs(a);
    delNs(b);
  }
});

for (const kind of ['libnftables', 'nft-cli'] as const) {
  const open = (ns: string): N.NftExecutor => (kind === 'libnftables' ? N.openLibnftables({ netns: ns }) : openNftCli({ netns: ns }));

  test(`${kind}: a bad last rule applies nothing; the error names it`, async () => {
    const ns = addNs('atom');
    const ex = open(ns);
    try {
      // on a namespace without the table: nothing may appear
      const first = new N.Transaction(T).add(N.table(), N.chain('a'), N.rule('a', [N.accept()]), N.rule('a', [N.jump('missing_chain')]));
      const e = await expectNftError(ex.apply(first), 'ENOENT');
      assert.is(e.index, 3);
      assert.equal(e.command, first.commands()[3]);
      assert.is(e.executor, kind);
      assert.match(e.stderr, /No such file or directory/);
      assert.match(e.message, /#3/);
      assert.equal(nsTables(ns), [], 'no table was created');
      // on an existing table: unchanged
      await ex.apply(representative());
      const before = rawList(ns);
      const bad = new N.Transaction(T)
        .flush(N.table())
        .add(N.element('guest_nets', '192.168.0.0/16'))
        .delete(N.chain('from_guest'))
        .add(N.chain('x'))
        .add(N.rule('x', [N.jump('nowhere')]));
      const e2 = await expectNftError(ex.apply(bad), 'ENOENT');
      assert.is(e2.index, 2, 'from_guest is still referenced (fwd vmap, inp goto): the delete fails first');
      assert.equal(rawList(ns), before, 'ruleset unchanged');
    } finally {
      await ex.close();
      delNs(ns);
    }
  });

  test(`${kind}: error location in the middle, parse errors, check()`, async () => {
    const ns = addNs('loc');
    const ex = open(ns);
    try {
      await ex.apply(representative());
      const mid = new N.Transaction(T)
        .add(N.element('open_ports', 80))
        .add(N.element('pf_addr', ['203.0.113.10', N.symbol('tcp'), 80], '10.1.1.99'))
        .add(N.element('open_ports', 81));
      const e = await expectNftError(ex.apply(mid), 'EEXIST');
      assert.is(e.index, 1, 'the re-pointed map entry without delete');
      const parse = new N.Transaction(T)
        .add(N.chain('p1'))
        .add(N.rule('p1', [{ frob: null } as unknown as N.Stmt]))
        .add(N.chain('p2'));
      const pe = await expectNftError(ex.apply(parse), 'E_NFT_PARSE');
      assert.is(pe.index, 1);
      assert.match(pe.stderr, /frob/);
      const busy = new N.Transaction(T).add(N.chain('ok1')).delete(N.set('open_ports', 'inet_service'));
      const be = await expectNftError(ex.apply(busy), 'EBUSY');
      assert.is(be.index, 1);
      // a dry run checks without applying
      const good = new N.Transaction(T).add(N.chain('dry_only'));
      await ex.check(good);
      const ce = await expectNftError(ex.check(mid), 'EEXIST');
      assert.is(ce.index, 1);
      assert.not.ok((await ex.list(T)).chains.some((c) => c.name === 'dry_only' || c.name === 'p1' || c.name === 'ok1'));
      await expectNftError(ex.list({ family: 'ip', name: 'absent' }), 'ENOENT');
    } finally {
      await ex.close();
      delNs(ns);
    }
  });

  test(`${kind}: whole-table replacement is idempotent`, async () => {
    const ns = addNs('idem');
    const ex = open(ns);
    try {
      await ex.apply(representative());
      const once = rawList(ns);
      await ex.apply(new N.Transaction(T).add(N.chain('stray'), N.element('open_ports', 8443)));
      await ex.apply(representative());
      assert.equal(rawList(ns), once, 'stray objects gone, same ruleset');
      await ex.apply(representative());
      assert.equal(rawList(ns), once);
      // someone else's table is never touched
      nsSh(ns, 'nft', ['add', 'table', 'ip', 'someone_else']);
      await ex.apply(representative());
      assert.equal(nsTables(ns).sort(), ['inet nftt_kernel', 'ip someone_else']);
    } finally {
      await ex.close();
      delNs(ns);
    }
  });

  test(`${kind}: element add/delete on sets and maps, listSet`, async () => {
    const ns = addNs('elem');
    const ex = open(ns);
    try {
      await ex.apply(representative());
      await ex.apply(N.updateElements(T, 'open_ports', { add: [{ key: 8443, comment: 'alt https' }], delete: [22] }));
      const s = await ex.listSet(T, 'open_ports');
      assert.is(s.kind, 'set');
      assert.equal(s.info.type, 'inet_service');
      assert.equal(N.sortedElements(s.elements), N.sortedElements([443, { elem: { val: 8443, comment: 'alt https' } }]));
      await ex.apply(N.updateElements(T, 'guest_nets', { add: [{ key: '192.168.0.0/16' }], delete: ['10.1.0.0/16'] }));
      assert.equal(N.sortedElements((await ex.listSet(T, 'guest_nets', 'set')).elements), N.sortedElements([
        { elem: { val: { range: ['10.2.0.1', '10.2.0.99'] }, comment: 'dhcp pool' } }, { prefix: { addr: '192.168.0.0', len: 16 } },
      ]));
      // re-point a map entry: delete + add in one transaction
      const key: N.ValueInput = ['203.0.113.10', N.symbol('tcp'), 80];
      await ex.apply(N.updateElements(T, 'pf_addr', { delete: [key], add: [{ key, value: '10.1.1.50' }] }));
      const m = await ex.listSet(T, 'pf_addr');
      assert.is(m.kind, 'map');
      assert.ok(m.elements.some((e) => JSON.stringify(e) === JSON.stringify([{ concat: ['203.0.113.10', 'tcp', 80] }, '10.1.1.50'])), JSON.stringify(m.elements));
      // verdict map
      await ex.apply(new N.Transaction(T).add(N.element('by_iif', N.ifname('guest1'), N.jump('from_guest'))));
      const v = await ex.listSet(T, 'by_iif', 'map');
      assert.equal((v.info as N.JsonMap).map, 'verdict');
      assert.is(v.elements.length, 3);
      await ex.apply(new N.Transaction(T).delete(N.element('by_iif', N.ifname('guest1'))));
      assert.is((await ex.listSet(T, 'by_iif')).elements.length, 2);
      // flush a map
      await ex.apply(new N.Transaction(T).flush(N.map('pf_port', ['ipv4_addr', 'inet_proto', 'inet_service'], 'inet_service')));
      assert.equal((await ex.listSet(T, 'pf_port')).elements, []);
      // terse listing leaves elements out
      const terse = await ex.list(T, { terse: true });
      assert.ok(terse.sets.every((x) => x.elem === undefined));
      assert.ok((await ex.list(T)).sets.some((x) => x.elem !== undefined));
      await expectNftError(ex.listSet(T, 'no_such_set'), 'ENOENT');
      await expectNftError(ex.listSet(T, 'open_ports', 'map'), 'ENOENT');
    } finally {
      await ex.close();
      delNs(ns);
    }
  });
}

test('libnftables: the context stays bound to the namespace it was created in', async () => {
  const ns = addNs('bind');
  const ex = N.openLibnftables({ netns: ns });
  const here = N.openLibnftables();
  const mine: N.TableRef = { family: 'ip', name: `nftt_bind_${process.pid}` };
  try {
    await ex.apply(new N.Transaction(mine).add(N.table(), N.chain('c')));
    assert.ok(nsTables(ns).includes(`ip ${mine.name}`));
    const local = sh('nft', ['-j', 'list', 'tables']).stdout;
    assert.not.ok(local.includes(mine.name), 'not in the namespace of the test process');
    await expectNftError(here.list(mine), 'ENOENT');
    await ex.apply(new N.Transaction(mine).delete(N.table()));
  } finally {
    await ex.close();
    await here.close();
    delNs(ns);
  }
});

test('libnftables: close() and deleteNetns free the context; later calls fail typed', async () => {
  const ns = addNs('close');
  const ex = N.openLibnftables({ netns: ns });
  try {
    await ex.apply(new N.Transaction(T).add(N.table()));
    // lib/netns runs our before-delete hook: the context is freed before the namespace goes
    deleteNetns(ns);
    await expectNftError(ex.apply(new N.Transaction(T).add(N.chain('x'))), 'E_NFT_EXECUTOR');
    await ex.close();
    const ex2 = N.openLibnftables();
    await ex2.close();
    await ex2.close(); // idempotent
    await expectNftError(ex2.list(T), 'E_NFT_EXECUTOR');
  } finally {
    delNs(ns);
  }
});

test('libnftables: the context\'s socket is close-on-exec — a child started through Node afterwards does not hold it', async () => {
  const ns = addNs('cloexec');
  const sockets = (): Map<string, number> => {
    const m = new Map<string, number>();
    for (const fd of readdirSync('/proc/self/fd')) {
      try {
        const t = readlinkSync(`/proc/self/fd/${fd}`);
        if (t.startsWith('socket:')) m.set(t, Number(fd));
      } catch { /* the listing's own descriptor */ }
    }
    return m;
  };
  try {
    const before = sockets();
    const ex = N.openLibnftables({ netns: ns });
    try {
      const opened = [...sockets()].filter(([t]) => !before.has(t));
      assert.is(opened.length, 1, 'the context holds one socket of its own');
      const [[socket, fd]] = opened;
      // what a child holds, read by the child itself (libuv's spawn closes nothing: only close-on-exec keeps a
      // descriptor out of it)
      const childFds = (extra: number[]): string => spawnSync('sh', ['-c', 'for f in /proc/$$/fd/*; do readlink "$f"; done'], {
        encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe', ...extra],
      }).stdout;
      assert.ok(childFds([fd]).includes(socket), 'positive control: the socket handed over on purpose is seen in the child');
      assert.not.ok(childFds([]).includes(socket), 'the child does not inherit the context\'s socket');
      await ex.apply(new N.Transaction(T).add(N.table()));
      assert.ok(nsTables(ns).includes(`inet ${T.name}`), 'the context still works');
    } finally {
      await ex.close();
    }
  } finally {
    delNs(ns);
  }
});

test('libnftables: sharedLibnftables keeps one context per namespace until the namespace goes', async () => {
  const ns = addNs('shared');
  try {
    const a = N.sharedLibnftables(ns);
    assert.is(N.sharedLibnftables(ns), a, 'same executor for the same namespace');
    assert.is.not(N.sharedLibnftables(), a, 'another one for the current namespace');
    await a.apply(new N.Transaction(T).add(N.table()));
    deleteNetns(ns); // frees the shared context through the before-delete hook
    await expectNftError(a.list(T), 'E_NFT_EXECUTOR');
    const ns2 = addNs('shared');
    try {
      const b = N.sharedLibnftables(ns2);
      await b.apply(new N.Transaction(T).add(N.table()));
      await b.close();
      assert.is.not(N.sharedLibnftables(ns2), b, 'a closed shared executor is replaced');
      await N.sharedLibnftables(ns2).close();
    } finally {
      delNs(ns2);
    }
  } finally {
    delNs(ns);
    await N.sharedLibnftables().close();
  }
});

test('libnftables: large batches run on the worker thread and keep the event loop free', async () => {
  const ns = addNs('big');
  const ex = N.openLibnftables({ netns: ns, asyncThreshold: 1024 });
  try {
    const objs: N.NftObject[] = [N.chain('c')];
    for (let i = 0; i < 5000; i++) objs.push(N.rule('c', [N.ip.saddr(`10.${(i >> 8) & 255}.${i & 255}.1`), N.tcp.dport(1 + (i % 60000)), N.accept()]));
    const tx = N.replaceTable(T, objs);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = performance.now();
    await ex.apply(tx);
    const ms = performance.now() - t0;
    clearInterval(timer);
    const l = await ex.list(T);
    assert.is(l.rules.length, 5000);
    // the loop kept ticking while the worker applied the batch (a sync call would give 0-1 ticks)
    if (process.env.NFTT_VERBOSE) console.log(`ticks ${ticks} in ${ms.toFixed(1)} ms`);
    assert.ok(ticks >= 2 || ms < 5, `ticks ${ticks} in ${ms.toFixed(1)} ms`);
  } finally {
    await ex.close();
    delNs(ns);
  }
});

test.run();
