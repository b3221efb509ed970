/**
 * Pure compilation of a router's guest-segment filter: ONE nftables table of the bridge family in the host-side
 * namespace, `bridge nr_vmf_<namespace>`, holding every tier of the router. docs/vm-filter.md explains the design;
 * in short:
 *
 * - The bridge family sees every bridge of the host, and this kernel has neither `meta ibrname` (the bridge of a
 *   port) nor bridge connection tracking. So nothing is matched by bridge: a frame is judged by who it is from
 *   (its source MAC is one of our NICs: prerouting) or whom it goes to (its output port is the router's, one
 *   bound or learned for our NICs, or its destination MAC is one of our NICs: forward). Frames of other
 *   networks on the host pass untouched.
 * - Per-NIC data are set and map elements keyed by MAC (`nic_ip4` = MAC . IPv4, …): adding or removing a VM
 *   changes elements. Only a NIC with a rule set of its own gets chains of its own.
 * - Bridge ports are learned by the kernel: a frame of a known MAC adds (MAC . port) to a dynamic set, and its
 *   port to the tier's `ports_<id>` (the ports the forward guards protect). Strict tiers also drop a known MAC
 *   arriving on another port than the one learned (until it has been silent for LEARN_TIMEOUT). Ports are kept
 *   by name: nft 1.0.6 lists an interface index by the name the *calling* process's namespace gives it, which
 *   is not the host namespace's when the engine runs with --host-netns; a name is what the kernel stored.
 * - A neighbour advertisement (or DAD probe) claiming a known NIC's IPv6 address from another MAC is matched by
 *   its target, a raw payload that nft 1.0.6 cannot look up in a typed set: buckets by the target's last byte (an
 *   inline verdict map), one rule per address — a VM's IPv6 address changes one small bucket chain.
 */
import { createHash } from 'node:crypto';
import * as N from '../../nft/index.js';
import type { NftObject, Rule } from '../../nft/objects.js';
import type { SetExpr, Stmt, TableRef, Verdict } from '../../nft/json.js';
import type { RouterModel, TierModel } from '../model.js';
import { externalGateway } from '../shared-network.js';
import { dhcpState } from '../dhcp/state.js';
import { vmdataState } from '../vmdata/state.js';
import { ipToBigInt } from '../../util/ip.js';
import { filteredTiers, knownNics, routerSide, type KnownNic, type RouterSide } from './nics.js';
import { vmfilterState } from './state.js';
import { bindRule, flattenRuleSet, type BoundRule } from './rules.js';
import { compareText } from '../../util/compare.js';

/** Seconds a learned MAC → port binding lives without a frame (strict tiers: how long a moved VM waits). */
export const LEARN_TIMEOUT = 60;
/**
 * Seconds a learned port stays protected without a frame of a known MAC. A port name may be given to another
 * VM later: release-nic and prepare-nic forget the NIC's ports at once, the timeout covers a VM that went
 * without either (a crash).
 */
export const PORT_TIMEOUT = 1800;

const TABLE_PREFIX = 'nr_vmf_';

/** The router's filter table (names of this shape are netns-router's; validated by lib/nft). */
export function vmfilterTable(namespace: string): TableRef {
  return { family: 'bridge', name: N.checkName('vm filter table', `${TABLE_PREFIX}${namespace}`) };
}

/** The table's comment, for people (nft 1.0.6 takes no table comment in JSON: a later nft keeps it). */
export function vmfilterComment(namespace: string): string {
  const text = `netns-router vm-filter ${namespace}`;
  return Buffer.byteLength(text) <= N.MAX_COMMENT_LENGTH ? text : `netns-router vm-filter h${createHash('sha256').update(namespace).digest('hex').slice(0, 32)}`;
}

/** The ownership mark: set `owner` holds this number, checked before the table is ever replaced or deleted. */
export const OWNER_SET = 'owner';
export function ownerMark(namespace: string): number {
  return createHash('sha256').update(`netns-router vm-filter ${namespace}`).digest().readUInt32BE(0);
}

const E = N.F.etherSaddr;
const D = N.F.etherDaddr;
const macLit = (mac: string) => N.etherAddr(mac);
const hex128 = (ip6: string) => N.rawValue(ipToBigInt(ip6), 128);
const LL_MASK = N.rawValue(0xffc0n << 112n, 128);
const LL_NET = N.rawValue(0xfe80n << 112n, 128);
/** ICMPv6 neighbour solicitation/advertisement target address: bytes 8–23 of the ICMPv6 message. */
const ND_TARGET = N.rawPayload('th', 64, 128);
const etherType = (t: 'arp' | 'ip' | 'ip6') => N.match(N.payload('ether', 'type'), N.symbol(t));
const arpField = (f: string) => N.payload('arp', f);
const notLinkLocal = (): Stmt => N.match(N.bitAnd(ND_TARGET, LL_MASK), LL_NET, '!=');
const rawSet = (ips: string[]) => ({ set: ips.map(hex128) });
/** Explicit dependencies: every field match names its protocol first (the bridge family sees every ethertype). */
const icmp6 = (): Stmt[] => [etherType('ip6'), N.meta.l4proto('ipv6-icmp')];
const arpMatch = (f: string, v: N.ValueInput | SetExpr, op: '==' | '!=' = '=='): Stmt[] =>
  [etherType('arp'), N.match(arpField(f), v, op)];

const chainId = (mac: string) => mac.replace(/:/g, '');
const names = {
  pre: (id: string) => `pre_${id}`,
  fwd: (id: string) => `fwd_${id}`,
  ports: (id: string) => `ports_${id}`,
  ip4: (id: string) => `ip4_${id}`,
  ip6: (id: string) => `ip6_${id}`,
  nic: (mac: string) => `nic_${chainId(mac)}`,
  nicIn: (mac: string) => `in_${chainId(mac)}`,
  claim: (id: string, byte: number) => `na_${id}_${byte.toString(16).padStart(2, '0')}`,
};
/** The last byte of a neighbour-discovery target address: the bucket of its claim rules. */
const TARGET_LAST_BYTE = N.rawPayload('th', 64 + 120, 8);

/** What the compiler needs of a tier. */
export interface TierView {
  id: string;
  strict: boolean;
  /** The router serves DHCP on it: DHCP server replies from anyone else are dropped. */
  dhcp: boolean;
  router: RouterSide;
  gateway: string[];
  gateway6: string[];
}

/** Everything the table is compiled from (also the compile cache key). */
export interface FilterView {
  namespace: string;
  tiers: TierView[];
  nics: Array<KnownNic & { rules: BoundRule[] }>;
}

export function filterView(m: RouterModel): FilterView | undefined {
  const tiers = filteredTiers(m);
  if (!tiers.length) return undefined;
  const s = vmfilterState(m);
  const dhcp = dhcpState(m);
  const views: TierView[] = tiers.map((t: TierModel) => ({
    id: t.networkId,
    strict: s.tiers[t.networkId]?.strict === true,
    dhcp: dhcp.tiers[t.networkId]?.dhcp === true,
    router: routerSide(m, t),
    gateway: [t.gateway],
    gateway6: t.ip6Gateway && !externalGateway(t) ? [t.ip6Gateway] : [],
  }));
  const byId = new Map(views.map((v) => [v.id, v]));
  const nics = knownNics(m).map((n) => {
    const tv = byId.get(n.networkId)!;
    const vars = { mac: n.mac, ip: n.ip4, ipv6: n.ip6, gateway: tv.gateway, gateway6: tv.gateway6 };
    const rules = n.set ? flattenRuleSet(n.set, s.filters).map((r) => bindRule(r, vars)).filter((r): r is BoundRule => r !== null) : [];
    return { ...n, rules };
  });
  return { namespace: m.namespace, tiers: views, nics };
}

// ── rule sets ───────────────────────────────────────────────────────────────────────────────────────

function addrMatch(proto: 'ip' | 'ip6' | 'arp', field: 'saddr' | 'daddr', cidrs: string[]): Stmt {
  if (proto === 'arp') {
    const left = arpField(`${field} ip`);
    return cidrs.length === 1 ? N.match(left, cidrs[0]) : N.match(left, N.anonSet(cidrs));
  }
  const m = proto === 'ip' ? N.ip : N.ip6;
  return m[field](cidrs.length === 1 ? cidrs[0] : cidrs);
}

const portRange = (p: [number, number]) => (p[0] === p[1] ? p[0] : N.portRange(p[0], p[1]));

/** One rule of a NIC's set as nft statements (the verdict last). */
export function ruleStatements(r: BoundRule): Stmt[] {
  const s: Stmt[] = [];
  if (r.srcmac) s.push(N.match(E, macLit(r.srcmac)));
  if (r.dstmac) s.push(N.match(D, macLit(r.dstmac)));
  const fam = r.family ?? ({ arp: 4, ipv4: 4, icmp: 4, ipv6: 6, icmpv6: 6 } as Partial<Record<string, 4 | 6>>)[r.protocol];
  const l3: 'ip' | 'ip6' | 'arp' | undefined = r.protocol === 'arp' ? 'arp' : fam === 4 ? 'ip' : fam === 6 ? 'ip6' : undefined;
  if (r.protocol === 'arp') s.push(etherType('arp'));
  else if (l3 && r.protocol !== 'mac') s.push(etherType(l3 as 'ip' | 'ip6'));
  if (l3) {
    if (r.srcip) s.push(addrMatch(l3, 'saddr', r.srcip));
    if (r.dstip) s.push(addrMatch(l3, 'daddr', r.dstip));
  }
  switch (r.protocol) {
    case 'tcp':
    case 'udp': {
      const ports = r.protocol === 'tcp' ? N.tcp : N.udp;
      s.push(N.meta.l4proto(r.protocol));
      if (r.srcport) s.push(ports.sport(portRange(r.srcport)));
      if (r.dstport) s.push(ports.dport(portRange(r.dstport)));
      if (r.established) s.push(N.match(N.bitAnd(N.payload('tcp', 'flags'), N.symbol('ack')), N.symbol('ack')));
      break;
    }
    case 'icmp':
      s.push(N.meta.l4proto('icmp'));
      if (r.type !== undefined) s.push(N.icmp.type(r.type));
      if (r.code !== undefined) s.push(N.icmp.code(r.code));
      break;
    case 'icmpv6':
      s.push(N.meta.l4proto('ipv6-icmp'));
      if (r.type !== undefined) s.push(N.icmpv6.type(r.type));
      if (r.code !== undefined) s.push(N.icmpv6.code(r.code));
      break;
    default:
      break;
  }
  s.push(r.action === 'accept' ? N.accept() : r.action === 'drop' ? N.drop() : N.ret());
  return s;
}

// ── the table ───────────────────────────────────────────────────────────────────────────────────────

/**
 * The table's contents for a view (undefined view: no table). Order: regular chains (verdict maps jump to
 * them), sets and maps (rules look them up), base chains, rules.
 */
export function compileFilter(v: FilterView): NftObject[] {
  const chains: NftObject[] = [];
  const sets: NftObject[] = [];
  const rules: Rule[] = [];
  const r = (chain: string, expr: Stmt[], comment?: string) => rules.push(N.rule(chain, expr, comment ? { comment } : {}));

  // per-NIC elements
  const el = {
    nicMac: [] as N.ElementItem[], nicTier: [] as N.ElementItem[], macFwd: [] as N.ElementItem[],
    self: [] as N.ElementItem[], ip4: [] as N.ElementItem[], ip6: [] as N.ElementItem[],
    nicChain: [] as N.ElementItem[], nicIn: [] as N.ElementItem[], bound: [] as N.ElementItem[], boundMac: [] as N.ElementItem[],
    portTier: [] as N.ElementItem[],
  };
  const tierIp4 = new Map<string, Set<string>>(v.tiers.map((t) => [t.id, new Set()]));
  const tierIp6 = new Map<string, Set<string>>(v.tiers.map((t) => [t.id, new Set()]));
  const portTier = new Map<string, string>();
  for (const t of v.tiers) portTier.set(t.router.port, t.id);
  const nicChains: Array<{ name: string; stmts: Stmt[][] }> = [];
  const inChains: Array<{ name: string; stmts: Stmt[][] }> = [];
  // per tier: last byte of an IPv6 address → [address, owner MAC] (claim buckets)
  const claims = new Map<string, Map<number, Array<[string, string]>>>(v.tiers.map((t) => [t.id, new Map()]));
  for (const n of v.nics) {
    const mac = macLit(n.mac);
    el.nicMac.push({ key: mac });
    el.nicTier.push({ key: mac, value: N.jump(names.pre(n.networkId)) });
    el.macFwd.push({ key: mac, value: N.goto(names.fwd(n.networkId)) });
    el.self.push({ key: [mac, mac] });
    for (const a of n.ip4) { el.ip4.push({ key: [mac, a] }); tierIp4.get(n.networkId)!.add(a); }
    for (const a of n.ip6) {
      el.ip6.push({ key: [mac, a] });
      tierIp6.get(n.networkId)!.add(a);
      const byte = Number(ipToBigInt(a) & 0xffn);
      const b = claims.get(n.networkId)!;
      b.set(byte, [...(b.get(byte) ?? []), [a, n.mac]]);
    }
    if (n.port) {
      el.bound.push({ key: [mac, N.ifname(n.port)] });
      el.boundMac.push({ key: mac });
      if (!portTier.has(n.port)) portTier.set(n.port, n.networkId);
    }
    const out: Stmt[][] = [];
    const rin: Stmt[][] = [];
    for (const rule of n.rules) {
      if (rule.direction !== 'in') out.push(ruleStatements(rule));
      if (rule.direction !== 'out') rin.push(ruleStatements(rule));
    }
    if (out.length) {
      nicChains.push({ name: names.nic(n.mac), stmts: out });
      el.nicChain.push({ key: mac, value: N.jump(names.nic(n.mac)) });
    }
    if (rin.length) {
      inChains.push({ name: names.nicIn(n.mac), stmts: rin });
      el.nicIn.push({ key: mac, value: N.jump(names.nicIn(n.mac)) });
    }
  }
  for (const [port, id] of [...portTier].sort(([a], [b]) => compareText(a, b))) el.portTier.push({ key: N.ifname(port), value: N.goto(names.fwd(id)) });
  const withElems = (items: N.ElementItem[]) => (items.length ? { elements: items } : {});

  // chains first: the verdict maps jump to them
  chains.push(N.chain('guard_dispatch'));
  for (const t of v.tiers) chains.push(N.chain(names.pre(t.id)), N.chain(names.fwd(t.id)));
  for (const c of [...nicChains, ...inChains]) chains.push(N.chain(c.name));
  const claimChains: Array<{ name: string; stmts: Stmt[][] }> = [];
  for (const t of v.tiers) {
    for (const [byte, list] of [...claims.get(t.id)!].sort(([a], [b]) => a - b)) {
      const name = names.claim(t.id, byte);
      chains.push(N.chain(name));
      claimChains.push({ name, stmts: list.sort(([a], [b]) => compareText(a, b)).map(([a, owner]) => [N.match(ND_TARGET, hex128(a)), N.match(E, macLit(owner), '!='), N.drop()]) });
    }
  }

  sets.push(
    N.set('nic_mac', 'ether_addr', withElems(el.nicMac)),
    N.verdictMap('nic_tier', 'ether_addr', withElems(el.nicTier)),
    N.verdictMap('mac_fwd', 'ether_addr', withElems(el.macFwd)),
    N.set('nic_self', ['ether_addr', 'ether_addr'], withElems(el.self)),
    N.set('nic_ip4', ['ether_addr', 'ipv4_addr'], withElems(el.ip4)),
    N.set('nic_ip6', ['ether_addr', 'ipv6_addr'], withElems(el.ip6)),
    N.verdictMap('nic_chain', 'ether_addr', withElems(el.nicChain)),
    N.verdictMap('nic_in', 'ether_addr', withElems(el.nicIn)),
    N.set('bound', ['ether_addr', 'ifname'], withElems(el.bound)),
    N.set('bound_mac', 'ether_addr', withElems(el.boundMac)),
    N.set('router_ports', 'ifname', withElems(v.tiers.map((t) => ({ key: N.ifname(t.router.port) })))),
    N.verdictMap('port_tier', 'ifname', withElems(el.portTier)),
    // learned by the packet path (created with the rules that fill them: nft marks them dynamic then)
    N.set('learned', ['ether_addr', 'ifname'], { flags: ['timeout'], timeout: LEARN_TIMEOUT }),
    N.set('learned_mac', 'ether_addr', { flags: ['timeout'], timeout: LEARN_TIMEOUT }),
    N.set(OWNER_SET, 'mark', { elements: [{ key: ownerMark(v.namespace) }] }),
  );
  for (const t of v.tiers) {
    sets.push(
      N.set(names.ports(t.id), 'ifname', { flags: ['timeout'], timeout: PORT_TIMEOUT }),
      N.set(names.ip4(t.id), 'ipv4_addr', withElems([...tierIp4.get(t.id)!].sort().map((a) => ({ key: a })))),
      N.set(names.ip6(t.id), 'ipv6_addr', withElems([...tierIp6.get(t.id)!].sort().map((a) => ({ key: a })))),
    );
  }

  const base = [
    N.baseChain('prerouting', { type: 'filter', hook: 'prerouting', priority: N.ROUTER_PRIORITIES.bridgeFilter }),
    N.baseChain('forward', { type: 'filter', hook: 'forward', priority: N.ROUTER_PRIORITIES.bridgeFilter }),
  ];

  // prerouting: the router's MACs only from its ports (a VM copying one would draw the router's frames to itself:
  // the bridge learns a source MAC after prerouting), then frames from our NICs (by source MAC)
  for (const t of v.tiers) r('prerouting', [N.match(E, macLit(t.router.mac)), N.meta.iifname(t.router.port, '!='), N.drop()], 'the router\'s MAC from another port');
  r('prerouting', [N.lookup(E, 'bound_mac'), N.lookup(N.concatKey(E, N.F.iifname), 'bound', '!='), N.drop()], 'bound MAC from another port');
  r('prerouting', [N.vmap(E, 'nic_tier')]);
  r('prerouting', [N.vmap(E, 'nic_chain')]);
  for (const t of v.tiers) preChain(t, r, [...claims.get(t.id)!.keys()].sort((a, b) => a - b));
  for (const c of nicChains) for (const st of c.stmts) r(c.name, st);

  // forward: frames to the ports and NICs we protect
  r('forward', [N.jump('guard_dispatch')]);
  r('forward', [N.vmap(D, 'nic_in')]);
  r('guard_dispatch', [N.vmap(N.F.oifname, 'port_tier')]);
  for (const t of v.tiers) r('guard_dispatch', [N.lookup(N.F.oifname, names.ports(t.id)), N.goto(names.fwd(t.id))]);
  r('guard_dispatch', [N.vmap(D, 'mac_fwd')]);
  for (const t of v.tiers) fwdChain(t, r, [...claims.get(t.id)!.keys()].sort((a, b) => a - b));
  for (const c of inChains) for (const st of c.stmts) r(c.name, st);
  for (const c of claimChains) for (const st of c.stmts) r(c.name, st);

  return [...chains, ...sets, ...base, ...rules];
}

/** Guards against frames from our NICs that only the router may send. */
function guardsFromNics(t: TierView): Stmt[][] {
  const g: Stmt[][] = [];
  if (t.dhcp) g.push([etherType('ip'), N.meta.l4proto('udp'), N.udp.sport(67), N.udp.dport(68), N.drop()]);
  if (t.router.ip6.length) {
    g.push([etherType('ip6'), N.meta.l4proto('udp'), N.udp.sport(547), N.udp.dport(546), N.drop()]);
    g.push([...icmp6(), N.icmpv6.type('nd-router-advert'), N.drop()]);
  }
  g.push([...icmp6(), N.icmpv6.type('nd-redirect'), N.drop()]);
  g.push([etherType('ip'), N.meta.l4proto('icmp'), N.icmp.type('redirect'), N.drop()]);
  return g;
}

/**
 * Rules sending neighbour advertisements and DAD probes whose target is a known NIC's IPv6 address to its claim
 * bucket (`na_<id>_<byte>`: the address from any other MAC is dropped there).
 */
function claimDispatch(t: TierView, buckets: number[]): Stmt[][] {
  if (!buckets.length) return [];
  const vm = N.vmap(TARGET_LAST_BYTE, buckets.map((b) => [b, N.jump(names.claim(t.id, b))] as [number, Verdict]));
  return [
    [...icmp6(), N.icmpv6.type('nd-neighbor-advert'), notLinkLocal(), vm],
    [...icmp6(), N.ip6.saddr('::'), N.icmpv6.type('nd-neighbor-solicit'), notLinkLocal(), vm],
  ];
}

/** pre_<id>: a known NIC of the tier — port learning, guards, then its ARP/IPv4/IPv6 must carry its own addresses. */
function preChain(t: TierView, r: (chain: string, expr: Stmt[], comment?: string) => void, claimBuckets: number[]): void {
  const c = names.pre(t.id);
  const pair = () => N.concatKey(E, N.F.iifname);
  const learnPort = N.setStmt('update', N.F.iifname, names.ports(t.id));
  r(c, [N.lookup(pair(), 'learned'), N.setStmt('update', pair(), 'learned'), N.setStmt('update', E, 'learned_mac'), learnPort]);
  if (t.strict) {
    r(c, [N.lookup(E, 'bound_mac', '!='), N.lookup(E, 'learned_mac'), N.lookup(pair(), 'learned', '!='), N.drop()], 'learned on another port');
    r(c, [N.lookup(pair(), 'learned', '!='), N.setStmt('add', pair(), 'learned'), N.setStmt('add', E, 'learned_mac'), learnPort]);
  } else {
    r(c, [N.lookup(pair(), 'learned', '!='), N.setStmt('add', pair(), 'learned'), N.setStmt('update', E, 'learned_mac'), learnPort]);
  }
  for (const g of guardsFromNics(t)) r(c, g);
  if (t.router.ip6.length) {
    r(c, [etherType('ip6'), N.ip6.saddr(t.router.ip6), N.drop()], 'the router\'s addresses');
    r(c, [...icmp6(), N.icmpv6.type('nd-neighbor-advert'), N.match(ND_TARGET, rawSet(t.router.ip6)), N.drop()], 'the router\'s addresses');
  }
  // ARP: well-formed, the sender is the frame's source and announces its own address (or probes: 0.0.0.0)
  r(c, [...arpMatch('htype', 1, '!='), N.drop()]);
  r(c, [...arpMatch('ptype', N.symbol('ip'), '!='), N.drop()]);
  r(c, [...arpMatch('hlen', 6, '!='), N.drop()]);
  r(c, [...arpMatch('plen', 4, '!='), N.drop()]);
  r(c, [...arpMatch('operation', { set: [N.symbol('request'), N.symbol('reply')] }, '!='), N.drop()]);
  r(c, [etherType('arp'), N.lookup(N.concatKey(E, arpField('saddr ether')), 'nic_self', '!='), N.drop()]);
  r(c, [...arpMatch('saddr ip', '0.0.0.0', '!='), N.lookup(N.concatKey(E, arpField('saddr ip')), 'nic_ip4', '!='), N.drop()]);
  r(c, [etherType('arp'), N.ret()]);
  // IPv4: its own source address; a DHCP client without one may only broadcast to the server port
  r(c, [etherType('ip'), N.ip.saddr('0.0.0.0'), N.ip.daddr('255.255.255.255'), N.meta.l4proto('udp'), N.udp.sport(68), N.udp.dport(67), N.ret()]);
  r(c, [etherType('ip'), N.lookup(N.concatKey(E, N.F.ipSaddr), 'nic_ip4', '!='), N.drop()]);
  r(c, [etherType('ip'), N.ret()]);
  // IPv6: NICs without addresses of their own advertise (and probe) link-local targets only
  // neighbour advertisements and DAD probes: no other NIC's address
  for (const st of claimDispatch(t, claimBuckets)) r(c, st, 'a NIC\'s address claimed by another');
  // DAD and MLD before an address exists, router solicitations (RFC 4861 6.3.7) may come from ::
  r(c, [...icmp6(), N.ip6.saddr('::'), N.icmpv6.type(['nd-neighbor-solicit', 'nd-router-solicit', 'mld-listener-report', 'mld2-listener-report']), N.ret()]);
  r(c, [etherType('ip6'), N.ip6.saddr('fe80::/10'), N.ret()]);
  r(c, [etherType('ip6'), N.lookup(N.concatKey(E, N.F.ip6Saddr), 'nic_ip6', '!='), N.drop()]);
  r(c, [etherType('ip6'), N.ret()]);
  r(c, [N.drop()], 'no other protocols from a known NIC');
}

/** fwd_<id>: a frame to the router's port or a NIC of the tier, not from the router. */
function fwdChain(t: TierView, r: (chain: string, expr: Stmt[], comment?: string) => void, claimBuckets: number[]): void {
  const c = names.fwd(t.id);
  r(c, [N.lookup(N.F.iifname, 'router_ports'), N.ret()]);
  if (t.strict) r(c, [N.lookup(E, 'nic_mac', '!='), N.drop()], 'unknown MAC (strict)');
  for (const g of guardsFromNics(t)) r(c, g);
  r(c, [...arpMatch('saddr ip', t.router.ip4.length === 1 ? t.router.ip4[0] : N.anonSet(t.router.ip4)), N.drop()], 'the router\'s addresses');
  r(c, [etherType('ip'), N.ip.saddr(t.router.ip4), N.drop()], 'the router\'s addresses');
  if (t.router.ip6.length) {
    r(c, [etherType('ip6'), N.ip6.saddr(t.router.ip6), N.drop()], 'the router\'s addresses');
    r(c, [...icmp6(), N.icmpv6.type('nd-neighbor-advert'), N.match(ND_TARGET, rawSet(t.router.ip6)), N.drop()], 'the router\'s addresses');
  }
  // a known NIC's addresses from any other MAC (known MACs were checked on the way in)
  r(c, [N.lookup(E, 'nic_mac', '!='), etherType('arp'), N.lookup(arpField('saddr ip'), names.ip4(t.id)), N.drop()], 'a NIC\'s address from another MAC');
  r(c, [N.lookup(E, 'nic_mac', '!='), etherType('ip'), N.lookup(N.F.ipSaddr, names.ip4(t.id)), N.drop()], 'a NIC\'s address from another MAC');
  r(c, [N.lookup(E, 'nic_mac', '!='), etherType('ip6'), N.lookup(N.F.ip6Saddr, names.ip6(t.id)), N.drop()], 'a NIC\'s address from another MAC');
  for (const st of claimDispatch(t, claimBuckets)) r(c, st, 'a NIC\'s address claimed from another MAC');
}

/** A router's compiled filter: the table's contents and the MACs of the NICs it knows. */
export interface CompiledFilter {
  objects: NftObject[];
  macs: ReadonlySet<string>;
}

/**
 * Compiled filters by the text of everything they are compiled from (the router's tiers and names, the DHCP
 * state, the filter's slot): the previous command's filter is usually the one compiled last time, and deriving
 * the view of 1,000 NICs (their SLAAC addresses, their rule sets) costs more than this key.
 */
const cache = new Map<string, CompiledFilter | null>();
const CACHE_MAX = 8;

/** The router's filter; undefined when it has no implemented guest tier. */
export function compiledFilter(m: RouterModel): CompiledFilter | undefined {
  // the NICs' run counters change with every prepare-nic and release-nic, the table does not
  const { runs: _runs, ...filterSlot } = (m.extra?.vmfilter ?? {}) as Record<string, unknown>;
  const key = JSON.stringify([m.namespace, m.kind, m.nameId, m.l2 ? 1 : 0, m.tiers, m.extra?.dhcp, vmdataState(m).nics, filterSlot]);
  let hit = cache.get(key);
  if (hit === undefined) {
    const v = filterView(m);
    hit = v ? { objects: compileFilter(v), macs: new Set(v.nics.map((n) => n.mac)) } : null;
    cache.set(key, hit);
    if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value as string);
  }
  return hit ?? undefined;
}

/** The filter table's contents for a model; undefined when the router has no implemented guest tier. */
export function filterObjects(m: RouterModel): NftObject[] | undefined {
  return compiledFilter(m)?.objects;
}
