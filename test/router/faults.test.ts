/**
 * Faults (issue #20.7), each on a real router built through the CLI: the state directory full (a tiny tmpfs)
 * or read-only when saving, dnsmasq/haproxy not installed (not on PATH), libnftables missing (the nft command
 * takes over, with a warning in the log), the kernel refusing an object mid-transaction (an address, a rule),
 * a hook that is not executable. Each fault is a clear message and exit 2, and the router stays as it was
 * before the command — the router table, links, addresses, routes and the state file compared before and
 * after — and the same command succeeds once the fault is gone (the positive control).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync,
  openSync, writeSync, closeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { netnsExists } from '../../lib/netns/namespaces.js';
import { RouterEngine } from '../../lib/router/engine.js';
import { defaultModules } from '../../lib/router/default-modules.js';
import { moduleState, setModuleState, type RouterModule } from '../../lib/router/router-module.js';
import { SystemError } from '../../lib/util/errors.js';
import { baseChain, rule } from '../../lib/nft/objects.js';
import { dnat, ip } from '../../lib/nft/expr.js';
import { Scratch, cidr, tcpAsk } from '../helpers/topo.js';
import { runCommand } from '../../lib/router/command-table.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { dnsmasqPids } from '../helpers/dhcp.js';
import {
  CLI, LB_IP, PF_PORT, PUB, UPSTREAM, addLeasedVm, addNat, bareRouter, killDaemons, ok, openFirewall, snapshot, upstreamServer,
  type CliRouter, type Vm,
} from '../helpers/router-cli.js';
import { rejected } from '../helpers/expect.js';

requireSandbox();

const mount = (...a: string[]) => execFileSync('mount', a, { stdio: 'pipe' });
const umount = (p: string) => spawnSync('umount', [p], { stdio: 'pipe' });
const pf = (r: CliRouter, port: number) => ['add-port-forward', ...r.net, '--public-ip', PUB, '--public-port', String(port), '--private-ip', r.vmIp, '--private-port', '8022', '--protocol', 'tcp'];
const PUBLIC = ['--public-vlan', 'untagged', '--public-gateway', UPSTREAM, '--public-cidr', '203.0.113.0/24'];

/** Fill the file system holding `dir` (a tmpfs) until a write fails with ENOSPC. */
function fill(dir: string): string {
  const file = join(dir, 'filler');
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  }
  // the last pages: smaller writes until even one byte does not fit
  for (const n of [4096, 512, 1]) {
    try { for (;;) writeSync(fd, Buffer.alloc(n, 1)); } catch { /* full at this size */ }
  }
  closeSync(fd);
  return file;
}

/** Asserts exit 2, a message matching `text`, and the router exactly as `before`. */
function refused(r: CliRouter, res: ReturnType<CliRouter['cli']>, text: RegExp, before: Record<string, string>, what: string): void {
  assert.is(res.status, 2, `${what}: exit 2 (got ${res.status}: ${res.stderr})`);
  assert.match(res.stderr, text, `${what}: the message says why (${res.stderr.trim()})`);
  assert.not.match(res.stderr, /internal error/, `${what}: not an internal error`);
  assert.is(res.stderr.trim().split('\n').length, 1, `${what}: one line`);
  const after = snapshot(r);
  for (const k of Object.keys(before)) assert.fixture(after[k], before[k], `${what}: ${k} as before`);
}

test('state directory full (ENOSPC) or read-only: exit 2 naming the cause, router and state as before; the retry succeeds once fixed', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-full-'));
  chmodSync(dir, 0o755);
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir);
  mount('-t', 'tmpfs', '-o', 'size=4m,mode=755', 'nr-state', stateDir);
  let r: CliRouter | undefined;
  let vm: Vm | undefined;
  const procs: ChildProcess[] = [];
  try {
    r = bareRouter(s, dir, '4401', { stateDir });
    addNat(r);
    ok(r.cli(['config-dhcp-subnet', ...r.net, '--gateway', r.gw, '--cidr', `${r.gw.replace(/1$/, '0')}/24`]));
    ok(r.cli(['add-dhcp-entry', ...r.net, '--mac', r.mac, '--ip', r.vmIp]));
    vm = await addLeasedVm(s, r);
    procs.push(await upstreamServer(r));
    const dns = dnsmasqPids(stateDir);
    const before = snapshot(r);

    // full: the state file cannot be written after the kernel was changed — the change is undone. (A state that
    // fits the blocks its journal and copy already hold is saved on a full disk: docs/reconcile.md, "The save";
    // 400 more firewall rules outgrow them.)
    const filler = fill(stateDir);
    const rules = [PUB, LB_IP].map((ip, i) => ({ id: i + 1, type: 'ingress', protocol: 'tcp', publicIp: ip, sourceCidrs: ['0.0.0.0/0'] }));
    const more = Array.from({ length: 400 }, (_, i) => ({ id: 100 + i, type: 'ingress', protocol: 'tcp', portStart: 3000 + i, portEnd: 3000 + i, publicIp: PUB, sourceCidrs: ['198.51.100.0/24'] }));
    refused(r, r.cli(['apply-fw-rules', ...r.net, '--fw-rules', JSON.stringify({ default_egress_allow: true, rules: [...rules, ...more] })]), /writing state file .*no space left on device/i, before, 'ENOSPC on save');
    // full: dnsmasq's files cannot be written (a module mid-reconcile)
    refused(r, r.cli(['add-dhcp-entry', ...r.net, '--mac', '02:00:5e:70:00:11', '--ip', `${r.gw.replace(/1$/, '11')}`]), /no space left on device/i, before, 'ENOSPC in dnsmasq files');
    assert.equal(dnsmasqPids(stateDir), dns, 'dnsmasq kept running untouched');
    assert.is(tcpAsk(r.upNs, PUB, PF_PORT), UPSTREAM, 'the existing forward still works');
    rmSync(filler);

    // read-only routers/ directory (lock files writable): the save fails, the change is undone
    const routers = join(stateDir, 'routers');
    mount('--bind', routers, routers);
    mount('-o', 'remount,bind,ro', routers);
    try {
      refused(r, r.cli(pf(r, 3333)), /writing state file .*read-only file system/i, before, 'read-only state file');
    } finally {
      umount(routers);
    }
    // the whole state directory read-only (a read-only bind mount over it: dnsmasq keeps its lease file open
    // through the one below): nothing can even be locked
    mount('--bind', stateDir, stateDir);
    mount('-o', 'remount,bind,ro', stateDir);
    try {
      refused(r, r.cli(pf(r, 3333)), /read-only file system/i, before, 'read-only state directory');
    } finally {
      umount(stateDir);
    }

    // positive control: the same command once the fault is gone
    ok(r.cli(pf(r, 3333)), 'add-port-forward after the fault');
    assert.is(tcpAsk(r.upNs, PUB, 3333), UPSTREAM, 'and the forward works');
  } finally {
    for (const p of [...procs, ...(vm?.procs ?? [])]) p.kill();
    if (r) killDaemons(r);
    s.cleanup();
    umount(join(stateDir, 'routers'));
    umount(stateDir);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dnsmasq or haproxy not installed (not on PATH): exit 2 naming the program and the PATH; nothing changed; fine with them', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-nobin-'));
  chmodSync(dir, 0o755);
  let r: CliRouter | undefined;
  try {
    r = bareRouter(s, dir, '4501');
    addNat(r);
    // PATH holding every tool netns-router runs, except the one under test
    const bin = (without: string): string => {
      const d = join(dir, `bin-without-${without}`);
      if (existsSync(d)) return d;
      mkdirSync(d);
      for (const t of ['ip', 'nsenter', 'nft', 'conntrack', 'dnsmasq', 'haproxy']) {
        if (t !== without) symlinkSync(execFileSync('sh', ['-c', `command -v ${t}`], { encoding: 'utf8' }).trim(), join(d, t));
      }
      return d;
    };
    const envWithout = (t: string) => ({ env: { ...process.env, PATH: bin(t), NETNS_ROUTER_ENGINE_SOCKET: 'off' } });
    const before = snapshot(r);
    const dhcp = ['config-dhcp-subnet', ...r.net, '--gateway', r.gw, '--cidr', `${r.gw.replace(/1$/, '0')}/24`];
    refused(r, r.cli(dhcp, envWithout('dnsmasq')), /dnsmasq is not installed: no executable "dnsmasq" in PATH=\/.*bin-without-dnsmasq/, before, 'no dnsmasq');
    assert.not.ok(existsSync(join(r.stateDir, 'run', r.ns, 'dnsmasq')), 'no dnsmasq runtime directory left');

    ok(r.cli(['assign-ip', ...r.net, '--public-ip', LB_IP, ...PUBLIC]));
    const withLbIp = snapshot(r);
    const lb = ['apply-lb-rules', ...r.net, '--lb-rules', JSON.stringify([{ id: 1, publicIp: LB_IP, publicPort: 80, algorithm: 'roundrobin', backends: [{ ip: r.vmIp, port: 8080 }] }])];
    refused(r, r.cli(lb, envWithout('haproxy')), /haproxy is not installed: no executable "haproxy" in PATH=\/.*bin-without-haproxy/, withLbIp, 'no haproxy');

    // positive controls: with the programs there, the same commands work (and a running haproxy needs no
    // haproxy binary for commands that leave it unchanged)
    ok(r.cli(dhcp, envWithout('nothing')), 'config-dhcp-subnet with dnsmasq');
    assert.is(dnsmasqPids(r.stateDir).length, 1);
    ok(r.cli(lb, envWithout('nothing')), 'apply-lb-rules with haproxy');
    ok(r.cli(pf(r, 3334), envWithout('haproxy')), 'a command that leaves haproxy unchanged');
  } finally {
    if (r) killDaemons(r);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('libnftables missing: the nft command takes over (logged as a warning), NAT works; the warning comes only from the missing library', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-nolib-'));
  chmodSync(dir, 0o755);
  const procs: ChildProcess[] = [];
  let r: CliRouter | undefined;
  try {
    r = bareRouter(s, dir, '4601');
    // the library hidden from this process only (a private mount namespace; /run/netns stays shared), while
    // the nft command keeps a copy of it
    const real = realpathSync(execFileSync('sh', ['-c', 'ldconfig -p | sed -n "s/.*libnftables.so.1 .*=> //p" | head -1'], { encoding: 'utf8' }).trim());
    const libDir = join(dir, 'lib');
    const wrap = join(dir, 'wrap');
    mkdirSync(libDir);
    mkdirSync(wrap);
    copyFileSync(real, join(libDir, 'libnftables.so.1'));
    writeFileSync(join(wrap, 'nft'), `#!/bin/sh\nLD_LIBRARY_PATH=${libDir} exec ${execFileSync('sh', ['-c', 'command -v nft'], { encoding: 'utf8' }).trim()} "$@"\n`, { mode: 0o755 });
    const log = join(dir, 'nolib.log');
    const nolib = (args: string[]) => spawnSync('unshare', ['--mount', '--propagation', 'unchanged', 'sh', '-c', 'mount --bind /dev/null "$0" && exec "$@"', real,
      process.execPath, CLI, ...args, '--host-netns', r!.hostNs, '--state-dir', r!.stateDir, '--log-file', log],
    { encoding: 'utf8', timeout: 60_000, env: { ...process.env, PATH: `${wrap}:${process.env.PATH}`, NETNS_ROUTER_ENGINE_SOCKET: 'off' } });
    ok(nolib(['assign-ip', ...r.net, '--public-ip', PUB, ...PUBLIC, '--source-nat', 'true']), 'assign-ip without libnftables');
    ok(nolib(pf(r, PF_PORT)), 'add-port-forward without libnftables');
    const warnings = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; command?: string })
      .filter((l) => l.level === 40 && /libnftables is not usable .*falling back to the nft command/.test(l.msg));
    assert.is(warnings.length, 2, 'one warning per command run on the fallback');
    openFirewall(r); // (with the library: the port is closed until a firewall rule opens it)
    const vm = await addLeasedVmStatic(s, r);
    procs.push(...vm.procs, await upstreamServer(r));
    assert.is(tcpAsk(r.upNs, PUB, PF_PORT), UPSTREAM, 'the forward the nft command installed works');
    assert.is(tcpAsk(vm.ns, UPSTREAM, 9000), PUB, 'source NAT too');
    // the control: the same kind of command with the library present logs no such warning
    ok(r.cli(pf(r, 3335)), 'with libnftables');
    assert.not.match(readFileSync(r.logFile, 'utf8'), 'libnftables is not usable');
    assert.is(tcpAsk(r.upNs, PUB, 3335), UPSTREAM);
  } finally {
    for (const p of procs) p.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A VM with the router's VM address set statically (no DHCP on that router). */
async function addLeasedVmStatic(s: Scratch, r: CliRouter): Promise<Vm> {
  const { addVm, whoamiServer } = await import('../helpers/topo.js');
  const vm = addVm(s, r.h, r.bridge, `${r.vmIp}/24`, r.gw, r.mac);
  return { ns: vm.ns, hostEnd: vm.hostEnd, procs: [whoamiServer(vm.ns, 8022)] };
}

test('the kernel refusing an object mid-transaction: an address, a rule — exit 2 with the kernel\'s text, router as before', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-refuse-'));
  chmodSync(dir, 0o755);
  const procs: ChildProcess[] = [];
  try {
    const r = bareRouter(s, dir, '4701');
    addNat(r);
    const vm = await addLeasedVmStatic(s, r);
    procs.push(...vm.procs, await upstreamServer(r));
    const before = snapshot(r);
    // IPv6 multicast as the gateway address: bad input at the contract (exit 1, nothing changed) …
    const v6 = ['--network-ip6-gateway', 'ff02::1', '--network-ip6-cidr', 'ff02::/64'];
    const implement = ['implement-network', ...r.net, '--vlan', `vxlan://${r.vni}`, '--gateway', r.gw, '--cidr', `${r.gw.replace(/1$/, '0')}/24`];
    const bad = r.cli([...implement, ...v6]);
    assert.is(bad.status, 1, bad.stderr);
    assert.match(bad.stderr, /--network-ip6-gateway: ff02::1 is not a unicast IPv6 address/);
    // … and a request of the library that carries it anyway reaches the kernel, which refuses the address after
    // the other plumbing ran: exit 2 with the kernel's text, the router as before
    const engine0 = new RouterEngine({ stateDir: r.stateDir, hostNetns: r.hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    const typed = (networkId: string, gw: string, vni: number) => ({
      command: 'implement-network' as const, networkId, namespace: `cs-net-${networkId}`, segment: { kind: 'vxlan' as const, vni }, gateway: gw,
      cidr: cidr(`${gw.replace(/1$/, '0')}/24`), ip6Gateway: 'ff02::1', ip6Cidr: cidr('ff02::/64'),
    });
    await rejected(runCommand(engine0, typed(r.id, r.gw, r.vni)), SystemError, { exitCode: 2, message: /ff02::1/ }, 'address refused by the kernel');
    const after0 = snapshot(r);
    for (const k of Object.keys(before)) assert.fixture(after0[k], before[k], `address refused: ${k} as before`);
    assert.is(tcpAsk(r.upNs, PUB, PF_PORT), UPSTREAM, 'the forward still works');
    // a new router refused the same way leaves nothing behind: no namespace, no state
    const fresh = s.track('cs-net-4702');
    await rejected(runCommand(engine0, typed('4702', '10.94.1.1', 7702)), SystemError, { exitCode: 2, message: /ff02::1/ }, 'a new router refused');
    assert.not.ok(netnsExists(fresh), 'the new router\'s namespace is removed again');
    assert.not.ok(existsSync(join(r.stateDir, 'routers', `${fresh}.json`)), 'and nothing is stored');

    // a rule the kernel rejects (dnat in a filter chain: EOPNOTSUPP from nf_tables) in the same transaction as a
    // new port forward, through a module that contributes it (as the firewall or DHCP modules contribute theirs)
    const faulty: RouterModule = {
      name: 'faulty',
      nftObjects: (m) => (moduleState<boolean>(m, 'faulty') ? [
        baseChain('faulty_fwd', { type: 'filter', hook: 'forward', priority: 0 }),
        rule('faulty_fwd', [ip.daddr('192.0.2.1'), dnat({ family: 'ip', addr: '10.0.0.1' })]),
      ] : []),
    };
    const engine = new RouterEngine({ stateDir: r.stateDir, hostNetns: r.hostNs, devices: { guest: 'eth1', public: 'eth1' }, modules: [...defaultModules(), faulty] });
    await rejected(engine.change(r.ns, () => { throw new Error('exists'); }, (m) => {
      m.portForwards.push({ publicIp: PUB, protocol: 'tcp', publicPorts: [3336, 3336], privateIp: r.vmIp, privatePorts: [8022, 8022] });
      setModuleState(m, 'faulty', true);
    }), SystemError, { exitCode: 2, message: /Operation not supported/ }, 'the kernel refuses the rule');
    const after = snapshot(r);
    for (const k of Object.keys(before)) assert.fixture(after[k], before[k], `rule refused: ${k} as before`);
    assert.is(tcpAsk(r.upNs, PUB, 3336), '', 'the forward of the refused transaction is not there');
    // positive control: the same change without the refused rule goes through
    await engine.change(r.ns, () => { throw new Error('exists'); }, (m) => {
      m.portForwards.push({ publicIp: PUB, protocol: 'tcp', publicPorts: [3336, 3336], privateIp: r.vmIp, privatePorts: [8022, 8022] });
    });
    assert.is(tcpAsk(r.upNs, PUB, 3336), UPSTREAM);
  } finally {
    for (const p of procs) p.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a hook that is not executable: "hook <path> is not executable", exit 2; runs once it is', () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-hook-'));
  try {
    const r = bareRouter(s, dir, '4801');
    mkdirSync(join(r.stateDir, 'hooks'), { recursive: true });
    const hook = join(r.stateDir, 'hooks', 'custom-action-hello.sh');
    writeFileSync(hook, '#!/bin/sh\necho "hello $NETNS_ROUTER_NAMESPACE"\n', { mode: 0o644 });
    const before = snapshot(r);
    refused(r, r.cli(['custom-action', ...r.net, '--action', 'hello']), new RegExp(`hook ${hook.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is not executable`), before, 'hook not executable');
    chmodSync(hook, 0o755);
    const res = r.cli(['custom-action', ...r.net, '--action', 'hello']);
    assert.is(res.status, 0, res.stderr);
    assert.equal(JSON.parse(res.stdout), { status: 'success', printmessage: 'true', message: `hello ${r.ns}` }, 'it ran, with its environment');
  } finally {
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
