/**
 * The guest-segment filter without a kernel: the rule-set language (validation of every field, priorities,
 * named filters, variables), action-params decoding, the NICs the router knows (DHCP reservations, prepared NICs,
 * SLAAC addresses), the compiled table (one bridge table, per-NIC data as elements) and the size of the change
 * when one VM comes or goes on a segment of 1,000.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { emptyModel, type RouterModel } from '../../lib/router/model.js';
import { UsageError } from '../../lib/util/errors.js';
import { BadValue } from '../../lib/router/contract/values.js';
import * as dhcp from '../../lib/router/dhcp/mutators.js';
import { diffTable, tableContents } from '../../lib/nft/table-sync.js';
import { Transaction } from '../../lib/nft/transaction.js';
import {
  parseRule, parseRules, flattenRuleSet, CLEAN_TRAFFIC, parseVmFilterParams, applyVmFilterChange, vmFilterRows, knownNics,
  filterObjects, compileFilter, filterView, VMFILTER_TABLE, vmfilterPrefix, legacyVmfilterTable, vmfilterState,
  type NamedFilter, type VmRule,
} from '../../lib/router/vmfilter/index.js';
import { bindRule } from '../../lib/router/vmfilter/rules.js';
import { ruleStatements } from '../../lib/router/vmfilter/compile.js';
import { eui64, linkLocalOf, routerSide, slaacOf, vmfilterNoteRequest } from '../../lib/router/vmfilter/nics.js';
import { vmdataModule } from '../../lib/router/vmdata/module.js';
import { setVmdataState, vmdataState } from '../../lib/router/vmdata/state.js';
import type { CommandEnv } from '../../lib/router/command-table.js';

const bad = (fn: () => unknown, re: RegExp) => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof BadValue || e instanceof UsageError, `${(e as Error).message}`);
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`expected an error matching ${re}`);
};

function router(n = 0, opts: { ip6?: boolean; dhcp?: boolean; filtered?: boolean } = {}): RouterModel {
  const m = emptyModel('cs-net-42', 'network', '42');
  m.tiers['42'] = {
    networkId: '42', segment: { kind: 'vxlan', vni: 5042 }, hostDev: 'eth1', gateway: '10.1.0.1', cidr: '10.1.0.0/16',
    extensionIp: '10.1.0.1', guestType: 'isolated', implemented: true,
    ...(opts.ip6 ? { ip6Gateway: 'fd00:42::1', ip6Cidr: 'fd00:42::/64' } : {}),
  };
  if (opts.dhcp !== false) dhcp.configDhcpSubnet(m, { command: 'config-dhcp-subnet', networkId: '42', namespace: m.namespace, gateway: '10.1.0.1', cidr: { family: 4, address: '10.1.0.0', prefix: 16 } });
  for (let i = 0; i < n; i++) addVm(m, i);
  // network-extension-details vm-filter=true (the filter is off by default)
  if (opts.filtered !== false) vmfilterNoteRequest(m, { networkId: '42', vmFilter: true });
  return m;
}
const macOf = (i: number) => `02:00:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
const ipOf = (i: number) => `10.1.${(i >> 8) + 1}.${i & 255}`;
function addVm(m: RouterModel, i: number): void {
  dhcp.addDhcpEntry(m, { command: 'add-dhcp-entry', networkId: '42', namespace: m.namespace, mac: macOf(i), ip: ipOf(i), defaultNic: true });
}

// ── the language ────────────────────────────────────────────────────────────────────────────────────

test('rules: defaults, canonical values, variables', () => {
  assert.equal(parseRule({ action: 'ACCEPT', direction: 'in', protocol: 'tcp', dstport: '22' }, 'r'),
    { action: 'accept', direction: 'in', priority: 500, protocol: 'tcp', dstport: [22, 22] });
  assert.equal(parseRule({ action: 'drop', direction: 'out', protocol: 'udp', dstip: '$gateway', dstport: '1000-2000', priority: -5 }, 'r'),
    { action: 'drop', direction: 'out', priority: -5, protocol: 'udp', dstip: { variable: '$GATEWAY' }, dstport: [1000, 2000] });
  assert.equal(parseRule({ action: 'return', direction: 'inout', srcip: '10.1.2.7/16', srcmac: '02-AA-00-00-00-01' }, 'r'),
    { action: 'return', direction: 'inout', priority: 500, protocol: 'all', srcip: { cidr: '10.1.0.0/16', family: 4 }, srcmac: { mac: '02:aa:00:00:00:01' } });
  assert.equal(parseRule({ action: 'accept', direction: 'in', protocol: 'icmpv6', type: 128, srcip: '2001:DB8::1' }, 'r').srcip, { cidr: '2001:db8::1', family: 6 });
  assert.equal(parseRule({ action: 'accept', direction: 'in', protocol: 'tcp', established: 'true' }, 'r').established, true);
});

test('rules: every bad field is refused, naming the rule and the field', () => {
  bad(() => parseRule({ direction: 'in' }, 'rules[0]'), /rules\[0\]\.action is required/);
  bad(() => parseRule({ action: 'allow', direction: 'in' }, 'rules[0]'), /rules\[0\]\.action: "allow" is not one of accept, drop, return/);
  bad(() => parseRule({ action: 'drop' }, 'r'), /r\.direction is required/);
  bad(() => parseRule({ action: 'drop', direction: 'sideways' }, 'r'), /direction/);
  bad(() => parseRule({ action: 'drop', direction: 'in', protocol: 'sctp' }, 'r'), /protocol: "sctp"/);
  bad(() => parseRule({ action: 'drop', direction: 'in', priority: 1001 }, 'r'), /priority: 1001 is not a whole number from -1000 to 1000/);
  bad(() => parseRule({ action: 'drop', direction: 'in', priority: 1.5 }, 'r'), /priority/);
  bad(() => parseRule({ action: 'drop', direction: 'in', dstport: 22 }, 'r'), /ports need protocol tcp or udp/);
  bad(() => parseRule({ action: 'drop', direction: 'in', protocol: 'tcp', dstport: '0' }, 'r'), /dstport: "0" is not a port/);
  bad(() => parseRule({ action: 'drop', direction: 'in', protocol: 'tcp', dstport: '9-1' }, 'r'), /dstport/);
  bad(() => parseRule({ action: 'drop', direction: 'in', protocol: 'tcp', type: 3 }, 'r'), /type and code need protocol icmp or icmpv6/);
  bad(() => parseRule({ action: 'drop', direction: 'in', protocol: 'icmp', code: 3 }, 'r'), /code needs a type/);
  bad(() => parseRule({ action: 'drop', direction: 'in', protocol: 'icmp', type: 256 }, 'r'), /type: 256/);
  bad(() => parseRule({ action: 'drop', direction: 'in', protocol: 'udp', established: true }, 'r'), /established needs protocol tcp/);
  bad(() => parseRule({ action: 'drop', direction: 'in', srcip: 'example.com' }, 'r'), /srcip: "example.com" is not an address or CIDR/);
  bad(() => parseRule({ action: 'drop', direction: 'in', srcip: '10.0.0.0/33' }, 'r'), /srcip/);
  bad(() => parseRule({ action: 'drop', direction: 'in', srcip: '$HOME' }, 'r'), /not an address variable/);
  bad(() => parseRule({ action: 'drop', direction: 'in', srcip: '10.0.0.1', dstip: '2001:db8::1' }, 'r'), /different families/);
  bad(() => parseRule({ action: 'drop', direction: 'in', protocol: 'icmpv6', srcip: '$IP' }, 'r'), /icmpv6 takes IPv6 addresses/);
  bad(() => parseRule({ action: 'drop', direction: 'in', protocol: 'arp', dstip: '2001:db8::/32' }, 'r'), /arp takes IPv4/);
  bad(() => parseRule({ action: 'drop', direction: 'in', protocol: 'mac', srcip: '10.0.0.1' }, 'r'), /protocol mac has no address fields/);
  bad(() => parseRule({ action: 'drop', direction: 'in', srcmac: '01:00:5e:00:00:01' }, 'r'), /multicast/);
  bad(() => parseRule({ action: 'drop', direction: 'in', dport: 22 }, 'r'), /unknown field "dport"/);
  bad(() => parseRule({ action: 'drop', direction: 'in', established: 'yes' }, 'r'), /established must be true or false/);
  bad(() => parseRule('drop', 'r'), /must be an object/);
  bad(() => parseRules('[{"action": "drop"', 'rules'), /rules is not valid JSON/);
  bad(() => parseRules(Array.from({ length: 1001 }, () => ({ action: 'drop', direction: 'in' }))), /at most 1000 rules/);
});

test('flattening: priorities order rules and referenced filters; equal priorities keep their order; clean-traffic adds nothing', () => {
  const r = (p: number, port: number): VmRule => ({ action: 'accept', direction: 'in', priority: p, protocol: 'tcp', dstport: [port, port] });
  const filters: Record<string, NamedFilter> = {
    web: { priority: 100, rules: [r(500, 443), r(10, 80)], filters: ['base'] },
    base: { priority: 0, rules: [r(500, 22)], filters: [] },
  };
  const flat = flattenRuleSet({ rules: [r(900, 1), r(50, 2), r(50, 3)], filters: [CLEAN_TRAFFIC, 'web'] }, filters);
  assert.equal(flat.map((x) => x.dstport![0]), [2, 3, 22, 80, 443, 1]);
});

test('variables are bound per NIC; a rule whose variable has no value for the NIC is left out', () => {
  const vars = { mac: '02:00:00:00:00:01', ip: ['10.1.0.5'], ipv6: [], gateway: ['10.1.0.1'], gateway6: [] };
  const v4 = parseRule({ action: 'drop', direction: 'out', protocol: 'udp', dstip: '$GATEWAY', srcmac: '$MAC' }, 'r');
  assert.equal(bindRule(v4, vars), { action: 'drop', direction: 'out', priority: 500, protocol: 'udp', srcmac: '02:00:00:00:00:01', dstip: ['10.1.0.1'], family: 4 });
  assert.is(bindRule(parseRule({ action: 'accept', direction: 'in', srcip: '$IPV6' }, 'r'), vars), null);
});

test('compiled rule statements name their protocol first (the bridge family sees every ethertype)', () => {
  const st = (raw: object) => JSON.stringify(ruleStatements(bindRule(parseRule(raw, 'r'), { mac: '02:00:00:00:00:01', ip: ['10.0.0.5'], ipv6: ['fd00::5'], gateway: ['10.0.0.1'], gateway6: [] })!));
  const tcp = st({ action: 'accept', direction: 'in', protocol: 'tcp', dstport: 22, srcip: '10.9.0.0/16', established: true });
  assert.ok(tcp.indexOf('"ether","field":"type"') < tcp.indexOf('"saddr"'), tcp);
  assert.match(tcp, /"l4proto".*"tcp".*"dport".*22.*"flags".*"ack".*"accept"/);
  assert.match(st({ action: 'drop', direction: 'in', protocol: 'ipv6', srcip: '$IPV6' }), /"ip6".*"fd00::5".*"drop"/);
  assert.match(st({ action: 'drop', direction: 'in', protocol: 'arp', dstip: '10.0.0.9' }), /"arp".*"daddr ip".*"10.0.0.9"/);
  assert.match(st({ action: 'return', direction: 'in', protocol: 'icmpv6', type: 135 }), /"ipv6-icmp".*"icmpv6".*135.*"return"/);
});

// ── action-params ───────────────────────────────────────────────────────────────────────────────────

test('vm-filter-set params: a NIC\'s set, a named filter, listing; bad input names action-params', () => {
  const c = parseVmFilterParams({ mac: '02:AA:00:00:00:0A', rules: '[{"action":"accept","direction":"in","protocol":"tcp","dstport":"22"}]', filters: 'clean-traffic, web', port: 'vnet3' });
  assert.equal(c, { kind: 'nic', mac: '02:aa:00:00:00:0a', rules: [{ action: 'accept', direction: 'in', priority: 500, protocol: 'tcp', dstport: [22, 22] }], filters: ['clean-traffic', 'web'], port: 'vnet3' });
  assert.equal(parseVmFilterParams({ mac: '02:aa:00:00:00:0a', port: 'none' }), { kind: 'nic', mac: '02:aa:00:00:00:0a', port: null });
  assert.equal(parseVmFilterParams({ mac: '02:aa:00:00:00:0a', clear: 'true' }), { kind: 'nic', mac: '02:aa:00:00:00:0a', clear: true });
  assert.equal(parseVmFilterParams({ filter: 'web', priority: '100', rules: [] }), { kind: 'filter', name: 'web', rules: [], priority: 100 });
  assert.equal(parseVmFilterParams({}), { kind: 'list' });
  const refused = (p: Record<string, unknown>, re: RegExp) => bad(() => parseVmFilterParams(p), new RegExp(`^action-params: ${re.source}`));
  refused({ mac: 'nope' }, /"nope" is not a MAC address/);
  refused({ mac: '02:aa:00:00:00:0a', filter: 'x' }, /give either mac .* or filter/);
  refused({ mac: '02:aa:00:00:00:0a', port: 'vnet*' }, /port: "vnet\*" is not a bridge port name/);
  refused({ mac: '02:aa:00:00:00:0a', port: 'a"b' }, /port/);
  refused({ mac: '02:aa:00:00:00:0a', port: 'a-very-long-port-name' }, /port/);
  refused({ mac: '02:aa:00:00:00:0a', clear: 'true', rules: '[]' }, /clear takes nothing else/);
  refused({ mac: '02:aa:00:00:00:0a', filters: 'web;rm -rf' }, /filters\[0\]: "web;rm" is not a filter name/);
  refused({ mac: '02:aa:00:00:00:0a', priority: 5 }, /priority and delete belong to a named filter/);
  refused({ filter: 'clean-traffic', rules: '[]' }, /clean-traffic is built in/);
  refused({ filter: '9lives' }, /filter: "9lives" is not a filter name/);
  refused({ filter: 'web', priority: 'high' }, /priority: "high" is not a whole number/);
  refused({ filter: 'web', port: 'x' }, /port and clear belong to a NIC/);
  refused({ rules: '[]' }, /vm-filter-set needs mac .* or filter/);
  refused({ macs: 'x' }, /unknown key "macs"/);
});

test('applying changes: references must resolve, without cycles; a referenced filter cannot be deleted; nothing changes on refusal', () => {
  const m = router(2);
  const req = (params: Record<string, unknown>) => ({ namespace: m.namespace, networkId: '42', change: parseVmFilterParams(params) });
  bad(() => applyVmFilterChange(m, req({ mac: macOf(0), filters: 'web' })), /filter "web" is not defined/);
  applyVmFilterChange(m, req({ filter: 'web', rules: '[{"action":"accept","direction":"in","protocol":"tcp","dstport":80}]' }));
  // a NIC's set on a network whose segment is not filtered would never be enforced: refused, nothing stored
  const plain = router(1, { filtered: false });
  const plainBefore = JSON.stringify(plain);
  bad(() => applyVmFilterChange(plain, { namespace: plain.namespace, networkId: '42', change: parseVmFilterParams({ mac: macOf(0), filters: 'clean-traffic' }) }), /network 42 is not filtered: network-extension-details "vm-filter": "true"/);
  assert.is(JSON.stringify(plain), plainBefore);
  applyVmFilterChange(m, req({ filter: 'base', filters: 'web' }));
  const before = JSON.stringify(m);
  bad(() => applyVmFilterChange(m, req({ filter: 'web', filters: 'base' })), /cycle \((web → base → web|base → web → base)\)/);
  assert.is(JSON.stringify(m), before, 'nothing changed');
  applyVmFilterChange(m, req({ mac: macOf(0), filters: 'clean-traffic,base', rules: '[{"action":"drop","direction":"in","protocol":"ipv4"}]' }));
  bad(() => applyVmFilterChange(m, req({ filter: 'web', delete: 'true' })), /referenced by filter base/);
  bad(() => applyVmFilterChange(m, req({ filter: 'base', delete: 'true' })), new RegExp(`referenced by NIC ${macOf(0)}`));
  bad(() => applyVmFilterChange(m, { namespace: m.namespace, networkId: '99', change: parseVmFilterParams({ mac: macOf(0), clear: 'true' }) }), /network 99 has no guest tier/);
  // rows: the NIC's set and the named filters
  const rows = vmFilterRows(m);
  assert.equal(rows.map((r) => [r.kind, r.name, r.state]), [['nic', macOf(0), 'bound'], ['filter', 'base', 'priority 0'], ['filter', 'web', 'priority 0']]);
  assert.is(rows[0].rules, 'filter clean-traffic\nfilter base\n500 in drop ipv4');
  // a VPC-level request finds the NIC's network by its MAC
  applyVmFilterChange(m, { namespace: m.namespace, change: parseVmFilterParams({ mac: macOf(1), port: 'vnet7' }) });
  assert.is(vmfilterState(m).nics['42'][macOf(1)].port, 'vnet7');
  bad(() => applyVmFilterChange(m, { namespace: m.namespace, change: parseVmFilterParams({ mac: '02:99:00:00:00:01', port: 'vnet8' }) }), /no network .* knows NIC/);
});

// ── known NICs ──────────────────────────────────────────────────────────────────────────────────────

test('known NICs: DHCP reservations, else the metadata module\'s prepared NICs; SLAAC addresses on a /64; run counters', () => {
  assert.is(slaacOf('52:54:00:12:34:56', 'fd00:42::/64'), 'fd00:42::5054:ff:fe12:3456');
  assert.is(linkLocalOf('52:54:00:12:34:56'), 'fe80::5054:ff:fe12:3456');
  assert.is(eui64('02:00:00:00:00:01'), 0x000000fffe000001n);
  const withDhcp = router(1, { ip6: true });
  assert.equal(knownNics(withDhcp), [{ networkId: '42', mac: macOf(0), ip4: [ipOf(0)], ip6: [slaacOf(macOf(0), 'fd00:42::/64')!] }]);
  // the NIC hooks as CloudStack sends them, through the metadata module's entries (metadata, DHCP and filter parts)
  const m = router(0, { ip6: true, dhcp: false });
  const env = { ctx: { settings: { stateDir: '/nonexistent-vmf' }, details: { physicalNetwork: {}, network: {} } } } as unknown as CommandEnv;
  const hook = (command: 'prepare-nic' | 'release-nic', mac: string, ip: string, ip6?: string) => {
    const req = { command, networkId: '42', namespace: m.namespace, mac, ip, defaultNic: true, ...(ip6 ? { ip6Address: ip6 } : {}) };
    (vmdataModule.commands![command]!.change! as (r: unknown, e: CommandEnv) => (x: RouterModel) => void)(req, env)(m);
  };
  hook('prepare-nic', '02:cc:00:00:00:01', '10.1.9.1', 'fd00:42::99');
  assert.equal(knownNics(m).map((n) => [n.mac, n.ip4, n.ip6]), [['02:cc:00:00:00:01', ['10.1.9.1'], ['fd00:42::99']]]);
  // one address, one NIC: a NIC prepared at an address takes it over
  hook('prepare-nic', '02:cc:00:00:00:02', '10.1.9.1');
  assert.equal(knownNics(m).map((n) => [n.mac, n.ip4, n.ip6]), [['02:cc:00:00:00:02', ['10.1.9.1'], [slaacOf('02:cc:00:00:00:02', 'fd00:42::/64')]]]);
  // nothing takes a router's MAC or address
  const routerMac = routerSide(m, m.tiers['42']).mac;
  hook('prepare-nic', routerMac, '10.1.9.7');
  hook('prepare-nic', '02:cc:00:00:00:04', '10.1.0.1');
  assert.not.ok(knownNics(m).some((n) => n.mac === routerMac), 'the router\'s MAC is no NIC');
  assert.equal(knownNics(m).find((n) => n.mac === '02:cc:00:00:00:04')?.ip4, [], 'nor its address');
  // every start and stop of a NIC is a new run (the ports learned for it are forgotten)
  assert.is(vmfilterState(m).runs['02:cc:00:00:00:02'], 1);
  hook('release-nic', '02:cc:00:00:00:02', '10.1.9.1');
  assert.is(knownNics(m).some((n) => n.mac === '02:cc:00:00:00:02'), false, 'released');
  assert.is(vmfilterState(m).runs['02:cc:00:00:00:02'], undefined, 'and its counter with it');
  // a DHCP reservation wins over a prepared NIC for the address both name
  const both = router(1);
  const vs = vmdataState(both);
  setVmdataState(both, { ...vs, nics: { [ipOf(0)]: { tier: '42', mac: '02:cc:00:00:00:05' } } });
  assert.equal(knownNics(both).map((n) => [n.mac, n.ip4]), [[macOf(0), [ipOf(0)]], ['02:cc:00:00:00:05', []]]);
  // the policy follows the request's details; absent keeps it; off by default
  assert.equal(vmfilterState(m).tiers, { 42: { enabled: true } });
  vmfilterNoteRequest(m, { networkId: '42', vmFilterStrict: true });
  assert.equal(vmfilterState(m).tiers, { 42: { enabled: true, strict: true } });
  vmfilterNoteRequest(m, { networkId: '42' });
  assert.equal(vmfilterState(m).tiers, { 42: { enabled: true, strict: true } });
  vmfilterNoteRequest(m, { networkId: '42', vmFilterStrict: false });
  assert.equal(vmfilterState(m).tiers, { 42: { enabled: true } });
  vmfilterNoteRequest(m, { networkId: '42', vmFilter: false });
  assert.equal(vmfilterState(m).tiers, {});
  assert.is(filterObjects(m), undefined, 'an unfiltered network has no filter');
  const off = router(2, { filtered: false });
  assert.is(filterObjects(off), undefined, 'off by default');
  vmfilterNoteRequest(off, { networkId: '42', vmFilterStrict: true });
  assert.ok(filterObjects(off), 'strict turns it on');
});

// ── the table ───────────────────────────────────────────────────────────────────────────────────────

test('objects named with the router\'s prefix in one shared bridge table; nothing without an implemented tier; it renders', () => {
  assert.equal(VMFILTER_TABLE, { family: 'bridge', name: 'netns_router_vmf' });
  assert.equal(legacyVmfilterTable('cs-vpc-7'), { family: 'bridge', name: 'nr_vmf_cs-vpc-7' });
  const p = vmfilterPrefix('cs-vpc-7');
  assert.match(p, /^r[0-9a-f]{10}_$/);
  // fixed length: no router's prefix begins another's, whatever the namespace names (`_` included)
  assert.is.not(vmfilterPrefix('cs-vpc-7_x'), p);
  assert.is(vmfilterPrefix('cs-vpc-7_x').length, p.length);
  const m = router(3, { ip6: true });
  const mp = vmfilterPrefix(m.namespace);
  const objs = filterObjects(m)!;
  const base = objs.filter((o) => o.kind === 'chain' && o.hook);
  assert.equal(base.map((o) => [(o as { name: string }).name, (o as { hook: string }).hook]), [[`${mp}prerouting`, 'prerouting'], [`${mp}forward`, 'forward']]);
  const named = (o: (typeof objs)[number]): string => (o.kind === 'rule' ? o.chain : o.kind === 'element' ? o.set : (o as { name: string }).name);
  assert.equal(objs.filter((o) => !named(o).startsWith(mp)), [], 'every object carries the prefix');
  // every chain jumped to and set looked up is the router's own
  const refs = JSON.stringify(objs).match(/"(target|set)":"[^"]*"|"@[^"]*"/g) ?? [];
  assert.ok(refs.length > 10);
  for (const x of refs) assert.ok(x.includes(mp), x);
  // renders (every name, type and expression validated by lib/nft)
  assert.ok(new Transaction(VMFILTER_TABLE).add(...objs).length > 50);
  m.tiers['42'].implemented = false;
  assert.is(filterObjects(m), undefined);
  const l2 = router(0);
  l2.l2 = { networkId: '42', segment: { kind: 'vxlan', vni: 1 }, hostDev: 'eth1', implemented: true };
  assert.is(filterObjects(l2), undefined);
});

/** Operations of the in-place change from one model's table to another's. */
function ops(a: RouterModel, b: RouterModel): { n: number; verbs: string[] } {
  const d = diffTable(VMFILTER_TABLE, tableContents(compileFilter(filterView(a)!)), tableContents(compileFilter(filterView(b)!)))!;
  return { n: d.body.length, verbs: d.body.operations.map((o) => `${o.verb} ${o.object.kind}`) };
}

test('one VM added to or removed from a segment of 1,000: element updates and its MAC claim bucket (IPv4); a few chains with IPv6', () => {
  const m = router(1000);
  const plus = structuredClone(m);
  addVm(plus, 1000);
  // the elements, and the one small chain of the MAC claims of its MAC's last byte (chaddr and the ND link-layer
  // option are raw payloads: no typed set takes them in nft 1.0.6) rewritten: ~4 NICs of 1,000, 3 rules each
  const bucket = (verbs: string[], elem: string) => verbs.every((v) => v === elem || v === 'flush chain' || v === 'add rule')
    && verbs.filter((v) => v === 'flush chain').length <= 1;
  const add = ops(m, plus);
  assert.ok(bucket(add.verbs, 'add element'), add.verbs.join(', '));
  assert.ok(add.n <= 24, `${add.n} operations`);
  const del = ops(plus, m);
  assert.ok(bucket(del.verbs, 'delete element'), del.verbs.join(', '));
  assert.ok(del.n <= 24, `${del.n} operations`);
  // with IPv6 one neighbour-advertisement claim bucket changes too
  const m6 = router(1000, { ip6: true });
  const p6 = structuredClone(m6);
  addVm(p6, 1000);
  const add6 = ops(m6, p6);
  assert.ok(add6.n <= 32, `${add6.n} operations: ${add6.verbs.join(', ')}`);
  assert.is(add6.verbs.filter((v) => v === 'flush chain').length <= 2, true, add6.verbs.join(', '));
});

test('rule sets compile into chains of their own, jumped to by MAC; a NIC without a set has none', () => {
  const m = router(2);
  applyVmFilterChange(m, { namespace: m.namespace, networkId: '42', change: parseVmFilterParams({ mac: macOf(1), rules: '[{"action":"accept","direction":"in","protocol":"tcp","dstport":22},{"action":"drop","direction":"out","protocol":"udp","dstport":53}]' }) });
  const objs = filterObjects(m)!;
  const chains = objs.filter((o) => o.kind === 'chain').map((o) => (o as { name: string }).name);
  const p = vmfilterPrefix(m.namespace);
  const id = macOf(1).replace(/:/g, '');
  assert.ok(chains.includes(`${p}in_${id}`) && chains.includes(`${p}nic_${id}`), chains.join(' '));
  assert.not.ok(chains.includes(`${p}in_${macOf(0).replace(/:/g, '')}`));
  // a NIC's set is kept across release-nic but compiled only while the NIC is known
  dhcp.removeDhcpEntry(m, { command: 'remove-dhcp-entry', networkId: '42', namespace: m.namespace, mac: macOf(1), defaultNic: true });
  assert.not.ok(filterObjects(m)!.some((o) => o.kind === 'chain' && (o as { name: string }).name === `${p}in_${id}`));
  assert.equal(vmFilterRows(m).map((r) => r.state), ['not known (no prepare-nic / DHCP entry)']);
});

test.run();
