import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyPlumbing, removeRouterNamespace } from '../../lib/router/plumbing.js';
import { realKernel } from '../../lib/router/kernel.js';

const kernel = realKernel();
import type { PlumbingPlan } from '../../lib/router/plumbing-plan.js';
import { netnsExists } from '../../lib/netns/namespaces.js';
import { Scratch, addVm, ping, uid } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();

function topology(s: Scratch) {
  const hostNs = s.ns('host');
  const upNs = s.ns('up');
  const host = s.handle(hostNs);
  // the host's physical uplinks: eth1 (public) is a veth to the upstream namespace, eth0 carries guests
  host.netlink.linkAdd({ kind: 'veth', name: 'eth1', up: true, peer: { name: 'up0', namespace: { netns: upNs }, up: true } });
  host.netlink.linkAdd({ kind: 'veth', name: 'eth0', up: true, peer: { name: 'eth0peer', up: true } });
  const up = s.handle(upNs);
  up.netlink.linkSetUp('lo');
  up.netlink.addrAdd({ dev: 'up0', address: '203.0.113.1/24' });
  return { hostNs, upNs, host, up };
}

test('plumbing: untagged guest + public attachment, real pings, idempotent, stale removal', async () => {
  const s = new Scratch();
  const router = s.track(`cs-net-t${uid(6)}`);
  try {
    const { host, upNs } = topology(s);
    const plan: PlumbingPlan = {
      netns: router,
      attachments: [
        { hostDev: 'eth0', segment: { kind: 'untagged' }, segmentDev: 'eth0', bridge: 'breth0-u', hostVeth: 'vh-u-1', nsVeth: 'vn-u-1', addresses: ['10.1.1.1/24'], disableIpv6: true },
        { hostDev: 'eth1', segment: { kind: 'untagged' }, segmentDev: 'eth1', bridge: 'breth1-u', hostVeth: 'vph-u-1', nsVeth: 'vpn-u-1', addresses: ['203.0.113.10/24'], disableIpv6: true, garp: ['203.0.113.10'] },
      ],
      routes: [{ dst: 'default', via: '203.0.113.1', dev: 'vpn-u-1' }],
      sysctls: { 'net.ipv4.ip_forward': 1 },
    };
    const r1 = applyPlumbing(kernel, host, plan);
    assert.ok(r1.createdNetns);
    assert.ok(netnsExists(router));
    const vm = addVm(s, host, 'breth0-u', '10.1.1.50/24', '10.1.1.1');
    assert.ok(ping(vm.ns, '10.1.1.1'), 'VM reaches its gateway');
    assert.ok(ping(router, '203.0.113.1'), 'router reaches the upstream gateway');
    assert.ok(ping(upNs, '203.0.113.10'), 'upstream reaches the public address');

    const r2 = applyPlumbing(kernel, host, plan);
    assert.equal(r2.links, [], 'second apply creates nothing');
    assert.equal(r2.addressesAdded, [], 'nothing re-added');
    assert.equal(r2.addressesRemoved, []);
    assert.equal(r2.routesRemoved, []);

    // drop the public attachment: its veth and route go, the guest side stays
    const plan2: PlumbingPlan = { ...plan, attachments: [plan.attachments[0]], routes: [] };
    const r3 = applyPlumbing(kernel, host, plan2);
    assert.ok(r3.links.some((l) => l.name === 'vpn-u-1' && l.action === 'deleted'));
    assert.equal(host.netlink.linkFind('vph-u-1'), undefined, 'host end removed with its peer');
    assert.ok(ping(vm.ns, '10.1.1.1'));
    assert.not.ok(ping(router, '203.0.113.1'));

    await removeRouterNamespace(kernel, router, plan2.attachments);
    assert.not.ok(netnsExists(router));
    assert.equal(host.netlink.linkFind('vh-u-1'), undefined);
    assert.ok(host.netlink.linkFind('breth0-u'), 'host bridges stay');
  } finally {
    s.cleanup();
  }
});

test('plumbing: vxlan segment and recovery from a half-applied state', () => {
  const s = new Scratch();
  const router = s.track(`cs-net-t${uid(6)}`);
  try {
    const { host } = topology(s);
    const plan: PlumbingPlan = {
      netns: router,
      attachments: [{ hostDev: 'eth0', segment: { kind: 'vxlan', vni: 5001 }, segmentDev: 'vxlan5001', bridge: 'breth0-5001', hostVeth: 'vh-5001-2', nsVeth: 'vn-5001-2', nsMac: '02:00:00:50:01:02', addresses: ['10.2.0.1/24'], disableIpv6: false }],
      routes: [],
      sysctls: { 'net.ipv4.ip_forward': 1 },
    };
    applyPlumbing(kernel, host, plan);
    const vx = host.netlink.linkGet('vxlan5001');
    assert.is(vx.kind, 'vxlan');
    assert.is((vx as { vni: number }).vni, 5001);
    assert.is(vx.master, 'breth0-5001');
    const mark = host.netlink.linkGet('vh-5001-2').alias!;
    assert.match(mark, `netns-router:router ${router} `, 'the host end carries the router\'s mark');
    // a host end of ours that lost its peer (marked, paired with something else) is replaced
    host.netlink.linkDel('vh-5001-2');
    host.netlink.linkAdd({ kind: 'veth', name: 'vh-5001-2', alias: mark, peer: { name: 'junk-peer' } });
    applyPlumbing(kernel, host, plan);
    const vm = addVm(s, host, 'breth0-5001', '10.2.0.9/24');
    assert.ok(ping(vm.ns, '10.2.0.1'), 'converged after the leftover host end was replaced');
    assert.equal(host.netlink.linkFind('junk-peer'), undefined);
    // interrupted between making the pair and marking it: the unmarked host end is the peer of our end
    const ns = s.handle(router);
    host.netlink.linkSet('vh-5001-2', { alias: '' });
    ns.netlink.linkSet('vn-5001-2', { alias: '' });
    const idx = host.netlink.linkGet('vh-5001-2').index;
    applyPlumbing(kernel, host, plan);
    assert.is(host.netlink.linkGet('vh-5001-2').index, idx, 'kept, not re-made');
    assert.is(host.netlink.linkGet('vh-5001-2').alias, mark, 'and marked');
    // a namespace end whose peer is not on the host (both ends inside the namespace) is replaced
    host.netlink.linkDel('vh-5001-2');
    ns.netlink.linkAdd({ kind: 'veth', name: 'vh-5001-2', peer: { name: 'vn-5001-2' } });
    applyPlumbing(kernel, host, plan);
    assert.equal(ns.netlink.linkFind('vh-5001-2'), undefined, 'the pair inside the namespace is gone');
    assert.ok(ping(vm.ns, '10.2.0.1'), 'converged');
    // an unmarked link of the same name (not ours) is refused and left alone
    host.netlink.linkDel('vh-5001-2');
    host.netlink.linkAdd({ kind: 'veth', name: 'vh-5001-2', peer: { name: 'other-peer' } });
    assert.throws(() => applyPlumbing(kernel, host, plan), /host link "vh-5001-2" .*no netns-router mark/);
    assert.ok(host.netlink.linkFind('other-peer'), 'the foreign pair is untouched');
  } finally {
    s.cleanup();
  }
});

test.run();
