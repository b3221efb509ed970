/**
 * DHCP/DNS (dnsmasq) benchmark (not a test). Run inside the sandbox:
 *   node scripts/in-sandbox.mjs node dist/bench/dhcp.js [--quick]
 * or through bench/run.ts, which calls the exported `bench()`.
 *
 * 1. Time per command through the library (engine.change: load, mutate, plumbing + nft + modules, save) on a
 *    router that already serves, next to a no-op change (the engine's own share): config-dhcp-subnet (first:
 *    starts dnsmasq), add/remove-dhcp-entry, add/remove-dns-entry, set-dhcp-options, prepare-nic /
 *    release-nic (DHCP part), a secondary NIC (default-nic false: a restart), config-dns-subnet /
 *    remove-dns-subnet (port change: a restart); one spawned CLI add-dhcp-entry; and a guest's DHCP lease
 *    (busybox udhcpc run, discover → ack, process start included).
 * 2. Scale: N isolated networks (vxlan segment each, so every dnsmasq has its own L2), each with DHCP + DNS,
 *    two reservations and a name: dnsmasq processes, their RSS and PSS sums, kernel memory growth; then a
 *    simulated reboot (every dnsmasq SIGKILLed, every router namespace deleted) and RouterEngine.restoreAll()
 *    from a fresh engine — total and the share of the DHCP module. Guests on the first and last network get
 *    their lease before and after. N = 100 and 300 (--quick: 30).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, existsSync, readdirSync } from 'node:fs';
import { timedModules } from './lib/timed-modules.js';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { spawnSync } from 'node:child_process';
import { RouterEngine } from '../lib/router/engine.js';
import type { RouterModel } from '../lib/router/model.js';
import { addNetns, deleteNetns, listNetns, netnsExists } from '../lib/netns/namespaces.js';
import { NetnsHandle } from '../lib/netns/handle.js';
import type * as T from '../lib/router/contract/types.js';
import { DHCP, dhcpPrepareNic, dhcpReleaseNic } from '../lib/router/dhcp/index.js';
import { runCommand } from '../lib/router/command-table.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = join(HERE, '..', 'cli', 'main.js');

const now = () => performance.now();
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : NaN; };
const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`;
const kb = (b: number) => `${(b / 1024).toFixed(0)} KB`;
const cidr = (s: string) => { const [address, p] = s.split('/'); return { family: 4 as const, address, prefix: Number(p) }; };

function sunreclaim(): number {
  const m = /SUnreclaim:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** dnsmasq processes of a state directory with their RSS and PSS (bytes). */
function dnsmasqs(stateDir: string): Array<{ pid: number; rss: number; pss: number }> {
  const out: Array<{ pid: number; rss: number; pss: number }> = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (!cmd.split('\0')[0].endsWith('dnsmasq') || !cmd.includes(stateDir)) continue;
      const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${d}/status`, 'utf8'))?.[1] ?? 0) * 1024;
      const pss = Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${d}/smaps_rollup`, 'utf8'))?.[1] ?? 0) * 1024;
      out.push({ pid: Number(d), rss, pss });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** Network k: id, namespace, vxlan VNI, /24 (10.140.0.0/14 …), gateway .1. */
function net(k: number, base: number) {
  const o2 = 140 + (k >> 8);
  const o3 = k & 255;
  return { id: String(base + k), ns: `cs-net-${base + k}`, vni: 20_000 + k, gateway: `10.${o2}.${o3}.1`, cidr: `10.${o2}.${o3}.0/24`, p: `10.${o2}.${o3}` };
}
const mac = (k: number, i: number) => `02:00:5e:${((k >> 8) & 255).toString(16).padStart(2, '0')}:${(k & 255).toString(16).padStart(2, '0')}:${i.toString(16).padStart(2, '0')}`;

interface Host { hostNs: string }

function makeHost(tag: string): Host {
  const hostNs = `db-h-${tag}`;
  addNetns(hostNs);
  const h = NetnsHandle.open(hostNs);
  try {
    h.netlink.linkSetUp('lo');
    h.netlink.linkAdd({ kind: 'veth', name: 'eth1', up: true, peer: { name: 'up0', up: true } });
  } finally {
    h.close();
  }
  return { hostNs };
}

/** A guest (no address) on network k's bridge. */
function addGuest(host: Host, name: string, vni: number, guestMac: string): string {
  addNetns(name);
  const h = NetnsHandle.open(host.hostNs);
  const g = NetnsHandle.open(name);
  try {
    h.netlink.linkAdd({ kind: 'veth', name: `g-${name.slice(-8)}`, master: `brvx-${vni}`, up: true, peer: { name: 'eth0', namespace: { fd: g.fd }, up: true, mac: guestMac } });
    g.netlink.linkSetUp('lo');
  } finally {
    h.close();
    g.close();
  }
  return name;
}

let scriptPath = '';
/** One udhcpc run in `ns`: the address it was given ('' when none) and how long it took. */
function lease(ns: string): { ip: string; ms: number } {
  const out = `${scriptPath}.${ns}.env`;
  rmSync(out, { force: true });
  const t0 = now();
  spawnSync('ip', ['netns', 'exec', ns, 'busybox', 'udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-s', scriptPath, '-t', '4', '-T', '1'], {
    encoding: 'utf8', timeout: 20_000, env: { ...process.env, NR_DHCP_OUT: out },
  });
  const ms = now() - t0;
  const ip = existsSync(out) ? (/^ip=(.*)$/m.exec(readFileSync(out, 'utf8'))?.[1] ?? '') : '';
  return { ip, ms };
}


export interface DhcpBenchResult {
  title: string;
  text: string;
  data: Record<string, unknown>;
  notes: string[];
  partial: string[];
}

export async function bench(opts: { quick: boolean; log?: (m: string) => void }): Promise<DhcpBenchResult> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const sizes = opts.quick ? [30] : [100, 300];
  const tag = Math.random().toString(36).slice(2, 6);
  const stateDir = mkdtempSync(join(tmpdir(), 'dhcp-bench-'));
  chmodSync(stateDir, 0o755); // dnsmasq drops to its own user when it can reach its files
  scriptPath = join(stateDir, 'udhcpc.sh');
  writeFileSync(scriptPath, '#!/bin/sh\ncase "$1" in bound|renew) env > "$NR_DHCP_OUT";; esac\nexit 0\n', { mode: 0o755 });
  const host = makeHost(tag);
  const base = 60_000 + Math.floor(Math.random() * 10_000);
  const guests: string[] = [];
  const lines: string[] = [];
  const data: Record<string, unknown> = {};
  const partial: string[] = [];
  const moduleTime = { ms: 0 };
  const mkEngine = () => new RouterEngine({ stateDir, hostNetns: host.hostNs, devices: { guest: 'eth1', public: 'eth1' }, modules: timedModules(DHCP, moduleTime) });
  let engine = mkEngine();
  const target = (k: number) => { const n = net(k, base); return { networkId: n.id, namespace: n.ns }; };
  const dhcp = (r: T.RequestOf<T.EngineCommand>) => runCommand(engine, r);
  const setupNetwork = async (k: number) => {
    const n = net(k, base);
    const t = target(k);
    await runCommand(engine, { command: 'implement-network', ...t, segment: { kind: 'vxlan', vni: n.vni }, gateway: n.gateway, cidr: cidr(n.cidr) });
    await dhcp({ command: 'config-dns-subnet', ...t, gateway: n.gateway, cidr: cidr(n.cidr), dns: ['192.0.2.53'], domain: 'bench.example' });
    await dhcp({ command: 'add-dhcp-entry', ...t, mac: mac(k, 1), ip: `${n.p}.10`, hostname: `vm-${k}-a`, defaultNic: true });
    await dhcp({ command: 'add-dhcp-entry', ...t, mac: mac(k, 2), ip: `${n.p}.11`, hostname: `vm-${k}-b`, defaultNic: true });
    await dhcp({ command: 'add-dns-entry', ...t, ip: `${n.p}.10`, hostname: `vm-${k}-a`, defaultNic: true });
  };
  try {
    // ── 1. time per command ─────────────────────────────────────────────────────────────────────
    log('dhcp: time per command');
    const n0 = net(0, base);
    const t0 = target(0);
    await runCommand(engine, { command: 'implement-network', ...t0, segment: { kind: 'vxlan', vni: n0.vni }, gateway: n0.gateway, cidr: cidr(n0.cidr) });
    const a = now();
    await dhcp({ command: 'config-dhcp-subnet', ...t0, gateway: n0.gateway, cidr: cidr(n0.cidr), dns: ['192.0.2.53'], domain: 'bench.example' });
    const first = now() - a;
    await dhcp({ command: 'config-dns-subnet', ...t0, gateway: n0.gateway, cidr: cidr(n0.cidr) });
    await dhcp({ command: 'add-dhcp-entry', ...t0, mac: mac(0, 1), ip: `${n0.p}.10`, hostname: 'vm-0-a', defaultNic: true, nicId: 'n1' });
    await dhcp({ command: 'add-dhcp-entry', ...t0, mac: mac(0, 3), ip: `${n0.p}.12`, hostname: 'vm-0-c', defaultNic: false, nicId: 'n3' });
    const g0 = addGuest(host, `db-g0-${tag}`, n0.vni, mac(0, 1));
    guests.push(g0);
    const runs = opts.quick ? 5 : 15;
    const nic = { ...t0, mac: mac(0, 9), ip: `${n0.p}.19`, hostname: 'vm-0-z', defaultNic: true };
    const pairs: Array<[string, () => Promise<unknown>, (() => Promise<unknown>) | undefined]> = [
      ['no-op engine change (engine share)', () => engine.change(n0.ns, engine.initFor(t0), () => {}), undefined],
      ['add-dhcp-entry (SIGHUP)', () => dhcp({ command: 'add-dhcp-entry', ...t0, mac: mac(0, 2), ip: `${n0.p}.11`, hostname: 'vm-0-b', defaultNic: true }),
        () => dhcp({ command: 'remove-dhcp-entry', ...t0, mac: mac(0, 2), defaultNic: true })],
      ['remove-dhcp-entry (SIGHUP)', () => dhcp({ command: 'remove-dhcp-entry', ...t0, mac: mac(0, 2), defaultNic: true }),
        () => dhcp({ command: 'add-dhcp-entry', ...t0, mac: mac(0, 2), ip: `${n0.p}.11`, hostname: 'vm-0-b', defaultNic: true })],
      ['add-dns-entry', () => dhcp({ command: 'add-dns-entry', ...t0, ip: `${n0.p}.50`, hostname: 'db', defaultNic: true }),
        () => dhcp({ command: 'remove-dns-entry', ...t0, ip: `${n0.p}.50`, defaultNic: true })],
      ['remove-dns-entry', () => dhcp({ command: 'remove-dns-entry', ...t0, ip: `${n0.p}.50`, defaultNic: true }),
        () => dhcp({ command: 'add-dns-entry', ...t0, ip: `${n0.p}.50`, hostname: 'db', defaultNic: true })],
      ['set-dhcp-options (tagged NIC: SIGHUP)', async () => dhcp({ command: 'set-dhcp-options', ...t0, nicId: 'n3', options: { '119': `s${Math.random().toString(36).slice(2, 8)}.example` } }), undefined],
      ['prepare-nic, DHCP part (SIGHUP)', () => engine.change(n0.ns, engine.initFor(t0), (m: RouterModel) => dhcpPrepareNic(m, { command: 'prepare-nic', ...nic })),
        () => engine.change(n0.ns, engine.initFor(t0), (m: RouterModel) => dhcpReleaseNic(m, { command: 'release-nic', ...nic }))],
      ['release-nic, DHCP part (SIGHUP)', () => engine.change(n0.ns, engine.initFor(t0), (m: RouterModel) => dhcpReleaseNic(m, { command: 'release-nic', ...nic })),
        () => engine.change(n0.ns, engine.initFor(t0), (m: RouterModel) => dhcpPrepareNic(m, { command: 'prepare-nic', ...nic }))],
      ['add-dhcp-entry, secondary NIC (restart)', () => dhcp({ command: 'add-dhcp-entry', ...t0, mac: mac(0, 4), ip: `${n0.p}.13`, defaultNic: false }),
        () => dhcp({ command: 'remove-dhcp-entry', ...t0, mac: mac(0, 4), defaultNic: true })],
      ['remove-dns-subnet (restart, port 53 → 0)', () => dhcp({ command: 'remove-dns-subnet', ...t0 }),
        () => dhcp({ command: 'config-dns-subnet', ...t0, gateway: n0.gateway, cidr: cidr(n0.cidr) })],
      ['config-dns-subnet (restart, port 0 → 53)', () => dhcp({ command: 'config-dns-subnet', ...t0, gateway: n0.gateway, cidr: cidr(n0.cidr) }),
        () => dhcp({ command: 'remove-dns-subnet', ...t0 })],
    ];
    const perCommand: Record<string, number> = { 'config-dhcp-subnet, first (starts dnsmasq)': first };
    for (const [name, fn, undo] of pairs) {
      const samples: number[] = [];
      for (let i = 0; i <= runs; i++) {
        const s0 = now();
        await fn();
        if (i > 0) samples.push(now() - s0);
        if (undo) await undo();
      }
      perCommand[name] = median(samples);
    }
    await dhcp({ command: 'config-dns-subnet', ...t0, gateway: n0.gateway, cidr: cidr(n0.cidr) });
    const cliSamples: number[] = [];
    for (let i = 0; i < (opts.quick ? 3 : 5); i++) {
      const s0 = now();
      const r = spawnSync(process.execPath, [CLI, 'add-dhcp-entry', '--network-id', n0.id, '--mac', mac(0, 5), '--ip', `${n0.p}.15`, '--hostname', 'vm-0-e',
        '--host-netns', host.hostNs, '--state-dir', stateDir, '--log-file', join(stateDir, 'cli.log')], { encoding: 'utf8' });
      cliSamples.push(now() - s0);
      if (r.status !== 0) partial.push(`CLI add-dhcp-entry failed: ${r.stderr.trim()}`);
    }
    perCommand['add-dhcp-entry via the CLI (spawned node)'] = median(cliSamples);
    const leaseSamples: number[] = [];
    for (let i = 0; i < (opts.quick ? 3 : 7); i++) {
      const l = lease(g0);
      if (l.ip !== `${n0.p}.10`) partial.push(`guest lease: got "${l.ip}"`);
      leaseSamples.push(l.ms);
    }
    perCommand['guest lease (busybox udhcpc run, discover → ack)'] = median(leaseSamples);
    data.perCommandMs = perCommand;
    lines.push('Time per command (median; library through engine.change, which includes the full router reconcile):');
    for (const [k, v] of Object.entries(perCommand)) lines.push(`  ${k.padEnd(52)} ${fmt(v)}`);

    // ── 2. scale ────────────────────────────────────────────────────────────────────────────────
    // network 0 back to the shape of the others
    await dhcp({ command: 'remove-dhcp-entry', ...t0, mac: mac(0, 3), defaultNic: true });
    await dhcp({ command: 'remove-dhcp-entry', ...t0, mac: mac(0, 5), defaultNic: true });
    const scale: Array<Record<string, number>> = [];
    const kmem0 = sunreclaim();
    let made = 1;
    lines.push('');
    lines.push('Scale (one router per network, DHCP + DNS, 2 reservations + 1 name each):');
    lines.push(`  ${'networks'.padEnd(9)} ${'dnsmasq'.padEnd(8)} ${'RSS sum'.padEnd(9)} ${'PSS sum'.padEnd(9)} ${'PSS/net'.padEnd(8)} ${'kernel Δ'.padEnd(9)} ${'setup/net'.padEnd(10)} ${'restoreAll'.padEnd(11)} DHCP part`);
    for (const size of sizes) {
      log(`dhcp: ${size} networks`);
      const tAdd = now();
      const from = made;
      for (; made < size; made++) {
        await setupNetwork(made);
        if (made % 50 === 0) log(`dhcp:   ${made} networks`);
      }
      const addMs = (now() - tAdd) / Math.max(1, made - from);
      const last = net(size - 1, base);
      const gLast = addGuest(host, `db-gl${size}-${tag}`, last.vni, mac(size - 1, 1));
      guests.push(gLast);
      const okBefore = lease(gLast).ip === `${last.p}.10` && lease(g0).ip === `${n0.p}.10`;
      const procs = dnsmasqs(stateDir);
      const rss = procs.reduce((s, p) => s + p.rss, 0);
      const pss = procs.reduce((s, p) => s + p.pss, 0);
      const kmem = sunreclaim() - kmem0;
      // reboot: every dnsmasq killed, every router namespace deleted; the state directory stays
      for (const p of procs) process.kill(p.pid, 'SIGKILL');
      for (const ns of listNetns()) if (ns.startsWith('cs-net-')) deleteNetns(ns, { ifExists: true });
      engine = mkEngine();
      moduleTime.ms = 0;
      const tR = now();
      const restored = await engine.restoreAll();
      const restoreMs = now() - tR;
      const after = dnsmasqs(stateDir).length;
      const okAfter = lease(gLast).ip === `${last.p}.10` && lease(g0).ip === `${n0.p}.10`;
      if (!okBefore || !okAfter) partial.push(`N=${size}: guest lease ${okBefore ? '' : 'before '}${okAfter ? '' : 'after restore '}failed`);
      if (procs.length !== size) partial.push(`N=${size}: ${procs.length} dnsmasq processes before the reboot`);
      if (after !== size || restored.length !== size) partial.push(`N=${size}: after restoreAll ${after} dnsmasq, ${restored.length} routers`);
      const row = { networks: size, processes: procs.length, rssSum: rss, pssSum: pss, pssPerNetwork: pss / procs.length, kernelDelta: kmem, setupMsPerNetwork: addMs, restoreMs, restoreDhcpMs: moduleTime.ms, processesAfterRestore: after };
      scale.push(row);
      lines.push(`  ${String(size).padEnd(9)} ${String(procs.length).padEnd(8)} ${mb(rss).padEnd(9)} ${mb(pss).padEnd(9)} ${kb(row.pssPerNetwork).padEnd(8)} ${mb(kmem).padEnd(9)} ${fmt(addMs).padEnd(10)} ${fmt(restoreMs).padEnd(11)} ${fmt(moduleTime.ms)}`);
    }
    data.scale = scale;
    lines.push('');
    lines.push('  one dnsmasq per router namespace; RSS counts shared pages (libc, the dnsmasq binary) once per process, PSS splits them.');
    lines.push('  setup/net = implement-network + config-dns-subnet + 2 add-dhcp-entry + add-dns-entry (5 engine commands).');
    lines.push('  kernel Δ = SUnreclaim growth for the N routers (namespaces, vxlan + bridge + veth, nft tables, sockets — not dnsmasq alone).');
    lines.push('  restoreAll = every router (plumbing, nft, modules) from a fresh engine after the reboot; "DHCP part" = time in the DHCP module (dnsmasq starts).');
  } finally {
    for (const p of dnsmasqs(stateDir)) { try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ } }
    for (const g of guests) if (netnsExists(g)) deleteNetns(g, { ifExists: true });
    for (const ns of listNetns()) if (ns.startsWith('cs-net-')) deleteNetns(ns, { ifExists: true });
    if (netnsExists(host.hostNs)) deleteNetns(host.hostNs, { ifExists: true });
    rmSync(stateDir, { recursive: true, force: true });
  }
  const text = lines.join('\n');
  return { title: 'DHCP and DNS (dnsmasq)', text, data, notes: [text], partial };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.env.NETNS_ROUTER_SANDBOX !== '1') {
    console.error('run inside the sandbox: node scripts/in-sandbox.mjs node dist/bench/dhcp.js [--quick]');
    process.exit(1);
  }
  const t0 = now();
  const r = await bench({ quick: process.argv.includes('--quick') });
  console.log(r.text);
  if (r.partial.length) console.log(`\npartial:\n  ${r.partial.join('\n  ')}`);
  console.log(`\n(total ${fmt(now() - t0)})`);
  process.exit(r.partial.length ? 1 : 0);
}
