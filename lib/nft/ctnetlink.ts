/**
 * Conntrack entries over ctnetlink (NETLINK_NETFILTER, subsystem CTNETLINK), in-process.
 *
 * Why: re-pointing or removing a NAT mapping does not move flows that already have a conntrack entry
 * (the NAT decision is taken once, for the first packet). Their entries must be deleted; the next
 * packet then creates a new entry that goes through the new ruleset.
 *
 * How: dump the conntrack table of the namespace (IPCTNL_MSG_CT_GET + NLM_F_DUMP), filter in
 * TypeScript, then delete each match by its full original tuple plus its id (IPCTNL_MSG_CT_DELETE),
 * so an entry recreated meanwhile with the same tuple is not touched. An entry gone in between
 * (ENOENT) is not counted; "nothing matched" is success (0).
 *
 * Wire format (linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h): nlmsg type = subsys << 8 | msg;
 * body = struct nfgenmsg { u8 family; u8 version; be16 res_id } + attributes. Addresses are raw
 * network-order bytes, ports/ids/zones/marks big-endian.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { NlWriter, parseAttrs, type Attrs } from '../netlink/attrs.js';
import { NETLINK_NETFILTER, NLM_F_ACK } from '../netlink/constants.js';
import { NetlinkError } from '../netlink/errors.js';
import { NetlinkSocket, type NlMessage } from '../netlink/socket.js';
import { runInNetns } from '../sys/setns.js';
import { NftValidationError } from './errors.js';
import { checkPort, checkUint, parseAddress } from './validate.js';
import { bigIntToIp, ipToBigInt, type IpFamily } from '../util/ip.js';

// nfnetlink / ctnetlink constants
const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_NEW = 0;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const NFNETLINK_V0 = 0;
const AF_UNSPEC = 0;
const AF_INET = 2;
const AF_INET6 = 10;

const CTA_TUPLE_ORIG = 1;
const CTA_TUPLE_REPLY = 2;
const CTA_STATUS = 3;
const CTA_TIMEOUT = 7;
const CTA_MARK = 8;
const CTA_ID = 12;
const CTA_MARK_MASK = 21;
const CTA_ZONE = 18;

const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_TUPLE_ZONE = 3;

const CTA_IP_V4_SRC = 1;
const CTA_IP_V4_DST = 2;
const CTA_IP_V6_SRC = 3;
const CTA_IP_V6_DST = 4;

const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;
const CTA_PROTO_ICMP_ID = 4;
const CTA_PROTO_ICMP_TYPE = 5;
const CTA_PROTO_ICMP_CODE = 6;
const CTA_PROTO_ICMPV6_ID = 7;
const CTA_PROTO_ICMPV6_TYPE = 8;
const CTA_PROTO_ICMPV6_CODE = 9;

const msgType = (msg: number): number => (NFNL_SUBSYS_CTNETLINK << 8) | msg;

/** IP protocol numbers by name, as conntrack filters take them. */
export const IPPROTO = { icmp: 1, tcp: 6, udp: 17, dccp: 33, gre: 47, icmpv6: 58, sctp: 132, udplite: 136 } as const;
/** A protocol name of IPPROTO. */
export type ProtoName = keyof typeof IPPROTO;

/** One direction of a connection. */
export interface ConntrackTuple {
  src: string;
  dst: string;
  /** IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6…). */
  proto: number;
  srcPort?: number;
  dstPort?: number;
  icmpId?: number;
  icmpType?: number;
  icmpCode?: number;
}

/** A conntrack entry: its original and reply tuples, id, zone, mark, status, seconds left. */
export interface ConntrackEntry {
  family: 'ipv4' | 'ipv6';
  /** As the first packet arrived (before NAT). */
  orig: ConntrackTuple;
  /** As replies are expected (after NAT: a DNAT shows as reply.src = the backend). */
  reply: ConntrackTuple;
  id?: number;
  zone?: number;
  mark?: number;
  status?: number;
  /** Seconds left. */
  timeout?: number;
}

/**
 * Which entries: every given field must match. Addresses may be literals, CIDR prefixes or ranges.
 * An empty filter matches everything, which deleteConntrack refuses unless `all: true`.
 */
export interface ConntrackFilter {
  family?: 'ipv4' | 'ipv6';
  proto?: ProtoName | number;
  origSrc?: string;
  origDst?: string;
  origSrcPort?: number;
  origDstPort?: number;
  /** Inclusive range of original destination ports (instead of origDstPort). */
  origDstPorts?: [number, number];
  replySrc?: string;
  replyDst?: string;
  replySrcPort?: number;
  replyDstPort?: number;
  zone?: number;
  mark?: number;
}

/** Where conntrack operations run: a named namespace, default the caller's. */
export interface ConntrackOptions {
  /** Named namespace (/run/netns/NAME); default: the calling thread's. */
  netns?: string;
}

// ── Filter compilation ─────────────────────────────────────────────────────────────────────────────

type AddrTest = { version: IpFamily; lo: bigint; hi: bigint };

function addrTest(what: string, v: string | undefined, version?: IpFamily): AddrTest | undefined {
  if (v === undefined) return undefined;
  const p = parseAddress(what, v, version);
  if (p.kind === 'addr') { const x = ipToBigInt(p.addr); return { version: p.version, lo: x, hi: x }; }
  if (p.kind === 'range') return { version: p.version, lo: ipToBigInt(p.from), hi: ipToBigInt(p.to) };
  const bits = p.version === 4 ? 32 : 128;
  const lo = ipToBigInt(p.addr);
  return { version: p.version, lo, hi: lo + (1n << BigInt(bits - p.len)) - 1n };
}

interface Compiled {
  family?: 'ipv4' | 'ipv6';
  proto?: number;
  addrs: Array<[AddrTest, (e: ConntrackEntry) => string]>;
  ports: Array<[number, number, (e: ConntrackEntry) => number | undefined]>;
  zone?: number;
  mark?: number;
  empty: boolean;
}

function compile(f: ConntrackFilter): Compiled {
  if (f.family !== undefined && f.family !== 'ipv4' && f.family !== 'ipv6') {
    throw new NftValidationError('E_INVALID_VALUE', 'conntrack family', f.family, 'ipv4 or ipv6');
  }
  const version: IpFamily | undefined = f.family === 'ipv4' ? 4 : f.family === 'ipv6' ? 6 : undefined;
  let proto: number | undefined;
  if (f.proto !== undefined) {
    proto = typeof f.proto === 'number' ? checkUint('conntrack proto', f.proto, 255) : IPPROTO[f.proto];
    if (proto === undefined) throw new NftValidationError('E_INVALID_VALUE', 'conntrack proto', f.proto, `one of ${Object.keys(IPPROTO).join(', ')} or a number`);
  }
  const c: Compiled = { addrs: [], ports: [], empty: true };
  if (f.family) c.family = f.family;
  if (proto !== undefined) c.proto = proto;
  const addr = (what: string, v: string | undefined, get: (e: ConntrackEntry) => string): void => {
    const t = addrTest(what, v, version);
    if (t) c.addrs.push([t, get]);
  };
  addr('origSrc', f.origSrc, (e) => e.orig.src);
  addr('origDst', f.origDst, (e) => e.orig.dst);
  addr('replySrc', f.replySrc, (e) => e.reply.src);
  addr('replyDst', f.replyDst, (e) => e.reply.dst);
  // all addresses of one filter must be of one family (the entry has one)
  const versions = new Set(c.addrs.map(([t]) => t.version));
  if (versions.size > 1) throw new NftValidationError('E_INVALID_ADDRESS', 'conntrack filter', f, 'mixes IPv4 and IPv6 addresses');
  if (!c.family && versions.size === 1) c.family = versions.has(4) ? 'ipv4' : 'ipv6';
  const port = (what: string, v: number | undefined, get: (e: ConntrackEntry) => number | undefined): void => {
    if (v !== undefined) { const p = checkPort(what, v); c.ports.push([p, p, get]); }
  };
  port('origSrcPort', f.origSrcPort, (e) => e.orig.srcPort);
  port('origDstPort', f.origDstPort, (e) => e.orig.dstPort);
  if (f.origDstPorts !== undefined) {
    const r = f.origDstPorts;
    if (!Array.isArray(r) || r.length !== 2) throw new NftValidationError('E_INVALID_PORT', 'conntrack origDstPorts', r, 'expected [first, last]');
    const lo = checkPort('origDstPorts', r[0]);
    const hi = checkPort('origDstPorts', r[1]);
    if (lo > hi) throw new NftValidationError('E_INVALID_PORT', 'conntrack origDstPorts', r, 'first port above last');
    c.ports.push([lo, hi, (e) => e.orig.dstPort]);
  }
  port('replySrcPort', f.replySrcPort, (e) => e.reply.srcPort);
  port('replyDstPort', f.replyDstPort, (e) => e.reply.dstPort);
  if (f.zone !== undefined) c.zone = checkUint('conntrack zone', f.zone, 65535);
  if (f.mark !== undefined) c.mark = checkUint('conntrack mark', f.mark);
  c.empty = c.proto === undefined && c.addrs.length === 0 && c.ports.length === 0 && c.zone === undefined && c.mark === undefined;
  return c;
}

function matches(c: Compiled, e: ConntrackEntry): boolean {
  if (c.family && e.family !== c.family) return false;
  if (c.proto !== undefined && e.orig.proto !== c.proto) return false;
  for (const [t, get] of c.addrs) {
    if ((e.family === 'ipv4' ? 4 : 6) !== t.version) return false;
    const v = ipToBigInt(get(e));
    if (v < t.lo || v > t.hi) return false;
  }
  for (const [lo, hi, get] of c.ports) {
    const v = get(e);
    if (v === undefined || v < lo || v > hi) return false;
  }
  if (c.zone !== undefined && (e.zone ?? 0) !== c.zone) return false;
  if (c.mark !== undefined && (e.mark ?? 0) !== c.mark) return false;
  return true;
}

// ── Codec ──────────────────────────────────────────────────────────────────────────────────────────

function nfgenmsg(family: number): NlWriter {
  return new NlWriter(128).u8(family).u8(NFNETLINK_V0).u16(0); // res_id 0 (big-endian zero)
}

function addrFromBytes(b: Buffer): string {
  let v = 0n;
  for (const byte of b) v = (v << 8n) | BigInt(byte);
  return bigIntToIp(v, b.length === 4 ? 4 : 6);
}

function addrToBytes(addr: string, version: IpFamily): Buffer {
  const n = version === 4 ? 4 : 16;
  const b = Buffer.alloc(n);
  let v = ipToBigInt(addr);
  for (let i = n - 1; i >= 0; i--) { b[i] = Number(v & 0xffn); v >>= 8n; }
  return b;
}

function decodeTuple(a: Attrs | undefined): ConntrackTuple | undefined {
  if (!a) return undefined;
  const ip = a.nested(CTA_TUPLE_IP);
  const pr = a.nested(CTA_TUPLE_PROTO);
  if (!ip || !pr) return undefined;
  const src = ip.raw(CTA_IP_V4_SRC) ?? ip.raw(CTA_IP_V6_SRC);
  const dst = ip.raw(CTA_IP_V4_DST) ?? ip.raw(CTA_IP_V6_DST);
  const proto = pr.u8(CTA_PROTO_NUM);
  if (!src || !dst || proto === undefined) return undefined;
  const t: ConntrackTuple = { src: addrFromBytes(src), dst: addrFromBytes(dst), proto };
  const sp = pr.be16(CTA_PROTO_SRC_PORT);
  const dp = pr.be16(CTA_PROTO_DST_PORT);
  if (sp !== undefined) t.srcPort = sp;
  if (dp !== undefined) t.dstPort = dp;
  const id = pr.be16(CTA_PROTO_ICMP_ID) ?? pr.be16(CTA_PROTO_ICMPV6_ID);
  const type = pr.u8(CTA_PROTO_ICMP_TYPE) ?? pr.u8(CTA_PROTO_ICMPV6_TYPE);
  const code = pr.u8(CTA_PROTO_ICMP_CODE) ?? pr.u8(CTA_PROTO_ICMPV6_CODE);
  if (id !== undefined) t.icmpId = id;
  if (type !== undefined) t.icmpType = type;
  if (code !== undefined) t.icmpCode = code;
  return t;
}

/** Decode one IPCTNL_MSG_CT_NEW message of a dump. */
export function decodeEntry(m: NlMessage): ConntrackEntry | undefined {
  if ((m.type & 0xff) !== IPCTNL_MSG_CT_NEW || m.payload.length < 4) return undefined;
  const family = m.payload.readUInt8(0);
  if (family !== AF_INET && family !== AF_INET6) return undefined;
  const a = parseAttrs(m.payload, 4);
  const orig = decodeTuple(a.nested(CTA_TUPLE_ORIG));
  const reply = decodeTuple(a.nested(CTA_TUPLE_REPLY));
  if (!orig || !reply) return undefined;
  const e: ConntrackEntry = { family: family === AF_INET ? 'ipv4' : 'ipv6', orig, reply };
  const id = a.be32(CTA_ID);
  const zone = a.be16(CTA_ZONE);
  const mark = a.be32(CTA_MARK);
  const status = a.be32(CTA_STATUS);
  const timeout = a.be32(CTA_TIMEOUT);
  if (id !== undefined) e.id = id;
  if (zone !== undefined) e.zone = zone;
  if (mark !== undefined) e.mark = mark;
  if (status !== undefined) e.status = status;
  if (timeout !== undefined) e.timeout = timeout;
  return e;
}

function writeTuple(w: NlWriter, type: number, t: ConntrackTuple, version: IpFamily, zone?: number): void {
  w.nest(type, (x) => {
    x.nest(CTA_TUPLE_IP, (ip) => {
      ip.attr(version === 4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, addrToBytes(t.src, version));
      ip.attr(version === 4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, addrToBytes(t.dst, version));
    });
    x.nest(CTA_TUPLE_PROTO, (p) => {
      p.attrU8(CTA_PROTO_NUM, t.proto);
      if (t.srcPort !== undefined) p.attrBe16(CTA_PROTO_SRC_PORT, t.srcPort);
      if (t.dstPort !== undefined) p.attrBe16(CTA_PROTO_DST_PORT, t.dstPort);
      const v6 = version === 6;
      if (t.icmpId !== undefined) p.attrBe16(v6 ? CTA_PROTO_ICMPV6_ID : CTA_PROTO_ICMP_ID, t.icmpId);
      if (t.icmpType !== undefined) p.attrU8(v6 ? CTA_PROTO_ICMPV6_TYPE : CTA_PROTO_ICMP_TYPE, t.icmpType);
      if (t.icmpCode !== undefined) p.attrU8(v6 ? CTA_PROTO_ICMPV6_CODE : CTA_PROTO_ICMP_CODE, t.icmpCode);
    });
    if (zone) x.attrBe16(CTA_TUPLE_ZONE, zone);
  });
}

/** IPCTNL_MSG_CT_DELETE body for one entry: its original tuple, id and zone. */
export function encodeDelete(e: ConntrackEntry): Buffer {
  const version: IpFamily = e.family === 'ipv4' ? 4 : 6;
  const w = nfgenmsg(version === 4 ? AF_INET : AF_INET6);
  writeTuple(w, CTA_TUPLE_ORIG, e.orig, version, e.zone);
  if (e.zone) w.attrBe16(CTA_ZONE, e.zone);
  if (e.id !== undefined) w.attrBe32(CTA_ID, e.id);
  return w.finish();
}

/**
 * IPCTNL_MSG_CT_NEW body that changes the mark of an existing entry: its original tuple and zone, CTA_MARK and
 * CTA_MARK_MASK. The kernel computes (old & ~mask) ^ mark (ctnetlink_change_mark): with mark = mask = B it sets
 * the bits B and keeps the others; with mark 0 it clears them.
 */
export function encodeMarkUpdate(e: ConntrackEntry, mark: number, mask: number): Buffer {
  const version: IpFamily = e.family === 'ipv4' ? 4 : 6;
  const w = nfgenmsg(version === 4 ? AF_INET : AF_INET6);
  writeTuple(w, CTA_TUPLE_ORIG, e.orig, version, e.zone);
  if (e.zone) w.attrBe16(CTA_ZONE, e.zone);
  w.attrBe32(CTA_MARK, mark >>> 0);
  w.attrBe32(CTA_MARK_MASK, mask >>> 0);
  return w.finish();
}

/** Pauses (ms) before each mirror sweep of deleteFlows: an answer to a packet that arrived just before the deletion
 *  leaves the far end within this time unless the machine is badly overloaded. */
export const MIRROR_SWEEPS_MS: readonly number[] = [5, 20, 50];

/** The entry holding `e`'s flow the other way round: original tuple = e's reply tuple (no id: a delete by this
 *  tuple takes whichever entry holds it; conntrack has at most one). */
export function mirrorEntry(e: ConntrackEntry): ConntrackEntry {
  return { family: e.family, orig: e.reply, reply: e.orig, ...(e.zone !== undefined ? { zone: e.zone } : {}) };
}

const describe = (t: ConntrackTuple): string =>
  `${t.src}${t.srcPort !== undefined ? `:${t.srcPort}` : ''} -> ${t.dst}${t.dstPort !== undefined ? `:${t.dstPort}` : ''} proto ${t.proto}`;

// ── Socket ─────────────────────────────────────────────────────────────────────────────────────────

/** A ctnetlink socket bound to one namespace; reuse it for many operations, then close(). */
export class ConntrackSocket {
  private constructor(private readonly sock: NetlinkSocket) {}

  static open(opts: ConntrackOptions = {}): ConntrackSocket {
    const make = (): NetlinkSocket => NetlinkSocket.open(NETLINK_NETFILTER);
    return new ConntrackSocket(opts.netns !== undefined ? runInNetns(opts.netns, make) : make());
  }

  /** Entries matching the filter (a dump of the namespace's table, filtered here). */
  list(filter: ConntrackFilter = {}): ConntrackEntry[] {
    const c = compile(filter);
    const family = c.family === 'ipv4' ? AF_INET : c.family === 'ipv6' ? AF_INET6 : AF_UNSPEC;
    const msgs = this.sock.dump({
      type: msgType(IPCTNL_MSG_CT_GET),
      body: nfgenmsg(family).finish(),
      operation: 'IPCTNL_MSG_CT_GET (conntrack dump)',
    });
    const out: ConntrackEntry[] = [];
    for (const m of msgs) {
      const e = decodeEntry(m);
      if (e && matches(c, e)) out.push(e);
    }
    return out;
  }

  /**
   * Delete the matching entries; returns how many were deleted (0 = nothing matched, not an error).
   * An empty filter would delete every entry of the namespace: it needs `all: true`.
   */
  delete(filter: ConntrackFilter, opts: { all?: boolean } = {}): number {
    const c = compile(filter);
    if (c.empty && !opts.all) {
      throw new NftValidationError('E_INVALID_VALUE', 'conntrack filter', filter, 'empty filter: pass { all: true } to delete every entry');
    }
    return this.deleteEntries(this.list(filter));
  }

  /**
   * Delete the entries matching ANY of the filters, from one dump of the table (one round of netlink
   * messages however many filters: what a NAT change with many removed mappings needs). Empty filters are
   * refused; no filters delete nothing.
   */
  deleteAny(filters: ConntrackFilter[]): number {
    return this.deleteEntries(this.findAny(filters));
  }

  /** The entries matching ANY of the filters, from one dump (see deleteAny). */
  findAny(filters: ConntrackFilter[]): ConntrackEntry[] {
    if (filters.length === 0) return [];
    const compiled = filters.map((f) => {
      const c = compile(f);
      if (c.empty) throw new NftValidationError('E_INVALID_VALUE', 'conntrack filter', f, 'empty filter in deleteAny');
      return c;
    });
    // index the filters by exact original destination (the common case), the rest are tried on every entry
    const byDst = new Map<string, Compiled[]>();
    const general: Compiled[] = [];
    compiled.forEach((c, i) => {
      const d = filters[i].origDst;
      const p = d !== undefined ? parseAddress('origDst', d) : undefined;
      if (p?.kind === 'addr') {
        const key = bigIntToIp(ipToBigInt(p.addr), p.version);
        byDst.set(key, [...(byDst.get(key) ?? []), c]);
      } else general.push(c);
    });
    const msgs = this.sock.dump({ type: msgType(IPCTNL_MSG_CT_GET), body: nfgenmsg(AF_UNSPEC).finish(), operation: 'IPCTNL_MSG_CT_GET (conntrack dump)' });
    const victims: ConntrackEntry[] = [];
    for (const m of msgs) {
      const e = decodeEntry(m);
      if (!e) continue;
      const cands = byDst.get(e.orig.dst);
      if ((cands && cands.some((c) => matches(c, e))) || general.some((c) => matches(c, e))) victims.push(e);
    }
    return victims;
  }

  /**
   * End these flows: delete the entries, then — after each pause of `sweepsMs` — their mirrors (mirrorEntry). A
   * deleted flow can come back the other way round: the far end answers a packet that reached it just before the
   * deletion, finds no entry and starts a new one in the opposite direction, whose reply direction is exactly the
   * deleted flow, so its packets pass as "established" again (seen with a UDP flow after a firewall tightening:
   * ~1 run in 6 under load). Once the mirror is gone too, the flow's packets are new and meet the rules.
   * Returns how many of `victims` were deleted. `sweep`: the victims whose mirrors are swept (default all; a
   * caller that guarded some flows' reverses otherwise, lib/router/nat-flow-cleanup.ts, sweeps only the rest).
   */
  async deleteFlows(victims: ConntrackEntry[], sweepsMs: readonly number[] = MIRROR_SWEEPS_MS, sweep: readonly ConntrackEntry[] = victims): Promise<number> {
    const deleted = this.deleteEntries(victims);
    const mirrors = sweep.filter((e) => e.orig.srcPort !== undefined && e.orig.dstPort !== undefined).map(mirrorEntry);
    if (mirrors.length) {
      for (const ms of sweepsMs) {
        await sleep(ms);
        this.deleteEntries(mirrors);
      }
    }
    return deleted;
  }

  /** Delete these entries (as listed: full original tuple and id); returns how many went (gone ones are not counted). */
  deleteEntries(victims: ConntrackEntry[]): number {
    return this.each(victims, (e) => ({ type: msgType(IPCTNL_MSG_CT_DELETE), body: encodeDelete(e), operation: `IPCTNL_MSG_CT_DELETE ${e.family} ${describe(e.orig)}` }));
  }

  /**
   * Set the bits `bits` of these entries' marks, keeping their other bits (`set: false` clears them), in one batch;
   * returns how many entries were changed (gone ones are not counted). An update, never a creation: the message
   * carries no NLM_F_CREATE, so an entry that expired meanwhile is ENOENT, not a new entry.
   */
  markEntries(entries: ConntrackEntry[], bits: number, set = true): number {
    return this.each(entries, (e) => ({ type: msgType(IPCTNL_MSG_CT_NEW), body: encodeMarkUpdate(e, set ? bits : 0, bits), operation: `IPCTNL_MSG_CT_NEW (mark) ${e.family} ${describe(e.orig)}` }));
  }

  /** One acknowledged request per entry, in one batch; how many succeeded (ENOENT: the entry is gone, not an error). */
  private each(entries: ConntrackEntry[], request: (e: ConntrackEntry) => { type: number; body: Buffer; operation: string }): number {
    if (entries.length === 0) return 0;
    const results = this.sock.batch(entries.map((e) => ({ ...request(e), flags: NLM_F_ACK })));
    let done = 0;
    let firstError: NetlinkError | undefined;
    for (const r of results) {
      if (!r.error) done++;
      else if (r.error.code !== 'ENOENT') firstError ??= r.error; // ENOENT: expired or deleted meanwhile
    }
    if (firstError) throw firstError;
    return done;
  }

  close(): void {
    this.sock.close();
  }
}

/** List conntrack entries of a namespace matching `filter`. */
export function listConntrack(filter: ConntrackFilter = {}, opts: ConntrackOptions = {}): ConntrackEntry[] {
  const s = ConntrackSocket.open(opts);
  try {
    return s.list(filter);
  } finally {
    s.close();
  }
}

/** Delete the conntrack entries of a namespace matching any of `filters` (one dump); returns the number deleted. */
export function deleteConntrackAny(filters: ConntrackFilter[], opts: ConntrackOptions = {}): number {
  if (filters.length === 0) return 0;
  const s = ConntrackSocket.open(opts);
  try {
    return s.deleteAny(filters);
  } finally {
    s.close();
  }
}

/**
 * Delete the conntrack entries of a namespace matching `filter`; returns the number deleted
 * ("nothing matched" = 0, success).
 */
export function deleteConntrack(filter: ConntrackFilter, opts: ConntrackOptions & { all?: boolean } = {}): number {
  const s = ConntrackSocket.open(opts);
  try {
    return s.delete(filter, { all: opts.all });
  } finally {
    s.close();
  }
}
