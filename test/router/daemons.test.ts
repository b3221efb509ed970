/**
 * Daemons that stay up and a boot that restores itself (issue #20.6), with real clients:
 *
 *  - kill -9 of dnsmasq, the metadata daemon and haproxy: with no watchdog a killed daemon stays down (the
 *    control); with the resident engine's watchdog (`netns-router serve`) a DHCP lease (udhcpc), a metadata
 *    fetch (curl) and a load-balanced request succeed again within the bound of 5 s, no command sent.
 *    The time each took is printed (a functional bound, not a performance assertion).
 *  - `netns-router restore-all` after a simulated reboot (every router namespace and every link netns-router
 *    made on the host deleted, every daemon killed, the state directory kept): guests get DHCP, source NAT,
 *    the port forward, the load balancer and metadata work again.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, type ChildProcess } from 'node:child_process';
import { deleteNetns, netnsExists } from '../../lib/netns/namespaces.js';
import { Scratch, nsExec, nsTry, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { udhcpc } from '../helpers/dhcp.js';
import {
  addDhcpAndMetadata, addLb, addLeasedVm, addNat, bareRouter, daemonsOf, killDaemons, ok, probe, probeUntil, upstreamServer, within,
  type CliRouter, type Vm,
} from '../helpers/router-cli.js';

requireSandbox();
const CJS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'netns-router.cjs');
/** The bound: a killed daemon serves again within 5 s. */
const BOUND_MS = 5000;

interface Served { proc: ChildProcess; socket: string; stderr: () => string; stop: () => Promise<void> }

async function serve(dir: string, args: string[] = []): Promise<Served> {
  const socket = join(dir, 'run', 'engine.sock');
  const proc = spawn(process.execPath, [CJS, 'serve', '--socket', socket, '--no-shim-port', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => { err += c; });
  const t0 = Date.now();
  while (!/listening on/.test(err)) {
    if (proc.exitCode !== null || Date.now() - t0 > 30_000) throw new Error(`serve did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    proc, socket, stderr: () => err,
    stop: () => new Promise((res) => {
      if (proc.exitCode !== null) return res();
      proc.once('exit', () => res());
      proc.kill('SIGTERM');
    }),
  };
}

function gone(pids: number[]): boolean {
  return pids.every((p) => { try { process.kill(p, 0); return false; } catch { return true; } });
}

test('kill -9: without a watchdog a daemon stays down; under serve\'s watchdog DHCP, metadata and the load balancer answer again within 5 s', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-daemons-'));
  chmodSync(dir, 0o755);
  let r: CliRouter | undefined;
  let vm: Vm | undefined;
  let srv: Served | undefined;
  try {
    r = bareRouter(s, dir, '4201');
    addNat(r);
    addDhcpAndMetadata(r);
    addLb(r);
    vm = await addLeasedVm(s, r);
    assert.equal(await probeUntil(r, vm, ['dhcp', 'metadata', 'lb']), { dhcp: true, metadata: true, lb: true }, 'all served before');

    // the control: nothing but a command brings a killed dnsmasq back when no watchdog runs
    const first = daemonsOf(r).dnsmasq;
    process.kill(first[0], 'SIGKILL');
    assert.ok(await waitFor(() => gone(first), 2000), 'dnsmasq killed');
    await new Promise((res) => setTimeout(res, 2500));
    assert.equal(daemonsOf(r).dnsmasq, [], 'no watchdog: dnsmasq stays down');
    assert.is(udhcpc(vm.ns, { tries: 1 }), undefined, 'no watchdog: no lease');

    // serve, told nothing but its socket: it learns the state directory from the first command it serves
    srv = await serve(dir);
    const viaServe = { env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: srv.socket } };
    ok(r.cli(['status'], viaServe), 'status through serve');
    const t1 = await within(BOUND_MS, () => daemonsOf(r!).dnsmasq.length === 1 && probe(r!, vm!, ['dhcp']).dhcp === true);
    assert.ok(t1 !== undefined, `the watchdog revived the dnsmasq killed before (${srv.stderr()})`);
    console.log(`    dnsmasq killed while no watchdog ran: lease again ${t1} ms after serve learned the state directory`);

    const cases: Array<[string, () => number[], 'dhcp' | 'metadata' | 'lb']> = [
      ['dnsmasq', () => daemonsOf(r!).dnsmasq, 'dhcp'],
      ['metadata daemon', () => daemonsOf(r!).metadata, 'metadata'],
      ['haproxy', () => daemonsOf(r!).haproxy, 'lb'],
    ];
    for (const [what, pids, service] of cases) {
      const before = pids();
      assert.ok(before.length > 0, `${what} runs`);
      for (const p of before) process.kill(p, 'SIGKILL');
      const t0 = Date.now();
      assert.ok(await waitFor(() => gone(before), 2000), `${what} killed`);
      const took = await within(BOUND_MS, () => probe(r!, vm!, [service])[service] === true);
      const total = Date.now() - t0;
      assert.ok(took !== undefined, `${what}: ${service} answers again within ${BOUND_MS} ms of kill -9, no command sent (serve: ${srv.stderr()})`);
      const after = pids();
      assert.ok(after.length > 0 && after.every((p) => !before.includes(p)), `${what}: a new process serves (${before} → ${after})`);
      console.log(`    kill -9 ${what}: ${service} answers again after ${total} ms`);
    }
    assert.match(srv.stderr(), 'watchdog: daemon revived', 'the watchdog says what it did');
    await srv.stop();
    // a restarted serve (an upgrade) watches the state directories its predecessor learned
    srv = await serve(dir);
    assert.match(srv.stderr(), new RegExp(`watchdog over [^\n]*${r.stateDir}`), 'learned state directory remembered');
    await srv.stop();
    srv = undefined;
    ok(r.cli(['destroy-network', ...r.net]));
    assert.equal(daemonsOf(r), { dnsmasq: [], haproxy: [], metadata: daemonsOf(r).metadata }, 'destroy stops the router\'s daemons');
  } finally {
    await srv?.stop();
    for (const p of vm?.procs ?? []) p.kill();
    if (r) killDaemons(r);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('restore-all after a simulated reboot brings every router back: DHCP, source NAT, port forward, load balancer, metadata', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-restore-all-'));
  chmodSync(dir, 0o755);
  let r: CliRouter | undefined;
  let vm: Vm | undefined;
  const procs: ChildProcess[] = [];
  try {
    r = bareRouter(s, dir, '4301');
    addNat(r);
    addDhcpAndMetadata(r);
    addLb(r);
    // a second router on the same host
    const other = s.track('cs-net-4302');
    ok(r.cli(['implement-network', '--network-id', '4302', '--vlan', 'vxlan://7302', '--gateway', '10.93.1.1', '--cidr', '10.93.1.0/24']));
    vm = await addLeasedVm(s, r);
    procs.push(await upstreamServer(r));
    const all = { dhcp: true, snat: true, portForward: true, metadata: true, lb: true };
    assert.equal(await probeUntil(r, vm), all, 'everything works before the reboot');

    // "reboot": daemons killed, router namespaces gone, every link netns-router made on the host gone; the
    // guest's host end stays (libvirt plugs it into the bridge again when the VM starts)
    const killed = killDaemons(r);
    assert.ok(killed.length >= 3, 'dnsmasq, haproxy, metadata daemon killed');
    await waitFor(() => gone(killed), 3000);
    deleteNetns(r.ns);
    deleteNetns(other);
    const made = nsExec(r.hostNs, ['ip', '-o', 'link', 'show']).split('\n').map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1])
      .filter((n): n is string => !!n && n !== 'lo' && n !== 'eth1' && n !== vm!.hostEnd);
    // (the router ends' peers go with their namespace, asynchronously: a failed delete is fine)
    for (const n of made) nsTry(r.hostNs, ['ip', 'link', 'del', n]);
    assert.ok(made.includes(r.bridge), `the guest bridge was deleted too (${made.join(' ')})`);
    assert.equal(probe(r, vm, ['dhcp', 'snat', 'portForward', 'metadata', 'lb']), { dhcp: false, snat: false, portForward: false, metadata: false, lb: false }, 'nothing works after the reboot');

    const res = r.cli(['restore-all', '--timeout', '120']);
    assert.is(res.status, 0, res.stderr);
    assert.equal(JSON.parse(res.stdout), { restored: [r.ns, other].sort() });
    assert.ok(netnsExists(r.ns) && netnsExists(other), 'both namespaces are back');
    nsExec(r.hostNs, ['ip', 'link', 'set', vm.hostEnd, 'master', r.bridge]);
    const d = daemonsOf(r);
    assert.ok(d.dnsmasq.length === 1 && d.haproxy.length >= 1 && d.metadata.length === 1, `daemons back: ${JSON.stringify(d)}`);
    const t = await within(BOUND_MS, () => probe(r!, vm!, ['portForward']).portForward === true);
    assert.ok(t !== undefined, 'the port forward answers');
    assert.equal(await probeUntil(r, vm), all, 'after restore-all: DHCP lease, source NAT, port forward, load balancer and metadata');

    // restore-all converges: a second run changes nothing and exits 0
    const again = r.cli(['restore-all']);
    assert.is(again.status, 0, again.stderr);
    assert.equal(daemonsOf(r).dnsmasq, d.dnsmasq, 'a second restore-all keeps the running dnsmasq');
  } finally {
    for (const p of [...procs, ...(vm?.procs ?? [])]) p.kill();
    if (r) killDaemons(r);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
