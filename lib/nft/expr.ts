/**
 * Rule-building DSL: small functions returning libnftables JSON statements. Every input is validated
 * when the statement is built, so a bad address or port fails at the call site, not in the kernel.
 *
 *   rule('forward', [ct.state('established', 'related'), accept()])
 *   rule('prerouting', [dnat({ addr: mapLookup(concat(F.ipDaddr, F.tcpDport), 'fwd_addr'),
 *                              port: mapLookup(concat(F.ipDaddr, F.tcpDport), 'fwd_port') })])
 */
import { NftValidationError } from './errors.js';
import type {
  AndExpr, CounterStmt, CtCountStmt, CtExpr, JhashExpr, NumgenExpr, DnatStmt, Expr, FwdStmt, LimitStmt, LogStmt, MangleStmt, MapExpr, MasqueradeStmt,
  MatchOp, MatchStmt, MetaExpr, NatArgs, NotrackStmt, PayloadExpr, RawPayloadExpr, RedirectStmt, RejectStmt, SetExpr,
  SetStmt, SnatStmt, Verdict, VmapStmt,
} from './json.js';
import { checkIfname, checkName, checkPort, checkUint, parseAddress } from './validate.js';
import { type IpFamily } from '../util/ip.js';
import { Literal, isVerdict, setRef, value, type ValueInput } from './values.js';

// ── Field expressions (left-hand sides, map keys) ──────────────────────────────────────────────────

/** A header field expression: `payload('tcp', 'dport')` is `tcp dport`. */
export const payload = (protocol: string, field: string): PayloadExpr => ({ payload: { protocol, field } });
/** A meta expression: `metaKey('iifname')` is `meta iifname`. */
export const metaKey = (key: string): MetaExpr => ({ meta: { key } });
/** A conntrack expression: `ctKey('state')` is `ct state`; with `dir` `ct original …`/`ct reply …`. */
export const ctKey = (key: string, dir?: 'original' | 'reply'): CtExpr => (dir ? { ct: { key, dir } } : { ct: { key } });

/** Raw payload `@base,offset,len` (bits), e.g. the target address of a neighbour advertisement: rawPayload('th', 64, 128). */
export function rawPayload(base: 'll' | 'nh' | 'th', offset: number, len: number): RawPayloadExpr {
  if (base !== 'll' && base !== 'nh' && base !== 'th') throw new NftValidationError('E_INVALID_VALUE', 'payload base', base, 'll, nh or th');
  checkUint('payload offset', offset, 0xffff);
  checkUint('payload length', len, 128);
  if (len === 0) throw new NftValidationError('E_INVALID_VALUE', 'payload length', len, 'at least one bit');
  return { payload: { base, offset, len } };
}

/** `left & mask` (mask: a number, or rawValue()/symbol() of the field's type). */
export function bitAnd(left: Expr, mask: ValueInput): AndExpr {
  return { '&': [left, value(mask, 'mask')] };
}

/** Common fields, for map keys and generic matches. */
export const F = {
  ipSaddr: payload('ip', 'saddr'),
  ipDaddr: payload('ip', 'daddr'),
  ip6Saddr: payload('ip6', 'saddr'),
  ip6Daddr: payload('ip6', 'daddr'),
  tcpSport: payload('tcp', 'sport'),
  tcpDport: payload('tcp', 'dport'),
  udpSport: payload('udp', 'sport'),
  udpDport: payload('udp', 'dport'),
  /** Transport header port (any of tcp/udp/sctp/dccp); pair with a meta l4proto match. */
  thSport: payload('th', 'sport'),
  thDport: payload('th', 'dport'),
  iifname: metaKey('iifname'),
  oifname: metaKey('oifname'),
  /** Interface index (bridge family: the bridge port a frame came in on / goes out of). */
  iif: metaKey('iif'),
  oif: metaKey('oif'),
  etherSaddr: payload('ether', 'saddr'),
  etherDaddr: payload('ether', 'daddr'),
  l4proto: metaKey('l4proto'),
  nfproto: metaKey('nfproto'),
  mark: metaKey('mark'),
  ctState: ctKey('state'),
  ctStatus: ctKey('status'),
  ctMark: ctKey('mark'),
} as const;

/** Key expression made of several fields: `ip daddr . tcp dport`. */
export function concatKey(...parts: Expr[]): { concat: Expr[] } {
  if (parts.length < 2) throw new NftValidationError('E_INVALID_VALUE', 'concatenation', parts, 'needs at least two fields');
  return { concat: parts };
}

// ── Generic matches ────────────────────────────────────────────────────────────────────────────────

/** Equality operators of matches. */
export type EqOp = '==' | '!=';

function checkOp(op: unknown): EqOp {
  if (op !== '==' && op !== '!=') throw new NftValidationError('E_INVALID_VALUE', 'operator', op, 'must be == or !=');
  return op;
}

/** `left OP right`, right validated by value() (use symbol()/ifname() for non-address strings). */
export function match(left: Expr, right: ValueInput | SetExpr, op: MatchOp = '=='): MatchStmt {
  const r = typeof right === 'object' && right !== null && !Array.isArray(right) && 'set' in right
    ? right
    : value(right as ValueInput);
  return { match: { op, left, right: r } };
}

/** `left @set` (set or map lookup by key), or `left != @set`. */
export function lookup(left: Expr, setName: string, op: EqOp = '=='): MatchStmt {
  return { match: { op: checkOp(op), left, right: setRef(setName) as unknown as string } };
}

// ── Address and port matches ───────────────────────────────────────────────────────────────────────

/** Address match input: "1.2.3.4", "10.0.0.0/8", "a-b", an array of those (anonymous set), or setRef(). */
export type AddrMatch = string | string[] | Literal;

function addrRight(what: string, v: AddrMatch, version: IpFamily): Expr {
  if (v instanceof Literal) {
    if (v.kind !== 'ref') throw new NftValidationError('E_INVALID_ADDRESS', what, v.text, 'only setRef() is allowed here');
    return v;
  }
  if (Array.isArray(v)) {
    if (v.length === 0) throw new NftValidationError('E_INVALID_ADDRESS', what, v, 'empty address set');
    return { set: v.map((a) => value(a, what, version)) };
  }
  return value(v, what, version);
}

function addrMatcher(protocol: 'ip' | 'ip6', field: 'saddr' | 'daddr') {
  const version: IpFamily = protocol === 'ip' ? 4 : 6;
  return (v: AddrMatch, op: EqOp = '=='): MatchStmt => ({
    match: { op: checkOp(op), left: payload(protocol, field), right: addrRight(`${protocol} ${field}`, v, version) },
  });
}

/** IPv4 address matches: `ip.saddr('10.0.0.0/8')`, `ip.daddr(['192.0.2.1', '192.0.2.2'], '!=')`. */
export const ip = { saddr: addrMatcher('ip', 'saddr'), daddr: addrMatcher('ip', 'daddr') };
/** IPv6 address matches: `ip6.saddr('2001:db8::/32')`. */
export const ip6 = { saddr: addrMatcher('ip6', 'saddr'), daddr: addrMatcher('ip6', 'daddr') };

/** Port match input: a port, an array (anonymous set; may hold portRange()s), portRange(), or setRef(). */
export type PortMatch = number | Array<number | { range: [number, number] }> | { range: [number, number] } | Literal;

function portRight(what: string, v: PortMatch): Expr {
  if (typeof v === 'number') return checkPort(what, v);
  if (v instanceof Literal) {
    if (v.kind !== 'ref') throw new NftValidationError('E_INVALID_PORT', what, v.text, 'only setRef() is allowed here');
    return v;
  }
  const one = (p: number | { range: [number, number] }): Expr => {
    if (typeof p === 'number') return checkPort(what, p);
    if (p && Array.isArray(p.range) && p.range.length === 2) {
      const [a, b] = p.range;
      checkPort(what, a);
      checkPort(what, b);
      if (a > b) throw new NftValidationError('E_INVALID_PORT', what, p, 'range start is above its end');
      return { range: [a, b] };
    }
    throw new NftValidationError('E_INVALID_PORT', what, p, 'expected a port or portRange()');
  };
  if (Array.isArray(v)) {
    if (v.length === 0) throw new NftValidationError('E_INVALID_PORT', what, v, 'empty port set');
    return { set: v.map(one) };
  }
  return one(v);
}

function portMatcher(protocol: 'tcp' | 'udp' | 'th', field: 'sport' | 'dport') {
  return (v: PortMatch, op: EqOp = '=='): MatchStmt => ({
    match: { op: checkOp(op), left: payload(protocol, field), right: portRight(`${protocol} ${field}`, v) },
  });
}

/** TCP port matches: `tcp.dport(22)`, `tcp.dport([80, 443])`, `tcp.sport({ range: [1024, 65535] })`. */
export const tcp = { sport: portMatcher('tcp', 'sport'), dport: portMatcher('tcp', 'dport') };
/** UDP port matches: `udp.dport(53)`. */
export const udp = { sport: portMatcher('udp', 'sport'), dport: portMatcher('udp', 'dport') };
/** Transport-header ports (after a meta.l4proto match). */
export const th = { sport: portMatcher('th', 'sport'), dport: portMatcher('th', 'dport') };

// ── meta ───────────────────────────────────────────────────────────────────────────────────────────

const L4PROTOS = ['tcp', 'udp', 'icmp', 'icmpv6', 'sctp', 'dccp', 'udplite', 'gre', 'esp', 'ah', 'ipv6-icmp'] as const;
/** Layer-4 protocol names `meta.l4proto` takes. */
export type L4Proto = (typeof L4PROTOS)[number];

function l4Right(v: L4Proto | number): Expr {
  if (typeof v === 'number') return checkUint('l4proto', v, 255);
  if (!(L4PROTOS as readonly string[]).includes(v)) {
    throw new NftValidationError('E_INVALID_VALUE', 'l4proto', v, `must be a number or one of ${L4PROTOS.join(', ')}`);
  }
  return v;
}

function ifnameRight(what: string, v: string | string[] | Literal): Expr {
  if (v instanceof Literal) {
    if (v.kind === 'ref' || v.kind === 'ifname') return v;
    throw new NftValidationError('E_INVALID_IFNAME', what, v.text, 'expected a name, names or setRef()');
  }
  if (Array.isArray(v)) {
    if (v.length === 0) throw new NftValidationError('E_INVALID_IFNAME', what, v, 'empty set');
    return { set: v.map((n) => checkIfname(what, n)) };
  }
  return checkIfname(what, v);
}

/** Metadata matches: `meta.l4proto('tcp')`, `meta.iifname('eth0')`, `meta.oifname(…)`, `meta.nfproto('ipv4')`, `meta.mark(…)`. */
export const meta = {
  iifname: (v: string | string[] | Literal, op: EqOp = '=='): MatchStmt =>
    ({ match: { op: checkOp(op), left: F.iifname, right: ifnameRight('iifname', v) } }),
  oifname: (v: string | string[] | Literal, op: EqOp = '=='): MatchStmt =>
    ({ match: { op: checkOp(op), left: F.oifname, right: ifnameRight('oifname', v) } }),
  l4proto: (v: L4Proto | number | Array<L4Proto | number>, op: EqOp = '=='): MatchStmt => ({
    match: { op: checkOp(op), left: F.l4proto, right: Array.isArray(v) ? { set: v.map(l4Right) } : l4Right(v) },
  }),
  nfproto: (v: 'ipv4' | 'ipv6', op: EqOp = '=='): MatchStmt => {
    if (v !== 'ipv4' && v !== 'ipv6') throw new NftValidationError('E_INVALID_VALUE', 'nfproto', v, 'must be ipv4 or ipv6');
    return { match: { op: checkOp(op), left: F.nfproto, right: v } };
  },
  mark: (v: number, op: EqOp = '=='): MatchStmt =>
    ({ match: { op: checkOp(op), left: F.mark, right: checkUint('mark', v) } }),
};

// ── ct ─────────────────────────────────────────────────────────────────────────────────────────────

const CT_STATES = ['new', 'established', 'related', 'invalid', 'untracked'] as const;
/** Conntrack states `ct.state` takes. */
export type CtState = (typeof CT_STATES)[number];
const CT_STATUSES = ['expected', 'seen-reply', 'assured', 'confirmed', 'snat', 'dnat', 'dying'] as const;
/** Conntrack status bits `ct.status` takes. */
export type CtStatus = (typeof CT_STATUSES)[number];

function flagsMatch(left: Expr, what: string, allowed: readonly string[], flags: string[]): MatchStmt {
  if (flags.length === 0) throw new NftValidationError('E_INVALID_VALUE', what, flags, 'at least one flag');
  for (const f of flags) {
    if (!allowed.includes(f)) throw new NftValidationError('E_INVALID_VALUE', what, f, `must be one of ${allowed.join(', ')}`);
  }
  // `ct status dnat` is a bit test, not an equality: JSON says so with op "in" (as `nft -j` lists it); with "=="
  // a status of confirmed|seen-reply|dnat would not match. One flag: a string; several: an array.
  return { match: { op: 'in', left, right: flags.length === 1 ? flags[0] : flags } };
}

/** Conntrack matches and statements: `ct.state('established', 'related')`, `ct.status('dnat')`, `ct.markSet(…)`, `ct.count(…)`. */
export const ct = {
  /** `ct state established,related` */
  state: (...states: CtState[]): MatchStmt => flagsMatch(F.ctState, 'ct state', CT_STATES, states),
  /** `ct status dnat` */
  status: (...statuses: CtStatus[]): MatchStmt => flagsMatch(F.ctStatus, 'ct status', CT_STATUSES, statuses),
  /** `ct mark & MASK == VALUE` (MASK absent: `ct mark == VALUE`) */
  mark: (v: number, mask?: number): MatchStmt => ({
    match: { op: '==', left: mask === undefined ? F.ctMark : bitAnd(F.ctMark, checkUint('ct mark mask', mask, 0xffffffff)), right: checkUint('ct mark', v, 0xffffffff) },
  }),
  /** `ct mark set VALUE`: a constant, or an expression of the packet (numgen(), jhash()) */
  markSet: (v: number | NumgenExpr | JhashExpr): MangleStmt =>
    ({ mangle: { key: F.ctMark, value: typeof v === 'number' ? checkUint('ct mark', v, 0xffffffff) : v } }),
  /** `ct count over N` (`over: false`: `ct count N`, at most N): the connections that passed this statement */
  count: (n: number, opts: { over?: boolean } = {}): CtCountStmt =>
    ({ 'ct count': { val: checkUint('ct count', n, 0xffffffff), ...(opts.over === false ? {} : { inv: true }) } }),
};

/** `numgen inc mod N offset O`: the next of O..O+N-1 at each evaluation (round robin). */
export function numgen(mod: number, offset = 0): NumgenExpr {
  if (checkUint('numgen mod', mod, 0xffffffff) === 0) throw new NftValidationError('E_INVALID_VALUE', 'numgen mod', mod, 'at least 1');
  return { numgen: { mode: 'inc', mod, offset: checkUint('numgen offset', offset, 0xffffffff) } };
}

/** `jhash EXPR mod N seed S offset O`: O..O+N-1 by a hash of the packet field(s) `expr`. */
export function jhash(expr: Expr, mod: number, opts: { seed?: number; offset?: number } = {}): JhashExpr {
  if (checkUint('jhash mod', mod, 0xffffffff) === 0) throw new NftValidationError('E_INVALID_VALUE', 'jhash mod', mod, 'at least 1');
  return { jhash: { mod, seed: checkUint('jhash seed', opts.seed ?? 0, 0xffffffff), offset: checkUint('jhash offset', opts.offset ?? 0, 0xffffffff), expr } };
}

// ── icmp ───────────────────────────────────────────────────────────────────────────────────────────

const ICMP_TYPES = [
  'echo-reply', 'destination-unreachable', 'source-quench', 'redirect', 'echo-request', 'router-advertisement',
  'router-solicitation', 'time-exceeded', 'parameter-problem', 'timestamp-request', 'timestamp-reply',
  'info-request', 'info-reply', 'address-mask-request', 'address-mask-reply',
] as const;
const ICMPV6_TYPES = [
  'destination-unreachable', 'packet-too-big', 'time-exceeded', 'parameter-problem', 'echo-request', 'echo-reply',
  'mld-listener-query', 'mld-listener-report', 'mld-listener-done', 'nd-router-solicit', 'nd-router-advert',
  'nd-neighbor-solicit', 'nd-neighbor-advert', 'nd-redirect', 'router-renumbering', 'mld2-listener-report',
] as const;
/** ICMP type names `icmp.type` takes. */
export type IcmpType = (typeof ICMP_TYPES)[number];
/** ICMPv6 type names `icmpv6.type` takes. */
export type Icmpv6Type = (typeof ICMPV6_TYPES)[number];

function typeRight(what: string, allowed: readonly string[], v: string | number | Array<string | number>): Expr {
  const one = (t: string | number): Expr => {
    if (typeof t === 'number') return checkUint(what, t, 255);
    if (!allowed.includes(t)) throw new NftValidationError('E_INVALID_VALUE', what, t, 'unknown ICMP type');
    return t;
  };
  if (Array.isArray(v)) {
    if (v.length === 0) throw new NftValidationError('E_INVALID_VALUE', what, v, 'empty set');
    return { set: v.map(one) };
  }
  return one(v);
}

/** ICMP matches: `icmp.type('echo-request')`. */
export const icmp = {
  type: (v: IcmpType | number | Array<IcmpType | number>, op: EqOp = '=='): MatchStmt =>
    ({ match: { op: checkOp(op), left: payload('icmp', 'type'), right: typeRight('icmp type', ICMP_TYPES, v) } }),
  code: (v: number, op: EqOp = '=='): MatchStmt =>
    ({ match: { op: checkOp(op), left: payload('icmp', 'code'), right: checkUint('icmp code', v, 255) } }),
};
/** ICMPv6 matches: `icmpv6.type('nd-neighbor-solicit')`. */
export const icmpv6 = {
  type: (v: Icmpv6Type | number | Array<Icmpv6Type | number>, op: EqOp = '=='): MatchStmt =>
    ({ match: { op: checkOp(op), left: payload('icmpv6', 'type'), right: typeRight('icmpv6 type', ICMPV6_TYPES, v) } }),
  code: (v: number, op: EqOp = '=='): MatchStmt =>
    ({ match: { op: checkOp(op), left: payload('icmpv6', 'code'), right: checkUint('icmpv6 code', v, 255) } }),
};

// ── Non-terminal statements ────────────────────────────────────────────────────────────────────────

/** Anonymous counter, or a reference to a named counter object. */
export function counter(name?: string): CounterStmt {
  return { counter: name === undefined ? null : checkName('counter name', name) };
}

const LOG_LEVELS = ['emerg', 'alert', 'crit', 'err', 'warn', 'notice', 'info', 'debug', 'audit'] as const;
/** The `log` statement, with an optional prefix, level or group. */
export function log(opts: { prefix?: string; level?: (typeof LOG_LEVELS)[number]; group?: number } = {}): LogStmt {
  const o: { prefix?: string; level?: string; group?: number } = {};
  if (opts.prefix !== undefined) {
    if (typeof opts.prefix !== 'string' || Buffer.byteLength(opts.prefix) > 127 || /[\0\n"]/.test(opts.prefix)) {
      throw new NftValidationError('E_INVALID_VALUE', 'log prefix', opts.prefix, 'at most 127 bytes, no quotes/newlines');
    }
    o.prefix = opts.prefix;
  }
  if (opts.level !== undefined) {
    if (!LOG_LEVELS.includes(opts.level)) throw new NftValidationError('E_INVALID_VALUE', 'log level', opts.level, 'unknown level');
    o.level = opts.level;
  }
  if (opts.group !== undefined) o.group = checkUint('log group', opts.group, 65535);
  return { log: Object.keys(o).length ? o : null };
}

const PER = ['second', 'minute', 'hour', 'day', 'week'] as const;
/** `limit rate [over] N/per [burst B packets]` (packet rates), or bytes with unit 'bytes'. */
export function limit(opts: { rate: number; per: (typeof PER)[number]; burst?: number; unit?: 'packets' | 'bytes'; over?: boolean }): LimitStmt {
  const l: LimitStmt['limit'] = { rate: checkUint('limit rate', opts.rate), per: opts.per };
  if (!PER.includes(opts.per)) throw new NftValidationError('E_INVALID_VALUE', 'limit per', opts.per, `one of ${PER.join(', ')}`);
  if (opts.burst !== undefined) l.burst = checkUint('limit burst', opts.burst);
  if (opts.unit === 'bytes') l.rate_unit = 'bytes';
  if (opts.over) l.inv = true;
  return { limit: l };
}

/** The `notrack` statement. */
export function notrack(): NotrackStmt {
  return { notrack: null };
}

// ── Packet rewriting (netdev ingress) ──────────────────────────────────────────────────────────────

/** ARP header fields (`arp operation`, `arp saddr ip`, `arp daddr ether`, …). */
export const arp = {
  htype: payload('arp', 'htype'),
  ptype: payload('arp', 'ptype'),
  hlen: payload('arp', 'hlen'),
  plen: payload('arp', 'plen'),
  operation: payload('arp', 'operation'),
  saddrEther: payload('arp', 'saddr ether'),
  saddrIp: payload('arp', 'saddr ip'),
  daddrEther: payload('arp', 'daddr ether'),
  daddrIp: payload('arp', 'daddr ip'),
} as const;

/** Ethernet header fields (`ether saddr`, `ether daddr`). */
export const ether = { saddr: payload('ether', 'saddr'), daddr: payload('ether', 'daddr') } as const;

/** `KEY set VALUE`: a constant (validated like a match value) or another field of the packet. */
export function mangle(key: PayloadExpr | RawPayloadExpr, val: ValueInput | PayloadExpr | RawPayloadExpr): MangleStmt {
  const v = typeof val === 'object' && val !== null && !Array.isArray(val) && 'payload' in val ? val : value(val as ValueInput);
  return { mangle: { key, value: v } };
}

/**
 * netdev ingress: send the packet out of `dev` (the packet leaves the input path). A name is resolved by
 * libnftables in the namespace of the thread that runs the transaction; an interface index is taken as is.
 */
export function fwd(dev: string | number): FwdStmt {
  return { fwd: { dev: typeof dev === 'number' ? checkUint('fwd device index', dev) : checkIfname('fwd device', dev) } };
}

/**
 * `add @set { elem }` (only when absent) or `update @set { elem }` (also refreshes the element's timeout): the
 * packet path fills a dynamic set, e.g. the bridge port a MAC address was first seen on.
 */
export function setStmt(op: 'add' | 'update', elem: Expr, setName: string): SetStmt {
  if (op !== 'add' && op !== 'update') throw new NftValidationError('E_INVALID_VALUE', 'set statement', op, 'add or update');
  return { set: { op, elem, set: setRef(setName) as unknown as string } };
}

// ── NAT ────────────────────────────────────────────────────────────────────────────────────────────

/** Map lookup `KEY map @name` (NAT addresses/ports from a map). */
export function mapLookup(key: Expr, mapName: string): MapExpr {
  return { map: { key, data: setRef(mapName) as unknown as string } };
}

/** What snat/dnat take: an address (or range, or map lookup), a port (or range, or map lookup), family, flags. */
export interface NatOptions {
  /** "1.2.3.4", "1.2.3.4-1.2.3.9", or mapLookup(). */
  addr?: string | MapExpr;
  /** A port, [from, to] range, or mapLookup(). */
  port?: number | [number, number] | MapExpr;
  /** ip/ip6; inferred from a literal address or from the map key's ip/ip6 fields. */
  family?: 'ip' | 'ip6';
  flags?: Array<'random' | 'fully-random' | 'persistent'>;
}

function keyFamily(e: Expr): 'ip' | 'ip6' | undefined {
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return undefined;
  if ('payload' in e) {
    const pl = e.payload;
    return 'protocol' in pl && (pl.protocol === 'ip' || pl.protocol === 'ip6') ? pl.protocol : undefined;
  }
  if ('concat' in e) for (const p of e.concat) { const f = keyFamily(p); if (f) return f; }
  return undefined;
}

function natArgs(kind: string, o: NatOptions): NatArgs {
  const a: NatArgs = {};
  let family = o.family;
  if (o.addr !== undefined) {
    if (typeof o.addr === 'string') {
      const p = parseAddress(`${kind} address`, o.addr);
      if (p.kind === 'prefix') throw new NftValidationError('E_INVALID_ADDRESS', `${kind} address`, o.addr, 'use an address or a range');
      const fam = p.version === 4 ? 'ip' : 'ip6';
      if (family && family !== fam) throw new NftValidationError('E_INVALID_ADDRESS', `${kind} address`, o.addr, `not an ${family} address`);
      family = fam;
      a.addr = p.kind === 'addr' ? p.addr : { range: [p.from, p.to] };
    } else if (typeof o.addr === 'object' && o.addr && 'map' in o.addr) {
      family ??= keyFamily(o.addr.map.key);
      a.addr = o.addr;
    } else {
      throw new NftValidationError('E_INVALID_ADDRESS', `${kind} address`, o.addr, 'expected an address, a range or mapLookup()');
    }
    if (!family) throw new NftValidationError('E_INVALID_VALUE', `${kind} family`, o.addr, 'give family: ip or ip6');
    a.family = family;
  } else if (family) {
    a.family = family;
  }
  if (o.port !== undefined) {
    if (typeof o.port === 'number') a.port = checkPort(`${kind} port`, o.port);
    else if (Array.isArray(o.port)) {
      const [p1, p2] = o.port;
      checkPort(`${kind} port`, p1);
      checkPort(`${kind} port`, p2);
      if (p1 > p2) throw new NftValidationError('E_INVALID_PORT', `${kind} port range`, o.port, 'start is above end');
      a.port = { range: [p1, p2] };
    } else if (typeof o.port === 'object' && o.port && 'map' in o.port) a.port = o.port;
    else throw new NftValidationError('E_INVALID_PORT', `${kind} port`, o.port, 'expected a port, [from, to] or mapLookup()');
  }
  if (o.flags?.length) a.flags = [...o.flags];
  return a;
}

/** `snat ip to ADDR[:PORT]` */
export function snat(o: NatOptions): SnatStmt {
  if (o.addr === undefined) throw new NftValidationError('E_INVALID_VALUE', 'snat', o, 'needs an address');
  return { snat: natArgs('snat', o) };
}

/** `dnat ip to ADDR[:PORT]` */
export function dnat(o: NatOptions): DnatStmt {
  if (o.addr === undefined) throw new NftValidationError('E_INVALID_VALUE', 'dnat', o, 'needs an address');
  return { dnat: natArgs('dnat', o) };
}

/** `masquerade [to :PORT[-PORT]]` */
export function masquerade(o: { port?: number | [number, number]; flags?: NatOptions['flags'] } = {}): MasqueradeStmt {
  if (o.port === undefined && !o.flags?.length) return { masquerade: null };
  const a = natArgs('masquerade', o);
  const m: { port?: Expr; flags?: string[] } = {};
  if (a.port !== undefined) m.port = a.port;
  if (a.flags) m.flags = a.flags;
  return { masquerade: m };
}

/** `redirect [to :PORT]` */
export function redirect(o: { port?: number | [number, number] } = {}): RedirectStmt {
  if (o.port === undefined) return { redirect: null };
  return { redirect: { port: natArgs('redirect', o).port as Expr } };
}

// ── Verdicts ───────────────────────────────────────────────────────────────────────────────────────

/** The `accept` verdict. */
export const accept = (): Verdict => ({ accept: null });
/** The `drop` verdict. */
export const drop = (): Verdict => ({ drop: null });
/** `return` (a reserved word in JS). */
export const ret = (): Verdict => ({ return: null });
/** The `jump <chain>` verdict. */
export const jump = (chain: string): Verdict => ({ jump: { target: checkName('jump target', chain) } });
/** The `goto <chain>` verdict. */
export const goto = (chain: string): Verdict => ({ goto: { target: checkName('goto target', chain) } });

/** How `reject` answers: a TCP reset or an ICMP/ICMPX/ICMPv6 code. */
export type RejectWith =
  | { tcpReset: true }
  | { icmpx: 'port-unreachable' | 'admin-prohibited' | 'no-route' | 'host-unreachable' }
  | { icmp: 'net-unreachable' | 'host-unreachable' | 'prot-unreachable' | 'port-unreachable' | 'net-prohibited' | 'host-prohibited' | 'admin-prohibited' }
  | { icmpv6: 'no-route' | 'admin-prohibited' | 'addr-unreachable' | 'port-unreachable' | 'policy-fail' | 'reject-route' };

/** `reject [with tcp reset | icmpx …]` */
export function reject(w?: RejectWith): RejectStmt {
  if (!w) return { reject: null };
  if ('tcpReset' in w) return { reject: { type: 'tcp reset' } };
  if ('icmpx' in w) return { reject: { type: 'icmpx', expr: w.icmpx } };
  if ('icmp' in w) return { reject: { type: 'icmp', expr: w.icmp } };
  if ('icmpv6' in w) return { reject: { type: 'icmpv6', expr: w.icmpv6 } };
  throw new NftValidationError('E_INVALID_VALUE', 'reject', w, 'unknown reject type');
}

/** `KEY vmap @name` or an inline verdict map `KEY vmap { k : verdict, … }`. */
export function vmap(key: Expr, data: string | Array<[ValueInput, Verdict]>): VmapStmt {
  if (typeof data === 'string') return { vmap: { key, data: setRef(data) as unknown as string } };
  if (!Array.isArray(data) || data.length === 0) throw new NftValidationError('E_INVALID_VALUE', 'vmap', data, 'needs entries');
  return {
    vmap: {
      key,
      data: {
        set: data.map(([k, v]) => {
          if (!isVerdict(v)) throw new NftValidationError('E_INVALID_VALUE', 'vmap verdict', v, 'not a verdict');
          return [value(k, 'vmap key'), v] as unknown as Expr;
        }),
      },
    },
  };
}
