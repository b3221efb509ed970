// Links through lib/netlink on the real kernel: every kind this kernel has is created, read back (get and list)
// and compared with what was asked and with iproute2's view (`ip -j -d link show`). 802.1Q VLANs and bridge
// vlan_filtering are missing here: their refusal is tested exactly; the real tests run in the qemu lane.
import { suite } from 'uvu';
import { readdirSync, readlinkSync } from 'node:fs';
import * as assert from 'uvu/assert';
import type { Link, LinkSpec, MacvlanMode } from '../../lib/netlink/index.js';
import { scratch, uniq, ipLink, ipJson, throwsNetlink, assertSubset, run } from './helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { thrown } from '../helpers/expect.js';
import { ValidationError } from '../../lib/util/errors.js';
import { NetnsError } from '../../lib/sys/setns.js';

requireSandbox();
const test = suite('links');

type Of<K extends Link['kind']> = Extract<Link, { kind: K }>;
function as<K extends Link['kind']>(l: Link | undefined, kind: K): Of<K> {
  assert.ok(l, 'link exists');
  assert.is(l!.kind, kind, `${l!.name} reads back as ${kind}`);
  return l as Of<K>;
}

/** A link without what the kernel's link-watch work may still change between two reads. */
function stable(l: Link): Partial<Link> {
  const { flags: _f, operState: _o, ...rest } = l;
  return rest;
}

test('veth in one namespace: every common attribute round-trips; ip -d link agrees', () => scratch((s) => {
  const { name: ns, h } = s.ns();
  const nl = h.netlink;
  const a = uniq('va');
  const b = uniq('vb');
  nl.linkAdd({
    kind: 'veth', name: a, mtu: 1400, mac: '02:AA:00:00:00:01', alias: 'guest net 7', txqlen: 500, up: true,
    peer: { name: b, mtu: 1300, mac: '02:aa:00:00:00:02', up: true },
  });
  const la = as(nl.linkGet(a), 'veth');
  assertSubset(la, { name: a, mtu: 1400, mac: '02:aa:00:00:00:01', alias: 'guest net 7', txqlen: 500, up: true }, a);
  assert.is(la.peer.name, b, 'peer name resolved');
  assert.is(la.peer.index, nl.indexOf(b));
  assert.is(la.peer.netnsId, undefined, 'peer in the same namespace has no netnsid');
  const lb = as(nl.linkGet(b), 'veth');
  assertSubset(lb, { name: b, mtu: 1300, mac: '02:aa:00:00:00:02', up: true }, b);
  assert.is(lb.peer.name, a);
  // both ends up: carrier (operState follows later, from the kernel's link-watch work)
  assert.ok(la.lowerUp && lb.lowerUp, 'carrier on both ends');

  const ipa = ipLink(ns, a);
  assert.is(ipa.ifindex, la.index);
  assert.is(ipa.linkinfo?.info_kind, 'veth');
  assert.is(ipa.link, b);
  assert.is(ipa.mtu, 1400);
  assert.is(ipa.address, '02:aa:00:00:00:01');
  assert.is(ipa.ifalias, 'guest net 7');
  assert.is(ipa.txqlen, 500);
  assert.ok(ipa.flags.includes('UP') && ipa.flags.includes('LOWER_UP'), `flags ${ipa.flags}`);
  // by index and by name read the same; the dump says the same again
  assert.equal(stable(nl.linkGet(la.index)), stable(la));
  assert.equal(stable(nl.linkList().find((l) => l.name === a)!), stable(la));
}));

test('veth with its peer created in another namespace, and one created wholly elsewhere', () => scratch((s) => {
  const A = s.ns('ta');
  const B = s.ns('tb');
  const a = uniq('va');
  const b = uniq('vb');
  A.h.netlink.linkAdd({ kind: 'veth', name: a, up: true, peer: { name: b, namespace: { netns: B.name }, up: true } });
  assert.is(A.h.netlink.linkFind(b), undefined, 'peer is not in the creating namespace');
  const la = as(A.h.netlink.linkGet(a), 'veth');
  const lb = as(B.h.netlink.linkGet(b), 'veth');
  assert.type(la.peer.netnsId, 'number', 'peer elsewhere: netnsid reported');
  assert.is(la.peer.index, lb.index, 'peer index is its index over there');
  assert.is(la.peer.name, undefined, 'no name resolved across namespaces');
  assert.is(la.linkNetnsId, la.peer.netnsId);
  assert.ok(lb.up && la.up && la.lowerUp && lb.lowerUp, 'both ends up with carrier');
  const ipa = ipLink(A.name, a);
  assert.is(ipa.link_netnsid, la.peer.netnsId, 'ip agrees on the peer netnsid');
  const ipb = ipLink(B.name, b);
  assert.ok(ipb.flags.includes('UP'));

  // created with `namespace`: this end lands in B, the peer stays in A
  const c = uniq('vc');
  const d = uniq('vd');
  A.h.netlink.linkAdd({ kind: 'veth', name: c, namespace: { netns: B.name }, mtu: 1450, peer: { name: d } });
  assert.is(A.h.netlink.linkFind(c), undefined);
  assertSubset(as(B.h.netlink.linkGet(c), 'veth'), { mtu: 1450 }, c);
  assert.ok(A.h.netlink.linkGet(d));
  // by an open namespace fd, too
  const e = uniq('ve');
  const f = uniq('vf');
  A.h.netlink.linkAdd({ kind: 'veth', name: e, peer: { name: f, namespace: { fd: B.h.fd } } });
  assert.ok(B.h.netlink.linkFind(f));
}));

/** This process's open descriptors on network namespaces (an fd on one keeps it alive). */
function netnsFds(): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const t = readlinkSync(`/proc/self/fd/${fd}`);
      // an fd opened on /run/netns/NAME reads as that path, one on /proc/…/ns/net as net:[inode]
      if (t.startsWith('net:[') || t.startsWith('/run/netns/')) out.push(`${fd} ${t}`);
    } catch { /* the listing's own descriptor */ }
  }
  return out.sort();
}

test('linkAdd with namespaces: no namespace descriptor is left open, whether the link is made or refused', () => scratch((s) => {
  const A = s.ns('ta');
  const B = s.ns('tb');
  const before = netnsFds();
  // positive control: both namespaces named, the link is made
  const a = uniq('va');
  A.h.netlink.linkAdd({ kind: 'veth', name: a, namespace: { netns: B.name }, peer: { name: uniq('vb'), namespace: { netns: B.name } } });
  assert.ok(B.h.netlink.linkFind(a), 'made in B');
  assert.equal(netnsFds(), before, 'made: the descriptors it opened are closed');
  // this end's namespace exists, the peer's does not: refused after the first descriptor was opened
  thrown(() => A.h.netlink.linkAdd({ kind: 'veth', name: uniq('vc'), namespace: { netns: B.name }, peer: { name: uniq('vd'), namespace: { netns: `${B.name}-missing` } } }),
    NetnsError, { code: 'ENOENT' });
  assert.equal(netnsFds(), before, 'refused: no descriptor on B left open');
}));

test('bridge: stp, forward delay, ageing, multicast snooping; ports enslaved; ip -d agrees', () => scratch((s) => {
  const { name: ns, h } = s.ns();
  const nl = h.netlink;
  const br = uniq('br');
  nl.linkAdd({ kind: 'bridge', name: br, stp: true, forwardDelay: 4, ageingTime: 120, mcastSnooping: false, up: true, mtu: 1450 });
  const l = as(nl.linkGet(br), 'bridge');
  assertSubset(l, { stp: true, forwardDelay: 4, ageingTime: 120, mcastSnooping: false, vlanFiltering: false, up: true }, br);
  const d = ipLink(ns, br).linkinfo!.info_data!;
  assert.is(d.stp_state, 1);
  assert.is(d.forward_delay, 400, 'centiseconds on the wire');
  assert.is(d.ageing_time, 12000);
  assert.is(d.mcast_snooping, 0);
  assert.is(d.vlan_filtering, 0);

  const br2 = uniq('br');
  nl.linkAdd({ kind: 'bridge', name: br2, stp: false, forwardDelay: 0, ageingTime: 0, mcastSnooping: true });
  assertSubset(as(nl.linkGet(br2), 'bridge'), { stp: false, forwardDelay: 0, ageingTime: 0, mcastSnooping: true, up: false }, br2);
  assert.is(ipLink(ns, br2).linkinfo!.info_data!.stp_state, 0);

  const p = uniq('vp');
  nl.linkAdd({ kind: 'veth', name: p, master: br, up: true, peer: { name: uniq('vq') } });
  const port = nl.linkGet(p);
  assert.is(port.master, br, 'master resolved to its name');
  assert.is(port.masterIndex, l.index);
  assert.is(ipLink(ns, p).master, br);
  // released, then enslaved by index
  nl.linkSetMaster(p, null);
  assert.is(nl.linkGet(p).master, undefined);
  assert.is(ipLink(ns, p).master, undefined);
  nl.linkSetMaster(p, l.index);
  assert.is(nl.linkGet(p).master, br);
}));

test('vxlan unicast (v4 and v6) with port, learning, ttl, local; ip -d agrees', () => scratch((s) => {
  const { name: ns, h } = s.ns();
  const nl = h.netlink;
  const v = uniq('vx');
  nl.linkAdd({ kind: 'vxlan', name: v, vni: 4242, remote: '10.9.0.2', local: '10.9.0.1', dstPort: 4789, learning: false, ttl: 7, mtu: 1400 });
  const l = as(nl.linkGet(v), 'vxlan');
  assertSubset(l, { vni: 4242, remote: '10.9.0.2', local: '10.9.0.1', dstPort: 4789, learning: false, ttl: 7, mtu: 1400 }, v);
  assert.is(l.group, undefined);
  const d = ipLink(ns, v).linkinfo!.info_data!;
  assertSubset(d, { id: 4242, remote: '10.9.0.2', local: '10.9.0.1', port: 4789, learning: false, ttl: 7 }, 'ip info_data');

  const v6 = uniq('vx');
  nl.linkAdd({ kind: 'vxlan', name: v6, vni: 1, remote: '2001:db8::2', local: '2001:db8::1', dstPort: 8472 });
  const l6 = as(nl.linkGet(v6), 'vxlan');
  assertSubset(l6, { vni: 1, remote: '2001:db8::2', local: '2001:db8::1', dstPort: 8472, learning: true }, v6);
  assertSubset(ipLink(ns, v6).linkinfo!.info_data!, { id: 1, remote6: '2001:db8::2', local6: '2001:db8::1', port: 8472 }, 'ip info_data');

  // the kernel's own default port when none is given
  const v0 = uniq('vx');
  nl.linkAdd({ kind: 'vxlan', name: v0, vni: 9, remote: '10.9.0.3' });
  assert.is(as(nl.linkGet(v0), 'vxlan').dstPort, ipLink(ns, v0).linkinfo!.info_data!.port);
}));

test('vxlan multicast group with an underlay dev (by name and by index)', () => scratch((s) => {
  const { name: ns, h } = s.ns();
  const nl = h.netlink;
  const u = uniq('vu');
  nl.linkAdd({ kind: 'veth', name: u, peer: { name: uniq('vw') } });
  const v = uniq('vx');
  nl.linkAdd({ kind: 'vxlan', name: v, vni: 100, group: '239.1.1.1', dev: u, dstPort: 4789, ttl: 3 });
  const l = as(nl.linkGet(v), 'vxlan');
  assertSubset(l, { vni: 100, group: '239.1.1.1', dev: u, ttl: 3 }, v);
  assert.is(l.remote, undefined, 'a multicast group is not reported as a remote');
  assertSubset(ipLink(ns, v).linkinfo!.info_data!, { id: 100, group: '239.1.1.1', link: u, ttl: 3 }, 'ip info_data');
  const v2 = uniq('vx');
  nl.linkAdd({ kind: 'vxlan', name: v2, vni: 101, group: 'ff05::100', dev: nl.indexOf(u) });
  assertSubset(as(nl.linkGet(v2), 'vxlan'), { group: 'ff05::100', dev: u }, v2);
  assert.is(ipLink(ns, v2).linkinfo!.info_data!.group6, 'ff05::100');
}));

test('macvlan in every mode; ip -d agrees', () => scratch((s) => {
  const { name: ns, h } = s.ns();
  const nl = h.netlink;
  const modes: MacvlanMode[] = ['private', 'vepa', 'bridge', 'passthru', 'source'];
  for (const mode of modes) {
    const parent = uniq('mp'); // passthru wants the parent to itself: one parent per mode
    nl.linkAdd({ kind: 'veth', name: parent, peer: { name: uniq('mq') } });
    const m = uniq('mv');
    nl.linkAdd({ kind: 'macvlan', name: m, parent, mode, up: true });
    const l = as(nl.linkGet(m), 'macvlan');
    assertSubset(l, { mode, parent, up: true }, m);
    assert.is(l.linkIndex, nl.indexOf(parent));
    const ipl = ipLink(ns, m);
    assert.is(ipl.linkinfo?.info_kind, 'macvlan');
    assert.is(ipl.linkinfo?.info_data?.mode, mode);
    assert.is(ipl.link, parent);
  }
}));

test('macvlan in another namespace: parent here, link there', () => scratch((s) => {
  const A = s.ns('ta');
  const B = s.ns('tb');
  const parent = uniq('mp');
  A.h.netlink.linkAdd({ kind: 'veth', name: parent, peer: { name: uniq('mq') } });
  const m = uniq('mv');
  A.h.netlink.linkAdd({ kind: 'macvlan', name: m, parent, mode: 'bridge', namespace: { netns: B.name } });
  const l = as(B.h.netlink.linkGet(m), 'macvlan');
  assert.is(l.parent, A.h.netlink.indexOf(parent), 'parent elsewhere: its index, not a name from the wrong namespace');
  assert.type(l.linkNetnsId, 'number');
}));

test('802.1Q VLAN: this kernel refuses the kind with EOPNOTSUPP "Unknown device type"', () => scratch((s) => {
  const { h } = s.ns();
  const nl = h.netlink;
  const p = uniq('vp');
  nl.linkAdd({ kind: 'veth', name: p, peer: { name: uniq('vq') } });
  const name = `${p}.10`.slice(0, 15);
  const e = throwsNetlink(() => nl.linkAdd({ kind: 'vlan', name, parent: p, id: 10 }), 'EOPNOTSUPP', {
    extAck: 'Unknown device type', operation: `RTM_NEWLINK ${name} (vlan)`,
  });
  assert.is(e.errno, 95);
  assert.match(e.message, /Unknown device type/);
  assert.is(nl.linkFind(name), undefined, 'nothing left behind');
}));

test('bridge vlan_filtering and port VLANs: EOPNOTSUPP on this kernel; listing agrees with `bridge vlan show`', () => scratch((s) => {
  const { name: ns, h } = s.ns();
  const nl = h.netlink;
  const br = uniq('br');
  throwsNetlink(() => nl.linkAdd({ kind: 'bridge', name: br, vlanFiltering: true }), 'EOPNOTSUPP');
  nl.linkAdd({ kind: 'bridge', name: br });
  const p = uniq('vp');
  nl.linkAdd({ kind: 'veth', name: p, master: br, peer: { name: uniq('vq') } });
  throwsNetlink(() => nl.bridgeVlanAdd({ dev: p, vid: 10, pvid: true, untagged: true }), 'EOPNOTSUPP', { operation: 'bridge vlan 10 dev' });
  throwsNetlink(() => nl.bridgeVlanAdd({ dev: p, vid: 20, vidEnd: 30 }), 'EOPNOTSUPP');
  throwsNetlink(() => nl.bridgeVlanAdd({ dev: br, vid: 10, self: true }), 'EOPNOTSUPP');
  // deleting is answered with success whatever happens (the kernel ignores per-VLAN delete errors): like `bridge vlan del`
  assert.is(nl.bridgeVlanDel({ dev: p, vid: 10 }), true);
  assert.is(run('bridge', ['-n', ns, 'vlan', 'del', 'vid', '10', 'dev', p]).status, 0);
  // invalid ids are refused before anything is sent
  thrown(() => nl.bridgeVlanAdd({ dev: p, vid: 4095 }), ValidationError, { code: 'E_INVALID_VALUE', field: 'bridge vlan vid', value: 4095 });
  thrown(() => nl.bridgeVlanAdd({ dev: p, vid: 5, vidEnd: 7, pvid: true }), ValidationError, { code: 'E_INVALID_VALUE', field: 'bridge vlan pvid' });
  const listed = nl.bridgeVlanList();
  const r = run('bridge', ['-n', ns, '-j', 'vlan', 'show']);
  assert.is(r.status, 0, r.stderr);
  const oracle = JSON.parse(r.stdout.trim() || '[]') as unknown[];
  assert.equal(listed, [], 'no VLAN entries');
  assert.is(oracle.length, 0, '`bridge vlan show` lists none either');
}));

test('linkList: every link of the namespace, parsed the same as linkGet, same set as `ip link`', () => scratch((s) => {
  const { name: ns, h } = s.ns();
  const nl = h.netlink;
  const br = uniq('br');
  const specs: LinkSpec[] = [
    { kind: 'bridge', name: br, up: true },
    { kind: 'veth', name: uniq('va'), master: br, peer: { name: uniq('vb') } },
    { kind: 'vxlan', name: uniq('vx'), vni: 5, remote: '10.0.0.9', dstPort: 4789 },
  ];
  for (const sp of specs) nl.linkAdd(sp);
  const mv = uniq('mv');
  nl.linkAdd({ kind: 'macvlan', name: mv, parent: (specs[1] as { peer: { name: string } }).peer.name, mode: 'vepa' });
  const list = nl.linkList();
  const names = list.map((l) => l.name).sort();
  const ipNames = ipJson<Array<{ ifname: string }>>(ns, ['link', 'show']).map((l) => l.ifname).sort();
  assert.equal(names, ipNames);
  for (const l of list) assert.equal(stable(l), stable(nl.linkGet(l.name)), `${l.name} listed = read alone`);
  assert.is(list.find((l) => l.name === 'lo')?.kind, 'device', 'loopback is a plain device');
}));

test('linkList filters: ports of a master, links of a kind; netnsIdOf names a peer namespace as its links do', () => scratch((s) => {
  const A = s.ns('fa');
  const B = s.ns('fb');
  const nl = A.h.netlink;
  const br = uniq('br');
  const [p1, p2, lone] = [uniq('va'), uniq('va'), uniq('va')];
  nl.linkAdd({ kind: 'bridge', name: br, up: true });
  nl.linkAdd({ kind: 'veth', name: p1, master: br, peer: { name: uniq('vb') } });
  nl.linkAdd({ kind: 'veth', name: p2, master: br, peer: { name: uniq('vb'), namespace: { fd: B.h.fd } } });
  nl.linkAdd({ kind: 'veth', name: lone, peer: { name: uniq('vb') } });
  assert.equal(nl.linkList({ master: br }).map((l) => l.name).sort(), [p1, p2].sort());
  assert.equal(nl.linkList({ kind: 'bridge' }).map((l) => l.name), [br]);
  assert.ok(nl.linkList({ kind: 'veth' }).every((l) => l.kind === 'veth'));
  assert.is(nl.linkList({ kind: 'veth' }).length, 5, 'three pairs, one end elsewhere');
  assert.equal(nl.linkList({ master: br, kind: 'bridge' }), []);
  const peer = as(nl.linkGet(p2), 'veth').peer;
  assert.ok(peer.netnsId !== undefined);
  assert.is(nl.netnsIdOf(B.h.fd), peer.netnsId, 'the id the peer is reported with');
  const C = s.ns('fc');
  assert.is(nl.netnsIdOf(C.h.fd), undefined, 'a namespace nothing here points to has no id');
}));

test('linkSet: up/down, mtu, mac, alias, txqlen, rename, move to another namespace', () => scratch((s) => {
  const A = s.ns('ta');
  const B = s.ns('tb');
  const nl = A.h.netlink;
  const a = uniq('va');
  nl.linkAdd({ kind: 'veth', name: a, peer: { name: uniq('vb') } });
  nl.linkSet(a, { mtu: 9000, mac: '02:00:00:00:12:34', alias: 'x', txqlen: 64 });
  assertSubset(nl.linkGet(a), { mtu: 9000, mac: '02:00:00:00:12:34', alias: 'x', txqlen: 64, up: false }, a);
  nl.linkSetUp(a);
  assert.is(nl.linkGet(a).up, true);
  assert.ok(ipLink(A.name, a).flags.includes('UP'));
  nl.linkSetDown(a);
  assert.is(nl.linkGet(a).up, false);
  const renamed = uniq('vr');
  nl.linkSet(a, { name: renamed });
  assert.is(nl.linkFind(a), undefined);
  assert.ok(nl.linkFind(renamed));
  nl.linkSetNs(renamed, { netns: B.name });
  assert.is(nl.linkFind(renamed), undefined);
  assert.is(B.h.netlink.linkGet(renamed).mtu, 9000, 'attributes travel with it');
  // moving and renaming in one request
  const back = uniq('vk');
  B.h.netlink.linkSet(renamed, { namespace: { fd: A.h.fd }, name: back });
  assert.ok(nl.linkFind(back));
}));

test('linkDel / linkFind: delete-if-present, missing links', () => scratch((s) => {
  const { h } = s.ns();
  const nl = h.netlink;
  const a = uniq('va');
  const b = uniq('vb');
  nl.linkAdd({ kind: 'veth', name: a, peer: { name: b } });
  assert.is(nl.linkDel(a), true);
  assert.is(nl.linkFind(a), undefined);
  assert.is(nl.linkFind(b), undefined, 'deleting one end of a veth deletes both');
  assert.is(nl.linkDel(a, { ifExists: true }), false);
  throwsNetlink(() => nl.linkDel(a), 'ENODEV', { operation: `RTM_DELLINK ${a}` });
  throwsNetlink(() => nl.linkGet(a), 'ENODEV');
  throwsNetlink(() => nl.linkGet(999_999), 'ENODEV');
}));

test('ensureLink: created, unchanged, updated (mtu, master, up, alias, bridge options), recreated', () => scratch((s) => {
  const { name: ns, h } = s.ns();
  const nl = h.netlink;
  const br = uniq('br');
  assert.is(nl.ensureLink({ kind: 'bridge', name: br, stp: false }), 'created');
  assert.is(nl.ensureLink({ kind: 'bridge', name: br, stp: false }), 'unchanged');
  assert.is(nl.ensureLink({ kind: 'bridge', name: br, stp: true, forwardDelay: 5 }), 'updated');
  assertSubset(as(nl.linkGet(br), 'bridge'), { stp: true, forwardDelay: 5 }, br);
  assert.is(ipLink(ns, br).linkinfo!.info_data!.stp_state, 1);

  const a = uniq('va');
  const b = uniq('vb');
  const veth: LinkSpec = { kind: 'veth', name: a, peer: { name: b } };
  assert.is(nl.ensureLink(veth), 'created');
  const idx = nl.indexOf(a);
  assert.is(nl.ensureLink(veth), 'unchanged');
  assert.is(nl.ensureLink({ ...veth, mtu: 1300 }), 'updated');
  assert.is(nl.linkGet(a).mtu, 1300);
  assert.is(nl.ensureLink({ ...veth, mtu: 1300, master: br }), 'updated');
  assert.is(nl.linkGet(a).master, br);
  assert.is(nl.ensureLink({ ...veth, mtu: 1300, master: br, up: true, alias: 'p1' }), 'updated');
  assertSubset(nl.linkGet(a), { up: true, alias: 'p1', master: br }, a);
  assert.is(nl.ensureLink({ ...veth, mtu: 1300, master: br, up: true, alias: 'p1' }), 'unchanged');
  assert.is(nl.indexOf(a), idx, 'updated in place, never recreated');
  // a veth of that name whose peer has another name is a different link
  assert.is(nl.ensureLink({ kind: 'veth', name: a, peer: { name: uniq('vc') } }), 'recreated');

  const v = uniq('vx');
  assert.is(nl.ensureLink({ kind: 'vxlan', name: v, vni: 10, remote: '10.0.0.2', dstPort: 4789 }), 'created');
  assert.is(nl.ensureLink({ kind: 'vxlan', name: v, vni: 10, remote: '10.0.0.2', dstPort: 4789 }), 'unchanged');
  const vIdx = nl.indexOf(v);
  assert.is(nl.ensureLink({ kind: 'vxlan', name: v, vni: 11, remote: '10.0.0.2', dstPort: 4789 }), 'recreated');
  assert.is(as(nl.linkGet(v), 'vxlan').vni, 11);
  assert.is.not(nl.indexOf(v), vIdx, 'a new link');
  assert.is(ipLink(ns, v).linkinfo!.info_data!.id, 11);
  assert.is(nl.ensureLink({ kind: 'vxlan', name: v, vni: 11, remote: '10.0.0.2', dstPort: 4789, learning: false }), 'recreated');
  assert.is(as(nl.linkGet(v), 'vxlan').learning, false);

  const p = uniq('mp');
  nl.linkAdd({ kind: 'veth', name: p, peer: { name: uniq('mq') } });
  const m = uniq('mv');
  assert.is(nl.ensureLink({ kind: 'macvlan', name: m, parent: p, mode: 'bridge' }), 'created');
  assert.is(nl.ensureLink({ kind: 'macvlan', name: m, parent: nl.indexOf(p), mode: 'bridge' }), 'unchanged', 'parent by index = by name');
  assert.is(nl.ensureLink({ kind: 'macvlan', name: m, parent: p, mode: 'private' }), 'recreated');
  assert.is(as(nl.linkGet(m), 'macvlan').mode, 'private');
  // another kind under the same name
  assert.is(nl.ensureLink({ kind: 'bridge', name: m }), 'recreated');
  assert.is(nl.linkGet(m).kind, 'bridge');
}));

test('ensureLink with `namespace`: looked for, created and converged in that namespace', () => scratch((s) => {
  const A = s.ns('ta');
  const B = s.ns('tb');
  const br = uniq('br');
  B.h.netlink.linkAdd({ kind: 'bridge', name: br });
  const a = uniq('va');
  const spec: LinkSpec = { kind: 'veth', name: a, namespace: { netns: B.name }, master: br, up: true, peer: { name: uniq('vb') } };
  assert.is(A.h.netlink.ensureLink(spec), 'created');
  assert.is(B.h.netlink.linkGet(a).master, br, 'master looked up where the link lands');
  assert.is(A.h.netlink.ensureLink(spec), 'unchanged');
  assert.is(A.h.netlink.ensureLink({ ...spec, mtu: 1400 }), 'updated');
  assert.is(B.h.netlink.linkGet(a).mtu, 1400);
}));

test.run();
