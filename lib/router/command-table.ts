/**
 * The command table: every command of the RouterApi is declared once — by the router's core
 * (lib/router/core/commands.ts) or by the feature module it belongs to (`RouterModule.commands`) — in one
 * shape, the change it makes to one router. runCommand runs a request through its entry and the engine
 * (load → mutate → reconcile → save); createRouterApi is that table as the RouterApi the CLI dispatches to.
 */
import { API_METHOD, type CommandContext, type CommandOutput, type RouterApi } from './contract/router-api.js';
import type * as T from './contract/types.js';
import { EngineCaches, RouterEngine, type EngineOptions, type MutationVerdict } from './engine.js';
import type { RouterModel } from './model.js';
import type { HostTable, RouterModule } from './router-module.js';
import { CORE_ACTIONS, CORE_COMMANDS } from './core/commands.js';
import { canImplementShared, implementShared } from './core/tiers.js';
import { defaultModules } from './default-modules.js';
import { silentLogger } from './log.js';
import { realKernel, type RouterKernel } from './kernel.js';
import { PlanRecorder, planJson, planText } from './plan.js';
import { ROUTER_TABLE } from './router-table.js';
import { ARP_TABLE } from './arp-responder.js';
import type { ReconcileScope } from './reconcile-scope.js';
import type { Background } from '../util/background.js';

/** What a command may use besides its request: the engine of this command, the command's context, the custom actions. */
export interface CommandEnv {
  engine: RouterEngine;
  ctx: CommandContext;
  actions: ActionTable;
}

/**
 * A change of one router's model, run under its lock; 'delete' drops the stored state after reconciling,
 * 'unchanged' promises the model was left exactly as loaded (engine MutationVerdict).
 */
export type Mutation = (m: RouterModel) => MutationVerdict;

/** A command's entry in the command table: the change it makes to its router, and how it runs. */
export interface RouterCommand<R> {
  /**
   * The change the command makes to its router. Called with the request alone, before the router's lock:
   * what it checks or parses there (a rule document, a limit) fails before anything changes. The mutation it
   * returns runs on the router's model under the lock (engine.changeFor).
   */
  change?(req: R, env: CommandEnv): Mutation;
  /** A network lifecycle command: allowed on an L2 network (every other change of one is refused). */
  lifecycle?: true;
  /**
   * The modules whose state alone the change touches: the engine then reconciles only them, after cheap checks
   * of the rest (lib/router/reconcile-scope.ts, docs/reconcile.md). Without it: the whole router.
   */
  scope?: ReconcileScope;
  /**
   * A shared network without a router is implemented first, in the same change ('implement': a request that
   * does not describe the network fails; 'ifComplete': then nothing happens) — lib/router/shared-network.ts.
   */
  shared?: 'implement' | 'ifComplete';
  /**
   * A NIC hook (prepare-nic, release-nic): a router without stored state that the request cannot implement,
   * and an L2 network, are left alone — no empty state, no namespace teardown as a side effect.
   */
  ifRouterExists?: true;
  /**
   * A command that is more than its change (an output, work before or after it) or no change at all
   * (restore-all, status): `run` is the command; `apply(req)` makes the change of `change` for `req`.
   */
  run?(req: R, env: CommandEnv, apply: (req: R) => Promise<RouterModel | undefined>): Promise<CommandOutput>;
}

/** The commands of the core or of one module, each declared once. */
export type CommandTable = { readonly [C in T.EngineCommand]?: RouterCommand<T.RequestOf<C>> };

/**
 * A custom action built in (custom-action <name>): `change` returns the mutation of an action that changes
 * the router, which returns the envelope's message; `run` is any other action and returns the message.
 */
export interface CustomAction<B extends T.BuiltinCustomAction> {
  change?(action: B, req: T.CustomActionRequest): (m: RouterModel) => string;
  /** What the change touches (as RouterCommand.scope). */
  scope?: ReconcileScope;
  run?(action: B, req: T.CustomActionRequest, env: CommandEnv): Promise<unknown>;
}

/** The built-in custom actions of the core or of one module, each declared once. */
export type ActionTable = {
  readonly [N in T.BuiltinCustomAction['name']]?: CustomAction<Extract<T.BuiltinCustomAction, { name: N }>>;
};

/** The router's commands: the core's and every module's, each declared exactly once. */
export function commandTable(modules: readonly RouterModule[]): CommandTable {
  return merged(commandTables, modules, () => merge('command', [{ name: 'core', table: CORE_COMMANDS }, ...modules.map((m) => ({ name: m.name, table: m.commands }))]));
}

/** The custom actions built in: the core's and every module's, each declared exactly once. */
export function actionTable(modules: readonly RouterModule[]): ActionTable {
  return merged(actionTables, modules, () => merge('custom action', [{ name: 'core', table: CORE_ACTIONS }, ...modules.map((m) => ({ name: m.name, table: m.actions }))]));
}

// an engine's module list is fixed: its tables are merged once (every command asked for both)
const commandTables = new WeakMap<readonly RouterModule[], CommandTable>();
const actionTables = new WeakMap<readonly RouterModule[], ActionTable>();
function merged<X>(cache: WeakMap<readonly RouterModule[], X>, modules: readonly RouterModule[], make: () => X): X {
  let t = cache.get(modules);
  if (!t) cache.set(modules, (t = make()));
  return t;
}

function merge<X extends object>(what: string, parts: Array<{ name: string; table: X | undefined }>): X {
  const out: Record<string, unknown> = {};
  const by: Record<string, string> = {};
  for (const { name, table } of parts) {
    for (const [key, entry] of Object.entries(table ?? {})) {
      if (key in out) throw new Error(`${what} ${key} is declared by both ${by[key]} and ${name}`);
      out[key] = entry;
      by[key] = name;
    }
  }
  return out as X;
}

type NetworkRequest = T.NetworkTarget & T.GuestAddressing & { command: string };

/** Runs `req` through its table entry on `engine` (a library caller may leave out `ctx`: see commandContext). */
export async function runCommand<C extends T.EngineCommand>(engine: RouterEngine, req: T.RequestOf<C>, ctx: CommandContext = commandContext(engine)): Promise<CommandOutput> {
  const entry = commandTable(engine.modules)[req.command as C] as RouterCommand<T.RequestOf<C>> | undefined;
  if (!entry) throw new TypeError(`no module of this engine handles ${req.command}`);
  const env: CommandEnv = { engine, ctx, actions: actionTable(engine.modules) };
  const apply = async (r: T.RequestOf<C>): Promise<RouterModel | undefined> => {
    if (!entry.change) return undefined;
    const mutate = entry.change(r, env);
    const q = r as unknown as NetworkRequest;
    if (entry.ifRouterExists) {
      const stored = engine.storedModel(q.namespace);
      if (q.guestType === 'l2' || stored?.l2) return undefined;
      if (!stored && !(entry.shared && canImplementShared(q))) return undefined;
    }
    // (implementing a shared network changes the model: its mutation's 'unchanged' no longer holds)
    const changed: Mutation = entry.shared
      ? (m) => { implementShared(m, q, engine.devices, { ifComplete: entry.shared === 'ifComplete' }); const v = mutate(m); return v === 'unchanged' ? undefined : v; }
      : mutate;
    // what the request carries besides its command (network-extension-details keys) is recorded by the modules
    const mutation: Mutation = (m) => {
      let verdict = changed(m);
      if (verdict === 'delete') return verdict;
      for (const mod of engine.modules) if (mod.noteRequest?.(m, q) === true) verdict = undefined;
      return verdict;
    };
    if (entry.lifecycle) return engine.change(q.namespace, engine.initFor(q), mutation);
    return engine.changeFor(entry.scope ? { ...q, scope: entry.scope } : q, mutation);
  };
  if (entry.run) return entry.run(req, env, apply);
  await apply(req);
  return undefined;
}

/**
 * A command's context for a caller without a CLI invocation (the library, tests, benchmarks): the engine's
 * state directory, host namespace and devices, no physical-network details, a deadline of the engine's lock
 * wait, a silent log; `over` replaces any of it.
 */
export function commandContext(engine: RouterEngine, over: Partial<CommandContext> = {}): CommandContext {
  const timeoutSeconds = Math.ceil(engine.lockTimeoutMs / 1000);
  return {
    settings: {
      extension: 'netns-router', stateDir: engine.stateDir, logFile: '/dev/null', logLevel: 'silent', timeoutSeconds,
      ...(engine.hostNetns ? { hostNetns: engine.hostNetns } : {}),
    },
    devices: engine.devices,
    details: { physicalNetwork: {}, network: {} },
    form: 'options',
    deadline: Date.now() + engine.lockTimeoutMs,
    signal: new AbortController().signal,
    log: silentLogger,
    ...over,
  };
}

/** One engine per command (its settings come with the command), sharing the API's caches and background work. */
function newEngine(ctx: CommandContext, caches: EngineCaches, over: Pick<EngineOptions, 'kernel' | 'plan' | 'modules' | 'background' | 'fastNat' | 'natScope' | 'oneShot'> = {}): RouterEngine {
  return new RouterEngine({
    ...over,
    caches,
    onChanged: (phases, nft) => ctx.log.debug({ phasesMs: phases, nft: nft && { mode: nft.mode, operations: nft.operations, reason: nft.reason } }, 'router changed'),
    stateDir: ctx.settings.stateDir,
    ...(ctx.settings.hostNetns ? { hostNetns: ctx.settings.hostNetns } : {}),
    devices: { guest: ctx.devices.guest, public: ctx.devices.public },
    lockTimeoutMs: Math.max(1000, ctx.deadline - Date.now()),
    warn: (message) => ctx.log.warn(message),
  });
}

/**
 * The RouterApi over the command table. A long-lived process (the resident engine, `serve`) keeps one API:
 * its engines share compiled router tables between commands. With `background`, a command answers before the
 * clean-up it need not wait for (its router stays locked until then; the owner of `background` awaits it
 * before exiting); without, every command returns when all its work is done. `fastNat: false`: a process that runs
 * one command (the cold CLI) keeps nothing warm for a next one (docs/delta-nat.md); `natScope`: its NAT changes
 * reconcile only what they touch (EngineOptions.natScope, docs/reconcile.md); `oneShot`: the process exits after its
 * command (EngineOptions.oneShot).
 */
export function createRouterApi(opts: { background?: Background; fastNat?: EngineOptions['fastNat']; natScope?: boolean; oneShot?: boolean; kernel?: RouterKernel | undefined } = {}): RouterApi {
  const caches = new EngineCaches();
  const api: Record<string, (req: T.RequestOf<T.EngineCommand>, ctx: CommandContext) => Promise<CommandOutput>> = {};
  const over = {
    ...(opts.kernel ? { kernel: opts.kernel } : {}),
    ...(opts.background ? { background: opts.background } : {}), ...(opts.fastNat !== undefined ? { fastNat: opts.fastNat } : {}),
    ...(opts.natScope ? { natScope: true } : {}), ...(opts.oneShot ? { oneShot: true } : {}),
  };
  for (const method of Object.values(API_METHOD)) {
    api[method] = (req, ctx) => (ctx.settings.dryRun ? planCommand(req, ctx, caches, opts.kernel) : runCommand(newEngine(ctx, caches, over), req, ctx));
  }
  return api as unknown as RouterApi;
}

/**
 * The command as a plan (plan.ts): the same command on an engine whose kernel is an overlay of the real one and
 * that writes nothing; its output is the plan (text, or JSON with `--dry-run=json`) instead of the command's.
 */
async function planCommand(req: T.RequestOf<T.EngineCommand>, ctx: CommandContext, caches: EngineCaches, base?: RouterKernel): Promise<CommandOutput> {
  // loaded for a plan only: the in-memory kernel and its nft and haproxy fakes are ~80 KB of modules that every
  // other command of a cold process would evaluate for nothing
  const { FakeKernel } = await import('./fake-kernel.js');
  const modules = defaultModules();
  const ns = (req as { namespace?: string }).namespace;
  const kernel = await FakeKernel.overlay(base ?? realKernel(ctx.settings.hostNetns ? { hostNetns: ctx.settings.hostNetns } : {}), {
    tables: (where): HostTable[] => (where !== undefined ? [ROUTER_TABLE, ARP_TABLE]
      : ns === undefined ? [] : modules.flatMap((m) => m.hostTables?.(ns) ?? [])),
  });
  try {
    const plan = new PlanRecorder(kernel);
    const engine = newEngine(ctx, caches, { kernel, plan, modules });
    await runCommand(engine, req, ctx);
    const p = { command: req.command, changes: plan.steps };
    return { stdout: ctx.settings.dryRun === 'json' ? planJson(p) : planText(p) };
  } finally {
    kernel.dispose();
  }
}
