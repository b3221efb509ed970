/**
 * The guest-segment filter with real packets: VMs in namespaces on the guest bridge of a simulated KVM host, the
 * router implemented through the engine, forged frames sent over AF_PACKET from a VM (test/helpers/frames.ts).
 * Every blocked probe has a positive control in the same test: the same kind of frame, legitimately addressed,
 * arrives and has its effect.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { runCommand } from '../../lib/router/command-table.js';
import { Scratch, addVm, inScratch, nsTry, uid, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { killRouterDaemons } from '../helpers/daemons.js';
import { tierAttachment } from '../../lib/router/topology.js';
import { installCounters, readCounters, servers, serversUp, tcpOk, udpOk, vpcTopo } from '../helpers/fw.js';
import { udhcpc, routerAdvert } from '../helpers/dhcp.js';
import { BROADCAST, RaListener, arpFrame, naFrame, raFrame, sendFrames, udp4Frame, udp6Frame } from '../helpers/frames.js';
import { linkLocalOf } from '../../lib/router/vmfilter/nics.js';
import { vmfilterPrefix } from '../../lib/router/vmfilter/compile.js';
import {
  PREFIX6, addIp6, afterLocktime, countArrivals, countOnBridge, filterSet, reach, filterTable, neighMac, setNeigh, slaacReady, strangerVm, vmfTopo,
} from '../helpers/vmfilter.js';

requireSandbox();

/** Every daemon the router started (dnsmasq, metadata) is killed by pid, then the namespaces and the state go. */
const cleanup = (s: Scratch, stateDir: string) => {
  if (stateDir) killRouterDaemons(stateDir);
  s.cleanup();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
};

test('the filter is one bridge table in the host namespace; legitimate traffic passes: ARP, ICMP, TCP, UDP, DHCP, NDP/DAD, SLAAC', async () => {
  await inScratch((s) => vmfTopo(s), async (t) => {
    const { vm1, vm2, router, hostNs, ns } = t;
    // in the host namespace the engine uses, nowhere else
    assert.ok(filterTable(hostNs, ns) !== '', 'table in the host namespace');
    assert.ok(JSON.stringify(filterSet(hostNs, ns, 'owner')).length > 2, 'with its ownership mark');
    assert.is(nsTry(ns, ['nft', 'list', 'tables']).stdout.includes('netns_router_vmf'), false, 'not in the router namespace');
    assert.is(nsTry(vm1.ns, ['nft', 'list', 'tables']).stdout.includes('netns_router_vmf'), false);
    // ARP + ICMP to the router and between VMs
    assert.ok(await reach(vm1.ns, router.ip), 'vm1 → router');
    assert.ok(await reach(vm2.ns, vm1.ip), 'vm2 → vm1');
    assert.is(neighMac(ns, router.ifname, vm1.ip), vm1.mac, 'the router learned vm1 by ARP');
    // TCP and UDP between the VMs
    const procs = servers(vm1.ns, [7100], [7101]);
    try {
      assert.ok(await serversUp(vm1.ns, [7100], [7101]));
      assert.ok(tcpOk(vm2.ns, vm1.ip, 7100), 'TCP vm2 → vm1');
      assert.ok(udpOk(vm2.ns, vm1.ip, 7101), 'UDP vm2 → vm1');
    } finally {
      for (const p of procs) p.kill('SIGKILL');
    }
    // DHCP: discovery from 0.0.0.0 to broadcast, the router's reservation comes back
    const lease = udhcpc(vm1.ns);
    assert.is(lease?.ip, vm1.ip, 'vm1 leases its reservation');
    assert.is(lease?.serverid, router.ip);
    // SLAAC from the router's advertisements, DAD passes, IPv6 both ways
    assert.ok(await slaacReady(vm1), 'vm1 configured its SLAAC address and passed DAD');
    assert.ok(await slaacReady(vm2), 'vm2 too');
    assert.ok(nsTry(vm1.ns, ['ping', '-6', '-c', '1', '-W', '2', router.ip6]).status === 0, 'vm1 → router over IPv6');
    assert.ok(nsTry(vm2.ns, ['ping', '-6', '-c', '1', '-W', '2', vm1.ip6]).status === 0, 'vm2 → vm1 over IPv6');
    assert.ok(nsTry(vm2.ns, ['ping', '-6', '-c', '1', '-W', '2', `${linkLocalOf(vm1.mac)}%eth0`]).status === 0, 'link-local');
    // the NICs are elements, keyed by MAC
    const ip4 = JSON.stringify(filterSet(hostNs, ns, 'nic_ip4'));
    assert.ok(ip4.includes(vm1.mac) && ip4.includes(vm1.ip) && ip4.includes(vm2.ip), ip4);
    assert.ok(JSON.stringify(filterSet(hostNs, ns, 'nic_ip6')).includes(vm1.ip6), 'the SLAAC address is bound to its MAC');
  }, { stop: killRouterDaemons });
});

test('vm2 sending with vm1\'s IPv4 or IPv6 address reaches neither the router nor vm1 (its own address does)', async () => {
  await inScratch((s) => vmfTopo(s), async (t, _procs, s) => {
    const { vm1, vm2, router, ns } = t;
    addIp6(vm1);
    addIp6(vm2);
    installCounters(vm1.ns, [9001, 9002]);
    installCounters(ns, [9001, 9002]);
    const to = (dst: { mac: string; ip: string; ip6: string }, saddr: string, saddr6: string, port: number) => [
      udp4Frame({ src: vm2.mac, dst: dst.mac, saddr, daddr: dst.ip, sport: 5555, dport: port }),
      udp6Frame({ src: vm2.mac, dst: dst.mac, saddr: saddr6, daddr: dst.ip6, sport: 5555, dport: port }),
    ];
    // forged: vm1's addresses, to vm1 and to the router (port 9002); control: vm2's own (port 9001)
    sendFrames(vm2.ns, 'eth0', [...to(vm1, vm1.ip, vm1.ip6, 9002), ...to(router, vm1.ip, vm1.ip6, 9002)], 5);
    sendFrames(vm2.ns, 'eth0', [...to(vm1, vm2.ip, vm2.ip6, 9001), ...to(router, vm2.ip, vm2.ip6, 9001)], 5);
    assert.ok(await waitFor(() => readCounters(vm1.ns)[9001] === 10 && readCounters(ns)[9001] === 10), `controls arrive: vm1 ${JSON.stringify(readCounters(vm1.ns))}, router ${JSON.stringify(readCounters(ns))}`);
    assert.is(readCounters(vm1.ns)[9002], 0, 'nothing forged reached vm1');
    assert.is(readCounters(ns)[9002], 0, 'nothing forged reached the router');
    // an unknown MAC with vm1's address is stopped on the way to the router and to vm1 as well
    const x = strangerVm(s, t.h, t.bridge, '10.1.1.50');
    sendFrames(x.ns, 'eth0', [udp4Frame({ src: x.mac, dst: router.mac, saddr: vm1.ip, daddr: router.ip, sport: 5555, dport: 9002 }),
      udp4Frame({ src: x.mac, dst: vm1.mac, saddr: vm1.ip, daddr: vm1.ip, sport: 5555, dport: 9002 })], 5);
    sendFrames(x.ns, 'eth0', [udp4Frame({ src: x.mac, dst: router.mac, saddr: x.ip, daddr: router.ip, sport: 5555, dport: 9001 })], 5);
    assert.ok(await waitFor(() => readCounters(ns)[9001] === 15), 'an unknown MAC with its own address reaches the router (allow policy)');
    assert.is(readCounters(vm1.ns)[9002], 0);
    assert.is(readCounters(ns)[9002], 0);
  }, { stop: killRouterDaemons });
});

test('forged ARP and NA from vm2 (for the gateway and for vm1) change neither the router\'s nor vm1\'s neighbour table', async () => {
  await inScratch((s) => vmfTopo(s), async (t, _procs, s) => {
    const { vm1, vm2, router, ns } = t;
    addIp6(vm1);
    addIp6(vm2);
    assert.ok(await reach(vm1.ns, router.ip) && await reach(vm1.ns, vm2.ip) && await reach(vm2.ns, router.ip));
    assert.ok(nsTry(vm1.ns, ['ping', '-6', '-c', '1', '-W', '2', router.ip6]).status === 0);
    assert.is(neighMac(ns, router.ifname, vm1.ip), vm1.mac);
    assert.is(neighMac(vm1.ns, 'eth0', router.ip), router.mac);
    assert.is(neighMac(ns, router.ifname, vm1.ip6), vm1.mac);
    await afterLocktime();
    // ARP replies (to the router and to vm1), gratuitous ARP (broadcast), both for vm1's address and the gateway's
    const forged = (src: string) => [
      arpFrame({ src, dst: router.mac, op: 2, spa: vm1.ip, tha: router.mac, tpa: router.ip }),
      arpFrame({ src, dst: vm1.mac, op: 2, spa: router.ip, tha: vm1.mac, tpa: vm1.ip }),
      arpFrame({ src, dst: BROADCAST, op: 1, spa: router.ip, tpa: router.ip }),
      arpFrame({ src, dst: BROADCAST, op: 1, spa: vm1.ip, tpa: vm1.ip }),
      naFrame({ src, saddr: linkLocalOf(src), target: vm1.ip6 }),
      naFrame({ src, saddr: linkLocalOf(src), target: router.ip6 }),
      naFrame({ src, saddr: linkLocalOf(src), target: vm1.ip6, dst: router.mac, daddr: linkLocalOf(router.mac) }),
    ];
    sendFrames(vm2.ns, 'eth0', forged(vm2.mac), 3);
    // the same from an unknown MAC (a VM spoofing its MAC too)
    const x = strangerVm(s, t.h, t.bridge, '10.1.1.51');
    sendFrames(x.ns, 'eth0', forged(x.mac), 3);
    // the router's own MAC from a VM's port (the bridge would learn it there and hand the router's frames to vm2)
    sendFrames(vm2.ns, 'eth0', [udp4Frame({ src: router.mac, dst: vm1.mac, saddr: router.ip, daddr: vm1.ip, sport: 67, dport: 68 })], 3);
    // the ARP sender is the frame's source, or it is dropped: vm2 posing with vm1's hardware address in the payload
    sendFrames(vm2.ns, 'eth0', [arpFrame({ src: vm2.mac, sha: vm1.mac, dst: router.mac, op: 2, spa: vm2.ip, tha: router.mac, tpa: router.ip })], 3);
    // control: the same kinds of frames for vm2's own address change entries that were wrong
    setNeigh(ns, router.ifname, vm2.ip, '02:de:ad:00:00:01');
    setNeigh(vm1.ns, 'eth0', vm2.ip, '02:de:ad:00:00:02');
    setNeigh(ns, router.ifname, vm2.ip6, '02:de:ad:00:00:03');
    await afterLocktime();
    sendFrames(vm2.ns, 'eth0', [
      arpFrame({ src: vm2.mac, dst: router.mac, op: 2, spa: vm2.ip, tha: router.mac, tpa: router.ip }),
      arpFrame({ src: vm2.mac, dst: BROADCAST, op: 1, spa: vm2.ip, tpa: vm2.ip }),
      naFrame({ src: vm2.mac, saddr: linkLocalOf(vm2.mac), target: vm2.ip6 }),
    ]);
    assert.ok(await waitFor(() => neighMac(ns, router.ifname, vm2.ip) === vm2.mac), 'control: vm2\'s ARP reply for its own address reached the router');
    assert.ok(await waitFor(() => neighMac(vm1.ns, 'eth0', vm2.ip) === vm2.mac), 'control: vm2\'s gratuitous ARP reached vm1');
    assert.ok(await waitFor(() => neighMac(ns, router.ifname, vm2.ip6) === vm2.mac), 'control: vm2\'s NA for its own address reached the router');
    // and the forged ones changed nothing
    assert.is(neighMac(ns, router.ifname, vm1.ip), vm1.mac, 'router: vm1 is still at vm1');
    assert.is(neighMac(vm1.ns, 'eth0', router.ip), router.mac, 'vm1: the gateway is still the router');
    assert.is(neighMac(ns, router.ifname, vm1.ip6), vm1.mac, 'router: vm1\'s IPv6 is still at vm1');
    const gw6 = neighMac(vm1.ns, 'eth0', router.ip6);
    assert.ok(gw6 === undefined || gw6 === router.mac, `vm1: the IPv6 gateway is not vm2 (${gw6})`);
    assert.ok(await reach(vm1.ns, router.ip), 'vm1 still reaches the router');
    // the bridge still knows the router's MAC on the router's port; a MAC nobody owns is learned where it came from
    const fdb = () => nsTry(t.hostNs, ['bridge', 'fdb', 'show', 'br', t.bridge]).stdout;
    assert.match(fdb(), new RegExp(`${router.mac} dev ${router.port} master`));
    assert.not.match(fdb(), new RegExp(`${router.mac} dev ${vm2.port}`));
    assert.match(fdb(), new RegExp(`${x.mac} dev ${x.port} master`), 'control: the bridge learns source MACs it is given');
  }, { stop: killRouterDaemons });
});

test('a DHCP server on vm2 never gets its offer to vm1 (vm1 leases from the router); with the router\'s DHCP off it does', async () => {
  const s = new Scratch();
  let stateDir = '';
  const dir = mkdtempSync(join(tmpdir(), 'nr-udhcpd-'));
  let rogue: ReturnType<typeof spawn> | undefined;
  try {
    const t = await vmfTopo(s);
    stateDir = t.stateDir;
    const { vm1, vm2, router, engine, net } = t;
    writeFileSync(join(dir, 'udhcpd.conf'), [
      'start 10.1.1.200', 'end 10.1.1.210', 'interface eth0', 'max_leases 10', `lease_file ${join(dir, 'leases')}`,
      `pidfile ${join(dir, 'pid')}`, 'opt router 10.1.1.11', 'opt subnet 255.255.255.0', 'opt lease 600', '',
    ].join('\n'));
    writeFileSync(join(dir, 'leases'), '');
    rogue = spawn('ip', ['netns', 'exec', vm2.ns, 'busybox', 'udhcpd', '-f', join(dir, 'udhcpd.conf')], { stdio: 'ignore' });
    assert.ok(await waitFor(() => nsTry(vm2.ns, ['ss', '-uln']).stdout.includes(':67 ')), 'the rogue server listens');
    // every DHCP reply that reaches vm1, by server
    const arrived = countArrivals(vm1.ns, { rogue: `ip saddr ${vm2.ip} udp sport 67`, router: `ip saddr ${router.ip} udp sport 67` });
    const sent = countOnBridge(t.hostNs, { rogue: `iifname "${vm2.port}" udp sport 67` });
    for (let i = 0; i < 3; i++) {
      const lease = udhcpc(vm1.ns, { tries: 3 });
      assert.is(lease?.ip, vm1.ip, `round ${i}: vm1 leased its reservation from the router`);
      assert.is(lease?.serverid, router.ip);
    }
    assert.ok(arrived().router >= 6, `the router's offers and acks arrived: ${JSON.stringify(arrived())}`);
    // the rogue did answer (busybox udhcpd offers after an ARP check of the address): its frames entered the bridge
    assert.ok(await waitFor(() => sent().rogue > 0, 10_000), 'the rogue server sent offers');
    await new Promise((r) => setTimeout(r, 300));
    assert.is(arrived().rogue, 0, `not one of the rogue server's ${sent().rogue} replies reached vm1`);
    // control: the router stops serving DHCP on the network — the guard goes with it, the rogue's offer arrives
    await runCommand(engine, { command: 'remove-dhcp-subnet', ...net });
    const rogueLease = udhcpc(vm1.ns, { tries: 4 });
    assert.is(rogueLease?.serverid, vm2.ip, 'control: the rogue server answers when nothing guards');
    assert.match(rogueLease?.ip ?? '', /^10\.1\.1\.2\d\d$/);
    assert.ok(arrived().rogue > 0);
  } finally {
    if (rogue?.pid) { try { process.kill(rogue.pid, 'SIGKILL'); } catch { /* gone */ } }
    rmSync(dir, { recursive: true, force: true });
    cleanup(s, stateDir);
  }
});

test('a router advertisement from vm2 (or from an unknown MAC) never reaches vm1; the router\'s does, and an unprotected port gets the forged one', async () => {
  const s = new Scratch();
  let stateDir = '';
  const listeners: RaListener[] = [];
  try {
    const t = await vmfTopo(s);
    stateDir = t.stateDir;
    const { vm1, vm2, router } = t;
    assert.ok(await reach(vm1.ns, router.ip), 'vm1 has sent frames: its port is one the filter protects');
    const x = strangerVm(s, t.h, t.bridge, '10.1.1.52');
    const y = strangerVm(s, t.h, t.bridge, '10.1.1.53'); // unknown and silent: its port is not learned
    const l1 = new RaListener(vm1.ns); listeners.push(l1);
    const ly = new RaListener(y.ns); listeners.push(ly);
    const forged = (src: string) => raFrame({ src, saddr: linkLocalOf(src), prefix: 'fd66::' });
    sendFrames(vm2.ns, 'eth0', [forged(vm2.mac)], 3);
    sendFrames(x.ns, 'eth0', [forged(x.mac)], 3);
    // control: the router's own advertisement reaches vm1 (answering vm1's solicitation)
    assert.ok(await routerAdvert(vm1.ns, 'eth0'), 'the router answers a solicitation');
    assert.ok(await waitFor(() => l1.poll().has(router.mac)), 'vm1 hears the router');
    // control: the unknown MAC's advertisement arrives at a port nothing protects (the frame itself is good)
    assert.ok(await waitFor(() => ly.poll().has(x.mac)), 'the forged RA is delivered where no known NIC lives');
    l1.poll();
    assert.is(l1.sources.has(vm2.mac), false, 'vm2\'s advertisement did not reach vm1');
    assert.is(l1.sources.has(x.mac), false, 'nor the unknown MAC\'s');
    assert.is(ly.sources.has(vm2.mac), false, 'vm2 (a known NIC) cannot advertise to anyone');
    assert.is(nsTry(vm1.ns, ['ip', '-6', 'addr']).stdout.includes('fd66:'), false, 'vm1 took no address from a forged prefix');
    assert.is(nsTry(vm1.ns, ['ip', '-6', 'route', 'show', 'default']).stdout.includes(linkLocalOf(vm2.mac)), false, 'nor a default route');
    void PREFIX6;
  } finally {
    for (const l of listeners) l.close();
    cleanup(s, stateDir);
  }
});

test('a VPC: one table for every tier; routing between tiers passes, a VM spoofing a VM of the other tier does not', async () => {
  await inScratch((s) => vpcTopo(s, String(100 + (parseInt(uid(4), 16) % 800))), async (t, _procs, s) => {
    const { engine, ns, vpcId, h, hostNs } = t;
    const v = Number(vpcId) % 100;
    const macA = '02:aa:00:10:01:0a';
    const macB = '02:aa:00:10:02:0a';
    await runCommand(engine, { command: 'add-dhcp-entry', networkId: '11', vpcId, namespace: ns, mac: macA, ip: '10.10.1.20', defaultNic: true, vmFilter: true });
    await runCommand(engine, { command: 'add-dhcp-entry', networkId: '12', vpcId, namespace: ns, mac: macB, ip: '10.10.2.20', defaultNic: true, vmFilter: true });
    const a = addVm(s, h, `brvx-${9100 + v * 2}`, '10.10.1.20/24', '10.10.1.1', macA);
    const b = addVm(s, h, `brvx-${9101 + v * 2}`, '10.10.2.20/24', '10.10.2.1', macB);
    const table = filterTable(hostNs, ns);
    assert.ok(table.includes(`"${vmfilterPrefix(ns)}pre_11"`) && table.includes(`"${vmfilterPrefix(ns)}pre_12"`), 'both tiers in the VPC\'s filter');
    assert.ok(await reach(a.ns, '10.10.1.1') && await reach(b.ns, '10.10.2.1'), 'each VM reaches its gateway');
    assert.ok(await reach(a.ns, '10.10.2.20'), 'tier A → tier B through the router');
    assert.ok(await reach(b.ns, '10.10.1.20'), 'and back');
    installCounters(b.ns, [9003, 9004]);
    const m = engine.store.load(ns)!;
    const gwA = tierAttachment(m, m.tiers['11']).nsMac!;
    const frame = (saddr: string, dport: number) => udp4Frame({ src: macA, dst: gwA, saddr, daddr: '10.10.2.20', sport: 5555, dport });
    sendFrames(a.ns, 'eth0', [frame('10.10.2.20', 9004), frame('10.10.1.20', 9003)], 5);
    assert.ok(await waitFor(() => readCounters(b.ns)[9003] === 5), `control: A's own address is routed to B: ${JSON.stringify(readCounters(b.ns))}`);
    assert.is(readCounters(b.ns)[9004], 0, 'A with B\'s address reaches nothing');
  }, { stop: killRouterDaemons });
});

test.run();
