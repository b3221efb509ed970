/**
 * The kernel side of one router namespace, as data: which host links (uplink segment device, bridge, host end
 * of each veth) and which namespace objects (veth ends, addresses, routes, sysctls) must exist. Computed from
 * the stored desired state by the topology module and applied idempotently by plumbing.ts.
 */
import type { Segment } from './segment.js';
import type { IpFamily } from '../util/ip.js';

/** One attachment of the router namespace to a host bridge (a guest network/tier or a public VLAN). */
export interface Attachment {
  /**
   * What the attachment is, for its links' ownership mark and messages: "guest 42 vlan://100 eth1" (an isolated
   * network or VPC tier), "shared 42 …" (a shared network), "public vlan://200 eth1". The first word is the side
   * (plumbing.ts checkSegmentsApart reads it in other routers' marks too).
   */
  role?: string;
  /** Host uplink device that carries the segment (guest.network.device / public.network.device). */
  hostDev: string;
  segment: Segment;
  /**
   * Name of the segment device on the host: `<dev>.<vlan>` for VLANs, the VXLAN device, or hostDev itself. A
   * device already carrying the segment under another name (made by the KVM agent, say) is used instead.
   */
  segmentDev: string;
  /** Host bridge `br<dev>-<vlan>`, made when the segment device is in no bridge yet (else that bridge is used). */
  bridge: string;
  /** Host end of the veth (enslaved to the bridge). */
  hostVeth: string;
  /** Namespace end of the veth. */
  nsVeth: string;
  /** Stable MAC of the namespace end, so that guests' ARP caches stay valid across re-creation. */
  nsMac?: string;
  /** Addresses on the namespace end ("10.1.1.1/24"). */
  addresses: string[];
  /** IPv6 off on the namespace end (no IPv6 configured for it). */
  disableIpv6: boolean;
  /** Send gratuitous ARP for these IPv4 addresses after they are (re)added. */
  garp?: string[];
  /**
   * IPv4 addresses of the segment that are NOT put on the namespace end but answered for by the router's ARP
   * responder (lib/router/arp-responder.ts), with `nsMac`: static NAT addresses (topology.ts publicAttachments).
   */
  arpOnly?: string[];
  /** Proxy-ARP on the namespace end (answer for other addresses of the segment). */
  proxyArp?: boolean;
}

export interface PlanRoute {
  /** "default" or CIDR. */
  dst: string;
  via?: string;
  /** Namespace-side device (an Attachment.nsVeth). */
  dev?: string;
  table?: number;
  metric?: number;
  family?: IpFamily;
}

export interface PlumbingPlan {
  /** Router namespace name (cs-net-<id> / cs-vpc-<id>). */
  netns: string;
  attachments: Attachment[];
  routes: PlanRoute[];
  /** Namespace-wide sysctls, e.g. net.ipv4.ip_forward=1. */
  sysctls: Record<string, string | number>;
}

/** Prefixes of namespace links netns-router owns: stale ones (not in the plan) are removed on reconcile. */
export const OWNED_NS_LINK_PREFIXES = ['vn-', 'vpn-'];
