/**
 * The guest-segment filters of several routers in ONE shared host-side table (`bridge netns_router_vmf`), through
 * the CLI: two routers' filters are independent (a change or destroy of one leaves the other's objects and packet
 * behaviour intact), commands on two routers in parallel processes both land, a per-router table of the previous
 * version is migrated (deleted only when it holds our mark), and objects of a router's prefix that are not ours are
 * refused. (A foreign table of the shared name: vm-filter-lifecycle.test.ts.)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { stripHandles } from '../../lib/nft/listing.js';
import { StateStore } from '../../lib/router/state/store.js';
import { tierAttachment } from '../../lib/router/topology.js';
import { VMFILTER_TABLE, legacyVmfilterTable, ownerMark, vmfilterPrefix } from '../../lib/router/vmfilter/compile.js';
import { Scratch, addVm, inScratch, nsExec, nsTry, simulatedHost, uid, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { killRouterDaemons } from '../helpers/daemons.js';
import { installCounters, readCounters } from '../helpers/fw.js';
import { routerCli } from '../helpers/router-cli.js';
import { sendFrames, udp4Frame } from '../helpers/frames.js';
import { filterSet, filterTable, sharedFilterNames } from '../helpers/vmfilter.js';

requireSandbox();

import { CLI } from '../helpers/router-cli.js';

/** One simulated host, one state directory, routers (networks) on it through the CLI. */
function host(s: Scratch) {
  const { hostNs, h } = simulatedHost(s);
  const dir = mkdtempSync(join(tmpdir(), 'nr-vmfs-'));
  const stateDir = join(dir, 'state');
  const logFile = join(dir, 'log');
  const cli = routerCli(stateDir, logFile, hostNs);
  const run = (args: string[]) => {
    const r = cli(args);
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed (exit ${r.status}): ${r.stderr}`);
    return r;
  };
  /** A network with the same subnet as every other here (10.1.1.0/24), DHCP, one VM with a reservation. */
  const router = (vmMac: string, filtered = true) => {
    const details = filtered ? ['--network-extension-details', '{"vm-filter":"true"}'] : [];
    const id = String(3000 + (parseInt(uid(4), 16) % 6000));
    const ns = s.track(`cs-net-${id}`);
    const vni = 9000 + (Number(id) % 6000);
    const net = ['--network-id', id];
    run(['implement-network', ...net, '--vlan', `vxlan://${vni}`, '--gateway', '10.1.1.1', '--cidr', '10.1.1.0/24', ...details]);
    run(['config-dhcp-subnet', ...net, '--gateway', '10.1.1.1', '--cidr', '10.1.1.0/24', ...details]);
    run(['add-dhcp-entry', ...net, '--mac', vmMac, '--ip', '10.1.1.10']);
    const vm = addVm(s, h, `brvx-${vni}`, '10.1.1.10/24', '10.1.1.1', vmMac);
    const m = new StateStore(stateDir).load(ns)!;
    const routerMac = tierAttachment(m, m.tiers[id]).nsMac!;
    installCounters(ns, [9005]);
    return { id, ns, net, vni, vm: vm.ns, vmMac, routerMac };
  };
  return { hostNs, h, stateDir, workDir: dir, logFile, cli, run, router };
}

type Router = ReturnType<ReturnType<typeof host>['router']>;

/**
 * The router's filter at work: UDP from its VM with a spoofed source address does not reach the router, the same
 * frame with the VM's own address does (the positive control, sent after the spoofs: once it arrived, the spoofs
 * were judged).
 */
async function spoofBlocked(r: Router): Promise<void> {
  const frame = (saddr: string) => udp4Frame({ src: r.vmMac, dst: r.routerMac, saddr, daddr: '10.1.1.1', sport: 4444, dport: 9005 });
  const before = readCounters(r.ns)[9005] ?? 0;
  sendFrames(r.vm, 'eth0', [frame('10.1.1.77')], 5);
  sendFrames(r.vm, 'eth0', [frame('10.1.1.10')], 5);
  assert.ok(await waitFor(() => (readCounters(r.ns)[9005] ?? 0) >= before + 5), `${r.ns}: the VM's own frames arrive (${JSON.stringify(readCounters(r.ns))})`);
  assert.is(readCounters(r.ns)[9005], before + 5, `${r.ns}: the spoofed ones do not`);
}

/** A router's filter objects without handles and without the sets the packet path fills (learned ports). */
function staticFilter(hostNs: string, ns: string): string {
  const doc = JSON.parse(filterTable(hostNs, ns) || '{"nftables":[]}') as { nftables: Array<{ set?: { name: string } }> };
  return JSON.stringify(stripHandles(doc.nftables.filter((o) => !(o.set && /^r[0-9a-f]{10}_(learned|learned_mac|ports_.*)$/.test(o.set.name)))));
}

/** The CLI as a child process (parallel commands): its exit status and stderr. */
function cliAsync(hostNs: string, stateDir: string, logFile: string, args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args, '--host-netns', hostNs, '--state-dir', stateDir, '--log-file', logFile],
      { env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: 'off' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    p.on('close', (status) => resolve({ status, stderr }));
  });
}

test('two routers\' filters in the shared table are independent: a change or destroy of one leaves the other\'s objects and enforcement intact', async () => {
  await inScratch((s) => host(s), async (H) => {
    const a = H.router('02:aa:00:00:01:0a');
    const b = H.router('02:bb:00:00:01:0a');
    const names = sharedFilterNames(H.hostNs);
    assert.ok(names.some((n) => n.startsWith(vmfilterPrefix(a.ns))) && names.some((n) => n.startsWith(vmfilterPrefix(b.ns))), 'both in one table');
    assert.is(nsTry(H.hostNs, ['nft', 'list', 'table', 'bridge', legacyVmfilterTable(a.ns).name]).status === 0, false, 'no per-router table');
    await spoofBlocked(a);
    await spoofBlocked(b);
    const bBefore = staticFilter(H.hostNs, b.ns);
    assert.ok(bBefore.length > 1000, bBefore);
    // A changes: another NIC, a rule set of its own for its VM, a NIC released
    H.run(['add-dhcp-entry', ...a.net, '--mac', '02:aa:00:00:01:0b', '--ip', '10.1.1.11']);
    H.run(['custom-action', ...a.net, '--action', 'vm-filter-set', '--action-params', JSON.stringify({ mac: a.vmMac, rules: JSON.stringify([{ action: 'drop', direction: 'in', protocol: 'tcp', dstport: '23' }]) })]);
    H.run(['remove-dhcp-entry', ...a.net, '--mac', '02:aa:00:00:01:0b']);
    assert.ok(filterTable(H.hostNs, a.ns).includes(`${vmfilterPrefix(a.ns)}in_02aa0000010a`), 'A changed');
    assert.is(staticFilter(H.hostNs, b.ns), bBefore, 'B untouched by A\'s changes');
    await spoofBlocked(a);
    await spoofBlocked(b);
    // A's objects removed by hand behind its back: A's next command replaces its own objects, B's stay as they are
    nsExec(H.hostNs, ['nft', 'delete', 'set', 'bridge', VMFILTER_TABLE.name, `${vmfilterPrefix(a.ns)}contents_stamp`]);
    H.run(['add-dhcp-entry', ...a.net, '--mac', '02:aa:00:00:01:0c', '--ip', '10.1.1.12']);
    assert.ok(JSON.stringify(filterSet(H.hostNs, a.ns, 'nic_mac')).includes('02:aa:00:00:01:0c'));
    assert.is(staticFilter(H.hostNs, b.ns), bBefore, 'B untouched by A\'s replacement');
    await spoofBlocked(a);
    // A destroyed: its objects go, B's stay and keep working
    H.run(['destroy-network', ...a.net]);
    assert.is(filterTable(H.hostNs, a.ns), '', 'A\'s objects gone');
    assert.is(staticFilter(H.hostNs, b.ns), bBefore, 'B untouched by A\'s destroy');
    await spoofBlocked(b);
    // the last router gone: the shared table is left with its mark only
    H.run(['destroy-network', ...b.net]);
    assert.equal(sharedFilterNames(H.hostNs), ['owner']);
  }, { stop: killRouterDaemons });
});

test('commands on two routers in parallel processes both land (each transaction touches only its router\'s objects)', async () => {
  await inScratch((s) => host(s), async (H) => {
    const a = H.router('02:aa:00:00:02:0a');
    const b = H.router('02:bb:00:00:02:0a');
    const mac = (x: string, i: number) => `02:${x}:00:00:03:${(16 + i).toString(16)}`;
    const rounds = 4;
    for (let i = 0; i < rounds; i++) {
      const rs = await Promise.all([
        cliAsync(H.hostNs, H.stateDir, H.logFile, ['add-dhcp-entry', ...a.net, '--mac', mac('aa', i), '--ip', `10.1.1.${20 + i}`]),
        cliAsync(H.hostNs, H.stateDir, H.logFile, ['add-dhcp-entry', ...b.net, '--mac', mac('bb', i), '--ip', `10.1.1.${20 + i}`]),
      ]);
      for (const r of rs) assert.is(r.status, 0, r.stderr);
    }
    // one more round mixing a removal on A with an addition on B
    const rs = await Promise.all([
      cliAsync(H.hostNs, H.stateDir, H.logFile, ['remove-dhcp-entry', ...a.net, '--mac', mac('aa', 0)]),
      cliAsync(H.hostNs, H.stateDir, H.logFile, ['add-dhcp-entry', ...b.net, '--mac', mac('bb', rounds), '--ip', `10.1.1.${20 + rounds}`]),
    ]);
    for (const r of rs) assert.is(r.status, 0, r.stderr);
    const macsA = JSON.stringify(filterSet(H.hostNs, a.ns, 'nic_mac'));
    const macsB = JSON.stringify(filterSet(H.hostNs, b.ns, 'nic_mac'));
    for (let i = 1; i < rounds; i++) assert.ok(macsA.includes(mac('aa', i)), `A has ${mac('aa', i)}: ${macsA}`);
    assert.not.ok(macsA.includes(mac('aa', 0)), 'A\'s removal landed');
    for (let i = 0; i <= rounds; i++) assert.ok(macsB.includes(mac('bb', i)), `B has ${mac('bb', i)}: ${macsB}`);
    assert.not.ok(macsA.includes('02:bb:') || macsB.includes('02:aa:'), 'no mix-up');
    await spoofBlocked(a);
    await spoofBlocked(b);
  }, { stop: killRouterDaemons });
});

test('migration: the previous version\'s per-router table is deleted by the next command (only when it holds our mark)', async () => {
  await inScratch((s) => host(s), async (H) => {
    const a = H.router('02:aa:00:00:04:0a');
    // the host as the previous version left it: no shared table, the router's own table with its mark (and a rule
    // that would drop the VM's frames, so that a table left behind shows in the packets)
    nsExec(H.hostNs, ['nft', 'delete', 'table', 'bridge', VMFILTER_TABLE.name]);
    const legacy = legacyVmfilterTable(a.ns).name;
    const legacyText = (mark: number) => `table bridge ${legacy} {\n set owner { type mark; elements = { ${mark} } }\n`
      + ` chain prerouting { type filter hook prerouting priority -210; ether saddr ${a.vmMac} drop; }\n}\n`;
    nsExec(H.hostNs, ['nft', '-f', '-'], { input: legacyText(ownerMark(a.ns)) });
    H.run(['add-dhcp-entry', ...a.net, '--mac', '02:aa:00:00:04:0b', '--ip', '10.1.1.11']);
    assert.is(nsTry(H.hostNs, ['nft', 'list', 'table', 'bridge', legacy]).status === 0, false, 'the old table is gone');
    assert.ok(JSON.stringify(filterSet(H.hostNs, a.ns, 'nic_mac')).includes('02:aa:00:00:04:0b'), 'the filter is in the shared table');
    await spoofBlocked(a);
    // a table of that name without our mark is not ours: left alone, by commands and by destroy
    nsExec(H.hostNs, ['nft', '-f', '-'], { input: legacyText(12345) });
    nsExec(H.hostNs, ['nft', 'delete', 'set', 'bridge', VMFILTER_TABLE.name, `${vmfilterPrefix(a.ns)}contents_stamp`]);
    H.run(['add-dhcp-entry', ...a.net, '--mac', '02:aa:00:00:04:0c', '--ip', '10.1.1.12']);
    H.run(['destroy-network', ...a.net]);
    assert.is(nsTry(H.hostNs, ['nft', 'list', 'table', 'bridge', legacy]).status, 0, 'a foreign table of the old name is left alone');
    assert.is(filterTable(H.hostNs, a.ns), '');
  }, { stop: killRouterDaemons });
});

test('objects of a router\'s prefix in the shared table that are not its own are refused and left alone', async () => {
  await inScratch((s) => host(s), async (H, _procs, s) => {
    const a = H.router('02:aa:00:00:05:0a');
    // someone else's objects under the prefix of the next router's namespace (another mark)
    const id = String(3000 + (parseInt(uid(4), 16) % 6000));
    const ns = s.track(`cs-net-${id}`);
    const p = vmfilterPrefix(ns);
    nsExec(H.hostNs, ['nft', '-f', '-'], { input: `table bridge ${VMFILTER_TABLE.name} {\n set ${p}owner { type mark; elements = { 7 } }\n chain ${p}prerouting { type filter hook prerouting priority -210; }\n}\n` });
    const theirs = () => sharedFilterNames(H.hostNs).filter((n) => n.startsWith(p)).join(' ') + nsExec(H.hostNs, ['nft', 'list', 'set', 'bridge', VMFILTER_TABLE.name, `${p}owner`]);
    const before = theirs();
    const r = H.cli(['implement-network', '--network-id', id, '--vlan', `vxlan://${9000 + (Number(id) % 6000)}`, '--gateway', '10.1.1.1', '--cidr', '10.1.1.0/24', '--network-extension-details', '{"vm-filter":"true"}']);
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`holds objects named ${p}… that are not netns-router's filter of ${ns}`));
    assert.is(theirs(), before, 'left alone');
    assert.ok(before.includes(`${p}prerouting`));
    await spoofBlocked(a);
  }, { stop: killRouterDaemons });
});

test('off by default: no objects and no filtering until network-extension-details vm-filter=true, and gone again with false', async () => {
  await inScratch((s) => host(s), async (H) => {
    const r = H.router('02:aa:00:00:06:0a', false);
    const mine = () => sharedFilterNames(H.hostNs).filter((n) => n.startsWith(vmfilterPrefix(r.ns)));
    assert.equal(mine(), [], 'no objects of the router');
    // off: the VM's spoofed frames reach the router like its own (the same probes the filter blocks below)
    const frame = (saddr: string) => udp4Frame({ src: r.vmMac, dst: r.routerMac, saddr, daddr: '10.1.1.1', sport: 4444, dport: 9005 });
    const before = readCounters(r.ns)[9005] ?? 0;
    sendFrames(r.vm, 'eth0', [frame('10.1.1.77')], 5);
    sendFrames(r.vm, 'eth0', [frame('10.1.1.10')], 5);
    assert.ok(await waitFor(() => (readCounters(r.ns)[9005] ?? 0) >= before + 10), `unfiltered: all 10 frames arrive (${JSON.stringify(readCounters(r.ns))})`);
    // on, by a detail on any command of the network
    H.run(['add-dhcp-entry', ...r.net, '--mac', r.vmMac, '--ip', '10.1.1.10', '--network-extension-details', '{"vm-filter":"true"}']);
    assert.ok(mine().length > 5, 'the router\'s objects are there');
    await spoofBlocked(r);
    // a NIC rule set on an unfiltered network is refused (exit 1), on a filtered one taken
    H.run(['add-dhcp-entry', ...r.net, '--mac', r.vmMac, '--ip', '10.1.1.10', '--network-extension-details', '{"vm-filter":"false"}']);
    assert.equal(mine(), [], 'off again: its objects gone');
    const refused = H.cli(['custom-action', ...r.net, '--action', 'vm-filter-set', '--action-params', JSON.stringify({ mac: r.vmMac, filters: 'clean-traffic' })]);
    assert.is(refused.status, 1, refused.stderr);
    assert.match(refused.stderr, /is not filtered: network-extension-details "vm-filter": "true"/);
  }, { stop: killRouterDaemons });
});

test.run();
