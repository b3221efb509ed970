/**
 * Names of every kernel object the router creates, computed exactly like the upstream
 * network-namespace-wrapper.sh wherever upstream produces a valid name, and never longer than
 * 15 bytes (IFNAMSIZ - 1) anywhere.
 *
 * Upstream rules (network-namespace-wrapper.sh):
 *   namespace          cs-net-<networkId> | cs-vpc-<vpcId>
 *   guest veth         vh-<vlan>-<id> (host) / vn-<vlan>-<id> (namespace), <id> = vpcId ?? networkId;
 *                      if longer than 15: <id> → shorten_id(<id>); still longer: cut to 15
 *   public veth        vph-<pvlan>-<id> / vpn-<pvlan>-<id> (upstream never shortens these; an
 *                      over-long name makes `ip link add` fail there — we apply the guest rule)
 *   VLAN device        <dev>.<vlan>;  bridge br<dev>-<vlan>
 *   shorten_id(id)     bash `printf '%d'` accepts it → `printf '%x'` (hex); else the first 6 hex
 *                      digits of md5(id)
 * Our additions where upstream has no (working) rule:
 *   vxlan segment      device vxlan<vni>, bridge brvx-<vni> (CloudStack KVM agent's names), veth
 *                      label x<vni>
 *   untagged segment   no segment device; the bridge is the host device itself (as the KVM agent
 *                      plugs untagged NICs into the traffic-label bridge); veth label "u"
 *   over-long <dev>    replaced by the first 6 hex digits of md5(<dev>) in device/bridge names
 */
import { createHash } from 'node:crypto';
import type { Segment } from './contract/types.js';

/** Longest interface name the kernel accepts (IFNAMSIZ 16 including the NUL). */
export const IFNAME_MAX = 15;

export const NAMESPACE_PREFIX_NETWORK = 'cs-net-';
export const NAMESPACE_PREFIX_VPC = 'cs-vpc-';

export function md5Hex6(text: string): string {
  return createHash('md5').update(text, 'utf8').digest('hex').slice(0, 6);
}

const UINTMAX = (1n << 64n) - 1n;

/**
 * The integer bash's `printf '%d' ID` accepts (decimal, 0x hex, leading-0 octal; an out-of-range
 * value only draws a warning, status stays 0), or undefined when it fails ("08": invalid octal).
 */
export function bashInteger(id: string): bigint | undefined {
  let v: bigint;
  if (/^[1-9][0-9]*$/.test(id)) v = BigInt(id);
  else if (/^0[xX][0-9a-fA-F]+$/.test(id)) v = BigInt(`0x${id.slice(2)}`);
  else if (/^0[0-7]*$/.test(id)) v = id.length === 1 ? 0n : BigInt(`0o${id.slice(1)}`);
  else return undefined;
  return v;
}

/**
 * Upstream shorten_id: `printf '%x'` of a numeric id (bash converts with strtoumax, so values
 * beyond 2^64-1 clamp to ffffffffffffffff), else the md5 prefix.
 */
export function shortenId(id: string): string {
  if (id === '') return '';
  const n = bashInteger(id);
  if (n === undefined) return md5Hex6(id);
  return (n > UINTMAX ? UINTMAX : n).toString(16);
}

/** The `<vlan>` part of veth names. */
export function segmentLabel(seg: Segment): string {
  switch (seg.kind) {
    case 'vlan': return String(seg.id);
    case 'untagged': return 'u';
    case 'vxlan': return `x${seg.vni}`;
  }
}

/** Upstream veth_host_name/veth_ns_name algorithm for `<prefix>-<label>-<id>`. */
export function fitVethName(prefix: string, label: string, id: string): string {
  const full = `${prefix}-${label}-${id}`;
  if (full.length <= IFNAME_MAX) return full;
  const short = `${prefix}-${label}-${shortenId(id)}`;
  return short.length <= IFNAME_MAX ? short : short.slice(0, IFNAME_MAX);
}

/** CHOSEN_ID upstream: the id that names veths (the VPC's for tiers). */
export function routerId(ref: { networkId?: string; vpcId?: string }): string {
  const id = ref.vpcId ?? ref.networkId;
  if (id === undefined) throw new Error('routerId: neither vpcId nor networkId');
  return id;
}

/** Router namespace: cs-vpc-<vpcId> for VPC tiers and VPCs, cs-net-<networkId> otherwise. */
export function routerNamespace(ref: { networkId?: string; vpcId?: string }): string {
  if (ref.vpcId !== undefined) return `${NAMESPACE_PREFIX_VPC}${ref.vpcId}`;
  if (ref.networkId !== undefined) return `${NAMESPACE_PREFIX_NETWORK}${ref.networkId}`;
  throw new Error('routerNamespace: neither vpcId nor networkId');
}

export const guestVethHost = (seg: Segment, id: string) => fitVethName('vh', segmentLabel(seg), id);
export const guestVethNs = (seg: Segment, id: string) => fitVethName('vn', segmentLabel(seg), id);
export const publicVethHost = (seg: Segment, id: string) => fitVethName('vph', segmentLabel(seg), id);
export const publicVethNs = (seg: Segment, id: string) => fitVethName('vpn', segmentLabel(seg), id);

/** `dev` as-is when it fits in `room` characters, else its md5 prefix. */
function fitDevice(dev: string, room: number): string {
  return dev.length <= room ? dev : md5Hex6(dev);
}

/**
 * Host device carrying the segment: `<dev>.<vlan>` (802.1Q), `vxlan<vni>`, or null for an
 * untagged segment (the host device itself is used).
 */
export function segmentDevice(dev: string, seg: Segment): string | null {
  switch (seg.kind) {
    case 'vlan': {
      const suffix = `.${seg.id}`;
      return `${fitDevice(dev, IFNAME_MAX - suffix.length)}${suffix}`;
    }
    case 'vxlan': return `vxlan${seg.vni}`;
    case 'untagged': return null;
  }
}

/** Host bridge of the segment: br<dev>-<vlan>, brvx-<vni>, or `dev` itself when untagged. */
export function hostBridge(dev: string, seg: Segment): string {
  switch (seg.kind) {
    case 'vlan': {
      const suffix = `-${seg.id}`;
      return `br${fitDevice(dev, IFNAME_MAX - 2 - suffix.length)}${suffix}`;
    }
    case 'vxlan': return `brvx-${seg.vni}`;
    case 'untagged': return dev;
  }
}

export interface SegmentLinkNames {
  /** VLAN/VXLAN device on the host, null for untagged */
  segmentDevice: string | null;
  /** bridge on the host the veth host end joins */
  bridge: string;
  /** veth end on the host */
  vethHost: string;
  /** veth end in the router namespace */
  vethNs: string;
}

/** Names for a guest network (or VPC tier) attachment. */
export function guestLinkNames(
  ref: { networkId: string; vpcId?: string }, seg: Segment, guestDevice: string,
): SegmentLinkNames {
  const id = routerId(ref);
  return {
    segmentDevice: segmentDevice(guestDevice, seg),
    bridge: hostBridge(guestDevice, seg),
    vethHost: guestVethHost(seg, id),
    vethNs: guestVethNs(seg, id),
  };
}

/** Names for a public segment attachment of a router. */
export function publicLinkNames(
  ref: { networkId?: string; vpcId?: string }, seg: Segment, publicDevice: string,
): SegmentLinkNames {
  const id = routerId(ref);
  return {
    segmentDevice: segmentDevice(publicDevice, seg),
    bridge: hostBridge(publicDevice, seg),
    vethHost: publicVethHost(seg, id),
    vethNs: publicVethNs(seg, id),
  };
}

/** True when the kernel accepts `name` as an interface name. */
export function isValidIfName(name: string): boolean {
  return name.length >= 1 && Buffer.byteLength(name) <= IFNAME_MAX && !/[/:\s]/.test(name) && name !== '.' && name !== '..';
}
