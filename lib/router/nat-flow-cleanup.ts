/**
 * After a NAT change, flows established under a mapping that no longer exists (or now points elsewhere) must
 * not keep using it: their conntrack entries are deleted in-process over ctnetlink (lib/nft/ctnetlink.ts),
 * from ONE dump of the table however many mappings went. "Nothing matched" is success.
 *
 * Before the deletion, the reverse of every stranded flow a guest could revive (`revivable`) gets a mirror guard in
 * the router table (router-table.ts MIRROR_GUARDS): the guest cannot restart the flow the other way round, through
 * source NAT, however late it sends. Where no guard could be put (no stamp known, the stamp moved, a set full), the
 * translated entries' mirrors are swept a few times over ~75 ms instead (ConntrackSocket.deleteFlows).
 */
import { ConntrackSocket, MIRROR_SWEEPS_MS, type ConntrackEntry, type ConntrackFilter } from '../nft/ctnetlink.js';
import { NftError } from '../nft/errors.js';
import type { NftExecutor } from '../nft/executor.js';
import { elements, type ElementItem } from '../nft/objects.js';
import { stamped, stampSetName } from '../nft/table-sync.js';
import { openSysctl, readSysctlFd } from '../netns/sysctl.js';
import { runInNetns } from '../sys/setns.js';
import { MIRROR_GUARDS, ROUTER_TABLE, type NatPlan } from './router-table.js';
import { changedMiddle, sameValue } from '../util/compare.js';
import { cidrContains, parseCidr } from '../util/ip.js';

/**
 * Puts the mirror guards of these stranded flows (translated to a guest, with ports) into the router table before
 * their entries are deleted — only those a guest could revive (`revivable`), at most MIRROR_GUARDS_PER_CHANGE;
 * returns the flows whose mirrors the caller still sweeps: the revivable ones over that limit (the others cannot
 * be revived, their mirrors need no sweep), or all of them when no guard could be put (as without a guard).
 */
export type MirrorGuard = (flows: readonly ConntrackEntry[]) => Promise<readonly ConntrackEntry[]>;

/**
 * How many guards one NAT change puts at most: a client that opens tens of thousands of flows to a forward before
 * it is removed must not make the command commit as many elements, nor fill the set for every later change.
 * Answered flows first; the rest are swept.
 */
export const MIRROR_GUARDS_PER_CHANGE = 8192;

const PROTO_NAMES: Record<number, 'tcp' | 'udp'> = { 6: 'tcp', 17: 'udp' };
/** IPS_SEEN_REPLY: the far end answered (include/uapi/linux/netfilter/nf_conntrack_common.h). */
const IPS_SEEN_REPLY = 1 << 1;

/** Whether the flow was translated to somebody else (DNAT: a port forward's or static NAT's guest) and has ports. */
export function translatedFlow(e: ConntrackEntry): boolean {
  return e.orig.srcPort !== undefined && e.orig.dstPort !== undefined && e.reply.src !== e.orig.dst;
}

/**
 * Whether a guest's restart of stranded flow `e` — a new outbound flow from the guest's port to the client's —
 * would be the same flow the other way round: IPv4 TCP/UDP translated to the guest, the guest's port the public one
 * (source NAT keeps a free port), and the public address the one the guest's new flows leave with now (`outbound`:
 * its static NAT's, else its network's source NAT address). A TCP flow the guest never answered has nothing to
 * restart. Any other restart leaves with another address or port, which the client's packets do not match.
 */
export function revivable(e: ConntrackEntry, outbound: (guest: string) => string | undefined): boolean {
  if (e.family !== 'ipv4' || !translatedFlow(e) || e.reply.srcPort !== e.orig.dstPort) return false;
  const proto = PROTO_NAMES[e.orig.proto];
  if (proto === undefined || (proto === 'tcp' && ((e.status ?? 0) & IPS_SEEN_REPLY) === 0)) return false;
  return outbound(e.reply.src) === e.orig.dst;
}

/** The address a guest's new outbound flows leave with under `plan` (its static NAT's, else the source NAT's of its network). */
export function outboundAddress(plan: Pick<NatPlan, 'sourceNat' | 'staticNat'>): (guest: string) => string | undefined {
  const statics = new Map(plan.staticNat.map((s) => [s.privateIp, s.publicIp]));
  const snat = plan.sourceNat.map((s) => ({ cidr: parseCidr(s.cidr), publicIp: s.publicIp }));
  return (guest) => statics.get(guest) ?? snat.find((s) => s.cidr && cidrContains(s.cidr, guest))?.publicIp;
}

/** What a MirrorGuard needs of its engine: the tables' stamp as last recorded, and how to move it on. */
export interface MirrorGuardHost {
  executor(): { ex: NftExecutor; release: () => Promise<void> };
  /** The stamp our last commit left (fingerprint . generation), undefined: not known (the guard then does nothing). */
  stamp(): { fingerprint?: number | undefined; generation?: number | undefined } | undefined;
  /** The namespace's nftables generation now. */
  generation(): number;
  /** The guards' commit left the stamp at `generation`: record it (the next command's stamp check). */
  moved(generation: number): void;
  /** The address a guest's new outbound flows leave with after the change (outboundAddress of the new plan). */
  outbound(): (guest: string) => string | undefined;
}

/** A MirrorGuard committing under the host's stamp (commitMirrorGuards). */
export function mirrorGuard(host: MirrorGuardHost): MirrorGuard {
  return async (flows) => {
    const outbound = host.outbound();
    const revived = flows.filter((e) => revivable(e, outbound));
    if (revived.length === 0) return [];
    const answered = (e: ConntrackEntry): number => (((e.status ?? 0) & IPS_SEEN_REPLY) !== 0 ? 0 : 1);
    const ranked = revived.length > MIRROR_GUARDS_PER_CHANGE ? [...revived].sort((a, b) => answered(a) - answered(b)) : revived;
    const guarded = ranked.slice(0, MIRROR_GUARDS_PER_CHANGE);
    const left = ranked.slice(MIRROR_GUARDS_PER_CHANGE);
    const at = host.stamp();
    if (at?.fingerprint === undefined || at.generation === undefined || host.generation() !== at.generation) return flows;
    const { ex, release } = host.executor();
    let generation: number | undefined;
    try {
      generation = await commitMirrorGuards(ex, at.fingerprint, at.generation, guarded);
    } finally {
      await release();
    }
    if (generation === undefined) return flows;
    host.moved(generation);
    return left;
  };
}

/**
 * Commit the mirror guards of `flows` in the router table whose stamp is `fingerprint . generation` (table-sync's
 * guard: refused, changing nothing, when the stamp is not that one; the caller checks first that nothing else
 * committed nftables in the namespace since). Returns the generation of the stamp left, undefined when refused
 * (or a set is full: the kernel's ENFILE).
 */
export async function commitMirrorGuards(ex: NftExecutor, fingerprint: number, generation: number, flows: readonly ConntrackEntry[]): Promise<number | undefined> {
  const items: Record<'tcp' | 'udp', ElementItem[]> = { tcp: [], udp: [] };
  for (const e of flows) {
    const proto = PROTO_NAMES[e.orig.proto];
    if (proto === undefined || e.reply.srcPort === undefined || e.reply.dstPort === undefined) continue;
    // the reply tuple is the restart's original one: guest . guest port . client . client port
    items[proto].push({ key: [e.reply.src, e.reply.srcPort, e.reply.dst, e.reply.dstPort] });
  }
  const next = (generation + 1) >>> 0;
  try {
    await ex.apply(stamped(ROUTER_TABLE, stampSetName(), fingerprint, generation, fingerprint, next, (tx) => {
      for (const proto of ['tcp', 'udp'] as const) if (items[proto].length) tx.add(elements(MIRROR_GUARDS[proto].set, items[proto]));
    }), { locate: false });
    return next;
  } catch (err) {
    if (err instanceof NftError) return undefined; // the stamp moved, or a set is full: the sweeps instead
    throw err;
  }
}

/**
 * Whether `plan` carries flow `e` as it is translated: a flow to a mapping's new target that started after the
 * change, caught by the dump of the mapping it replaced (a re-pointed forward or static NAT), is not stranded.
 */
export function carriedBy(plan: Pick<NatPlan, 'staticNat' | 'portForwards'>): (e: ConntrackEntry) => boolean {
  let statics: Set<string> | undefined;
  let forwards: Map<string, NatPlan['portForwards']> | undefined;
  return (e) => {
    if (!translatedFlow(e)) return false;
    statics ??= new Set(plan.staticNat.map((s) => `${s.publicIp}>${s.privateIp}`));
    if (statics.has(`${e.orig.dst}>${e.reply.src}`)) return true;
    const proto = PROTO_NAMES[e.orig.proto];
    if (proto === undefined) return false;
    if (!forwards) {
      // single ports by address . protocol . port, ranges by address . protocol (a router holds up to 50,000)
      forwards = new Map();
      for (const p of plan.portForwards) {
        const k = p.publicPorts[0] === p.publicPorts[1] ? `${p.publicIp}|${p.protocol}|${p.publicPorts[0]}` : `${p.publicIp}|${p.protocol}`;
        let l = forwards.get(k);
        if (!l) forwards.set(k, l = []);
        l.push(p);
      }
    }
    const port = e.orig.dstPort!;
    const maps = (p: NatPlan['portForwards'][number]): boolean => port >= p.publicPorts[0] && port <= p.publicPorts[1]
      && p.privateIp === e.reply.src && e.reply.srcPort === p.privatePorts[0] + (port - p.publicPorts[0]);
    return (forwards.get(`${e.orig.dst}|${proto}|${port}`) ?? []).some(maps) || (forwards.get(`${e.orig.dst}|${proto}`) ?? []).some(maps);
  };
}

/**
 * Conntrack filters implied by going from `before` to `after`: the flows of mappings that went or changed, and
 * the untranslated UDP flows to the addresses and ports of mappings that came (a client that kept sending to a
 * removed forward from one port — a WireGuard peer, a SIP phone — has an entry to the router itself, which its
 * datagrams would otherwise keep using, past the new mapping, for as long as they flow; kube-proxy and Docker
 * clear UDP entries for the same reason).
 */
export function conntrackFilters(before: NatPlan, after: NatPlan): ConntrackFilter[] {
  const out: ConntrackFilter[] = [];
  const staticAfter = new Map(after.staticNat.map((s) => [s.publicIp, s.privateIp]));
  const staticBefore = new Map(before.staticNat.map((s) => [s.publicIp, s.privateIp]));
  for (const s of before.staticNat) {
    if (staticAfter.get(s.publicIp) !== s.privateIp) {
      out.push({ family: 'ipv4', origDst: s.publicIp }); // inbound flows to the old mapping
      out.push({ family: 'ipv4', origSrc: s.privateIp, replyDst: s.publicIp }); // outbound flows SNATed to it
    }
  }
  for (const s of after.staticNat) {
    // untranslated UDP flows to the address (their reply comes from it: the router's own; a TCP client's next
    // SYN replaces its closed entry by itself)
    if (staticBefore.get(s.publicIp) === undefined) out.push({ family: 'ipv4', proto: 'udp', origDst: s.publicIp, replySrc: s.publicIp });
  }
  const pfKey = (p: NatPlan['portForwards'][number]) => `${p.publicIp}|${p.protocol}|${p.publicPorts.join('-')}|${p.privateIp}|${p.privatePorts.join('-')}`;
  // only the stretch that differs (a command changes one forward among up to 50,000)
  const [pfBefore, pfAfterList] = changedMiddle(before.portForwards, after.portForwards, sameValue);
  const pfAfter = new Set(pfAfterList.map(pfKey));
  const pfWere = new Set(pfBefore.map(pfKey));
  for (const p of pfBefore) {
    if (pfAfter.has(pfKey(p))) continue;
    out.push({ family: 'ipv4', proto: p.protocol, origDst: p.publicIp, origDstPorts: [p.publicPorts[0], p.publicPorts[1]] });
  }
  for (const p of pfAfterList) {
    if (p.protocol !== 'udp' || pfWere.has(pfKey(p))) continue;
    out.push({ family: 'ipv4', proto: p.protocol, origDst: p.publicIp, origDstPorts: [p.publicPorts[0], p.publicPorts[1]], replySrc: p.publicIp });
  }
  const snatAfter = new Map(after.sourceNat.map((s) => [s.cidr, s.publicIp]));
  for (const s of before.sourceNat) {
    if (snatAfter.get(s.cidr) !== s.publicIp) out.push({ family: 'ipv4', origSrc: s.cidr, replyDst: s.publicIp });
  }
  return out;
}

/**
 * Delete the conntrack entries of removed/changed mappings inside the router namespace (not those the new plan
 * carries as they are: a re-pointed mapping's new flows), after guarding the reverses a guest could revive
 * (`guard`), else sweeping the translated flows' mirrors shortly after (a guest sending to the client of a removed
 * port forward would otherwise restart the flow outbound, through source NAT); returns the count.
 */
export async function deleteNatConntrack(netns: string, before: NatPlan, after: NatPlan, guard?: MirrorGuard): Promise<number> {
  return endFlows(netns, conntrackFilters(before, after), guard, carriedBy(after));
}

/** Delete the entries any of `filters` matches inside the router namespace (the translated ones' mirrors swept). */
export async function deleteConntrackFlows(netns: string, filters: ConntrackFilter[]): Promise<number> {
  return endFlows(netns, filters);
}

async function endFlows(netns: string, filters: ConntrackFilter[], guard?: MirrorGuard, carried?: (e: ConntrackEntry) => boolean): Promise<number> {
  if (filters.length === 0) return 0;
  // the kernel answers a conntrack dump by walking its whole hash table, every namespace's entries (~5 ms on a
  // large host); a namespace that tracks no flow at all has none to delete. Read after the NAT change, so a flow
  // that starts meanwhile already meets the new rules (and a dump lists confirmed entries only, as this counts).
  if (trackedFlows(netns) === 0) return 0;
  const sock = ConntrackSocket.open({ netns });
  try {
    const found = sock.findAny(filters);
    const victims = carried ? found.filter((e) => !carried(e)) : found;
    // an untranslated flow (the router's own, or a guest's outbound one) has no mirror that a mapping would carry;
    // translated ones are guarded where a restart could revive them, else (no guard) swept
    const translated = victims.filter(translatedFlow);
    const sweep = translated.length > 0 && guard !== undefined ? await guard(translated) : translated;
    return await sock.deleteFlows(victims, MIRROR_SWEEPS_MS, sweep);
  } finally {
    sock.close();
  }
}

/** The namespace's conntrack entry count (net.netfilter.nf_conntrack_count), or undefined when it cannot be read. */
export function trackedFlows(netns: string): number | undefined {
  try {
    const n = Number(readSysctlFd(runInNetns(netns, () => openSysctl('net.netfilter.nf_conntrack_count', false))));
    return Number.isInteger(n) && n >= 0 ? n : undefined;
  } catch {
    return undefined; // no conntrack in the namespace yet, or no such sysctl: the dump decides
  }
}
