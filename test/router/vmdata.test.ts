/**
 * Metadata and password service through the router engine: save-* commands, prepare-nic/release-nic, a VPC
 * with two tiers, and the CLI's validation (exit 1, nothing changed, nothing secret logged). Real guests
 * (namespaces behind the simulated host's bridge) fetch with curl and busybox wget.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { RouterEngine } from '../../lib/router/engine.js';
import { netnsExists } from '../../lib/netns/namespaces.js';
import type * as T from '../../lib/router/contract/types.js';
import * as vd from '../../lib/router/vmdata/index.js';
import { daemonPid, daemonStatus, stopDaemon, routerDir } from '../../lib/services/metadata/index.js';
import { Scratch, addVm, inScratch, simulatedHost, cidr, nsExec, nsTry } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { guestGet, metadataNetwork, passwordRequest } from '../helpers/metadata.js';
import { killRouterDaemons } from '../helpers/daemons.js';
import { runCommand } from '../../lib/router/command-table.js';

requireSandbox();
vd.vmdataSettings.daemonIdleExitMs = 500;
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

/** generateVmData-like rows for one VM. */
function vmRows(name: string, ip: string, extra: Array<{ dir: string; file: string; content: string }> = []) {
  return [
    { dir: 'userdata', file: 'user-data', content: `#cloud-config\nhostname: ${name}\n` },
    { dir: 'metadata', file: 'service-offering', content: 'Small Instance' },
    { dir: 'metadata', file: 'availability-zone', content: 'zone-1' },
    { dir: 'metadata', file: 'local-ipv4', content: ip },
    { dir: 'metadata', file: 'local-hostname', content: name },
    { dir: 'metadata', file: 'public-ipv4', content: '203.0.113.50' },
    { dir: 'metadata', file: 'public-hostname', content: '203.0.113.50' },
    { dir: 'metadata', file: 'instance-id', content: `i-2-${name}-VM` },
    { dir: 'metadata', file: 'vm-id', content: `uuid-${name}` },
    { dir: 'metadata', file: 'public-keys', content: `ssh-ed25519 AAAAC3${name} ${name}@example` },
    { dir: 'metadata', file: 'cloud-identifier', content: 'CloudStack-{c0ffee}' },
    { dir: 'metadata', file: 'hypervisor-host-name', content: '' },
    ...extra,
  ];
}

test('save-* commands: each guest sees only its own data; the password is served once; release and stale-NIC cleanup', async () => {
  // the metadata layer alone (the guest-segment filter, off by default, would already drop a guest using an
  // address that prepare-nic gave another NIC, below: test/router/vm-filter*.test.ts prove that)
  await inScratch((s) => metadataNetwork(s, '10.7.1', ['02:00:00:07:01:0a', '02:00:00:07:01:0b']), async (t) => {
    const { engine, net, ns, stateDir, vms: [vm1, vm2] } = t;
    const save = (ip: string, value: unknown) => runCommand(engine, { command: 'save-vm-data', ...net, ip, vmData: { value, source: 'payload.vm_data' } } as T.SaveVmDataRequest);

    assert.is(guestGet(vm1.ns, 'http://10.7.1.1/latest/user-data').status, 0, 'nothing listens before any VM data');
    await save('10.7.1.10', vmRows('vm1', '10.7.1.10', [{ dir: 'password', file: 'vm_password', content: 'Pw-one!' }, { dir: 'password', file: 'vm-password-md5checksum', content: 'abc123' }]));
    await save('10.7.1.11', vmRows('vm2', '10.7.1.11'));

    assert.equal(guestGet(vm1.ns, 'http://10.7.1.1/latest/user-data'), { status: 200, body: '#cloud-config\nhostname: vm1\n' });
    assert.equal(guestGet(vm2.ns, 'http://10.7.1.1/latest/user-data'), { status: 200, body: '#cloud-config\nhostname: vm2\n' });
    const listing = guestGet(vm1.ns, 'http://10.7.1.1/latest/meta-data/');
    assert.is(listing.status, 200);
    assert.equal(listing.body.split('\n'), ['availability-zone', 'cloud-identifier', 'instance-id', 'local-hostname', 'local-ipv4', 'password-checksum',
      'public-hostname', 'public-ipv4', 'public-keys', 'service-offering', 'vm-id'], 'empty hypervisor-host-name is not listed');
    for (const [path, v1, v2] of [
      ['meta-data/instance-id', 'i-2-vm1-VM', 'i-2-vm2-VM'], ['meta-data/local-ipv4', '10.7.1.10', '10.7.1.11'],
      ['meta-data/public-keys', 'ssh-ed25519 AAAAC3vm1 vm1@example\n', 'ssh-ed25519 AAAAC3vm2 vm2@example\n'], ['local-hostname', 'vm1', 'vm2'],
    ]) {
      assert.is(guestGet(vm1.ns, `http://10.7.1.1/latest/${path}`).body, v1, path);
      assert.is(guestGet(vm2.ns, `http://10.7.1.1/latest/${path}`).body, v2, path);
    }
    assert.is(guestGet(vm2.ns, 'http://10.7.1.1/latest/meta-data/password-checksum').status, 404, 'vm2 has no checksum, and never sees vm1\'s');
    assert.is(guestGet(vm1.ns, 'http://10.7.1.1/latest/meta-data/vm_password').status, 404, 'the password is not in the metadata tree');

    // single-value commands change one file of one VM
    await runCommand(engine, { command: 'save-userdata', ...net, ip: '10.7.1.10', userdata: 'new user data' });
    await runCommand(engine, { command: 'save-sshkey', ...net, ip: '10.7.1.11', sshkey: 'ssh-rsa AAAAB3new k@x' });
    await runCommand(engine, { command: 'save-hypervisor-hostname', ...net, ip: '10.7.1.11', hypervisorHostname: 'kvm-host-7' });
    assert.is(guestGet(vm1.ns, 'http://10.7.1.1/latest/user-data').body, 'new user data');
    assert.is(guestGet(vm2.ns, 'http://10.7.1.1/latest/user-data').body, '#cloud-config\nhostname: vm2\n');
    assert.is(guestGet(vm2.ns, 'http://10.7.1.1/latest/meta-data/public-keys').body, 'ssh-rsa AAAAB3new k@x');
    assert.is(guestGet(vm2.ns, 'http://10.7.1.1/latest/meta-data/hypervisor-host-name').body, 'kvm-host-7');
    assert.is(guestGet(vm1.ns, 'http://10.7.1.1/latest/meta-data/hypervisor-host-name').status, 404);

    // password: pending until acknowledged, then never again — not after other commands, not after a reconcile
    assert.is(passwordRequest(vm2.ns, '10.7.1.1', 'send_my_password').body, 'saved_password');
    assert.is(passwordRequest(vm1.ns, '10.7.1.1', 'send_my_password').body, 'Pw-one!');
    const w = nsTry(vm1.ns, ['busybox', 'wget', '-q', '-O', '-', '--header', 'DomU_Request: saved_password', '10.7.1.1:8080']);
    assert.is(w.stdout, 'saved_password');
    assert.is(passwordRequest(vm1.ns, '10.7.1.1', 'send_my_password').body, 'saved_password');
    await runCommand(engine, { command: 'save-userdata', ...net, ip: '10.7.1.10', userdata: 'again' });
    assert.is(vd.vmdataState(engine.store.load(ns)!).vms['10.7.1.10'].password, undefined, 'the delivered password left the model');
    await engine.reconcile(engine.store.load(ns)!);
    assert.is(passwordRequest(vm1.ns, '10.7.1.1', 'send_my_password').body, 'saved_password', 'not re-served after a full reconcile');
    // the same password saved again is a new password to deliver
    await runCommand(engine, { command: 'save-password', ...net, ip: '10.7.1.10', password: 'Pw-one!' });
    assert.is(passwordRequest(vm1.ns, '10.7.1.1', 'send_my_password').body, 'Pw-one!');
    assert.is(passwordRequest(vm2.ns, '10.7.1.1', 'send_my_password').body, 'saved_password', 'never another VM\'s password');

    // release-nic: vm1's data and pending password go, vm2 keeps its own
    await runCommand(engine, { command: 'release-nic', ...net, ip: '10.7.1.10', mac: '02:00:00:07:01:0a', defaultNic: true });
    assert.is(guestGet(vm1.ns, 'http://10.7.1.1/latest/user-data').status, 404);
    assert.is(passwordRequest(vm1.ns, '10.7.1.1', 'send_my_password').body, 'saved_password');
    assert.is(guestGet(vm2.ns, 'http://10.7.1.1/latest/meta-data/instance-id').body, 'i-2-vm2-VM');

    // prepare-nic: an address reused by another VM (other MAC) never gets the previous VM's data
    await runCommand(engine, { command: 'prepare-nic', ...net, ip: '10.7.1.11', mac: '02:00:00:07:01:0b', defaultNic: true });
    assert.is(guestGet(vm2.ns, 'http://10.7.1.1/latest/meta-data/instance-id').body, 'i-2-vm2-VM', 'same MAC: kept');
    await runCommand(engine, { command: 'prepare-nic', ...net, ip: '10.7.1.11', mac: '02:00:00:07:01:cc', defaultNic: true });
    assert.is(guestGet(vm2.ns, 'http://10.7.1.1/latest/meta-data/instance-id').status, 404, 'other MAC: the old VM\'s data are gone');

    // the new VM's data are for the new NIC only: the old one (still at the address) is not answered
    await save('10.7.1.11', vmRows('vm2b', '10.7.1.11'));
    assert.is(guestGet(vm2.ns, 'http://10.7.1.1/latest/meta-data/instance-id').status, 404, 'the old NIC does not get the new VM\'s data');
    nsExec(vm2.ns, ['ip', 'link', 'set', 'eth0', 'address', '02:00:00:07:01:cc']);
    nsExec(vm2.ns, ['ip', 'neigh', 'flush', 'all']); // a booting VM has no ARP cache: it asks, and the router learns its MAC
    assert.is(guestGet(vm2.ns, 'http://10.7.1.1/latest/meta-data/instance-id').body, 'i-2-vm2b-VM', 'the new NIC does');

    // shutdown keeps the data, the daemon lets go of the namespace; re-implement serves again
    await runCommand(engine, { command: 'shutdown-network', ...net });
    assert.not.ok(netnsExists(ns));
    assert.equal((await daemonStatus(stateDir))?.routers ?? [], [], 'no listener kept for a shut-down router');
    await runCommand(engine, { command: 'implement-network', ...net });
    assert.is(guestGet(vm2.ns, 'http://10.7.1.1/latest/local-hostname').body, 'vm2b', 'served again after re-implement');

    await runCommand(engine, { command: 'destroy-network', ...net });
    assert.not.ok(existsSync(routerDir(stateDir, ns)), 'a destroyed router\'s data go with it');
    assert.equal(vd.collectOrphans(stateDir), [], 'nothing left for a later teardown');
  }, { stop: killRouterDaemons });
});

test('VPC: tiers share the router and the daemon; each tier\'s guests see their own data; a destroyed tier stops being served', async () => {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'nr-md-'));
  const vpcId = String(900 + Math.floor(Math.random() * 90));
  const ns = s.track(`cs-vpc-${vpcId}`);
  try {
    const { hostNs, h } = simulatedHost(s);
    const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    await runCommand(engine, { command: 'implement-vpc', vpcId, namespace: ns, vpcCidr: cidr('10.20.0.0/16') });
    for (const t of [1, 2]) {
      await runCommand(engine, { command: 'implement-network', networkId: `7${t}`, vpcId, namespace: ns, segment: { kind: 'vxlan', vni: 9200 + t }, gateway: `10.20.${t}.1`, cidr: cidr(`10.20.${t}.0/24`) });
    }
    const a = addVm(s, h, 'brvx-9201', '10.20.1.10/24', '10.20.1.1');
    const b = addVm(s, h, 'brvx-9202', '10.20.2.10/24', '10.20.2.1');
    for (const [t, ip] of [[1, '10.20.1.10'], [2, '10.20.2.10']] as const) {
      await runCommand(engine, { command: 'save-vm-data', networkId: `7${t}`, vpcId, namespace: ns, ip, vmData: { value: vmRows(`tier${t}`, ip), source: '--vm-data' } });
    }
    assert.is(guestGet(a.ns, 'http://10.20.1.1/latest/local-hostname').body, 'tier1');
    assert.is(guestGet(b.ns, 'http://10.20.2.1/latest/local-hostname').body, 'tier2');
    assert.is(guestGet(a.ns, 'http://10.20.2.1/latest/local-hostname').body, 'tier1', 'the other tier\'s address answers with the caller\'s own data');
    const st = (await daemonStatus(stateDir))!;
    assert.equal(st.routers.find((r) => r.namespace === ns)?.listening, ['10.20.1.1:80', '10.20.1.1:8080', '10.20.2.1:80', '10.20.2.1:8080']);

    await runCommand(engine, { command: 'destroy-network', networkId: '71', vpcId, namespace: ns });
    assert.is(guestGet(b.ns, 'http://10.20.2.1/latest/local-hostname').body, 'tier2');
    assert.equal((await daemonStatus(stateDir))!.routers.find((r) => r.namespace === ns)?.listening, ['10.20.2.1:80', '10.20.2.1:8080']);
    assert.is(guestGet(a.ns, 'http://10.20.1.1/latest/local-hostname').status, 0, 'tier 1 gone');
    await runCommand(engine, { command: 'destroy-vpc', vpcId, namespace: ns });
    assert.not.ok(netnsExists(ns));
  } finally {
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('CLI: traversal, unknown entries, oversize and malformed base64 exit 1 naming the argument; nothing changes; no secret in logs or process arguments', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-md-cli-'));
  const stateDir = join(dir, 'state');
  const id = String(4000 + Math.floor(Math.random() * 900));
  const ns = s.track(`cs-net-${id}`);
  const SECRET = `S3cr3t-${id}-marker`;
  try {
    const { hostNs, h } = simulatedHost(s);
    const logFile = join(dir, 'log');
    const g = ['--host-netns', hostNs, '--state-dir', stateDir, '--log-file', logFile];
    const cli = (...a: string[]) => spawnSync(process.execPath, [CLI, ...a, ...g], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, NETNS_ROUTER_USERDATA_MAX_LENGTH: '' } });
    const vni = 6000 + Number(id) % 1000;
    let r = cli('implement-network', '--network-id', id, '--vlan', `vxlan://${vni}`, '--gateway', '10.8.1.1', '--cidr', '10.8.1.0/24');
    assert.is(r.status, 0, r.stderr);
    const vm = addVm(s, h, `brvx-${vni}`, '10.8.1.10/24', '10.8.1.1');
    const payload = (name: string, vmData: unknown, extra: Record<string, unknown> = {}) => {
      const p = join(dir, `${name}.json`);
      writeFileSync(p, JSON.stringify({ 'physical-network-extension-details': {}, 'network-extension-details': {}, payload: { network_id: id, ip: '10.8.1.10', vm_data: vmData, ...extra } }));
      return p;
    };
    // this command starts the daemon; its caller's environment carries a secret detail blob
    const detailsEnv = { ...process.env, CS_PHYSICAL_NETWORK_EXTENSION_DETAILS: JSON.stringify({ password: SECRET }) };
    r = spawnSync(process.execPath, [CLI, 'save-vm-data', payload('ok', vmRows('cli', '10.8.1.10', [{ dir: 'password', file: 'vm_password', content: SECRET }])), '60', ...g], { encoding: 'utf8', timeout: 30_000, env: detailsEnv });
    assert.is(r.status, 0, r.stderr);
    assert.is(passwordRequest(vm.ns, '10.8.1.1', 'send_my_password').body, SECRET);

    const stateFile = join(stateDir, 'routers', `${ns}.json`);
    const before = readFileSync(stateFile, 'utf8');
    const blobs = () => readdirSync(join(stateDir, 'vmdata', ns, 'blobs')).sort();
    const blobsBefore = blobs();
    const bad: Array<[string, unknown, RegExp]> = [
      ['traversal-file', [{ dir: 'metadata', file: '../../../etc/cron.d/x', content: SECRET }], /payload\.vm_data\[0\].*plain name/],
      ['traversal-dir', [{ dir: '../metadata', file: 'x', content: SECRET }], /payload\.vm_data\[0\]/],
      ['slash', [{ dir: 'metadata', file: 'a/b', content: SECRET }], /plain name/],
      ['dotdot', [{ dir: 'metadata', file: '..', content: SECRET }], /plain name/],
      ['unknown-dir', [{ dir: 'openstack', file: 'x', content: SECRET }], /unknown dir/],
      ['not-array', { dir: 'metadata' }, /JSON array/],
      ['non-string', [{ dir: 'metadata', file: 'x', content: 42 }], /"content" must be a string/],
      ['oversize-userdata', [{ dir: 'userdata', file: 'user-data', content: 'u'.repeat(24_577) }, { dir: 'password', file: 'vm_password', content: SECRET }], /more than the limit of 32768/],
      ['oversize-entry', [{ dir: 'metadata', file: 'big', content: 'm'.repeat(70_000) }], /limit of 65536/],
      ['newline-password', [{ dir: 'password', file: 'vm_password', content: `${SECRET}\nx` }], /line break/],
    ];
    for (const [name, doc, why] of bad) {
      r = spawnSync(process.execPath, [CLI, 'save-vm-data', payload(name, doc), '60', ...g], { encoding: 'utf8', timeout: 30_000 });
      assert.is(r.status, 1, `${name}: exit 1 (${r.stderr})`);
      assert.match(r.stderr, why, name);
      assert.not.match(r.stderr, SECRET, `${name}: no secret on stderr`);
    }
    r = cli('save-vm-data', '--network-id', id, '--ip', '10.8.1.10', '--vm-data', 'bm90IGpzb24*!!');
    assert.is(r.status, 1, 'malformed base64 → exit 1');
    assert.match(r.stderr, '--vm-data');
    const b64file = join(dir, 'vmdata.b64');
    writeFileSync(b64file, Buffer.from('[{"dir":"metadata","file":"x","content":"y"').toString('base64'));
    r = cli('save-vm-data', '--network-id', id, '--ip', '10.8.1.10', '--vm-data-file', b64file);
    assert.is(r.status, 1, 'base64 of broken JSON → exit 1');
    assert.match(r.stderr, '--vm-data-file');
    r = cli('save-userdata', '--network-id', id, '--ip', '10.8.1.10', '--userdata', 'x'.repeat(24_577));
    assert.is(r.status, 1);
    assert.match(r.stderr, /userdata: .*limit/);
    r = cli('save-password', '--network-id', id, '--ip', '10.8.1.10', '--password', `a\nb${SECRET}`);
    assert.is(r.status, 1);
    r = cli('save-vm-data', '--network-id', '999999', '--ip', '10.8.1.10', '--vm-data', '[]');
    assert.is(r.status, 1, 'unknown network → exit 1');
    assert.is(readFileSync(stateFile, 'utf8'), before, 'state unchanged by every rejected command');
    assert.equal(blobs(), blobsBefore, 'no content stored by a rejected command');
    assert.is(guestGet(vm.ns, 'http://10.8.1.1/latest/local-hostname').body, 'cli', 'still served as before');

    // the limit is configurable (CloudStack's setting name as a physical-network detail)
    const big = 'u'.repeat(40_000);
    r = spawnSync(process.execPath, [CLI, 'save-vm-data', payload('big', [{ dir: 'userdata', file: 'user-data', content: big }], {}), '60', ...g,
      '--physical-network-extension-details', JSON.stringify({ 'vm.userdata.max.length': '65536' })], { encoding: 'utf8', timeout: 30_000 });
    assert.is(r.status, 0, r.stderr);
    assert.is(guestGet(vm.ns, 'http://10.8.1.1/latest/user-data').body.length, 40_000);
    // the option form with a base64 document
    writeFileSync(b64file, Buffer.from(JSON.stringify([{ dir: 'metadata', file: 'vm-id', content: 'from-b64' }])).toString('base64'));
    r = cli('save-vm-data', '--network-id', id, '--ip', '10.8.1.10', '--vm-data-file', b64file);
    assert.is(r.status, 0, r.stderr);
    assert.is(guestGet(vm.ns, 'http://10.8.1.1/latest/meta-data/vm-id').body, 'from-b64');

    const log = readFileSync(logFile, 'utf8');
    assert.not.match(log, SECRET, 'no password in the log');
    assert.not.match(log, 'AAAAC3cli', 'no key in the log');
    assert.not.match(log, 'hostname: cli', 'no user data in the log');
    const daemonLog = readFileSync(join(stateDir, 'run', 'metadata.log'), 'utf8');
    assert.not.match(daemonLog, SECRET);
    const pid = daemonPid(stateDir)!;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    assert.not.match(cmdline, SECRET, 'no secret in the daemon\'s arguments');
    assert.not.match(readFileSync(`/proc/${pid}/environ`, 'utf8'), SECRET, 'nor in its environment');
    assert.match(cmdline, '--netns-router-metadata');
    assert.ok(!readFileSync(stateFile, 'utf8').includes(SECRET), 'no secret in the router state (dump-config prints it)');
    r = cli('custom-action', '--network-id', id, '--action', 'dump-config');
    assert.is(r.status, 0, r.stderr);
    assert.not.match(r.stdout, SECRET);
  } finally {
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
