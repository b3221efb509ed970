/**
 * Static NAT addresses are not put on the router's public veth; the router's ARP responder (a netdev ingress
 * table, lib/router/arp-responder.ts) answers the peer's ARP requests for them, and a gratuitous ARP announces
 * each one that starts being answered. Real frames: ARP requests sent from the upstream namespace with a raw
 * socket, the replies and gratuitous ARPs read from the same socket, and traffic through the static NAT.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { NetnsHandle } from '../../lib/netns/handle.js';
import { publicAttachments } from '../../lib/router/topology.js';
import { Scratch, inScratch, nsExec, uid, waitFor, addressesOf } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { runCommand } from '../../lib/router/command-table.js';
import { isolatedTopo, openIngress, pingOk, servers, serversUp, tcpOk, UP_A, cidr } from '../helpers/fw.js';
import { ArpTap } from '../helpers/arp.js';

requireSandbox();

const randomId = () => String(1000 + (parseInt(uid(4), 16) % 9000));


test('static NAT addresses: answered by ARP, not on the interface; gratuitous ARP when one appears; back on the interface when the NAT goes', async () => {
  const s = new Scratch();
  const procs: ChildProcess[] = [];
  let stateDir = '';
  let tap: ArpTap | undefined;
  try {
    const t = await isolatedTopo(s, randomId());
    stateDir = t.stateDir;
    const { engine, net, ns, P, P2, upNs, vm2 } = t;
    const pub = publicAttachments(engine.store.load(ns)!)[0];
    const veth = pub.nsVeth;
    const mac = pub.nsMac!;
    procs.push(...servers(vm2, [22], []));
    assert.ok(await serversUp(vm2, [22], []));
    await openIngress(engine, net, [{ ip: P2, protocol: 'icmp' }, { ip: P2, protocol: 'tcp', ports: [22, 22] }]);

    assert.equal(addressesOf(ns, veth), [P], 'the source NAT address is on the veth, the static NAT address is not');
    tap = ArpTap.open(upNs, 'up0');
    tap.request(P2, UP_A);
    const r = tap.read(1500, (f) => f.op === 'reply').find((f) => f.op === 'reply');
    assert.ok(r, `the first ARP request for the static NAT address ${P2} answered`);
    assert.is(r!.senderIp, P2);
    assert.is(r!.senderMac, mac, 'with the router veth\'s MAC');
    assert.is(r!.src, mac);
    assert.is(r!.targetIp, UP_A, 'addressed to the asker');
    assert.is(r!.targetMac, tap.mac);
    assert.is(r!.dst, tap.mac, 'unicast back');
    assert.ok(tap.ask(P, UP_A), 'positive control: the source NAT address (a real address) is answered by the kernel');
    assert.is(tap.ask('203.0.113.99', UP_A, 900), undefined, 'an address the router does not have: no answer');
    // (waitFor: the VM's kernel may leave the router's first ARP request unanswered, see ArpTap.ask)
    assert.ok(await waitFor(() => pingOk(upNs, P2), 5000), 'ping to the static NAT address reaches the VM');
    assert.ok(tcpOk(upNs, P2, 22), 'tcp to the static NAT address reaches the VM');

    // one more static NAT: its address is announced with a gratuitous ARP when it arrives on the router
    // (assign-ip); the static NAT then moves it from the veth to the responder, which answers with the same MAC
    // (no announcement needed: peers find it where they did)
    const P3 = '203.0.113.12';
    tap.drain();
    await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: P3, segment: { kind: 'untagged' }, gateway: UP_A, cidr: cidr('203.0.113.0/24'), sourceNat: false } });
    const garp = tap.read(1000, (f) => f.senderIp === P3 && f.targetIp === P3).find((f) => f.senderIp === P3 && f.targetIp === P3);
    assert.ok(garp, 'a gratuitous ARP for the new public address');
    assert.is(garp!.op, 'request');
    assert.is(garp!.senderMac, mac);
    assert.is(garp!.dst, 'ff:ff:ff:ff:ff:ff');
    assert.is(tap.ask(P3, UP_A)?.senderMac, mac, 'P3 answered (an address of the veth)');
    await runCommand(engine, { command: 'add-static-nat', ...net, publicIp: { ip: P3, sourceNat: false }, privateIp: '10.1.1.12' });
    assert.equal(addressesOf(ns, veth), [P], 'P3 left the veth');
    assert.is(tap.ask(P3, UP_A)?.senderMac, mac, 'P3 answered by the responder, with the same MAC');

    // the static NAT goes: its address is back on the veth, answered by the kernel, and no longer translated
    await runCommand(engine, { command: 'delete-static-nat', ...net, publicIp: { ip: P2, sourceNat: false } });
    assert.equal(addressesOf(ns, veth), [P, P2].sort());
    assert.is(tap.ask(P2, UP_A)?.senderMac, mac, 'P2 still answered (now as the router\'s address)');
    assert.not.ok(tcpOk(upNs, P2, 22), 'no longer translated to the VM');
    assert.ok(tcpOk(upNs, P2, 22) === false && pingOk(upNs, P3) === false, 'P3 not opened by the firewall: closed');

    // the responder survives its veth being re-created (the next command repairs the plumbing and the tables)
    const h = NetnsHandle.open(ns);
    try { h.netlink.linkDel(veth); } finally { h.close(); }
    assert.is(tap.ask(P3, UP_A, 900), undefined, 'veth gone: nothing answers');
    await runCommand(engine, { command: 'add-static-nat', ...net, publicIp: { ip: P2, sourceNat: false }, privateIp: '10.1.1.11' });
    assert.is(tap.ask(P3, UP_A)?.senderMac, mac, 'P3 answered again on the re-created veth');
    assert.is(tap.ask(P2, UP_A)?.senderMac, mac, 'P2 answered again');
    assert.ok(await waitFor(() => tcpOk(upNs, P2, 22), 5000), 'and translated again');
    assert.match(nsExec(ns, ['nft', 'list', 'table', 'netdev', 'netns_router_arp']), /arp operation request arp daddr ip @ips_/);
  } finally {
    tap?.close();
    for (const p of procs) p.kill();
    s.cleanup();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  }
});

test('a segment whose only public IP is a static NAT keeps it as an address (its gateway must stay on-link)', async () => {
  const s = new Scratch();
  let stateDir = '';
  let tap: ArpTap | undefined;
  try {
    const t = await isolatedTopo(s, randomId());
    stateDir = t.stateDir;
    const { engine, ns } = t;
    const m = engine.store.load(ns)!;
    // the whole segment's view: both public IPs static-NATed, neither a source NAT address
    m.publicIps['203.0.113.10'].sourceNat = false;
    m.staticNats.push({ publicIp: '203.0.113.10', privateIp: '10.1.1.10' });
    const [a] = publicAttachments(m);
    assert.equal(a.addresses, ['203.0.113.10/24'], 'the first static NAT address stays');
    assert.equal(a.arpOnly, ['203.0.113.11']);
  } finally {
    tap?.close();
    s.cleanup();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  }
});

test('the public segment gets ARP answers for the router\'s public addresses only: not its guest gateway or VMs, not another router\'s guest address that equals a public IP; a hand-changed arp_ignore is repaired', async () => {
  await inScratch((s) => isolatedTopo(s, randomId()), async (t, _procs, s) => {
    const { engine, net, ns, P, P2, upNs } = t;
    // router B: a tenant whose guest gateway is router A's source NAT address P (its guest CIDR covers it)
    const idB = String(Number(net.networkId) + 1);
    const nsB = s.track(`cs-net-${idB}`);
    const netB = { networkId: idB, namespace: nsB };
    const PB = '203.0.113.30';
    await runCommand(engine, { command: 'implement-network', ...netB, segment: { kind: 'vxlan', vni: 6000 + (Number(idB) % 1000) }, gateway: P, cidr: cidr('203.0.113.8/29') });
    await runCommand(engine, { command: 'assign-ip', ...netB, publicIp: { ip: PB, segment: { kind: 'untagged' }, gateway: UP_A, cidr: cidr('203.0.113.0/24'), sourceNat: true } });
    const pubA = publicAttachments(engine.store.load(ns)!)[0];
    const macB = publicAttachments(engine.store.load(nsB)!)[0].nsMac;
    const conf = (key: string): string => nsExec(ns, ['sysctl', '-n', `net.ipv4.conf.${pubA.nsVeth}.${key}`]).trim();
    const tap = ArpTap.open(upNs, 'up0');
    try {
      const probe = () => {
        tap.drain();
        for (let i = 0; i < 3; i++) tap.request(P, UP_A);
        const forP = tap.read(1200).filter((f) => f.op === 'reply' && f.senderIp === P).map((f) => f.senderMac);
        return { forP: [...new Set(forP)], gw: tap.ask('10.1.1.1', UP_A, 900), vm: tap.ask('10.1.1.10', UP_A, 900) };
      };
      assert.ok(tap.ask(P, UP_A), 'positive control: the public address on the veth is answered');
      assert.is(tap.ask(P2, UP_A)?.senderMac, pubA.nsMac, 'positive control: the static NAT address is answered (ARP responder)');
      assert.is(tap.ask(PB, UP_A)?.senderMac, macB, 'positive control: router B answers for its own public address');
      const strict = probe();
      assert.ok(strict.forP.includes(pubA.nsMac!), 'positive control: router A answers for its public address');
      assert.equal(strict.forP, [pubA.nsMac], `only router A answers for ${P} (router B holds it on its guest side)`);
      assert.is(strict.gw, undefined, 'the guest gateway is not answered on the public segment');
      assert.is(strict.vm, undefined, 'a guest VM address is not answered on the public segment');
      assert.is(conf('arp_ignore'), '1');
      assert.is(conf('arp_announce'), '2');

      // by hand back to Linux's default (weak host): the guest gateway leaks again — then any full reconcile
      // (here the source NAT address re-sent) restores the setting
      nsExec(ns, ['sysctl', '-qw', `net.ipv4.conf.${pubA.nsVeth}.arp_ignore=0`]);
      assert.is(tap.ask('10.1.1.1', UP_A)?.senderMac, pubA.nsMac, 'control: with arp_ignore=0 the guest gateway is answered');
      await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: P, segment: { kind: 'untagged' }, gateway: UP_A, cidr: cidr('203.0.113.0/24'), sourceNat: true } });
      assert.is(conf('arp_ignore'), '1', 'repaired by the next command');
      assert.is(tap.ask('10.1.1.1', UP_A, 900), undefined, 'not answered again');
      assert.is(tap.ask(P, UP_A)?.senderMac, pubA.nsMac, 'P still answered');
    } finally {
      tap.close();
    }
  });
});

test.run();
