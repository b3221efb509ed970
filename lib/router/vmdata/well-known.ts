/**
 * The metadata service at the well-known addresses guests' agents use, on every tier that serves it:
 *
 *   169.254.169.254:80   DNAT (this module's nft objects) to the tier's router address, where the daemon
 *                        listens: per tier interface, so each tier's guests reach their own tier's service
 *                        and replies leave by the guest's own route (conntrack undoes the DNAT). Nothing
 *                        answers ARP for it: guests reach it through their default route (a guest with an
 *                        on-link 169.254.0.0/16 route, "zeroconf", does not). Packets to 169.254.169.254
 *                        that are not for port 80 are not forwarded anywhere (a link-local address).
 *   [fe80::a9fe:a9fe]:80 an address on each such tier interface that has IPv6 (link-local: it never leaves the
 *                        link), with a listener of its own per interface (listen.json's linkLocal).
 *
 * Also the MTU of each tier's guest segment, for network_data.json: the smaller of the router's host-side
 * veth and the bridge it is in (a VXLAN segment makes the bridge smaller).
 */
import type { RouterModel, TierModel } from '../model.js';
import type { NsOps } from '../kernel.js';
import { tierAttachment } from '../topology.js';
import { SystemError } from '../../util/errors.js';
import { baseChain, rule, type NftObject } from '../../nft/objects.js';
import { counter, dnat, drop, ip, meta, tcp } from '../../nft/expr.js';
import { ROUTER_PRIORITIES } from '../../nft/priorities.js';
import { METADATA_PORT, WELL_KNOWN_V4, WELL_KNOWN_V6 } from '../../services/metadata/layout.js';

const DNAT_CHAIN = 'metadata_dnat';
const FWD_CHAIN = 'metadata_fwd';
/** The IPv6 address as the kernel lists it, with its prefix. */
const V6_ADDRESS = `${WELL_KNOWN_V6}/64`;

/** The router's namespace-side interface of a tier. */
export const tierIfname = (m: RouterModel, t: TierModel): string => tierAttachment(m, t).nsVeth;

/** Tiers with IPv6 among `tiers` (the link-local address needs IPv6 on the interface). */
export const hasIpv6 = (t: TierModel): boolean => !!(t.ip6Gateway && t.ip6Cidr);

/** The nft objects: 169.254.169.254:80 → each served tier's router address; the address never forwarded. */
export function wellKnownObjects(m: RouterModel, served: TierModel[]): NftObject[] {
  if (!served.length) return [];
  const objs: NftObject[] = [
    baseChain(DNAT_CHAIN, { type: 'nat', hook: 'prerouting', priority: ROUTER_PRIORITIES.dstnat }),
    baseChain(FWD_CHAIN, { type: 'filter', hook: 'forward', priority: ROUTER_PRIORITIES.filter }),
  ];
  for (const t of served) {
    objs.push(rule(DNAT_CHAIN, [meta.iifname(tierIfname(m, t)), ip.daddr(WELL_KNOWN_V4), tcp.dport(METADATA_PORT), dnat({ family: 'ip', addr: t.extensionIp })],
      { comment: `metadata of network ${t.networkId}` }));
  }
  objs.push(rule(FWD_CHAIN, [ip.daddr(WELL_KNOWN_V4), counter(), drop()], { comment: 'link-local metadata address: never forwarded' }));
  return objs;
}

/**
 * fe80::a9fe:a9fe on the interface of each tier in `want`, off the router's other tier interfaces (the
 * plumbing leaves link-local addresses alone, so only this module adds and removes it). No DAD: the address
 * must answer at once, and no guest may hold it.
 */
export function ensureLinkLocal(ns: NsOps, m: RouterModel, want: TierModel[]): void {
  const wanted = new Set(want.map((t) => tierIfname(m, t)));
  for (const t of Object.values(m.tiers)) {
    if (!t.implemented || t.guestType === 'l2' || !hasIpv6(t)) continue;
    const dev = tierIfname(m, t);
    try {
      const has = ns.netlink.addrList({ dev, family: 6 }).some((a) => a.ip === WELL_KNOWN_V6);
      if (wanted.has(dev) && !has) ns.netlink.addrReplace({ dev, address: V6_ADDRESS, noDad: true, noPrefixRoute: true });
      else if (!wanted.has(dev) && has) ns.netlink.addrDel({ dev, address: V6_ADDRESS }, { ifExists: true });
    } catch (e) {
      throw SystemError.from(e, `metadata address ${WELL_KNOWN_V6} on ${dev} in ${m.namespace}`);
    }
  }
}

/** The MTU of each tier's guest segment (host veth and its bridge), by network id; unknown ones left out. */
export function segmentMtus(host: NsOps, m: RouterModel, tiers: TierModel[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of tiers) {
    const veth = host.netlink.linkFind(tierAttachment(m, t).hostVeth);
    if (!veth) continue;
    const bridge = veth.masterIndex !== undefined ? host.netlink.linkFind(veth.masterIndex) : undefined;
    out[t.networkId] = Math.min(veth.mtu, bridge?.mtu ?? veth.mtu);
  }
  return out;
}
