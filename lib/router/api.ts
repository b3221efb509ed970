/**
 * RouterApi (the CLI's contract) implemented on RouterEngine. Commands whose subsystem is not built yet
 * (firewall/ACL, DHCP/DNS, metadata/password, load balancing, policy routing) fail clearly with exit 2 and
 * change nothing; see the README's status table.
 */
import type { RouterApi, CommandContext, CommandOutput } from './contract/api.js';
import type * as T from './contract/types.js';
import { EngineCaches, RouterEngine } from './engine.js';
import { SystemError } from '../util/errors.js';
import * as fw from './firewall/module.js';
import { runCustomAction } from './custom-action.js';
import { implementNetworkCommand, releaseSegments } from './segment-pool.js';
import * as vmdata from './vmdata/index.js';
import * as dhcp from './dhcp/mutators.js';

/** One engine per command (its settings come with the command), sharing the API's caches. */
function newEngine(ctx: CommandContext, caches: EngineCaches): RouterEngine {
  return new RouterEngine({
    caches,
    onChanged: (phases, nft) => ctx.log.debug({ phasesMs: phases, nft: nft && { mode: nft.mode, operations: nft.operations, reason: nft.reason } }, 'router changed'),
    stateDir: ctx.settings.stateDir,
    ...(ctx.settings.hostNetns ? { hostNetns: ctx.settings.hostNetns } : {}),
    devices: { guest: ctx.devices.guest, public: ctx.devices.public },
    lockTimeoutMs: Math.max(1000, ctx.deadline - Date.now()),
    warn: (message) => ctx.log.warn(message),
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
  const nic = <R extends T.NetworkTarget & T.GuestAddressing & { command: string }>(
    ctx: CommandContext, req: R, steps: Array<vmdata.VmDataStep<R>>, opts: vmdata.VmDataCommandOptions,
  ): Promise<CommandOutput> => done(vmdata.vmDataCommand(engineFor(ctx), ctx, req, steps, opts));
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
    // a shared network gets no implement-network: the commands below implement its router when it has none
    // the metadata step first: it compares with the MAC the DHCP reservation held before this NIC's
    prepareNic: (r, c) => nic(c, r, [vmdata.prepareNicVmData, (m, q) => dhcp.dhcpPrepareNic(m, q)], { ifRouterExists: true, shared: 'ifComplete' }),
    releaseNic: (r, c) => nic(c, r, [(m, q) => dhcp.dhcpReleaseNic(m, q), vmdata.releaseNicVmData], { ifRouterExists: true }),
    saveVmData: (r, c) => nic(c, r, [vmdata.saveVmData], { shared: 'implement' }),
    saveUserdata: (r, c) => nic(c, r, [vmdata.saveUserdata], { shared: 'implement' }),
    savePassword: (r, c) => nic(c, r, [vmdata.savePassword], { shared: 'implement' }),
    saveSshkey: (r, c) => nic(c, r, [vmdata.saveSshkey], { shared: 'implement' }),
    saveHypervisorHostname: (r, c) => nic(c, r, [vmdata.saveHypervisorHostname], { shared: 'implement' }),
    restoreNetwork: (r, c) => nic(c, r, [vmdata.restoreNetworkWith(dhcp.dhcpRestoreNetwork)], { shared: 'implement' }),
    customAction: (r, c) => runCustomAction(r, c, engineFor(c)),
    restoreAll: async (_r, c) => {
      const r = await engineFor(c).restoreEach();
      for (const f of r.failed) c.log.error({ namespace: f.namespace, error: f.error }, 'router not restored');
      if (r.failed.length) {
        throw new SystemError(`${r.failed.length} of ${r.failed.length + r.restored.length} routers not restored: ${r.failed.map((f) => `${f.namespace}: ${f.error}`).join('; ')}`);
      }
      return { stdout: `${JSON.stringify({ restored: r.restored })}\n` };
    },
    status: async (_r, c) => {
      const e = engineFor(c);
      return { stdout: `${JSON.stringify({ routers: e.store.list() })}\n` };
    },
  };
}
