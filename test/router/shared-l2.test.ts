/**
 * Shared and L2 networks through the CLI, with payload files in CloudStack's envelope (fields as
 * NetworkExtensionElement builds them), on a simulated KVM host; real clients (udhcpc, busybox nslookup, curl)
 * and real packets.
 *
 * Shared: CloudStack never sends implement-network; the router must come up from prepare-nic and serve DHCP,
 * DNS, metadata and passwords from its own address (extension_ip) while the gateway stays the external
 * router's. L2: a segment (VXLAN / untagged here; 802.1Q in the qemu lane) and nothing at L3.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, spawnSync } from 'node:child_process';
import { netnsExists } from '../../lib/netns/namespaces.js';
import type { NetnsHandle } from '../../lib/netns/handle.js';
import { daemonStatus, stopDaemon } from '../../lib/services/metadata/index.js';
import { l2LinkAlias } from '../../lib/router/l2-segment.js';
import { Scratch, addVm, nsExec, ping, simulatedHost, nsTry } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { addGuest, dnsmasqPids, nslookup, udhcpc } from '../helpers/dhcp.js';
import { guestGet, passwordRequest } from '../helpers/metadata.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

interface Run { status: number | null; stdout: string; stderr: string }

/** A CLI bound to a host namespace and a state dir; `send` writes CloudStack's payload file and runs it. */
function cloudstack(dir: string, hostNs: string, physical: Record<string, string>) {
  const g = ['--host-netns', hostNs, '--state-dir', join(dir, 'state'), '--log-file', join(dir, 'log')];
  let n = 0;
  const run = (...a: string[]): Run => spawnSync(process.execPath, [CLI, ...a, ...g], { encoding: 'utf8', timeout: 60_000 });
  const send = (command: string, payload: Record<string, unknown>): Run => {
    const file = join(dir, `cs-extnet-${command}-${n++}.payload`);
    writeFileSync(file, JSON.stringify({ 'physical-network-extension-details': physical, 'network-extension-details': {}, payload }));
    return run(command, file, '60');
  };
  /** Several commands at once (as CloudStack's parallel VM starts send them): their exit codes. */
  const parallel = (cmds: Array<[string, Record<string, unknown>]>): Promise<number[]> => Promise.all(cmds.map(([command, payload]) => {
    const file = join(dir, `cs-extnet-${command}-${n++}.payload`);
    writeFileSync(file, JSON.stringify({ 'physical-network-extension-details': physical, 'network-extension-details': {}, payload }));
    return new Promise<number>((resolve) => {
      spawn(process.execPath, [CLI, command, file, '60', ...g], { stdio: 'ignore' }).on('close', (code) => resolve(code ?? -1));
    });
  }));
  return { run, send, parallel, stateFile: (ns: string) => join(dir, 'state', 'routers', `${ns}.json`) };
}

/** A host device `name` in the host namespace, wired to namespace `peerNs` (as `peer`). */
function uplink(h: NetnsHandle, name: string, peerNs: string, peer: string): void {
  h.netlink.linkAdd({ kind: 'veth', name, up: true, peer: { name: peer, namespace: { netns: peerNs }, up: true } });
}

const ok = (r: Run, what: string) => assert.is(r.status, 0, `${what}: ${r.stderr}`);

test('shared network: prepare-nic implements the router; DHCP, DNS, metadata and password from the extension IP; the gateway stays external', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-shared-'));
  chmodSync(dir, 0o755);
  const stateDir = join(dir, 'state');
  const id = String(2000 + Math.floor(Math.random() * 7000));
  const ns = s.track(`cs-net-${id}`);
  try {
    const { hostNs, h } = simulatedHost(s);
    // the shared network's own router (its gateway 10.60.0.1) sits beyond the host's guest device eth2
    const extNs = s.ns('ext');
    uplink(h, 'eth2', extNs, 'gw0');
    const ext = s.handle(extNs);
    ext.netlink.linkSetUp('lo');
    ext.netlink.addrAdd({ dev: 'gw0', address: '10.60.0.1/24' });
    const cs = cloudstack(dir, hostNs, { 'guest.network.device': 'eth2', 'public.network.device': 'eth1', physicalnetworkname: 'pn-shared' });
    // addNetworkToPayload + addNicToPayload (+ hostname) + addExtensionIpToPayload, as CloudStack sends them
    const network = { network_id: id, vlan: 'untagged', zone_id: '1', guest_type: 'shared', gateway: '10.60.0.1', cidr: '10.60.0.0/24' };
    const nic1 = { nic_id: '301', nic_uuid: 'c0ffee01-0000-4000-8000-000000000301', mac: '02:00:3c:00:00:0a', ip: '10.60.0.10', gateway: '10.60.0.1', netmask: '255.255.255.0', default_nic: 'true', device_id: '0' };
    const dnsFields = { dns: '192.0.2.53', domain: 'shared.example' };
    const extension = { extension_ip: '10.60.0.2' };

    // a first NIC that cannot describe the network (no extension IP; a secondary range's NIC): nothing made
    ok(cs.send('prepare-nic', { ...network, ...nic1, hostname: 'vm-one' }), 'prepare-nic without extension_ip');
    ok(cs.send('prepare-nic', { ...network, ...nic1, ip: '10.61.0.10', gateway: '10.61.0.1', hostname: 'vm-one', ...extension }), 'prepare-nic of a secondary range');
    assert.not.ok(netnsExists(ns), 'no router from a NIC that does not describe the network');
    assert.not.ok(existsSync(cs.stateFile(ns)), 'and no state');
    let r = cs.send('config-dhcp-subnet', { ...network, ...dnsFields, ...nic1 });
    assert.is(r.status, 1, 'config-dhcp-subnet without extension_ip: exit 1');
    assert.match(r.stderr, 'extension_ip');
    assert.match(r.stderr, 'never takes the gateway');
    assert.not.ok(netnsExists(ns));
    assert.not.ok(existsSync(cs.stateFile(ns)));

    // CloudStack's order at VM start (prepareElement): prepare-nic, DHCP (subnet, entry), DNS entry, user data;
    // a password reset later
    // two VMs start at once: both prepare-nic race to implement the router
    const nic2 = { ...nic1, nic_id: '302', nic_uuid: 'c0ffee01-0000-4000-8000-000000000302', mac: '02:00:3c:00:00:0b', ip: '10.60.0.11' };
    assert.equal(await cs.parallel([['prepare-nic', { ...network, ...nic1, hostname: 'vm-one', ...extension }], ['prepare-nic', { ...network, ...nic2, hostname: 'vm-two', ...extension }]]), [0, 0]);
    assert.ok(netnsExists(ns), 'prepare-nic implemented the router');
    assert.equal(Object.keys(JSON.parse(readFileSync(cs.stateFile(ns), 'utf8')).tiers), [id], 'once');
    const addrs = nsExec(ns, ['ip', '-4', '-o', 'addr', 'show']);
    assert.match(addrs, '10.60.0.2/24', 'the router holds the extension IP');
    assert.not.match(addrs, '10.60.0.1/', 'and never the gateway (the external router\'s)');
    assert.match(nsExec(ns, ['ip', 'route', 'show', 'default']), 'via 10.60.0.1', 'its default route is the network\'s gateway');
    assert.is(nsExec(ns, ['sysctl', '-n', 'net.ipv4.ip_forward']).trim(), '0', 'it routes nothing');

    ok(cs.send('config-dns-subnet', { ...network, ...dnsFields, ...extension, ...nic1 }), 'config-dns-subnet');
    ok(cs.send('add-dhcp-entry', { ...network, ...nic1, hostname: 'vm-one', ...dnsFields, ...extension }), 'add-dhcp-entry');
    ok(cs.send('add-dns-entry', { ...network, ...dnsFields, ...nic1, hostname: 'vm-one', ...extension }), 'add-dns-entry');
    const vmData = [
      { dir: 'userdata', file: 'user_data', content: '#cloud-config\nhostname: vm-one\n' },
      { dir: 'metadata', file: 'local-hostname', content: 'vm-one' },
      { dir: 'metadata', file: 'local-ipv4', content: '10.60.0.10' },
      { dir: 'metadata', file: 'instance-id', content: 'i-2-301-VM' },
    ];
    ok(cs.send('save-vm-data', { ...network, ...nic1, ip: '10.60.0.10', ...extension, vm_data: vmData }), 'save-vm-data');
    ok(cs.send('save-password', { ...network, ...nic1, password: 'Shared-pw-1', ...extension }), 'save-password');

    // the VM: a real DHCP client on the shared segment
    const vm = addGuest(s, h, 'breth2-u', nic1.mac);
    const lease = udhcpc(vm.ns, { configure: true });
    assert.is(lease?.ip, '10.60.0.10', 'the reserved address');
    assert.is(lease?.router, '10.60.0.1', 'the gateway offered is the external router');
    assert.is(lease?.serverid, '10.60.0.2', 'served by the router\'s own address');
    assert.equal(lease?.dns?.split(' '), ['10.60.0.2', '192.0.2.53'], 'its DNS first');
    assert.is(lease?.domain, 'shared.example');
    assert.ok(ping(vm.ns, '10.60.0.1'), 'the VM reaches its (external) gateway over the segment');
    // a NIC nobody reserved gets nothing (the client works: it just got a lease above)
    const stranger = addGuest(s, h, 'breth2-u', '02:00:3c:00:00:99');
    assert.is(udhcpc(stranger.ns, { tries: 2 }), undefined, 'no lease without a reservation');

    assert.equal(nslookup(vm.ns, '10.60.0.2', 'data-server'), ['10.60.0.2'], 'data-server names the router');
    assert.equal(nslookup(vm.ns, '10.60.0.2', 'vm-one.shared.example'), ['10.60.0.10'], 'the VM\'s name');

    assert.equal(guestGet(vm.ns, 'http://10.60.0.2/latest/user-data'), { status: 200, body: '#cloud-config\nhostname: vm-one\n' });
    assert.is(guestGet(vm.ns, 'http://10.60.0.2/latest/meta-data/instance-id').body, 'i-2-301-VM');
    assert.is(passwordRequest(vm.ns, '10.60.0.2', 'send_my_password').body, 'Shared-pw-1');
    // the VR's password protocol, every form a guest sends (cloud-set-guest-password, cloud-init)
    assert.equal(passwordRequest(vm.ns, '10.60.0.2', 'what_is_this'), { status: 200, body: 'bad_request' }, 'unknown request: 200 bad_request');
    assert.equal(guestGet(vm.ns, 'http://10.60.0.2:8080/'), { status: 200, body: 'bad_request' }, 'no DomU_Request header: 200 bad_request');
    const post = nsTry(vm.ns, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', '-H', 'DomU_Request: saved_password', 'http://10.60.0.2:8080/']);
    assert.is(post.stdout, '501', 'POST: 501, nothing acknowledged');
    assert.is(passwordRequest(vm.ns, '10.60.0.2', 'send_my_password').body, 'Shared-pw-1', 'still pending after the POST');
    assert.is(passwordRequest(vm.ns, '10.60.0.2', 'saved_password').body, 'saved_password', 'acknowledged');
    assert.is(passwordRequest(vm.ns, '10.60.0.2', 'send_my_password').body, 'saved_password', 'delivered once');
    assert.is(guestGet(vm.ns, 'http://10.60.0.1/latest/user-data').status, 0, 'nothing of it on the gateway (no router took it)');

    // the second VM's prepare-nic again on the now-served network: reservation and name at once
    ok(cs.send('prepare-nic', { ...network, ...nic2, hostname: 'vm-two', ...extension }), 'prepare-nic of a second VM');
    assert.equal(nslookup(vm.ns, '10.60.0.2', 'vm-two.shared.example'), ['10.60.0.11']);
    const vm2 = addGuest(s, h, 'breth2-u', nic2.mac);
    assert.is(udhcpc(vm2.ns)?.ip, '10.60.0.11');

    // the network goes: router, daemons and state
    ok(cs.send('destroy-network', network), 'destroy-network');
    assert.not.ok(netnsExists(ns));
    assert.not.ok(existsSync(cs.stateFile(ns)));
    assert.equal(dnsmasqPids(stateDir), [], 'dnsmasq stopped');
    assert.not.ok((await daemonStatus(stateDir))?.routers.some((x) => x.namespace === ns), 'metadata no longer served for it');
    assert.ok(ping(vm.ns, '10.60.0.1'), 'the shared segment itself stays (the external gateway still answers)');
  } finally {
    for (const p of dnsmasqPids(stateDir)) process.kill(p, 'SIGKILL');
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('L2 network over VXLAN: the segment and bridge only; VMs reach each other, nothing answers at L3; L3 commands refused; destroy removes only its own links', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-l2-'));
  const id = String(2000 + Math.floor(Math.random() * 7000));
  const other = String(Number(id) + 1);
  const ns = s.track(`cs-net-${id}`);
  const vni = 8000 + Math.floor(Math.random() * 1000);
  try {
    const { hostNs, h } = simulatedHost(s);
    const cs = cloudstack(dir, hostNs, { 'guest.network.device': 'eth1', 'public.network.device': 'eth1' });
    // what CloudStack sends for an L2 network: no gateway, no cidr, no extension_ip
    const network = { network_id: id, vlan: `vxlan://${vni}`, zone_id: '1', guest_type: 'l2' };

    let r = cs.send('implement-network', { ...network, gateway: '10.62.0.1' });
    assert.is(r.status, 1, 'L3 addressing on an L2 network: exit 1');
    assert.match(r.stderr, 'gateway');
    r = cs.send('implement-network', { ...network, vlan: '' });
    assert.is(r.status, 1, 'no segment: exit 1');
    assert.match(r.stderr, '--vlan');
    r = cs.send('implement-network', { ...network, vpc_id: '5' });
    assert.is(r.status, 1, 'an L2 VPC tier: exit 1');
    assert.match(r.stderr, 'guest_type');
    assert.not.ok(h.netlink.linkFind(`brvx-${vni}`), 'nothing made');

    ok(cs.send('implement-network', network), 'implement-network (l2)');
    ok(cs.send('implement-network', network), 'again (idempotent)');
    const br = h.netlink.linkGet(`brvx-${vni}`);
    const vx = h.netlink.linkGet(`vxlan${vni}`);
    assert.is(br.kind, 'bridge');
    assert.equal([vx.kind, (vx as { vni?: number }).vni, vx.masterIndex], ['vxlan', vni, br.index], 'the VXLAN device in the bridge');
    const mark = l2LinkAlias({ networkId: id, hostDev: 'eth1', segment: { kind: 'vxlan', vni } } as Parameters<typeof l2LinkAlias>[0]);
    assert.equal([br.alias, vx.alias], [mark, mark], 'both marked as made for this network');
    assert.not.ok(netnsExists(ns), 'no router namespace');
    assert.equal(h.netlink.linkList().filter((l) => l.masterIndex === br.index).map((l) => l.name), [`vxlan${vni}`], 'no router port in the bridge');

    // prepare-nic of an L2 NIC: nothing to do, not an error (CloudStack calls it for every NIC)
    ok(cs.send('prepare-nic', { ...network, nic_id: '9', mac: '02:00:3e:00:00:0a', ip: '', default_nic: 'true' }), 'prepare-nic on L2');

    const vmA = addVm(s, h, `brvx-${vni}`, '10.62.0.10/24', undefined, '02:00:3e:00:00:0a');
    const vmB = addVm(s, h, `brvx-${vni}`, '10.62.0.11/24', undefined, '02:00:3e:00:00:0b');
    assert.ok(ping(vmA.ns, '10.62.0.11'), 'VM to VM through the host bridge');
    assert.not.ok(ping(vmA.ns, '10.62.0.1'), 'no router answers at L3 (the same probe reached a VM above)');
    assert.is(nsExec(vmA.ns, ['ip', 'neigh', 'show', '10.62.0.1']).includes('lladdr'), false, 'nothing even answers ARP for a gateway');

    // commands that need L3 exit 1, naming the command, and change nothing
    const before = readFileSync(cs.stateFile(ns), 'utf8');
    const refused: Array<[string, Record<string, unknown>]> = [
      ['config-dhcp-subnet', { ...network, gateway: '10.62.0.1', cidr: '10.62.0.0/24', extension_ip: '10.62.0.2' }],
      ['add-dhcp-entry', { ...network, mac: '02:00:3e:00:00:0a', ip: '10.62.0.10' }],
      ['save-vm-data', { ...network, ip: '10.62.0.10', vm_data: [{ dir: 'metadata', file: 'local-hostname', content: 'a' }] }],
      ['save-password', { ...network, ip: '10.62.0.10', password: 'x' }],
      ['assign-ip', { ...network, public_ip: '203.0.113.62', public_vlan: 'untagged', public_gateway: '203.0.113.1', public_cidr: '203.0.113.0/24', source_nat: 'true' }],
      ['apply-fw-rules', { ...network, fw_rules: { default_egress_allow: true, rules: [] } }],
      ['apply-lb-rules', { ...network, lb_rules: [] }],
    ];
    for (const [command, payload] of refused) {
      r = cs.send(command, payload);
      assert.is(r.status, 1, `${command} on an L2 network: exit 1 (${r.stderr})`);
      assert.match(r.stderr, `${command}: network ${id} is an L2 network`, 'the CLI names the command');
      assert.match(r.stderr, `${command} needs L3`);
    }
    r = cs.run('custom-action', '--network-id', id, '--action', 'pbr-create-table', '--action-params', '{"table-id":"100","table-name":"x"}');
    assert.is(r.status, 1);
    assert.match(r.stderr, 'L2 network');
    // the same commands for an L2 network this host never saw: refused by guest_type, nothing stored
    r = cs.send('config-dhcp-subnet', { ...network, network_id: other, gateway: '10.63.0.1', cidr: '10.63.0.0/24', extension_ip: '10.63.0.2' });
    assert.is(r.status, 1);
    assert.not.ok(existsSync(cs.stateFile(`cs-net-${other}`)));
    assert.is(readFileSync(cs.stateFile(ns), 'utf8'), before, 'state unchanged');
    assert.ok(ping(vmA.ns, '10.62.0.11'), 'segment unchanged');

    // a VM still plugged in keeps the bridge through shutdown; once it is gone, destroy removes both links
    ok(cs.send('shutdown-network', network), 'shutdown-network');
    assert.ok(h.netlink.linkFind(`brvx-${vni}`), 'a bridge with VMs attached stays');
    assert.ok(ping(vmA.ns, '10.62.0.11'));
    h.netlink.linkDel(vmA.hostEnd);
    h.netlink.linkDel(vmB.hostEnd);
    ok(cs.send('destroy-network', network), 'destroy-network');
    assert.not.ok(h.netlink.linkFind(`brvx-${vni}`), 'bridge removed');
    assert.not.ok(h.netlink.linkFind(`vxlan${vni}`), 'VXLAN device removed');
    assert.not.ok(netnsExists(ns));
    assert.not.ok(existsSync(cs.stateFile(ns)));

    // links made by someone else (the KVM agent) are never removed, even for a network of ours
    const vni2 = vni + 1;
    h.netlink.linkAdd({ kind: 'bridge', name: `brvx-${vni2}`, up: true });
    h.netlink.linkAdd({ kind: 'vxlan', name: `vxlan${vni2}`, vni: vni2, dev: 'eth1', dstPort: 4789, master: `brvx-${vni2}`, up: true });
    const network2 = { ...network, network_id: other, vlan: `vxlan://${vni2}` };
    ok(cs.send('implement-network', network2), 'implement on existing links');
    assert.is(h.netlink.linkGet(`brvx-${vni2}`).alias, undefined, 'not claimed');
    ok(cs.send('destroy-network', network2), 'destroy');
    assert.ok(h.netlink.linkFind(`brvx-${vni2}`) && h.netlink.linkFind(`vxlan${vni2}`), 'foreign links kept');
    // destroy with the state lost still finds (and only finds) its own marked links
    ok(cs.send('implement-network', { ...network, vlan: `vxlan://${vni + 2}` }), 'implement a third');
    rmSync(cs.stateFile(ns));
    ok(cs.send('destroy-network', { ...network, vlan: `vxlan://${vni + 2}` }), 'destroy without state');
    assert.not.ok(h.netlink.linkFind(`brvx-${vni + 2}`), 'its marked bridge removed from the request\'s segment');
  } finally {
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('L2 network untagged: the uplink joins a bridge of ours; VMs reach the physical segment; destroy gives the uplink back', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-l2u-'));
  const id = String(2000 + Math.floor(Math.random() * 7000));
  try {
    const { hostNs, h } = simulatedHost(s);
    const lanNs = s.ns('lan'); // a host on the physical segment behind eth3
    uplink(h, 'eth3', lanNs, 'lan0');
    const lan = s.handle(lanNs);
    lan.netlink.linkSetUp('lo');
    lan.netlink.addrAdd({ dev: 'lan0', address: '192.0.2.1/24' });
    const cs = cloudstack(dir, hostNs, { 'guest.network.device': 'eth3' });
    const network = { network_id: id, vlan: 'untagged', zone_id: '1', guest_type: 'l2' };
    const bridge = 'breth3-u';
    ok(cs.send('implement-network', network), 'implement-network untagged l2');
    const br = h.netlink.linkGet(bridge);
    assert.is(br.alias, l2LinkAlias({ networkId: id, hostDev: 'eth3', segment: { kind: 'untagged' } } as Parameters<typeof l2LinkAlias>[0]));
    assert.is(h.netlink.linkGet('eth3').masterIndex, br.index, 'the uplink is in the bridge');
    const guest = addVm(s, h, bridge, `192.0.2.${50 + Math.floor(Math.random() * 100)}/24`);
    assert.ok(ping(guest.ns, '192.0.2.1'), 'a VM reaches the physical segment through the bridge');
    h.netlink.linkDel(guest.hostEnd);
    ok(cs.send('destroy-network', network), 'destroy-network');
    assert.not.ok(h.netlink.linkFind(bridge), 'our bridge removed');
    const eth3 = h.netlink.linkGet('eth3');
    assert.equal([eth3.masterIndex, eth3.up], [undefined, true], 'the uplink is free again, still up');
  } finally {
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
