/**
 * Load balancing (apply-lb-rules): rules persist per network in `model.extra.lb`; one haproxy per router
 * namespace serves the active rules of all its networks (a VPC's tiers share it). The configuration is
 * regenerated from the rules on every reconcile, checked with `haproxy -c` and then started/reloaded; with no
 * active rule haproxy is stopped. A rule is active while its network is implemented and its public IP assigned.
 * haproxy is reached through the kernel (RouterKernel.haproxy → HaproxyControl): the machine's supervisor, or
 * the fake kernel's in-memory one.
 *
 * Nothing is added to the nft table but the listeners, declared as public services (publicIngress) so that the
 * public guard lets new connections to them reach haproxy; the firewall filters them like any public IP.
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
import { openFilesHardLimit } from '../../services/haproxy/proc.js';
import { workerAccount } from '../../services/haproxy/account.js';
import { parseLbDocument } from './parse.js';
import type { LbRule, LbState } from './types.js';
import { compareNatural } from '../../util/compare.js';
import { diffLines } from '../plan.js';

export const LB = 'lb';

export const lbState = (m: RouterModel): LbState => structuredClone(moduleState<LbState>(m, LB) ?? { networks: {} });

const byId = (a: string, b: string): number => compareNatural(a, b);

/** Rules haproxy should serve now, with their network, in a stable order. */
export function activeLbRules(m: RouterModel): Array<LbRule & { networkId: string }> {
  const s = lbState(m);
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

export function renderLbConfig(m: RouterModel): RenderedConfig {
  const fdHardLimit = openFilesHardLimit();
  const runAs = workerAccount();
  return renderConfig(activeLbRules(m).map(toProxy), {
    title: `load balancer of ${m.namespace}`, ...(fdHardLimit !== undefined ? { fdHardLimit } : {}), ...(runAs ? { runAs } : {}),
  });
}

/**
 * The apply-lb-rules mutation: merge the document into the network's rules (revoke deletes, others add or
 * replace by id), then validate the whole namespace: public IP assigned, no duplicate public IP:port, no clash
 * with port forwarding or static NAT, and the resulting configuration accepted by `haproxy -c` (the router's
 * haproxy's check, HaproxyControl.check). Any failure throws UsageError before anything changes.
 */
export function applyLbRules(m: RouterModel, req: { networkId: string; lbRules?: OpaqueJson }, haproxy: Pick<HaproxyControl, 'check'>): void {
  if (!req.lbRules) return; // upstream default: an empty list
  const doc = parseLbDocument(req.lbRules);
  const source = req.lbRules.source;
  const s = lbState(m);
  // rules of networks that left the router (VPC tier destroyed) go with them
  for (const id of Object.keys(s.networks)) if (!m.tiers[id]) delete s.networks[id];
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
  setModuleState(m, LB, Object.keys(s.networks).length ? s : undefined);

  const rendered = renderLbConfig(m);
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
  if (!s.networks[networkId]) return;
  delete s.networks[networkId];
  setModuleState(m, LB, Object.keys(s.networks).length ? s : undefined);
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
  // haproxy's listeners are services of the router on public addresses (on an isolated network's router the
  // firewall still filters them, as every public IP there)
  publicIngress: (m) => ({ services: activeLbRules(m).map((r) => ({ ip: r.publicIp, protocol: 'tcp' as const, port: r.publicPort })) }),
  async reconcile(m, _previous, ctx) {
    const haproxy = routerHaproxy(m, ctx);
    if (activeLbRules(m).length === 0) {
      await haproxy.stop();
      return;
    }
    await haproxy.apply(renderLbConfig(m).text);
  },
  async teardown(m, ctx) {
    await routerHaproxy(m, ctx).stop();
  },
  // what reconcile / teardown would do: the configuration's diff, haproxy started, reloaded or stopped
  plan(m, _previous, ctx, opts = {}) {
    const haproxy = routerHaproxy(m, ctx);
    const running = haproxy.runningConfig();
    const pid = haproxy.pid();
    if (opts.teardown || activeLbRules(m).length === 0) {
      return running === undefined && pid === undefined ? [] : [{ kind: 'service', action: 'stop', where: m.namespace, what: 'haproxy (no active load-balancing rule)' }];
    }
    const text = renderLbConfig(m).text;
    if (running === text) return [];
    return [
      { kind: 'file', action: 'write', where: haproxy.runDir, what: 'haproxy configuration', lines: diffLines(running ?? '', text) },
      { kind: 'service', action: pid !== undefined ? 'reload' : 'start', where: m.namespace, what: 'haproxy' },
    ];
  },
};
