/**
 * The fast way of NAT commands (lib/router/fast-change.ts) on the real kernel: a static NAT added the fast way
 * carries real traffic from upstream to the VM (its address left the veth for the ARP responder), one deleted
 * the fast way no longer does (a static NAT made the full way is the positive control), and a map element deleted
 * by hand (a commit that is not ours) sends the next command the full way, which repairs it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RouterEngine } from '../../lib/router/engine.js';
import { publicAttachments } from '../../lib/router/topology.js';
import { inScratch, nsExec, uid, waitFor, addressesOf } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { runCommand } from '../../lib/router/command-table.js';
import { isolatedTopo, openIngress, servers, serversUp, tcpOk, UP_A, cidr } from '../helpers/fw.js';

requireSandbox();

const randomId = () => String(1000 + (parseInt(uid(4), 16) % 9000));


test('fast way: a static NAT added carries traffic, one deleted does not, a hand edit is repaired by the full way', async () => {
  await inScratch((s) => isolatedTopo(s, randomId()), async (t, procs) => {
    const { net, ns, P, P2, upNs, vm1, vm2, hostNs, stateDir } = t;
    // an engine that keeps even this small router warm (the default waits for 256 NAT entries)
    const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' }, fastNat: { minEntries: 0 } });
    const veth = publicAttachments(engine.store.load(ns)!)[0].nsVeth;
    procs.push(...servers(vm1, [22], []), ...servers(vm2, [22], []));
    assert.ok(await serversUp(vm1, [22], []) && await serversUp(vm2, [22], []));
    const P3 = '203.0.113.12';
    await openIngress(engine, net, [{ ip: P2, protocol: 'tcp', ports: [22, 22] }, { ip: P3, protocol: 'tcp', ports: [22, 22] }]);
    await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: P3, segment: { kind: 'untagged' }, gateway: UP_A, cidr: cidr('203.0.113.0/24'), sourceNat: false } });
    assert.equal(addressesOf(ns, veth), [P, P3].sort(), 'P3 is an address of the veth before its static NAT');

    await runCommand(engine, { command: 'add-static-nat', ...net, publicIp: { ip: P3, sourceNat: false }, privateIp: '10.1.1.10' });
    assert.is(engine.lastReconcile, 'fast', 'added the fast way');
    assert.equal(addressesOf(ns, veth), [P], 'P3 left the veth for the ARP responder');
    assert.ok(await waitFor(() => tcpOk(upNs, P3, 22), 5000), 'tcp to P3 reaches vm1 through the static NAT added the fast way');
    assert.ok(tcpOk(upNs, P2, 22), 'positive control: P2 (static NAT made the full way) reaches vm2');

    await runCommand(engine, { command: 'delete-static-nat', ...net, publicIp: { ip: P3, sourceNat: false } });
    assert.is(engine.lastReconcile, 'fast', 'deleted the fast way');
    assert.equal(addressesOf(ns, veth), [P, P3].sort(), 'P3 back on the veth');
    assert.not.ok(tcpOk(upNs, P3, 22), 'P3 no longer translated to vm1');
    assert.ok(tcpOk(upNs, P2, 22), 'positive control: P2 still reaches vm2');

    await runCommand(engine, { command: 'add-static-nat', ...net, publicIp: { ip: P3, sourceNat: false }, privateIp: '10.1.1.10' });
    assert.is(engine.lastReconcile, 'fast');
    assert.ok(await waitFor(() => tcpOk(upNs, P3, 22), 5000), 'translated again');
    // a hand edit: someone deletes the map element (a commit that is not ours)
    nsExec(ns, ['nft', 'delete', 'element', 'inet', 'netns_router', 'static_dnat', `{ ${P3} }`]);
    assert.not.ok(tcpOk(upNs, P3, 22), 'the hand edit broke P3');
    await runCommand(engine, { command: 'add-port-forward', ...net, publicIp: { ip: P, sourceNat: true }, protocol: 'tcp', publicPorts: { start: 2222, end: 2222 }, privateIp: '10.1.1.11', privatePorts: { start: 22, end: 22 } });
    assert.is(engine.lastReconcile, 'full', 'the nftables generation moved: the full way');
    assert.is(engine.lastNftSync?.mode, 'replace', 'which replaced the tables');
    assert.ok(await waitFor(() => tcpOk(upNs, P3, 22), 5000), 'P3 repaired');
    assert.ok(tcpOk(upNs, P2, 22), 'P2 still fine');
    // warm again: the next NAT command takes the fast way, and the state everyone reads holds all of it
    await runCommand(engine, { command: 'delete-port-forward', ...net, publicIp: { ip: P, sourceNat: true }, protocol: 'tcp', publicPorts: { start: 2222, end: 2222 }, privateIp: '10.1.1.11', privatePorts: { start: 22, end: 22 } });
    assert.is(engine.lastReconcile, 'fast');
    const m = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } }).store.load(ns)!;
    assert.equal(m.staticNats.map((x) => x.publicIp).sort(), [P2, P3].sort());
    assert.not.ok(m.portForwards.some((p) => p.publicPorts[0] === 2222));
  });
});

test.run();
