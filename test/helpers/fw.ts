/**
 * Firewall/ACL test helpers: real probes (TCP connect, UDP echo, ping with a chosen source address), packet
 * counters in the receiving namespace (the kernel counts what arrives, so nothing is missed), a UDP probe
 * flood run as a separate process while rules are replaced, and the two topologies the suites use.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterEngine } from '../../lib/router/engine.js';
import type { NetnsHandle } from '../../lib/netns/handle.js';
import { Scratch, addVm, cidr, nsExec, nsTry, waitFor } from './topo.js';
import { runCommand } from '../../lib/router/command-table.js';

export { cidr } from './topo.js';

/** TCP connect + one line back from a whoami/echo server; `bind` picks the source address. */
export function tcpOk(ns: string, ip: string, port: number, bind?: string): boolean {
  const r = nsTry(ns, ['socat', '-T2', '-', `TCP:${ip}:${port},connect-timeout=1${bind ? `,bind=${bind}` : ''}`], 5000);
  return r.status === 0 && r.stdout.trim() !== '';
}

/** One UDP datagram out, an answer back within a second. */
export function udpOk(ns: string, ip: string, port: number, bind?: string): boolean {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'socat', '-T1', '-t1', '-', `UDP:${ip}:${port}${bind ? `,bind=${bind}` : ''}`], { input: 'ping\n', encoding: 'utf8', timeout: 5000 });
  return r.status === 0 && r.stdout.includes('pong');
}

export function pingOk(ns: string, ip: string, bind?: string): boolean {
  return nsTry(ns, ['ping', '-c', '1', '-W', '1', ...(bind ? ['-I', bind] : []), ip]).status === 0;
}

// socat's UDP-RECVFROM,fork drops datagrams that arrive while a child runs: a plain dgram server instead
// (argv[2]: answer that many ms late, as a busy guest does)
const UDP_ECHO = `const s = require('node:dgram').createSocket('udp4'); const late = Number(process.argv[2] || 0);
s.on('message', (_m, r) => { const answer = () => s.send('pong\\n', r.port, r.address); if (late) setTimeout(answer, late); else answer(); });
s.bind(Number(process.argv[1]));`;

/** TCP server answering every connection with one line; UDP server answering "pong" (`udpLateMs` late). */
export function servers(ns: string, tcpPorts: number[], udpPorts: number[], opts: { udpLateMs?: number } = {}): ChildProcess[] {
  return [
    ...tcpPorts.map((p) => spawn('ip', ['netns', 'exec', ns, 'socat', `TCP-LISTEN:${p},fork,reuseaddr`, 'SYSTEM:echo hello'], { stdio: 'ignore' })),
    ...udpPorts.map((p) => spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', UDP_ECHO, String(p), String(opts.udpLateMs ?? 0)], { stdio: 'ignore' })),
  ];
}

export async function serversUp(ns: string, tcpPorts: number[], udpPorts: number[]): Promise<boolean> {
  return waitFor(() => tcpPorts.every((p) => tcpOk(ns, '127.0.0.1', p)) && udpPorts.every((p) => udpOk(ns, '127.0.0.1', p)), 5000);
}

/** Count arriving UDP datagrams per destination port in `ns` (an nft table of the test, not the router's). */
export function installCounters(ns: string, udpPorts: number[]): void {
  const lines = ['table inet probe {', ' chain in { type filter hook input priority -500; policy accept;'];
  for (const p of udpPorts) lines.push(`  udp dport ${p} counter comment "p${p}"`);
  lines.push(' }', '}');
  nsExec(ns, ['nft', '-f', '-'], { input: `${lines.join('\n')}\n` });
}

export function readCounters(ns: string): Record<number, number> {
  const j = JSON.parse(nsExec(ns, ['nft', '-j', 'list', 'table', 'inet', 'probe'])) as { nftables: Array<{ rule?: { comment?: string; expr: Array<{ counter?: { packets: number } }> } }> };
  const out: Record<number, number> = {};
  for (const o of j.nftables) {
    if (!o.rule?.comment) continue;
    const c = o.rule.expr.find((e) => e.counter)?.counter;
    out[Number(o.rule.comment.slice(1))] = c?.packets ?? 0;
  }
  return out;
}

const FLOOD = `
const dgram = require('node:dgram');
const [ip, ports, ms, fixed] = [process.argv[1], process.argv[2].split(',').map(Number), Number(process.argv[3]), process.argv[4] === 'fixed'];
const sent = {}; for (const p of ports) sent[p] = 0;
const end = Date.now() + ms;
let stop = false;
process.stdin.on('data', () => {}).on('end', () => { stop = true; }).resume();
let fixedSock, firstAt, lastAt;
async function one(p) {
  if (fixed) { fixedSock ??= dgram.createSocket('udp4'); await new Promise((r) => fixedSock.send('x', p, ip, r)); sent[p]++; return; }
  const s = dgram.createSocket('udp4');           // a fresh source port: every datagram is a new flow
  await new Promise((r) => s.send('x', p, ip, r)); sent[p]++;
  s.close();
}
(async () => {
  while (!stop && Date.now() < end) {
    for (const p of ports) await one(p);
    lastAt = Date.now();
    if (firstAt === undefined) { firstAt = lastAt; process.stdout.write('started\\n'); }
    await new Promise((r) => setTimeout(r, 1));
  }
  fixedSock?.close();
  process.stdout.write(JSON.stringify({ sent, firstAt, lastAt }) + '\\n');
  process.exit(0);
})();
`;

export interface FloodResult {
  /** Datagrams sent per destination port. */
  sent: Record<number, number>;
  /** When the first and the last round of datagrams went out (epoch ms): the control that the sender ran. */
  firstAt: number;
  lastAt: number;
}

export interface Flood {
  /** Resolves once the first datagrams are out. */
  started: Promise<void>;
  /** Ends the flood and tells what it sent and when. */
  stop(): Promise<FloodResult>;
}

/**
 * Send UDP datagrams from `ns` to ip:port for each port, round-robin, until `stop()` (or `maxMs`); each
 * datagram from a new source port (a new flow) unless `fixed` (one flow per port). A test checks with the
 * result's firstAt/lastAt that the sender was running over the whole stretch it judges.
 */
export function udpFlood(ns: string, ip: string, ports: number[], opts: { fixed?: boolean; maxMs?: number } = {}): Flood {
  const c = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', FLOOD, ip, ports.join(','), String(opts.maxMs ?? 60_000), opts.fixed ? 'fixed' : 'fresh'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let onStart: () => void = () => {};
  const started = new Promise<void>((r) => { onStart = r; });
  c.stdout!.on('data', (d) => { out += d; if (out.includes('started\n')) onStart(); });
  c.stderr!.on('data', (d) => { err += d; });
  const done = new Promise<FloodResult>((resolve, reject) => {
    c.on('exit', (code) => {
      onStart();
      const last = out.trim().split('\n').pop() ?? '';
      if (code === 0 && last.startsWith('{')) resolve(JSON.parse(last) as FloodResult);
      else reject(new Error(`flood exited ${code}: ${err}`));
    });
  });
  done.catch(() => {}); // surfaced by stop()
  return { started, stop: () => { c.stdin!.end(); return done; } };
}

/** A simulated host + upstream ("internet": 203.0.113.1 and 198.51.100.1 on one interface). */
export function hostAndUpstream(s: Scratch): { hostNs: string; upNs: string; h: NetnsHandle; stateDir: string; engine: RouterEngine } {
  const hostNs = s.ns('host');
  const upNs = s.ns('up');
  const h = s.handle(hostNs);
  h.netlink.linkAdd({ kind: 'veth', name: 'eth1', up: true, peer: { name: 'up0', namespace: { netns: upNs }, up: true } });
  const up = s.handle(upNs);
  up.netlink.linkSetUp('lo');
  up.netlink.addrAdd({ dev: 'up0', address: '203.0.113.1/24' });
  up.netlink.addrAdd({ dev: 'up0', address: '198.51.100.1/24' });
  const stateDir = mkdtempSync(join(tmpdir(), 'nr-fw-'));
  const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
  return { hostNs, upNs, h, stateDir, engine };
}

export const UP_A = '203.0.113.1';
export const UP_B = '198.51.100.1';

/**
 * Isolated network 10.1.1.0/24 with vm1 (.10) and vm2 (.11); public IP P (source NAT) with port forwards
 * tcp 80→vm1:8080, tcp 2200-2210→vm1 (same ports), udp 5353→vm1:5353, udp 7001, 7002, 7003→vm1; public IP P2 as
 * static NAT of vm2.
 */
export async function isolatedTopo(s: Scratch, id: string) {
  const base = hostAndUpstream(s);
  const { engine, h } = base;
  const ns = s.track(`cs-net-${id}`);
  const net = { networkId: id, namespace: ns };
  const vni = 7000 + (Number(id) % 1000);
  await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni }, gateway: '10.1.1.1', cidr: cidr('10.1.1.0/24') });
  const P = '203.0.113.10';
  const P2 = '203.0.113.11';
  const pub = (ip: string, sourceNat: boolean) => ({ ip, segment: { kind: 'untagged' as const }, gateway: UP_A, cidr: cidr('203.0.113.0/24'), sourceNat });
  await runCommand(engine, { command: 'assign-ip', ...net, publicIp: pub(P, true) });
  await runCommand(engine, { command: 'assign-ip', ...net, publicIp: pub(P2, false) });
  const bridge = `brvx-${vni}`;
  const vm1 = addVm(s, h, bridge, '10.1.1.10/24', '10.1.1.1');
  const vm2 = addVm(s, h, bridge, '10.1.1.11/24', '10.1.1.1');
  const pf = async (protocol: 'tcp' | 'udp', pub0: number, pub1: number, priv0: number, priv1: number) =>
    runCommand(engine, { command: 'add-port-forward', ...net, publicIp: { ip: P, sourceNat: true }, protocol, publicPorts: { start: pub0, end: pub1 }, privateIp: '10.1.1.10', privatePorts: { start: priv0, end: priv1 } });
  await pf('tcp', 80, 80, 8080, 8080);
  await pf('tcp', 2200, 2210, 2200, 2210);
  await pf('udp', 5353, 5353, 5353, 5353);
  // single-port forwards (hash maps): the kernel applies a new concatenated-interval (pipapo) map only after the
  // commit's generation switch, so during a replacement a new flow can miss a port-range forward for a moment
  for (const p of [7001, 7002, 7003]) await pf('udp', p, p, p, p);
  await runCommand(engine, { command: 'add-static-nat', ...net, publicIp: { ip: P2, sourceNat: false }, privateIp: '10.1.1.11' });
  return { ...base, ns, net, P, P2, vm1: vm1.ns, vm2: vm2.ns };
}

/** VPC 10.10.0.0/16 with tiers A (id 11, 10.10.1.0/24, VM a .10) and B (id 12, 10.10.2.0/24, VM b .10);
 *  source NAT 203.0.113.20, static NAT 203.0.113.21 → a. */
export async function vpcTopo(s: Scratch, vpcId: string) {
  const base = hostAndUpstream(s);
  const { engine, h } = base;
  const ns = s.track(`cs-vpc-${vpcId}`);
  const v = Number(vpcId) % 100;
  await runCommand(engine, { command: 'implement-vpc', vpcId, namespace: ns, vpcCidr: cidr('10.10.0.0/16'), publicIp: { ip: '203.0.113.20', segment: { kind: 'untagged' }, gateway: UP_A, cidr: cidr('203.0.113.0/24'), sourceNat: true } });
  const tier = async (networkId: string, vni: number, third: number) => runCommand(engine, { command: 'implement-network', networkId, vpcId, namespace: ns, segment: { kind: 'vxlan', vni }, gateway: `10.10.${third}.1`, cidr: cidr(`10.10.${third}.0/24`) });
  await tier('11', 9100 + v * 2, 1);
  await tier('12', 9101 + v * 2, 2);
  const a = addVm(s, h, `brvx-${9100 + v * 2}`, '10.10.1.10/24', '10.10.1.1');
  const b = addVm(s, h, `brvx-${9101 + v * 2}`, '10.10.2.10/24', '10.10.2.1');
  await runCommand(engine, { command: 'assign-ip', networkId: '11', vpcId, namespace: ns, publicIp: { ip: '203.0.113.21', segment: { kind: 'untagged' }, gateway: UP_A, cidr: cidr('203.0.113.0/24'), sourceNat: false } });
  await runCommand(engine, { command: 'add-static-nat', networkId: '11', vpcId, namespace: ns, publicIp: { ip: '203.0.113.21', sourceNat: false }, privateIp: '10.10.1.10' });
  return { ...base, ns, vpcId, a: a.ns, b: b.ns, A: '10.10.1.10', B: '10.10.2.10', S: '203.0.113.21' };
}

/** The router table as nft lists it (JSON text; handles included, so any change shows). */
/** The router table as `nft -j` lists it, with rule counters zeroed: a stray packet (an IPv6 router
 *  solicitation, say) may count at any time, while handles stay, so a re-created object still shows. */
export function routerTable(ns: string): string {
  return nsExec(ns, ['nft', '-j', 'list', 'table', 'inet', 'netns_router'])
    .replace(/"counter": \{"packets": \d+, "bytes": \d+\}/g, '"counter": {"packets": 0, "bytes": 0}');
}

/**
 * apply-fw-rules opening `ports` (protocol/port, or 'icmp') on public IPs, as CloudStack sends it after a port
 * forward / static NAT / LB rule created with openfirewall=true (the default on isolated networks): public IPs of
 * an isolated network are closed until a firewall rule opens them.
 */
export async function openIngress(engine: RouterEngine, net: { networkId: string; namespace: string; vpcId?: string }, open: Array<{ ip: string; protocol: 'tcp' | 'udp' | 'icmp' | 'all'; ports?: [number, number] }>): Promise<void> {
  const rules = open.map((o, i) => ({ id: 9000 + i, type: 'ingress', protocol: o.protocol, publicIp: o.ip, sourceCidrs: ['0.0.0.0/0'], ...(o.ports ? { portStart: o.ports[0], portEnd: o.ports[1] } : {}) }));
  await runCommand(engine, { command: 'apply-fw-rules', ...net, fwRules: { value: { default_egress_allow: true, rules }, source: 'test' } });
}
