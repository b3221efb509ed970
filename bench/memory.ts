/**
 * Memory per router (issue #19 item 4): N routers (cumulative levels 10, 100, 1,000; --quick 10, 100; --sizes
 * to choose), each an isolated network with source NAT, DHCP + DNS (dnsmasq, one VM entry), metadata (one VM's
 * data) and one load-balancing rule (no health check: the benchmark sends no traffic, see below). Two shapes in
 * the same run, one after the other, each from its own baseline (--shapes to choose): `kernel` — the network's
 * lb-provider "kernel" (the rule in nftables, no haproxy; measured first, so it pays the engine's first use of
 * its code) — and `haproxy`, the default (a haproxy per router). At each level:
 *
 *   daemons  PSS (/proc/<pid>/smaps_rollup) of every daemon: each router's haproxy (one process, found by the
 *            pid file of the router's supervisor, lib/router/lb) and dnsmasq, and the state directory's
 *            metadata daemon; divided by N
 *   engine   PSS growth of this process (the engine, in-library, with everything it caches) since before the
 *            first router, after a garbage collection; divided by N
 *   kernel   growth of Slab + KernelStack + PageTables + Percpu in /proc/meminfo since before the first router
 *            (namespaces, links, nft tables, sockets); divided by N. /proc/meminfo is the whole machine's:
 *            other work running meanwhile moves it (the figure is noisy, never exact)
 *
 * Compared with the goal of issue #19: at most 3 MiB per router, all included, at 100 and 1,000 routers.
 *
 * No packet is sent to the routers: the kernel's neighbour table is global (gc_thresh3 1,024 entries) and
 * 1,000 routers resolving a backend each would overflow it ("neighbour table overflow" in dmesg).
 * Every daemon started is killed by pid at the end (finally), and the namespaces deleted.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterEngine } from '../lib/router/engine.js';
import type * as T from '../lib/router/contract/types.js';
import { runCommand } from '../lib/router/command-table.js';
import { supervisorFor } from '../lib/router/lb/index.js';
import { dnsmasqInstance } from '../lib/router/dhcp/module.js';
import * as vd from '../lib/router/vmdata/index.js';
import { daemonPid, stopDaemon } from '../lib/services/metadata/index.js';
import { procAlive } from '../lib/services/haproxy/index.js';
import { collectGarbage, meminfo, now, sleep } from './lib/timing.js';
import { makeHost, removeHost, deleteNamespaces } from './lib/topo.js';
import { renderText, type Table } from './lib/table.js';

const MiB = 1024 * 1024;
/** Issue #19 item 4: all included, at 100 and at 1,000 routers. */
const GOAL_MIB = 3;
const GOAL_FROM = 100;
const cidr = (s: string) => { const [address, p] = s.split('/'); return { family: 4 as const, address, prefix: Number(p) }; };

/** Router k: id, namespace, guest /24 (10.128.0.0/10 …), VM .10, public IP in 198.18.0.0/15. */
function net(k: number, base: number) {
  const g = `10.${128 + (k >> 8)}.${k & 255}`;
  const p = 2 + k;
  return { id: String(base + k), ns: `cs-net-${base + k}`, vni: 30_000 + k, gateway: `${g}.1`, cidr: `${g}.0/24`, vm: `${g}.10`, publicIp: `198.18.${p >> 8}.${p & 255}` };
}
const mac = (k: number) => `02:00:${((k >> 16) & 255).toString(16).padStart(2, '0')}:${((k >> 8) & 255).toString(16).padStart(2, '0')}:${(k & 255).toString(16).padStart(2, '0')}:0a`;

/** PSS of a process in bytes (0 when it is gone). */
export function pss(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}
const sumPss = (pids: number[]): number => pids.reduce((a, p) => a + pss(p), 0);

/** Kernel memory that grows with namespaces, links, tables and sockets (bytes). */
function kernelBytes(): number {
  const m = meminfo();
  return (m.Slab ?? 0) + (m.KernelStack ?? 0) + (m.PageTables ?? 0) + (m.Percpu ?? 0);
}

const kill = (pid: number): void => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } };

interface Level {
  routers: number;
  createMs: number;
  haproxy: { processes: number; pssBytes: number };
  dnsmasq: { processes: number; pssBytes: number };
  metadata: { processes: number; pssBytes: number };
  engineBytes: number;
  /** V8 heap in use growth (of engineBytes: what the engine's objects hold, the rest is code, JIT, slack). */
  engineHeapBytes: number;
  kernelBytes: number;
  perRouterMiB: { haproxy: number; dnsmasq: number; metadata: number; engine: number; kernel: number; total: number };
}

export interface MemoryBenchResult {
  title: string;
  tables: Table[];
  data: Record<string, unknown>;
  notes: string[];
  partial: string[];
}

/** Who serves each router's rule: a haproxy per router, or the kernel (lb-provider "kernel"). */
export type Shape = 'haproxy' | 'kernel';
export const SHAPES: readonly Shape[] = ['kernel', 'haproxy'];

export async function bench(opts: { quick: boolean; log?: (m: string) => void; sizes?: number[]; shapes?: Shape[] }): Promise<MemoryBenchResult> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const sizes = [...(opts.sizes ?? (opts.quick ? [10, 100] : [10, 100, 1000]))].sort((a, b) => a - b);
  const shapes = SHAPES.filter((x) => (opts.shapes ?? SHAPES).includes(x));
  const levels: Array<Level & { shape: Shape }> = [];
  const partial: string[] = [];
  for (const shape of shapes) {
    const r = await measure(shape, sizes, log);
    levels.push(...r.levels.map((l) => ({ ...l, shape })));
    partial.push(...r.partial.map((x) => `${shape}: ${x}`));
    await sleep(2000); // the namespaces' deferred clean-up in the kernel, before the next shape's baseline
  }
  return report(sizes, levels, partial);
}

async function measure(shape: Shape, sizes: number[], log: (m: string) => void): Promise<{ levels: Level[]; partial: string[] }> {
  const tag = Math.random().toString(36).slice(2, 6);
  const dir = mkdtempSync(join(tmpdir(), 'mem-bench-'));
  chmodSync(dir, 0o755); // haproxy's workers (haproxy user) reach their runtime directory through it
  const stateDir = join(dir, 'state');
  const host = makeHost(tag);
  const base = 50_000 + Math.floor(Math.random() * 9_000);
  const engine = new RouterEngine({ stateDir, hostNetns: host.hostNs, devices: { guest: 'eth1', public: 'eth1' } });
  // the metadata daemon stays up between commands (it would exit when idle, and be measured absent)
  const idle = vd.vmdataSettings.daemonIdleExitMs;
  vd.vmdataSettings.daemonIdleExitMs = -1;
  const levels: Level[] = [];
  const partial: string[] = [];
  let made = 0;
  const haproxyOf = (k: number) => supervisorFor(net(k, base).ns, stateDir);
  try {
    collectGarbage();
    const engine0 = pss(process.pid);
    const heap0 = process.memoryUsage().heapUsed;
    const kernel0 = kernelBytes();
    for (const n of sizes) {
      const t0 = now();
      for (; made < n; made++) {
        const x = net(made, base);
        const t = { networkId: x.id, namespace: x.ns };
        await runCommand(engine, { command: 'implement-network', ...t, segment: { kind: 'vxlan', vni: x.vni }, gateway: x.gateway, cidr: cidr(x.cidr) });
        await runCommand(engine, { command: 'assign-ip', ...t, publicIp: { ip: x.publicIp, segment: { kind: 'untagged' }, gateway: '198.18.0.1', cidr: cidr('198.18.0.0/15'), sourceNat: true } });
        await runCommand(engine, { command: 'config-dns-subnet', ...t, gateway: x.gateway, cidr: cidr(x.cidr), dns: ['192.0.2.53'], domain: 'bench.example' });
        await runCommand(engine, { command: 'add-dhcp-entry', ...t, mac: mac(made), ip: x.vm, hostname: `vm-${made}`, defaultNic: true });
        await runCommand(engine, { command: 'save-vm-data', ...t, ip: x.vm, vmData: { value: [
          { dir: 'userdata', file: 'user-data', content: `#cloud-config\nhostname: vm-${made}\n` },
          { dir: 'metadata', file: 'local-hostname', content: `vm-${made}` },
          { dir: 'metadata', file: 'instance-id', content: `i-2-${made}-VM` },
        ], source: 'bench' } } as T.SaveVmDataRequest);
        await runCommand(engine, { command: 'apply-lb-rules', ...t, lbRules: { value: [{
          id: `m${made}`, publicIp: x.publicIp, publicPort: 80, protocol: 'tcp', algorithm: 'roundrobin', revoke: false,
          backends: [{ ip: x.vm, port: 8080, revoked: false }], healthcheck: false,
        }], source: 'bench' }, ...(shape === 'kernel' ? { lbProvider: 'kernel' as const } : {}) });
        if ((made + 1) % 100 === 0) log(`memory (${shape}): ${made + 1} routers (${((now() - t0) / 1000).toFixed(0)} s)`);
      }
      const createMs = now() - t0;
      await sleep(500);
      const haproxies: number[] = [];
      const dnsPids: number[] = [];
      for (let k = 0; k < n; k++) {
        const hs = haproxyOf(k).status();
        if (hs.running) haproxies.push(...hs.workers);
        const p = dnsmasqInstance(stateDir, net(k, base).ns).pid();
        if (p !== undefined) dnsPids.push(p);
      }
      const md = daemonPid(stateDir);
      const expected = shape === 'kernel' ? 0 : n;
      if (haproxies.length !== expected) partial.push(`${n} routers: ${haproxies.length} haproxy processes running, expected ${expected}`);
      if (dnsPids.length !== n) partial.push(`${n} routers: ${dnsPids.length} dnsmasq running, expected ${n}`);
      if (md === undefined) partial.push(`${n} routers: the metadata daemon is not running`);
      collectGarbage();
      const lv: Level = {
        routers: n, createMs,
        haproxy: { processes: haproxies.length, pssBytes: sumPss(haproxies) },
        dnsmasq: { processes: dnsPids.length, pssBytes: sumPss(dnsPids) },
        metadata: { processes: md !== undefined ? 1 : 0, pssBytes: md !== undefined ? pss(md) : 0 },
        engineBytes: Math.max(0, pss(process.pid) - engine0),
        engineHeapBytes: process.memoryUsage().heapUsed - heap0,
        kernelBytes: Math.max(0, kernelBytes() - kernel0),
        perRouterMiB: { haproxy: 0, dnsmasq: 0, metadata: 0, engine: 0, kernel: 0, total: 0 },
      };
      const per = (b: number) => b / n / MiB;
      const p = lv.perRouterMiB;
      p.haproxy = per(lv.haproxy.pssBytes);
      p.dnsmasq = per(lv.dnsmasq.pssBytes);
      p.metadata = per(lv.metadata.pssBytes);
      p.engine = per(lv.engineBytes);
      p.kernel = per(lv.kernelBytes);
      p.total = p.haproxy + p.dnsmasq + p.metadata + p.engine + p.kernel;
      levels.push(lv);
      log(`memory (${shape}): ${n} routers: ${p.total.toFixed(2)} MiB per router (haproxy ${p.haproxy.toFixed(2)}, dnsmasq ${p.dnsmasq.toFixed(2)}, engine ${p.engine.toFixed(2)}, kernel ${p.kernel.toFixed(2)}); created in ${(createMs / 1000).toFixed(0)} s`);
    }
  } finally {
    // daemons killed by pid, then the namespaces deleted (the routers' destroy-network would stop each haproxy
    // and dnsmasq gracefully: minutes of teardown measuring nothing). `made` routers complete, and the one in
    // progress when a command failed.
    for (let k = 0; k <= made; k++) {
      const hs = haproxyOf(k).status();
      if (hs.pid !== undefined) { kill(hs.pid); hs.workers.forEach(kill); } // the current process, and any still finishing
      const p = dnsmasqInstance(stateDir, net(k, base).ns).pid();
      if (p !== undefined && procAlive(p)) kill(p);
    }
    const md = daemonPid(stateDir);
    if (md !== undefined) await stopDaemon(stateDir).catch(() => kill(md));
    vd.vmdataSettings.daemonIdleExitMs = idle;
    deleteNamespaces((name) => name.startsWith('cs-net-') && Number(name.slice(7)) >= base && Number(name.slice(7)) <= base + made);
    removeHost(host);
    rmSync(dir, { recursive: true, force: true });
  }
  return { levels, partial };
}

function report(sizes: number[], levels: Array<Level & { shape: Shape }>, partial: string[]): MemoryBenchResult {
  const f = (x: number, d = 2) => x.toFixed(d);
  const goal = (l: Level) => l.routers < GOAL_FROM
    ? `(goal at ≥ ${GOAL_FROM})`
    : l.perRouterMiB.total <= GOAL_MIB ? 'met' : `not met (${f(l.perRouterMiB.total / GOAL_MIB, 1)}×)`;
  const table: Table = {
    title: 'Memory per router (MiB, PSS; DHCP+DNS, metadata, one LB rule each: served by a haproxy per router, or by the kernel)',
    headers: ['LB served by', 'routers', 'created in (s)', 'haproxy', 'dnsmasq', 'metadata', 'engine', '(engine: JS heap)', 'kernel', 'total', 'total without haproxy', `goal ≤ ${GOAL_MIB} MiB`, 'processes (haproxy/dnsmasq/metadata)'],
    rows: levels.map((l) => {
      const p = l.perRouterMiB;
      return [
        l.shape, String(l.routers), f(l.createMs / 1000, 0), f(p.haproxy), f(p.dnsmasq), f(p.metadata, 3), f(p.engine), f(l.engineHeapBytes / l.routers / MiB),
        f(p.kernel), f(p.total), f(p.total - p.haproxy), goal(l), `${l.haproxy.processes}/${l.dnsmasq.processes}/${l.metadata.processes}`,
      ];
    }),
    notes: [
      'PSS from /proc/<pid>/smaps_rollup; haproxy = each router\'s haproxy process (pids from its supervisor); engine = growth of this process since before the shape\'s first router (the first shape measured, kernel, also pays the code loaded and compiled on first use: a fixed cost, amortised over N), of it the JS heap in use after a collection; kernel = growth of Slab+KernelStack+PageTables+Percpu in /proc/meminfo (machine-wide, noisy)',
      'kernel shape: network-extension-details lb-provider "kernel" — the rule served by nftables in the router table (DNAT through maps, masquerade), no haproxy process (docs/load-balancing.md "Kernel provider")',
      `goal (issue #19 item 4): ≤ ${GOAL_MIB} MiB per router all included at 100 and 1,000 routers`,
    ],
  };
  return { title: 'Memory per router', tables: [table], data: { sizes, levels }, notes: [], partial };
}

// run directly: node dist/bench/memory.js [--quick] [--sizes 10,100,1000] [--shapes kernel,haproxy]
if (process.argv[1] && /memory\.js$/.test(process.argv[1])) {
  const i = process.argv.indexOf('--sizes');
  const sizes = i > 0 ? process.argv[i + 1].split(',').map(Number) : undefined;
  const j = process.argv.indexOf('--shapes');
  const shapes = j > 0 ? process.argv[j + 1].split(',') as Shape[] : undefined;
  bench({ quick: process.argv.includes('--quick'), ...(sizes ? { sizes } : {}), ...(shapes ? { shapes } : {}) })
    .then((r) => { process.stdout.write(renderText(r.tables[0])); if (r.partial.length) console.log(`partial: ${r.partial.join('; ')}`); })
    .catch((e: unknown) => { console.error(e); process.exitCode = 1; });
}
