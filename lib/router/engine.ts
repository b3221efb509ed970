/**
 * The router engine: load → mutate → reconcile → save. A change (`change`/`changeFor`, which every command
 * of the command table goes through, lib/router/command-table.ts) loads the router's desired state
 * (RouterModel), applies the command's mutation, reconciles the kernel to it (plumbing via rtnetlink, one nft
 * transaction for the namespace, conntrack, the modules' daemons), then persists it. A failed reconcile
 * re-applies the previous state (best effort) and leaves the stored state untouched, so a retry converges and
 * nothing half-applied stays. Besides: restore after a reboot, reviving dead daemons, reading a router back.
 */
import { rmSync } from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';
import * as libc from '../sys/libc.js';
import { NetlinkError } from '../netlink/errors.js';
import { StateStore } from './state/store.js';
import { emptyModel, modelIsEmpty, modelIsIdle, type RouterModel } from './model.js';
import { plumbingPlan, natPlan, tierAttachment, publicAttachments } from './topology.js';
import { ARP_TABLE, ARP_TABLE_COMMENT, answeredByVeths, arpResponderObjects, boundDeviceMade, responderDevices } from './arp-responder.js';
import { addressesOnlyDiffer, applyPlumbing, moveAddresses, removeRouterNamespace, namespaceSideIntact, PlumbingError } from './plumbing.js';
import { changedOnlyWithin, tableInputsEqual, type ReconcileScope } from './reconcile-scope.js';
import { reconcileL2Segment } from './l2-segment.js';
import { claimNamespace } from './ownership.js';
import type { NatPlan } from './router-table.js';
import type { Attachment, PlumbingPlan } from './plumbing-plan.js';
import { sameValue } from '../util/compare.js';
import { monotonicMs } from '../util/clock.js';
import { RouterError, UsageError, SystemError } from '../util/errors.js';
import { realKernel, type NsOps, type RouterKernel } from './kernel.js';
import type { PlanRecorder } from './plan.js';
import type * as T from './contract/types.js';
import { routerRunDir, type RouterModule, type ReconcileContext, type PublicService } from './router-module.js';
import { defaultModules } from './default-modules.js';
import { MIRROR_GUARD_SETS, ROUTER_TABLE, ROUTER_TABLE_COMMENT, routerObjects } from './router-table.js';
import { mirrorGuard, outboundAddress, type MirrorGuard } from './nat-flow-cleanup.js';
import { confirmStamp, syncTable, type SyncResult } from '../nft/table-sync.js';
import { provenFingerprint, provenStamp, recordProof, type TableProof } from './state/table-proof.js';
import type { NftObject } from '../nft/objects.js';
import type { NftExecutor } from '../nft/executor.js';
import { LruMap } from '../util/lru-map.js';
import type { Background } from '../util/background.js';
import { StoredModels, WarmCache, draftOf, fileIdentity, type WarmRouter } from './warm-cache.js';
import { changedParts, keepTexts, type FreshTexts } from './state/model-text.js';
import { nattedCounts, type Compiled } from './delta-compile.js';
import { fastChange, type FastHost } from './fast-change.js';
import { appendRecord, natLogFull, type Appended } from './state/nat-log.js';

/**
 * How an engine is set up: state directory, host namespace and devices, lock wait, nft CLI instead of
 * libnftables, modules, shared caches, and who hears of changes and degraded operation.
 */
export interface EngineOptions {
  stateDir: string;
  /** Host-side plumbing inside this named namespace instead of the caller's. */
  hostNetns?: string | undefined;
  devices: { guest: string; public: string };
  /** Lock wait budget (ms). */
  lockTimeoutMs?: number | undefined;
  /** Use the nft CLI executor even where libnftables works (lib/nft/namespace-executor.ts). */
  nftCli?: boolean | undefined;
  /** Feature modules (firewall, services, …); default: defaultModules(). */
  modules?: RouterModule[] | undefined;
  /** Caches to share with other engines (a long-lived process makes one engine per command). */
  caches?: EngineCaches | undefined;
  /** Called after each successful change with its phase times (ms) and how the nft table was brought up to date. */
  onChanged?: ((phases: Record<string, number>, nft: SyncResult | undefined) => void) | undefined;
  /** Degraded operation worth a log line (libnftables missing: the nft CLI is used). */
  warn?: ((message: string) => void) | undefined;
  /** The kernel reconciled (default: the machine's, realKernel; a FakeKernel runs the engine without one). */
  kernel?: RouterKernel | undefined;
  /**
   * Plan mode (plan.ts): the engine runs the command on `kernel` (an overlay of the real kernel that records
   * instead of changing), takes the locks, and writes nothing: no state, no runtime files, no daemon; the
   * modules describe their services' changes (RouterModule.plan) into this recorder instead of reconciling.
   */
  plan?: PlanRecorder | undefined;
  /**
   * Where a command leaves the clean-up its answer need not wait for (a destroyed router's links, after its
   * namespace is gone by name); the router stays locked until it ends. Without: every command waits for it.
   */
  background?: Background | undefined;
  /**
   * Large routers kept between commands (docs/delta-nat.md, fast-change.ts, warm-cache.ts): a router holding at
   * least `minEntries` static NATs and port forwards (default 256), or whose saved state's text is at least
   * `minStateLength` characters long (default 65,536: a large firewall, ACL or DHCP table makes the full way as
   * slow as many NATs do), is kept — its stored model frozen (a command changes a draft of it), and, after a full
   * command, warm: a NAT command then changes only what it touches (the fast way), a VM records' command logs
   * only the parts it changed. false: nothing kept, always the full way (the cold CLI's setting).
   */
  fastNat?: false | { minEntries?: number | undefined; minStateLength?: number | undefined } | undefined;
  /**
   * A change of static NATs and port forwards alone reconciles only what such a change touches, after cheap checks
   * that the rest of the router is as our last commit left it (reconcileNat, docs/reconcile.md "Cold NAT
   * commands"). The cold CLI's setting: a process that runs one command and has no resident engine behind it.
   */
  natScope?: boolean | undefined;
  /**
   * The process exits after this command (the cold CLI): what the kernel keeps for later commands and takes long
   * to release (RouterKernel.releaseKept: the gratuitous-ARP sockets, an RCU grace period each) is let go as soon
   * as the kernel is reconciled, so that the release overlaps the save instead of delaying the exit.
   */
  oneShot?: boolean | undefined;
}

/**
 * What an engine keeps between commands: the router table compiled for the last models, by router (the next
 * command's previous model is usually the model just applied, and compiling 10,000 rules costs ~30 ms). Keyed
 * by the model's serialised text, so a hit is always exact.
 */
export class EngineCaches {
  private readonly objects: LruMap<string, { key: string; objs: unknown }>;
  /** Routers kept warm for the fast way of NAT commands (warm-cache.ts). */
  readonly warm = new WarmCache();
  /** The stored model of large routers, frozen, by its text (warm-cache.ts StoredModels). */
  readonly stored = new StoredModels();
  constructor(max = 32) {
    this.objects = new LruMap(max);
  }

  /** What was made for the model of text `key` in `slot` (a slot holds one model's: the last put). */
  get<T = NftObject[]>(slot: string, key: string): T | undefined {
    const hit = this.objects.get(slot);
    return hit && hit.key === key ? hit.objs as T : undefined;
  }

  put<T = NftObject[]>(slot: string, key: string, objs: T): void {
    this.objects.set(slot, { key, objs });
  }
}

/**
 * What a mutation returns: 'delete' drops the router's stored state after reconciling; 'unchanged' promises
 * that it left the model exactly as loaded (nothing written to it), so the engine takes the stored text as the
 * model's without serialising it; otherwise nothing (the engine compares the serialised model with the stored text).
 */
export type MutationVerdict = void | 'delete' | 'unchanged';

/** Which command a change is for: named in refusals; its reconcile scope, if it declared one (reconcile-scope.ts). */
export interface CommandRef {
  command: string;
  networkId?: string;
  guestType?: T.GuestType;
  scope?: ReconcileScope;
}

/**
 * An L2 network has a segment and nothing at L3: every command but its lifecycle (implement, shutdown, destroy
 * — which do not come through here) is refused with the command named, before anything changes.
 */
function refuseOnL2(m: RouterModel, cmd: CommandRef): void {
  const id = m.l2?.networkId ?? (cmd.guestType === 'l2' ? cmd.networkId : undefined);
  if (id === undefined) return;
  throw new UsageError(
    `network ${id} is an L2 network (guest_type l2: a segment without gateway, CIDR or router): ${cmd.command} needs L3 and does not apply to it`,
    'guest_type',
  );
}

/**
 * A command acts only on its own router: a namespace whose stored router belongs to another network or VPC (e.g.
 * network 42 told by network-extension-details to use cs-net-41) is refused before anything changes — it would
 * merge into that router, and its destroy would delete it. (`init` builds the command's own empty router; one
 * that cannot, such as a module's "must exist" init, names no router to compare.)
 */
function refuseOtherRouter(stored: RouterModel, init: () => RouterModel): void {
  let own: RouterModel;
  try {
    own = init();
  } catch {
    return;
  }
  if (own.kind === stored.kind && own.nameId === stored.nameId) return;
  const whose = (m: RouterModel): string => (m.kind === 'vpc' ? `VPC ${m.nameId}` : `network ${m.nameId}`);
  throw new UsageError(
    `namespace ${stored.namespace} holds the router of ${whose(stored)}, not of ${whose(own)}; refusing to change or delete another router `
      + '(check network-extension-details.namespace)',
    'network-extension-details.namespace',
  );
}

function wrap(err: unknown, doing: string): Error {
  if (err instanceof RouterError) return err;
  if (err instanceof NetlinkError) {
    return new SystemError(`${doing}: ${err.message}`, { kernelText: err.extAck ?? err.message, errno: err.errno, errnoCode: err.code, cause: err });
  }
  if (err instanceof PlumbingError) return new SystemError(`${doing}: ${err.message}`, { cause: err });
  return SystemError.from(err, doing);
}

/** Whether a module keeps state in either model (a plan notes the modules it cannot describe only then). */
const keepsState = (mod: RouterModule, m: RouterModel, previous: RouterModel | undefined): boolean =>
  m.extra?.[mod.name] !== undefined || previous?.extra?.[mod.name] !== undefined;

/** The model with nothing implemented: reconciling it removes the router (its namespace, its daemons). */
function idleCopy(m: RouterModel): RouterModel {
  const c = structuredClone(m);
  for (const t of Object.values(c.tiers)) t.implemented = false;
  if (c.vpc) c.vpc.implemented = false;
  return c;
}

/** What compileTables made: the router table of a model and of the previous one (what the kernel should hold). */
interface CompiledTables {
  pub: Attachment[];
  nat: NatPlan;
  prevNat: NatPlan | undefined;
  prevPub: Attachment[] | undefined;
  assumed: NftObject[] | undefined;
  want: NftObject[];
  previous: RouterModel | undefined;
  previousKey: string | undefined;
}

/** The model without its static NATs and port forwards (a NAT change leaves the rest as it was). */
const withoutNat = (m: RouterModel): object => ({ ...m, staticNats: [], portForwards: [] });

/** Did the change touch only the static NATs and port forwards? */
function natOnlyChange(before: RouterModel, after: RouterModel): boolean {
  return sameValue(withoutNat(before), withoutNat(after));
}

/** Times the phases of one command: each mark() books the time since the previous mark. */
class Phases {
  readonly times: Record<string, number> = {};
  private t = monotonicMs();
  mark(name: string): void {
    const now = monotonicMs();
    this.times[name] = (this.times[name] ?? 0) + (now - this.t);
    this.t = now;
  }
}

/**
 * The router engine: load → mutate → reconcile → save under the router's lock (`change`, `changeFor`); restore
 * after a reboot (`restoreAll`), reviving dead daemons, reading a router back (`dumpConfig`). A failed reconcile
 * puts the router back as it was. Commands reach it through the command table (runCommand, createRouterApi).
 */
export class RouterEngine {
  readonly store: StateStore;
  readonly modules: readonly RouterModule[];
  /** Host devices of new tiers and public IPs (guest.network.device, public.network.device). */
  readonly devices: T.HostDevices;
  readonly stateDir: string;
  readonly hostNetns: string | undefined;
  /** How long a command waits for its router's lock (ms). */
  readonly lockTimeoutMs: number;
  private readonly opts: EngineOptions;
  /** How the last reconcile brought the nft table up to date (for logs, tests and benchmarks). */
  lastNftSync: SyncResult | undefined;
  /** Milliseconds per phase of the last command (lock, load, mutate, compile, plumbing, nft, modules, save). */
  lastPhases: Record<string, number> = {};
  /** How the last command reconciled: the whole router, only its scope (docs/reconcile.md), or only its NAT
   *  change (the fast way, docs/delta-nat.md). */
  lastReconcile: 'full' | 'scoped' | 'fast' | undefined;
  /** What the last full reconcile compiled, for the model text `key` (kept warm after a NAT command). */
  private lastCompiled: { key: string; compiled: Omit<Compiled, 'natted'> } | undefined;
  private readonly caches: EngineCaches;
  private warnedNftCli = false;
  /** Where reconcile reads and changes namespaces, links, addresses, routes, sysctls, nft and conntrack. */
  readonly kernel: RouterKernel;
  /** Set in plan mode (EngineOptions.plan): what the command would change. */
  readonly plan: PlanRecorder | undefined;

  constructor(opts: EngineOptions) {
    this.opts = opts;
    this.devices = opts.devices;
    this.stateDir = opts.stateDir;
    this.hostNetns = opts.hostNetns;
    this.lockTimeoutMs = opts.lockTimeoutMs ?? 30_000;
    this.store = new StateStore(opts.stateDir);
    this.modules = Object.freeze([...(opts.modules ?? defaultModules())]); // fixed: its command tables are merged once
    this.caches = opts.caches ?? new EngineCaches();
    this.plan = opts.plan;
    this.kernel = opts.kernel ?? realKernel({
      hostNetns: opts.hostNetns,
      nft: {
        cli: opts.nftCli,
        onFallback: (reason) => {
          // degraded, not broken: the nft command does the same, ~1000× slower per call. Once per engine.
          if (this.warnedNftCli) return;
          this.warnedNftCli = true;
          this.opts.warn?.(`libnftables is not usable (${reason}); falling back to the nft command (slower)`);
        },
      },
    });
  }

  /**
   * The generic command: under the router's lock, load its model (or `init()` it), apply `mutate`, reconcile,
   * persist. `mutate` may return 'delete' to drop the stored state after reconciling (or 'unchanged':
   * MutationVerdict). Modules use this for their commands (apply-fw-rules, add-dhcp-entry, …). With `cmd`, a
   * command that reaches an L2 network is refused (exit 1, nothing changed): everything but the network lifecycle
   * needs L3.
   */
  async change(ns: string, init: () => RouterModel, mutate: (m: RouterModel) => MutationVerdict, cmd?: CommandRef): Promise<RouterModel | undefined> {
    return this.transact(ns, init, mutate, cmd);
  }

  /** `change` for a network- or VPC-level request: its router, its init, and the L2 refusal naming its command. */
  async changeFor(req: CommandRef & { namespace: string; vpcId?: string }, mutate: (m: RouterModel) => MutationVerdict): Promise<RouterModel | undefined> {
    return this.transact(req.namespace, this.init(req), mutate, req);
  }

  /**
   * The router's stored model, to read (undefined: none saved): a large router's kept one (frozen) while it is
   * the one saved — the warm model while the saved state and its NAT log are the ones it left (no read, replay or
   * parse of the state), else the stored model kept for the text read — else parsed from the state: what a listing
   * or a command's precondition (prepare-nic, release-nic) looks at.
   */
  storedModel(ns: string): RouterModel | undefined {
    const warm = this.keepsLarge() ? this.caches.warm.get(this.stateDir, ns, this.store.savedMark(ns), this.store.natLogOf(ns)) : undefined;
    if (warm) return warm.model;
    const text = this.store.read(ns);
    if (text === undefined) return undefined;
    return this.keptModel(ns, text) ?? this.store.parse(ns, text);
  }

  /** A large router's stored model as kept (frozen, StoredModels), if it is the one saved as `text`. */
  private keptModel(ns: string, text: string): RouterModel | undefined {
    return this.keepsLarge() ? this.caches.stored.get(this.stateDir, ns, text) : undefined;
  }

  /** `init` for a request that names a network and maybe a VPC. */
  initFor(req: { namespace: string; networkId?: string; vpcId?: string; adoptNamespace?: boolean }): () => RouterModel {
    return this.init(req);
  }

  private hostHandle(): NsOps {
    return this.kernel.host();
  }

  /** The namespace's nft executor (undefined: the host-side namespace's). */
  private executor(ns: string | undefined): { ex: NftExecutor; release: () => Promise<void> } {
    return this.kernel.nft(ns);
  }

  /** What modules reconcile with: the host-side namespace, the state directory, that namespace's nft executor. */
  private reconcileContext(host: NsOps): ReconcileContext {
    return { host, kernel: this.kernel, stateDir: this.opts.stateDir, hostNft: () => this.executor(undefined) };
  }

  /** The modules' services to `m` (plan mode: each module describes the change instead, RouterModule.plan). */
  private async reconcileModules(m: RouterModel, previous: RouterModel | undefined, ctx: ReconcileContext): Promise<void> {
    for (const mod of this.modules) {
      if (this.plan) this.plan.module(m.namespace, mod, await mod.plan?.(m, previous, ctx), mod.reconcile !== undefined && keepsState(mod, m, previous));
      else await mod.reconcile?.(m, previous, ctx);
    }
  }

  /** The modules' teardown (reverse order; plan mode: described, RouterModule.plan of the idle model). */
  private async teardownModules(m: RouterModel, ctx: ReconcileContext): Promise<void> {
    for (const mod of [...this.modules].reverse()) {
      if (this.plan) this.plan.module(m.namespace, mod, await mod.plan?.(m, m, ctx, { teardown: true }), mod.teardown !== undefined && keepsState(mod, m, undefined), 'teardown');
      else await mod.teardown?.(m, ctx);
    }
  }

  /**
   * The router's engine lock; a failure to take it (state directory unusable) is a SystemError. Every command and
   * every router restoreAll brings back asks for it; when closes left on the worker pool wait for the event loop
   * (libc.closesWaiting: the kept sockets of routers pushed out of their caches), the loop gets a turn first.
   * Driven back to back without one (restoreAll, an in-library loop), their completions never ran: past
   * libc.CLOSES_MAX every close waited in the kernel on this thread (5-20 ms each; three per router restored).
   */
  private async lockRouter(ns: string): Promise<() => void> {
    if (libc.closesWaiting() >= libc.CLOSES_MAX / 4) await nextTurn();
    try {
      return await this.store.lock(ns, this.lockTimeoutMs);
    } catch (e) {
      throw wrap(e, `locking router ${ns}`);
    }
  }

  /**
   * Load, mutate, reconcile, persist — under the router's lock. `mutate` returns 'delete' to drop the state.
   * Any failure after the kernel was touched — a refused object, a daemon that does not start, a state file
   * that cannot be written (disk full, read-only) — puts the router back as it was before the command: the
   * previous state is re-applied (a router that did not exist is removed again) and the stored state is left
   * untouched, so the command fails with exit 2 and changes nothing.
   */
  private async transact(ns: string, init: () => RouterModel, mutate: (m: RouterModel) => MutationVerdict, cmd?: CommandRef): Promise<RouterModel | undefined> {
    const phases = new Phases();
    this.lastPhases = phases.times;
    const release = await this.lockRouter(ns);
    phases.mark('lock');
    const later: Array<Promise<void>> = [];
    try {
      this.lastCompiled = undefined;
      if (this.opts.fastNat !== false && !this.plan && !cmd?.scope) {
        const fast = await fastChange(this.fastHost(init, cmd, phases), ns, mutate);
        if (fast) {
          this.lastReconcile = 'fast';
          this.lastNftSync = fast.sync;
          this.opts.onChanged?.(phases.times, fast.sync);
          return fast.model;
        }
        this.caches.warm.drop(this.stateDir, ns);
      }
      // The state's text is parsed into the model to change, and again (only when the command changed the model)
      // into the model before it — unless a large router's stored model is kept (StoredModels): the command then
      // changes a draft of it, which shares the large parts it leaves alone (draftOf), and it is the model before.
      // A scoped command on a router kept warm (its NAT commands may have left a NAT log since the last save)
      // starts from the warm model: no read, replay or parse of the state; the warm router's stamp is the proof of
      // what the tables hold (restAsCommitted); its change is logged (logChange) and the router stays warm.
      const mark = cmd?.scope && this.keepsLarge() ? this.store.savedMark(ns) : undefined;
      const warm = mark !== undefined ? this.caches.warm.get(this.stateDir, ns, mark, this.store.natLogOf(ns)) : undefined;
      const text = warm ? this.store.assume(ns, mark!, this.warmText(warm.model)) : this.store.read(ns);
      // a new router's namespace did not exist before: undoing it means removing it again
      const existed = text !== undefined || this.kernel.netnsExists(ns);
      const kept = warm?.model ?? (text !== undefined ? this.keptModel(ns, text) : undefined);
      let model: RouterModel = text === undefined ? init() : kept ? draftOf(kept, cmd?.scope?.modules ?? []) : this.store.parse(ns, text);
      phases.mark('load');
      // (the model as stored: mutate has not run yet)
      if (text !== undefined) refuseOtherRouter(model, init);
      if (cmd) refuseOnL2(model, cmd);
      let verdict: MutationVerdict;
      try {
        try {
          verdict = mutate(model);
        } catch (err) {
          // a write into a part the draft shares (frozen): the mutation again, on a model of its own
          if (!kept || !(err instanceof TypeError)) throw err;
          model = this.store.parse(ns, text!);
          verdict = mutate(model);
        }
      } catch (err) {
        throw wrap(err, `changing ${ns}`);
      }
      // a router left holding nothing is no router: nothing is stored for it (a command for a network destroyed
      // or never implemented that changed nothing would otherwise leave a state that lists and restores it)
      if (verdict !== 'delete' && modelIsEmpty(model)) verdict = 'delete';
      // the same text: the model is the stored one (nothing to save either); a mutation that left the stored
      // model untouched says so ('unchanged'), which spares serialising it (~10 ms for 10,000 rules, cold)
      const fresh: FreshTexts = new Map();
      const next = verdict === 'unchanged' && text !== undefined ? text : StateStore.serialize(model, fresh);
      const unchanged = next === text;
      const before = text === undefined ? undefined : unchanged ? model : kept ?? this.store.parse(ns, text);
      phases.mark('mutate');
      // a scoped command's checks of the rest of the router, run after the answer (reconcileWithin)
      let rest: (() => Promise<void>) | undefined;
      let logged: Appended | undefined;
      let copy: (() => void) | undefined;
      try {
        const deferRest = this.opts.background && verdict !== 'delete' ? (check: () => Promise<void>) => { rest = check; } : undefined;
        const scoped = before !== undefined && text !== undefined && (cmd?.scope
          ? await this.reconcileWithin(cmd.scope, model, next, before, text, phases, deferRest, warm?.stamp)
          : this.opts.natScope === true && verdict !== 'delete' && !unchanged && await this.reconcileNat(model, next, before, text, phases));
        // a destroy's clean-up may outlive its answer (a next command of that router, rare, waits for it); a
        // shutdown's may not: the destroy that follows it at once would wait for it instead
        const defer = verdict === 'delete' && this.opts.background ? (p: Promise<void>) => { later.push(p); } : undefined;
        this.lastReconcile = scoped ? 'scoped' : 'full';
        if (!scoped) await this.reconcileKeyed(model, next, before, text, phases, defer);
        if (this.opts.oneShot) this.kernel.releaseKept?.();
        if (this.plan) this.plan.state(ns, verdict === 'delete' ? 'delete' : unchanged ? 'unchanged' : text === undefined ? 'create' : 'save', text, next);
        else if (verdict === 'delete') this.store.remove(ns);
        else if (!unchanged) {
          // a scoped command on a warm router: one record of the parts it changed, not the whole router
          logged = warm && scoped ? this.logChange(ns, warm, model) : undefined;
          // (the readable copy of a logged change: after the answer when there is an after, ~2 ms at 10,000 rules)
          if (logged) copy = () => this.store.writeCopy(ns, next);
          else this.store.save(model, next);
          if (copy && !this.opts.background) copy();
        }
        else this.store.refreshCopy(ns); // a retry after a writer killed between the journal and the copy
      } catch (err) {
        if (!this.plan) await this.undo(model, before, existed); // a plan changed nothing
        throw wrap(err, `reconciling ${ns}`);
      }
      if (verdict === 'delete') {
        this.caches.stored.drop(this.stateDir, ns);
        this.committed(ns, undefined);
        phases.mark('save');
        this.opts.onChanged?.(phases.times, undefined);
        return undefined;
      }
      this.committed(ns, model);
      // a large router's model is kept frozen as stored (so the caller gets it frozen, as from the fast way)
      const large = this.isLarge(model, next);
      if (large) this.caches.stored.set(this.stateDir, ns, next, model, fresh);
      else this.caches.stored.drop(this.stateDir, ns);
      this.keepWarm(ns, large, model, next, cmd, !unchanged, warm, logged);
      phases.mark('save');
      this.opts.onChanged?.(phases.times, this.lastNftSync);
      // started once the answer is on its way (after the promise continuations that deliver it)
      const afterAnswer = (work: () => unknown): void => { later.push(new Promise<void>((res) => { setImmediate(res); }).then(work).then(() => undefined)); };
      if (rest) afterAnswer(rest);
      if (copy && this.opts.background) afterAnswer(copy);
      return model;
    } finally {
      // the router stays locked until its clean-up has ended (a next command finds it done)
      if (later.length) this.opts.background!.add(Promise.all(later).then(() => undefined).finally(release));
      else release();
    }
  }

  /** Best effort back to the state before a failed command (`applied`: what the kernel may partly hold). */
  /** Set while a failed command is undone (undo): no table proof is recorded. */
  private proofFrozen = false;

  private async undo(applied: RouterModel, before: RouterModel | undefined, existed: boolean): Promise<void> {
    // the table proof is left as it was: a failed command changes no file (a proof whose generation the undo
    // outdated only costs the next scoped command a confirming transaction)
    this.proofFrozen = true;
    try {
      if (before) await this.reconcile(before, applied);
      else if (!existed) await this.reconcile(idleCopy(applied), applied);
    } catch {
      /* the retry will converge */
    } finally {
      this.proofFrozen = false;
    }
  }

  /**
   * After the state is saved (`m`) or deleted (undefined: destroy): modules drop what only older states needed;
   * a deleted router's runtime directory goes too (its processes were stopped by the teardown).
   */
  private committed(ns: string, m: RouterModel | undefined): void {
    if (this.plan) return;
    try {
      for (const mod of this.modules) mod.committed?.(ns, m, this.opts.stateDir);
      if (!m) rmSync(routerRunDir(this.opts.stateDir, ns), { recursive: true, force: true });
    } catch (err) {
      throw wrap(err, `cleaning up after ${ns}`);
    }
  }

  /** Make the kernel match `m` (idempotent). Also used by restore after a reboot. */
  async reconcile(m: RouterModel, previous?: RouterModel): Promise<void> {
    await this.reconcileKeyed(m, StateStore.serialize(m), previous, previous && StateStore.serialize(previous));
  }

  /**
   * reconcile, with the models' serialised texts (their compiled-objects cache keys) already known; `defer`
   * takes the clean-up the caller need not wait for (else it is awaited here).
   */
  private async reconcileKeyed(
    m: RouterModel, key: string, previous?: RouterModel, previousKey?: string, phases?: Phases, defer?: (work: Promise<void>) => void,
  ): Promise<void> {
    const host = this.hostHandle();
    try {
      const ctx = this.reconcileContext(host);
      if (m.l2 || previous?.l2) {
        reconcileL2Segment(host, m, previous); // an L2 network: links on the host, no namespace, no rules
        return;
      }
      // only a namespace netns-router made (or whose router it stores, or adopts on request) is touched
      claimNamespace(this.kernel, m.namespace, { stored: this.store.has(m.namespace), adopt: m.adoptedNamespace === true });
      if (modelIsIdle(m)) {
        await this.teardownModules(m, ctx);
        phases?.mark('modules');
        const atts = [...Object.values(m.tiers).map((t) => tierAttachment(m, t)), ...publicAttachments(m)];
        const links = removeRouterNamespace(this.kernel, m.namespace, atts);
        if (links && defer) defer(links);
        else await links;
        phases?.mark('plumbing');
        return;
      }
      if (!this.plan) for (const mod of this.modules) await mod.precheck?.(m, previous, ctx);
      const { pub } = this.plans(m, key);
      const plan = plumbingPlan(m, pub);
      // a command that changed nothing, whose tables our last commit provably left as this model compiles:
      // plumbing and services are reconciled, the tables are only confirmed (table-proof.ts)
      const proof = previousKey === key && previous && !modelIsIdle(previous) ? provenFingerprint(this.opts.stateDir, m.namespace, key) : undefined;
      if (proof !== undefined) {
        phases?.mark('compile');
        const report = applyPlumbing(this.kernel, host, plan);
        phases?.mark('plumbing');
        const confirmed = report.links.some((l) => l.action === 'created' || l.action === 'recreated') ? undefined : await this.confirmTables(m.namespace, proof);
        if (confirmed !== undefined) {
          this.lastNftSync = { mode: 'unchanged', fingerprint: proof, generation: confirmed, operations: 2 };
          this.recordProof(m.namespace, key, this.lastNftSync);
          phases?.mark('nft');
          await this.reconcileModules(m, previous, ctx);
          phases?.mark('modules');
          return;
        }
      }
      // compute the whole ruleset first: an invalid module state fails before anything changes
      const tables = this.compileTables(m, key, previous, previousKey);
      phases?.mark('compile');
      const report = applyPlumbing(this.kernel, host, plan);
      phases?.mark('plumbing');
      if (!this.plan && previous && previous !== m) for (const mod of this.modules) await mod.prepare?.(m, previous, ctx);
      await this.commitTables(m, key, plan, tables, report.links);
      phases?.mark('nft');
      const { nat, prevNat } = tables;
      if (prevNat) await this.kernel.deleteNatConntrack(m.namespace, prevNat, nat, this.mirrorGuard(m.namespace, key, nat));
      await this.reconcileModules(m, previous, ctx);
      phases?.mark('modules');
    } finally {
      host.close();
    }
  }

  /**
   * The router table of `m` (`key` its text) and, when `previous` is a router, the one the kernel should hold now
   * (checked by the stamp in syncTable; asked first: it is usually the cached result of the previous command).
   */
  private compileTables(m: RouterModel, key: string, previous: RouterModel | undefined, previousKey: string | undefined): CompiledTables {
    const { pub, nat } = this.plans(m, key);
    const prev = previous && !modelIsIdle(previous) ? (previous === m ? { pub, nat } : this.plans(previous, previousKey!)) : undefined;
    const prevPub = prev?.pub;
    const prevNat = prev?.nat;
    const assumed = prevNat ? this.tableObjects(previous!, prevNat, previousKey!) : undefined;
    return { pub, nat, prevNat, prevPub, assumed, want: this.tableObjects(m, nat, key), previous, previousKey };
  }

  /**
   * The router table and its ARP-responder companion brought to `t` in one transaction (syncTable), the new ARP
   * answers announced, the table proof recorded. `links`: what plumbing did to the links (a re-created public
   * veth makes the responder table be replaced, arp-responder.ts).
   */
  private async commitTables(
    m: RouterModel, key: string, plan: PlumbingPlan, t: CompiledTables, links: ReadonlyArray<{ name: string; action: string }>, known?: NftObject[],
  ): Promise<void> {
    // the ARP answers for static NAT addresses (not on the interface): a companion table, same transaction
    const prevAtts = t.assumed ? t.prevPub! : [];
    const index = this.ifindexes(m.namespace, [...responderDevices(plan.attachments), ...responderDevices(prevAtts)]);
    const idx = [...index].join();
    const arpAssumed = t.assumed ? this.cached(t.previous!, `${t.previousKey}\0${idx}`, 'arp', () => arpResponderObjects(prevAtts, index)) : undefined;
    const arp = this.cached(m, `${key}\0${idx}`, 'arp', () => arpResponderObjects(plan.attachments, index));
    const { ex, release } = this.executor(m.namespace);
    try {
      this.lastNftSync = await syncTable(ex, ROUTER_TABLE, t.want, t.assumed, {
        comment: ROUTER_TABLE_COMMENT, generation: () => this.kernel.nftGeneration(m.namespace),
        companions: [{ table: ARP_TABLE, want: arp, ...(arpAssumed ? { assumed: arpAssumed } : {}), comment: ARP_TABLE_COMMENT }],
        replace: boundDeviceMade(arp, links),
        // the mirror guards of removed NAT mappings outlive a table rebuilt whole
        carry: MIRROR_GUARD_SETS,
      });
    } finally {
      await release();
    }
    // gratuitous ARP for what the responder answers now and peers did not find there (`known`: what the veths
    // answered with the same MAC before)
    this.kernel.announceArp(m.namespace, arp, this.lastNftSync.mode === 'replace' ? undefined : known ?? arpAssumed ?? []);
    this.recordProof(m.namespace, key, this.lastNftSync);
    this.lastCompiled = { key, compiled: { want: t.want, arp, index, pub: t.pub, plan } };
  }

  /**
   * The reconcile of a NAT change in a cold CLI process (`EngineOptions.natScope`, docs/reconcile.md "Cold NAT
   * commands"): when the mutation changed only the router's static NATs and port forwards, the tables hold the
   * stored model's compile with nothing committed to nftables since (the table proof's generation and namespace),
   * and the namespace side is as the stored model plans it (three dumps), only what a NAT change touches is
   * reconciled: the addresses that move between a veth and the ARP responder, the router table and its responder
   * companion (one transaction, checked by the stamp), the conntrack entries of removed mappings. Not looked at:
   * the host side, sysctls, routes, the modules' daemons — any other command repairs those (no module's state
   * changed, so none has anything to `prepare` either). False: nothing changed, the full reconcile runs.
   */
  private async reconcileNat(m: RouterModel, key: string, before: RouterModel, beforeKey: string, phases: Phases): Promise<boolean> {
    const k = this.kernel;
    if (this.plan || m.l2 || before.l2 || modelIsIdle(m) || modelIsIdle(before) || !natOnlyChange(before, m)) return false;
    const proof = provenStamp(this.opts.stateDir, m.namespace, beforeKey);
    if (proof?.generation === undefined || !k.netnsExists(m.namespace) || proof.netns !== k.netnsIdentity(m.namespace)
      || k.nftGeneration(m.namespace) !== proof.generation) return false;
    const plan = plumbingPlan(m, this.plans(m, key).pub);
    const beforePlan = plumbingPlan(before, this.plans(before, beforeKey).pub);
    if (!addressesOnlyDiffer(beforePlan, plan)) return false;
    const tables = this.compileTables(m, key, before, beforeKey);
    phases.mark('compile');
    const ns = k.open(m.namespace);
    try {
      if (!namespaceSideIntact(ns, beforePlan)) return false;
      moveAddresses(k, ns, beforePlan, plan);
    } finally {
      ns.close();
    }
    phases.mark('plumbing');
    await this.commitTables(m, key, plan, tables, [], answeredByVeths(beforePlan.attachments));
    phases.mark('nft');
    if (tables.prevNat) await k.deleteNatConntrack(m.namespace, tables.prevNat, tables.nat, this.mirrorGuard(m.namespace, key, tables.nat));
    phases.mark('modules');
    return true;
  }

  /**
   * The reconcile of a command with a scope (docs/reconcile.md): when its change stayed within the scope's
   * modules and left their share of the router table as it was, and cheap checks show the rest of the router as
   * our last commit left it (`restAsCommitted`), only the scope's modules are reconciled. False: nothing decided,
   * the full reconcile runs (it may find what was confirmed here already in place). Not in plan mode: a plan shows
   * the full reconcile.
   *
   * With `deferRest` (an engine with a Background: the resident engine) the scope's modules are reconciled first
   * and the checks of the rest are handed to `deferRest`, which runs them after the answer, still under the
   * router's lock: drift they find gets the full reconcile then. A failure of the scope's modules is not the
   * command's answer yet: the full reconcile runs (plumbing first, then every module).
   */
  private async reconcileWithin(
    scope: ReconcileScope, m: RouterModel, key: string, before: RouterModel, beforeKey: string, phases: Phases,
    deferRest?: (check: () => Promise<void>) => void, stamp?: TableProof,
  ): Promise<boolean> {
    if (this.plan || m.l2 || before.l2 || modelIsIdle(m) || modelIsIdle(before) || !this.kernel.netnsExists(m.namespace)) return false;
    const mods = this.modules.filter((mod) => scope.modules.includes(mod.name));
    if (!changedOnlyWithin(before, m, scope) || !tableInputsEqual(mods, before, m)) return false;
    if (deferRest) {
      try {
        await this.reconcileScopeModules(mods, m, before);
      } catch {
        return false;
      }
      phases.mark('modules');
      this.lastNftSync = undefined;
      deferRest(async () => {
        if (await this.restAsCommitted(m, key, beforeKey, undefined, stamp)) return;
        this.lastReconcile = 'full';
        try {
          await this.reconcileKeyed(m, key, before, beforeKey);
        } catch (err) {
          throw wrap(err, `reconciling ${m.namespace} after its answer (drift outside the scope of the command)`);
        }
      });
      return true;
    }
    if (!await this.restAsCommitted(m, key, beforeKey, phases, stamp)) return false;
    await this.reconcileScopeModules(mods, m, before);
    phases.mark('modules');
    return true;
  }

  /** Only `mods` reconciled to `m` (a scoped command, reconcileWithin). */
  private async reconcileScopeModules(mods: readonly RouterModule[], m: RouterModel, before: RouterModel): Promise<void> {
    const host = this.hostHandle();
    try {
      const ctx = this.reconcileContext(host);
      for (const mod of mods) await mod.reconcile?.(m, before, ctx);
    } finally {
      host.close();
    }
  }

  /**
   * The checks of a scoped command (reconcileWithin): is everything outside its scope as our last commit left it?
   * The tables hold the stored model's compile (the table proof; nothing committed nftables in the namespace
   * since: its generation unchanged, or else the table stamp confirmed in one transaction), and the namespace's
   * links, addresses and routes are as planned (three dumps). True: the proof is recorded for `m` (`key`).
   * `stamp`: what a warm router's last commit left (fast-change.ts), in place of the table proof of `beforeKey`.
   */
  private async restAsCommitted(m: RouterModel, key: string, beforeKey: string, phases?: Phases, stamp?: TableProof): Promise<boolean> {
    const proof = stamp ?? provenStamp(this.opts.stateDir, m.namespace, beforeKey);
    if (!proof) return false;
    const plan = plumbingPlan(m);
    phases?.mark('compile');
    const ns = this.kernel.open(m.namespace);
    try {
      if (!namespaceSideIntact(ns, plan)) return false;
    } finally {
      ns.close();
    }
    phases?.mark('plumbing');
    // the generation our last commit left, unchanged: nothing committed nftables here since, nothing to confirm
    const k = this.kernel;
    if (proof.generation !== undefined && proof.netns === k.netnsIdentity(m.namespace) && k.nftGeneration(m.namespace) === proof.generation) {
      this.lastNftSync = { mode: 'unchanged', fingerprint: proof.fingerprint, generation: proof.generation, operations: 0 };
    } else {
      const confirmed = await this.confirmTables(m.namespace, proof.fingerprint);
      if (confirmed === undefined) return false;
      this.lastNftSync = { mode: 'unchanged', fingerprint: proof.fingerprint, generation: confirmed, operations: 2 };
    }
    this.recordProof(m.namespace, key, this.lastNftSync);
    phases?.mark('nft');
    return true;
  }

  /**
   * Record which compile the tables hold after `sync` (table-proof.ts), with the stamp's generation and the
   * namespace's identity when known. Not in plan mode (a plan writes nothing).
   */
  private recordProof(ns: string, key: string, sync: SyncResult): void {
    if (sync.fingerprint === undefined || this.plan || this.proofFrozen) return;
    const id = sync.generation !== undefined ? this.kernel.netnsIdentity(ns) : undefined;
    recordProof(this.opts.stateDir, ns, key, sync.fingerprint, id !== undefined ? { generation: sync.generation!, netns: id } : undefined);
  }

  /**
   * The mirror guards of flows a NAT change strands (nat-flow-cleanup.ts), committed under the stamp of the tables'
   * last sync (`lastNftSync`), which then moves on to the generation that commit produced, recorded in the proof.
   * `nat`: the plan after the change (the address each guest's new flows leave with).
   */
  private mirrorGuard(ns: string, key: string, nat: NatPlan): MirrorGuard {
    const at = this.plan ? undefined : this.lastNftSync; // the sync the guards commit under (the field may change while they do)
    return mirrorGuard({
      executor: () => this.executor(ns),
      stamp: () => at,
      generation: () => this.kernel.nftGeneration(ns),
      moved: (generation) => {
        this.lastNftSync = { ...at!, generation };
        this.recordProof(ns, key, this.lastNftSync);
      },
      outbound: () => outboundAddress(nat),
    });
  }

  /**
   * Do the router's tables still hold what our last commit stamped `fingerprint` (table-sync confirmStamp)? The
   * generation of the new stamp, or undefined.
   */
  private async confirmTables(ns: string, fingerprint: number): Promise<number | undefined> {
    const { ex, release } = this.executor(ns);
    try {
      return await confirmStamp(ex, ROUTER_TABLE, fingerprint, () => this.kernel.nftGeneration(ns));
    } finally {
      await release();
    }
  }

  /** What the fast way of a NAT command needs of this engine (fast-change.ts). */
  private fastHost(init: () => RouterModel, cmd: CommandRef | undefined, phases: Phases): FastHost {
    return {
      kernel: this.kernel, store: this.store, stateDir: this.stateDir, warm: this.caches.warm,
      executor: (ns) => this.executor(ns),
      refuse: (stored) => {
        refuseOtherRouter(stored, init);
        if (cmd) refuseOnL2(stored, cmd);
      },
      wrap,
      recordProof: (ns, key, sync) => this.recordProof(ns, key, sync),
      cacheCompiled: (m, key, c) => {
        this.caches.put(`${this.stateDir}\0${m.namespace}`, key, c.want as NftObject[]);
        this.caches.put(`${this.stateDir}\0${m.namespace}\0arp`, `${key}\0${[...c.index].join()}`, c.arp as NftObject[]);
      },
      reconcileModules: async (m, previous) => {
        const host = this.hostHandle();
        try {
          await this.reconcileModules(m, previous, this.reconcileContext(host));
        } finally {
          host.close();
        }
      },
      committed: (ns, m) => this.committed(ns, m),
      undo: (applied, before) => this.undo(applied, before, true),
      mark: (phase) => phases.mark(phase),
    };
  }

  /**
   * After a change: keep the router warm (for the fast way of NAT commands, and the VM records' commands' logged
   * changes) when it is large (`large`: `m` is then kept frozen as stored, StoredModels) and the command's full
   * reconcile compiled this very model, or a scoped command left a warm router's tables as they were (else forget it).
   */
  private keepWarm(ns: string, large: boolean, m: RouterModel, text: string, cmd: CommandRef | undefined, saved: boolean, before?: WarmRouter, logged?: Appended): void {
    const warm = this.caches.warm;
    const c = this.lastCompiled;
    const fingerprint = this.lastNftSync?.fingerprint;
    const generation = this.lastNftSync?.generation;
    const keep = large && cmd !== undefined
      && c?.key === text && fingerprint !== undefined && generation !== undefined
      // a NAT log the command did not replace (it saved nothing) is left to the next full command
      && (saved || fileIdentity(this.store.natLogOf(ns)) === undefined);
    // (the namespace's identity and the saved state's mark are syscalls: read only for a router that is kept)
    const netns = keep ? this.kernel.netnsIdentity(ns) : undefined;
    const file = netns !== undefined ? this.store.savedMark(ns) : undefined;
    if (!keep && before && large && this.lastReconcile === 'scoped') {
      // a scoped command left the router table as it was (its modules' share unchanged, nothing else changed):
      // the router stays warm with the new model and saved state (a re-sent command saved nothing: as it was)
      if (logged) {
        warm.set(this.stateDir, ns, { ...before, model: m, log: { base: before.log.base, bytes: logged.bytes, records: before.log.records + 1, identity: logged.identity } });
        return;
      }
      const now = saved ? this.store.savedMark(ns) : before.file;
      if (now !== undefined) {
        warm.set(this.stateDir, ns, saved ? { ...before, file: now, model: m, log: { base: this.store.logBase(ns, text), bytes: 0, records: 0 } } : before);
        return;
      }
    }
    if (!keep || netns === undefined || file === undefined) {
      warm.drop(this.stateDir, ns);
      return;
    }
    warm.set(this.stateDir, ns, {
      file, model: m, compiled: { ...c.compiled, natted: nattedCounts(m) },
      stamp: { fingerprint, generation, netns },
      log: { base: this.store.logBase(ns, text), bytes: 0, records: 0 },
    });
  }

  /**
   * A scoped command's change on a router kept warm, made durable as one NAT-log record of the parts it changed
   * (nat-log.ts; its one fdatasync) instead of a save of the whole router; undefined when that is not possible (the
   * log at its limits, a member or slot added or removed): the caller saves.
   */
  private logChange(ns: string, w: WarmRouter, m: RouterModel): Appended | undefined {
    if (natLogFull(w.log)) return undefined;
    const parts = changedParts(w.model, m);
    if (!parts || !Object.keys(parts).length) return undefined;
    return appendRecord(this.store.natLogOf(ns), w.log.base(), w.log.bytes, { parts });
  }

  /** A warm router's model's state text (its frozen parts' texts recorded for the next command). */
  private warmText(m: RouterModel): string {
    const fresh: FreshTexts = new Map();
    const text = StateStore.serialize(m, fresh);
    keepTexts(fresh);
    return text;
  }

  /** Does this engine keep large routers between commands (a process that runs more than one; not a plan)? */
  private keepsLarge(): boolean {
    return this.opts.fastNat !== false && !this.plan;
  }

  /**
   * A router worth keeping between commands (fastNat's thresholds): ≥ `minEntries` static NATs and port forwards
   * or a saved state of ≥ `minStateLength` characters.
   */
  private isLarge(m: RouterModel, text: string): boolean {
    if (!this.keepsLarge()) return false;
    const f = this.opts.fastNat || {};
    return m.staticNats.length + m.portForwards.length >= (f.minEntries ?? 256) || text.length >= (f.minStateLength ?? 65_536);
  }

  /** Interface indexes of links in a router namespace (none asked: no namespace opened). */
  private ifindexes(ns: string, devs: string[]): Map<string, number> {
    const out = new Map<string, number>();
    if (!devs.length) return out;
    const h = this.kernel.open(ns);
    try {
      for (const d of devs) {
        const l = h.netlink.linkFind(d);
        if (l) out.set(d, l.index);
      }
    } finally {
      h.close();
    }
    return out;
  }

  /** `make()` of a model, cached like its table (`part` names what). */
  private cached<T = NftObject[]>(m: RouterModel, key: string, part: string, make: () => T): T {
    const slot = `${this.opts.stateDir}\0${m.namespace}\0${part}`;
    const hit = this.caches.get<T>(slot, key);
    if (hit) return hit;
    const objs = make();
    this.caches.put(slot, key, objs);
    return objs;
  }

  /**
   * The public attachments and the NAT plan of the model of text `key` (read-only): asked for by the plumbing plan
   * and the table's compile of one command (10,000 public IPs: ~15 ms to make). One per router, like its table: a
   * slot holding the model's and its predecessor's, so that the next command would reuse the one before it,
   * measured slower (release-ip beside 10,000 port forwards 22–27 → 37–70 ms, the table sync's share; not found
   * why), so the model before a command is planned again.
   */
  private plans(m: RouterModel, key: string): { pub: Attachment[]; nat: NatPlan } {
    return this.cached(m, key, 'plans', () => {
      const pub = publicAttachments(m);
      return { pub, nat: natPlan(m, pub) };
    });
  }

  /** The router table's contents for a model, `key` its serialised text (see EngineCaches). */
  private tableObjects(m: RouterModel, nat: NatPlan, key: string): NftObject[] {
    const slot = `${this.opts.stateDir}\0${m.namespace}`;
    const hit = this.caches.get(slot, key);
    if (hit) return hit;
    const ingress = { filtered: [] as string[], services: [] as PublicService[] };
    for (const mod of this.modules) {
      const x = mod.publicIngress?.(m);
      if (x?.filtered) ingress.filtered.push(...x.filtered);
      if (x?.services) ingress.services.push(...x.services);
    }
    const objs = routerObjects(nat, this.modules.flatMap((mod) => mod.nftObjects?.(m) ?? []), ingress);
    this.caches.put(slot, key, objs);
    return objs;
  }

  private init(req: { namespace: string; networkId?: string; vpcId?: string; adoptNamespace?: boolean }): () => RouterModel {
    return () => {
      const m = req.vpcId !== undefined ? emptyModel(req.namespace, 'vpc', req.vpcId) : emptyModel(req.namespace, 'network', req.networkId ?? '');
      if (req.adoptNamespace) m.adoptedNamespace = true;
      return m;
    };
  }

  /**
   * Re-apply every stored router (after a reboot: namespaces, rules and daemons gone, state kept): plumbing,
   * nft table and modules, i.e. dnsmasq, haproxy and the metadata service too. Throws (SystemError naming
   * each failed router) when any failed, after trying them all; see restoreEach.
   */
  async restoreAll(): Promise<string[]> {
    const r = await this.restoreEach();
    if (r.failed.length) {
      throw new SystemError(`restoring ${r.failed.length} of ${r.failed.length + r.restored.length} routers failed: ${r.failed.map((f) => `${f.namespace}: ${f.error}`).join('; ')}`);
    }
    return r.restored;
  }

  /** restoreAll without giving up: one router failing does not keep the others down. */
  async restoreEach(): Promise<{ restored: string[]; failed: Array<{ namespace: string; error: string }> }> {
    const restored: string[] = [];
    const failed: Array<{ namespace: string; error: string }> = [];
    for (const ns of this.store.list()) {
      try {
        const release = await this.lockRouter(ns);
        try {
          const m = this.store.load(ns);
          if (m) {
            await this.reconcile(m);
            restored.push(ns);
          }
        } finally {
          release();
        }
      } catch (e) {
        failed.push({ namespace: ns, error: wrap(e, `restoring ${ns}`).message });
      }
    }
    return { restored, failed };
  }

  /**
   * Bring a router's daemons (dnsmasq, haproxy, metadata service) back after one died: under the router's
   * lock (waiting at most `lockWaitMs`; a busy router is left to the command that holds it, which
   * reconciles them anyway), the modules are reconciled to the stored model — plumbing and nft are not
   * touched. `stillNeeded` is asked again under the lock (a command may have revived or removed it meanwhile).
   * Outcome: `busy` (another holds the lock), `unneeded` (no longer dead), `skipped` (no state, an idle router,
   * or its namespace is gone — that is restore-all's work), `revived`.
   */
  async reviveServices(ns: string, stillNeeded: () => boolean, lockWaitMs = 200): Promise<'revived' | 'busy' | 'unneeded' | 'skipped'> {
    let release: () => void;
    try {
      release = await this.store.lock(ns, lockWaitMs);
    } catch (e) {
      if (e instanceof RouterError && e.code === 'E_LOCK_TIMEOUT') return 'busy';
      throw wrap(e, `locking router ${ns}`);
    }
    try {
      if (!stillNeeded()) return 'unneeded';
      const m = this.store.load(ns);
      if (!m || modelIsIdle(m) || !this.kernel.netnsExists(ns)) return 'skipped';
      const host = this.hostHandle();
      try {
        const ctx = this.reconcileContext(host);
        for (const mod of this.modules) await mod.reconcile?.(m, m, ctx);
      } catch (e) {
        throw wrap(e, `reviving the services of ${ns}`);
      } finally {
        host.close();
      }
      return 'revived';
    } finally {
      release();
    }
  }

  /** Readable description of a router's state and its live nft table (custom-action dump-config). */
  async dumpConfig(ns: string): Promise<{ state: RouterModel | undefined; nat: NatPlan | undefined; modules?: Record<string, unknown>; live: unknown }> {
    const state = this.store.load(ns);
    let live: unknown = null;
    if (this.kernel.netnsExists(ns)) {
      const { ex, release } = this.executor(ns);
      try {
        live = await ex.list(ROUTER_TABLE);
      } catch {
        live = null;
      } finally {
        await release();
      }
    }
    const modules: Record<string, unknown> = {};
    for (const mod of this.modules) {
      const d = state ? mod.describe?.(state) : undefined;
      if (d !== undefined) modules[mod.name] = d;
    }
    return { state, nat: state ? natPlan(state) : undefined, ...(Object.keys(modules).length ? { modules } : {}), live };
  }
}
