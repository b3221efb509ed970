/**
 * Guests configured by their own agents: the OpenStack and EC2 layouts, read by cloud-init's own code
 * (Debian's cloud-init package: cloudinit.sources.helpers.openstack MetadataReader.read_v2 and
 * convert_net_json, the netplan renderer, cloudinit.sources.helpers.ec2) inside guest namespaces, at
 * 169.254.169.254, the router's address, data-server and [fe80::a9fe:a9fe]. A VPC with three tiers on the
 * simulated host: A (DHCP + DNS + IPv6), B (DHCP), C (no DHCP: static addressing).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { RouterEngine } from '../../lib/router/engine.js';
import type * as T from '../../lib/router/contract/types.js';
import * as vd from '../../lib/router/vmdata/index.js';
import { runCommand } from '../../lib/router/command-table.js';
import { stopDaemon, vmDir } from '../../lib/services/metadata/index.js';
import { deleteNetns } from '../../lib/netns/namespaces.js';
import { Scratch, addVm, cidr, guestTry, inScratch, nsExec, nsTry, simulatedHost, uid, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { dnsmasqPids } from '../helpers/dhcp.js';
import { guestGet, metadataNetwork } from '../helpers/metadata.js';
import { killRouterDaemons } from '../helpers/daemons.js';

requireSandbox();
vd.vmdataSettings.daemonIdleExitMs = 500;

const MAC1 = '02:00:00:17:01:0a';
const MAC1B = '02:00:00:17:02:0a';
const MAC2 = '02:00:00:17:01:0b';
const MAC3 = '02:00:00:17:03:0c';
const UUID1 = '6f1c1c9e-0000-4000-8000-000000000001';
const UUID2 = '6f1c1c9e-0000-4000-8000-000000000002';
const UUID3 = '6f1c1c9e-0000-4000-8000-000000000003';

function rows(name: string, uuid: string, ip: string) {
  return [
    { dir: 'userdata', file: 'user-data', content: `#cloud-config\nsecret_of: ${name}\n` },
    { dir: 'metadata', file: 'service-offering', content: 'Small Instance' },
    { dir: 'metadata', file: 'availability-zone', content: 'zone-17' },
    { dir: 'metadata', file: 'local-ipv4', content: ip },
    { dir: 'metadata', file: 'local-hostname', content: name },
    { dir: 'metadata', file: 'instance-id', content: uuid },
    { dir: 'metadata', file: 'vm-id', content: uuid },
    { dir: 'metadata', file: 'public-keys', content: `ssh-ed25519 AAAAkey${name} ${name}@laptop` },
    { dir: 'metadata', file: 'hypervisor-host-name', content: 'kvm-17' },
  ];
}

/** cloud-init's OpenStack reader against `base` in guest `ns`, and what its converters make of network_data. */
const OPENSTACK_READ = [
  'import json, sys',
  'from cloudinit.sources.helpers import openstack',
  'from cloudinit.net import network_state, netplan',
  'r = openstack.MetadataReader(sys.argv[1], timeout=5, retries=0).read_v2()',
  "nd = r.get('networkdata')",
  // known_macs=None: cloud-init looks the MACs up among the guest's own interfaces (a foreign one raises)
  'v1 = openstack.convert_net_json(nd, known_macs=None) if nd is not None else None',
  'v2 = netplan.Renderer(config={})._render_content(network_state.parse_net_config_data(v1)) if v1 else None',
  "ud = r['userdata']",
  "ud = ud.decode() if isinstance(ud, bytes) else ud",
  "print(json.dumps({'metadata': r['metadata'], 'userdata': ud, 'networkdata': nd, 'v1': v1, 'v2': v2, 'vendordata': r.get('vendordata'), 'ec2': r.get('ec2-metadata')}, default=str))",
].join('\n');

interface OpenStackRead {
  metadata: Record<string, unknown>;
  userdata: string;
  networkdata: { links: Array<Record<string, unknown>>; networks: Array<Record<string, unknown>>; services: Array<Record<string, unknown>> };
  v1: { config: Array<Record<string, unknown>> };
  v2: string;
  vendordata: unknown;
  ec2: Record<string, unknown>;
}

function readOpenStack(ns: string, base: string): OpenStackRead {
  const r = guestTry(ns, ['/usr/bin/python3', '-c', OPENSTACK_READ, base], 60_000);
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as OpenStackRead;
}

const EC2_READ = [
  'import json',
  'from cloudinit.sources.helpers import ec2',
  'from cloudinit.sources.DataSourceEc2 import convert_ec2_metadata_network_config',
  "md = ec2.get_instance_metadata('2009-04-04', 'http://169.254.169.254', timeout=5, retries=0)",
  "ud = ec2.get_instance_userdata('2009-04-04', 'http://169.254.169.254', timeout=5, retries=0)",
  "net = convert_ec2_metadata_network_config(md['network'], fallback_nic='eth0') if 'network' in md else None",
  "print(json.dumps({'md': md, 'ud': ud.decode() if isinstance(ud, bytes) else ud, 'net': net}))",
].join('\n');

/** The physical entries of a v1 config, by name, with their subnets. */
function physical(v1: OpenStackRead['v1']): Record<string, Record<string, unknown>> {
  return Object.fromEntries(v1.config.filter((c) => c.type === 'physical').map((c) => [c.name as string, c]));
}

const subnetTypes = (c: Record<string, unknown> | undefined) => ((c?.subnets ?? []) as Array<{ type: string }>).map((s) => s.type);

test('cloud-init\'s OpenStack and EC2 readers configure VMs from the router: one NIC, a hot-plugged second, IPv6, a static tier; each VM only its own', async () => {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'nr-md-os-'));
  const vpcId = String(3000 + Math.floor(Math.random() * 900));
  const ns = s.track(`cs-vpc-${vpcId}`);
  const procs: ChildProcess[] = [];
  const etc: string[] = [];
  try {
    const { hostNs, upNs, h } = simulatedHost(s);
    // the metadata layer alone: the guest-segment filter (lib/router/vmfilter, off by default) would drop vm2's
    // frames with vm1's address (below) before they reach the router, which test/router/vm-filter*.test.ts prove
    const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    const vni = 7000 + Number(vpcId) % 1000;
    const tA = { networkId: `${vpcId}1`, vpcId, namespace: ns };
    const tB = { networkId: `${vpcId}2`, vpcId, namespace: ns };
    const tC = { networkId: `${vpcId}3`, vpcId, namespace: ns };
    await runCommand(engine, { command: 'implement-vpc', vpcId, namespace: ns, vpcCidr: cidr('10.17.0.0/16'), publicIp: { ip: '203.0.113.17', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: true } });
    await runCommand(engine, {
      command: 'implement-network', ...tA, segment: { kind: 'vxlan', vni }, gateway: '10.17.1.1', cidr: cidr('10.17.1.0/24'),
      ip6Gateway: 'fd00:17:1::1', ip6Cidr: { family: 6, address: 'fd00:17:1::', prefix: 64 },
    });
    await runCommand(engine, { command: 'implement-network', ...tB, segment: { kind: 'vxlan', vni: vni + 1 }, gateway: '10.17.2.1', cidr: cidr('10.17.2.0/24') });
    await runCommand(engine, { command: 'implement-network', ...tC, segment: { kind: 'vxlan', vni: vni + 2 }, gateway: '10.17.3.1', cidr: cidr('10.17.3.0/24'), dns: ['198.51.100.53'], domain: 'c.example' });
    await runCommand(engine, { command: 'config-dns-subnet', ...tA, gateway: '10.17.1.1', cidr: cidr('10.17.1.0/24'), dns: ['198.51.100.53'], domain: 'a.example' });
    await runCommand(engine, { command: 'config-dhcp-subnet', ...tB, gateway: '10.17.2.1', cidr: cidr('10.17.2.0/24') });

    const save = (net: typeof tA, ip: string, value: unknown) =>
      runCommand(engine, { command: 'save-vm-data', ...net, ip, vmData: { value, source: 'payload.vm_data' } } as T.SaveVmDataRequest);
    const prepare = (net: typeof tA, nic: Partial<T.PrepareNicRequest>) =>
      runCommand(engine, { command: 'prepare-nic', ...net, defaultNic: true, ...nic } as T.PrepareNicRequest);
    const release = (net: typeof tA, nic: Partial<T.ReleaseNicRequest>) =>
      runCommand(engine, { command: 'release-nic', ...net, defaultNic: true, ...nic } as T.ReleaseNicRequest);

    // vm1 and vm2 on tier A (CloudStack's order: prepare-nic — reservation — then the VM's rows)
    const vm1 = addVm(s, h, `brvx-${vni}`, '10.17.1.10/24', '10.17.1.1', MAC1);
    const vm2 = addVm(s, h, `brvx-${vni}`, '10.17.1.11/24', '10.17.1.1', MAC2);
    await prepare(tA, { ip: '10.17.1.10', mac: MAC1, hostname: 'vm1' });
    await save(tA, '10.17.1.10', rows('vm1', UUID1, '10.17.1.10'));
    await prepare(tA, { ip: '10.17.1.11', mac: MAC2, hostname: 'vm2' });
    await save(tA, '10.17.1.11', rows('vm2', UUID2, '10.17.1.11'));

    // ── one NIC: cloud-init's reader at the well-known address ──────────────────────────────────
    // guest requests (guestGet, guestTry) are asked again only while the machine's one neighbour table overflowed
    assert.equal(guestGet(vm1.ns, 'http://169.254.169.254/openstack'), {
      status: 200, body: '2012-08-10\n2013-04-04\n2013-10-17\n2015-10-15\n2016-06-30\n2016-10-06\n2017-02-22\n2018-08-27\nlatest',
    });
    const r1 = readOpenStack(vm1.ns, 'http://169.254.169.254');
    assert.is(r1.metadata.uuid, UUID1);
    assert.is(r1.metadata['instance-id'], UUID1, 'cloud-init\'s instance id (KEY_COPIES uuid → instance-id)');
    assert.is(r1.metadata['local-hostname'], 'vm1');
    assert.is(r1.metadata.availability_zone, 'zone-17');
    assert.equal(r1.metadata.public_keys, { 'vm1@laptop': 'ssh-ed25519 AAAAkeyvm1 vm1@laptop' });
    assert.is(r1.metadata.launch_index, 0);
    assert.is(r1.userdata, '#cloud-config\nsecret_of: vm1\n');
    assert.equal(r1.vendordata, {});
    assert.is(r1.ec2['instance-id'], UUID1, 'the EC2 crawl of read_v2 (169.254.169.254/latest/meta-data/) works too');
    const p1 = physical(r1.v1);
    assert.equal(Object.keys(p1), ['eth0'], 'one NIC, found by its MAC among the guest\'s interfaces');
    assert.is(p1.eth0.mac_address, MAC1);
    assert.equal(subnetTypes(p1.eth0), ['dhcp4', 'ipv6_slaac'], 'DHCP-served tier with router advertisements');
    assert.ok(typeof p1.eth0.mtu === 'number' && (p1.eth0.mtu as number) <= 1450, `VXLAN segment MTU (${String(p1.eth0.mtu)})`);
    assert.equal(r1.v1.config.filter((c) => c.type === 'nameserver').map((c) => c.address), ['10.17.1.1', '198.51.100.53', 'fd00:17:1::1'], 'the tier\'s DNS: the router first, then --dns; over IPv6 the router (RDNSS)');
    assert.match(r1.v2, /eth0:\n\s+dhcp4: true/);

    // the router's address and data-server give the same; vm2 its own
    assert.is(readOpenStack(vm1.ns, 'http://10.17.1.1').metadata.uuid, UUID1);
    mkdirSync(join('/etc/netns', vm1.ns), { recursive: true });
    etc.push(join('/etc/netns', vm1.ns));
    writeFileSync(join('/etc/netns', vm1.ns, 'resolv.conf'), 'nameserver 10.17.1.1\n');
    assert.is(nsTry(vm1.ns, ['getent', 'hosts', 'data-server']).stdout.trim().split(/\s+/)[0], '10.17.1.1', 'dnsmasq answers data-server');
    assert.is(JSON.parse(guestGet(vm1.ns, 'http://data-server/openstack/latest/meta_data.json').body).uuid, UUID1);
    const r2 = readOpenStack(vm2.ns, 'http://169.254.169.254');
    assert.is(r2.metadata.uuid, UUID2);
    assert.is(r2.userdata, '#cloud-config\nsecret_of: vm2\n');
    assert.equal(r2.networkdata.links.map((l) => l.ethernet_mac_address), [MAC2], 'vm2 sees only its own NIC');
    assert.not.match(JSON.stringify(r2), 'vm1');

    // ── EC2: cloud-init's Ec2 helpers at /2009-04-04/, and EC2 keys under /latest/meta-data/ ──────
    const e = guestTry(vm1.ns, ['/usr/bin/python3', '-c', EC2_READ], 60_000);
    assert.is(e.status, 0, e.stderr);
    const ec2 = JSON.parse(e.stdout.trim().split('\n').pop()!) as { md: Record<string, any>; ud: string; net: { ethernets: Record<string, Record<string, unknown>> } };
    assert.is(ec2.md['instance-id'], UUID1);
    assert.equal(ec2.md.placement, { 'availability-zone': 'zone-17' });
    assert.equal(ec2.md['public-keys'], { 'vm1@laptop': 'ssh-ed25519 AAAAkeyvm1 vm1@laptop' }, 'EC2\'s "0=name" listing');
    assert.is(ec2.md.network.interfaces.macs[MAC1]['local-ipv4s'], '10.17.1.10');
    assert.is(ec2.ud, '#cloud-config\nsecret_of: vm1\n');
    assert.equal(Object.values(ec2.net.ethernets).map((x) => (x.match as { macaddress: string }).macaddress), [MAC1]);
    assert.equal(guestGet(vm1.ns, 'http://169.254.169.254/latest/meta-data/placement/availability-zone'), { status: 200, body: 'zone-17' });
    assert.equal(guestGet(vm1.ns, 'http://169.254.169.254/latest/meta-data/public-keys/0/openssh-key'), { status: 200, body: 'ssh-ed25519 AAAAkeyvm1 vm1@laptop' });
    assert.equal(guestGet(vm1.ns, 'http://169.254.169.254/latest/meta-data/mac'), { status: 200, body: MAC1 });
    // the CloudStack layout is what it was: its listing, its public-keys file
    const csList = guestGet(vm1.ns, 'http://10.17.1.1/latest/meta-data/').body.split('\n');
    assert.equal(csList, ['availability-zone', 'hypervisor-host-name', 'instance-id', 'local-hostname', 'local-ipv4', 'public-keys', 'service-offering', 'vm-id']);
    assert.equal(guestGet(vm1.ns, 'http://10.17.1.1/latest/meta-data/public-keys'), { status: 200, body: 'ssh-ed25519 AAAAkeyvm1 vm1@laptop\n' });

    // ── IPv6: [fe80::a9fe:a9fe%eth0], the requester known by its MAC ─────────────────────────────
    // each guest's IPv6 is usable once its SLAAC address is there and its link-local one past DAD
    const v6Ready = (vm: string) => {
      const a = nsExec(vm, ['ip', '-6', 'addr', 'show', 'dev', 'eth0']);
      return /inet6 fd00:17:1:/.test(a) && /inet6 fe80:/.test(a) && !/tentative/.test(a);
    };
    assert.ok(await waitFor(() => v6Ready(vm1.ns) && v6Ready(vm2.ns), 10_000), 'the guests configured their IPv6 addresses');
    const v6 = readOpenStack(vm1.ns, 'http://[fe80::a9fe:a9fe%25eth0]');
    assert.is(v6.metadata.uuid, UUID1);
    assert.equal(physical(v6.v1).eth0?.mac_address, MAC1);
    assert.is(JSON.parse(guestTry(vm2.ns, ['curl', '-s', '-m', '5', '-g', 'http://[fe80::a9fe:a9fe%eth0]/openstack/latest/meta_data.json']).stdout).uuid, UUID2, 'vm2 over IPv6: its own');

    // ── hot plug: vm1 gets a NIC on tier B (prepare-nic: a DHCP reservation with its host name) ─────
    const hostEndB = `tv${uid(6)}`;
    h.netlink.linkAdd({ kind: 'veth', name: hostEndB, master: `brvx-${vni + 1}`, up: true, peer: { name: 'eth1', namespace: { netns: vm1.ns }, up: true, mac: MAC1B } });
    nsExec(vm1.ns, ['ip', 'addr', 'add', '10.17.2.10/24', 'dev', 'eth1']);
    await prepare(tB, { ip: '10.17.2.10', mac: MAC1B, hostname: 'vm1', defaultNic: false });
    const hot = readOpenStack(vm1.ns, 'http://169.254.169.254');
    const ph = physical(hot.v1);
    assert.equal(Object.keys(ph).sort(), ['eth0', 'eth1'], 'both NICs, matched to the guest\'s interfaces by MAC');
    assert.equal(subnetTypes(ph.eth1), ['dhcp4']);
    assert.equal(subnetTypes(ph.eth0), ['dhcp4', 'ipv6_slaac']);
    assert.match(hot.v2, /eth1:\n\s+dhcp4: true/);
    // then the VM's rows on tier B too (CloudStack sends them for every NIC with user data): still one VM
    await save(tB, '10.17.2.10', rows('vm1', UUID1, '10.17.2.10'));
    const viaB = JSON.parse(guestTry(vm1.ns, ['curl', '-s', '-m', '5', '--interface', 'eth1', 'http://10.17.2.1/openstack/latest/network_data.json']).stdout) as OpenStackRead['networkdata'];
    assert.equal(viaB.links.map((l) => l.ethernet_mac_address), [MAC1, MAC1B], 'tier B\'s service describes the same two NICs, default first');
    assert.equal(JSON.parse(guestGet(vm2.ns, 'http://169.254.169.254/openstack/latest/network_data.json').body).links.length, 1, 'vm2 still one');
    // unplugged: release-nic on tier B
    await release(tB, { ip: '10.17.2.10', mac: MAC1B });
    assert.equal(Object.keys(physical(readOpenStack(vm1.ns, 'http://169.254.169.254').v1)), ['eth0'], 'back to one NIC');

    // ── tier C without DHCP: static address, default route, the tier's DNS and domain ─────────────
    const vm3 = addVm(s, h, `brvx-${vni + 2}`, '10.17.3.10/24', '10.17.3.1', MAC3);
    await prepare(tC, { ip: '10.17.3.10', mac: MAC3, hostname: 'vm3' });
    await save(tC, '10.17.3.10', rows('vm3', UUID3, '10.17.3.10'));
    const r3 = readOpenStack(vm3.ns, 'http://169.254.169.254');
    assert.is(r3.metadata.uuid, UUID3, 'tier C\'s own 169.254.169.254');
    const s3 = (physical(r3.v1).eth0.subnets as Array<Record<string, unknown>>)[0];
    assert.equal([s3.type, s3.address, s3.netmask, s3.dns_nameservers, s3.dns_search], ['static', '10.17.3.10', '255.255.255.0', ['198.51.100.53'], ['c.example']]);
    assert.equal(s3.routes, [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.17.3.1' }]);
    assert.match(r3.v2, /addresses:\n\s+- 10\.17\.3\.10\/24/);

    // ── the well-known address leaks nowhere: not from the public side, not forwarded ───────────
    nsExec(upNs, ['ip', 'route', 'replace', '169.254.169.254/32', 'via', '203.0.113.17']);
    assert.is(nsTry(upNs, ['curl', '-s', '-m', '2', '-o', '/dev/null', '-w', '%{http_code}', 'http://169.254.169.254/openstack']).stdout, '000', 'the public side gets no answer');
    nsExec(upNs, ['ip', 'addr', 'add', '169.254.169.254/32', 'dev', 'lo']);
    procs.push(spawn('ip', ['netns', 'exec', upNs, 'socat', 'TCP-LISTEN:8081,fork,reuseaddr', 'SYSTEM:echo upstream'], { stdio: 'ignore' }));
    await waitFor(() => nsTry(upNs, ['socat', '-T1', '-', 'TCP:127.0.0.1:8081,connect-timeout=1']).stdout.trim() === 'upstream');
    assert.is(guestTry(vm1.ns, ['socat', '-T2', '-', 'TCP:203.0.113.1:8081,connect-timeout=2']).stdout.trim(), 'upstream', 'positive control: vm1 reaches the upstream port');
    assert.is(nsTry(vm1.ns, ['socat', '-T2', '-', 'TCP:169.254.169.254:8081,connect-timeout=2']).stdout.trim(), '', 'a guest\'s other traffic to 169.254.169.254 is not forwarded upstream');
    assert.is(guestGet(vm1.ns, 'http://169.254.169.254/openstack/latest/meta_data.json').status, 200, 'while port 80 is the metadata service');

    // ── spoofing vm1's address (vm1 down, vm2 keeps its MAC): nothing of vm1's in any layout ──────
    h.netlink.linkSetDown(vm1.hostEnd);
    nsExec(vm2.ns, ['ip', 'addr', 'add', '10.17.1.10/24', 'dev', 'eth0']);
    nsExec(vm2.ns, ['ip', 'neigh', 'flush', 'all']);
    for (const p of ['/openstack/latest/meta_data.json', '/openstack/latest/network_data.json', '/openstack/latest/user_data', '/2009-04-04/meta-data/instance-id', '/latest/meta-data/placement/availability-zone']) {
      const r = guestGet(vm2.ns, `http://169.254.169.254${p}`, {}, { from: '10.17.1.10' });
      assert.is(r.status, 404, p);
      assert.not.match(r.body, 'vm1');
    }
    assert.is(JSON.parse(guestGet(vm2.ns, 'http://169.254.169.254/openstack/latest/meta_data.json').body).uuid, UUID2, 'positive control: vm2 as itself');
    nsExec(vm2.ns, ['ip', 'addr', 'del', '10.17.1.10/24', 'dev', 'eth0']);
    h.netlink.linkSetUp(vm1.hostEnd);
    nsExec(vm1.ns, ['ip', 'neigh', 'flush', 'all']);
  } finally {
    for (const p of procs) p.kill();
    await stopDaemon(stateDir);
    for (const pid of dnsmasqPids(stateDir)) process.kill(pid, 'SIGKILL');
    for (const d of etc) rmSync(d, { recursive: true, force: true });
    s.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('the OpenStack password endpoint: a VM stores its own once, reads it back; no other VM, and no next VM at the address, sees it', async () => {
  await inScratch((s) => metadataNetwork(s, '10.18.1', [MAC1, MAC2], { vniBase: 7000 }), async (t) => {
    const { engine, net, ns, stateDir, hostNs, vms: [vm1, vm2] } = t;
    for (const [ip, mac, name, uuid] of [['10.18.1.10', MAC1, 'vm1', UUID1], ['10.18.1.11', MAC2, 'vm2', UUID2]] as const) {
      await runCommand(engine, { command: 'prepare-nic', ...net, ip, mac, defaultNic: true });
      await runCommand(engine, { command: 'save-vm-data', ...net, ip, vmData: { value: rows(name, uuid, ip), source: 'x' } } as T.SaveVmDataRequest);
    }
    const post = (vm: string, body: string) => {
      const r = nsTry(vm, ['curl', '-s', '-m', '5', '-w', '\n%{http_code}', '-X', 'POST', '--data-binary', body, 'http://169.254.169.254/openstack/latest/password']);
      return Number(r.stdout.split('\n').pop());
    };
    assert.equal(guestGet(vm1.ns, 'http://169.254.169.254/openstack/latest/password'), { status: 200, body: '' }, 'nothing posted yet');
    assert.is(post(vm1.ns, 'ZW5jcnlwdGVkLWJ5LXZtMQ=='), 200);
    assert.equal(guestGet(vm1.ns, 'http://169.254.169.254/openstack/2013-04-04/password'), { status: 200, body: 'ZW5jcnlwdGVkLWJ5LXZtMQ==' });
    assert.is(post(vm1.ns, 'another'), 409, 'stored once (Nova)');
    assert.is(post(vm2.ns, 'x'.repeat(257)), 400, 'more than 256 bytes');
    assert.equal(guestGet(vm2.ns, 'http://169.254.169.254/openstack/latest/password'), { status: 200, body: '' }, 'vm2 sees nothing of vm1\'s');
    assert.is(guestGet(vm1.ns, 'http://169.254.169.254/openstack/2012-08-10/password').status, 404, 'not in the first version');
    assert.is(nsTry(vm1.ns, ['curl', '-s', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', '--data', 'x', 'http://169.254.169.254/openstack/latest/meta_data.json']).stdout, '405');
    assert.ok(readFileSync(join(vmDir(stateDir, ns, '10.18.1.10'), 'os-password'), 'utf8').startsWith('ZW5j'));
    // another VM gets the address (prepare-nic, other MAC): the posted value is not handed over
    await runCommand(engine, { command: 'prepare-nic', ...net, ip: '10.18.1.10', mac: '02:00:00:17:09:09', defaultNic: true });
    await runCommand(engine, { command: 'save-vm-data', ...net, ip: '10.18.1.10', vmData: { value: rows('vm9', UUID3, '10.18.1.10'), source: 'x' } } as T.SaveVmDataRequest);
    assert.not.ok(existsSync(join(vmDir(stateDir, ns, '10.18.1.10'), 'os-password')), 'gone with its VM');
    // a reboot: daemon and namespace gone, the generated documents lost too — restoreAll builds them again
    const before = guestGet(vm2.ns, 'http://169.254.169.254/openstack/latest/network_data.json').body;
    await stopDaemon(stateDir);
    deleteNetns(ns);
    rmSync(join(vmDir(stateDir, ns, '10.18.1.11'), 'openstack'), { recursive: true });
    await new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } }).restoreAll();
    assert.equal(guestGet(vm2.ns, 'http://169.254.169.254/openstack/latest/network_data.json'), { status: 200, body: before }, 'the same network_data.json after the restore');
    assert.equal(guestGet(vm2.ns, 'http://169.254.169.254/openstack/latest/password'), { status: 200, body: '' });
  }, { stop: killRouterDaemons });
});

test.run();
