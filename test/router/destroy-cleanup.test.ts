/**
 * What a destroy leaves behind: a destroyed network's (or VPC tier's) passwords, user data and keys are gone
 * from disk and from the metadata service at once, its runtime directory too; only the documented files stay
 * (locks, the host's blob key, the host daemon's own files). Driven through the CLI with dnsmasq, haproxy
 * and the metadata daemon running, and through the engine for a VPC.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { RouterEngine } from '../../lib/router/engine.js';
import type * as T from '../../lib/router/contract/types.js';
import * as vd from '../../lib/router/vmdata/index.js';
import { daemonStatus, routerDir, stopDaemon } from '../../lib/services/metadata/index.js';
import { Scratch, addVm, simulatedHost, cidr } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { guestGet, passwordRequest } from '../helpers/metadata.js';
import { runCommand } from '../../lib/router/command-table.js';

requireSandbox();
vd.vmdataSettings.daemonIdleExitMs = 500;
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

/** Every path below `dir` (relative), and the regular files among them that contain `needle`. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      out.push(relative(dir, p));
      if (lstatSync(p).isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}
/** Stop what the CLI started for a router that a failed test left behind (dnsmasq, haproxy), by their pid files. */
function killLeftovers(stateDir: string, ns: string): void {
  for (const f of [join(stateDir, 'run', ns, 'dnsmasq', 'dnsmasq.pid'), join(stateDir, 'run', ns, 'haproxy', 'haproxy.pid')]) {
    try {
      process.kill(Number(readFileSync(f, 'utf8').trim()), 'SIGTERM');
    } catch { /* none */ }
  }
}

function filesHolding(dir: string, needle: string): string[] {
  return tree(dir).filter((p) => lstatSync(join(dir, p)).isFile() && readFileSync(join(dir, p)).includes(needle));
}

/** What may stay in the state directory after every router is destroyed (docs/metadata.md, "What a destroy leaves"). */
const PERSISTENT = [
  /^lock-(network|vpc)-\d+$/, /^locks$/, /^locks\/cs-(net|vpc)-\d+\.lock$/, /^routers$/,
  /^run$/, /^run\/metadata\.(lock|log|pid|sock)$/, /^vmdata$/, /^vmdata\/\.key$/, /^segment-pool\.json$/, /^lock-segment-pool$/,
];

test('destroy-network (CLI, with dnsmasq, haproxy and the metadata daemon): secrets and the runtime directory go at once', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-destroy-'));
  const stateDir = join(dir, 'state');
  const id = String(2000 + Math.floor(Math.random() * 7000));
  const ns = s.track(`cs-net-${id}`);
  const tag = `${id}-${Math.random().toString(36).slice(2, 8)}`;
  const secrets = { pw1: `Pw1-${tag}`, pw2: `Pw2-${tag}`, ud: `Ud-${tag}`, key: `Key-${tag}`, other: `Other-${tag}` };
  try {
    const { hostNs, h } = simulatedHost(s);
    const g = ['--host-netns', hostNs, '--state-dir', stateDir, '--log-file', join(dir, 'log')];
    const cli = (...a: string[]) => {
      const r = spawnSync(process.execPath, [CLI, ...a, ...g], { encoding: 'utf8', timeout: 30_000 });
      assert.is(r.status, 0, `${a[0]}: ${r.stderr}`);
    };
    const vni = 4000 + Number(id) % 1000;
    const net = ['--network-id', id];
    cli('implement-network', ...net, '--vlan', `vxlan://${vni}`, '--gateway', '10.17.1.1', '--cidr', '10.17.1.0/24');
    cli('assign-ip', ...net, '--public-ip', '203.0.113.71', '--public-vlan', 'untagged', '--public-gateway', '203.0.113.1', '--public-cidr', '203.0.113.0/24', '--source-nat', 'true');
    cli('apply-lb-rules', ...net, '--lb-rules', JSON.stringify([{ id: 1, publicIp: '203.0.113.71', publicPort: 80, algorithm: 'roundrobin', revoke: false, backends: [{ ip: '10.17.1.10', port: 80, revoked: false }] }]));
    cli('config-dhcp-subnet', ...net, '--gateway', '10.17.1.1', '--cidr', '10.17.1.0/24');
    cli('add-dhcp-entry', ...net, '--mac', '02:00:00:11:01:0a', '--ip', '10.17.1.10');
    const vm = addVm(s, h, `brvx-${vni}`, '10.17.1.10/24', '10.17.1.1', '02:00:00:11:01:0a');
    const vm2 = addVm(s, h, `brvx-${vni}`, '10.17.1.11/24', '10.17.1.1', '02:00:00:11:01:0b');
    cli('save-vm-data', ...net, '--ip', '10.17.1.10', '--vm-data', JSON.stringify([
      { dir: 'userdata', file: 'user-data', content: secrets.ud }, { dir: 'metadata', file: 'public-keys', content: secrets.key },
      { dir: 'password', file: 'vm_password', content: secrets.pw1 },
    ]));
    cli('save-userdata', ...net, '--ip', '10.17.1.11', '--userdata', secrets.other);
    assert.is(passwordRequest(vm.ns, '10.17.1.1', 'send_my_password').body, secrets.pw1);
    assert.is(guestGet(vm2.ns, 'http://10.17.1.1/latest/user-data').body, secrets.other);
    const run = join(stateDir, 'run', ns);
    assert.ok(existsSync(join(run, 'dnsmasq')) && existsSync(join(run, 'haproxy')), tree(stateDir).join(' '));

    // a replaced password, and the data of a released NIC, leave the disk with the command that drops them
    cli('save-password', ...net, '--ip', '10.17.1.10', '--password', secrets.pw2);
    assert.equal(filesHolding(stateDir, secrets.pw1), [], 'the replaced password is gone');
    assert.is(passwordRequest(vm.ns, '10.17.1.1', 'send_my_password').body, secrets.pw2);
    cli('release-nic', ...net, '--ip', '10.17.1.11', '--mac', '02:00:00:11:01:0b');
    assert.equal(filesHolding(stateDir, secrets.other), [], 'a released NIC\'s user data are gone');
    assert.is(guestGet(vm2.ns, 'http://10.17.1.1/latest/user-data').status, 404);
    for (const v of [secrets.pw2, secrets.ud, secrets.key]) assert.ok(filesHolding(stateDir, v).length > 0, 'positive control: stored while the network lives');
    // an acknowledged password: no longer served at once, off the disk with the router's next command (any)
    assert.is(passwordRequest(vm.ns, '10.17.1.1', 'saved_password').body, 'saved_password');
    assert.ok(filesHolding(stateDir, secrets.pw2).length > 0);
    cli('add-dhcp-entry', ...net, '--mac', '02:00:00:11:01:0c', '--ip', '10.17.1.12');
    assert.equal(filesHolding(stateDir, secrets.pw2), [], 'the delivered password is gone');
    // its record is still in the state (pruned by the next metadata command): a rebuilt tree does not revive it
    rmSync(join(routerDir(stateDir, ns), 'vms'), { recursive: true });
    cli('add-dhcp-entry', ...net, '--mac', '02:00:00:11:01:0d', '--ip', '10.17.1.13');
    assert.is(passwordRequest(vm.ns, '10.17.1.1', 'send_my_password').body, 'saved_password');
    assert.is(guestGet(vm.ns, 'http://10.17.1.1/latest/user-data').body, secrets.ud, 'the rest is served again');

    cli('destroy-network', ...net);
    for (const [what, v] of Object.entries(secrets)) assert.equal(filesHolding(stateDir, v), [], `${what}: in no file of the state directory`);
    assert.not.ok(existsSync(run), 'no run/<namespace>/ left');
    assert.not.ok(existsSync(routerDir(stateDir, ns)));
    const left = tree(stateDir);
    assert.equal(left.filter((p) => !PERSISTENT.some((re) => re.test(p))), [], `only the documented files stay: ${left.join(' ')}`);
    assert.not.ok((await daemonStatus(stateDir))?.routers.some((r) => r.namespace === ns), 'the daemon serves nothing of it');
    assert.is(passwordRequest(vm.ns, '10.17.1.1', 'send_my_password').status, 0);
    for (const v of Object.values(secrets)) assert.not.match(readFileSync(join(dir, 'log'), 'utf8'), v, 'nor in the CLI log');
  } finally {
    killLeftovers(stateDir, ns);
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('VPC: destroying a tier removes its VMs\' secrets at once and stops serving them; the other tier keeps its own; destroy-vpc removes the rest', async () => {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'nr-destroy-'));
  const vpcId = String(900 + Math.floor(Math.random() * 90));
  const ns = s.track(`cs-vpc-${vpcId}`);
  const tag = Math.random().toString(36).slice(2, 10);
  const sec = (t: number) => ({ pw: `Pw-t${t}-${tag}`, ud: `Ud-t${t}-${tag}` });
  try {
    const { hostNs, h } = simulatedHost(s);
    const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    await runCommand(engine, { command: 'implement-vpc', vpcId, namespace: ns, vpcCidr: cidr('10.21.0.0/16') });
    const vms: Record<number, string> = {};
    for (const t of [1, 2]) {
      const net = { networkId: `8${t}`, vpcId, namespace: ns };
      await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni: 9300 + t }, gateway: `10.21.${t}.1`, cidr: cidr(`10.21.${t}.0/24`) });
      vms[t] = addVm(s, h, `brvx-${9300 + t}`, `10.21.${t}.10/24`, `10.21.${t}.1`).ns;
      await runCommand(engine, {
        command: 'save-vm-data', ...net, ip: `10.21.${t}.10`,
        vmData: { value: [{ dir: 'userdata', file: 'user-data', content: sec(t).ud }, { dir: 'password', file: 'vm_password', content: sec(t).pw }], source: 'x' },
      } as T.SaveVmDataRequest);
      assert.is(guestGet(vms[t], `http://10.21.${t}.1/latest/user-data`).body, sec(t).ud);
    }
    assert.ok(filesHolding(stateDir, sec(1).pw).length > 0, 'positive control: tier 1\'s password is stored');

    await runCommand(engine, { command: 'destroy-network', networkId: '81', vpcId, namespace: ns });
    for (const v of Object.values(sec(1))) assert.equal(filesHolding(stateDir, v), [], 'tier 1\'s secrets: in no file');
    assert.equal((await daemonStatus(stateDir))!.routers.find((r) => r.namespace === ns)?.listening, ['10.21.2.1:80', '10.21.2.1:8080'], 'tier 1\'s address is not served any more');
    assert.equal(vd.vmdataState(engine.store.load(ns)!).vms['10.21.1.10'], undefined, 'its records left the state');
    for (const v of Object.values(sec(2))) assert.ok(filesHolding(stateDir, v).length > 0, 'tier 2 keeps its own');
    assert.is(passwordRequest(vms[2], '10.21.2.1', 'send_my_password').body, sec(2).pw);
    // the tier comes back under the same id: nothing of before (and nothing missing)
    await runCommand(engine, { command: 'implement-network', networkId: '81', vpcId, namespace: ns, segment: { kind: 'vxlan', vni: 9301 }, gateway: '10.21.1.1', cidr: cidr('10.21.1.0/24') });
    assert.is(guestGet(vms[2], 'http://10.21.2.1/latest/user-data').body, sec(2).ud, 'positive control: the router answers');
    assert.is(guestGet(vms[1], 'http://10.21.2.1/latest/user-data').status, 404, 'tier 1\'s VM: no data any more');
    assert.is(passwordRequest(vms[1], '10.21.2.1', 'send_my_password').body, 'saved_password', 'and no password');

    await runCommand(engine, { command: 'destroy-vpc', vpcId, namespace: ns });
    for (const v of [...Object.values(sec(1)), ...Object.values(sec(2))]) assert.equal(filesHolding(stateDir, v), []);
    assert.not.ok(existsSync(routerDir(stateDir, ns)));
    assert.not.ok(existsSync(join(stateDir, 'run', ns)));
    const left = tree(stateDir);
    assert.equal(left.filter((p) => !PERSISTENT.some((re) => re.test(p))), [], left.join(' '));
  } finally {
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test.run();
