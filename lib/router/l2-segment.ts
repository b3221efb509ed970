/**
 * The kernel side of an L2 network (guest_type l2): its segment device (`<dev>.<vlan>`, `vxlan<vni>`) and host
 * bridge (`br<dev>-<vlan>`, `brvx-<vni>`, `br<dev>-u`), the names the KVM agent plugs VM NICs into — and
 * nothing else: no namespace, no veth, no address (CloudStack gives an L2 network no gateway, CIDR or service,
 * so a router would have nothing to do; upstream's namespace with an unaddressed veth only floods a dead port).
 *
 * The links are shared host objects, so a link netns-router creates here is marked with the alias
 * `netns-router:l2 <networkId> <segment> <device>` (ownership.ts): shutdown and destroy remove a link only when
 * it carries that mark, and a bridge only when nothing but the segment device is plugged into it (a VM still
 * attached keeps it). Links someone else made are used as they are (plumbing.ts, ensureSegmentLinks).
 */
import type { NsOps } from './kernel.js';
import type { L2Model, RouterModel } from './model.js';
import { attachNames } from './topology.js';
import { ensureSegmentLinks, type PlumbingReport, type SegmentLinks } from './plumbing.js';
import { l2Mark } from './ownership.js';

/** The mark of links made for L2 network `networkId`. */
export const l2LinkAlias = (l2: L2Model): string => l2Mark(l2.networkId, l2.hostDev, l2.segment);

function links(m: RouterModel, l2: L2Model): SegmentLinks {
  const n = attachNames('guest', m, l2.hostDev, l2.segment, l2.networkId);
  return { hostDev: l2.hostDev, segment: l2.segment, segmentDev: n.segmentDev, bridge: n.bridge };
}

/** Create what is missing of the segment and bridge (marking what it creates); idempotent. */
export function applyL2Segment(host: NsOps, m: RouterModel, l2: L2Model): PlumbingReport {
  const report: PlumbingReport = { createdNetns: false, links: [], addressesAdded: [], addressesRemoved: [], routesRemoved: [] };
  const hl = host.netlink;
  const a = links(m, l2);
  ensureSegmentLinks(hl, a, report);
  for (const l of report.links) if (l.action === 'created') hl.linkSet(l.name, { alias: l2LinkAlias(l2) });
  return report;
}

/** Remove the segment's links that netns-router made for this network and nothing else uses; idempotent. */
export function removeL2Segment(host: NsOps, m: RouterModel, l2: L2Model): string[] {
  const hl = host.netlink;
  const a = links(m, l2);
  const mark = l2LinkAlias(l2);
  const removed: string[] = [];
  const br = hl.linkFind(a.bridge);
  if (br?.kind === 'bridge' && br.alias === mark) {
    const ports = hl.linkList().filter((l) => l.masterIndex === br.index);
    if (ports.every((p) => p.name === a.segmentDev)) {
      hl.linkDel(br.index, { ifExists: true });
      removed.push(a.bridge);
    }
  }
  if (a.segmentDev !== a.hostDev) {
    const seg = hl.linkFind(a.segmentDev);
    if (seg && seg.alias === mark && seg.masterIndex === undefined) {
      hl.linkDel(seg.index, { ifExists: true });
      removed.push(a.segmentDev);
    }
  }
  return removed;
}

const sameLinks = (a: L2Model, b: L2Model): boolean => a.hostDev === b.hostDev && JSON.stringify(a.segment) === JSON.stringify(b.segment);

/** Make the host match an L2 model: its links while implemented, none after; a changed segment loses the old ones. */
export function reconcileL2Segment(host: NsOps, m: RouterModel, previous: RouterModel | undefined): void {
  const prev = previous?.l2;
  const cur = m.l2;
  if (prev && (!cur || !sameLinks(prev, cur))) removeL2Segment(host, previous!, prev);
  if (!cur) return;
  if (cur.implemented) applyL2Segment(host, m, cur);
  else removeL2Segment(host, m, cur);
}
