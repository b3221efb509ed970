/**
 * The router's ARP responder: the public IPs a router answers ARP for without holding them as addresses
 * (static NAT addresses, topology.ts publicAttachments `arpOnly`). A table `netdev netns_router_arp` with one
 * ingress chain per public veth turns an ARP request for one of them into the reply, in place, and sends it
 * back out of the veth; the kernel never sees the request. Changed in the same transaction as the router
 * table (lib/nft/table-sync.ts, companion table), so a static NAT and its ARP answer come and go together.
 *
 *   table netdev netns_router_arp
 *     set ips_<veth>  { type ipv4_addr }                       the addresses answered on that veth
 *     chain in_<veth> { type filter hook ingress device "<veth>" priority filter }
 *       arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp operation request arp daddr ip @ips_<veth>
 *         @ll,48,32 set arp saddr ip        the requester's IP, parked in the Ethernet source (rewritten below):
 *         arp saddr ip set arp daddr ip     nft has no scratch register, and a typed field cannot be set from
 *         arp daddr ip set @ll,48,32        `meta mark` (type mismatch); moved as raw payloads (@nh,112,32 …)
 *         arp daddr ether set arp saddr ether
 *         ether daddr set arp saddr ether
 *         arp saddr ether set <veth MAC>  ether saddr set <veth MAC>  arp operation set reply
 *         fwd to "<veth>"                   (by interface index: see arpResponderObjects)
 *
 * A set element costs ~10 µs to add, an address on the interface up to ~0.2 ms at 10,000 (quadratic). When an
 * address starts being answered here, a gratuitous ARP announces it (announce()).
 *
 * An ingress chain is bound to its device: a veth that is re-created takes the chain with it (or unbinds it)
 * without an nftables commit, so the stamp cannot tell; the engine replaces the tables when a public veth was
 * (re)created.
 */
import * as N from '../nft/index.js';
import type { NetnsHandle } from '../netns/handle.js';
import type { Attachment } from './plumbing-plan.js';
import { sendGratuitousArps } from './garp.js';

export const ARP_TABLE: N.TableRef = { family: 'netdev', name: 'netns_router_arp' };
export const ARP_TABLE_COMMENT = 'managed by netns-router: ARP answers for static NAT addresses';

/** The set of the addresses answered on a veth, and its element for one address (delta-compile.ts changes them one by one). */
export const responderSetName = (dev: string): string => `ips_${dev}`;
export const responderElement = (ip: string): N.ElementItem => ({ key: ip });
const setName = responderSetName;
const chainName = (dev: string): string => `in_${dev}`;

/** The veths that answer ARP for addresses they do not hold. */
export function responderDevices(atts: readonly Attachment[]): string[] {
  return atts.filter((a) => a.arpOnly?.length && a.nsMac).map((a) => a.nsVeth);
}

/**
 * The responder table's contents for a router's public attachments ([] when nothing is answered). `ifindex`:
 * the veths' interface indexes in the router namespace — `fwd` names its device by index, since libnftables
 * would resolve a name in the namespace of the calling thread (a worker's, for large inputs), not the router's.
 */
export function arpResponderObjects(atts: readonly Attachment[], ifindex: ReadonlyMap<string, number>): N.NftObject[] {
  const objs: N.NftObject[] = [];
  for (const a of atts) {
    const index = ifindex.get(a.nsVeth);
    if (!a.arpOnly?.length || !a.nsMac || index === undefined) continue;
    const mac = N.etherAddr(a.nsMac);
    const ips = setName(a.nsVeth);
    // the IP fields are moved as raw 32-bit payloads: libnftables' JSON parser refuses a typed field set from a
    // raw one (text mode accepts it). ARP header (bytes): sender IP at 14, target IP at 24.
    const park = N.rawPayload('ll', 48, 32);
    const senderIp = N.rawPayload('nh', 112, 32);
    const targetIp = N.rawPayload('nh', 192, 32);
    objs.push(
      N.set(ips, 'ipv4_addr', { elements: a.arpOnly.map(responderElement) }),
      N.baseChain(chainName(a.nsVeth), { type: 'filter', hook: 'ingress', device: a.nsVeth, priority: { base: 'filter', offset: 0 }, policy: 'accept' }),
      N.rule(chainName(a.nsVeth), [
        N.match(N.arp.htype, 1), N.match(N.arp.ptype, N.symbol('ip')), N.match(N.arp.hlen, 6), N.match(N.arp.plen, 4),
        N.match(N.arp.operation, N.symbol('request')), N.lookup(N.arp.daddrIp, ips),
        N.mangle(park, senderIp),
        N.mangle(senderIp, targetIp),
        N.mangle(targetIp, park),
        N.mangle(N.arp.daddrEther, N.arp.saddrEther),
        N.mangle(N.ether.daddr, N.arp.saddrEther),
        N.mangle(N.arp.saddrEther, mac),
        N.mangle(N.ether.saddr, mac),
        N.mangle(N.arp.operation, N.symbol('reply')),
        N.fwd(index),
      ], { comment: 'answer ARP for static NAT addresses' }),
    );
  }
  return objs;
}

/**
 * What the veths of `atts` answered ARP for with their own MAC — the IPv4 addresses they hold and those the
 * responder answered for them — as responder sets, for `announce`'s `before`: an address that only moves between
 * a veth and the responder of that veth (a static NAT added or deleted) keeps its MAC, and peers need no
 * gratuitous ARP to find it (docs/reconcile.md "Cold NAT commands").
 */
export function answeredByVeths(atts: readonly Attachment[]): N.NftObject[] {
  return atts.map((a) => N.set(setName(a.nsVeth), 'ipv4_addr', {
    elements: [...a.addresses.filter((x) => !x.includes(':')).map((x) => x.split('/')[0]), ...(a.arpOnly ?? [])].map(responderElement),
  }));
}

/** veth → addresses answered there, from the responder table's contents. */
function answered(objs: readonly N.NftObject[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const o of objs) {
    if (o.kind === 'set' && o.name.startsWith('ips_')) out.set(o.name.slice(4), (o.elements ?? []).map((e) => String(e.key)));
  }
  return out;
}

/** Did plumbing (re)create a veth the responder has an ingress chain on (see the header)? */
export function boundDeviceMade(objs: readonly N.NftObject[], links: ReadonlyArray<{ name: string; action: string }>): boolean {
  const devs = answered(objs);
  return devs.size > 0 && links.some((l) => (l.action === 'created' || l.action === 'recreated') && devs.has(l.name.split('/').pop()!));
}

/**
 * Gratuitous ARP for the addresses the responder answers now and did not before (`before` undefined: all of
 * them — after the tables were replaced, e.g. after a reboot, nobody knows where they are), so that the peers
 * learn their location at once. Best effort: a missing carrier must not fail the command. Returns how many.
 */
export function announce(ns: () => NetnsHandle, want: readonly N.NftObject[], before: readonly N.NftObject[] | undefined): number {
  const now = answered(want);
  const old = before ? answered(before) : new Map<string, string[]>();
  let sent = 0;
  let h: NetnsHandle | undefined;
  try {
    for (const [dev, ips] of now) {
      const had = new Set(old.get(dev) ?? []);
      const fresh = had.size ? ips.filter((ip) => !had.has(ip)) : ips;
      if (!fresh.length) continue;
      try {
        h ??= ns();
        sent += sendGratuitousArps(h, dev, fresh);
      } catch {
        /* best effort */
      }
    }
  } finally {
    h?.close();
  }
  return sent;
}
