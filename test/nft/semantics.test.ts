/**
 * The fake must behave like the kernel: every scenario runs step by step against the in-memory fake
 * and against libnftables in a fresh namespace; each step must succeed or fail the same way (code and
 * failing command index), and the resulting tables must list the same names, comments and elements.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as N from '../../lib/nft/index.js';
import { addNs, delNs } from './helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();

const T: N.TableRef = { family: 'inet', name: 'nftt_sem' };
const tx = (): N.Transaction => new N.Transaction(T);

function base(): N.Transaction {
  return N.replaceTable(T, [
    N.baseChain('fwd', { type: 'filter', hook: 'forward', priority: N.ROUTER_PRIORITIES.filter, policy: 'drop' }),
    N.baseChain('pre', { type: 'nat', hook: 'prerouting', priority: N.ROUTER_PRIORITIES.dstnat }),
    N.chain('c1'),
    N.set('nets', 'ipv4_addr', { flags: ['interval'], elements: [{ key: '10.0.0.0/8' }] }),
    N.set('ports', 'inet_service', { elements: [{ key: 22 }, { key: 80, comment: 'web' }] }),
    N.set('ifs', 'ifname', { elements: [{ key: N.ifname('eth0') }] }),
    N.map('fwd_addr', ['ipv4_addr', 'inet_service'], 'ipv4_addr', { elements: [{ key: ['203.0.113.1', 80], value: '10.1.1.5' }] }),
    N.map('fwd_port', ['ipv4_addr', 'inet_service'], 'inet_service', { elements: [{ key: ['203.0.113.1', 80], value: 8080 }] }),
    N.verdictMap('vm', 'ipv4_addr'),
    N.namedCounter('cnt'),
    N.rule('fwd', [N.ct.state('established', 'related'), N.counter('cnt'), N.accept()], { comment: 'established' }),
    N.rule('fwd', [N.ip.saddr(N.setRef('nets')), N.jump('c1')]),
    N.rule('fwd', [N.vmap(N.F.ipDaddr, 'vm')]),
    N.rule('c1', [N.tcp.dport(N.setRef('ports')), N.meta.iifname(N.setRef('ifs')), N.accept()]),
    N.rule('pre', [N.dnat({
      addr: N.mapLookup(N.concatKey(N.F.ipDaddr, N.F.tcpDport), 'fwd_addr'),
      port: N.mapLookup(N.concatKey(N.F.ipDaddr, N.F.tcpDport), 'fwd_port'),
    })], { comment: 'port forwards' }),
  ]);
}

/** Each scenario: steps applied in order to a table-less namespace. */
const scenarios: Record<string, Array<() => N.Transaction>> = {
  'missing table': [() => tx().add(N.chain('c'))],
  'missing chain / set / counter / jump target': [
    base,
    () => tx().add(N.rule('nochain', [N.accept()])),
    () => tx().add(N.element('noset', '1.1.1.1')),
    () => tx().add(N.rule('c1', [N.ip.saddr(N.setRef('noset')), N.accept()])),
    () => tx().add(N.rule('c1', [N.counter('nocounter')])),
    () => tx().add(N.rule('c1', [N.jump('nochain')])),
    () => tx().add(N.element('vm', '1.1.1.1', N.jump('nochain'))),
  ],
  'delete / flush missing': [
    base,
    () => tx().delete(N.chain('nochain')),
    () => tx().delete(N.set('noset', 'ipv4_addr')),
    () => tx().delete(N.rule('c1', [], { handle: 9999 })),
    () => tx().replace(N.rule('c1', [N.drop()], { handle: 9999 })),
    () => tx().delete(N.element('ports', 443)),
    () => tx().delete(N.element('nets', '172.16.0.0/12')),
    () => tx().delete(N.element('fwd_addr', ['203.0.113.9', 80])),
    () => new N.Transaction({ family: 'ip', name: 'nftt_nope' }).delete(N.table()),
    () => tx().flush(N.chain('nochain')),
    () => tx().flush(N.set('noset', 'ipv4_addr')),
  ],
  'create existing / add conflicting': [
    base,
    () => tx().add(N.table(), N.chain('c1'), N.namedCounter('cnt'), N.element('ports', 22), N.element('nets', '10.0.0.0/8')),
    () => tx().create(N.table()),
    () => tx().create(N.chain('c1')),
    () => tx().create(N.set('ports', 'inet_service')),
    () => tx().create(N.element('ports', 22)),
    () => tx().create(N.namedCounter('cnt')),
    () => tx().add(N.set('ports', 'ipv4_addr')),
    () => tx().add(N.element('fwd_addr', ['203.0.113.1', 80], '10.1.1.6')),
    () => tx().add(N.element('fwd_addr', ['203.0.113.1', 80], '10.1.1.5')),
    () => N.updateElements(T, 'fwd_addr', { delete: [['203.0.113.1', 80]], add: [{ key: ['203.0.113.1', 80], value: '10.1.1.6' }] }),
  ],
  'busy and unsupported chain changes': [
    base,
    () => tx().delete(N.chain('c1')),
    () => tx().delete(N.set('nets', 'ipv4_addr')),
    () => tx().delete(N.namedCounter('cnt')),
    () => tx().add(N.rule('c1', [N.jump('fwd')])),
    () => tx().add(N.baseChain('c1', { type: 'filter', hook: 'input', priority: 0 })),
    () => tx().add(N.baseChain('fwd', { type: 'filter', hook: 'forward', priority: 5 })),
    () => tx().add(N.baseChain('fwd', { type: 'filter', hook: 'forward', priority: N.ROUTER_PRIORITIES.filter, policy: 'accept' })),
    () => tx().add(N.chain('fwd')),
    () => tx().add(N.chain('c2'), N.element('vm', '1.1.1.1', N.jump('c2'))),
    () => tx().delete(N.chain('c2')),
    () => tx().delete(N.element('vm', '1.1.1.1')).delete(N.chain('c2')),
    // a chain's own rules go with it (and release what they referenced)
    () => tx().delete(N.chain('fwd')),
    () => tx().delete(N.chain('c1')),
    () => tx().delete(N.set('nets', 'ipv4_addr')),
  ],
  'intervals': [
    base,
    () => tx().add(N.elements('nets', [{ key: '172.16.0.0/12' }, { key: '192.168.1.0-192.168.1.255' }, { key: '198.51.100.7', comment: 'one' }])),
    () => tx().add(N.element('nets', '10.1.0.0/16')),
    () => tx().add(N.elements('nets', [{ key: '11.0.0.0/16' }, { key: '11.0.0.0/8' }])),
    () => tx().delete(N.element('nets', '10.1.0.0/16')),
    () => tx().delete(N.element('nets', '192.168.1.0/24')),
    () => tx().add(N.element('nets', '11.0.0.0/8')),
  ],
  'atomicity': [
    base,
    () => tx().add(N.chain('new1')).add(N.rule('c1', [N.drop()])).add(N.element('nets', '172.16.0.0/12')).flush(N.table()).add(N.rule('c1', [N.jump('missing')])),
    () => tx().add(N.chain('a')).add(N.chain('b')).add(N.rule('a', [N.jump('b')])).delete(N.chain('b')),
  ],
  'replacement and flush': [
    base,
    () => tx().add(N.chain('stray'), N.element('nets', '192.168.0.0/16')),
    base,
    base,
    () => tx().flush(N.table()),
    () => tx().flush(N.set('ports', 'inet_service')),
    () => tx().delete(N.table()),
  ],
  'rule positions': [
    () => tx().add(N.table(), N.chain('c'), N.rule('c', [N.counter()], { comment: 'a' }), N.rule('c', [N.counter()], { comment: 'c' })),
    () => tx().insert(N.rule('c', [N.counter()], { comment: '0' })),
    () => tx().add(N.rule('c', [N.counter()], { index: 0, comment: 'i' })),
    () => tx().insert(N.rule('c', [N.counter()], { index: 2, comment: 'j' })),
    () => tx().add(N.rule('c', [N.counter()], { index: 99 })),
  ],
};

interface Outcome { ok: boolean; code?: string; index?: number }

async function outcome(p: Promise<void>): Promise<Outcome> {
  try {
    await p;
    return { ok: true };
  } catch (e) {
    if (!(e instanceof N.NftError)) throw e;
    return { ok: false, code: e.code, index: e.index };
  }
}

/** What both must agree on: names, chain specs, rule comments in order, sorted elements. */
function summary(l: N.ListedTable | undefined): unknown {
  if (!l) return null;
  const s = N.stripHandles(l);
  return {
    chains: s.chains.map((c) => [c.name, c.type, c.hook, c.prio, c.policy]),
    rules: s.rules.map((r) => [r.chain, r.comment ?? '']),
    sets: s.sets.map((x) => [x.name, x.type, x.flags ?? [], N.sortedElements(x.elem ?? [])]),
    maps: s.maps.map((x) => [x.name, x.type, x.map, N.sortedElements(x.elem ?? [])]),
    counters: s.counters.map((c) => c.name),
  };
}

async function listOrNull(ex: N.NftExecutor): Promise<N.ListedTable | undefined> {
  try {
    return await ex.list(T);
  } catch (e) {
    if (N.isNftNotFound(e)) return undefined;
    throw e;
  }
}

for (const [name, steps] of Object.entries(scenarios)) {
  test(`fake ≡ kernel: ${name}`, async () => {
    const ns = addNs('sem');
    const kernel = N.openLibnftables({ netns: ns });
    const fake = N.openFake();
    try {
      for (let i = 0; i < steps.length; i++) {
        const t = steps[i]();
        const k = await outcome(kernel.apply(t));
        const f = await outcome(fake.apply(t));
        assert.equal(f, k, `step ${i} (${t.commands().map((c) => JSON.stringify(c).slice(0, 90)).join(' ; ')})`);
        assert.equal(summary(await listOrNull(fake)), summary(await listOrNull(kernel)), `listing after step ${i}`);
      }
    } finally {
      await kernel.close();
      delNs(ns);
    }
  });
}

test.run();
