/**
 * The firewall module's desired state (model.extra.firewall) and what it means: which public IPs are
 * filtered, the matchers of every chain, and the verdict a packet gets — one definition shared by the nft
 * generation (firewall-objects.ts), the conntrack cleanup (forbidden-flows.ts) and the listings (describe.ts).
 *
 * "Filtered" public addresses (new ingress dropped unless an ingress rule allows it): on an isolated network's
 * router every assigned public IP, from the moment it is assigned, whatever its roles (source NAT, static NAT,
 * port forwards, load balancer) — CloudStack's virtual router denies ingress to its public IPs until a firewall
 * rule opens it. On any router also every address an apply-fw-rules has named in an ingress rule (sticky: a later
 * payload that omits it means its last rule was deleted, so it closes instead of silently opening); such a name
 * is forgotten once the address is no longer assigned when the next apply-fw-rules runs.
 */
import type { RouterModel } from '../model.js';
import { moduleState, setModuleState } from '../router-module.js';
import { isCidr, parseRuleCidr, contains, type RuleCidr } from './cidr.js';
import { expand, MatcherIndex, type Matcher, type Packet } from './matcher.js';
import type { AclRule, FwDocument, FwRule } from './rules.js';
import { canonicalIpv6, cidrContains, toCidr, type IpFamily } from '../../util/ip.js';
import { sameValue } from '../../util/compare.js';

export const FIREWALL = 'firewall';

export interface FwNetworkState {
  defaultEgressAllow: boolean;
  /** The document's guest CIDR (informative). */
  cidr?: string;
  rules: FwRule[];
  /** Addresses named by ingress rules, sticky (see the header); see filteredAddresses() for the effective set. */
  filteredIps: string[];
  /** The digest of the fw_rules text these rules were parsed from, when it came as text (payload-digest.ts). */
  digest?: string;
}

export interface AclTierState {
  /** In evaluation order (number, then position). */
  rules: AclRule[];
}

export interface FirewallState {
  /** apply-fw-rules, per network id. */
  fw: Record<string, FwNetworkState>;
  /** apply-network-acl, per tier (network id). */
  acl: Record<string, AclTierState>;
}

/**
 * The slot's state; its two maps are copies (a change puts them back with setFirewallState), so a change leaves the
 * stored rules in place — a kept model's slot is frozen and shared with the next model (warm-cache.ts draftOf).
 */
export function firewallState(m: RouterModel): FirewallState {
  const s = moduleState<FirewallState>(m, FIREWALL);
  return { fw: { ...s?.fw }, acl: { ...s?.acl } };
}

export function setFirewallState(m: RouterModel, s: FirewallState): void {
  const empty = Object.keys(s.fw).length === 0 && Object.keys(s.acl).length === 0;
  setModuleState(m, FIREWALL, empty ? undefined : s);
}

/**
 * Replace a network's firewall rules (the mutate step of apply-fw-rules); `digest`: of the text `doc` was parsed
 * from (payload-digest.ts). 'unchanged' when the state already was exactly that (the model is left untouched).
 */
export function putFwDocument(m: RouterModel, networkId: string, doc: FwDocument, digest?: string): 'unchanged' | undefined {
  const s = firewallState(m);
  const prev = s.fw[networkId];
  const named = doc.rules.filter((r) => r.type === 'ingress').map((r) => r.publicIp!);
  const kept = (prev?.filteredIps ?? []).filter((ip) => m.publicIps[ip]);
  const filteredIps = [...new Set([...kept, ...named])].sort();
  if (prev && prev.rules === doc.rules && prev.defaultEgressAllow === doc.defaultEgressAllow && prev.cidr === doc.cidr
    && prev.digest === digest && sameValue(prev.filteredIps, filteredIps)) return 'unchanged';
  s.fw[networkId] = {
    defaultEgressAllow: doc.defaultEgressAllow, ...(doc.cidr ? { cidr: doc.cidr } : {}), rules: doc.rules, filteredIps, ...(digest ? { digest } : {}),
  };
  setFirewallState(m, s);
  return undefined;
}

/**
 * The document a network's state was parsed from, when that was the text of `digest` (payload-digest.ts): the
 * rules stored, as they are (putFwDocument of it leaves them in place).
 */
export function storedFwDocument(m: RouterModel, networkId: string, digest: string): FwDocument | undefined {
  const prev = firewallState(m).fw[networkId];
  if (!prev || prev.digest !== digest) return undefined;
  return { defaultEgressAllow: prev.defaultEgressAllow, ...(prev.cidr ? { cidr: prev.cidr } : {}), rules: prev.rules };
}

/** Replace a tier's ACL (the mutate step of apply-network-acl). */
export function putAcl(m: RouterModel, networkId: string, rules: AclRule[]): void {
  const s = firewallState(m);
  s.acl[networkId] = { rules };
  setFirewallState(m, s);
}

/** A tier leaves the router: its firewall document and its ACL go with it (the module's forgetTier). */
export function forgetTierRules(m: RouterModel, networkId: string): void {
  const s = firewallState(m);
  if (!s.fw[networkId] && !s.acl[networkId]) return;
  delete s.fw[networkId];
  delete s.acl[networkId];
  setFirewallState(m, s);
}

// ── Meaning ──────────────────────────────────────────────────────────────────────────────────────────

/**
 * An address an ingress rule can open from the public side: one of the router's public IPs, or an IPv6 address
 * routed to a guest tier that is not the router's own (its gateway). Any other address an ingress rule names (the
 * router's guest-side gateway, a guest's IPv4 address, a public IP not assigned yet) stays stored but opens
 * nothing — the public side never reaches the router's guest side or an IPv4 guest but through NAT.
 */
function openable(m: RouterModel, ip: string): boolean {
  if (m.publicIps[ip]) return true;
  if (!ip.includes(':')) return false;
  return Object.values(m.tiers).some((t) => t.ip6Cidr !== undefined && canonicalIpv6(t.ip6Gateway ?? '') !== ip && cidrContains(toCidr(t.ip6Cidr), ip));
}

/** Every address whose new ingress is filtered (see the header), sorted. */
export function filteredAddresses(m: RouterModel, s: FirewallState = firewallState(m)): string[] {
  const named = Object.values(s.fw).flatMap((n) => n.filteredIps).filter((ip) => openable(m, ip));
  const assigned = m.kind === 'network' ? Object.keys(m.publicIps) : [];
  return [...new Set([...assigned, ...named])].sort();
}

/** Filtered address → matchers of the rules that open it (sorted by address). */
export function ingressMatchers(m: RouterModel, s: FirewallState = firewallState(m)): Map<string, Matcher[]> {
  const out = new Map<string, Matcher[]>();
  const ips = filteredAddresses(m, s);
  for (const ip of ips) out.set(ip, []);
  for (const id of Object.keys(s.fw).sort()) {
    for (const r of s.fw[id].rules) {
      if (r.type !== 'ingress' || !out.has(r.publicIp!)) continue;
      out.get(r.publicIp!)!.push(...expand(r, r.sourceCidrs, [], r.publicIp));
    }
  }
  return out;
}

export const egressMatchersOf = (r: FwRule): Matcher[] => expand(r, r.sourceCidrs, r.destCidrs);

/**
 * ACL rule → matchers. Ingress: source = sourceCidrs (destination = destCidrs when given). Egress: the
 * destination is destCidrs, or sourceCidrs for senders that put it there (then the source is not constrained).
 */
export function aclMatchersOf(r: AclRule): Matcher[] {
  if (r.trafficType === 'ingress') return expand(r, r.sourceCidrs, r.destCidrs);
  return r.destCidrs.length ? expand(r, r.sourceCidrs, r.destCidrs) : expand(r, [], r.sourceCidrs);
}

/** Ingress of one public IP: any allow rule opens it. */
export function ingressIndex(ms: Matcher[]): MatcherIndex {
  const ix = new MatcherIndex();
  for (const m of ms) ix.add(0, m);
  return ix;
}

export const ingressAllowed = (ix: MatcherIndex, p: Packet): boolean => ix.first(p) !== undefined;

export interface CompiledEgress { defaultAllow: boolean; index: MatcherIndex }

export function compileEgress(n: FwNetworkState): CompiledEgress {
  const index = new MatcherIndex();
  for (const r of n.rules) if (r.type === 'egress') for (const m of egressMatchersOf(r)) index.add(0, m);
  return { defaultAllow: n.defaultEgressAllow, index };
}

/** Egress rules are the exceptions to the default policy. */
export function egressAllowed(c: CompiledEgress, p: Packet): boolean {
  return c.index.first(p) !== undefined ? !c.defaultAllow : c.defaultAllow;
}

export type CompiledAcl = Record<'ingress' | 'egress', { index: MatcherIndex; allow: boolean[] }>;

export function compileAcl(rules: AclRule[]): CompiledAcl {
  const c: CompiledAcl = { ingress: { index: new MatcherIndex(), allow: [] }, egress: { index: new MatcherIndex(), allow: [] } };
  for (const r of rules) {
    const d = c[r.trafficType];
    const order = d.allow.length;
    d.allow.push(r.action === 'allow');
    for (const m of aclMatchersOf(r)) d.index.add(order, m);
  }
  return c;
}

/** First match wins; implicit deny. */
export function aclAllowed(c: CompiledAcl, dir: 'ingress' | 'egress', p: Packet): boolean {
  const hit = c[dir].index.first(p);
  return hit !== undefined && c[dir].allow[hit];
}

/** A tier's CIDRs (IPv4 and, when set, IPv6). */
export function tierCidrs(m: RouterModel, networkId: string): RuleCidr[] {
  const t = m.tiers[networkId];
  if (!t) return [];
  return [t.cidr, t.ip6Cidr].map((x) => (x ? parseRuleCidr(x) : undefined)).filter((c): c is RuleCidr => c !== undefined && isCidr(c));
}

export const inAny = (cs: RuleCidr[], family: IpFamily, a: bigint): boolean => cs.some((c) => c.family === family && contains(c, a));
