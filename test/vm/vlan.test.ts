// 802.1Q / 802.1ad VLAN links and bridge vlan_filtering through lib/netlink, for real: runs only in
// the qemu lane (scripts/vm/run-vm-tests.mjs, Debian stock kernel), since the development machines'
// kernel has neither. A kernel without 8021q makes these tests FAIL, never skip.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Link } from '../../lib/netlink/index.js';
import type { NetnsHandle } from '../../lib/netns/index.js';
import { Scratch, nsTry, uid } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();

interface IpLink {
  ifname: string;
  link?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

/** `ip -d link show dev NAME` in a namespace, as JSON: the independent view to compare with. */
function ipLink(ns: string, dev: string): IpLink {
  const out = execFileSync('ip', ['-n', ns, '-j', '-d', 'link', 'show', 'dev', dev], { encoding: 'utf8' });
  const [l] = JSON.parse(out) as IpLink[];
  return l;
}

/** Pings until one reply (or none within ~count × 1 s). */
function pings(ns: string, ip: string, count = 3): boolean {
  return nsTry(ns, ['ping', '-n', '-c', String(count), '-W', '2', '-i', '0.3', ip], 20_000).status === 0;
}

function asVlan(l: Link): Extract<Link, { kind: 'vlan' }> {
  assert.is(l.kind, 'vlan', `${l.name} reads back as a vlan link`);
  return l as Extract<Link, { kind: 'vlan' }>;
}

test('the kernel has 802.1Q and bridge vlan_filtering (this lane exists for them)', () => {
  assert.ok(existsSync('/proc/net/vlan/config'), '8021q module loaded (/proc/net/vlan/config)');
  const s = new Scratch();
  try {
    const ns = s.ns('vk');
    const h = s.handle(ns);
    h.netlink.linkAdd({ kind: 'bridge', name: 'brk', vlanFiltering: true });
    const br = h.netlink.linkGet('brk');
    assert.is(br.kind, 'bridge');
    assert.is((br as { vlanFiltering?: boolean }).vlanFiltering, true, 'bridge reads back with vlan_filtering on');
  } finally {
    s.cleanup();
  }
});

test('vlan link 802.1Q: created on a veth, read back, same as ip -d link', () => {
  const s = new Scratch();
  try {
    const ns = s.ns('vq');
    const h = s.handle(ns);
    const parent = `vp${uid(6)}`;
    const name = `${parent}.100`;
    h.netlink.linkAdd({ kind: 'veth', name: parent, peer: { name: `vq${uid(6)}` } });
    h.netlink.linkAdd({ kind: 'vlan', name, parent, id: 100, protocol: '802.1Q', up: false, mtu: 1400 });

    const l = asVlan(h.netlink.linkGet(name));
    assert.is(l.id, 100);
    assert.is(l.protocol, '802.1Q');
    assert.is(l.parent, parent, 'parent resolved to its name');
    assert.is(l.mtu, 1400);
    assert.is(l.linkIndex, h.netlink.indexOf(parent));

    const ip = ipLink(ns, name);
    assert.is(ip.linkinfo?.info_kind, 'vlan');
    assert.is(ip.linkinfo?.info_data?.protocol, '802.1Q');
    assert.is(ip.linkinfo?.info_data?.id, 100);
    assert.is(ip.link, parent);

    // listed like it is read one by one
    const listed = h.netlink.linkList().find((x) => x.name === name);
    assert.ok(listed, 'vlan in linkList');
    assert.equal(asVlan(listed!).id, 100);
    assert.equal(asVlan(listed!).parent, parent);

    // by index, the parent given as an index
    const name2 = `${parent}.7`;
    h.netlink.linkAdd({ kind: 'vlan', name: name2, parent: h.netlink.indexOf(parent), id: 7 });
    const l2 = asVlan(h.netlink.linkGet(name2));
    assert.is(l2.id, 7);
    assert.is(l2.protocol, '802.1Q', 'default protocol is 802.1Q');
    assert.is(ipLink(ns, name2).linkinfo?.info_data?.protocol, '802.1Q');

    // the kernel refuses a second link with the same parent and id
    let dup: unknown;
    try {
      h.netlink.linkAdd({ kind: 'vlan', name: `${parent}.x`, parent, id: 100 });
    } catch (e) {
      dup = e;
    }
    assert.ok(dup, 'duplicate VLAN id on one parent is refused');

    assert.ok(h.netlink.linkDel(name));
    assert.is(h.netlink.linkFind(name), undefined);
  } finally {
    s.cleanup();
  }
});

test('vlan link 802.1ad (QinQ): outer S-tag, inner 802.1Q on top, read back, same as ip -d link', () => {
  const s = new Scratch();
  try {
    const ns = s.ns('vad');
    const h = s.handle(ns);
    const parent = `va${uid(6)}`;
    h.netlink.linkAdd({ kind: 'veth', name: parent, peer: { name: `vb${uid(6)}` } });
    h.netlink.linkAdd({ kind: 'vlan', name: 'svlan200', parent, id: 200, protocol: '802.1ad' });
    h.netlink.linkAdd({ kind: 'vlan', name: 'cvlan300', parent: 'svlan200', id: 300, protocol: '802.1Q' });

    const outer = asVlan(h.netlink.linkGet('svlan200'));
    assert.is(outer.id, 200);
    assert.is(outer.protocol, '802.1ad');
    assert.is(outer.parent, parent);
    const inner = asVlan(h.netlink.linkGet('cvlan300'));
    assert.is(inner.id, 300);
    assert.is(inner.protocol, '802.1Q');
    assert.is(inner.parent, 'svlan200');

    const ipOuter = ipLink(ns, 'svlan200');
    assert.is(ipOuter.linkinfo?.info_kind, 'vlan');
    assert.is(ipOuter.linkinfo?.info_data?.protocol, '802.1ad');
    assert.is(ipOuter.linkinfo?.info_data?.id, 200);
    assert.is(ipOuter.link, parent);
    const ipInner = ipLink(ns, 'cvlan300');
    assert.is(ipInner.linkinfo?.info_data?.protocol, '802.1Q');
    assert.is(ipInner.linkinfo?.info_data?.id, 300);
    assert.is(ipInner.link, 'svlan200');
  } finally {
    s.cleanup();
  }
});

test('ensureLink on a vlan: unchanged when equal, recreated when the id or protocol differs', () => {
  const s = new Scratch();
  try {
    const ns = s.ns('ve');
    const h = s.handle(ns);
    // up: a VLAN cannot go up while its lower device is down (ENETDOWN)
    h.netlink.linkAdd({ kind: 'veth', name: 'p0', up: true, peer: { name: 'p1', up: true } });
    assert.is(h.netlink.ensureLink({ kind: 'vlan', name: 'p0.10', parent: 'p0', id: 10 }), 'created');
    const first = h.netlink.linkGet('p0.10').index;
    assert.is(h.netlink.ensureLink({ kind: 'vlan', name: 'p0.10', parent: 'p0', id: 10, protocol: '802.1Q' }), 'unchanged');
    assert.is(h.netlink.ensureLink({ kind: 'vlan', name: 'p0.10', parent: 'p0', id: 10, up: true }), 'updated');
    assert.is(h.netlink.linkGet('p0.10').index, first, 'updated in place');
    assert.is(h.netlink.ensureLink({ kind: 'vlan', name: 'p0.10', parent: 'p0', id: 11 }), 'recreated');
    assert.is(asVlan(h.netlink.linkGet('p0.10')).id, 11);
    assert.is(ipLink(ns, 'p0.10').linkinfo?.info_data?.id, 11);
    assert.is(h.netlink.ensureLink({ kind: 'vlan', name: 'p0.10', parent: 'p0', id: 11, protocol: '802.1ad' }), 'recreated');
    assert.is(ipLink(ns, 'p0.10').linkinfo?.info_data?.protocol, '802.1ad');
  } finally {
    s.cleanup();
  }
});

test('tagged traffic: two namespaces over a veth, VLAN 100 on both sides pings; VLAN 101 on one side does not', () => {
  const s = new Scratch();
  try {
    const a = s.ns('ta');
    const b = s.ns('tb');
    const ha = s.handle(a);
    const hb = s.handle(b);
    ha.netlink.linkAdd({ kind: 'veth', name: 'eth0', up: true, peer: { name: 'eth0', namespace: { netns: b }, up: true } });
    for (const h of [ha, hb]) h.netlink.linkSetUp('lo');
    ha.netlink.linkAdd({ kind: 'vlan', name: 'eth0.100', parent: 'eth0', id: 100, up: true });
    hb.netlink.linkAdd({ kind: 'vlan', name: 'eth0.100', parent: 'eth0', id: 100, up: true });
    ha.netlink.addrAdd({ dev: 'eth0.100', address: '10.100.0.1/24' });
    hb.netlink.addrAdd({ dev: 'eth0.100', address: '10.100.0.2/24' });
    // the untagged parents carry another subnet: replies must come over the tagged path
    ha.netlink.addrAdd({ dev: 'eth0', address: '10.0.0.1/24' });
    hb.netlink.addrAdd({ dev: 'eth0', address: '10.0.0.2/24' });

    assert.ok(pings(a, '10.100.0.2'), 'a reaches b over VLAN 100');
    assert.ok(pings(b, '10.100.0.1'), 'b reaches a over VLAN 100');
    assert.ok(pings(a, '10.0.0.2'), 'untagged path works too');

    // the same address on VLAN 101 instead: frames tagged 100 find no taker
    hb.netlink.linkDel('eth0.100');
    hb.netlink.linkAdd({ kind: 'vlan', name: 'eth0.101', parent: 'eth0', id: 101, up: true });
    hb.netlink.addrAdd({ dev: 'eth0.101', address: '10.100.0.2/24' });
    nsTry(a, ['ip', 'neigh', 'flush', 'dev', 'eth0.100']);
    assert.not.ok(pings(a, '10.100.0.2', 2), 'VLAN 100 does not reach VLAN 101');

    // and back to 100 on b: works again (the negative result was the tag, not a broken setup)
    hb.netlink.linkDel('eth0.101');
    hb.netlink.linkAdd({ kind: 'vlan', name: 'eth0.100', parent: 'eth0', id: 100, up: true });
    hb.netlink.addrAdd({ dev: 'eth0.100', address: '10.100.0.2/24' });
    assert.ok(pings(a, '10.100.0.2'), 'VLAN 100 again');
  } finally {
    s.cleanup();
  }
});

type PortVlans = Record<number, string>;

/** Port VLANs as `bridge -j vlan show` sees them: vid → "pvid untagged" flags, per device. */
function bridgeToolVlans(ns: string): Record<string, PortVlans> {
  const shown = JSON.parse(execFileSync('bridge', ['-n', ns, '-j', 'vlan', 'show'], { encoding: 'utf8' })) as
    { ifname: string; vlans: { vlan: number; vlanEnd?: number; flags?: string[] }[] }[];
  const out: Record<string, PortVlans> = {};
  for (const d of shown) {
    const m: PortVlans = (out[d.ifname] = {});
    for (const v of d.vlans) {
      const f = [(v.flags ?? []).includes('PVID') ? 'pvid' : '', (v.flags ?? []).includes('Egress Untagged') ? 'untagged' : '']
        .filter(Boolean).join(' ');
      for (let vid = v.vlan; vid <= (v.vlanEnd ?? v.vlan); vid++) m[vid] = f;
    }
  }
  return out;
}

/** The same, from the library's bridgeVlanList (ranges expanded). */
function libraryVlans(h: NetnsHandle): Record<string, PortVlans> {
  const out: Record<string, PortVlans> = {};
  for (const v of h.netlink.bridgeVlanList()) {
    const m: PortVlans = (out[v.dev ?? '?'] ??= {});
    const f = [v.pvid ? 'pvid' : '', v.untagged ? 'untagged' : ''].filter(Boolean).join(' ');
    for (let vid = v.vid; vid <= (v.vidEnd ?? v.vid); vid++) m[vid] = f;
  }
  return out;
}

test('bridge with vlan_filtering (all via lib/netlink): trunks pass VLAN 100, an access port (PVID 100 untagged) joins it, a VLAN 200 port is cut off', () => {
  const s = new Scratch();
  try {
    const sw = s.ns('sw');
    const hs = s.handle(sw);
    hs.netlink.linkAdd({ kind: 'bridge', name: 'br0', vlanFiltering: true, up: true });
    const br = hs.netlink.linkGet('br0');
    assert.is((br as { vlanFiltering?: boolean }).vlanFiltering, true);
    assert.is((br as { vlanDefaultPvid?: number }).vlanDefaultPvid, 1);
    assert.is(ipLink(sw, 'br0').linkinfo?.info_data?.vlan_filtering, 1, 'ip sees vlan_filtering 1');

    // four hosts, each on its own port
    const hosts = ['h1', 'h2', 'h3', 'h4'].map((n) => {
      const ns = s.ns(n);
      const port = `p${n}`;
      hs.netlink.linkAdd({ kind: 'veth', name: port, master: 'br0', up: true, peer: { name: 'eth0', namespace: { netns: ns }, up: true } });
      const h = s.handle(ns);
      h.netlink.linkSetUp('lo');
      return { ns, port, h };
    });
    const [h1, h2, h3, h4] = hosts;
    // trunks h1, h2: VLAN 100 tagged; h3: VLAN 200 and a range 300-310, tagged; h4: access port, PVID 100 untagged
    hs.netlink.bridgeVlanAdd({ dev: h1.port, vid: 100 });
    hs.netlink.bridgeVlanAdd({ dev: h2.port, vid: 100 });
    hs.netlink.bridgeVlanAdd({ dev: h3.port, vid: 200 });
    hs.netlink.bridgeVlanAdd({ dev: h3.port, vid: 300, vidEnd: 310 });
    assert.ok(hs.netlink.bridgeVlanDel({ dev: h4.port, vid: 1 }));
    hs.netlink.bridgeVlanAdd({ dev: h4.port, vid: 100, pvid: true, untagged: true });
    hs.netlink.bridgeVlanAdd({ dev: 'br0', vid: 100, self: true });

    const lib = libraryVlans(hs);
    const tool = bridgeToolVlans(sw);
    assert.equal(lib, tool, 'library and `bridge vlan show` agree on every port');
    assert.equal(lib[h1.port], { 1: 'pvid untagged', 100: '' });
    assert.equal(lib[h4.port], { 100: 'pvid untagged' });
    assert.equal(Object.keys(lib[h3.port]).map(Number), [1, 200, ...Array.from({ length: 11 }, (_, i) => 300 + i)]);
    assert.equal(lib.br0, { 1: 'pvid untagged', 100: '' });
    const one = hs.netlink.bridgeVlanList({ dev: h4.port });
    assert.equal(one.map((v) => [v.dev, v.vid, v.pvid, v.untagged]), [[h4.port, 100, true, true]]);
    // the kernel (6.1) answers 0 to deleting a VLAN the port is not a member of, so a repeated delete
    // is harmless (and bridgeVlanDel cannot tell whether anything was removed)
    hs.netlink.bridgeVlanDel({ dev: h4.port, vid: 1 });
    hs.netlink.bridgeVlanDel({ dev: h4.port, vid: 77 }, { ifExists: true });
    assert.equal(libraryVlans(hs)[h4.port], { 100: 'pvid untagged' }, 'deleting non-members changes nothing');

    for (const [i, h] of [h1, h2, h3].entries()) {
      h.h.netlink.linkAdd({ kind: 'vlan', name: 'eth0.100', parent: 'eth0', id: 100, up: true });
      h.h.netlink.addrAdd({ dev: 'eth0.100', address: `10.50.0.${i + 1}/24` });
    }
    h4.h.netlink.addrAdd({ dev: 'eth0', address: '10.50.0.4/24' });

    assert.ok(pings(h1.ns, '10.50.0.2'), 'trunk to trunk, tagged 100');
    assert.ok(pings(h4.ns, '10.50.0.1'), 'access port (untagged) reaches a tagged trunk host in VLAN 100');
    assert.ok(pings(h2.ns, '10.50.0.4'), 'and back');
    assert.not.ok(pings(h1.ns, '10.50.0.3', 2), 'port without VLAN 100 drops it');

    // let VLAN 100 onto h3's port: now it works (the filter, not the setup, made the difference)
    hs.netlink.bridgeVlanAdd({ dev: h3.port, vid: 100 });
    assert.ok(pings(h1.ns, '10.50.0.3'), 'after adding VLAN 100 to its port');
    // and take it away from h2's: h2 is cut off
    hs.netlink.bridgeVlanDel({ dev: h2.port, vid: 100 });
    assert.equal(bridgeToolVlans(sw)[h2.port], { 1: 'pvid untagged' });
    nsTry(h1.ns, ['ip', 'neigh', 'flush', 'dev', 'eth0.100']);
    assert.not.ok(pings(h1.ns, '10.50.0.2', 2), 'after removing VLAN 100 from its port');
  } finally {
    s.cleanup();
  }
});

test.run();
