/**
 * Makes the kernel match a PlumbingPlan, idempotently: host segment devices and bridges (shared, never
 * deleted), one veth pair per attachment (host end in the bridge, other end in the router namespace),
 * addresses, routes and sysctls inside the namespace. Objects netns-router owns but the plan no longer lists
 * (veths with our prefixes, addresses on our veths, routes we installed) are removed. Safe to re-run after any
 * partial failure: every step converges. Only what netns-router owns is changed (ownership.ts): every host
 * object is checked before the first change, and a link of another owner fails the command.
 */
import { NetnsError } from '../sys/setns.js';
import { confKey } from '../netns/sysctl.js';
import type { NetOps, NsOps, RouterKernel } from './kernel.js';
import type { Link, LinkSpec } from '../netlink/link.js';
import { isExists } from '../netlink/errors.js';
import { canonicalCidr } from '../netlink/handle.js';
import { toCidr } from '../util/ip.js';
import type { Attachment, PlumbingPlan, PlanRoute } from './plumbing-plan.js';
import { OWNED_NS_LINK_PREFIXES } from './plumbing-plan.js';
import { segmentText } from './segment.js';
import { sameValue } from '../util/compare.js';
import { UsageError } from '../util/errors.js';
import {
  OwnershipError, claimNamespace, markedFor, ownerText, parseMark, routerMark, segmentMark,
} from './ownership.js';

/** Routes we install carry this protocol number so that we only ever remove our own. */
export const ROUTE_PROTO = 'static' as const;
const ROUTE_PROTO_NUM = 4;
const VXLAN_PORT = 4789;

/** What reconcile changed (for logs and tests). */
export interface PlumbingReport {
  createdNetns: boolean;
  links: Array<{ name: string; action: string; where: 'host' | 'netns' }>;
  addressesAdded: string[];
  addressesRemoved: string[];
  routesRemoved: string[];
}

/** Error for a host precondition the operator must fix (e.g. the uplink device does not exist). */
export class PlumbingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlumbingError';
  }
}

/** The links a segment needs on the host side (also all an L2 network has: no veth). */
export type SegmentLinks = Pick<Attachment, 'hostDev' | 'segment' | 'segmentDev' | 'bridge'>;

const segmentIs = (l: Link, a: SegmentLinks, hostDev: Link): boolean => {
  if (a.segment.kind === 'vlan') {
    return l.kind === 'vlan' && l.id === a.segment.id && (l.protocol ?? '802.1Q') === '802.1Q' &&
      (l.parent === hostDev.name || l.parent === hostDev.index);
  }
  return a.segment.kind === 'vxlan' && l.kind === 'vxlan' && l.vni === a.segment.vni;
};

function describeLink(l: Link): string {
  if (l.kind === 'vlan') return `a VLAN ${l.id} device on ${String(l.parent)}`;
  if (l.kind === 'vxlan') return `a VXLAN ${l.vni} device`;
  return l.kind === 'device' ? 'a device' : `a ${l.kind}`;
}

/** A bridge or segment device may be used for a segment unless its mark says it is something else. */
function checkSharedMark(l: Link, a: SegmentLinks, what: string): void {
  const m = parseMark(l.alias);
  if (!m || ((m.kind === 'segment' || m.kind === 'l2') && m.segment === segmentText(a.segment) && m.device === a.hostDev)) return;
  throw new OwnershipError(`host link "${l.name}" (the ${what} netns-router needs for ${segmentText(a.segment)} on ${a.hostDev}) `
    + `belongs to ${ownerText(l.alias)}; refusing to use or change it`);
}

/** How an attachment reaches its segment (resolveSegment). */
interface SegmentWay {
  /** The segment device: existing, or to be made with this spec (null: untagged on a bridge, no device). */
  device: { existing: Link } | { create: LinkSpec } | null;
  bridge: { existing: Link } | { create: string };
  /** The device must join the bridge. */
  enslave: boolean;
}

/** The device carrying the attachment's segment under any name (the kernel allows one per VLAN/VNI). */
const findCarrier = (hl: NetOps, a: SegmentLinks, hostDev: Link): Link | undefined =>
  hl.linkList({ kind: a.segment.kind === 'vlan' ? 'vlan' : 'vxlan' }).find((l) => segmentIs(l, a, hostDev));

/**
 * How an attachment reaches its segment, decided without changing anything. The segment is the kernel's: a
 * VLAN (parent, id) or VXLAN VNI can exist once, so a device that already carries it is used whatever its name
 * (the KVM agent's, an older netns-router's), and the bridge it is a port of is the segment's bridge. Devices
 * and bridges netns-router did not make are used as they are: never deleted, recreated or reconfigured — the
 * only changes are bringing one up and joining a segment device that is in no bridge to the segment's bridge.
 * `search`: look for the segment under other names even when its own name is free (done when making it
 * failed with EEXIST, so that the common path costs no dump of the host's links).
 */
function resolveSegment(hl: NetOps, a: SegmentLinks, search = false): SegmentWay {
  const hostDev = hl.linkFind(a.hostDev);
  if (!hostDev) throw new PlumbingError(`host device "${a.hostDev}" does not exist (check guest.network.device / public.network.device)`);
  let dev: Link | undefined;
  if (a.segment.kind === 'untagged') {
    // a host device that is a bridge (cloudbr0-style) is the segment's bridge itself
    if (hostDev.kind === 'bridge') return { device: null, bridge: { existing: hostDev }, enslave: false };
    dev = hostDev;
  } else {
    const named = hl.linkFind(a.segmentDev);
    dev = named && segmentIs(named, a, hostDev) ? named : named || search ? findCarrier(hl, a, hostDev) : undefined;
    if (named && !dev) {
      throw new OwnershipError(`host link "${a.segmentDev}" is ${describeLink(named)}, not the ${segmentText(a.segment)} device on ${a.hostDev} `
        + `netns-router needs, and belongs to ${ownerText(named.alias)}; refusing to change it`);
    }
    if (dev) checkSharedMark(dev, a, 'segment device');
  }
  const device: SegmentWay['device'] = dev ? { existing: dev } : {
    create: a.segment.kind === 'vlan'
      ? { kind: 'vlan', name: a.segmentDev, parent: a.hostDev, id: a.segment.id, up: true, alias: segmentMark(a.hostDev, a.segment) }
      : { kind: 'vxlan', name: a.segmentDev, vni: (a.segment as { vni: number }).vni, dev: a.hostDev, dstPort: VXLAN_PORT, learning: true, up: true, alias: segmentMark(a.hostDev, a.segment) },
  };
  if (dev?.masterIndex !== undefined) {
    const master = hl.linkGet(dev.masterIndex);
    if (master.kind !== 'bridge') {
      throw new OwnershipError(`host link "${dev.name}" (${segmentText(a.segment)} on ${a.hostDev}) is a port of "${master.name}", which is a ${master.kind}, not a bridge; refusing to move it`);
    }
    checkSharedMark(master, a, 'bridge');
    return { device, bridge: { existing: master }, enslave: false };
  }
  const br = hl.linkFind(a.bridge);
  if (!br) return { device, bridge: { create: a.bridge }, enslave: true };
  if (br.kind !== 'bridge') {
    throw new OwnershipError(`host link "${a.bridge}" is ${describeLink(br)}, not the bridge netns-router needs for ${segmentText(a.segment)} on ${a.hostDev}, and belongs to ${ownerText(br.alias)}; refusing to change it`);
  }
  checkSharedMark(br, a, 'bridge');
  // joining the device must not bridge two segments together
  const other = hl.linkList({ master: br.index }).find((l) => l.index !== dev?.index && (l.kind === 'vlan' || l.kind === 'vxlan' || l.kind === 'device'));
  if (other) {
    throw new OwnershipError(`host bridge "${a.bridge}" already carries "${other.name}" (${describeLink(other)}), not ${segmentText(a.segment)} on ${a.hostDev}; refusing to join another segment to it`);
  }
  return { device, bridge: { existing: br }, enslave: true };
}

/**
 * Carry out a resolved way; returns the bridge. A creation that fails with EEXIST means another command (a
 * router on the same segment, in parallel) or the kernel (the VLAN/VNI held under another name) got there
 * first: the way is resolved again, searching, and carried out once more.
 */
function applySegment(hl: NetOps, a: SegmentLinks, way: SegmentWay, report: PlumbingReport, again = false): { name: string; index: number } {
  try {
    let devIndex: number | undefined;
    if (way.device && 'create' in way.device) {
      hl.linkAdd(way.device.create);
      report.links.push({ name: way.device.create.name, action: 'created', where: 'host' });
    } else if (way.device) {
      devIndex = way.device.existing.index;
      if (!way.device.existing.up && !way.enslave) hl.linkSet(devIndex, { up: true });
    }
    let bridge: { name: string; index: number };
    if ('create' in way.bridge) {
      hl.linkAdd({ kind: 'bridge', name: way.bridge.create, up: true, alias: segmentMark(a.hostDev, a.segment) });
      report.links.push({ name: way.bridge.create, action: 'created', where: 'host' });
      bridge = { name: way.bridge.create, index: hl.indexOf(way.bridge.create) };
    } else {
      bridge = way.bridge.existing;
      if (!way.bridge.existing.up) hl.linkSet(bridge.index, { up: true });
    }
    if (way.enslave && way.device) hl.linkSet(devIndex ?? a.segmentDev, { master: bridge.index, up: true });
    return bridge;
  } catch (e) {
    if (!isExists(e) || again) throw e;
    return applySegment(hl, a, resolveSegment(hl, a, true), report, true);
  }
}

/** Make or find the segment's device and bridge (never changing links of others); returns the bridge's name. */
export function ensureSegmentLinks(hl: NetOps, a: SegmentLinks, report: PlumbingReport): string {
  return applySegment(hl, a, resolveSegment(hl, a), report).name;
}

/**
 * The host end's peer is the namespace end, exactly: in the router namespace (`nsid`, the id the host knows it
 * by) at the namespace end's index.
 */
function isPair(hostEnd: Link | undefined, nsEnd: Link | undefined, nsid: number | undefined): boolean {
  return hostEnd?.kind === 'veth' && nsEnd?.kind === 'veth' && nsid !== undefined && hostEnd.peer.netnsId === nsid &&
    hostEnd.peer.index === nsEnd.index;
}

interface VethState {
  hostEnd?: Link;
  nsEnd?: Link;
  paired: boolean;
}

/**
 * The attachment's veth ends as they are, after checking that the host end — if a link has its name — is this
 * router's: marked for it, or unmarked but the peer of the end named for it inside the router namespace (a
 * pair of a version without marks, or one whose mark was not yet set when a run was interrupted: only
 * whoever owns the namespace puts that end there).
 */
function vethState(hl: NetOps, nl: NetOps | undefined, nsid: number | undefined, netns: string, a: Attachment): VethState {
  const hostEnd = hl.linkFind(a.hostVeth);
  const nsEnd = nl?.linkFind(a.nsVeth);
  const paired = isPair(hostEnd, nsEnd, nsid);
  if (hostEnd && !markedFor(hostEnd, netns) && !(paired && !hostEnd.alias)) throw foreignHostLink(netns, a, hostEnd);
  return { hostEnd, nsEnd, paired };
}

const foreignHostLink = (netns: string, a: Attachment, l: Link): OwnershipError => new OwnershipError(
  `host link "${a.hostVeth}" (needed by ${netns} for ${a.role ?? 'an attachment'}) belongs to ${ownerText(l.alias)}; refusing to change or delete it`);

function ensureVeth(
  host: NsOps, ns: NsOps, netns: string, a: Attachment, bridge: { name: string; index: number }, st: VethState, report: PlumbingReport,
): void {
  const hl = host.netlink;
  const nl = ns.netlink;
  const mark = routerMark(netns, a.role ?? a.hostVeth);
  const { hostEnd, nsEnd } = st;
  if (!st.paired || !hostEnd || !nsEnd) {
    // leftovers of an interrupted run, or a namespace re-made under an old host end (ours: vethState checked)
    if (hostEnd) hl.linkDel(hostEnd.index, { ifExists: true });
    if (nsEnd) nl.linkDel(nsEnd.index, { ifExists: true });
    try {
      // EXCL: a name taken meanwhile fails here instead of being clobbered
      hl.linkAdd({
        kind: 'veth', name: a.hostVeth, master: bridge.index, up: true, alias: mark,
        peer: { name: a.nsVeth, namespace: { fd: ns.fd }, up: true, ...(a.nsMac ? { mac: a.nsMac } : {}) },
      });
    } catch (e) {
      const taken = isExists(e) ? hl.linkFind(a.hostVeth) : undefined;
      if (taken) throw foreignHostLink(netns, a, taken);
      throw e;
    }
    nl.linkSet(a.nsVeth, { alias: mark });
    report.links.push({ name: `${a.hostVeth}/${a.nsVeth}`, action: hostEnd || nsEnd ? 'recreated' : 'created', where: 'host' });
    return;
  }
  const change: { master?: number; up?: boolean; alias?: string } = {};
  if (hostEnd.masterIndex !== bridge.index) change.master = bridge.index;
  if (!hostEnd.up) change.up = true;
  if (hostEnd.alias !== mark) change.alias = mark; // a pair of a version without marks gets its mark
  if (Object.keys(change).length) hl.linkSet(hostEnd.index, change);
  if (nsEnd.alias !== mark) nl.linkSet(nsEnd.index, { alias: mark });
  if (a.nsMac && nsEnd.mac !== a.nsMac) nl.linkSet(nsEnd.index, { mac: a.nsMac });
  if (!nsEnd.up) nl.linkSetUp(nsEnd.index);
}

/** Two attachments of one plan must not want one name for different things (a hash collision, or names
 * upstream itself gives twice, e.g. one VLAN number on two devices of a VPC). */
function checkPlanNames(plan: PlumbingPlan): void {
  const seen = new Map<string, string>();
  const claim = (name: string, what: string, same = what): void => {
    const prev = seen.get(name);
    if (prev === undefined) seen.set(name, same);
    else if (prev !== same) throw new OwnershipError(`router ${plan.netns}: "${name}" would name both ${prev} and ${same}; refusing (see docs/contract.md, names)`);
  };
  for (const a of plan.attachments) {
    const role = a.role ?? a.nsVeth;
    claim(a.hostVeth, `the host veth of ${role}`);
    claim(a.nsVeth, `the namespace veth of ${role}`);
    const seg = `the ${segmentText(a.segment)} segment on ${a.hostDev}`;
    if (a.segment.kind !== 'untagged') claim(a.segmentDev, seg);
    claim(a.bridge, seg);
  }
}

/** The side an attachment's role names: 'guest' (isolated network, VPC tier), 'shared' (shared network), 'public'. */
const sideOf = (role: string | undefined): string | undefined => role?.split(' ', 1)[0];

/**
 * A guest segment and a public segment must not be one host bridge (core/segments-apart.ts checks the model:
 * same device and segment). What only the host shows, from the resolved ways, before anything is changed:
 * - this router: a guest side (shared too) and a public side in one bridge — two device names on one bridge
 *   (an untagged `eth1` that is a port of `cloudbr0`, and `cloudbr0` itself);
 * - other routers (their veths' marks): our public side in a bridge holding an isolated network's or VPC tier's
 *   guest veth, or such a guest side of ours in a bridge holding a public veth. A shared network's segment is a
 *   provider segment, which may well be other routers' public segment: not refused.
 * Other routers' links are seen only while they exist (a router not restored yet after a boot is not seen; its
 * own restore then refuses), and two commands of two routers at the same moment may both pass.
 */
function checkSegmentsApart(hl: NetOps, plan: PlumbingPlan, ways: SegmentWay[]): void {
  const key = (w: SegmentWay): string => ('create' in w.bridge ? `name ${w.bridge.create}` : `index ${w.bridge.existing.index}`);
  const bridgeName = (w: SegmentWay): string => ('create' in w.bridge ? w.bridge.create : w.bridge.existing.name);
  const refuse = (a: Attachment, w: SegmentWay, other: string): never => {
    const arg = sideOf(a.role) === 'public' ? 'public_vlan' : 'vlan';
    throw new UsageError(`--${arg.replace(/_/g, '-')} (payload.${arg}) ${segmentText(a.segment)} on ${a.hostDev}: host bridge "${bridgeName(w)}" `
      + `also carries ${other}; a guest segment and a public segment must not be one segment (the public segment would reach the guests at layer 2)`, arg);
  };
  const guests = new Map<string, Attachment>();
  plan.attachments.forEach((a, i) => { if (sideOf(a.role) !== 'public') guests.set(key(ways[i]), a); });
  plan.attachments.forEach((a, i) => {
    const g = sideOf(a.role) === 'public' ? guests.get(key(ways[i])) : undefined;
    if (g) refuse(a, ways[i], `${g.role ?? g.nsVeth} of this router`);
  });
  const checked = new Set<number>();
  plan.attachments.forEach((a, i) => {
    const w = ways[i];
    const mine = sideOf(a.role);
    if ('create' in w.bridge || mine === 'shared' || checked.has(w.bridge.existing.index)) return;
    checked.add(w.bridge.existing.index);
    for (const port of hl.linkList({ master: w.bridge.existing.index })) {
      const m = parseMark(port.alias);
      if (m?.kind !== 'router' || m.namespace === plan.netns) continue;
      const theirs = sideOf(m.role);
      if ((mine === 'public' && theirs === 'guest') || (mine === 'guest' && theirs === 'public')) refuse(a, w, `${m.role} of router ${m.namespace}`);
    }
  });
}

function ensureAddresses(ns: NsOps, a: Attachment, report: PlumbingReport, newV4: string[]): void {
  const nl = ns.netlink;
  if (a.disableIpv6) setSysctlIfDifferent(ns, confKey('ipv6', a.nsVeth, 'disable_ipv6'), 1);
  else setSysctlIfDifferent(ns, confKey('ipv6', a.nsVeth, 'disable_ipv6'), 0);
  setSysctlIfDifferent(ns, confKey('ipv4', a.nsVeth, 'proxy_arp'), a.proxyArp ? 1 : 0);
  // Linux answers ARP on any interface for any of the namespace's addresses (weak host, arp_ignore=0): the
  // public veth would answer for the guest gateway, and a tenant whose guest address is another router's
  // public IP would answer for it too. 1: only addresses on the interface asked (the ARP responder's static NAT
  // answers come before the kernel, netdev ingress). arp_announce=2: requests sent carry an address of the
  // interface, never one of another side.
  setSysctlIfDifferent(ns, confKey('ipv4', a.nsVeth, 'arp_ignore'), 1);
  setSysctlIfDifferent(ns, confKey('ipv4', a.nsVeth, 'arp_announce'), 2);
  const want = new Map(a.addresses.map((s) => [canonicalCidr(s), s]));
  const have = nl.addrList({ dev: a.nsVeth });
  for (const cur of have) {
    const key = `${cur.ip}/${cur.prefixLen}`;
    if (want.has(key)) {
      want.delete(key);
      continue;
    }
    if (cur.family === 6 && cur.ip.startsWith('fe80:')) continue; // kernel link-local
    nl.addrDel({ dev: a.nsVeth, address: key }, { ifExists: true });
    report.addressesRemoved.push(`${key} ${a.nsVeth}`);
  }
  for (const [key] of want) {
    const p = toCidr(key);
    nl.addrReplace({ dev: a.nsVeth, address: key, ...(p.family === 4 ? { broadcast: true } : { noDad: true }) });
    report.addressesAdded.push(`${key} ${a.nsVeth}`);
    if (p.family === 4) newV4.push(p.address);
  }
}

function setSysctlIfDifferent(ns: NsOps, key: string, value: string | number): void {
  try {
    if (ns.sysctlGet(key) === String(value)) return;
  } catch {
    // unreadable (e.g. IPv6 disabled globally): fall through to the write, which reports clearly
  }
  ns.sysctlSet(key, value);
}

function routeKey(r: { dst: string; table?: number }): string {
  const dst = r.dst === 'default' ? 'default' : canonicalCidr(r.dst);
  return `${r.table ?? 254} ${dst}`;
}

function ensureRoutes(ns: NsOps, routes: PlanRoute[], report: PlumbingReport): void {
  const nl = ns.netlink;
  const want = new Map(routes.map((r) => [routeKey(r), r]));
  const tables = new Set(routes.map((r) => r.table ?? 254));
  tables.add(254);
  for (const cur of nl.routeList({ table: 'all' })) {
    if (cur.protocol !== ROUTE_PROTO_NUM) continue;
    if (!tables.has(cur.table) && cur.table !== 254) continue; // pbr tables are managed by their own actions
    const key = `${cur.table} ${cur.dst}`;
    const w = want.get(key);
    if (w && (w.via ?? undefined) === (cur.via ?? undefined) && (!w.dev || w.dev === cur.dev)) continue;
    if (!w) {
      nl.routeDel({ dst: cur.dst, family: cur.family, table: cur.table }, { ifExists: true });
      report.routesRemoved.push(key);
    }
  }
  for (const r of routes) {
    nl.routeReplace({
      dst: r.dst, protocol: ROUTE_PROTO,
      ...(r.via ? { via: r.via } : {}), ...(r.dev ? { dev: r.dev } : {}),
      ...(r.table ? { table: r.table } : {}), ...(r.metric !== undefined ? { metric: r.metric } : {}),
      ...(r.family ? { family: r.family } : {}),
    });
  }
}

/**
 * Apply the plan. `host` is the namespace where host-side plumbing lives (the caller's own, or the one named
 * by --host-netns). Every host object is checked before anything is changed: a name held by another router or
 * by someone else fails the command with an OwnershipError naming the link and its owner. The namespace itself
 * must have been claimed (ownership.ts claimNamespace) by the caller. Returns what changed.
 */
export function applyPlumbing(k: RouterKernel, host: NsOps, plan: PlumbingPlan): PlumbingReport {
  const report: PlumbingReport = { createdNetns: false, links: [], addressesAdded: [], addressesRemoved: [], routesRemoved: [] };
  checkPlanNames(plan);
  const hl = host.netlink;
  let ns = k.netnsExists(plan.netns) ? k.open(plan.netns) : undefined;
  try {
    // decide everything on the host first: a refusal changes nothing
    const ways = plan.attachments.map((a) => resolveSegment(hl, a));
    checkSegmentsApart(hl, plan, ways);
    const nsid = ns ? hl.netnsIdOf(ns.fd) : undefined;
    const veths = plan.attachments.map((a) => vethState(hl, ns?.netlink, nsid, plan.netns, a));
    if (!ns) {
      try {
        k.addNetns(plan.netns);
        report.createdNetns = true;
      } catch (e) {
        // made by someone else since we looked: theirs unless it carries our mark
        if (!(e instanceof NetnsError && e.code === 'EEXIST')) throw e;
        claimNamespace(k, plan.netns, { stored: false, adopt: false });
      }
      ns = k.open(plan.netns);
    }
    const nl = ns.netlink;
    const lo = nl.linkGet('lo');
    if (!lo.up) nl.linkSetUp('lo');
    for (const [k, v] of Object.entries(plan.sysctls)) setSysctlIfDifferent(ns, k, v);
    const newV4: Array<[string, string]> = [];
    plan.attachments.forEach((a, i) => {
      const bridge = applySegment(hl, a, ways[i], report);
      ensureVeth(host, ns!, plan.netns, a, bridge, veths[i], report);
      const added: string[] = [];
      ensureAddresses(ns!, a, report, added);
      const garp = new Set(a.garp ?? []);
      for (const ip of added) if (garp.has(ip)) newV4.push([a.nsVeth, ip]);
    });
    const keep = new Set(plan.attachments.map((a) => a.nsVeth));
    for (const l of nl.linkList()) {
      if (keep.has(l.name) || !OWNED_NS_LINK_PREFIXES.some((p) => l.name.startsWith(p))) continue;
      nl.linkDel(l.index, { ifExists: true });
      report.links.push({ name: l.name, action: 'deleted', where: 'netns' });
    }
    ensureRoutes(ns, plan.routes, report);
    const byDev = new Map<string, string[]>();
    for (const [dev, ip] of newV4) {
      const l = byDev.get(dev);
      if (l) l.push(ip);
      else byDev.set(dev, [ip]);
    }
    for (const [dev, ips] of byDev) k.gratuitousArps(ns, dev, ips);
  } finally {
    ns?.close();
  }
  return report;
}

/**
 * A cheap look at whether the namespace side of `plan` is still as a reconcile leaves it — for a command that
 * does not reconcile the plumbing itself (a reconcile scope, docs/reconcile.md): loopback and every attachment's
 * link up (with its MAC), its addresses present, the plan's routes in place; with `indexes`, these links have
 * these interface indexes. Three dumps in the namespace, no change. False means "reconcile the plumbing"
 * (something drifted, or is not what the plan says); not checked: the host side, sysctls, addresses and routes
 * we would remove.
 */
export function namespaceSideIntact(ns: NsOps, plan: PlumbingPlan, indexes?: ReadonlyMap<string, number>): boolean {
  const nl = ns.netlink;
  const all = nl.linkList();
  const links = new Map(all.map((l) => [l.name, l]));
  if (!links.get('lo')?.up) return false;
  if (indexes) for (const [dev, index] of indexes) if (links.get(dev)?.index !== index) return false;
  // (addresses and routes by interface index, named from the dump above: no link lookup per device)
  const addrs = new Set(nl.addrList({ names: false }).map((a) => `${a.ifindex} ${a.ip}/${a.prefixLen}`));
  for (const a of plan.attachments) {
    const l = links.get(a.nsVeth);
    if (!l || l.kind !== 'veth' || !l.up || (a.nsMac !== undefined && l.mac?.toLowerCase() !== a.nsMac.toLowerCase())) return false;
    if (!a.addresses.every((x) => addrs.has(`${l.index} ${canonicalCidr(x)}`))) return false;
  }
  if (!plan.routes.length) return true;
  const names = new Map(all.map((l) => [l.index, l.name]));
  const routes = nl.routeList({ table: 'all', names: false }).filter((r) => r.protocol === ROUTE_PROTO_NUM);
  return plan.routes.every((w) => routes.some((cur) => `${cur.table} ${cur.dst}` === routeKey(w)
    && (w.via ?? undefined) === (cur.via ?? undefined) && (!w.dev || w.dev === (cur.oif !== undefined ? names.get(cur.oif) : undefined))));
}

/** An attachment without what a NAT change may move: its addresses, gratuitous ARPs and ARP-responder addresses. */
const withoutAddresses = ({ addresses: _a, garp: _g, arpOnly: _o, ...rest }: Attachment): object => rest;

/**
 * Do `before` and `after` plan the same links, routes and sysctls, differing at most in the attachments' addresses
 * (what a static NAT moves between a veth and the ARP responder)? Then `moveAddresses` is all the namespace side
 * needs (a cold NAT command, docs/reconcile.md).
 */
export function addressesOnlyDiffer(before: PlumbingPlan, after: PlumbingPlan): boolean {
  return before.netns === after.netns && before.attachments.length === after.attachments.length
    && before.attachments.every((a, i) => sameValue(withoutAddresses(a), withoutAddresses(after.attachments[i])))
    && sameValue(before.routes, after.routes) && sameValue(before.sysctls, after.sysctls);
}

/**
 * The addresses `before` puts on the veths and `after` does not are deleted, those `after` adds are put on, with a
 * gratuitous ARP as applyPlumbing sends for them — except for an address the veth's ARP responder answered in
 * `before`: with the veth's own MAC, so peers already find it there. Only for plans that `addressesOnlyDiffer`;
 * the namespace side is assumed as `before` plans it (namespaceSideIntact).
 */
export function moveAddresses(k: RouterKernel, ns: NsOps, before: PlumbingPlan, after: PlumbingPlan): void {
  const nl = ns.netlink;
  after.attachments.forEach((a, i) => {
    const b = before.attachments[i];
    if (a.addresses === b.addresses) return; // the fast way's compile keeps an untouched attachment's lists
    const had = new Set(b.addresses.map(canonicalCidr));
    const want = new Set(a.addresses.map(canonicalCidr));
    for (const key of had) if (!want.has(key)) nl.addrDel({ dev: a.nsVeth, address: key }, { ifExists: true });
    const garp = new Set(a.garp ?? []);
    // (the responder's addresses — up to one per static NAT — are looked at only when an address comes back)
    let answered: Set<string> | undefined;
    const announce: string[] = [];
    for (const key of want) {
      if (had.has(key)) continue;
      const p = toCidr(key);
      nl.addrReplace({ dev: a.nsVeth, address: key, ...(p.family === 4 ? { broadcast: true } : { noDad: true }) });
      if (p.family === 4 && garp.has(p.address) && !(answered ??= new Set(b.arpOnly ?? [])).has(p.address)) announce.push(p.address);
    }
    if (announce.length) k.gratuitousArps(ns, a.nsVeth, announce);
  });
}

/**
 * Remove a router: its namespace and the namespace ends of its attachments' veth pairs (the host ends go with
 * them; a host link of the same name that is not their peer is never touched). Host bridges and segment devices
 * stay (other routers and the hypervisor's VMs may use them). The caller must have claimed the namespace
 * (ownership.ts). On a kernel that can (RouterKernel.deleteNetnsThenLinks: the machine's), the namespace goes by
 * name first — nothing reaches the router any more — and the returned promise is the links' deletion, off the
 * event loop (each waits for an RCU grace period, 10-20 ms): a caller may answer before it settles if it keeps
 * the router locked until then. The links are deleted explicitly rather than left to the end of the namespace
 * because another process may still hold it (an operator's `ip netns exec` shell, a daemon still exiting): they
 * would stay on the host's bridges, a router nobody manages. Undefined: nothing left to wait for.
 */
export function removeRouterNamespace(k: RouterKernel, netns: string, attachments: Attachment[]): Promise<void> | undefined {
  if (!k.netnsExists(netns)) return undefined;
  if (k.deleteNetnsThenLinks) return k.deleteNetnsThenLinks(netns, attachments.map((a) => a.nsVeth));
  const ns = k.open(netns);
  try {
    for (const a of attachments) ns.netlink.linkDel(a.nsVeth, { ifExists: true });
  } finally {
    ns.close();
  }
  k.deleteNetns(netns);
  return undefined;
}
