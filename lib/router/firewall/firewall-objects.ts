/**
 * The firewall/ACL part of the router table (`inet netns_router`), generated from the module state and added
 * to the engine's single transaction, so a rule set is replaced atomically with everything else.
 *
 *   fw_ingress   filter prerouting, priority mangle (-150): before our DNAT (dstnat-10 = -110), so ingress
 *                rules see the real public destination.
 *                  ct state established,related ct mark & 0x800000 == 0 accept   (not an ended flow:
 *                                                         forbidden-flows.ts)
 *                  iifname "lo" accept                    the router's own connections
 *                  ip daddr vmap @fw_ingress_ips          filtered public IP → goto fw_in
 *                  ip6 daddr vmap @fw_ingress_ips6
 *   fw_in        the allow rules of every filtered IP, as `ip daddr . …` set lookups; then drop.
 *                (One shared chain instead of one chain per IP: a chain plus its set cost 0.1–0.3 ms in the
 *                transaction, i.e. up to 300 ms for 1,000 IPs; with the destination in the set key the rule
 *                count grows neither with the IPs nor with the rules.)
 *   fw_forward   filter forward, priority filter-10 (-10), policy accept:
 *                  ct state established,related ct mark & 0x800000 == 0 accept
 *                  ct mark & 0xff000000 == 0x4c000000 accept   kernel load balancer (router-table.ts)
 *                  iifname vmap @fw_egress_ifs            guest interface → jump fwe_<net>   (egress firewall)
 *                  iifname vmap @acl_out_ifs              tier interface → jump acl_out_<net> (ACL egress)
 *                  oifname vmap @acl_in_ifs               tier interface → jump acl_in_<net>  (ACL ingress)
 *   fwe_<net>    default allow: deny rules → drop, else return; default deny: allow rules → return, else drop.
 *   acl_*_<net>  rules in number order (Allow → return, Deny → drop), then drop (implicit deny); grouped
 *                into as few one-verdict layers as first-match semantics allow (compile.ts).
 * "return" lets a packet leaving one tier for another still meet the destination tier's ingress ACL.
 */
import * as N from '../../nft/index.js';
import type { RouterModel } from '../model.js';
import { tierAttachment } from '../topology.js';
import { acceptUnendedFlows, kernelLbFlow } from '../router-table.js';
import { compileChain, layers, type Entry, type VerdictRun } from './compile.js';
import { addressValue } from './cidr.js';
import { aclMatchersOf, egressMatchersOf, firewallState, ingressMatchers, type FirewallState } from './state.js';
import { createHash } from 'node:crypto';
import { sameValue } from '../../util/compare.js';
import { LruMap } from '../../util/lru-map.js';

/** Priority of the ingress chain: mangle (-150), i.e. after conntrack (-200), before DNAT (-110). */
export const FW_INGRESS_PRIORITY: N.Priority = { base: 'mangle', offset: 0 };
/** Forward filtering: filter-10 (ROUTER_PRIORITIES.filter). */
export const FW_FORWARD_PRIORITY: N.Priority = N.ROUTER_PRIORITIES.filter;

/** A network id made safe for nft names ([A-Za-z0-9_.-]); ids with other characters get a hash suffix. */
export function nameId(id: string): string {
  if (/^[A-Za-z0-9_.-]{1,64}$/.test(id)) return id;
  return `${id.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40)}_${createHash('sha256').update(id).digest('hex').slice(0, 8)}`;
}

export const chainNames = {
  ingress: 'fw_ingress',
  ingressRules: 'fw_in',
  forward: 'fw_forward',
  egress: (id: string) => `fwe_${nameId(id)}`,
  aclIn: (id: string) => `acl_in_${nameId(id)}`,
  aclOut: (id: string) => `acl_out_${nameId(id)}`,
};

/** The tier's guest interface in the namespace, when the tier is known. */
function tierIf(m: RouterModel, networkId: string): string | undefined {
  const t = m.tiers[networkId];
  return t ? tierAttachment(m, t).nsVeth : undefined;
}

/**
 * Compiled chains of the last commands, by router and chain, with the input they were compiled from. A command
 * usually changes one chain (an ACL update touches one direction of one tier; an apply-fw-rules the ingress or
 * an egress chain): the others are recompiled only when their input differs. Inputs are compared structurally,
 * so a hit is exact; the objects are shared read-only, like the engine's compiled tables.
 */
const chainMemo = new LruMap<string, { input: unknown; objs: N.NftObject[] }>(128);

function memoChain(m: RouterModel, chain: string, input: unknown, compile: () => N.NftObject[]): N.NftObject[] {
  const key = `${m.namespace}\0${chain}`;
  const hit = chainMemo.get(key);
  if (hit && sameValue(hit.input, input)) return hit.objs;
  const objs = compile();
  chainMemo.set(key, { input, objs });
  return objs;
}

function pushAll<T>(to: T[], from: readonly T[]): void {
  for (const x of from) to.push(x); // (not push(...from): a spread of thousands of arguments is slow)
}

export function firewallObjects(m: RouterModel, s: FirewallState = firewallState(m)): N.NftObject[] {
  const objs: N.NftObject[] = [];

  // ── ingress (per public IP, before DNAT) ──
  const ingress = ingressMatchers(m, s);
  if (ingress.size) {
    const v4: N.ElementItem[] = [];
    const v6: N.ElementItem[] = [];
    for (const ip of ingress.keys()) {
      const fam = addressValue(ip)?.family;
      (fam === 6 ? v6 : v4).push({ key: N.addr(ip), value: N.goto(chainNames.ingressRules) });
    }
    // chains before the map elements that jump to them
    // the rules compiled are those of the addresses filtered now (an IP assigned later brings its rules in)
    pushAll(objs, memoChain(m, chainNames.ingressRules, [s.fw, [...ingress.keys()]],
      () => compileChain(chainNames.ingressRules, [{ verdict: 'accept', matchers: [...ingress.values()].flat() }], { tail: 'drop' })));
    objs.push(
      N.verdictMap('fw_ingress_ips', 'ipv4_addr', v4.length ? { elements: v4 } : {}),
      N.verdictMap('fw_ingress_ips6', 'ipv6_addr', v6.length ? { elements: v6 } : {}),
      N.baseChain(chainNames.ingress, { type: 'filter', hook: 'prerouting', priority: FW_INGRESS_PRIORITY, policy: 'accept' }),
      N.rule(chainNames.ingress, acceptUnendedFlows()),
      // the router's own connections to its public addresses come back through lo: not ingress
      N.rule(chainNames.ingress, [N.meta.iifname('lo'), N.accept()], { comment: 'the router itself' }),
      N.rule(chainNames.ingress, [N.vmap(N.F.ipDaddr, 'fw_ingress_ips')], { comment: 'filtered public IPv4 addresses' }),
      N.rule(chainNames.ingress, [N.vmap(N.F.ip6Daddr, 'fw_ingress_ips6')], { comment: 'filtered public IPv6 addresses' }),
    );
  }

  // ── forward: egress firewall and ACLs, per tier interface ──
  const egressIfs: N.ElementItem[] = [];
  const aclOutIfs: N.ElementItem[] = [];
  const aclInIfs: N.ElementItem[] = [];
  const chains: N.NftObject[] = [];
  for (const id of Object.keys(s.fw).sort()) {
    const n = s.fw[id];
    const dev = tierIf(m, id);
    if (!dev) continue; // the tier is not known here yet: its egress rules apply once it is
    const name = chainNames.egress(id);
    const egress = n.rules.filter((r) => r.type === 'egress');
    pushAll(chains, memoChain(m, name, [n.defaultEgressAllow, egress], () => {
      const seg: VerdictRun = { verdict: n.defaultEgressAllow ? 'drop' : 'return', matchers: egress.flatMap(egressMatchersOf) };
      return compileChain(name, [seg], { tail: n.defaultEgressAllow ? 'return' : 'drop' });
    }));
    egressIfs.push({ key: N.ifname(dev), value: N.jump(name) });
  }
  for (const id of Object.keys(s.acl).sort()) {
    const dev = tierIf(m, id);
    if (!dev) continue;
    for (const dir of ['ingress', 'egress'] as const) {
      const name = dir === 'ingress' ? chainNames.aclIn(id) : chainNames.aclOut(id);
      const rules = s.acl[id].rules.filter((r) => r.trafficType === dir);
      pushAll(chains, memoChain(m, name, rules, () => {
        const entries: Entry[] = rules.map((r) => ({ verdict: r.action === 'allow' ? 'return' : 'drop', matchers: aclMatchersOf(r) }));
        return compileChain(name, layers(entries), { tail: 'drop' });
      }));
      (dir === 'ingress' ? aclInIfs : aclOutIfs).push({ key: N.ifname(dev), value: N.jump(name) });
    }
  }
  if (egressIfs.length || aclInIfs.length || aclOutIfs.length) {
    const fwd = chainNames.forward;
    pushAll(objs, chains);
    objs.push(
      N.baseChain(fwd, { type: 'filter', hook: 'forward', priority: FW_FORWARD_PRIORITY, policy: 'accept' }), N.rule(fwd, acceptUnendedFlows()),
      // the kernel load balancer's translated connections are what haproxy's own connections to a backend are
      // (router output, never met by these chains): neither guest egress nor a tier's traffic under its ACL
      N.rule(fwd, [kernelLbFlow(), N.accept()], { comment: 'kernel load balancer (as haproxy: docs/load-balancing.md)' }),
    );
    if (egressIfs.length) objs.push(N.verdictMap('fw_egress_ifs', 'ifname', { elements: egressIfs }), N.rule(fwd, [N.vmap(N.F.iifname, 'fw_egress_ifs')], { comment: 'egress firewall' }));
    if (aclOutIfs.length) objs.push(N.verdictMap('acl_out_ifs', 'ifname', { elements: aclOutIfs }), N.rule(fwd, [N.vmap(N.F.iifname, 'acl_out_ifs')], { comment: 'network ACL egress' }));
    if (aclInIfs.length) objs.push(N.verdictMap('acl_in_ifs', 'ifname', { elements: aclInIfs }), N.rule(fwd, [N.vmap(N.F.oifname, 'acl_in_ifs')], { comment: 'network ACL ingress' }));
  }
  return objs;
}
