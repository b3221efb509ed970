/**
 * The RouterModule interface, the extension point of the engine: firewall/ACL, DHCP/DNS, metadata/password, load
 * balancing and policy routing each plug in as one object, listed in default-modules.ts. A module declares its
 * commands and custom actions (the command table, command-table.ts), keeps its desired state in
 * `model.extra[module.name]`, contributes nft objects to the router's single table (so every change stays ONE
 * atomic transaction per namespace), and reconciles its processes after the kernel plumbing and rules.
 */
import { join } from 'node:path';
import type { NsOps, RouterKernel } from './kernel.js';
import type { PlanStep } from './plan.js';
import type { NftExecutor } from '../nft/executor.js';
import type { NftObject } from '../nft/objects.js';
import type { TableRef } from '../nft/json.js';
import type { RouterModel } from './model.js';
import type { ActionTable, CommandTable } from './command-table.js';

/** A table of the host-side namespace a module keeps (see RouterModule.hostTables). */
export type HostTable = TableRef & { only?: (name: string) => boolean };

/** What a module's reconcile and teardown get besides the model: the host namespace's handle, the state directory. */
export interface ReconcileContext {
  /** Where host-side plumbing lives (the caller's namespace or --host-netns). */
  host: NsOps;
  /** The kernel the engine reconciles (the machine's, a fake, or a plan's recording overlay; kernel.ts). */
  kernel: RouterKernel;
  /** The engine's state directory (modules keep runtime files under `<stateDir>/run/<namespace>/`). */
  stateDir: string;
  /** The engine's nftables executor for the host-side namespace (release it after use). */
  hostNft(): { ex: NftExecutor; release: () => Promise<void> };
}

/** What a module tells the public guard: addresses whose new ingress it filters itself, and its public services. */
export interface PublicIngress {
  /** Public (or routed IPv6 guest) addresses whose new ingress the module has already filtered. */
  filtered?: string[];
  /** Services of the router on its public addresses (IPv4; LB listeners). */
  services?: PublicService[];
}

/** A service of the router on a public address (an LB listener). */
export interface PublicService {
  ip: string;
  protocol: 'tcp' | 'udp';
  port: number;
}

/**
 * A feature module of the engine (firewall, DHCP/DNS, metadata, load balancing, policy routing): its commands and
 * actions, its nft objects in the router's one table, and the reconcile of its daemons. One object per module,
 * listed in defaultModules().
 */
export interface RouterModule {
  /** Key of the module's slot in `model.extra`. */
  readonly name: string;
  /** The commands the module handles, each with the change it makes (lib/router/command-table.ts). */
  readonly commands?: CommandTable;
  /** The custom actions built in that the module handles (custom-action <name>). */
  readonly actions?: ActionTable;
  /**
   * Objects to add to the router table (`inet netns_router`): the module's own sets/maps/chains, base chains
   * at its own priorities. Must be deterministic for a given model. May throw UsageError for invalid state.
   */
  nftObjects?(m: RouterModel): NftObject[];
  /**
   * What the module lets in from the public side (see the public guard in router-table.ts): public addresses whose
   * ingress it filters itself (packets to them that reach the guard already passed its rules), and services
   * the router itself offers on public addresses (haproxy listeners). Everything else arriving on a public
   * interface that is neither a reply nor translated by a static NAT / port forward is dropped.
   */
  publicIngress?(m: RouterModel): PublicIngress;
  /**
   * Before the router table changes (a full reconcile with a previous model; not in plan mode, not when the table
   * is unchanged): start what the new rules will hand traffic to, so that nothing is refused in between — e.g.
   * haproxy listening before the kernel load balancer's DNAT of its rules goes. `reconcile` runs after as usual.
   */
  prepare?(m: RouterModel, previous: RouterModel, ctx: ReconcileContext): Promise<void>;
  /**
   * Before anything of a full reconcile changes (plumbing first): refuse what the module could not own — a host
   * object of its name held by someone else — so that the refused command leaves nothing behind. Only what a
   * change from `previous` would start to use needs checking (`reconcile` checks again as it goes).
   */
  precheck?(m: RouterModel, previous: RouterModel | undefined, ctx: ReconcileContext): Promise<void>;
  /** Converge the module's processes/files to the model (after plumbing + nft). Idempotent. */
  reconcile?(m: RouterModel, previous: RouterModel | undefined, ctx: ReconcileContext): Promise<void>;
  /**
   * Plan mode (plan.ts): what `reconcile` (or, with `teardown`, `teardown`) would change, without changing
   * anything — daemon configuration diffs, processes started/reloaded/stopped, files. Reads are allowed (the
   * running configuration, a pid file); the host nft executor of `ctx` records instead of applying. A module
   * with a reconcile but no plan is listed in the plan as "not described".
   */
  plan?(m: RouterModel, previous: RouterModel | undefined, ctx: ReconcileContext, opts?: { teardown?: boolean }): Promise<PlanStep[]> | PlanStep[];
  /** Tables the module keeps in the host-side namespace for router `namespace` (a plan copies them first); `only`:
   *  the router's part of a table shared by routers (the names of the chains, sets, maps and counters to copy). */
  hostTables?(namespace: string): HostTable[];
  /** Stop and remove everything of the module for this router (called before its namespace is deleted). */
  teardown?(m: RouterModel, ctx: ReconcileContext): Promise<void>;
  /**
   * A tier leaves the router (destroy-network): drop everything the module keeps for it or for its VMs, so
   * that a tier implemented again under the same id starts empty. Called inside the command's mutation,
   * while `m.tiers[networkId]` is still present (its addresses and interface names can be looked up); the
   * reconcile that follows removes what the kernel and the daemons held for it.
   */
  forgetTier?(m: RouterModel, networkId: string): void;
  /**
   * The command's state is durable: `m` as saved, or undefined when the router's state was deleted (destroy).
   * Nothing can re-apply an older state now, so this is where files only that state needed go — above all
   * secrets; with undefined, everything the module keeps for the router. Runs under the router's lock.
   */
  committed?(namespace: string, m: RouterModel | undefined, stateDir: string): void;
  /**
   * Settings a network-level request carries besides its command (network-extension-details keys, e.g.
   * vm-filter-strict), recorded in the model by every command that reaches the router. Called inside the
   * command's mutation, after it. Returns true when it changed the model (a mutation's 'unchanged' then no
   * longer holds: engine MutationVerdict).
   */
  noteRequest?(m: RouterModel, req: object): boolean;
  /** What dump-config shows of the module besides the stored state (e.g. who serves each load-balancing rule). */
  describe?(m: RouterModel): unknown;
}

/** A router's runtime directory `<stateDir>/run/<namespace>/` (modules keep their files below it). */
export function routerRunDir(stateDir: string, namespace: string): string {
  return join(stateDir, 'run', namespace);
}

/** Read a module's slot from the model (undefined when never set). */
export function moduleState<T>(m: RouterModel, name: string): T | undefined {
  return m.extra?.[name] as T | undefined;
}

/** Write (or with `undefined`, clear) a module's slot. */
export function setModuleState<T>(m: RouterModel, name: string, value: T | undefined): void {
  m.extra ??= {};
  if (value === undefined) delete m.extra[name];
  else m.extra[name] = value;
}
