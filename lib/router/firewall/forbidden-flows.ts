/**
 * Tightening a rule must also stop the flows it now forbids: their packets are "established" and the
 * established/related accept would keep them alive. After a rule change, the conntrack table of the router
 * is dumped once and every entry is judged by the NEW rules as if it were a new connection (same matchers as
 * the nft rules, state.ts); only the parts that changed (a public IP's ingress rules, a tier's egress rules or
 * ACL) are judged.
 *
 * A forbidden flow is ended, not deleted: its entry gets ENDED_FLOW_BIT in its ct mark (lib/nft/ctnetlink.ts
 * markEntries), and the firewall's chains accept "established" only for entries without it, so its packets meet
 * the rules as if new, in both directions. A deleted entry could come back the other way round — the guest answers
 * a packet that reached it just before the deletion, its answer starts a new outbound entry whose reply direction
 * is exactly the forbidden flow — and no pause after the deletion is long enough on a loaded machine. A kept entry
 * cannot come back: the answer belongs to it. An ended flow that the rules allow again (judged by all of them, at
 * the next change) gets the bit cleared: it goes on with its translation (a port forward's, a kernel load
 * balancer's backend), which a deletion would lose (a mid-stream packet could pick another backend).
 *
 * Which entries a part judges (conntrack keeps no interfaces, so tiers are recognised by their CIDRs):
 *   ingress of public IP P   original destination = P (before DNAT), with the original destination port
 *   egress of tier T         original source in T, destination (after DNAT = reply source) outside T
 *   ACL ingress of tier T    destination after DNAT in T, original source outside T
 *   ACL egress of tier T     original source in T, destination after DNAT outside T
 * A kernel load balancer's flow (ct mark, router-table.ts) is judged by the ingress rules of its public IP only.
 */
import { ConntrackSocket, type ConntrackEntry } from '../../nft/ctnetlink.js';
import { sameValue } from '../../util/compare.js';
import type { RouterModel } from '../model.js';
import { ENDED_FLOW_BIT, isEndedFlowMark, isKernelLbMark } from '../router-table.js';
import { trackedFlows } from '../nat-flow-cleanup.js';
import { addressValue, type RuleCidr } from './cidr.js';
import type { MatcherIndex, Packet } from './matcher.js';
import {
  aclAllowed, compileAcl, compileEgress, egressAllowed, filteredAddresses, firewallState, ingressAllowed, ingressIndex, ingressMatchers, inAny, tierCidrs,
  type CompiledAcl, type CompiledEgress, type FirewallState,
} from './state.js';
import type { FwRule } from './rules.js';

interface Checks {
  ingress: Map<string, MatcherIndex>;
  egress: Array<{ cidrs: RuleCidr[]; c: CompiledEgress }>;
  acl: Array<{ cidrs: RuleCidr[]; c: CompiledAcl }>;
}

/** Per filtered public IP, its ingress rules as text (what decides whether its flows must be re-judged). */
function ingressRuleText(m: RouterModel, s: FirewallState): Map<string, string> {
  const rules = new Map<string, FwRule[]>();
  for (const ip of filteredAddresses(m, s)) rules.set(ip, []);
  for (const id of Object.keys(s.fw).sort()) {
    for (const r of s.fw[id].rules) if (r.type === 'ingress' && rules.has(r.publicIp!)) rules.get(r.publicIp!)!.push(r);
  }
  return new Map([...rules].map(([ip, rs]) => [ip, JSON.stringify(rs.map(({ index: _i, id: _d, ...match }) => match))]));
}

/** What changed between the two states, as checks to run on conntrack entries. */
export function changedChecks(m: RouterModel, previous: RouterModel | undefined): Checks {
  const now = firewallState(m);
  const before = previous ? firewallState(previous) : { fw: {}, acl: {} };
  const checks: Checks = { ingress: new Map(), egress: [], acl: [] };
  if (!sameValue(now.fw, before.fw) || !sameValue(Object.keys(m.publicIps), previous && Object.keys(previous.publicIps))) {
    const tNow = ingressRuleText(m, now);
    const tBefore = previous ? ingressRuleText(previous, before) : new Map<string, string>();
    const changed = new Set([...tNow].filter(([ip, t]) => tBefore.get(ip) !== t).map(([ip]) => ip));
    if (changed.size) for (const [ip, ms] of ingressMatchers(m, now)) if (changed.has(ip)) checks.ingress.set(ip, ingressIndex(ms));
  }
  for (const [id, n] of Object.entries(now.fw)) {
    const b = before.fw[id];
    const eg = (x: typeof n) => ({ d: x.defaultEgressAllow, r: x.rules.filter((r) => r.type === 'egress') });
    if (b && sameValue(eg(n), eg(b))) continue;
    const cidrs = tierCidrs(m, id);
    if (cidrs.length) checks.egress.push({ cidrs, c: compileEgress(n) });
  }
  for (const [id, a] of Object.entries(now.acl)) {
    if (before.acl[id] && sameValue(a, before.acl[id])) continue;
    const cidrs = tierCidrs(m, id);
    if (cidrs.length) checks.acl.push({ cidrs, c: compileAcl(a.rules) });
  }
  return checks;
}

export function hasChecks(c: Checks): boolean {
  return c.ingress.size > 0 || c.egress.length > 0 || c.acl.length > 0;
}

/** Would the rules forbid this flow if it started now? */
export function forbidden(c: Checks, e: ConntrackEntry): boolean {
  const family = e.family === 'ipv4' ? 4 : 6;
  const src = addressValue(e.orig.src)?.value;
  const preDst = addressValue(e.orig.dst)?.value;
  const postDst = addressValue(e.reply.src)?.value;
  if (src === undefined || preDst === undefined || postDst === undefined) return false;
  const base = { family, proto: e.orig.proto, src } as const;
  const icmp = { ...(e.orig.icmpType !== undefined ? { icmpType: e.orig.icmpType } : {}), ...(e.orig.icmpCode !== undefined ? { icmpCode: e.orig.icmpCode } : {}) };
  const pre: Packet = { ...base, dst: preDst, ...(e.orig.dstPort !== undefined ? { dport: e.orig.dstPort } : {}), ...icmp };
  const post: Packet = { ...base, dst: postDst, ...(e.reply.srcPort !== undefined ? { dport: e.reply.srcPort } : {}), ...icmp };

  const ms = c.ingress.get(e.orig.dst);
  if (ms && !ingressAllowed(ms, pre)) return true;
  // a kernel load balancer's flow meets neither the egress firewall nor the ACLs (firewall-objects.ts), as haproxy's
  // connections to its backends do not: only the public IP's ingress rules judge it
  if (isKernelLbMark(e.mark)) return false;
  for (const x of c.egress) {
    if (inAny(x.cidrs, family, src) && !inAny(x.cidrs, family, postDst) && !egressAllowed(x.c, post)) return true;
  }
  for (const x of c.acl) {
    const fromTier = inAny(x.cidrs, family, src);
    const toTier = inAny(x.cidrs, family, postDst);
    if (toTier && !fromTier && !aclAllowed(x.c, 'ingress', post)) return true;
    if (fromTier && !toTier && !aclAllowed(x.c, 'egress', post)) return true;
  }
  return false;
}

/** What endForbiddenFlows did: flows it ended, and ended flows it resumed because the rules allow them again. */
export interface EndedFlows {
  ended: number;
  reopened: number;
}

/**
 * End the flows the new rules forbid (ENDED_FLOW_BIT on their entries) and clear the bit of the ended flows the
 * rules allow again. Every part is judged only when the dump holds an ended flow: whether one is allowed again
 * depends on all the rules, not just on what changed.
 */
export function endForbiddenFlows(m: RouterModel, previous: RouterModel | undefined): EndedFlows {
  const none = { ended: 0, reopened: 0 };
  // a dump walks the kernel's whole conntrack hash (~9 ms even for an empty namespace): ask the count first
  if (trackedFlows(m.namespace) === 0) return none;
  const sock = ConntrackSocket.open({ netns: m.namespace });
  try {
    // the dump first: with no flows there is nothing to judge (and no need to work out what changed)
    const entries = sock.list();
    if (!entries.length) return none;
    const live: ConntrackEntry[] = [];
    const ended: ConntrackEntry[] = [];
    for (const e of entries) (isEndedFlowMark(e.mark) ? ended : live).push(e);
    const checks = changedChecks(m, previous);
    const all = ended.length ? changedChecks(m, undefined) : undefined;
    const reopened = all ? ended.filter((e) => !forbidden(all, e)) : [];
    const toEnd = hasChecks(checks) ? live.filter((e) => forbidden(checks, e)) : [];
    // one batch each; an entry allowed again keeps its translation (a port forward's, a load balancer's backend)
    return { ended: sock.markEntries(toEnd, ENDED_FLOW_BIT), reopened: sock.markEntries(reopened, ENDED_FLOW_BIT, false) };
  } finally {
    sock.close();
  }
}
