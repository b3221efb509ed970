/**
 * Read-back: parse `nft -j list table …` / `list set …` output into typed pieces, and normalise
 * listings for comparison (handles and counter values differ between runs; rules do not round-trip
 * textually, so compare names, comments and elements rather than rule bodies).
 */
import { NftError } from './errors.js';
import type { JsonChain, JsonCounter, JsonElem, JsonMap, JsonObject, JsonRule, JsonSet, JsonTable, KeyType, TableRef } from './json.js';
import type { ElementItem } from './objects.js';
import { etherAddr, ifname, type ValueInput } from './values.js';

/** A table as listed: its chains, rules, sets, maps and counters. */
export interface ListedTable {
  table: JsonTable;
  chains: JsonChain[];
  rules: JsonRule[];
  sets: JsonSet[];
  maps: JsonMap[];
  counters: JsonCounter[];
}

/** A set or map as listed, with its elements. */
export interface ListedSet {
  kind: 'set' | 'map';
  /** The set/map header as listed (type, flags…), without its elements. */
  info: Omit<JsonSet, 'elem'> | Omit<JsonMap, 'elem'>;
  /** Elements: keys for sets, [key, value] pairs for maps. */
  elements: JsonElem[];
}

/** Split a listing document into its objects (metainfo dropped). */
export function parseListing(text: string, executor: string, operation: string): JsonObject[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new NftError({ code: 'E_NFT_PARSE', stderr: `unparsable listing: ${text.slice(0, 200)}`, executor, operation });
  }
  const items = (doc as { nftables?: unknown }).nftables;
  if (!Array.isArray(items)) {
    throw new NftError({ code: 'E_NFT_PARSE', stderr: `listing without "nftables" array: ${text.slice(0, 200)}`, executor, operation });
  }
  return items.filter((i) => i && typeof i === 'object' && !('metainfo' in i)) as JsonObject[];
}

/** A table's listing (libnftables JSON objects) as a ListedTable. */
export function toListedTable(objs: JsonObject[], ref: TableRef, executor: string): ListedTable {
  const out: Partial<ListedTable> & Omit<ListedTable, 'table'> = { chains: [], rules: [], sets: [], maps: [], counters: [] };
  for (const o of objs) {
    if ('table' in o) out.table = o.table;
    else if ('chain' in o) out.chains.push(o.chain);
    else if ('rule' in o) out.rules.push(o.rule);
    else if ('set' in o) out.sets.push(o.set);
    else if ('map' in o) out.maps.push(o.map);
    else if ('counter' in o) out.counters.push(o.counter);
  }
  if (!out.table) {
    throw new NftError({ code: 'ENOENT', stderr: 'table missing from listing', executor, operation: `list table ${ref.family} ${ref.name}` });
  }
  return out as ListedTable;
}

/** A set's or map's listing as a ListedSet. */
export function toListedSet(objs: JsonObject[], name: string, executor: string, operation: string): ListedSet {
  for (const o of objs) {
    if ('set' in o && o.set.name === name) {
      const { elem, ...info } = o.set;
      return { kind: 'set', info, elements: elem ?? [] };
    }
    if ('map' in o && o.map.name === name) {
      const { elem, ...info } = o.map;
      return { kind: 'map', info, elements: elem ?? [] };
    }
  }
  throw new NftError({ code: 'ENOENT', stderr: `set ${name} missing from listing`, executor, operation });
}

/** Deep copy without `handle` keys (and, by default, with counter values zeroed). */
export function stripHandles<T>(x: T, opts: { counters?: boolean } = {}): T {
  const zeroCounters = opts.counters !== false;
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map((i) => walk(i));
    if (v && typeof v === 'object') {
      const o: Record<string, unknown> = {};
      for (const [k, val] of Object.entries(v)) {
        if (k === 'handle') continue;
        if (zeroCounters && (k === 'packets' || k === 'bytes') && typeof val === 'number') { o[k] = 0; continue; }
        o[k] = walk(val);
      }
      return o;
    }
    return v;
  };
  return walk(x) as T;
}

/** Stable text of an element, for order-independent comparisons. */
export const elemKey = (e: JsonElem): string => JSON.stringify(e);

/** Elements sorted by their JSON text (kernel and fake may list in different orders). */
export const sortedElements = (elems: JsonElem[]): JsonElem[] =>
  [...elems].sort((a, b) => (elemKey(a) < elemKey(b) ? -1 : elemKey(a) > elemKey(b) ? 1 : 0));

/** A listed value of `type` as the input that adds it again (undefined: a type this does not carry). */
function typedValue(type: KeyType, v: unknown): ValueInput | undefined {
  switch (type) {
    case 'ipv4_addr': case 'ipv6_addr': return typeof v === 'string' ? v : undefined;
    case 'inet_service': case 'inet_proto': case 'mark': return typeof v === 'number' ? v : undefined;
    case 'ether_addr': case 'ifname':
      try {
        return typeof v === 'string' ? (type === 'ifname' ? ifname(v) : etherAddr(v)) : undefined;
      } catch {
        return undefined;
      }
    default: return undefined;
  }
}

/**
 * The elements of a listed set (not a map) as items that add them again, typed by the set's key type, each with
 * the lifetime it had left (`expires`, listed in whole seconds: at least 1, since 0 would make it permanent).
 * Undefined when a key type or a listed value is not one this handles (addresses, ports, protocols, marks,
 * MACs, interface names and their concatenations) — the caller then carries nothing rather than something else.
 */
export function listedItems(listed: ListedSet): ElementItem[] | undefined {
  if (listed.kind !== 'set') return undefined;
  const types = ([] as KeyType[]).concat(listed.info.type as KeyType | KeyType[]);
  const timed = listed.info.flags?.includes('timeout') ?? false;
  const out: ElementItem[] = [];
  for (const e of listed.elements) {
    let val: unknown = e;
    let expires: number | undefined;
    if (val && typeof val === 'object' && !Array.isArray(val) && 'elem' in val) {
      const w = (val as { elem: { val: unknown; expires?: unknown } }).elem;
      val = w.val;
      if (typeof w.expires === 'number') expires = w.expires;
    }
    const parts = types.length > 1 ? (val && typeof val === 'object' && 'concat' in val ? (val as { concat: unknown[] }).concat : undefined) : [val];
    if (!parts || parts.length !== types.length) return undefined;
    const typed = parts.map((p, i) => typedValue(types[i]!, p));
    if (typed.some((t) => t === undefined)) return undefined;
    const key = (typed.length > 1 ? typed : typed[0]) as ValueInput;
    out.push(timed && expires !== undefined ? { key, timeout: Math.max(1, expires) } : { key });
  }
  return out;
}
