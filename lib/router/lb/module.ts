/**
 * Load balancing (apply-lb-rules): rules persist per network in `model.extra.lb`; one haproxy per router
 * namespace serves the active rules of all its networks (a VPC's tiers share it). The configuration is
 * regenerated from the rules on every reconcile, checked with `haproxy -c` and then started/reloaded; with no
 * active rule haproxy is stopped. A rule is active while its network is implemented and its public IP assigned.
 * haproxy is reached through the kernel (RouterKernel.haproxy → HaproxyControl): the machine's supervisor, or
 * the fake kernel's in-memory one.
 *
 * A network whose `lb-provider` is "kernel" (network-extension-details, recorded per network) has its plain TCP rules
 * served by nftables instead (kernel.ts); the others stay on haproxy, and a router none of whose rules needs
 * haproxy runs none. haproxy's listeners are declared as public services (publicIngress) so that the public guard
 * lets new connections to them reach haproxy; kernel-served ones are translated before the guard (a DNAT it lets
 * through). The firewall filters both like any public IP (its ingress chain runs before every DNAT).
 */
import { join } from 'node:path';
import type { RouterModule, ReconcileContext } from '../router-module.js';
import { moduleState, routerRunDir, setModuleState } from '../router-module.js';
import type { RouterKernel } from '../kernel.js';
import type { RouterModel } from '../model.js';
import { UsageError } from '../../util/errors.js';
import type { OpaqueJson } from '../contract/types.js';
import { renderConfig, type ProxySpec, type RenderedConfig } from '../../services/haproxy/config.js';
import { HaproxySupervisor } from '../../services/haproxy/supervisor.js';
import type { HaproxyControl } from '../../services/haproxy/control.js';
import { openFilesHardLimit } from '../../sys/proc.js';
import { workerAccount } from '../../services/haproxy/account.js';
import { parseLbDocument } from './parse.js';
import type { LbRule, LbState } from './types.js';
import { compareNatural } from '../../util/compare.js';
import { diffLines, type PlanStep } from '../plan.js';
import { goneListenerFilters, kernelLbObjects, kernelRefusal, type LbProvider } from './kernel.js';

export const LB = 'lb';

/** The module's state, a copy to mutate (saveLbState stores it). */
export const lbState = (m: RouterModel): LbState => structuredClone(moduleState<LbState>(m, LB) ?? { networks: {} });

/** Store `s` (no rule and no provider recorded: the slot goes). */
function saveLbState(m: RouterModel, s: LbState): void {
  if (s.providers && Object.keys(s.providers).length === 0) delete s.providers;
  setModuleState(m, LB, Object.keys(s.networks).length || s.providers ? s : undefined);
}

/** Who serves network `networkId`'s rules (network-extension-details `lb-provider`; default haproxy). */
export function lbProviderOf(m: RouterModel, networkId: string): LbProvider {
  return moduleState<LbState>(m, LB)?.providers?.[networkId] ?? 'haproxy';
}

/**
 * network-extension-details lb-provider carried by a request: recorded for its network (absent: kept). True when
 * it changed the model.
 */
export function lbNoteRequest(m: RouterModel, req: { networkId?: string; lbProvider?: LbProvider }): boolean {
  if (req.lbProvider === undefined || req.networkId === undefined || !m.tiers[req.networkId]) return false;
  if (lbProviderOf(m, req.networkId) === req.lbProvider) return false;
  const s = lbState(m);
  s.providers ??= {};
  if (req.lbProvider === 'kernel') s.providers[req.networkId] = 'kernel';
  else delete s.providers[req.networkId];
  saveLbState(m, s);
  return true;
}

type ActiveRule = LbRule & { networkId: string };

/** The active rules split by who serves them; `why`: rules of a kernel-provider network haproxy serves, and why. */
export function lbServing(m: RouterModel): { haproxy: ActiveRule[]; kernel: ActiveRule[]; why: Map<string, string> } {
  const out = { haproxy: [] as ActiveRule[], kernel: [] as ActiveRule[], why: new Map<string, string>() };
  for (const r of activeLbRules(m)) {
    if (lbProviderOf(m, r.networkId) !== 'kernel') { out.haproxy.push(r); continue; }
    const refusal = kernelRefusal(r);
    if (refusal === undefined) out.kernel.push(r);
    else { out.haproxy.push(r); out.why.set(r.id, refusal); }
  }
  return out;
}

/** Who serves each active rule, as dump-config shows it: `{ruleId: "kernel" | "haproxy" | "haproxy (why)"}`. */
export function describeLbServing(m: RouterModel): Record<string, string> {
  const s = lbServing(m);
  const kernel = new Set(s.kernel.map((r) => r.id));
  const out: Record<string, string> = {};
  for (const r of activeLbRules(m)) {
    const why = s.why.get(r.id);
    out[r.id] = kernel.has(r.id) ? 'kernel' : why ? `haproxy (${why})` : 'haproxy';
  }
  return out;
}

const byId = (a: string, b: string): number => compareNatural(a, b);

/** Rules haproxy should serve now, with their network, in a stable order. */
export function activeLbRules(m: RouterModel): Array<LbRule & { networkId: string }> {
  const s = moduleState<LbState>(m, LB) ?? { networks: {} }; // read only (lbState copies, for the mutators)
  const out: Array<LbRule & { networkId: string }> = [];
  for (const networkId of Object.keys(s.networks).sort(byId)) {
    if (!m.tiers[networkId]?.implemented) continue;
    const rules = s.networks[networkId];
    for (const id of Object.keys(rules).sort(byId)) {
      if (m.publicIps[rules[id].publicIp]) out.push({ ...rules[id], networkId });
    }
  }
  return out;
}

export function toProxy(r: LbRule & { networkId?: string }): ProxySpec {
  const cookie = r.stickiness?.method === 'LbCookie' || r.stickiness?.method === 'AppCookie';
  const p: ProxySpec = {
    id: r.id,
    bindIp: r.publicIp,
    bindPort: r.publicPort,
    // cookie stickiness needs HTTP parsing, as upstream's haproxy configurator does
    mode: r.protocol === 'http' || cookie ? 'http' : 'tcp',
    algorithm: r.algorithm,
    servers: r.backends.map((b) => ({ ...b })),
    comment: [r.networkId !== undefined ? `network ${r.networkId}` : '', r.name ?? ''].filter(Boolean).join(', '),
  };
  if (r.maxconn !== undefined) p.maxconn = r.maxconn;
  if (r.healthcheck) p.healthcheck = r.healthcheck;
  if (r.stickiness) p.stickiness = r.stickiness;
  return p;
}

/** haproxy's configuration for the rules it serves (`all`: every active rule, as if haproxy served them all). */
export function renderLbConfig(m: RouterModel, opts: { all?: boolean } = {}): RenderedConfig {
  const fdHardLimit = openFilesHardLimit();
  const runAs = workerAccount();
  return renderConfig((opts.all ? activeLbRules(m) : lbServing(m).haproxy).map(toProxy), {
    title: `load balancer of ${m.namespace}`, ...(fdHardLimit !== undefined ? { fdHardLimit } : {}), ...(runAs ? { runAs } : {}),
  });
}

/**
 * The apply-lb-rules mutation: merge the document into the network's rules (revoke deletes, others add or
 * replace by id), then validate the whole namespace: public IP assigned, no duplicate public IP:port, no clash
 * with port forwarding or static NAT, and the resulting configuration accepted by `haproxy -c` (the router's
 * haproxy's check, HaproxyControl.check) — of every active rule, kernel-served ones too, so that moving a network
 * back to haproxy cannot fail on a rule it never checked. Any failure throws UsageError before anything changes.
 * The request's `lb-provider` is recorded first (the rules are judged under it).
 */
export function applyLbRules(m: RouterModel, req: { networkId: string; lbRules?: OpaqueJson; lbProvider?: LbProvider }, haproxy: Pick<HaproxyControl, 'check'>): void {
  lbNoteRequest(m, req);
  if (!req.lbRules) return; // upstream default: an empty list
  const doc = parseLbDocument(req.lbRules);
  const source = req.lbRules.source;
  const s = lbState(m);
  // rules of networks that left the router (VPC tier destroyed) go with them
  for (const id of Object.keys(s.networks)) if (!m.tiers[id]) delete s.networks[id];
  for (const id of Object.keys(s.providers ?? {})) if (!m.tiers[id]) delete s.providers![id];
  const mine = (s.networks[req.networkId] ??= {});
  for (const id of doc.revokes) delete mine[id];
  for (const r of doc.upserts) {
    const fail = (f: string, msg: string): never => { throw new UsageError(`${source}: rule ${r.id}: ${f}: ${msg}`, 'lb_rules'); };
    for (const [net, rules] of Object.entries(s.networks)) {
      if (net !== req.networkId && rules[r.id]) fail('id', `already used by a rule of network ${net}`);
    }
    if (!m.publicIps[r.publicIp]) fail('publicIp', `${r.publicIp} is not assigned to ${m.namespace} (run assign-ip first)`);
    if (m.staticNats.some((x) => x.publicIp === r.publicIp)) fail('publicIp', `${r.publicIp} is a static NAT address (all its traffic goes to ${m.staticNats.find((x) => x.publicIp === r.publicIp)!.privateIp})`);
    const pf = m.portForwards.find((x) => x.publicIp === r.publicIp && x.protocol === 'tcp' && x.publicPorts[0] <= r.publicPort && r.publicPort <= x.publicPorts[1]);
    if (pf) fail('publicPort', `${r.publicIp}:${r.publicPort} is port-forwarded to ${pf.privateIp}`);
    mine[r.id] = r;
  }
  // one listener per address: duplicates across all networks of the namespace
  const owner = new Map<string, string>();
  for (const rules of Object.values(s.networks)) {
    for (const r of Object.values(rules)) {
      const key = `${r.publicIp}:${r.publicPort}`;
      const other = owner.get(key);
      if (other !== undefined) {
        const newer = doc.upserts.some((u) => u.id === r.id) ? r.id : other;
        const older = newer === r.id ? other : r.id;
        throw new UsageError(`${source}: rule ${newer}: publicIp/publicPort: ${key} is already used by rule ${older}`, 'lb_rules');
      }
      owner.set(key, r.id);
    }
  }
  if (Object.keys(mine).length === 0) delete s.networks[req.networkId];
  saveLbState(m, s);

  const rendered = renderLbConfig(m, { all: true });
  if (activeLbRules(m).length === 0) return;
  const check = haproxy.check(rendered.text);
  if (!check.ok) {
    const p = check.problems[0];
    const id = p.line !== undefined ? rendered.owners[p.line - 1] : undefined;
    const lineText = p.line !== undefined ? rendered.text.split('\n')[p.line - 1]?.trim() : undefined;
    throw new UsageError(`${source}: ${id !== undefined ? `rule ${id}: ` : ''}haproxy refused the configuration${lineText ? ` at "${lineText}"` : ''}: ${p.message}`, 'lb_rules');
  }
}

/** The runtime directory of a router's haproxy: `<stateDir>/run/<namespace>/haproxy`. */
export const haproxyRunDir = (stateDir: string, namespace: string): string => join(routerRunDir(stateDir, namespace), 'haproxy');

/** The router's haproxy as its kernel runs it. */
export const haproxyOf = (kernel: RouterKernel, namespace: string, stateDir: string): HaproxyControl =>
  kernel.haproxy(namespace, haproxyRunDir(stateDir, namespace));
const routerHaproxy = (m: RouterModel, ctx: ReconcileContext): HaproxyControl => haproxyOf(ctx.kernel, m.namespace, ctx.stateDir);

/** The machine's supervisor of a router's haproxy (its pid file and /proc: the watchdog, tests with packets). */
export function supervisorFor(namespace: string, stateDir: string): HaproxySupervisor {
  return new HaproxySupervisor({ netns: namespace, runDir: haproxyRunDir(stateDir, namespace) });
}

/** A tier leaves the router: its load-balancer rules go with it. */
export function forgetLbTier(m: RouterModel, networkId: string): void {
  const s = lbState(m);
  if (!s.networks[networkId] && !s.providers?.[networkId]) return;
  delete s.networks[networkId];
  delete s.providers?.[networkId];
  saveLbState(m, s);
}

/** The `ip:port` of every rule served in `m` (by either provider). */
const servedListeners = (m: RouterModel): Set<string> => new Set(activeLbRules(m).map((r) => `${r.publicIp}:${r.publicPort}`));

/** Conntrack filters of the kernel-served listeners of `previous` that `m` no longer serves at all (revoked, IP released, tier down). */
function goneFlows(m: RouterModel, previous: RouterModel | undefined) {
  return previous ? goneListenerFilters(lbServing(previous).kernel, servedListeners(m)) : [];
}

/** The plan's conntrack steps: the flows of kernel-served listeners gone (found in the table when the command runs). */
function conntrackSteps(m: RouterModel, previous: RouterModel | undefined): PlanStep[] {
  return goneFlows(m, previous).map((f) => ({ kind: 'conntrack' as const, action: 'delete', where: m.namespace, what: `flows origDst ${f.origDst} origDstPort ${f.origDstPort} (kernel load-balancing rule gone)`, detail: f }));
}

/** Which rules the kernel serves and which haproxy, as one plan line (plan mode), when that changes. */
function servingStep(m: RouterModel, previous: RouterModel | undefined): PlanStep[] {
  const text = (x: RouterModel | undefined): string => {
    if (!x) return '';
    const d = describeLbServing(x);
    return Object.keys(d).map((id) => `rule ${id}: ${d[id]}`).join('; ');
  };
  const now = text(m);
  if (now === text(previous) || !now) return [];
  return [{ kind: 'nft', action: 'serve', where: m.namespace, what: `load balancing: ${now}` }];
}

export const lbModule: RouterModule = {
  name: LB,
  commands: {
    'apply-lb-rules': {
      change: (req, env) => {
        // the real one checks only the sections its running configuration (checked before it was written) lacks
        const haproxy = haproxyOf(env.engine.kernel, req.namespace, env.engine.store.stateDir);
        return (m) => applyLbRules(m, req, haproxy);
      },
    },
  },
  forgetTier: forgetLbTier,
  noteRequest: (m, req) => lbNoteRequest(m, req as { networkId?: string; lbProvider?: LbProvider }),
  // kernel-served rules: DNAT, masquerade and their maps in the router table (kernel.ts)
  nftObjects: (m) => kernelLbObjects(lbServing(m).kernel),
  // haproxy's listeners are services of the router on public addresses (on an isolated network's router the
  // firewall still filters them, as every public IP there); kernel-served ones are translated before the guard
  publicIngress: (m) => ({ services: lbServing(m).haproxy.map((r) => ({ ip: r.publicIp, protocol: 'tcp' as const, port: r.publicPort })) }),
  // a rule moving from the kernel to haproxy: haproxy listens before the DNAT goes (no connection refused between)
  async prepare(m, previous, ctx) {
    const was = new Set(lbServing(previous).kernel.map((r) => `${r.publicIp}:${r.publicPort}`));
    const now = lbServing(m).haproxy;
    if (now.some((r) => was.has(`${r.publicIp}:${r.publicPort}`))) await routerHaproxy(m, ctx).apply(renderLbConfig(m).text);
  },
  async reconcile(m, previous, ctx) {
    const haproxy = routerHaproxy(m, ctx);
    if (lbServing(m).haproxy.length === 0) await haproxy.stop();
    else await haproxy.apply(renderLbConfig(m).text);
    // a kernel-served listener no longer served at all: its flows go, as a removed port forward's
    const gone = goneFlows(m, previous);
    if (gone.length && ctx.kernel.netnsExists(m.namespace)) await ctx.kernel.deleteConntrack(m.namespace, gone);
  },
  async teardown(m, ctx) {
    await routerHaproxy(m, ctx).stop();
  },
  // what reconcile / teardown would do: the configuration's diff, haproxy started, reloaded or stopped
  // which rules the kernel serves (its nft objects are in the plan's transaction), conntrack of listeners gone
  plan(m, previous, ctx, opts = {}) {
    const haproxy = routerHaproxy(m, ctx);
    const running = haproxy.runningConfig();
    const pid = haproxy.pid();
    const serving = lbServing(m);
    if (opts.teardown || serving.haproxy.length === 0) {
      const why = opts.teardown || serving.kernel.length === 0 ? 'no active load-balancing rule' : 'every rule served by the kernel';
      const stop: PlanStep[] = running === undefined && pid === undefined ? [] : [{ kind: 'service', action: 'stop', where: m.namespace, what: `haproxy (${why})` }];
      return opts.teardown ? stop : [...servingStep(m, previous), ...stop, ...conntrackSteps(m, previous)];
    }
    const text = renderLbConfig(m).text;
    const steps: PlanStep[] = running === text ? [] : [
      { kind: 'file', action: 'write', where: haproxy.runDir, what: 'haproxy configuration', lines: diffLines(running ?? '', text) },
      { kind: 'service', action: pid !== undefined ? 'reload' : 'start', where: m.namespace, what: 'haproxy' },
    ];
    return [...servingStep(m, previous), ...steps, ...conntrackSteps(m, previous)];
  },
  describe: (m) => {
    const d = describeLbServing(m);
    const providers = moduleState<LbState>(m, LB)?.providers;
    return Object.keys(d).length || providers ? { providers: providers ?? {}, rules: d } : undefined;
  },
};
