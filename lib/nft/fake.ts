/**
 * In-memory nftables for unit tests: the same NftExecutor interface and, for what netns-router uses,
 * the kernel's semantics (checked against nft 1.0.6 / kernel 6.x):
 *
 * - a missing table/chain/set/map/counter/rule handle/element → ENOENT; jump/goto/vmap targets and
 *   @set / named counter references must exist (ENOENT); jumping to a base chain → EOPNOTSUPP;
 * - `create` of an existing object or element → EEXIST; `add` of an existing one is a no-op, except a
 *   map entry with another value or a set/map with another type (EEXIST), a regular chain re-added as
 *   a base chain (EEXIST), or a base chain with another type/hook/priority (EOPNOTSUPP);
 * - deleting a chain that is jumped to (rule or vmap element), a set referenced by a rule, a counter
 *   in use → EBUSY; deleting a chain deletes its rules; `flush table` empties every chain but keeps
 *   set elements;
 * - interval sets: overlapping intervals → EEXIST, deleting a non-identical interval → ENOENT;
 *   aligned ranges are listed as prefixes, like the kernel does;
 * - a transaction is atomic: on any error nothing of it applies, and the error names the command.
 *
 * Rules are stored as rendered (the kernel would normalise their bodies); dump()/list() return the
 * same shapes as a real listing.
 */
import { NftError, type NftErrorCode } from './errors.js';
import type { NftExecutor, ListOptions } from './executor.js';
import type {
  ChainPolicy, ChainType, Expr, Hook, JsonChain, JsonCommand, JsonCounter, JsonElem, JsonMap, JsonObject,
  JsonRule, JsonSet, KeyType, NftDocument, SetFlag, Stmt, TableRef, ValueType, Verb,
} from './json.js';
import type { ListedSet, ListedTable } from './listing.js';
import type { Transaction } from './transaction.js';
import { checkFamily, checkName } from './validate.js';
import { bigIntToIp, ipToBigInt } from '../util/ip.js';

interface FRule { handle: number; expr: Stmt[]; comment?: string }
interface FChain {
  name: string; handle: number; type?: ChainType; hook?: Hook; prio?: number; policy?: ChainPolicy; rules: FRule[];
}
interface FElem { key: Expr; value?: Expr; comment?: string; timeout?: number }
interface FSet {
  name: string; handle: number; isMap: boolean; type: KeyType | KeyType[]; map?: ValueType; flags: SetFlag[];
  comment?: string; size?: number;
  /** Default element lifetime in seconds (the timeout flag), as the kernel lists it. */
  timeout?: number;
  /** keyed by the JSON of the bare key */
  elems: Map<string, FElem>;
}
interface FCounter { name: string; handle: number; comment?: string }
interface FTable {
  family: TableRef['family']; name: string; handle: number; comment?: string; hgen: number;
  chains: Map<string, FChain>; sets: Map<string, FSet>; counters: Map<string, FCounter>;
}

/** Error raised while applying one command (converted to NftError with the index by apply). */
class Fail {
  constructor(readonly code: NftErrorCode, readonly text: string) {}
}

const STRERROR: Partial<Record<NftErrorCode, string>> = {
  ENOENT: 'No such file or directory',
  EEXIST: 'File exists',
  EBUSY: 'Device or resource busy',
  EOPNOTSUPP: 'Operation not supported',
  EINVAL: 'Invalid argument',
  ENFILE: 'Too many open files in system',
};
const kernel = (code: NftErrorCode): Fail => new Fail(code, `Could not process rule: ${STRERROR[code] ?? code}`);

const tkey = (family: string, name: string): string => `${family}\0${name}`;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Strip the {elem:{val,comment,timeout}} wrapper. */
function unwrap(e: Expr): { key: Expr; comment?: string; timeout?: number } {
  if (isObj(e) && 'elem' in e && isObj(e.elem)) {
    const w = e.elem as { val: Expr; comment?: string; timeout?: number };
    return { key: w.val, ...(w.comment !== undefined ? { comment: w.comment } : {}), ...(w.timeout ? { timeout: w.timeout } : {}) };
  }
  return { key: e };
}

/** [lo, hi] of an interval-set key (addresses, prefixes, ranges, ports), or undefined. */
function interval(k: Expr): [bigint, bigint] | undefined {
  if (typeof k === 'number') return [BigInt(k), BigInt(k)];
  if (typeof k === 'string') return [ipToBigInt(k), ipToBigInt(k)];
  if (isObj(k) && 'prefix' in k) {
    const p = k.prefix as { addr: string; len: number };
    const bits = p.addr.includes(':') ? 128 : 32;
    const lo = ipToBigInt(p.addr);
    return [lo, lo + (1n << BigInt(bits - p.len)) - 1n];
  }
  if (isObj(k) && 'range' in k) {
    const [a, b] = k.range as [string | number, string | number];
    return typeof a === 'number' ? [BigInt(a), BigInt(b as number)] : [ipToBigInt(a), ipToBigInt(b as string)];
  }
  return undefined;
}

/** How the kernel lists an interval key: aligned address ranges as prefixes, one-value ranges bare. */
function normaliseIntervalKey(k: Expr): Expr {
  if (!isObj(k) || !('range' in k)) return k;
  const [a, b] = k.range as [string | number, string | number];
  if (a === b) return a;
  if (typeof a !== 'string' || typeof b !== 'string') return k;
  const v6 = a.includes(':');
  const bits = v6 ? 128 : 32;
  const lo = ipToBigInt(a), hi = ipToBigInt(b);
  const size = hi - lo + 1n;
  if ((size & (size - 1n)) !== 0n || lo % size !== 0n) return k;
  let len = bits;
  for (let s = size; s > 1n; s >>= 1n) len--;
  return { prefix: { addr: bigIntToIp(lo, v6 ? 6 : 4), len } };
}

/** References a rule makes: chains (jump/goto), sets (@name), named counters. */
function collectRefs(e: unknown, out: { chains: Set<string>; sets: Set<string>; counters: Set<string> }): void {
  if (typeof e === 'string') {
    if (e.startsWith('@')) out.sets.add(e.slice(1));
    return;
  }
  if (Array.isArray(e)) { for (const x of e) collectRefs(x, out); return; }
  if (!isObj(e)) return;
  for (const [k, v] of Object.entries(e)) {
    if ((k === 'jump' || k === 'goto') && isObj(v) && typeof v.target === 'string') out.chains.add(v.target);
    else if (k === 'counter' && typeof v === 'string') out.counters.add(v);
    else collectRefs(v, out);
  }
}

const refsOf = (e: unknown): { chains: Set<string>; sets: Set<string>; counters: Set<string> } => {
  const out = { chains: new Set<string>(), sets: new Set<string>(), counters: new Set<string>() };
  collectRefs(e, out);
  return out;
};

function cloneTable(t: FTable): FTable {
  return structuredClone(t);
}

/**
 * An in-memory nftables with the kernel's semantics for what netns-router uses (missing objects, existing ones,
 * references, atomic batches): tests run rulesets without root. `test/nft/semantics.test.ts` holds it to the kernel's
 * outcomes.
 */
export class FakeNftExecutor implements NftExecutor {
  readonly name = 'fake';
  private tables = new Map<string, FTable>();
  private tableHandle = 0;
  private closed = false;
  /** Every transaction applied successfully, as the JSON document sent. */
  readonly history: NftDocument[] = [];

  // ── NftExecutor ──────────────────────────────────────────────────────────────────────────────────

  async apply(tx: Transaction): Promise<void> {
    this.run(tx.toDocument(), false);
  }

  async check(tx: Transaction): Promise<void> {
    this.run(tx.toDocument(), true);
  }

  /** Apply a raw libnftables JSON document (same semantics as apply). */
  applyDocument(doc: NftDocument): void {
    this.run(doc, false);
  }

  async list(table: TableRef, _opts: ListOptions = {}): Promise<ListedTable> {
    this.ensureOpen('list');
    const ref = { family: checkFamily(table.family), name: checkName('table name', table.name) };
    const t = this.tables.get(tkey(ref.family, ref.name));
    if (!t) throw this.error('ENOENT', `No such file or directory`, `list table ${ref.family} ${ref.name}`);
    return this.listTable(t, Boolean(_opts.terse));
  }

  async listSet(table: TableRef, name: string, kind?: 'set' | 'map'): Promise<ListedSet> {
    this.ensureOpen('list');
    const op = `list ${kind ?? 'set'} ${table.family} ${table.name} ${name}`;
    const t = this.tables.get(tkey(checkFamily(table.family), checkName('table name', table.name)));
    const s = t?.sets.get(checkName('set name', name));
    if (!t || !s || (kind && (kind === 'map') !== s.isMap)) throw this.error('ENOENT', 'No such file or directory', op);
    const { elem, ...info } = this.listSetObj(t, s, false);
    return { kind: s.isMap ? 'map' : 'set', info, elements: elem ?? [] };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Every table, listed. */
  dump(): ListedTable[] {
    return [...this.tables.values()].map((t) => this.listTable(t, false));
  }

  /** Names of the tables, "family name". */
  tableNames(): string[] {
    return [...this.tables.values()].map((t) => `${t.family} ${t.name}`);
  }

  // ── Transaction machinery ────────────────────────────────────────────────────────────────────────

  private ensureOpen(operation: string): void {
    if (this.closed) throw this.error('E_NFT_EXECUTOR', 'executor is closed', operation);
  }

  private error(code: NftErrorCode, text: string, operation: string, index?: number, command?: unknown): NftError {
    const d: ConstructorParameters<typeof NftError>[0] = { code, stderr: text, executor: this.name, operation };
    if (index !== undefined) { d.index = index; d.command = command; }
    return new NftError(d);
  }

  private run(doc: NftDocument, dryRun: boolean): void {
    const operation = dryRun ? 'check' : 'apply';
    this.ensureOpen(operation);
    // work on JSON (as a real executor would receive it): Literal values become strings
    const items = (JSON.parse(JSON.stringify(doc)) as NftDocument).nftables;
    const cmds = items.filter((i) => !('metainfo' in i)) as JsonCommand[];
    const work = new Work(this.tables, this.tableHandle);
    for (let i = 0; i < cmds.length; i++) {
      try {
        work.exec(cmds[i]);
      } catch (e) {
        if (e instanceof Fail) throw this.error(e.code, e.text, operation, i, cmds[i]);
        throw e;
      }
    }
    if (dryRun) return;
    this.tables = work.tables;
    this.tableHandle = work.tableHandle;
    this.history.push(doc);
  }

  // ── Listing ──────────────────────────────────────────────────────────────────────────────────────

  private listSetObj(t: FTable, s: FSet, terse: boolean): JsonSet | JsonMap {
    const o: Record<string, unknown> = { family: t.family, name: s.name, table: t.name, type: s.type, handle: s.handle };
    if (s.isMap) o.map = s.map;
    if (s.size !== undefined) o.size = s.size;
    if (s.flags.length) o.flags = [...s.flags];
    if (s.timeout !== undefined) o.timeout = s.timeout;
    if (s.comment !== undefined) o.comment = s.comment;
    if (!terse && s.elems.size) {
      o.elem = [...s.elems.values()].map((e): JsonElem => {
        // as the kernel lists them: an element that times out shows its own timeout (when it has one) and what
        // is left of it, `expires` (the fake has no clock: all of it)
        const expires = e.timeout ?? s.timeout;
        const key: Expr = e.comment !== undefined || expires !== undefined
          ? { elem: { val: e.key, ...(e.comment !== undefined ? { comment: e.comment } : {}), ...(e.timeout !== undefined ? { timeout: e.timeout } : {}), ...(expires !== undefined ? { expires } : {}) } }
          : e.key;
        return e.value !== undefined ? [key, e.value] : key;
      });
    }
    return o as unknown as JsonSet | JsonMap;
  }

  private listTable(t: FTable, terse: boolean): ListedTable {
    const table = { family: t.family, name: t.name, handle: t.handle, ...(t.comment !== undefined ? { comment: t.comment } : {}) };
    const chains: JsonChain[] = [];
    const rules: JsonRule[] = [];
    for (const c of t.chains.values()) {
      const jc: JsonChain = { family: t.family, table: t.name, name: c.name, handle: c.handle };
      if (c.type) Object.assign(jc, { type: c.type, hook: c.hook, prio: c.prio, policy: c.policy ?? 'accept' });
      chains.push(jc);
    }
    for (const c of t.chains.values()) {
      for (const r of c.rules) {
        const jr: JsonRule = { family: t.family, table: t.name, chain: c.name, handle: r.handle };
        if (r.comment !== undefined) jr.comment = r.comment;
        jr.expr = structuredClone(r.expr);
        rules.push(jr);
      }
    }
    const sets: JsonSet[] = [];
    const maps: JsonMap[] = [];
    for (const s of t.sets.values()) {
      if (s.isMap) maps.push(this.listSetObj(t, s, terse) as JsonMap);
      else sets.push(this.listSetObj(t, s, terse) as JsonSet);
    }
    const counters: JsonCounter[] = [...t.counters.values()].map((c) => ({
      family: t.family, name: c.name, table: t.name, handle: c.handle,
      ...(c.comment !== undefined ? { comment: c.comment } : {}), packets: 0, bytes: 0,
    }));
    return { table, chains, rules, sets, maps, counters };
  }
}

/** One transaction being applied: copy-on-write view of the tables. */
class Work {
  readonly tables: Map<string, FTable>;
  private readonly copied = new Set<string>();
  tableHandle: number;

  constructor(tables: Map<string, FTable>, tableHandle: number) {
    this.tables = new Map(tables);
    this.tableHandle = tableHandle;
  }

  /** The table for reading, or ENOENT. */
  private get(family: string, name: string): FTable {
    const t = this.tables.get(tkey(family, name));
    if (!t) throw kernel('ENOENT');
    return t;
  }

  /** The table for writing (copied on first write in this transaction). */
  private mut(family: string, name: string): FTable {
    const k = tkey(family, name);
    const t = this.get(family, name);
    if (this.copied.has(k)) return t;
    const c = cloneTable(t);
    this.tables.set(k, c);
    this.copied.add(k);
    return c;
  }

  exec(cmd: JsonCommand): void {
    const verb = Object.keys(cmd)[0] as Verb | 'list';
    const obj = (cmd as Record<string, JsonObject>)[verb];
    if (verb === 'list' || !isObj(obj)) throw new Fail('E_NFT_PARSE', `Unsupported command ${JSON.stringify(cmd).slice(0, 80)}`);
    const kind = Object.keys(obj)[0];
    const body = (obj as unknown as Record<string, Record<string, unknown>>)[kind];
    switch (kind) {
      case 'table': return this.table(verb, body as never);
      case 'chain': return this.chain(verb, body as never);
      case 'rule': return this.rule(verb, body as never);
      case 'set': return this.set(verb, body as never, false);
      case 'map': return this.set(verb, body as never, true);
      case 'element': return this.element(verb, body as never);
      case 'counter': return this.counter(verb, body as never);
      default: throw new Fail('E_NFT_PARSE', `Unknown object '${kind}'`);
    }
  }

  private table(verb: Verb, b: { family: TableRef['family']; name: string; comment?: string }): void {
    const k = tkey(b.family, b.name);
    const t = this.tables.get(k);
    switch (verb) {
      case 'add':
      case 'create':
        if (t) { if (verb === 'create') throw kernel('EEXIST'); return; }
        this.tables.set(k, {
          family: b.family, name: b.name, handle: ++this.tableHandle, hgen: 0,
          chains: new Map(), sets: new Map(), counters: new Map(), ...(b.comment !== undefined ? { comment: b.comment } : {}),
        });
        this.copied.add(k);
        return;
      case 'delete':
        if (!t) throw new Fail('ENOENT', 'No such file or directory');
        this.tables.delete(k);
        this.copied.delete(k);
        return;
      case 'flush': {
        const m = this.mut(b.family, b.name);
        for (const c of m.chains.values()) c.rules = [];
        return;
      }
      default: throw new Fail('E_NFT_PARSE', `${verb} table is not supported`);
    }
  }

  /** Chains referenced from rules or vmap elements of the table. */
  private chainRefs(t: FTable, name: string, except?: string): boolean {
    for (const c of t.chains.values()) {
      if (c.name === except) continue;
      for (const r of c.rules) if (refsOf(r.expr).chains.has(name)) return true;
    }
    for (const s of t.sets.values()) {
      if (s.map !== 'verdict') continue;
      for (const e of s.elems.values()) if (refsOf(e.value).chains.has(name)) return true;
    }
    return false;
  }

  private chain(verb: Verb, b: JsonChain): void {
    const ro = this.get(b.family, b.table);
    const existing = ro.chains.get(b.name);
    switch (verb) {
      case 'add':
      case 'create': {
        const t = this.mut(b.family, b.table);
        const c = t.chains.get(b.name);
        if (c) {
          if (verb === 'create') throw kernel('EEXIST');
          if (b.type === undefined) return; // re-adding as a regular chain never changes anything
          if (!c.type) throw kernel('EEXIST');
          if (c.type !== b.type || c.hook !== b.hook || c.prio !== b.prio) throw kernel('EOPNOTSUPP');
          if (b.policy) c.policy = b.policy;
          return;
        }
        const nc: FChain = { name: b.name, handle: ++t.hgen, rules: [] };
        if (b.type) Object.assign(nc, { type: b.type, hook: b.hook, prio: b.prio, ...(b.policy ? { policy: b.policy } : {}) });
        t.chains.set(b.name, nc);
        return;
      }
      case 'delete': {
        if (!existing) throw kernel('ENOENT');
        // the chain's own rules go with it; only references from elsewhere pin it
        if (this.chainRefs(ro, b.name, b.name)) throw kernel('EBUSY');
        this.mut(b.family, b.table).chains.delete(b.name);
        return;
      }
      case 'flush':
        if (!existing) throw kernel('ENOENT');
        this.mut(b.family, b.table).chains.get(b.name)!.rules = [];
        return;
      default: throw new Fail('E_NFT_PARSE', `${verb} chain is not supported`);
    }
  }

  /** Check a rule's (or vmap element's) references against the table. */
  private checkRefs(t: FTable, e: unknown): void {
    const refs = refsOf(e);
    for (const s of refs.sets) if (!t.sets.has(s)) throw new Fail('ENOENT', 'No such file or directory');
    for (const c of refs.counters) if (!t.counters.has(c)) throw kernel('ENOENT');
    for (const name of refs.chains) {
      const target = t.chains.get(name);
      if (!target) throw kernel('ENOENT');
      if (target.type) throw kernel('EOPNOTSUPP');
    }
  }

  private rule(verb: Verb, b: JsonRule): void {
    const ro = this.get(b.family, b.table);
    if (!ro.chains.has(b.chain)) throw kernel('ENOENT');
    const t = this.mut(b.family, b.table);
    const c = t.chains.get(b.chain)!;
    const at = (handle: number): number => {
      const i = c.rules.findIndex((r) => r.handle === handle);
      if (i < 0) throw kernel('ENOENT');
      return i;
    };
    const make = (): FRule => {
      this.checkRefs(t, b.expr);
      const r: FRule = { handle: ++t.hgen, expr: b.expr ?? [] };
      if (b.comment !== undefined) r.comment = b.comment;
      return r;
    };
    switch (verb) {
      case 'add':
      case 'insert': {
        let pos: number;
        if (b.handle !== undefined) pos = at(b.handle) + (verb === 'add' ? 1 : 0);
        else if (b.index !== undefined) {
          if (b.index >= c.rules.length) throw kernel('ENOENT');
          pos = b.index + (verb === 'add' ? 1 : 0);
        } else pos = verb === 'add' ? c.rules.length : 0;
        c.rules.splice(pos, 0, make());
        return;
      }
      case 'replace': {
        const i = at(b.handle!);
        const r = make();
        r.handle = c.rules[i].handle;
        t.hgen--; // a replaced rule keeps its handle
        c.rules[i] = r;
        return;
      }
      case 'delete':
        c.rules.splice(at(b.handle!), 1);
        return;
      default: throw new Fail('E_NFT_PARSE', `${verb} rule is not supported`);
    }
  }

  private set(verb: Verb, b: JsonSet & Partial<JsonMap>, isMap: boolean): void {
    const ro = this.get(b.family, b.table);
    const existing = ro.sets.get(b.name);
    switch (verb) {
      case 'add':
      case 'create': {
        if (existing) {
          if (verb === 'create') throw kernel('EEXIST');
          const same = existing.isMap === isMap && JSON.stringify(existing.type) === JSON.stringify(b.type) &&
            existing.map === b.map && JSON.stringify([...existing.flags].sort()) === JSON.stringify([...(b.flags ?? [])].sort());
          if (!same) throw kernel('EEXIST');
        }
        const t = this.mut(b.family, b.table);
        let s = t.sets.get(b.name);
        if (!s) {
          s = { name: b.name, handle: ++t.hgen, isMap, type: b.type, flags: [...(b.flags ?? [])], elems: new Map() };
          if (isMap) s.map = b.map;
          if (b.comment !== undefined) s.comment = b.comment;
          if (b.size !== undefined) s.size = b.size;
          if (!isMap && (b as JsonSet).timeout !== undefined) s.timeout = (b as JsonSet).timeout;
          t.sets.set(b.name, s);
        }
        if (b.elem?.length) this.addElems(t, s, b.elem, false);
        return;
      }
      case 'delete': {
        if (!existing) throw kernel('ENOENT');
        for (const c of ro.chains.values()) for (const r of c.rules) if (refsOf(r.expr).sets.has(b.name)) throw kernel('EBUSY');
        this.mut(b.family, b.table).sets.delete(b.name);
        return;
      }
      case 'flush':
        if (!existing) throw kernel('ENOENT');
        this.mut(b.family, b.table).sets.get(b.name)!.elems.clear();
        return;
      default: throw new Fail('E_NFT_PARSE', `${verb} set is not supported`);
    }
  }

  private addElems(t: FTable, s: FSet, elems: JsonElem[], exclusive: boolean): void {
    const isInterval = s.flags.includes('interval');
    const batch: Array<[bigint, bigint]> = [];
    for (const raw of elems) {
      const pair = Array.isArray(raw) && raw.length === 2 && s.isMap;
      const { key: k0, comment, timeout } = unwrap(pair ? (raw as [Expr, Expr])[0] : (raw as Expr));
      // an element's own lifetime needs a set that times elements out (the kernel: EINVAL)
      if (timeout !== undefined && !s.flags.includes('timeout')) throw kernel('EINVAL');
      const value = pair ? (raw as [Expr, Expr])[1] : undefined;
      if (s.isMap && value === undefined) throw new Fail('E_NFT_FAILED', 'map element needs a value');
      if (!s.isMap && pair) throw new Fail('E_NFT_FAILED', 'set element cannot have a value');
      const key = isInterval ? normaliseIntervalKey(k0) : k0;
      if (!isInterval && isObj(key) && ('prefix' in key || 'range' in key)) {
        throw new Fail('E_NFT_FAILED', 'Set member cannot be range/prefix, missing interval flag on declaration');
      }
      if (s.map === 'verdict') this.checkRefs(t, value);
      const id = JSON.stringify(key);
      const old = s.elems.get(id);
      if (old) {
        if (exclusive) throw kernel('EEXIST');
        if (s.isMap && JSON.stringify(old.value) !== JSON.stringify(value)) throw kernel('EEXIST');
        continue;
      }
      if (isInterval) {
        const iv = interval(key);
        if (iv) {
          for (const [lo, hi] of batch) if (iv[0] <= hi && lo <= iv[1]) throw new Fail('EEXIST', 'conflicting intervals specified');
          for (const e of s.elems.values()) {
            const ev = interval(e.key);
            if (ev && iv[0] <= ev[1] && ev[0] <= iv[1]) throw new Fail('EEXIST', 'interval overlaps with an existing one');
          }
          batch.push(iv);
        }
      }
      // the kernel refuses an element beyond the set's `size` (nft_add_set_elem: ENFILE)
      if (s.size !== undefined && s.elems.size >= s.size) throw kernel('ENFILE');
      const fe: FElem = { key };
      if (value !== undefined) fe.value = value;
      if (comment !== undefined) fe.comment = comment;
      if (timeout !== undefined) fe.timeout = timeout;
      s.elems.set(id, fe);
    }
  }

  private element(verb: Verb, b: { family: TableRef['family']; table: string; name: string; elem: JsonElem[] }): void {
    const ro = this.get(b.family, b.table);
    if (!ro.sets.has(b.name)) throw kernel('ENOENT');
    const t = this.mut(b.family, b.table);
    const s = t.sets.get(b.name)!;
    switch (verb) {
      case 'add':
      case 'create':
        this.addElems(t, s, b.elem, verb === 'create');
        return;
      case 'delete':
        for (const raw of b.elem) {
          const k0 = unwrap(Array.isArray(raw) && s.isMap ? (raw as [Expr, Expr])[0] : (raw as Expr)).key;
          const id = JSON.stringify(s.flags.includes('interval') ? normaliseIntervalKey(k0) : k0);
          if (!s.elems.delete(id)) {
            throw s.flags.includes('interval') ? new Fail('ENOENT', 'element does not exist') : kernel('ENOENT');
          }
        }
        return;
      default: throw new Fail('E_NFT_PARSE', `${verb} element is not supported`);
    }
  }

  private counter(verb: Verb, b: JsonCounter): void {
    const ro = this.get(b.family, b.table);
    const existing = ro.counters.get(b.name);
    switch (verb) {
      case 'add':
      case 'create': {
        if (existing) { if (verb === 'create') throw kernel('EEXIST'); return; }
        const t = this.mut(b.family, b.table);
        t.counters.set(b.name, { name: b.name, handle: ++t.hgen, ...(b.comment !== undefined ? { comment: b.comment } : {}) });
        return;
      }
      case 'delete':
        if (!existing) throw kernel('ENOENT');
        for (const c of ro.chains.values()) for (const r of c.rules) if (refsOf(r.expr).counters.has(b.name)) throw kernel('EBUSY');
        this.mut(b.family, b.table).counters.delete(b.name);
        return;
      default: throw new Fail('E_NFT_PARSE', `${verb} counter is not supported`);
    }
  }
}

/** A fresh in-memory executor. */
export function openFake(): FakeNftExecutor {
  return new FakeNftExecutor();
}
