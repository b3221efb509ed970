/**
 * Compiles an ordered list of rules (verdict + matchers) into one nft chain, compressing them into sets: layers
 * by verdict conflicts, groups by constrained fields, disjoint intervals, no interval sets behind a drop — the
 * why and the measurements are in docs/firewall.md ("Sets instead of rules").
 */import { createHash } from 'node:crypto';
import * as N from '../../nft/index.js';
import { bigIntToIp } from '../../util/ip.js';
import type { RuleCidr } from './cidr.js';
import { addressValue, isHost } from './cidr.js';
import type { Matcher } from './matcher.js';
import type { IpFamily } from '../../util/ip.js';

export type FwVerdict = 'accept' | 'drop' | 'return';

/** One rule: its verdict and its matchers (one per address family, see matcher.ts). */
export interface Entry {
  verdict: FwVerdict;
  matchers: Matcher[];
}

/** Rules whose relative order does not matter (one verdict). */
export interface VerdictRun {
  verdict: FwVerdict;
  matchers: Matcher[];
}

/** Below this many elements a group is emitted as plain rules (a set costs about as much as 3–4 rules). */
export const SET_MIN = 4;
/** Matcher comparisons allowed for layering before falling back to verdict runs. */
export const LAYER_BUDGET = 3_000_000;

// ── Overlap (can one packet match both?) ─────────────────────────────────────────────────────────────

function cidrsOverlap(a: RuleCidr[], b: RuleCidr[]): boolean {
  if (!a.length || !b.length) return true;
  for (const x of a) for (const y of b) if (x.lo <= y.hi && y.lo <= x.hi) return true;
  return false;
}

export function overlap(a: Matcher, b: Matcher): boolean {
  if (a.family !== b.family) return false;
  if (a.pubIp !== undefined && b.pubIp !== undefined && a.pubIp !== b.pubIp) return false;
  if (a.proto !== undefined && b.proto !== undefined && a.proto !== b.proto) return false;
  if (a.ports && b.ports && (a.ports[1] < b.ports[0] || b.ports[1] < a.ports[0])) return false;
  if (a.icmpType !== undefined && b.icmpType !== undefined && a.icmpType !== b.icmpType) return false;
  if (a.icmpCode !== undefined && b.icmpCode !== undefined && a.icmpCode !== b.icmpCode) return false;
  return cidrsOverlap(a.src, b.src) && cidrsOverlap(a.dst, b.dst);
}

/** Matchers of one layer, bucketed so that an overlap query only looks at plausible candidates. */
class OverlapIndex {
  private readonly byPort = new Map<string, Matcher[]>(); // family|proto|port (single-port matchers)
  private readonly byProto = new Map<string, Matcher[]>(); // family|proto (every matcher with that proto)
  private readonly portless = new Map<string, Matcher[]>(); // family|proto, no single port
  private readonly anyProto = new Map<number, Matcher[]>(); // family, any protocol
  private readonly all = new Map<number, Matcher[]>(); // family

  private static push<K>(map: Map<K, Matcher[]>, k: K, m: Matcher): void {
    const l = map.get(k);
    if (l) l.push(m);
    else map.set(k, [m]);
  }

  add(m: Matcher): void {
    OverlapIndex.push(this.all, m.family, m);
    if (m.proto === undefined) { OverlapIndex.push(this.anyProto, m.family, m); return; }
    const fp = `${m.family}|${m.proto}`;
    OverlapIndex.push(this.byProto, fp, m);
    if (m.ports && m.ports[0] === m.ports[1]) OverlapIndex.push(this.byPort, `${fp}|${m.ports[0]}`, m);
    else OverlapIndex.push(this.portless, fp, m);
  }

  /** Does any matcher here overlap `m`? `cost` counts comparisons. */
  hits(m: Matcher, cost: { n: number }): boolean {
    const scan = (l: Matcher[] | undefined): boolean => {
      if (!l) return false;
      cost.n += l.length;
      for (const x of l) if (overlap(x, m)) return true;
      return false;
    };
    if (m.proto === undefined) return scan(this.all.get(m.family));
    const fp = `${m.family}|${m.proto}`;
    if (scan(this.anyProto.get(m.family))) return true;
    if (m.ports && m.ports[0] === m.ports[1]) return scan(this.byPort.get(`${fp}|${m.ports[0]}`)) || scan(this.portless.get(fp));
    return scan(this.byProto.get(fp));
  }
}

/** Order-preserving grouping of rules into as few one-verdict segments as possible (see the header). */
export function layers(entries: Entry[], budget = LAYER_BUDGET): VerdictRun[] {
  const out: Array<{ verdict: FwVerdict; matchers: Matcher[]; index: OverlapIndex }> = [];
  const cost = { n: 0 };
  for (const e of entries) {
    let min = 0;
    for (let l = out.length - 1; l >= 0 && min === 0; l--) {
      if (out[l].verdict === e.verdict) continue;
      if (e.matchers.some((m) => out[l].index.hits(m, cost))) min = l + 1;
    }
    if (cost.n > budget) return runs(entries);
    let target = out.findIndex((x, i) => i >= min && x.verdict === e.verdict);
    if (target < 0) {
      out.push({ verdict: e.verdict, matchers: [], index: new OverlapIndex() });
      target = out.length - 1;
    }
    for (const m of e.matchers) {
      out[target].matchers.push(m);
      out[target].index.add(m);
    }
  }
  return out.map((x) => ({ verdict: x.verdict, matchers: x.matchers }));
}

/** Consecutive rules with the same verdict, in order. */
export function runs(entries: Entry[]): VerdictRun[] {
  const out: VerdictRun[] = [];
  for (const e of entries) {
    const last = out[out.length - 1];
    if (last && last.verdict === e.verdict) for (const m of e.matchers) last.matchers.push(m);
    else out.push({ verdict: e.verdict, matchers: [...e.matchers] });
  }
  return out;
}

// ── Sets ─────────────────────────────────────────────────────────────────────────────────────────────

type FieldKind = 'pub' | 'proto' | 'port' | 'icmptype' | 'src' | 'dst';

const verdictStmt = (v: FwVerdict): N.Verdict => (v === 'accept' ? N.accept() : v === 'drop' ? N.drop() : N.ret());

function fieldExpr(k: FieldKind, f: IpFamily): { expr: N.Expr; type: N.KeyType } {
  const addr = f === 4 ? 'ipv4_addr' : 'ipv6_addr';
  switch (k) {
    case 'pub': return { expr: f === 4 ? N.F.ipDaddr : N.F.ip6Daddr, type: addr };
    case 'proto': return { expr: N.F.l4proto, type: 'inet_proto' };
    case 'port': return { expr: N.F.thDport, type: 'inet_service' };
    case 'icmptype': return { expr: N.payload(f === 4 ? 'icmp' : 'icmpv6', 'type'), type: f === 4 ? 'icmp_type' : 'icmpv6_type' };
    case 'src': return { expr: f === 4 ? N.F.ipSaddr : N.F.ip6Saddr, type: addr };
    case 'dst': return { expr: f === 4 ? N.F.ipDaddr : N.F.ip6Daddr, type: addr };
  }
}

const FIELD_BITS: Array<[FieldKind, number]> = [['pub', 1], ['proto', 2], ['port', 4], ['icmptype', 8], ['src', 16], ['dst', 32]];
const fieldLists = new Map<number, FieldKind[]>();

/** The fields a matcher constrains as a bit mask (0: it needs a plain rule). */
function fieldMask(m: Matcher): number {
  if (m.icmpCode !== undefined) return 0;
  return (m.pubIp !== undefined ? 1 : 0) | (m.proto !== undefined && m.icmpType === undefined ? 2 : 0) | (m.ports ? 4 : 0)
    | (m.icmpType !== undefined ? 8 : 0) | (m.src.length ? 16 : 0) | (m.dst.length ? 32 : 0);
}

function fieldsOfMask(mask: number): FieldKind[] {
  let f = fieldLists.get(mask);
  if (!f) fieldLists.set(mask, (f = FIELD_BITS.filter(([, b]) => mask & b).map(([k]) => k)));
  return f;
}

/** One set element: the matcher's values for the group's fields, with one source and one destination CIDR. */
interface Element {
  m: Matcher;
  s?: RuleCidr;
  d?: RuleCidr;
  /** Element key for nft (one value, or one per field). */
  nft: N.ValueInput;
  /** Dedup key. */
  text: string;
  interval: boolean;
}

const cidrNft = (c: RuleCidr): string => (isHost(c) ? c.address : c.text);

function elementsOf(m: Matcher, fields: FieldKind[], out: Element[]): void {
  const srcs: Array<RuleCidr | undefined> = m.src.length ? m.src : [undefined];
  const dsts: Array<RuleCidr | undefined> = m.dst.length ? m.dst : [undefined];
  const ranged = m.ports !== undefined && m.ports[0] !== m.ports[1];
  for (const s of srcs) {
    for (const d of dsts) {
      const vals: N.ValueInput[] = [];
      let text = '';
      let interval = ranged;
      for (const k of fields) {
        switch (k) {
          case 'pub': vals.push(m.pubIp!); text += `${m.pubIp}|`; break;
          case 'proto': vals.push(m.proto!); text += `${m.proto}|`; break;
          case 'port': vals.push(ranged ? N.portRange(m.ports![0], m.ports![1]) : m.ports![0]); text += `${m.ports![0]}-${m.ports![1]}|`; break;
          case 'icmptype': vals.push(m.icmpType!); text += `${m.icmpType}|`; break;
          case 'src': if (!isHost(s!)) interval = true; vals.push(cidrNft(s!)); text += `${s!.text}|`; break;
          case 'dst': if (!isHost(d!)) interval = true; vals.push(cidrNft(d!)); text += `${d!.text}|`; break;
        }
      }
      const e: Element = { m, nft: vals.length === 1 ? vals[0] : vals, text, interval };
      if (s) e.s = s;
      if (d) e.d = d;
      out.push(e);
    }
  }
}

/** [lo, hi] of each field of an element (for overlap packing). */
function box(e: Element, fields: FieldKind[]): Array<[bigint, bigint]> {
  return fields.map((k): [bigint, bigint] => {
    switch (k) {
      case 'pub': { const v = addressValue(e.m.pubIp!)!.value; return [v, v]; }
      case 'proto': return [BigInt(e.m.proto!), BigInt(e.m.proto!)];
      case 'port': return [BigInt(e.m.ports![0]), BigInt(e.m.ports![1])];
      case 'icmptype': return [BigInt(e.m.icmpType!), BigInt(e.m.icmpType!)];
      case 'src': return [e.s!.lo, e.s!.hi];
      case 'dst': return [e.d!.lo, e.d!.hi];
    }
  });
}

/**
 * Split interval elements into groups whose elements are pairwise disjoint: a sweep along the field with the
 * most distinct start values, each group keeping only the elements that can still overlap the next one.
 */
function pack(elems: Element[], fields: FieldKind[]): Element[][] {
  const boxes = elems.map((e) => ({ e, b: box(e, fields) }));
  let axis = 0;
  let best = -1;
  for (let i = 0; i < fields.length; i++) {
    const n = new Set(boxes.map((x) => x.b[i][0])).size;
    if (n > best) { best = n; axis = i; }
  }
  boxes.sort((x, y) => (x.b[axis][0] < y.b[axis][0] ? -1 : x.b[axis][0] > y.b[axis][0] ? 1 : 0));
  const disjoint = (p: Array<[bigint, bigint]>, q: Array<[bigint, bigint]>): boolean => p.some((r, i) => r[1] < q[i][0] || q[i][1] < r[0]);
  const groups: Array<{ all: Element[]; active: Array<Array<[bigint, bigint]>> }> = [];
  for (const { e, b } of boxes) {
    const lo = b[axis][0];
    let g = groups.find((x) => {
      x.active = x.active.filter((a) => a[axis][1] >= lo);
      return x.active.every((a) => disjoint(a, b));
    });
    if (!g) groups.push((g = { all: [], active: [] }));
    g.all.push(e);
    g.active.push(b);
  }
  return groups.map((g) => g.all);
}

/** One-dimensional interval elements: the union of overlapping intervals (exact for a membership test). */
function mergeIntervals(elems: Element[], family: IpFamily, kind: FieldKind): N.ElementItem[] {
  const spans = elems.map((e) => ({ e, r: box(e, [kind])[0] }));
  spans.sort((x, y) => (x.r[0] < y.r[0] ? -1 : x.r[0] > y.r[0] ? 1 : 0));
  const out: Array<{ lo: bigint; hi: bigint; first: Element; n: number }> = [];
  for (const { e, r } of spans) {
    const last = out[out.length - 1];
    if (last && r[0] <= last.hi) {
      if (r[1] > last.hi) last.hi = r[1];
      last.n++;
    } else {
      out.push({ lo: r[0], hi: r[1], first: e, n: 1 });
    }
  }
  return out.map((x) => {
    if (x.n === 1) return { key: x.first.nft };
    if (kind === 'port') return { key: N.portRange(Number(x.lo), Number(x.hi)) };
    return { key: `${bigIntToIp(x.lo, family)}-${bigIntToIp(x.hi, family)}` };
  });
}

/** A plain rule for one matcher (with at most one source and one destination CIDR). */
function plainRule(chain: string, m: Matcher, s: RuleCidr | undefined, d: RuleCidr | undefined, verdict: FwVerdict): N.Rule {
  const st: N.Stmt[] = [N.meta.nfproto(m.family === 4 ? 'ipv4' : 'ipv6')];
  const ipm = m.family === 4 ? N.ip : N.ip6;
  if (m.pubIp !== undefined) st.push(ipm.daddr(m.pubIp));
  if (m.proto !== undefined) st.push(N.meta.l4proto(m.proto));
  if (m.ports) st.push(N.th.dport(m.ports[0] === m.ports[1] ? m.ports[0] : N.portRange(m.ports[0], m.ports[1])));
  const ic = m.family === 4 ? N.icmp : N.icmpv6;
  if (m.icmpType !== undefined) st.push(ic.type(m.icmpType));
  if (m.icmpCode !== undefined) st.push(ic.code(m.icmpCode));
  if (s) st.push(ipm.saddr(cidrNft(s)));
  if (d) st.push(ipm.daddr(cidrNft(d)));
  st.push(verdictStmt(verdict));
  return N.rule(chain, st);
}

/**
 * The constant field that widens a one-field key of ≤ 16 bits: `meta l4proto` when the set's rule matches one
 * protocol (a port or an ICMP type set), else `meta nfproto` (a set of protocols). Its value is the same in
 * every element and the rule matches it anyway, so the lookup's outcome is unchanged.
 */
function widenKey(g: Group, fields: FieldKind[]): { def: { expr: N.Expr; type: N.KeyType }; value: N.ValueInput } {
  const proto = g.proto ?? (fields.includes('icmptype') ? (g.family === 4 ? 1 : 58) : undefined);
  if (proto !== undefined && g.fields[0] !== 'proto') return { def: { expr: N.F.l4proto, type: 'inet_proto' }, value: proto };
  return { def: { expr: N.F.nfproto, type: 'nf_proto' }, value: N.symbol(g.family === 4 ? 'ipv4' : 'ipv6') };
}

interface Group {
  family: IpFamily;
  fields: FieldKind[];
  proto?: number;
  interval: boolean;
  elems: Element[];
}

const valueKey = (v: N.ValueInput): string => (typeof v === 'object' ? JSON.stringify(v) : String(v));
const isRangeValue = (v: N.ValueInput): boolean => typeof v === 'object' || (typeof v === 'string' && (v.includes('/') || v.includes('-')));

/**
 * Fields with the same value in every element (one public IP, one port, one source…) leave the key and become
 * a plain match in the set's rule: a constant field makes concatenated interval sets several times slower to
 * fill, and a shorter key may turn an interval set into a hash set. At least one field stays.
 */
function hoistConstants(g: Group): Group & { hoisted: N.Stmt[] } {
  const at = (e: Element, i: number): N.ValueInput => (Array.isArray(e.nft) && g.fields.length > 1 ? (e.nft as N.ValueInput[])[i] : e.nft);
  const keep: number[] = [];
  const hoisted: N.Stmt[] = [];
  const e0 = g.elems[0];
  const ipm = g.family === 4 ? N.ip : N.ip6;
  g.fields.forEach((k, i) => {
    const first = valueKey(at(e0, i));
    const constant = g.elems.every((e) => valueKey(at(e, i)) === first);
    const last = i === g.fields.length - 1 && keep.length === 0;
    if (!constant || last) { keep.push(i); return; }
    const m = e0.m;
    switch (k) {
      case 'pub': hoisted.push(ipm.daddr(m.pubIp!)); break;
      case 'proto': hoisted.push(N.meta.l4proto(m.proto!)); break;
      case 'port': hoisted.push(N.th.dport(m.ports![0] === m.ports![1] ? m.ports![0] : N.portRange(m.ports![0], m.ports![1]))); break;
      case 'icmptype': hoisted.push((g.family === 4 ? N.icmp : N.icmpv6).type(m.icmpType!)); break;
      case 'src': hoisted.push(ipm.saddr(cidrNft(e0.s!))); break;
      case 'dst': hoisted.push(ipm.daddr(cidrNft(e0.d!))); break;
    }
  });
  if (keep.length === g.fields.length) return { ...g, hoisted };
  const fields = keep.map((i) => g.fields[i]);
  const elems = g.elems.map((e) => {
    const vals = keep.map((i) => at(e, i));
    return { ...e, nft: vals.length === 1 ? vals[0] : vals };
  });
  return { ...g, fields, elems, interval: elems.some((e) => (Array.isArray(e.nft) ? (e.nft as N.ValueInput[]) : [e.nft]).some(isRangeValue)), hoisted };
}

/**
 * The chain's objects: the chain, its sets and its rules. `pre` statements start the chain, `tail` ends it
 * (the default verdict). Segments are evaluated in order. Set names are `${chain}_<n>`.
 */
export function compileChain(chain: string, segments: VerdictRun[], opts: { pre?: N.Stmt[][]; tail?: FwVerdict } = {}): N.NftObject[] {
  const objs: N.NftObject[] = [N.chain(chain)];
  const rules: N.Rule[] = [];
  for (const p of opts.pre ?? []) rules.push(N.rule(chain, p));
  let setNo = 0;
  const usedNames = new Set<string>();
  for (const seg of segments) {
    // group key: family, field mask and interval flag as one number
    const groups = new Map<number, { family: IpFamily; fields: FieldKind[]; proto?: number; interval: boolean; elems: Element[]; seen: Set<string> }>();
    const plain: Array<[Matcher, RuleCidr | undefined, RuleCidr | undefined]> = [];
    const scratch: Element[] = [];
    for (const m of seg.matchers) {
      const mask = fieldMask(m);
      if (!mask) {
        // an ICMP code, or nothing to key on (the matcher takes every packet of its family)
        for (const s of m.src.length ? m.src : [undefined]) for (const d of m.dst.length ? m.dst : [undefined]) plain.push([m, s, d]);
        continue;
      }
      // The protocol goes into the group (one set per protocol, `meta l4proto N` in its rule) rather than into
      // the key, unless it is the only field: a field with the same value in every element makes the kernel's
      // concatenated interval sets ~5x slower to fill (5,000 elements: 270 ms vs 60 ms).
      const split = (mask & 2) !== 0 && mask !== 2;
      const fields = fieldsOfMask(split ? mask & ~2 : mask);
      scratch.length = 0;
      elementsOf(m, fields, scratch);
      for (const e of scratch) {
        const key = (((split ? m.proto! + 1 : 0) * 4 + m.family) * 64 + mask) * 2 + (e.interval ? 1 : 0);
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { family: m.family, fields, ...(split ? { proto: m.proto! } : {}), interval: e.interval, elems: [], seen: new Set() }));
        if (g.seen.has(e.text)) continue; // the same element twice adds nothing
        g.seen.add(e.text);
        g.elems.push(e);
      }
    }
    for (const g0 of groups.values()) {
      const g = g0.elems.length >= SET_MIN ? hoistConstants(g0) : { ...g0, hoisted: [] as N.Stmt[] };
      // An interval set takes its new contents only after the commit has switched the generation (see 5. above):
      // drops use hash sets and plain rules only.
      if (g.elems.length < SET_MIN || (g.interval && seg.verdict === 'drop')) {
        for (const e of g.elems) plain.push([e.m, e.s, e.d]);
        continue;
      }
      const defs = g.fields.map((k) => fieldExpr(k, g.family));
      // a hash set keyed by one field of ≤ 16 bits (a port, a protocol, an ICMP type) would get the kernel's
      // bitmap backend, whose updates are quadratic (lib/nft/set-backend.ts): the key gets a constant leading
      // field instead (the protocol the rule already matches, else the family), which makes it a hash set
      const lead = !g.interval && defs.length === 1 && N.landsOnBitmap(defs[0].type) ? widenKey(g, g0.fields) : undefined;
      if (lead) defs.unshift(lead.def);
      const key = defs.length === 1 ? defs[0].expr : N.concatKey(...defs.map((d) => d.expr));
      const type = defs.length === 1 ? defs[0].type : defs.map((d) => d.type);
      const parts: N.ElementItem[][] = !g.interval
        ? [g.elems.map((e) => ({ key: lead ? [lead.value, e.nft] : e.nft }))]
        : defs.length === 1
          ? chunks(mergeIntervals(g.elems, g.family, g.fields[0]), (it) => valueKey(it.key))
          : pack(g.elems, g.fields).flatMap((p) => chunks(p, (e) => e.text)).map((p) => p.map((e) => ({ key: e.nft })));
      const head: N.Stmt[] = [N.meta.nfproto(g.family === 4 ? 'ipv4' : 'ipv6')];
      if (g.proto !== undefined) head.push(N.meta.l4proto(g.proto));
      else if (g0.fields.includes('icmptype')) head.push(N.meta.l4proto(g.family === 4 ? 1 : 58));
      head.push(...g.hoisted);
      for (const items of parts) {
        // Interval sets are named after their contents: a changed one is a new set, which the engine creates
        // (complete) in a transaction of its own before the rules switch to it (lib/nft/table-sync.ts), so a
        // rule never looks into a set the kernel has not filled yet. Hash sets change element by element.
        let name = `${chain}_${setNo++}`;
        for (let twin = 0; g.interval && (twin === 0 || usedNames.has(name)); twin++) name = `${chain}_i${contentHash(type, items, twin)}`;
        usedNames.add(name);
        objs.push(N.set(name, type, { ...(g.interval ? { flags: ['interval' as const] } : {}), elements: items }));
        rules.push(N.rule(chain, [...head, N.lookup(key, name), verdictStmt(seg.verdict)]));
      }
    }
    for (const [m, s, d] of plain) rules.push(plainRule(chain, m, s, d, seg.verdict));
  }
  if (opts.tail) rules.push(N.rule(chain, [verdictStmt(opts.tail)]));
  objs.push(...rules);
  return objs;
}

/** Interval sets are cut into chunks of about this many elements (see chunks()). */
export const CHUNK_AVG = 512;
const CHUNK_MIN = 128;
const CHUNK_MAX = 2048;

/** FNV-1a of a string (32 bits). */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * A large interval set cut into chunks at content-defined boundaries (after an element whose hash is 0 modulo
 * CHUNK_AVG, within [CHUNK_MIN, CHUNK_MAX]). Interval sets are named after their contents and a changed one is
 * created anew before the rules switch to it (see compileChain), which costs ~10 µs per element for a
 * concatenated key: a rule changed among 10,000 then re-creates one chunk of ~500 elements, not a set of
 * 4,000. The boundaries depend only on the elements next to them, so an element added or removed moves at
 * most the one boundary around it. Chunks of one disjoint group stay disjoint; each gets its own lookup rule.
 */
function chunks<T>(items: T[], textOf: (x: T) => string): T[][] {
  if (items.length <= 2 * CHUNK_AVG) return [items];
  const out: T[][] = [];
  let cur: T[] = [];
  for (const it of items) {
    cur.push(it);
    if (cur.length >= CHUNK_MAX || (cur.length >= CHUNK_MIN && fnv1a(textOf(it)) % CHUNK_AVG === 0)) {
      out.push(cur);
      cur = [];
    }
  }
  if (cur.length) out.push(cur);
  return out;
}

/** 12 hex digits naming an interval set by its type and elements (`twin` tells identical sets apart). */
function contentHash(type: unknown, items: N.ElementItem[], twin: number): string {
  return createHash('sha256').update(JSON.stringify([type, items, twin])).digest('hex').slice(0, 12);
}
