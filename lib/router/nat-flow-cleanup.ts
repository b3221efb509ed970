/**
 * After a NAT change, flows established under a mapping that no longer exists (or now points elsewhere) must
 * not keep using it: their conntrack entries are deleted in-process over ctnetlink (lib/nft/ctnetlink.ts),
 * from ONE dump of the table however many mappings went. "Nothing matched" is success.
 *
 * Before the deletion, the reverse of every stranded flow that was translated to a guest gets a mirror guard in
 * the router table (router-table.ts MIRROR_GUARDS): the guest cannot restart the flow the other way round, through
 * source NAT, however late it sends. Where no guard could be put (no stamp known, the set full, an executor without
 * generations), the entries' mirrors are swept a few times over ~75 ms instead (ConntrackSocket.deleteFlows).
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

/**
 * Puts the mirror guards of these stranded flows into the router table before their entries are deleted; true when
 * they are in place (every entry given is guarded), false when not (the caller sweeps their mirrors instead).
 */
export type MirrorGuard = (flows: readonly ConntrackEntry[]) => Promise<boolean>;

const PROTO_NAMES: Record<number, 'tcp' | 'udp'> = { 6: 'tcp', 17: 'udp' };

/** Whether the flow was translated to somebody else (DNAT: a port forward's or static NAT's guest) over TCP/UDP. */
export function guardable(e: ConntrackEntry): boolean {
  return e.family === 'ipv4' && PROTO_NAMES[e.orig.proto] !== undefined && e.reply.srcPort !== undefined && e.reply.dstPort !== undefined
    && e.reply.src !== e.orig.dst;
}

/**
 * Commit the mirror guards of `flows` (guardable ones) in the router table whose stamp is `fingerprint . generation`
 * (table-sync's guard: refused, changing nothing, when anything committed nftables in the namespace since). Returns
 * the generation of the stamp left (the caller's record of the tables moves on to it), undefined when refused.
 */
export async function commitMirrorGuards(ex: NftExecutor, fingerprint: number, generation: number, flows: readonly ConntrackEntry[]): Promise<number | undefined> {
  const items: Record<'tcp' | 'udp', ElementItem[]> = { tcp: [], udp: [] };
  for (const e of flows) {
    if (!guardable(e)) continue;
    // the reply tuple is the mirror's original one: guest . guest port . client . client port
    items[PROTO_NAMES[e.orig.proto]].push({ key: [e.reply.src, e.reply.srcPort!, e.reply.dst, e.reply.dstPort!] });
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
 * Conntrack filters implied by going from `before` to `after`: the flows of mappings that went or changed, and
 * the untranslated flows to the addresses and ports of mappings that came (a client that kept sending to a
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
    // untranslated flows to the address (their reply comes from it: the router's own)
    if (staticBefore.get(s.publicIp) === undefined) out.push({ family: 'ipv4', origDst: s.publicIp, replySrc: s.publicIp });
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
    if (pfWere.has(pfKey(p))) continue;
    out.push({ family: 'ipv4', proto: p.protocol, origDst: p.publicIp, origDstPorts: [p.publicPorts[0], p.publicPorts[1]], replySrc: p.publicIp });
  }
  const snatAfter = new Map(after.sourceNat.map((s) => [s.cidr, s.publicIp]));
  for (const s of before.sourceNat) {
    if (snatAfter.get(s.cidr) !== s.publicIp) out.push({ family: 'ipv4', origSrc: s.cidr, replyDst: s.publicIp });
  }
  return out;
}

/**
 * Delete the conntrack entries of removed/changed mappings inside the router namespace, after guarding their
 * reverses (`guard`), else sweeping their mirrors shortly after (a guest sending to the client of a removed port
 * forward would otherwise restart the flow outbound, through source NAT, and keep it reachable); returns the count.
 */
export async function deleteNatConntrack(netns: string, before: NatPlan, after: NatPlan, guard?: MirrorGuard): Promise<number> {
  return deleteConntrackFlows(netns, conntrackFilters(before, after), guard);
}

/** Delete the entries any of `filters` matches inside the router namespace (guarded, or their mirrors swept), as deleteNatConntrack. */
export async function deleteConntrackFlows(netns: string, filters: ConntrackFilter[], guard?: MirrorGuard): Promise<number> {
  if (filters.length === 0) return 0;
  // the kernel answers a conntrack dump by walking its whole hash table, every namespace's entries (~5 ms on a
  // large host); a namespace that tracks no flow at all has none to delete. Read after the NAT change, so a flow
  // that starts meanwhile already meets the new rules (and a dump lists confirmed entries only, as this counts).
  if (trackedFlows(netns) === 0) return 0;
  const sock = ConntrackSocket.open({ netns });
  try {
    const victims = sock.findAny(filters);
    const translated = victims.filter(guardable);
    // guarded flows need no sweep: their guest's restart is dropped however late it comes; an untranslated flow
    // (the router's own, or a guest's outbound one) has no mirror that a mapping would carry
    const guarded = translated.length > 0 && guard !== undefined && await guard(translated);
    return await sock.deleteFlows(victims, MIRROR_SWEEPS_MS, guarded ? [] : translated);
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
