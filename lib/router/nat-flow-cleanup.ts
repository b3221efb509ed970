/**
 * After a NAT change, flows established under a mapping that no longer exists (or now points elsewhere) must
 * not keep using it: their conntrack entries are deleted in-process over ctnetlink (lib/nft/ctnetlink.ts),
 * from ONE dump of the table however many mappings went. "Nothing matched" is success.
 */
import { ConntrackSocket, type ConntrackFilter } from '../nft/ctnetlink.js';
import { openSysctl, readSysctlFd } from '../netns/sysctl.js';
import { runInNetns } from '../sys/setns.js';
import type { NatPlan } from './router-table.js';
import { changedMiddle, sameValue } from '../util/compare.js';

/** Conntrack filters implied by going from `before` to `after`. */
export function conntrackFilters(before: NatPlan, after: NatPlan): ConntrackFilter[] {
  const out: ConntrackFilter[] = [];
  const staticAfter = new Map(after.staticNat.map((s) => [s.publicIp, s.privateIp]));
  for (const s of before.staticNat) {
    if (staticAfter.get(s.publicIp) !== s.privateIp) {
      out.push({ family: 'ipv4', origDst: s.publicIp }); // inbound flows to the old mapping
      out.push({ family: 'ipv4', origSrc: s.privateIp, replyDst: s.publicIp }); // outbound flows SNATed to it
    }
  }
  const pfKey = (p: NatPlan['portForwards'][number]) => `${p.publicIp}|${p.protocol}|${p.publicPorts.join('-')}|${p.privateIp}|${p.privatePorts.join('-')}`;
  // only the stretch that differs (a command changes one forward among up to 50,000)
  const [pfBefore, pfAfterList] = changedMiddle(before.portForwards, after.portForwards, sameValue);
  const pfAfter = new Set(pfAfterList.map(pfKey));
  for (const p of pfBefore) {
    if (pfAfter.has(pfKey(p))) continue;
    out.push({ family: 'ipv4', proto: p.protocol, origDst: p.publicIp, origDstPorts: [p.publicPorts[0], p.publicPorts[1]] });
  }
  const snatAfter = new Map(after.sourceNat.map((s) => [s.cidr, s.publicIp]));
  for (const s of before.sourceNat) {
    if (snatAfter.get(s.cidr) !== s.publicIp) out.push({ family: 'ipv4', origSrc: s.cidr, replyDst: s.publicIp });
  }
  return out;
}

/**
 * Delete the conntrack entries of removed/changed mappings inside the router namespace, and shortly after their
 * mirrors (ConntrackSocket.deleteFlows: a guest answering a packet of a removed port forward would otherwise
 * restart the flow outbound, through source NAT, and keep it reachable); returns the count.
 */
export async function deleteNatConntrack(netns: string, before: NatPlan, after: NatPlan): Promise<number> {
  return deleteConntrackFlows(netns, conntrackFilters(before, after));
}

/** Delete the entries any of `filters` matches inside the router namespace (and their mirrors), as deleteNatConntrack. */
export async function deleteConntrackFlows(netns: string, filters: ConntrackFilter[]): Promise<number> {
  if (filters.length === 0) return 0;
  // the kernel answers a conntrack dump by walking its whole hash table, every namespace's entries (~5 ms on a
  // large host); a namespace that tracks no flow at all has none to delete. Read after the NAT change, so a flow
  // that starts meanwhile already meets the new rules (and a dump lists confirmed entries only, as this counts).
  if (trackedFlows(netns) === 0) return 0;
  const sock = ConntrackSocket.open({ netns });
  try {
    return await sock.deleteFlows(sock.findAny(filters));
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
