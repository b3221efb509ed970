/** Which conntrack entries a NAT change deletes, and which reverses it guards (pure: no kernel). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MIRROR_GUARDS_PER_CHANGE, carriedBy, commitMirrorGuards, conntrackFilters, mirrorGuard, outboundAddress, revivable, translatedFlow } from '../../lib/router/nat-flow-cleanup.js';
import { MIRROR_GUARDS, ROUTER_TABLE, routerObjects } from '../../lib/router/router-table.js';
import { syncTable } from '../../lib/nft/table-sync.js';
import { openFake } from '../../lib/nft/fake.js';
import { Transaction } from '../../lib/nft/transaction.js';
import { set } from '../../lib/nft/objects.js';
import type { NatPlan, PortForward } from '../../lib/router/router-table.js';
import type { ConntrackEntry } from '../../lib/nft/ctnetlink.js';

const plan = (staticNat: NatPlan['staticNat'], portForwards: PortForward[]): NatPlan => ({ publicIfs: ['eth1'], sourceNat: [{ cidr: '10.1.1.0/24', publicIp: '203.0.113.1' }], staticNat, portForwards });
const pf = (ip: string, proto: 'tcp' | 'udp', port: number, to: string, toPort = port): PortForward => ({ publicIp: ip, protocol: proto, publicPorts: [port, port], privateIp: to, privatePorts: [toPort, toPort] });
const SEEN_REPLY = 2;
/** A client's flow to pub:port, translated to guest:guestPort (or to the router itself when guest is pub). */
const flow = (proto: number, pub: string, port: number, guest: string, guestPort = port, status = SEEN_REPLY): ConntrackEntry => ({
  family: 'ipv4', status,
  orig: { src: '198.51.100.7', dst: pub, proto, srcPort: 40000, dstPort: port },
  reply: { src: guest, dst: '198.51.100.7', proto, srcPort: guestPort, dstPort: 40000 },
});

test('nothing changed: no filter', () => {
  const p = plan([{ publicIp: '203.0.113.5', privateIp: '10.1.1.5' }], [pf('203.0.113.1', 'udp', 51820, '10.1.1.10')]);
  assert.equal(conntrackFilters(p, p), []);
});

test('a removed forward: its flows, whatever their translation; an added UDP one: the untranslated flows to it; an added TCP one: none', () => {
  const was = plan([], [pf('203.0.113.1', 'udp', 51820, '10.1.1.10')]);
  const now = plan([], [pf('203.0.113.1', 'udp', 4500, '10.1.1.10'), pf('203.0.113.1', 'tcp', 22, '10.1.1.10')]);
  assert.equal(conntrackFilters(was, now), [
    { family: 'ipv4', proto: 'udp', origDst: '203.0.113.1', origDstPorts: [51820, 51820] },
    { family: 'ipv4', proto: 'udp', origDst: '203.0.113.1', origDstPorts: [4500, 4500], replySrc: '203.0.113.1' },
  ]);
});

test('static NAT: removed → inbound and outbound flows; added → untranslated UDP flows to the address; re-pointed → all of them', () => {
  const none = plan([], []);
  const a = plan([{ publicIp: '203.0.113.5', privateIp: '10.1.1.5' }], []);
  const b = plan([{ publicIp: '203.0.113.5', privateIp: '10.1.1.6' }], []);
  assert.equal(conntrackFilters(a, none), [
    { family: 'ipv4', origDst: '203.0.113.5' },
    { family: 'ipv4', origSrc: '10.1.1.5', replyDst: '203.0.113.5' },
  ]);
  assert.equal(conntrackFilters(none, a), [{ family: 'ipv4', proto: 'udp', origDst: '203.0.113.5', replySrc: '203.0.113.5' }]);
  assert.equal(conntrackFilters(a, b), [
    { family: 'ipv4', origDst: '203.0.113.5' },
    { family: 'ipv4', origSrc: '10.1.1.5', replyDst: '203.0.113.5' },
  ]);
});

test('a re-pointed mapping\'s new flows are carried by the new plan, not stranded; the old target\'s and the router\'s own are', () => {
  const now = plan([{ publicIp: '203.0.113.5', privateIp: '10.1.1.6' }], [pf('203.0.113.1', 'udp', 51820, '10.1.1.11'), { ...pf('203.0.113.1', 'tcp', 8000, '10.1.1.11'), publicPorts: [8000, 8010], privatePorts: [9000, 9010] }]);
  const carried = carriedBy(now);
  assert.ok(carried(flow(17, '203.0.113.1', 51820, '10.1.1.11')), 'the forward\'s new VM');
  assert.not.ok(carried(flow(17, '203.0.113.1', 51820, '10.1.1.10')), 'the forward\'s old VM');
  assert.ok(carried(flow(6, '203.0.113.1', 8005, '10.1.1.11', 9005)), 'a range, shifted');
  assert.ok(carried(flow(6, '203.0.113.1', 8000, '10.1.1.11', 9000)), 'a range\'s first port');
  assert.not.ok(carried(flow(6, '203.0.113.1', 8005, '10.1.1.11', 9006)), 'a range, another port');
  assert.ok(carried(flow(6, '203.0.113.5', 443, '10.1.1.6')), 'the static NAT\'s new VM');
  assert.not.ok(carried(flow(6, '203.0.113.5', 443, '10.1.1.5')), 'the static NAT\'s old VM');
  assert.not.ok(carried(flow(17, '203.0.113.1', 51820, '203.0.113.1')), 'the router\'s own (untranslated)');
});

test('revivable: only a restart that leaves with the removed mapping\'s address and port', () => {
  const out = outboundAddress(plan([{ publicIp: '203.0.113.5', privateIp: '10.1.1.5' }], []));
  assert.is(out('10.1.1.5'), '203.0.113.5', 'a static NAT guest leaves with its address');
  assert.is(out('10.1.1.10'), '203.0.113.1', 'others with the source NAT address');
  assert.is(out('10.9.9.9'), undefined, 'outside every source NAT CIDR: untranslated');
  assert.ok(revivable(flow(17, '203.0.113.1', 51820, '10.1.1.10'), out), 'equal ports on the source NAT address: UDP');
  assert.ok(revivable(flow(6, '203.0.113.1', 22, '10.1.1.10'), out), 'and TCP, answered');
  assert.not.ok(revivable(flow(6, '203.0.113.1', 22, '10.1.1.10', 22, 0), out), 'a TCP flow the guest never answered');
  assert.ok(revivable(flow(17, '203.0.113.1', 53, '10.1.1.10', 53, 0), out), 'a UDP flow not yet answered (a late answer would restart it)');
  assert.not.ok(revivable(flow(6, '203.0.113.1', 2222, '10.1.1.10', 22), out), 'ports differ');
  assert.not.ok(revivable(flow(6, '203.0.113.7', 22, '10.1.1.10'), out), 'a forward on another address');
  assert.not.ok(revivable(flow(6, '203.0.113.9', 443, '10.1.1.9'), outboundAddress(plan([], []))), 'a removed static NAT: the guest now leaves with the source NAT address');
  assert.ok(revivable(flow(6, '203.0.113.5', 443, '10.1.1.5'), out), 'its static NAT still there (re-added): the restart is its own flow again');
  assert.not.ok(revivable(flow(17, '203.0.113.1', 5060, '203.0.113.1'), out), 'the router\'s own');
  assert.not.ok(revivable({ ...flow(132, '203.0.113.5', 5000, '10.1.1.5'), family: 'ipv4' }, out), 'SCTP: no guard set');
  assert.ok(translatedFlow(flow(132, '203.0.113.5', 5000, '10.1.1.5')), '(but translated: its mirror is swept when no guard could be put)');
});


test('mirrorGuard: the revivable reverses go in under the stamp, which moves on; refused when anything else committed since, or a set is full', async () => {
  const p = plan([], [pf('203.0.113.1', 'udp', 51820, '10.1.1.10')]);
  const ex = openFake();
  let kernelGen = 41; // the namespace's nftables generation, as the kernel would bump it on each commit
  const sync = await syncTable(ex, ROUTER_TABLE, routerObjects(p), undefined, { generation: () => kernelGen });
  kernelGen = sync.generation!;
  let stamp = { fingerprint: sync.fingerprint, generation: sync.generation };
  const guard = mirrorGuard({
    executor: () => ({ ex, release: async () => undefined }),
    stamp: () => stamp,
    generation: () => kernelGen,
    moved: (g) => { stamp = { ...stamp, generation: g }; kernelGen = g; },
    outbound: () => outboundAddress(p),
  });
  const guards = async (proto: 'tcp' | 'udp') => (await ex.listSet(ROUTER_TABLE, MIRROR_GUARDS[proto].set)).elements.length;
  assert.equal(await guard([flow(17, '203.0.113.1', 51820, '10.1.1.10'), flow(6, '203.0.113.1', 2222, '10.1.1.10', 22)]), [], 'nothing left to sweep');
  assert.is(await guards('udp'), 1, 'the revivable flow is guarded');
  assert.is(await guards('tcp'), 0, 'the other one is not');
  assert.is(stamp.generation, sync.generation! + 1, 'the stamp moved on with the guards\' commit');
  // the table is still ours under the moved stamp: the next sync changes it in place
  const again = await syncTable(ex, ROUTER_TABLE, routerObjects(p), routerObjects(p), { generation: () => kernelGen });
  assert.is.not(again.mode, 'replace');
  stamp = { fingerprint: again.fingerprint, generation: again.generation };
  kernelGen = again.generation!;
  assert.equal(await guard([flow(6, '203.0.113.1', 2222, '10.1.1.10', 22)]), [], 'nothing revivable: nothing to do, nothing to sweep');
  // more than one change's worth: answered flows guarded first, the rest left to the sweeps
  const many = Array.from({ length: MIRROR_GUARDS_PER_CHANGE + 3 }, (_, i) => {
    const f = flow(17, '203.0.113.1', 51820, '10.1.1.10', 51820, i < 5 ? 0 : SEEN_REPLY);
    return { ...f, orig: { ...f.orig, srcPort: 1024 + i }, reply: { ...f.reply, dstPort: 1024 + i } };
  });
  const left = await guard(many);
  assert.is(left.length, 3, 'three over the limit');
  assert.ok(left.every((e) => ((e.status ?? 0) & SEEN_REPLY) === 0), 'unanswered ones left');
  assert.is(await guards('udp'), 1 + MIRROR_GUARDS_PER_CHANGE);
  kernelGen += 1; // somebody else committed
  const refused = [flow(17, '203.0.113.1', 51820, '10.1.1.10', 51820), flow(132, '203.0.113.5', 5000, '10.1.1.5')];
  assert.equal(await guard(refused), refused, 'refused: the generation moved; every translated flow swept, as without a guard');
  // a full set: the kernel's ENFILE, nothing committed, the caller sweeps
  const small = openFake();
  await small.apply(new Transaction(ROUTER_TABLE).add({ kind: 'table' }, set('contents_stamp', ['mark', 'mark'], { elements: [{ key: [1, 5] }] }),
    set(MIRROR_GUARDS.udp.set, ['ipv4_addr', 'inet_service', 'ipv4_addr', 'inet_service'], { flags: ['timeout'], timeout: 600, size: 1 })));
  const two = [flow(17, '203.0.113.1', 51820, '10.1.1.10'), { ...flow(17, '203.0.113.1', 51820, '10.1.1.10'), reply: { ...flow(17, '203.0.113.1', 51820, '10.1.1.10').reply, dstPort: 40001 } }];
  assert.is(await commitMirrorGuards(small, 1, 5, two), undefined);
  assert.is((await small.listSet(ROUTER_TABLE, MIRROR_GUARDS.udp.set)).elements.length, 0, 'all or nothing');
  assert.is(await commitMirrorGuards(small, 1, 5, two.slice(0, 1)), 6, 'one fits');
});

test.run();
