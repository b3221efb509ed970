/**
 * Pure compilation of a router's guest-segment filter: its objects in the ONE nftables table of the bridge family
 * that every router shares in the host-side namespace, `bridge netns_router_vmf`, each named with the router's
 * prefix (vmfilterPrefix), holding every tier of the router. docs/vm-filter.md explains the design; in short:
 *
 * - One table for all routers, not one per router: nft 1.0.6 (CLI and libnftables) keeps per-table caches and
 *   dumps every table of the namespace on each transaction that needs a cache, so a transaction costs ~1–1.7 ms
 *   per table in the namespace (1,000 tables: 1.7 s for one element). Objects in one table cost far less.
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
 * - A known NIC's MAC named by another MAC is matched the same way, in buckets by the MAC's last byte (`mc_`): as a
 *   DHCP client message's `chaddr` (dnsmasq finds the NIC's reservation by it: a forged DECLINE withholds the
 *   address for 10 minutes), and as the link-layer address option of a neighbour solicitation, advertisement or
 *   router solicitation (the router's neighbour entry for an address is who the metadata service answers on
 *   [fe80::a9fe:a9fe]: an entry pointing to vm1's MAC is vm1's identity). nft reads no variable offset, so these
 *   messages are bounded to one option, in a fixed slot.
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

/** The table every router's filter lives in, in the host-side namespace. */
export const VMFILTER_TABLE: TableRef = { family: 'bridge', name: 'netns_router_vmf' };

/**
 * A router's prefix in the shared table: `r` + 10 hex digits of a hash of its namespace + `_`. Fixed length, so
 * no router's prefix is the beginning of another's (namespace names may contain `_`); a collision of two
 * namespaces' hashes (40 bits) is refused by the ownership mark, never merged.
 */
export function vmfilterPrefix(namespace: string): string {
  return `r${createHash('sha256').update(`netns-router vm-filter prefix ${namespace}`).digest('hex').slice(0, 10)}_`;
}

/** The per-router table of the previous version (`bridge nr_vmf_<namespace>`): deleted by the next reconcile. */
export function legacyVmfilterTable(namespace: string): TableRef {
  return { family: 'bridge', name: N.checkName('vm filter table', `nr_vmf_${namespace}`) };
}

/**
 * Ownership marks: the shared table's set `owner` holds SHARED_MARK, each router's set `<prefix>owner` its
 * ownerMark (the legacy tables held the router's mark in `owner`). Checked before anything is replaced or deleted.
 */
export const OWNER_SET = 'owner';
export const SHARED_MARK = createHash('sha256').update('netns-router vm-filter shared table').digest().readUInt32BE(0);
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
/** A router's object names in the shared table: `o('nic_mac')` for the fixed ones, the rest per tier or NIC. */
export function filterNames(namespace: string) {
  const p = vmfilterPrefix(namespace);
  return {
    prefix: p,
    o: (name: string) => `${p}${name}`,
    pre: (id: string) => `${p}pre_${id}`,
    fwd: (id: string) => `${p}fwd_${id}`,
    ports: (id: string) => `${p}ports_${id}`,
    ip4: (id: string) => `${p}ip4_${id}`,
    ip6: (id: string) => `${p}ip6_${id}`,
    nic: (mac: string) => `${p}nic_${chainId(mac)}`,
    nicIn: (mac: string) => `${p}in_${chainId(mac)}`,
    claim: (id: string, byte: number) => `${p}na_${id}_${byte.toString(16).padStart(2, '0')}`,
    macClaim: (id: string, byte: number) => `${p}mc_${id}_${byte.toString(16).padStart(2, '0')}`,
  };
}
type Names = ReturnType<typeof filterNames>;
/** The last byte of a neighbour-discovery target address: the bucket of its claim rules. */
const TARGET_LAST_BYTE = N.rawPayload('th', 64 + 120, 8);
/** A DHCP message's client hardware address (BOOTP `chaddr`: 28 bytes into the UDP payload; Ethernet: 6 bytes). */
const CHADDR = N.rawPayload('th', (8 + 28) * 8, 48);
/** Its last byte: the bucket of the MAC claim rules. */
const CHADDR_LAST_BYTE = N.rawPayload('th', (8 + 28 + 5) * 8, 8);
/**
 * The one link-layer address option a guest's neighbour discovery may carry (RFC 4861 4.6.1: type, length 1, the
 * MAC): at ICMPv6 byte 24 of a solicitation or advertisement, 8 of a router solicitation. Linux takes such an
 * option wherever it is among the options, so longer messages are dropped (ND_MAX): a legitimate one carries one
 * option (its source or target link-layer address; a DAD probe, a nonce instead, RFC 7527).
 */
const ND_OPT = { nsna: 24, rs: 8 } as const;
const ND_MAX = { nsna: 24 + 8, rs: 8 + 8 } as const;
const ndOptMac = (at: number) => N.rawPayload('th', (at + 2) * 8, 48);
const ndOptLastByte = (at: number) => N.rawPayload('th', (at + 7) * 8, 8);
/** The ICMPv6 type as a raw byte (in a claim bucket, after a dispatch that matched ICMPv6: no dependencies). */
const ICMP6_TYPE = N.rawPayload('th', 0, 8);
const macRaw = (mac: string) => N.rawValue(BigInt(`0x${chainId(mac)}`), 48);
const macLastByte = (mac: string) => Number.parseInt(mac.slice(-2), 16);
/** Claim buckets (a tier's, by the last byte of an address or MAC): `item` added to bucket `byte`. */
const inBucket = <T>(m: Map<number, T[]>, byte: number, item: T): void => {
  const bucket = m.get(byte);
  if (bucket) bucket.push(item);
  else m.set(byte, [item]);
};
/** The buckets in byte order. */
const byByte = <T>(m: Map<number, T>): Array<[number, T]> => [...m].sort(([a], [b]) => a - b);

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
  const names = filterNames(v.namespace);
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
  // per tier: last byte of a MAC → the NICs' MACs (MAC claim buckets: DHCP chaddr, ND link-layer addresses)
  const macClaims = new Map<string, Map<number, string[]>>(v.tiers.map((t) => [t.id, new Map()]));
  for (const n of v.nics) {
    const mac = macLit(n.mac);
    el.nicMac.push({ key: mac });
    el.nicTier.push({ key: mac, value: N.jump(names.pre(n.networkId)) });
    el.macFwd.push({ key: mac, value: N.goto(names.fwd(n.networkId)) });
    el.self.push({ key: [mac, mac] });
    inBucket(macClaims.get(n.networkId)!, macLastByte(n.mac), n.mac);
    for (const a of n.ip4) { el.ip4.push({ key: [mac, a] }); tierIp4.get(n.networkId)!.add(a); }
    for (const a of n.ip6) {
      el.ip6.push({ key: [mac, a] });
      tierIp6.get(n.networkId)!.add(a);
      inBucket(claims.get(n.networkId)!, Number(ipToBigInt(a) & 0xffn), [a, n.mac]);
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
  chains.push(N.chain(names.o('guard_dispatch')));
  for (const t of v.tiers) chains.push(N.chain(names.pre(t.id)), N.chain(names.fwd(t.id)));
  for (const c of [...nicChains, ...inChains]) chains.push(N.chain(c.name));
  const claimChains: Array<{ name: string; stmts: Stmt[][] }> = [];
  for (const t of v.tiers) {
    for (const [byte, list] of byByte(claims.get(t.id)!)) {
      const name = names.claim(t.id, byte);
      chains.push(N.chain(name));
      claimChains.push({ name, stmts: list.sort(([a], [b]) => compareText(a, b)).map(([a, owner]) => [N.match(ND_TARGET, hex128(a)), N.match(E, macLit(owner), '!='), N.drop()]) });
    }
    for (const [byte, macs] of byByte(macClaims.get(t.id)!)) {
      const name = names.macClaim(t.id, byte);
      chains.push(N.chain(name));
      claimChains.push({ name, stmts: macs.sort(compareText).flatMap((owner) => macClaimRules(owner, t.dhcp)) });
    }
  }

  sets.push(
    N.set(names.o('nic_mac'), 'ether_addr', withElems(el.nicMac)),
    N.verdictMap(names.o('nic_tier'), 'ether_addr', withElems(el.nicTier)),
    N.verdictMap(names.o('mac_fwd'), 'ether_addr', withElems(el.macFwd)),
    N.set(names.o('nic_self'), ['ether_addr', 'ether_addr'], withElems(el.self)),
    N.set(names.o('nic_ip4'), ['ether_addr', 'ipv4_addr'], withElems(el.ip4)),
    N.set(names.o('nic_ip6'), ['ether_addr', 'ipv6_addr'], withElems(el.ip6)),
    N.verdictMap(names.o('nic_chain'), 'ether_addr', withElems(el.nicChain)),
    N.verdictMap(names.o('nic_in'), 'ether_addr', withElems(el.nicIn)),
    N.set(names.o('bound'), ['ether_addr', 'ifname'], withElems(el.bound)),
    N.set(names.o('bound_mac'), 'ether_addr', withElems(el.boundMac)),
    N.set(names.o('router_ports'), 'ifname', withElems(v.tiers.map((t) => ({ key: N.ifname(t.router.port) })))),
    N.verdictMap(names.o('port_tier'), 'ifname', withElems(el.portTier)),
    // learned by the packet path (created with the rules that fill them: nft marks them dynamic then)
    N.set(names.o('learned'), ['ether_addr', 'ifname'], { flags: ['timeout'], timeout: LEARN_TIMEOUT }),
    N.set(names.o('learned_mac'), 'ether_addr', { flags: ['timeout'], timeout: LEARN_TIMEOUT }),
    N.set(names.o(OWNER_SET), 'mark', { elements: [{ key: ownerMark(v.namespace) }] }),
  );
  for (const t of v.tiers) {
    sets.push(
      N.set(names.ports(t.id), 'ifname', { flags: ['timeout'], timeout: PORT_TIMEOUT }),
      N.set(names.ip4(t.id), 'ipv4_addr', withElems([...tierIp4.get(t.id)!].sort().map((a) => ({ key: a })))),
      N.set(names.ip6(t.id), 'ipv6_addr', withElems([...tierIp6.get(t.id)!].sort().map((a) => ({ key: a })))),
    );
  }

  const base = [
    N.baseChain(names.o('prerouting'), { type: 'filter', hook: 'prerouting', priority: N.ROUTER_PRIORITIES.bridgeFilter }),
    N.baseChain(names.o('forward'), { type: 'filter', hook: 'forward', priority: N.ROUTER_PRIORITIES.bridgeFilter }),
  ];

  // prerouting: the router's MACs only from its ports (a VM copying one would draw the router's frames to itself:
  // the bridge learns a source MAC after prerouting), then frames from our NICs (by source MAC)
  for (const t of v.tiers) r(names.o('prerouting'), [N.match(E, macLit(t.router.mac)), N.meta.iifname(t.router.port, '!='), N.drop()], 'the router\'s MAC from another port');
  r(names.o('prerouting'), [N.lookup(E, names.o('bound_mac')), N.lookup(N.concatKey(E, N.F.iifname), names.o('bound'), '!='), N.drop()], 'bound MAC from another port');
  r(names.o('prerouting'), [N.vmap(E, names.o('nic_tier'))]);
  r(names.o('prerouting'), [N.vmap(E, names.o('nic_chain'))]);
  const buckets = (m: Map<number, unknown>): number[] => byByte(m).map(([byte]) => byte);
  for (const t of v.tiers) preChain(names, t, r, buckets(claims.get(t.id)!), buckets(macClaims.get(t.id)!));
  for (const c of nicChains) for (const st of c.stmts) r(c.name, st);

  // forward: frames to the ports and NICs we protect
  r(names.o('forward'), [N.jump(names.o('guard_dispatch'))]);
  r(names.o('forward'), [N.vmap(D, names.o('nic_in'))]);
  r(names.o('guard_dispatch'), [N.vmap(N.F.oifname, names.o('port_tier'))]);
  for (const t of v.tiers) r(names.o('guard_dispatch'), [N.lookup(N.F.oifname, names.ports(t.id)), N.goto(names.fwd(t.id))]);
  r(names.o('guard_dispatch'), [N.vmap(D, names.o('mac_fwd'))]);
  for (const t of v.tiers) fwdChain(names, t, r, buckets(claims.get(t.id)!), buckets(macClaims.get(t.id)!));
  for (const c of inChains) for (const st of c.stmts) r(c.name, st);
  for (const c of claimChains) for (const st of c.stmts) r(c.name, st);

  return [...chains, ...sets, ...base, ...rules];
}

/** Guards against frames from our NICs that only the router may send. */
function guardsFromNics(t: TierView): Stmt[][] {
  const g: Stmt[][] = [];
  // a server reply is whatever goes to the client's port: DHCP clients (udhcpc, dhclient -6) do not check the
  // source port, and the router's own replies never come here
  if (t.dhcp) g.push([etherType('ip'), N.meta.l4proto('udp'), N.udp.dport(68), N.drop()]);
  // on every network, IPv6 on the router or not: guests' stacks take advertisements on an IPv4-only network too
  // (a rogue router would get their IPv6 traffic)
  g.push([etherType('ip6'), N.meta.l4proto('udp'), N.udp.dport(546), N.drop()]);
  g.push([...icmp6(), N.icmpv6.type('nd-router-advert'), N.drop()]);
  g.push([...icmp6(), N.icmpv6.type('nd-redirect'), N.drop()]);
  g.push([etherType('ip'), N.meta.l4proto('icmp'), N.icmp.type('redirect'), N.drop()]);
  return g;
}

/**
 * Rules sending neighbour advertisements and DAD probes whose target is a known NIC's IPv6 address to its claim
 * bucket (`na_<id>_<byte>`: the address from any other MAC is dropped there).
 */
function claimDispatch(names: Names, t: TierView, buckets: number[]): Stmt[][] {
  if (!buckets.length) return [];
  const vm = N.vmap(TARGET_LAST_BYTE, buckets.map((b) => [b, N.jump(names.claim(t.id, b))] as [number, Verdict]));
  return [
    [...icmp6(), N.icmpv6.type('nd-neighbor-advert'), notLinkLocal(), vm],
    [...icmp6(), N.ip6.saddr('::'), N.icmpv6.type('nd-neighbor-solicit'), notLinkLocal(), vm],
  ];
}

/**
 * A NIC's MAC named by another MAC (its claim bucket `mc_<id>_<byte>`, shared by the messages that name a MAC: the
 * address first, the cheapest test that fails for every other owner; the protocol after, as the bucket is shared):
 * as a neighbour solicitation's, advertisement's or router solicitation's link-layer address option, and as a DHCP
 * client message's `chaddr` where the router serves DHCP.
 */
function macClaimRules(owner: string, dhcp: boolean): Stmt[][] {
  const other = N.match(E, macLit(owner), '!=');
  const rules: Stmt[][] = [
    [N.match(ndOptMac(ND_OPT.nsna), macRaw(owner)), N.meta.l4proto('ipv6-icmp'), N.match(ICMP6_TYPE, N.anonSet([135, 136])), other, N.drop()],
    [N.match(ndOptMac(ND_OPT.rs), macRaw(owner)), N.meta.l4proto('ipv6-icmp'), N.match(ICMP6_TYPE, 133), other, N.drop()],
  ];
  if (dhcp) rules.push([N.match(CHADDR, macRaw(owner)), N.meta.l4proto('udp'), other, N.drop()]);
  return rules;
}

/**
 * Neighbour discovery naming a link-layer address: one option at most (ND_MAX: Linux takes the option anywhere
 * among several, nft reads a fixed offset only), and the address in it a known NIC's MAC from that NIC only (its
 * claim bucket). Redirects and router advertisements carry one too; guests send neither (guardsFromNics).
 */
function ndLinkLayer(names: Names, t: TierView, buckets: number[]): Array<[Stmt[], string]> {
  const len = N.payload('ip6', 'length');
  const nsna = (): Stmt => N.icmpv6.type(['nd-neighbor-solicit', 'nd-neighbor-advert']);
  const rs = (): Stmt => N.icmpv6.type('nd-router-solicit');
  const out: Array<[Stmt[], string]> = [
    [[...icmp6(), nsna(), N.match(len, ND_MAX.nsna, '>'), N.drop()], 'neighbour discovery: one option at most'],
    [[...icmp6(), rs(), N.match(len, ND_MAX.rs, '>'), N.drop()], 'neighbour discovery: one option at most'],
  ];
  if (!buckets.length) return out;
  const vm = (at: number) => N.vmap(ndOptLastByte(at), buckets.map((b) => [b, N.jump(names.macClaim(t.id, b))] as [number, Verdict]));
  const why = 'a NIC\'s MAC as another\'s link-layer address';
  out.push([[...icmp6(), nsna(), vm(ND_OPT.nsna)], why], [[...icmp6(), rs(), vm(ND_OPT.rs)], why]);
  return out;
}

/** pre_<id>: a known NIC of the tier — port learning, guards, then its ARP/IPv4/IPv6 must carry its own addresses. */
function preChain(names: Names, t: TierView, r: (chain: string, expr: Stmt[], comment?: string) => void, claimBuckets: number[], macBuckets: number[]): void {
  const c = names.pre(t.id);
  const pair = () => N.concatKey(E, N.F.iifname);
  const learnPort = N.setStmt('update', N.F.iifname, names.ports(t.id));
  r(c, [N.lookup(pair(), names.o('learned')), N.setStmt('update', pair(), names.o('learned')), N.setStmt('update', E, names.o('learned_mac')), learnPort]);
  if (t.strict) {
    r(c, [N.lookup(E, names.o('bound_mac'), '!='), N.lookup(E, names.o('learned_mac')), N.lookup(pair(), names.o('learned'), '!='), N.drop()], 'learned on another port');
    r(c, [N.lookup(pair(), names.o('learned'), '!='), N.setStmt('add', pair(), names.o('learned')), N.setStmt('add', E, names.o('learned_mac')), learnPort]);
  } else {
    r(c, [N.lookup(pair(), names.o('learned'), '!='), N.setStmt('add', pair(), names.o('learned')), N.setStmt('update', E, names.o('learned_mac')), learnPort]);
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
  r(c, [etherType('arp'), N.lookup(N.concatKey(E, arpField('saddr ether')), names.o('nic_self'), '!='), N.drop()]);
  r(c, [...arpMatch('saddr ip', '0.0.0.0', '!='), N.lookup(N.concatKey(E, arpField('saddr ip')), names.o('nic_ip4'), '!='), N.drop()]);
  r(c, [etherType('arp'), N.ret()]);
  // IPv4: its own source address; a DHCP client without one may only broadcast to the server port
  r(c, [etherType('ip'), N.ip.saddr('0.0.0.0'), N.ip.daddr('255.255.255.255'), N.meta.l4proto('udp'), N.udp.sport(68), N.udp.dport(67), N.ret()]);
  r(c, [etherType('ip'), N.lookup(N.concatKey(E, N.F.ipSaddr), names.o('nic_ip4'), '!='), N.drop()]);
  r(c, [etherType('ip'), N.ret()]);
  // IPv6: NICs without addresses of their own advertise (and probe) link-local targets only
  // neighbour advertisements and DAD probes: no other NIC's address
  for (const st of claimDispatch(names, t, claimBuckets)) r(c, st, 'a NIC\'s address claimed by another');
  for (const [st, why] of ndLinkLayer(names, t, macBuckets)) r(c, st, why);
  // DAD and MLD before an address exists, router solicitations (RFC 4861 6.3.7) may come from ::
  r(c, [...icmp6(), N.ip6.saddr('::'), N.icmpv6.type(['nd-neighbor-solicit', 'nd-router-solicit', 'mld-listener-report', 'mld2-listener-report']), N.ret()]);
  r(c, [etherType('ip6'), N.ip6.saddr('fe80::/10'), N.ret()]);
  r(c, [etherType('ip6'), N.lookup(N.concatKey(E, N.F.ip6Saddr), names.o('nic_ip6'), '!='), N.drop()]);
  r(c, [etherType('ip6'), N.ret()]);
  r(c, [N.drop()], 'no other protocols from a known NIC');
}

/** fwd_<id>: a frame to the router's port or a NIC of the tier, not from the router. */
function fwdChain(names: Names, t: TierView, r: (chain: string, expr: Stmt[], comment?: string) => void, claimBuckets: number[], macBuckets: number[]): void {
  const c = names.fwd(t.id);
  r(c, [N.lookup(N.F.iifname, names.o('router_ports')), N.ret()]);
  if (t.strict) r(c, [N.lookup(E, names.o('nic_mac'), '!='), N.drop()], 'unknown MAC (strict)');
  // the guards below match untagged frames; Linux takes a priority-tagged one (VID 0) as untagged, and nothing
  // tagged belongs on a guest bridge (VLAN segments are untagged by their device before the bridge)
  r(c, [N.match(N.payload('ether', 'type'), N.anonSet([0x8100, 0x88a8])), N.drop()], 'VLAN-tagged (802.1Q, 802.1ad)');
  for (const g of guardsFromNics(t)) r(c, g);
  r(c, [...arpMatch('saddr ip', t.router.ip4.length === 1 ? t.router.ip4[0] : N.anonSet(t.router.ip4)), N.drop()], 'the router\'s addresses');
  r(c, [etherType('ip'), N.ip.saddr(t.router.ip4), N.drop()], 'the router\'s addresses');
  if (t.router.ip6.length) {
    r(c, [etherType('ip6'), N.ip6.saddr(t.router.ip6), N.drop()], 'the router\'s addresses');
    r(c, [...icmp6(), N.icmpv6.type('nd-neighbor-advert'), N.match(ND_TARGET, rawSet(t.router.ip6)), N.drop()], 'the router\'s addresses');
  }
  // a known NIC's addresses from any other MAC (known MACs were checked on the way in)
  r(c, [N.lookup(E, names.o('nic_mac'), '!='), etherType('arp'), N.lookup(arpField('saddr ip'), names.ip4(t.id)), N.drop()], 'a NIC\'s address from another MAC');
  r(c, [N.lookup(E, names.o('nic_mac'), '!='), etherType('ip'), N.lookup(N.F.ipSaddr, names.ip4(t.id)), N.drop()], 'a NIC\'s address from another MAC');
  r(c, [N.lookup(E, names.o('nic_mac'), '!='), etherType('ip6'), N.lookup(N.F.ip6Saddr, names.ip6(t.id)), N.drop()], 'a NIC\'s address from another MAC');
  for (const st of claimDispatch(names, t, claimBuckets)) r(c, st, 'a NIC\'s address claimed from another MAC');
  for (const [st, why] of ndLinkLayer(names, t, macBuckets)) r(c, st, why);
  // a DHCP client message for a known NIC (its chaddr) from another MAC: a DECLINE or RELEASE in its name (every
  // frame to the router's port comes here, the NIC's own and unknown MACs' alike); dnsmasq takes client messages
  // from any source port
  if (t.dhcp && macBuckets.length) {
    const vm = N.vmap(CHADDR_LAST_BYTE, macBuckets.map((b) => [b, N.jump(names.macClaim(t.id, b))] as [number, Verdict]));
    r(c, [etherType('ip'), N.meta.l4proto('udp'), N.udp.dport(67), vm], 'a NIC\'s DHCP identity (chaddr) from another MAC');
  }
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
