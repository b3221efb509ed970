/**
 * A whole router built through the CLI, as CloudStack drives it, on a simulated KVM host: source NAT, a port
 * forward, DHCP (a VM that leases its address from dnsmasq), metadata (prepare-nic + save-vm-data), a load
 * balancer (haproxy) — and the probes that prove each with real packets from the guest and from upstream.
 * Also the kernel/state snapshot that "changed nothing" assertions compare, and the daemon clean-up by pid.
 */
import { spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NetnsHandle } from '../../lib/netns/handle.js';
import { supervisorFor } from '../../lib/router/lb/index.js';
import { daemonPid } from '../../lib/services/metadata/index.js';
import { procAlive, sleepSync } from '../../lib/sys/proc.js';
import { Scratch, nsExec, nsTry, simulatedHost, tcpAsk, waitFor, whoamiServer } from './topo.js';
import { addGuest, dnsmasqPids, udhcpc } from './dhcp.js';
import { guestGet } from './metadata.js';
import { httpGet, httpNameServer } from './lb.js';

export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

export const UPSTREAM = '203.0.113.1';
export const PUB = '203.0.113.70';
export const LB_IP = '203.0.113.71';
export const PF_PORT = 2222;

export interface CliOptions {
  /** Environment of every CLI run (default: this process's, with the resident engine off). */
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export interface CliRouter {
  id: string;
  ns: string;
  vni: number;
  bridge: string;
  gw: string;
  vmIp: string;
  mac: string;
  stateDir: string;
  logFile: string;
  hostNs: string;
  upNs: string;
  h: NetnsHandle;
  /** Run the CLI with this router's global options (state dir, log, host namespace). */
  cli: (args: string[], opts?: CliOptions) => SpawnSyncReturns<string>;
  net: string[];
}

/** The CLI against `stateDir` with the simulated host's namespace for host-side plumbing. */
export function routerCli(stateDir: string, logFile: string, hostNs: string, base: CliOptions = {}) {
  return (args: string[], opts: CliOptions = {}): SpawnSyncReturns<string> => spawnSync(process.execPath,
    [CLI, ...args, '--host-netns', hostNs, '--state-dir', stateDir, '--log-file', logFile],
    { encoding: 'utf8', timeout: opts.timeoutMs ?? base.timeoutMs ?? 60_000, env: opts.env ?? base.env ?? { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: 'off' } });
}

/** Network `id`'s addresses: 10.<n>.1.0/24 with n derived from the id. */
function subnet(id: string): string {
  return `10.${60 + (Number(id) % 60)}.1`;
}

/** Implement network `id` on a new simulated host (nothing else). */
export function bareRouter(s: Scratch, dir: string, id: string, opts: CliOptions & { stateDir?: string } = {}): CliRouter {
  const { hostNs, upNs, h } = simulatedHost(s);
  const ns = s.track(`cs-net-${id}`);
  const vni = 6000 + (Number(id) % 3000);
  const net = subnet(id);
  const stateDir = opts.stateDir ?? join(dir, 'state');
  const logFile = join(dir, 'router.log');
  const cli = routerCli(stateDir, logFile, hostNs, opts);
  const r: CliRouter = {
    id, ns, vni, bridge: `brvx-${vni}`, gw: `${net}.1`, vmIp: `${net}.10`, mac: '02:00:5e:70:00:10', stateDir, logFile,
    hostNs, upNs, h, cli, net: ['--network-id', id],
  };
  ok(cli(['implement-network', ...r.net, '--vlan', `vxlan://${vni}`, '--gateway', r.gw, '--cidr', `${net}.0/24`]));
  return r;
}

export function ok(r: SpawnSyncReturns<string>, what = 'command'): void {
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}): ${r.stderr}`);
}

/**
 * The firewall CloudStack sends for these routers (openfirewall=true): TCP open on PUB and LB_IP (public IPs of
 * an isolated network are closed until a rule opens them; docs/firewall.md).
 */
export function openFirewall(r: CliRouter, opts: CliOptions = {}): void {
  const rules = [PUB, LB_IP].map((ip, i) => ({ id: i + 1, type: 'ingress', protocol: 'tcp', publicIp: ip, sourceCidrs: ['0.0.0.0/0'] }));
  ok(r.cli(['apply-fw-rules', ...r.net, '--fw-rules', JSON.stringify({ default_egress_allow: true, rules })], opts), 'apply-fw-rules');
}

/** Public IP with source NAT and a port forward PUB:PF_PORT → vm:8022, opened by the firewall. */
export function addNat(r: CliRouter, opts: CliOptions = {}): void {
  const pub = ['--public-vlan', 'untagged', '--public-gateway', UPSTREAM, '--public-cidr', '203.0.113.0/24'];
  ok(r.cli(['assign-ip', ...r.net, '--public-ip', PUB, ...pub, '--source-nat', 'true'], opts), 'assign-ip');
  ok(r.cli(['add-port-forward', ...r.net, '--public-ip', PUB, '--public-port', String(PF_PORT), '--private-ip', r.vmIp, '--private-port', '8022', '--protocol', 'tcp'], opts), 'add-port-forward');
  openFirewall(r, opts);
}

/** DHCP for the subnet and the VM's NIC (its reservation and metadata). */
export function addDhcpAndMetadata(r: CliRouter, opts: CliOptions = {}): void {
  const net = r.gw.replace(/\.1$/, '');
  ok(r.cli(['config-dhcp-subnet', ...r.net, '--gateway', r.gw, '--cidr', `${net}.0/24`], opts), 'config-dhcp-subnet');
  ok(r.cli(['prepare-nic', ...r.net, '--mac', r.mac, '--ip', r.vmIp, '--hostname', 'vm1'], opts), 'prepare-nic');
  const vmData = [
    { dir: 'metadata', file: 'instance-id', content: 'i-2-10-VM' },
    { dir: 'metadata', file: 'local-ipv4', content: r.vmIp },
    { dir: 'userdata', file: 'user-data', content: '#cloud-config\nhostname: vm1\n' },
  ];
  ok(r.cli(['save-vm-data', ...r.net, '--ip', r.vmIp, '--vm-data', JSON.stringify(vmData)], opts), 'save-vm-data');
}

/** A load-balancer rule LB_IP:80 → vm:8080 (haproxy). */
export function addLb(r: CliRouter, opts: CliOptions = {}): void {
  const pub = ['--public-vlan', 'untagged', '--public-gateway', UPSTREAM, '--public-cidr', '203.0.113.0/24'];
  ok(r.cli(['assign-ip', ...r.net, '--public-ip', LB_IP, ...pub], opts), 'assign-ip (LB)');
  const rules = [{ id: 1, publicIp: LB_IP, publicPort: 80, algorithm: 'roundrobin', backends: [{ ip: r.vmIp, port: 8080 }] }];
  ok(r.cli(['apply-lb-rules', ...r.net, '--lb-rules', JSON.stringify(rules)], opts), 'apply-lb-rules');
  openFirewall(r, opts);
}

export interface Vm {
  ns: string;
  hostEnd: string;
  procs: ChildProcess[];
}

/** The VM: plugged into the guest bridge with the prepared MAC, address by DHCP, servers for the forward and the LB. */
export async function addLeasedVm(s: Scratch, r: CliRouter): Promise<Vm> {
  const g = addGuest(s, r.h, r.bridge, r.mac);
  const env = udhcpc(g.ns, { configure: true });
  if (env?.ip !== r.vmIp) throw new Error(`the VM got ${env?.ip} by DHCP, expected ${r.vmIp}`);
  nsExec(g.ns, ['ip', 'route', 'replace', 'default', 'via', r.gw]);
  const procs = [whoamiServer(g.ns, 8022), await httpNameServer(g.ns, 8080, 'vm1')];
  return { ns: g.ns, hostEnd: g.hostEnd, procs };
}

/** An upstream TCP server answering with the peer's address (source NAT and port forward probes). */
export async function upstreamServer(r: CliRouter): Promise<ChildProcess> {
  const p = whoamiServer(r.upNs, 9000);
  await waitFor(() => tcpAsk(r.upNs, '127.0.0.1', 9000) !== '', 5000);
  return p;
}

export interface Probes {
  dhcp: boolean;
  snat: boolean;
  portForward: boolean;
  metadata: boolean;
  lb: boolean;
}

/** Each service, with real clients: udhcpc, TCP through SNAT and the forward, curl to the metadata server and the LB. */
export function probe(r: CliRouter, vm: Vm, which: Array<keyof Probes> = ['dhcp', 'snat', 'portForward', 'metadata', 'lb']): Partial<Probes> {
  const out: Partial<Probes> = {};
  for (const w of which) {
    if (w === 'dhcp') out.dhcp = udhcpc(vm.ns, { tries: 1 })?.ip === r.vmIp;
    if (w === 'snat') out.snat = tcpAsk(vm.ns, UPSTREAM, 9000) === PUB;
    if (w === 'portForward') out.portForward = tcpAsk(r.upNs, PUB, PF_PORT) === UPSTREAM;
    if (w === 'metadata') out.metadata = guestGet(vm.ns, `http://${r.gw}/latest/meta-data/instance-id`).body === 'i-2-10-VM';
    if (w === 'lb') out.lb = httpGet(r.upNs, `http://${LB_IP}/`) === 'vm1';
  }
  return out;
}

/** probe() until every service answers or `boundMs` passed (a first request may wait for ARP, a backend…). */
export async function probeUntil(r: CliRouter, vm: Vm, which?: Array<keyof Probes>, boundMs = 10_000): Promise<Partial<Probes>> {
  let last = probe(r, vm, which);
  const end = Date.now() + boundMs;
  while (Object.values(last).some((v) => !v) && Date.now() < end) {
    await new Promise((res) => setTimeout(res, 200));
    last = { ...last, ...probe(r, vm, (Object.keys(last) as Array<keyof Probes>).filter((k) => !last[k])) };
  }
  return last;
}

/** Poll `fn` until true or `boundMs` passed; returns the time it took (undefined: not within the bound). */
export async function within(boundMs: number, fn: () => boolean): Promise<number | undefined> {
  const t0 = Date.now();
  for (;;) {
    if (fn()) return Date.now() - t0;
    if (Date.now() - t0 > boundMs) return undefined;
    await new Promise((res) => setTimeout(res, 100));
  }
}

export interface DaemonPids {
  dnsmasq: number[];
  haproxy: number[];
  metadata: number[];
}

/** The router's daemons now: dnsmasq, haproxy's processes (the current one, older ones still finishing), the state directory's metadata daemon. */
export function daemonsOf(r: { ns: string; stateDir: string }): DaemonPids {
  const st = supervisorFor(r.ns, r.stateDir).status();
  const md = daemonPid(r.stateDir);
  return {
    dnsmasq: dnsmasqPids(r.stateDir),
    haproxy: st.running ? st.workers : [],
    metadata: md !== undefined ? [md] : [],
  };
}

/** SIGKILL every daemon of the state directory (test clean-up; a simulated crash or reboot). */
export function killDaemons(r: { ns: string; stateDir: string }): number[] {
  const d = daemonsOf(r);
  const all = [...d.dnsmasq, ...d.haproxy, ...d.metadata];
  for (const p of all) {
    try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
  }
  // gone, not only signalled: a clean-up that unmounts their state directory next finds it busy otherwise
  for (let i = 0; i < 250 && all.some(procAlive); i++) sleepSync(20);
  return all;
}

/** /proc/<pid>/environ as NAME → value. */
export function environOf(pid: number): Map<string, string> {
  const m = new Map<string, string>();
  for (const kv of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const i = kv.indexOf('=');
    if (i > 0) m.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return m;
}

/**
 * What "the router as it was" compares: the router table (counters off; the contents stamp left out, its
 * generation moves with every transaction), the namespace's links, addresses and routes, the state file.
 */
export function snapshot(r: { ns: string; stateDir: string }): Record<string, string> {
  const file = join(r.stateDir, 'routers', `${r.ns}.json`);
  const nft = nsTry(r.ns, ['nft', '-s', 'list', 'table', 'inet', 'netns_router']).stdout
    // the stamp (a fingerprint . generation) changes with every commit: the whole block goes (its elements line
    // holds braces of its own)
    .replace(/\n\tset contents_stamp \{[\s\S]*?\n\t\}\n/, '');
  const addr = nsTry(r.ns, ['ip', '-o', 'addr', 'show']).stdout.split('\n')
    .map((l) => l.replace(/\\\s+valid_lft.*$/, '').replace(/^\d+:\s+/, '').replace(/ tentative/, '')).join('\n');
  const links = nsTry(r.ns, ['ip', '-o', 'link', 'show']).stdout.split('\n').map((l) => l.replace(/^\d+:\s+(\S+).*$/, '$1')).join(' ');
  const routes = nsTry(r.ns, ['ip', 'route', 'show', 'table', 'all']).stdout + nsTry(r.ns, ['ip', '-6', 'route', 'show', 'table', 'all']).stdout;
  return { nft, addr, links, routes, state: existsSync(file) ? readFileSync(file, 'utf8') : '(none)' };
}
