/**
 * Interface and namespace names (lib/router/names.ts): upstream's readable names where they are full, a hashed
 * form of a distinct shape everywhere else; no two different things ever get one name, except where
 * upstream's readable veth names are ambiguous themselves (documented; the ownership marks refuse those).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  IFNAME_MAX, bridgeName, isValidIfName, nameHash, routerId, routerNamespace, segmentDeviceName, segmentLabel, vethNames,
  type VethInputs,
} from '../../lib/router/names.js';
import { segmentText, type Segment } from '../../lib/router/segment.js';
import { prng } from '../helpers/prng.js';


const vlan = (id: number): Segment => ({ kind: 'vlan', id });
const vxlan = (vni: number): Segment => ({ kind: 'vxlan', vni });
const untagged: Segment = { kind: 'untagged' };
const HASHED = /^(vh|vn|vph|vpn|vl|br)-h[a-z2-7]+$/;

/** A router (kind + id) as the engine names it. */
const net = (id: string) => ({ namespace: routerNamespace({ networkId: id }), routerId: id });
const vpc = (id: string) => ({ namespace: routerNamespace({ vpcId: id }), routerId: id });
const guest = (r: { namespace: string; routerId: string }, networkId: string, segment: Segment, device = 'eth1') =>
  vethNames({ role: 'guest', ...r, networkId, segment, device });
const pub = (r: { namespace: string; routerId: string }, segment: Segment, device = 'eth1') =>
  vethNames({ role: 'public', ...r, segment, device });

test('namespaces: cs-net-<networkId>, cs-vpc-<vpcId> (VPC wins)', () => {
  assert.is(routerNamespace({ networkId: '209' }), 'cs-net-209');
  assert.is(routerNamespace({ vpcId: '5' }), 'cs-vpc-5');
  assert.is(routerNamespace({ networkId: '42', vpcId: '5' }), 'cs-vpc-5');
  assert.is(routerId({ networkId: '42', vpcId: '5' }), '5');
  assert.is(routerId({ networkId: '42' }), '42');
});

test('readable names: upstream\'s own wherever they are full (≤ 15 bytes)', () => {
  // upstream README: network 209, VLAN 1910
  assert.equal(guest(net('209'), '209', vlan(1910)), { host: 'vh-1910-209', ns: 'vn-1910-209' });
  assert.equal(pub(net('209'), vlan(101)), { host: 'vph-101-209', ns: 'vpn-101-209' });
  assert.equal(guest(vpc('5'), '42', vlan(200), 'eth2'), { host: 'vh-200-5', ns: 'vn-200-5' }, 'VPC tiers: the VPC id');
  assert.equal(guest(net('1234567'), '1234567', vlan(4094)), { host: 'vh-4094-1234567', ns: 'vn-4094-1234567' }, 'exactly 15');
  assert.equal(pub(net('1'), vlan(1)), { host: 'vph-1-1', ns: 'vpn-1-1' });
  assert.equal(guest(net('0'), '0', vlan(1)), { host: 'vh-1-0', ns: 'vn-1-0' }, 'id 0');
  assert.equal(guest(net('010'), '010', vlan(100)), { host: 'vh-100-010', ns: 'vn-100-010' }, 'ids verbatim (no bash octal)');
  assert.equal(guest(net('42'), '42', vxlan(5000)), { host: 'vh-x5000-42', ns: 'vn-x5000-42' }, 'VXLAN label x<vni>');
  assert.equal(guest(net('42'), '42', vxlan(16777215)), { host: 'vh-x16777215-42', ns: 'vn-x16777215-42' });
  assert.is(segmentDeviceName('eth1', vlan(100)), 'eth1.100');
  assert.is(segmentDeviceName('enp129s0f0', vlan(4094)), 'enp129s0f0.4094');
  assert.is(segmentDeviceName('eth1', vxlan(1)), 'vxlan1');
  assert.is(segmentDeviceName('eth1', vxlan(16777215)), 'vxlan16777215');
  assert.is(segmentDeviceName('eth1', untagged), null);
  assert.is(bridgeName('eth1', vlan(1910)), 'breth1-1910');
  assert.is(bridgeName('bond0', vlan(4094)), 'brbond0-4094');
  assert.is(bridgeName('eth1', vxlan(5000)), 'brvx-5000');
  assert.is(bridgeName('eth1', vxlan(16777215)), 'brvx-16777215');
  assert.is(bridgeName('eth1', untagged), 'breth1-u');
  assert.is(bridgeName('cloudbr1', untagged), 'brcloudbr1-u');
  assert.is(segmentLabel(untagged), undefined);
});

test('hashed names: over-long, untagged, or shaped like another family — 15 bytes, a shape no readable name has', () => {
  const long = guest(net('12345678'), '12345678', vlan(4094));
  assert.match(long.host, /^vh-h[a-z2-7]{11}$/);
  assert.match(long.ns, /^vn-h[a-z2-7]{11}$/);
  assert.is(long.host.slice(4), long.ns.slice(4), 'both ends show the same hash');
  assert.match(pub(net('1234567'), vlan(4094)).host, /^vph-h[a-z2-7]{10}$/);
  assert.match(guest(net('42'), '42', untagged).host, /^vh-h/, 'untagged veths have no upstream name: hashed, device included');
  assert.match(segmentDeviceName('enp129s0f0np0', vlan(10))!, /^vl-h[a-z2-7]{11}$/);
  assert.match(bridgeName('enp129s0f0', vlan(100)), /^br-h[a-z2-7]{11}$/);
  assert.match(bridgeName('enp129s0f0np0', untagged), /^br-h/);
  // a device named `vx` would make VLAN bridges look like VXLAN bridges, one named like a veth VLAN devices like veths
  assert.match(bridgeName('vx', vlan(100)), HASHED);
  assert.is.not(bridgeName('vx', vlan(100)), bridgeName('eth1', vxlan(100)));
  assert.match(segmentDeviceName('vh-100-1', vlan(5))!, HASHED);
  assert.is.not(segmentDeviceName('vh-100-1', vlan(5)), guest(net('1.5'), '1.5', vlan(100)).host);
  assert.is(segmentDeviceName('vh100', vlan(5)), 'vh100.5', 'only a veth-shaped result is hashed');
  assert.is(nameHash(['a'], 11), nameHash(['a'], 11));
  assert.is.not(nameHash(['a', 'b'], 11), nameHash(['a b'], 11));
});

test('issue 20 collisions: VXLAN public veths of networks 4096/4097 and 300/301, untagged VPC tiers on two devices', () => {
  for (const [a, b, vni] of [['4096', '4097', 100000], ['300', '301', 16777215], ['1000', '1001', 1000000]] as const) {
    const na = pub(net(a), vxlan(vni));
    const nb = pub(net(b), vxlan(vni));
    assert.is.not(na.host, nb.host, `${a}/${b} on vxlan://${vni}`);
    assert.match(na.host, HASHED);
  }
  const t1 = guest(vpc('8'), '201', untagged, 'eth1');
  const t2 = guest(vpc('8'), '202', untagged, 'eth2');
  assert.is.not(t1.ns, t2.ns, 'tiers of one VPC on two devices: different namespace ends');
  assert.is.not(t1.host, t2.host);
  // and the same tier on the same device is stable
  assert.equal(guest(vpc('8'), '201', untagged, 'eth1'), t1);
});

/** Every derived name of one attachment, with what it stands for. Identities: what the name must tell apart. */
function namesOf(v: VethInputs): Array<{ name: string; id: string; readableVeth?: string }> {
  const out: Array<{ name: string; id: string; readableVeth?: string }> = [];
  const { host, ns } = vethNames(v);
  const who = JSON.stringify([v.role, v.namespace, v.role === 'guest' ? v.networkId : '', segmentText(v.segment), v.device]);
  const label = segmentLabel(v.segment);
  // upstream's readable veth names say role, label and id only: that much must still differ
  const upstreamKey = label === undefined ? undefined : JSON.stringify([v.role, label, v.routerId]);
  out.push({ name: host, id: `veth-host ${who}`, readableVeth: HASHED.test(host) ? undefined : `host ${upstreamKey}` });
  out.push({ name: ns, id: `veth-ns ${who}`, readableVeth: HASHED.test(ns) ? undefined : `ns ${upstreamKey}` });
  // a VXLAN segment is one per VNI on the host (vxlan<vni>/brvx-<vni>, as the KVM agent names them)
  const seg = v.segment.kind === 'vxlan' ? `vxlan ${v.segment.vni}` : `${segmentText(v.segment)} ${v.device}`;
  const sd = segmentDeviceName(v.device, v.segment);
  if (sd !== null) out.push({ name: sd, id: `segment-device ${seg}` });
  out.push({ name: bridgeName(v.device, v.segment), id: `bridge ${seg}` });
  return out;
}

/**
 * Names must be injective: a name met twice stands for the same thing, or both times for a readable veth name
 * of the same upstream key (role, label, id) — upstream's own ambiguity (network 8 / VPC 8, one VLAN number
 * on two devices), which ownership marks make non-actionable.
 */
function assertInjective(all: Iterable<VethInputs>, what: string): number {
  const byName = new Map<string, { id: string; readableVeth?: string }>();
  let n = 0;
  for (const v of all) {
    for (const e of namesOf(v)) {
      n++;
      assert.ok(isValidIfName(e.name) && Buffer.byteLength(e.name) <= IFNAME_MAX, `${what}: invalid name ${JSON.stringify(e.name)} for ${e.id}`);
      const prev = byName.get(e.name);
      if (!prev) {
        byName.set(e.name, e);
        continue;
      }
      if (prev.id === e.id) continue;
      const upstreamAmbiguity = prev.readableVeth !== undefined && prev.readableVeth === e.readableVeth;
      assert.ok(upstreamAmbiguity, `${what}: "${e.name}" names both ${prev.id} and ${e.id}`);
    }
  }
  return n;
}

const EDGE_IDS = ['0', '1', '9', '42', '300', '301', '4096', '4097', '1234567', '12345678', '4294967295', '18446744073709551615',
  '99999999999999999999999', '010', '08', '0x1f', '1.5', 'abc', 'abcdefghij', 'f47ac10b-58cc-4372-a567-0e02b2c3d479', 'a'.repeat(64),
  `Z${'9'.repeat(63)}`, 'a-b', 'a_b', 'a.b.c'];
const EDGE_SEGS: Segment[] = [vlan(1), vlan(2), vlan(99), vlan(100), vlan(4094), untagged, vxlan(1), vxlan(100), vxlan(4094),
  vxlan(4096), vxlan(100000), vxlan(1000000), vxlan(16777215)];
const EDGE_DEVS = ['eth1', 'eth2', 'bond0.100', 'enp129s0f0', 'enp129s0f0np0', 'cloudbr1', 'x'.repeat(15), 'vx', 'vh-100-1', 'br0', 'e'];

function* edgeInputs(): Generator<VethInputs> {
  for (const id of EDGE_IDS) {
    for (const kind of ['network', 'vpc'] as const) {
      const r = kind === 'network' ? net(id) : vpc(id);
      for (const segment of EDGE_SEGS) {
        for (const device of EDGE_DEVS) {
          yield { role: 'public', ...r, segment, device };
          yield { role: 'guest', ...r, networkId: kind === 'network' ? id : `${id.slice(0, 60)}t1`, segment, device };
          if (kind === 'vpc') yield { role: 'guest', ...r, networkId: `${id.slice(0, 60)}t2`, segment, device };
        }
      }
    }
  }
}

test('edge cases: VLAN 1/4094, VNI 1/16777215, ids 0/huge/non-numeric/64 chars, long and odd devices, VPC tiers', () => {
  const n = assertInjective(edgeInputs(), 'edge cases');
  assert.ok(n > 50_000, `${n} names checked`);
});

test('property: random ids, VLANs, VNIs and devices never share a name', () => {
  const seed = Number(process.env.NAMES_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const rnd = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)];
  const chars = (alphabet: string, len: number) => Array.from({ length: len }, () => alphabet[int(0, alphabet.length - 1)]).join('');
  const ID_REST = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-';
  const randomId = (): string => {
    switch (int(0, 5)) {
      case 0: return String(int(0, 5000));
      case 1: return String(int(0, 2 ** 31)) + (rnd() < 0.5 ? String(int(0, 99999)) : '');
      case 2: return `0${String(int(0, 999))}`;
      case 3: return chars('0123456789abcdef', int(8, 32));
      case 4: return chars('abcdefghijklmnopqrstuvwxyz0123456789', 1) + chars(ID_REST, int(0, 63));
      default: return pick(EDGE_IDS);
    }
  };
  const randomSeg = (): Segment => {
    switch (int(0, 4)) {
      case 0: return vlan(pick([1, 4094, int(1, 4094)]));
      case 1: return vlan(int(1, 4094));
      case 2: return vxlan(pick([1, 16777215, 4096, 100000, int(1, 16777215)]));
      case 3: return vxlan(int(1, 16777215));
      default: return untagged;
    }
  };
  const randomDev = (): string => rnd() < 0.4 ? pick(EDGE_DEVS) : chars('abcdefghijklmnopqrstuvwxyz', 1) + chars('abcdefghijklmnopqrstuvwxyz0123456789._-', int(0, 14));
  function* inputs(): Generator<VethInputs> {
    for (let i = 0; i < 40_000; i++) {
      const id = randomId();
      const r = rnd() < 0.5 ? net(id) : vpc(id);
      const segment = randomSeg();
      const device = randomDev();
      if (rnd() < 0.5) yield { role: 'public', ...r, segment, device };
      else yield { role: 'guest', ...r, networkId: r.namespace.startsWith('cs-net-') ? id : randomId(), segment, device };
    }
  }
  const n = assertInjective(inputs(), `seed ${seed} (rerun with NAMES_SEED=${seed})`);
  assert.ok(n > 100_000);
});

test('upstream\'s readable ambiguity exists only where upstream has it (and is refused by ownership marks)', () => {
  // network 8 and VPC 8 on public VLAN 50: upstream names both vph-50-8
  assert.is(pub(net('8'), vlan(50)).host, pub(vpc('8'), vlan(50)).host);
  // but not for untagged or over-long names, which are ours
  assert.is.not(pub(net('8'), untagged).host, pub(vpc('8'), untagged).host);
  assert.is.not(pub(net('12345678901'), vxlan(5)).host, pub(vpc('12345678901'), vxlan(5)).host);
});

test.run();
