/**
 * TypeScript shapes of the libnftables JSON schema (libnftables-json(5), json_schema_version 1), the
 * subset netns-router renders and reads back. These are wire types: build them with the DSL in expr.ts
 * and objects.ts rather than by hand.
 */

/**
 * Address families netns-router manages: inet/ip/ip6 (the router table), netdev for an ingress hook on one
 * device (the ARP answers of lib/router/arp-responder.ts), bridge (the guest-segment filter on the host's
 * bridges, lib/router/vmfilter). arp is out of scope.
 */
export type Family = 'inet' | 'ip' | 'ip6' | 'netdev' | 'bridge';

/** A table is named by its family and name. */
export interface TableRef {
  family: Family;
  name: string;
}

/** A netfilter hook a base chain attaches to. */
export type Hook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting' | 'ingress';
/** A base chain's type. */
export type ChainType = 'filter' | 'nat' | 'route';
/** A base chain's policy. */
export type ChainPolicy = 'accept' | 'drop';

/** Element/key types a set or map can hold (single) — concatenations are arrays of these. */
export type KeyType =
  | 'ipv4_addr' | 'ipv6_addr' | 'inet_service' | 'inet_proto' | 'ifname' | 'ether_addr' | 'mark'
  | 'nf_proto' | 'ct_state' | 'icmp_type' | 'icmpv6_type' | 'iface_index';
/** Map value types: a data type or `verdict` for verdict maps. */
export type ValueType = 'ipv4_addr' | 'ipv6_addr' | 'inet_service' | 'mark' | 'ifname' | 'verdict';
/**
 * Flags of a set or map (`interval` for prefixes and ranges). No `dynamic` here: nft 1.0.6's JSON parser
 * refuses it, and marks a set dynamic by itself when a rule of the same transaction fills it from the packet
 * path (setStmt in expr.ts) — create such a set with its users.
 */
export type SetFlag = 'constant' | 'interval' | 'timeout';

// ── Expressions ────────────────────────────────────────────────────────────────────────────────────

/** Wire expression: a header field (`ip saddr`, `tcp dport`). */
export interface PayloadExpr { payload: { protocol: string; field: string } }
/** Raw payload `@th,64,128`: `len` bits at bit `offset` of the link-layer (`ll`), network (`nh`) or transport (`th`) header. */
export interface RawPayloadExpr { payload: { base: 'll' | 'nh' | 'th'; offset: number; len: number } }
/** Bitwise and `left & mask`. */
export interface AndExpr { '&': [Expr, Expr] }
/** Wire expression: packet metadata (`meta l4proto`, `iifname`). */
export interface MetaExpr { meta: { key: string } }
/** Wire expression: a conntrack key (`ct state`). */
export interface CtExpr { ct: { key: string; dir?: 'original' | 'reply'; family?: 'ip' | 'ip6' } }
/** Wire expression: an address prefix. */
export interface PrefixExpr { prefix: { addr: string; len: number } }
/** Wire expression: an inclusive range. */
export interface RangeExpr { range: [Primitive, Primitive] }
/** Wire expression: a number generator, `numgen inc mod N offset O` (each evaluation the next of O..O+N-1). */
export interface NumgenExpr { numgen: { mode: 'inc' | 'random'; mod: number; offset?: number } }
/** Wire expression: `jhash EXPR mod N seed S offset O` (a hash of a packet field, O..O+N-1). */
export interface JhashExpr { jhash: { mod: number; seed?: number; offset?: number; expr: Expr } }
/** Wire expression: a concatenation (`ip daddr . tcp dport`). */
export interface ConcatExpr { concat: Expr[] }
/** Anonymous set `{ a, b }`. */
export interface SetExpr { set: Expr[] }
/** Map lookup `KEY map @name` (or an anonymous map given as [key, value] pairs). */
export interface MapExpr { map: { key: Expr; data: string | SetExpr } }
/** An element with its comment or lifetime; listed, also `expires`: the seconds it has left. */
export interface ElemWrapped { elem: { val: Expr; comment?: string; timeout?: number; expires?: number } }

/** A typed non-address string (ifname(), symbol(), setRef() in values.ts); serialises to a string. */
export interface StringLike { toJSON(): string }
/** A literal: numbers are always safe; strings are addresses/symbols validated by the DSL. */
export type Primitive = string | number | StringLike;
/** Any wire expression. */
export type Expr =
  | Primitive | PayloadExpr | RawPayloadExpr | AndExpr | MetaExpr | CtExpr | PrefixExpr | RangeExpr | ConcatExpr
  | SetExpr | MapExpr | ElemWrapped | NumgenExpr | JhashExpr | Expr[] | Verdict;

// ── Statements ─────────────────────────────────────────────────────────────────────────────────────

/** A match statement's operator. */
export type MatchOp = '==' | '!=' | '<' | '>' | '<=' | '>=' | 'in';
/** Wire statement: `left op right`. */
export interface MatchStmt { match: { op: MatchOp; left: Expr; right: Expr } }
/** Wire statement: an anonymous counter, or a named counter by name. */
export interface CounterStmt { counter: null | string | { packets: number; bytes: number } }
/** Wire statement: log. */
export interface LogStmt { log: null | { prefix?: string; level?: string; group?: number } }
/** Wire statement: a rate limit. */
export interface LimitStmt { limit: { rate: number; per: string; burst?: number; rate_unit?: string; inv?: boolean } }
/** Arguments of snat/dnat: family, address, port, flags. */
export interface NatArgs { family?: 'ip' | 'ip6'; addr?: Expr; port?: Expr; flags?: string[] }
/** Wire statement: source NAT. */
export interface SnatStmt { snat: NatArgs }
/** Wire statement: destination NAT. */
export interface DnatStmt { dnat: NatArgs }
/** Wire statement: masquerade. */
export interface MasqueradeStmt { masquerade: null | { port?: Expr; flags?: string[] } }
/** Wire statement: redirect to a local port. */
export interface RedirectStmt { redirect: null | { port?: Expr; flags?: string[] } }
/** Wire statement: reject. */
export interface RejectStmt { reject: null | { type?: string; expr?: string } }
/** Wire statement: a verdict map lookup. */
export interface VmapStmt { vmap: { key: Expr; data: string | SetExpr } }
/** Wire statement: notrack. */
export interface NotrackStmt { notrack: null }
/** Payload (or conntrack key) mangling: `KEY set VALUE` (the value may be another field of the packet). */
export interface MangleStmt { mangle: { key: PayloadExpr | RawPayloadExpr | CtExpr; value: Expr } }
/** `ct count [over] N`: matches while the connections that passed it number at most N (`inv`: more than N). */
export interface CtCountStmt { 'ct count': { val: number; inv?: boolean } }
/** netdev ingress: send the packet out of `dev` (it is stolen from the input path). */
export interface FwdStmt { fwd: { dev: string | number } }
/** `add @set { elem }` / `update @set { elem }` from the packet path (a dynamic set; update refreshes the timeout). */
export interface SetStmt { set: { op: 'add' | 'update'; elem: Expr; set: string } }

/** Wire verdict: accept, drop, continue, return, jump, goto. */
export type Verdict =
  | { accept: null } | { drop: null } | { continue: null } | { return: null }
  | { jump: { target: string } } | { goto: { target: string } };

/** Any wire statement or verdict. */
export type Stmt =
  | MatchStmt | CounterStmt | LogStmt | LimitStmt | SnatStmt | DnatStmt | MasqueradeStmt | RedirectStmt
  | RejectStmt | VmapStmt | NotrackStmt | MangleStmt | CtCountStmt | FwdStmt | SetStmt | Verdict;

// ── Objects as rendered into commands and as listed ────────────────────────────────────────────────

/** Wire object: a table. */
export interface JsonTable { family: Family; name: string; handle?: number; comment?: string }
/** Wire object: a chain (a base chain with type, hook, priority and policy). */
export interface JsonChain {
  family: Family; table: string; name: string; handle?: number;
  type?: ChainType; hook?: Hook; prio?: number; policy?: ChainPolicy; dev?: string;
}
/** Wire object: a rule. */
export interface JsonRule {
  family: Family; table: string; chain: string; handle?: number; index?: number;
  expr?: Stmt[]; comment?: string;
}
/** Set element list entries: a key (sets), or [key, value] (maps). */
export type JsonElem = Expr | [Expr, Expr];
/** Wire object: a set. */
export interface JsonSet {
  family: Family; table: string; name: string; handle?: number;
  type: KeyType | KeyType[]; flags?: SetFlag[]; elem?: JsonElem[];
  /** Default element lifetime in seconds (sets with the timeout flag). */
  comment?: string; timeout?: number; size?: number; 'auto-merge'?: boolean; policy?: 'performance' | 'memory';
}
/** Wire object: a map (a verdict map when `map` is `verdict`). */
export interface JsonMap extends Omit<JsonSet, 'elem'> { map: ValueType; elem?: Array<[Expr, Expr]> }
/** Wire object: elements of a set or map. */
export interface JsonElement { family: Family; table: string; name: string; elem: JsonElem[] }
/** Wire object: a named counter. */
export interface JsonCounter { family: Family; table: string; name: string; handle?: number; comment?: string; packets?: number; bytes?: number }

/** Any wire object (as listings return them). */
export type JsonObject =
  | { table: JsonTable } | { chain: JsonChain } | { rule: JsonRule } | { set: JsonSet } | { map: JsonMap }
  | { element: JsonElement } | { counter: JsonCounter };

/** What a transaction does with an object. */
export type Verb = 'add' | 'create' | 'insert' | 'replace' | 'flush' | 'delete';
/** One command of a libnftables document: a verb and its object. */
export type JsonCommand =
  | { add: JsonObject } | { create: JsonObject } | { insert: JsonObject } | { replace: JsonObject }
  | { flush: JsonObject } | { delete: JsonObject } | { list: JsonObject };

/** The metainfo object heading a libnftables document. */
export interface JsonMetainfo { metainfo: { json_schema_version: number; version?: string; release_name?: string } }
/** A libnftables JSON document. */
export interface NftDocument { nftables: Array<JsonMetainfo | JsonCommand | JsonObject> }

/** The libnftables JSON schema version netns-router writes. */
export const JSON_SCHEMA_VERSION = 1;
