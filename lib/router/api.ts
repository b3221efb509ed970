/**
 * RouterApi (the CLI's contract) implemented on RouterEngine. Commands whose subsystem is not built yet
 * (firewall/ACL, DHCP/DNS, metadata/password, load balancing, policy routing) fail clearly with exit 2 and
 * change nothing; see the README's status table.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import type { RouterApi, CommandContext, CommandOutput } from './contract/api.js';
import type * as T from './contract/types.js';
import { EngineCaches, RouterEngine } from './engine.js';
import { SystemError, UsageError } from './errors.js';
import * as pbr from './pbr/module.js';
import * as fw from './firewall/module.js';
import { implementNetworkCommand, releaseSegments } from './segment-pool.js';
import * as vmdata from './vmdata/index.js';
import * as dhcp from './dhcp/mutators.js';

function notYet(command: string): never {
  throw new SystemError(`${command} is not available in this version of netns-router (its subsystem is not built yet; nothing was changed)`, { code: 'E_SYSTEM' });
}

/** One engine per command (its settings come with the command), sharing the API's caches. */
function newEngine(ctx: CommandContext, caches: EngineCaches): RouterEngine {
  return new RouterEngine({
    caches,
    onChanged: (phases, nft) => ctx.log.debug({ phasesMs: phases, nft: nft && { mode: nft.mode, operations: nft.operations, reason: nft.reason } }, 'router changed'),
    stateDir: ctx.settings.stateDir,
    ...(ctx.settings.hostNetns ? { hostNetns: ctx.settings.hostNetns } : {}),
    devices: { guest: ctx.devices.guest, public: ctx.devices.public },
    lockTimeoutMs: Math.max(1000, ctx.deadline - Date.now()),
  });
}

const done = async (p: Promise<unknown>): Promise<CommandOutput> => { await p; };

/**
 * The API on the reconcile engine. A long-lived process (the resident engine, `serve`) keeps one API: its
 * engines share compiled router tables between commands.
 */
export function createRouterApi(): RouterApi {
  const caches = new EngineCaches();
  const engineFor = (ctx: CommandContext): RouterEngine => newEngine(ctx, caches);
  const customAction = (req: T.CustomActionRequest, ctx: CommandContext): Promise<CommandOutput> => runCustomAction(req, ctx, engineFor(ctx));
  return {
    implementNetwork: (r, c) => implementNetworkCommand(engineFor(c), r, c),
    shutdownNetwork: (r, c) => done(engineFor(c).shutdownNetwork(r)),
    destroyNetwork: async (r, c) => { await engineFor(c).destroyNetwork(r); await releaseSegments(c, { networkId: r.networkId }); },
    implementVpc: (r, c) => done(engineFor(c).implementVpc(r)),
    updateVpcSourceNatIp: (r, c) => done(engineFor(c).updateVpcSourceNatIp(r)),
    shutdownVpc: (r, c) => done(engineFor(c).shutdownVpc(r)),
    destroyVpc: async (r, c) => { await engineFor(c).destroyVpc(r); await releaseSegments(c, { vpcId: r.vpcId }); },
    assignIp: (r, c) => done(engineFor(c).assignIp(r)),
    releaseIp: (r, c) => done(engineFor(c).releaseIp(r)),
    addStaticNat: (r, c) => done(engineFor(c).addStaticNat(r)),
    deleteStaticNat: (r, c) => done(engineFor(c).deleteStaticNat(r)),
    addPortForward: (r, c) => done(engineFor(c).addPortForward(r)),
    deletePortForward: (r, c) => done(engineFor(c).deletePortForward(r)),
    applyFwRules: (r, c) => done(fw.applyFwRules(engineFor(c), r)),
    applyNetworkAcl: (r, c) => done(fw.applyNetworkAcl(engineFor(c), r)),
    applyLbRules: async (r, c) => { await (await import('./lb/command.js')).applyLbRulesCommand(engineFor(c), r); },
    configDhcpSubnet: async (r, c) => { await (await import('./dhcp/command.js')).runDhcpCommand(engineFor(c), r); },
    removeDhcpSubnet: async (r, c) => { await (await import('./dhcp/command.js')).runDhcpCommand(engineFor(c), r); },
    addDhcpEntry: async (r, c) => { await (await import('./dhcp/command.js')).runDhcpCommand(engineFor(c), r); },
    removeDhcpEntry: async (r, c) => { await (await import('./dhcp/command.js')).runDhcpCommand(engineFor(c), r); },
    setDhcpOptions: async (r, c) => { await (await import('./dhcp/command.js')).runDhcpCommand(engineFor(c), r); },
    configDnsSubnet: async (r, c) => { await (await import('./dhcp/command.js')).runDhcpCommand(engineFor(c), r); },
    removeDnsSubnet: async (r, c) => { await (await import('./dhcp/command.js')).runDhcpCommand(engineFor(c), r); },
    addDnsEntry: async (r, c) => { await (await import('./dhcp/command.js')).runDhcpCommand(engineFor(c), r); },
    removeDnsEntry: async (r, c) => { await (await import('./dhcp/command.js')).runDhcpCommand(engineFor(c), r); },
    prepareNic: (r, c) => done(vmdata.vmDataCommand(engineFor(c), c, r, [(m, q) => dhcp.dhcpPrepareNic(m, q), vmdata.prepareNicVmData], { ifRouterExists: true })),
    releaseNic: (r, c) => done(vmdata.vmDataCommand(engineFor(c), c, r, [(m, q) => dhcp.dhcpReleaseNic(m, q), vmdata.releaseNicVmData], { ifRouterExists: true })),
    saveVmData: (r, c) => done(vmdata.vmDataCommand(engineFor(c), c, r, [vmdata.saveVmData])),
    saveUserdata: (r, c) => done(vmdata.vmDataCommand(engineFor(c), c, r, [vmdata.saveUserdata])),
    savePassword: (r, c) => done(vmdata.vmDataCommand(engineFor(c), c, r, [vmdata.savePassword])),
    saveSshkey: (r, c) => done(vmdata.vmDataCommand(engineFor(c), c, r, [vmdata.saveSshkey])),
    saveHypervisorHostname: (r, c) => done(vmdata.vmDataCommand(engineFor(c), c, r, [vmdata.saveHypervisorHostname])),
    restoreNetwork: (r, c) => done(vmdata.vmDataCommand(engineFor(c), c, r, [vmdata.restoreNetworkWith(dhcp.dhcpRestoreNetwork)])),
    customAction: (r, c) => customAction(r, c),
    status: async (_r, c) => {
      const e = engineFor(c);
      return { stdout: `${JSON.stringify({ routers: e.store.list() })}\n` };
    },
  };
}

async function runCustomAction(req: T.CustomActionRequest, ctx: CommandContext, engine: RouterEngine): Promise<CommandOutput> {
  switch (req.builtin?.name) {
    case 'dump-config': {
      const d = await engine.dumpConfig(req.namespace);
      return { stdout: `${JSON.stringify({ namespace: req.namespace, state: d.state ?? null, nat: d.nat ?? null, nftables: d.live }, null, 2)}\n` };
    }
    case 'reboot-device': {
      const m = engine.store.load(req.namespace);
      if (!m) throw new UsageError(`no stored state for ${req.namespace}`, 'network_id');
      await engine.reconcile(m);
      return { stdout: `${JSON.stringify({ status: 'success', namespace: req.namespace })}\n` };
    }
    case 'pbr-create-table': case 'pbr-delete-table': case 'pbr-add-route': case 'pbr-delete-route':
    case 'pbr-add-rule': case 'pbr-delete-rule': {
      const b = req.builtin;
      await engine.change(req.namespace, engine.initFor(req), (m) => {
        if (b.name === 'pbr-create-table') pbr.createTable(m, b.tableId, b.tableName);
        else if (b.name === 'pbr-delete-table') pbr.deleteTable(m, b);
        else if (b.name === 'pbr-add-route') pbr.addRoute(m, b.table, b.route);
        else if (b.name === 'pbr-delete-route') pbr.deleteRoute(m, b.table, b.route);
        else if (b.name === 'pbr-add-rule') pbr.addRule(m, b.table, b.rule);
        else if (b.name === 'pbr-delete-rule') pbr.deleteRule(m, b.table, b.rule);
      });
      return { stdout: `${JSON.stringify({ status: 'success', printmessage: 'true', message: `${b.name} done` })}\n` };
    }
    case 'pbr-list-tables': case 'pbr-list-routes': case 'pbr-list-rules': {
      const m = engine.store.load(req.namespace);
      const s = m ? pbr.pbrState(m) : { tables: {}, routes: [], rules: [] };
      const b = req.builtin;
      const only = b.name !== 'pbr-list-tables' && b.table !== undefined ? pbr.resolveTable(s, b.table) : undefined;
      const message = b.name === 'pbr-list-tables'
        ? Object.entries(s.tables).map(([id, name]) => ({ id: Number(id), name }))
        : b.name === 'pbr-list-routes'
          ? s.routes.filter((r) => only === undefined || r.table === only).map((r) => ({ table: s.tables[r.table], route: r.route }))
          : s.rules.filter((r) => only === undefined || r.table === only).map((r) => ({ table: s.tables[r.table], rule: r.rule }));
      return { stdout: `${JSON.stringify({ status: 'success', printmessage: 'true', message })}\n` };
    }
    case 'list-firewall-rules':
      return { stdout: `${JSON.stringify({ status: 'success', printmessage: 'true', message: fw.listFirewallRules(engine, req.namespace) })}\n` };
    case undefined:
      break;
    default:
      notYet(`custom-action ${req.action}`);
  }
  // Operator hook: <state>/hooks/custom-action-<name>.sh, with the action params as JSON on argv.
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(req.action)) throw new UsageError(`invalid custom action name ${JSON.stringify(req.action)}`, 'action');
  const hook = join(ctx.settings.stateDir, 'hooks', `custom-action-${req.action}.sh`);
  if (!existsSync(hook)) throw new UsageError(`unknown custom action "${req.action}" (no built-in and no hook ${hook})`, 'action');
  // asynchronously: a resident engine keeps serving other routers while an operator's script runs
  const r = await runHook(hook, [req.namespace, JSON.stringify(req.actionParams)], {
    timeoutMs: Math.max(1000, ctx.deadline - Date.now()), signal: ctx.signal,
    env: { ...process.env, NETNS_ROUTER_NAMESPACE: req.namespace, NETNS_ROUTER_NETWORK_ID: req.networkId ?? '', NETNS_ROUTER_VPC_ID: req.vpcId ?? '' },
  });
  if (r.status !== 0) throw new SystemError(`custom action ${req.action} failed (exit ${r.status ?? r.signal}): ${r.stderr.trim().split('\n').pop() ?? ''}`);
  return { stdout: r.stdout };
}

/** Runs a hook script; killed (SIGKILL) at the time limit or when `signal` aborts. */
function runHook(
  file: string, args: string[], o: { timeoutMs: number; signal: AbortSignal; env: NodeJS.ProcessEnv },
): Promise<{ status: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
    child.stderr!.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    const kill = (): void => { child.kill('SIGKILL'); };
    const timer = setTimeout(kill, o.timeoutMs);
    o.signal.addEventListener('abort', kill, { once: true });
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (status, sig) => {
      clearTimeout(timer);
      o.signal.removeEventListener('abort', kill);
      resolve({ status, signal: sig, stdout, stderr });
    });
  });
}
