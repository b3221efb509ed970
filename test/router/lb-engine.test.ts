/**
 * Load balancing end to end: a simulated KVM host (engine with hostNetns), an upstream client namespace, three
 * guest VMs answering HTTP with their own name; haproxy inside the router namespace; real traffic.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { RouterEngine } from '../../lib/router/engine.js';
import { supervisorFor } from '../../lib/router/lb/index.js';
import { deleteNetns, netnsExists } from '../../lib/netns/namespaces.js';
import { netnsPath } from '../../lib/sys/setns.js';
import { procAlive } from '../../lib/services/haproxy/index.js';
import { Scratch, addVm, simulatedHost, cidr, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { openIngress } from '../helpers/fw.js';
import { httpGet, httpNameServer, keepAliveClient, requestLoop, tally } from '../helpers/lb.js';
import { runCommand } from '../../lib/router/command-table.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

const LB_IP = '203.0.113.61';
const backends = (port = 8080, weights?: number[]) => ['10.5.1.11', '10.5.1.12', '10.5.1.13'].map((ip, i) => ({ ip, port, revoked: false, ...(weights ? { weight: weights[i] } : {}) }));
const fastCheck = { interval: 0.2, rise: 1, fall: 2 };
const rule = (id: number, port: number, over: Record<string, unknown> = {}) => ({
  id, publicIp: LB_IP, publicPort: port, algorithm: 'roundrobin', revoke: false, backends: backends(), healthcheck: fastCheck, ...over,
});

interface Ctx {
  s: Scratch; dir: string; stateDir: string; engine: RouterEngine; id: string; ns: string; hostNs: string; upNs: string;
  vms: Array<{ ns: string }>; servers: Map<string, ChildProcess>;
}
let ctx: Ctx;

const apply = (rules: unknown[]) => runCommand(ctx.engine, { command: 'apply-lb-rules', networkId: ctx.id, namespace: ctx.ns, lbRules: { value: rules, source: 'payload.lb_rules' } });
const sup = () => supervisorFor(ctx.ns, ctx.stateDir);
const url = (port: number) => `http://${LB_IP}:${port}/`;
const cli = (...a: string[]) => spawnSync(process.execPath, [CLI, 'apply-lb-rules', '--network-id', ctx.id, ...a,
  '--host-netns', ctx.hostNs, '--state-dir', ctx.stateDir, '--log-file', join(ctx.dir, 'cli.log')], { encoding: 'utf8', timeout: 30_000 });

test.before(async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-lb-'));
  const stateDir = join(dir, 'state');
  const id = String(3000 + Math.floor(Math.random() * 6000));
  const ns = s.track(`cs-net-${id}`);
  const { hostNs, upNs, h } = simulatedHost(s);
  const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
  ctx = { s, dir, stateDir, engine, id, ns, hostNs, upNs, vms: [], servers: new Map() };
  const vni = 5000 + (Number(id) % 1000);
  await runCommand(engine, { command: 'implement-network', networkId: id, namespace: ns, segment: { kind: 'vxlan', vni }, gateway: '10.5.1.1', cidr: cidr('10.5.1.0/24') });
  for (const ip of ['203.0.113.60', LB_IP]) {
    await runCommand(engine, { command: 'assign-ip', networkId: id, namespace: ns, publicIp: { ip, segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: ip.endsWith('60') } });
  }
  // the LB address of an isolated network is closed until a firewall rule opens it (what CloudStack creates
  // with openfirewall=true): open every TCP port, the LB suites test haproxy, not the firewall
  await openIngress(engine, { networkId: id, namespace: ns }, [{ ip: LB_IP, protocol: 'tcp' }]);
  for (let i = 1; i <= 3; i++) {
    const vm = addVm(s, h, `brvx-${vni}`, `10.5.1.1${i}/24`, '10.5.1.1');
    ctx.vms.push(vm);
    ctx.servers.set(`vm${i}`, await httpNameServer(vm.ns, 8080, `vm${i}`));
  }
});

test.after(async () => {
  for (const p of ctx.servers.values()) p.kill();
  await sup().stop({ purge: true }).catch(() => undefined);
  ctx.s.cleanup();
  rmSync(ctx.dir, { recursive: true, force: true });
});

test('round-robin spreads requests over all backends; haproxy runs inside the router namespace', async () => {
  await apply([rule(101, 80)]);
  const st = sup().status();
  assert.ok(st.running, JSON.stringify(st));
  assert.is(statSync(`/proc/${st.pid}/ns/net`).ino, statSync(netnsPath(ctx.ns)).ino, 'haproxy is in the router namespace');
  assert.ok(readFileSync(sup().paths.pid, 'utf8').trim() === String(st.pid), `pid file in ${sup().opts.runDir}`);
  assert.ok(sup().opts.runDir.startsWith(join(ctx.stateDir, 'run', ctx.ns)));
  const uid = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  assert.equal(st.workers, [st.pid], 'one process, no master');
  assert.ok(uid(st.pid!) !== 0, 'haproxy runs unprivileged (binds as root, then switches)');
  const t = tally(ctx.upNs, url(80), 9);
  assert.equal([...t.entries()].sort(), [['vm1', 3], ['vm2', 3], ['vm3', 3]], JSON.stringify([...t]));
});

test('a stopped backend is taken out by the health check, and comes back', async () => {
  ctx.servers.get('vm2')!.kill();
  // fall 2 × 200 ms: wait until haproxy has marked it down, then no request may go there
  await new Promise((r) => setTimeout(r, 800));
  const t = tally(ctx.upNs, url(80), 8);
  assert.equal([...t.entries()].sort(), [['vm1', 4], ['vm3', 4]], JSON.stringify([...t]));
  ctx.servers.set('vm2', await httpNameServer(ctx.vms[1].ns, 8080, 'vm2'));
  assert.ok(await waitFor(() => tally(ctx.upNs, url(80), 3).has('vm2'), 5000), 'vm2 back in rotation');
});

test('source: a client stays on one backend (round-robin on the other port does not)', async () => {
  await apply([rule(102, 81, { algorithm: 'source' })]);
  const t = tally(ctx.upNs, url(81), 10);
  assert.is(t.size, 1, JSON.stringify([...t]));
  assert.not.ok(t.has(''), 'no failure');
  assert.is(tally(ctx.upNs, url(80), 6).size, 3, 'rule 101 still round-robins');
});

test('HTTP mode with LbCookie stickiness: the cookie keeps the client on its backend; weights apply', async () => {
  await apply([rule(103, 82, { protocol: 'http', stickiness: { methodname: 'LbCookie', param: [{ name: 'cookie-name', value: 'SRVID' }] } })]);
  const jar = join(ctx.dir, 'jar');
  const first = httpGet(ctx.upNs, url(82), { cookieJar: jar });
  assert.ok(/^vm[123]$/.test(first), first);
  assert.match(readFileSync(jar, 'utf8'), 'SRVID');
  for (let i = 0; i < 6; i++) assert.is(httpGet(ctx.upNs, url(82), { cookieJar: jar }), first, 'sticky');
  assert.is(tally(ctx.upNs, url(82), 6).size, 3, 'without the cookie: round-robin');
  await apply([rule(103, 82, { protocol: 'http', backends: backends(8080, [1, 0, 0]) })]);
  const t = tally(ctx.upNs, url(82), 5);
  assert.equal([...t.entries()], [['vm1', 5]], 'weight 0 takes no new traffic');
});

test('reloads under a continuous request loop lose no request and keep an established connection', async () => {
  const ka = keepAliveClient(ctx.upNs, LB_IP, 80);
  assert.match(await ka.ask(), /^answer vm\d \d+$/);
  const workersBefore = sup().status().workers;
  const loop = requestLoop(ctx.upNs, LB_IP, 80, 4000, 4);
  const current = new Set<number>(workersBefore);
  const seen = new Set<number>(workersBefore);
  await new Promise((r) => setTimeout(r, 300));
  for (let i = 0; i < 6; i++) {
    const w = i % 2 ? [1, 2, 3] : [3, 2, 1];
    await apply([rule(101, 80, { backends: backends(8080, w) }), i % 2 ? { id: 104, revoke: true } : rule(104, 83)]);
    const st = sup().status();
    current.add(st.pid!);
    for (const x of st.workers) seen.add(x);
    await new Promise((r) => setTimeout(r, 300));
  }
  const res = await loop;
  assert.is(current.size, workersBefore.length + 6, `a new process per reload (${[...current]})`);
  assert.ok(seen.has(workersBefore[0]) && sup().status().workers.includes(workersBefore[0]), 'the process holding the established connection still runs');
  assert.is(res.fail, 0, `no failed request: ${JSON.stringify(res)}`);
  assert.ok(res.ok > 100, `requests flowed: ${JSON.stringify(res)}`);
  const again = await ka.ask();
  assert.match(again, /^answer vm\d \d+$/, `the connection opened before the reloads still works: ${again}`);
  ka.close();
  // no leak: once their connections are closed, the older processes exit; only the current one is left
  const last = sup().status().pid!;
  assert.ok(await waitFor(() => [...seen].every((p) => p === last || !procAlive(p)), 10_000), `old processes gone: ${[...seen].filter(procAlive)}`);
  assert.equal(sup().status().workers, [last]);
});

test('invalid rules exit 1 naming the rule and field; the running haproxy and the state stay as they were', async () => {
  const stateFile = join(ctx.stateDir, 'routers', `${ctx.ns}.json`);
  const before = { state: readFileSync(stateFile, 'utf8'), config: readFileSync(sup().paths.config, 'utf8'), st: sup().status() };
  const bad: Array<[unknown[], string[]]> = [
    [[rule(201, 90, { algorithm: 'fastest' })], ['rule 201', 'algorithm']],
    [[rule(202, 70000)], ['rule 202', 'publicPort']],
    [[rule(203, 90, { backends: [{ ip: '10.5.1.999', port: 8080 }] })], ['rule 203', 'backends[0].ip']],
    [[rule(204, 90, { publicIp: '203.0.113.99' })], ['rule 204', 'publicIp', 'not assigned']],
    [[rule(205, 80)], ['rule 205', '203.0.113.61:80', 'rule 101']],
    [[rule(206, 90, { protocol: 'udp' })], ['rule 206', 'protocol', 'udp']],
    [[rule(207, 90), rule(208, 91, { algorithm: 'nope' })], ['rule 208', 'algorithm']],
  ];
  for (const [doc, parts] of bad) {
    const r = cli('--lb-rules', JSON.stringify(doc));
    assert.is(r.status, 1, `exit 1 for ${parts.join(' ')}: ${r.stderr}`);
    for (const p of parts) assert.match(r.stderr, p);
  }
  assert.is(readFileSync(stateFile, 'utf8'), before.state, 'state unchanged');
  assert.is(readFileSync(sup().paths.config, 'utf8'), before.config, 'configuration unchanged');
  const st = sup().status();
  assert.is(st.pid, before.st.pid);
  assert.equal(st.workers.filter((w) => !before.st.workers.includes(w)), [], 'no reload happened (no new worker)');
  // the same command with a valid document, base64 in a file, works
  const file = join(ctx.dir, 'lb.b64');
  writeFileSync(file, Buffer.from(JSON.stringify([rule(209, 84)])).toString('base64'));
  const ok = cli('--lb-rules-file', file);
  assert.is(ok.status, 0, ok.stderr);
  assert.ok(/^vm[123]$/.test(httpGet(ctx.upNs, url(84))));
});

test('a dead haproxy is restarted by the next command and restored after a reboot', async () => {
  const killAll = () => { const st = sup().status(); for (const p of st.workers) process.kill(p, 'SIGKILL'); return st.pid!; };
  const pid1 = killAll();
  await waitFor(() => !procAlive(pid1));
  assert.is(httpGet(ctx.upNs, url(80)), '', 'down while dead');
  // any command of this router reconciles it; through the CLI, so that the haproxy started by a short-lived
  // process must outlive it without holding anything of it (the router lock above all)
  const r = cli('--lb-rules', '[]');
  assert.is(r.status, 0, r.stderr);
  assert.ok(sup().status().running);
  const t0 = Date.now();
  await apply([]);
  assert.ok(Date.now() - t0 < 5000, 'the router lock is free after the CLI exited');
  assert.ok(/^vm[123]$/.test(httpGet(ctx.upNs, url(80))), 'serving again');
  // "reboot": processes and namespace gone, state kept
  const pid2 = killAll();
  await waitFor(() => !procAlive(pid2));
  deleteNetns(ctx.ns);
  assert.equal(await ctx.engine.restoreAll(), [ctx.ns]);
  assert.ok(sup().status().running);
  assert.ok(await waitFor(() => /^vm[123]$/.test(httpGet(ctx.upNs, url(80))), 5000), 'restored');
  assert.ok(/^vm[123]$/.test(httpGet(ctx.upNs, url(84))), 'every rule restored');
});

test('revoke stops service; haproxy stops when no rule remains', async () => {
  await apply([{ id: 101, revoke: true }]);
  assert.is(httpGet(ctx.upNs, url(80)), '', 'revoked rule no longer served');
  assert.ok(/^vm[123]$/.test(httpGet(ctx.upNs, url(81))), 'others still are');
  const pid = sup().status().pid!;
  await apply([{ id: 102, revoke: true }, { id: 103, revoke: true }, { id: 104, revoke: true }, { id: 209, revoke: true }]);
  assert.not.ok(procAlive(pid), 'haproxy stopped');
  assert.not.ok(existsSync(sup().opts.runDir), 'its run directory removed');
  assert.is(httpGet(ctx.upNs, url(81)), '');
  assert.is(ctx.engine.store.load(ctx.ns)!.extra?.lb, undefined, 'no LB state left');
});

test('destroy-network stops haproxy with the router', async () => {
  await apply([rule(301, 80)]);
  const pid = sup().status().pid!;
  assert.ok(procAlive(pid));
  await runCommand(ctx.engine, { command: 'destroy-network', networkId: ctx.id, namespace: ctx.ns });
  assert.not.ok(procAlive(pid));
  assert.not.ok(netnsExists(ctx.ns));
  assert.not.ok(existsSync(sup().opts.runDir));
});

test.run();
