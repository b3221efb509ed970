/**
 * Cold NAT commands (EngineOptions.natScope, docs/reconcile.md "Cold NAT commands") on the real kernel: a NAT
 * change in a process without a resident engine reconciles only what it touches — a static NAT added that way
 * carries traffic from upstream (its address left the veth for the ARP responder), one deleted no longer does
 * (the static NAT made in full is the positive control) — while drift in what it owns (a map element, an address
 * of the veth) sends it the full way, which repairs it; drift outside (the namespace's ip_forward) waits for the
 * next full reconcile, which a cold CLI process runs for any other command, a re-sent one included.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RouterEngine } from '../../lib/router/engine.js';
import { publicAttachments } from '../../lib/router/topology.js';
import { inScratch, nsExec, uid, waitFor, addressesOf } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { runCommand } from '../../lib/router/command-table.js';
import { isolatedTopo, openIngress, servers, serversUp, tcpOk, UP_A, cidr } from '../helpers/fw.js';
import { routerCli } from '../helpers/router-cli.js';
import { ArpTap } from '../helpers/arp.js';

requireSandbox();

const randomId = () => String(1000 + (parseInt(uid(4), 16) % 9000));
const P3 = '203.0.113.12';

test('cold NAT commands: scoped add/delete carry traffic; drift in what they own goes the full way and is repaired', async () => {
  await inScratch((s) => isolatedTopo(s, randomId()), async (t, procs) => {
    const { net, ns, P, P2, upNs, vm1, vm2, hostNs, stateDir } = t;
    // a cold CLI process's engine (cli/entry.ts): nothing kept warm, NAT changes scoped
    const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' }, fastNat: false, natScope: true });
    const veth = publicAttachments(engine.store.load(ns)!)[0].nsVeth;
    procs.push(...servers(vm1, [22], []), ...servers(vm2, [22], []));
    assert.ok(await serversUp(vm1, [22], []) && await serversUp(vm2, [22], []));
    await openIngress(engine, net, [{ ip: P2, protocol: 'tcp', ports: [22, 22] }, { ip: P3, protocol: 'tcp', ports: [22, 22] }, { ip: P, protocol: 'tcp', ports: [2222, 2222] }]);
    await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: P3, segment: { kind: 'untagged' }, gateway: UP_A, cidr: cidr('203.0.113.0/24'), sourceNat: false } });
    assert.is(engine.lastReconcile, 'full', 'a public IP is not a NAT change: the whole router');
    assert.equal(addressesOf(ns, veth), [P, P3].sort(), 'P3 is an address of the veth before its static NAT');

    const mac = publicAttachments(engine.store.load(ns)!)[0].nsMac!;
    const tap = ArpTap.open(upNs, 'up0');
    try {
      assert.is(tap.ask(P3, UP_A)?.senderMac, mac, 'P3 answered by the router (its address) before');
      await runCommand(engine, { command: 'add-static-nat', ...net, publicIp: { ip: P3, sourceNat: false }, privateIp: '10.1.1.10' });
      assert.is(engine.lastReconcile, 'scoped', 'added in its scope');
      assert.equal(addressesOf(ns, veth), [P], 'P3 left the veth for the ARP responder');
      assert.is(tap.ask(P3, UP_A)?.senderMac, mac, 'P3 answered by the ARP responder, with the same MAC');
      assert.ok(await waitFor(() => tcpOk(upNs, P3, 22), 5000), 'tcp to P3 reaches vm1 through the static NAT added in its scope');
      assert.ok(tcpOk(upNs, P2, 22), 'positive control: P2 (static NAT made in full) reaches vm2');

      await runCommand(engine, { command: 'delete-static-nat', ...net, publicIp: { ip: P3, sourceNat: false } });
      assert.is(engine.lastReconcile, 'scoped', 'deleted in its scope');
      assert.equal(addressesOf(ns, veth), [P, P3].sort(), 'P3 back on the veth');
      assert.is(tap.ask(P3, UP_A)?.senderMac, mac, 'P3 answered by the router again, with the same MAC');
    } finally {
      tap.close();
    }
    assert.not.ok(tcpOk(upNs, P3, 22), 'P3 no longer translated to vm1');
    assert.ok(tcpOk(upNs, P2, 22), 'positive control: P2 still reaches vm2');

    await runCommand(engine, { command: 'add-static-nat', ...net, publicIp: { ip: P3, sourceNat: false }, privateIp: '10.1.1.10' });
    assert.is(engine.lastReconcile, 'scoped');
    assert.ok(await waitFor(() => tcpOk(upNs, P3, 22), 5000), 'translated again');

    // drift in what a NAT command owns, 1: someone deletes the map element (a commit that is not ours)
    nsExec(ns, ['nft', 'delete', 'element', 'inet', 'netns_router', 'static_dnat', `{ ${P3} }`]);
    assert.not.ok(tcpOk(upNs, P3, 22), 'the hand edit broke P3');
    const pf = { ...net, publicIp: { ip: P, sourceNat: true }, protocol: 'tcp' as const, publicPorts: { start: 2222, end: 2222 }, privateIp: '10.1.1.11', privatePorts: { start: 22, end: 22 } };
    await runCommand(engine, { command: 'add-port-forward', ...pf });
    assert.is(engine.lastReconcile, 'full', 'the nftables generation moved: the full reconcile');
    assert.is(engine.lastNftSync?.mode, 'replace', 'which replaced the tables');
    assert.ok(await waitFor(() => tcpOk(upNs, P3, 22), 5000), 'P3 repaired');
    assert.ok(tcpOk(upNs, P2, 22), 'P2 still fine');

    // 2: someone removes the source NAT address from the veth
    nsExec(ns, ['ip', 'addr', 'del', `${P}/24`, 'dev', veth]);
    assert.not.ok(addressesOf(ns, veth).includes(P));
    await runCommand(engine, { command: 'delete-port-forward', ...pf });
    assert.is(engine.lastReconcile, 'full', 'the namespace side is not as planned: the full reconcile');
    assert.ok(addressesOf(ns, veth).includes(P), 'P back on the veth');

    // in order again: the next NAT change is scoped, and the state everyone reads holds all of it
    await runCommand(engine, { command: 'add-port-forward', ...pf });
    assert.is(engine.lastReconcile, 'scoped');
    assert.ok(await waitFor(() => tcpOk(upNs, P, 2222), 5000), 'the port forward added in its scope reaches vm2');
    const m = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } }).store.load(ns)!;
    assert.equal(m.staticNats.map((x) => x.publicIp).sort(), [P2, P3].sort());
    assert.ok(m.portForwards.some((p) => p.publicPorts[0] === 2222));
  });
});

test('cold CLI: drift outside a NAT command\'s scope waits for the next full reconcile (any other command, a re-sent one too)', async () => {
  await inScratch((s) => isolatedTopo(s, randomId()), async (t, procs) => {
    const { net, ns, P2, upNs, vm1, vm2, hostNs, stateDir, engine } = t;
    const cli = routerCli(stateDir, `${stateDir}/cli.log`, hostNs);
    const run = (args: string[]) => {
      const r = cli(args);
      assert.is(r.status, 0, `${args[0]}: ${r.stderr}`);
    };
    procs.push(...servers(vm1, [22], []), ...servers(vm2, [22], []));
    assert.ok(await serversUp(vm1, [22], []) && await serversUp(vm2, [22], []));
    await openIngress(engine, net, [{ ip: P2, protocol: 'tcp', ports: [22, 22] }, { ip: P3, protocol: 'tcp', ports: [22, 22] }]);
    await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: P3, segment: { kind: 'untagged' }, gateway: UP_A, cidr: cidr('203.0.113.0/24'), sourceNat: false } });
    assert.ok(await waitFor(() => tcpOk(upNs, P2, 22), 5000), 'positive control: P2 reaches vm2');

    // drift outside what a NAT command owns: forwarding turned off in the router's namespace
    nsExec(ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=0']);
    assert.not.ok(tcpOk(upNs, P2, 22), 'the drift is real: P2 no longer reaches vm2');
    const nat = ['add-static-nat', '--network-id', net.networkId, '--public-ip', P3, '--private-ip', '10.1.1.10'];
    run(nat);
    assert.is(nsExec(ns, ['sysctl', '-n', 'net.ipv4.ip_forward']).trim(), '0', 'a cold NAT command leaves the rest of the router alone');
    assert.not.ok(tcpOk(upNs, P2, 22), 'P2 still broken');

    // the same command again changes nothing, so it is not a NAT change: the whole router, repaired
    run(nat);
    assert.is(nsExec(ns, ['sysctl', '-n', 'net.ipv4.ip_forward']).trim(), '1', 're-sent, the command reconciled the whole router');
    assert.ok(await waitFor(() => tcpOk(upNs, P2, 22), 5000), 'P2 reaches vm2 again');
    assert.ok(await waitFor(() => tcpOk(upNs, P3, 22), 5000), 'and P3, added by the cold NAT command, reaches vm1');

    // and a NAT change by a cold CLI process is scoped: the drift again, a deletion leaves it
    nsExec(ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=0']);
    run(['delete-static-nat', '--network-id', net.networkId, '--public-ip', P3]);
    assert.is(nsExec(ns, ['sysctl', '-n', 'net.ipv4.ip_forward']).trim(), '0', 'the deletion was scoped');
    assert.ok(addressesOf(ns, publicAttachments(engine.store.load(ns)!)[0].nsVeth).includes(P3), 'P3 back on the veth');
    // any other command repairs it (here a firewall change)
    await openIngress(engine, net, [{ ip: P2, protocol: 'tcp', ports: [22, 22] }]);
    assert.is(nsExec(ns, ['sysctl', '-n', 'net.ipv4.ip_forward']).trim(), '1', 'an unscoped command reconciled the whole router');
    assert.ok(await waitFor(() => tcpOk(upNs, P2, 22), 5000), 'P2 reaches vm2');
  });
});

test.run();
