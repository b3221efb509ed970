/**
 * DHCP and DNS through the engine with real clients: busybox udhcpc and nslookup in guest namespaces on a
 * simulated KVM host, dnsmasq (dnsmasq-base) in the router namespace.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, existsSync, chmodSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterEngine } from '../../lib/router/engine.js';
import type { RouterModel } from '../../lib/router/model.js';
import { netnsExists } from '../../lib/netns/namespaces.js';
import { dhcpPrepareNic, dhcpReleaseNic, dnsmasqInstance } from '../../lib/router/dhcp/index.js';
import { Scratch, simulatedHost, cidr, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { addGuest, udhcpc, nslookup, dnsmasqPids, leaseFile, routerAdvert } from '../helpers/dhcp.js';
import { runCommand } from '../../lib/router/command-table.js';

requireSandbox();

const netId = () => String(3000 + Math.floor(Math.random() * 6000));
const mac = (n: number) => `02:00:5e:00:00:${n.toString(16).padStart(2, '0')}`;

function setup() {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'nr-dhcp-'));
  chmodSync(stateDir, 0o755); // lets dnsmasq drop to its own user (it re-reads its files as that user)
  const { hostNs, h } = simulatedHost(s);
  const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
  return { s, stateDir, h, engine, cleanup: () => { s.cleanup(); rmSync(stateDir, { recursive: true, force: true }); } };
}

test('isolated network: address, router, DNS and domain from our dnsmasq; names; secondary NIC; options; release; restart; supervision; teardown', async () => {
  const { s, stateDir, h, engine, cleanup } = setup();
  const id = netId();
  const ns = s.track(`cs-net-${id}`);
  const net = { networkId: id, namespace: ns };
  const vni = 5000 + (Number(id) % 1000);
  try {
    await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni }, gateway: '10.7.1.1', cidr: cidr('10.7.1.0/24') });
    const bridge = `brvx-${vni}`;
    await runCommand(engine, { command: 'config-dns-subnet', ...net, gateway: '10.7.1.1', cidr: cidr('10.7.1.0/24'), dns: ['198.51.100.53'], domain: 'guests.example' });
    const inst = dnsmasqInstance(stateDir, ns);
    const pidA = inst.pid();
    assert.ok(pidA, 'dnsmasq runs after config-dns-subnet');
    assert.equal(dnsmasqPids(stateDir), [pidA], 'exactly one dnsmasq for the router');

    // a secondary NIC (default-nic false) gets a tag of its own: a command-line change, so a restart
    await runCommand(engine, { command: 'add-dhcp-entry', ...net, mac: mac(2), ip: '10.7.1.11', hostname: 'vm-two', defaultNic: false, nicId: 'n2' });
    const pid0 = inst.pid();
    assert.ok(pid0 && pid0 !== pidA, 'tagging a NIC restarts dnsmasq');
    // plain reservations are files only: prepare-nic of a primary NIC reloads, same process
    await engine.change(ns, engine.initFor(net), (m: RouterModel) => dhcpPrepareNic(m, { command: 'prepare-nic', ...net, mac: mac(1), ip: '10.7.1.10', hostname: 'vm-one', defaultNic: true, nicId: 'n1' }));
    assert.is(inst.pid(), pid0, 'a reservation is added without a restart');
    const g1 = addGuest(s, h, bridge, mac(1));
    const g2 = addGuest(s, h, bridge, mac(2));
    const e1 = udhcpc(g1.ns, { configure: true });
    assert.ok(e1, 'guest 1 gets a lease');
    assert.is(e1!.ip, '10.7.1.10');
    assert.is(e1!.router, '10.7.1.1');
    assert.is(e1!.dns, '10.7.1.1 198.51.100.53', 'our DNS first, then the configured one');
    assert.is(e1!.domain, 'guests.example');
    assert.is(e1!.hostname, 'vm-one');
    const e2 = udhcpc(g2.ns, { configure: true });
    assert.ok(e2, 'secondary NIC gets a lease');
    assert.is(e2!.ip, '10.7.1.11');
    assert.is(e2!.router, undefined, 'a secondary NIC gets no router option');

    assert.equal(nslookup(g1.ns, '10.7.1.1', 'vm-one'), ['10.7.1.10'], 'DNS answers the VM name');
    assert.equal(nslookup(g1.ns, '10.7.1.1', 'vm-one.guests.example'), ['10.7.1.10'], 'and its qualified name');
    assert.equal(nslookup(g2.ns, '10.7.1.1', 'data-server'), ['10.7.1.1'], 'data-server is the router');
    await runCommand(engine, { command: 'add-dns-entry', ...net, ip: '10.7.1.50', hostname: 'db', defaultNic: true });
    assert.equal(nslookup(g1.ns, '10.7.1.1', 'db'), ['10.7.1.50'], 'add-dns-entry');
    await runCommand(engine, { command: 'remove-dns-entry', ...net, ip: '10.7.1.50', defaultNic: true });
    assert.equal(nslookup(g1.ns, '10.7.1.1', 'db'), [], 'remove-dns-entry');

    // per-NIC options: values reach the client exactly, quotes and commas included
    await runCommand(engine, { command: 'set-dhcp-options', ...net, nicId: 'n2', options: { '119': 'a.example,b.example', '17': 'x",tag:y,3 # z' } });
    const e2o = udhcpc(g2.ns, { request: [119, 17] });
    assert.is(e2o!.search, 'a.example b.example', 'option 119 (domain search)');
    assert.is(e2o!.rootpath, 'x",tag:y,3 # z', 'option 17 arrives literally: no injection');
    assert.is(e2o!.router, undefined, 'still no router');
    assert.is(inst.pid(), pid0, 'reservations, names and options applied without a restart');

    // a removed reservation's lease is released: its address can go to another MAC at once
    assert.is(leaseFile(inst.paths.leases).get(mac(1)), '10.7.1.10');
    await runCommand(engine, { command: 'remove-dhcp-entry', ...net, mac: mac(1), defaultNic: true });
    assert.not.ok(leaseFile(inst.paths.leases).has(mac(1)), 'lease released');
    assert.is(inst.pid(), pid0, 'released without a restart');
    await runCommand(engine, { command: 'add-dhcp-entry', ...net, mac: mac(3), ip: '10.7.1.10', hostname: 'vm-three', defaultNic: true });
    const g3 = addGuest(s, h, bridge, mac(3));
    assert.is(udhcpc(g3.ns)?.ip, '10.7.1.10', 'the address is free for the new NIC');
    assert.is(udhcpc(g1.ns), undefined, 'the old NIC gets nothing');

    // a command-line change restarts dnsmasq; leases survive it
    await runCommand(engine, { command: 'remove-dns-subnet', ...net });
    const pid1 = inst.pid();
    assert.ok(pid1 && pid1 !== pid0, 'DNS off needs a restart (port 53 → 0)');
    assert.equal(nslookup(g1.ns, '10.7.1.1', 'vm-two'), [], 'DNS is off');
    assert.is(udhcpc(g2.ns)?.ip, '10.7.1.11', 'DHCP stays');
    const leases = leaseFile(inst.paths.leases);
    assert.is(leases.get(mac(2)), '10.7.1.11', 'lease kept over the restart');
    assert.is(leases.get(mac(3)), '10.7.1.10', 'every lease kept (dnsmasq loaded them: it rewrote the file after the restart)');

    // a killed dnsmasq is started again by the next command
    process.kill(pid1!, 'SIGKILL');
    await waitFor(() => inst.pid() === undefined);
    await runCommand(engine, { command: 'config-dns-subnet', ...net, gateway: '10.7.1.1', cidr: cidr('10.7.1.0/24') });
    const pid2 = inst.pid();
    assert.ok(pid2 && pid2 !== pid1, 'restarted by the next command');
    assert.is(udhcpc(g2.ns)?.ip, '10.7.1.11');
    assert.equal(nslookup(g2.ns, '10.7.1.1', 'vm-one'), ['10.7.1.10'], 'names survive DNS off and on');

    // release-nic drops reservation and name
    await engine.change(ns, engine.initFor(net), (m: RouterModel) => dhcpReleaseNic(m, { command: 'release-nic', ...net, mac: mac(3), ip: '10.7.1.10', defaultNic: true }));
    assert.not.ok(leaseFile(inst.paths.leases).has(mac(3)), 'release-nic releases the lease');
    assert.equal(nslookup(g2.ns, '10.7.1.1', 'vm-one'), [], 'and drops the name of its address');

    // shutdown: no process, no runtime files; re-implement brings it back from the stored state
    await runCommand(engine, { command: 'shutdown-network', ...net });
    assert.equal(dnsmasqPids(stateDir), [], 'shutdown leaves no dnsmasq');
    assert.not.ok(existsSync(inst.paths.dir), 'runtime directory removed');
    await runCommand(engine, { command: 'implement-network', ...net });
    assert.ok(inst.pid(), 'dnsmasq back with the network');
    assert.is(udhcpc(g2.ns)?.ip, '10.7.1.11', 'reservations restored');
    await runCommand(engine, { command: 'destroy-network', ...net });
    assert.equal(dnsmasqPids(stateDir), [], 'destroy leaves no dnsmasq');
    assert.not.ok(netnsExists(ns));
  } finally {
    for (const p of dnsmasqPids(stateDir)) process.kill(p, 'SIGKILL');
    cleanup();
  }
});

test('DNS names come from CloudStack only: a guest\'s DHCP host name or FQDN registers nothing, reservations\' names still resolve', async () => {
  const { s, h, engine, cleanup } = setup();
  const id = netId();
  const ns = s.track(`cs-net-${id}`);
  const net = { networkId: id, namespace: ns };
  const vni = 5000 + (Number(id) % 1000);
  try {
    await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni }, gateway: '10.7.1.1', cidr: cidr('10.7.1.0/24') });
    await runCommand(engine, { command: 'config-dns-subnet', ...net, gateway: '10.7.1.1', cidr: cidr('10.7.1.0/24'), domain: 'guests.example' });
    // vm-one's reservation has a name; the second one has none (what lets dnsmasq take the client's)
    await runCommand(engine, { command: 'add-dhcp-entry', ...net, mac: mac(1), ip: '10.7.1.10', hostname: 'vm-one', defaultNic: true });
    await runCommand(engine, { command: 'add-dhcp-entry', ...net, mac: mac(2), ip: '10.7.1.11', defaultNic: true });
    const g1 = addGuest(s, h, `brvx-${vni}`, mac(1));
    const g2 = addGuest(s, h, `brvx-${vni}`, mac(2));
    assert.is(udhcpc(g1.ns, { configure: true, args: ['-x', 'hostname:wpad'] })?.ip, '10.7.1.10', 'control: the named guest gets its lease');
    assert.is(udhcpc(g2.ns, { configure: true, args: ['-x', 'hostname:wpad'] })?.ip, '10.7.1.11', 'control: the unnamed guest gets its lease');
    // (no add-dns-entry here: this name is in DNS through the reservation's lease only)
    assert.equal(nslookup(g2.ns, '10.7.1.1', 'vm-one'), ['10.7.1.10'], 'control: the reservation\'s name resolves');
    assert.equal(nslookup(g1.ns, '10.7.1.1', 'wpad'), [], 'a host name the guest sent is not in DNS');
    assert.equal(nslookup(g1.ns, '10.7.1.1', 'wpad.guests.example'), [], 'nor qualified');
    assert.is(udhcpc(g2.ns, { args: ['-F', 'login.guests.example'] })?.ip, '10.7.1.11');
    assert.equal(nslookup(g1.ns, '10.7.1.1', 'login.guests.example'), [], 'an FQDN the guest sent (option 81) is not in DNS');
    assert.equal(nslookup(g1.ns, '10.7.1.1', 'login'), []);
    assert.is(udhcpc(g2.ns, { args: ['-x', 'hostname:vm-one'] })?.ip, '10.7.1.11');
    assert.equal(nslookup(g1.ns, '10.7.1.1', 'vm-one'), ['10.7.1.10'], 'another VM\'s name cannot be taken');
  } finally {
    await runCommand(engine, { command: 'destroy-network', ...net }).catch(() => {});
    cleanup();
  }
});

test('VPC: one dnsmasq serving each tier on its own interface; DNS only where configured; IPv6 RA and AAAA on the IPv6 tier only', async () => {
  const { s, stateDir, h, engine, cleanup } = setup();
  const vpcId = netId();
  const ns = s.track(`cs-vpc-${vpcId}`);
  const vni = 6000 + (Number(vpcId) % 1000);
  const tierA = { networkId: `${vpcId}1`, vpcId, namespace: ns };
  const tierB = { networkId: `${vpcId}2`, vpcId, namespace: ns };
  try {
    await runCommand(engine, { command: 'implement-vpc', vpcId, namespace: ns, vpcCidr: cidr('10.8.0.0/16') });
    await runCommand(engine, {
      command: 'implement-network', ...tierA, segment: { kind: 'vxlan', vni }, gateway: '10.8.1.1', cidr: cidr('10.8.1.0/24'),
      ip6Gateway: 'fd00:8:1::1', ip6Cidr: { family: 6, address: 'fd00:8:1::', prefix: 64 }, dns6: ['2001:db8::53'],
    });
    await runCommand(engine, { command: 'implement-network', ...tierB, segment: { kind: 'vxlan', vni: vni + 1 }, gateway: '10.8.2.1', cidr: cidr('10.8.2.0/24') });
    await runCommand(engine, { command: 'config-dns-subnet', ...tierA, gateway: '10.8.1.1', cidr: cidr('10.8.1.0/24'), domain: 'a.example' });
    await runCommand(engine, { command: 'config-dhcp-subnet', ...tierB, gateway: '10.8.2.1', cidr: cidr('10.8.2.0/24') });
    await engine.change(ns, engine.initFor(tierA), (m: RouterModel) => dhcpPrepareNic(m, { command: 'prepare-nic', ...tierA, mac: mac(0x21), ip: '10.8.1.10', hostname: 'vm-a', ip6Address: 'fd00:8:1::10', defaultNic: true }));
    await engine.change(ns, engine.initFor(tierB), (m: RouterModel) => dhcpPrepareNic(m, { command: 'prepare-nic', ...tierB, mac: mac(0x22), ip: '10.8.2.10', hostname: 'vm-b', defaultNic: true }));
    assert.is(dnsmasqPids(stateDir).length, 1, 'one dnsmasq for the VPC namespace');

    const ga = addGuest(s, h, `brvx-${vni}`, mac(0x21));
    const gb = addGuest(s, h, `brvx-${vni + 1}`, mac(0x22));
    const ea = udhcpc(ga.ns, { configure: true });
    const eb = udhcpc(gb.ns, { configure: true });
    assert.equal([ea?.ip, ea?.router, ea?.dns, ea?.domain], ['10.8.1.10', '10.8.1.1', '10.8.1.1', 'a.example']);
    assert.equal([eb?.ip, eb?.router, eb?.dns], ['10.8.2.10', '10.8.2.1', undefined], 'tier B: its own subnet, no DNS server offered');
    assert.equal(nslookup(ga.ns, '10.8.1.1', 'vm-a'), ['10.8.1.10']);
    assert.equal(nslookup(ga.ns, '10.8.1.1', 'vm-a.a.example', 'AAAA'), ['fd00:8:1::10'], 'AAAA for a VM with ip6_address');
    assert.equal(nslookup(gb.ns, '10.8.2.1', 'vm-a'), [], 'DNS is closed to tier B');
    assert.equal(nslookup(gb.ns, '10.8.1.1', 'vm-a'), [], 'also through tier A\'s address');

    const ra = await routerAdvert(ga.ns, 'eth0');
    assert.ok(ra, 'tier A gets router advertisements');
    assert.equal(ra!.prefixes, [{ prefix: 'fd00:8:1::/64', autonomous: true }], 'SLAAC prefix');
    assert.equal(ra!.rdnss, ['fd00:8:1::1', '2001:db8::53'], 'RDNSS: our address, then dns6');
    assert.ok(await waitFor(() => /inet6 fd00:8:1:/.test(spawnSync('ip', ['-n', ga.ns, '-6', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' }).stdout), 5000), 'the guest configured a SLAAC address');
    assert.is(await routerAdvert(gb.ns, 'eth0', 1500), undefined, 'no router advertisements on tier B');

    // DNS on tier B too: data-server answers with each tier's own address
    await runCommand(engine, { command: 'config-dns-subnet', ...tierB, gateway: '10.8.2.1', cidr: cidr('10.8.2.0/24') });
    assert.equal(nslookup(gb.ns, '10.8.2.1', 'data-server'), ['10.8.2.1']);
    assert.equal(nslookup(ga.ns, '10.8.1.1', 'data-server'), ['10.8.1.1']);
    assert.equal(nslookup(gb.ns, '10.8.2.1', 'vm-b'), ['10.8.2.10']);

    // shutting one tier down keeps the VPC's dnsmasq for the other
    const vpcInst = dnsmasqInstance(stateDir, ns);
    assert.ok(leaseFile(vpcInst.paths.leases).has(mac(0x22)));
    await runCommand(engine, { command: 'shutdown-network', ...tierB });
    assert.is(dnsmasqPids(stateDir).length, 1);
    assert.not.ok(leaseFile(vpcInst.paths.leases).has(mac(0x22)), 'the shut tier\'s leases are dropped during the restart');
    assert.is(leaseFile(vpcInst.paths.leases).get(mac(0x21)), '10.8.1.10', 'the other tier\'s are kept');
    assert.is(udhcpc(ga.ns)?.ip, '10.8.1.10');
    await runCommand(engine, { command: 'destroy-vpc', vpcId, namespace: ns });
    assert.equal(dnsmasqPids(stateDir), [], 'destroy-vpc leaves no dnsmasq');
  } finally {
    for (const p of dnsmasqPids(stateDir)) process.kill(p, 'SIGKILL');
    cleanup();
  }
});

test.run();
