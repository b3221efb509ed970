/**
 * Typed nftables objects, modelled on kubernetes-sigs/knftables: Table, Chain, Rule, Set, Map, Element,
 * Counter. Objects are plain data; a Transaction renders them (with a verb) into libnftables JSON
 * commands, validating names, types and the verb/object combination.
 *
 * Every object belongs to the transaction's table unless it names another one in `table`.
 */
import { NftValidationError } from './errors.js';
import type {
  ChainPolicy, ChainType, Expr, Hook, JsonChain, JsonCommand, JsonCounter, JsonElem, JsonElement, JsonMap,
  JsonObject, JsonRule, JsonSet, JsonTable, KeyType, SetFlag, Stmt, TableRef, ValueType, Verb, Verdict,
} from './json.js';
import { CHAIN_TYPE_HOOKS, resolvePriority, type Priority } from './priorities.js';
import { checkComment, checkFamily, checkName, checkUint } from './validate.js';
import { isVerdict, value, type ValueInput } from './values.js';

interface InTable {
  /** Table this object lives in; defaults to the transaction's table. */
  table?: TableRef;
}

/** A table (the transaction's own unless it names another), with an optional comment. */
export interface Table {
  kind: 'table';
  /** Defaults to the transaction's table. */
  family?: TableRef['family'];
  name?: string;
  comment?: string;
}

/** A chain: regular, or a base chain with type, hook, priority and policy. */
export interface Chain extends InTable {
  kind: 'chain';
  name: string;
  /** Base chains only: type, hook and priority go together. */
  type?: ChainType;
  hook?: Hook;
  /** A number, or `{ base: 'dstnat', offset: -10 }` (see priorities.ts). */
  priority?: Priority;
  policy?: ChainPolicy;
  /** netdev `ingress` chains: the device the hook is on. */
  device?: string;
}

/** A rule: its chain and statements; a handle or index to act on or position by. */
export interface Rule extends InTable {
  kind: 'rule';
  chain: string;
  /** Statements (build them with expr.ts). Required except for delete. */
  expr?: Stmt[];
  /** replace/delete: the rule to act on; add/insert: the rule to append after / insert before. */
  handle?: number;
  /** add/insert: position by index (alternative to handle). */
  index?: number;
  comment?: string;
}

/** A named set: key type (or concatenation), flags, initial elements. */
export interface NftSet extends InTable {
  kind: 'set';
  name: string;
  /** Key type, or several for a concatenation (`ipv4_addr . inet_service`). */
  type: KeyType | KeyType[];
  flags?: SetFlag[];
  /** Initial elements (add/create only). */
  elements?: ElementItem[];
  comment?: string;
  /** Maximum number of elements. */
  size?: number;
  /** Default lifetime of an element in seconds (needs the `timeout` flag): how long a learned entry lives. */
  timeout?: number;
}

/** A named map: key and value types (`verdict` for a verdict map), flags, initial entries. */
export interface NftMap extends InTable {
  kind: 'map';
  name: string;
  /** Key type (or concatenation). */
  key: KeyType | KeyType[];
  /** Value type; 'verdict' makes a verdict map (vmap). */
  value: ValueType;
  flags?: SetFlag[];
  /** Initial entries (add/create only); each needs a value. */
  elements?: ElementItem[];
  comment?: string;
  size?: number;
}

/** One set element or map entry. */
export interface ElementItem {
  key: ValueInput;
  /** Maps: the value (an address, port, … or a verdict for vmaps). */
  value?: ValueInput | Verdict;
  comment?: string;
  /** Seconds this element lives, instead of its set's default (the set needs the `timeout` flag; ≥ 1). */
  timeout?: number;
}

/** Elements of a set or map, added/created/deleted as one command. */
export interface Element extends InTable {
  kind: 'element';
  /** Set or map name. */
  set: string;
  items: ElementItem[];
}

/** A named counter object (referenced from rules with counter('name')). */
export interface Counter extends InTable {
  kind: 'counter';
  name: string;
  comment?: string;
}

/** Anything a transaction can add, create, insert, replace, flush or delete. */
export type NftObject = Table | Chain | Rule | NftSet | NftMap | Element | Counter;

// ── Builders ───────────────────────────────────────────────────────────────────────────────────────

/** The transaction's table (or another, with `family`/`name`). */
export const table = (opts: Omit<Table, 'kind'> = {}): Table => ({ kind: 'table', ...opts });
/** A regular chain (jump/goto target). */
export const chain = (name: string, opts: Omit<Chain, 'kind' | 'name'> = {}): Chain => ({ kind: 'chain', name, ...opts });
/** A base chain attached to a hook. */
export const baseChain = (
  name: string,
  opts: { type: ChainType; hook: Hook; priority: Priority; policy?: ChainPolicy; device?: string; table?: TableRef },
): Chain => ({ kind: 'chain', name, ...opts });
/** A rule appended to `chainName` made of `expr` (statements of expr.ts). */
export const rule = (chainName: string, expr: Stmt[], opts: Omit<Rule, 'kind' | 'chain' | 'expr'> = {}): Rule =>
  ({ kind: 'rule', chain: chainName, expr, ...opts });
/** A named set of `type` (an array of types for a concatenation). */
export const set = (name: string, type: KeyType | KeyType[], opts: Omit<NftSet, 'kind' | 'name' | 'type'> = {}): NftSet =>
  ({ kind: 'set', name, type, ...opts });
/** A named map from `key` to `valueType`. */
export const map = (name: string, key: KeyType | KeyType[], valueType: ValueType, opts: Omit<NftMap, 'kind' | 'name' | 'key' | 'value'> = {}): NftMap =>
  ({ kind: 'map', name, key, value: valueType, ...opts });
/** A verdict map: key → accept/drop/jump… */
export const verdictMap = (name: string, key: KeyType | KeyType[], opts: Omit<NftMap, 'kind' | 'name' | 'key' | 'value'> = {}): NftMap =>
  map(name, key, 'verdict', opts);
/** Several elements of a set or map, as one command. */
export const elements = (setName: string, items: ElementItem[], opts: { table?: TableRef } = {}): Element =>
  ({ kind: 'element', set: setName, items, ...opts });
/** One element (sets) or entry (maps). */
export const element = (setName: string, key: ValueInput, val?: ValueInput | Verdict, opts: { comment?: string; table?: TableRef } = {}): Element => {
  const item: ElementItem = { key };
  if (val !== undefined) item.value = val;
  if (opts.comment !== undefined) item.comment = opts.comment;
  return { kind: 'element', set: setName, items: [item], ...(opts.table ? { table: opts.table } : {}) };
};
/** A named counter object (rules reference it with `counter(name)`). */
export const namedCounter = (name: string, opts: Omit<Counter, 'kind' | 'name'> = {}): Counter => ({ kind: 'counter', name, ...opts });

// ── Rendering ──────────────────────────────────────────────────────────────────────────────────────

const KEY_TYPES: readonly KeyType[] = [
  'ipv4_addr', 'ipv6_addr', 'inet_service', 'inet_proto', 'ifname', 'ether_addr', 'mark', 'nf_proto', 'ct_state',
  'icmp_type', 'icmpv6_type', 'iface_index',
];
const VALUE_TYPES: readonly ValueType[] = ['ipv4_addr', 'ipv6_addr', 'inet_service', 'mark', 'ifname', 'verdict'];
const SET_FLAGS: readonly SetFlag[] = ['constant', 'interval', 'timeout'];

/** Which verbs each object kind accepts (as libnftables does). */
export const VERBS_BY_KIND: Record<NftObject['kind'], readonly Verb[]> = {
  table: ['add', 'create', 'delete', 'flush'],
  chain: ['add', 'create', 'delete', 'flush'],
  rule: ['add', 'insert', 'replace', 'delete'],
  set: ['add', 'create', 'delete', 'flush'],
  map: ['add', 'create', 'delete', 'flush'],
  element: ['add', 'create', 'delete'],
  counter: ['add', 'create', 'delete'],
};

function tableOf(obj: { table?: TableRef }, defaults: TableRef): { family: TableRef['family']; table: string } {
  const t = obj.table ?? defaults;
  return { family: checkFamily(t.family), table: checkName('table name', t.name) };
}

function keyType(what: string, t: KeyType | KeyType[]): KeyType | KeyType[] {
  const one = (k: KeyType): KeyType => {
    if (!KEY_TYPES.includes(k)) throw new NftValidationError('E_INVALID_VALUE', what, k, `must be one of ${KEY_TYPES.join(', ')}`);
    return k;
  };
  if (Array.isArray(t)) {
    if (t.length < 2) throw new NftValidationError('E_INVALID_VALUE', what, t, 'a concatenation needs at least two types');
    return t.map(one);
  }
  return one(t);
}

function setFlags(flags: SetFlag[] | undefined): SetFlag[] | undefined {
  if (!flags || flags.length === 0) return undefined;
  for (const f of flags) {
    if (!SET_FLAGS.includes(f)) throw new NftValidationError('E_INVALID_VALUE', 'set flag', f, `must be one of ${SET_FLAGS.join(', ')}`);
  }
  return [...new Set(flags)];
}

/** Render one set element / map entry. `isMap` decides whether a value is required. */
export function renderElem(item: ElementItem, isMap: boolean | undefined, what: string): JsonElem {
  if (!item || typeof item !== 'object' || !('key' in item)) {
    throw new NftValidationError('E_INVALID_VALUE', what, item, 'an element needs a key');
  }
  let key: Expr = value(item.key, `${what} key`);
  if (item.comment !== undefined || item.timeout !== undefined) {
    key = {
      elem: {
        val: key, ...(item.comment !== undefined ? { comment: checkComment(item.comment) } : {}),
        // 0 would make the element permanent (the kernel's "no timeout")
        ...(item.timeout !== undefined ? { timeout: checkUint(`${what} timeout`, item.timeout, 86400 * 365, 1) } : {}),
      },
    };
  }
  if (item.value === undefined) {
    if (isMap) throw new NftValidationError('E_INVALID_VALUE', what, item, 'a map entry needs a value');
    return key;
  }
  if (isMap === false) throw new NftValidationError('E_INVALID_VALUE', what, item, 'a set element has no value');
  const v: Expr = isVerdict(item.value) ? item.value : value(item.value as ValueInput, `${what} value`);
  return [key, v];
}

function renderTable(verb: Verb, t: Table, d: TableRef): JsonTable {
  const out: JsonTable = { family: checkFamily(t.family ?? d.family), name: checkName('table name', t.name ?? d.name) };
  if (t.comment !== undefined && (verb === 'add' || verb === 'create')) out.comment = checkComment(t.comment);
  return out;
}

function renderChain(verb: Verb, c: Chain, d: TableRef): JsonChain {
  const out: JsonChain = { ...tableOf(c, d), name: checkName('chain name', c.name) };
  if (verb !== 'add' && verb !== 'create') return out;
  const base = c.type !== undefined || c.hook !== undefined || c.priority !== undefined;
  if (!base) {
    if (c.policy !== undefined) throw new NftValidationError('E_INVALID_CHAIN', 'chain', c.name, 'a policy needs a base chain (type, hook, priority)');
    return out;
  }
  if (c.type === undefined || c.hook === undefined || c.priority === undefined) {
    throw new NftValidationError('E_INVALID_CHAIN', 'chain', c.name, 'a base chain needs type, hook and priority');
  }
  const hooks = CHAIN_TYPE_HOOKS[c.type];
  if (!hooks) throw new NftValidationError('E_INVALID_CHAIN', 'chain type', c.type, 'must be filter, nat or route');
  if (out.family === 'bridge' && c.type !== 'filter') {
    throw new NftValidationError('E_INVALID_CHAIN', 'chain type', c.type, 'bridge tables hold filter chains only here');
  }
  if (!hooks.includes(c.hook)) {
    throw new NftValidationError('E_INVALID_CHAIN', 'chain hook', c.hook, `${c.type} chains attach to ${hooks.join(', ')}`);
  }
  // an ingress hook exists only in the netdev family, on one device
  if ((c.hook === 'ingress') !== (out.family === 'netdev')) {
    throw new NftValidationError('E_INVALID_CHAIN', 'chain hook', c.hook, 'the ingress hook is for netdev tables, and netdev tables have only it');
  }
  if (c.hook === 'ingress') {
    if (typeof c.device !== 'string' || !/^[A-Za-z0-9_.@:-]{1,15}$/.test(c.device)) {
      throw new NftValidationError('E_INVALID_CHAIN', 'chain device', c.device, 'an ingress chain needs its device name (1-15 characters)');
    }
    out.dev = c.device;
  } else if (c.device !== undefined) {
    throw new NftValidationError('E_INVALID_CHAIN', 'chain device', c.device, 'only ingress chains are bound to a device');
  }
  out.type = c.type;
  out.hook = c.hook;
  out.prio = resolvePriority(c.priority, out.family, c.hook);
  if (c.policy !== undefined) {
    if (c.policy !== 'accept' && c.policy !== 'drop') throw new NftValidationError('E_INVALID_CHAIN', 'chain policy', c.policy, 'accept or drop');
    out.policy = c.policy;
  }
  return out;
}

function renderRule(verb: Verb, r: Rule, d: TableRef): JsonRule {
  const out: JsonRule = { ...tableOf(r, d), chain: checkName('chain name', r.chain) };
  if (verb === 'replace' || verb === 'delete') {
    if (r.handle === undefined) throw new NftValidationError('E_INVALID_OBJECT', `${verb} rule`, r.chain, 'needs the rule handle');
  }
  if (r.handle !== undefined) out.handle = checkUint('rule handle', r.handle);
  if (r.index !== undefined) {
    if (verb !== 'add' && verb !== 'insert') throw new NftValidationError('E_INVALID_OBJECT', `${verb} rule`, r.index, 'index is only for add/insert');
    if (r.handle !== undefined) throw new NftValidationError('E_INVALID_OBJECT', `${verb} rule`, r.index, 'give a handle or an index, not both');
    out.index = checkUint('rule index', r.index);
  }
  if (verb === 'delete') return out;
  if (!Array.isArray(r.expr) || r.expr.length === 0) {
    throw new NftValidationError('E_INVALID_OBJECT', `${verb} rule`, r.chain, 'needs at least one statement');
  }
  out.expr = r.expr;
  if (r.comment !== undefined) out.comment = checkComment(r.comment);
  return out;
}

function renderSetLike(verb: Verb, s: NftSet | NftMap, d: TableRef): JsonSet | JsonMap {
  const isMap = s.kind === 'map';
  const what = isMap ? 'map' : 'set';
  const ident = { ...tableOf(s, d), name: checkName(`${what} name`, s.name) };
  if (verb !== 'add' && verb !== 'create') return ident as JsonSet;
  const out: JsonSet = { ...ident, type: keyType(`${what} key type`, isMap ? (s as NftMap).key : (s as NftSet).type) };
  if (isMap) {
    const vt = (s as NftMap).value;
    if (!VALUE_TYPES.includes(vt)) throw new NftValidationError('E_INVALID_VALUE', 'map value type', vt, `must be one of ${VALUE_TYPES.join(', ')}`);
    (out as unknown as JsonMap).map = vt;
  }
  const flags = setFlags(s.flags);
  if (flags) out.flags = flags;
  if (s.comment !== undefined) out.comment = checkComment(s.comment);
  if (s.size !== undefined) out.size = checkUint(`${what} size`, s.size);
  if (!isMap && (s as NftSet).timeout !== undefined) {
    if (!flags?.includes('timeout')) throw new NftValidationError('E_INVALID_VALUE', `${what} timeout`, s.name, 'needs the timeout flag');
    out.timeout = checkUint(`${what} timeout`, (s as NftSet).timeout, 86400 * 365);
  }
  if (s.elements?.length) out.elem = s.elements.map((e) => renderElem(e, isMap, `${what} ${s.name} element`));
  return out;
}

function renderElement(e: Element, d: TableRef): JsonElement {
  if (!Array.isArray(e.items) || e.items.length === 0) {
    throw new NftValidationError('E_INVALID_OBJECT', 'element', e.set, 'needs at least one item');
  }
  return {
    ...tableOf(e, d),
    name: checkName('set name', e.set),
    elem: e.items.map((i) => renderElem(i, undefined, `element of ${e.set}`)),
  };
}

function renderCounter(verb: Verb, c: Counter, d: TableRef): JsonCounter {
  const out: JsonCounter = { ...tableOf(c, d), name: checkName('counter name', c.name) };
  if (c.comment !== undefined && verb !== 'delete') out.comment = checkComment(c.comment);
  return out;
}

/** Render one (verb, object) pair into a libnftables JSON command. */
export function renderCommand(verb: Verb, obj: NftObject, defaults: TableRef): JsonCommand {
  if (!obj || typeof obj !== 'object' || !(obj.kind in VERBS_BY_KIND)) {
    throw new NftValidationError('E_INVALID_OBJECT', 'object', obj, 'unknown object kind');
  }
  if (!VERBS_BY_KIND[obj.kind].includes(verb)) {
    throw new NftValidationError('E_INVALID_VERB', `${verb} ${obj.kind}`, verb,
      `${obj.kind} accepts ${VERBS_BY_KIND[obj.kind].join(', ')}`);
  }
  let o: JsonObject;
  switch (obj.kind) {
    case 'table': o = { table: renderTable(verb, obj, defaults) }; break;
    case 'chain': o = { chain: renderChain(verb, obj, defaults) }; break;
    case 'rule': o = { rule: renderRule(verb, obj, defaults) }; break;
    case 'set': o = { set: renderSetLike(verb, obj, defaults) as JsonSet }; break;
    case 'map': o = { map: renderSetLike(verb, obj, defaults) as JsonMap }; break;
    case 'element': o = { element: renderElement(obj, defaults) }; break;
    case 'counter': o = { counter: renderCounter(verb, obj, defaults) }; break;
  }
  return { [verb]: o } as JsonCommand;
}
