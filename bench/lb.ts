/**
 * Load-balancer benchmark (not a test). Run inside the sandbox:
 *   node scripts/in-sandbox.mjs node dist/bench/lb.js [--quick]
 *
 * 1. apply-lb-rules latency through the engine (a simulated host with an upstream namespace, one isolated
 *    network, one LB public IP): N = 1, 10, 100 rules of 2 backends each (health checks off, so no check
 *    traffic), into a router without haproxy (start), then every rule changed (reload), then the same document
 *    then one rule changed (reload; `haproxy -c` of the configuration's head and that rule's section only), then
 *    the same document again (unchanged: validation + reconcile, no `haproxy -c`, no reload). Also a full
 *    `haproxy -c` of the configuration alone.
 * 2. Requests per second through haproxy, same configuration and generator, bounded load (fixed concurrency and
 *    duration) on loopback/namespace addresses only:
 *      loopback, host ns    haproxy, 3 HTTP backends and the client on 127.0.0.1 of the caller's namespace
 *      loopback, named ns   the same inside a named namespace (haproxy posix_spawn'ed inside it)
 *      through the router   client in the upstream namespace → public IP of the router → haproxy in the router
 *                           namespace → 3 guest VMs over veth/bridge (the real path, for reference)
 *    Each with HTTP/1.1 keep-alive (requests/s) and one connection per request (connections/s).
 * Prints medians; --quick runs fewer, shorter rounds (under a minute).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { addNetns, deleteNetns } from '../lib/netns/namespaces.js';
import { NetnsHandle } from '../lib/netns/handle.js';
import { RouterEngine } from '../lib/router/engine.js';
import { renderLbConfig, supervisorFor } from '../lib/router/lb/index.js';
import { HaproxySupervisor, checkConfig, renderConfig, type ProxySpec } from '../lib/services/haproxy/index.js';
import { openFilesHardLimit } from '../lib/sys/proc.js';
import { runCommand } from '../lib/router/command-table.js';

if (process.env.NETNS_ROUTER_SANDBOX !== '1') {
  console.error('run inside the sandbox: node scripts/in-sandbox.mjs node dist/bench/lb.js [--quick]');
  process.exit(1);
}

const quick = process.argv.includes('--quick');
const SIZES = [1, 10, 100];
const APPLY_RUNS = quick ? 2 : 5;
const LOAD_SECONDS = quick ? 1 : 3;
const LOAD_ROUNDS = quick ? 2 : 5;
const CONCURRENCY = 8;
const dir = mkdtempSync(join(tmpdir(), 'lb-bench-'));
const tag = (process.pid % 10_000).toString(36);
const now = (): number => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const fmt = (ms: number): string => (ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0));

const namespaces: string[] = [];
const children: ChildProcess[] = [];
function ns(prefix: string): string {
  const n = `${prefix}-${tag}-${namespaces.length}`;
  addNetns(n);
  namespaces.push(n);
  return n;
}
const inNs = (name: string | undefined, argv: string[]): [string, string[]] => (name ? ['ip', ['netns', 'exec', name, ...argv]] : [argv[0], argv.slice(1)]);

// ── processes: backends and load generator ──────────────────────────────────────────────────────────────

const SERVER = `
const http = require('node:http');
const [port, host, name] = process.argv.slice(1);
const body = name + '\\n';
http.createServer((q, s) => { s.writeHead(200, { 'content-length': body.length }); s.end(body); })
  .listen(Number(port), host, () => process.stdout.write('up\\n'));
`;

async function backend(where: string | undefined, host: string, port: number, name: string): Promise<ChildProcess> {
  const [cmd, args] = inNs(where, [process.execPath, '-e', SERVER, String(port), host, name]);
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(p);
  await new Promise<void>((res, rej) => { p.stdout!.once('data', () => res()); p.once('exit', (c) => rej(new Error(`backend ${name} exited ${c}`))); });
  return p;
}

// Raw-socket HTTP/1.1 client: fixed request, responses framed by content-length; keep-alive or one connection
// per request. Cheap per request, so that the generator is not the first bottleneck.
const LOAD = `
const net = require('node:net');
const [host, port, seconds, conc, mode] = process.argv.slice(1);
const keep = mode === 'keepalive';
const req = Buffer.from('GET / HTTP/1.1\\r\\nHost: lb\\r\\n' + (keep ? '' : 'Connection: close\\r\\n') + '\\r\\n');
const end = Date.now() + Number(seconds) * 1000;
let done = 0, errors = 0;
function worker(resolve) {
  if (Date.now() >= end) return resolve();
  const s = net.connect(Number(port), host);
  s.setNoDelay(true);
  let buf = '';
  const next = () => { if (Date.now() >= end) { s.destroy(); return resolve(); } s.write(req); };
  s.on('connect', next);
  s.on('data', (d) => {
    buf += d;
    for (;;) {
      const h = buf.indexOf('\\r\\n\\r\\n');
      if (h < 0) return;
      const m = /content-length: *(\\d+)/i.exec(buf.slice(0, h));
      const total = h + 4 + (m ? Number(m[1]) : 0);
      if (buf.length < total) return;
      buf = buf.slice(total);
      done++;
      if (keep) next(); else { s.destroy(); return worker(resolve); }
    }
  });
  s.on('error', () => { errors++; s.destroy(); setTimeout(() => worker(resolve), 5); });
}
const t0 = Date.now();
Promise.all(Array.from({ length: Number(conc) }, () => new Promise(worker)))
  .then(() => process.stdout.write(JSON.stringify({ done, errors, seconds: (Date.now() - t0) / 1000 })));
`;

async function load(where: string | undefined, host: string, port: number, mode: 'keepalive' | 'close'): Promise<{ rate: number; errors: number }> {
  const [cmd, args] = inNs(where, [process.execPath, '-e', LOAD, host, String(port), String(LOAD_SECONDS), String(CONCURRENCY), mode]);
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout!.on('data', (d) => { out += d; });
  await new Promise((r) => p.on('close', r));
  const r = JSON.parse(out) as { done: number; errors: number; seconds: number };
  return { rate: r.done / r.seconds, errors: r.errors };
}

// ── 1. apply latency through the engine ─────────────────────────────────────────────────────────────────

const LB_IP = '203.0.113.70';
const cidr = (text: string) => { const [address, p] = text.split('/'); return { family: 4 as const, address, prefix: Number(p) }; };

function simulatedHost(): { hostNs: string; upNs: string } {
  const hostNs = ns('lbh');
  const upNs = ns('lbu');
  const h = NetnsHandle.open(hostNs);
  const up = NetnsHandle.open(upNs);
  try {
    h.netlink.linkAdd({ kind: 'veth', name: 'eth1', up: true, peer: { name: 'up0', namespace: { netns: upNs }, up: true } });
    up.netlink.linkSetUp('lo');
    up.netlink.addrAdd({ dev: 'up0', address: '203.0.113.1/24' });
  } finally {
    h.close();
    up.close();
  }
  return { hostNs, upNs };
}

function rules(n: number, variant: number, backends: string[] = ['10.6.1.10', '10.6.1.11'], healthcheck: unknown = false): unknown[] {
  return Array.from({ length: n }, (_, i) => ({
    id: 1000 + i, publicIp: LB_IP, publicPort: 10_000 + i, algorithm: variant % 2 ? 'leastconn' : 'roundrobin', revoke: false,
    backends: backends.map((ip) => ({ ip, port: 8080, revoked: false })), healthcheck,
  }));
}

async function router(engine: RouterEngine, networkId: string, vni: number): Promise<string> {
  const namespace = `cs-net-${networkId}`;
  namespaces.push(namespace);
  await runCommand(engine, { command: 'implement-network', networkId, namespace, segment: { kind: 'vxlan', vni }, gateway: '10.6.1.1', cidr: cidr('10.6.1.0/24') });
  await runCommand(engine, { command: 'assign-ip', networkId, namespace, publicIp: { ip: LB_IP, segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: true } });
  // an isolated network's public IP is closed until a firewall rule opens it (CloudStack creates this rule with
  // the LB rule, openfirewall=true): every TCP port of the LB address
  await runCommand(engine, { command: 'apply-fw-rules', networkId, namespace, fwRules: { source: 'bench', value: { default_egress_allow: true, rules: [
    { id: 1, type: 'ingress', protocol: 'tcp', publicIp: LB_IP, sourceCidrs: ['0.0.0.0/0'] },
  ] } } });
  return namespace;
}

/** The apply section's routers: their haproxy is stopped by pid at the end even when a command failed midway. */
const applyRouters: Array<[string, string]> = [];

async function applyBench(): Promise<void> {
  const { hostNs } = simulatedHost();
  const stateDir = join(dir, 'state-apply');
  const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
  console.log('\napply-lb-rules through the engine (ms, median of %d; each includes the nft/plumbing reconcile of the router)', APPLY_RUNS);
  console.log('rules | start (first apply) | reload (all changed) | reload (one changed) | unchanged | haproxy -c alone | config bytes');
  let seq = 0;
  for (const n of SIZES) {
    const start: number[] = [], reload: number[] = [], one: number[] = [], same: number[] = [], check: number[] = [];
    let bytes = 0;
    for (let r = 0; r < APPLY_RUNS; r++) {
      const networkId = `${7000 + (process.pid % 1000) * 10 + seq++}`;
      const namespace = await router(engine, networkId, 6000 + (seq % 1000));
      applyRouters.push([namespace, stateDir]);
      const apply = async (doc: unknown[]) => {
        const t0 = now();
        await runCommand(engine, { command: 'apply-lb-rules', networkId, namespace, lbRules: { value: doc, source: 'bench' } });
        return now() - t0;
      };
      start.push(await apply(rules(n, 0)));
      reload.push(await apply(rules(n, 1)));
      // one rule changed: only that section (and the head) goes through haproxy -c
      const oneChanged = rules(n, 1) as Array<Record<string, unknown>>;
      oneChanged[0] = { ...oneChanged[0], algorithm: 'source' };
      one.push(await apply(oneChanged));
      same.push(await apply(oneChanged));
      const text = renderLbConfig(engine.store.load(namespace)!).text;
      bytes = text.length;
      const t0 = now();
      if (!checkConfig(text).ok) throw new Error('bench config refused');
      check.push(now() - t0);
      if (!supervisorFor(namespace, stateDir).status().running) throw new Error('haproxy not running after apply');
      await runCommand(engine, { command: 'destroy-network', networkId, namespace });
    }
    console.log(`${String(n).padStart(5)} | ${fmt(median(start)).padStart(19)} | ${fmt(median(reload)).padStart(20)} | ${fmt(median(one)).padStart(20)} | ${fmt(median(same)).padStart(9)} | ${fmt(median(check)).padStart(16)} | ${bytes}`);
  }
}

// ── 2. throughput ───────────────────────────────────────────────────────────────────────────────────────

/** A place to send load to: where the client runs, the address, and how to take it down. */
interface Target { name: string; clientNs: string | undefined; host: string; port: number; close: () => Promise<void> }

async function loopbackTarget(name: string, where: string | undefined): Promise<Target> {
  if (where) { const h = NetnsHandle.open(where); try { h.netlink.linkSetUp('lo'); } finally { h.close(); } }
  const ports = [18081, 18082, 18083];
  const procs = await Promise.all(ports.map((p, i) => backend(where, '127.0.0.1', p, `b${i + 1}`)));
  const spec: ProxySpec = { id: 'bench', bindIp: '127.0.0.1', bindPort: 18080, mode: 'tcp', algorithm: 'roundrobin', servers: ports.map((port) => ({ ip: '127.0.0.1', port })), maxconn: 5000 };
  const sup = new HaproxySupervisor({ ...(where ? { netns: where } : {}), runDir: join(dir, `run-${where ?? 'host'}`) });
  await sup.apply(renderConfig([spec], { fdHardLimit: openFilesHardLimit() ?? 1024 }).text);
  return {
    name, clientNs: where, host: '127.0.0.1', port: 18080,
    close: async () => { await sup.stop({ purge: true }); for (const p of procs) p.kill(); },
  };
}

async function routerTarget(): Promise<Target> {
  const { hostNs, upNs } = simulatedHost();
  const stateDir = join(dir, 'state-load');
  const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
  const networkId = `${8000 + (process.pid % 1000)}`;
  const vni = 6900;
  const namespace = await router(engine, networkId, vni);
  const vmIps = ['10.6.1.21', '10.6.1.22', '10.6.1.23'];
  const procs: ChildProcess[] = [];
  const h = NetnsHandle.open(hostNs);
  try {
    for (const [i, ip] of vmIps.entries()) {
      const vm = ns('lbvm');
      h.netlink.linkAdd({ kind: 'veth', name: `lbv${tag}${i}`.slice(0, 15), master: `brvx-${vni}`, up: true, peer: { name: 'eth0', namespace: { netns: vm }, up: true } });
      const v = NetnsHandle.open(vm);
      try {
        v.netlink.linkSetUp('lo');
        v.netlink.addrAdd({ dev: 'eth0', address: `${ip}/24` });
        v.netlink.routeReplace({ dst: 'default', via: '10.6.1.1' });
      } finally {
        v.close();
      }
      procs.push(await backend(vm, '0.0.0.0', 8080, `vm${i + 1}`));
    }
  } finally {
    h.close();
  }
  await runCommand(engine, {
    command: 'apply-lb-rules', networkId, namespace,
    lbRules: { value: [{ id: 1, publicIp: LB_IP, publicPort: 80, algorithm: 'roundrobin', maxconn: 5000, backends: vmIps.map((ip) => ({ ip, port: 8080 })) }], source: 'bench' },
  });
  return {
    name: 'through the router', clientNs: upNs, host: LB_IP, port: 80,
    close: async () => { for (const p of procs) p.kill(); await runCommand(engine, { command: 'destroy-network', networkId, namespace }); },
  };
}

async function throughputBench(): Promise<void> {
  const targets: Target[] = [];
  try {
    targets.push(await loopbackTarget('loopback, host ns', undefined));
    targets.push(await loopbackTarget('loopback, named ns', ns('lbns')));
    targets.push(await routerTarget());
    await sleep(300);
    // rounds interleave the setups, so that load from elsewhere on the machine hits them alike
    const keep = new Map<string, number[]>(), conn = new Map<string, number[]>(), errors = new Map<string, number>();
    for (let r = 0; r < LOAD_ROUNDS; r++) {
      for (const t of targets) {
        const a = await load(t.clientNs, t.host, t.port, 'keepalive');
        const b = await load(t.clientNs, t.host, t.port, 'close');
        keep.set(t.name, [...(keep.get(t.name) ?? []), a.rate]);
        conn.set(t.name, [...(conn.get(t.name) ?? []), b.rate]);
        errors.set(t.name, (errors.get(t.name) ?? 0) + a.errors + b.errors);
      }
    }
    console.log(`\nthroughput through haproxy (same configuration and generator; median of ${LOAD_ROUNDS} interleaved rounds of ${LOAD_SECONDS} s)`);
    console.log('setup                | keep-alive req/s | new conn/s | errors');
    for (const t of targets) {
      console.log(`${t.name.padEnd(20)} | ${median(keep.get(t.name)!).toFixed(0).padStart(16)} | ${median(conn.get(t.name)!).toFixed(0).padStart(10)} | ${errors.get(t.name)}`);
    }
    const [a, b] = targets.map((t) => t.name);
    const pct = (m: Map<string, number[]>) => `${(((median(m.get(b)!) - median(m.get(a)!)) / median(m.get(a)!)) * 100).toFixed(1)}%`;
    const spread = (m: Map<string, number[]>, n: string) => { const xs = m.get(n)!; return `${((Math.max(...xs) - Math.min(...xs)) / median(xs) * 100).toFixed(0)}%`; };
    console.log(`named namespace vs host namespace: keep-alive ${pct(keep)}, new connections ${pct(conn)}` +
      ` (round-to-round spread of the host-ns figures: ${spread(keep, a)} / ${spread(conn, a)})`);
  } finally {
    for (const t of targets) await t.close().catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const t0 = now();
  const version = /version (\S+)/.exec(spawnSync('haproxy', ['-v'], { encoding: 'utf8' }).stdout ?? '')?.[1] ?? 'missing';
  console.log(`lb benchmark${quick ? ' (--quick)' : ''}: haproxy ${version}, ${CONCURRENCY} concurrent clients; load average at start ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  await applyBench();
  await throughputBench();
  console.log(`\ntotal ${((now() - t0) / 1000).toFixed(1)} s; load average at end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
}

try {
  await main();
} finally {
  for (const p of children) if (p.exitCode === null) p.kill();
  for (const [ns, stateDir] of applyRouters) await supervisorFor(ns, stateDir).stop().catch(() => undefined);
  for (const n of namespaces.reverse()) deleteNetns(n, { ifExists: true });
  rmSync(dir, { recursive: true, force: true });
}
