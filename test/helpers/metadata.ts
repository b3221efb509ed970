/** Helpers of the metadata/password service tests: guest HTTP requests with curl, hand-made routers. */
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterEngine } from '../../lib/router/engine.js';
import { runCommand } from '../../lib/router/command-table.js';
import type { RouterModule } from '../../lib/router/router-module.js';
import { addVm, cidr, guestTry, nsTry, simulatedHost, uid, type Scratch } from './topo.js';
import { listenFile, vmDir } from '../../lib/services/metadata/layout.js';

export interface HttpAnswer {
  status: number;
  body: string;
}

export interface RequestOptions {
  /** Source address (curl --interface): a guest using an address it added. */
  from?: string;
  /** HTTP method (HEAD: curl -I). Default GET. */
  method?: string;
  /** Raw header lines, sent as written and in order (curl -H), after `headers`. */
  rawHeaders?: string[];
}

/**
 * Request `url` from inside namespace `ns` with curl (path sent as written). status 0 = no answer (a GET or HEAD is asked
 * again only while the kernel's neighbour table overflowed: guestTry).
 */
export function guestGet(ns: string, url: string, headers: Record<string, string> = {}, opts: RequestOptions = {}): HttpAnswer {
  const h = [...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), ...(opts.rawHeaders ?? [])].flatMap((x) => ['-H', x]);
  const method = opts.method === 'HEAD' ? ['-I'] : opts.method ? ['-X', opts.method] : [];
  const from = opts.from ? ['--interface', opts.from] : [];
  // a request that changes something (POST …) is never sent twice
  const run = !opts.method || opts.method === 'GET' || opts.method === 'HEAD' ? guestTry : nsTry;
  const r = run(ns, ['curl', '-s', '-m', '5', '--path-as-is', '-w', '\n%{http_code}', ...method, ...from, ...h, url], 10_000);
  const i = r.stdout.lastIndexOf('\n');
  const status = Number(r.stdout.slice(i + 1)) || 0;
  return { status, body: i >= 0 ? r.stdout.slice(0, i) : '' };
}

/** The password protocol as the guest scripts speak it. */
export const passwordRequest = (ns: string, ip: string, kind: 'send_my_password' | 'saved_password' | string, opts: RequestOptions = {}) =>
  guestGet(ns, `http://${ip}:8080/`, { DomU_Request: kind }, opts);

/** A router namespace and a guest namespace joined by a veth: router `routerIp`/24, guest `guestIp`/24. */
export function routerAndGuest(s: Scratch, routerIp: string, guestIp: string, router?: string): { router: string; guest: string } {
  const r = router ?? s.ns('rt');
  const g = s.ns('gs');
  const rh = s.handle(r);
  rh.netlink.linkSetUp('lo');
  const name = `m${uid(6)}`;
  rh.netlink.linkAdd({ kind: 'veth', name, up: true, peer: { name: 'eth0', namespace: { netns: g }, up: true } });
  rh.netlink.addrAdd({ dev: name, address: `${routerIp}/24` });
  const gh = s.handle(g);
  gh.netlink.linkSetUp('lo');
  gh.netlink.addrAdd({ dev: 'eth0', address: `${guestIp}/24` });
  return { router: r, guest: g };
}

/** Write a router's listen.json and one VM's served files by hand (what the router module materialises). */
export function writeVmFiles(stateDir: string, ns: string, addresses: string[], ip: string, files: Record<string, string>): void {
  mkdirSync(join(stateDir, 'vmdata', ns), { recursive: true, mode: 0o700 });
  writeFileSync(listenFile(stateDir, ns), JSON.stringify({ namespace: ns, addresses }));
  const dir = vmDir(stateDir, ns, ip);
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, rel), content, { mode: 0o600 });
  }
}

/** Sockets a process holds open (from /proc). */
export function socketCount(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch { /* closed meanwhile */ }
  }
  return n;
}

/**
 * An isolated network on a simulated host for the metadata tests (an engine of its own state directory): the /24
 * `subnet` ("10.7.1") with the router at .1, one VM per MAC at .10, .11, … on the network's VXLAN bridge.
 * `vniBase`: VNIs are vniBase + id % 1000 (tests running in parallel differ in it); `modules`: the engine's.
 */
export async function metadataNetwork(s: Scratch, subnet: string, macs: string[], opts: { vniBase?: number; modules?: RouterModule[] } = {}) {
  const id = String(3000 + Math.floor(Math.random() * 900));
  const ns = s.track(`cs-net-${id}`);
  const { hostNs, h } = simulatedHost(s);
  const stateDir = mkdtempSync(join(tmpdir(), 'nr-md-'));
  const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' }, ...(opts.modules ? { modules: opts.modules } : {}) });
  const net = { networkId: id, namespace: ns };
  const vni = (opts.vniBase ?? 6000) + Number(id) % 1000;
  const bridge = `brvx-${vni}`;
  const router = `${subnet}.1`;
  const t = { id, ns, hostNs, h, stateDir, engine, net, vni, bridge, router, vms: [] as Array<{ ns: string; hostEnd: string; ip: string; mac: string }> };
  await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni }, gateway: router, cidr: cidr(`${subnet}.0/24`) });
  macs.forEach((mac, i) => {
    const ip = `${subnet}.${10 + i}`;
    t.vms.push({ ...addVm(s, h, bridge, `${ip}/24`, router, mac), ip, mac });
  });
  return t;
}

/** A node script run in a guest: raw bytes to ip:port, prints what came back (base64) when the peer closes or after ms. */
const RAW_CLIENT = `
const net = require('node:net');
const [ip, port, b64, ms] = process.argv.slice(1);
const chunks = [];
const c = net.connect(Number(port), ip, () => c.write(Buffer.from(b64, 'base64')));
const done = () => { process.stdout.write(Buffer.concat(chunks).toString('base64')); process.exit(0); };
c.on('data', (d) => chunks.push(d));
c.on('close', done);
c.on('error', done);
setTimeout(() => { c.destroy(); done(); }, Number(ms));
`;

/** Send raw bytes from guest `ns` to ip:port over TCP; what the server answered before closing (or within `ms`). */
export function rawHttp(ns: string, ip: string, port: number, payload: Buffer | string, ms = 3000): string {
  const b = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const r = nsTry(ns, [process.execPath, '-e', RAW_CLIENT, ip, String(port), b.toString('base64'), String(ms)], ms + 10_000);
  return Buffer.from(r.stdout, 'base64').toString('latin1');
}

/**
 * A slow client in guest `ns` (slowloris): keeps `count` connections to each of `targets` ("ip:port") open, each
 * sending a header line now and then and never finishing its request; a connection the server closes is opened
 * again. Prints the number of connections it has made so far, one line per second. Kill it by pid.
 */
export const SLOW_CLIENT = `
const net = require('node:net');
const [count, ...targets] = process.argv.slice(1);
let made = 0;
function open(ip, port) {
  const c = net.connect(Number(port), ip, () => { made++; c.write('GET /latest/user-data HTTP/1.1\\r\\nHost: x\\r\\n'); });
  const t = setInterval(() => c.write('X-a: b\\r\\n'), 1000);
  c.on('error', () => {});
  c.on('close', () => { clearInterval(t); setTimeout(() => open(ip, port), 50); });
}
for (const tg of targets) { const [ip, port] = tg.split(':'); for (let i = 0; i < Number(count); i++) open(ip, port); }
setInterval(() => process.stdout.write(made + '\\n'), 1000);
`;
