/**
 * The DHCP/DNS RouterModule: the config-/remove-/add-dhcp/dns-* commands (their changes in mutators.ts), and
 * one dnsmasq per router namespace serving every tier with DHCP on its own guest interface (static
 * reservations only, DNS on port 53 where configured, router advertisements on tiers with an IPv6 prefix). Runtime files in `<stateDir>/run/<namespace>/dnsmasq/`.
 *
 * reconcile: render → write files → start / SIGHUP / restart as needed (a dead dnsmasq is started again
 * here, so the next command of any kind revives it; between commands the resident engine's watchdog,
 * lib/router/watchdog.ts, calls this) → release leases no reservation backs any more.
 * teardown: stop dnsmasq and remove its runtime directory before the namespace goes.
 * nftObjects: when dnsmasq answers DNS for some tier, port 53 is closed to the tiers where DNS is off.
 */
import { rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { RouterModule, ReconcileContext } from '../router-module.js';
import type { RouterModel } from '../model.js';
import { baseChain, rule, type NftObject } from '../../nft/objects.js';
import { meta, th, drop } from '../../nft/expr.js';
import { ROUTER_PRIORITIES } from '../../nft/priorities.js';
import { DnsmasqInstance, dnsmasqUserFor, renderDnsmasq, type DnsmasqControl } from '../../services/dnsmasq/index.js';
import { DHCP } from './state.js';
import { VM_RECORDS_SCOPE as scope } from '../vm-records-scope.js';
import { dnsmasqSpec, orphanLeases, servedTiers } from './spec.js';
import * as mut from './mutators.js';
import { diffLines, type PlanStep } from '../plan.js';

/** Runtime directory of a router's dnsmasq. */
export function dnsmasqDir(stateDir: string, namespace: string): string {
  return join(stateDir, 'run', namespace, 'dnsmasq');
}

/** The router's dnsmasq handle (for status, tests and benchmarks). */
export function dnsmasqInstance(stateDir: string, namespace: string): DnsmasqInstance {
  return new DnsmasqInstance(namespace, dnsmasqDir(stateDir, namespace));
}

const GUARD_CHAIN = 'dhcp_dns_guard';

/** The router's dnsmasq as the engine's kernel supervises it (the machine's, or the fake's). */
const dnsmasqOf = (m: RouterModel, ctx: ReconcileContext): DnsmasqControl => ctx.kernel.dnsmasq(m.namespace, dnsmasqDir(ctx.stateDir, m.namespace));

async function reconcile(m: RouterModel, _previous: RouterModel | undefined, ctx: ReconcileContext): Promise<void> {
  const inst = dnsmasqOf(m, ctx);
  if (!servedTiers(m).length) {
    if (inst.present()) await remove(inst);
    return;
  }
  const rendered = renderDnsmasq(dnsmasqSpec(m, inst.paths, dnsmasqUserFor(inst.paths.dir)));
  // leases nobody backs are simply dropped from the file when dnsmasq (re)starts anyway, released otherwise
  await inst.apply(rendered, { forget: (leases) => orphanLeases(m, leases).flatMap((g) => g.leases) });
  const orphans = orphanLeases(m, inst.leases());
  if (orphans.length) await inst.releaseLeases(orphans, rendered.argv);
}

async function remove(inst: DnsmasqControl): Promise<void> {
  await inst.destroy();
  try {
    rmdirSync(dirname(inst.paths.dir)); // <stateDir>/run/<ns>, when no other service keeps files there
  } catch {
    /* not empty or already gone */
  }
}

/** What reconcile (or teardown) would do (RouterModule.plan): the files' diffs, and dnsmasq started/reloaded/stopped. */
function plan(m: RouterModel, _previous: RouterModel | undefined, ctx: ReconcileContext, opts: { teardown?: boolean } = {}): PlanStep[] {
  const inst = dnsmasqOf(m, ctx);
  if (opts.teardown || !servedTiers(m).length) {
    if (!inst.present()) return [];
    return [{ kind: 'service', action: 'stop', where: m.namespace, what: `dnsmasq${inst.pid() !== undefined ? ` (pid ${inst.pid()})` : ''}; remove ${inst.paths.dir}` }];
  }
  const rendered = renderDnsmasq(dnsmasqSpec(m, inst.paths, dnsmasqUserFor(inst.paths.dir)));
  const p = inst.preview(rendered);
  const steps: PlanStep[] = p.files.map((f) => ({ kind: 'file', action: 'write', where: f.path, what: `dnsmasq ${f.before === undefined ? 'file (new)' : 'file'}`, lines: diffLines(f.before ?? '', f.after) }));
  const verb = { started: 'start', restarted: 'restart', reloaded: 'reload', unchanged: '' }[p.action];
  // a (re)start runs this command line (a reload keeps the running one's: the same)
  if (verb) {
    steps.push({
      kind: 'service', action: verb, where: m.namespace, what: `dnsmasq${p.action === 'reloaded' ? ' (SIGHUP)' : ''}`,
      ...(p.action === 'reloaded' ? {} : { detail: { argv: rendered.argv }, lines: [`dnsmasq ${rendered.argv.join(' ')}`] }),
    });
  }
  return steps;
}

export const dhcpModule: RouterModule = {
  name: DHCP,
  plan,
  // commands that add to a router implement a shared network's router first (removals do not); each changes the
  // VM records only (a scope the engine verifies: vm-records-scope.ts)
  commands: {
    'config-dhcp-subnet': { shared: 'implement', scope, change: (req) => (m) => mut.configDhcpSubnet(m, req) },
    'config-dns-subnet': { shared: 'implement', scope, change: (req) => (m) => mut.configDnsSubnet(m, req) },
    'add-dhcp-entry': { shared: 'implement', scope, change: (req) => (m) => mut.addDhcpEntry(m, req) },
    'add-dns-entry': { shared: 'implement', scope, change: (req) => (m) => mut.addDnsEntry(m, req) },
    'set-dhcp-options': { shared: 'implement', scope, change: (req) => (m) => mut.setDhcpOptions(m, req) },
    'remove-dhcp-subnet': { scope, change: (req) => (m) => mut.removeDhcpSubnet(m, req) },
    'remove-dhcp-entry': { scope, change: (req) => (m) => mut.removeDhcpEntry(m, req) },
    'remove-dns-subnet': { scope, change: (req) => (m) => mut.removeDnsSubnet(m, req) },
    'remove-dns-entry': { scope, change: (req) => (m) => mut.removeDnsEntry(m, req) },
  },
  nftObjects(m: RouterModel): NftObject[] {
    const served = servedTiers(m);
    const closed = served.filter((x) => !x.state.dns).map((x) => x.ifname);
    if (!closed.length || !served.some((x) => x.state.dns)) return [];
    return [
      baseChain(GUARD_CHAIN, { type: 'filter', hook: 'input', priority: ROUTER_PRIORITIES.filter }),
      rule(GUARD_CHAIN, [meta.iifname(closed), meta.l4proto(['tcp', 'udp']), th.dport(53), drop()], { comment: 'DNS off on these tiers' }),
    ];
  },
  reconcile,
  // reservations, DNS names, per-NIC options and subnet settings are all per tier
  forgetTier: mut.dhcpForgetTier,
  async teardown(m: RouterModel, ctx: ReconcileContext): Promise<void> {
    const inst = dnsmasqOf(m, ctx);
    if (inst.present()) await remove(inst);
  },
};
