/** Established flows stop when their NAT mapping goes; IPv6 and extension-IP plumbing. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { RouterEngine } from '../../lib/router/engine.js';
import { NetnsHandle } from '../../lib/netns/handle.js';
import { openIngress } from '../helpers/fw.js';
import { Scratch, addVm, simulatedHost, cidr, nsExec, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { runCommand } from '../../lib/router/command-table.js';

requireSandbox();

/** A UDP sink in `ns` counting datagrams on `port` (reads its count from a file it rewrites). */
function udpCounter(ns: string, port: number, file: string) {
  const js = `const d=require('dgram').createSocket('udp4');let n=0;d.on('message',()=>{n++;require('fs').writeFileSync(${JSON.stringify(file)},String(n))});d.bind(${port});`;
  return spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', js], { stdio: 'ignore' });
}
/** A UDP source in `ns` sending one datagram every 50 ms from a FIXED source port (one conntrack flow). */
function udpSender(ns: string, ip: string, port: number, sport: number) {
  const js = `const d=require('dgram').createSocket('udp4');d.bind(${sport},()=>setInterval(()=>d.send('x',${port},${JSON.stringify(ip)}),50));`;
  return spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', js], { stdio: 'ignore' });
}
const count = (file: string): number => { try { return Number(readFileSync(file, 'utf8')); } catch { return 0; } };

test('delete-port-forward and delete-static-nat cut established UDP flows (conntrack entries deleted)', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-flow-'));
  const id = String(4000 + Math.floor(Math.random() * 5000));
  const procs: Array<{ kill: () => void }> = [];
  try {
    const { hostNs, upNs, h } = simulatedHost(s);
    const ns = s.track(`cs-net-${id}`);
    const engine = new RouterEngine({ stateDir: join(dir, 'state'), hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    const net = { networkId: id, namespace: ns };
    await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni: 8000 + Number(id) % 1000 }, gateway: '10.8.0.1', cidr: cidr('10.8.0.0/24') });
    await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.80', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: true } });
    const vxBridge = h.netlink.linkList().find((l) => l.kind === 'bridge' && l.name.startsWith('brvx-'))!.name;
    const vm = addVm(s, h, vxBridge, '10.8.0.10/24', '10.8.0.1');
    const pf = { command: 'add-port-forward' as const, ...net, publicIp: { ip: '203.0.113.80', sourceNat: true }, publicPorts: { start: 5353, end: 5353 }, privateIp: '10.8.0.10', privatePorts: { start: 5353, end: 5353 }, protocol: 'udp' as const };
    await runCommand(engine, pf);
    await openIngress(engine, net, [{ ip: '203.0.113.80', protocol: 'udp', ports: [5353, 5353] }, { ip: '203.0.113.81', protocol: 'udp', ports: [6000, 6000] }]);
    const file = join(dir, 'count');
    procs.push(udpCounter(vm.ns, 5353, file));
    await new Promise((r) => setTimeout(r, 400));
    procs.push(udpSender(upNs, '203.0.113.80', 5353, 40001));
    assert.ok(await waitFor(() => count(file) >= 5, 5000), 'the flow reaches the VM through the port forward');
    await runCommand(engine, { ...pf, command: 'delete-port-forward' });
    await new Promise((r) => setTimeout(r, 300));
    const after = count(file);
    await new Promise((r) => setTimeout(r, 700));
    assert.ok(count(file) - after <= 1, `the established flow stopped (got ${count(file) - after} more datagrams)`);

    // the same for static NAT: re-pointing is covered by deletion + re-adding to another VM
    await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.81', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: false } });
    await runCommand(engine, { command: 'add-static-nat', ...net, publicIp: { ip: '203.0.113.81', sourceNat: false }, privateIp: '10.8.0.10' });
    const file2 = join(dir, 'count2');
    procs.push(udpCounter(vm.ns, 6000, file2));
    await new Promise((r) => setTimeout(r, 400));
    procs.push(udpSender(upNs, '203.0.113.81', 6000, 40002));
    assert.ok(await waitFor(() => count(file2) >= 5, 5000), 'the flow reaches the VM through static NAT');
    await runCommand(engine, { command: 'delete-static-nat', ...net, publicIp: { ip: '203.0.113.81', sourceNat: false } });
    await new Promise((r) => setTimeout(r, 300));
    const after2 = count(file2);
    await new Promise((r) => setTimeout(r, 700));
    assert.ok(count(file2) - after2 <= 1, `static NAT flow stopped (got ${count(file2) - after2} more)`);
  } finally {
    for (const p of procs) p.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('IPv6 gateway + forwarding when given, IPv6 off otherwise; extension IP with a default route via the gateway', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-v6-'));
  try {
    const { hostNs, h } = simulatedHost(s);
    const engine = new RouterEngine({ stateDir: join(dir, 'state'), hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    const a = s.track(`cs-net-${5000 + Math.floor(Math.random() * 999)}`);
    const idA = a.slice('cs-net-'.length);
    await runCommand(engine, { command: 'implement-network', networkId: idA, namespace: a, segment: { kind: 'vxlan', vni: 9500 }, gateway: '10.9.0.1', cidr: cidr('10.9.0.0/24'), ip6Gateway: 'fd00:9::1', ip6Cidr: { family: 6, address: 'fd00:9::', prefix: 64 } });
    const na = NetnsHandle.open(a);
    try {
      const dev = na.netlink.linkList().find((l) => l.name.startsWith('vn-'))!.name;
      const addrs = na.netlink.addrList({ dev }).map((x) => x.address);
      assert.ok(addrs.includes('fd00:9::1/64'), `IPv6 gateway address present: ${addrs}`);
      assert.is(na.sysctlGet('net.ipv6.conf.all.forwarding'), '1');
      const vm = addVm(s, h, 'brvx-9500', '10.9.0.5/24');
      nsExec(vm.ns, ['ip', '-6', 'addr', 'add', 'fd00:9::5/64', 'dev', 'eth0', 'nodad']);
      assert.ok(await waitFor(() => { try { nsExec(vm.ns, ['ping', '-6', '-c1', '-W1', 'fd00:9::1']); return true; } catch { return false; } }, 5000), 'VM pings the IPv6 gateway');
    } finally {
      na.close();
    }
    const b = s.track(`cs-net-${6000 + Math.floor(Math.random() * 999)}`);
    const idB = b.slice('cs-net-'.length);
    await runCommand(engine, { command: 'implement-network', networkId: idB, namespace: b, segment: { kind: 'vxlan', vni: 9501 }, gateway: '10.9.1.1', cidr: cidr('10.9.1.0/24'), extensionIp: '10.9.1.2' });
    const nb = NetnsHandle.open(b);
    try {
      const dev = nb.netlink.linkList().find((l) => l.name.startsWith('vn-'))!.name;
      assert.equal(nb.netlink.addrList({ dev, family: 4 }).map((x) => x.address), ['10.9.1.2/24'], 'the veth carries the extension IP');
      assert.is(nb.getConf('ipv6', dev, 'disable_ipv6'), '1', 'IPv6 off without an IPv6 network');
      const def = nb.netlink.routeList().find((r) => r.dst === 'default');
      assert.is(def?.via, '10.9.1.1', 'default route via the network gateway');
    } finally {
      nb.close();
    }
  } finally {
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
