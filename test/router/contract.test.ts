/**
 * Every command, in both invocation forms (payload file, kebab-case options), reaches the right
 * RouterApi method with the same typed request.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { API_METHOD } from '../../lib/router/contract/router-api.js';
import { FIELD_BY_KEY } from '../../lib/router/contract/fields.js';
import { parseInvocation } from '../../lib/router/contract/parse.js';
import type { EngineCommand, EngineInvocation, RouterRequest } from '../../lib/router/contract/types.js';
import { TempDir, cli, optionArgs } from '../cli/helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();

type Form = 'options' | 'payload-file';
interface Case {
  command: EngineCommand;
  fields: Record<string, string>;
  /** expected request; strings "SRC:<key>" become the form's name of that argument */
  expected: Record<string, unknown>;
}

const NET = { networkId: '42', namespace: 'cs-net-42' };
const V100 = { kind: 'vlan', id: 100 };
const C24 = { family: 4, address: '10.0.1.0', prefix: 24 };
const PUB24 = { family: 4, address: '203.0.113.0', prefix: 24 };
const FW = { default_egress_allow: false, cidr: '10.0.1.0/24', rules: [{ id: 1, type: 'ingress', protocol: 'tcp', portStart: 22, portEnd: 22, publicIp: '203.0.113.10', sourceCidrs: ['0.0.0.0/0'] }] };
const ACL = [{ id: 1, number: 100, trafficType: 'Ingress', action: 'Allow', protocol: 'tcp', portStart: 80, portEnd: 80, sourceCidrs: ['0.0.0.0/0'] }];
const LB = [{ id: 1, name: 'lb-web', publicIp: '203.0.113.5', publicPort: 80, privatePort: 8080, protocol: 'tcp', algorithm: 'roundrobin', revoke: false, backends: [{ ip: '10.0.1.10', port: 8080, revoked: false }] }];
const VMDATA = [{ dir: 'userdata', file: 'user_data', content: '#cloud-config\n' }, { dir: 'password', file: 'vm_password', content: 'pw' }];
const RESTORE = { dhcp_enabled: true, dns_enabled: true, userdata_enabled: false, vms: [{ ip: '10.0.1.10', mac: '02:00:00:00:00:01', hostname: 'vm-1', default_nic: true }] };

const CASES: Case[] = [
  {
    command: 'implement-network',
    fields: {
      network_id: '42', vlan: 'vlan://100', gateway: '10.0.1.1', cidr: '10.0.1.0/24', extension_ip: '10.0.1.1',
      guest_type: 'Isolated', network_state: 'Implementing', zone_id: '1', network_ip6_gateway: 'FD00:1:0::1',
      network_ip6_cidr: 'fd00:1::/64', dns: '8.8.8.8,1.1.1.1', dns6: '2001:4860:4860::8888', domain: 'cs.internal',
    },
    expected: {
      command: 'implement-network', ...NET, guestType: 'isolated', networkState: 'implementing', zoneId: '1',
      segment: V100, gateway: '10.0.1.1', cidr: C24, extensionIp: '10.0.1.1', ip6Gateway: 'fd00:1::1',
      ip6Cidr: { family: 6, address: 'fd00:1::', prefix: 64 }, dns: ['8.8.8.8', '1.1.1.1'], dns6: ['2001:4860:4860::8888'], domain: 'cs.internal',
    },
  },
  {
    command: 'shutdown-network',
    fields: { network_id: '42', vlan: '100', vpc_id: '7', network_state: 'shutdown' },
    expected: { command: 'shutdown-network', networkId: '42', vpcId: '7', namespace: 'cs-vpc-7', networkState: 'shutdown', segment: V100 },
  },
  {
    command: 'destroy-network',
    fields: { network_id: '42', vlan: 'untagged', guest_type: 'shared' },
    expected: { command: 'destroy-network', ...NET, guestType: 'shared', segment: { kind: 'untagged' } },
  },
  {
    command: 'implement-vpc',
    fields: { vpc_id: '7', vpc_cidr: '10.10.0.0/16', public_ip: '203.0.113.10', public_vlan: 'vlan://101', public_gateway: '203.0.113.1', public_cidr: '203.0.113.0/24', source_nat: 'true' },
    expected: {
      command: 'implement-vpc', vpcId: '7', namespace: 'cs-vpc-7', vpcCidr: { family: 4, address: '10.10.0.0', prefix: 16 },
      publicIp: { ip: '203.0.113.10', sourceNat: true, segment: { kind: 'vlan', id: 101 }, gateway: '203.0.113.1', cidr: PUB24 },
    },
  },
  {
    command: 'update-vpc-source-nat-ip',
    fields: { vpc_id: '7', public_ip: '203.0.113.11', source_nat: 'true' },
    expected: { command: 'update-vpc-source-nat-ip', vpcId: '7', namespace: 'cs-vpc-7', publicIp: { ip: '203.0.113.11', sourceNat: true } },
  },
  { command: 'shutdown-vpc', fields: { vpc_id: '7' }, expected: { command: 'shutdown-vpc', vpcId: '7', namespace: 'cs-vpc-7' } },
  { command: 'destroy-vpc', fields: { vpc_id: 'vpc-uuid-1' }, expected: { command: 'destroy-vpc', vpcId: 'vpc-uuid-1', namespace: 'cs-vpc-vpc-uuid-1' } },
  {
    command: 'assign-ip',
    fields: { network_id: '42', vlan: '100', gateway: '10.0.1.1', cidr: '10.0.1.0/24', public_ip: '203.0.113.10', public_vlan: 'vxlan://5000', source_nat: 'TRUE', public_cidr: '203.0.113.0/24', public_gateway: '203.0.113.1' },
    expected: {
      command: 'assign-ip', ...NET, segment: V100, gateway: '10.0.1.1', cidr: C24,
      publicIp: { ip: '203.0.113.10', sourceNat: true, segment: { kind: 'vxlan', vni: 5000 }, gateway: '203.0.113.1', cidr: PUB24 },
    },
  },
  {
    command: 'release-ip',
    fields: { network_id: '42', public_ip: '203.0.113.10' },
    expected: { command: 'release-ip', ...NET, publicIp: { ip: '203.0.113.10', sourceNat: false } },
  },
  {
    command: 'add-static-nat',
    fields: { network_id: '42', vlan: '100', public_ip: '203.0.113.20', private_ip: '10.0.1.5', public_vlan: 'untagged' },
    expected: { command: 'add-static-nat', ...NET, segment: V100, publicIp: { ip: '203.0.113.20', sourceNat: false, segment: { kind: 'untagged' } }, privateIp: '10.0.1.5' },
  },
  {
    command: 'delete-static-nat',
    fields: { network_id: '42', public_ip: '203.0.113.20' },
    expected: { command: 'delete-static-nat', ...NET, publicIp: { ip: '203.0.113.20', sourceNat: false } },
  },
  {
    command: 'add-port-forward',
    fields: { network_id: '42', public_ip: '203.0.113.20', public_port: '2222', private_ip: '10.0.1.5', private_port: '22', protocol: 'TCP' },
    expected: {
      command: 'add-port-forward', ...NET, publicIp: { ip: '203.0.113.20', sourceNat: false },
      publicPorts: { start: 2222, end: 2222 }, privateIp: '10.0.1.5', privatePorts: { start: 22, end: 22 }, protocol: 'tcp',
    },
  },
  {
    command: 'delete-port-forward',
    fields: { network_id: '42', public_ip: '203.0.113.20', public_port: '8080-8090', private_ip: '10.0.1.5', private_port: '80:90' },
    expected: {
      command: 'delete-port-forward', ...NET, publicIp: { ip: '203.0.113.20', sourceNat: false },
      publicPorts: { start: 8080, end: 8090 }, privateIp: '10.0.1.5', privatePorts: { start: 80, end: 90 }, protocol: 'tcp',
    },
  },
  {
    command: 'apply-fw-rules',
    fields: { network_id: '42', vlan: '100', gateway: '10.0.1.1', cidr: '10.0.1.0/24', fw_rules: JSON.stringify(FW) },
    expected: { command: 'apply-fw-rules', ...NET, segment: V100, gateway: '10.0.1.1', cidr: C24, fwRules: { value: FW, source: 'SRC:fw_rules' } },
  },
  {
    command: 'apply-network-acl',
    fields: { network_id: '42', vpc_id: '7', acl_rules: JSON.stringify(ACL) },
    expected: { command: 'apply-network-acl', networkId: '42', vpcId: '7', namespace: 'cs-vpc-7', aclRules: { value: ACL, source: 'SRC:acl_rules' } },
  },
  {
    command: 'apply-lb-rules',
    fields: { network_id: '42', lb_rules: JSON.stringify(LB) },
    expected: { command: 'apply-lb-rules', ...NET, lbRules: { value: LB, source: 'SRC:lb_rules' } },
  },
  {
    command: 'config-dhcp-subnet',
    fields: { network_id: '42', gateway: '10.0.1.1', cidr: '10.0.1.0/24', dns: '10.0.1.1', domain: 'cs.internal', extension_ip: '10.0.1.2' },
    expected: { command: 'config-dhcp-subnet', ...NET, gateway: '10.0.1.1', cidr: C24, dns: ['10.0.1.1'], domain: 'cs.internal', extensionIp: '10.0.1.2' },
  },
  {
    command: 'remove-dhcp-subnet',
    fields: { network_id: '42', extension_ip: '10.0.1.2' },
    expected: { command: 'remove-dhcp-subnet', ...NET, extensionIp: '10.0.1.2' },
  },
  {
    command: 'add-dhcp-entry',
    fields: { network_id: '42', mac: '02:00:4C:4F:4F:50', ip: '10.0.1.5', hostname: 'vm-1', default_nic: 'false', nic_uuid: 'f3b0c1de-1' },
    expected: { command: 'add-dhcp-entry', ...NET, defaultNic: false, mac: '02:00:4c:4f:4f:50', ip: '10.0.1.5', hostname: 'vm-1', nicUuid: 'f3b0c1de-1' },
  },
  {
    command: 'remove-dhcp-entry',
    fields: { network_id: '42', mac: '02-00-4c-4f-4f-50' },
    expected: { command: 'remove-dhcp-entry', ...NET, defaultNic: true, mac: '02:00:4c:4f:4f:50' },
  },
  {
    command: 'set-dhcp-options',
    fields: { network_id: '42', nic_id: '17', options: '{"15":"example.com","119":"search.example.com"}' },
    expected: { command: 'set-dhcp-options', ...NET, nicId: '17', options: { 15: 'example.com', 119: 'search.example.com' } },
  },
  {
    command: 'config-dns-subnet',
    fields: { network_id: '42', gateway: '10.0.1.1', cidr: '10.0.1.0/24', extension_ip: '10.0.1.1' },
    expected: { command: 'config-dns-subnet', ...NET, gateway: '10.0.1.1', cidr: C24, extensionIp: '10.0.1.1' },
  },
  { command: 'remove-dns-subnet', fields: { network_id: '42' }, expected: { command: 'remove-dns-subnet', ...NET } },
  {
    command: 'add-dns-entry',
    fields: { network_id: '42', ip: '10.0.1.5', hostname: 'vm-1', ip6_address: 'fd00:1::5' },
    expected: { command: 'add-dns-entry', ...NET, defaultNic: true, ip: '10.0.1.5', hostname: 'vm-1', ip6Address: 'fd00:1::5' },
  },
  {
    command: 'remove-dns-entry',
    fields: { network_id: '42', ip: '10.0.1.5' },
    expected: { command: 'remove-dns-entry', ...NET, defaultNic: true, ip: '10.0.1.5' },
  },
  {
    command: 'prepare-nic',
    fields: { network_id: '42', vlan: '100', mac: '02:00:00:00:00:01', ip: '10.0.1.5', hostname: 'vm-1', default_nic: 'true', nic_id: '9', guest_type: 'shared' },
    expected: { command: 'prepare-nic', ...NET, guestType: 'shared', segment: V100, defaultNic: true, mac: '02:00:00:00:00:01', ip: '10.0.1.5', hostname: 'vm-1', nicId: '9' },
  },
  {
    command: 'release-nic',
    fields: { network_id: '42', mac: '02:00:00:00:00:01', ip: '10.0.1.5' },
    expected: { command: 'release-nic', ...NET, defaultNic: true, mac: '02:00:00:00:00:01', ip: '10.0.1.5' },
  },
  {
    command: 'save-vm-data',
    fields: { network_id: '42', ip: '10.0.1.5', vm_data: JSON.stringify(VMDATA) },
    expected: { command: 'save-vm-data', ...NET, ip: '10.0.1.5', vmData: { value: VMDATA, source: 'SRC:vm_data' } },
  },
  {
    command: 'save-userdata',
    fields: { network_id: '42', ip: '10.0.1.5', userdata: '#cloud-config\nruncmd: [ls]\n' },
    expected: { command: 'save-userdata', ...NET, ip: '10.0.1.5', userdata: '#cloud-config\nruncmd: [ls]\n' },
  },
  {
    command: 'save-password',
    fields: { network_id: '42', ip: '10.0.1.5', password: ' pw with spaces ' },
    expected: { command: 'save-password', ...NET, ip: '10.0.1.5', password: ' pw with spaces ' },
  },
  {
    command: 'save-sshkey',
    fields: { network_id: '42', ip: '10.0.1.5', sshkey: 'ssh-ed25519 AAAAC3Nz user@host' },
    expected: { command: 'save-sshkey', ...NET, ip: '10.0.1.5', sshkey: 'ssh-ed25519 AAAAC3Nz user@host' },
  },
  {
    command: 'save-hypervisor-hostname',
    fields: { network_id: '42', ip: '10.0.1.5', hypervisor_hostname: 'kvm-01.example.com' },
    expected: { command: 'save-hypervisor-hostname', ...NET, ip: '10.0.1.5', hypervisorHostname: 'kvm-01.example.com' },
  },
  {
    command: 'restore-network',
    fields: { network_id: '42', gateway: '10.0.1.1', cidr: '10.0.1.0/24', restore_data: JSON.stringify(RESTORE) },
    expected: { command: 'restore-network', ...NET, gateway: '10.0.1.1', cidr: C24, restoreData: { value: RESTORE, source: 'SRC:restore_data' } },
  },
  {
    command: 'custom-action',
    fields: { network_id: '42', action: 'pbr-add-route', 'action-params': '{"table":"isp1","route":"default via 192.168.1.1 dev eth0"}' },
    expected: {
      command: 'custom-action', networkId: '42', namespace: 'cs-net-42', action: 'pbr-add-route',
      actionParams: { table: 'isp1', route: 'default via 192.168.1.1 dev eth0' },
      builtin: { name: 'pbr-add-route', table: 'isp1', route: 'default via 192.168.1.1 dev eth0' },
    },
  },
  { command: 'status', fields: {}, expected: { command: 'status' } },
  { command: 'status', fields: { vpc_id: '7' }, expected: { command: 'status', vpcId: '7', namespace: 'cs-vpc-7' } },
  { command: 'restore-all', fields: {}, expected: { command: 'restore-all' } },
];

function labelOf(form: Form, command: string, key: string): string {
  const f = FIELD_BY_KEY.get(key)!;
  if (form === 'options') return `--${f.option}`;
  return command === 'custom-action' ? key : `payload.${key}`;
}

function resolveSources(v: unknown, form: Form, command: string): unknown {
  if (typeof v === 'string' && v.startsWith('SRC:')) return labelOf(form, command, v.slice(4));
  if (Array.isArray(v)) return v.map((x) => resolveSources(x, form, command));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolveSources(x, form, command)]));
  return v;
}

/** CloudStack's payload file: documents as JSON values, action-params as an object. */
function payloadDoc(c: Case): object {
  const inner: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c.fields)) {
    inner[k] = FIELD_BY_KEY.get(k)?.document || k === 'action-params' ? JSON.parse(v) : v;
  }
  const details = { 'physical-network-extension-details': { 'guest.network.device': 'eth2' }, 'network-extension-details': {} };
  return c.command === 'custom-action' ? { ...inner, ...details } : { ...details, payload: inner };
}

for (const [i, c] of CASES.entries()) {
  test(`${c.command} #${i}: option form → ${API_METHOD[c.command]}`, async () => {
    const dir = new TempDir('contract');
    try {
      const r = await cli([c.command, ...optionArgs(c.fields)], dir);
      assert.is(r.stderr, '');
      assert.is(r.code, 0);
      assert.is(r.calls.length, 1);
      assert.is(r.calls[0].method, API_METHOD[c.command]);
      assert.equal(r.calls[0].req, resolveSources(c.expected, 'options', c.command));
      assert.is(r.calls[0].ctx.form, 'options');
      assert.equal(r.calls[0].ctx.devices, { guest: 'eth1', public: 'eth1' });
    } finally {
      dir.cleanup();
    }
  });

  test(`${c.command} #${i}: payload-file form → same request`, async () => {
    const dir = new TempDir('contract');
    try {
      const file = dir.file('payload.json', payloadDoc(c));
      const r = await cli([c.command, file, '30'], dir);
      assert.is(r.stderr, '');
      assert.is(r.code, 0);
      assert.is(r.calls.length, 1);
      assert.is(r.calls[0].method, API_METHOD[c.command]);
      assert.equal(r.calls[0].req, resolveSources(c.expected, 'payload-file', c.command));
      assert.is(r.calls[0].ctx.form, 'payload-file');
      assert.is(r.calls[0].ctx.settings.timeoutSeconds, 30);
      assert.equal(r.calls[0].ctx.devices, { guest: 'eth2', public: 'eth1' });
    } finally {
      dir.cleanup();
    }
  });
}

test('every engine command has a mapping case', () => {
  const covered = new Set(CASES.map((c) => c.command));
  for (const cmd of Object.keys(API_METHOD)) assert.ok(covered.has(cmd as EngineCommand), `no case for ${cmd}`);
});

// ---- details of the forms -------------------------------------------------------------------

const env0 = { NETNS_ROUTER_STATE_DIR: '/tmp/x-state', NETNS_ROUTER_LOG_FILE: '/tmp/x.log' };
const engine = (argv: string[], env: Record<string, string | undefined> = env0) => parseInvocation(argv, { env }) as EngineInvocation;
const reqOf = (argv: string[], env?: Record<string, string | undefined>): RouterRequest => engine(argv, env).request;

test('payload values may be JSON numbers and booleans', () => {
  const dir = new TempDir('contract');
  try {
    const file = dir.file('p.json', { payload: { network_id: 42, vlan: 100, public_ip: '203.0.113.9', public_vlan: 101, source_nat: true } });
    const req = reqOf(['assign-ip', file, '60']);
    assert.equal(req, { command: 'assign-ip', ...NET, segment: V100, publicIp: { ip: '203.0.113.9', sourceNat: true, segment: { kind: 'vlan', id: 101 } } });
  } finally {
    dir.cleanup();
  }
});

test('documents: base64 option, JSON file, base64 file, payload string', () => {
  const dir = new TempDir('contract');
  try {
    const b64 = Buffer.from(JSON.stringify(FW)).toString('base64');
    const a = reqOf(['apply-fw-rules', '--network-id', '42', '--fw-rules', b64]) as { fwRules?: unknown };
    assert.equal(a.fwRules, { value: FW, source: '--fw-rules' });
    const jf = dir.file('fw.json', JSON.stringify(FW));
    const b = reqOf(['apply-fw-rules', '--network-id', '42', '--fw-rules-file', jf]) as { fwRules?: unknown };
    assert.equal(b.fwRules, { value: FW, source: '--fw-rules-file' });
    const bf = dir.file('fw.b64', `${b64}\n`);
    const c = reqOf(['apply-fw-rules', '--network-id', '42', '--fw-rules-file', bf]) as { fwRules?: unknown };
    assert.equal(c.fwRules, { value: FW, source: '--fw-rules-file' });
    const pf = dir.file('p.json', { payload: { network_id: '42', vm_data: JSON.stringify(VMDATA), ip: '10.0.1.5' } });
    const d = reqOf(['save-vm-data', pf, '60']) as { vmData?: unknown };
    assert.equal(d.vmData, { value: VMDATA, source: 'payload.vm_data' });
    const lbB64 = reqOf(['apply-lb-rules', '--network-id', '42', '--lb-rules', Buffer.from(JSON.stringify(LB)).toString('base64')]) as { lbRules?: unknown };
    assert.equal(lbB64.lbRules, { value: LB, source: '--lb-rules' });
  } finally {
    dir.cleanup();
  }
});

test('explicit options override the payload file', () => {
  const dir = new TempDir('contract');
  try {
    const file = dir.file('p.json', { payload: { network_id: '42', vlan: '100' } });
    const req = reqOf(['implement-network', file, '60', '--vlan', '200']);
    assert.equal((req as { segment?: unknown }).segment, { kind: 'vlan', id: 200 });
  } finally {
    dir.cleanup();
  }
});

test('payload aliases: nic_ip6_address, action_params, flat custom-action details with underscores', () => {
  const dir = new TempDir('contract');
  try {
    const f1 = dir.file('a.json', { payload: { network_id: '42', ip: '10.0.1.5', hostname: 'vm', nic_ip6_address: 'fd00::5' } });
    assert.is((reqOf(['add-dns-entry', f1]) as { ip6Address?: string }).ip6Address, 'fd00::5');
    const f2 = dir.file('b.json', {
      vpc_id: '7', action: 'dump-config', action_params: { x: '1' },
      physical_network_extension_details: { 'public.network.device': 'bond0' }, network_extension_details: {},
    });
    const inv = engine(['custom-action', f2, '60']);
    assert.equal(inv.request, { command: 'custom-action', vpcId: '7', namespace: 'cs-vpc-7', action: 'dump-config', actionParams: { x: '1' }, builtin: { name: 'dump-config' } });
    assert.equal(inv.devices, { guest: 'eth1', public: 'bond0' });
  } finally {
    dir.cleanup();
  }
});

test('extension details: option > payload file > CS_* environment; details may be JSON strings', () => {
  const dir = new TempDir('contract');
  try {
    const envD = { ...env0, CS_PHYSICAL_NETWORK_EXTENSION_DETAILS: '{"guest.network.device":"envdev"}', CS_NETWORK_EXTENSION_DETAILS: '{"namespace":"ns-from-env"}' };
    const o = engine(['implement-network', '--network-id', '42'], envD);
    assert.is(o.devices.guest, 'envdev');
    assert.is((o.request as { namespace: string }).namespace, 'ns-from-env');
    const p = dir.file('p.json', { 'physical-network-extension-details': JSON.stringify({ 'guest.network.device': 'filedev' }), payload: { network_id: '42' } });
    assert.is(engine(['implement-network', p], envD).devices.guest, 'filedev');
    const withOpt = engine(['implement-network', p, '--physical-network-extension-details', '{"guest.network.device":"optdev"}'], envD);
    assert.is(withOpt.devices.guest, 'optdev');
    assert.equal(withOpt.details.physicalNetwork, { 'guest.network.device': 'optdev' });
  } finally {
    dir.cleanup();
  }
});

test('namespace: VPC tiers ignore the details namespace, isolated networks and VPC commands honour it', () => {
  const nd = ['--network-extension-details', '{"host":"10.0.0.1","namespace":"custom-ns"}'];
  assert.is((reqOf(['implement-network', '--network-id', '42', ...nd]) as { namespace: string }).namespace, 'custom-ns');
  assert.is((reqOf(['implement-network', '--network-id', '42', '--vpc-id', '7', ...nd]) as { namespace: string }).namespace, 'cs-vpc-7');
  assert.is((reqOf(['implement-vpc', '--vpc-id', '7', ...nd]) as { namespace: string }).namespace, 'custom-ns');
  assert.is((reqOf(['implement-network', '--network-id', '42']) as { namespace: string }).namespace, 'cs-net-42');
});

test('network-extension-details vm-filter-strict reaches every network request as a boolean; absent stays absent', () => {
  const nd = (v: unknown) => ['--network-extension-details', JSON.stringify({ 'vm-filter-strict': v })];
  const strictOf = (args: string[]) => (reqOf(args) as { vmFilterStrict?: boolean }).vmFilterStrict;
  assert.is(strictOf(['implement-network', '--network-id', '42', ...nd('true')]), true);
  assert.is(strictOf(['prepare-nic', '--network-id', '42', '--vpc-id', '7', ...nd('FALSE')]), false);
  assert.is(strictOf(['add-dhcp-entry', '--network-id', '42', '--mac', '02:00:00:00:00:01', '--ip', '10.0.1.5', ...nd(true)]), true);
  assert.is(strictOf(['implement-network', '--network-id', '42']), undefined);
  assert.is(strictOf(['implement-network', '--network-id', '42', ...nd('')]), undefined);
  assert.throws(() => reqOf(['implement-network', '--network-id', '42', ...nd('maybe')]), /network-extension-details\.vm-filter-strict: "maybe" is not a boolean/);
  assert.throws(() => reqOf(['implement-network', '--network-id', '42', ...nd(1)]), /network-extension-details\.vm-filter-strict: expected "true" or "false"/);
  // vm-filter (the filter on or off; off when never said) the same way, beside vm-filter-strict
  const on = (d: Record<string, unknown>) => reqOf(['implement-network', '--network-id', '42', '--network-extension-details', JSON.stringify(d)]) as { vmFilter?: boolean; vmFilterStrict?: boolean };
  assert.equal([on({ 'vm-filter': 'true' }).vmFilter, on({ 'vm-filter': 'true' }).vmFilterStrict], [true, undefined]);
  assert.equal([on({ 'vm-filter': 'false', 'vm-filter-strict': 'false' }).vmFilter, on({ 'vm-filter': 'false', 'vm-filter-strict': 'false' }).vmFilterStrict], [false, false]);
  assert.is(on({}).vmFilter, undefined);
  assert.throws(() => on({ 'vm-filter': 'yes please' }), /network-extension-details\.vm-filter: "yes please" is not a boolean/);
});

test('global options anywhere, environment and defaults', () => {
  const a = engine(['--state-dir', '/srv/s', 'implement-network', '--network-id', '1', '--log-file', '/srv/l.log', '--host-netns', 'hostns', '--timeout', '5'], {});
  assert.equal(a.settings, { extension: 'network-namespace', stateDir: '/srv/s', logFile: '/srv/l.log', hostNetns: 'hostns', logLevel: 'info', timeoutSeconds: 5 });
  const b = engine(['implement-network', '--network-id', '1', '--extension', 'extnet-a'], {});
  assert.is(b.settings.stateDir, '/var/lib/cloudstack/extnet-a');
  assert.is(b.settings.logFile, '/var/log/cloudstack/extensions/extnet-a/extnet-a.log');
  assert.is(b.settings.timeoutSeconds, 60);
  const c = engine(['implement-network', '--network-id', '1'], { NETNS_ROUTER_EXTENSION: 'e2', NETNS_ROUTER_HOST_NETNS: 'h2', NETNS_ROUTER_TIMEOUT: '7', NETNS_ROUTER_LOG_LEVEL: 'debug' });
  assert.equal(c.settings, { extension: 'e2', stateDir: '/var/lib/cloudstack/e2', logFile: '/var/log/cloudstack/extensions/e2/e2.log', hostNetns: 'h2', logLevel: 'debug', timeoutSeconds: 7 });
  const d = parseInvocation(['implement-network', '--network-id', '1'], { env: {}, invokedAs: '/etc/cloudstack/extensions/my-ext/my-ext-wrapper.sh' }) as EngineInvocation;
  assert.is(d.settings.extension, 'my-ext');
});

test('timeout: positional third argument, --timeout wins over it', () => {
  const dir = new TempDir('contract');
  try {
    const p = dir.file('p.json', { payload: { network_id: '42' } });
    assert.is(engine(['shutdown-network', p, '12.5']).settings.timeoutSeconds, 12.5);
    assert.is(engine(['shutdown-network', p, '12', '--timeout', '3']).settings.timeoutSeconds, 3);
  } finally {
    dir.cleanup();
  }
});

test('custom-action built-ins decode their action-params (upstream aliases)', () => {
  const ca = (params: object, action: string) =>
    (reqOf(['custom-action', '--network-id', '42', '--action', action, '--action-params', JSON.stringify(params)]) as { builtin?: unknown }).builtin;
  assert.equal(ca({ 'table-id': '100', 'table-name': 'isp1' }, 'pbr-create-table'), { name: 'pbr-create-table', tableId: 100, tableName: 'isp1' });
  assert.equal(ca({ id: '100', table: 'isp1' }, 'pbr-create-table'), { name: 'pbr-create-table', tableId: 100, tableName: 'isp1' });
  assert.equal(ca({ table_name: 'isp1' }, 'pbr-delete-table'), { name: 'pbr-delete-table', tableName: 'isp1' });
  assert.equal(ca({}, 'pbr-list-tables'), { name: 'pbr-list-tables' });
  assert.equal(ca({ table: 'vpn1', rule: 'from 10.10.1.0/24' }, 'pbr-add-rule'), { name: 'pbr-add-rule', table: 'vpn1', rule: 'from 10.10.1.0/24' });
  assert.equal(ca({ table: '100', 'rule-spec': 'to  10.10.2.0/24' }, 'pbr-delete-rule'), { name: 'pbr-delete-rule', table: '100', rule: 'to 10.10.2.0/24' });
  assert.equal(ca({ table: 'isp1' }, 'pbr-list-routes'), { name: 'pbr-list-routes', table: 'isp1' });
  assert.equal(ca({}, 'pbr-list-rules'), { name: 'pbr-list-rules' });
  assert.equal(ca({}, 'reboot-device'), { name: 'reboot-device' });
  assert.equal(ca({}, 'list-firewall-rules'), { name: 'list-firewall-rules' });
  // ours: action-params decoded by the guest-segment filter (lib/router/vmfilter/action.ts)
  assert.equal(ca({ mac: '02:00:00:00:00:01', rules: '[]' }, 'vm-filter-set'), { name: 'vm-filter-set' });
  assert.is(ca({ k: 'v' }, 'my-hook-action'), undefined);
});

test.run();
