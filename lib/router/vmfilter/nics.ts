/**
 * What the guest-segment filter knows about a router's guest NICs, and its part of the NIC lifecycle.
 *
 * A NIC is known while a DHCP reservation holds its MAC (add-dhcp-entry, or prepare-nic / restore-network on a
 * network where the router serves DHCP … remove-dhcp-entry, release-nic) or while the metadata module's record of
 * the prepared NIC does (prepare-nic / restore-network … release-nic; lib/router/vmdata `nics`: a NIC of the
 * tier's subnet). The filter keeps no identity of its own. A NIC's IPv6 address is the one CloudStack sent, else —
 * on a /64 prefix of the router's — its SLAAC (EUI-64) address.
 */
import type * as T from '../contract/types.js';
import type { RouterModel, TierModel } from '../model.js';
import { dhcpState } from '../dhcp/state.js';
import { vmdataState } from '../vmdata/state.js';
import { bigIntToIp, ipToBigInt, parseCidr } from '../../util/ip.js';
import { tierAttachment } from '../topology.js';
import { editNic, setVmfilterState, tierFiltered, vmfilterState, type NicRecord, type VmFilterState } from './state.js';
import type { NicRuleSet } from './rules.js';
import { compareText } from '../../util/compare.js';

export interface KnownNic {
  networkId: string;
  mac: string;
  ip4: string[];
  ip6: string[];
  /** Explicit bridge-port binding. */
  port?: string;
  /** Own rules / referenced filters (undefined: none). */
  set?: NicRuleSet;
}

/** EUI-64 interface identifier of a MAC (RFC 4291 appendix A), as the low 64 bits. */
export function eui64(mac: string): bigint {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  const id = [b[0] ^ 0x02, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]];
  return id.reduce((acc, x) => (acc << 8n) | BigInt(x), 0n);
}

/** The link-local address the kernel gives an interface with this MAC (addr_gen_mode eui64, the default). */
export const linkLocalOf = (mac: string): string => bigIntToIp((0xfe80n << 112n) | eui64(mac), 6);

/** A MAC's SLAAC address on a /64 prefix, else undefined. */
export function slaacOf(mac: string, ip6Cidr: string | undefined): string | undefined {
  const c = ip6Cidr ? parseCidr(ip6Cidr) : undefined;
  if (!c || c.family !== 6 || c.prefix !== 64) return undefined;
  return bigIntToIp(((ipToBigInt(c.address) >> 64n) << 64n) | eui64(mac), 6);
}

/** Implemented guest tiers (not an L2 network), by network id. */
export function filteredTiers(m: RouterModel): TierModel[] {
  if (m.l2) return [];
  const policy = vmfilterState(m).tiers;
  return Object.values(m.tiers).filter((t) => t.implemented && tierFiltered(policy[t.networkId])).sort((a, b) => compareText(a.networkId, b.networkId));
}

/** The router's addressing on a tier as the filter guards it. */
export interface RouterSide {
  port: string;
  mac: string;
  ip4: string[];
  /** The tier's IPv6 gateway and the router's link-local address, when the router has IPv6 on the tier. */
  ip6: string[];
}

export function routerSide(m: RouterModel, t: TierModel): RouterSide {
  const a = tierAttachment(m, t);
  const ip6 = a.disableIpv6 || !t.ip6Gateway ? [] : [t.ip6Gateway, linkLocalOf(a.nsMac!)];
  return { port: a.hostVeth, mac: a.nsMac!, ip4: [t.extensionIp], ip6 };
}

/**
 * Every known NIC of the router's implemented tiers, each MAC once. A DHCP reservation wins over a prepared NIC (for
 * the MAC and for an address both name); nothing may take a router's MAC or address (they are the router's, and
 * what the guards protect).
 */
export function knownNics(m: RouterModel): KnownNic[] {
  const tiers = filteredTiers(m);
  const dhcp = dhcpState(m);
  const prepared = vmdataState(m).nics ?? {};
  const own = vmfilterState(m);
  const out: KnownNic[] = [];
  const routers = tiers.map((t) => routerSide(m, t));
  const seen = new Set<string>(routers.map((r) => r.mac));
  const taken = new Set<string>(routers.flatMap((r) => [...r.ip4, ...r.ip6]));
  for (const t of tiers) {
    for (const h of Object.values(dhcp.tiers[t.networkId]?.hosts ?? {})) {
      taken.add(h.ip);
      if (h.ip6) taken.add(h.ip6);
    }
  }
  const free = (ip: string | undefined, byDhcp: boolean): ip is string => ip !== undefined && (byDhcp || !taken.has(ip));
  const add = (t: TierModel, mac: string, ip4: string | undefined, ip6: string | undefined, byDhcp: boolean): void => {
    if (seen.has(mac)) return;
    seen.add(mac);
    const rec: NicRecord | undefined = own.nics[t.networkId]?.[mac];
    const v6 = ip6 ?? slaacOf(mac, t.ip6Cidr);
    const nic: KnownNic = {
      networkId: t.networkId, mac, ip4: free(ip4, byDhcp) ? [ip4] : [],
      ip6: free(v6, byDhcp) && !routers.some((r) => r.ip6.includes(v6)) ? [v6] : [],
    };
    if (rec?.port) nic.port = rec.port;
    if (rec?.rules?.length || rec?.filters?.length) nic.set = { rules: rec.rules ?? [], filters: rec.filters ?? [] };
    out.push(nic);
  };
  for (const t of tiers) {
    const hosts = dhcp.tiers[t.networkId]?.hosts ?? {};
    for (const mac of Object.keys(hosts).sort()) add(t, mac, hosts[mac].ip, hosts[mac].ip6, true);
  }
  for (const t of tiers) {
    const nics = Object.entries(prepared).filter(([, n]) => n.tier === t.networkId).sort(([, a], [, b]) => compareText(a.mac, b.mac));
    for (const [ip, n] of nics) add(t, n.mac, ip, n.ip6, false);
  }
  return out;
}

/** A new run of the NIC: learned ports of its previous run are forgotten (module reconcile). */
function bumpRun(s: VmFilterState, mac: string): void {
  s.runs[mac] = (s.runs[mac] ?? 0) + 1;
}

/** Keep runs only for MACs the filter still knows or holds records for (a stopped VM's counter stays). */
function pruneRuns(m: RouterModel, s: VmFilterState): void {
  const keep = new Set<string>(knownNics(m).map((n) => n.mac));
  for (const nics of Object.values(s.nics)) for (const mac of Object.keys(nics)) keep.add(mac);
  for (const mac of Object.keys(s.runs)) if (!keep.has(mac)) delete s.runs[mac];
}

/**
 * prepare-nic's filter part (after the metadata and DHCP parts, which record the NIC): a new run of the NIC — its
 * explicit port binding dropped (the VM gets a new tap) and the ports learned for it forgotten.
 */
export function vmfilterPrepareNic(m: RouterModel, req: T.PrepareNicRequest): void {
  const t = m.tiers[req.networkId];
  if (!t || !t.implemented || m.l2 || req.mac === undefined) return;
  newRun(m, req.networkId, req.mac);
}

/** release-nic's filter part: the NIC's port binding goes, learned ports are forgotten (its rule set stays for its next run). */
export function vmfilterReleaseNic(m: RouterModel, req: T.ReleaseNicRequest): void {
  if (req.mac === undefined || !m.tiers[req.networkId]) return;
  newRun(m, req.networkId, req.mac);
}

function newRun(m: RouterModel, networkId: string, mac: string): void {
  const s = vmfilterState(m);
  if (s.nics[networkId]?.[mac]?.port !== undefined) editNic(s, networkId, mac, (r) => { delete r.port; });
  bumpRun(s, mac);
  pruneRuns(m, s);
  setVmfilterState(m, s);
}

/** A tier leaves the router: its NICs' rule sets, learned ports and policy go (named filters are the router's and stay). */
export function vmfilterForgetTier(m: RouterModel, networkId: string): void {
  const s = vmfilterState(m);
  if (!s.nics[networkId] && !s.tiers[networkId]) return;
  delete s.nics[networkId];
  delete s.tiers[networkId];
  setVmfilterState(m, s);
}

/**
 * network-extension-details vm-filter and vm-filter-strict, carried by a request: recorded for its network (absent:
 * kept). The filter is off until vm-filter (or vm-filter-strict) is "true".
 */
export function vmfilterNoteRequest(m: RouterModel, req: { networkId?: string; vmFilter?: boolean; vmFilterStrict?: boolean }): boolean {
  if ((req.vmFilter === undefined && req.vmFilterStrict === undefined) || req.networkId === undefined || !m.tiers[req.networkId]) return false;
  const s = vmfilterState(m);
  const cur = s.tiers[req.networkId] ?? {};
  const enabled = req.vmFilter ?? cur.enabled === true;
  const strict = req.vmFilterStrict ?? cur.strict === true;
  if (enabled === (cur.enabled === true) && strict === (cur.strict === true)) return false;
  s.tiers[req.networkId] = { ...(enabled ? { enabled: true as const } : {}), ...(strict ? { strict: true as const } : {}) };
  setVmfilterState(m, s);
  return true;
}
