/**
 * Restore of the metadata/password service: after a "host reboot" (every router namespace deleted, the
 * daemon killed, only the state directory left) restoreAll() or restore-network brings routers, data and
 * pending passwords back exactly as stored; restore-network rebuilds a network's VMs from restore_data,
 * idempotently. Real guests fetch with curl.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { RouterEngine } from '../../lib/router/engine.js';
import { deleteNetns, netnsExists } from '../../lib/netns/namespaces.js';
import type * as T from '../../lib/router/contract/types.js';
import * as vd from '../../lib/router/vmdata/index.js';
import { daemonPid, daemonStatus, stopDaemon } from '../../lib/services/metadata/index.js';
import { Scratch, addVm, simulatedHost, cidr, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { guestGet, passwordRequest } from '../helpers/metadata.js';
import { addGuest, udhcpc, nslookup, dnsmasqPids } from '../helpers/dhcp.js';
import { runCommand } from '../../lib/router/command-table.js';

requireSandbox();
vd.vmdataSettings.daemonIdleExitMs = 500;
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

const rows = (name: string, extra: Array<{ dir: string; file: string; content: string }> = []) => [
  { dir: 'userdata', file: 'user-data', content: `user data of ${name}` },
  { dir: 'metadata', file: 'instance-id', content: `i-${name}` },
  { dir: 'metadata', file: 'local-hostname', content: name },
  ...extra,
];

/** The "reboot": the daemon killed hard, every router namespace gone; the state directory stays. */
async function reboot(stateDir: string, routers: string[]): Promise<void> {
  const pid = daemonPid(stateDir);
  if (pid) {
    process.kill(pid, 'SIGKILL');
    await waitFor(() => { try { process.kill(pid, 0); return false; } catch { return true; } }, 3000);
  }
  for (const ns of routers) deleteNetns(ns, { ifExists: true });
}

test('after a reboot restoreAll() brings every router back with its metadata, user data and pending passwords', async () => {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'nr-rs-'));
  const base = 100 + Math.floor(Math.random() * 800);
  const nets = [{ id: String(base), octet: 30 }, { id: String(base + 1), octet: 31 }];
  const nsOf = (id: string) => s.track(`cs-net-${id}`);
  try {
    const { hostNs, h } = simulatedHost(s);
    const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    const guests: Record<string, string> = {};
    for (const n of nets) {
      const ns = nsOf(n.id);
      await runCommand(engine, { command: 'implement-network', networkId: n.id, namespace: ns, segment: { kind: 'vxlan', vni: 7000 + n.octet }, gateway: `10.${n.octet}.1.1`, cidr: cidr(`10.${n.octet}.1.0/24`) });
      for (const host of [10, 11]) {
        const ip = `10.${n.octet}.1.${host}`;
        guests[ip] = addVm(s, h, `brvx-${7000 + n.octet}`, `${ip}/24`, `10.${n.octet}.1.1`).ns;
        await runCommand(engine, { command: 'save-vm-data', networkId: n.id, namespace: ns, ip, vmData: { value: rows(`vm-${ip}`, [{ dir: 'password', file: 'vm_password', content: `pw-${ip}` }]), source: '--vm-data' } } as T.SaveVmDataRequest);
      }
    }
    // one password already delivered before the reboot: it must stay delivered
    assert.is(passwordRequest(guests['10.30.1.10'], '10.30.1.1', 'send_my_password').body, 'pw-10.30.1.10');
    assert.is(passwordRequest(guests['10.30.1.10'], '10.30.1.1', 'saved_password').body, 'saved_password');

    const routers = nets.map((n) => `cs-net-${n.id}`);
    const pidBefore = daemonPid(stateDir);
    await reboot(stateDir, routers);
    for (const ip of Object.keys(guests)) assert.is(guestGet(guests[ip], `http://${ip.replace(/\.\d+$/, '.1')}/latest/user-data`).status, 0, 'down after the reboot');

    const t0 = Date.now();
    const restored = await engine.restoreAll();
    const ms = Date.now() - t0;
    assert.equal(restored.sort(), routers.sort());
    for (const ns of routers) assert.ok(netnsExists(ns));
    for (const [ip, g] of Object.entries(guests)) {
      const gw = ip.replace(/\.\d+$/, '.1');
      assert.equal(guestGet(g, `http://${gw}/latest/user-data`), { status: 200, body: `user data of vm-${ip}` }, ip);
      assert.is(guestGet(g, `http://${gw}/latest/meta-data/local-hostname`).body, `vm-${ip}`);
      assert.is(passwordRequest(g, gw, 'send_my_password').body, ip === '10.30.1.10' ? 'saved_password' : `pw-${ip}`, `password of ${ip}`);
    }
    const st = (await daemonStatus(stateDir))!;
    assert.ok(st.pid !== pidBefore, 'a new daemon');
    assert.equal(st.routers.map((r) => r.namespace).sort(), routers.sort(), 'one process serves both routers');
    const daemons = spawnSync('pgrep', ['-f', `metadata.*${stateDir}`], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
    assert.is(daemons.length, 1);
    console.log(`    restoreAll of ${routers.length} routers: ${ms} ms`);

    // idempotent: restoring again changes nothing
    const before = routers.map((ns) => readFileSync(join(stateDir, 'routers', `${ns}.json`), 'utf8'));
    await engine.restoreAll();
    assert.equal(routers.map((ns) => readFileSync(join(stateDir, 'routers', `${ns}.json`), 'utf8')), before);
    assert.is(guestGet(guests['10.31.1.11'], 'http://10.31.1.1/latest/user-data').body, 'user data of vm-10.31.1.11');
  } finally {
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('restore-network rebuilds a network\'s VMs from restore_data (idempotent; also after a reboot, through the CLI)', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-rs-'));
  const stateDir = join(dir, 'state');
  const id = String(5000 + Math.floor(Math.random() * 900));
  const ns = s.track(`cs-net-${id}`);
  try {
    const { hostNs, h } = simulatedHost(s);
    const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    const vni = 7100 + Number(id) % 800;
    await runCommand(engine, { command: 'implement-network', networkId: id, namespace: ns, segment: { kind: 'vxlan', vni }, gateway: '10.40.1.1', cidr: cidr('10.40.1.0/24') });
    const g: Record<string, string> = {};
    // the NICs restore_data names (the services answer a VM only from the MAC recorded for its address, and the
    // guest-segment filter binds each address to its NIC's MAC)
    for (const host of [10, 11, 12]) g[host] = addVm(s, h, `brvx-${vni}`, `10.40.1.${host}/24`, '10.40.1.1', `02:00:00:40:01:${host.toString(16).padStart(2, '0')}`).ns;
    const save = (ip: string, value: unknown) => runCommand(engine, { command: 'save-vm-data', networkId: id, namespace: ns, ip, vmData: { value, source: '--vm-data' } } as T.SaveVmDataRequest);
    await save('10.40.1.10', rows('ten'));
    await save('10.40.1.11', rows('eleven', [{ dir: 'password', file: 'vm_password', content: 'pw-eleven' }]));
    await save('10.40.1.12', rows('twelve'));

    const restoreData = {
      dhcp_enabled: false, dns_enabled: false, userdata_enabled: true,
      vms: [
        { ip: '10.40.1.10', mac: '02:00:00:40:01:0a', hostname: 'ten', default_nic: true, vm_data: rows('ten-v2', [{ dir: 'metadata', file: 'vm-id', content: 'uuid-10' }]) },
        { ip: '10.40.1.11', mac: '02:00:00:40:01:0b', hostname: 'eleven', default_nic: 'true', vm_data: [] },
      ],
    };
    const req: T.RestoreNetworkRequest = { command: 'restore-network', networkId: id, namespace: ns, restoreData: { value: restoreData, source: 'payload.restore_data' } };
    const restore = () => runCommand(engine, req);
    await restore();
    const check = () => {
      assert.is(guestGet(g[10], 'http://10.40.1.1/latest/user-data').body, 'user data of ten-v2', 'listed VM: replaced by its vm_data');
      assert.is(guestGet(g[10], 'http://10.40.1.1/latest/meta-data/vm-id').body, 'uuid-10');
      assert.is(guestGet(g[11], 'http://10.40.1.1/latest/user-data').body, 'user data of eleven', 'listed without vm_data: kept');
      assert.is(passwordRequest(g[11], '10.40.1.1', 'send_my_password').body, 'pw-eleven', 'pending password kept');
      assert.is(guestGet(g[12], 'http://10.40.1.1/latest/user-data').status, 404, 'not listed: dropped');
    };
    check();
    const stateFile = join(stateDir, 'routers', `${ns}.json`);
    const once = readFileSync(stateFile, 'utf8');
    const filesOnce = ['10.40.1.10', '10.40.1.11', '10.40.1.12'].map((ip) => vd.servedFiles(stateDir, ns, ip));
    await restore();
    assert.is(readFileSync(stateFile, 'utf8'), once, 'a second restore-network changes nothing');
    assert.equal(['10.40.1.10', '10.40.1.11', '10.40.1.12'].map((ip) => vd.servedFiles(stateDir, ns, ip)), filesOnce);
    check();

    // userdata_enabled false: metadata left as it is
    await runCommand(engine, { ...req, restoreData: { value: { ...restoreData, userdata_enabled: false, vms: [] }, source: 'x' } });
    check();

    // reboot, then restore-network through the CLI (option form, base64 file): router, services and data return
    await reboot(stateDir, [ns]);
    assert.is(guestGet(g[10], 'http://10.40.1.1/latest/user-data').status, 0);
    const f = join(dir, 'restore.b64');
    writeFileSync(f, Buffer.from(JSON.stringify(restoreData)).toString('base64'));
    const g0 = ['--host-netns', hostNs, '--state-dir', stateDir, '--log-file', join(dir, 'log')];
    let r = spawnSync(process.execPath, [CLI, 'restore-network', '--network-id', id, '--restore-data-file', f, '--gateway', '10.40.1.1', '--cidr', '10.40.1.0/24', ...g0], { encoding: 'utf8', timeout: 30_000 });
    assert.is(r.status, 0, r.stderr);
    assert.ok(netnsExists(ns), 'the router is back');
    check();
    assert.is(readFileSync(stateFile, 'utf8'), once, 'exactly as stored');

    // bad restore data: exit 1, nothing changed
    writeFileSync(f, JSON.stringify({ ...restoreData, vms: [{ ip: '10.40.1.300', vm_data: [] }] }));
    r = spawnSync(process.execPath, [CLI, 'restore-network', '--network-id', id, '--restore-data-file', f, ...g0], { encoding: 'utf8', timeout: 30_000 });
    assert.is(r.status, 1);
    assert.match(r.stderr, /--restore-data-file\.vms\[0\]\.ip/);
    writeFileSync(f, JSON.stringify({ ...restoreData, vms: [{ ip: '10.40.1.10', vm_data: [{ dir: 'metadata', file: '../../x', content: 'y' }] }] }));
    r = spawnSync(process.execPath, [CLI, 'restore-network', '--network-id', id, '--restore-data-file', f, ...g0], { encoding: 'utf8', timeout: 30_000 });
    assert.is(r.status, 1);
    assert.match(r.stderr, /vm_data\[0\]/);
    assert.is(readFileSync(stateFile, 'utf8'), once);
    check();
  } finally {
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI, full stack: prepare-nic/release-nic and restore-network act on DHCP, DNS, metadata and password in one command; after a reboot (every namespace and process gone) restore-network brings all of it back', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-rs-'));
  chmodSync(dir, 0o755); // dnsmasq drops to its own user and re-reads its files
  const stateDir = join(dir, 'state');
  const id = String(6000 + Math.floor(Math.random() * 900));
  const ns = s.track(`cs-net-${id}`);
  const mac1 = '02:00:5e:10:00:0a';
  const mac2 = '02:00:5e:10:00:0b';
  try {
    const { hostNs, h } = simulatedHost(s);
    const g0 = ['--host-netns', hostNs, '--state-dir', stateDir, '--log-file', join(dir, 'log')];
    const run = (command: string, payload: Record<string, unknown>) => {
      const f = join(dir, `${command}-${Math.random().toString(36).slice(2, 8)}.json`);
      writeFileSync(f, JSON.stringify({ 'physical-network-extension-details': {}, 'network-extension-details': {}, payload: { network_id: id, ...payload } }));
      const r = spawnSync(process.execPath, [CLI, command, f, '60', ...g0], { encoding: 'utf8', timeout: 60_000 });
      assert.is(r.status, 0, `${command}: ${r.stderr}`);
      chmodSync(stateDir, 0o755);
    };
    const vni = 7900 + Number(id) % 90;
    const net = { vlan: `vxlan://${vni}`, gateway: '10.50.1.1', cidr: '10.50.1.0/24' };
    run('implement-network', net);
    run('config-dns-subnet', { ...net, domain: 'restore.example', dns: '198.51.100.53' });
    const vmData = (name: string, pw?: string) => [
      { dir: 'userdata', file: 'user-data', content: `#cloud-config\nfqdn: ${name}.restore.example\n` },
      { dir: 'metadata', file: 'local-hostname', content: name },
      { dir: 'metadata', file: 'instance-id', content: `i-${name}` },
      ...(pw ? [{ dir: 'password', file: 'vm_password', content: pw }] : []),
    ];
    run('prepare-nic', { mac: mac1, ip: '10.50.1.10', hostname: 'vm-one', default_nic: 'true' });
    run('save-vm-data', { ip: '10.50.1.10', vm_data: vmData('vm-one', 'pw-one') });
    run('prepare-nic', { mac: mac2, ip: '10.50.1.11', hostname: 'vm-two', default_nic: 'true' });
    run('save-vm-data', { ip: '10.50.1.11', vm_data: vmData('vm-two') });
    const g1 = addGuest(s, h, `brvx-${vni}`, mac1);
    const g2 = addGuest(s, h, `brvx-${vni}`, mac2);
    assert.is(udhcpc(g1.ns, { configure: true })?.ip, '10.50.1.10', 'vm-one leased');
    assert.is(udhcpc(g2.ns, { configure: true })?.ip, '10.50.1.11', 'vm-two leased');
    assert.equal(nslookup(g1.ns, '10.50.1.1', 'data-server'), ['10.50.1.1']);
    assert.is(guestGet(g1.ns, 'http://10.50.1.1/latest/local-hostname').body, 'vm-one');
    assert.is(guestGet(g2.ns, 'http://10.50.1.1/latest/local-hostname').body, 'vm-two');

    // release-nic: the reservation, the DNS name, the metadata — one command
    run('release-nic', { mac: mac2, ip: '10.50.1.11' });
    assert.is(guestGet(g2.ns, 'http://10.50.1.1/latest/local-hostname').status, 404, 'metadata released');
    assert.equal(nslookup(g1.ns, '10.50.1.1', 'vm-two'), [], 'DNS name released');
    assert.is(udhcpc(g2.ns, { tries: 2 }), undefined, 'no lease any more (static reservations only)');

    // reboot: every process killed, every router namespace deleted; only the state directory remains
    for (const pid of dnsmasqPids(stateDir)) process.kill(pid, 'SIGKILL');
    await reboot(stateDir, [ns]);
    assert.equal(dnsmasqPids(stateDir), []);
    assert.is(udhcpc(g1.ns, { tries: 2 }), undefined, 'nothing answers DHCP');
    assert.is(guestGet(g1.ns, 'http://10.50.1.1/latest/local-hostname').status, 0, 'nothing answers HTTP');

    run('restore-network', {
      ...net, domain: 'restore.example', dns: '198.51.100.53', extension_ip: '10.50.1.1',
      restore_data: { dhcp_enabled: true, dns_enabled: true, userdata_enabled: true, vms: [
        { ip: '10.50.1.10', mac: mac1, hostname: 'vm-one', default_nic: true, vm_data: vmData('vm-one') },
      ] },
    });
    const lease = udhcpc(g1.ns);
    assert.is(lease?.ip, '10.50.1.10', 'DHCP back');
    assert.is(lease?.domain, 'restore.example');
    assert.equal(nslookup(g1.ns, '10.50.1.1', 'vm-one'), ['10.50.1.10'], 'DNS back');
    assert.equal(nslookup(g1.ns, '10.50.1.1', 'data-server'), ['10.50.1.1']);
    assert.is(guestGet(g1.ns, 'http://10.50.1.1/latest/user-data').body, '#cloud-config\nfqdn: vm-one.restore.example\n', 'metadata back');
    assert.is(passwordRequest(g1.ns, '10.50.1.1', 'send_my_password').body, 'pw-one', 'the pending password survived the reboot');
    assert.is(passwordRequest(g1.ns, '10.50.1.1', 'saved_password').body, 'saved_password');
    assert.is(passwordRequest(g1.ns, '10.50.1.1', 'send_my_password').body, 'saved_password');
    assert.is(dnsmasqPids(stateDir).length, 1);
    assert.is(spawnSync('pgrep', ['-f', `netns-router-metadata.*${stateDir}`], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).length, 1);
  } finally {
    await stopDaemon(stateDir);
    for (const pid of dnsmasqPids(stateDir)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
