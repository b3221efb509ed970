/**
 * RouterModule "vmfilter": the guest-segment filter of a router — its objects (named with the router's prefix) in
 * the ONE nftables table of the bridge family that all routers share in the host-side namespace
 * (lib/router/vmfilter/compile.ts), brought to the model's contents in place, in one transaction touching only
 * the router's objects, by every command (lib/nft/table-sync.ts, scoped mode), and deleted with the router.
 *
 * The host namespace is shared (other routers, the hypervisor's tables, firewalld's), so its nftables generation
 * moves with everyone's commits: the in-place change is guarded by the router's own contents stamp only (objects
 * missing or holding other contents are deleted and added again, the router's only). The shared table carries
 * netns-router's mark (set `owner`), each router's objects theirs (set `<prefix>owner`); a table of the shared
 * name without the mark, or objects of the router's prefix with another mark, are never replaced or deleted: the
 * command fails naming them. The previous version's per-router table (`nr_vmf_<namespace>`, holding the router's
 * mark) is deleted by the transaction that first creates the router's objects in the shared table.
 *
 * The shared table is left (empty but for its mark) when the last router goes: deleting it could race another
 * router's command creating its objects in it.
 */
import type { RouterModule, ReconcileContext } from '../router-module.js';
import type { RouterModel } from '../model.js';
import { SystemError } from '../../util/errors.js';
import { NftError } from '../../nft/errors.js';
import type { NftExecutor } from '../../nft/executor.js';
import type { TableRef } from '../../nft/json.js';
import { scopeDeletion, syncTable, type SyncResult } from '../../nft/table-sync.js';
import { Transaction } from '../../nft/transaction.js';
import { elements, set, table, type NftSet } from '../../nft/objects.js';
import { etherAddr, ifname } from '../../nft/values.js';
import { OWNER_SET, SHARED_MARK, VMFILTER_TABLE, compiledFilter, filterNames, filterObjects, legacyVmfilterTable, ownerMark } from './compile.js';
import { filteredTiers, vmfilterForgetTier, vmfilterNoteRequest } from './nics.js';
import { VMFILTER, vmfilterState } from './state.js';
import { parseVmFilterParams, vmFilterSet } from './action.js';
import { monotonicMs } from '../../util/clock.js';

/** How the last reconcile brought the filter up to date, and how long it took (tests and benchmarks). */
export let lastVmfilterSync: (SyncResult & { ms: number }) | undefined;

/** The elements of a one-element mark set, or undefined when the set (or its table) does not exist. */
async function marks(ex: NftExecutor, ref: TableRef, name: string): Promise<unknown[] | undefined> {
  try {
    return (await ex.listSet(ref, name, 'set')).elements;
  } catch (e) {
    if (e instanceof NftError && e.code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Whether a table exists. */
async function tableExists(ex: NftExecutor, ref: TableRef): Promise<boolean> {
  try {
    await ex.list(ref, { terse: true });
    return true;
  } catch (e) {
    if (e instanceof NftError && e.code === 'ENOENT') return false;
    throw e;
  }
}

/** The shared table's mark is netns-router's (or the table does not exist yet); anything else is refused. */
async function checkSharedTable(ex: NftExecutor): Promise<void> {
  const held = await marks(ex, VMFILTER_TABLE, OWNER_SET);
  if (held === undefined && !(await tableExists(ex, VMFILTER_TABLE))) return;
  if (held?.length !== 1 || held[0] !== SHARED_MARK) {
    throw new SystemError(`nftables table ${VMFILTER_TABLE.family} ${VMFILTER_TABLE.name} exists and is not netns-router's guest-segment filter table (no ownership mark in its set "${OWNER_SET}"); refusing to change it`);
  }
}

/** Whether the shared table holds objects of the router (its mark set); objects of its prefix with another mark are refused. */
async function holdsRouter(ex: NftExecutor, namespace: string): Promise<boolean> {
  const n = filterNames(namespace);
  const held = await marks(ex, VMFILTER_TABLE, n.o(OWNER_SET));
  if (held === undefined) return false;
  if (held.length !== 1 || held[0] !== ownerMark(namespace)) {
    throw new SystemError(`nftables table ${VMFILTER_TABLE.family} ${VMFILTER_TABLE.name} holds objects named ${n.prefix}… that are not netns-router's filter of ${namespace} (set "${n.o(OWNER_SET)}" does not hold its mark); refusing to replace or delete them`);
  }
  return true;
}

/** Deleting the previous version's per-router table, if it exists and holds the router's mark (else nothing: not ours). */
async function legacyDeletion(ex: NftExecutor, namespace: string): Promise<Transaction | undefined> {
  const ref = legacyVmfilterTable(namespace);
  const held = await marks(ex, ref, OWNER_SET);
  return held?.length === 1 && held[0] === ownerMark(namespace) ? new Transaction(ref).delete(table()) : undefined;
}

/** The shared table's ownership mark (idempotent: `add` of an existing set or element changes nothing). */
const sharedMarkOps = (): Transaction =>
  new Transaction(VMFILTER_TABLE).add(set(OWNER_SET, 'mark'), elements(OWNER_SET, [{ key: SHARED_MARK }]));

/** Delete the router's objects from the shared table and its legacy table, in one transaction (nothing to do: none). */
async function removeFilter(ex: NftExecutor, namespace: string): Promise<void> {
  const tx = new Transaction(VMFILTER_TABLE);
  if (await holdsRouter(ex, namespace)) {
    await checkSharedTable(ex);
    tx.append(await scopeDeletion(ex, VMFILTER_TABLE, filterNames(namespace).prefix));
  }
  const legacy = await legacyDeletion(ex, namespace);
  if (legacy) tx.append(legacy);
  if (tx.length) await ex.apply(tx);
}

/** Elements of a listed dynamic set as [MAC, port] pairs, MACs or port names. */
function listedKeys(elems: unknown[]): unknown[] {
  return elems.map((e) => {
    let v: unknown = e;
    if (v && typeof v === 'object' && 'elem' in v) v = (v as { elem: { val: unknown } }).elem.val;
    if (v && typeof v === 'object' && 'concat' in v) return (v as { concat: unknown[] }).concat;
    return v;
  });
}

/**
 * Forget what the kernel learned about NICs that started a new run (prepare-nic, release-nic) or are no longer
 * known: their (MAC, port) bindings, and their ports unless another learned NIC still uses them. Best effort —
 * a learned entry that expires meanwhile makes the delete fail; one retry with a fresh listing, then the
 * entries are left to their timeout.
 */
async function forgetLearned(ex: NftExecutor, ref: TableRef, m: RouterModel, previous: RouterModel | undefined): Promise<void> {
  if (!previous) return;
  const n = filterNames(m.namespace);
  const now = vmfilterState(m).runs;
  const before = vmfilterState(previous).runs;
  const known = compiledFilter(m)?.macs ?? new Set<string>();
  const reset = new Set<string>();
  for (const mac of new Set([...Object.keys(now), ...Object.keys(before)])) if ((now[mac] ?? 0) !== (before[mac] ?? 0)) reset.add(mac);
  for (const mac of compiledFilter(previous)?.macs ?? []) if (!known.has(mac)) reset.add(mac);
  if (!reset.size) return;
  const tiers = filteredTiers(m).map((t) => t.networkId);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const pairs = listedKeys((await ex.listSet(ref, n.o('learned'))).elements) as Array<[string, string]>;
      const macs = new Set(listedKeys((await ex.listSet(ref, n.o('learned_mac'))).elements) as string[]);
      const gone = pairs.filter(([mac]) => reset.has(mac));
      const keepPorts = new Set(pairs.filter(([mac]) => !reset.has(mac)).map(([, i]) => i));
      const tx = new Transaction(ref);
      if (gone.length) tx.delete(elements(n.o('learned'), gone.map(([mac, port]) => ({ key: [etherAddr(mac), ifname(port)] }))));
      const macsGone = [...reset].filter((mac) => macs.has(mac));
      if (macsGone.length) tx.delete(elements(n.o('learned_mac'), macsGone.map((mac) => ({ key: etherAddr(mac) }))));
      const ports = [...new Set(gone.map(([, i]) => i))].filter((i) => !keepPorts.has(i));
      for (const id of tiers) {
        if (!ports.length) break;
        const held = new Set(listedKeys((await ex.listSet(ref, n.ports(id))).elements) as string[]);
        const drop = ports.filter((p) => held.has(p));
        if (drop.length) tx.delete(elements(n.ports(id), drop.map((p) => ({ key: ifname(p) }))));
      }
      if (tx.length) await ex.apply(tx, { locate: false });
      return;
    } catch (e) {
      if (!(e instanceof NftError)) throw e;
    }
  }
}

export const vmfilterModule: RouterModule = {
  name: VMFILTER,
  hostTables: (ns) => {
    const p = filterNames(ns).prefix;
    return [{ ...VMFILTER_TABLE, only: (name: string) => name === OWNER_SET || name.startsWith(p) }, legacyVmfilterTable(ns)];
  },
  // its whole reconcile is the host-side namespace's nftables: planned by running it on the plan's kernel
  async plan(m, previous, ctx, opts = {}) {
    if (opts.teardown) await vmfilterModule.teardown!(m, ctx);
    else await vmfilterModule.reconcile!(m, previous, ctx);
    return [];
  },
  // a filter starting (implement-network with vm-filter, say): the shared table is checked before the router's links are made
  async precheck(m: RouterModel, previous: RouterModel | undefined, ctx: ReconcileContext): Promise<void> {
    if (!filterObjects(m) || (previous && filterObjects(previous))) return;
    const { ex, release } = ctx.hostNft();
    try {
      await checkSharedTable(ex);
      await holdsRouter(ex, m.namespace);
    } finally {
      await release();
    }
  },
  async reconcile(m: RouterModel, previous: RouterModel | undefined, ctx: ReconcileContext): Promise<void> {
    const want = filterObjects(m);
    // no filter before and none now: nothing of the router can be there (a check would cost a listing)
    if (!want && previous && !filterObjects(previous)) return;
    const { ex, release } = ctx.hostNft();
    try {
      if (!want) {
        await removeFilter(ex, m.namespace);
        return;
      }
      const assumed = previous ? filterObjects(previous) : undefined;
      const t0 = monotonicMs();
      const r = await syncTable(ex, VMFILTER_TABLE, want, assumed, {
        scope: { prefix: filterNames(m.namespace).prefix },
        // what the packet path learned (the sets that time out: MACs' ports, protected ports) outlives a rebuild
        carry: want.filter((o) => o.kind === 'set' && o.flags?.includes('timeout')).map((o) => (o as NftSet).name),
        beforeReplace: async () => {
          await checkSharedTable(ex);
          const held = await holdsRouter(ex, m.namespace);
          const append = sharedMarkOps();
          const legacy = await legacyDeletion(ex, m.namespace);
          if (legacy) append.append(legacy);
          return { append, scopeEmpty: !held };
        },
      });
      lastVmfilterSync = { ...r, ms: monotonicMs() - t0 };
      await forgetLearned(ex, VMFILTER_TABLE, m, previous);
    } finally {
      await release();
    }
  },
  async teardown(m: RouterModel, ctx: ReconcileContext): Promise<void> {
    const { ex, release } = ctx.hostNft();
    try {
      await removeFilter(ex, m.namespace);
    } finally {
      await release();
    }
  },
  forgetTier: vmfilterForgetTier,
  noteRequest: (m, req) => vmfilterNoteRequest(m, req as { networkId?: string; vmFilter?: boolean; vmFilterStrict?: boolean }),
  actions: {
    // rows {kind, name, network, port, state, rules}: every NIC set and named filter after the change
    'vm-filter-set': {
      run: (_action, req, { engine }) => vmFilterSet(engine, {
        namespace: req.namespace, ...(req.networkId ? { networkId: req.networkId } : {}), ...(req.vpcId ? { vpcId: req.vpcId } : {}),
        change: parseVmFilterParams(req.actionParams),
      }),
    },
  },
};
