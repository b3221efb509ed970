/**
 * The generated documents (meta_data.json, network_data.json, the EC2 tree) from a router model, and the
 * paths of the OpenStack/EC2 layouts — pure, no kernel. Which NICs are one VM, which is the default, how each
 * NIC is addressed (DHCP, static, SLAAC, static IPv6), and what is never linked.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { emptyModel, type RouterModel, type TierModel } from '../../lib/router/model.js';
import { setDhcpState, type DhcpState } from '../../lib/router/dhcp/state.js';
import { eui64, publicKeys, vmDocuments, type VmDocuments } from '../../lib/router/vmdata/documents.js';
import { forgetVmdataTier, recordedMac, setVmdataState, vmdataState, type VmDataState } from '../../lib/router/vmdata/state.js';
import { prepareNicVmData, releaseNicVmData, restoreNetworkVmData } from '../../lib/router/vmdata/mutators.js';
import { DEFAULT_LIMITS } from '../../lib/router/vmdata/entries.js';
import { agentTarget, ec2Listing, ec2Lookup, type Ec2Node } from '../../lib/services/metadata/agent-layouts.js';
import { metadataTarget } from '../../lib/services/metadata/handlers.js';

const texts = new Map<string, string>();
const blob = (text: string): string => {
  const id = createHash('sha1').update(text).digest('hex');
  texts.set(id, text);
  return id;
};
const inputs = (mtus: Record<string, number> = {}) => ({ text: (id: string) => texts.get(id)!, mtus });

function tier(id: string, third: number, extra: Partial<TierModel> = {}): TierModel {
  return {
    networkId: id, segment: { kind: 'vxlan', vni: 5000 + third }, hostDev: 'eth1', gateway: `10.9.${third}.1`, cidr: `10.9.${third}.0/24`,
    extensionIp: `10.9.${third}.1`, guestType: 'isolated', implemented: true, ...extra,
  };
}

function files(name: string, uuid: string | undefined, extra: Record<string, string> = {}): Record<string, string> {
  const rows: Record<string, string> = { 'local-hostname': name, 'availability-zone': 'z1', 'public-keys': `ssh-ed25519 AAAA${name} ${name}@h\n`, ...extra };
  if (uuid) rows['vm-id'] = uuid;
  const out: Record<string, string> = { 'user-data': blob(`#cloud-config\n# ${name}\n`) };
  for (const [k, v] of Object.entries(rows)) out[`meta-data/${k}`] = blob(v);
  return out;
}

/** A VPC router: tier 1 (DHCP + DNS + IPv6), tier 2 (DHCP), tier 3 (nothing: static). */
function vpc(): RouterModel {
  const m = emptyModel('cs-vpc-9', 'vpc', '9');
  m.vpc = { id: '9', implemented: true };
  m.tiers['1'] = tier('1', 1, { ip6Gateway: 'fd00:9:1::1', ip6Cidr: 'fd00:9:1::/64' });
  m.tiers['2'] = tier('2', 2);
  m.tiers['3'] = tier('3', 3, { dns: ['192.0.2.53'], domain: 'three.example' });
  const d: DhcpState = {
    tiers: {
      1: { dhcp: true, dns: true, dnsServers: ['198.51.100.53'], domain: 'one.example', hosts: {}, names: {}, nicOptions: {} },
      2: { dhcp: true, dns: false, hosts: {}, names: {}, nicOptions: {} },
    },
  };
  setDhcpState(m, d);
  return m;
}

const host = (m: RouterModel, t: string, mac: string, ip: string, hostname?: string, defaultNic = true, ip6?: string) => {
  const d = m.extra!.dhcp as DhcpState;
  d.tiers[t].hosts[mac] = { ip, defaultNic, ...(hostname ? { hostname } : {}), ...(ip6 ? { ip6 } : {}) };
};

const net = (d: VmDocuments | undefined) => d?.network as { links: Array<Record<string, unknown>>; networks: Array<Record<string, unknown>>; services: Array<{ address: string }> };

test('one VM per identity; every NIC of it in each of its documents, the default NIC first; other VMs never', () => {
  const m = vpc();
  const s: VmDataState = { serial: 0, vms: {
    '10.9.1.10': { tier: '1', files: files('vm1', 'uuid-1') },
    '10.9.3.10': { tier: '3', mac: '02:00:00:00:03:0a', files: files('vm1', 'uuid-1') },
    '10.9.1.11': { tier: '1', files: files('vm2', 'uuid-2') },
  } };
  setVmdataState(m, s);
  host(m, '1', '02:00:00:00:01:0a', '10.9.1.10', 'vm1', true);
  host(m, '1', '02:00:00:00:01:0b', '10.9.1.11', 'vm2', true);
  const docs = vmDocuments(m, inputs({ 1: 1450, 3: 1500 }));
  const a = net(docs.get('10.9.1.10'));
  const b = net(docs.get('10.9.3.10'));
  assert.equal(a, b, 'the same network_data from either NIC\'s tier');
  assert.equal(a.links, [
    { id: 'tap02000000010a', type: 'phy', ethernet_mac_address: '02:00:00:00:01:0a', mtu: 1450 },
    { id: 'tap02000000030a', type: 'phy', ethernet_mac_address: '02:00:00:00:03:0a', mtu: 1500 },
  ]);
  assert.equal(a.networks, [
    { id: 'network0', link: 'tap02000000010a', network_id: '1', type: 'ipv4_dhcp' },
    { id: 'network1', link: 'tap02000000010a', network_id: '1', type: 'ipv6_slaac' },
    {
      id: 'network2', link: 'tap02000000030a', network_id: '3', type: 'ipv4', ip_address: '10.9.3.10', netmask: '255.255.255.0',
      routes: [], services: [{ type: 'dns', address: '192.0.2.53' }], dns_nameservers: ['192.0.2.53'], dns_search: ['three.example'],
    },
  ], 'DHCP on tier 1 (with SLAAC), static on tier 3 without a default route (not the default NIC)');
  assert.equal(a.services.map((x) => x.address), ['10.9.1.1', '198.51.100.53', 'fd00:9:1::1', '192.0.2.53']);
  const vm2 = net(docs.get('10.9.1.11'));
  assert.equal(vm2.links.map((l) => l.ethernet_mac_address), ['02:00:00:00:01:0b'], 'vm2: its own NIC only');
  assert.not.match(JSON.stringify(docs.get('10.9.1.11')), 'vm1');
  const meta = docs.get('10.9.3.10')!.meta!;
  assert.equal([meta.uuid, meta.hostname, meta.name, meta.launch_index, meta.availability_zone], ['uuid-1', 'vm1', 'vm1', 0, 'z1']);
  assert.equal(meta.public_keys, { 'vm1@h': 'ssh-ed25519 AAAAvm1 vm1@h' });
  assert.equal(meta.keys, [{ name: 'vm1@h', type: 'ssh', data: 'ssh-ed25519 AAAAvm1 vm1@h' }]);
  assert.is(docs.get('10.9.1.10')!.owner, '02:00:00:00:01:0a uuid-1');
  assert.is(docs.get('10.9.3.10')!.owner, '02:00:00:00:03:0a uuid-1');
});

test('the EC2 tree: placement, public keys as N=name, the NICs under network/interfaces/macs; paths and listings', () => {
  const m = vpc();
  setVmdataState(m, { serial: 0, vms: { '10.9.1.10': { tier: '1', files: files('vm1', 'uuid-1', { 'instance-id': 'i-2-10-VM', 'public-ipv4': '203.0.113.5' }) } } });
  host(m, '1', '02:00:00:00:01:0a', '10.9.1.10', 'vm1');
  const t = vmDocuments(m, inputs()).get('10.9.1.10')!.ec2! as Ec2Node;
  assert.equal(ec2Lookup(t, ['instance-id']), 'i-2-10-VM', 'EC2\'s instance id is CloudStack\'s instance-id entry');
  assert.equal(ec2Lookup(t, ['placement', 'availability-zone']), 'z1');
  assert.equal(ec2Lookup(t, ['public-keys', '0', 'openssh-key']), 'ssh-ed25519 AAAAvm1 vm1@h');
  assert.equal(ec2Lookup(t, ['network', 'interfaces', 'macs', '02:00:00:00:01:0a', 'ipv6s']), eui64('fd00:9:1::/64', '02:00:00:00:01:0a'));
  assert.is(ec2Listing(ec2Lookup(t, ['public-keys']) as Record<string, Ec2Node>), '0=vm1@h');
  const top = ec2Listing(t as Record<string, Ec2Node>).split('\n');
  assert.ok(top.includes('placement/') && top.includes('network/') && top.includes('public-keys/') && top.includes('mac'), top.join(','));
  for (const bad of [['__proto__'], ['constructor'], ['public-keys', '1'], ['public-keys', 'x'], ['mac', 'x']]) assert.is(ec2Lookup(t, bad), undefined, bad.join('/'));
});

test('NICs known only from a reservation or prepare-nic join the one VM with their host name; never an ambiguous one', () => {
  const m = vpc();
  setVmdataState(m, {
    serial: 0,
    vms: { '10.9.1.10': { tier: '1', files: files('vm1', 'uuid-1') }, '10.9.1.11': { tier: '1', files: files('vm2', 'uuid-2') } },
    nics: { '10.9.3.20': { tier: '3', mac: '02:00:00:00:03:14', hostname: 'vm2', defaultNic: false } },
  });
  host(m, '1', '02:00:00:00:01:0a', '10.9.1.10', 'vm1');
  host(m, '1', '02:00:00:00:01:0b', '10.9.1.11', 'vm2');
  host(m, '2', '02:00:00:00:02:0a', '10.9.2.10', 'VM1', false);
  let docs = vmDocuments(m, inputs());
  assert.equal(net(docs.get('10.9.1.10')).links.map((l) => l.ethernet_mac_address), ['02:00:00:00:01:0a', '02:00:00:00:02:0a'], 'reservation on tier 2 (host names compare case-insensitively)');
  assert.equal(net(docs.get('10.9.1.11')).links.map((l) => l.ethernet_mac_address), ['02:00:00:00:01:0b', '02:00:00:00:03:14'], 'prepare-nic on tier 3 (no DHCP there)');
  assert.equal(net(docs.get('10.9.1.11')).networks.at(-1)!.routes, [], 'a NIC prepared with default_nic false gets no default route');
  // a second VM named vm1: the reservation cannot be attributed, so it joins nobody
  (m.extra!.vmdata as VmDataState).vms['10.9.1.12'] = { tier: '1', files: files('vm1', 'uuid-3') };
  docs = vmDocuments(m, inputs());
  for (const ip of ['10.9.1.10', '10.9.1.12']) assert.not.ok(JSON.stringify(docs.get(ip)!.network).includes('02:00:00:00:02:0a'), ip);
});

test('addressing: static IPv6 where the address is not what SLAAC gives; the default route on the default NIC only', () => {
  const m = vpc();
  const t3 = m.tiers['3'];
  Object.assign(t3, { ip6Gateway: 'fd00:9:3::1', ip6Cidr: 'fd00:9:3::/64' });
  setVmdataState(m, { serial: 0, vms: {
    '10.9.3.10': { tier: '3', mac: '02:00:00:00:03:0a', files: files('vm1', 'uuid-1') },
    '10.9.1.10': { tier: '1', files: files('vm1', 'uuid-1') },
  }, nics: { '10.9.3.10': { tier: '3', mac: '02:00:00:00:03:0a', ip6: 'fd00:9:3::10', defaultNic: true } } });
  host(m, '1', '02:00:00:00:01:0a', '10.9.1.10', 'vm1', false, eui64('fd00:9:1::/64', '02:00:00:00:01:0a'));
  const n = net(vmDocuments(m, inputs()).get('10.9.1.10'));
  assert.equal(n.links.map((l) => l.ethernet_mac_address), ['02:00:00:00:03:0a', '02:00:00:00:01:0a'], 'the default NIC first');
  const byType = Object.fromEntries(n.networks.map((x) => [`${x.network_id as string}/${x.type as string}`, x]));
  assert.equal(byType['3/ipv4'].routes, [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.9.3.1' }]);
  assert.equal([byType['3/ipv6'].ip_address, byType['3/ipv6'].netmask, byType['3/ipv6'].routes], ['fd00:9:3::10', 'ffff:ffff:ffff:ffff::', [{ network: '::', netmask: '::', gateway: 'fd00:9:3::1' }]]);
  assert.ok(byType['1/ipv6_slaac'], 'tier 1: the reserved IPv6 address is the SLAAC one, so SLAAC');
  assert.not.ok(byType['1/ipv6'], 'and no static IPv6 there');
});

test('no identity, no documents; no MAC, no link; several keys named from their comments', () => {
  const m = vpc();
  setVmdataState(m, { serial: 0, vms: { '10.9.3.30': { tier: '3', files: files('anon', undefined) }, '10.9.3.31': { tier: '3', files: files('nomac', 'uuid-9') } } });
  const docs = vmDocuments(m, inputs());
  assert.equal(docs.get('10.9.3.30'), { owner: ' ' }, 'no instance-id/vm-id: no OpenStack/EC2 documents');
  assert.equal(net(docs.get('10.9.3.31')).links, [], 'no MAC known: an agent could not find the interface');
  assert.equal(publicKeys('ssh-rsa AAA a@b\n# comment\n\nssh-ed25519 BBB a@b\nssh-ed25519 CCC\necdsa DDD bad name with spaces'), [
    ['a@b', 'ssh-rsa AAA a@b'], ['a@b-1', 'ssh-ed25519 BBB a@b'], ['key-2', 'ssh-ed25519 CCC'], ['bad', 'ecdsa DDD bad name with spaces'],
  ]);
  assert.is(eui64('2001:db8:1::/64', '52:54:00:12:34:56'), '2001:db8:1:0:5054:ff:fe12:3456');
});

test('prepare-nic and restore-network record NICs (inside the tier\'s subnet) before any data; release-nic and forgetTier drop them', () => {
  const m = vpc();
  const env = { stateDir: '/nonexistent-state', limits: DEFAULT_LIMITS };
  const net3 = { networkId: '3', vpcId: '9', namespace: 'cs-vpc-9' };
  prepareNicVmData(m, { command: 'prepare-nic', ...net3, ip: '10.9.3.10', mac: '02:00:00:00:03:0a', hostname: 'vm1', defaultNic: true, ip6Address: 'fd00::10' }, env);
  prepareNicVmData(m, { command: 'prepare-nic', ...net3, ip: '10.61.0.10', mac: '02:00:00:00:03:0b', defaultNic: true }, env);
  assert.equal(vmdataState(m).nics, { '10.9.3.10': { tier: '3', mac: '02:00:00:00:03:0a', defaultNic: true, hostname: 'vm1', ip6: 'fd00::10' } }, 'the one outside 10.9.3.0/24 is not recorded');
  assert.equal(vmdataState(m).vms, {}, 'no VM record: nothing served before data arrive');
  // data arrive afterwards (CloudStack's order): they belong to the prepared NIC's MAC
  (m.extra!.vmdata as VmDataState).vms['10.9.3.10'] = { tier: '3', files: files('vm1', 'uuid-1') };
  assert.is(recordedMac(m, '10.9.3.10', vmdataState(m).vms['10.9.3.10']), '02:00:00:00:03:0a');
  releaseNicVmData(m, { command: 'release-nic', ...net3, ip: '10.9.3.10', mac: '02:00:00:00:03:0a', defaultNic: true }, env);
  assert.is(vmdataState(m).nics, undefined);
  assert.is(m.extra?.vmdata, undefined, 'nothing left: no slot');
  restoreNetworkVmData(m, { command: 'restore-network', ...net3, restoreData: { value: { userdata_enabled: false, vms: [
    { ip: '10.9.3.20', mac: '02:00:00:00:03:14', hostname: 'vm2', default_nic: 'false' }, { ip: '10.9.3.21' }, { ip: '10.9.4.1', mac: '02:00:00:00:03:15' },
  ] }, source: 'x' } }, env);
  assert.equal(vmdataState(m).nics, { '10.9.3.20': { tier: '3', mac: '02:00:00:00:03:14', defaultNic: false, hostname: 'vm2' } }, 'restore: the tier\'s NICs with a MAC, inside the subnet');
  forgetVmdataTier(m, '3');
  assert.is(m.extra?.vmdata, undefined);
});

test('paths: the OpenStack and EC2 layouts; the CloudStack layout keeps its own', () => {
  assert.equal(agentTarget('/openstack'), { kind: 'os-versions' });
  assert.equal(agentTarget('/openstack/latest/'), { kind: 'os-index', version: 'latest' });
  assert.equal(agentTarget('/openstack/2018-08-27/network_data.json'), { kind: 'os-file', version: '2018-08-27', name: 'network_data.json' });
  assert.is(agentTarget('/openstack/2013-04-04/network_data.json'), undefined, 'network_data.json came with 2015-10-15');
  assert.is(agentTarget('/openstack/2016-06-30/vendor_data2.json'), undefined);
  assert.equal(agentTarget('/openstack/2016-10-06/vendor_data2.json'), { kind: 'os-file', version: '2016-10-06', name: 'vendor_data2.json' });
  assert.equal(agentTarget('/2009-04-04/meta-data/network/interfaces/macs/02:00:00:00:01:0a/mac'), { kind: 'ec2', path: ['network', 'interfaces', 'macs', '02:00:00:00:01:0a', 'mac'] });
  assert.equal(agentTarget('/2009-04-04/'), { kind: 'ec2-index', version: '2009-04-04' });
  assert.equal(agentTarget('/1.0/user-data'), { kind: 'ec2-user-data' });
  assert.equal(agentTarget('/latest/meta-data/placement/availability-zone'), { kind: 'ec2', path: ['placement', 'availability-zone'], fallback: true });
  for (const bad of ['/openstack/2099-01-01/meta_data.json', '/openstack/latest/../latest/meta_data.json', '/openstack/latest/%2e%2e/x', '/openstack/latest/meta_data.json/x',
    '/2021-03-23/meta-data/instance-id', '/2009-04-04/meta-data/..%2Fx', '/openstack/latest/.key', '/2009-04-04/dynamic/x']) {
    assert.is(agentTarget(bad), undefined, bad);
  }
  assert.equal(metadataTarget('/latest/meta-data/public-keys'), { kind: 'file', rel: 'meta-data/public-keys' }, 'CloudStack\'s public-keys stays a file');
  assert.equal(metadataTarget('/latest/meta-data/'), { kind: 'list' }, 'and its listing its own');
});

test.run();
