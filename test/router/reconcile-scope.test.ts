/**
 * Reconcile scopes (docs/reconcile.md): a pbr-* action reconciles only policy routing, yet repairs what drifted
 * in what it owns (its tables' routes and rules), leaves everything else working (source NAT through the router,
 * real TCP), and falls back to the full reconcile when a cheap check finds the rest drifted (an address of the
 * router, its nft table) or the change leaves its scope. A destroy answers before the router's links are gone,
 * and they go even when another process still holds the namespace.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { RouterEngine } from '../../lib/router/engine.js';
import { runCommand } from '../../lib/router/command-table.js';
import { defaultModules } from '../../lib/router/default-modules.js';
import { emptyModel } from '../../lib/router/model.js';
import { changedOnlyWithin, tableInputsEqual } from '../../lib/router/reconcile-scope.js';
import { createTable, addRoute, addRule } from '../../lib/router/pbr/module.js';
import { plumbingPlan } from '../../lib/router/topology.js';
import { implementNetwork } from '../../lib/router/core/network-lifecycle.js';
import { assignIp } from '../../lib/router/core/public-ips.js';
import { netnsExists } from '../../lib/netns/namespaces.js';
import { Background } from '../../lib/util/background.js';
import { exitCodeOf } from '../../lib/util/errors.js';
import type * as T from '../../lib/router/contract/types.js';
import { Scratch, addVm, tcpAsk, waitFor, cidr } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();

const ip = (ns: string, ...args: string[]) => spawnSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });

test('pure: a pbr change leaves every module\'s share of the router table alone; the scope check sees changes outside it', () => {
  const m = emptyModel('cs-net-1', 'network', '1');
  implementNetwork(m, { command: 'implement-network', networkId: '1', namespace: 'cs-net-1', segment: { kind: 'vxlan', vni: 5001 }, gateway: '10.1.1.1', cidr: cidr('10.1.1.0/24') }, { guest: 'eth1', public: 'eth1' });
  assignIp(m, { command: 'assign-ip', networkId: '1', namespace: 'cs-net-1', publicIp: { ip: '203.0.113.10', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: true } }, { guest: 'eth1', public: 'eth1' });
  const after = structuredClone(m);
  createTable(after, 100, 'alt');
  addRoute(after, 'alt', 'default via 203.0.113.2');
  addRule(after, 'alt', 'from 10.1.1.0/24 priority 100');
  const mods = defaultModules();
  assert.ok(tableInputsEqual(mods, m, after), 'no module compiles the pbr slot into the router table');
  assert.ok(changedOnlyWithin(m, after, { modules: ['pbr'] }));
  assert.not.ok(changedOnlyWithin(m, after, { modules: ['firewall'] }), 'the pbr slot is outside a firewall scope');
  const nat = structuredClone(after);
  nat.staticNats.push({ publicIp: '203.0.113.11', privateIp: '10.1.1.11' });
  assert.not.ok(changedOnlyWithin(after, nat, { modules: ['pbr'] }), 'a static NAT is outside the pbr scope');
});

/** A router with source NAT between two upstream gateways (each answers TCP with its name), and a VM behind it. */
async function setup(s: Scratch, dir: string, procs: Array<{ kill: () => void }>, background?: Background) {
  const id = String(3000 + Math.floor(Math.random() * 6000));
  const ns = s.track(`cs-net-${id}`);
  const hostNs = s.ns('host');
  const h = s.handle(hostNs);
  h.netlink.linkAdd({ kind: 'bridge', name: 'pub', up: true });
  h.netlink.linkAdd({ kind: 'veth', name: 'eth1', up: true, master: 'pub', peer: { name: 'eth1p', up: true } });
  for (const [name, gw] of [['up1', '203.0.113.1'], ['up2', '203.0.113.2']] as const) {
    const u = s.ns(name);
    h.netlink.linkAdd({ kind: 'veth', name: `h${name}`, master: 'pub', up: true, peer: { name: 'wan', namespace: { netns: u }, up: true } });
    const uh = s.handle(u);
    uh.netlink.linkSetUp('lo');
    uh.netlink.addrAdd({ dev: 'wan', address: `${gw}/24` });
    uh.netlink.addrAdd({ dev: 'lo', address: '198.51.100.1/32' });
    procs.push(spawn('ip', ['netns', 'exec', u, 'socat', 'TCP-LISTEN:9000,fork,reuseaddr', `SYSTEM:echo ${name}`], { stdio: 'ignore' }));
  }
  const engine = new RouterEngine({ stateDir: join(dir, 'state'), hostNetns: hostNs, devices: { guest: 'pub', public: 'pub' }, ...(background ? { background } : {}) });
  const net = { networkId: id, namespace: ns };
  await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni: 6000 + Number(id) % 1000 }, gateway: '10.6.0.1', cidr: cidr('10.6.0.0/24') });
  await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.10', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: true } });
  const vxBridge = h.netlink.linkList().find((l) => l.kind === 'bridge' && l.name.startsWith('brvx-'))!.name;
  const vm = addVm(s, h, vxBridge, '10.6.0.10/24', '10.6.0.1');
  const pbr = (builtin: T.BuiltinCustomAction) =>
    runCommand(engine, { command: 'custom-action', ...net, action: builtin.name, actionParams: {}, builtin });
  const via = () => tcpAsk(vm.ns, '198.51.100.1', 9000);
  return { id, ns, h, engine, net, vm, pbr, via };
}

test('pbr actions reconcile only policy routing, repair its drift, keep NAT working; drift elsewhere gets the full reconcile', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-scope-'));
  const procs: Array<{ kill: () => void }> = [];
  try {
    const { ns, engine, pbr, via } = await setup(s, dir, procs);
    await waitFor(() => via() !== '');
    assert.is(via(), 'up1', 'main table: via up1 (source NAT works)');

    await pbr({ name: 'pbr-create-table', tableId: 100, tableName: 'alt' });
    assert.is(engine.lastReconcile, 'scoped');
    await pbr({ name: 'pbr-add-route', table: 'alt', route: 'default via 203.0.113.2' });
    assert.is(engine.lastReconcile, 'scoped');
    await pbr({ name: 'pbr-add-rule', table: 'alt', rule: 'from 10.6.0.0/24 priority 100' });
    assert.is(engine.lastReconcile, 'scoped');
    assert.is(via(), 'up2', 'the rule sends the tier via up2, through the source NAT the scoped commands left alone');
    assert.is(engine.lastNftSync?.operations, 0, 'nothing committed nftables since the last command: no nft transaction at all');
    // someone else's nft commit in the namespace (even of another table) cannot be told from a change of ours:
    // the next command reconciles in full, leaving that table alone; the one after is scoped again
    assert.is(spawnSync('ip', ['netns', 'exec', ns, 'nft', 'add', 'table', 'ip', 'operator_scratch']).status, 0);
    await pbr({ name: 'pbr-add-route', table: 'alt', route: 'default via 203.0.113.2' });
    assert.is(engine.lastReconcile, 'full');
    assert.is(spawnSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'ip', 'operator_scratch']).status, 0, 'the other table left alone');
    await pbr({ name: 'pbr-add-route', table: 'alt', route: 'default via 203.0.113.2' });
    assert.is(engine.lastReconcile, 'scoped');
    assert.is(engine.lastNftSync?.operations, 0);
    assert.is(via(), 'up2');

    // drift in what pbr owns: its route deleted behind our back → the tier falls back to the main table …
    assert.is(ip(ns, 'route', 'del', 'default', 'table', '100').status, 0);
    assert.is(via(), 'up1', 'route gone: via up1');
    // … and any pbr action (here one about another rule) puts it back
    await pbr({ name: 'pbr-add-rule', table: 'alt', rule: 'from 10.99.0.0/24 priority 200' });
    assert.is(engine.lastReconcile, 'scoped');
    assert.is(via(), 'up2', 'route repaired by a scoped command');
    // its rule deleted → repaired by re-sending the route (a no-op change of the model)
    assert.is(ip(ns, 'rule', 'del', 'priority', '100').status, 0);
    assert.is(via(), 'up1', 'rule gone: via up1');
    await pbr({ name: 'pbr-add-route', table: 'alt', route: 'default via 203.0.113.2' });
    assert.is(engine.lastReconcile, 'scoped');
    assert.is(via(), 'up2', 'rule repaired');

    // drift outside the scope, seen by the cheap check: the router's public address removed → egress broken …
    const pubDev = plumbingPlan(engine.store.load(ns)!).attachments.find((a) => a.addresses.includes('203.0.113.10/24'))!.nsVeth;
    assert.is(ip(ns, 'addr', 'del', '203.0.113.10/24', 'dev', pubDev).status, 0);
    assert.is(via(), '', 'public address gone: no egress');
    await pbr({ name: 'pbr-delete-rule', table: 'alt', rule: 'from 10.99.0.0/24 priority 200' });
    assert.is(engine.lastReconcile, 'full', 'the check saw the address missing');
    assert.is(via(), 'up2', 'address (and default route) repaired');

    // the router's nft table deleted (source NAT gone): the stamp check fails → full reconcile
    assert.is(spawnSync('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'netns_router']).status, 0);
    assert.is(via(), '', 'no source NAT: the upstream cannot answer a private address');
    await pbr({ name: 'pbr-add-rule', table: 'alt', rule: 'from 10.6.0.0/24 priority 100' });
    assert.is(engine.lastReconcile, 'full', 'the table stamp did not confirm');
    assert.is(via(), 'up2', 'nft table repaired');

    // a change that leaves its declared scope is reconciled in full
    await engine.changeFor({ command: 'test', namespace: ns, networkId: ns.slice('cs-net-'.length), scope: { modules: ['pbr'] } }, (m) => {
      m.staticNats.push({ publicIp: '203.0.113.10', privateIp: '10.6.0.10' });
    });
    assert.is(engine.lastReconcile, 'full', 'a static NAT is outside the pbr scope');
    const live = spawnSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'inet', 'netns_router'], { encoding: 'utf8' }).stdout;
    assert.match(live, '10.6.0.10', 'the static NAT is in the table');

    // a router whose namespace is gone (reboot) is never "scoped": the full reconcile restores it
    spawnSync('ip', ['netns', 'del', ns]);
    await pbr({ name: 'pbr-delete-rule', table: 'alt', rule: 'from 10.6.0.0/24 priority 100' });
    assert.is(engine.lastReconcile, 'full');
    assert.ok(netnsExists(ns));
    await waitFor(() => via() !== '');
    assert.is(via(), 'up1', 'restored; the rule deleted');
  } finally {
    for (const p of procs) p.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('resident engine (a Background): a pbr action answers after its own objects and the save; the checks of the rest run after the answer, under the lock, and repair drift there', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-scope-'));
  const procs: Array<{ kill: () => void }> = [];
  const errors: unknown[] = [];
  const background = new Background((e) => errors.push(e));
  try {
    const { ns, engine, pbr, via } = await setup(s, dir, procs, background);
    await waitFor(() => via() !== '');
    assert.is(via(), 'up1', 'positive control: the main table routes via up1');
    await pbr({ name: 'pbr-create-table', tableId: 100, tableName: 'alt' });
    await pbr({ name: 'pbr-add-route', table: 'alt', route: 'default via 203.0.113.2' });
    await pbr({ name: 'pbr-add-rule', table: 'alt', rule: 'from 10.6.0.0/24 priority 100' });
    // answered: its own objects are in place and its state saved, whatever the checks after it find
    assert.is(engine.lastReconcile, 'scoped');
    assert.is(via(), 'up2', 'the rule and route are in place when the command returns');
    assert.is(engine.store.load(ns)!.extra!.pbr !== undefined, true);
    await background.settled();
    assert.equal(errors, []);
    assert.is(engine.lastReconcile, 'scoped', 'nothing drifted outside the scope: no full reconcile after the answer');
    assert.is(engine.lastNftSync?.operations, 0, 'the nft generation was unchanged');

    // drift outside the scope: the router's public address removed; the next pbr action answers, then the
    // check after it finds the address missing and reconciles the router in full — under the router's lock
    const pubDev = plumbingPlan(engine.store.load(ns)!).attachments.find((a) => a.addresses.includes('203.0.113.10/24'))!.nsVeth;
    assert.is(ip(ns, 'addr', 'del', '203.0.113.10/24', 'dev', pubDev).status, 0);
    assert.is(via(), '', 'public address gone: no egress');
    await pbr({ name: 'pbr-add-rule', table: 'alt', rule: 'from 10.99.0.0/24 priority 200' });
    if (background.size > 0) {
      const busy = await engine.store.lock(ns, 0).then((release) => { release(); return false; }, (e: { code?: string }) => e.code === 'E_LOCK_TIMEOUT');
      assert.ok(busy, 'router locked while the checks after the answer run');
    }
    await background.settled();
    assert.equal(errors, []);
    assert.is(engine.lastReconcile, 'full', 'the check after the answer saw the address missing');
    assert.is(via(), 'up2', 'address (and default route) repaired; the pbr rule still applies');

    // drift in what the scope's own objects need: the public address gone again, and with it the route through
    // it; re-adding the route fails in the scoped reconcile (no route to 203.0.113.2), so the full reconcile
    // runs before the answer (plumbing first) and the command succeeds
    assert.is(ip(ns, 'addr', 'del', '203.0.113.10/24', 'dev', pubDev).status, 0);
    assert.not.match(ip(ns, 'route', 'show', 'table', '100').stdout, /default/, 'the kernel removed the route with the address');
    await pbr({ name: 'pbr-add-route', table: 'alt', route: 'default via 203.0.113.2' });
    assert.is(engine.lastReconcile, 'full', 'answered after the full reconcile');
    assert.is(via(), 'up2', 'address and route back when the command returns');
    await background.settled();
    assert.equal(errors, []);

    // a refused change still fails and changes nothing: a route through a gateway no interface reaches
    const before = engine.store.read(ns);
    await pbr({ name: 'pbr-add-route', table: 'alt', route: '192.0.2.0/24 via 198.18.0.1' })
      .then(() => assert.unreachable('an unreachable gateway must fail'), (e: unknown) => assert.is(exitCodeOf(e), 2, String(e)));
    await background.settled();
    assert.is(engine.store.read(ns), before, 'state unchanged');
    assert.is(via(), 'up2', 'router as before');
  } finally {
    await background.settled();
    for (const p of procs) p.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('destroy answers before the router\'s links are deleted; they go even while another process holds the namespace', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-scope-'));
  const procs: Array<{ kill: () => void }> = [];
  const errors: unknown[] = [];
  const background = new Background((e) => errors.push(e));
  let held: number | undefined;
  try {
    const { ns, h, engine, net, via } = await setup(s, dir, procs, background);
    await waitFor(() => via() !== '');
    assert.is(via(), 'up1', 'positive control: the router routes');
    const hostVeths = plumbingPlan(engine.store.load(ns)!).attachments.map((a) => a.hostVeth);
    assert.equal(hostVeths.filter((v) => h.netlink.linkFind(v)), hostVeths, 'host ends present before the destroy');
    // another process's hold on the namespace (an operator's shell in it): the namespace outlives its name
    held = openSync(`/run/netns/${ns}`, 'r');
    await runCommand(engine, { command: 'destroy-network', ...net });
    assert.not.ok(netnsExists(ns), 'the namespace is gone by name when the command returns');
    await background.settled();
    assert.equal(errors, []);
    assert.equal(hostVeths.filter((v) => h.netlink.linkFind(v)), [], 'every host end deleted although the namespace is still held');
    assert.is(via(), '', 'nothing routes for the destroyed router');
    // made again under the same id, destroyed, and made again at once, without waiting for the clean-up: it routes
    const implement = () => runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni: 6000 + Number(net.networkId) % 1000 }, gateway: '10.6.0.1', cidr: cidr('10.6.0.0/24') });
    const assign = () => runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.10', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: true } });
    await implement();
    await runCommand(engine, { command: 'destroy-network', ...net });
    // while the links are still being deleted (when the command answered before that ended, as it usually does),
    // the router's lock is held: a command of the router waits
    if (background.size > 0) {
      const busy = await engine.store.lock(ns, 0).then((release) => { release(); return false; }, (e: { code?: string }) => e.code === 'E_LOCK_TIMEOUT');
      assert.ok(busy, 'router locked during the clean-up');
    }
    await implement();
    await assign();
    assert.ok(netnsExists(ns));
    await waitFor(() => via() !== '');
    assert.is(via(), 'up1', 'the router made again right after a destroy routes');
    assert.equal(hostVeths.filter((v) => h.netlink.linkFind(v)), hostVeths, 'its host ends are there');
    await runCommand(engine, { command: 'destroy-network', ...net });
    await background.settled();
    assert.equal(errors, []);
    assert.equal(hostVeths.filter((v) => h.netlink.linkFind(v)), [], 'and gone with the last destroy');
  } finally {
    if (held !== undefined) closeSync(held);
    await background.settled();
    for (const p of procs) p.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
