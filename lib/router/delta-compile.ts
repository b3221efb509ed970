/**
 * The compile of a NAT change from the compile of the model before it (docs/delta-nat.md): a command that only
 * added or removed static NATs and port forwards (the model's other parts the very same objects) changes a few
 * map elements, maybe an address of a public veth and an ARP responder element — found here from the changed
 * entries alone, so that the cost follows the change and not the router (10,000 static NATs: compiling the whole
 * router is ~50 ms). Pure: no I/O. Whatever does not fit the cases below returns undefined and the engine
 * compiles the whole router (always correct); test/router-fake/delta-nat.test.ts holds this to the full compile.
 *
 * What a static NAT / port forward reaches (router-table.ts, topology.ts, arp-responder.ts):
 *   - static_dnat, static_snat: one element each, when its public IP is assigned (natPlan);
 *   - pf_addr + pf_port (one port), pfr_addr (a range kept): one element each; a shifted range has one pf_addr +
 *     pf_port element per public port (router-table.ts splitForwards) → not handled here;
 *   - its public IP moves between the veth's addresses and the ARP responder's set when it becomes (or stops
 *     being) a static NAT address (publicAttachments), unless it is a source NAT address; a segment whose last
 *     own address would go (it keeps one, see publicAttachments), or whose responder set would appear or go
 *     (the companion table's chains with it) → not handled here.
 * The modules' table objects and public ingress do not read static NATs or port forwards (asserted for the
 * default modules by the equivalence test), and public IPs, tiers and module state are unchanged here.
 */
import type { RouterModel } from './model.js';
import type { Attachment, PlumbingPlan } from './plumbing-plan.js';
import { NAT_ELEMENTS, portForwardKind, type PortForward } from './router-table.js';
import { responderElement, responderSetName } from './arp-responder.js';
import { segmentText } from './segment.js';
import { compareText } from '../util/compare.js';
import type { ElementChange } from '../nft/table-delta.js';
import type { ElementItem, NftMap, NftObject, NftSet } from '../nft/objects.js';

type StaticNat = RouterModel['staticNats'][number];

/** What a router's last reconcile compiled for its model (kept with it: warm-cache.ts). */
export interface Compiled {
  /** The router table's contents. */
  want: readonly NftObject[];
  /** The ARP responder table's contents. */
  arp: readonly NftObject[];
  /** The interface indexes `arp` was compiled with (responder devices). */
  index: ReadonlyMap<string, number>;
  /** publicAttachments(model) */
  pub: readonly Attachment[];
  /** plumbingPlan(model, pub) */
  plan: PlumbingPlan;
  /** Public IP → how many static NATs name it (shared by the compiles of a warm router: DeltaCompile.natted). */
  natted: Map<string, number>;
}

/** Static NATs' public IPs counted (Compiled.natted). */
export function nattedCounts(m: RouterModel): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of m.staticNats) out.set(s.publicIp, (out.get(s.publicIp) ?? 0) + 1);
  return out;
}

/** Entries that went and came, by identity. */
export interface ListDelta<T> {
  removed: T[];
  /** The removed entries' indexes in the list before (ascending). */
  removedAt: number[];
  added: T[];
}

/**
 * `after` against `before` by identity, when it is `before` with some entries taken out and some new ones
 * appended (what filter + push make): then the compile's element order is the old one minus the removed, plus
 * the added. Undefined for anything else (a reorder, an entry moved or repeated). Compares pointers along both
 * lists (a common prefix and suffix), sets only over the stretch that differs.
 */
export function listDelta<T>(before: readonly T[], after: readonly T[]): ListDelta<T> | undefined {
  if (before === after) return { removed: [], removedAt: [], added: [] };
  const n = Math.min(before.length, after.length);
  let p = 0;
  while (p < n && before[p] === after[p]) p++;
  let eb = before.length;
  let ea = after.length;
  while (eb > p && ea > p && before[eb - 1] === after[ea - 1]) {
    eb--;
    ea--;
  }
  const bm = before.slice(p, eb);
  const am = after.slice(p, ea);
  const inAfter = new Set(am);
  const inBefore = new Set(bm);
  const kept = bm.filter((e) => inAfter.has(e));
  for (let i = 0; i < kept.length; i++) if (am[i] !== kept[i]) return undefined;
  const added = am.slice(kept.length);
  if (added.some((e) => inBefore.has(e)) || new Set(added).size !== added.length) return undefined;
  // added entries must end the list (the compile appends them)
  if (added.length && ea !== after.length) return undefined;
  const removedAt: number[] = [];
  bm.forEach((e, i) => {
    if (!inAfter.has(e)) removedAt.push(p + i);
  });
  return { removed: removedAt.map((i) => before[i]), removedAt, added };
}

/** The NAT change between two models: static NATs and port forwards that went and came. */
export interface NatDelta {
  staticNats: ListDelta<StaticNat>;
  portForwards: ListDelta<PortForward>;
}

/**
 * The change from `before` to `after` when it touched static NATs and port forwards only — every other part of
 * the model the very same value (a mutation runs on a shallow copy whose containers are frozen: warm-cache.ts)
 * — and nothing else (undefined otherwise, and when nothing changed by identity).
 */
export function natDelta(before: RouterModel, after: RouterModel): NatDelta | undefined {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  for (const k of keys) {
    if (k === 'staticNats' || k === 'portForwards') continue;
    if ((before as unknown as Record<string, unknown>)[k] !== (after as unknown as Record<string, unknown>)[k]) return undefined;
  }
  const sn = listDelta(before.staticNats, after.staticNats);
  const pf = listDelta(before.portForwards, after.portForwards);
  if (!sn || !pf) return undefined;
  if (!sn.removed.length && !sn.added.length && !pf.removed.length && !pf.added.length) return undefined;
  return { staticNats: sn, portForwards: pf };
}

/** An address that moves between a public veth and the ARP responder. */
export interface AddressMove {
  dev: string;
  ip: string;
  /** `ip/prefix` as on the veth. */
  address: string;
  /** true: it goes on the veth (no longer a static NAT address); false: it leaves it for the responder. */
  toVeth: boolean;
}

/** The compile of the changed model, and what changes to get there. */
export interface DeltaCompile {
  compiled: Compiled;
  /** Element changes of the router table and of the ARP responder table. */
  main: ElementChange[];
  arp: ElementChange[];
  moves: AddressMove[];
  /** The new static NAT counts of the public IPs the change touched (0: none left), for Compiled.natted — which
   *  `compiled` shares with the compile before (a 10,000-entry map is not copied per command): apply at commit. */
  natted: Map<string, number>;
  /** Static NATs and port forwards whose mappings went and came (conntrack clean-up: natPlan entries). */
  nat: { removedStatic: StaticNat[]; addedStatic: StaticNat[]; removedPf: PortForward[]; addedPf: PortForward[] };
}

const sameItem = (a: ElementItem, b: ElementItem): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Drop the deletions that the additions put back unchanged (same key and value: no kernel operation). */
function cancelled(del: ElementItem[], add: ElementItem[]): { del: ElementItem[]; add: ElementItem[] } {
  if (!del.length || !add.length) return { del, add };
  const d = [...del];
  const a: ElementItem[] = [];
  for (const it of add) {
    const i = d.findIndex((x) => sameItem(x, it));
    if (i >= 0) d.splice(i, 1);
    else a.push(it);
  }
  return { del: d, add: a };
}

function withElements<T extends NftSet | NftMap>(o: T, items: ElementItem[]): T {
  const { elements: _e, ...rest } = o;
  return (items.length ? { ...rest, elements: items } : rest) as T;
}

/**
 * One map's new object and element change: the old elements (one per included entry of `oldList`, in order)
 * minus those of removed entries, plus those of added ones. Undefined when the old elements do not line up.
 */
function mapChange<E>(
  objs: NftObject[], name: string, oldList: readonly E[], delta: ListDelta<E>, include: (e: E) => boolean, make: (e: E) => ElementItem,
): ElementChange | undefined {
  const at = objs.findIndex((o) => o.kind === 'map' && o.name === name);
  if (at < 0) return undefined;
  const old = objs[at] as NftMap;
  const items = old.elements ?? [];
  const removed = delta.removed.filter(include);
  const added = delta.added.filter(include).map(make);
  if (!removed.length && !added.length) return { obj: old, del: [], add: [] };
  let kept: ElementItem[];
  const del: ElementItem[] = [];
  if (!removed.length) {
    kept = items;
  } else {
    const gone = new Set(removed);
    kept = [];
    let j = 0;
    for (const e of oldList) {
      if (!include(e)) continue;
      const it = items[j++];
      if (it === undefined) return undefined;
      if (gone.has(e)) {
        if (!sameItem(it, make(e))) return undefined;
        del.push(it);
      } else {
        kept.push(it);
      }
    }
    if (j !== items.length) return undefined;
  }
  const obj = withElements(old, [...kept, ...added]);
  objs[at] = obj;
  return { obj, ...cancelled(del, added) };
}

/** Index of `x` in the sorted `list` (compareText), or where it would go (negative: -(insertion point) - 1). */
function search(list: readonly string[], x: string): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareText(list[mid], x);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return -lo - 1;
}

/**
 * The compile of `after` from `prev` (the compile of `before`), when `delta` is all that changed (natDelta).
 * Undefined when the change does not fit (see the header): the caller compiles the whole router.
 */
export function compileDelta(before: RouterModel, after: RouterModel, prev: Compiled, delta: NatDelta): DeltaCompile | undefined {
  const assigned = (ip: string): boolean => Object.prototype.hasOwnProperty.call(after.publicIps, ip);
  const sn = delta.staticNats;
  const pf = delta.portForwards;
  if ([...pf.removed, ...pf.added].some((p) => portForwardKind(p) === 'shifted' && assigned(p.publicIp))) return undefined;

  // router table: the maps' elements
  const want = [...prev.want];
  const main: ElementChange[] = [];
  const staticIn = (s: StaticNat): boolean => assigned(s.publicIp);
  const pfIn = (kind: 'single' | 'sameRange') => (p: PortForward): boolean => assigned(p.publicIp) && portForwardKind(p) === kind;
  const parts: Array<ElementChange | undefined> = [];
  if (sn.removed.length || sn.added.length) {
    parts.push(mapChange(want, 'static_dnat', before.staticNats, sn, staticIn, NAT_ELEMENTS.static_dnat));
    parts.push(mapChange(want, 'static_snat', before.staticNats, sn, staticIn, NAT_ELEMENTS.static_snat));
  }
  if (pf.removed.length || pf.added.length) {
    parts.push(mapChange(want, 'pf_addr', before.portForwards, pf, pfIn('single'), NAT_ELEMENTS.pf_addr));
    parts.push(mapChange(want, 'pf_port', before.portForwards, pf, pfIn('single'), NAT_ELEMENTS.pf_port));
    parts.push(mapChange(want, 'pfr_addr', before.portForwards, pf, pfIn('sameRange'), NAT_ELEMENTS.pfr_addr));
  }
  for (const p of parts) {
    if (!p) return undefined;
    if (p.del.length || p.add.length) main.push(p);
  }

  // public IPs that become, or stop being, static NAT addresses: veth address <-> ARP responder element
  const change = new Map<string, number>();
  for (const s of sn.removed) change.set(s.publicIp, (change.get(s.publicIp) ?? 0) - 1);
  for (const s of sn.added) change.set(s.publicIp, (change.get(s.publicIp) ?? 0) + 1);
  const natted = new Map<string, number>();
  const moves: AddressMove[] = [];
  interface Touched { a: Attachment; at: number; set: NftSet; elems: ElementItem[]; del: ElementItem[]; add: ElementItem[] }
  const touched = new Map<number, Touched>();
  const arp = [...prev.arp];
  const groupOf = new Map(prev.pub.map((a, i) => [`${a.hostDev} ${segmentText(a.segment)}`, i]));
  const wasNatted = (ip: string): boolean => (prev.natted.get(ip) ?? 0) > 0;
  for (const [ip, d] of change) {
    const count = (prev.natted.get(ip) ?? 0) + d;
    if (count < 0) return undefined;
    natted.set(ip, count);
    const p = assigned(ip) ? after.publicIps[ip] : undefined;
    if (!p || p.sourceNat || wasNatted(ip) === count > 0) continue;
    const g = groupOf.get(`${p.hostDev} ${segmentText(p.segment)}`);
    if (g === undefined) return undefined;
    let t = touched.get(g);
    if (!t) {
      const orig = prev.pub[g];
      // a segment whose only own address is a static NAT one (publicAttachments keeps one), or without responder
      // set (its table's chains would come with it): compiled whole
      const own = orig.garp ?? [];
      const fallback = own.length === 1 && wasNatted(own[0]) && !after.publicIps[own[0]]?.sourceNat;
      if (fallback || !orig.arpOnly?.length || own.length !== orig.addresses.length || !prev.index.has(orig.nsVeth)) return undefined;
      const name = responderSetName(orig.nsVeth);
      const at = arp.findIndex((o) => o.kind === 'set' && o.name === name);
      if (at < 0) return undefined;
      const set = arp[at] as NftSet;
      if ((set.elements ?? []).length !== orig.arpOnly.length) return undefined;
      t = {
        a: { ...orig, addresses: [...orig.addresses], garp: [...own], arpOnly: [...orig.arpOnly] },
        at, set, elems: [...(set.elements ?? [])], del: [], add: [],
      };
      touched.set(g, t);
    }
    const { a } = t;
    const address = `${p.ip}/${p.prefixLen}`;
    const garp = a.garp!;
    const arpOnly = a.arpOnly!;
    const i = search(garp, ip);
    const j = search(arpOnly, ip);
    if (count > 0) {
      if (i < 0 || a.addresses[i] !== address || j >= 0) return undefined;
      garp.splice(i, 1);
      a.addresses.splice(i, 1);
      arpOnly.splice(-j - 1, 0, ip);
      t.elems.splice(-j - 1, 0, responderElement(ip));
      t.add.push(responderElement(ip));
      moves.push({ dev: a.nsVeth, ip, address, toVeth: false });
    } else {
      if (i >= 0 || j < 0) return undefined;
      arpOnly.splice(j, 1);
      t.del.push(t.elems.splice(j, 1)[0]);
      garp.splice(-i - 1, 0, ip);
      a.addresses.splice(-i - 1, 0, address);
      moves.push({ dev: a.nsVeth, ip, address, toVeth: true });
    }
  }
  const arpChanges: ElementChange[] = [];
  let pub = prev.pub;
  let plan = prev.plan;
  if (touched.size) {
    const pubNext = [...prev.pub];
    const replaced = new Map<Attachment, Attachment>();
    for (const [g, t] of touched) {
      // the responder's set keeps at least one address (else its table's chains would go too), the veth one own
      if (!t.a.arpOnly!.length || !t.a.garp!.length) return undefined;
      const obj = withElements(t.set, t.elems);
      arp[t.at] = obj;
      arpChanges.push({ obj, del: t.del, add: t.add });
      replaced.set(prev.pub[g], t.a);
      pubNext[g] = t.a;
    }
    pub = pubNext;
    plan = { ...prev.plan, attachments: prev.plan.attachments.map((x) => replaced.get(x) ?? x) };
  }
  return {
    compiled: { want, arp: touched.size ? arp : prev.arp, index: prev.index, pub, plan, natted: prev.natted },
    natted,
    main,
    arp: arpChanges,
    moves,
    nat: {
      removedStatic: sn.removed.filter(staticIn), addedStatic: sn.added.filter(staticIn),
      removedPf: pf.removed.filter((p) => assigned(p.publicIp)), addedPf: pf.added.filter((p) => assigned(p.publicIp)),
    },
  };
}
