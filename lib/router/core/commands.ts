/**
 * The router core's commands in the command table (lib/router/command-table.ts): network and VPC lifecycle,
 * public IPs and NAT (their changes in network-lifecycle.ts and public-ips.ts), and the operator commands
 * (custom-action, restore-all, status; the custom actions dump-config and reboot-device).
 */
import type { ActionTable, CommandTable } from '../command-table.js';
import { SystemError, UsageError } from '../../util/errors.js';
import { runCustomAction } from '../custom-action.js';
import { implementNetworkCommand, releaseSegments, SegmentPool } from '../segment-pool.js';
import * as life from './network-lifecycle.js';
import * as pub from './public-ips.js';

export const CORE_COMMANDS: CommandTable = {
  'implement-network': {
    lifecycle: true,
    change: (req, { engine }) => (m) => life.implementNetwork(m, req, engine.devices),
    // the segment pool hands out the segment when CloudStack leaves it to the extension
    run: (req, { ctx, engine }, apply) => implementNetworkCommand(req, ctx, apply, engine.plan),
  },
  'shutdown-network': { lifecycle: true, change: (req) => (m) => life.shutdownNetwork(m, req) },
  'destroy-network': {
    lifecycle: true,
    change: (req, { engine }) => (m) => life.destroyNetwork(m, req, engine.devices, engine.modules),
    async run(req, { ctx, engine }, apply) {
      await apply(req);
      // isolated: the namespace is gone with the model; a stale one (no state) is removed as well
      if (!req.vpcId && engine.kernel.netnsExists(req.namespace)) engine.kernel.deleteNetns(req.namespace);
      await releaseSegments(ctx, { networkId: req.networkId }, engine.plan);
    },
  },
  'implement-vpc': { lifecycle: true, change: (req, { engine }) => (m) => life.implementVpc(m, req, engine.devices) },
  'update-vpc-source-nat-ip': { lifecycle: true, change: (req, { engine }) => (m) => pub.updateVpcSourceNatIp(m, req, engine.devices) },
  'shutdown-vpc': { lifecycle: true, change: () => (m) => life.shutdownVpc(m) },
  'destroy-vpc': {
    lifecycle: true,
    change: () => (m) => life.destroyVpc(m),
    async run(req, { ctx, engine }, apply) {
      await apply(req);
      if (engine.kernel.netnsExists(req.namespace)) engine.kernel.deleteNetns(req.namespace);
      await releaseSegments(ctx, { vpcId: req.vpcId }, engine.plan);
    },
  },
  'assign-ip': { change: (req, { engine }) => (m) => pub.assignIp(m, req, engine.devices) },
  'release-ip': { change: (req) => (m) => pub.releaseIp(m, req) },
  'add-static-nat': { change: (req) => (m) => pub.addStaticNat(m, req) },
  'delete-static-nat': { change: (req) => (m) => pub.deleteStaticNat(m, req) },
  'add-port-forward': { change: (req) => (m) => pub.addPortForward(m, req) },
  'delete-port-forward': { change: (req) => (m) => pub.deletePortForward(m, req) },
  'custom-action': { run: (req, env) => runCustomAction(req, env) },
  'restore-all': {
    async run(_req, { engine, ctx }) {
      const r = await engine.restoreEach();
      for (const f of r.failed) ctx.log.error({ namespace: f.namespace, error: f.error }, 'router not restored');
      if (r.failed.length) {
        throw new SystemError(`${r.failed.length} of ${r.failed.length + r.restored.length} routers not restored: ${r.failed.map((f) => `${f.namespace}: ${f.error}`).join('; ')}`);
      }
      return { stdout: `${JSON.stringify({ restored: r.restored })}\n` };
    },
  },
  status: { run: async (_req, { engine }) => ({ stdout: `${JSON.stringify({ routers: engine.store.list() })}\n` }) },
};

const pretty = (v: unknown): string => JSON.stringify(v ?? null, null, 2);

export const CORE_ACTIONS: ActionTable = {
  // upstream prints `=== section ===` text blocks; here one row per section
  'dump-config': {
    async run(_b, req, { engine, ctx }) {
      const ns = req.namespace;
      const d = await engine.dumpConfig(ns);
      const rows = [
        { section: 'namespace', content: ns },
        { section: 'state', content: pretty(d.state) },
        { section: 'nat', content: pretty(d.nat) },
        // what modules say besides their state, one row each (load balancing: who serves each rule)
        ...Object.entries(d.modules ?? {}).map(([name, v]) => ({ section: name, content: pretty(v) })),
        { section: 'nftables', content: pretty(d.live) },
      ];
      // the segments this router's networks hold in the extension's pool, if any
      try {
        const pool = new SegmentPool(ctx.settings.stateDir).read();
        const held = Object.keys(d.state?.tiers ?? {}).filter((id) => pool[id]).map((id) => [id, pool[id]]);
        if (held.length > 0) rows.push({ section: 'segment pool', content: pretty(Object.fromEntries(held)) });
      } catch (e) {
        rows.push({ section: 'segment pool', content: e instanceof Error ? e.message : String(e) });
      }
      return rows;
    },
  },
  'reboot-device': {
    async run(_b, req, { engine }) {
      const m = engine.store.load(req.namespace);
      if (!m) throw new UsageError(`no stored state for ${req.namespace}`, 'network_id');
      await engine.reconcile(m);
      return `reboot-device: OK (namespace=${req.namespace})`;
    },
  },
};
