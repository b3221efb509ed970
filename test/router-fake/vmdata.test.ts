/**
 * The VM-data module's logic on the in-memory kernel (FakeKernel, FakeMetadata): what each save-* command, the NIC
 * hooks, restore-network, shutdown and destroy leave served to which VM (the files the daemon reads), what the
 * metadata daemon is told (started, router registered, synced, let go of before its namespace goes), a reboot
 * (restoreAll on a new kernel: data and pending passwords back, delivered ones not), a socket the daemon cannot
 * bind failing the command with the router as it was, a destroyed
 * VPC tier's VMs forgotten, the daemon's refusals, and plans of these commands (no secret in them). No root, no
 * daemon process. What guests get over HTTP (each VM only its own data, a password once, the requester check)
 * stays with test/router/vmdata*.test.ts and test/services/metadata*.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterEngine } from '../../lib/router/engine.js';
import { commandContext, runCommand } from '../../lib/router/command-table.js';
import { requestFromValues } from '../../lib/router/contract/plain-values.js';
import type { CommandInputs } from '../../lib/router/contract/inputs.js';
import type { EngineCommand } from '../../lib/router/contract/types.js';
import { FakeKernel, type FakeMetadata } from '../../lib/router/fake-kernel.js';
import { PlanRecorder, planJson, type PlanStep } from '../../lib/router/plan.js';
import { ROUTER_TABLE } from '../../lib/router/router-table.js';
import { ARP_TABLE } from '../../lib/router/arp-responder.js';
import * as vd from '../../lib/router/vmdata/index.js';
import { servedFiles } from '../../lib/router/vmdata/module.js';
import { MetadataError, blobDir, listenFile, routerDir, vmDir } from '../../lib/services/metadata/index.js';

function setup() {
  const stateDir = mkdtempSync(join(tmpdir(), 'nr-fake-vmdata-'));
  const k = new FakeKernel({ devices: ['eth1'] });
  const engine = new RouterEngine({ stateDir, devices: { guest: 'eth1', public: 'eth1' }, kernel: k });
  const run = <C extends EngineCommand>(c: C, input: CommandInputs[C]) => runCommand(engine, requestFromValues(c, input, { networkDetails: {} }));
  const md = k.metadata(stateDir) as FakeMetadata;
  /** The command as a plan, on an overlay of this fake kernel (what --dry-run does on the real one). */
  const plan = async <C extends EngineCommand>(c: C, input: CommandInputs[C]): Promise<{ steps: PlanStep[]; json: string }> => {
    const overlay = await FakeKernel.overlay(k, { tables: (ns) => (ns === undefined ? [] : [ROUTER_TABLE, ARP_TABLE]) });
    try {
      const rec = new PlanRecorder(overlay);
      const pe = new RouterEngine({ stateDir, devices: { guest: 'eth1', public: 'eth1' }, kernel: overlay, plan: rec });
      const ctx = commandContext(pe);
      await runCommand(pe, requestFromValues(c, input, { networkDetails: {} }), { ...ctx, settings: { ...ctx.settings, dryRun: 'json' } });
      return { steps: rec.steps, json: planJson({ command: c, changes: rec.steps }) };
    } finally {
      overlay.dispose();
    }
  };
  return { k, engine, run, md, plan, stateDir, done: () => rmSync(stateDir, { recursive: true, force: true }) };
}

/** generateVmData-like rows for one VM (secret-looking values, to look for in what must not hold them). */
function vmRows(name: string, ip: string, extra: Array<{ dir: string; file: string; content: string }> = []) {
  return [
    { dir: 'userdata', file: 'user-data', content: `#cloud-config\nhostname: ${name}\n` },
    { dir: 'metadata', file: 'local-ipv4', content: ip },
    { dir: 'metadata', file: 'local-hostname', content: name },
    { dir: 'metadata', file: 'instance-id', content: `i-2-${name}-VM` },
    { dir: 'metadata', file: 'vm-id', content: `uuid-${name}` },
    { dir: 'metadata', file: 'public-keys', content: `ssh-ed25519 AAAAC3Key${name} ${name}@example` },
    ...extra,
  ];
}

const read = (stateDir: string, ns: string, ip: string, rel: string): string | undefined => {
  const p = join(vmDir(stateDir, ns, ip), rel);
  return existsSync(p) ? readFileSync(p, 'utf8') : undefined;
};
const readListen = (stateDir: string, ns: string): string => readFileSync(listenFile(stateDir, ns), 'utf8');
/** Every file below a directory, with its content (to look for secrets where they must not be). */
function allFiles(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      const st = statSync(p);
      if (st.isDirectory()) walk(p); else if (st.isFile()) out.set(p, readFileSync(p, 'utf8'));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

test('save-* commands: each VM\'s served files and MAC; the daemon started once and told each change; release and prepare-nic of another MAC drop a VM\'s data', async () => {
  const { k, run, md, stateDir, engine, done } = setup();
  try {
    const net = { networkId: 61 };
    const ns = 'cs-net-61';
    await run('implement-network', { ...net, vlan: 'vxlan://5061', gateway: '10.61.0.1', cidr: '10.61.0.0/24' });
    assert.is(md.pid(), undefined, 'no daemon without VM data');
    assert.not.ok(existsSync(routerDir(stateDir, ns)), 'nothing stored either');

    await run('prepare-nic', { ...net, ip: '10.61.0.10', mac: '02:00:00:61:00:0a', defaultNic: true });
    await run('save-vm-data', { ...net, ip: '10.61.0.10', vmData: vmRows('vm1', '10.61.0.10', [{ dir: 'password', file: 'vm_password', content: 'Pw-one!' }]) });
    assert.equal(md.actions, ['start', `register ${ns}`], 'started, then the router registered');
    assert.equal(md.listening(ns), ['10.61.0.1:80', '10.61.0.1:8080']);
    const pid = md.pid();
    assert.ok(pid);
    assert.equal(servedFiles(stateDir, ns, '10.61.0.10'), ['ec2.json', 'meta-data/instance-id', 'meta-data/local-hostname', 'meta-data/local-ipv4', 'meta-data/public-keys',
      'meta-data/vm-id', 'openstack/meta_data.json', 'openstack/network_data.json', 'password-1', 'user-data'], 'the rows, the password, the generated documents');
    assert.match(read(stateDir, ns, '10.61.0.10', 'openstack/meta_data.json')!, '"uuid": "uuid-vm1"');
    assert.is(read(stateDir, ns, '10.61.0.10', 'mac'), '02:00:00:61:00:0a\n', 'the NIC prepare-nic described: only it is answered');
    assert.is(read(stateDir, ns, '10.61.0.10', 'password-1'), 'Pw-one!');
    const st = readFileSync(join(stateDir, 'routers', `${ns}.json`), 'utf8');
    for (const secret of ['Pw-one!', 'AAAAC3Keyvm1', 'hostname: vm1']) assert.not.match(st, secret, 'the stored state holds blob ids, never contents');

    await run('save-vm-data', { ...net, ip: '10.61.0.11', vmData: vmRows('vm2', '10.61.0.11') });
    assert.is(read(stateDir, ns, '10.61.0.11', 'mac'), undefined, 'no MAC known: served by address');
    assert.equal(md.actions, ['start', `register ${ns}`], 'same listeners: the daemon has nothing new to do');
    assert.is(md.pid(), pid);

    await run('save-sshkey', { ...net, ip: '10.61.0.11', sshkey: 'ssh-rsa AAAAB3new k@x' });
    await run('save-userdata', { ...net, ip: '10.61.0.10', userdata: 'new user data' });
    await run('save-hypervisor-hostname', { ...net, ip: '10.61.0.11', hypervisorHostname: 'kvm-7' });
    assert.is(read(stateDir, ns, '10.61.0.11', 'meta-data/public-keys'), 'ssh-rsa AAAAB3new k@x');
    assert.is(read(stateDir, ns, '10.61.0.10', 'user-data'), 'new user data');
    assert.is(read(stateDir, ns, '10.61.0.11', 'user-data'), '#cloud-config\nhostname: vm2\n', 'the other VM\'s untouched');
    assert.is(read(stateDir, ns, '10.61.0.11', 'meta-data/hypervisor-host-name'), 'kvm-7');
    assert.is(read(stateDir, ns, '10.61.0.10', 'meta-data/hypervisor-host-name'), undefined);

    // a password saved again is a new one to deliver (a new serial); the replaced one's blob goes
    await run('save-password', { ...net, ip: '10.61.0.10', password: 'Pw-two!' });
    assert.equal(servedFiles(stateDir, ns, '10.61.0.10').filter((f) => f.startsWith('password-')), ['password-2']);
    assert.is(read(stateDir, ns, '10.61.0.10', 'password-2'), 'Pw-two!');
    const blobs = () => [...allFiles(blobDir(stateDir, ns)).values()];
    assert.not.ok(blobs().includes('Pw-one!'), 'the replaced password is not kept');
    assert.ok(blobs().includes('Pw-two!'), 'positive control: the pending one is');
    // the guest acknowledges it (the daemon writes delivered-<serial>): the next command drops it for good
    writeFileSync(join(vmDir(stateDir, ns, '10.61.0.10'), 'delivered-2'), '');
    await run('save-userdata', { ...net, ip: '10.61.0.10', userdata: 'again' });
    assert.is(vd.vmdataState(engine.store.load(ns)!).vms['10.61.0.10'].password, undefined, 'the delivered password left the model');
    assert.not.ok(blobs().includes('Pw-two!'), 'and its blob the disk');
    assert.not.ok(servedFiles(stateDir, ns, '10.61.0.10').some((f) => f.startsWith('password-')), 'never served again');

    // release-nic: that VM's data go, the other keeps its own
    await run('release-nic', { ...net, ip: '10.61.0.10', mac: '02:00:00:61:00:0a', defaultNic: true });
    assert.equal(servedFiles(stateDir, ns, '10.61.0.10'), []);
    assert.not.ok(blobs().includes('new user data') || blobs().includes('again'), 'its blobs are gone');
    assert.is(read(stateDir, ns, '10.61.0.11', 'meta-data/instance-id'), 'i-2-vm2-VM');

    // prepare-nic: the same MAC keeps the data; another MAC at the address is another VM
    await run('add-dhcp-entry', { ...net, mac: '02:00:00:61:00:0b', ip: '10.61.0.11', hostname: 'vm2', defaultNic: true });
    await run('prepare-nic', { ...net, ip: '10.61.0.11', mac: '02:00:00:61:00:0b', defaultNic: true });
    assert.is(read(stateDir, ns, '10.61.0.11', 'meta-data/instance-id'), 'i-2-vm2-VM', 'same MAC: kept');
    assert.is(read(stateDir, ns, '10.61.0.11', 'mac'), '02:00:00:61:00:0b\n');
    await run('prepare-nic', { ...net, ip: '10.61.0.11', mac: '02:00:00:61:00:cc', defaultNic: true });
    assert.equal(servedFiles(stateDir, ns, '10.61.0.11'), [], 'other MAC: the old VM\'s data are gone');
    assert.is(read(stateDir, ns, '10.61.0.11', 'mac'), '02:00:00:61:00:cc\n', 'the address now belongs to the new NIC');
    assert.equal(md.actions, ['start', `register ${ns}`], 'the same listeners');

    // the new VM's data: for the new NIC only
    await run('save-vm-data', { ...net, ip: '10.61.0.11', vmData: vmRows('vm2b', '10.61.0.11') });
    assert.is(read(stateDir, ns, '10.61.0.11', 'meta-data/instance-id'), 'i-2-vm2b-VM');
    assert.is(read(stateDir, ns, '10.61.0.11', 'mac'), '02:00:00:61:00:cc\n');
    assert.is(md.pid(), pid, 'one daemon all along');
    assert.equal((await md.status())?.routers, [{ namespace: ns, listening: ['10.61.0.1:80', '10.61.0.1:8080'], connections: 0 }]);
    assert.equal(k.namespaces(), [ns]);
  } finally {
    done();
  }
});

test('shutdown lets go of the router before its namespace goes and keeps the data; implement serves them again; destroy removes them', async () => {
  const { k, run, md, stateDir, done } = setup();
  try {
    const net = { networkId: 62 };
    const ns = 'cs-net-62';
    await run('implement-network', { ...net, vlan: 'vxlan://5062', gateway: '10.62.0.1', cidr: '10.62.0.0/24' });
    await run('save-vm-data', { ...net, ip: '10.62.0.10', vmData: vmRows('vm1', '10.62.0.10') });
    await run('shutdown-network', net);
    assert.not.ok(k.netnsExists(ns));
    assert.equal(md.heldDeleted(), [], 'no socket keeps the deleted namespace alive');
    assert.equal(md.actions, ['start', `register ${ns}`, `unregister ${ns}`]);
    assert.not.ok(existsSync(listenFile(stateDir, ns)));
    assert.equal(servedFiles(stateDir, ns, '10.62.0.10').includes('user-data'), true, 'the data stay for a re-implement');

    md.idleExit();
    assert.is(md.pid(), undefined, 'nothing left to serve: it exits when idle');
    await run('implement-network', net);
    assert.equal(md.actions.slice(-3), ['idle exit', 'start', `register ${ns}`], 'served again, by a new daemon');
    assert.equal(md.listening(ns), ['10.62.0.1:80', '10.62.0.1:8080']);

    // the daemon dies (kill -9): the next command starts it and it serves the router again
    md.kill();
    await run('save-sshkey', { ...net, ip: '10.62.0.10', sshkey: 'ssh-ed25519 AAAAnew n@x' });
    assert.equal(md.actions.slice(-3), ['killed', 'start', `register ${ns}`]);

    await run('destroy-network', net);
    assert.equal(md.heldDeleted(), []);
    assert.equal(md.listening(ns), []);
    assert.not.ok(existsSync(routerDir(stateDir, ns)), 'a destroyed router\'s data go with it');
    assert.equal(vd.collectOrphans(stateDir), []);
  } finally {
    done();
  }
});

test('VPC: one daemon serves both tiers; a destroyed tier\'s VMs are forgotten and its sockets closed; restore-network records NICs and rebuilds the data', async () => {
  const { run, md, stateDir, engine, done } = setup();
  try {
    const vpc = { vpcId: 9 };
    const ns = 'cs-vpc-9';
    await run('implement-vpc', { ...vpc, vpcCidr: '10.20.0.0/16' });
    for (const t of [1, 2]) await run('implement-network', { networkId: 70 + t, ...vpc, vlan: `vxlan://${9200 + t}`, gateway: `10.20.${t}.1`, cidr: `10.20.${t}.0/24` });
    for (const t of [1, 2]) await run('save-vm-data', { networkId: 70 + t, ...vpc, ip: `10.20.${t}.10`, vmData: vmRows(`tier${t}`, `10.20.${t}.10`) });
    assert.equal(md.listening(ns), ['10.20.1.1:80', '10.20.1.1:8080', '10.20.2.1:80', '10.20.2.1:8080']);
    assert.equal(md.actions, ['start', `register ${ns}`, `sync ${ns}`], 'the second tier: the same router synced');

    await run('destroy-network', { networkId: 71, ...vpc });
    assert.equal(Object.keys(vd.vmdataState(engine.store.load(ns)!).vms), ['10.20.2.10'], 'tier 1\'s VM forgotten in the same change');
    assert.equal(md.listening(ns), ['10.20.2.1:80', '10.20.2.1:8080']);
    assert.equal(servedFiles(stateDir, ns, '10.20.1.10'), []);
    assert.is(read(stateDir, ns, '10.20.2.10', 'meta-data/local-hostname'), 'tier2');

    // restore-network: the listed NICs recorded (their MACs served to), the listed VMs' data exactly
    await run('restore-network', {
      networkId: 72, ...vpc, restoreData: {
        dhcp_enabled: false, dns_enabled: false, userdata_enabled: true, vms: [
          { ip: '10.20.2.10', mac: '02:00:00:20:02:0a', hostname: 'tier2', default_nic: true, vm_data: vmRows('tier2r', '10.20.2.10') },
          { ip: '10.20.2.11', mac: '02:00:00:20:02:0b', hostname: 'other', default_nic: true },
        ],
      },
    });
    const s = vd.vmdataState(engine.store.load(ns)!);
    assert.equal(Object.keys(s.nics ?? {}).sort(), ['10.20.2.10', '10.20.2.11']);
    assert.is(read(stateDir, ns, '10.20.2.10', 'meta-data/local-hostname'), 'tier2r');
    assert.is(read(stateDir, ns, '10.20.2.10', 'mac'), '02:00:00:20:02:0a\n');
    assert.equal(servedFiles(stateDir, ns, '10.20.2.11'), [], 'a NIC without data: nothing served');
    await run('destroy-vpc', vpc);
    assert.equal(md.heldDeleted(), []);
    assert.equal((await md.status())?.routers, []);
  } finally {
    done();
  }
});

test('a reboot (a new kernel: every namespace and the daemon gone, the state directory kept): restoreAll brings the routers, their data and pending passwords back; a delivered one stays delivered', async () => {
  const { run, stateDir, done } = setup();
  try {
    for (const id of [65, 66]) {
      await run('implement-network', { networkId: id, vlan: `vxlan://50${id}`, gateway: `10.${id}.0.1`, cidr: `10.${id}.0.0/24` });
      for (const host of [10, 11]) {
        const ip = `10.${id}.0.${host}`;
        await run('save-vm-data', { networkId: id, ip, vmData: vmRows(`vm${id}-${host}`, ip, [{ dir: 'password', file: 'vm_password', content: `pw-${ip}` }]) });
      }
    }
    writeFileSync(join(vmDir(stateDir, 'cs-net-65', '10.65.0.10'), 'delivered-1'), ''); // the guest took its password
    const before = servedFiles(stateDir, 'cs-net-66', '10.66.0.11');

    // the machine reboots: a kernel with nothing in it, no daemon; the same state directory
    const k2 = new FakeKernel({ devices: ['eth1'] });
    const engine2 = new RouterEngine({ stateDir, devices: { guest: 'eth1', public: 'eth1' }, kernel: k2 });
    const md2 = k2.metadata(stateDir) as FakeMetadata;
    assert.is(md2.pid(), undefined);
    const restored = await engine2.restoreAll();
    assert.equal([...restored].sort(), ['cs-net-65', 'cs-net-66']);
    assert.equal(k2.namespaces(), ['cs-net-65', 'cs-net-66']);
    assert.ok(md2.pid() !== undefined, 'the daemon is started again');
    assert.equal(md2.actions[0], 'start', 'once');
    assert.equal(md2.actions.filter((a) => a === 'start').length, 1);
    for (const id of [65, 66]) assert.equal(md2.listening(`cs-net-${id}`), [`10.${id}.0.1:80`, `10.${id}.0.1:8080`]);
    assert.equal(servedFiles(stateDir, 'cs-net-66', '10.66.0.11'), before, 'the data as they were');
    const pending = servedFiles(stateDir, 'cs-net-66', '10.66.0.11').find((f) => f.startsWith('password-'));
    assert.is(pending && read(stateDir, 'cs-net-66', '10.66.0.11', pending), 'pw-10.66.0.11', 'a pending password is still pending');
    assert.not.ok(servedFiles(stateDir, 'cs-net-65', '10.65.0.10').some((f) => f.startsWith('password-')), 'a delivered one is not served again');
    assert.ok(servedFiles(stateDir, 'cs-net-65', '10.65.0.11').some((f) => f.startsWith('password-')), 'positive control: its neighbour\'s still is');
  } finally {
    done();
  }
});

test('IPv6 tier: fe80::a9fe:a9fe on the tier interface through the kernel, a link-local listener; both go with the last VM', async () => {
  const { k, run, md, done } = setup();
  try {
    const net = { networkId: 64 };
    const ns = 'cs-net-64';
    await run('implement-network', { ...net, vlan: 'vxlan://5064', gateway: '10.64.0.1', cidr: '10.64.0.0/24', networkIp6Gateway: 'fd00:64::1', networkIp6Cidr: 'fd00:64::/64' });
    const wellKnown = () => k.open(ns).netlink.addrList({ family: 6 }).filter((a) => a.ip === 'fe80::a9fe:a9fe').map((a) => a.dev);
    assert.equal(wellKnown(), [], 'not before any VM data');
    await run('prepare-nic', { ...net, ip: '10.64.0.10', mac: '02:00:00:64:00:0a', defaultNic: true });
    assert.equal(wellKnown(), [], 'nor for a NIC without data');
    await run('save-vm-data', { ...net, ip: '10.64.0.10', vmData: vmRows('v6vm', '10.64.0.10') });
    const dev = wellKnown();
    assert.is(dev.length, 1, 'on the tier interface');
    const index = k.open(ns).netlink.linkFind(dev[0]!)!.index;
    assert.equal(md.listening(ns), ['10.64.0.1:80', '10.64.0.1:8080', `[fe80::a9fe:a9fe%${dev[0]}#${index}]:80`]);
    assert.ok(readListen(md.stateDir, ns).includes('"macs":{"02:00:00:64:00:0a":"10.64.0.10"}'), 'an IPv6 requester is known by its MAC');
    await run('release-nic', { ...net, ip: '10.64.0.10', mac: '02:00:00:64:00:0a', defaultNic: true });
    assert.equal(wellKnown(), [], 'no VM data left: the address goes');
    assert.equal(md.listening(ns), []);
    assert.equal(md.actions, ['start', `register ${ns}`, `unregister ${ns}`]);
  } finally {
    done();
  }
});

test('a socket the daemon cannot bind fails the command (exit 2, the system\'s text); the router stays as it was; the same command then succeeds', async () => {
  const { run, md, stateDir, engine, done } = setup();
  try {
    const net = { networkId: 67 };
    const ns = 'cs-net-67';
    await run('implement-network', { ...net, vlan: 'vxlan://5067', gateway: '10.67.0.1', cidr: '10.67.0.0/24' });
    md.occupied.add(`${ns} 10.67.0.1:8080`); // another program of the namespace holds the password port
    let err: unknown;
    try {
      await run('save-vm-data', { ...net, ip: '10.67.0.10', vmData: vmRows('vm1', '10.67.0.10') });
    } catch (e) {
      err = e;
    }
    assert.ok(err, 'the command fails');
    assert.is((err as { exitCode?: number }).exitCode, 2);
    assert.match((err as Error).message, 'EADDRINUSE');
    assert.equal(vd.vmdataState(engine.store.load(ns)!).vms, {}, 'the state is as it was');
    assert.equal(md.listening(ns), []);
    md.occupied.clear();
    await run('save-vm-data', { ...net, ip: '10.67.0.10', vmData: vmRows('vm1', '10.67.0.10') });
    assert.equal(md.listening(ns), ['10.67.0.1:80', '10.67.0.1:8080'], 'positive control: once the port is free');
    assert.is(read(stateDir, ns, '10.67.0.10', 'meta-data/local-hostname'), 'vm1');
  } finally {
    done();
  }
});

test('the fake daemon refuses as the real one: a missing namespace, a bad listen.json, a bad name; a sync without start does not start it', async () => {
  const { k, md, stateDir, done } = setup();
  try {
    assert.equal(await md.sync('cs-net-1', { start: false }), { namespace: 'cs-net-1', listening: [], connections: 0 });
    assert.is(md.pid(), undefined, 'not started');
    const spec = (ns: string, body: unknown) => {
      mkdirSync(routerDir(stateDir, ns), { recursive: true });
      writeFileSync(listenFile(stateDir, ns), JSON.stringify(body));
    };
    spec('cs-net-ghost', { namespace: 'cs-net-ghost', addresses: ['10.9.9.1'] });
    await md.sync('cs-net-1', { start: true }).catch(() => undefined); // started; its rescan fails on the ghost quietly
    assert.ok(md.pid() !== undefined);
    assert.equal(md.listening('cs-net-ghost'), []);
    try {
      await md.sync('cs-net-ghost', { start: true });
      assert.unreachable('a router whose namespace does not exist is refused');
    } catch (e) {
      assert.instance(e, MetadataError);
      assert.is((e as MetadataError).code, 'E_NO_NAMESPACE');
    }
    k.addNetns('cs-net-ghost');
    assert.equal((await md.sync('cs-net-ghost', { start: true })).listening, ['10.9.9.1:80', '10.9.9.1:8080'], 'positive control: once it exists');
    // made again under its name: new sockets (a sync), and the old instance is not held
    k.deleteNetns('cs-net-ghost');
    assert.equal(md.heldDeleted(), ['cs-net-ghost'], 'deleted under its sockets: held (what teardown prevents)');
    k.addNetns('cs-net-ghost');
    await md.sync('cs-net-ghost', { start: true });
    assert.equal(md.actions.at(-1), 'sync cs-net-ghost');
    assert.equal(md.heldDeleted(), []);

    spec('cs-net-bad', { namespace: 'cs-net-other', addresses: ['10.9.9.1'] });
    k.addNetns('cs-net-bad');
    let code: string | undefined;
    try { await md.sync('cs-net-bad', { start: true }); } catch (e) { code = (e as MetadataError).code; }
    assert.is(code, 'E_LISTEN', 'a listen.json for another router is refused');
    writeFileSync(listenFile(stateDir, 'cs-net-bad'), '{not json');
    code = undefined;
    try { await md.sync('cs-net-bad', { start: true }); } catch (e) { code = (e as MetadataError).code; }
    assert.is(code, 'E_LISTEN', 'a listen.json that is not JSON is refused');
    code = undefined;
    try { await md.sync('../etc', { start: true }); } catch (e) { code = (e as MetadataError).code; }
    assert.is(code, 'E_LISTEN', 'a bad name is refused');
    await md.stop();
    assert.is(md.pid(), undefined);
    assert.equal(await md.status(), undefined);
  } finally {
    done();
  }
});

test('plans: what the daemon would be told and which VMs\' data change, by file name; no password, user data or key; nothing done', async () => {
  const { run, md, plan, stateDir, done } = setup();
  try {
    const net = { networkId: 63 };
    const ns = 'cs-net-63';
    await run('implement-network', { ...net, vlan: 'vxlan://5063', gateway: '10.63.0.1', cidr: '10.63.0.0/24' });
    const SECRET_PW = 'Plan-Pw-Secret-7';
    const rows = vmRows('planvm', '10.63.0.10', [{ dir: 'password', file: 'vm_password', content: SECRET_PW }]);
    let p = await plan('save-vm-data', { ...net, ip: '10.63.0.10', vmData: rows });
    for (const secret of [SECRET_PW, 'AAAAC3Keyplanvm', 'hostname: planvm']) assert.not.match(p.json, secret, 'no secret in the plan');
    const by = (action: string, kind = 'service') => p.steps.filter((s) => s.kind === kind && s.action === action);
    assert.equal(by('start').map((s) => s.what), ['the metadata daemon (one for the host)']);
    assert.equal(by('register').map((s) => s.what), [`router ${ns} with the metadata daemon, served on 10.63.0.1:80 10.63.0.1:8080`]);
    assert.match(by('write', 'file').map((s) => s.what).join('\n'), 'the VM data served to 10.63.0.10 (tier 63, by address: no MAC known): meta-data/instance-id, meta-data/local-hostname, meta-data/local-ipv4, meta-data/public-keys, meta-data/vm-id, password-1, user-data');
    assert.ok(p.steps.some((s) => s.kind === 'file' && s.where === listenFile(stateDir, ns)), 'listen.json is written');
    assert.is(md.pid(), undefined, 'nothing was started');
    assert.not.ok(existsSync(routerDir(stateDir, ns)), 'nothing was stored');

    // the command then does what its plan said
    await run('save-vm-data', { ...net, ip: '10.63.0.10', vmData: rows });
    assert.equal(md.actions, ['start', `register ${ns}`]);

    p = await plan('prepare-nic', { ...net, ip: '10.63.0.10', mac: '02:00:00:63:00:0a', defaultNic: true });
    assert.equal(by('record').map((s) => s.what), ['NIC 02:00:00:63:00:0a at 10.63.0.10 (tier 63, default) for the metadata service']);
    assert.equal(p.steps.filter((s) => s.kind === 'file' && s.action === 'change').map((s) => s.what), ['the VM data served to 10.63.0.10: served to MAC 02:00:00:63:00:0a only']);
    assert.equal(by('register').length + by('sync').length + by('start').length, 0, 'the same listeners: the daemon is told nothing new');
    await run('prepare-nic', { ...net, ip: '10.63.0.10', mac: '02:00:00:63:00:0a', defaultNic: true });

    p = await plan('save-password', { ...net, ip: '10.63.0.10', password: 'Another-Secret-8' });
    assert.not.match(p.json, 'Another-Secret-8');
    assert.equal(p.steps.filter((s) => s.kind === 'file' && s.action === 'change').map((s) => s.what), ['the VM data served to 10.63.0.10: adds password-2; removes password-1']);
    assert.equal(p.steps.filter((s) => s.kind === 'file' && s.action === 'delete' && s.where === blobDir(stateDir, ns)).map((s) => s.what),
      ['1 stored blob no state needs any more (once the state is saved)'], 'the replaced password\'s blob goes');

    p = await plan('release-nic', { ...net, ip: '10.63.0.10', mac: '02:00:00:63:00:0a', defaultNic: true });
    assert.equal(by('release').map((s) => s.what), ['NIC 02:00:00:63:00:0a at 10.63.0.10 (tier 63) from the metadata service']);
    assert.equal(by('unregister').map((s) => s.what), [`router ${ns} from the metadata daemon (its sockets and connections there close)`]);
    assert.ok(p.steps.some((s) => s.kind === 'file' && s.action === 'delete' && s.where === vmDir(stateDir, ns, '10.63.0.10')));

    p = await plan('shutdown-network', net);
    assert.equal(by('unregister').length, 1, 'shutdown: the daemon lets go');
    assert.ok(p.steps.some((s) => s.kind === 'file' && s.action === 'delete' && s.where === listenFile(stateDir, ns)));
    assert.equal(md.actions, ['start', `register ${ns}`], 'plans did nothing to the daemon');
    assert.equal(md.listening(ns), ['10.63.0.1:80', '10.63.0.1:8080']);
  } finally {
    done();
  }
});

test.run();
