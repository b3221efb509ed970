/**
 * Desired state of one router namespace, as the engine reconciles it: an isolated network (one tier) or a VPC
 * (many tiers sharing one namespace), its public IPs and NAT. Stored as JSON, one file per namespace.
 */
import type { Segment } from './segment.js';
import type { PortForward } from './router-table.js';

export const MODEL_VERSION = 1;

/** A guest network of a router (the network itself, or a VPC tier): segment, addressing, whether implemented. */
export interface TierModel {
  networkId: string;
  segment: Segment;
  /** Host uplink carrying the segment (guest.network.device). */
  hostDev: string;
  gateway: string;
  /** Guest CIDR, canonical network/prefix ("10.1.1.0/24"). */
  cidr: string;
  /** Address the router's veth carries (default: the gateway). */
  extensionIp: string;
  ip6Gateway?: string;
  ip6Cidr?: string;
  dns?: string[];
  dns6?: string[];
  domain?: string;
  /** 'l2' only in models stored by versions before L2 networks got their own `RouterModel.l2` slot. */
  guestType: 'isolated' | 'shared' | 'l2';
  /** false after shutdown-network: state kept, kernel objects removed. */
  implemented: boolean;
}

/**
 * An L2 network (guest_type l2): a segment and nothing at L3 — no namespace, no address, no service. The
 * engine keeps the segment device and host bridge for it (lib/router/l2-segment.ts).
 */
export interface L2Model {
  networkId: string;
  segment: Segment;
  /** Host uplink carrying the segment (guest.network.device). */
  hostDev: string;
  /** false after shutdown-network: state kept, the links it made removed. */
  implemented: boolean;
}

/** A public IP of a router: address, segment, gateway, prefix, whether source NAT. */
export interface PublicIpModel {
  ip: string;
  prefixLen: number;
  segment: Segment;
  /** public.network.device */
  hostDev: string;
  gateway?: string;
  sourceNat: boolean;
  /** Network (tier) that owns it; for a VPC-level IP the VPC id. */
  owner: string;
}

/** A port forward as stored (same shape the NAT ruleset consumes). */
export type PortForwardModel = PortForward;

/**
 * The desired state of one router namespace: its tiers (one for an isolated network), public IPs, NAT, the
 * modules' state (`extra`). Stored as JSON, one file per namespace.
 */
export interface RouterModel {
  version: number;
  namespace: string;
  kind: 'network' | 'vpc';
  /** Id used in interface names: the network id, or the VPC id. */
  nameId: string;
  vpc?: { id: string; cidr?: string; implemented: boolean };
  tiers: Record<string, TierModel>;
  /** Set for an L2 network instead of tiers (never together with tiers, public IPs or a VPC). */
  l2?: L2Model;
  publicIps: Record<string, PublicIpModel>;
  staticNats: Array<{ publicIp: string; privateIp: string }>;
  portForwards: PortForwardModel[];
  /** Policy-routing tables created by custom actions (id → name). */
  pbrTables?: Record<string, string>;
  /**
   * The namespace existed before netns-router and was adopted on request (network-extension-details
   * `adopt-namespace`), see ownership.ts. Set by the command that made the router; informative afterwards.
   */
  adoptedNamespace?: true;
  /** Slots for services and filtering modules (firewall, ACL, DHCP, metadata, LB). */
  extra?: Record<string, unknown>;
}

/** A router model with nothing implemented yet. */
export function emptyModel(namespace: string, kind: 'network' | 'vpc', nameId: string): RouterModel {
  return { version: MODEL_VERSION, namespace, kind, nameId, tiers: {}, publicIps: {}, staticNats: [], portForwards: [] };
}

/** A model that holds nothing at all: the one the engine starts from for a command on a router it does not know. */
export function modelIsEmpty(m: RouterModel): boolean {
  return !Object.keys(m.tiers).length && !m.vpc && !m.l2 && !Object.keys(m.publicIps).length && !m.staticNats.length
    && !m.portForwards.length && !Object.keys(m.extra ?? {}).length;
}

/** True when nothing is implemented any more (the namespace can go). */
export function modelIsIdle(m: RouterModel): boolean {
  return !Object.values(m.tiers).some((t) => t.implemented) && !(m.vpc?.implemented);
}
