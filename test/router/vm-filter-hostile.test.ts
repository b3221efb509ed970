/**
 * A hostile guest against the guest-segment filter, beyond the basic spoofing of vm-filter.test.ts: 802.1Q/802.1ad
 * tagged frames (a priority tag, VID 0, is received by Linux as untagged), router advertisements and DHCPv6 replies
 * on a network where the router has no IPv6, DHCP and DHCPv6 server replies from any source port, a VM with another's
 * MAC and address asking for its metadata and password, DHCP messages sent for another VM (from any source port),
 * neighbour discovery naming another VM's MAC as the sender's link-layer address (to read that VM's metadata on
 * [fe80::a9fe:a9fe]). Every blocked probe has a positive control in the same test.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type * as T from '../../lib/router/contract/types.js';
import { runCommand } from '../../lib/router/command-table.js';
import { vmDir } from '../../lib/services/metadata/index.js';
import { guestGet, passwordRequest } from '../helpers/metadata.js';
import { udhcpc } from '../helpers/dhcp.js';
import { inScratch, nsExec, nsTry, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { killRouterDaemons } from '../helpers/daemons.js';
import {
  BROADCAST, ND_NONCE, ND_SLLA, ND_TLLA, RaListener, arpFrame, dhcpClientFrame, naFrame, ndOption, nsFrame, raFrame, rsFrame, sendFrames, udp4Frame, udp6Frame, vlanTagged,
} from '../helpers/frames.js';
import { linkLocalOf } from '../../lib/router/vmfilter/nics.js';
import { afterLocktime, countArrivals, countOnBridge, filterTable, neighMac, reach, setNeigh, strangerVm, vmfTopo } from '../helpers/vmfilter.js';

requireSandbox();

test('VLAN-tagged frames (priority tag VID 0, VID 5, double tag) claim nothing: no ARP for vm1 or the gateway, no RA to vm1; an unprotected port gets them', async () => {
  await inScratch((s) => vmfTopo(s), async (t, _procs, s) => {
    const { vm1, vm2, router, ns } = t;
    const x = strangerVm(s, t.h, t.bridge, '10.1.1.60');
    const y = strangerVm(s, t.h, t.bridge, '10.1.1.61'); // unknown and silent: its port is not protected
    assert.ok(await reach(vm1.ns, router.ip) && await reach(x.ns, router.ip), 'vm1 and the stranger reach the router');
    assert.is(neighMac(ns, router.ifname, vm1.ip), vm1.mac);
    assert.is(neighMac(vm1.ns, 'eth0', router.ip), router.mac);
    setNeigh(y.ns, 'eth0', vm1.ip, '02:de:ad:00:00:09');
    const l1 = new RaListener(vm1.ns);
    const ly = new RaListener(y.ns);
    try {
      await afterLocktime();
      const forged = (src: string) => [
        arpFrame({ src, dst: router.mac, op: 2, spa: vm1.ip, tha: router.mac, tpa: router.ip }),
        arpFrame({ src, dst: vm1.mac, op: 2, spa: router.ip, tha: vm1.mac, tpa: vm1.ip }),
        arpFrame({ src, dst: BROADCAST, op: 1, spa: vm1.ip, tpa: vm1.ip }),
        raFrame({ src, saddr: linkLocalOf(src), prefix: 'fd66::' }),
      ];
      const tagged = (src: string) => forged(src).flatMap((f) => [vlanTagged(f, [0]), vlanTagged(f, [5]), vlanTagged(f, [0, 0]), vlanTagged(f, [0], 0x88a8)]);
      sendFrames(x.ns, 'eth0', tagged(x.mac), 3);
      sendFrames(vm2.ns, 'eth0', tagged(vm2.mac), 3);
      // control: the same priority-tagged frames reach a port nothing protects, and Linux takes them as untagged
      assert.ok(await waitFor(() => neighMac(y.ns, 'eth0', vm1.ip) === x.mac), 'control: the silent stranger took the tagged ARP for vm1\'s address');
      assert.ok(await waitFor(() => ly.poll().has(x.mac)), 'control: and the tagged RA');
      assert.is(neighMac(ns, router.ifname, vm1.ip), vm1.mac, 'router: vm1 is still at vm1');
      assert.is(neighMac(vm1.ns, 'eth0', router.ip), router.mac, 'vm1: the gateway is still the router');
      l1.poll();
      assert.is(l1.sources.has(x.mac), false, 'no tagged RA from the stranger reached vm1');
      assert.is(l1.sources.has(vm2.mac) || ly.sources.has(vm2.mac), false, 'nor from vm2 (a known NIC sends no tagged frame)');
      assert.ok(await reach(vm1.ns, router.ip), 'vm1 still reaches the router');
    } finally {
      l1.close();
      ly.close();
    }
  }, { stop: killRouterDaemons });
});

test('a network without IPv6 on the router: no router advertisement, DHCPv6 or DHCP server reply (from any source port) from vm2 or an unknown MAC reaches vm1; other datagrams do, and an unprotected port gets the RA', async () => {
  await inScratch((s) => vmfTopo(s, { ipv6: false }), async (t, _procs, s) => {
    const { vm1, vm2, router } = t;
    const x = strangerVm(s, t.h, t.bridge, '10.1.1.62');
    const y = strangerVm(s, t.h, t.bridge, '10.1.1.63'); // unknown and silent: its port is not protected
    assert.ok(await reach(vm1.ns, router.ip) && await reach(vm2.ns, router.ip), 'vm1 and vm2 have sent frames: their ports are protected');
    const l1 = new RaListener(vm1.ns);
    const ly = new RaListener(y.ns);
    const ll1 = linkLocalOf(vm1.mac);
    // a server reply is what goes to the client's port (546, 68): DHCP clients do not check the source port
    const arrived = countArrivals(vm1.ns, {
      dhcp6: 'udp dport 546', dhcp4: 'udp dport 68',
      control6: 'udp sport 547 udp dport 5546', control4: 'udp sport 67 udp dport 5068',
    });
    try {
      const frames = (v: { mac: string; ip: string }, sport6: number, dport6: number, sport4: number, dport4: number) => [
        udp6Frame({ src: v.mac, dst: vm1.mac, saddr: linkLocalOf(v.mac), daddr: ll1, sport: sport6, dport: dport6 }),
        udp4Frame({ src: v.mac, dst: vm1.mac, saddr: v.ip, daddr: vm1.ip, sport: sport4, dport: dport4 }),
      ];
      for (const v of [vm2, x]) {
        sendFrames(v.ns, 'eth0', [raFrame({ src: v.mac, saddr: linkLocalOf(v.mac), prefix: 'fd66::' })], 3);
        sendFrames(v.ns, 'eth0', [...frames(v, 547, 546, 67, 68), ...frames(v, 5547, 546, 1067, 68)], 3);
      }
      // controls: the same datagrams from the servers' ports to other ports reach vm1; the RA reaches a port nothing protects
      sendFrames(vm2.ns, 'eth0', frames(vm2, 547, 5546, 67, 5068), 3);
      assert.ok(await waitFor(() => arrived().control6 === 3 && arrived().control4 === 3), `control: vm2's datagrams reached vm1 ${JSON.stringify(arrived())}`);
      assert.ok(await waitFor(() => ly.poll().has(x.mac)), 'control: the stranger\'s RA reaches an unprotected port');
      l1.poll();
      assert.is(l1.sources.has(vm2.mac) || ly.sources.has(vm2.mac), false, 'vm2\'s RA reached no one');
      assert.is(l1.sources.has(x.mac), false, 'the stranger\'s RA did not reach vm1');
      assert.is(arrived().dhcp6, 0, 'no DHCPv6 reply reached vm1');
      assert.is(arrived().dhcp4, 0, 'no DHCP reply reached vm1');
      assert.is(nsTry(vm1.ns, ['ip', '-6', 'addr']).stdout.includes('fd66:'), false, 'vm1 took no address from a forged prefix');
    } finally {
      l1.close();
      ly.close();
    }
  }, { stop: killRouterDaemons });
});

/** A guest taking over `ip` (and `mac`, when given) as its own; its next packets ask for the router's MAC again. */
function takeOver(ns: string, ip: string, mac: string): void {
  nsExec(ns, ['ip', 'link', 'set', 'eth0', 'address', mac]);
  nsExec(ns, ['ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  nsExec(ns, ['ip', 'neigh', 'flush', 'all']);
}
function giveBack(ns: string, ip: string, mac: string): void {
  nsExec(ns, ['ip', 'addr', 'del', `${ip}/24`, 'dev', 'eth0']);
  nsExec(ns, ['ip', 'link', 'set', 'eth0', 'address', mac]);
  nsExec(ns, ['ip', 'neigh', 'flush', 'all']);
}

test('strict network: vm2 with vm1\'s MAC and address reads none of vm1\'s data and cannot consume its password; vm1 gets it. Not strict, vm1 away: the documented limit', async () => {
  await inScratch((s) => vmfTopo(s, { strict: true }), async (t) => {
    const { vm1, vm2, router, engine, net, h } = t;
    const rows = [
      { dir: 'userdata', file: 'user-data', content: 'secret_of: vm1\n' },
      { dir: 'metadata', file: 'instance-id', content: 'i-vm1' },
      { dir: 'password', file: 'vm_password', content: 'Pw-of-vm1' },
    ];
    await runCommand(engine, { command: 'save-vm-data', ...net, ip: vm1.ip, vmData: { value: rows, source: 'payload.vm_data' } } as T.SaveVmDataRequest);
    await runCommand(engine, { command: 'save-vm-data', ...net, ip: vm2.ip, vmData: { value: [{ dir: 'metadata', file: 'instance-id', content: 'i-vm2' }], source: 'payload.vm_data' } } as T.SaveVmDataRequest);
    const pending = () => existsSync(join(vmDir(t.stateDir, t.ns, vm1.ip), 'password-1'));
    assert.ok(await reach(vm1.ns, router.ip), 'vm1 is up: its MAC is bound to its port');
    assert.equal(guestGet(vm1.ns, `http://${router.ip}/latest/meta-data/instance-id`), { status: 200, body: 'i-vm1' }, 'control: vm1 reads its own');
    assert.equal(guestGet(vm2.ns, `http://${router.ip}/latest/meta-data/instance-id`), { status: 200, body: 'i-vm2' }, 'control: vm2 reads its own');
    // vm2 becomes vm1: its MAC and address
    takeOver(vm2.ns, vm1.ip, vm1.mac);
    const spoof = { from: vm1.ip };
    for (const path of ['/latest/user-data', '/latest/meta-data/instance-id']) {
      const r = guestGet(vm2.ns, `http://${router.ip}${path}`, {}, spoof);
      assert.not.match(r.body, /vm1/, `${path}: nothing of vm1 (${r.status})`);
    }
    assert.not.match(passwordRequest(vm2.ns, router.ip, 'send_my_password', spoof).body, 'Pw-of-vm1');
    passwordRequest(vm2.ns, router.ip, 'saved_password', spoof);
    assert.ok(pending(), 'vm1\'s password is still pending');
    giveBack(vm2.ns, vm1.ip, vm2.mac);
    // control: vm1 (still on its port) gets its password, once
    nsExec(vm1.ns, ['ip', 'neigh', 'flush', 'all']);
    assert.equal(passwordRequest(vm1.ns, router.ip, 'send_my_password'), { status: 200, body: 'Pw-of-vm1' }, 'vm1 gets its password');
    assert.equal(passwordRequest(vm1.ns, router.ip, 'saved_password'), { status: 200, body: 'saved_password' });
    assert.not.ok(pending(), 'acknowledged by vm1');

    // the limit (docs/vm-filter.md, docs/metadata.md): not strict, vm1's VM away — vm2 with its MAC and address is vm1
    await runCommand(engine, { command: 'save-password', ...net, ip: vm1.ip, password: 'Pw2-of-vm1', vmFilterStrict: false } as T.SavePasswordRequest);
    h.netlink.linkSetDown(vm1.port);
    takeOver(vm2.ns, vm1.ip, vm1.mac);
    assert.ok(await waitFor(() => guestGet(vm2.ns, `http://${router.ip}/latest/meta-data/instance-id`, {}, spoof).body === 'i-vm1', 5000), 'not strict: served');
    assert.equal(passwordRequest(vm2.ns, router.ip, 'send_my_password', spoof).body, 'Pw2-of-vm1', 'not strict: the password too');
  }, { stop: killRouterDaemons });
});

test('DHCP as another VM: a forged RELEASE or DECLINE of vm1\'s reservation (its MAC as chaddr, from vm2 or a stranger, from port 68 or another) changes nothing; vm1\'s own DECLINE from another port does (the control)', async () => {
  await inScratch((s) => vmfTopo(s), async (t, _procs, s) => {
    const { vm1, vm2, router } = t;
    const x = strangerVm(s, t.h, t.bridge, '10.1.1.60');
    assert.is(udhcpc(vm1.ns)?.ip, vm1.ip, 'control: vm1 leases its reservation');
    const message = (src: string, type: number, from?: { ip: string; sport: number }) => dhcpClientFrame({
      src, chaddr: vm1.mac, type, requested: vm1.ip, server: router.ip, ciaddr: type === 7 ? vm1.ip : undefined,
      // dnsmasq takes a client message from any source port, unicast to it as well as broadcast
      ...(from ? { saddr: from.ip, daddr: router.ip, dst: router.mac, sport: from.sport } : {}),
    });
    const senders = [[vm2.ns, vm2.mac, undefined], [x.ns, x.mac, undefined], [vm2.ns, vm2.mac, { ip: vm2.ip, sport: 6868 }], [x.ns, x.mac, { ip: x.ip, sport: 6868 }]] as const;
    for (const [from, mac, via] of senders) {
      const how = `${mac}${via ? ` (port ${via.sport})` : ''}`;
      sendFrames(from, 'eth0', [message(mac, 7, via)], 2);
      await new Promise((r) => setTimeout(r, 300));
      assert.is(udhcpc(vm1.ns)?.ip, vm1.ip, `after a forged RELEASE from ${how} vm1 still leases its reservation`);
      // dnsmasq withholds a declined static address for 10 minutes: the filter drops a DECLINE whose chaddr is a
      // known NIC's MAC from another MAC (docs/vm-filter.md)
      sendFrames(from, 'eth0', [message(mac, 4, via)], 2);
      await new Promise((r) => setTimeout(r, 300));
      assert.is(udhcpc(vm1.ns)?.ip, vm1.ip, `after a forged DECLINE from ${how} vm1 still leases its reservation`);
    }
    // control: the same DECLINE from vm1 itself, from port 6868, reaches dnsmasq, which withholds the address
    sendFrames(vm1.ns, 'eth0', [message(vm1.mac, 4, { ip: vm1.ip, sport: 6868 })], 2);
    await new Promise((r) => setTimeout(r, 300));
    assert.is(udhcpc(vm1.ns, { tries: 2 }), undefined, 'control: after its own DECLINE vm1 gets no lease');
  }, { stop: killRouterDaemons });
});

test('strict network: vm2 lying in its neighbour advertisements (its link-local address at vm1\'s MAC) reads none of vm1\'s data on [fe80::a9fe:a9fe]; the same program telling the truth reads its own, and without the filter the lie reads vm1\'s', async () => {
  await inScratch((s) => vmfTopo(s, { strict: true }), async (t) => {
    const { vm1, vm2, router, engine, net } = t;
    const save = (ip: string, who: string, extra: Partial<T.SaveVmDataRequest> = {}) => runCommand(engine, {
      command: 'save-vm-data', ...net, ip, ...extra,
      vmData: { value: [{ dir: 'userdata', file: 'user-data', content: `secret_of: ${who}\n` }, { dir: 'metadata', file: 'instance-id', content: `i-${who}` }], source: 'payload.vm_data' },
    } as T.SaveVmDataRequest);
    await save(vm1.ip, 'vm1');
    await save(vm2.ip, 'vm2');
    assert.ok(await reach(vm1.ns, router.ip) && await reach(vm2.ns, router.ip), 'both VMs up: their ports learned');
    const llReady = (vns: string) => /inet6 fe80::[0-9a-f:]+\/64 scope link\s*\n/.test(nsTry(vns, ['ip', '-6', 'addr', 'show', 'dev', 'eth0']).stdout);
    assert.ok(await waitFor(() => llReady(vm1.ns) && llReady(vm2.ns), 10_000), 'link-local addresses ready');
    assert.equal(guestGet(vm1.ns, 'http://[fe80::a9fe:a9fe%25eth0]/latest/user-data'), { status: 200, body: 'secret_of: vm1\n' }, 'control: vm1 reads its own');
    const steal = (lie: boolean) => nsTry(vm2.ns, [process.execPath, join(process.cwd(), 'dist', 'test', 'helpers', 'll-steal.js'), vm2.mac, vm1.mac, '/latest/user-data', lie ? '1' : '0'], 20_000).stdout;
    assert.match(steal(false), /secret_of: vm2/, 'control: the program telling the truth reads vm2\'s own data');
    assert.not.match(steal(true), /vm1/, 'lying, it reads nothing of vm1\'s');
    // control: the filter off, the same lie makes vm2 vm1 to the metadata service (what the filter prevents)
    await save(vm2.ip, 'vm2', { vmFilter: false, vmFilterStrict: false });
    assert.ok(await waitFor(() => filterTable(t.hostNs, t.ns) === ''), 'the filter is off');
    assert.match(steal(true), /secret_of: vm1/, 'control: without the filter the lie reads vm1\'s data');
  }, { stop: killRouterDaemons });
});

test('neighbour discovery naming vm1\'s MAC: vm2\'s or a stranger\'s NA, NS and RS with it as link-layer address (the only option, or after a nonce) leave the router\'s entries alone; honest ones set them, an unprotected port takes the lies, and the kernels\' own DAD, resolution and solicitation pass', async () => {
  await inScratch((s) => vmfTopo(s), async (t, _procs, s) => {
    const { vm1, vm2, router, ns } = t;
    const x = strangerVm(s, t.h, t.bridge, '10.1.1.64');
    const y = strangerVm(s, t.h, t.bridge, '10.1.1.65'); // unknown and silent: its port is not protected
    assert.ok(await reach(vm1.ns, router.ip) && await reach(vm2.ns, router.ip) && await reach(x.ns, router.ip), 'ports learned');
    // the router's link-local address (neighbour solicitations are for it) once it has passed DAD
    const lladdr = (vns: string) => /inet6 (fe80::[0-9a-f:]+)\/64 scope link\s*\n/.exec(nsTry(vns, ['ip', '-6', 'addr', 'show', 'dev', vns === ns ? router.ifname : 'eth0']).stdout)?.[1];
    assert.ok(await waitFor(() => lladdr(ns) !== undefined && lladdr(vm1.ns) !== undefined && lladdr(y.ns) !== undefined, 10_000), 'link-local addresses ready');
    const routerLl = lladdr(ns)!;
    const yLl = lladdr(y.ns)!;
    const vm1Ll = lladdr(vm1.ns)!;
    const DUMMY = '02:de:ad:00:00:07';
    const nonce = ndOption(ND_NONCE, '5a:5a:5a:5a:5a:5a');
    // each probe speaks for a link-local address of its own (link-local sources are not bound to a NIC), so that
    // one entry of the router's table shows what one probe did
    const kinds = ['na', 'ns', 'rs'] as const;
    const probe = (src: string, saddr: string, kind: typeof kinds[number], lla: string, nonceFirst: boolean) => {
      const opt = (type: number) => (nonceFirst ? [nonce, ndOption(type, lla)] : [ndOption(type, lla)]);
      if (kind === 'na') return naFrame({ src, saddr, target: saddr, options: opt(ND_TLLA) });
      if (kind === 'ns') return nsFrame({ src, saddr, target: routerLl, options: opt(ND_SLLA) });
      return rsFrame({ src, saddr, options: opt(ND_SLLA) });
    };
    type Probe = { ns: string; who: string; src: string; addr: string; kind: typeof kinds[number]; nonceFirst: boolean };
    const lies: Probe[] = [];
    const honest: Probe[] = [];
    for (const [i, v] of [vm2, x].entries()) {
      const who = v === vm2 ? 'vm2' : 'stranger';
      kinds.forEach((kind, k) => {
        for (const nonceFirst of [false, true]) lies.push({ ns: v.ns, who, src: v.mac, addr: `fe80::5:1${i}${k}${nonceFirst ? 1 : 0}`, kind, nonceFirst });
        honest.push({ ns: v.ns, who, src: v.mac, addr: `fe80::6:1${i}${k}`, kind, nonceFirst: false });
      });
    }
    const what = (p: Probe) => `${p.who}'s ${p.kind}${p.nonceFirst ? ' after a nonce' : ''}`;
    // entries the lies would change (to vm1's MAC), entries the honest messages set (from a wrong MAC)
    for (const l of lies) setNeigh(ns, router.ifname, l.addr, l.src);
    for (const h of honest) setNeigh(ns, router.ifname, h.addr, DUMMY);
    for (const l of lies) sendFrames(l.ns, 'eth0', [probe(l.src, l.addr, l.kind, vm1.mac, l.nonceFirst)], 3);
    // controls: the same messages naming the sender's own MAC set the router's entries
    for (const h of honest) sendFrames(h.ns, 'eth0', [probe(h.src, h.addr, h.kind, h.src, false)], 3);
    for (const h of honest) assert.ok(await waitFor(() => neighMac(ns, router.ifname, h.addr) === h.src), `control: ${what(h)} naming itself set the router's entry`);
    // control: Linux takes a link-layer option after a nonce — the stranger's lies reach a port nothing protects
    const lx = lies.filter((l) => l.who === 'stranger' && l.nonceFirst);
    setNeigh(y.ns, 'eth0', lx[0].addr, x.mac);
    sendFrames(x.ns, 'eth0', [
      naFrame({ src: x.mac, saddr: lx[0].addr, target: lx[0].addr, dst: y.mac, daddr: yLl, options: [nonce, ndOption(ND_TLLA, vm1.mac)] }),
      nsFrame({ src: x.mac, saddr: lx[1].addr, target: yLl, options: [nonce, ndOption(ND_SLLA, vm1.mac)] }),
    ], 3);
    assert.ok(await waitFor(() => neighMac(y.ns, 'eth0', lx[0].addr) === vm1.mac), 'control: y took the NA\'s link-layer address after a nonce');
    assert.ok(await waitFor(() => neighMac(y.ns, 'eth0', lx[1].addr) === vm1.mac), 'control: and the NS\'s');
    await new Promise((r) => setTimeout(r, 300));
    const changed = lies.filter((l) => neighMac(ns, router.ifname, l.addr) !== l.src).map((l) => `${what(l)} → ${neighMac(ns, router.ifname, l.addr)}`);
    assert.equal(changed, [], 'no lie changed the router\'s entries');

    // the kernels' own neighbour discovery: DAD (its probe carries a nonce) and the answer to it, address resolution
    // both ways, a router solicitation with the source's link-layer address
    const sent = countOnBridge(t.hostNs, { dad: `iifname "${vm1.port}" ip6 saddr :: icmpv6 type nd-neighbor-solicit ip6 length 32` });
    const rs = countArrivals(ns, { rs: `ether saddr ${vm1.mac} icmpv6 type nd-router-solicit ip6 length 16` });
    nsExec(vm2.ns, ['ip', '-6', 'addr', 'add', 'fe80::77/64', 'dev', 'eth0', 'nodad']);
    nsExec(vm1.ns, ['ip', '-6', 'addr', 'add', 'fe80::77/64', 'dev', 'eth0']);
    assert.ok(await waitFor(() => nsTry(vm1.ns, ['ip', '-6', 'addr', 'show', 'dev', 'eth0']).stdout.includes('dadfailed')), 'vm1\'s DAD probe reached vm2, whose answer reached vm1');
    assert.ok(sent().dad > 0, 'the probe carried a nonce (a 32-byte message)');
    assert.ok(nsTry(vm1.ns, ['ping', '-6', '-c', '1', '-W', '2', `${routerLl}%eth0`]).status === 0, 'vm1 → the router\'s link-local address');
    assert.is(neighMac(ns, router.ifname, vm1Ll), vm1.mac, 'the router resolved vm1\'s link-local address');
    nsExec(vm1.ns, ['ip', 'link', 'set', 'eth0', 'down']);
    nsExec(vm1.ns, ['ip', 'link', 'set', 'eth0', 'up']);
    assert.ok(await waitFor(() => rs().rs > 0, 10_000), 'vm1\'s router solicitation (with its link-layer address) reached the router');
  }, { stop: killRouterDaemons });
});

test.run();
