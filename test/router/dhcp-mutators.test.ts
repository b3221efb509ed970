/** DHCP/DNS command mutators and the model → dnsmasq spec translation (pure: no kernel, no process). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { emptyModel, type RouterModel } from '../../lib/router/model.js';
import { UsageError } from '../../lib/util/errors.js';
import * as d from '../../lib/router/dhcp/index.js';
import { dhcpModule } from '../../lib/router/dhcp/module.js';
import { dnsmasqPaths, renderDnsmasq } from '../../lib/services/dnsmasq/index.js';
import { tierAttachment } from '../../lib/router/topology.js';
import type { RestoreForDhcp } from '../../lib/router/vmdata/index.js';
import type * as T from '../../lib/router/contract/types.js';
import { thrown } from '../helpers/expect.js';

// the hooks plug into the metadata module's one-change commands (prepare-nic, release-nic, restore-network)
const prepareStep: (m: RouterModel, req: T.PrepareNicRequest) => void = d.dhcpPrepareNic;
const releaseStep: (m: RouterModel, req: T.ReleaseNicRequest) => void = d.dhcpReleaseNic;
const restoreInput = (r: RestoreForDhcp): d.DhcpRestore => r;
void prepareStep; void releaseStep; void restoreInput;

const c4 = (s: string) => { const [address, p] = s.split('/'); return { family: 4 as const, address, prefix: Number(p) }; };

function model(): RouterModel {
  const m = emptyModel('cs-net-42', 'network', '42');
  m.tiers['42'] = {
    networkId: '42', segment: { kind: 'vxlan', vni: 4242 }, hostDev: 'eth1', gateway: '10.4.2.1', cidr: '10.4.2.0/24',
    extensionIp: '10.4.2.1', guestType: 'isolated', implemented: true, dns: ['192.0.2.53'], domain: 'tier.example',
  };
  return m;
}
const net = { networkId: '42', namespace: 'cs-net-42' };
const subnet = { ...net, gateway: '10.4.2.1', cidr: c4('10.4.2.0/24') };

const usage = (fn: () => unknown, argument?: string): UsageError => thrown(fn, UsageError, argument ? { argument } : {});

const spec = (m: RouterModel) => d.dnsmasqSpec(m, dnsmasqPaths('/tmp/x/dnsmasq'), 'root');

test('config-dhcp/dns-subnet: flags, options, cidr must be the tier\'s, unknown tier refused', () => {
  const m = model();
  d.configDhcpSubnet(m, { command: 'config-dhcp-subnet', ...subnet });
  assert.equal(d.dhcpState(m).tiers['42'], { dhcp: true, dns: false, gateway: '10.4.2.1', hosts: {}, names: {}, nicOptions: {} });
  d.configDnsSubnet(m, { command: 'config-dns-subnet', ...subnet, dns: ['198.51.100.1'], extensionIp: '10.4.2.2' });
  d.configDhcpSubnet(m, { command: 'config-dhcp-subnet', ...subnet });
  const t = d.dhcpState(m).tiers['42'];
  assert.ok(t.dhcp && t.dns, 'config-dhcp-subnet after config-dns-subnet keeps DNS on');
  assert.equal(t.dnsServers, ['198.51.100.1']);
  assert.is(t.dataServer, '10.4.2.2');
  const sp = spec(m).tiers[0];
  assert.equal(sp.dnsServers, ['10.4.2.1', '198.51.100.1'], 'our address first when DNS is on');
  assert.is(sp.domain, 'tier.example', 'domain from the tier when the command has none');
  assert.equal(sp.names, [{ ip: '10.4.2.2', names: ['data-server', 'data-server.tier.example'] }]);
  usage(() => d.configDhcpSubnet(m, { command: 'config-dhcp-subnet', ...subnet, cidr: c4('10.4.3.0/24') }), 'cidr');
  usage(() => d.configDhcpSubnet(m, { command: 'config-dhcp-subnet', ...subnet, networkId: '43' }), 'network_id');
  usage(() => d.configDnsSubnet(m, { command: 'config-dns-subnet', ...subnet, domain: 'bad domain' }), 'domain');
  d.removeDnsSubnet(m, { command: 'remove-dns-subnet', ...net });
  assert.ok(d.dhcpState(m).tiers['42'].dhcp && !d.dhcpState(m).tiers['42'].dns, 'remove-dns-subnet: DHCP stays');
  d.removeDhcpSubnet(m, { command: 'remove-dhcp-subnet', ...net });
  assert.equal(m.extra?.dhcp, undefined, 'remove-dhcp-subnet drops the tier state');
});

test('entries: validated (no injection), one NIC per address, one tier per MAC; options by NIC id', () => {
  const m = model();
  d.configDnsSubnet(m, { command: 'config-dns-subnet', ...subnet });
  const entry = (x: object) => d.addDhcpEntry(m, { command: 'add-dhcp-entry', ...net, mac: '02:00:00:00:00:01', ip: '10.4.2.10', defaultNic: true, ...x } as never);
  usage(() => entry({ hostname: 'vm1\ndhcp-range=1.2.3.4' }), 'hostname');
  usage(() => entry({ hostname: '3600' }), 'hostname');
  usage(() => entry({ ip: '10.4.3.10' }), 'ip');
  usage(() => entry({ ip: '10.4.2.1' }), 'ip');
  usage(() => entry({ ip: '10.4.2.10,set:x' }), 'ip');
  usage(() => entry({ mac: '02:00:00:00:00:01,set:x' }), 'mac');
  usage(() => entry({ ip6Address: 'fd00::1\n' }), 'ip6_address');
  entry({ hostname: 'vm1', nicId: 'n1' });
  d.addDhcpEntry(m, { command: 'add-dhcp-entry', ...net, mac: '02:00:00:00:00:02', ip: '10.4.2.10', defaultNic: false, nicId: 'n2' });
  assert.equal(Object.keys(d.dhcpState(m).tiers['42'].hosts), ['02:00:00:00:00:02'], 'the address moved to the new NIC');
  usage(() => d.setDhcpOptions(m, { command: 'set-dhcp-options', ...net, nicId: 'n2', options: { '6': '1.1.1.1\nserver=6.6.6.6' } }), 'options');
  usage(() => d.setDhcpOptions(m, { command: 'set-dhcp-options', ...net, nicId: 'n2', options: { '53': '1' } }), 'options');
  usage(() => d.setDhcpOptions(m, { command: 'set-dhcp-options', ...net, nicId: 'n2', options: { '6': '1.1.1.1,evil' } }), 'options');
  d.setDhcpOptions(m, { command: 'set-dhcp-options', ...net, nicId: 'n2', options: { 'option:domain-search': 'x.example' } });
  const h = spec(m).tiers[0].hosts;
  assert.equal(h, [{ mac: '02:00:00:00:00:02', ip: '10.4.2.10', router: false, options: { '119': 'x.example' } }]);
  const r = renderDnsmasq(spec(m));
  assert.ok(r.argv.includes('--dhcp-mac=set:nic-020000000002,02:00:00:00:00:02'));
  d.setDhcpOptions(m, { command: 'set-dhcp-options', ...net, nicId: 'n2', options: {} });
  assert.equal(d.dhcpState(m).tiers['42'].nicOptions, {}, 'an empty option set clears');
  d.removeDhcpEntry(m, { command: 'remove-dhcp-entry', ...net, mac: '02:00:00:00:00:02', defaultNic: true });
  assert.equal(d.dhcpState(m).tiers['42'].hosts, {});
  usage(() => d.addDnsEntry(m, { command: 'add-dns-entry', ...net, ip: '10.4.2.20', hostname: 'a b', defaultNic: true }), 'hostname');
  d.addDnsEntry(m, { command: 'add-dns-entry', ...net, ip: '10.4.2.20', hostname: 'db', ip6Address: 'fd00::20', defaultNic: true });
  assert.equal(spec(m).tiers[0].names[0], { ip: '10.4.2.20', ip6: 'fd00::20', names: ['db', 'db.tier.example'] });
  d.removeDnsEntry(m, { command: 'remove-dns-entry', ...net, ip: '10.4.2.20', defaultNic: true });
  assert.equal(d.dhcpState(m).tiers['42'].names, {});
});

test('prepare-nic / release-nic: nothing without DHCP; reservation + name with it', () => {
  const m = model();
  const nic = { command: 'prepare-nic' as const, ...net, mac: '02:00:00:00:00:05', ip: '10.4.2.50', hostname: 'vm5', defaultNic: true, ip6Address: 'fd00::50' };
  d.dhcpPrepareNic(m, nic);
  assert.equal(m.extra?.dhcp, undefined, 'silently nothing when DHCP is not configured');
  d.configDhcpSubnet(m, { command: 'config-dhcp-subnet', ...subnet });
  d.dhcpPrepareNic(m, nic);
  const t = d.dhcpState(m).tiers['42'];
  assert.equal(t.hosts['02:00:00:00:00:05'], { ip: '10.4.2.50', hostname: 'vm5', defaultNic: true, ip6: 'fd00::50' });
  assert.equal(t.names['10.4.2.50'], { hostname: 'vm5', ip6: 'fd00::50' });
  usage(() => d.dhcpPrepareNic(m, { ...nic, hostname: 'bad_name' }), 'hostname');
  d.dhcpReleaseNic(m, { command: 'release-nic', ...net, mac: '02:00:00:00:00:05', ip: '10.4.2.50', defaultNic: true });
  assert.equal(d.dhcpState(m).tiers['42'].hosts, {});
  assert.equal(d.dhcpState(m).tiers['42'].names, {});
});

test('restore-network: reservations and names rebuilt exactly; both flags off drops the tier', () => {
  const m = model();
  d.configDnsSubnet(m, { command: 'config-dns-subnet', ...subnet });
  d.addDhcpEntry(m, { command: 'add-dhcp-entry', ...net, mac: '02:00:00:00:00:09', ip: '10.4.2.90', defaultNic: true });
  d.dhcpRestoreNetwork(m, {
    networkId: '42', dhcpEnabled: true, dnsEnabled: true, domain: 'restored.example',
    vms: [{ mac: '02:00:00:00:00:01', ip: '10.4.2.10', hostname: 'a', defaultNic: true }, { mac: '02:00:00:00:00:02', ip: '10.4.2.11', hostname: 'b', defaultNic: false }, { ip: '10.4.2.12' }],
  });
  const t = d.dhcpState(m).tiers['42'];
  assert.equal(Object.keys(t.hosts).sort(), ['02:00:00:00:00:01', '02:00:00:00:00:02'], 'exactly the listed NICs');
  assert.equal(Object.keys(t.names).sort(), ['10.4.2.10', '10.4.2.11']);
  assert.is(t.domain, 'restored.example');
  usage(() => d.dhcpRestoreNetwork(m, { networkId: '42', dhcpEnabled: true, dnsEnabled: false, vms: [{ mac: '02:00:00:00:00:01', ip: '10.4.2.10', hostname: 'x\ny' }] }), 'restore_data.vms[0].hostname');
  d.dhcpRestoreNetwork(m, { networkId: '42', dhcpEnabled: false, dnsEnabled: false, vms: [] });
  assert.equal(m.extra?.dhcp, undefined);
});

test('unknown router: removals leave no phantom state; nft guard closes port 53 to DHCP-only tiers', () => {
  const ghost = emptyModel('cs-net-77', 'network', '77');
  assert.is(d.removeDhcpSubnet(ghost, { command: 'remove-dhcp-subnet', networkId: '77', namespace: 'cs-net-77' }), 'delete');
  assert.is(d.removeDhcpEntry(ghost, { command: 'remove-dhcp-entry', networkId: '77', namespace: 'cs-net-77', mac: '02:00:00:00:00:01', defaultNic: true }), 'delete');

  const m = emptyModel('cs-vpc-9', 'vpc', '9');
  m.vpc = { id: '9', implemented: true };
  for (const [id, n] of [['a', 1], ['b', 2]] as const) {
    m.tiers[id] = { networkId: id, segment: { kind: 'vxlan', vni: 900 + n }, hostDev: 'eth1', gateway: `10.9.${n}.1`, cidr: `10.9.${n}.0/24`, extensionIp: `10.9.${n}.1`, guestType: 'isolated', implemented: true };
  }
  const vnet = (id: string) => ({ networkId: id, vpcId: '9', namespace: 'cs-vpc-9', gateway: `10.9.${id === 'a' ? 1 : 2}.1`, cidr: c4(`10.9.${id === 'a' ? 1 : 2}.0/24`) });
  d.configDhcpSubnet(m, { command: 'config-dhcp-subnet', ...vnet('a') });
  d.configDhcpSubnet(m, { command: 'config-dhcp-subnet', ...vnet('b') });
  assert.equal(dhcpModule.nftObjects!(m), [], 'no DNS anywhere: nothing to close');
  d.configDnsSubnet(m, { command: 'config-dns-subnet', ...vnet('a') });
  const objs = dhcpModule.nftObjects!(m);
  assert.is(objs.length, 2);
  assert.match(JSON.stringify(objs[1]), tierAttachment(m, m.tiers.b).nsVeth);
  assert.not.match(JSON.stringify(objs[1]), tierAttachment(m, m.tiers.a).nsVeth);
  d.addDhcpEntry(m, { command: 'add-dhcp-entry', networkId: 'a', vpcId: '9', namespace: 'cs-vpc-9', mac: '02:00:00:00:00:01', ip: '10.9.1.10', defaultNic: true });
  d.addDhcpEntry(m, { command: 'add-dhcp-entry', networkId: 'b', vpcId: '9', namespace: 'cs-vpc-9', mac: '02:00:00:00:00:01', ip: '10.9.2.10', defaultNic: true });
  assert.equal(d.dhcpState(m).tiers.a.hosts, {}, 'a MAC moves between tiers, never doubled');
  m.tiers.b.implemented = false;
  assert.equal(spec(m).tiers.map((t) => t.tag), ['tier-a'], 'an unimplemented tier is not served');
});

test.run();
