/**
 * RouterModule "vmfilter": the guest-segment filter of a router — one nftables table of the bridge family in the
 * host-side namespace (lib/router/vmfilter/compile.ts), brought to the model's contents in place, in one
 * transaction, by every command (lib/nft/table-sync.ts), and deleted with the router.
 *
 * The host namespace is shared (other routers' tables, the hypervisor's, firewalld's), so its nftables generation
 * moves with everyone's commits: the in-place change is guarded by the table's contents stamp only (a table
 * missing or holding other contents is replaced whole). A table of our name that does not hold our ownership mark
 * (set `owner`, compile.ts) is never replaced or deleted: the command fails naming it.
 */
import type { RouterModule, ReconcileContext } from '../router-module.js';
import type { RouterModel } from '../model.js';
import { SystemError } from '../../util/errors.js';
import { NftError } from '../../nft/errors.js';
import type { NftExecutor } from '../../nft/executor.js';
import type { TableRef } from '../../nft/json.js';
import { syncTable, type SyncResult } from '../../nft/table-sync.js';
import { Transaction } from '../../nft/transaction.js';
import { elements, table } from '../../nft/objects.js';
import { etherAddr, ifname } from '../../nft/values.js';
import { OWNER_SET, compiledFilter, filterObjects, ownerMark, vmfilterComment, vmfilterTable } from './compile.js';
import { filteredTiers, vmfilterForgetTier, vmfilterNoteRequest } from './nics.js';
import { VMFILTER, vmfilterState } from './state.js';
import { parseVmFilterParams, vmFilterSet } from './action.js';

/** How the last reconcile brought the filter table up to date, and how long it took (tests and benchmarks). */
export let lastVmfilterSync: (SyncResult & { ms: number }) | undefined;

/** Whether the router's table exists; one of that name without the router's ownership mark is refused. */
async function ownTable(ex: NftExecutor, ref: TableRef, namespace: string): Promise<boolean> {
  try {
    await ex.list(ref, { terse: true });
  } catch (e) {
    if (e instanceof NftError && e.code === 'ENOENT') return false;
    throw e;
  }
  let marks: unknown[] = [];
  try {
    marks = (await ex.listSet(ref, OWNER_SET, 'set')).elements;
  } catch (e) {
    if (!(e instanceof NftError && e.code === 'ENOENT')) throw e;
  }
  if (marks.length !== 1 || marks[0] !== ownerMark(namespace)) {
    throw new SystemError(`nftables table ${ref.family} ${ref.name} exists and is not netns-router's filter of ${namespace} (no ownership mark in its set "${OWNER_SET}"); refusing to replace or delete it`);
  }
  return true;
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
      const pairs = listedKeys((await ex.listSet(ref, 'learned')).elements) as Array<[string, string]>;
      const macs = new Set(listedKeys((await ex.listSet(ref, 'learned_mac')).elements) as string[]);
      const gone = pairs.filter(([mac]) => reset.has(mac));
      const keepPorts = new Set(pairs.filter(([mac]) => !reset.has(mac)).map(([, i]) => i));
      const tx = new Transaction(ref);
      if (gone.length) tx.delete(elements('learned', gone.map(([mac, port]) => ({ key: [etherAddr(mac), ifname(port)] }))));
      const macsGone = [...reset].filter((mac) => macs.has(mac));
      if (macsGone.length) tx.delete(elements('learned_mac', macsGone.map((mac) => ({ key: etherAddr(mac) }))));
      const ports = [...new Set(gone.map(([, i]) => i))].filter((i) => !keepPorts.has(i));
      for (const id of tiers) {
        if (!ports.length) break;
        const held = new Set(listedKeys((await ex.listSet(ref, `ports_${id}`)).elements) as string[]);
        const drop = ports.filter((p) => held.has(p));
        if (drop.length) tx.delete(elements(`ports_${id}`, drop.map((p) => ({ key: ifname(p) }))));
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
  hostTables: (ns) => [vmfilterTable(ns)],
  // its whole reconcile is one table of the host-side namespace: planned by running it on the plan's kernel
  async plan(m, previous, ctx, opts = {}) {
    if (opts.teardown) await vmfilterModule.teardown!(m, ctx);
    else await vmfilterModule.reconcile!(m, previous, ctx);
    return [];
  },
  async reconcile(m: RouterModel, previous: RouterModel | undefined, ctx: ReconcileContext): Promise<void> {
    const ref = vmfilterTable(m.namespace);
    const want = filterObjects(m);
    const { ex, release } = ctx.hostNft();
    try {
      if (!want) {
        if (await ownTable(ex, ref, m.namespace)) await ex.apply(new Transaction(ref).delete(table()));
        return;
      }
      const assumed = previous ? filterObjects(previous) : undefined;
      const t0 = performance.now();
      const r = await syncTable(ex, ref, want, assumed, {
        comment: vmfilterComment(m.namespace),
        beforeReplace: async () => { await ownTable(ex, ref, m.namespace); },
      });
      lastVmfilterSync = { ...r, ms: performance.now() - t0 };
      await forgetLearned(ex, ref, m, previous);
    } finally {
      await release();
    }
  },
  async teardown(m: RouterModel, ctx: ReconcileContext): Promise<void> {
    const ref = vmfilterTable(m.namespace);
    const { ex, release } = ctx.hostNft();
    try {
      if (await ownTable(ex, ref, m.namespace)) await ex.apply(new Transaction(ref).delete(table()));
    } finally {
      await release();
    }
  },
  forgetTier: vmfilterForgetTier,
  noteRequest: (m, req) => vmfilterNoteRequest(m, req as { networkId?: string; vmFilterStrict?: boolean }),
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
