/**
 * Shared and L2 networks on the model (no kernel): when a command may implement a shared network, what the
 * tier and its plumbing plan look like, and the refusal of L3 commands on an L2 network.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterEngine } from '../../lib/router/engine.js';
import { emptyModel } from '../../lib/router/model.js';
import { UsageError } from '../../lib/util/errors.js';
import { plumbingPlan } from '../../lib/router/topology.js';
import { sharedGap } from '../../lib/router/shared-network.js';
import { canImplementShared, implementShared } from '../../lib/router/core/tiers.js';
import * as dhcp from '../../lib/router/dhcp/index.js';
import type * as T from '../../lib/router/contract/types.js';
import { rejected } from '../helpers/expect.js';

const cidr = (s: string): T.Cidr => { const [address, p] = s.split('/'); return { family: 4, address, prefix: Number(p) }; };
const NS = 'cs-net-80';
/** What CloudStack's prepare-nic carries for a shared network (gateway: the NIC's). */
const prepare = (extra: Partial<T.PrepareNicRequest> = {}): T.PrepareNicRequest => ({
  command: 'prepare-nic', networkId: '80', namespace: NS, guestType: 'shared', segment: { kind: 'untagged' },
  gateway: '10.80.0.1', cidr: cidr('10.80.0.0/24'), extensionIp: '10.80.0.2', mac: '02:00:00:80:00:0a', ip: '10.80.0.10',
  defaultNic: true, ...extra,
});

function withEngine(fn: (e: RouterEngine, dir: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nr-shared-model-'));
    try {
      await fn(new RouterEngine({ stateDir: dir, devices: { guest: 'eth1', public: 'eth1' } }), dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const usageError = (fn: () => unknown): Promise<UsageError> => rejected(fn, UsageError);

test('sharedGap: a complete description, then each missing or wrong part named', () => {
  assert.is(sharedGap(prepare()), undefined);
  const gap = (x: Partial<T.PrepareNicRequest>) => sharedGap({ ...prepare(), ...x });
  assert.equal([gap({ segment: undefined })?.argument, gap({ segment: undefined })?.kind], ['vlan', 'incomplete']);
  assert.is(gap({ gateway: undefined })?.argument, 'gateway');
  assert.is(gap({ cidr: undefined })?.argument, 'cidr');
  const noExt = gap({ extensionIp: undefined });
  assert.is(noExt?.argument, 'extension_ip');
  assert.match(noExt!.message, 'never takes the gateway');
  assert.equal([gap({ gateway: '10.99.0.1' })?.argument, gap({ gateway: '10.99.0.1' })?.kind], ['gateway', 'incomplete'], 'a secondary range\'s NIC');
  assert.equal([gap({ extensionIp: '10.99.0.2' })?.argument, gap({ extensionIp: '10.99.0.2' })?.kind], ['extension_ip', 'invalid']);
});

test('implementShared: the tier takes the extension IP, not the gateway (nor the IPv6 gateway)', withEngine((e) => {
  const m = emptyModel(NS, 'network', '80');
  implementShared(m, prepare({ ip6Gateway: 'fd00:80::1', ip6Cidr: { family: 6, address: 'fd00:80::', prefix: 64 } }), e.devices);
  const t = m.tiers['80'];
  assert.ok(t?.implemented);
  assert.equal([t.guestType, t.gateway, t.cidr, t.extensionIp], ['shared', '10.80.0.1', '10.80.0.0/24', '10.80.0.2']);
  assert.is(t.ip6Gateway, undefined, 'the external router\'s IPv6 gateway is not taken');
  const plan = plumbingPlan(m);
  assert.equal(plan.attachments[0].addresses, ['10.80.0.2/24']);
  assert.equal(plan.routes, [{ dst: 'default', via: '10.80.0.1', dev: plan.attachments[0].nsVeth }]);
  assert.is(plan.sysctls['net.ipv4.ip_forward'], 0, 'a router of shared networks forwards nothing');
  // a later config-dhcp-subnet with the IPv6 prefix does not put the gateway on it either
  dhcp.configDhcpSubnet(m, { command: 'config-dhcp-subnet', networkId: '80', namespace: NS, gateway: '10.80.0.1', cidr: cidr('10.80.0.0/24'), ip6Gateway: 'fd00:80::1', ip6Cidr: { family: 6, address: 'fd00:80::', prefix: 64 } });
  assert.is(m.tiers['80'].ip6Gateway, undefined);
}));

test('implementShared: does nothing where it must not, fails where it cannot', withEngine(async (e) => {
  const m = emptyModel(NS, 'network', '80');
  implementShared(m, prepare({ guestType: 'isolated' }), e.devices);
  implementShared(m, prepare({ guestType: undefined }), e.devices);
  implementShared(m, prepare({ networkState: 'shutdown' }), e.devices);
  implementShared(m, prepare({ extensionIp: undefined }), e.devices, { ifComplete: true });
  implementShared(m, prepare({ gateway: '10.99.0.1' }), e.devices, { ifComplete: true });
  assert.equal(m.tiers, {}, 'isolated, untyped, dormant, incomplete (prepare-nic): no tier');
  assert.is((await usageError(() => implementShared(m, prepare({ extensionIp: undefined }), e.devices))).argument, 'extension_ip');
  assert.is((await usageError(() => implementShared(m, prepare({ extensionIp: '10.99.0.2' }), e.devices, { ifComplete: true }))).argument, 'extension_ip', 'a wrong value is an error even for prepare-nic');
  assert.equal(m.tiers, {});
  assert.not.ok(canImplementShared(prepare({ extensionIp: undefined })));
  assert.ok(canImplementShared(prepare()));

  implementShared(m, prepare(), e.devices);
  const first = JSON.stringify(m.tiers['80']);
  implementShared(m, prepare({ extensionIp: '10.80.0.3' }), e.devices);
  assert.is(JSON.stringify(m.tiers['80']), first, 'an implemented tier is left as it is');
  m.tiers['80'].implemented = false; // shut down: the next describing command brings it back
  implementShared(m, prepare({ gateway: undefined, cidr: undefined, extensionIp: undefined }), e.devices);
  assert.ok(m.tiers['80'].implemented, 're-implemented from what the shut-down tier still knows');
  assert.is(m.tiers['80'].extensionIp, '10.80.0.2');
}));

test('a mixed router (isolated + shared) still forwards', () => {
  const m = emptyModel('cs-vpc-81', 'vpc', '81');
  m.tiers.a = { networkId: 'a', segment: { kind: 'vxlan', vni: 81 }, hostDev: 'eth1', gateway: '10.81.0.1', cidr: '10.81.0.0/24', extensionIp: '10.81.0.1', guestType: 'isolated', implemented: true };
  assert.is(plumbingPlan(m).sysctls['net.ipv4.ip_forward'], 1);
});

test('L2 network: every command but its lifecycle is refused naming the command, before anything changes', withEngine(async (e) => {
  const m = emptyModel(NS, 'network', '80');
  m.l2 = { networkId: '80', segment: { kind: 'vxlan', vni: 80 }, hostDev: 'eth1', implemented: true };
  e.store.save(m);
  const before = e.store.read(NS);
  let ran = false;
  const err = await usageError(() => e.changeFor({ command: 'config-dhcp-subnet', networkId: '80', namespace: NS }, () => { ran = true; }));
  assert.match(err.message, /^network 80 is an L2 network/);
  assert.match(err.message, 'config-dhcp-subnet needs L3');
  assert.not.ok(ran, 'the mutation never ran');
  assert.is(e.store.read(NS), before);
  // guest_type l2 alone (no stored router) is refused the same way, and nothing is stored
  const err2 = await usageError(() => e.changeFor({ command: 'save-vm-data', networkId: '82', guestType: 'l2', namespace: 'cs-net-82' }, () => { ran = true; }));
  assert.match(err2.message, 'network 82 is an L2 network');
  assert.match(err2.message, 'save-vm-data needs L3');
  assert.not.ok(ran);
  assert.is(e.store.read('cs-net-82'), undefined);
}));

test.run();
