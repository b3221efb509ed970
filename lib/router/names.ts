/**
 * Names of every kernel object the router creates. Two forms per object, which can never be equal:
 *
 *   readable  upstream's own name (network-namespace-wrapper.sh / the CloudStack KVM agent), used whenever it
 *             is a full, unshortened name of at most 15 bytes (IFNAMSIZ - 1):
 *               namespace      cs-net-<networkId> | cs-vpc-<vpcId>
 *               guest veth     vh-<label>-<id> (host) / vn-<label>-<id> (namespace), <id> = vpcId ?? networkId
 *               public veth    vph-<label>-<id> / vpn-<label>-<id>
 *               <label>        the VLAN number, or x<vni> for VXLAN (our addition; upstream cannot tell VXLAN)
 *               VLAN device    <dev>.<vlan>;   bridge br<dev>-<vlan>
 *               VXLAN device   vxlan<vni>;     bridge brvx-<vni>         (the KVM agent's names)
 *               untagged       bridge br<dev>-u holding <dev> (no upstream rule)
 *   hashed    everything else (a readable name over 15 bytes, any untagged veth, a readable name that would
 *             have the shape of another family's readable name): `<tag>-h<base32 of sha256(all inputs)>`,
 *             tag vh/vn/vph/vpn (veths), vl (VLAN device), br (bridge). No readable name has an `h` right
 *             after `<tag>-` (veths: a digit or `x`), a single `-` after `br` (bridges end in `-<digits>`/`-u`
 *             after a device name) or no `.` (VLAN devices), so a hashed name never equals a readable one.
 *
 * Upstream shortens over-long guest veth names (id → hex / md5 prefix, then truncation), which made distinct
 * routers share a name (issue 20: `vph-x100000-100` for networks 4096 and 4097); those cases are hashed here.
 * What no name can express is the ambiguity of upstream's readable names themselves (network 8 and VPC 8, or
 * one VLAN number on two host devices, name the same veth `vh-100-8`): such a collision is refused by the
 * ownership marks (ownership.ts), never acted on. docs/contract.md §2.4 has the full table.
 */
import { createHash } from 'node:crypto';
import type { Segment } from './segment.js';
import { segmentText } from './segment.js';

/** Longest interface name the kernel accepts (IFNAMSIZ 16 including the NUL). */
export const IFNAME_MAX = 15;

export const NAMESPACE_PREFIX_NETWORK = 'cs-net-';
export const NAMESPACE_PREFIX_VPC = 'cs-vpc-';

/** Readable veth names: `<vh|vn|vph|vpn>-<vlan | x<vni>>-<id>`. */
const READABLE_VETH = /^(vh|vn|vph|vpn)-(x?[1-9][0-9]*)-./;
/** Readable VXLAN bridge, which a VLAN bridge of a device named `vx` would imitate. */
const READABLE_VXLAN_BRIDGE = /^brvx-[1-9][0-9]*$/;

const fits = (name: string): boolean => Buffer.byteLength(name) <= IFNAME_MAX;

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** `n` base32 characters of sha256 over the parts (JSON-encoded, so no two part lists share an input). */
export function nameHash(parts: readonly string[], n: number): string {
  const d = createHash('sha256').update(JSON.stringify(['netns-router/names/1', ...parts])).digest();
  let out = '';
  for (let bit = 0; out.length < n; bit += 5) {
    const byte = bit >> 3;
    const word = ((d[byte] << 8) | (d[byte + 1] ?? 0)) >> (11 - (bit & 7));
    out += BASE32[word & 31];
  }
  return out;
}

/** `<tag>-h<hash>`, filling the 15 bytes. */
function hashed(tag: string, parts: readonly string[]): string {
  const head = `${tag}-h`;
  return head + nameHash(parts, IFNAME_MAX - head.length);
}

/** Router namespace: cs-vpc-<vpcId> for VPC tiers and VPCs, cs-net-<networkId> otherwise. */
export function routerNamespace(ref: { networkId?: string; vpcId?: string }): string {
  if (ref.vpcId !== undefined) return `${NAMESPACE_PREFIX_VPC}${ref.vpcId}`;
  if (ref.networkId !== undefined) return `${NAMESPACE_PREFIX_NETWORK}${ref.networkId}`;
  throw new Error('routerNamespace: neither vpcId nor networkId');
}

/** CHOSEN_ID upstream: the id that names veths (the VPC's for tiers). */
export function routerId(ref: { networkId?: string; vpcId?: string }): string {
  const id = ref.vpcId ?? ref.networkId;
  if (id === undefined) throw new Error('routerId: neither vpcId nor networkId');
  return id;
}

/** The `<label>` of readable veth names, or undefined when the segment has none (untagged). */
export function segmentLabel(seg: Segment): string | undefined {
  switch (seg.kind) {
    case 'vlan': return String(seg.id);
    case 'vxlan': return `x${seg.vni}`;
    case 'untagged': return undefined;
  }
}

/** Everything that tells one router attachment (a veth pair) from every other on the host. */
export interface VethInputs {
  role: 'guest' | 'public';
  /** The router's namespace (unique on the host). */
  namespace: string;
  /** The id in readable names: the VPC id for VPC routers, else the network id. */
  routerId: string;
  /** Guest attachments: the network (tier) id. */
  networkId?: string;
  segment: Segment;
  /** Host uplink device carrying the segment. */
  device: string;
}

/** Host and namespace ends of a router attachment's veth pair. */
export function vethNames(v: VethInputs): { host: string; ns: string } {
  const [hp, np] = v.role === 'guest' ? ['vh', 'vn'] : ['vph', 'vpn'];
  const label = segmentLabel(v.segment);
  if (label !== undefined) {
    const host = `${hp}-${label}-${v.routerId}`;
    const ns = `${np}-${label}-${v.routerId}`;
    if (fits(host) && fits(ns)) return { host, ns };
  }
  const parts = ['veth', v.role, v.namespace, v.networkId ?? '', segmentText(v.segment), v.device];
  return { host: hashed(hp, parts), ns: hashed(np, parts) };
}

/**
 * Host device carrying the segment: `<dev>.<vlan>` (802.1Q), `vxlan<vni>`, or null for an untagged segment
 * (the host device itself).
 */
export function segmentDeviceName(dev: string, seg: Segment): string | null {
  switch (seg.kind) {
    case 'vlan': {
      const readable = `${dev}.${seg.id}`;
      // a device named like a veth (`vh-100-1`) would give a readable veth name (`vh-100-1.5`)
      return fits(readable) && !READABLE_VETH.test(readable) ? readable : hashed('vl', ['vlan', dev, String(seg.id)]);
    }
    case 'vxlan': return `vxlan${seg.vni}`;
    case 'untagged': return null;
  }
}

/** Host bridge of the segment: `br<dev>-<vlan>`, `brvx-<vni>`, `br<dev>-u`. */
export function bridgeName(dev: string, seg: Segment): string {
  switch (seg.kind) {
    case 'vlan': {
      const readable = `br${dev}-${seg.id}`;
      // device `vx`: brvx-<vlan> is the VXLAN bridge of VNI <vlan>
      return fits(readable) && !READABLE_VXLAN_BRIDGE.test(readable) ? readable : hashed('br', ['bridge', dev, segmentText(seg)]);
    }
    case 'vxlan': return `brvx-${seg.vni}`;
    case 'untagged': {
      const readable = `br${dev}-u`;
      return fits(readable) ? readable : hashed('br', ['bridge', dev, segmentText(seg)]);
    }
  }
}

/** True when the kernel accepts `name` as an interface name. */
export function isValidIfName(name: string): boolean {
  return name.length >= 1 && Buffer.byteLength(name) <= IFNAME_MAX && !/[/:\s]/.test(name) && name !== '.' && name !== '..';
}
