/**
 * Tenant isolation on the public side, with real packets: a host on the public segment (or another router's
 * network) that routes a guest CIDR via the router's public address must reach nothing but what static NAT,
 * port forwards and the firewall give it; the router's own guest-side services stay unreachable from there;
 * IPv6 guest addresses (routed, not NATed) are closed until an ingress rule opens them; VPC tiers reach each
 * other only as their ACLs say. Every "blocked" probe has a positive control in the same test.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RouterEngine } from '../../lib/router/engine.js';
import { publicAttachments } from '../../lib/router/topology.js';
import { inScratch, addVm, uid, nsExec, nsTry, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { isolatedTopo, vpcTopo, servers, serversUp, tcpOk, udpOk, pingOk, openIngress, hostAndUpstream, installCounters, readCounters, cidr, UP_A } from '../helpers/fw.js';
import { runCommand } from '../../lib/router/command-table.js';

requireSandbox();
/** An "open" probe may be retried (a busy machine can lose a first try); "closed" probes are single tries,
 *  each beside one that succeeds. */
const opens = (probe: () => boolean): Promise<boolean> => waitFor(probe, 5000);

const randomId = () => String(1000 + (parseInt(uid(4), 16) % 8000));
type Net = { networkId: string; namespace: string; vpcId?: string };
const fw = (engine: RouterEngine, net: Net, rules: Array<Record<string, unknown>>) =>
  runCommand(engine, { command: 'apply-fw-rules', ...net, fwRules: { value: { default_egress_allow: true, rules }, source: 'test' } });
const acl = (engine: RouterEngine, net: Net, rules: Array<Record<string, unknown>>) =>
  runCommand(engine, { command: 'apply-network-acl', ...net, aclRules: { value: rules, source: 'test' } });

/** A TCP listener inside the router namespace on one of its own addresses (stands in for DNS/metadata). */
function routerService(ns: string, ip: string, port: number): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, 'socat', `TCP-LISTEN:${port},bind=${ip},fork,reuseaddr`, 'SYSTEM:echo router'], { stdio: 'ignore' });
}

test('isolated network: routing a guest CIDR via the public IP reaches no VM and no router service; static NAT and port forwards still work', async () => {
  await inScratch((s) => isolatedTopo(s, randomId()), async (t, procs) => {
    const { engine, net, P, P2, upNs, vm1, vm2, ns } = t;
    procs.push(...servers(vm1, [8080], [5353]), ...servers(vm2, [22], []), ...servers(upNs, [9000], []), routerService(ns, '10.1.1.1', 9999));
    assert.ok(await serversUp(vm1, [8080], [5353]));
    assert.ok(await serversUp(vm2, [22], []));
    assert.ok(await serversUp(upNs, [9000], []));
    // the attack: the public segment routes the guest CIDR via the router's public address
    nsExec(upNs, ['ip', 'route', 'add', '10.1.1.0/24', 'via', P]);
    // even an allow-everything firewall on both public IPs opens only what NAT translates
    await openIngress(engine, net, [{ ip: P, protocol: 'all' }, { ip: P2, protocol: 'all' }]);

    assert.ok(await opens(() => tcpOk(upNs, P, 80)), 'positive control: port forward P:80 → vm1:8080');
    assert.ok(await opens(() => udpOk(upNs, P, 5353)), 'positive control: udp port forward');
    assert.ok(await opens(() => tcpOk(upNs, P2, 22)), 'positive control: static NAT P2 → vm2:22');
    assert.ok(await opens(() => tcpOk(vm1, UP_A, 9000)), 'positive control: outbound through source NAT, replies come back');
    assert.ok(await opens(() => tcpOk(vm1, '10.1.1.1', 9999)), 'positive control: the router service answers the guest side');
    assert.ok(await opens(() => pingOk(upNs, P2)), 'positive control: ping through the static NAT (all open) reaches vm2');

    assert.not.ok(tcpOk(upNs, '10.1.1.10', 8080), 'routed to vm1 directly: blocked');
    assert.not.ok(udpOk(upNs, '10.1.1.10', 5353), 'routed udp to vm1: blocked');
    assert.not.ok(tcpOk(upNs, '10.1.1.11', 22), 'routed to the static-NAT VM directly: blocked');
    assert.not.ok(pingOk(upNs, '10.1.1.10'), 'routed ping to a VM: blocked');
    assert.not.ok(tcpOk(upNs, '10.1.1.1', 9999), 'the router\'s guest-side service from the public side: blocked');
    const dropped = nsExec(ns, ['nft', 'list', 'chain', 'inet', 'netns_router', 'pub_fwd']);
    assert.match(dropped, /counter packets [1-9]\d* bytes \d+ drop/, 'the public guard counted the drops');

    // the same probes again after the firewall is tightened: NAT'd paths close, direct paths stay closed
    await fw(engine, net, []);
    assert.not.ok(tcpOk(upNs, P, 80), 'no rule: the port forward is closed');
    assert.not.ok(tcpOk(upNs, '10.1.1.10', 8080));
  });
});

test('an ingress rule naming an address that is not a public IP of the router (its guest gateway, a VM) opens nothing; the same rule on a public IP opens it', async () => {
  await inScratch((s) => isolatedTopo(s, randomId()), async (t, procs) => {
    const { engine, net, P, upNs, vm1, ns } = t;
    procs.push(...servers(vm1, [8080], []), routerService(ns, '0.0.0.0', 9999));
    assert.ok(await serversUp(vm1, [8080], []));
    nsExec(upNs, ['ip', 'route', 'add', '10.1.1.0/24', 'via', P]);
    const rule = (id: number, ip: string, port: number) => ({ id, type: 'ingress', protocol: 'tcp', portStart: port, publicIp: ip, sourceCidrs: ['0.0.0.0/0'] });
    await fw(engine, net, [rule(1, '10.1.1.1', 9999), rule(2, '10.1.1.10', 8080), rule(3, P, 9999)]);
    assert.ok(await opens(() => tcpOk(upNs, P, 9999)), 'positive control: the router service through its public IP, opened by rule 3');
    assert.ok(await opens(() => tcpOk(vm1, '10.1.1.1', 9999)), 'positive control: the service answers on the guest gateway');
    assert.not.ok(tcpOk(upNs, '10.1.1.1', 9999), 'the guest gateway from the public side: still blocked');
    assert.not.ok(tcpOk(upNs, '10.1.1.10', 8080), 'a VM routed directly: still blocked');
    const filtered = nsExec(ns, ['nft', 'list', 'set', 'inet', 'netns_router', 'pub_filtered']);
    assert.not.match(filtered, /10\.1\.1\./, `no guest-side address among the filtered ones: ${filtered}`);
  });
});

test('another router\'s network on the same public segment reaches only what NAT and the firewall give it', async () => {
  await inScratch((s) => isolatedTopo(s, randomId()), async (t, procs, s) => {
    const { engine, net, P, vm1, h } = t;
    // router B: another isolated network on the same host and public segment
    const idB = String(Number(t.net.networkId) + 1);
    const nsB = s.track(`cs-net-${idB}`);
    const netB = { networkId: idB, namespace: nsB };
    const vniB = 6000 + (Number(idB) % 1000);
    await runCommand(engine, { command: 'implement-network', ...netB, segment: { kind: 'vxlan', vni: vniB }, gateway: '10.2.2.1', cidr: cidr('10.2.2.0/24') });
    await runCommand(engine, { command: 'assign-ip', ...netB, publicIp: { ip: '203.0.113.30', segment: { kind: 'untagged' }, gateway: UP_A, cidr: cidr('203.0.113.0/24'), sourceNat: true } });
    const vmB = addVm(s, h, `brvx-${vniB}`, '10.2.2.10/24', '10.2.2.1').ns;
    procs.push(...servers(vm1, [8080], []));
    assert.ok(await serversUp(vm1, [8080], []));
    await openIngress(engine, net, [{ ip: P, protocol: 'tcp', ports: [80, 80] }]);
    // B's router routes A's guest CIDR via A's public address (a hostile or misconfigured neighbour)
    const pubB = publicAttachments(engine.store.load(nsB)!)[0].nsVeth;
    nsExec(nsB, ['ip', 'route', 'add', '10.1.1.0/24', 'via', P, 'dev', pubB]);
    assert.ok(await opens(() => tcpOk(vmB, P, 80)), 'positive control: B\'s VM reaches A\'s port forward');
    assert.not.ok(tcpOk(vmB, '10.1.1.10', 8080), 'B\'s VM routed to A\'s VM directly: blocked');
    assert.not.ok(tcpOk(nsB, '10.1.1.10', 8080), 'B\'s router itself: blocked');
    assert.ok(await opens(() => pingOk(vmB, UP_A)), 'positive control: B\'s VM pings out through its source NAT');
    assert.not.ok(pingOk(vmB, '10.1.1.10'), 'B\'s VM pinging A\'s VM directly: blocked');
  });
});

test('VPC: the public side reaches tiers only through static NAT / port forwards and the tier ACL; tiers reach each other as their ACLs say', async () => {
  await inScratch((s) => vpcTopo(s, String(100 + (parseInt(uid(4), 16) % 800))), async (t, procs) => {
    const { engine, ns, vpcId, upNs, a, b, A, B, S } = t;
    const tierA = { networkId: '11', vpcId, namespace: ns };
    const tierB = { networkId: '12', vpcId, namespace: ns };
    procs.push(...servers(a, [8080, 22], []), ...servers(b, [8080], []), routerService(ns, '10.10.1.1', 9999));
    assert.ok(await serversUp(a, [8080, 22], []));
    assert.ok(await serversUp(b, [8080], []));
    nsExec(upNs, ['ip', 'route', 'add', '10.10.0.0/16', 'via', '203.0.113.20']);

    const aEgress = { number: 9, action: 'Allow', trafficType: 'Egress', protocol: 'all', destCidrs: ['0.0.0.0/0'] };
    await acl(engine, tierA, [{ number: 1, action: 'Allow', trafficType: 'Ingress', protocol: 'tcp', portStart: 8080, sourceCidrs: ['0.0.0.0/0'] }, aEgress]);
    assert.ok(await opens(() => tcpOk(upNs, S, 8080)), 'positive control: static NAT to tier A, allowed by its ACL');
    assert.not.ok(tcpOk(upNs, S, 22), 'static NAT: port not in the ACL blocked');
    assert.not.ok(tcpOk(upNs, A, 8080), 'routed to tier A\'s VM directly: blocked although its ACL allows 8080');
    assert.not.ok(tcpOk(upNs, B, 8080), 'routed to tier B (no ACL yet) directly: blocked');
    assert.not.ok(tcpOk(upNs, '10.10.1.1', 9999), 'router service via the public side: blocked');
    assert.ok(await opens(() => tcpOk(a, '10.10.1.1', 9999)), 'positive control: router service from the tier');
    assert.ok(await opens(() => pingOk(a, UP_A)), 'positive control: tier A pings out through the VPC source NAT');
    assert.not.ok(pingOk(upNs, '203.0.113.20'), 'the VPC source NAT address answers nothing new');

    // between tiers: B's ingress ACL decides
    await acl(engine, tierB, [{ number: 1, action: 'Allow', trafficType: 'Ingress', protocol: 'tcp', portStart: 8080, sourceCidrs: ['10.10.1.0/24'] }]);
    assert.ok(await opens(() => tcpOk(a, B, 8080)), 'tier A → tier B allowed by B\'s ACL');
    await acl(engine, tierB, [{ number: 1, action: 'Deny', trafficType: 'Ingress', protocol: 'tcp', portStart: 8080, sourceCidrs: ['10.10.1.0/24'] }]);
    assert.not.ok(tcpOk(a, B, 8080), 'tier A → tier B denied by B\'s ACL');
    assert.ok(await opens(() => tcpOk(upNs, S, 8080)), 'positive control: the static NAT path still works');
  });
});

/**
 * A router whose guest network has IPv6 (2001:db8:6::/64, routed, not NATed) and a VM at 2001:db8:6::10; the
 * contract provisions no public IPv6 yet, so the router's public side gets IPv6 by hand (`publicV6`), so that the
 * guard (which is family-agnostic) is what stands between the public segment and the routed guest prefix — every
 * reconcile converges the public veth back to IPv4 only: call it again after each command.
 */
async function ipv6Router(s: Parameters<Parameters<typeof inScratch>[1]>[2], base: Awaited<ReturnType<typeof hostAndUpstream>>) {
  const { engine, h, upNs } = base;
  const id = randomId();
  const ns = s.track(`cs-net-${id}`);
  const net = { networkId: id, namespace: ns };
  const vni = 5000 + (Number(id) % 1000);
  await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni }, gateway: '10.6.6.1', cidr: cidr('10.6.6.0/24'), ip6Gateway: '2001:db8:6::1', ip6Cidr: { family: 6, address: '2001:db8:6::', prefix: 64 } });
  await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.60', segment: { kind: 'untagged' }, gateway: UP_A, cidr: cidr('203.0.113.0/24'), sourceNat: true } });
  const vm = addVm(s, h, `brvx-${vni}`, '10.6.6.10/24', '10.6.6.1');
  const vh = s.handle(vm.ns);
  vh.netlink.addrAdd({ dev: 'eth0', address: '2001:db8:6::10/64', noDad: true });
  vh.netlink.routeReplace({ dst: 'default', via: '2001:db8:6::1' });
  const pub = publicAttachments(engine.store.load(ns)!)[0].nsVeth;
  const publicV6 = () => {
    nsExec(ns, ['sysctl', '-qw', `net.ipv6.conf.${pub}.disable_ipv6=0`]);
    nsExec(ns, ['ip', '-6', 'addr', 'replace', '2001:db8:ff::10/64', 'dev', pub, 'nodad']);
    nsExec(ns, ['ip', '-6', 'route', 'replace', 'default', 'via', '2001:db8:ff::1', 'dev', pub]);
  };
  publicV6();
  nsExec(upNs, ['ip', '-6', 'addr', 'add', '2001:db8:ff::1/64', 'dev', 'up0', 'nodad']);
  nsExec(upNs, ['ip', '-6', 'route', 'add', '2001:db8:6::/64', 'via', '2001:db8:ff::10']);
  return { engine, upNs, ns, net, vm, publicV6 };
}

const tcp6 = (from: string, ip: string, port: number) => {
  const r = nsTry(from, ['socat', '-T2', '-', `TCP6:[${ip}]:${port},connect-timeout=1`], 5000);
  return r.status === 0 && r.stdout.trim() === 'hello';
};

test('IPv6: routed guest addresses are closed to the public side until an ingress rule opens them, and close again', async () => {
  await inScratch((s) => hostAndUpstream(s), async (base, procs, s) => {
    const { engine, upNs, net, vm, publicV6 } = await ipv6Router(s, base);
    procs.push(spawn('ip', ['netns', 'exec', vm.ns, 'socat', 'TCP6-LISTEN:8080,fork,reuseaddr', 'SYSTEM:echo hello'], { stdio: 'ignore' }));
    procs.push(spawn('ip', ['netns', 'exec', upNs, 'socat', 'TCP6-LISTEN:9000,fork,reuseaddr', 'SYSTEM:echo hello'], { stdio: 'ignore' }));
    assert.ok(await waitFor(() => tcp6(vm.ns, '::1', 8080) && tcp6(upNs, '::1', 9000), 5000), 'servers up');
    // (retried: neighbour discovery on the new addresses may take a moment)
    assert.ok(await waitFor(() => tcp6(vm.ns, '2001:db8:ff::1', 9000), 8000), 'positive control: the VM reaches the public side over IPv6 (replies pass)');
    assert.not.ok(tcp6(upNs, '2001:db8:6::10', 8080), 'no rule: inbound IPv6 to the guest blocked');

    await fw(engine, net, [{ type: 'ingress', protocol: 'tcp', portStart: 8080, publicIp: '2001:db8:6::10', sourceCidrs: ['::/0'] }]);
    publicV6();
    assert.ok(await waitFor(() => tcp6(upNs, '2001:db8:6::10', 8080), 8000), 'an ingress rule for the guest address opens it');
    await fw(engine, net, []);
    publicV6();
    assert.ok(await waitFor(() => tcp6(vm.ns, '2001:db8:ff::1', 9000), 8000), 'positive control: outbound still works');
    assert.not.ok(tcp6(upNs, '2001:db8:6::10', 8080), 'rule removed: blocked again');
  });
});

/** A UDP endpoint in `ns` (IPv6) on `port` that sends to `to` (or, without it, to its last peer) every 50 ms and
 *  counts what it sends into `file` (the control that it kept sending). */
function udp6Chatter(ns: string, port: number, file: string, to?: { ip: string; port: number }) {
  const js = `const d=require('dgram').createSocket('udp6');let peer=${to ? JSON.stringify({ address: to.ip, port: to.port }) : 'undefined'},n=0;
d.on('message',(m,r)=>{if(!${Boolean(to)})peer=r});d.bind(${port},()=>setInterval(()=>{if(peer)d.send('x',peer.port,peer.address,()=>{n++;require('fs').writeFileSync(${JSON.stringify(file)},String(n))})},50));`;
  return spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', js], { stdio: 'ignore' });
}

test('IPv6: a guest flow ended by an egress tightening stays ended both ways at the public guard (the far end keeps sending)', async () => {
  await inScratch((s) => hostAndUpstream(s), async (base, procs, s) => {
    const { engine, upNs, net, vm, publicV6 } = await ipv6Router(s, base);
    const dir = mkdtempSync(join(tmpdir(), 'nr-v6-'));
    try {
      // the guest's flow to [2001:db8:ff::1]:7003 from port 40007; the far end answers to its last peer, unasked
      installCounters(vm.ns, [40007]);
      installCounters(upNs, [7003]);
      procs.push(udp6Chatter(upNs, 7003, join(dir, 'up')), udp6Chatter(vm.ns, 40007, join(dir, 'vm'), { ip: '2001:db8:ff::1', port: 7003 }));
      const arrived = () => ({ atVm: readCounters(vm.ns)[40007], atUp: readCounters(upNs)[7003] });
      assert.ok(await waitFor(() => arrived().atVm > 10 && arrived().atUp > 10, 8000), `positive control: the flow runs both ways (${JSON.stringify(arrived())})`);
      // egress tightened: UDP 7003 to the upstream's prefix denied (no ingress rule filters the guest's address)
      await fw(engine, net, [{ type: 'egress', protocol: 'udp', portStart: 7003, destCidrs: ['2001:db8:ff::/64'] }]);
      publicV6();
      await new Promise((r) => setTimeout(r, 300));
      const at = arrived();
      const sentUp = Number(readFileSync(join(dir, 'up'), 'utf8'));
      await new Promise((r) => setTimeout(r, 1500));
      const now = arrived();
      assert.ok(Number(readFileSync(join(dir, 'up'), 'utf8')) - sentUp > 20, 'control: the far end kept sending to the guest');
      assert.ok(now.atUp - at.atUp <= 1, `outbound half ended (${at.atUp} → ${now.atUp})`);
      assert.ok(now.atVm - at.atVm <= 1, `inbound half ended at the public guard, not passed as a reply (${at.atVm} → ${now.atVm})`);
      // and the same flow passes again when the rules allow it again (the entry resumed, not a new one refused)
      await fw(engine, net, []);
      publicV6();
      assert.ok(await waitFor(() => arrived().atVm - now.atVm > 10 && arrived().atUp - now.atUp > 10, 8000), `the flow resumes when allowed again (${JSON.stringify(arrived())})`);
    } finally {
      // the chatters write their counts until inScratch kills them, after this
      for (const p of procs) p.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    }
  });
});

test.run();
