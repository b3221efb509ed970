/**
 * Makes the kernel match a PlumbingPlan, idempotently: host segment devices and bridges (shared, never
 * deleted), one veth pair per attachment (host end in the bridge, other end in the router namespace),
 * addresses, routes and sysctls inside the namespace. Objects netns-router owns but the plan no longer lists
 * (veths with our prefixes, addresses on our veths, routes we installed) are removed. Safe to re-run after any
 * partial failure: every step converges.
 */
import { addNetns, deleteNetns, netnsExists } from '../netns/namespaces.js';
import { NetnsHandle } from '../netns/handle.js';
import { confKey } from '../netns/sysctl.js';
import type { NetlinkHandle } from '../netlink/handle.js';
import { isNotFound, NetlinkError } from '../netlink/errors.js';
import { canonicalCidr } from '../netlink/handle.js';
import { parsePrefix } from '../netlink/ip.js';
import type { Attachment, PlumbingPlan, PlanRoute } from './plumbing-plan.js';
import { OWNED_NS_LINK_PREFIXES } from './plumbing-plan.js';
import { sendGratuitousArp } from './garp.js';

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

/** The links a segment needs on the host side (also used for L2 networks, which have no veth). */
export type SegmentLinks = Pick<Attachment, 'hostDev' | 'segment' | 'segmentDev' | 'bridge'>;

export function ensureSegment(host: NetlinkHandle, a: SegmentLinks, report: PlumbingReport): void {
  if (!host.linkFind(a.hostDev)) {
    throw new PlumbingError(`host device "${a.hostDev}" does not exist (check guest.network.device / public.network.device)`);
  }
  if (a.segment.kind === 'untagged') {
    host.linkSet(a.hostDev, { up: true });
    return;
  }
  const cur = host.linkFind(a.segmentDev);
  if (cur && cur.kind !== a.segment.kind) {
    throw new PlumbingError(`host link "${a.segmentDev}" exists but is a ${cur.kind}, not the ${a.segment.kind} device netns-router needs`);
  }
  const action = a.segment.kind === 'vlan'
    ? host.ensureLink({ kind: 'vlan', name: a.segmentDev, parent: a.hostDev, id: a.segment.id, up: true })
    : host.ensureLink({ kind: 'vxlan', name: a.segmentDev, vni: a.segment.vni, dev: a.hostDev, dstPort: VXLAN_PORT, learning: true, up: true });
  if (action !== 'unchanged') report.links.push({ name: a.segmentDev, action, where: 'host' });
}

export function ensureBridge(host: NetlinkHandle, a: SegmentLinks, report: PlumbingReport): void {
  const cur = host.linkFind(a.bridge);
  if (cur && cur.kind !== 'bridge') {
    // never delete a host device to make room for a bridge
    throw new PlumbingError(`host link "${a.bridge}" exists but is a ${cur.kind}, not a bridge`);
  }
  const action = host.ensureLink({ kind: 'bridge', name: a.bridge, up: true });
  if (action !== 'unchanged') report.links.push({ name: a.bridge, action, where: 'host' });
  const seg = host.linkGet(a.segmentDev);
  const br = host.linkGet(a.bridge);
  if (seg.masterIndex !== br.index || !seg.up) host.linkSet(seg.index, { master: br.index, up: true });
}

function ensureVeth(host: NetlinkHandle, ns: NetnsHandle, a: Attachment, report: PlumbingReport): void {
  const hostEnd = host.linkFind(a.hostVeth);
  const nsEnd = ns.netlink.linkFind(a.nsVeth);
  const paired = hostEnd?.kind === 'veth' && nsEnd?.kind === 'veth' && hostEnd.peer.netnsId !== undefined &&
    hostEnd.peer.index === nsEnd.index;
  if (!paired) {
    // Leftovers of an interrupted run (or a namespace re-created under an old host end): start clean.
    if (hostEnd) host.linkDel(hostEnd.index, { ifExists: true });
    if (nsEnd) ns.netlink.linkDel(nsEnd.index, { ifExists: true });
    host.linkAdd({
      kind: 'veth', name: a.hostVeth, master: a.bridge, up: true,
      peer: { name: a.nsVeth, namespace: { fd: ns.fd }, up: true, ...(a.nsMac ? { mac: a.nsMac } : {}) },
    });
    report.links.push({ name: `${a.hostVeth}/${a.nsVeth}`, action: hostEnd || nsEnd ? 'recreated' : 'created', where: 'host' });
    return;
  }
  const br = host.linkGet(a.bridge);
  if (hostEnd.masterIndex !== br.index || !hostEnd.up) host.linkSet(hostEnd.index, { master: br.index, up: true });
  if (a.nsMac && nsEnd.mac !== a.nsMac) ns.netlink.linkSet(nsEnd.index, { mac: a.nsMac });
  if (!nsEnd.up) ns.netlink.linkSetUp(nsEnd.index);
}

function ensureAddresses(ns: NetnsHandle, a: Attachment, report: PlumbingReport, newV4: string[]): void {
  const nl = ns.netlink;
  if (a.disableIpv6) setSysctlIfDifferent(ns, confKey('ipv6', a.nsVeth, 'disable_ipv6'), 1);
  else setSysctlIfDifferent(ns, confKey('ipv6', a.nsVeth, 'disable_ipv6'), 0);
  setSysctlIfDifferent(ns, confKey('ipv4', a.nsVeth, 'proxy_arp'), a.proxyArp ? 1 : 0);
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
    const p = parsePrefix(key);
    nl.addrReplace({ dev: a.nsVeth, address: key, ...(p.family === 4 ? { broadcast: true } : { noDad: true }) });
    report.addressesAdded.push(`${key} ${a.nsVeth}`);
    if (p.family === 4) newV4.push(p.address);
  }
}

function setSysctlIfDifferent(ns: NetnsHandle, key: string, value: string | number): void {
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

function ensureRoutes(ns: NetnsHandle, routes: PlanRoute[], report: PlumbingReport): void {
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
 * by --host-netns). Returns what changed.
 */
export function applyPlumbing(host: NetnsHandle, plan: PlumbingPlan): PlumbingReport {
  const report: PlumbingReport = { createdNetns: false, links: [], addressesAdded: [], addressesRemoved: [], routesRemoved: [] };
  if (!netnsExists(plan.netns)) {
    addNetns(plan.netns, { ifMissing: true });
    report.createdNetns = true;
  }
  const ns = NetnsHandle.open(plan.netns);
  try {
    const hl = host.netlink;
    const nl = ns.netlink;
    const lo = nl.linkGet('lo');
    if (!lo.up) nl.linkSetUp('lo');
    for (const [k, v] of Object.entries(plan.sysctls)) setSysctlIfDifferent(ns, k, v);
    const newV4: Array<[string, string]> = [];
    for (const planned of plan.attachments) {
      // an untagged segment on a host device that already is a bridge (cloudbr0-style): plug into it directly
      const dev = planned.segment.kind === 'untagged' ? hl.linkFind(planned.hostDev) : undefined;
      const a: Attachment = dev?.kind === 'bridge' ? { ...planned, bridge: planned.hostDev } : planned;
      if (a.bridge === a.hostDev) {
        hl.linkSet(a.hostDev, { up: true });
        ensureVeth(hl, ns, a, report);
        const added: string[] = [];
        ensureAddresses(ns, a, report, added);
        for (const ip of added) if (a.garp?.includes(ip)) newV4.push([a.nsVeth, ip]);
        continue;
      }
      ensureSegment(hl, a, report);
      ensureBridge(hl, a, report);
      ensureVeth(hl, ns, a, report);
      const added: string[] = [];
      ensureAddresses(ns, a, report, added);
      for (const ip of added) if (a.garp?.includes(ip)) newV4.push([a.nsVeth, ip]);
    }
    const keep = new Set(plan.attachments.map((a) => a.nsVeth));
    for (const l of nl.linkList()) {
      if (keep.has(l.name) || !OWNED_NS_LINK_PREFIXES.some((p) => l.name.startsWith(p))) continue;
      nl.linkDel(l.index, { ifExists: true });
      report.links.push({ name: l.name, action: 'deleted', where: 'netns' });
    }
    ensureRoutes(ns, plan.routes, report);
    for (const [dev, ip] of newV4) {
      try {
        sendGratuitousArp(ns, dev, ip, 1);
      } catch {
        // best effort: a missing carrier must not fail the command
      }
    }
  } finally {
    ns.close();
  }
  return report;
}

/**
 * Remove a router's attachments: their veth pairs (deleting one end removes both). Host bridges and segment
 * devices stay (other routers may use them). With `deleteNamespace`, the namespace goes too.
 */
export function removePlumbing(host: NetnsHandle, netns: string, attachments: Attachment[], opts: { deleteNamespace: boolean }): void {
  const hl = host.netlink;
  for (const a of attachments) {
    try {
      hl.linkDel(a.hostVeth, { ifExists: true });
    } catch (e) {
      if (!(e instanceof NetlinkError) || !isNotFound(e)) throw e;
    }
  }
  if (netnsExists(netns)) {
    const ns = NetnsHandle.open(netns);
    try {
      for (const a of attachments) ns.netlink.linkDel(a.nsVeth, { ifExists: true });
    } finally {
      ns.close();
    }
    if (opts.deleteNamespace) deleteNetns(netns, { ifExists: true });
  }
}
