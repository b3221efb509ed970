/**
 * The router engine on the in-memory kernel (lib/router/fake-kernel.ts): the contract-level lifecycle — implement,
 * public IPs, static NAT, port forwarding, firewall, destroy — and the refusals the kernel's semantics cause
 * (a missing device, a link name held by someone else, a namespace someone else made), without root or a
 * kernel: no sandbox, runs in well under a second. Real packets stay with the kernel tests (test/router/).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterEngine } from '../../lib/router/engine.js';
import { runCommand } from '../../lib/router/command-table.js';
import { requestFromValues } from '../../lib/router/contract/plain-values.js';
import type { CommandInputs } from '../../lib/router/contract/inputs.js';
import type { EngineCommand } from '../../lib/router/contract/types.js';
import { FakeKernel } from '../../lib/router/fake-kernel.js';
import { ROUTER_TABLE } from '../../lib/router/router-table.js';
import { exitCodeOf } from '../../lib/util/errors.js';
import { createRouter } from '../../lib/router/create-router.js';
import { netnsExists } from '../../lib/netns/namespaces.js';

function setup(devices = ['eth1']): { k: FakeKernel; engine: RouterEngine; run: <C extends EngineCommand>(c: C, input: CommandInputs[C]) => Promise<unknown>; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'nr-fake-'));
  const k = new FakeKernel({ devices });
  const engine = new RouterEngine({ stateDir: dir, devices: { guest: 'eth1', public: 'eth1' }, kernel: k });
  const run = <C extends EngineCommand>(c: C, input: CommandInputs[C]) => runCommand(engine, requestFromValues(c, input, { networkDetails: {} }));
  return { k, engine, run, done: () => rmSync(dir, { recursive: true, force: true }) };
}

const pub = { publicVlan: 'untagged', publicGateway: '203.0.113.1', publicCidr: '203.0.113.0/24' } as const;

async function elements(k: FakeKernel, ns: string, set: string): Promise<unknown[]> {
  return (await k.nftOf(ns).listSet(ROUTER_TABLE, set)).elements;
}

async function fails(p: Promise<unknown>, code: number, text: string | RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.is(exitCodeOf(e), code, String(e));
    if (typeof text === 'string') assert.match(String((e as Error).message), text);
    else assert.match(String((e as Error).message), text);
    return;
  }
  assert.unreachable(`should have failed with ${String(text)}`);
}

test('lifecycle on the fake kernel: namespace, links, addresses, routes, NAT maps, firewall, destroy', async () => {
  const { k, engine, run, done } = setup();
  try {
    await run('implement-network', { networkId: 42, vlan: 'vxlan://5042', gateway: '10.42.0.1', cidr: '10.42.0.0/24' });
    assert.equal(k.namespaces(), ['cs-net-42']);
    const ns = k.open('cs-net-42');
    const host = k.host();
    const guest = ns.netlink.linkList({ kind: 'veth' });
    assert.is(guest.length, 1, 'one guest veth in the router');
    assert.equal(ns.netlink.addrList({ dev: guest[0].name }).map((a) => a.address), ['10.42.0.1/24']);
    const vx = host.netlink.linkList({ kind: 'vxlan' });
    assert.is(vx.length, 1);
    assert.is(vx[0].kind === 'vxlan' && vx[0].vni, 5042);
    assert.ok(host.netlink.linkList({ kind: 'bridge' }).some((b) => b.index === vx[0].masterIndex), 'the VXLAN device is a port of its bridge');

    await run('assign-ip', { networkId: 42, publicIp: '203.0.113.10', sourceNat: true, ...pub });
    await run('assign-ip', { networkId: 42, publicIp: '203.0.113.11', ...pub });
    const routes = ns.netlink.routeList({ table: 'all' }).filter((r) => r.protocol === 4);
    assert.equal(routes.map((r) => `${r.dst} via ${r.via}`), ['default via 203.0.113.1'], 'the default route through the public gateway');
    assert.is((await elements(k, 'cs-net-42', 'snat_src')).length, 1, 'source NAT of the guest CIDR');

    await run('add-static-nat', { networkId: 42, publicIp: '203.0.113.11', privateIp: '10.42.0.20' });
    await run('add-port-forward', { networkId: 42, publicIp: '203.0.113.10', publicPort: 80, privateIp: '10.42.0.10', privatePort: 8080, protocol: 'tcp' });
    assert.equal(JSON.stringify(await elements(k, 'cs-net-42', 'static_dnat')), JSON.stringify([['203.0.113.11', '10.42.0.20']]));
    assert.is((await elements(k, 'cs-net-42', 'pf_addr')).length, 1);
    await run('apply-fw-rules', { networkId: 42, fwRules: { rules: [{ type: 'ingress', protocol: 'tcp', portStart: 80, publicIp: '203.0.113.10' }] } });
    assert.ok((await elements(k, 'cs-net-42', 'pub_filtered')).length >= 1, 'the firewalled public IP is filtered');

    // a no-op re-apply changes nothing in the kernel
    const before = k.changes.length;
    await run('add-static-nat', { networkId: 42, publicIp: '203.0.113.11', privateIp: '10.42.0.20' });
    assert.equal(k.changes.slice(before).filter((c) => c.kind !== 'nft'), [], 'nothing but the stamp confirmation');

    // deleting a static NAT deletes its flows' conntrack entries
    const mark = k.changes.length;
    await run('delete-static-nat', { networkId: 42, publicIp: '203.0.113.11', privateIp: '10.42.0.20' });
    assert.ok(k.changes.slice(mark).some((c) => c.kind === 'conntrack' && c.what.includes('203.0.113.11')));
    assert.equal(await elements(k, 'cs-net-42', 'static_dnat'), []);

    await run('destroy-network', { networkId: 42 });
    assert.equal(k.namespaces(), [], 'namespace gone');
    assert.equal(k.host().netlink.linkList({ kind: 'veth' }), [], 'host veth ends gone with their peers');
    assert.not.ok(engine.store.has('cs-net-42'), 'state gone');
  } finally {
    done();
  }
});

test('after destroy-network: rules for the network are refused (exit 1) or, when there are none or CloudStack reports it down, a no-op; no router state comes back', async () => {
  const { k, engine, run, done } = setup();
  try {
    await run('implement-network', { networkId: 43, vlan: 'vxlan://5043', gateway: '10.43.0.1', cidr: '10.43.0.0/24' });
    await run('assign-ip', { networkId: 43, publicIp: '203.0.113.12', sourceNat: true, ...pub });
    await run('assign-ip', { networkId: 43, publicIp: '203.0.113.13', ...pub });
    // NAT to the router's own addresses is bad input (a VM's address is meant)
    await fails(run('add-static-nat', { networkId: 43, publicIp: '203.0.113.13', privateIp: '10.43.0.1' }), 1, /10\.43\.0\.1 is an address of the router cs-net-43 itself \(network 43\)/);
    await fails(run('add-port-forward', { networkId: 43, publicIp: '203.0.113.12', publicPort: 80, privateIp: '203.0.113.13', privatePort: 80, protocol: 'tcp' }), 1, /is an address of the router/);
    assert.equal(engine.storedModel('cs-net-43')?.staticNats, [], 'nothing stored');
    await run('destroy-network', { networkId: 43 });
    assert.not.ok(engine.store.has('cs-net-43'));
    const rules = { rules: [{ type: 'egress', protocol: 'tcp', portStart: 25 }] };
    await fails(run('apply-fw-rules', { networkId: 43, fwRules: rules }), 1, /network 43 has no guest tier .*implement-network first/);
    await fails(run('apply-network-acl', { networkId: 43, aclRules: [{ number: 1, trafficType: 'ingress', action: 'deny', protocol: 'all', sourceCidrs: ['0.0.0.0/0'] }] }), 1, /has no guest tier/);
    await fails(run('custom-action', { networkId: 43, action: 'pbr-create-table', actionParams: { 'table-id': '100', 'table-name': 'x' } }), 1, /cs-net-43 does not exist/);
    assert.not.ok(engine.store.has('cs-net-43'), 'nothing stored by the refusals');
    // the positive side: no rules, or the network reported down (CloudStack revoking rules around a shutdown)
    await run('apply-fw-rules', { networkId: 43, fwRules: { rules: [] } });
    await run('apply-fw-rules', { networkId: 43, networkState: 'destroy', fwRules: rules });
    await run('apply-network-acl', { networkId: 43, networkState: 'shutdown', aclRules: [] });
    // a revoke for a load-balancing rule of the gone network: nothing to do, nothing stored either
    await run('apply-lb-rules', { networkId: 43, lbRules: [{ id: 1, revoked: true, publicIp: '203.0.113.12', publicPort: 80, privatePort: 80, algorithm: 'roundrobin', protocol: 'tcp', backends: [] }] });
    assert.not.ok(engine.store.has('cs-net-43'), 'the no-ops stored nothing');
    assert.equal(k.namespaces(), [], 'and made no router');
    // implemented again: none of the rules sent meanwhile come back
    await run('implement-network', { networkId: 43, vlan: 'vxlan://5043', gateway: '10.43.0.1', cidr: '10.43.0.0/24' });
    assert.is(engine.storedModel('cs-net-43')?.extra?.firewall, undefined, 'no firewall state');
    await run('destroy-network', { networkId: 43 });
  } finally {
    done();
  }
});

test('fake kernel semantics reach the commands: missing device, foreign link name, foreign namespace', async () => {
  const { k, engine, run, done } = setup();
  try {
    // a public device that does not exist (public.network.device nosuch0): exit 2 naming it, the router as it was
    await run('implement-network', { networkId: 7, vlan: 'vxlan://5007', gateway: '10.7.0.1', cidr: '10.7.0.0/24' });
    const links = JSON.stringify(k.open('cs-net-7').netlink.linkList());
    const other = new RouterEngine({ stateDir: engine.stateDir, devices: { guest: 'eth1', public: 'nosuch0' }, kernel: k });
    await fails(runCommand(other, requestFromValues('assign-ip', { networkId: 7, publicIp: '203.0.113.77', ...pub }, { networkDetails: {} })), 2, 'host device "nosuch0" does not exist');
    assert.is(JSON.stringify(k.open('cs-net-7').netlink.linkList()), links, 'the router as it was');
    assert.not.ok(engine.store.load('cs-net-7')!.publicIps['203.0.113.77'], 'the state as it was');

    // a host link with the name our veth needs, not ours: refused, exit 2, naming it
    const { k: k2, run: run2, done: done2 } = setup();
    try {
      await run2('implement-network', { networkId: 8, vlan: 'vxlan://5008', gateway: '10.8.0.1', cidr: '10.8.0.0/24' });
      const hostVeth = k2.host().netlink.linkList({ kind: 'veth' })[0].name;
      await run2('destroy-network', { networkId: 8 });
      k2.addHostLink(hostVeth, 'device', 'someone else');
      await fails(run2('implement-network', { networkId: 8, vlan: 'vxlan://5008', gateway: '10.8.0.1', cidr: '10.8.0.0/24' }), 2, `host link "${hostVeth}"`);
      assert.equal(k2.namespaces(), [], 'the new router is removed again');
      assert.ok(k2.host().netlink.linkFind(hostVeth), 'the foreign link is left alone');

      // a namespace someone else made under the router's name: refused, left alone
      k2.addForeignNetns('cs-net-9');
      await fails(run2('implement-network', { networkId: 9, vlan: 'vxlan://5009', gateway: '10.9.0.1', cidr: '10.9.0.0/24' }), 2, 'was not created by netns-router');
      assert.ok(k2.netnsExists('cs-net-9'));
      // positive control: another network of the same host works
      await run2('implement-network', { networkId: 10, vlan: 'vxlan://5010', gateway: '10.10.0.1', cidr: '10.10.0.0/24' });
      assert.ok(k2.netnsExists('cs-net-10'));
    } finally {
      done2();
    }
  } finally {
    done();
  }
});

test('fake kernel: link names, VNIs and namespaces collide as in the kernel', () => {
  const k = new FakeKernel({ devices: ['eth1'] });
  const h = k.host().netlink;
  h.linkAdd({ kind: 'bridge', name: 'br0', up: true });
  assert.throws(() => h.linkAdd({ kind: 'bridge', name: 'br0' }), /EEXIST/);
  assert.throws(() => h.linkAdd({ kind: 'bridge', name: 'a-name-far-too-long' }), /EINVAL/);
  h.linkAdd({ kind: 'vxlan', name: 'vx1', vni: 10, dev: 'eth1', dstPort: 4789 });
  assert.throws(() => h.linkAdd({ kind: 'vxlan', name: 'vx2', vni: 10, dev: 'eth1', dstPort: 4789 }), /EEXIST/);
  h.linkAdd({ kind: 'vlan', name: 'eth1.5', parent: 'eth1', id: 5 });
  assert.throws(() => h.linkAdd({ kind: 'vlan', name: 'v5', parent: 'eth1', id: 5 }), /EEXIST/);
  assert.throws(() => h.linkAdd({ kind: 'vlan', name: 'v6', parent: 'nosuch', id: 6 }), /ENODEV/);
  assert.throws(() => h.linkSet('vx1', { master: 'eth1' }), /EOPNOTSUPP/, 'a master must be a bridge');
  assert.throws(() => k.open('nope'), /does not exist/);
  k.addNetns('r1');
  assert.throws(() => k.addNetns('r1'), /already exists/);
  const r = k.open('r1');
  h.linkAdd({ kind: 'veth', name: 'vh1', master: 'br0', peer: { name: 'vn1', namespace: { fd: r.fd } } });
  assert.ok(r.netlink.linkFind('vn1'), 'the peer is in the router namespace');
  assert.throws(() => r.netlink.addrReplace({ dev: 'nosuch', address: '10.0.0.1/24' }), /ENODEV/);
  r.netlink.addrReplace({ dev: 'vn1', address: '10.0.0.1/24' });
  r.netlink.linkSetUp('vn1');
  assert.throws(() => r.netlink.routeReplace({ dst: 'default', via: '192.0.2.1' }), /ENETUNREACH/, 'a gateway outside every connected prefix');
  r.netlink.routeReplace({ dst: 'default', via: '10.0.0.254', protocol: 'static' });
  assert.throws(() => r.netlink.routeReplace({ dst: '10.1.0.1/24', via: '10.0.0.254' }), /EINVAL/, 'host bits set');
  assert.throws(() => r.sysctlSet('net.ipv4.conf.nosuch.proxy_arp', 1), /ENOENT|No such file/);
  k.deleteNetns('r1');
  assert.is(h.linkFind('vh1'), undefined, 'the host end went with the namespace');
  assert.throws(() => r.netlink.linkList(), /deleted/);
});


test('createRouter on a kernel of the caller\'s (kernel option): every command and plan on it, nothing on the machine', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-fake-api-'));
  const k = new FakeKernel({ devices: ['eth1'] });
  const router = createRouter({ stateDir: dir, kernel: k });
  try {
    const plan = await router.plan('implement-network', { networkId: 77, vlan: 'vxlan://5077', gateway: '10.77.0.1', cidr: '10.77.0.0/24' });
    assert.ok(plan.changes.some((c) => c.kind === 'netns' && JSON.stringify(c).includes('cs-net-77')), 'the plan makes the namespace');
    assert.equal(k.namespaces(), [], 'a plan overlays the kernel: nothing made on it');
    await router.run('implement-network', { networkId: 77, vlan: 'vxlan://5077', gateway: '10.77.0.1', cidr: '10.77.0.0/24' });
    await router.run('assign-ip', { networkId: 77, publicIp: '203.0.113.77', sourceNat: true, ...pub });
    assert.equal(k.namespaces(), ['cs-net-77'], 'made on the kernel given');
    assert.not.ok(netnsExists('cs-net-77'), 'not on the machine');
    assert.equal(await elements(k, 'cs-net-77', 'snat_src'), [[{ prefix: { addr: '10.77.0.0', len: 24 } }, '203.0.113.77']]);
    await router.run('destroy-network', { networkId: 77 });
    assert.equal(k.namespaces(), []);
  } finally {
    await router.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
