/**
 * Pure parts of the dnsmasq service: value validation, option encoding, rendering, lease parsing, the
 * DHCPRELEASE packet. Rendered option and host lines are also handed to `dnsmasq --test` (as --dhcp-option /
 * --dhcp-host, the same syntax as the files), so dnsmasq itself confirms it parses what we write.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import {
  DnsmasqValueError, checkDhcpHostname, checkHostInSubnet, checkMac, dhcpOptionCode, dhcpReleasePacket, dnsmasqPaths,
  dropLeases, encodeDhcpOption, normalizeDhcpOptions, parseLeases, parseSubnet4, renderDnsmasq, type DnsmasqSpec, type TierSpec,
} from '../../lib/services/dnsmasq/index.js';
import { thrown } from '../helpers/expect.js';

const paths = dnsmasqPaths('/var/lib/nr/run/cs-net-1/dnsmasq');

function tier(over: Partial<TierSpec> = {}): TierSpec {
  return {
    tag: 'tier-1', ifname: 'vn-x7-1', subnet: parseSubnet4('10.1.1.0/24'), router: '10.1.1.1', dnsServers: ['10.1.1.1', '8.8.8.8'],
    domain: 'guests.example', dns: true, hosts: [], names: [], ...over,
  };
}
const spec = (tiers: TierSpec[], over: Partial<DnsmasqSpec> = {}): DnsmasqSpec => ({ paths, user: 'dnsmasq', tiers, upstream: [], ...over });

const rejects = (fn: () => unknown, field?: string): DnsmasqValueError => thrown(fn, DnsmasqValueError, field ? { field: new RegExp(field) } : {});

/** dnsmasq's own parser on the rendered command line plus the file lines given as options. */
function dnsmasqAccepts(argv: string[], opts: string, hosts: string): { ok: boolean; err: string } {
  const lines = (t: string) => t.split('\n').filter(Boolean);
  const args = [
    ...argv.filter((a) => !a.startsWith('--dhcp-optsfile') && !a.startsWith('--dhcp-hostsfile') && !a.startsWith('--servers-file') && !a.startsWith('--addn-hosts')),
    ...lines(opts).map((l) => `--dhcp-option=${l}`),
    ...lines(hosts).map((l) => `--dhcp-host=${l}`),
  ];
  const r = spawnSync('/usr/sbin/dnsmasq', ['--test', ...args], { encoding: 'utf8' });
  return { ok: r.status === 0, err: `${r.stderr}` };
}

test('values: MAC, host address in subnet, host names dnsmasq would misread', () => {
  assert.is(checkMac('02:AA:bb:00:00:01'), '02:aa:bb:00:00:01');
  assert.is(checkMac('02-aa-bb-00-00-01'), '02:aa:bb:00:00:01');
  for (const bad of ['01:00:5e:00:00:01', '00:00:00:00:00:00', '02:aa:bb:00:00', '02:aa:bb:00:00:01,10.0.0.1', '02:aa:bb:00:00:0\n']) rejects(() => checkMac(bad), 'mac');
  const s = parseSubnet4('10.1.1.77/24');
  assert.equal(s, { network: '10.1.1.0', prefixLen: 24 });
  assert.is(checkHostInSubnet('10.1.1.10', s), '10.1.1.10');
  for (const bad of ['10.1.2.10', '10.1.1.0', '10.1.1.255', '10.1.1.010', '10.1.1.10,set:x', ' 10.1.1.10']) rejects(() => checkHostInSubnet(bad, s), 'ip');
  assert.is(checkDhcpHostname('vm-1.example'), 'vm-1.example');
  for (const bad of ['3600', '12h', '45M', 'infinite', 'ignore', 'a_b', 'a b', 'a,b', 'a\nb', '-a', '', 'x'.repeat(64)]) rejects(() => checkDhcpHostname(bad), 'hostname');
});

test('option encoding: typed values canonical, strings quoted, injection impossible', () => {
  assert.is(dhcpOptionCode('option:domain-search'), 119);
  assert.is(dhcpOptionCode('119'), 119);
  for (const bad of ['0', '255', '300', '53', '61', '12', 'option:nope', 'option6:dns-server', 'x', '1 ', '01']) rejects(() => dhcpOptionCode(bad));
  const enc = (k: string, v: string) => encodeDhcpOption(k, v).text;
  assert.is(enc('6', '1.1.1.1, 8.8.8.8'), '6,1.1.1.1,8.8.8.8');
  assert.is(enc('3', ''), '3', 'an empty router option');
  assert.is(enc('26', '1400'), '26,1400');
  assert.is(enc('119', 'a.example,b.example'), '119,a.example,b.example');
  assert.is(enc('17', 'x",tag:y,3 # z\\'), '17,"x\\",tag:y,3 # z\\\\"');
  assert.is(enc('224', 'hello, world'), '224,"hello, world"');
  assert.is(enc('224', '01:02:ff'), '224,01:02:ff');
  assert.is(enc('224', '42'), '224,42');
  assert.is(enc('224', '1.2.3.4,5.6.7.8'), '224,1.2.3.4,5.6.7.8');
  assert.is(enc('option:ntp-server', '10.0.0.1'), '42,10.0.0.1');
  for (const [k, v] of [
    ['6', '1.2.3.4,evil'], ['6', '1.2.3.4\nserver=8.8.8.8'], ['3', '1.2.3.4\rx'], ['17', 'a\u0000b'], ['26', '70000'], ['26', '-1'],
    ['119', 'a.example,-bad'], ['15', 'not a domain'], ['224', ''], ['224', 'x'.repeat(256)], ['23', '1.5'],
  ]) rejects(() => encodeDhcpOption(k, v));
  assert.equal(normalizeDhcpOptions({ 'option:domain-search': 'a.example', '6': '1.1.1.1' }), { '6': '1.1.1.1', '119': 'a.example' });
  rejects(() => normalizeDhcpOptions({ '119': 'a.example', 'option:domain-search': 'b.example' }));
});

test('render: command line, reservations, tagged per-NIC options, names, servers', () => {
  const r = renderDnsmasq(spec([tier({
    hosts: [
      { mac: '02:00:00:00:00:02', ip: '10.1.1.11', hostname: 'vm2.other', router: false, options: { '119': 'a.example' } },
      { mac: '02:00:00:00:00:01', ip: '10.1.1.10', hostname: 'vm1' },
      { mac: '02:00:00:00:00:03', ip: '10.1.1.12', router: false, options: { '3': '10.1.1.254' } },
    ],
    names: [{ ip: '10.1.1.10', names: ['vm1', 'vm1.guests.example'] }, { ip: '10.1.1.1', ip6: 'fd00::1', names: ['data-server'] }],
  })], { upstream: ['8.8.8.8', '8.8.8.8'] }));
  assert.ok(r.argv.includes('--interface=vn-x7-1'));
  assert.ok(r.argv.includes('--dhcp-range=set:tier-1,10.1.1.0,static,255.255.255.0,12h'));
  assert.ok(r.argv.includes('--port=53'));
  assert.ok(r.argv.includes('--bind-dynamic') && r.argv.includes('--except-interface=lo'));
  assert.ok(r.argv.includes('--user=dnsmasq'));
  assert.not.ok(r.argv.some((a) => a.includes('keep-in-foreground') || a === '--enable-ra'));
  assert.equal(r.argv.filter((a) => a.startsWith('--dhcp-mac=')), ['--dhcp-mac=set:nic-020000000002,02:00:00:00:00:02', '--dhcp-mac=set:nic-020000000003,02:00:00:00:00:03']);
  assert.is(r.files[paths.hosts], '02:00:00:00:00:01,10.1.1.10,vm1\n02:00:00:00:00:02,10.1.1.11,vm2\n02:00:00:00:00:03,10.1.1.12\n');
  assert.is(r.files[paths.opts], [
    'tag:tier-1,3,10.1.1.1', 'tag:tier-1,6,10.1.1.1,8.8.8.8', 'tag:tier-1,15,"guests.example"',
    'tag:nic-020000000002,3', 'tag:nic-020000000002,119,a.example',
    'tag:nic-020000000003,3,10.1.1.254', // its own router option replaces the empty one
    '',
  ].join('\n'));
  assert.is(r.files[paths.names], '10.1.1.10 vm1 vm1.guests.example\n10.1.1.1 data-server\nfd00::1 data-server\n');
  assert.is(r.files[paths.servers], 'server=/guests.example/\nserver=8.8.8.8\n');
  const v = dnsmasqAccepts(r.argv, r.files[paths.opts], r.files[paths.hosts]);
  assert.ok(v.ok, v.err);
});

test('render: DHCP-only tiers (port 0, no names), IPv6 router advertisements, two tiers', () => {
  const only = renderDnsmasq(spec([tier({ dns: false, names: [{ ip: '10.1.1.10', names: ['vm1'] }] })]));
  assert.ok(only.argv.includes('--port=0'));
  assert.is(only.files[paths.names], '', 'no DNS, no names');
  assert.is(only.files[paths.servers], '');
  const two = renderDnsmasq(spec([
    tier({ tag: 'tier-b', ifname: 'vn-x7-b', subnet: parseSubnet4('10.2.0.0/16'), dns: false, domain: undefined, dnsServers: [] }),
    tier({ ipv6: { prefixLen: 64, dnsServers: ['fd00:1::1', '2001:db8::53'] } }),
  ]));
  assert.ok(two.argv.includes('--port=53'), 'one tier with DNS opens port 53 (the module closes it to the other)');
  assert.ok(two.argv.includes('--enable-ra'));
  assert.ok(two.argv.includes('--dhcp-range=set:tier-1,::,constructor:vn-x7-1,ra-stateless,64,12h'));
  assert.ok(two.argv.includes('--dhcp-range=set:tier-b,10.2.0.0,static,255.255.0.0,12h'));
  assert.match(two.files[paths.opts], 'tag:tier-1,option6:dns-server,[fd00:1::1],[2001:db8::53]\n');
  assert.match(two.files[paths.opts], 'tag:tier-1,option6:domain-search,guests.example\n');
  assert.match(two.files[paths.opts], 'tag:tier-b,6\n', 'no DNS server: an empty option 6, or dnsmasq offers itself');
  const quiet = renderDnsmasq(spec([tier({ dns: false, dnsServers: [], ipv6: { prefixLen: 64, dnsServers: [] } })]));
  assert.match(quiet.files[paths.opts], 'tag:tier-1,option6:dns-server\n', 'and no RDNSS');
  const v = dnsmasqAccepts(two.argv, two.files[paths.opts], two.files[paths.hosts]);
  assert.ok(v.ok, v.err);
  rejects(() => renderDnsmasq(spec([tier({ ipv6: { prefixLen: 48, dnsServers: [] } })])), 'IPv6 prefix');
});

test('render refuses what dnsmasq would misread: duplicates, outside addresses, odd names, bad paths', () => {
  const h = (mac: string, ip: string, extra: object = {}) => ({ mac, ip, ...extra });
  rejects(() => renderDnsmasq(spec([tier({ hosts: [h('02:00:00:00:00:01', '10.1.1.10'), h('02:00:00:00:00:01', '10.1.1.11')] })])), 'mac');
  rejects(() => renderDnsmasq(spec([tier({ hosts: [h('02:00:00:00:00:01', '10.1.1.10'), h('02:00:00:00:00:02', '10.1.1.10')] })])), 'ip');
  rejects(() => renderDnsmasq(spec([tier({ hosts: [h('02:00:00:00:00:01', '10.9.1.10')] })])), 'ip');
  rejects(() => renderDnsmasq(spec([tier({ hosts: [h('02:00:00:00:00:01', '10.1.1.10', { hostname: 'vm1\ndhcp-range=x' })] })])), 'hostname');
  rejects(() => renderDnsmasq(spec([tier({ hosts: [h('02:00:00:00:00:01', '10.1.1.10', { options: { '6': 'x' } })] })])));
  rejects(() => renderDnsmasq(spec([tier({ names: [{ ip: '10.1.1.10', names: ['a b'] }] })])), 'DNS name');
  rejects(() => renderDnsmasq(spec([tier({ tag: 'tier,x' })])), 'tag');
  rejects(() => renderDnsmasq(spec([tier({ ifname: 'eth0,lo' })])), 'interface');
  rejects(() => dnsmasqPaths('/var/lib/my state'), 'runtime directory');
  rejects(() => renderDnsmasq(spec([tier()], { user: 'root --port=1' })), 'user');
});

test('leases: parse, drop, DHCPRELEASE packet', () => {
  const text = [
    '0 02:00:00:00:00:01 10.1.1.10 vm1 01:02:00:00:00:00:01',
    '1700000000 02:00:00:00:00:02 10.1.1.11 * *',
    'duid 00:01:00:01:2c:aa:bb:cc:02:00:00:00:00:01',
    '1700000000 1234 fd00::10 vm1 00:01',
    '',
  ].join('\n');
  assert.equal(parseLeases(text), [
    { expires: 0, mac: '02:00:00:00:00:01', ip: '10.1.1.10', hostname: 'vm1', clientId: '01:02:00:00:00:00:01' },
    { expires: 1700000000, mac: '02:00:00:00:00:02', ip: '10.1.1.11' },
  ]);
  assert.is(dropLeases(text, new Set(['02:00:00:00:00:01'])), text.split('\n').slice(1).join('\n'));
  const p = dhcpReleasePacket(parseLeases(text)[0], '10.1.1.1', 0x01020304);
  assert.is(p[0], 1);
  assert.is(p.readUInt32BE(4), 0x01020304);
  assert.equal([...p.subarray(12, 16)], [10, 1, 1, 10], 'ciaddr');
  assert.equal([...p.subarray(28, 34)], [2, 0, 0, 0, 0, 1], 'chaddr');
  assert.equal([...p.subarray(236)], [0x63, 0x82, 0x53, 0x63, 53, 1, 7, 54, 4, 10, 1, 1, 1, 61, 7, 1, 2, 0, 0, 0, 0, 1, 255]);
});

test.run();
