/**
 * RouterModule.forgetTier, on the model (no kernel): a VPC with tiers 701 (10.71.1.0/24) and 702 (10.71.2.0/24)
 * carrying state in every module; forgetting 701 leaves nothing of it in any module and all of 702.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { emptyModel, type RouterModel, type TierModel } from '../../lib/router/model.js';
import { defaultModules } from '../../lib/router/default-modules.js';
import type { RouterModule } from '../../lib/router/router-module.js';
import { setModuleState } from '../../lib/router/router-module.js';
import { tierAttachment } from '../../lib/router/topology.js';
import * as dhcp from '../../lib/router/dhcp/index.js';
import { dhcpModule } from '../../lib/router/dhcp/module.js';
import { firewallModule } from '../../lib/router/firewall/module.js';
import { firewallState, putAcl, putFwDocument } from '../../lib/router/firewall/state.js';
import { parseAclDocument, parseFwDocument } from '../../lib/router/firewall/rules.js';
import { lbModule, lbState, LB } from '../../lib/router/lb/module.js';
import { vmdataModule } from '../../lib/router/vmdata/module.js';
import { setVmdataState, vmdataState } from '../../lib/router/vmdata/state.js';
import { addRoute, addRule, createTable, pbrModule, pbrState } from '../../lib/router/pbr/module.js';
import type * as T from '../../lib/router/contract/types.js';

const NS = 'cs-vpc-70';
const cidr = (s: string): T.Cidr => { const [address, p] = s.split('/'); return { family: 4, address, prefix: Number(p) }; };
const tier = (id: string, n: number): TierModel => ({
  networkId: id, segment: { kind: 'vxlan', vni: 7000 + n }, hostDev: 'eth1', gateway: `10.71.${n}.1`, cidr: `10.71.${n}.0/24`,
  extensionIp: `10.71.${n}.1`, guestType: 'isolated', implemented: true,
});
const net = (id: string) => ({ networkId: id, vpcId: '70', namespace: NS });

/** A VPC router where every module keeps something for each of tiers 701 and 702. */
function loaded(): RouterModel {
  const m = emptyModel(NS, 'vpc', '70');
  m.vpc = { id: '70', cidr: '10.71.0.0/16', implemented: true };
  m.tiers['701'] = tier('701', 1);
  m.tiers['702'] = tier('702', 2);
  m.publicIps['203.0.113.70'] = { ip: '203.0.113.70', prefixLen: 24, segment: { kind: 'untagged' }, hostDev: 'eth1', sourceNat: true, owner: '70' };
  for (const [id, n] of [['701', 1], ['702', 2]] as const) {
    const mac = `02:00:00:71:0${n}:0a`;
    dhcp.configDnsSubnet(m, { command: 'config-dns-subnet', ...net(id), gateway: `10.71.${n}.1`, cidr: cidr(`10.71.${n}.0/24`), domain: `t${n}.example` });
    dhcp.addDhcpEntry(m, { command: 'add-dhcp-entry', ...net(id), mac, ip: `10.71.${n}.10`, hostname: `vm${n}`, defaultNic: true, nicId: `nic${n}` });
    dhcp.addDnsEntry(m, { command: 'add-dns-entry', ...net(id), ip: `10.71.${n}.20`, hostname: `db${n}`, defaultNic: true });
    dhcp.setDhcpOptions(m, { command: 'set-dhcp-options', ...net(id), nicId: `nic${n}`, options: { 26: '1400' } });
    putAcl(m, id, parseAclDocument([{ number: 1, action: 'allow', trafficType: 'ingress', protocol: 'tcp', portStart: 22, portEnd: 22, sourceCidrs: [`10.71.${n}.0/24`] }]));
    putFwDocument(m, id, parseFwDocument({ default_egress_allow: true, cidr: `10.71.${n}.0/24`, rules: [{ id: n, type: 'egress', protocol: 'tcp', portStart: 25, portEnd: 25, sourceCidrs: [`10.71.${n}.0/24`], destCidrs: ['0.0.0.0/0'] }] }));
  }
  setModuleState(m, LB, {
    networks: Object.fromEntries([1, 2].map((n) => [`70${n}`, {
      [`lb${n}`]: { id: `lb${n}`, publicIp: '203.0.113.70', publicPort: 8000 + n, protocol: 'tcp', algorithm: 'roundrobin', backends: [{ ip: `10.71.${n}.10`, port: 80 }] },
    }])),
  });
  setVmdataState(m, {
    serial: 2,
    vms: {
      '10.71.1.10': { tier: '701', mac: '02:00:00:71:01:0a', files: { 'user-data': 'a'.repeat(40) }, password: { blob: 'b'.repeat(40), serial: 1 } },
      '10.71.2.10': { tier: '702', mac: '02:00:00:71:02:0a', files: { 'user-data': 'c'.repeat(40) }, password: { blob: 'd'.repeat(40), serial: 2 } },
    },
  });
  createTable(m, 100, 'isp1');
  const dev1 = tierAttachment(m, m.tiers['701']).nsVeth;
  const dev2 = tierAttachment(m, m.tiers['702']).nsVeth;
  addRoute(m, 'isp1', '192.0.2.0/24 via 10.71.1.254'); // next hop in 701
  addRoute(m, 'isp1', `198.51.100.0/24 dev ${dev1}`); // 701's interface
  addRoute(m, 'isp1', `198.51.101.0/24 via 10.71.2.254 dev ${dev2}`); // 702's
  addRoute(m, 'isp1', 'default via 203.0.113.1'); // the router's own
  addRule(m, 'isp1', 'from 10.71.1.0/25 priority 100'); // only 701's subnet
  addRule(m, 'isp1', `iif ${dev1} priority 101`);
  addRule(m, 'isp1', 'from 10.71.2.0/24 priority 102'); // 702's
  addRule(m, 'isp1', 'from 10.71.0.0/16 priority 103'); // the whole VPC: stays
  return m;
}

const text = (m: RouterModel): string => JSON.stringify(m.extra ?? {});
const forget = (mods: RouterModule[], m: RouterModel, id: string) => { for (const mod of mods) mod.forgetTier?.(m, id); };

test('every default module has forgetTier', () => {
  for (const mod of defaultModules()) assert.type(mod.forgetTier, 'function', `${mod.name} forgets tiers`);
});

test('all modules together: nothing of tier 701 (10.71.1.x, its interface) is left, all of 702 is', () => {
  const m = loaded();
  const dev1 = tierAttachment(m, m.tiers['701']).nsVeth;
  assert.match(text(m), '10.71.1.', 'control: 701 is in the module state before');
  assert.match(text(m), dev1);
  const before702 = text(m).match(/10\.71\.2\.[0-9]+/g)!.length;
  forget(defaultModules(), m, '701');
  assert.not.match(text(m), '10.71.1.', 'no address of 701 in any module');
  assert.not.match(text(m), dev1, 'no route or rule on 701\'s interface');
  assert.not.match(text(m), '"701"', 'no slot keyed by 701');
  assert.is(text(m).match(/10\.71\.2\.[0-9]+/g)!.length, before702, 'every mention of 702 kept');
});

test('DHCP/DNS: reservations, names, NIC options and subnet settings of the tier go', () => {
  const m = loaded();
  dhcpModule.forgetTier!(m, '701');
  const s = dhcp.dhcpState(m);
  assert.equal(Object.keys(s.tiers), ['702']);
  assert.is(s.tiers['702'].hosts['02:00:00:71:02:0a'].ip, '10.71.2.10');
  assert.is(s.tiers['702'].names['10.71.2.20'].hostname, 'db2', 'DNS names of the other tier kept');
  assert.equal(s.tiers['702'].nicOptions.nic2, { 26: '1400' });
  dhcpModule.forgetTier!(m, '702');
  assert.is(m.extra?.dhcp, undefined, 'the slot goes with the last tier');
});

test('firewall/ACL: the tier\'s ACL and firewall document go', () => {
  const m = loaded();
  firewallModule.forgetTier!(m, '701');
  const s = firewallState(m);
  assert.equal(Object.keys(s.acl), ['702']);
  assert.equal(Object.keys(s.fw), ['702']);
  firewallModule.forgetTier!(m, '702');
  assert.is(m.extra?.firewall, undefined);
});

test('load balancing: the tier\'s rules go', () => {
  const m = loaded();
  lbModule.forgetTier!(m, '701');
  assert.equal(Object.keys(lbState(m).networks), ['702']);
  lbModule.forgetTier!(m, '702');
  assert.is(m.extra?.lb, undefined);
});

test('VM data: records and pending passwords of the tier\'s VMs go', () => {
  const m = loaded();
  vmdataModule.forgetTier!(m, '701');
  const s = vmdataState(m);
  assert.equal(Object.keys(s.vms), ['10.71.2.10']);
  assert.is(s.vms['10.71.2.10'].password?.serial, 2);
  vmdataModule.forgetTier!(m, '702');
  assert.is(m.extra?.vmdata, undefined);
});

test('policy routing: routes and rules bound to the tier go, the router\'s own stay', () => {
  const m = loaded();
  const dev2 = tierAttachment(m, m.tiers['702']).nsVeth;
  pbrModule.forgetTier!(m, '701');
  const s = pbrState(m);
  assert.equal(s.tables, { 100: 'isp1' }, 'tables are the router\'s');
  assert.equal(s.routes.map((r) => r.route), [`198.51.101.0/24 via 10.71.2.254 dev ${dev2}`, 'default via 203.0.113.1']);
  assert.equal(s.rules.map((r) => r.rule), ['from 10.71.2.0/24 priority 102', 'from 10.71.0.0/16 priority 103']);
});

test('forgetting an unknown tier changes nothing', () => {
  const m = loaded();
  const before = JSON.stringify(m);
  forget(defaultModules(), m, '799');
  assert.is(JSON.stringify(m), before);
});

test.run();
