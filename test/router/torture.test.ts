/**
 * Torture, with the figures docs/daemons.md ("Robustness") quotes (printed; `node scripts/run-tests.mjs --no-vm
 * router/torture` reproduces them):
 *
 *  - crash: every command of a router's lifecycle is started through the CLI and killed (SIGKILL) at a random
 *    point, then run again: every re-run exits 0, the router then works (packets), holds one dnsmasq and one
 *    haproxy, no temp file; after the (also killed) destroy nothing is left: no namespace, no state, no daemon,
 *    no host veth.
 *  - concurrency: 30 port forwards added by 30 CLI processes at once: all exit 0, all are stored, all answer.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { netnsExists } from '../../lib/netns/namespaces.js';
import { Scratch, nsExec, tcpAsk } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { dnsmasqPids } from '../helpers/dhcp.js';
import {
  CLI, LB_IP, PF_PORT, PUB, UPSTREAM, addLeasedVm, bareRouter, openFirewall, daemonsOf, killDaemons, ok, probeUntil, upstreamServer,
  type CliRouter, type Vm,
} from '../helpers/router-cli.js';

requireSandbox();

const PUBLIC = ['--public-vlan', 'untagged', '--public-gateway', UPSTREAM, '--public-cidr', '203.0.113.0/24'];

/** Start the CLI, SIGKILL it after `ms` (if still running); resolves whether the kill landed. */
function killedAfter(r: CliRouter, args: string[], ms: number): Promise<boolean> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [CLI, ...args, '--host-netns', r.hostNs, '--state-dir', r.stateDir, '--log-file', r.logFile],
      { stdio: 'ignore', env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: 'off' } });
    let exited = false;
    p.on('exit', () => { exited = true; });
    setTimeout(() => {
      const landed = !exited;
      if (landed) p.kill('SIGKILL');
      if (exited) res(false);
      else p.once('exit', () => res(landed));
    }, ms);
  });
}

test('crash: each lifecycle command killed at a random point and run again converges; destroy leaves nothing', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-torture-'));
  chmodSync(dir, 0o755);
  let r: CliRouter | undefined;
  let vm: Vm | undefined;
  const procs: ChildProcess[] = [];
  try {
    r = bareRouter(s, dir, '4901');
    const net = r.gw.replace(/1$/, '');
    const vmData = JSON.stringify([{ dir: 'metadata', file: 'instance-id', content: 'i-2-10-VM' }]);
    const lb = JSON.stringify([{ id: 1, publicIp: LB_IP, publicPort: 80, algorithm: 'roundrobin', backends: [{ ip: r.vmIp, port: 8080 }] }]);
    const fw = Buffer.from(JSON.stringify({ default_egress_allow: true, rules: [{ id: 1, type: 'ingress', protocol: 'tcp', portStart: PF_PORT, publicIp: PUB }, { id: 2, type: 'ingress', protocol: 'tcp', portStart: 80, publicIp: LB_IP }] })).toString('base64');
    const lifecycle: string[][] = [
      ['implement-network', ...r.net, '--vlan', `vxlan://${r.vni}`, '--gateway', r.gw, '--cidr', `${net}0/24`],
      ['assign-ip', ...r.net, '--public-ip', PUB, ...PUBLIC, '--source-nat', 'true'],
      ['assign-ip', ...r.net, '--public-ip', LB_IP, ...PUBLIC],
      ['add-port-forward', ...r.net, '--public-ip', PUB, '--public-port', String(PF_PORT), '--private-ip', r.vmIp, '--private-port', '8022', '--protocol', 'tcp'],
      ['add-port-forward', ...r.net, '--public-ip', PUB, '--public-port', '3000', '--private-ip', r.vmIp, '--private-port', '8022', '--protocol', 'tcp'],
      ['config-dns-subnet', ...r.net, '--gateway', r.gw, '--cidr', `${net}0/24`],
      ['prepare-nic', ...r.net, '--mac', r.mac, '--ip', r.vmIp, '--hostname', 'vm1'],
      ['save-vm-data', ...r.net, '--ip', r.vmIp, '--vm-data', vmData],
      ['apply-lb-rules', ...r.net, '--lb-rules', lb],
      ['apply-fw-rules', ...r.net, '--fw-rules', fw],
      ['delete-port-forward', ...r.net, '--public-ip', PUB, '--public-port', '3000', '--private-ip', r.vmIp, '--private-port', '8022', '--protocol', 'tcp'],
      ['add-dns-entry', ...r.net, '--ip', r.vmIp, '--hostname', 'vm1'],
    ];
    let kills = 0;
    let runs = 0;
    for (const cmd of lifecycle) {
      // three random points per command, each followed by a complete run (the retry CloudStack would send)
      for (let i = 0; i < 3; i++) {
        if (await killedAfter(r, cmd, 80 + Math.floor(Math.random() * 700))) kills++;
        const again = r.cli(cmd);
        runs++;
        assert.is(again.status, 0, `${cmd[0]} after a kill: ${again.stderr}`);
      }
    }
    vm = await addLeasedVm(s, r);
    procs.push(await upstreamServer(r));
    assert.equal(await probeUntil(r, vm), { dhcp: true, snat: true, portForward: true, metadata: true, lb: true }, 'the router works');
    assert.is(tcpAsk(r.upNs, PUB, 3000), '', 'the deleted forward stays deleted');
    const d = daemonsOf(r);
    assert.is(d.dnsmasq.length, 1, 'one dnsmasq');
    assert.is(dnsmasqPids(r.stateDir).length, 1, 'no stray dnsmasq of this state directory');
    assert.ok(d.haproxy.length >= 1 && d.metadata.length === 1, `haproxy and metadata daemon: ${JSON.stringify(d)}`);
    assert.equal(readdirSync(join(r.stateDir, 'routers')).filter((n) => n.includes('.tmp-')), [], 'no temp state file');
    const state = JSON.parse(readFileSync(join(r.stateDir, 'routers', `${r.ns}.json`), 'utf8')) as { portForwards: unknown[] };
    assert.is(state.portForwards.length, 1, 'the stored forwards');

    // destroy, killed too
    const destroy = ['destroy-network', ...r.net];
    for (let i = 0; i < 3; i++) if (await killedAfter(r, destroy, 80 + Math.floor(Math.random() * 700))) kills++;
    ok(r.cli(destroy));
    runs++;
    assert.not.ok(netnsExists(r.ns), 'no namespace');
    assert.not.ok(existsSync(join(r.stateDir, 'routers', `${r.ns}.json`)), 'no state');
    const left = daemonsOf(r);
    assert.equal([left.dnsmasq, left.haproxy], [[], []], 'no dnsmasq, no haproxy');
    const hostLinks = nsExec(r.hostNs, ['ip', '-o', 'link', 'show']);
    assert.not.match(hostLinks, /\svh-|\svph-/, 'no router veth left on the host');
    console.log(`    crash: ${kills} kills landed mid-command over ${lifecycle.length + 1} commands; all ${runs} re-runs exited 0 and converged`);
  } finally {
    for (const p of [...procs, ...(vm?.procs ?? [])]) p.kill();
    if (r) killDaemons(r);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('concurrency: 30 port forwards added by 30 CLI processes at once are all stored and all answer', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-parallel-'));
  const procs: ChildProcess[] = [];
  try {
    const r = bareRouter(s, dir, '4902');
    ok(r.cli(['assign-ip', ...r.net, '--public-ip', PUB, ...PUBLIC, '--source-nat', 'true']));
    openFirewall(r);
    const { addVm, whoamiServer } = await import('../helpers/topo.js');
    const vm = addVm(s, r.h, r.bridge, `${r.vmIp}/24`, r.gw, r.mac);
    procs.push(whoamiServer(vm.ns, 8022), await upstreamServer(r));
    const ports = Array.from({ length: 30 }, (_, i) => 4000 + i);
    const t0 = Date.now();
    const codes = await Promise.all(ports.map((port) => new Promise<number | null>((res) => {
      const p = spawn(process.execPath, [CLI, 'add-port-forward', ...r.net, '--public-ip', PUB, '--public-port', String(port), '--private-ip', r.vmIp,
        '--private-port', '8022', '--protocol', 'tcp', '--host-netns', r.hostNs, '--state-dir', r.stateDir, '--log-file', r.logFile],
      { stdio: 'ignore', env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: 'off' } });
      p.on('exit', (c) => res(c));
    })));
    const ms = Date.now() - t0;
    assert.equal(codes, ports.map(() => 0), 'every process exits 0');
    const state = JSON.parse(readFileSync(join(r.stateDir, 'routers', `${r.ns}.json`), 'utf8')) as { portForwards: Array<{ publicPorts: number[] }> };
    assert.equal(state.portForwards.map((p) => p.publicPorts[0]).sort(), ports, 'all 30 stored');
    const answering = ports.filter((p) => tcpAsk(r.upNs, PUB, p) === UPSTREAM);
    assert.equal(answering, ports, 'all 30 answer');
    console.log(`    concurrency: 30 parallel add-port-forward processes in ${ms} ms: 30 stored, 30 answer`);
  } finally {
    for (const p of procs) p.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
