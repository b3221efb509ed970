// The router over 802.1Q for real (qemu lane only: the development kernel has no 8021q): guest VLAN 100 and
// public VLAN 200 on the host's eth1 trunk; a VM tagged on VLAN 100 reaches its gateway and, through source
// NAT on the tagged public VLAN, an upstream peer; shutdown/destroy leave the shared VLAN devices in place.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterEngine } from '../../lib/router/engine.js';
import { netnsExists } from '../../lib/netns/namespaces.js';
import { Scratch, nsTry, whoamiServer, tcpAsk, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { runCommand } from '../../lib/router/command-table.js';
import { rejected } from '../helpers/expect.js';

requireSandbox();

const cidr = (s: string) => { const [address, p] = s.split('/'); return { family: 4 as const, address, prefix: Number(p) }; };
const pings = (ns: string, ip: string) => nsTry(ns, ['ping', '-n', '-c', '3', '-W', '2', '-i', '0.3', ip], 20_000).status === 0;

test('router on 802.1Q guest and public VLANs: gateway, source NAT, port forward, teardown', async () => {
  assert.ok(existsSync('/proc/net/vlan/config'), '8021q present (this lane exists for it)');
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-vlan-'));
  const procs: Array<{ kill: () => void }> = [];
  try {
    const hostNs = s.ns('host');
    const trunkNs = s.ns('trunk'); // the switch side of the host's eth1 trunk
    const vmNs = s.ns('vm'); // holds the VLAN 100 sub-interface: a tagged VM
    const upNs = s.ns('up'); // holds the VLAN 200 sub-interface: the upstream gateway
    const h = s.handle(hostNs);
    h.netlink.linkAdd({ kind: 'veth', name: 'eth1', up: true, peer: { name: 'sw0', namespace: { netns: trunkNs }, up: true } });
    const t = s.handle(trunkNs);
    t.netlink.linkAdd({ kind: 'vlan', name: 'vm100', parent: 'sw0', id: 100, namespace: { netns: vmNs } });
    t.netlink.linkAdd({ kind: 'vlan', name: 'up200', parent: 'sw0', id: 200, namespace: { netns: upNs } });
    const vm = s.handle(vmNs);
    vm.netlink.linkSetUp('lo');
    vm.netlink.linkSetUp('vm100');
    vm.netlink.addrAdd({ dev: 'vm100', address: '10.100.0.10/24' });
    vm.netlink.routeReplace({ dst: 'default', via: '10.100.0.1' });
    const up = s.handle(upNs);
    up.netlink.linkSetUp('lo');
    up.netlink.linkSetUp('up200');
    up.netlink.addrAdd({ dev: 'up200', address: '198.18.0.1/24' });

    const engine = new RouterEngine({ stateDir: join(dir, 'state'), hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    const net = { networkId: '77', namespace: s.track('cs-net-77') };
    await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vlan', id: 100 }, gateway: '10.100.0.1', cidr: cidr('10.100.0.0/24') });
    const sub = h.netlink.linkGet('eth1.100');
    assert.is(sub.kind, 'vlan');
    assert.is((sub as { id: number }).id, 100);
    assert.is(sub.master, 'breth1-100');
    assert.ok(pings(vmNs, '10.100.0.1'), 'tagged VM reaches its gateway');

    await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '198.18.0.50', segment: { kind: 'vlan', id: 200 }, gateway: '198.18.0.1', cidr: cidr('198.18.0.0/24'), sourceNat: true } });
    assert.is(h.netlink.linkGet('eth1.200').master, 'breth1-200');
    procs.push(whoamiServer(upNs, 9000));
    await waitFor(() => tcpAsk(upNs, '127.0.0.1', 9000) !== '');
    assert.is(tcpAsk(vmNs, '198.18.0.1', 9000), '198.18.0.50', 'tagged VM → tagged upstream through source NAT');
    procs.push(whoamiServer(vmNs, 8080));
    await waitFor(() => tcpAsk(vmNs, '127.0.0.1', 8080) !== '');
    await runCommand(engine, { command: 'add-port-forward', ...net, publicIp: { ip: '198.18.0.50', sourceNat: true }, publicPorts: { start: 80, end: 80 }, privateIp: '10.100.0.10', privatePorts: { start: 8080, end: 8080 }, protocol: 'tcp' });
    await runCommand(engine, { command: 'apply-fw-rules', ...net, fwRules: { source: 'test', value: { rules: [{ type: 'ingress', protocol: 'tcp', portStart: 80, publicIp: '198.18.0.50' }] } } });
    assert.is(tcpAsk(upNs, '198.18.0.50', 80), '198.18.0.1', 'port forward across the VLANs');

    await runCommand(engine, { command: 'shutdown-network', ...net });
    assert.not.ok(netnsExists('cs-net-77'));
    assert.ok(h.netlink.linkFind('eth1.100'), 'VLAN sub-interfaces stay');
    await runCommand(engine, { command: 'implement-network', ...net });
    assert.ok(pings(vmNs, '10.100.0.1'), 're-implemented over the same VLAN');
    await runCommand(engine, { command: 'destroy-network', ...net });
    assert.not.ok(netnsExists('cs-net-77'));
  } finally {
    for (const p of procs) p.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('L2 network on an 802.1Q VLAN: VLAN device and bridge only, marked as ours; a tagged host reaches a VM on it; destroy removes both', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-vlan-l2-'));
  try {
    const hostNs = s.ns('host');
    const trunkNs = s.ns('trunk');
    const peerNs = s.ns('peer'); // a tagged machine on VLAN 300 beyond the trunk
    const h = s.handle(hostNs);
    h.netlink.linkAdd({ kind: 'veth', name: 'eth1', up: true, peer: { name: 'sw0', namespace: { netns: trunkNs }, up: true } });
    s.handle(trunkNs).netlink.linkAdd({ kind: 'vlan', name: 'p300', parent: 'sw0', id: 300, namespace: { netns: peerNs } });
    const peer = s.handle(peerNs);
    peer.netlink.linkSetUp('lo');
    peer.netlink.linkSetUp('p300');
    peer.netlink.addrAdd({ dev: 'p300', address: '10.30.0.20/24' });

    const engine = new RouterEngine({ stateDir: join(dir, 'state'), hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    const net = { networkId: '78', namespace: s.track('cs-net-78'), guestType: 'l2' as const, segment: { kind: 'vlan' as const, id: 300 } };
    await runCommand(engine, { command: 'implement-network', ...net });
    const sub = h.netlink.linkGet('eth1.300');
    assert.equal([sub.kind, (sub as { id: number }).id, sub.master, sub.alias], ['vlan', 300, 'breth1-300', 'netns-router:l2 78 vlan://300 eth1']);
    assert.is(h.netlink.linkGet('breth1-300').alias, 'netns-router:l2 78 vlan://300 eth1');
    assert.not.ok(netnsExists('cs-net-78'), 'no router namespace for an L2 network');
    // a VM on the host bridge
    const vmNs = s.ns('vm');
    h.netlink.linkAdd({ kind: 'veth', name: 'tvm78', master: 'breth1-300', up: true, peer: { name: 'eth0', namespace: { netns: vmNs }, up: true } });
    const vm = s.handle(vmNs);
    vm.netlink.linkSetUp('lo');
    vm.netlink.addrAdd({ dev: 'eth0', address: '10.30.0.10/24' });
    assert.ok(pings(peerNs, '10.30.0.10'), 'tagged peer → VM through eth1.300 and the bridge');
    h.netlink.linkDel('tvm78');
    await runCommand(engine, { command: 'destroy-network', ...net });
    assert.not.ok(h.netlink.linkFind('breth1-300'), 'bridge removed');
    assert.not.ok(h.netlink.linkFind('eth1.300'), 'VLAN device removed');
    assert.ok(h.netlink.linkFind('eth1'), 'the trunk stays');
  } finally {
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('802.1Q ownership: a VLAN the kernel already holds under another name is used as is; a misnamed device and upstream\'s double name are refused', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-vlan-own-'));
  try {
    const hostNs = s.ns('host');
    const trunkNs = s.ns('trunk');
    const h = s.handle(hostNs);
    h.netlink.linkAdd({ kind: 'veth', name: 'eth1', up: true, peer: { name: 'sw0', namespace: { netns: trunkNs }, up: true } });
    const t = s.handle(trunkNs);
    const taggedVm = (id: number, ip: string, gw: string): string => {
      const ns = s.ns(`v${id}`);
      t.netlink.linkAdd({ kind: 'vlan', name: `t${id}`, parent: 'sw0', id, namespace: { netns: ns } });
      const v = s.handle(ns);
      v.netlink.linkSetUp('lo');
      v.netlink.linkSetUp(`t${id}`);
      v.netlink.addrAdd({ dev: `t${id}`, address: ip });
      v.netlink.routeReplace({ dst: 'default', via: gw });
      return ns;
    };
    const engine = new RouterEngine({ stateDir: join(dir, 'state'), hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    const implement = (id: string, vlan: number, octet: number) => runCommand(engine, {
      command: 'implement-network', networkId: id, namespace: s.track(`cs-net-${id}`), segment: { kind: 'vlan', id: vlan },
      gateway: `10.${octet}.0.1`, cidr: cidr(`10.${octet}.0.0/24`),
    });

    // the KVM agent's VLAN 300 under its own names: vlan300 in cloudbr300
    h.netlink.linkAdd({ kind: 'bridge', name: 'cloudbr300', up: true });
    h.netlink.linkAdd({ kind: 'vlan', name: 'vlan300', parent: 'eth1', id: 300, master: 'cloudbr300', up: true });
    await implement('30', 300, 30);
    assert.is(h.netlink.linkFind('eth1.300'), undefined, 'no second device for VLAN 300 (the kernel would refuse it)');
    assert.is(h.netlink.linkFind('breth1-300'), undefined, 'the agent\'s bridge is the segment\'s bridge');
    assert.is(h.netlink.linkGet('vlan300').alias, undefined, 'the agent\'s device is not marked');
    assert.ok(pings(taggedVm(300, '10.30.0.10/24', '10.30.0.1'), '10.30.0.1'), 'a VM on VLAN 300 reaches the router');

    // VLAN 302 held by a device in no bridge: it joins a bridge of ours
    h.netlink.linkAdd({ kind: 'vlan', name: 'agent302', parent: 'eth1', id: 302, up: true });
    await implement('32', 302, 32);
    assert.is(h.netlink.linkGet('agent302').master, 'breth1-302');
    assert.ok(pings(taggedVm(302, '10.32.0.10/24', '10.32.0.1'), '10.32.0.1'));

    // eth1.301 is a VLAN 999 device: not ours to change, and VLAN 301 cannot be made under its name
    h.netlink.linkAdd({ kind: 'vlan', name: 'eth1.301', parent: 'eth1', id: 999 });
    await rejected(implement('31', 301, 31), Error, { message: /host link "eth1\.301" is a VLAN 999 device on eth1, not the vlan:\/\/301 device on eth1/ });
    assert.is((h.netlink.linkGet('eth1.301') as { id: number }).id, 999);

    // network 8 and VPC 8 on public VLAN 200: upstream names both vph-200-8; the second is refused
    const up = taggedVm(200, '198.18.0.1/24', '198.18.0.254');
    const n8 = { networkId: '8', namespace: s.track('cs-net-8') };
    await implement('8', 108, 108);
    await runCommand(engine, { command: 'assign-ip', ...n8, publicIp: { ip: '198.18.0.8', segment: { kind: 'vlan', id: 200 }, gateway: '198.18.0.1', cidr: cidr('198.18.0.0/24'), sourceNat: true } });
    // public IPs of an isolated network are closed until a firewall rule opens them
    await runCommand(engine, { command: 'apply-fw-rules', ...n8, fwRules: { source: 'test', value: { rules: [{ type: 'ingress', protocol: 'icmp', publicIp: '198.18.0.8' }] } } });
    assert.ok(pings(up, '198.18.0.8'));
    await rejected(runCommand(engine, {
      command: 'implement-vpc', vpcId: '8', namespace: s.track('cs-vpc-8'), vpcCidr: cidr('10.88.0.0/16'),
      publicIp: { ip: '198.18.0.88', segment: { kind: 'vlan', id: 200 }, gateway: '198.18.0.1', cidr: cidr('198.18.0.0/24'), sourceNat: true },
    }), Error, { message: /host link "vph-200-8" \(needed by cs-vpc-8 for public vlan:\/\/200 eth1\) belongs to router cs-net-8/ });
    assert.ok(pings(up, '198.18.0.8'), 'network 8 keeps its public interface');
  } finally {
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
