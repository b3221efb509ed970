/** End to end through the library: a simulated KVM host, an upstream network and guest VMs; real packets. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../lib/util/errors.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { RouterEngine } from '../../lib/router/engine.js';
import { netnsExists } from '../../lib/netns/namespaces.js';
import { Scratch, addVm, ping, whoamiServer, tcpAsk, waitFor, simulatedHost as host, cidr } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { openIngress } from '../helpers/fw.js';
import { runCommand } from '../../lib/router/command-table.js';
import { rejected } from '../helpers/expect.js';

requireSandbox();

test('isolated network: source NAT, static NAT, port forwarding, release, shutdown/re-implement, destroy', async () => {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'nr-state-'));
  const id = String(1000 + Math.floor(Math.random() * 9000));
  const ns = s.track(`cs-net-${id}`);
  const servers: Array<{ kill: () => void }> = [];
  try {
    const { hostNs, upNs, h } = host(s);
    const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    const net = { networkId: id, namespace: ns };
    await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni: 7000 + Number(id) % 1000 }, gateway: '10.1.1.1', cidr: cidr('10.1.1.0/24') });
    const bridge = h.netlink.linkList().find((l) => l.kind === 'bridge' && l.name.startsWith('brvx-'))!.name;
    const vm1 = addVm(s, h, bridge, '10.1.1.10/24', '10.1.1.1');
    const vm2 = addVm(s, h, bridge, '10.1.1.11/24', '10.1.1.1');
    assert.ok(ping(vm1.ns, '10.1.1.1'), 'VM reaches the router');
    assert.not.ok(ping(vm1.ns, '203.0.113.1'), 'no public side yet');

    await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.10', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: true } });
    servers.push(whoamiServer(upNs, 9000));
    await waitFor(() => tcpAsk(upNs, '127.0.0.1', 9000) !== '');
    assert.is(tcpAsk(vm1.ns, '203.0.113.1', 9000), '203.0.113.10', 'source NAT: the peer sees the public IP');

    await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.11', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: false } });
    await runCommand(engine, { command: 'add-static-nat', ...net, publicIp: { ip: '203.0.113.11', sourceNat: false }, privateIp: '10.1.1.11' });
    assert.is(tcpAsk(vm2.ns, '203.0.113.1', 9000), '203.0.113.11', 'static NAT egress uses its public IP');
    servers.push(whoamiServer(vm2.ns, 22));
    await waitFor(() => tcpAsk(vm2.ns, '127.0.0.1', 22) !== '');
    assert.is(tcpAsk(upNs, '203.0.113.11', 22), '', 'static NAT ingress closed until a firewall rule opens it');
    await openIngress(engine, net, [{ ip: '203.0.113.11', protocol: 'tcp', ports: [22, 22] }, { ip: '203.0.113.10', protocol: 'tcp', ports: [80, 80] }]);
    assert.is(tcpAsk(upNs, '203.0.113.11', 22), '203.0.113.1', 'static NAT ingress reaches the VM');
    // a second static NAT for the same VM is a usage error (exit 1), not a kernel failure, and changes nothing
    await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.12', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: false } });
    await rejected(runCommand(engine, { command: 'add-static-nat', ...net, publicIp: { ip: '203.0.113.12', sourceNat: false }, privateIp: '10.1.1.11' }), UsageError,
      { argument: 'private-ip', message: /already has static NAT to 203\.0\.113\.11/ });
    // nor on the source NAT address (the other VMs leave with it)
    await rejected(runCommand(engine, { command: 'add-static-nat', ...net, publicIp: { ip: '203.0.113.10', sourceNat: true }, privateIp: '10.1.1.10' }), UsageError,
      { argument: 'public-ip', message: /is the source NAT address/ });
    await runCommand(engine, { command: 'release-ip', ...net, publicIp: { ip: '203.0.113.12', sourceNat: false } });
    assert.is(engine.store.load(ns)!.staticNats.length, 1);
    assert.is(tcpAsk(vm2.ns, '203.0.113.1', 9000), '203.0.113.11', 'unchanged');

    servers.push(whoamiServer(vm1.ns, 8080));
    await waitFor(() => tcpAsk(vm1.ns, '127.0.0.1', 8080) !== '');
    await runCommand(engine, { command: 'add-port-forward', ...net, publicIp: { ip: '203.0.113.10', sourceNat: true }, publicPorts: { start: 80, end: 80 }, privateIp: '10.1.1.10', privatePorts: { start: 8080, end: 8080 }, protocol: 'tcp' });
    assert.is(tcpAsk(upNs, '203.0.113.10', 80), '203.0.113.1', 'port forward 80 → 10.1.1.10:8080');
    // idempotent: the same command again changes nothing and keeps working
    await runCommand(engine, { command: 'add-port-forward', ...net, publicIp: { ip: '203.0.113.10', sourceNat: true }, publicPorts: { start: 80, end: 80 }, privateIp: '10.1.1.10', privatePorts: { start: 8080, end: 8080 }, protocol: 'tcp' });
    assert.is(engine.store.load(ns)!.portForwards.length, 1);
    assert.is(tcpAsk(upNs, '203.0.113.10', 80), '203.0.113.1');

    await runCommand(engine, { command: 'delete-port-forward', ...net, publicIp: { ip: '203.0.113.10', sourceNat: true }, publicPorts: { start: 80, end: 80 }, privateIp: '10.1.1.10', privatePorts: { start: 8080, end: 8080 }, protocol: 'tcp' });
    assert.is(tcpAsk(upNs, '203.0.113.10', 80), '', 'deleted port forward stops');

    // a port range to other ports lands one to one (a DNAT to a port range would send every connection to the
    // range's first free port), and a range to one port lands all on it
    for (const p of [9100, 9101, 9102]) servers.push(spawn('ip', ['netns', 'exec', vm1.ns, 'socat', `TCP-LISTEN:${p},fork,reuseaddr`, `SYSTEM:echo port${p}`], { stdio: 'ignore' }));
    await waitFor(() => [9100, 9101, 9102].every((p) => tcpAsk(vm1.ns, '127.0.0.1', p) !== ''));
    await openIngress(engine, net, [{ ip: '203.0.113.11', protocol: 'tcp', ports: [22, 22] }, { ip: '203.0.113.10', protocol: 'tcp', ports: [8100, 8201] }]);
    const range = (pub: [number, number], priv: [number, number]) => ({ command: 'add-port-forward' as const, ...net, publicIp: { ip: '203.0.113.10', sourceNat: true }, publicPorts: { start: pub[0], end: pub[1] }, privateIp: '10.1.1.10', privatePorts: { start: priv[0], end: priv[1] }, protocol: 'tcp' as const });
    await runCommand(engine, range([8100, 8102], [9100, 9102]));
    await runCommand(engine, range([8200, 8201], [9101, 9101]));
    assert.equal([8102, 8100, 8101].map((p) => tcpAsk(upNs, '203.0.113.10', p)), ['port9102', 'port9100', 'port9101'], 'each public port to its own private port');
    assert.equal([8201, 8200].map((p) => tcpAsk(upNs, '203.0.113.10', p)), ['port9101', 'port9101'], 'a range to one port');
    await runCommand(engine, { ...range([8100, 8102], [9100, 9102]), command: 'delete-port-forward' });
    await runCommand(engine, { ...range([8200, 8201], [9101, 9101]), command: 'delete-port-forward' });
    assert.is(tcpAsk(upNs, '203.0.113.10', 8101), '', 'deleted range stops');

    await runCommand(engine, { command: 'release-ip', ...net, publicIp: { ip: '203.0.113.11', sourceNat: false } });
    assert.is(tcpAsk(upNs, '203.0.113.11', 22), '', 'released IP no longer reaches the VM');
    assert.is(tcpAsk(vm2.ns, '203.0.113.1', 9000), '203.0.113.10', 'after release, egress falls back to source NAT');

    await runCommand(engine, { command: 'shutdown-network', ...net });
    assert.not.ok(netnsExists(ns), 'shutdown removes the namespace');
    assert.ok(engine.store.load(ns), 'and keeps the state');
    await runCommand(engine, { command: 'implement-network', ...net });
    assert.ok(ping(vm1.ns, '10.1.1.1'));
    assert.is(tcpAsk(vm1.ns, '203.0.113.1', 9000), '203.0.113.10', 're-implement restores public IP and source NAT');

    await runCommand(engine, { command: 'destroy-network', ...net });
    assert.not.ok(netnsExists(ns));
    assert.is(engine.store.load(ns), undefined, 'destroy removes the state');
    assert.ok(!h.netlink.linkList().some((l) => l.name.startsWith('vh-') || l.name.startsWith('vph-')), 'no veth left on the host');
  } finally {
    for (const p of servers) p.kill();
    s.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('VPC: two tiers share one namespace and route between them; source NAT moves with update-vpc-source-nat-ip', async () => {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'nr-state-'));
  const vpcId = String(100 + Math.floor(Math.random() * 800));
  const ns = s.track(`cs-vpc-${vpcId}`);
  const servers: Array<{ kill: () => void }> = [];
  try {
    const { hostNs, upNs, h } = host(s);
    const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    await runCommand(engine, { command: 'implement-vpc', vpcId, namespace: ns, vpcCidr: cidr('10.10.0.0/16'), publicIp: { ip: '203.0.113.20', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: true } });
    await runCommand(engine, { command: 'implement-network', networkId: '11', vpcId, namespace: ns, segment: { kind: 'vxlan', vni: 9101 }, gateway: '10.10.1.1', cidr: cidr('10.10.1.0/24') });
    await runCommand(engine, { command: 'implement-network', networkId: '12', vpcId, namespace: ns, segment: { kind: 'vxlan', vni: 9102 }, gateway: '10.10.2.1', cidr: cidr('10.10.2.0/24') });
    const a = addVm(s, h, 'brvx-9101', '10.10.1.10/24', '10.10.1.1');
    const b = addVm(s, h, 'brvx-9102', '10.10.2.10/24', '10.10.2.1');
    assert.ok(ping(a.ns, '10.10.2.10'), 'tier 1 reaches tier 2 through the VPC router');
    servers.push(whoamiServer(upNs, 9000));
    await waitFor(() => tcpAsk(upNs, '127.0.0.1', 9000) !== '');
    assert.is(tcpAsk(b.ns, '203.0.113.1', 9000), '203.0.113.20');
    await runCommand(engine, { command: 'update-vpc-source-nat-ip', vpcId, namespace: ns, publicIp: { ip: '203.0.113.21', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: true } });
    assert.is(tcpAsk(b.ns, '203.0.113.1', 9000), '203.0.113.21', 'egress moved to the new source NAT IP');
    const m = engine.store.load(ns)!;
    assert.is(Object.values(m.publicIps).filter((p) => p.sourceNat).length, 1, 'exactly one source NAT IP');
    await runCommand(engine, { command: 'destroy-network', networkId: '11', vpcId, namespace: ns });
    assert.ok(netnsExists(ns), 'destroying a tier keeps the VPC namespace');
    assert.not.ok(ping(a.ns, '10.10.1.1'));
    assert.ok(ping(b.ns, '10.10.2.1'));
    await runCommand(engine, { command: 'destroy-vpc', vpcId, namespace: ns });
    assert.not.ok(netnsExists(ns));
  } finally {
    for (const p of servers) p.kill();
    s.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test.run();
