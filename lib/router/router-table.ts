/**
 * The nftables ruleset of one router namespace, generated from its NAT plan. One table (`inet netns_router`)
 * brought to these contents in one transaction on every reconcile, changing only what differs
 * (lib/nft/table-sync.ts). Per-IP data live in maps, so the number of rules
 * does not grow with public IPs, static NATs or port forwards:
 *
 *   prerouting (nat, dstnat-10):   static NAT      ip daddr → private          (map static_dnat)
 *                                  port forwards   daddr.proto.dport → addr:port (maps pf_addr + pf_port;
 *                                                  two maps because nft 1.0.6 crashes on concatenated values)
 *                                  port-range fwd  daddr.proto.dport-range → addr, port kept (map pfr_addr)
 *   postrouting (nat, srcnat-10):  only towards public interfaces (set public_ifs):
 *                                  static NAT      saddr → its public IP      (map static_snat)
 *                                  source NAT      saddr in guest CIDR → public IP (interval map snat_src)
 * A map lookup that misses makes the NAT statement a no-op for that packet, so the rules fall through in order.
 *
 * The public guard (publicGuardObjects) keeps the public side from reaching anything it was not given: a packet
 * arriving on a public interface is forwarded only as a reply or after a static NAT / port forward translated
 * it, and reaches the router itself only as a reply, at an address a module filters, or at a public service
 * (docs/firewall.md, "The public side").
 */
import { baseChain, chain, map, set, rule, type NftObject, type ElementItem } from '../nft/objects.js';
import { F, concatKey, dnat, snat, mapLookup, meta, counter, ct, lookup, accept, drop, goto, icmpv6, setStmt } from '../nft/expr.js';
import type { PublicIngress } from './router-module.js';
import { ifname, setRef, symbol, portRange, prefix } from '../nft/values.js';
import type { Stmt, TableRef } from '../nft/json.js';
import { deepFreeze } from './warm-cache.js';
import { compareText } from '../util/compare.js';

export const ROUTER_TABLE: TableRef = { family: 'inet', name: 'netns_router' };

/** A port forward as the router's NAT table holds it: one public port or range onto a private one. */
export interface PortForward {
  publicIp: string;
  protocol: 'tcp' | 'udp';
  publicPorts: [number, number];
  privateIp: string;
  privatePorts: [number, number];
}

/** The NAT a router applies (source NAT, static NAT, port forwards): what RouterKernel.deleteNatConntrack compares. */
export interface NatPlan {
  /** Router-side interfaces facing public networks (source NAT applies only when leaving through them). */
  publicIfs: string[];
  sourceNat: Array<{ cidr: string; publicIp: string }>;
  staticNat: Array<{ publicIp: string; privateIp: string }>;
  portForwards: PortForward[];
}

const PF_KEY = ['ipv4_addr', 'inet_proto', 'inet_service'] as const;

/** Where a port forward lands: maps pf_addr + pf_port (one port), pfr_addr (a range kept), or pf_addr + pf_port per port (a range shifted: splitForwards). */
export function portForwardKind(p: PortForward): 'single' | 'sameRange' | 'shifted' {
  if (p.publicPorts[0] === p.publicPorts[1]) return 'single';
  return p.publicPorts[0] === p.privatePorts[0] && p.publicPorts[1] === p.privatePorts[1] ? 'sameRange' : 'shifted';
}

/** The map elements of one static NAT / port forward, by map (also used to change them one by one: delta-compile.ts). */
export const NAT_ELEMENTS = {
  static_dnat: (s: { publicIp: string; privateIp: string }): ElementItem => ({ key: s.publicIp, value: s.privateIp }),
  static_snat: (s: { publicIp: string; privateIp: string }): ElementItem => ({ key: s.privateIp, value: s.publicIp }),
  pf_addr: (p: PortForward): ElementItem => ({ key: [p.publicIp, symbol(p.protocol), p.publicPorts[0]], value: p.privateIp }),
  pf_port: (p: PortForward): ElementItem => ({ key: [p.publicIp, symbol(p.protocol), p.publicPorts[0]], value: p.privatePorts[0] }),
  pfr_addr: (p: PortForward): ElementItem => ({ key: [p.publicIp, symbol(p.protocol), portRange(p.publicPorts[0], p.publicPorts[1])], value: p.privateIp }),
} as const;

/**
 * Made once per frozen input list (a kept large router's static NATs and port forwards, natPlan): the same frozen
 * lists come back while the input is unchanged, so the table's sync tells those maps unchanged by identity
 * (table-sync.ts setState) instead of hashing their elements on every command.
 */
type SplitForwards = { single: PortForward[]; sameRange: PortForward[] };
const splits = new WeakMap<readonly PortForward[], SplitForwards>();
const elementLists = new WeakMap<readonly unknown[], Map<(x: never) => ElementItem, ElementItem[]>>();

/**
 * Forwards by the maps that hold them. A shifted range (public 8000-8010 → private 9000-9010, or all to one port)
 * becomes one single-port entry per public port: the kernel's NAT keeps no offset into a port range — a DNAT to
 * 9000-9010 sends public port 8005 to the first free port of the range, 9000 (docs/contract.md, the differences table).
 */
function splitForwards(pfs: readonly PortForward[]): SplitForwards {
  const hit = splits.get(pfs);
  if (hit) return hit;
  const out: SplitForwards = { single: [], sameRange: [] };
  for (const p of pfs) {
    const kind = portForwardKind(p);
    if (kind !== 'shifted') { out[kind].push(p); continue; }
    const one = p.privatePorts[0] === p.privatePorts[1];
    for (let port = p.publicPorts[0]; port <= p.publicPorts[1]; port++) {
      // (a range of another size, stored before such were refused: never past the private range's end)
      const to = one ? p.privatePorts[0] : Math.min(p.privatePorts[0] + (port - p.publicPorts[0]), p.privatePorts[1]);
      out.single.push({ ...p, publicPorts: [port, port], privatePorts: [to, to] });
    }
  }
  if (Object.isFrozen(pfs)) {
    for (const l of Object.values(out)) Object.freeze(l);
    splits.set(pfs, out);
  }
  return out;
}

function elementList<T>(xs: readonly T[], f: (x: T) => ElementItem): ElementItem[] {
  if (!Object.isFrozen(xs)) return xs.map(f);
  let byFn = elementLists.get(xs);
  if (!byFn) elementLists.set(xs, byFn = new Map());
  let list = byFn.get(f as (x: never) => ElementItem);
  // shared by every compile until its input changes: frozen, elements and all
  if (!list) byFn.set(f as (x: never) => ElementItem, list = deepFreeze(xs.map(f)));
  return list;
}

/** The table's full contents for a plan. */
export function routerTableObjects(plan: NatPlan): NftObject[] {
  const { single, sameRange } = splitForwards(plan.portForwards);

  const items = <T>(xs: readonly T[], f: (x: T) => ElementItem): ElementItem[] | undefined => (xs.length ? elementList(xs, f) : undefined);
  const withElems = <O extends { elements?: ElementItem[] }>(o: O, el: ElementItem[] | undefined): O => (el ? { ...o, elements: el } : o);

  const objs: NftObject[] = [
    withElems(set('public_ifs', 'ifname'), items(plan.publicIfs, (n) => ({ key: ifname(n) }))),
    withElems(map('static_dnat', 'ipv4_addr', 'ipv4_addr'), items(plan.staticNat, NAT_ELEMENTS.static_dnat)),
    withElems(map('static_snat', 'ipv4_addr', 'ipv4_addr'), items(plan.staticNat, NAT_ELEMENTS.static_snat)),
    withElems(map('snat_src', 'ipv4_addr', 'ipv4_addr', { flags: ['interval'] }), items(plan.sourceNat, (s) => ({ key: prefix(s.cidr, 4), value: s.publicIp }))),
    withElems(map('pf_addr', [...PF_KEY], 'ipv4_addr'), items(single, NAT_ELEMENTS.pf_addr)),
    withElems(map('pf_port', [...PF_KEY], 'inet_service'), items(single, NAT_ELEMENTS.pf_port)),
    withElems(map('pfr_addr', [...PF_KEY], 'ipv4_addr', { flags: ['interval'] }), items(sameRange, NAT_ELEMENTS.pfr_addr)),
    baseChain('nat_pre', { type: 'nat', hook: 'prerouting', priority: { base: 'dstnat', offset: -10 } }),
    baseChain('nat_out', { type: 'nat', hook: 'output', priority: { base: 'dstnat', offset: -10 } }),
    baseChain('nat_post', { type: 'nat', hook: 'postrouting', priority: { base: 'srcnat', offset: -10 } }),
  ];
  const pfKey = () => concatKey(F.ipDaddr, F.l4proto, F.thDport);
  for (const chainName of ['nat_pre', 'nat_out']) {
    objs.push(
      rule(chainName, [counter(), dnat({ family: 'ip', addr: mapLookup(F.ipDaddr, 'static_dnat') })], { comment: 'static NAT' }),
      rule(chainName, [meta.l4proto(['tcp', 'udp']), dnat({ family: 'ip', addr: mapLookup(pfKey(), 'pf_addr'), port: mapLookup(pfKey(), 'pf_port') })], { comment: 'port forwarding' }),
      rule(chainName, [meta.l4proto(['tcp', 'udp']), dnat({ family: 'ip', addr: mapLookup(pfKey(), 'pfr_addr') })], { comment: 'port-range forwarding' }),
    );
  }
  objs.push(
    rule('nat_post', [meta.oifname(setRef('public_ifs')), snat({ family: 'ip', addr: mapLookup(F.ipSaddr, 'static_snat') })], { comment: 'static NAT egress' }),
    rule('nat_post', [meta.oifname(setRef('public_ifs')), counter(), snat({ family: 'ip', addr: mapLookup(F.ipSaddr, 'snat_src') })], { comment: 'source NAT' }),
  );
  return objs;
}

export const ROUTER_TABLE_COMMENT = 'managed by netns-router';

/**
 * The conntrack mark, as the router uses it:
 *   top byte  0x4c (KERNEL_LB_MARK): the kernel load balancer translated the flow (lib/router/lb/kernel.ts);
 *   bit 23    ENDED_FLOW_BIT: a firewall tightening ended the flow (firewall/forbidden-flows.ts);
 *   bits 0-22 the load balancer's backend slot (at most MAX_KERNEL_SLOTS = 4096).
 * Nothing else in the router sets ct mark. The firewall lets kernel-LB flows through its forward chain as it lets
 * haproxy's own connections to a backend through (those are the router's output, not forwarded guest traffic), and
 * the LB's source NAT picks them by it.
 */
export const KERNEL_LB_MARK = 0x4c000000;
/** The part of the ct mark that says "a kernel load-balancer flow". */
export const KERNEL_LB_MARK_MASK = 0xff000000;
/** `ct mark & 0xff000000 == 0x4c000000`: the flow was translated by the kernel load balancer. */
export const kernelLbFlow = () => ct.mark(KERNEL_LB_MARK, KERNEL_LB_MARK_MASK);
/**
 * The ct mark bit of an ended flow: its packets are no longer accepted as "established" by the firewall's chains
 * but judged by the rules as if new, in both directions (firewall-objects.ts). Set on the conntrack entry, which is
 * kept: a deleted entry could come back the other way round (docs/firewall.md, "Ending flows").
 */
export const ENDED_FLOW_BIT = 0x00800000;
/** `ct state established,related ct mark & ENDED_FLOW_BIT == 0 accept`: replies and established flows pass, unless a
 *  tightening ended the flow (its packets then meet the chain as new ones). The firewall's chains and the guard's. */
export const acceptUnendedFlows = (): Stmt[] => [ct.state('established', 'related'), ct.mark(0, ENDED_FLOW_BIT), accept()];
/** Whether a conntrack entry's mark says a firewall tightening ended it. */
export const isEndedFlowMark = (mark: number | undefined): boolean => mark !== undefined && (mark & ENDED_FLOW_BIT) !== 0;
/** Whether a conntrack entry's mark says it is a kernel load-balancer flow. */
export const isKernelLbMark = (mark: number | undefined): boolean => mark !== undefined && ((mark & KERNEL_LB_MARK_MASK) >>> 0) === KERNEL_LB_MARK;

/**
 * The mirror guards: the reverse of a flow that a NAT change stranded (a removed port forward's or static NAT's
 * flow, its conntrack entry deleted) as a guest would restart it — `guest . guest port . client . client port`.
 * Without them, a guest that sends anything to the client after the deletion (a retransmission, output of an idle
 * SSH session, a WireGuard keepalive) starts a new outbound flow; source NAT keeps its port when it is free, and
 * when the forward was on the source NAT address with equal ports the new flow's reply direction is exactly the
 * removed forward's, so the client's packets reach the guest again for as long as they flow. The guard set holds
 * such reverses (nat-flow-cleanup.ts fills it, in a stamped transaction, before deleting the entries; only flows a
 * restart could revive: nat-flow-cleanup.ts `revivable`); a guest's packet that would start one towards the public
 * side is dropped and keeps its guard alive (`update`). A guard lapses after its set's
 * timeout without such a packet: a day for TCP (an idle session's later output), ten minutes for UDP (past the
 * kernel's 120 s stream timeout). docs/firewall.md "Ending flows".
 */
export const MIRROR_GUARDS = {
  tcp: { set: 'nat_gone_tcp', timeout: 86_400 },
  udp: { set: 'nat_gone_udp', timeout: 600 },
} as const;
/** The guard sets' names (what a table rebuilt whole carries over: table-sync.ts SyncOptions.carry). */
export const MIRROR_GUARD_SETS: readonly string[] = [MIRROR_GUARDS.tcp.set, MIRROR_GUARDS.udp.set];
/** How many guards each set holds at most (a NAT change whose guards do not fit puts none: its flows' mirrors are swept instead). */
export const MIRROR_GUARDS_SIZE = 65_536;

function mirrorGuardObjects(): NftObject[] {
  const out: NftObject[] = [];
  for (const proto of ['tcp', 'udp'] as const) {
    const g = MIRROR_GUARDS[proto];
    const key = proto === 'tcp' ? concatKey(F.ipSaddr, F.tcpSport, F.ipDaddr, F.tcpDport) : concatKey(F.ipSaddr, F.udpSport, F.ipDaddr, F.udpDport);
    out.push(
      set(g.set, ['ipv4_addr', 'inet_service', 'ipv4_addr', 'inet_service'], { flags: ['timeout'], timeout: g.timeout, size: MIRROR_GUARDS_SIZE }),
      rule('pub_guard_fwd', [ct.state('new'), meta.oifname(setRef('public_ifs')), meta.l4proto(proto), lookup(key, g.set), setStmt('update', key, g.set), counter(), drop()],
        { comment: `${proto} flow of a removed NAT mapping, restarted by its guest` }),
    );
  }
  return out;
}

/** Before every other filter chain of the router (the firewall's forward chain runs at filter-10). */
const GUARD_PRIORITY = { base: 'filter', offset: -20 } as const;

/**
 * The public guard. On a public interface, new traffic is dropped unless
 *   forwarded:  conntrack says a static NAT or port forward translated it (its ingress rules, if any, ran
 *               before DNAT), or it is for a routed IPv6 guest address whose ingress the firewall filters;
 *   input:      it is for an address the firewall filters (it passed that filter), a public service of the
 *               router (haproxy listener), or IPv6 neighbour discovery.
 * Replies (established/related) pass, unless a firewall tightening ended their flow. Without it, a host on the public segment that routes a guest
 * CIDR via the router's public address reaches every port of every VM, and the router's guest-side services.
 */
export function publicGuardObjects(ingress: PublicIngress = {}): NftObject[] {
  const filtered = [...new Set(ingress.filtered ?? [])].sort();
  // validated address literals: a colon is IPv6 (node's isIPv6 compiles a large regex on first use, ~5 ms of a
  // cold process)
  const v4 = filtered.filter((a) => !a.includes(':'));
  const v6 = filtered.filter((a) => a.includes(':'));
  const services = (ingress.services ?? []).filter((x) => !x.ip.includes(':')).sort((a, b) => compareText(a.ip, b.ip) || compareText(a.protocol, b.protocol) || a.port - b.port);
  const seen = new Set<string>();
  const svc: ElementItem[] = [];
  for (const x of services) {
    const k = `${x.ip}/${x.protocol}/${x.port}`;
    if (seen.has(k)) continue;
    seen.add(k);
    svc.push({ key: [x.ip, symbol(x.protocol), x.port] });
  }
  const withElems = <O extends { elements?: ElementItem[] }>(o: O, el: ElementItem[]): O => (el.length ? { ...o, elements: el } : o);
  return [
    withElems(set('pub_filtered', 'ipv4_addr'), v4.map((a) => ({ key: a }))),
    withElems(set('pub_filtered6', 'ipv6_addr'), v6.map((a) => ({ key: a }))),
    withElems(set('pub_services', ['ipv4_addr', 'inet_proto', 'inet_service']), svc),
    chain('pub_fwd'),
    rule('pub_fwd', acceptUnendedFlows()),
    rule('pub_fwd', [ct.status('dnat'), accept()], { comment: 'translated by a static NAT or port forward' }),
    rule('pub_fwd', [lookup(F.ip6Daddr, 'pub_filtered6'), accept()], { comment: 'routed IPv6 address, filtered at ingress' }),
    rule('pub_fwd', [counter(), drop()], { comment: 'public side: nothing else reaches the guests' }),
    chain('pub_in'),
    rule('pub_in', acceptUnendedFlows()),
    rule('pub_in', [icmpv6.type(['nd-neighbor-solicit', 'nd-neighbor-advert', 'nd-router-advert']), accept()], { comment: 'IPv6 neighbour discovery' }),
    rule('pub_in', [lookup(F.ipDaddr, 'pub_filtered'), accept()], { comment: 'filtered public addresses' }),
    rule('pub_in', [lookup(F.ip6Daddr, 'pub_filtered6'), accept()], { comment: 'filtered public addresses' }),
    rule('pub_in', [meta.l4proto(['tcp', 'udp']), lookup(concatKey(F.ipDaddr, F.l4proto, F.thDport), 'pub_services'), accept()], { comment: 'public services of the router' }),
    rule('pub_in', [counter(), drop()], { comment: 'public side: nothing else reaches the router' }),
    baseChain('pub_guard_fwd', { type: 'filter', hook: 'forward', priority: GUARD_PRIORITY, policy: 'accept' }),
    ...mirrorGuardObjects(),
    rule('pub_guard_fwd', [meta.iifname(setRef('public_ifs')), goto('pub_fwd')]),
    baseChain('pub_guard_in', { type: 'filter', hook: 'input', priority: GUARD_PRIORITY, policy: 'accept' }),
    rule('pub_guard_in', [meta.iifname(setRef('public_ifs')), goto('pub_in')]),
  ];
}

/** The router table's contents: the plan's NAT ruleset, the public guard, and `extra` (feature modules' objects). */
export function routerObjects(plan: NatPlan, extra: NftObject[] = [], ingress: PublicIngress = {}): NftObject[] {
  return [...routerTableObjects(plan), ...publicGuardObjects(ingress), ...extra];
}

