/**
 * Pure translation of a RouterModel into what the kernel must hold: the plumbing plan (links, addresses,
 * routes, sysctls) and the NAT plan (nft maps). No I/O here, so it is unit-testable and deterministic.
 */
import type { RouterModel, TierModel, PublicIpModel } from './model.js';
import type { Attachment, PlumbingPlan, PlanRoute } from './plumbing-plan.js';
import type { NatPlan } from './router-table.js';
import { bridgeName, segmentDeviceName, vethNames } from './names.js';
import { segmentText, type Segment } from './segment.js';
import { createHash } from 'node:crypto';
import { compareText } from '../util/compare.js';

/** Deterministic, locally administered unicast MAC for a router interface (stable across re-creation). */
export function stableMac(namespace: string, ifname: string): string {
  const h = createHash('sha256').update(`${namespace}/${ifname}`).digest();
  h[0] = (h[0] & 0xfc) | 0x02;
  return Array.from(h.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

export interface AttachNames { role: string; segmentDev: string; bridge: string; hostVeth: string; nsVeth: string }

/** Our attachment names (names.ts); an untagged segment joins the host device to bridge `br<dev>-u` (the
 * issue's contract: "the device itself joins the bridge"), so that no host device is ever turned into a bridge. */
export function attachNames(kind: 'guest' | 'public', m: RouterModel, dev: string, seg: Segment, networkId?: string): AttachNames {
  const v = vethNames({
    role: kind, namespace: m.namespace, routerId: m.nameId, segment: seg, device: dev,
    ...(kind === 'guest' ? { networkId: networkId ?? m.nameId } : {}),
  });
  const where = `${segmentText(seg)} ${dev}`;
  return {
    role: kind === 'guest' ? `guest ${networkId ?? m.nameId} ${where}` : `public ${where}`,
    segmentDev: segmentDeviceName(dev, seg) ?? dev, bridge: bridgeName(dev, seg), hostVeth: v.host, nsVeth: v.ns,
  };
}
const guestNames = (m: RouterModel, t: TierModel) => attachNames('guest', m, t.hostDev, t.segment, t.networkId);
const publicNames = (m: RouterModel, p: PublicIpModel) => attachNames('public', m, p.hostDev, p.segment);

export function tierAttachment(m: RouterModel, t: TierModel): Attachment {
  const n = guestNames(m, t);
  // a shared network's segment is a provider segment, which other routers' public sides may share: its mark
  // says so (plumbing.ts checkSegmentsApart)
  if (t.guestType === 'shared') n.role = `shared${n.role.slice('guest'.length)}`;
  const prefixLen = Number(t.cidr.split('/')[1]);
  const addresses = [`${t.extensionIp}/${prefixLen}`];
  if (t.ip6Gateway && t.ip6Cidr) addresses.push(`${t.ip6Gateway}/${t.ip6Cidr.split('/')[1]}`);
  return {
    role: n.role, hostDev: t.hostDev, segment: t.segment, segmentDev: n.segmentDev, bridge: n.bridge,
    hostVeth: n.hostVeth, nsVeth: n.nsVeth, addresses, disableIpv6: !(t.ip6Gateway && t.ip6Cidr),
    nsMac: stableMac(m.namespace, n.nsVeth), garp: [t.extensionIp],
  };
}

/**
 * Public IPs grouped by public segment: one veth per (device, segment). A static NAT address (but a source
 * NAT one) is not put on the veth: every packet to it is translated to the VM's address before routing, so
 * the router never needs it as its own, and the peer's ARP requests for it are answered by the ARP responder
 * (`arpOnly`, lib/router/arp-responder.ts). Adding IPv4 addresses to one interface is quadratic in the kernel
 * (fib_sync_up: 10,000 took 1.7–2 s). A segment keeps at least one address (the first static NAT address when
 * it has no other public IP): the default route's gateway must be on-link.
 */
export function publicAttachments(m: RouterModel): Attachment[] {
  const groups = new Map<string, PublicIpModel[]>();
  for (const p of Object.values(m.publicIps)) {
    const key = `${p.hostDev} ${segmentText(p.segment)}`;
    const list = groups.get(key);
    if (list) list.push(p);
    else groups.set(key, [p]);
  }
  const natted = new Set(m.staticNats.map((s) => s.publicIp));
  const out: Attachment[] = [];
  for (const ips of groups.values()) {
    const p0 = ips[0];
    const n = publicNames(m, p0);
    const sorted = [...ips].sort((a, b) => compareText(a.ip, b.ip));
    let local = sorted.filter((p) => p.sourceNat || !natted.has(p.ip));
    if (!local.length) local = sorted.slice(0, 1);
    const isLocal = new Set(local);
    const arpOnly = local.length === sorted.length ? [] : sorted.filter((p) => !isLocal.has(p)).map((p) => p.ip);
    out.push({
      role: n.role, hostDev: p0.hostDev, segment: p0.segment, segmentDev: n.segmentDev, bridge: n.bridge,
      hostVeth: n.hostVeth, nsVeth: n.nsVeth, disableIpv6: true, nsMac: stableMac(m.namespace, n.nsVeth),
      addresses: local.map((p) => `${p.ip}/${p.prefixLen}`),
      garp: local.map((p) => p.ip),
      ...(arpOnly.length ? { arpOnly } : {}),
    });
  }
  return out;
}

/** The public IP whose gateway becomes the default route: the source-NAT one, else the first. */
export function defaultPublicIp(m: RouterModel): PublicIpModel | undefined {
  // the first by address of the source-NAT ones, else of all (one pass: a router may hold 10,000)
  let snat: PublicIpModel | undefined;
  let first: PublicIpModel | undefined;
  for (const p of Object.values(m.publicIps)) {
    if (!p.gateway) continue;
    if (!first || compareText(p.ip, first.ip) < 0) first = p;
    if (p.sourceNat && (!snat || compareText(p.ip, snat.ip) < 0)) snat = p;
  }
  return snat ?? first;
}

/** `pubAtts`: publicAttachments(m), when the caller has it already (10,000 public IPs: ~15 ms each time). */
export function plumbingPlan(m: RouterModel, pubAtts: Attachment[] = publicAttachments(m)): PlumbingPlan {
  const tiers = Object.values(m.tiers).filter((t) => t.implemented).sort((a, b) => compareText(a.networkId, b.networkId));
  const attachments = [...tiers.map((t) => tierAttachment(m, t)), ...pubAtts];
  const routes: PlanRoute[] = [];
  const pub = defaultPublicIp(m);
  if (pub?.gateway) {
    routes.push({ dst: 'default', via: pub.gateway, dev: publicNames(m, pub).nsVeth });
  } else {
    // no public side: a tier whose router address is not the gateway routes via the real gateway
    const t = tiers.find((x) => x.extensionIp !== x.gateway);
    if (t) routes.push({ dst: 'default', via: t.gateway, dev: tierAttachment(m, t).nsVeth });
  }
  // a router of shared networks only serves them (DHCP, DNS, metadata): their gateway is another router, so
  // it forwards nothing (as upstream, which enables forwarding for isolated networks and VPCs only)
  const forwards = m.kind === 'vpc' || tiers.some((t) => t.guestType !== 'shared');
  const sysctls: Record<string, number> = { 'net.ipv4.ip_forward': forwards ? 1 : 0 };
  if (tiers.some((t) => t.ip6Gateway)) sysctls['net.ipv6.conf.all.forwarding'] = 1;
  return { netns: m.namespace, attachments, routes, sysctls };
}

export function natPlan(m: RouterModel, pubAtt: Attachment[] = publicAttachments(m)): NatPlan {
  return { publicIfs: pubAtt.map((a) => a.nsVeth), ...outboundNat(m), portForwards: heldEntries(m.portForwards, m.publicIps) };
}

/** The part of natPlan that decides the address a guest's new outbound flows leave with: source NAT and static NAT. */
export function outboundNat(m: RouterModel): Pick<NatPlan, 'sourceNat' | 'staticNat'> {
  const sourceNat: NatPlan['sourceNat'] = [];
  const snatIp = Object.values(m.publicIps).filter((p) => p.sourceNat).sort((a, b) => compareText(a.ip, b.ip))[0];
  if (snatIp) {
    if (m.kind === 'vpc' && m.vpc?.cidr) sourceNat.push({ cidr: m.vpc.cidr, publicIp: snatIp.ip });
    else {
      for (const t of Object.values(m.tiers)) {
        if (t.implemented && t.guestType === 'isolated') sourceNat.push({ cidr: t.cidr, publicIp: snatIp.ip });
      }
    }
  }
  return { sourceNat, staticNat: heldEntries(m.staticNats, m.publicIps) };
}

/**
 * The entries whose public IP the router holds, as copies — or, for a frozen list (a kept large router's model)
 * whose every entry is held, the list itself (its entries are frozen too): the table's compile then finds the
 * same list again while it is unchanged (router-table.ts) instead of 10,000 new entries.
 */
function heldEntries<T extends { publicIp: string }>(list: readonly T[], ips: RouterModel['publicIps']): T[] {
  if (Object.isFrozen(list) && list.every((x) => ips[x.publicIp] !== undefined)) return list as T[];
  return list.filter((x) => ips[x.publicIp]).map((x) => ({ ...x }));
}
