/**
 * TypeScript shapes of the libnftables JSON schema (libnftables-json(5), json_schema_version 1), the
 * subset netns-router renders and reads back. These are wire types: build them with the DSL in expr.ts
 * and objects.ts rather than by hand.
 */

/** Address families netns-router manages (bridge/arp/netdev are out of scope). */
export type Family = 'inet' | 'ip' | 'ip6';

/** A table is named by its family and name. */
export interface TableRef {
  family: Family;
  name: string;
}

export type Hook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
export type ChainType = 'filter' | 'nat' | 'route';
export type ChainPolicy = 'accept' | 'drop';

/** Element/key types a set or map can hold (single) — concatenations are arrays of these. */
export type KeyType =
  | 'ipv4_addr' | 'ipv6_addr' | 'inet_service' | 'inet_proto' | 'ifname' | 'ether_addr' | 'mark'
  | 'nf_proto' | 'ct_state' | 'icmp_type' | 'icmpv6_type';
/** Map value types: a data type or `verdict` for verdict maps. */
export type ValueType = 'ipv4_addr' | 'ipv6_addr' | 'inet_service' | 'mark' | 'ifname' | 'verdict';
export type SetFlag = 'constant' | 'interval' | 'timeout';

// ── Expressions ────────────────────────────────────────────────────────────────────────────────────

export interface PayloadExpr { payload: { protocol: string; field: string } }
export interface MetaExpr { meta: { key: string } }
export interface CtExpr { ct: { key: string; dir?: 'original' | 'reply'; family?: 'ip' | 'ip6' } }
export interface PrefixExpr { prefix: { addr: string; len: number } }
export interface RangeExpr { range: [Primitive, Primitive] }
export interface ConcatExpr { concat: Expr[] }
/** Anonymous set `{ a, b }`. */
export interface SetExpr { set: Expr[] }
/** Map lookup `KEY map @name` (or an anonymous map given as [key, value] pairs). */
export interface MapExpr { map: { key: Expr; data: string | SetExpr } }
/** Element with options (comment) as it appears in set element lists. */
export interface ElemWrapped { elem: { val: Expr; comment?: string; timeout?: number } }

/** A typed non-address string (ifname(), symbol(), setRef() in values.ts); serialises to a string. */
export interface StringLike { toJSON(): string }
/** A literal: numbers are always safe; strings are addresses/symbols validated by the DSL. */
export type Primitive = string | number | StringLike;
export type Expr =
  | Primitive | PayloadExpr | MetaExpr | CtExpr | PrefixExpr | RangeExpr | ConcatExpr | SetExpr | MapExpr
  | ElemWrapped | Expr[] | Verdict;

// ── Statements ─────────────────────────────────────────────────────────────────────────────────────

export type MatchOp = '==' | '!=' | '<' | '>' | '<=' | '>=' | 'in';
export interface MatchStmt { match: { op: MatchOp; left: Expr; right: Expr } }
export interface CounterStmt { counter: null | string | { packets: number; bytes: number } }
export interface LogStmt { log: null | { prefix?: string; level?: string; group?: number } }
export interface LimitStmt { limit: { rate: number; per: string; burst?: number; rate_unit?: string; inv?: boolean } }
export interface NatArgs { family?: 'ip' | 'ip6'; addr?: Expr; port?: Expr; flags?: string[] }
export interface SnatStmt { snat: NatArgs }
export interface DnatStmt { dnat: NatArgs }
export interface MasqueradeStmt { masquerade: null | { port?: Expr; flags?: string[] } }
export interface RedirectStmt { redirect: null | { port?: Expr; flags?: string[] } }
export interface RejectStmt { reject: null | { type?: string; expr?: string } }
export interface VmapStmt { vmap: { key: Expr; data: string | SetExpr } }
export interface NotrackStmt { notrack: null }

export type Verdict =
  | { accept: null } | { drop: null } | { continue: null } | { return: null }
  | { jump: { target: string } } | { goto: { target: string } };

export type Stmt =
  | MatchStmt | CounterStmt | LogStmt | LimitStmt | SnatStmt | DnatStmt | MasqueradeStmt | RedirectStmt
  | RejectStmt | VmapStmt | NotrackStmt | Verdict;

// ── Objects as rendered into commands and as listed ────────────────────────────────────────────────

export interface JsonTable { family: Family; name: string; handle?: number; comment?: string }
export interface JsonChain {
  family: Family; table: string; name: string; handle?: number;
  type?: ChainType; hook?: Hook; prio?: number; policy?: ChainPolicy; dev?: string;
}
export interface JsonRule {
  family: Family; table: string; chain: string; handle?: number; index?: number;
  expr?: Stmt[]; comment?: string;
}
/** Set element list entries: a key (sets), or [key, value] (maps). */
export type JsonElem = Expr | [Expr, Expr];
export interface JsonSet {
  family: Family; table: string; name: string; handle?: number;
  type: KeyType | KeyType[]; flags?: SetFlag[]; elem?: JsonElem[];
  comment?: string; timeout?: number; size?: number; 'auto-merge'?: boolean; policy?: 'performance' | 'memory';
}
export interface JsonMap extends Omit<JsonSet, 'elem'> { map: ValueType; elem?: Array<[Expr, Expr]> }
export interface JsonElement { family: Family; table: string; name: string; elem: JsonElem[] }
export interface JsonCounter { family: Family; table: string; name: string; handle?: number; comment?: string; packets?: number; bytes?: number }

export type JsonObject =
  | { table: JsonTable } | { chain: JsonChain } | { rule: JsonRule } | { set: JsonSet } | { map: JsonMap }
  | { element: JsonElement } | { counter: JsonCounter };

export type Verb = 'add' | 'create' | 'insert' | 'replace' | 'flush' | 'delete';
export type JsonCommand =
  | { add: JsonObject } | { create: JsonObject } | { insert: JsonObject } | { replace: JsonObject }
  | { flush: JsonObject } | { delete: JsonObject } | { list: JsonObject };

export interface JsonMetainfo { metainfo: { json_schema_version: number; version?: string; release_name?: string } }
/** A libnftables JSON document. */
export interface NftDocument { nftables: Array<JsonMetainfo | JsonCommand | JsonObject> }

export const JSON_SCHEMA_VERSION = 1;
