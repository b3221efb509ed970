/**
 * The fast way of a NAT command on a warm router (docs/delta-nat.md): add or delete static NATs and port forwards
 * at the cost of the change. Under the router's lock, with the warm router (warm-cache.ts) whose state file is
 * still the stored one: the mutation runs on a copy of the model's top level (frozen containers), the change is
 * found by identity and compiled from the previous compile (delta-compile.ts), and then, only if the kernel
 * provably holds our last commit — the namespace and its nftables generation those our last commit left, the
 * namespace side of the plumbing as planned (three dumps), the stamp of the tables deleted first in the very
 * transaction — the addresses that move between a veth and the ARP responder are moved (plumbing.moveAddresses, as
 * the cold NAT scope does: no gratuitous ARP, the responder answers with the veth's own MAC, so peers' entries
 * stay right), the map and responder elements changed in one transaction (lib/nft/table-delta.ts), conntrack
 * entries of removed mappings deleted (their revivable reverses guarded first, a second stamped transaction) and
 * the untranslated UDP entries to added ones, and the modules reconciled, as the full way does.
 *
 * Whatever does not fit returns `undefined` before the kernel is touched (or, rarely, after the addresses moved
 * and the stamp then refused: the full way reconciles those too) and the engine runs its full way, which is
 * always correct. A failure after the kernel was touched puts the router back as it was (the engine's undo, from
 * the stored model) and fails the command, as the full way does.
 */
import { combinedFingerprint, tableContents, type SyncResult } from '../nft/table-sync.js';
import { applyElementChanges, contentsWithElements } from '../nft/table-delta.js';
import type { NftExecutor } from '../nft/executor.js';
import type { RouterKernel } from './kernel.js';
import type { RouterModel } from './model.js';
import type { MutationVerdict } from './engine.js';
import { StateStore } from './state/store.js';
import { compileDelta, natDelta, type Compiled, type ListDelta, type NatDelta } from './delta-compile.js';
import { deepFreeze, type WarmCache, type WarmRouter } from './warm-cache.js';
import { appendRecord, natLogFull, type ListChange } from './state/nat-log.js';
import { ROUTER_TABLE } from './router-table.js';
import { ARP_TABLE } from './arp-responder.js';
import { moveAddresses, namespaceSideIntact } from './plumbing.js';
import type { NatPlan } from './router-table.js';
import { mirrorGuard, outboundAddress } from './nat-flow-cleanup.js';
import { outboundNat } from './topology.js';

/** What the fast way needs of the engine (its own parts stay in engine.ts). */
export interface FastHost {
  kernel: RouterKernel;
  store: StateStore;
  stateDir: string;
  warm: WarmCache;
  executor(ns: string): { ex: NftExecutor; release: () => Promise<void> };
  /** The engine's refusals of a stored model (another router's namespace, an L2 network). */
  refuse(stored: RouterModel): void;
  /** Errors as the engine reports them. */
  wrap(err: unknown, doing: string): Error;
  recordProof(ns: string, key: string, sync: SyncResult): void;
  /** Keep the compile for the model text `key` (EngineCaches: the next full command's previous compile). */
  cacheCompiled(m: RouterModel, key: string, c: Compiled): void;
  reconcileModules(m: RouterModel, previous: RouterModel): Promise<void>;
  committed(ns: string, m: RouterModel): void;
  /** Put the router back to `before` after a failed change (best effort). */
  undo(applied: RouterModel, before: RouterModel | undefined): Promise<void>;
  mark(phase: string): void;
}

/** The outcome of a fast change: the new model (deep-frozen) and how the tables were brought up to date. */
export interface FastResult {
  model: RouterModel;
  sync: SyncResult;
}

/** Static NATs and port forwards as the conntrack clean-up takes them (natPlan entries). */
const natOf = (staticNat: NatPlan['staticNat'], portForwards: NatPlan['portForwards']): NatPlan =>
  ({ publicIfs: [], sourceNat: [], staticNat: staticNat.map((s) => ({ ...s })), portForwards: portForwards.map((p) => ({ ...p })) });

/**
 * Freeze what a NAT change made new in the warm model's copy: the model, its two lists and their added entries.
 * natDelta proved the rest is the warm model's own (its other members identical, the lists' other entries the
 * same objects): frozen already. (deepFreeze would walk both lists: ~0.6 ms at 10,000 entries.)
 */
function freezeChanged(next: RouterModel, delta: NatDelta): void {
  for (const e of delta.staticNats.added) deepFreeze(e);
  for (const e of delta.portForwards.added) deepFreeze(e);
  Object.freeze(next.staticNats);
  Object.freeze(next.portForwards);
  Object.freeze(next);
}

/**
 * Run `mutate` on warm router `ns` the fast way; undefined: not possible, nothing changed (take the full way).
 * Throws what the full way would throw for the mutation's own refusals, and for a failed reconcile.
 */
export async function fastChange(h: FastHost, ns: string, mutate: (m: RouterModel) => MutationVerdict): Promise<FastResult | undefined> {
  const jpath = h.store.natLogOf(ns);
  const w = h.warm.get(h.stateDir, ns, h.store.savedMark(ns), jpath);
  if (!w) return undefined;
  const k = h.kernel;
  h.mark('load');
  h.refuse(w.model);
  const next: RouterModel = { ...w.model };
  let verdict: MutationVerdict;
  try {
    verdict = mutate(next);
  } catch (err) {
    // a write into the stored model's frozen parts: the full way runs the mutation on a model of its own
    if (err instanceof TypeError) return undefined;
    throw h.wrap(err, `changing ${ns}`);
  }
  // a router deleted, or nothing changed (the full way confirms the tables): not the fast way's
  if (verdict === 'delete' || verdict === 'unchanged') return undefined;
  const delta = natDelta(w.model, next);
  h.mark('mutate');
  const dc = delta && compileDelta(w.model, next, w.compiled, delta);
  if (!dc) return undefined;
  const fromMain = tableContents(w.compiled.want);
  const fromArp = w.compiled.arp.length ? tableContents(w.compiled.arp) : undefined;
  const toMain = contentsWithElements(fromMain, dc.compiled.want, dc.main);
  const toArp = dc.arp.length && fromArp ? contentsWithElements(fromArp, dc.compiled.arp, dc.arp) : fromArp;
  if (!toMain || (dc.arp.length && !toArp)) return undefined;
  const fp = (main: number, arp: number | undefined): number => combinedFingerprint(main, [{ table: ARP_TABLE, fingerprint: arp }]);
  const fromFp = fp(fromMain.fingerprint, fromArp?.fingerprint);
  const toFp = fp(toMain.fingerprint, toArp?.fingerprint);
  if (fromFp !== w.stamp.fingerprint) return undefined;
  h.mark('compile');
  // the kernel holds our last commit: same namespace, nothing committed nftables there since
  if (!k.netnsExists(ns) || k.netnsIdentity(ns) !== w.stamp.netns || k.nftGeneration(ns) !== w.stamp.generation) return undefined;
  let touched = false;
  try {
    const nsh = k.open(ns);
    try {
      // the responder's chains forward by interface index: the veths must be the ones it was compiled for
      if (!namespaceSideIntact(nsh, w.compiled.plan, w.compiled.index)) return undefined;
      touched = dc.moves.length > 0;
      if (touched) moveAddresses(k, nsh, w.compiled.plan, dc.compiled.plan);
    } finally {
      nsh.close();
    }
    h.mark('plumbing');
    const { ex, release } = h.executor(ns);
    let sync: SyncResult | undefined;
    try {
      sync = await applyElementChanges(ex, ROUTER_TABLE, fromFp, toFp, () => k.nftGeneration(ns), [
        { table: ROUTER_TABLE, changes: dc.main }, { table: ARP_TABLE, changes: dc.arp },
      ]);
    } finally {
      await release();
    }
    // refused by the stamp (someone committed since the check above): the full way takes it from here, the
    // addresses already where it puts them
    if (!sync) return undefined;
    touched = true;
    h.mark('nft');
    const { removedStatic, addedStatic, removedPf, addedPf } = dc.nat;
    if (removedStatic.length || removedPf.length || addedStatic.length || addedPf.length) {
      // the stranded flows' mirror guards go in under the stamp just left, which then moves on (nat-flow-cleanup.ts)
      const guard = mirrorGuard({
        executor: () => h.executor(ns),
        stamp: () => sync,
        generation: () => k.nftGeneration(ns),
        moved: (generation) => { sync = { ...sync!, generation }; },
        outbound: () => outboundAddress(outboundNat(next)),
      });
      await k.deleteNatConntrack(ns, natOf(removedStatic, removedPf), natOf(addedStatic, addedPf), guard);
    }
    try {
      await h.reconcileModules(next, w.model);
    } catch (err) {
      // a module that writes into the (frozen) model: the full way, on a model of its own, from what the kernel
      // holds now (its stamp guard sees our commit and replaces the tables; the addresses are where it puts them)
      if (err instanceof TypeError) {
        h.warm.drop(h.stateDir, ns);
        return undefined;
      }
      throw err;
    }
    h.mark('modules');
    // durable: one record appended to the NAT log, or (now and then) the whole model saved (nat-log.ts)
    let log: WarmRouter['log'];
    if (natLogFull(w.log)) {
      const text = StateStore.serialize(next);
      h.store.save(next, text);
      h.recordProof(ns, text, sync);
      h.cacheCompiled(next, text, dc.compiled);
      log = { base: h.store.logBase(ns, text), bytes: 0, records: 0 };
    } else {
      const list = <T>(d: ListDelta<T>): ListChange<T> | undefined =>
        (d.removed.length || d.added.length ? { del: d.removedAt, was: d.removed, add: d.added } : undefined);
      const staticNats = list(delta!.staticNats);
      const portForwards = list(delta!.portForwards);
      const a = appendRecord(jpath, w.log.base(), w.log.bytes, { ...(staticNats ? { staticNats } : {}), ...(portForwards ? { portForwards } : {}) });
      log = { base: w.log.base, bytes: a.bytes, records: w.log.records + 1, identity: a.identity };
    }
    // the new warm router: the model frozen (its new parts; the rest was), the compile, the stamp, the NAT log
    freezeChanged(next, delta!);
    for (const [ip, n] of dc.natted) {
      if (n) dc.compiled.natted.set(ip, n);
      else dc.compiled.natted.delete(ip);
    }
    const file = h.store.savedMark(ns);
    if (file !== undefined && sync.generation !== undefined) {
      h.warm.set(h.stateDir, ns, { file, model: next, compiled: dc.compiled, stamp: { fingerprint: toFp, generation: sync.generation, netns: w.stamp.netns }, log });
    } else {
      h.warm.drop(h.stateDir, ns);
    }
    h.committed(ns, next);
    h.mark('save');
    return { model: next, sync };
  } catch (err) {
    h.warm.drop(h.stateDir, ns);
    if (touched) {
      let before: RouterModel | undefined;
      try {
        before = h.store.load(ns);
      } catch {
        before = undefined;
      }
      await h.undo(next, before);
    }
    throw h.wrap(err, `reconciling ${ns}`);
  }
}

