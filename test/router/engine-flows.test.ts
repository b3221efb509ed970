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
import { Scratch, addVm, simulatedHost, cidr, nsExec, nsTry, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { runCommand } from '../../lib/router/command-table.js';

requireSandbox();

/** A UDP sink in `ns` counting datagrams on `port` (reads its count from a file it rewrites). */
function udpCounter(ns: string, port: number, file: string) {
  const js = `const d=require('dgram').createSocket('udp4');let n=0;d.on('message',()=>{n++;require('fs').writeFileSync(${JSON.stringify(file)},String(n))});d.bind(${port});`;
  return spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', js], { stdio: 'ignore' });
}
/** A UDP source in `ns` sending one datagram every `everyMs` from a FIXED source port (one conntrack flow). */
function udpSender(ns: string, ip: string, port: number, sport: number, everyMs = 50) {
  const js = `const d=require('dgram').createSocket('udp4');d.bind(${sport},()=>setInterval(()=>d.send('x',${port},${JSON.stringify(ip)}),${everyMs}));`;
  return spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', js], { stdio: 'ignore' });
}
const count = (file: string): number => { try { return Number(readFileSync(file, 'utf8')); } catch { return 0; } };

/**
 * An isolated network (10.8.0.0/24, source NAT on 203.0.113.80) with a VM at 10.8.0.10 behind a simulated host and
 * upstream; `body` runs with them, its processes killed and everything removed after.
 */
async function withNatRouter(body: (t: {
  s: Scratch; dir: string; engine: RouterEngine; net: { networkId: string; namespace: string }; ns: string; upNs: string;
  h: ReturnType<typeof simulatedHost>['h']; vxBridge: string; vm: { ns: string }; procs: Array<{ kill: () => void }>;
}) => Promise<void>): Promise<void> {
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
    await body({ s, dir, engine, net, ns, upNs, h, vxBridge, vm, procs });
  } finally {
    for (const p of procs) p.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('delete-port-forward and delete-static-nat cut established UDP flows (conntrack entries deleted)', async () => {
  await withNatRouter(async ({ dir, engine, net, upNs, vm, procs }) => {
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
  });
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


/** A UDP server in `ns` on `port` that counts datagrams (into `file`) and also sends to its last peer every 100 ms,
 *  unasked (a WireGuard or RTP endpoint does): after its port forward goes, its sends must not reopen the flow. */
function chattyUdpServer(ns: string, port: number, file: string) {
  const js = `const d=require('dgram').createSocket('udp4');let n=0,peer;d.on('message',(m,r)=>{n++;peer=r;require('fs').writeFileSync(${JSON.stringify(file)},String(n))});setInterval(()=>{if(peer)d.send('k',peer.port,peer.address)},100);d.bind(${port});`;
  return spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', js], { stdio: 'ignore' });
}
/** A TCP server in `ns` on `port` that counts bytes received (into `file`) and writes to its client every 100 ms. */
function chattyTcpServer(ns: string, port: number, file: string) {
  const js = `let n=0;require('net').createServer((c)=>{c.on('data',(b)=>{n+=b.length;require('fs').writeFileSync(${JSON.stringify(file)},String(n))});c.on('error',()=>{});const t=setInterval(()=>c.write('k'),100);c.on('close',()=>clearInterval(t))}).listen(${port});`;
  return spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', js], { stdio: 'ignore' });
}
/** A TCP client in `ns` writing to ip:port every `everyMs` on one connection (errors ignored). */
function tcpWriter(ns: string, ip: string, port: number, everyMs: number) {
  const js = `const c=require('net').connect(${port},${JSON.stringify(ip)});c.on('error',()=>{});c.on('data',()=>{});setInterval(()=>c.write('x'),${everyMs});`;
  return spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', js], { stdio: 'ignore' });
}

type NatRouter = Parameters<Parameters<typeof withNatRouter>[0]>[0];
const equalPortForward = (net: NatRouter['net'], protocol: 'udp' | 'tcp', port: number) => ({ command: 'add-port-forward' as const, ...net, publicIp: { ip: '203.0.113.80', sourceNat: true }, publicPorts: { start: port, end: port }, privateIp: '10.8.0.10', privatePorts: { start: port, end: port }, protocol });
const guardDrops = (ns: string, proto: string): RegExpExecArray | null =>
  new RegExp(`counter packets (\\d+) bytes \\d+ drop comment "${proto} flow of a removed NAT mapping`).exec(nsExec(ns, ['nft', 'list', 'table', 'inet', 'netns_router']));

/**
 * Forwards of UDP 5454 and TCP 8022 with equal ports on the source NAT address to a guest that keeps sending on
 * its own, clients that speak once a second; both forwards deleted, and checked: neither flow reaches the guest
 * for 3 s while it keeps sending, each held by its guard. Returns the guest's counter files.
 */
async function cutEqualPortForwards({ dir, engine, net, ns, upNs, vm, procs }: NatRouter): Promise<{ udpFile: string; tcpFile: string }> {
  const pf = (protocol: 'udp' | 'tcp', port: number) => equalPortForward(net, protocol, port);
  await runCommand(engine, pf('udp', 5454));
  await runCommand(engine, pf('tcp', 8022));
  await openIngress(engine, net, [{ ip: '203.0.113.80', protocol: 'udp', ports: [5454, 5454] }, { ip: '203.0.113.80', protocol: 'tcp', ports: [8022, 8022] }]);
  const udpFile = join(dir, 'udp');
  const tcpFile = join(dir, 'tcp');
  procs.push(chattyUdpServer(vm.ns, 5454, udpFile), chattyTcpServer(vm.ns, 8022, tcpFile));
  await new Promise((r) => setTimeout(r, 400));
  // clients that speak once a second (a keepalive, a user reading output), a guest that speaks ten times a second:
  // after the deletion the guest's sends come first, and the flow they would start has the old one's reply tuple
  procs.push(udpSender(upNs, '203.0.113.80', 5454, 40003, 1000), tcpWriter(upNs, '203.0.113.80', 8022, 1000));
  // the control: both flows reach the guest through the forwards
  assert.ok(await waitFor(() => count(udpFile) >= 2 && count(tcpFile) >= 2, 5000), `both flows reach the VM (udp ${count(udpFile)}, tcp ${count(tcpFile)})`);
  await runCommand(engine, { ...pf('udp', 5454), command: 'delete-port-forward' });
  await runCommand(engine, { ...pf('tcp', 8022), command: 'delete-port-forward' });
  // the guest keeps sending; its sends must not start flows whose replies are the old ones
  await new Promise((r) => setTimeout(r, 300));
  const [udp0, tcp0] = [count(udpFile), count(tcpFile)];
  await new Promise((r) => setTimeout(r, 3000));
  const flows = nsTry(ns, ['conntrack', '-L']).stdout.trim();
  assert.ok(count(udpFile) - udp0 <= 1, `the UDP flow stayed cut (got ${count(udpFile) - udp0} more datagrams); entries:\n${flows}`);
  assert.ok(count(tcpFile) - tcp0 <= 1, `the TCP flow stayed cut (got ${count(tcpFile) - tcp0} more bytes); entries:\n${flows}`);
  // what held them: the guards of the flows' reverses, each dropping the guest's sends (the nft counters)
  const guards = nsExec(ns, ['nft', 'list', 'table', 'inet', 'netns_router']);
  assert.match(guards, /set nat_gone_udp \{[^}]*10\.8\.0\.10 \. 5454 \. 203\.0\.113\.1 \. 40003/, 'the UDP flow\'s reverse is guarded');
  assert.match(guards, /set nat_gone_tcp \{[^}]*10\.8\.0\.10 \. 8022 \. 203\.0\.113\.1 \. \d+/, 'the TCP flow\'s reverse is guarded');
  for (const proto of ['tcp', 'udp']) {
    const dropped = guardDrops(ns, proto);
    assert.ok(dropped && Number(dropped[1]) > 0, `the guest's ${proto} sends were dropped by the guard: ${dropped?.[0]}`);
  }
  return { udpFile, tcpFile };
}

test('a removed port forward with equal ports on the source NAT address stays cut while the guest keeps sending (no flow restarted through source NAT)', async () => {
  await withNatRouter(async (t) => {
    const { s, dir, engine, net, h, vxBridge, procs } = t;
    const { udpFile } = await cutEqualPortForwards(t);
    const pf = (protocol: 'udp' | 'tcp', port: number) => equalPortForward(net, protocol, port);

    // the forward given to another VM: the client's next datagram (same flow) reaches the new VM, not the old one,
    // whose sends stay dropped; the guard's commit moved the tables' stamp on, so this command changed them in place
    const vm2 = addVm(s, h, vxBridge, '10.8.0.11/24', '10.8.0.1');
    const udpFile2 = join(dir, 'udp2');
    procs.push(chattyUdpServer(vm2.ns, 5454, udpFile2));
    await new Promise((r) => setTimeout(r, 400));
    const udp1 = count(udpFile);
    await runCommand(engine, { ...pf('udp', 5454), privateIp: '10.8.0.11' });
    assert.ok(['diff', 'unchanged'].includes(engine.lastNftSync?.mode ?? ''), `the tables were changed in place after the guards went in (${engine.lastNftSync?.mode})`);
    assert.ok(await waitFor(() => count(udpFile2) >= 2, 5000), `the client's flow reaches the forward's new VM (${count(udpFile2)})`);
    assert.ok(count(udpFile) - udp1 <= 1, `and not the old one (${count(udpFile) - udp1} more)`);
  });
});

test('the guards of removed forwards outlive a router table rebuilt whole (someone else committed nftables in the namespace): the flows stay cut', async () => {
  await withNatRouter(async (t) => {
    const { engine, net, ns } = t;
    const { udpFile, tcpFile } = await cutEqualPortForwards(t);
    // a commit by someone else: the next command cannot trust the table and rebuilds it
    nsExec(ns, ['nft', 'add', 'table', 'ip', 'someone_else']);
    nsExec(ns, ['nft', 'delete', 'table', 'ip', 'someone_else']);
    await openIngress(engine, net, [{ ip: '203.0.113.80', protocol: 'tcp', ports: [8443, 8443] }]);
    assert.is(engine.lastNftSync?.mode, 'replace');
    assert.is(engine.lastNftSync?.reason, 'changed-outside');
    const [udp0, tcp0] = [count(udpFile), count(tcpFile)];
    const guards = nsExec(ns, ['nft', 'list', 'table', 'inet', 'netns_router']);
    assert.match(guards, /set nat_gone_udp \{[^}]*10\.8\.0\.10 \. 5454 \. 203\.0\.113\.1 \. 40003/, 'the UDP guard carried');
    assert.match(guards, /set nat_gone_tcp \{[^}]*10\.8\.0\.10 \. 8022 \. 203\.0\.113\.1 \. \d+/, 'the TCP guard carried');
    // the rebuilt table's guard rules (new counters) drop the guest's sends: its UDP every 100 ms, its TCP
    // retransmissions at a backing-off interval (seconds apart by now)
    const dropping = () => ['tcp', 'udp'].every((proto) => Number(guardDrops(ns, proto)?.[1] ?? 0) > 0);
    assert.ok(await waitFor(dropping, 15_000), `the guest's sends were dropped by the carried guards: ${guardDrops(ns, 'tcp')?.[0]}; ${guardDrops(ns, 'udp')?.[0]}`);
    await new Promise((r) => setTimeout(r, 1000));
    const flows = nsTry(ns, ['conntrack', '-L']).stdout.trim();
    assert.ok(count(udpFile) - udp0 <= 1, `the UDP flow stayed cut after the rebuild (got ${count(udpFile) - udp0} more datagrams); entries:\n${flows}`);
    assert.ok(count(tcpFile) - tcp0 <= 1, `the TCP flow stayed cut after the rebuild (got ${count(tcpFile) - tcp0} more bytes); entries:\n${flows}`);
  });
});

test('add-static-nat re-pointing an address in one command moves the client\'s same flow to the new VM; the old VM\'s sends do not pull it back', async () => {
  await withNatRouter(async ({ s, dir, engine, net, upNs, h, vxBridge, vm, procs }) => {
    await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.81', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: false } });
    const vm2 = addVm(s, h, vxBridge, '10.8.0.11/24', '10.8.0.1');
    const nat = (privateIp: string) => runCommand(engine, { command: 'add-static-nat', ...net, publicIp: { ip: '203.0.113.81', sourceNat: false }, privateIp });
    await nat('10.8.0.10');
    await openIngress(engine, net, [{ ip: '203.0.113.81', protocol: 'udp', ports: [6000, 6000] }]);
    const [a, b] = [join(dir, 'a'), join(dir, 'b')];
    procs.push(chattyUdpServer(vm.ns, 6000, a), chattyUdpServer(vm2.ns, 6000, b));
    await new Promise((r) => setTimeout(r, 400));
    procs.push(udpSender(upNs, '203.0.113.81', 6000, 40004, 200));
    assert.ok(await waitFor(() => count(a) >= 3, 5000), `the control: the flow reaches the first VM (${count(a)})`);
    await nat('10.8.0.11');
    assert.ok(await waitFor(() => count(b) >= 3, 5000), `the same flow reaches the new VM (${count(b)})`);
    const a0 = count(a);
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(count(a) - a0 <= 1, `and no longer the old one, which keeps sending (${count(a) - a0} more)`);
  });
});

test.run();
