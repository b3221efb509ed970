/**
 * Workload 4: what the router costs per packet. Throughput (one TCP stream, SECONDS long) and connection
 * rate (short request/response connections, 8 in flight) measured with bench/lib/tcp-tool.js between
 * namespaces of this benchmark only:
 *
 *   direct veth         client ns ── veth ── server ns (the floor: one veth hop, no bridge, no NAT)
 *   router, source NAT  guest VM ── brvx bridge ── router (SNAT) ── public bridge ── uplink ── upstream peer
 *   router, port fwd    upstream peer ── … ── router (DNAT) ── … ── guest VM server
 *   loaded port fwd     the same port forward on a router holding N other forwards: netns-router (nft maps)
 *                       vs the spawn baseline's iptables chains (linear rule walk for each new connection)
 *
 * Both endpoints are Node processes on the same 2-core machine, so absolute figures are tool-bound;
 * the ratios between paths are what this shows.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { addNetns, deleteNetns, netnsExists } from '../lib/netns/namespaces.js';
import { runInNetns } from '../lib/sys/setns.js';
import { NetnsHandle } from '../lib/netns/handle.js';
import { RouterEngine } from '../lib/router/engine.js';
import type { PortForwardModel } from '../lib/router/model.js';
import { median } from './lib/stats.js';
import { now, sleep } from './lib/timing.js';
import { fmtBps, fmtInt, fmtRatio } from './lib/format.js';
import type { Table } from './lib/table.js';
import { emptySection, type BenchOptions, type SectionResult } from './lib/report.js';
import { distRoot, spawnBaselinePath } from './lib/paths.js';
import { makeHost, removeHost, deleteNamespaces, PUBLIC_GW, type BenchHost } from './lib/topo.js';
import { Spawner } from './lib/spawner.js';
import { runCommand } from '../lib/router/command-table.js';

const TOOL = (): string => join(distRoot(), 'bench', 'lib', 'tcp-tool.js');
const SERVER_PORT = 9000;
const CONCURRENCY = 8;

/** Make a namespace a comfortable TCP client: wide port range, TIME_WAIT reuse. */
function tuneClient(ns: string): void {
  const h = NetnsHandle.open(ns);
  try {
    h.sysctlSet('net.ipv4.ip_local_port_range', '1024 65000');
    h.sysctlSet('net.ipv4.tcp_tw_reuse', 1);
  } finally {
    h.close();
  }
}

async function startServer(ns: string): Promise<ChildProcess> {
  const child = runInNetns(ns, () => spawn(process.execPath, [TOOL(), 'server', String(SERVER_PORT)], { stdio: ['ignore', 'pipe', 'inherit'] }));
  await new Promise<void>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    const t = setTimeout(() => reject(new Error(`tcp server in ${ns} did not start`)), 10_000);
    rl.once('line', () => { clearTimeout(t); resolve(); });
    child.once('exit', (c) => { clearTimeout(t); reject(new Error(`tcp server in ${ns} exited ${c}`)); });
  });
  return child;
}

async function client(ns: string, args: string[]): Promise<Record<string, number>> {
  const child = runInNetns(ns, () => spawn(process.execPath, [TOOL(), ...args], { stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const code = await new Promise<number | null>((r) => child.on('close', r));
  const line = out.trim().split('\n').pop() ?? '';
  let r: Record<string, number> & { error?: string };
  try {
    r = JSON.parse(line) as Record<string, number> & { error?: string };
  } catch {
    throw new Error(`tcp-tool ${args[0]} in ${ns}: no result (exit ${code}): ${out.slice(0, 200)}`);
  }
  if (r.error) throw new Error(`tcp-tool ${args[0]} in ${ns} → ${args[1]}:${args[2]}: ${r.error}`);
  return r;
}

interface PathResult {
  path: string;
  bps?: number[];
  rate?: number[];
  errors?: number;
  error?: string;
}

async function measurePath(path: string, clientNs: string, host: string, port: number, seconds: number, runs: number, what: Array<'stream' | 'conn'>): Promise<PathResult> {
  const r: PathResult = { path, bps: [], rate: [], errors: 0 };
  try {
    for (let i = 0; i < runs; i++) {
      if (what.includes('stream')) r.bps!.push((await client(clientNs, ['stream', host, String(port), String(seconds)])).bps);
      if (what.includes('conn')) {
        const c = await client(clientNs, ['connrate', host, String(port), String(seconds), String(CONCURRENCY)]);
        r.rate!.push(c.rate);
        r.errors! += c.errors;
      }
    }
  } catch (e) {
    r.error = (e as Error).message;
  }
  return r;
}

const cidrOf = (s: string) => { const [address, p] = s.split('/'); return { family: 4 as const, address, prefix: Number(p) }; };

/** A guest VM: namespace with eth0 in `bridge` of the host namespace. */
function addVm(host: BenchHost, name: string, bridge: string, ip: string, gw: string): void {
  if (netnsExists(name)) deleteNetns(name, { ifExists: true });
  addNetns(name);
  const h = NetnsHandle.open(host.hostNs);
  const v = NetnsHandle.open(name);
  try {
    h.netlink.linkAdd({ kind: 'veth', name: `t${name}`.slice(0, 15), master: bridge, up: true, peer: { name: 'eth0', namespace: { fd: v.fd }, up: true } });
    v.netlink.linkSetUp('lo');
    v.netlink.addrAdd({ dev: 'eth0', address: ip });
    v.netlink.routeReplace({ dst: 'default', via: gw });
  } finally {
    h.close();
    v.close();
  }
}

const pfOther = (i: number, pub: string): PortForwardModel => {
  const v = (10 << 24) + (9 << 16) + 2 + i;
  return { publicIp: pub, protocol: 'tcp', publicPorts: [20_000 + i, 20_000 + i], privateIp: [24, 16, 8, 0].map((s) => (v >>> s) & 255).join('.'), privatePorts: [80, 80] };
};

export async function runDatapath(opts: BenchOptions): Promise<SectionResult> {
  const sec = emptySection('datapath', 'Data path: throughput and connection rate');
  const t0 = now();
  const seconds = opts.quick ? 1 : 1.5;
  const runs = opts.quick ? 1 : 3;
  const loadedN = opts.quick ? 1000 : 10_000;
  const work = join(opts.outDir, 'work-datapath');
  mkdirSync(work, { recursive: true });
  const procs: ChildProcess[] = [];
  const made: string[] = [];
  const hosts: BenchHost[] = [];
  const results: PathResult[] = [];
  const spawner = Spawner.start();
  try {
    // direct veth
    const a = 'dp-a';
    const b = 'dp-b';
    for (const n of [a, b]) { if (netnsExists(n)) deleteNetns(n, { ifExists: true }); addNetns(n); made.push(n); }
    const ha = NetnsHandle.open(a);
    const hb = NetnsHandle.open(b);
    try {
      ha.netlink.linkSetUp('lo');
      hb.netlink.linkSetUp('lo');
      ha.netlink.linkAdd({ kind: 'veth', name: 'eth0', up: true, peer: { name: 'eth0', namespace: { fd: hb.fd }, up: true } });
      ha.netlink.addrAdd({ dev: 'eth0', address: '192.168.77.1/24' });
      hb.netlink.addrAdd({ dev: 'eth0', address: '192.168.77.2/24' });
    } finally {
      ha.close();
      hb.close();
    }
    tuneClient(a);
    procs.push(await startServer(b));

    // netns-router: isolated network with source NAT and a port forward to a guest VM's server
    const host = makeHost('dp');
    hosts.push(host);
    const stateDir = join(work, 'state');
    const engine = new RouterEngine({ stateDir, hostNetns: host.hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    const net = { networkId: '8001', namespace: 'cs-net-8001' };
    await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni: 8001 }, gateway: '10.8.0.1', cidr: cidrOf('10.8.0.0/24'), guestType: 'isolated' });
    await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.10', segment: { kind: 'untagged' }, gateway: PUBLIC_GW, cidr: cidrOf('203.0.113.0/24'), sourceNat: true } });
    await runCommand(engine, { command: 'add-port-forward', ...net, publicIp: { ip: '203.0.113.10', sourceNat: true }, publicPorts: { start: 8080, end: 8080 }, privateIp: '10.8.0.10', privatePorts: { start: SERVER_PORT, end: SERVER_PORT }, protocol: 'tcp' });
    // the request/response port of the tool is PORT+1: forward it too
    await runCommand(engine, { command: 'add-port-forward', ...net, publicIp: { ip: '203.0.113.10', sourceNat: true }, publicPorts: { start: 8081, end: 8081 }, privateIp: '10.8.0.10', privatePorts: { start: SERVER_PORT + 1, end: SERVER_PORT + 1 }, protocol: 'tcp' });
    // an isolated network's public IP is closed until a firewall rule opens it (as CloudStack configures it)
    await runCommand(engine, { command: 'apply-fw-rules', ...net, fwRules: { source: 'bench', value: { default_egress_allow: true, rules: [
      { id: 1, type: 'ingress', protocol: 'tcp', portStart: 8080, portEnd: 8081, publicIp: '203.0.113.10', sourceCidrs: ['0.0.0.0/0'] },
    ] } } });
    const vm = 'dp-vm';
    addVm(host, vm, 'brvx-8001', '10.8.0.10/24', '10.8.0.1');
    made.push(vm);
    tuneClient(vm);
    tuneClient(host.upNs);
    procs.push(await startServer(host.upNs));
    procs.push(await startServer(vm));
    await sleep(200);

    opts.log(`datapath: direct veth (${runs}× ${seconds} s stream + connection rate)`);
    results.push(await measurePath('direct veth', a, '192.168.77.2', SERVER_PORT, seconds, runs, ['stream', 'conn']));
    opts.log('datapath: through the router, source NAT (guest → upstream)');
    results.push(await measurePath('router: source NAT (guest → upstream)', vm, PUBLIC_GW, SERVER_PORT, seconds, runs, ['stream', 'conn']));
    opts.log('datapath: through the router, port forward (upstream → guest)');
    results.push(await measurePath('router: port forward (upstream → guest)', host.upNs, '203.0.113.10', 8080, seconds, runs, ['stream', 'conn']));

    // loaded routers: N other forwards before ours
    opts.log(`datapath: connection rate through a port forward with ${fmtInt(loadedN)} others loaded (netns-router)`);
    await engine.change(net.namespace, engine.initFor(net), (m) => {
      const own = m.portForwards;
      m.portForwards = [...Array.from({ length: loadedN }, (_, i) => pfOther(i, '203.0.113.10')), ...own];
    });
    results.push(await measurePath(`router: port forward, ${fmtInt(loadedN)} forwards loaded (netns-router, nft maps)`, host.upNs, '203.0.113.10', 8080, seconds, runs, ['conn']));

    // the spawn baseline's router: same topology in its own host, its iptables chains loaded with N DNATs
    opts.log(`datapath: the same through the spawn baseline's iptables router (${fmtInt(loadedN)} DNAT rules before ours)`);
    const bhost = makeHost('dpb');
    hosts.push(bhost);
    const bstate = join(work, 'bstate');
    mkdirSync(bstate, { recursive: true });
    const bnet = { network_id: '8501', vlan: 'vxlan://8501', gateway: '10.8.0.1', cidr: '10.8.0.0/24', guest_type: 'isolated' };
    let seq = 0;
    const bcmd = async (command: string, payload: Record<string, string>) => {
      const f = join(work, `b${++seq}.json`);
      writeFileSync(f, JSON.stringify({ 'physical-network-extension-details': { 'guest.network.device': 'eth1', 'public.network.device': 'eth1' }, payload: { ...bnet, ...payload } }));
      await spawner.must([spawnBaselinePath(), command, f, '60'], { netns: bhost.hostNs, env: { SPAWN_ROUTER_STATE_DIR: bstate } });
    };
    await bcmd('implement-network', {});
    await bcmd('assign-ip', { public_ip: '203.0.113.10', public_vlan: 'untagged', public_gateway: PUBLIC_GW, public_cidr: '203.0.113.0/24', source_nat: 'true' });
    const rules = Array.from({ length: loadedN }, (_, i) => {
      const p = pfOther(i, '203.0.113.10');
      return `-A CS_EXTNET_8501_PR -d 203.0.113.10/32 -p tcp -m tcp --dport ${p.publicPorts[0]} -j DNAT --to-destination ${p.privateIp}:80`;
    });
    const file = join(work, 'loaded.ipt');
    writeFileSync(file, ['*nat', ...rules, 'COMMIT', ''].join('\n'));
    await spawner.must(['ip', 'netns', 'exec', 'cs-net-8501', 'iptables-restore', '--noflush', file], { timeoutMs: 300_000 });
    for (const [pub, priv] of [['8080', String(SERVER_PORT)], ['8081', String(SERVER_PORT + 1)]]) {
      await bcmd('add-port-forward', { public_ip: '203.0.113.10', public_port: pub, private_ip: '10.8.0.10', private_port: priv, protocol: 'tcp' });
    }
    const bvm = 'dp-bvm';
    addVm(bhost, bvm, 'brvx-8501', '10.8.0.10/24', '10.8.0.1');
    made.push(bvm);
    tuneClient(bhost.upNs);
    procs.push(await startServer(bvm));
    await sleep(200);
    results.push(await measurePath(`router: port forward, ${fmtInt(loadedN)} forwards loaded (spawn baseline, iptables)`, bhost.upNs, '203.0.113.10', 8080, seconds, runs, ['conn']));
    deleteNamespaces((x) => x === 'cs-net-8501');
    rmSync('/etc/netns/cs-net-8501', { recursive: true, force: true });
    try {
      await runCommand(engine, { command: 'destroy-network', ...net });
    } catch { /* the host goes below */ }
  } catch (e) {
    sec.error = (e as Error).stack ?? String(e);
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    await spawner.close();
    for (const n of made) if (netnsExists(n)) deleteNetns(n, { ifExists: true });
    deleteNamespaces((x) => x === 'cs-net-8001' || x === 'cs-net-8501');
    for (const h of hosts) removeHost(h);
    rmSync(work, { recursive: true, force: true });
  }

  const direct = results[0];
  const dbps = direct?.bps?.length ? median(direct.bps) : undefined;
  const drate = direct?.rate?.length ? median(direct.rate) : undefined;
  const table: Table = {
    title: `Data path (${runs}× ${seconds} s per figure; median)`,
    headers: ['path', 'throughput', 'vs direct', 'connections/s', 'vs direct', 'conn errors'],
    rows: results.map((r) => {
      const bps = r.bps?.length ? median(r.bps) : undefined;
      const rate = r.rate?.length ? median(r.rate) : undefined;
      return [r.path, r.error ? 'FAILED' : fmtBps(bps), bps && dbps ? fmtRatio(bps / dbps) : '—', r.error ? 'FAILED' : rate === undefined ? '—' : fmtInt(rate), rate && drate ? fmtRatio(rate / drate) : '—', fmtInt(r.errors)];
    }),
    notes: [
      `tool: bench/lib/tcp-tool.js (Node) — one TCP stream for throughput (server-side received bytes / receive time); connection rate = short connections, 1 byte each way, ${CONCURRENCY} in flight.`,
      'router paths cross 3 veth pairs, 2 bridges and the router namespace (conntrack + NAT); direct = 1 veth pair. Client and server share the 2 cores with the kernel work.',
      'loaded rows: the forwarded port is the last of N; nft map lookups are O(1), an iptables nat chain is walked rule by rule for each new connection.',
    ],
  };
  sec.tables.push(table);
  for (const r of results) if (r.error) sec.partial.push(`${r.path}: ${r.error}`);
  sec.data = { seconds, runs, concurrency: CONCURRENCY, loadedN, results };
  sec.elapsedMs = now() - t0;
  return sec;
}
