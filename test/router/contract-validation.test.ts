/** Every bad input is a UsageError (exit 1) whose one-line message names the argument. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseInvocation } from '../../lib/router/contract/parse.js';
import { UsageError } from '../../lib/util/errors.js';
import { TempDir, cli } from '../cli/helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';
import {
  parseCidr, parseHostname, parseIpv4, parseIpv6, parseMac, parsePortRange, parseSegment, BadValue,
} from '../../lib/router/contract/values.js';
import { thrown } from '../helpers/expect.js';
import { abbreviate } from '../../lib/router/log.js';
import { readFileSync } from 'node:fs';

requireSandbox();

const env = { NETNS_ROUTER_STATE_DIR: '/tmp/v-state', NETNS_ROUTER_LOG_FILE: '/tmp/v.log' };

/**
 * The invocation parsed, and its rule document read as the command reads it: fw_rules given as text is decoded
 * when its value is first read (contract/reader.ts keepText), with the same UsageError.
 */
const usage = (argv: string[], e: Record<string, string | undefined> = env): UsageError => thrown(() => {
  const inv = parseInvocation(argv, { env: e });
  return (inv.request as { fwRules?: { value: unknown } }).fwRules?.value;
}, UsageError, {}, argv.join(' '));

/** [argv, argument named, message pattern] */
const OPTION_CASES: Array<[string[], string, RegExp]> = [
  [['add-port-forward', '--network-id', '42', '--public-ip', '1.2.3.4', '--public-port', '99999', '--private-ip', '10.0.0.5', '--private-port', '22'], '--public-port', /^--public-port: "99999" is not a port \(1-65535\)$/],
  [['add-port-forward', '--network-id', '42', '--public-ip', '1.2.3.4', '--public-port', '90:80', '--private-ip', '10.0.0.5', '--private-port', '22'], '--public-port', /start must not exceed end/],
  [['add-port-forward', '--network-id', '42', '--public-ip', '1.2.3.4', '--public-port', '0', '--private-ip', '10.0.0.5', '--private-port', '22'], '--public-port', /not a port/],
  [['add-port-forward', '--network-id', '42', '--public-ip', '1.2.3.4', '--public-port', '80:90', '--private-ip', '10.0.0.5', '--private-port', '80:85'], '--private-port', /^--private-port: 80-85 must be one port or as many ports as --public-port 80-90 \(11\)$/],
  [['add-port-forward', '--network-id', '42', '--public-ip', '1.2.3.4', '--public-port', '80', '--private-ip', '10.0.0.5', '--private-port', 'ssh'], '--private-port', /not a port/],
  [['add-port-forward', '--network-id', '42', '--public-ip', '1.2.3.4', '--public-port', '80', '--private-ip', '10.0.0.5', '--private-port', '22', '--protocol', 'icmp'], '--protocol', /not a protocol \(tcp or udp\)/],
  [['add-port-forward', '--network-id', '42', '--public-ip', '1.2.3.4', '--public-port', '80', '--private-port', '22'], '--private-ip', /^--private-ip is required for add-port-forward$/],
  [['implement-network', '--vlan', '100'], '--network-id', /^--network-id is required for implement-network$/],
  [['implement-network', '--network-id', '../etc'], '--network-id', /is not an id/],
  [['implement-network', '--network-id', '42', '--vlan', '4095'], '--vlan', /is not a VLAN id \(1-4094\)/],
  [['implement-network', '--network-id', '42', '--vlan', '0'], '--vlan', /is not a VLAN id/],
  [['implement-network', '--network-id', '42', '--vlan', 'vxlan://16777216'], '--vlan', /is not a VXLAN VNI \(1-16777215\)/],
  [['implement-network', '--network-id', '42', '--vlan', 'vxlan://0'], '--vlan', /VNI/],
  [['implement-network', '--network-id', '42', '--vlan', 'lswitch://x'], '--vlan', /unsupported segment scheme/],
  [['implement-network', '--network-id', '42', '--vlan', 'abc'], '--vlan', /is not a VLAN/],
  [['implement-network', '--network-id', '42', '--gateway', '10.0.1.256'], '--gateway', /not an IPv4 address/],
  [['implement-network', '--network-id', '42', '--gateway', '010.0.1.1'], '--gateway', /not an IPv4 address/],
  [['implement-network', '--network-id', '42', '--cidr', '10.0.1.0/33'], '--cidr', /not an IPv4 CIDR/],
  [['implement-network', '--network-id', '42', '--cidr', '10.0.1.0'], '--cidr', /not an IPv4 CIDR/],
  [['implement-network', '--network-id', '42', '--gateway', '10.0.2.1', '--cidr', '10.0.1.0/24'], '--gateway', /10\.0\.2\.1 is not inside --cidr 10\.0\.1\.0\/24/],
  [['implement-network', '--network-id', '42', '--extension-ip', '10.0.9.1', '--cidr', '10.0.1.0/24'], '--extension-ip', /not inside --cidr/],
  [['implement-network', '--network-id', '42', '--network-ip6-gateway', 'fd00:2::1', '--network-ip6-cidr', 'fd00:1::/64'], '--network-ip6-gateway', /not inside --network-ip6-cidr/],
  [['implement-network', '--network-id', '42', '--network-ip6-gateway', '10.0.0.1'], '--network-ip6-gateway', /not an IPv6 address/],
  [['implement-network', '--network-id', '42', '--network-ip6-cidr', '10.0.0.0/8'], '--network-ip6-cidr', /not an IPv6 CIDR/],
  [['implement-network', '--network-id', '42', '--dns', '8.8.8.8,nope'], '--dns', /"nope" is not an IPv4 address/],
  [['implement-network', '--network-id', '42', '--dns6', '8.8.8.8'], '--dns6', /not an IPv6 address/],
  [['implement-network', '--network-id', '42', '--domain', 'bad_domain.example'], '--domain', /not a domain name/],
  [['implement-network', '--network-id', '42', '--guest-type', 'vpc'], '--guest-type', /not a guest type/],
  [['implement-network', '--network-id', '42', '--network-state', 'running'], '--network-state', /not a network state/],
  [['assign-ip', '--network-id', '42', '--public-ip', '203.0.113.5'], '--public-vlan', /^--public-vlan is required for assign-ip$/],
  [['assign-ip', '--network-id', '42', '--public-ip', '203.0.113.5', '--public-vlan', '101', '--source-nat', 'yes'], '--source-nat', /not a boolean \(true or false\)/],
  [['assign-ip', '--network-id', '42', '--public-ip', '198.51.100.5', '--public-vlan', '101', '--public-cidr', '203.0.113.0/24'], '--public-ip', /not inside --public-cidr/],
  [['assign-ip', '--network-id', '42', '--public-ip', '203.0.113.5', '--public-vlan', '101', '--public-cidr', '203.0.113.0/24', '--public-gateway', '198.51.100.1'], '--public-gateway', /not inside --public-cidr/],
  [['assign-ip', '--network-id', '42', '--public-ip', '203.0.113.5', '--public-vlan', '101', '--public-cidr', '0.0.0.0/0'], '--public-cidr', /is not a subnet/],
  [['assign-ip', '--network-id', '42', '--public-ip', '203.0.113.255', '--public-vlan', '101', '--public-cidr', '203.0.113.0/24'], '--public-ip', /broadcast address of --public-cidr/],
  [['assign-ip', '--network-id', '42', '--public-ip', '203.0.113.5', '--public-vlan', '101', '--public-cidr', '203.0.113.0/24', '--public-gateway', '203.0.113.5'], '--public-gateway', /the public IP itself/],
  [['implement-network', '--network-id', '42', '--vlan', '100', '--gateway', '10.106.1.1', '--cidr', '10.106.1.1/32'], '--cidr', /a guest subnet is \/1 to \/30/],
  [['implement-network', '--network-id', '42', '--vlan', '100', '--gateway', '10.1.1.0', '--cidr', '10.1.1.0/24'], '--gateway', /network address of --cidr 10\.1\.1\.0\/24/],
  [['implement-network', '--network-id', '42', '--vlan', '100', '--gateway', '10.1.1.255', '--cidr', '10.1.1.0/24'], '--gateway', /broadcast address/],
  [['implement-network', '--network-id', '42', '--vlan', '100', '--gateway', '10.1.1.1', '--cidr', '10.1.1.0/24', '--network-ip6-gateway', '::ffff:10.1.1.1', '--network-ip6-cidr', '::ffff:10.1.1.0/120'], '--network-ip6-gateway', /not a unicast IPv6 address/],
  [['add-static-nat', '--network-id', '42', '--public-ip', '203.0.113.5', '--private-ip', '127.0.0.1'], '--private-ip', /not a unicast host address/],
  [['add-static-nat', '--network-id', '42', '--public-ip', '203.0.113.5', '--private-ip', '255.255.255.255'], '--private-ip', /not a unicast host address/],
  [['add-port-forward', '--network-id', '42', '--public-ip', '1.2.3.4', '--public-port', '80', '--private-ip', '224.0.0.1', '--private-port', '80'], '--private-ip', /not a unicast host address/],
  [['add-dhcp-entry', '--network-id', '42', '--mac', '02:00:00:00:00', '--ip', '10.0.0.5'], '--mac', /not a MAC address/],
  [['add-dhcp-entry', '--network-id', '42', '--mac', '01:00:5e:00:00:01', '--ip', '10.0.0.5'], '--mac', /multicast/],
  [['add-dhcp-entry', '--network-id', '42', '--mac', '02:00:00:00:00:01', '--ip', '10.0.0.5', '--hostname', '-vm'], '--hostname', /not a host name \(RFC 1123\)/],
  [['add-dhcp-entry', '--network-id', '42', '--mac', '02:00:00:00:00:01', '--ip', '10.0.0.5', '--default-nic', 'no'], '--default-nic', /not a boolean/],
  [['add-dhcp-entry', '--network-id', '42', '--ip', '10.0.0.5'], '--mac', /required for add-dhcp-entry/],
  [['add-dns-entry', '--network-id', '42', '--ip', '10.0.0.5', '--hostname', 'a'.repeat(64)], '--hostname', /not a host name/],
  [['config-dhcp-subnet', '--network-id', '42', '--cidr', '10.0.0.0/24'], '--gateway', /required for config-dhcp-subnet/],
  [['config-dns-subnet', '--network-id', '42', '--gateway', '10.0.0.1'], '--cidr', /required for config-dns-subnet/],
  [['apply-fw-rules', '--network-id', '42', '--fw-rules', '{"rules": [}'], '--fw-rules', /^--fw-rules: not valid JSON( \(error at position \d+\))?$/],
  [['apply-fw-rules', '--network-id', '42', '--fw-rules', 'not*base64!'], '--fw-rules', /^--fw-rules: neither JSON nor base64$/],
  [['apply-fw-rules', '--network-id', '42', '--fw-rules', Buffer.from('{oops').toString('base64')], '--fw-rules', /not valid JSON inside the base64 text/],
  [['apply-fw-rules', '--network-id', '42', '--fw-rules-file', '/nonexistent/fw.json'], '--fw-rules-file', /cannot read "\/nonexistent\/fw.json": ENOENT/],
  [['apply-fw-rules', '--network-id', '42', '--fw-rules', '{}', '--fw-rules-file', '/x'], '--fw-rules', /either --fw-rules or --fw-rules-file/],
  [['save-vm-data', '--network-id', '42', '--ip', '10.0.0.5'], '--vm-data', /required for save-vm-data/],
  [['save-vm-data', '--network-id', '42', '--ip', '10.0.0.5', '--vm-data', '[{"content":"s3cret-in-vm-data"'], '--vm-data', /^--vm-data: not valid JSON/],
  [['restore-network', '--network-id', '42', '--restore-data', '%%%'], '--restore-data', /neither JSON nor base64/],
  [['save-password', '--network-id', '42', '--password', 'x'], '--ip', /required for save-password/],
  [['set-dhcp-options', '--network-id', '42', '--nic-id', '7', '--options', '{"300":"x"}'], '--options', /not a DHCP option/],
  [['set-dhcp-options', '--network-id', '42', '--nic-id', '7', '--options', '[1]'], '--options', /expected a JSON object/],
  [['set-dhcp-options', '--network-id', '42', '--nic-id', '7'], '--options', /required for set-dhcp-options/],
  [['custom-action', '--action', 'dump-config'], '--network-id', /or --vpc-id is required for custom-action/],
  [['custom-action', '--network-id', '42'], '--action', /required for custom-action/],
  [['custom-action', '--network-id', '42', '--action', '../x'], '--action', /not an action name/],
  [['custom-action', '--network-id', '42', '--action', 'pbr-create-table', '--action-params', '{"table-name":"isp1"}'], '--action-params', /pbr-create-table needs table-id/],
  [['custom-action', '--network-id', '42', '--action', 'pbr-create-table', '--action-params', '{"table-id":"254","table-name":"isp1"}'], '--action-params', /reserved routing table id/],
  [['custom-action', '--network-id', '42', '--action', 'pbr-add-route', '--action-params', '{"table":"isp1","route":"default dev eth0; reboot"}'], '--action-params', /route: .* is not a route\/rule specification/],
  [['custom-action', '--network-id', '42', '--action', 'pbr-add-rule', '--action-params', '{"table":"main","rule":"from 10.0.0.0/8"}'], '--action-params', /not a routing table name/],
  [['custom-action', '--network-id', '42', '--action', 'dump-config', '--action-params', '{bad'], '--action-params', /not valid JSON/],
  [['implement-network', '--network-id', '42', '--physical-network-extension-details', '{"guest.network.device":"a/b"}'], 'physical-network-extension-details.guest.network.device', /not a network interface name/],
  [['implement-network', '--network-id', '42', '--physical-network-extension-details', '{"public.network.device":"averyveryverylongname"}'], 'physical-network-extension-details.public.network.device', /1-15 characters/],
  [['implement-network', '--network-id', '42', '--physical-network-extension-details', '[1]'], '--physical-network-extension-details', /not a JSON object/],
  [['implement-network', '--network-id', '42', '--network-extension-details', '{"namespace":"../../etc"}'], 'network-extension-details.namespace', /not a namespace name/],
  [['implement-network', '--network-id', '42', '--timeout', '0'], '--timeout', /not a timeout in seconds/],
  [['implement-network', '--network-id', '42', '--timeout', 'soon'], '--timeout', /not a timeout/],
  [['implement-network', '--network-id', '42', '--extension', 'a/b'], '--extension', /not an extension name/],
  [['implement-network', '--network-id', '42', '--host-netns', 'x y'], '--host-netns', /not a namespace name/],
  [['implement-network', '--network-id', '42', '--log-level', 'loud'], '--log-level', /not a log level/],
  [['implement-network', '--network-id', '42', '--bogus', '1'], '--bogus', /unknown option '--bogus'/],
  [['implement-network', '--network-id'], '--network-id', /argument missing/],
];

for (const [argv, argument, pattern] of OPTION_CASES) {
  test(`${argv[0]}: ${argument} ${pattern.source.slice(0, 50)}`, () => {
    const e = usage(argv);
    assert.is(e.exitCode, 1);
    assert.is(e.argument, argument);
    assert.ok(e.message.includes(argument), `message names ${argument}: ${e.message}`);
    assert.match(e.message, pattern);
    assert.not.match(e.message, /\n/, 'one line');
  });
}

test('payload form names payload keys', () => {
  const dir = new TempDir('valid');
  try {
    const p = dir.file('p.json', { payload: { network_id: '42', public_ip: '1.2.3.4', public_port: 99999, private_ip: '10.0.0.5', private_port: '22' } });
    const e = usage(['add-port-forward', p, '60']);
    assert.is(e.message, 'payload.public_port: "99999" is not a port (1-65535)');
    const q = dir.file('q.json', { payload: { vlan: '100' } });
    assert.is(usage(['implement-network', q, '60']).message, 'payload.network_id is required for implement-network');
    const r = dir.file('r.json', { payload: { network_id: '42', vlan: { id: 1 } } });
    assert.match(usage(['implement-network', r, '60']).message, /^payload\.vlan: expected a string, got an object$/);
    const ca = dir.file('ca.json', { network_id: '42', action: 'pbr-add-rule', 'action-params': { table: 'x' } });
    assert.is(usage(['custom-action', ca, '60']).message, 'action-params: pbr-add-rule needs rule');
    const cm = dir.file('cm.json', { action: 'dump-config' });
    assert.is(usage(['custom-action', cm, '60']).message, 'network_id or vpc_id is required for custom-action');
    const fw = dir.file('fw.json', { payload: { network_id: '42', fw_rules: '{"rules":' } });
    assert.match(usage(['apply-fw-rules', fw, '60']).message, /^payload\.fw_rules: not valid JSON/);
    const pd = dir.file('pd.json', { 'physical-network-extension-details': '{oops', payload: { network_id: '42' } });
    assert.match(usage(['implement-network', pd]).message, /^physical-network-extension-details \(payload file\): not valid JSON/);
  } finally {
    dir.cleanup();
  }
});

test('payload file problems name the file; the timeout argument is checked', () => {
  const dir = new TempDir('valid');
  try {
    assert.match(usage(['implement-network', dir.join('missing.json'), '60']).message, /^payload file ".*missing\.json": cannot read .*ENOENT/);
    const bad = dir.file('bad.json', '{"payload": ');
    assert.match(usage(['implement-network', bad, '60']).message, /^payload file ".*bad\.json": not valid JSON/);
    const arr = dir.file('arr.json', '[]');
    assert.match(usage(['implement-network', arr, '60']).message, /expected a JSON object/);
    const ok = dir.file('ok.json', { payload: { network_id: '1' } });
    assert.match(usage(['implement-network', ok, 'ten']).message, /^timeout-seconds: "ten" is not a timeout/);
    assert.match(usage(['implement-network', ok, '60', 'extra']).message, /too many arguments/);
  } finally {
    dir.cleanup();
  }
});

test('secret values are never quoted in error messages', () => {
  const e = usage(['save-vm-data', '--network-id', '42', '--ip', '10.0.0.5', '--vm-data', '{"content":"TOPSECRET-1",']);
  assert.not.ok(e.message.includes('TOPSECRET'));
  const e2 = usage(['implement-network', '--network-id', '42', '--physical-network-extension-details', '{"password":"TOPSECRET-2",']);
  assert.not.ok(e2.message.includes('TOPSECRET'));
});

test('unknown command → exit 1, one line pointing at the command list; no command → usage, exit 1', async () => {
  const dir = new TempDir('valid');
  try {
    const r = await cli(['frobnicate', '--network-id', '1'], dir);
    assert.is(r.code, 1);
    assert.is(r.stderr, "netns-router: unknown command 'frobnicate'; 'netns-router help' lists the commands\n");
    assert.is(r.calls.length, 0);
    const n = await cli([], dir);
    assert.is(n.code, 1);
    assert.match(n.stderr, /Usage: netns-router/);
  } finally {
    dir.cleanup();
  }
});

test('validators: unit cases', () => {
  const bad = (f: () => unknown) => assert.throws(f, (e: unknown) => e instanceof BadValue);
  assert.equal(parseSegment('100'), { kind: 'vlan', id: 100 });
  assert.equal(parseSegment('VLAN://4094'), { kind: 'vlan', id: 4094 });
  assert.equal(parseSegment('vlan://untagged'), { kind: 'untagged' });
  assert.equal(parseSegment('Untagged'), { kind: 'untagged' });
  assert.equal(parseSegment('vxlan://16777215'), { kind: 'vxlan', vni: 16777215 });
  bad(() => parseSegment('vlan://1.5'));
  bad(() => parseSegment('-1'));
  bad(() => parseSegment('0100'));
  assert.is(parseIpv6('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
  assert.is(parseIpv6('::ffff:192.0.2.1'), '::ffff:c000:201');
  assert.is(parseIpv6('2001:db8:0:1:0:0:0:0'), '2001:db8:0:1::');
  bad(() => parseIpv6('fe80::1%eth0'));
  bad(() => parseIpv4(' 1.2.3.4'));
  bad(() => parseIpv4('1.2.3'));
  assert.equal(parseCidr('10.1.1.7/24', 4), { family: 4, address: '10.1.1.7', prefix: 24 });
  bad(() => parseCidr('10.1.1.0/024', 4));
  assert.is(parseMac('AA-BB-CC-DD-EE-FF'.replace(/^AA/, 'A2')), 'a2:bb:cc:dd:ee:ff');
  bad(() => parseMac('02:00:00:00:00:0g'));
  bad(() => parseMac('02:00-00:00:00:01'));
  assert.is(parseHostname('vm-1.example'), 'vm-1.example');
  bad(() => parseHostname('vm_1'));
  bad(() => parseHostname('vm..x'));
  assert.equal(parsePortRange('65535'), { start: 65535, end: 65535 });
  bad(() => parsePortRange('1:2:3'));
  bad(() => parsePortRange('080'));
});

test('fw_rules given as text: decoded when read (the same UsageError then), its text neither enumerable nor logged', () => {
  const inv = parseInvocation(['apply-fw-rules', '--network-id', '42', '--fw-rules', '{"rules": [}'], { env });
  const doc = (inv.request as { fwRules: { value: unknown; source: string; raw?: unknown } }).fwRules;
  assert.is(doc.raw, '{"rules": [}', 'the text as given');
  assert.equal(Object.keys(doc), ['source', 'value'], 'the text is not enumerable');
  assert.equal(abbreviate(inv.request), { ...(abbreviate({ ...inv.request, fwRules: undefined }) as object), fwRules: { source: '--fw-rules', value: '[not decoded]' } }, 'logging does not decode');
  const e = thrown(() => doc.value, UsageError);
  assert.is(e.argument, '--fw-rules');
  assert.match(e.message, /^--fw-rules: not valid JSON/);
  const good = parseInvocation(['apply-fw-rules', '--network-id', '42', '--fw-rules', '{"rules": []}'], { env });
  assert.equal((good.request as { fwRules: { value: unknown } }).fwRules.value, { rules: [] });
  const lb = parseInvocation(['apply-lb-rules', '--network-id', '42', '--lb-rules', '[]'], { env });
  assert.is((lb.request as { lbRules: { raw?: unknown } }).lbRules.raw, undefined, 'kept only where the command asks for it');
  const dir = new TempDir('valid');
  try {
    const f = dir.file('fw.json', { rules: [] });
    const fromFile = (parseInvocation(['apply-fw-rules', '--network-id', '42', '--fw-rules-file', f], { env }).request as { fwRules: { value: unknown; raw?: unknown } }).fwRules;
    assert.ok(Buffer.isBuffer(fromFile.raw) && fromFile.raw.equals(readFileSync(f)), 'a file: its bytes');
    assert.equal(fromFile.value, { rules: [] });
  } finally {
    dir.cleanup();
  }
});

test.run();
