/**
 * The network lifecycle as CloudStack drives it, as payload files (the `<command> <payload-file>
 * <timeout>` form every contestant understands), and the contestants that run it: netns-router
 * in-library (RouterApi → RouterEngine, parsing excluded), netns-router as a cold CLI process, the
 * spawn-per-operation baseline script, and optionally an operator's wrapper script.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { parseInvocation } from '../../lib/router/contract/parse.js';
import { dispatch, type CommandContext } from '../../lib/router/contract/router-api.js';
import type { EngineInvocation } from '../../lib/router/contract/types.js';
import { createRouterApi } from '../../lib/router/command-table.js';
import { describeError } from '../../lib/util/errors.js';
import { now } from './timing.js';
import type { Spawner } from './spawner.js';
import { installShim } from './resident.js';
import { cliPath, spawnBaselinePath } from './paths.js';
import { makeHost, removeHost, deleteNamespaces, PUBLIC_GW, PUBLIC_GW2, PUBLIC_CIDR, type BenchHost } from './topo.js';

export interface Step {
  /** Row label ("assign-ip (source NAT)"). */
  label: string;
  command: string;
  /** The payload document written to the file. */
  doc: Record<string, unknown>;
}

const PHYS = { 'guest.network.device': 'eth1', 'public.network.device': 'eth1' };

const envelope = (payload: Record<string, string>): Record<string, unknown> =>
  ({ 'physical-network-extension-details': PHYS, 'network-extension-details': {}, payload });

const custom = (networkId: string, action: string, params: Record<string, string>): Record<string, unknown> =>
  ({ network_id: networkId, action, 'action-params': params, physical_network_extension_details: PHYS, network_extension_details: {} });

/** Ids of one contestant's objects: distinct per contestant because router namespaces are global. */
export interface LifecycleIds {
  network: string;
  vpc: string;
  tier1: string;
  tier2: string;
}

export function idsFor(base: number): LifecycleIds {
  return { network: String(base + 1), vpc: String(base + 2), tier1: String(base + 3), tier2: String(base + 4) };
}

/** The lifecycle: isolated network with public IPs, NAT and policy routing, then a two-tier VPC. */
export function lifecycleSteps(ids: LifecycleIds): Step[] {
  const net = { network_id: ids.network, vlan: 'vxlan://5001', gateway: '10.1.1.1', cidr: '10.1.1.0/24', guest_type: 'isolated', zone_id: '1' };
  const pub = (ip: string, snat: boolean) => ({ public_ip: ip, public_vlan: 'untagged', public_gateway: PUBLIC_GW, public_cidr: PUBLIC_CIDR, source_nat: String(snat) });
  const pf = { public_ip: '203.0.113.10', public_port: '80', private_ip: '10.1.1.10', private_port: '8080', protocol: 'tcp' };
  const vpc = { vpc_id: ids.vpc, vpc_cidr: '10.20.0.0/16' };
  const tier = (id: string, n: number) => ({ network_id: id, vpc_id: ids.vpc, vlan: `vxlan://${5002 + n}`, gateway: `10.20.${n}.1`, cidr: `10.20.${n}.0/24`, guest_type: 'isolated', zone_id: '1' });
  return [
    { label: 'implement-network', command: 'implement-network', doc: envelope({ ...net, network_state: 'implementing' }) },
    { label: 'assign-ip (source NAT)', command: 'assign-ip', doc: envelope({ ...net, ...pub('203.0.113.10', true) }) },
    { label: 'assign-ip (2nd IP)', command: 'assign-ip', doc: envelope({ ...net, ...pub('203.0.113.11', false) }) },
    { label: 'add-static-nat', command: 'add-static-nat', doc: envelope({ ...net, public_ip: '203.0.113.11', private_ip: '10.1.1.11' }) },
    { label: 'add-port-forward', command: 'add-port-forward', doc: envelope({ ...net, ...pf }) },
    { label: 'delete-port-forward', command: 'delete-port-forward', doc: envelope({ ...net, ...pf }) },
    { label: 'delete-static-nat', command: 'delete-static-nat', doc: envelope({ ...net, public_ip: '203.0.113.11', private_ip: '10.1.1.11' }) },
    { label: 'release-ip', command: 'release-ip', doc: envelope({ ...net, ...pub('203.0.113.11', false) }) },
    { label: 'pbr-create-table', command: 'custom-action', doc: custom(ids.network, 'pbr-create-table', { 'table-id': '100', 'table-name': 'alt' }) },
    { label: 'pbr-add-route', command: 'custom-action', doc: custom(ids.network, 'pbr-add-route', { table: 'alt', route: `default via ${PUBLIC_GW2}` }) },
    { label: 'pbr-add-rule', command: 'custom-action', doc: custom(ids.network, 'pbr-add-rule', { table: 'alt', rule: 'from 10.1.1.0/24 priority 100' }) },
    { label: 'pbr-delete-rule', command: 'custom-action', doc: custom(ids.network, 'pbr-delete-rule', { table: 'alt', rule: 'from 10.1.1.0/24 priority 100' }) },
    { label: 'pbr-delete-route', command: 'custom-action', doc: custom(ids.network, 'pbr-delete-route', { table: 'alt', route: `default via ${PUBLIC_GW2}` }) },
    { label: 'pbr-delete-table', command: 'custom-action', doc: custom(ids.network, 'pbr-delete-table', { 'table-name': 'alt' }) },
    { label: 'shutdown-network', command: 'shutdown-network', doc: envelope({ ...net, network_state: 'shutdown' }) },
    { label: 'destroy-network', command: 'destroy-network', doc: envelope({ ...net, network_state: 'destroy' }) },
    { label: 'implement-vpc (+source NAT)', command: 'implement-vpc', doc: envelope({ ...vpc, ...pub('203.0.113.20', true) }) },
    { label: 'implement-network (VPC tier 1)', command: 'implement-network', doc: envelope(tier(ids.tier1, 1)) },
    { label: 'implement-network (VPC tier 2)', command: 'implement-network', doc: envelope(tier(ids.tier2, 2)) },
    { label: 'update-vpc-source-nat-ip', command: 'update-vpc-source-nat-ip', doc: envelope({ ...vpc, ...pub('203.0.113.21', true) }) },
    { label: 'destroy-network (VPC tier 1)', command: 'destroy-network', doc: envelope({ ...tier(ids.tier1, 1), network_state: 'destroy' }) },
    { label: 'destroy-network (VPC tier 2)', command: 'destroy-network', doc: envelope({ ...tier(ids.tier2, 2), network_state: 'destroy' }) },
    { label: 'destroy-vpc', command: 'destroy-vpc', doc: envelope({ vpc_id: ids.vpc }) },
  ];
}

/** Write the step payloads under `dir`; returns the file of each step. */
export function writePayloads(dir: string, steps: Step[]): string[] {
  mkdirSync(dir, { recursive: true });
  return steps.map((s, i) => {
    const f = join(dir, `${String(i).padStart(2, '0')}-${s.command}.json`);
    writeFileSync(f, JSON.stringify(s.doc));
    return f;
  });
}

export interface StepTiming {
  ms: number;
  ok: boolean;
  error?: string;
}

export interface Contestant {
  key: string;
  label: string;
  host: BenchHost;
  stateDir: string;
  ids: LifecycleIds;
  run(step: Step, file: string): Promise<StepTiming>;
  /** After a failure: remove its routers, state and host, and start clean. */
  reset(): void;
  close(): void;
}

function routerNamespaces(ids: LifecycleIds): (name: string) => boolean {
  const mine = new Set([`cs-net-${ids.network}`, `cs-vpc-${ids.vpc}`, `cs-net-${ids.tier1}`, `cs-net-${ids.tier2}`]);
  return (n) => mine.has(n);
}

function baseContestant(key: string, label: string, workDir: string, base: number): Omit<Contestant, 'run'> {
  const stateDir = join(workDir, key, 'state');
  mkdirSync(stateDir, { recursive: true });
  const c = {
    key, label, stateDir, ids: idsFor(base), host: makeHost(key),
    reset(): void {
      deleteNamespaces(routerNamespaces(c.ids));
      for (const n of Object.values(c.ids)) rmSync(`/etc/netns/cs-net-${n}`, { recursive: true, force: true });
      rmSync(`/etc/netns/cs-vpc-${c.ids.vpc}`, { recursive: true, force: true });
      rmSync(stateDir, { recursive: true, force: true });
      mkdirSync(stateDir, { recursive: true });
      removeHost(c.host);
      c.host = makeHost(key);
    },
    close(): void {
      deleteNamespaces(routerNamespaces(c.ids));
      removeHost(c.host);
    },
  };
  return c;
}

/** netns-router as a library: the typed request (parsed beforehand, untimed) handed to RouterApi. */
export function libContestant(workDir: string, base: number): Contestant {
  const c = baseContestant('lib', 'netns-router library', workDir, base) as Contestant;
  const api = createRouterApi();
  const log = pino({ level: 'silent' });
  c.run = async (step, file) => {
    const argv = [step.command, file, '60', '--host-netns', c.host.hostNs, '--state-dir', c.stateDir, '--log-file', join(workDir, 'lib', 'log')];
    const inv = parseInvocation(argv, { env: {}, version: 'bench' }) as EngineInvocation;
    const ctx: CommandContext = {
      settings: inv.settings, devices: inv.devices, details: inv.details, form: inv.form,
      deadline: Date.now() + 60_000, signal: new AbortController().signal, log,
    };
    const t = now();
    try {
      await dispatch(api, inv.request, ctx);
      return { ms: now() - t, ok: true };
    } catch (e) {
      return { ms: now() - t, ok: false, error: describeError(e) };
    }
  };
  return c;
}

/** netns-router as a cold CLI process (what CloudStack runs), started by the exec host. */
export function cliContestant(workDir: string, base: number, spawner: Spawner): Contestant {
  const c = baseContestant('cli', 'netns-router CLI', workDir, base) as Contestant;
  c.run = async (step, file) => {
    const r = await spawner.run([process.execPath, cliPath(), step.command, file, '60',
      '--host-netns', c.host.hostNs, '--state-dir', c.stateDir, '--log-file', join(workDir, 'cli', 'log')], { env: { NETNS_ROUTER_ENGINE_SOCKET: 'off' } });
    return r.status === 0 ? { ms: r.ms, ok: true } : { ms: r.ms, ok: false, error: r.stderr.trim().split('\n').pop() ?? `exit ${r.status}` };
  };
  return c;
}

/**
 * netns-router the way CloudStack reaches it in production: the extension's wrapper shim (bash), with a
 * resident engine (`netns-router serve`) running — the shim hands the command line to the engine. The engine
 * is started by the caller (in the Spawner's mount namespace); `socket` is its socket path.
 */
export function shimContestant(workDir: string, base: number, spawner: Spawner, socket: string): Contestant {
  const c = baseContestant('shim', 'netns-router via wrapper shim + resident engine', workDir, base) as Contestant;
  const shim = installShim(join(workDir, 'shim', 'root'), 'benchext', ['--host-netns', c.host.hostNs, '--state-dir', c.stateDir, '--log-file', join(workDir, 'shim', 'log')]);
  c.run = async (step, file) => {
    const r = await spawner.run([shim, step.command, file, '60'], { env: { NETNS_ROUTER_ENGINE_SOCKET: socket } });
    return r.status === 0 ? { ms: r.ms, ok: true } : { ms: r.ms, ok: false, error: r.stderr.trim().split('\n').pop() ?? `exit ${r.status}` };
  };
  return c;
}

/** A wrapper script (ours: the spawn baseline; or --baseline-wrapper) run with the host namespace as its own. */
export function scriptContestant(key: string, label: string, script: string, workDir: string, base: number, spawner: Spawner): Contestant {
  const c = baseContestant(key, label, workDir, base) as Contestant;
  c.run = async (step, file) => {
    const r = await spawner.run([script, step.command, file, '60'], {
      netns: c.host.hostNs,
      env: { SPAWN_ROUTER_STATE_DIR: c.stateDir, SPAWN_ROUTER_LOG: join(workDir, key, 'log') },
    });
    return r.status === 0 ? { ms: r.ms, ok: true } : { ms: r.ms, ok: false, error: (r.stderr.trim().split('\n').pop() ?? '') || `exit ${r.status ?? r.signal}` };
  };
  return c;
}

export const spawnBaseline = (workDir: string, base: number, spawner: Spawner): Contestant =>
  scriptContestant('spawn', 'spawn-per-operation baseline', spawnBaselinePath(), workDir, base, spawner);
