/**
 * Metadata + password service benchmark (not a test). Run inside the sandbox:
 *   node scripts/in-sandbox.mjs node dist/bench/metadata.js [--quick] [--load-only]
 * or through bench/run.ts, which calls the exported `bench()`.
 *
 * 1. Time per command, through the library (engine.change: load, mutate, plumbing + nft + modules, save),
 *    on a router that already serves: save-vm-data, save-userdata, save-password, save-sshkey,
 *    save-hypervisor-hostname, prepare-nic, release-nic, restore-network (20 VMs); and one spawned CLI
 *    run of save-vm-data (what CloudStack pays per call, Node start-up included).
 * 2. Scale: N isolated networks (untagged segment, one router namespace each) with one VM's data each
 *    (typical generateVmData rows, 4 KB of user data, a pending password): metadata daemon processes and
 *    their RSS, kernel memory (SUnreclaim Δ), then a simulated reboot (daemon SIGKILLed, every router
 *    namespace deleted) and RouterEngine.restoreAll() from a fresh engine — total, and the part spent in
 *    the metadata module. Guests on the first and last network fetch their data before and after.
 *    N = 100 and 300 (--quick: 30).
 * 3. Request latency: sequential keep-alive GETs of /latest/user-data from a guest (Node http client run
 *    inside the guest namespace).
 * 4. Load: 500 and 1,000 VMs across 100 routers (--quick: 100 across 10), one daemon; a client namespace on
 *    the routers' shared segment holds every VM's address (and MAC) and sends concurrent keep-alive requests
 *    round-robin from all of them, each kind for a fixed time: requests/s and p50/p99 latency for the
 *    daemon's static answer (GET /: no VM lookup, no file — the baseline, same process and sockets), the
 *    CloudStack user data, the OpenStack meta_data.json, network_data.json through 169.254.169.254 (DNAT)
 *    and an EC2 tree entry.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { timedModules } from './lib/timed-modules.js';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { spawnSync } from 'node:child_process';
import { RouterEngine } from '../lib/router/engine.js';
import type * as T from '../lib/router/contract/types.js';
import { addNetns, deleteNetns, netnsExists } from '../lib/netns/namespaces.js';
import { NetnsHandle } from '../lib/netns/handle.js';
import * as vd from '../lib/router/vmdata/index.js';
import { daemonPid, daemonStatus, stopDaemon } from '../lib/services/metadata/index.js';
import { runCommand } from '../lib/router/command-table.js';
import { defaultModules } from '../lib/router/default-modules.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLI = join(HERE, '..', 'cli', 'main.js');

const now = () => performance.now();
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : NaN; };
const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`;
const kb = (b: number) => `${(b / 1024).toFixed(1)} KB`;

function sunreclaim(): number {
  const m = /SUnreclaim:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function vmRss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function daemonProcesses(stateDir: string): number {
  return spawnSync('pgrep', ['-f', `netns-router-metadata.*${stateDir}`], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).length;
}

const USERDATA = `#cloud-config\n${'# padding line of a typical cloud-config file ........................\n'.repeat(56)}`;
const rows = (k: number, ip: string, password?: string) => [
  { dir: 'userdata', file: 'user-data', content: USERDATA },
  { dir: 'metadata', file: 'service-offering', content: 'Small Instance' },
  { dir: 'metadata', file: 'availability-zone', content: 'zone-1' },
  { dir: 'metadata', file: 'local-ipv4', content: ip },
  { dir: 'metadata', file: 'local-hostname', content: `vm-${k}` },
  { dir: 'metadata', file: 'public-ipv4', content: '198.51.100.10' },
  { dir: 'metadata', file: 'public-hostname', content: '198.51.100.10' },
  { dir: 'metadata', file: 'instance-id', content: `i-2-${k}-VM` },
  { dir: 'metadata', file: 'vm-id', content: `00000000-0000-4000-8000-${String(k).padStart(12, '0')}` },
  { dir: 'metadata', file: 'public-keys', content: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchKeyBenchKeyBenchKeyBenchKeyBench bench@host' },
  { dir: 'metadata', file: 'cloud-identifier', content: 'CloudStack-{bench}' },
  { dir: 'metadata', file: 'hypervisor-host-name', content: 'kvm-1' },
  ...(password ? [{ dir: 'password', file: 'vm_password', content: password }] : []),
];

/** Network k: id, namespace, /24 (10.100.0.0/14 …), gateway .1, VM .10. */
function net(k: number, base: number) {
  const o2 = 100 + (k >> 8);
  const o3 = k & 255;
  return { id: String(base + k), ns: `cs-net-${base + k}`, gateway: `10.${o2}.${o3}.1`, cidr: `10.${o2}.${o3}.0/24`, vm: `10.${o2}.${o3}.10` };
}
const cidr = (s: string) => { const [address, p] = s.split('/'); return { family: 4 as const, address, prefix: Number(p) }; };

interface Host { hostNs: string; upNs: string }

function makeHost(tag: string): Host {
  const hostNs = `mb-h-${tag}`;
  const upNs = `mb-u-${tag}`;
  addNetns(hostNs);
  addNetns(upNs);
  const h = NetnsHandle.open(hostNs);
  const u = NetnsHandle.open(upNs);
  try {
    h.netlink.linkSetUp('lo');
    h.netlink.linkAdd({ kind: 'veth', name: 'eth1', up: true, peer: { name: 'up0', namespace: { fd: u.fd }, up: true } });
    u.netlink.linkSetUp('lo');
  } finally {
    h.close();
    u.close();
  }
  return { hostNs, upNs };
}

/** A guest namespace on the host's untagged guest bridge. */
function addGuest(host: Host, name: string, ip: string, gateway: string, mac?: string): string {
  addNetns(name);
  const h = NetnsHandle.open(host.hostNs);
  const g = NetnsHandle.open(name);
  try {
    h.netlink.linkAdd({ kind: 'veth', name: `g-${name.slice(-8)}`, master: 'breth1-u', up: true, peer: { name: 'eth0', namespace: { fd: g.fd }, up: true, ...(mac ? { mac } : {}) } });
    g.netlink.linkSetUp('lo');
    g.netlink.addrAdd({ dev: 'eth0', address: `${ip}/24` });
    g.netlink.routeReplace({ dst: 'default', via: gateway });
  } finally {
    h.close();
    g.close();
  }
  return name;
}

function guestFetch(ns: string, url: string): string {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'curl', '-s', '-m', '3', url], { encoding: 'utf8', timeout: 10_000 });
  return r.stdout ?? '';
}

/** Sequential keep-alive GETs from inside the guest namespace (Node http client): ms per request. */
function requestLatency(ns: string, url: string, n: number): number {
  const script = `const http=require('http');const a=new http.Agent({keepAlive:true,maxSockets:1});let i=0;const t=process.hrtime.bigint();
(function go(){http.get(${JSON.stringify(url)},{agent:a},(r)=>{if(r.statusCode!==200){console.error('HTTP '+r.statusCode);process.exit(1);}r.resume();r.on('end',()=>{if(++i<${n})go();else{console.log(Number(process.hrtime.bigint()-t)/1e6/${n});a.destroy();}});}).on('error',(e)=>{console.error(e.message);process.exit(1);});})();`;
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`guest requests to ${url} failed: ${r.stderr.trim()}`);
  return Number(r.stdout.trim());
}


/**
 * The client side of the load section: `conc` concurrent keep-alive GETs, round-robin over (source, host)
 * pairs, for `durationMs`; a request without an answer after 10 s, or still open 2 s after that time, counts
 * as an error.
 */
const LOAD_CLIENT = `const http=require('http');const fs=require('fs');
const cfg=JSON.parse(fs.readFileSync(process.argv[1],'utf8'));
const agent=new http.Agent({keepAlive:true,maxSockets:1,maxFreeSockets:4096});
const lat=[];const live=new Set();let next=0,errors=0,bad=0;
const t0=process.hrtime.bigint();const end=Date.now()+cfg.durationMs;
const cut=cfg.n?null:setTimeout(()=>{for(const r of live)r.destroy(new Error('cut'));},cfg.durationMs+2000);
function one(){if(Date.now()>=end||(cfg.n&&next>=cfg.n))return Promise.resolve();const i=next++;const t=cfg.targets[i%cfg.targets.length];const s=process.hrtime.bigint();
return new Promise((res)=>{const req=http.get({host:t.host,port:80,path:cfg.path,localAddress:t.src,agent},(r)=>{if(r.statusCode!==200)bad++;r.resume();r.on('end',()=>{live.delete(req);lat.push(Number(process.hrtime.bigint()-s)/1e6);res();});});
live.add(req);req.setTimeout(10000,()=>req.destroy(new Error('timeout')));req.on('error',()=>{live.delete(req);errors++;res();});}).then(one);}
Promise.all(Array.from({length:cfg.conc},one)).then(()=>{if(cut)clearTimeout(cut);const ms=Number(process.hrtime.bigint()-t0)/1e6;
const v=lat.sort((a,b)=>a-b);const q=(p)=>v[Math.min(v.length-1,Math.floor(p*v.length))];
console.log(JSON.stringify({ms,n:v.length,rps:v.length/ms*1000,p50:q(0.5),p99:q(0.99),max:v[v.length-1],errors,bad}));agent.destroy();});`;

interface LoadRun { ms: number; n: number; rps: number; p50: number; p99: number; max: number; errors: number; bad: number }

/**
 * Section 4: 100 routers (--quick: 10), with 5 and then 10 VMs each (--quick: 10), served by one daemon; a
 * client namespace on the routers' shared segment holds every VM's address (and MAC) and runs each request
 * kind for a fixed time.
 */
async function loadSection(opts: { quick: boolean; log: (m: string) => void }, lines: string[], data: Record<string, unknown>, partial: string[]): Promise<void> {
  const routers = opts.quick ? 10 : 100;
  const steps = opts.quick ? [10] : [5, 10];
  const durationMs = opts.quick ? 2000 : 5000;
  const conc = 16;
  const tag = Math.random().toString(36).slice(2, 6);
  const stateDir = mkdtempSync(join(tmpdir(), 'md-load-'));
  const host = makeHost(tag);
  const base = 60_000 + Math.floor(Math.random() * 5_000);
  const client = `mb-lc-${tag}`;
  const clientMac = '02:00:00:00:aa:01';
  let made = 0;
  // the metadata layer alone: one client holds every VM's address under one MAC, which the guest-segment filter
  // (lib/router/vmfilter) rightly drops as spoofing; its cost is bench/vmfilter.ts's
  const modules = defaultModules().filter((mod) => mod.name !== 'vmfilter');
  const engine = new RouterEngine({ stateDir, hostNetns: host.hostNs, devices: { guest: 'eth1', public: 'eth1' }, modules });
  const out: Array<Record<string, unknown>> = [];
  try {
    const tSetup = now();
    for (; made < routers; made++) {
      const n = net(made, base);
      await runCommand(engine, { command: 'implement-network', networkId: n.id, namespace: n.ns, segment: { kind: 'untagged' }, gateway: n.gateway, cidr: cidr(n.cidr) });
    }
    // the client: one namespace on the shared segment that will hold every VM's address; 169.254.169.254 is
    // routed per source subnet to that subnet's router (policy rules), as each VM's default route would
    addNetns(client);
    const hh = NetnsHandle.open(host.hostNs);
    const c = NetnsHandle.open(client);
    try {
      hh.netlink.linkAdd({ kind: 'veth', name: `g-lc-${tag}`, master: 'breth1-u', up: true, peer: { name: 'eth0', namespace: { fd: c.fd }, up: true, mac: clientMac } });
      c.netlink.linkSetUp('lo');
      for (let k = 0; k < routers; k++) c.netlink.ruleAdd({ from: net(k, base).cidr, table: 1000 + k, priority: 1000 + k });
    } finally {
      hh.close();
      c.close();
    }
    const setupMs = now() - tSetup;
    const cfgFile = join(stateDir, 'load.json');
    const targets: Array<{ src: string; gw: string }> = [];
    const clientAddrs = new Set<string>();
    const run = (path: string, wellKnown: boolean, n?: number): LoadRun => {
      writeFileSync(cfgFile, JSON.stringify({ durationMs: n ? 600_000 : durationMs, ...(n ? { n } : {}), conc, path, targets: targets.map((t) => ({ src: t.src, host: wellKnown ? '169.254.169.254' : t.gw })) }));
      const r = spawnSync('ip', ['netns', 'exec', client, process.execPath, '-e', LOAD_CLIENT, cfgFile], { encoding: 'utf8', timeout: 900_000 });
      if (r.status !== 0) throw new Error(`load client failed (${r.status ?? r.signal ?? r.error?.message}): ${r.stderr.trim()}`);
      const res = JSON.parse(r.stdout.trim()) as LoadRun;
      // no answer at all is a broken set-up, not a figure
      if (!res.n) throw new Error(`load client got no answer to ${path} (${res.errors} errors, ${res.bad} non-200)`);
      return res;
    };
    const scenarios: Array<[string, string, boolean]> = [
      ['GET / (baseline: static answer, no VM lookup)', '/', false],
      ['GET /latest/user-data (CloudStack, 4 KB)', '/latest/user-data', false],
      ['GET /openstack/latest/meta_data.json', '/openstack/latest/meta_data.json', false],
      ['GET network_data.json via 169.254.169.254 (DNAT)', '/openstack/latest/network_data.json', true],
      ['GET /2009-04-04/meta-data/placement/availability-zone', '/2009-04-04/meta-data/placement/availability-zone', false],
      // the baseline again: how much the machine's load moved during the rows
      ['GET / (baseline, again)', '/', false],
    ];
    let restoreMs = 0;
    for (const perRouter of steps) {
      const vms = routers * perRouter;
      opts.log(`metadata: load, ${vms} VMs on ${routers} routers`);
      const tR = now();
      targets.length = 0;
      const ch = NetnsHandle.open(client);
      try {
        for (let k = 0; k < routers; k++) {
          const n = net(k, base);
          const prefix = n.gateway.slice(0, n.gateway.lastIndexOf('.'));
          const list = Array.from({ length: perRouter }, (_, i) => {
            const ip = `${prefix}.${10 + i}`;
            targets.push({ src: ip, gw: n.gateway });
            if (!clientAddrs.has(ip)) ch.netlink.addrAdd({ dev: 'eth0', address: `${ip}/24` });
            clientAddrs.add(ip);
            // every VM's address is the client's, so every one is recorded with the client's MAC
            return { ip, mac: clientMac, hostname: `vm-${k}-${i}`, default_nic: true, vm_data: rows(k * 100 + i, ip) };
          });
          ch.netlink.routeReplace({ dst: '169.254.169.254/32', via: n.gateway, table: 1000 + k });
          await runCommand(engine, { command: 'restore-network', networkId: n.id, namespace: n.ns, restoreData: { value: { dhcp_enabled: false, dns_enabled: false, userdata_enabled: true, vms: list }, source: 'bench' } });
        }
      } finally {
        ch.close();
      }
      restoreMs = (now() - tR) / routers;
      run('/', false, targets.length); // warm-up: every VM once (neighbour entries, connections)
      lines.push('');
      lines.push(`Load: ${vms} VMs on ${routers} routers, one daemon; each row ${fmt(durationMs)} of GETs, ${conc} concurrent, keep-alive, round-robin over the VMs (client and daemon share the machine):`);
      lines.push(`  ${'request'.padEnd(56)} ${'req/s'.padStart(7)} ${'p50'.padStart(9)} ${'p99'.padStart(10)} ${'max'.padStart(10)}  errors`);
      const results: Record<string, LoadRun> = {};
      for (const [name, path, wk] of scenarios) {
        opts.log(`metadata: load ${vms} ${path}`);
        const r = run(path, wk);
        results[name] = r;
        if (r.bad) partial.push(`load ${vms} ${path}: ${r.bad} non-200 answers`);
        lines.push(`  ${name.padEnd(56)} ${r.rps.toFixed(0).padStart(7)} ${`${r.p50.toFixed(2)} ms`.padStart(9)} ${`${r.p99.toFixed(2)} ms`.padStart(10)} ${`${r.max.toFixed(1)} ms`.padStart(10)}  ${String(r.errors).padStart(6)}`);
      }
      const st = await daemonStatus(stateDir);
      const rss = st ? vmRss(st.pid) : 0;
      const procs = daemonProcesses(stateDir);
      if (procs !== 1) partial.push(`load: ${procs} daemon processes`);
      lines.push(`  daemon: ${st?.routers.length ?? 0} routers in one process, RSS ${mb(rss)}; restore-network of ${perRouter} VMs ${fmt(restoreMs)} per router`);
      out.push({ routers, vms, durationMs, concurrency: conc, results, daemonRss: rss, daemonProcesses: procs, restoreMsPerRouter: restoreMs });
    }
    lines.push(`  (errors: requests without an answer within 10 s, or still open 2 s after the row's time. Every guest address a router talks to holds an entry in the kernel's neighbour table, which is ONE table for all namespaces of the host (limit net.ipv4.neigh.default.gc_thresh3, 1024 by default, settable in the host's own namespace only): near it, new entries are refused ("neighbor table overflow!" in the kernel log), packets dropped, and TCP retransmits show in p99/max. Setup of ${routers} routers and the client: ${fmt(setupMs)}.)`);
    data.load = out;
  } finally {
    await stopDaemon(stateDir);
    if (netnsExists(client)) deleteNetns(client, { ifExists: true });
    for (let k = 0; k < made; k++) deleteNetns(net(k, base).ns, { ifExists: true });
    for (const ns of [host.hostNs, host.upNs]) if (netnsExists(ns)) deleteNetns(ns, { ifExists: true });
    rmSync(stateDir, { recursive: true, force: true });
  }
}

export interface MetadataBenchResult {
  title: string;
  text: string;
  data: Record<string, unknown>;
  notes: string[];
  partial: string[];
}

export async function bench(opts: { quick: boolean; log?: (m: string) => void; only?: 'load' }): Promise<MetadataBenchResult> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  if (opts.only === 'load') {
    const lines: string[] = [];
    const data: Record<string, unknown> = {};
    const partial: string[] = [];
    await loadSection({ quick: opts.quick, log }, lines, data, partial);
    return { title: 'Metadata and password service (load)', text: lines.join('\n'), data, notes: [], partial };
  }
  const sizes = opts.quick ? [30] : [100, 300];
  const tag = Math.random().toString(36).slice(2, 6);
  const stateDir = mkdtempSync(join(tmpdir(), 'md-bench-'));
  const host = makeHost(tag);
  const base = 40_000 + Math.floor(Math.random() * 10_000);
  const guests: string[] = [];
  const lines: string[] = [];
  const data: Record<string, unknown> = {};
  const partial: string[] = [];
  const moduleTime = { ms: 0 };
  let made = 0;
  const mkEngine = () => new RouterEngine({ stateDir, hostNetns: host.hostNs, devices: { guest: 'eth1', public: 'eth1' }, modules: timedModules(vd.VMDATA, moduleTime) });
  vd.vmdataSettings.daemonIdleExitMs = -1;
  try {
    let engine = mkEngine();
    const implement = async (k: number) => {
      const n = net(k, base);
      await runCommand(engine, { command: 'implement-network', networkId: n.id, namespace: n.ns, segment: { kind: 'untagged' }, gateway: n.gateway, cidr: cidr(n.cidr) });
      await runCommand(engine, { command: 'save-vm-data', networkId: n.id, namespace: n.ns, ip: n.vm, vmData: { value: rows(k, n.vm, `pw-${k}`), source: 'bench' } } as T.SaveVmDataRequest);
    };

    // ── 1. time per command ─────────────────────────────────────────────────────────────────────
    log('metadata: time per command');
    const n0 = net(0, base);
    await runCommand(engine, { command: 'implement-network', networkId: n0.id, namespace: n0.ns, segment: { kind: 'untagged' }, gateway: n0.gateway, cidr: cidr(n0.cidr) });
    const tFirst = now();
    await runCommand(engine, { command: 'save-vm-data', networkId: n0.id, namespace: n0.ns, ip: n0.vm, vmData: { value: rows(0, n0.vm, 'pw-0'), source: 'bench' } } as T.SaveVmDataRequest);
    const firstSave = now() - tFirst;
    // the MAC prepare-nic records below: the services answer this guest only from it
    guests.push(addGuest(host, `mb-g0-${tag}`, n0.vm, n0.gateway, '02:00:00:00:00:0a'));
    const runs = opts.quick ? 5 : 15;
    const t = { ...{ networkId: n0.id, namespace: n0.ns } };
    const cmds: Array<[string, () => Promise<unknown>]> = [
      ['save-vm-data (13 rows, 4 KB user data)', () => runCommand(engine, { command: 'save-vm-data', ...t, ip: n0.vm, vmData: { value: rows(0, n0.vm), source: 'bench' } } as T.SaveVmDataRequest)],
      ['save-userdata', () => runCommand(engine, { command: 'save-userdata', ...t, ip: n0.vm, userdata: USERDATA })],
      ['save-password', () => runCommand(engine, { command: 'save-password', ...t, ip: n0.vm, password: 'Bench-pw-1' })],
      ['save-sshkey', () => runCommand(engine, { command: 'save-sshkey', ...t, ip: n0.vm, sshkey: 'ssh-ed25519 AAAAC3 k@h' })],
      ['save-hypervisor-hostname', () => runCommand(engine, { command: 'save-hypervisor-hostname', ...t, ip: n0.vm, hypervisorHostname: 'kvm-2' })],
      ['prepare-nic (metadata part)', () => runCommand(engine, { command: 'prepare-nic', ...t, ip: n0.vm, mac: '02:00:00:00:00:0a', defaultNic: true })],
      ['release-nic + save-vm-data', async () => {
        await runCommand(engine, { command: 'release-nic', ...t, ip: '10.100.0.20', defaultNic: true });
      }],
    ];
    // a VM to release each round
    const restoreVms = Array.from({ length: 20 }, (_, i) => ({ ip: `10.100.0.${30 + i}`, mac: `02:00:00:00:01:${(30 + i).toString(16).padStart(2, '0')}`, hostname: `r${i}`, default_nic: true, vm_data: rows(1000 + i, `10.100.0.${30 + i}`) }));
    cmds.push(['restore-network (20 VMs)', () => runCommand(engine, { command: 'restore-network', ...t, restoreData: { value: { dhcp_enabled: false, dns_enabled: false, userdata_enabled: true, vms: [{ ip: n0.vm, vm_data: [] }, ...restoreVms] }, source: 'bench' } })]);
    const perCommand: Record<string, number> = { 'save-vm-data, first (starts the daemon)': firstSave };
    for (const [name, fn] of cmds) {
      const samples: number[] = [];
      for (let i = 0; i < runs + 1; i++) {
        if (name.startsWith('release-nic')) await runCommand(engine, { command: 'save-vm-data', ...t, ip: '10.100.0.20', vmData: { value: rows(20, '10.100.0.20'), source: 'bench' } } as T.SaveVmDataRequest);
        const t0 = now();
        await fn();
        if (i > 0) samples.push(now() - t0);
      }
      perCommand[name.replace(' + save-vm-data', '')] = median(samples);
    }
    // the same through a spawned CLI (payload file), what one CloudStack call costs
    const payload = join(stateDir, 'p.json');
    writeFileSync(payload, JSON.stringify({ 'physical-network-extension-details': {}, 'network-extension-details': {}, payload: { network_id: n0.id, ip: n0.vm, vm_data: rows(0, n0.vm) } }), { mode: 0o600 });
    const cliSamples: number[] = [];
    for (let i = 0; i < (opts.quick ? 3 : 5); i++) {
      const t0 = now();
      const r = spawnSync(process.execPath, [CLI, 'save-vm-data', payload, '60', '--host-netns', host.hostNs, '--state-dir', stateDir, '--log-file', join(stateDir, 'cli.log')], { encoding: 'utf8' });
      cliSamples.push(now() - t0);
      if (r.status !== 0) partial.push(`CLI save-vm-data failed: ${r.stderr.trim()}`);
    }
    perCommand['save-vm-data via the CLI (spawned node, payload file)'] = median(cliSamples);
    data.perCommandMs = perCommand;
    lines.push('Time per command (median, library unless noted; includes the full router reconcile):');
    for (const [k, v] of Object.entries(perCommand)) lines.push(`  ${k.padEnd(58)} ${fmt(v)}`);
    const lat = requestLatency(guests[0], `http://${n0.gateway}/latest/user-data`, 300);
    data.requestLatencyMs = lat;
    lines.push(`  GET /latest/user-data from a guest, keep-alive, sequential     ${lat.toFixed(3)} ms/request`);

    // ── 2. scale: N networks, memory, processes, restore ────────────────────────────────────────
    // drop the restore-network VMs again so every network holds one VM
    await runCommand(engine, { command: 'restore-network', ...t, restoreData: { value: { userdata_enabled: true, vms: [{ ip: n0.vm, vm_data: rows(0, n0.vm, 'pw-0') }] }, source: 'bench' } });
    const scale: Array<Record<string, number>> = [];
    const kmem0 = sunreclaim();
    const rss1 = vmRss(daemonPid(stateDir)!);
    made = 1;
    lines.push('');
    lines.push('Scale (one VM with data per network; one daemon for all):');
    lines.push(`  ${'networks'.padEnd(9)} ${'daemons'.padEnd(8)} ${'daemon RSS'.padEnd(11)} ${'RSS/network'.padEnd(12)} ${'kernel Δ'.padEnd(10)} ${'implement+save'.padEnd(15)} ${'restoreAll'.padEnd(11)} metadata part`);
    for (const size of sizes) {
      log(`metadata: ${size} networks`);
      const tAdd = now();
      const addedFrom = made;
      for (; made < size; made++) await implement(made);
      const addMs = (now() - tAdd) / Math.max(1, made - addedFrom);
      const last = net(size - 1, base);
      const gLast = addGuest(host, `mb-gl${size}-${tag}`, last.vm, last.gateway);
      guests.push(gLast);
      const okBefore = guestFetch(gLast, `http://${last.gateway}/latest/meta-data/instance-id`) === `i-2-${size - 1}-VM`;
      const st = (await daemonStatus(stateDir))!;
      const pid = st.pid;
      const rssN = vmRss(pid);
      const procs = daemonProcesses(stateDir);
      const kmem = sunreclaim() - kmem0;
      // reboot: daemon killed, every router namespace deleted; state dir kept
      process.kill(pid, 'SIGKILL');
      for (let k = 0; k < made; k++) deleteNetns(net(k, base).ns, { ifExists: true });
      engine = mkEngine();
      moduleTime.ms = 0;
      const tR = now();
      const restored = await engine.restoreAll();
      const restoreMs = now() - tR;
      const okAfter = guestFetch(gLast, `http://${last.gateway}/latest/meta-data/instance-id`) === `i-2-${size - 1}-VM`
        && guestFetch(guests[0], `http://${n0.gateway}/latest/meta-data/instance-id`) === 'i-2-0-VM';
      const rssAfter = vmRss(daemonPid(stateDir)!);
      if (!okBefore || !okAfter) partial.push(`N=${size}: guest fetch ${okBefore ? '' : 'before '}${okAfter ? '' : 'after restore '}failed`);
      if (restored.length !== size) partial.push(`N=${size}: restoreAll returned ${restored.length} routers`);
      const row = { networks: size, daemons: procs, daemonRss: rssN, daemonRssAfterRestore: rssAfter, rssPerNetwork: (rssN - rss1) / Math.max(1, size - 1), kernelDelta: kmem, addMsPerNetwork: addMs, restoreMs, restoreMetadataMs: moduleTime.ms, routersServed: st.routers.length };
      scale.push(row);
      lines.push(`  ${String(size).padEnd(9)} ${String(procs).padEnd(8)} ${mb(rssN).padEnd(11)} ${(row.rssPerNetwork < 1024 ? '< 1 KB' : kb(row.rssPerNetwork)).padEnd(12)} ${mb(kmem).padEnd(10)} ${(fmt(addMs) + '/net').padEnd(15)} ${fmt(restoreMs).padEnd(11)} ${fmt(moduleTime.ms)}`);
    }
    data.scale = scale;
    data.daemonRssOneNetwork = rss1;
    lines.push('');
    lines.push(`  daemon RSS with 1 network: ${mb(rss1)}; "RSS/network" = (RSS at N − RSS at 1) / (N − 1).`);
    lines.push('  kernel Δ = SUnreclaim growth for the N routers (namespaces, veths, nft tables and sockets — not metadata alone).');
    lines.push('  restoreAll = the whole router (plumbing, nft, modules) from a fresh engine; "metadata part" = time inside the vmdata module.');
  } finally {
    await stopDaemon(stateDir);
    for (const g of guests) if (netnsExists(g)) deleteNetns(g, { ifExists: true });
    for (let k = 0; k < Math.max(made, 1); k++) deleteNetns(net(k, base).ns, { ifExists: true });
    for (const ns of [host.hostNs, host.upNs]) if (netnsExists(ns)) deleteNetns(ns, { ifExists: true });
    rmSync(stateDir, { recursive: true, force: true });
  }
  await loadSection({ quick: opts.quick, log }, lines, data, partial);
  const text = lines.join('\n');
  return { title: 'Metadata and password service', text, data, notes: [], partial };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.env.NETNS_ROUTER_SANDBOX !== '1') {
    console.error('run inside the sandbox: node scripts/in-sandbox.mjs node dist/bench/metadata.js [--quick]');
    process.exit(1);
  }
  const t0 = now();
  const r = await bench({ quick: process.argv.includes('--quick'), ...(process.argv.includes('--load-only') ? { only: 'load' as const } : {}) });
  console.log(r.text);
  if (r.partial.length) console.log(`\npartial:\n  ${r.partial.join('\n  ')}`);
  console.log(`\n(total ${fmt(now() - t0)})`);
  process.exit(r.partial.length ? 1 : 0);
}
