/**
 * Pure translation of a router model into its dnsmasq spec: which tiers are served on which interface, with
 * which options, reservations and names, and which leases no longer belong to anyone.
 */
import type { RouterModel, TierModel } from '../model.js';
import { tierAttachment } from '../topology.js';
import {
  parseSubnet4, type DnsmasqPaths, type DnsmasqSpec, type Lease, type NameSpec, type ReleaseGroup, type TierSpec,
} from '../../services/dnsmasq/index.js';
import { cidrContains, ipv4ToNumber, parseCidr } from '../../util/ip.js';
import { dhcpState, type DhcpTierState } from './state.js';
import { compareText } from '../../util/compare.js';

export interface ServedTier {
  tier: TierModel;
  state: DhcpTierState;
  ifname: string;
}

/** Implemented tiers with DHCP on, sorted by network id. */
export function servedTiers(m: RouterModel): ServedTier[] {
  const s = dhcpState(m);
  return Object.values(m.tiers)
    .filter((t) => t.implemented && s.tiers[t.networkId]?.dhcp)
    .sort((a, b) => compareText(a.networkId, b.networkId))
    .map((tier) => ({ tier, state: s.tiers[tier.networkId], ifname: tierAttachment(m, tier).nsVeth }));
}

const uniq = (xs: string[]): string[] => [...new Set(xs)];

export const tierTag = (networkId: string): string => `tier-${networkId}`;

/** `name` and, for a single label under a domain, `name.domain` too. */
function dnsNames(hostname: string, domain: string | undefined): string[] {
  return domain && !hostname.includes('.') ? [hostname, `${hostname}.${domain}`] : [hostname];
}

/** What a tier's DHCP (options 3, 6, 15) and router advertisements (RDNSS) give its guests. */
export interface TierGuestOptions {
  router: string;
  dnsServers: string[];
  domain?: string;
  /** Present when the tier has an IPv6 prefix (router advertisements are sent). */
  ipv6?: { prefixLen: number; dnsServers: string[] };
}

export function tierGuestOptions(tier: TierModel, state: DhcpTierState): TierGuestOptions {
  const domain = state.domain ?? tier.domain;
  const dns = state.dnsServers ?? tier.dns ?? [];
  const dns6 = state.dns6Servers ?? tier.dns6 ?? [];
  const out: TierGuestOptions = {
    router: state.gateway ?? tier.gateway,
    // with DNS on, our own address answers first (upstream: "ext ip first")
    dnsServers: state.dns ? uniq([tier.extensionIp, ...dns]) : dns,
  };
  if (domain) out.domain = domain;
  if (tier.ip6Gateway && tier.ip6Cidr) {
    out.ipv6 = { prefixLen: Number(tier.ip6Cidr.split('/')[1]), dnsServers: state.dns ? uniq([tier.ip6Gateway, ...dns6]) : dns6 };
  }
  return out;
}

function tierSpec(x: ServedTier): TierSpec {
  const { tier, state } = x;
  const opts = tierGuestOptions(tier, state);
  const domain = opts.domain;
  const spec: TierSpec = {
    tag: tierTag(tier.networkId),
    ifname: x.ifname,
    subnet: parseSubnet4(tier.cidr),
    router: opts.router,
    dnsServers: opts.dnsServers,
    dns: state.dns,
    hosts: Object.entries(state.hosts).map(([mac, h]) => ({
      mac, ip: h.ip,
      ...(h.hostname ? { hostname: h.hostname } : {}),
      ...(h.defaultNic ? {} : { router: false }),
      ...(h.nicId && state.nicOptions[h.nicId] ? { options: state.nicOptions[h.nicId] } : {}),
    })),
    names: [],
  };
  if (domain) spec.domain = domain;
  if (opts.ipv6) spec.ipv6 = opts.ipv6;
  if (state.dns) {
    const names: NameSpec[] = Object.entries(state.names)
      .sort(([a], [b]) => ipv4ToNumber(a) - ipv4ToNumber(b))
      .map(([ip, n]) => ({ ip, ...(n.ip6 ? { ip6: n.ip6 } : {}), names: dnsNames(n.hostname, domain) }));
    names.push({ ip: state.dataServer ?? tier.extensionIp, names: dnsNames('data-server', domain) });
    spec.names = names;
  }
  return spec;
}

/** The dnsmasq spec of a router (its tiers may be empty: then no dnsmasq is needed). */
export function dnsmasqSpec(m: RouterModel, paths: DnsmasqPaths, user: string): DnsmasqSpec {
  const served = servedTiers(m);
  const own = new Set(served.flatMap((x) => [x.tier.extensionIp, x.tier.gateway, x.state.dataServer ?? '']));
  const upstream = uniq(served.filter((x) => x.state.dns).flatMap((x) => x.state.dnsServers ?? x.tier.dns ?? [])).filter((d) => !own.has(d));
  return { paths, user, tiers: served.map(tierSpec), upstream };
}

function inSubnet(ip: string, cidr: string): boolean {
  const c = parseCidr(cidr);
  return c !== undefined && cidrContains(c, ip);
}

/**
 * Leases that no reservation backs any more (removed, or moved to another address), grouped by the tier
 * interface they were handed out on. A lease outside every served tier gets an empty interface name: it
 * can only be dropped by editing the file with dnsmasq stopped.
 */
export function orphanLeases(m: RouterModel, leases: Lease[]): ReleaseGroup[] {
  const served = servedTiers(m);
  const groups = new Map<string, ReleaseGroup>();
  for (const l of leases) {
    const x = served.find((t) => inSubnet(l.ip, t.tier.cidr));
    if (x && x.state.hosts[l.mac]?.ip === l.ip) continue;
    const key = x ? x.ifname : '';
    const g = groups.get(key) ?? { ifname: key, serverIp: x ? x.tier.extensionIp : '', leases: [] };
    g.leases.push(l);
    groups.set(key, g);
  }
  return [...groups.values()];
}
