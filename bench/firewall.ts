/**
 * Firewall/ACL apply benchmark (not a test). Run inside the sandbox:
 *   node scripts/in-sandbox.mjs node dist/bench/firewall.js [--quick]
 * (also run by bench/run.ts through the exported bench()).
 *
 * Workloads, N = 10, 100, 1,000, 10,000 rules (--quick: up to 1,000):
 *   apply-fw-rules     N rules of one network: 10 per public IP (N/10 IPs); 70 % tcp single port from
 *                      anywhere, 15 % udp port ranges from a /16, 5 % tcp from two /24s, 5 % ICMP types,
 *                      5 % egress tcp to a /24 (default allow: deny rules)
 *   apply-network-acl  N rules of one VPC tier in number order, half ingress / half egress, every 50th a Deny;
 *                      70 % tcp single port, 20 % udp port ranges, 10 % ICMP; sources/destinations /16s
 * Contestants:
 *   library   runCommand()/runCommand() on a RouterEngine: validation, lock, state, the one nft
 *             transaction (the router table changed in place), conntrack check, save — everything but process start
 *   CLI       `node dist/cli/main.js apply-… --…-rules-file F` end to end (process start included), no resident engine
 *   shim      the extension's wrapper shim (bash, as CloudStack runs it) with `netns-router serve` running: the
 *             command line goes to the resident engine (no node start); end to end, payload read from a file
 *   baseline  one spawned `iptables` per rule (what the upstream script does), into a fresh namespace;
 *             measured up to 1,000 rules, EXTRAPOLATED linearly beyond (labelled)
 * Every run applies a rule set that differs from the previous one (two variants alternate), so each run
 * really replaces rules. Median of the runs.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { addNetns, deleteNetns, netnsExists } from '../lib/netns/namespaces.js';
import { runInNetns } from '../lib/sys/setns.js';
import { NetnsHandle } from '../lib/netns/handle.js';
import { RouterEngine } from '../lib/router/engine.js';
import { firewallObjects } from '../lib/router/firewall/firewall-objects.js';
import { renderText, type Table } from './lib/table.js';
import { fmtMs, fmtRatio, fmtInt } from './lib/format.js';
import { cliPath } from './lib/paths.js';
import { installShim, startResident } from './lib/resident.js';
import { runCommand } from '../lib/router/command-table.js';
import { shapesMatrix, type ShapeRow } from './firewall-shapes.js';

type Rule = Record<string, unknown>;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const now = (): number => performance.now();
const cidr = (s: string) => { const [address, p] = s.split('/'); return { family: 4 as const, address, prefix: Number(p) }; };

const ipOf = (j: number): string => `198.18.${(j >> 8) & 255}.${j & 255}`;

/** apply-fw-rules document with n rules; `variant` shifts one port so consecutive applies differ. */
export function fwDocument(n: number, variant: number): { default_egress_allow: boolean; rules: Rule[] } {
  const rules: Rule[] = [];
  for (let i = 0; i < n; i++) {
    const publicIp = ipOf(Math.floor(i / 10));
    const k = i % 20;
    const shift = i === 0 ? variant : 0;
    if (k < 14) rules.push({ id: i, type: 'ingress', protocol: 'tcp', portStart: 1000 + (i % 10) * 7 + shift, portEnd: 1000 + (i % 10) * 7 + shift, publicIp, sourceCidrs: ['0.0.0.0/0'] });
    else if (k < 17) rules.push({ id: i, type: 'ingress', protocol: 'udp', portStart: 20000 + (i % 1000) * 8, portEnd: 20000 + (i % 1000) * 8 + 5, publicIp, sourceCidrs: [`10.${i % 250}.0.0/16`] });
    else if (k === 17) rules.push({ id: i, type: 'ingress', protocol: 'tcp', portStart: 5000 + (i % 1000), publicIp, sourceCidrs: [`192.168.${i % 256}.0/24`, `172.20.${i % 256}.0/24`] });
    else if (k === 18) rules.push({ id: i, type: 'ingress', protocol: 'icmp', icmpType: (i >> 4) % 2 ? 8 : 0, icmpCode: -1, publicIp, sourceCidrs: ['0.0.0.0/0'] });
    else rules.push({ id: i, type: 'egress', protocol: 'tcp', portStart: 3000 + (i % 1000), portEnd: 3000 + (i % 1000), destCidrs: [`172.16.${i % 256}.0/24`] });
  }
  return { default_egress_allow: true, rules };
}

/** apply-network-acl document with n rules. */
export function aclDocument(n: number, variant: number): Rule[] {
  const rules: Rule[] = [];
  for (let i = 0; i < n; i++) {
    const ingress = i % 2 === 0;
    const k = i % 10;
    const net = `10.${(i >> 8) % 250}.${i % 256}.0/24`;
    const r: Rule = { id: `r${i}`, number: i + 1, action: i % 50 === 49 ? 'Deny' : 'Allow', trafficType: ingress ? 'Ingress' : 'Egress', sourceCidrs: [net] };
    if (k < 7) Object.assign(r, { protocol: 'tcp', portStart: 1 + ((i * 7 + (i === 0 ? variant : 0)) % 60000), portEnd: 1 + ((i * 7 + (i === 0 ? variant : 0)) % 60000) });
    else if (k < 9) Object.assign(r, { protocol: 'udp', portStart: 1000 + (i % 5000) * 10, portEnd: 1000 + (i % 5000) * 10 + 4 });
    else Object.assign(r, { protocol: 'icmp', icmpType: 8, icmpCode: -1 });
    rules.push(r);
  }
  return rules;
}

/** The same rules as iptables argument lists (one spawn each, as the upstream script does). */
function iptablesArgs(kind: 'fw' | 'acl', rules: Rule[]): string[][] {
  return rules.map((r) => {
    const a: string[] = [];
    const proto = String(r.protocol);
    if (kind === 'fw' && r.type === 'ingress') a.push('-t', 'mangle', '-A', 'PREROUTING', '-d', `${r.publicIp}/32`);
    else if (kind === 'fw') a.push('-A', 'FORWARD', '-i', 'eth0');
    else a.push('-A', 'FORWARD', r.trafficType === 'Ingress' ? '-o' : '-i', 'eth0');
    const src = (r.sourceCidrs as string[] | undefined)?.[0];
    if (src && src !== '0.0.0.0/0') a.push(kind === 'acl' && r.trafficType === 'Egress' ? '-d' : '-s', src);
    const dst = (r.destCidrs as string[] | undefined)?.[0];
    if (dst) a.push('-d', dst);
    a.push('-p', proto);
    if (proto === 'icmp') a.push('--icmp-type', String(r.icmpType));
    else a.push('--dport', r.portEnd === undefined || r.portStart === r.portEnd ? String(r.portStart) : `${r.portStart}:${r.portEnd}`);
    a.push('-j', kind === 'fw' && r.type === 'ingress' ? 'RETURN' : r.action === 'Deny' ? 'DROP' : 'ACCEPT');
    return a;
  });
}

function spawnBaseline(kind: 'fw' | 'acl', rules: Rule[]): number {
  const ns = `fwbench-ipt-${process.pid}`;
  addNetns(ns);
  try {
    const args = iptablesArgs(kind, rules);
    const t0 = now();
    for (const a of args) {
      const r = runInNetns(ns, () => spawnSync('iptables', ['-w', ...a], { encoding: 'utf8' }));
      if (r.status !== 0) throw new Error(`iptables ${a.join(' ')}: ${r.stderr}`);
    }
    return now() - t0;
  } finally {
    deleteNetns(ns, { ifExists: true });
  }
}

interface Setup {
  dir: string;
  stateDir: string;
  hostNs: string;
  engine: RouterEngine;
  net: { networkId: string; namespace: string };
  tier: { networkId: string; vpcId: string; namespace: string };
  cleanup: () => Promise<void>;
}

const SNAT_HELD = '203.0.113.11';
const SNAT_TIMED = '203.0.113.12';

async function setup(): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'fwbench-'));
  const stateDir = join(dir, 'state');
  const hostNs = `fwbench-host-${process.pid}`;
  addNetns(hostNs);
  const h = NetnsHandle.open(hostNs);
  h.netlink.linkAdd({ kind: 'veth', name: 'eth1', up: true, peer: { name: 'up0' } });
  h.close();
  const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
  const net = { networkId: '4242', namespace: 'cs-net-4242' };
  await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni: 4242 }, gateway: '10.1.1.1', cidr: cidr('10.1.1.0/24') });
  await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.10', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: true } });
  // for the small commands timed on the loaded router: a static NAT it holds, and a public IP to add one to
  for (const ip of [SNAT_HELD, SNAT_TIMED]) await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip, segment: { kind: 'untagged' }, sourceNat: false } });
  await runCommand(engine, { command: 'add-static-nat', ...net, publicIp: { ip: SNAT_HELD, sourceNat: false }, privateIp: '10.1.1.30' });
  // DHCP served (dnsmasq running) for the VM-start command timed on the loaded router
  await runCommand(engine, { command: 'config-dhcp-subnet', ...net, gateway: '10.1.1.1', cidr: cidr('10.1.1.0/24') });
  const tier = { networkId: '4244', vpcId: '4243', namespace: 'cs-vpc-4243' };
  await runCommand(engine, { command: 'implement-vpc', vpcId: tier.vpcId, namespace: tier.namespace, vpcCidr: cidr('10.10.0.0/16'), publicIp: { ip: '203.0.113.20', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: true } });
  await runCommand(engine, { command: 'implement-network', ...tier, segment: { kind: 'vxlan', vni: 4244 }, gateway: '10.10.1.1', cidr: cidr('10.10.1.0/24') });
  return {
    dir, stateDir, hostNs, engine, net, tier,
    cleanup: async () => {
      // the routers' daemons (dnsmasq) stop with them
      for (const r of [{ command: 'destroy-network' as const, ...net }, { command: 'destroy-network' as const, ...tier }]) {
        try { await runCommand(engine, r); } catch { /* the namespaces go below */ }
      }
      for (const ns of [net.namespace, tier.namespace, hostNs]) if (netnsExists(ns)) deleteNetns(ns, { ifExists: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface Row { kind: 'fw' | 'acl'; n: number; lib: number; cli: number; shim: number; base: number; baseExtrapolated: boolean; sets: number; rules: number; elements: number; small?: number; vmStart?: number }

export async function bench(o: { quick: boolean; log: (m: string) => void; shapesOnly?: boolean }): Promise<{ title: string; tables: Table[]; notes: string[]; partial: string[]; data: unknown; text: string }> {
  const sizes = o.shapesOnly ? [] : o.quick ? [10, 100, 1000] : [10, 100, 1000, 10_000];
  const runs = o.quick ? 2 : 5;
  const S = await setup();
  const resident = await startResident(S.dir);
  const shim = installShim(join(S.dir, 'root'), 'fwbench', ['--host-netns', S.hostNs, '--state-dir', S.stateDir, '--log-file', join(S.dir, 'shim.log')]);
  const rows: Row[] = [];
  const partial: string[] = [];
  const perSpawn: Record<string, number> = {};
  let shapes: { table: Table; rows: ShapeRow[]; worst: ShapeRow | undefined } | undefined;
  try {
    for (const kind of ['fw', 'acl'] as const) {
      for (const n of sizes) {
        o.log(`${kind} N=${n}`);
        const doc = (v: number): unknown => (kind === 'fw' ? fwDocument(n, v) : aclDocument(n, v));
        const libOnce = async (v: number): Promise<number> => {
          const value = doc(v);
          const t0 = now();
          if (kind === 'fw') await runCommand(S.engine, { command: 'apply-fw-rules', ...S.net, fwRules: { value, source: 'bench' } });
          else await runCommand(S.engine, { command: 'apply-network-acl', ...S.tier, aclRules: { value, source: 'bench' } });
          return now() - t0;
        };
        await libOnce(1); // warm-up (JIT, table present)
        const lib: number[] = [];
        for (let r = 0; r < runs; r++) lib.push(await libOnce(r % 2));
        const files = [0, 1].map((v) => { const f = join(S.dir, `${kind}-${n}-${v}.json`); writeFileSync(f, JSON.stringify(doc(v))); return f; });
        const cli: number[] = [];
        for (let r = 0; r < runs; r++) {
          const args = kind === 'fw'
            ? ['apply-fw-rules', '--network-id', S.net.networkId, '--fw-rules-file', files[r % 2]]
            : ['apply-network-acl', '--network-id', S.tier.networkId, '--vpc-id', S.tier.vpcId, '--acl-rules-file', files[r % 2]];
          const t0 = now();
          const p = spawnSync(process.execPath, [cliPath(), ...args, '--host-netns', S.hostNs, '--state-dir', S.stateDir, '--log-file', join(S.dir, 'cli.log')], { encoding: 'utf8', env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: 'off' } });
          const ms = now() - t0;
          if (p.status !== 0) throw new Error(`CLI ${args[0]} N=${n} exited ${p.status}: ${p.stderr}`);
          cli.push(ms);
        }
        const viaShim: number[] = [];
        for (let r = -1; r < runs; r++) {
          const args = kind === 'fw'
            ? ['apply-fw-rules', '--network-id', S.net.networkId, '--fw-rules-file', files[(r + 2) % 2]]
            : ['apply-network-acl', '--network-id', S.tier.networkId, '--vpc-id', S.tier.vpcId, '--acl-rules-file', files[(r + 2) % 2]];
          const t0 = now();
          const p = spawnSync(shim, args, { encoding: 'utf8', env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: resident.socket } });
          const ms = now() - t0;
          if (p.status !== 0) throw new Error(`shim ${args[0]} N=${n} exited ${p.status}: ${p.stderr}`);
          if (r >= 0) viaShim.push(ms); // the first run warms the resident engine up for this size
        }
        // two commands alternating through the shim on the router holding these rules, as CloudStack sends them
        // (the first two untimed): does their cost follow the change or the router?
        const alternating = (argsOf: (add: boolean) => string[]): number[] => {
          const times: number[] = [];
          for (let r = -2; r < 2 * runs; r++) {
            const args = argsOf((r & 1) === 0);
            const t0 = now();
            const p = spawnSync(shim, args, { encoding: 'utf8', env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: resident.socket } });
            const ms = now() - t0;
            if (p.status !== 0) throw new Error(`shim ${args[0]} N=${n} exited ${p.status}: ${p.stderr}`);
            if (r >= 0) times.push(ms);
          }
          return times;
        };
        // a small command: add/delete-static-nat (the resident engine's first NAT command on the router takes the
        // full way and keeps the router warm); a VM's start and stop: add-/remove-dhcp-entry (the VM records' scope,
        // docs/reconcile.md)
        const small = kind === 'fw' ? alternating((add) => [add ? 'add-static-nat' : 'delete-static-nat', '--network-id', S.net.networkId, '--public-ip', SNAT_TIMED, ...(add ? ['--private-ip', '10.1.1.20'] : [])]) : [];
        const vmStart = kind === 'fw' ? alternating((add) => (add ? ['add-dhcp-entry', '--network-id', S.net.networkId, '--mac', '02:00:00:00:0b:01', '--ip', '10.1.1.40', '--hostname', 'bench-vm']
          : ['remove-dhcp-entry', '--network-id', S.net.networkId, '--mac', '02:00:00:00:0b:01'])) : [];
        const m = S.engine.store.load(kind === 'fw' ? S.net.namespace : S.tier.namespace)!;
        const objs = firewallObjects(m);
        const sets = objs.filter((x) => x.kind === 'set');
        const counts = {
          sets: sets.length,
          rules: objs.filter((x) => x.kind === 'rule').length,
          elements: sets.reduce((a, x) => a + ((x as { elements?: unknown[] }).elements?.length ?? 0), 0),
        };
        let base: number;
        let baseExtrapolated = false;
        const rulesOf = (kind === 'fw' ? fwDocument(n, 0).rules : aclDocument(n, 0));
        if (n <= (o.quick ? 100 : 1000)) {
          base = spawnBaseline(kind, rulesOf);
          perSpawn[kind] = base / n;
        } else {
          base = (perSpawn[kind] ?? NaN) * n;
          baseExtrapolated = true;
          partial.push(`${kind} N=${fmtInt(n)}: iptables baseline extrapolated from ${perSpawn[kind]?.toFixed(2)} ms/spawn measured at N=${o.quick ? 100 : '1,000'}`);
        }
        rows.push({ kind, n, lib: median(lib), cli: median(cli), shim: median(viaShim), base, baseExtrapolated, ...counts, ...(small.length ? { small: median(small) } : {}), ...(vmStart.length ? { vmStart: median(vmStart) } : {}) });
      }
    }
    shapes = await shapesMatrix({ quick: o.quick, log: o.log, engine: S.engine, net: S.net, dir: S.dir });
  } finally {
    await resident.stop();
    await S.cleanup();
  }
  const table: Table = {
    title: 'apply-fw-rules / apply-network-acl: whole rule set replaced (median)',
    headers: ['command', 'rules', 'library', 'CLI cold', 'shim + resident (end to end)', 'iptables per rule', 'spawn ÷ library', 'spawn ÷ CLI cold', 'spawn ÷ shim', 'nft rules', 'sets', 'set elements', 'small command on this router (shim), ÷ at the fewest rules', 'VM start/stop on this router (shim), ÷ at the fewest rules'],
    rows: rows.map((r) => [
      r.kind === 'fw' ? 'apply-fw-rules' : 'apply-network-acl', fmtInt(r.n), fmtMs(r.lib), fmtMs(r.cli), fmtMs(r.shim),
      `${fmtMs(r.base)}${r.baseExtrapolated ? ' (extrap.)' : ''}`, fmtRatio(r.base / r.lib), fmtRatio(r.base / r.cli), fmtRatio(r.base / r.shim),
      fmtInt(r.rules), fmtInt(r.sets), fmtInt(r.elements),
      r.small === undefined ? '—' : `${fmtMs(r.small)}, ${fmtRatio(r.small / (rows.find((x) => x.kind === r.kind && x.small !== undefined)?.small ?? NaN))}`,
      r.vmStart === undefined ? '—' : `${fmtMs(r.vmStart)}, ${fmtRatio(r.vmStart / (rows.find((x) => x.kind === r.kind && x.vmStart !== undefined)?.vmStart ?? NaN))}`,
    ]),
    notes: [
      'library: validation + lock + state + compile + one nft transaction changing the router table in place + conntrack check + save',
      'CLI cold: a `node dist/cli/main.js` process without a resident engine, payload read from a file',
      'shim + resident: the wrapper shim (bash) as CloudStack runs it, `netns-router serve` running; process start to exit',
      `iptables per rule: one spawned \`iptables\` per rule into a fresh namespace (measured to ${o.quick ? 100 : '1,000'} rules, extrapolated beyond)`,
      'nft rules/sets/elements: the firewall part of the router table (NAT chains not counted)',
      `small command: add-static-nat / delete-static-nat alternating through the shim on the router holding these firewall rules (median of ${2 * runs}, after two untimed), and its ratio to the same at the fewest rules: 1× when its cost follows the change, not the router`,
      `VM start/stop: add-dhcp-entry / remove-dhcp-entry of one VM alternating through the shim on that router (DHCP served: dnsmasq reloaded each time; median of ${2 * runs}, after two untimed), and its ratio to the same at the fewest rules`,
    ],
  };
  const target = rows.filter((r) => r.n === 10_000).map((r) => `${r.kind} (rule mix): shim + resident engine ${fmtMs(r.shim)} end to end (target ≤ 200 ms: ${r.shim <= 200 ? 'met' : 'NOT met'}), library ${fmtMs(r.lib)}, CLI cold ${fmtMs(r.cli)}`);
  const w = shapes?.worst;
  if (w) target.push(`worst shape: ${w.shape}, ${w.op}: ${fmtMs(w.lib)} in-library, ${fmtRatio(w.lib / w.floor)} the floor (${fmtMs(w.floor)}, one nft -f of the same elements)`);
  const tables = [...(rows.length ? [table] : []), ...(shapes ? [shapes.table] : [])];
  const text = tables.map(renderText).join('\n') + (target.length ? `  ${target.join('\n  ')}\n` : '');
  return { title: 'Firewall and network ACL apply (bench/firewall.ts)', tables, notes: target, partial, data: { rows, runs, shapes: shapes?.rows }, text };
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  if (process.env.NETNS_ROUTER_SANDBOX !== '1') {
    console.error('run inside the sandbox: node scripts/in-sandbox.mjs node dist/bench/firewall.js [--quick]');
    process.exit(1);
  }
  const r = await bench({ quick: process.argv.includes('--quick'), shapesOnly: process.argv.includes('--shapes-only'), log: (m) => process.stderr.write(`${m}\n`) });
  process.stdout.write(r.text);
  for (const p of r.partial) process.stdout.write(`  PARTIAL: ${p}\n`);
}
