/**
 * The router for programs (createRouter, docs/library.md) against the CLI: bad input gets the CLI's message, error
 * class and argument name and changes nothing; a library call and a CLI process on one router never interleave
 * (the upstream-named router lock), on another router they do; time-outs and cancellation fail like the CLI's
 * time limit; a router built through the library carries real packets.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createRouter, type Router } from '../../lib/router/create-router.js';
import { SystemError, TimeoutError, UsageError } from '../../lib/util/errors.js';
import { Scratch, addVm, simulatedHost, tcpAsk, waitFor, whoamiServer } from '../helpers/topo.js';
import { CLI, killDaemons, routerCli, snapshot } from '../helpers/router-cli.js';
import { rejected, thrown } from '../helpers/expect.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();

const UPSTREAM = '203.0.113.1';
const PUB = '203.0.113.80';

interface Bench {
  dir: string;
  stateDir: string;
  hostNs: string;
  upNs: string;
  router: Router;
  cli: ReturnType<typeof routerCli>;
}

/** A simulated host with its uplink eth1, a state directory, the library's router and the CLI on both. */
async function bench(s: Scratch, body: (b: Bench) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'nr-lib-'));
  const { hostNs, upNs } = simulatedHost(s);
  const stateDir = join(dir, 'state');
  const router = createRouter({ stateDir, devices: { guest: 'eth1', public: 'eth1' }, hostNetns: hostNs });
  try {
    await body({ dir, stateDir, hostNs, upNs, router, cli: routerCli(stateDir, join(dir, 'cli.log'), hostNs) });
  } finally {
    await router.close();
    for (const ns of ['cs-net-42', 'cs-net-43']) killDaemons({ ns, stateDir });
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a router built through the library carries packets: source NAT, and a port forward opened by the firewall', () => {
  const s = new Scratch();
  const procs: ChildProcess[] = [];
  return bench(s, async ({ router, hostNs, upNs }) => {
    s.track('cs-net-42');
    await router.implementNetwork({ networkId: 42, vlan: 'vxlan://5042', gateway: '10.42.1.1', cidr: '10.42.1.0/24' });
    await router.assignIp({
      networkId: 42, publicIp: PUB, publicVlan: 'untagged', publicGateway: UPSTREAM, publicCidr: '203.0.113.0/24', sourceNat: true,
    });
    await router.addPortForward({ networkId: 42, publicIp: PUB, publicPort: 2222, privateIp: '10.42.1.10', privatePort: 8022, protocol: 'tcp' });
    const vm = addVm(s, s.handle(hostNs), 'brvx-5042', '10.42.1.10/24', '10.42.1.1');
    procs.push(whoamiServer(vm.ns, 8022), whoamiServer(upNs, 9000));
    assert.ok(await waitFor(() => tcpAsk(upNs, '127.0.0.1', 9000) !== '', 5000), 'upstream server up');
    assert.ok(await waitFor(() => tcpAsk(vm.ns, UPSTREAM, 9000) === PUB, 5000), 'the VM reaches upstream from the public IP (source NAT)');
    // an isolated network's public IPs are closed until an ingress rule opens them (docs/firewall.md)
    assert.is(tcpAsk(upNs, PUB, 2222), '', 'the port forward is closed before the firewall opens it');
    await router.applyFwRules({
      networkId: 42,
      fwRules: { default_egress_allow: true, rules: [{ id: 1, type: 'ingress', protocol: 'tcp', publicIp: PUB, portStart: 2222, sourceCidrs: ['0.0.0.0/0'] }] },
    });
    assert.ok(await waitFor(() => tcpAsk(upNs, PUB, 2222) === UPSTREAM, 5000), 'upstream reaches the VM through the port forward');
    await router.destroyNetwork({ networkId: 42 });
  }).finally(() => {
    for (const p of procs) p.kill('SIGKILL');
    s.cleanup();
  });
});

/** [command, CLI arguments, library input, the CLI's stderr prefix before the message]. */
type Case = [string, string[], Record<string, unknown>, string];

test('bad input: the CLI\'s message, class and argument, and nothing changes', () => {
  const s = new Scratch();
  return bench(s, async ({ router, cli, stateDir }) => {
    s.track('cs-net-42');
    await router.implementNetwork({ networkId: '42', vlan: 'vxlan://5043', gateway: '10.43.1.1', cidr: '10.43.1.0/24' });
    await router.assignIp({ networkId: '42', publicIp: PUB, publicVlan: 'untagged', publicCidr: '203.0.113.0/24', sourceNat: true });
    const before = snapshot({ ns: 'cs-net-42', stateDir });
    const pf = { networkId: '42', publicIp: PUB, publicPort: 2222, privateIp: '10.43.1.10', privatePort: 22 };
    const pfArgs = ['--network-id', '42', '--public-ip', PUB, '--public-port', '2222', '--private-ip', '10.43.1.10', '--private-port', '22'];
    const cases: Case[] = [
      ['add-port-forward', [...pfArgs, '--public-port', '99999'], { ...pf, publicPort: 99999 }, ''],
      ['add-port-forward', [...pfArgs, '--private-port', '0'], { ...pf, privatePort: 0 }, ''],
      ['add-port-forward', [...pfArgs, '--protocol', 'icmp'], { ...pf, protocol: 'icmp' }, ''],
      ['add-port-forward', [...pfArgs, '--private-ip', '10.43.1.300'], { ...pf, privateIp: '10.43.1.300' }, ''],
      ['add-port-forward', [...pfArgs, '--public-ports', '1'], { ...pf, publicPorts: 1 }, ''],
      ['implement-network', ['--network-id', '42', '--gateway', '10.9.9.1', '--cidr', '10.43.1.0/24'], { networkId: '42', gateway: '10.9.9.1', cidr: '10.43.1.0/24' }, ''],
      ['implement-network', ['--network-id', '42', '--vlan', 'vxlan://0'], { networkId: '42', vlan: 'vxlan://0' }, ''],
      ['implement-network', ['--network-id', '42', '--vlan', '5001'], { networkId: '42', vlan: 5001 }, ''],
      ['implement-network', ['--network-id', '42', '--cidr', '10.43.1.0/33'], { networkId: '42', cidr: '10.43.1.0/33' }, ''],
      ['implement-network', ['--network-id', '42', '--dns', '8.8.8.8,nope'], { networkId: '42', dns: ['8.8.8.8', 'nope'] }, ''],
      ['assign-ip', ['--network-id', '42', '--public-ip', '203.0.113.81'], { networkId: '42', publicIp: '203.0.113.81' }, ''],
      ['assign-ip', ['--network-id', '../x', '--public-ip', PUB, '--public-vlan', 'untagged'], { networkId: '../x', publicIp: PUB, publicVlan: 'untagged' }, ''],
      ['release-ip', ['--network-id', '42', '--public-ip', PUB, '--public-cidr', '198.51.100.0/24'], { networkId: 42, publicIp: PUB, publicCidr: '198.51.100.0/24' }, ''],
      ['add-dhcp-entry', ['--network-id', '42', '--mac', '02:00:zz:00:00:01', '--ip', '10.43.1.10'], { networkId: 42, mac: '02:00:zz:00:00:01', ip: '10.43.1.10' }, ''],
      ['save-password', ['--network-id', '42'], { networkId: 42 } as never, ''],
      // documents are checked by their module before anything changes: the CLI names the command first
      ['apply-fw-rules', ['--network-id', '42', '--fw-rules', JSON.stringify({ rules: [{ id: 1, type: 'ingress', protocol: 'tcp', publicIp: PUB, portStart: 70000 }] })],
        { networkId: 42, fwRules: { rules: [{ id: 1, type: 'ingress', protocol: 'tcp', publicIp: PUB, portStart: 70000 }] } }, 'apply-fw-rules: '],
      // (fw_rules given as text is decoded by its module too: contract/reader.ts keepText)
      ['apply-fw-rules', ['--network-id', '42', '--fw-rules', '{"rules": ['], { networkId: 42, fwRules: '{"rules": [' }, 'apply-fw-rules: '],
    ];
    for (const [command, args, input, prefix] of cases) {
      const r = cli([command, ...args]);
      assert.is(r.status, 1, `${command} ${args.join(' ')}: the CLI refuses it (${r.stderr})`);
      const e = await rejected(router.run(command as 'status', input as never), UsageError, { code: 'E_USAGE', exitCode: 1 }, `${command} ${JSON.stringify(input)}`);
      assert.is(r.stderr.trim(), `netns-router: ${prefix}${e.message}`, `${command}: the library's message is the CLI's`);
      assert.ok(e.argument && r.stderr.includes(e.argument), `${command}: the error names the argument (${e.argument})`);
    }
    assert.equal(snapshot({ ns: 'cs-net-42', stateDir }), before, 'nothing changed: kernel and stored state');
    // control: the same call with the bad value fixed goes through and does change the router
    await router.addPortForward(pf);
    assert.not.equal(snapshot({ ns: 'cs-net-42', stateDir }).state, before.state, 'the valid call changed the state');
    // the router's own options are checked like the CLI's global options
    thrown(() => createRouter({ stateDir: '' }), UsageError, { argument: '--state-dir' });
    thrown(() => createRouter({ stateDir, hostNetns: 'a/b' }), UsageError, { argument: '--host-netns' });
    thrown(() => createRouter({ stateDir, devices: { guest: 'x'.repeat(16) } }), UsageError, { argument: 'physical-network-extension-details.guest.network.device' });
    await rejected(router.status({}, { timeoutSeconds: 0 }), UsageError, { argument: '--timeout' });
    await router.destroyNetwork({ networkId: 42 });
  }).finally(() => s.cleanup());
});

test('the logger: any {debug, info, warn, error} (pino, console); records without secrets', () => {
  const s = new Scratch();
  return bench(s, async ({ stateDir, hostNs }) => {
    s.track('cs-net-42');
    const records: Array<[string, unknown, string | undefined]> = [];
    const rec = (level: string) => (record: object | string, message?: string) => { records.push([level, record, message]); };
    const logged = createRouter({
      stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' },
      logger: { debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error') },
    });
    try {
      await logged.implementNetwork({ networkId: 42, vlan: 'vxlan://5044', gateway: '10.44.1.1', cidr: '10.44.1.0/24' });
      await logged.savePassword({ networkId: 42, ip: '10.44.1.10', password: 'hunter2-SECRET' });
      const doc = { rules: [{ id: 1, type: 'ingress', protocol: 'tcp', publicIp: PUB, portStart: 70000 }] };
      await rejected(logged.applyFwRules({ networkId: 42, fwRules: doc }), UsageError); // refused by the firewall module: logged
      await rejected(logged.releaseIp({ networkId: 42, publicIp: 'nope' }), UsageError); // refused by the contract: not logged
    } finally {
      await logged.close();
    }
    const text = JSON.stringify(records);
    assert.not.match(text, /hunter2-SECRET/, 'no password in any record');
    const start = records.find(([level, r, m]) => level === 'debug' && m === 'command start' && (r as { command?: string }).command === 'save-password');
    assert.ok(start, 'the request was logged (redacted)');
    assert.match(JSON.stringify(start), /\[redacted\]/);
    assert.is(records.filter(([, , m]) => m === 'command done').length, 2);
    assert.is(records.filter(([level, , m]) => level === 'info' && m === 'command rejected').length, 1, 'an engine refusal is logged, a contract refusal is not');
    // pino's logger fits the interface (this compiles) and works
    const quiet = createRouter({ stateDir, logger: pino({ level: 'silent' }) });
    assert.match((await quiet.status())!, /cs-net-42/);
    await quiet.close();
    await createRouter({ stateDir, hostNetns: hostNs }).destroyNetwork({ networkId: 42 });
  }).finally(() => s.cleanup());
});

/** A hook action that logs its start, waits for its gate file, logs its end (custom actions run under the router's lock). */
function installHooks(stateDir: string, actions: string[]): { log: () => string[]; open: (action: string) => void } {
  mkdirSync(join(stateDir, 'hooks'), { recursive: true });
  const order = join(stateDir, 'order.log');
  for (const a of actions) {
    const f = join(stateDir, 'hooks', `custom-action-${a}.sh`);
    writeFileSync(f, `#!/bin/sh\necho "${a} start" >> "${order}"\nwhile [ ! -e "${stateDir}/gate-${a}" ]; do sleep 0.02; done\necho "${a} end" >> "${order}"\n`);
    chmodSync(f, 0o755);
  }
  return {
    log: () => (existsSync(order) ? readFileSync(order, 'utf8').trim().split('\n') : []),
    open: (a) => writeFileSync(join(stateDir, `gate-${a}`), ''),
  };
}

/** The CLI as a process of its own, running while the test goes on. */
function cliProcess(stateDir: string, args: string[]): { exited: Promise<{ code: number | null; stderr: string }> } {
  const p = spawn(process.execPath, [CLI, ...args, '--state-dir', stateDir, '--log-file', join(stateDir, 'cli.log')], {
    env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: 'off' }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  p.stderr!.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
  return { exited: new Promise((res) => p.on('close', (code) => res({ code, stderr }))) };
}

test('a CLI process and a library call on one router never interleave; on another router they do', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-lib-lock-'));
  const stateDir = join(dir, 'state');
  const router = createRouter({ stateDir });
  try {
    const h = installHooks(stateDir, ['cli-hold', 'lib-wait', 'lib-other', 'lib-hold', 'cli-wait', 'cli-other']);
    for (const a of ['lib-wait', 'lib-other', 'cli-wait', 'cli-other']) h.open(a);

    // the CLI first: the library call on the same router waits for it
    const held = cliProcess(stateDir, ['custom-action', '--network-id', '42', '--action', 'cli-hold']);
    assert.ok(await waitFor(() => h.log().includes('cli-hold start'), 20_000), 'the CLI runs its action');
    const waiting = router.customAction({ networkId: 42, action: 'lib-wait' });
    await router.customAction({ networkId: 43, action: 'lib-other' }); // control: another router is not blocked
    assert.equal(h.log(), ['cli-hold start', 'lib-other start', 'lib-other end'], 'the call on network 42 waits while the CLI holds it');
    h.open('cli-hold');
    const out = await waiting;
    assert.is((await held.exited).code, 0);
    assert.equal(h.log().slice(3), ['cli-hold end', 'lib-wait start', 'lib-wait end']);
    assert.equal(JSON.parse(out!), { status: 'success', printmessage: 'true', message: 'lib-wait: OK' }, 'the result is what the CLI prints');

    // the library first: a CLI process on the same router waits for it
    rmSync(join(stateDir, 'order.log'));
    const holding = router.customAction({ vpcId: 7, action: 'lib-hold' });
    assert.ok(await waitFor(() => h.log().includes('lib-hold start'), 20_000));
    const cliWaits = cliProcess(stateDir, ['custom-action', '--vpc-id', '7', '--action', 'cli-wait']);
    const other = await cliProcess(stateDir, ['custom-action', '--vpc-id', '8', '--action', 'cli-other']).exited;
    assert.is(other.code, 0, other.stderr);
    assert.equal(h.log(), ['lib-hold start', 'cli-other start', 'cli-other end'], 'the CLI on VPC 7 waits while the library holds it');
    h.open('lib-hold');
    await holding;
    assert.is((await cliWaits.exited).code, 0);
    assert.equal(h.log().slice(3), ['lib-hold end', 'cli-wait start', 'cli-wait end']);
  } finally {
    await router.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('time-outs and cancellation: the CLI\'s time limit, TimeoutError, the action never runs; close() waits', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-lib-time-'));
  const stateDir = join(dir, 'state');
  const router = createRouter({ stateDir });
  try {
    const h = installHooks(stateDir, ['cli-hold', 'lib-late', 'lib-abort', 'cli-late', 'lib-after']);
    for (const a of ['lib-late', 'lib-abort', 'cli-late', 'lib-after']) h.open(a);
    const held = cliProcess(stateDir, ['custom-action', '--network-id', '42', '--action', 'cli-hold']);
    assert.ok(await waitFor(() => h.log().includes('cli-hold start'), 20_000));

    // the lock wait counts against the time limit, in the library as in the CLI
    const lib = await rejected(router.customAction({ networkId: 42, action: 'lib-late' }, { timeoutSeconds: 0.5 }), TimeoutError, { code: 'E_LOCK_TIMEOUT', exitCode: 2 });
    const cliLate = await cliProcess(stateDir, ['custom-action', '--network-id', '42', '--action', 'cli-late', '--timeout', '0.5']).exited;
    assert.is(cliLate.code, 2);
    const seconds = (t: string) => t.replace(/\d+\.\d s/, 'N s');
    assert.is(seconds(cliLate.stderr.trim()), seconds(`netns-router: custom-action: ${lib.message}`), 'the same message as the CLI\'s');
    assert.match(lib.message, /waiting for the lock of network 42 .*another command on this router is still running/);

    // the caller's AbortSignal ends the wait the same way
    const ac = new AbortController();
    const aborted = router.customAction({ networkId: 42, action: 'lib-abort' }, { signal: ac.signal });
    setTimeout(() => ac.abort(), 200);
    await rejected(aborted, TimeoutError, { code: 'E_ABORTED', exitCode: 2, message: /cancelled by the caller after/ });
    // … and an already aborted signal before anything is done
    await rejected(router.customAction({ networkId: 43, action: 'lib-after' }, { signal: AbortSignal.abort() }), TimeoutError, { code: 'E_ABORTED' });

    h.open('cli-hold');
    assert.is((await held.exited).code, 0);
    await router.customAction({ networkId: 42, action: 'lib-after' }); // control: the router is free again
    assert.equal(h.log(), ['cli-hold start', 'cli-hold end', 'lib-after start', 'lib-after end'], 'no refused or cancelled action ever ran');
    await router.close();
    await rejected(router.status(), SystemError, { code: 'E_CLOSED' });
  } finally {
    await router.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
