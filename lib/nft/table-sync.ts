/**
 * Bring one nftables table from the contents it holds to the contents wanted, in ONE transaction that touches
 * only what differs: chains whose rules changed are flushed and refilled, sets and maps get element-level
 * deletes and adds, removed objects are deleted, everything else stays as it is (same handles, same counters).
 *
 * Why not delete and re-add the whole table: on this kernel the deleted table's base chains stay hooked for
 * a moment after the generation switch, with their sets already looking empty, and newly created interval sets
 * (pipapo, rbtree) only get their contents after the switch. A packet arriving then meets rules that are
 * neither the old nor the new ruleset (measured: a forbidden datagram slipped through 1 run in ~3 under a probe
 * flood). Keeping the table, its base chains and its sets, every change is a per-generation switch of a chain's
 * rule blob or of an element's generation bits, which the kernel applies atomically. It is also cheaper: the
 * cost follows the size of the change, not of the ruleset.
 *
 * What the kernel holds is known without listing it: the table carries a stamp, one element
 * `fingerprint . generation` in a set: the fingerprint of the contents we wrote, and the namespace's nftables
 * generation id our commit produced (the kernel bumps it on every commit, by anyone: generation.ts reads it
 * with one netlink round trip). The transaction starts by deleting the stamp it expects: the fingerprint of the
 * contents it assumes and the generation read just now. If the table holds other contents (first run, reboot,
 * a crash), or anything committed nftables in the namespace since our last commit (a hand edit), that delete
 * fails, nothing is applied, and the table is replaced as a whole instead.
 *
 * Scoped mode (`SyncOptions.scope`): the table is shared by several owners, each holding the objects whose names
 * start with its prefix (prefixes must not be prefixes of one another). Everything above then applies to one
 * owner's objects: its stamp is the set `<prefix>contents_stamp`, its transaction touches only its objects, and
 * "replaced whole" means its objects are deleted and added again (the table itself is only ever `add`ed, which is
 * idempotent): owners changing their objects in parallel cannot lose each other's changes.
 */
import { createHash } from 'node:crypto';
import type { TableRef } from './json.js';
import { chain as chainObj, elements, set, type Chain, type Counter, type ElementItem, type NftMap, type NftObject, type NftSet, type Rule } from './objects.js';
import { NftError } from './errors.js';
import { replaceTable, Transaction } from './transaction.js';
import type { NftExecutor } from './executor.js';
import { listedItems, type ListedSet } from './listing.js';
import { changedMiddle, sameValue } from '../util/compare.js';

/** The one-element set holding the stamp `fingerprint . generation`. */
export const FINGERPRINT_SET = 'contents_stamp';

type SetLike = NftSet | NftMap;

/** A set's or map's definition and elements, with an order-independent digest of the elements. */
export interface SetState {
  obj: SetLike;
  /** Definition without elements. */
  def: string;
  items: ElementItem[];
  /** How many elements, and the sum (mod 2^32) of their elementHash: the kernel keeps no order of elements, so
   *  neither does the fingerprint, and one element more or less changes it without hashing the others. */
  count: number;
  sum: number;
  /** The elements as one JSON text (made on first use: itemsJsonOf). */
  json?: string;
}

/** The elements as one JSON text (in the order given: the same generator gives the same order). */
function itemsJsonOf(s: SetState): string {
  if (s.json === undefined) {
    s.json = JSON.stringify(s.items);
    const d = Object.isFrozen(s.items) ? digests.get(s.items) : undefined;
    if (d) d.json = s.json;
  }
  return s.json;
}

/** Same elements in the same order (the digest first: a changed set is told apart without serialising it). */
function sameItems(a: SetState, b: SetState): boolean {
  return a.items === b.items || (a.count === b.count && a.sum === b.sum && itemsJsonOf(a) === itemsJsonOf(b));
}

/** Export for incremental contents (table-delta.ts): the indexed contents of a table. */
export interface Contents {
  chains: Map<string, { obj: Chain; def: string }>;
  /** Rules per chain, in order, and their JSON. */
  rules: Map<string, { list: Rule[]; sig: string }>;
  sets: Map<string, SetState>;
  counters: Map<string, { obj: Counter; def: string }>;
  /** Digest of everything above but the sets' elements (chains, rules, counters, set definitions). */
  structure: string;
  /** Fingerprint of everything above (32 bits, stored in the stamp): `structure` and each set's element digest. */
  fingerprint: number;
}

function withoutElements(s: SetLike): SetLike {
  const { elements: _e, ...rest } = s;
  return rest as SetLike;
}

/**
 * A 32-bit hash of one element as JSON would write it (FNV-1a over its strings and numbers with their structure
 * marked, then a final mix): ~0.1 µs an element, 10× less than serialising it. Equal elements hash equal; which
 * different ones collide does not matter beyond chance — the stamp holds 32 bits anyway.
 */
export function elementHash(item: ElementItem): number {
  let x = hashValue(0x811c9dc5, item);
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

const FNV = 0x01000193;
function hashText(x: number, s: string): number {
  for (let i = 0; i < s.length; i++) x = Math.imul(x ^ s.charCodeAt(i), FNV);
  return x;
}
function hashValue(x: number, v: unknown): number {
  switch (typeof v) {
    case 'string': return hashText(Math.imul(x ^ 0x22, FNV), v);
    case 'number': return hashText(Math.imul(x ^ 0x23, FNV), String(v));
    case 'boolean': return Math.imul(x ^ (v ? 0x74 : 0x66), FNV);
    case 'object':
      if (v === null) return Math.imul(x ^ 0x6e, FNV);
      if (Array.isArray(v)) {
        x = Math.imul(x ^ 0x5b, FNV);
        for (const e of v) x = hashValue(x, e);
        return Math.imul(x ^ 0x5d, FNV);
      }
      x = Math.imul(x ^ 0x7b, FNV);
      for (const k of Object.keys(v)) {
        const e = (v as Record<string, unknown>)[k];
        if (e === undefined) continue; // as JSON leaves it out
        x = hashValue(hashText(x, k), e);
      }
      return Math.imul(x ^ 0x7d, FNV);
    default: return x; // undefined, functions: not in JSON
  }
}

/** The element digest of a list: how many, and the sum of their hashes (mod 2^32). */
export function elementsDigest(items: readonly ElementItem[]): { count: number; sum: number } {
  let sum = 0;
  for (const it of items) sum = (sum + elementHash(it)) >>> 0;
  return { count: items.length, sum };
}

/**
 * Digests of frozen element lists: a generator that returns the same frozen list while its input is unchanged
 * (router-table.ts: a large router's NAT maps) has its sets compared by identity and digested once, instead of
 * hashing (and, when the digests agree, serialising) tens of thousands of elements on every command.
 */
const digests = new WeakMap<readonly ElementItem[], { count: number; sum: number; json?: string }>();

function setState(o: SetLike, items: ElementItem[]): SetState {
  const def = JSON.stringify(withoutElements(o));
  if (!Object.isFrozen(items)) return { obj: o, def, items, ...elementsDigest(items) };
  let d = digests.get(items);
  if (!d) digests.set(items, d = elementsDigest(items));
  return { obj: o, def, items, count: d.count, sum: d.sum, ...(d.json !== undefined ? { json: d.json } : {}) };
}

function elemIndex(items: readonly ElementItem[]): Map<string, { item: ElementItem; sig: string }> {
  const index = new Map<string, { item: ElementItem; sig: string }>();
  for (const it of items) index.set(JSON.stringify(it.key), { item: it, sig: JSON.stringify(it) });
  return index;
}

/**
 * Index a table's contents (objects of the default table; `element` objects are folded into their set). Sets
 * and rule lists are serialised in one piece each (10,000 elements: a few ms); per-element work is left to
 * the sets that actually change.
 */
export function tableContents(objs: readonly NftObject[]): Contents {
  // the same array again (a caller that keeps the last contents it applied): indexed once
  const known = contentsOf.get(objs);
  if (known) return known;
  const c: Contents = { chains: new Map(), rules: new Map(), sets: new Map(), counters: new Map(), structure: '', fingerprint: 0 };
  const rules = new Map<string, Rule[]>();
  const setObjs = new Map<string, { o: SetLike; items: ElementItem[]; own: boolean }>();
  for (const o of objs) {
    if (o.kind !== 'table' && o.table !== undefined) throw new Error(`table-sync: ${o.kind} names another table`);
    switch (o.kind) {
      case 'table': break;
      case 'chain':
        c.chains.set(o.name, { obj: o, def: JSON.stringify(o) });
        if (!rules.has(o.name)) rules.set(o.name, []);
        break;
      case 'rule': {
        const l = rules.get(o.chain);
        if (l) l.push(o); else rules.set(o.chain, [o]);
        break;
      }
      // a set's own element list as it is (its identity tells an unchanged set: setState), a copy once extended
      case 'set': case 'map': setObjs.set(o.name, { o, items: o.elements ?? [], own: false }); break;
      case 'element': {
        const st = setObjs.get(o.set);
        if (!st) throw new Error(`table-sync: elements for unknown set ${o.set} (add the set first)`);
        if (!st.own) {
          st.items = [...st.items];
          st.own = true;
        }
        for (const it of o.items) st.items.push(it);
        break;
      }
      case 'counter': c.counters.set(o.name, { obj: o, def: JSON.stringify(o) }); break;
    }
  }
  for (const [name, list] of rules) c.rules.set(name, { list, sig: list.length ? JSON.stringify(list) : '' });
  for (const [name, { o, items }] of setObjs) c.sets.set(name, setState(o, items));
  const hash = createHash('sha256');
  // order-independent where the kernel is (objects by name, elements), ordered where it is not (rules in a chain)
  for (const k of [...c.chains.keys()].sort()) hash.update(`c ${c.chains.get(k)!.def}\n`);
  for (const k of [...c.rules.keys()].sort()) hash.update(`r ${k}\n${c.rules.get(k)!.sig}\n`);
  for (const k of [...c.sets.keys()].sort()) hash.update(`s ${c.sets.get(k)!.def}\n`);
  for (const k of [...c.counters.keys()].sort()) hash.update(`n ${c.counters.get(k)!.def}\n`);
  c.structure = hash.digest('base64');
  c.fingerprint = contentsFingerprint(c.structure, c.sets);
  contentsOf.set(objs, c);
  return c;
}

/** The fingerprint of contents from their structure digest and their sets' element digests. */
export function contentsFingerprint(structure: string, sets: ReadonlyMap<string, SetState>): number {
  const hash = createHash('sha256').update(structure);
  for (const k of [...sets.keys()].sort()) {
    const st = sets.get(k)!;
    hash.update(`\n${k} ${st.count} ${st.sum}`);
  }
  return hash.digest().readUInt32BE(0);
}

/**
 * Register contents made without indexing `objs` (table-delta.ts: the previous contents with some elements
 * changed), so that tableContents(objs) returns them. They must be exactly what indexing `objs` would give.
 */
export function adoptContents(objs: readonly NftObject[], c: Contents): void {
  contentsOf.set(objs, c);
}

/** Indexed contents by object array (arrays must not be mutated after indexing: callers treat them as values). */
const contentsOf = new WeakMap<readonly NftObject[], Contents>();

const stampKey = (fp: number, gen: number): number[] => [fp, gen >>> 0];
const stampSet = (name: string, fp: number, gen: number): NftSet => set(name, ['mark', 'mark'], { elements: [{ key: stampKey(fp, gen) }] });
/** The stamp set of a scope (the whole table's without one). */
export const stampSetName = (prefix = ''): string => `${prefix}${FINGERPRINT_SET}`;

/** Chain names a rule refers to (jump/goto targets) and set names (`@name`). */
function references(sig: string): { chains: Set<string>; sets: Set<string> } {
  const chains = new Set<string>();
  const sets = new Set<string>();
  for (const m of sig.matchAll(/"target":"([^"]+)"/g)) chains.add(m[1]);
  for (const m of sig.matchAll(/"@([^"]+)"/g)) sets.add(m[1]);
  return { chains, sets };
}

/** The change taking a table from one contents to another, and the interval sets staged ahead of it. */
export interface TableDiff {
  /** The change itself, without the stamp (see `stamped`). */
  body: Transaction;
  /**
   * New interval sets and maps, created (complete, unreferenced) by an earlier transaction of their own when
   * staging is asked for: the kernel fills a new interval set (pipapo, rbtree) only after the commit has switched
   * the generation, so rules created in the same transaction would briefly look into an empty set.
   */
  staged: SetLike[];
}

/** Options of diffTable: stage new interval sets in a transaction of their own. */
export interface DiffOptions {
  /** Leave new interval sets out of `body` and list them in `staged` (see TableDiff.staged). */
  stage?: boolean;
}

/**
 * The operations taking the table from `from` to `to`. A base chain whose hook or priority changes is deleted
 * and re-added. Returns undefined when the change cannot be made in place (a chain turns from regular to base
 * or back) and the table has to be replaced.
 */
export function diffTable(tableRef: TableRef, from: Contents, to: Contents, opts: DiffOptions = {}): TableDiff | undefined {
  const tx = new Transaction(tableRef);
  const staged: SetLike[] = [];

  const recreatedChains = new Set<string>();
  for (const [name, c] of to.chains) {
    const old = from.chains.get(name);
    if (!old || old.def === c.def) continue;
    const a = old.obj; const b = c.obj;
    const bothBase = a.hook !== undefined && b.hook !== undefined;
    if (!bothBase) return undefined; // a regular chain turning into a base chain (or back): replace
    if (a.type === b.type && a.hook === b.hook && JSON.stringify(a.priority) === JSON.stringify(b.priority)) continue; // policy: updated by `add chain`
    recreatedChains.add(name);
  }
  const recreatedSets = new Set<string>();
  for (const [name, s] of to.sets) {
    const old = from.sets.get(name);
    if (old && old.def !== s.def) recreatedSets.add(name);
  }
  const removedSets = [...from.sets.keys()].filter((n) => !to.sets.has(n));
  const removedChains = [...from.chains.keys()].filter((n) => !to.chains.has(n));
  const goneSets = new Set([...removedSets, ...recreatedSets]);

  // chains whose rules must be rewritten: changed rules, or rules bound to a set or chain that goes away
  const dirty = new Set<string>();
  for (const [name, r] of from.rules) {
    if (!from.chains.has(name)) continue;
    const next = to.rules.get(name);
    if (!to.chains.has(name) || recreatedChains.has(name) || !next || next.sig !== r.sig) { dirty.add(name); continue; }
    if (!r.sig) continue;
    const refs = references(r.sig);
    if ([...refs.sets].some((s) => goneSets.has(s)) || [...refs.chains].some((ch) => recreatedChains.has(ch))) dirty.add(name);
  }

  // 1. flush the rules that change (a chain's rules switch atomically with the generation)
  for (const name of [...dirty].sort()) tx.flush(chainObj(name));
  // 2. element deletions in sets that stay (removed keys, and keys whose value changes)
  const elemAdds: Array<{ set: string; items: ElementItem[] }> = [];
  for (const [name, s] of to.sets) {
    const old = from.sets.get(name);
    if (!old || recreatedSets.has(name) || sameItems(old, s)) continue;
    const [oldMid, newMid] = changedMiddle(old.items, s.items, sameValue);
    const before = elemIndex(oldMid);
    const after = elemIndex(newMid);
    const del: ElementItem[] = [];
    const add: ElementItem[] = [];
    for (const [k, e] of before) {
      const n = after.get(k);
      if (!n || n.sig !== e.sig) del.push({ key: e.item.key });
    }
    for (const [k, e] of after) {
      const o = before.get(k);
      if (!o || o.sig !== e.sig) add.push(e.item);
    }
    if (del.length) tx.delete(elements(name, del));
    if (add.length) elemAdds.push({ set: name, items: add });
  }
  // 3. sets and chains that go (their users were flushed above)
  for (const name of [...goneSets].sort()) tx.delete(withoutElements(from.sets.get(name)!.obj));
  for (const name of [...removedChains, ...recreatedChains].sort()) {
    if (!dirty.has(name) && from.rules.get(name)?.list.length) tx.flush(chainObj(name));
    tx.delete(chainObj(name));
  }
  for (const [name] of from.counters) {
    if (!to.counters.has(name) || to.counters.get(name)!.def !== from.counters.get(name)!.def) tx.delete({ kind: 'counter', name });
  }
  // 4. new chains (empty), policy updates, counters, sets (with their elements), element additions
  for (const [name, c] of to.chains) {
    const old = from.chains.get(name);
    if (!old || old.def !== c.def) tx.add(c.obj);
  }
  for (const [name, n] of to.counters) {
    const old = from.counters.get(name);
    if (!old || old.def !== n.def) tx.add(n.obj);
  }
  for (const [name, s] of to.sets) {
    if (from.sets.has(name) && !recreatedSets.has(name)) continue;
    const items = s.items;
    const obj = { ...withoutElements(s.obj), ...(items.length ? { elements: items } : {}) } as SetLike;
    if (opts.stage && !recreatedSets.has(name) && obj.flags?.includes('interval')) staged.push(obj);
    else tx.add(obj);
  }
  for (const a of elemAdds) tx.add(elements(a.set, a.items));
  // 5. the rules of flushed and new chains, in order
  for (const [name, r] of to.rules) {
    const fresh = !from.chains.has(name) || recreatedChains.has(name);
    if (!fresh && !dirty.has(name)) continue;
    if (r.list.length) tx.add(...r.list);
  }
  return { body: tx, staged };
}

/**
 * `fill`'s operations guarded by the stamp `fromFp . gen` and leaving the stamp `toFp . nextGen`. The guard is
 * the first command: it fails with ENOENT, and nothing is applied, unless the table holds exactly the contents
 * we wrote last and nothing has committed nftables in the namespace since.
 */
export function stamped(tableRef: TableRef, stamp: string, fromFp: number, gen: number, toFp: number, nextGen: number, fill: (tx: Transaction) => void): Transaction {
  const tx = new Transaction(tableRef).delete(elements(stamp, [{ key: stampKey(fromFp, gen) }]));
  fill(tx);
  return tx.add(elements(stamp, [{ key: stampKey(toFp, nextGen) }]));
}

/** The whole-table replacement (the fallback, and the first apply), carrying the stamp. */
export function replacementOf(tableRef: TableRef, objs: readonly NftObject[], to: Contents, nextGen = 0, comment?: string): Transaction {
  return replaceTable(tableRef, [...objs, stampSet(FINGERPRINT_SET, to.fingerprint, nextGen)], comment !== undefined ? { comment } : {});
}

/**
 * Deleting every object of a scope that the table holds (listed terse: names only), in an order the kernel
 * accepts in one transaction: chains flushed (their rules released the sets and chains they refer to), then
 * sets and maps (a verdict map's elements release the chains they jump to), then chains and counters. Nothing
 * when the table does not exist.
 */
export async function scopeDeletion(ex: NftExecutor, tableRef: TableRef, prefix: string): Promise<Transaction> {
  if (!prefix) throw new Error('table-sync: a scope needs a prefix');
  const tx = new Transaction(tableRef);
  let listed;
  try {
    listed = await ex.list(tableRef, { terse: true });
  } catch (e) {
    if (e instanceof NftError && e.code === 'ENOENT') return tx;
    throw e;
  }
  const mine = <T extends { name: string }>(l: readonly T[]): string[] => l.map((o) => o.name).filter((n) => n.startsWith(prefix)).sort();
  const chains = mine(listed.chains);
  for (const c of chains) tx.flush(chainObj(c));
  for (const n of mine(listed.sets)) tx.delete({ kind: 'set', name: n } as NftSet);
  for (const n of mine(listed.maps)) tx.delete({ kind: 'map', name: n } as NftMap);
  for (const c of chains) tx.delete(chainObj(c));
  for (const n of mine(listed.counters)) tx.delete({ kind: 'counter', name: n });
  return tx;
}

/** The name an object is known by in its table (a rule: its chain's, elements: their set's). */
function objectName(o: NftObject): string {
  switch (o.kind) {
    case 'rule': return o.chain;
    case 'element': return o.set;
    case 'table': return o.name ?? '';
    default: return o.name;
  }
}

/** What `beforeReplace` may tell the replacement: operations to add to it, and that the scope holds nothing. */
export interface ReplaceHints {
  /** Appended to the replacement transaction (e.g. deleting the table this one takes over from). */
  append?: Transaction;
  /** Scoped mode: the table holds no object of the scope (the caller knows; saves listing the table). */
  scopeEmpty?: boolean;
}

/** How syncTable brought the table up to date: unchanged, changed in place, or replaced (and why). */
export interface SyncResult {
  /** 'unchanged': the kernel already held the contents; 'diff': changed in place; 'replace': table replaced. */
  mode: 'unchanged' | 'diff' | 'replace';
  /** The fingerprint of the stamp left (the contents and companions now held). */
  fingerprint?: number;
  /** The generation of the stamp left (the namespace's nftables generation our commit produced), when known. */
  generation?: number;
  /** Operations in the applied transaction(s). */
  operations: number;
  /** Elements of the interval sets created complete ahead of the change (see TableDiff.staged). */
  stagedElements?: number;
  /** Why the table was replaced: it held other contents (or none), something else committed nftables in the
   *  namespace since our last commit, a chain turned from regular to base (or back), or the kernel refused the in-place change although
   *  the stamp matched (a defect; the replacement still converges). */
  reason?: 'other-contents' | 'changed-outside' | 'hook-change' | 'in-place-refused' | 'asked';
  /** The refusal, when reason is 'in-place-refused'. */
  error?: NftError;
}

/**
 * Another table changed in the same transaction as the main one and guarded by its stamp (its contents are part
 * of the fingerprint). An empty `want` means the table must not exist (it is deleted), an empty or absent
 * `assumed` that it does not exist yet. A table of another family (a netdev table hooking one device) cannot
 * live in the main table.
 */
export interface CompanionTable {
  table: TableRef;
  want: readonly NftObject[];
  assumed?: readonly NftObject[];
  comment?: string;
}

/** Options of syncTable: the table comment, the namespace's generation reader (the stamp's guard). */
export interface SyncOptions {
  /** Table comment (used when the table is (re)created). */
  comment?: string;
  /** Reads the namespace's nftables generation id (generation.ts). Without it (the fake executor) only the
   *  fingerprint guards the in-place change, so changes made by others go unnoticed. */
  generation?: () => number;
  /** Tables changed in the same transaction (see CompanionTable). */
  companions?: CompanionTable[];
  /** Replace the tables whole, without trying the in-place change (e.g. a device an ingress chain was bound to
   *  was re-created: the kernel dropped or unbound that chain without a commit, so the stamp cannot tell). */
  replace?: boolean;
  /**
   * Called before the table is replaced whole (it is missing, holds other contents, or was changed by someone
   * else); throwing refuses the replacement — e.g. because a table of that name exists and is not ours.
   */
  beforeReplace?: () => Promise<void | ReplaceHints>;
  /** Scoped mode (see the header): this caller's objects are those named `prefix…`; every name of `want` must
   *  carry it. Companions are not supported in this mode. */
  scope?: { prefix: string };
  /**
   * Sets of `want` whose elements are the kernel's, not the contents': learned by the packet path (`add`/`update
   * @set`) or put in by the caller outside the contents (they are not in the fingerprint, and an in-place change
   * leaves them alone). A whole replacement would drop them; it lists them first and adds them back, each with the
   * lifetime it had left. A set whose key type or timeout flag changed, or whose elements no longer fit its size
   * or cannot be typed again (listing.ts listedItems), starts empty.
   */
  carry?: readonly string[];
}

interface Companion { ref: TableRef; from?: Contents; to?: Contents; want: readonly NftObject[]; comment?: string }

const emptyContents = (): Contents => tableContents([]);

/** The fingerprint of the main table's contents and its companions' (presence included). */
function combined(main: Contents, comps: Companion[], side: 'from' | 'to'): number {
  return combinedFingerprint(main.fingerprint, comps.map((c) => ({ table: c.ref, fingerprint: c[side]?.fingerprint })));
}

/** The stamp's fingerprint of a main table's contents and its companions' (undefined: the companion is absent). */
export function combinedFingerprint(main: number, comps: ReadonlyArray<{ table: TableRef; fingerprint: number | undefined }>): number {
  if (!comps.length) return main;
  const hash = createHash('sha256').update(`m ${main}\n`);
  for (const c of comps) hash.update(`t ${c.table.family} ${c.table.name} ${c.fingerprint ?? 'absent'}\n`);
  return hash.digest().readUInt32BE(0);
}

/** The companions' part of an in-place change (undefined: one of them cannot be changed in place). */
function companionDiff(comps: Companion[]): TableDiff | undefined {
  const out: TableDiff = { body: new Transaction(comps[0]?.ref ?? { family: 'inet', name: 'unused' }), staged: [] };
  for (const c of comps) {
    if (!c.from && !c.to) continue;
    if (c.from && !c.to) { out.body.append(new Transaction(c.ref).delete({ kind: 'table' })); continue; }
    const tx = new Transaction(c.ref);
    if (!c.from) tx.add({ kind: 'table', ...(c.comment !== undefined ? { comment: c.comment } : {}) });
    const d = diffTable(c.ref, c.from ?? emptyContents(), c.to!, { stage: true });
    if (!d) return undefined;
    out.body.append(tx.append(d.body));
    for (const s of d.staged) out.staged.push({ ...s, table: c.ref });
  }
  return out;
}

/**
 * Make the table hold `want`, assuming it holds `assumed` (default: `want` itself, e.g. on restore). Tries the
 * in-place change guarded by the fingerprint; if the kernel holds anything else, replaces the table.
 */
export async function syncTable(
  ex: NftExecutor, tableRef: TableRef, want: readonly NftObject[], assumed?: readonly NftObject[], opts: SyncOptions = {},
): Promise<SyncResult> {
  const prefix = opts.scope?.prefix;
  if (prefix !== undefined) {
    if (!prefix || opts.companions?.length) throw new Error('table-sync: a scope needs a prefix and takes no companions');
    const stray = [...want, ...(assumed ?? [])].find((o) => o.kind !== 'table' && !objectName(o).startsWith(prefix));
    if (stray) throw new Error(`table-sync: ${stray.kind} outside the scope ${prefix}`);
  }
  const stamp = stampSetName(prefix);
  const to = tableContents(want);
  const from = assumed ? tableContents(assumed) : to;
  const comps: Companion[] = (opts.companions ?? []).map((c) => {
    const toC = c.want.length ? tableContents(c.want) : undefined;
    const fromC = assumed ? (c.assumed?.length ? tableContents(c.assumed) : undefined) : toC;
    return { ref: c.table, from: fromC, to: toC, want: c.want, ...(c.comment !== undefined ? { comment: c.comment } : {}) };
  });
  const fromFp = combined(from, comps, 'from');
  const toFp = combined(to, comps, 'to');
  // our commit bumps the generation by one; a commit by someone else in between shows next time
  const now = (): number => (opts.generation ? opts.generation() : 0);
  const after = (g: number): number => (opts.generation ? (g + 1) >>> 0 : 0);
  let gen = now();
  const d0 = opts.replace ? undefined : diffTable(tableRef, from, to, { stage: true });
  const dc = d0 ? companionDiff(comps) : undefined;
  const d = d0 && dc ? { body: d0.body.append(dc.body), staged: [...d0.staged, ...dc.staged] } : undefined;
  let reason: SyncResult['reason'] = opts.replace ? 'asked' : 'hook-change';
  let error: NftError | undefined;
  if (d) {
    try {
      let operations = 0;
      if (d.staged.length) {
        // phase 1: the new interval sets, complete and committed before any rule refers to them (the stamp
        // still names `from`: the table holds nothing the next guard would not expect)
        const prep = stamped(tableRef, stamp, fromFp, gen, fromFp, after(gen), (tx) => tx.add(...d.staged));
        await ex.apply(prep, { locate: false });
        operations += prep.length;
        gen = now();
      }
      const main = stamped(tableRef, stamp, fromFp, gen, toFp, after(gen), (tx) => tx.append(d.body));
      await ex.apply(main, { locate: false });
      const stagedElements = d.staged.reduce((n, x) => n + (x.elements?.length ?? 0), 0);
      return {
        mode: d.body.length + d.staged.length ? 'diff' : 'unchanged', fingerprint: toFp, operations: operations + main.length,
        ...(opts.generation ? { generation: after(gen) } : {}), ...(stagedElements ? { stagedElements } : {}),
      };
    } catch (err) {
      if (!(err instanceof NftError)) throw err;
      reason = await whyRefused(ex, tableRef, stamp, fromFp, gen);
      if (reason === 'in-place-refused') error = err;
    }
  }
  const hints = (await opts.beforeReplace?.()) ?? {};
  const kept = opts.carry?.length && !hints.scopeEmpty ? await carried(ex, tableRef, want, opts.carry) : undefined;
  const stampGen = after(now());
  let tx: Transaction;
  if (prefix !== undefined) {
    // only the scope's objects: the table is added (a no-op when it exists), never deleted
    tx = new Transaction(tableRef).add({ kind: 'table', ...(opts.comment !== undefined ? { comment: opts.comment } : {}) });
    if (!hints.scopeEmpty) tx.append(await scopeDeletion(ex, tableRef, prefix));
    tx.add(...want, stampSet(stamp, toFp, stampGen));
  } else {
    tx = replacementOf(tableRef, want, { ...to, fingerprint: toFp }, stampGen, opts.comment);
  }
  if (kept) tx.append(kept);
  if (hints.append) tx.append(hints.append);
  for (const c of comps) {
    // `add` first, so that deleting a table that is not there cannot fail
    if (c.to) tx.append(replaceTable(c.ref, [...c.want], c.comment !== undefined ? { comment: c.comment } : {}));
    else tx.append(new Transaction(c.ref).add({ kind: 'table' }).delete({ kind: 'table' }));
  }
  await ex.apply(tx);
  return { mode: 'replace', fingerprint: toFp, operations: tx.length, reason, ...(opts.generation ? { generation: stampGen } : {}), ...(error ? { error } : {}) };
}

/**
 * Is the table (and its companions) still exactly what our last commit left, stamped `fingerprint`? Swaps the
 * stamp for the next generation's in one transaction, which fails, changing nothing, if anything else is there or
 * anything committed nftables in the namespace since (see the header). Lets a caller that knows which contents
 * carry that fingerprint skip computing them. Returns the generation of the new stamp, undefined when refused.
 */
export async function confirmStamp(ex: NftExecutor, tableRef: TableRef, fingerprint: number, generation: () => number, prefix?: string): Promise<number | undefined> {
  const gen = generation();
  try {
    await ex.apply(stamped(tableRef, stampSetName(prefix), fingerprint, gen, fingerprint, (gen + 1) >>> 0, () => undefined), { locate: false });
    return (gen + 1) >>> 0;
  } catch (err) {
    if (err instanceof NftError) return undefined;
    throw err;
  }
}

/** The elements of the `carry` sets that the table holds, added to `want`'s sets again (SyncOptions.carry). */
async function carried(ex: NftExecutor, tableRef: TableRef, want: readonly NftObject[], names: readonly string[]): Promise<Transaction | undefined> {
  const tx = new Transaction(tableRef);
  const typeText = (t: unknown): string => JSON.stringify(([] as unknown[]).concat(t));
  const timed = (flags: readonly string[] | undefined): boolean => flags?.includes('timeout') ?? false;
  for (const name of names) {
    const def = want.find((o): o is NftSet => o.kind === 'set' && o.name === name);
    if (!def) continue;
    let listed: ListedSet;
    try {
      listed = await ex.listSet(tableRef, name, 'set');
    } catch (err) {
      if (err instanceof NftError && err.code === 'ENOENT') continue;
      throw err;
    }
    if (typeText(listed.info.type) !== typeText(def.type) || timed(listed.info.flags) !== timed(def.flags)) continue;
    const items = listedItems(listed);
    if (!items?.length || (def.size !== undefined && items.length > def.size)) continue;
    tx.add(elements(name, items));
  }
  return tx.length ? tx : undefined;
}

/** After the guarded transaction failed: was it the guard (and which half), or the change itself? */
async function whyRefused(ex: NftExecutor, tableRef: TableRef, stamp: string, fp: number, gen: number): Promise<NonNullable<SyncResult['reason']>> {
  let elems: unknown[];
  try {
    elems = (await ex.listSet(tableRef, stamp, 'set')).elements;
  } catch {
    return 'other-contents';
  }
  const held = elems.length === 1 ? (elems[0] as { concat?: unknown[] }).concat : undefined;
  if (!held || held[0] !== fp) return 'other-contents';
  return held[1] === gen >>> 0 ? 'in-place-refused' : 'changed-outside';
}
