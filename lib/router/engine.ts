/**
 * The router engine: every command loads the router's desired state (RouterModel), changes it, reconciles
 * the kernel to it (plumbing via rtnetlink, one nft transaction for the namespace), then persists it. A failed
 * reconcile re-applies the previous state (best effort) and leaves the stored state untouched, so a retry
 * converges and nothing half-applied stays.
 */
import { rmSync } from 'node:fs';
import { NetnsHandle } from '../netns/handle.js';
import { netnsExists, deleteNetns } from '../netns/namespaces.js';
import { NetlinkError } from '../netlink/errors.js';
import { namespaceExecutor } from '../nft/namespace-executor.js';
import { StateStore } from './state/store.js';
import { emptyModel, modelIsIdle, type RouterModel, type TierModel, type PublicIpModel } from './model.js';
import { plumbingPlan, natPlan, tierAttachment, publicAttachments } from './topology.js';
import { applyPlumbing, removePlumbing, PlumbingError } from './plumbing.js';
import { reconcileL2Segment } from './l2-segment.js';
import { DORMANT_STATES, externalGateway, sharedGap } from './shared-network.js';
import { claimNamespace } from './ownership.js';
import type { NatPlan } from './ruleset.js';
import { RouterError, UsageError, SystemError } from '../util/errors.js';
import { deleteNatConntrack } from './conntrack-cleanup.js';
import type * as T from './contract/types.js';
import type { Segment } from './segment.js';
import { routerRunDir, type RouterModule, type ReconcileContext, type PublicService } from './module.js';
import { defaultModules } from './modules.js';
import { ROUTER_TABLE, ROUTER_TABLE_COMMENT, routerObjects } from './ruleset.js';
import { syncTable, type SyncResult } from '../nft/table-sync.js';
import type { NftObject } from '../nft/objects.js';
import { LruMap } from '../util/lru-map.js';
import { cidrText, networkText } from '../util/ip.js';
import { nftGeneration } from '../nft/generation.js';

export interface EngineOptions {
  stateDir: string;
  /** Host-side plumbing inside this named namespace instead of the caller's. */
  hostNetns?: string;
  devices: { guest: string; public: string };
  /** Lock wait budget (ms). */
  lockTimeoutMs?: number;
  /** Force the nft CLI executor (native fallback). */
  nftCli?: boolean;
  /** Feature modules (firewall, services, …); default: defaultModules(). */
  modules?: RouterModule[];
  /** Caches to share with other engines (a long-lived process makes one engine per command). */
  caches?: EngineCaches;
  /** Called after each successful change with its phase times (ms) and how the nft table was brought up to date. */
  onChanged?: (phases: Record<string, number>, nft: SyncResult | undefined) => void;
  /** Degraded operation worth a log line (libnftables missing: the nft CLI is used). */
  warn?: (message: string) => void;
}

/**
 * What an engine keeps between commands: the router table compiled for the last models, by router (the next
 * command's previous model is usually the model just applied, and compiling 10,000 rules costs ~30 ms). Keyed
 * by the model's serialised text, so a hit is always exact.
 */
export class EngineCaches {
  private readonly objects: LruMap<string, { key: string; objs: NftObject[] }>;
  constructor(max = 16) {
    this.objects = new LruMap(max);
  }

  get(slot: string, key: string): NftObject[] | undefined {
    const hit = this.objects.get(slot);
    return hit && hit.key === key ? hit.objs : undefined;
  }

  put(slot: string, key: string, objs: NftObject[]): void {
    this.objects.set(slot, { key, objs });
  }
}

/** Which command a change is for: named in refusals. */
export interface CommandRef {
  command: string;
  networkId?: string;
  guestType?: T.GuestType;
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

/** The model with nothing implemented: reconciling it removes the router (its namespace, its daemons). */
function idleCopy(m: RouterModel): RouterModel {
  const c = structuredClone(m);
  for (const t of Object.values(c.tiers)) t.implemented = false;
  if (c.vpc) c.vpc.implemented = false;
  return c;
}

/** Times the phases of one command: each mark() books the time since the previous mark. */
class Phases {
  readonly times: Record<string, number> = {};
  private t = performance.now();
  mark(name: string): void {
    const now = performance.now();
    this.times[name] = (this.times[name] ?? 0) + (now - this.t);
    this.t = now;
  }
}

export class RouterEngine {
  readonly store: StateStore;
  readonly modules: RouterModule[];
  private readonly opts: EngineOptions;
  /** How the last reconcile brought the nft table up to date (for logs, tests and benchmarks). */
  lastNftSync: SyncResult | undefined;
  /** Milliseconds per phase of the last command (lock, load, mutate, compile, plumbing, nft, modules, save). */
  lastPhases: Record<string, number> = {};
  private readonly caches: EngineCaches;
  private warnedNftCli = false;

  constructor(opts: EngineOptions) {
    this.opts = opts;
    this.store = new StateStore(opts.stateDir);
    this.modules = opts.modules ?? defaultModules();
    this.caches = opts.caches ?? new EngineCaches();
  }

  /**
   * The generic command: under the router's lock, load its model (or `init()` it), apply `mutate`, reconcile,
   * persist. `mutate` may return 'delete' to drop the stored state after reconciling. Modules use this for
   * their commands (apply-fw-rules, add-dhcp-entry, …). With `cmd`, a command that reaches an L2 network is
   * refused (exit 1, nothing changed): everything but the network lifecycle needs L3.
   */
  async change(ns: string, init: () => RouterModel, mutate: (m: RouterModel) => void | 'delete', cmd?: CommandRef): Promise<RouterModel | undefined> {
    return this.transact(ns, init, mutate, cmd);
  }

  /** `change` for a network- or VPC-level request: its router, its init, and the L2 refusal naming its command. */
  async changeFor(req: CommandRef & { namespace: string; vpcId?: string }, mutate: (m: RouterModel) => void | 'delete'): Promise<RouterModel | undefined> {
    return this.transact(req.namespace, this.init(req), mutate, req);
  }

  /** `init` for a request that names a network and maybe a VPC. */
  initFor(req: { namespace: string; networkId?: string; vpcId?: string; adoptNamespace?: boolean }): () => RouterModel {
    return this.init(req);
  }

  private hostHandle(): NetnsHandle {
    return this.opts.hostNetns ? NetnsHandle.open(this.opts.hostNetns) : NetnsHandle.current();
  }

  /** The namespace's nft executor (lib/nft/namespace-executor.ts); the fallback to the nft command is logged once. */
  private executor(ns: string): ReturnType<typeof namespaceExecutor> {
    return namespaceExecutor(ns, {
      cli: this.opts.nftCli,
      onFallback: (reason) => {
        // degraded, not broken: the nft command does the same, ~1000× slower per call. Once per command.
        if (this.warnedNftCli) return;
        this.warnedNftCli = true;
        this.opts.warn?.(`libnftables is not usable (${reason}); falling back to the nft command (slower)`);
      },
    });
  }

  /** The router's engine lock; a failure to take it (state directory unusable) is a SystemError. */
  private async lockRouter(ns: string): Promise<() => void> {
    try {
      return await this.store.lock(ns, this.opts.lockTimeoutMs ?? 30_000);
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
  private async transact(ns: string, init: () => RouterModel, mutate: (m: RouterModel) => void | 'delete', cmd?: CommandRef): Promise<RouterModel | undefined> {
    const phases = new Phases();
    this.lastPhases = phases.times;
    const release = await this.lockRouter(ns);
    phases.mark('lock');
    try {
      // the state file's text is parsed twice (the old model, and the one to change) instead of cloning: a
      // parse is ~3× cheaper than structuredClone; the text is also the old model's cache key
      const text = this.store.read(ns);
      const before = text === undefined ? undefined : this.store.parse(ns, text);
      // a new router's namespace did not exist before: undoing it means removing it again
      const existed = before !== undefined || netnsExists(ns);
      const model: RouterModel = text === undefined ? init() : this.store.parse(ns, text);
      phases.mark('load');
      if (before) refuseOtherRouter(before, init);
      if (cmd) refuseOnL2(model, cmd);
      let verdict: void | 'delete';
      try {
        verdict = mutate(model);
      } catch (err) {
        throw wrap(err, `changing ${ns}`);
      }
      const next = StateStore.serialize(model);
      phases.mark('mutate');
      try {
        await this.reconcileKeyed(model, next, before, text, phases);
        if (verdict === 'delete') this.store.remove(ns);
        else this.store.save(model, next);
      } catch (err) {
        await this.undo(model, before, existed);
        throw wrap(err, `reconciling ${ns}`);
      }
      if (verdict === 'delete') {
        this.committed(ns, undefined);
        return undefined;
      }
      this.committed(ns, model);
      phases.mark('save');
      this.opts.onChanged?.(phases.times, this.lastNftSync);
      return model;
    } finally {
      release();
    }
  }

  /** Best effort back to the state before a failed command (`applied`: what the kernel may partly hold). */
  private async undo(applied: RouterModel, before: RouterModel | undefined, existed: boolean): Promise<void> {
    try {
      if (before) await this.reconcile(before, applied);
      else if (!existed) await this.reconcile(idleCopy(applied), applied);
    } catch {
      /* the retry will converge */
    }
  }

  /**
   * After the state is saved (`m`) or deleted (undefined: destroy): modules drop what only older states needed;
   * a deleted router's runtime directory goes too (its processes were stopped by the teardown).
   */
  private committed(ns: string, m: RouterModel | undefined): void {
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

  /** reconcile, with the models' serialised texts (their compiled-objects cache keys) already known. */
  private async reconcileKeyed(m: RouterModel, key: string, previous?: RouterModel, previousKey?: string, phases?: Phases): Promise<void> {
    const host = this.hostHandle();
    try {
      const ctx: ReconcileContext = { host, stateDir: this.opts.stateDir };
      if (m.l2 || previous?.l2) {
        reconcileL2Segment(host, m, previous); // an L2 network: links on the host, no namespace, no rules
        return;
      }
      // only a namespace netns-router made (or whose router it stores, or adopts on request) is touched
      claimNamespace(m.namespace, { stored: this.store.has(m.namespace), adopt: m.adoptedNamespace === true });
      if (modelIsIdle(m)) {
        for (const mod of [...this.modules].reverse()) await mod.teardown?.(m, ctx);
        const atts = [...Object.values(m.tiers).map((t) => tierAttachment(m, t)), ...publicAttachments(m)];
        removePlumbing(host, m.namespace, atts, { deleteNamespace: true });
        return;
      }
      // compute the whole ruleset first: an invalid module state fails before anything changes
      const nat = natPlan(m);
      // what the kernel should hold now (checked by the stamp in syncTable); asked first: it is usually the
      // cached result of the previous command
      const assumed = previous && !modelIsIdle(previous) ? this.tableObjects(previous, natPlan(previous), previousKey!) : undefined;
      const want = this.tableObjects(m, nat, key);
      phases?.mark('compile');
      applyPlumbing(host, plumbingPlan(m));
      phases?.mark('plumbing');
      const { ex, release } = this.executor(m.namespace);
      try {
        this.lastNftSync = await syncTable(ex, ROUTER_TABLE, want, assumed, {
          comment: ROUTER_TABLE_COMMENT, generation: () => nftGeneration(m.namespace),
        });
      } finally {
        await release();
      }
      phases?.mark('nft');
      if (previous && !modelIsIdle(previous)) await deleteNatConntrack(m.namespace, natPlan(previous), nat);
      for (const mod of this.modules) await mod.reconcile?.(m, previous, ctx);
      phases?.mark('modules');
    } finally {
      host.close();
    }
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

  private guestTier(req: T.NetworkTarget & T.GuestAddressing, cur: TierModel | undefined): TierModel {
    const segment = req.segment ?? cur?.segment;
    const gateway = req.gateway ?? cur?.gateway;
    const cidr = req.cidr ? networkText(req.cidr) : cur?.cidr;
    if (!segment) throw new UsageError('missing --vlan (payload.vlan): the guest segment is required', 'vlan');
    if (!gateway) throw new UsageError('missing --gateway (payload.gateway)', 'gateway');
    if (!cidr) throw new UsageError('missing --cidr (payload.cidr)', 'cidr');
    const t: TierModel = {
      networkId: req.networkId, segment, hostDev: cur?.hostDev ?? this.opts.devices.guest, gateway, cidr,
      extensionIp: req.extensionIp ?? cur?.extensionIp ?? gateway,
      guestType: req.guestType === 'shared' || cur?.guestType === 'shared' ? 'shared' : 'isolated',
      implemented: true,
    };
    const ip6g = req.ip6Gateway ?? cur?.ip6Gateway;
    const ip6c = req.ip6Cidr ? cidrText(req.ip6Cidr) : cur?.ip6Cidr;
    // the IPv6 gateway of a shared network served from its own address is the external router's: not taken
    if (ip6g && ip6c && !externalGateway(t)) { t.ip6Gateway = ip6g; t.ip6Cidr = ip6c; }
    const dns = req.dns ?? cur?.dns; if (dns) t.dns = dns;
    const dns6 = req.dns6 ?? cur?.dns6; if (dns6) t.dns6 = dns6;
    const domain = req.domain ?? cur?.domain; if (domain) t.domain = domain;
    return t;
  }

  private init(req: { namespace: string; networkId?: string; vpcId?: string; adoptNamespace?: boolean }): () => RouterModel {
    return () => {
      const m = req.vpcId !== undefined ? emptyModel(req.namespace, 'vpc', req.vpcId) : emptyModel(req.namespace, 'network', req.networkId ?? '');
      if (req.adoptNamespace) m.adoptedNamespace = true;
      return m;
    };
  }

  // ── network lifecycle ────────────────────────────────────────────────────────────────────────────────

  async implementNetwork(req: T.ImplementNetworkRequest): Promise<RouterModel | undefined> {
    return this.transact(req.namespace, this.init(req), (m) => {
      if (req.guestType === 'l2' || (req.guestType === undefined && m.l2)) return this.implementL2(m, req);
      if (m.l2) {
        throw new UsageError(`network ${req.networkId} is implemented as an L2 network (guest_type l2); destroy it before implementing it as ${req.guestType}`, 'guest_type');
      }
      m.tiers[req.networkId] = this.guestTier(req, m.tiers[req.networkId]);
      if (m.kind === 'vpc') m.vpc = { ...(m.vpc ?? { id: req.vpcId ?? '' }), implemented: true };
    });
  }

  /** implement-network of an L2 network: its segment, nothing at L3 (lib/router/l2-segment.ts). */
  private implementL2(m: RouterModel, req: T.ImplementNetworkRequest): void {
    if (req.vpcId !== undefined || m.kind === 'vpc') throw new UsageError('--guest-type (payload.guest_type) l2: a VPC tier cannot be an L2 network', 'guest_type');
    const l3: Array<[keyof T.GuestAddressing, string]> = [['gateway', 'gateway'], ['cidr', 'cidr'], ['extensionIp', 'extension_ip'], ['ip6Gateway', 'network_ip6_gateway'], ['ip6Cidr', 'network_ip6_cidr']];
    for (const [prop, arg] of l3) {
      if (req[prop] !== undefined) throw new UsageError(`--${arg.replace(/_/g, '-')} (payload.${arg}): an L2 network (guest_type l2) has no L3 addressing`, arg);
    }
    if (Object.keys(m.tiers).length || Object.keys(m.publicIps).length) {
      throw new UsageError(`network ${req.networkId} is implemented as a routed network on ${m.namespace}; destroy it before implementing it as L2 (guest_type l2)`, 'guest_type');
    }
    const segment = req.segment ?? m.l2?.segment;
    if (!segment) throw new UsageError('missing --vlan (payload.vlan): the guest segment is required', 'vlan');
    m.l2 = { networkId: req.networkId, segment, hostDev: m.l2?.hostDev ?? this.opts.devices.guest, implemented: true };
  }

  /**
   * Implements a shared network's router from a command that describes the network (lib/router/shared-network.ts),
   * inside that command's change, when it is not implemented yet. Nothing for other guest types, VPC tiers or
   * dormant networks. A request that does not describe the network fails with the argument named — unless
   * `ifComplete` (prepare-nic: a NIC on a network this router does not serve is no error), then it does nothing.
   */
  implementShared(m: RouterModel, req: T.NetworkTarget & T.GuestAddressing, opts: { ifComplete?: boolean } = {}): void {
    if (req.guestType !== 'shared' || req.vpcId !== undefined || m.l2) return;
    if (req.networkState && DORMANT_STATES.has(req.networkState)) return;
    const cur = m.tiers[req.networkId];
    if (cur?.implemented) return;
    const gap = sharedGap(req, cur);
    if (gap) {
      if (gap.kind === 'incomplete' && opts.ifComplete) return;
      throw new UsageError(gap.message, gap.argument);
    }
    m.tiers[req.networkId] = this.guestTier(req, cur);
  }

  /** Whether `req` could implement its shared network (see implementShared), judged without its router's state. */
  canImplementShared(req: T.NetworkTarget & T.GuestAddressing): boolean {
    return req.guestType === 'shared' && req.vpcId === undefined && !(req.networkState && DORMANT_STATES.has(req.networkState)) && sharedGap(req) === undefined;
  }

  async shutdownNetwork(req: T.ShutdownNetworkRequest): Promise<void> {
    await this.transact(req.namespace, this.init(req), (m) => {
      if (m.l2) m.l2.implemented = false;
      const t = m.tiers[req.networkId];
      if (t) t.implemented = false;
    });
  }

  async destroyNetwork(req: T.DestroyNetworkRequest): Promise<void> {
    await this.transact(req.namespace, this.init(req), (m) => {
      if (m.l2 || (req.guestType === 'l2' && m.kind === 'network' && !Object.keys(m.tiers).length)) {
        // without stored state the request's segment still names the links to look at (only marked ones go)
        if (!m.l2 && req.segment) m.l2 = { networkId: req.networkId, segment: req.segment, hostDev: this.opts.devices.guest, implemented: false };
        if (m.l2) m.l2.implemented = false;
        return 'delete';
      }
      const t = m.tiers[req.networkId];
      // every module forgets the tier first, while it is still in the model (a re-implemented tier starts empty)
      if (t) for (const mod of this.modules) mod.forgetTier?.(m, req.networkId);
      if (t) t.implemented = false;
      if (m.kind === 'network') {
        for (const k of Object.keys(m.tiers)) m.tiers[k].implemented = false;
        return 'delete';
      }
      delete m.tiers[req.networkId];
      for (const [ip, p] of Object.entries(m.publicIps)) if (p.owner === req.networkId) this.dropPublicIp(m, ip);
    });
    // isolated: the namespace is gone with the model; a stale one (no state) is removed as well
    if (!req.vpcId && netnsExists(req.namespace)) deleteNetns(req.namespace, { ifExists: true });
  }

  // ── VPC lifecycle ────────────────────────────────────────────────────────────────────────────────────

  async implementVpc(req: T.ImplementVpcRequest): Promise<RouterModel | undefined> {
    return this.transact(req.namespace, this.init(req), (m) => {
      m.vpc = { id: req.vpcId, implemented: true, ...(req.vpcCidr ? { cidr: networkText(req.vpcCidr) } : m.vpc?.cidr ? { cidr: m.vpc.cidr } : {}) };
      if (req.publicIp) this.putPublicIp(m, req.publicIp, req.vpcId);
    });
  }

  async updateVpcSourceNatIp(req: T.UpdateVpcSourceNatIpRequest): Promise<RouterModel | undefined> {
    return this.transact(req.namespace, this.init(req), (m) => {
      if (req.vpcCidr) m.vpc = { ...(m.vpc ?? { id: req.vpcId, implemented: true }), cidr: networkText(req.vpcCidr) };
      for (const p of Object.values(m.publicIps)) p.sourceNat = false;
      this.putPublicIp(m, { ...req.publicIp, sourceNat: true }, req.vpcId);
    });
  }

  async shutdownVpc(req: T.ShutdownVpcRequest): Promise<void> {
    await this.transact(req.namespace, this.init(req), (m) => {
      if (m.vpc) m.vpc.implemented = false;
      for (const t of Object.values(m.tiers)) t.implemented = false;
    });
  }

  async destroyVpc(req: T.DestroyVpcRequest): Promise<void> {
    await this.transact(req.namespace, this.init(req), (m) => {
      if (m.vpc) m.vpc.implemented = false;
      for (const t of Object.values(m.tiers)) t.implemented = false;
      return 'delete';
    });
    if (netnsExists(req.namespace)) deleteNetns(req.namespace, { ifExists: true });
  }

  // ── public IPs and NAT ───────────────────────────────────────────────────────────────────────────────

  private putPublicIp(m: RouterModel, p: T.PublicIpSpec, owner: string): void {
    const cur = m.publicIps[p.ip];
    const segment: Segment | undefined = p.segment ?? cur?.segment;
    if (!segment) throw new UsageError(`missing --public-vlan for public IP ${p.ip}`, 'public_vlan');
    const model: PublicIpModel = {
      ip: p.ip,
      prefixLen: p.cidr ? p.cidr.prefix : cur?.prefixLen ?? 32,
      segment,
      hostDev: cur?.hostDev ?? this.opts.devices.public,
      sourceNat: p.sourceNat || (cur?.sourceNat ?? false),
      owner: cur?.owner ?? owner,
    };
    const gw = p.gateway ?? cur?.gateway;
    if (gw) model.gateway = gw;
    m.publicIps[p.ip] = model;
  }

  private dropPublicIp(m: RouterModel, ip: string): void {
    delete m.publicIps[ip];
    m.staticNats = m.staticNats.filter((s) => s.publicIp !== ip);
    m.portForwards = m.portForwards.filter((p) => p.publicIp !== ip);
  }

  private requirePublicIp(m: RouterModel, ip: string): void {
    if (!m.publicIps[ip]) throw new UsageError(`public IP ${ip} is not assigned to ${m.namespace} (run assign-ip first)`, 'public_ip');
  }

  async assignIp(req: T.AssignIpRequest): Promise<RouterModel | undefined> {
    return this.changeFor(req, (m) => {
      // assign-ip may arrive before implement-network (upstream implements on demand) — but not for a network
      // CloudStack reports as not running: then the IP is only remembered, as upstream's no-op success
      const dormant = req.networkState !== undefined && DORMANT_STATES.has(req.networkState);
      if (!dormant && req.vpcId === undefined && !m.tiers[req.networkId] && req.gateway && req.cidr && req.segment) {
        m.tiers[req.networkId] = this.guestTier(req, undefined);
      }
      this.putPublicIp(m, req.publicIp, req.networkId);
    });
  }

  async releaseIp(req: T.ReleaseIpRequest): Promise<void> {
    await this.changeFor(req, (m) => {
      this.dropPublicIp(m, req.publicIp.ip);
    });
  }

  async addStaticNat(req: T.AddStaticNatRequest): Promise<RouterModel | undefined> {
    return this.changeFor(req, (m) => {
      this.requirePublicIp(m, req.publicIp.ip);
      // a VM leaves through one public address: a second static NAT for its private IP would be ambiguous
      const other = m.staticNats.find((s) => s.privateIp === req.privateIp && s.publicIp !== req.publicIp.ip);
      if (other) {
        throw new UsageError(`--private-ip ${req.privateIp} already has static NAT to ${other.publicIp}; delete that one first`, 'private-ip');
      }
      m.staticNats = m.staticNats.filter((s) => s.publicIp !== req.publicIp.ip);
      m.staticNats.push({ publicIp: req.publicIp.ip, privateIp: req.privateIp });
    });
  }

  async deleteStaticNat(req: T.DeleteStaticNatRequest): Promise<void> {
    await this.changeFor(req, (m) => {
      m.staticNats = m.staticNats.filter((s) => s.publicIp !== req.publicIp.ip);
    });
  }

  async addPortForward(req: T.AddPortForwardRequest): Promise<RouterModel | undefined> {
    return this.changeFor(req, (m) => {
      this.requirePublicIp(m, req.publicIp.ip);
      const pf = {
        publicIp: req.publicIp.ip, protocol: req.protocol,
        publicPorts: [req.publicPorts.start, req.publicPorts.end] as [number, number],
        privateIp: req.privateIp, privatePorts: [req.privatePorts.start, req.privatePorts.end] as [number, number],
      };
      const overlaps = (a: [number, number], b: [number, number]) => a[0] <= b[1] && b[0] <= a[1];
      m.portForwards = m.portForwards.filter((p) => !(p.publicIp === pf.publicIp && p.protocol === pf.protocol && overlaps(p.publicPorts, pf.publicPorts)));
      m.portForwards.push(pf);
    });
  }

  async deletePortForward(req: T.DeletePortForwardRequest): Promise<void> {
    await this.changeFor(req, (m) => {
      m.portForwards = m.portForwards.filter((p) => !(p.publicIp === req.publicIp.ip && p.protocol === req.protocol &&
        p.publicPorts[0] === req.publicPorts.start && p.publicPorts[1] === req.publicPorts.end));
    });
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
      if (!m || modelIsIdle(m) || !netnsExists(ns)) return 'skipped';
      const host = this.hostHandle();
      try {
        const ctx: ReconcileContext = { host, stateDir: this.opts.stateDir };
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
  async dumpConfig(ns: string): Promise<{ state: RouterModel | undefined; nat: NatPlan | undefined; live: unknown }> {
    const state = this.store.load(ns);
    let live: unknown = null;
    if (netnsExists(ns)) {
      const { ex, release } = this.executor(ns);
      try {
        live = await ex.list(ROUTER_TABLE);
      } catch {
        live = null;
      } finally {
        await release();
      }
    }
    return { state, nat: state ? natPlan(state) : undefined, live };
  }
}
