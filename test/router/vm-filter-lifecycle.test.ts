/**
 * The guest-segment filter through the CLI as CloudStack drives it, and over a router's life: vm-filter-set rule
 * sets enforced with real packets (and answered in CloudStack's envelope), bad action-params refused with nothing
 * changed, a failed change leaving the previous filter in force, rule sets replaced under a probe flood without a
 * single forbidden datagram passing, NIC bindings following release-nic / prepare-nic / remove-dhcp-entry /
 * restore-network, restore-all after a simulated reboot, destroy, strict networks, two routers on one host, and a
 * table of the filter's name that netns-router did not make.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { deleteNetns, netnsExists } from '../../lib/netns/namespaces.js';
import { stripHandles } from '../../lib/nft/listing.js';
import { vmFilterSet, parseVmFilterParams, VMFILTER_TABLE } from '../../lib/router/vmfilter/index.js';
import { Scratch, addVm, nsExec, nsTry, ping, simulatedHost, uid, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { allGone, killRouterDaemons } from '../helpers/daemons.js';
import { runCommand } from '../../lib/router/command-table.js';
import { installCounters, readCounters, servers, serversUp, tcpOk, udpFlood, udpOk } from '../helpers/fw.js';
import { routerCli } from '../helpers/router-cli.js';
import { sendFrames, udp4Frame } from '../helpers/frames.js';
import { filterSet, filterTable, reach, strangerVm, vmfTopo, VM1_MAC, VM2_MAC } from '../helpers/vmfilter.js';

requireSandbox();


/** A router built through the CLI: network on vxlan, DHCP, vm1 (prepare-nic) and vm2 (add-dhcp-entry) on the bridge. */
function cliRouter(s: Scratch, dir: string) {
  const { hostNs, upNs, h } = simulatedHost(s);
  const id = String(3000 + (parseInt(uid(4), 16) % 6000));
  const ns = s.track(`cs-net-${id}`);
  const vni = 9000 + (Number(id) % 6000);
  const stateDir = join(dir, 'state');
  const cli = routerCli(stateDir, join(dir, 'log'), hostNs);
  const net = ['--network-id', id];
  const run = (args: string[]) => {
    const r = cli(args);
    if (r.status !== 0) throw new Error(`${args[0]} failed (exit ${r.status}): ${r.stderr}`);
    return r;
  };
  run(['implement-network', ...net, '--vlan', `vxlan://${vni}`, '--gateway', '10.1.1.1', '--cidr', '10.1.1.0/24', '--network-extension-details', '{"vm-filter":"true"}']);
  run(['config-dhcp-subnet', ...net, '--gateway', '10.1.1.1', '--cidr', '10.1.1.0/24', '--network-extension-details', '{"vm-filter":"true"}']);
  run(['prepare-nic', ...net, '--mac', VM1_MAC, '--ip', '10.1.1.10', '--gateway', '10.1.1.1', '--cidr', '10.1.1.0/24', '--vlan', `vxlan://${vni}`]);
  run(['add-dhcp-entry', ...net, '--mac', VM2_MAC, '--ip', '10.1.1.11']);
  const bridge = `brvx-${vni}`;
  const vm1 = addVm(s, h, bridge, '10.1.1.10/24', '10.1.1.1', VM1_MAC);
  const vm2 = addVm(s, h, bridge, '10.1.1.11/24', '10.1.1.1', VM2_MAC);
  const setRules = (params: Record<string, unknown>) => cli(['custom-action', ...net, '--action', 'vm-filter-set', '--action-params', JSON.stringify(params)]);
  return { hostNs, upNs, h, id, ns, vni, bridge, stateDir, cli, run, net, vm1: vm1.ns, vm2: vm2.ns, vm1Port: vm1.hostEnd, setRules };
}

const ONLY_SSH_IN = JSON.stringify([
  { action: 'accept', direction: 'in', priority: 100, protocol: 'tcp', dstport: '22' },
  { action: 'accept', direction: 'in', priority: 100, protocol: 'tcp', established: true },
  { action: 'drop', direction: 'in', protocol: 'ipv4' },
]);

/**
 * The filter table's contents without handles (a chain put back holds the same rules under new handles) and
 * without the learned sets (their elements move by themselves: they expire).
 */
function staticTable(hostNs: string, ns: string): string {
  const doc = JSON.parse(filterTable(hostNs, ns) || '{"nftables":[]}') as { nftables: Array<{ set?: { name: string } }> };
  return JSON.stringify(stripHandles(doc.nftables.filter((o) => !(o.set && /^r[0-9a-f]{10}_(learned|learned_mac|ports_.*)$/.test(o.set.name)))));
}

test('vm-filter-set through the CLI: "only ssh in" for vm1 is enforced, answered in the envelope; bad action-params change nothing', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-vmf-'));
  let procs: ChildProcess[] = [];
  let stateDir = '';
  try {
    const r = cliRouter(s, dir);
    stateDir = r.stateDir;
    assert.ok(await reach(r.vm2, '10.1.1.10') && await reach(r.vm1, '10.1.1.11'), 'the VMs reach each other');
    procs = [...servers(r.vm1, [22, 8080], [7101]), ...servers(r.vm2, [9090], [])];
    assert.ok(await serversUp(r.vm1, [22, 8080], [7101]) && await serversUp(r.vm2, [9090], []));
    // controls: before the rule set everything reaches vm1
    assert.ok(tcpOk(r.vm2, '10.1.1.10', 8080) && udpOk(r.vm2, '10.1.1.10', 7101) && tcpOk(r.vm2, '10.1.1.10', 22));
    const out = r.setRules({ mac: VM1_MAC, filters: 'clean-traffic', rules: ONLY_SSH_IN });
    assert.is(out.status, 0, out.stderr);
    const env = JSON.parse(out.stdout) as { status: string; printmessage: string; message: Array<Record<string, string>> };
    assert.is(env.status, 'success');
    assert.is(env.printmessage, 'true');
    assert.equal(env.message.map((row) => [row.kind, row.name, row.network, row.state]), [['nic', VM1_MAC, r.id, 'bound']]);
    assert.match(env.message[0].rules, /^filter clean-traffic\n100 in accept tcp dstport 22\n100 in accept tcp established\n500 in drop ipv4$/);
    // enforced: ssh in, nothing else in; vm1's own connections still work (their replies carry ACK)
    assert.ok(tcpOk(r.vm2, '10.1.1.10', 22), 'tcp/22 to vm1');
    assert.not.ok(tcpOk(r.vm2, '10.1.1.10', 8080), 'tcp/8080 to vm1 is dropped');
    assert.not.ok(udpOk(r.vm2, '10.1.1.10', 7101), 'udp to vm1 is dropped');
    assert.ok(tcpOk(r.vm1, '10.1.1.11', 9090), 'vm1 → vm2 over TCP (replies: established)');
    // hostile action-params: exit 1 naming action-params, state and table as they were
    const stateFile = join(r.stateDir, 'routers', `${r.ns}.json`);
    const before = { state: readFileSync(stateFile, 'utf8'), table: staticTable(r.hostNs, r.ns) };
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ mac: VM1_MAC, rules: '[{"action":"accept","direction":"in","protocol":"tcp","dstport":"22"' }, /action-params: rules is not valid JSON/],
      [{ mac: VM1_MAC, rules: '[{"action":"accept","direction":"in","protocol":"tcp","dstport":"99999"}]' }, /dstport: "99999" is not a port/],
      [{ mac: VM1_MAC, rules: '[{"action":"accept","direction":"in","srcip":"evil.example"}]' }, /srcip: "evil.example" is not an address/],
      [{ mac: VM1_MAC, rules: '[{"action":"accept","direction":"in","comment":"x","nft":"flush ruleset"}]' }, /unknown field "nft"/],
      [{ mac: VM1_MAC, filters: 'nosuchfilter' }, /filter "nosuchfilter" is not defined/],
      [{ mac: VM1_MAC, port: 'x y' }, /port: "x y" is not a bridge port name/],
      [{ mac: 'ff:ff:ff:ff:ff:ff' }, /multicast MAC/],
      [{ filter: 'clean-traffic', rules: '[]' }, /built in/],
      [{ whatever: 1 }, /unknown key "whatever"/],
    ];
    for (const [params, re] of bad) {
      const res = r.setRules(params);
      assert.is(res.status, 1, `${JSON.stringify(params)}: exit 1 (${res.stderr})`);
      assert.match(res.stderr, re);
      assert.match(res.stderr, /action-params/);
      assert.is(res.stdout, '', 'nothing on stdout');
    }
    assert.is(readFileSync(stateFile, 'utf8'), before.state, 'state unchanged');
    assert.is(staticTable(r.hostNs, r.ns), before.table, 'table unchanged');
    // a strict detail that is no boolean: exit 1 naming it
    const res = r.cli(['prepare-nic', ...r.net, '--mac', VM2_MAC, '--ip', '10.1.1.11', '--network-extension-details', '{"vm-filter-strict":"maybe"}']);
    assert.is(res.status, 1);
    assert.match(res.stderr, /network-extension-details\.vm-filter-strict: "maybe" is not a boolean/);
    // clearing the set opens vm1 again (positive control of the same probes)
    assert.is(r.setRules({ mac: VM1_MAC, clear: 'true' }).status, 0);
    assert.ok(tcpOk(r.vm2, '10.1.1.10', 8080), 'tcp/8080 after clear');
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    if (stateDir) killRouterDaemons(stateDir);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failed change leaves the previous filter in force: exit 2, the table and state as before; the retry applies', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-vmf-'));
  let procs: ChildProcess[] = [];
  let stateDir = '';
  const routers = () => join(stateDir, 'routers');
  let mounted = false;
  try {
    const r = cliRouter(s, dir);
    stateDir = r.stateDir;
    assert.ok(await reach(r.vm2, '10.1.1.10'), 'vm2 reaches vm1');
    procs = servers(r.vm1, [22, 8080], []);
    assert.ok(await serversUp(r.vm1, [22, 8080], []));
    assert.is(r.setRules({ mac: VM1_MAC, rules: ONLY_SSH_IN }).status, 0);
    assert.not.ok(tcpOk(r.vm2, '10.1.1.10', 8080));
    const stateFile = join(routers(), `${r.ns}.json`);
    const before = { state: readFileSync(stateFile, 'utf8'), table: staticTable(r.hostNs, r.ns) };
    // the state cannot be saved after the kernel was changed: the engine puts the previous filter back
    execFileSync('mount', ['--bind', routers(), routers()]);
    mounted = true;
    execFileSync('mount', ['-o', 'remount,bind,ro', routers()]);
    const openAll = JSON.stringify([{ action: 'accept', direction: 'in', protocol: 'tcp', dstport: '8080' }, ...JSON.parse(ONLY_SSH_IN)]);
    const res = r.setRules({ mac: VM1_MAC, rules: openAll });
    assert.is(res.status, 2, res.stderr);
    assert.match(res.stderr, /read-only file system/i);
    assert.is(staticTable(r.hostNs, r.ns), before.table, 'the previous filter, exactly');
    assert.not.ok(tcpOk(r.vm2, '10.1.1.10', 8080), 'still dropped');
    assert.ok(tcpOk(r.vm2, '10.1.1.10', 22), 'still open');
    spawnSync('umount', [routers()]);
    mounted = false;
    assert.is(readFileSync(stateFile, 'utf8'), before.state);
    // the retry
    assert.is(r.setRules({ mac: VM1_MAC, rules: openAll }).status, 0);
    assert.ok(tcpOk(r.vm2, '10.1.1.10', 8080), 'open after the retry');
  } finally {
    if (mounted) spawnSync('umount', [routers()]);
    for (const p of procs) p.kill('SIGKILL');
    if (stateDir) killRouterDaemons(stateDir);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('vm1\'s rule set replaced 30 times under a probe flood from vm2: no forbidden datagram arrives, no allowed one is lost', async () => {
  const s = new Scratch();
  let stateDir = '';
  try {
    const t = await vmfTopo(s);
    stateDir = t.stateDir;
    const { engine, net, vm1, vm2 } = t;
    const ALLOWED = 7001;
    const FORBIDDEN = 7002;
    installCounters(vm1.ns, [ALLOWED, FORBIDDEN]);
    const set = (params: Record<string, unknown>) => vmFilterSet(engine, { ...net, change: parseVmFilterParams(params) });
    const filler = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (i % 3 === 0
      ? { action: 'accept', direction: 'in', protocol: 'tcp', dstport: String(10000 + i + seed) }
      : i % 3 === 1 ? { action: 'drop', direction: 'in', protocol: 'udp', srcip: `172.${16 + (i % 16)}.${(i + seed) % 256}.0/24` }
        : { action: 'return', direction: 'out', protocol: 'icmp', type: i % 20 }));
    await set({ filter: 'allow7001', priority: '100', rules: JSON.stringify([{ action: 'accept', direction: 'in', protocol: 'udp', dstport: String(ALLOWED) }]) });
    const variants = [
      [{ action: 'accept', direction: 'in', protocol: 'udp', dstport: String(ALLOWED) }, { action: 'drop', direction: 'in', protocol: 'udp' }],
      [...filler(300, 1), { action: 'accept', direction: 'in', protocol: 'udp', dstport: `7000-${ALLOWED}` }, { action: 'drop', direction: 'in', protocol: 'ipv4' }],
      [{ action: 'drop', direction: 'in', protocol: 'udp', dstport: String(FORBIDDEN) }],
      [{ action: 'drop', direction: 'in', protocol: 'udp', priority: 900 }, ...filler(50, 2)],
    ];
    const apply = async (i: number) => set({ mac: vm1.mac, rules: JSON.stringify(variants[i % variants.length]), filters: i % variants.length === 3 ? 'allow7001' : '' });
    await apply(0);
    assert.ok(await reach(vm2.ns, vm1.ip), 'vm2 and vm1 know each other');
    const flood = udpFlood(vm2.ns, vm1.ip, [ALLOWED, FORBIDDEN]);
    await flood.started;
    let swaps = 0;
    const end = Date.now() + 7000;
    await new Promise((r) => setTimeout(r, 300));
    const from = Date.now();
    while (Date.now() < end && swaps < 30) {
      await apply(swaps + 1);
      swaps++;
    }
    const to = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    const { sent, firstAt, lastAt } = await flood.stop();
    await new Promise((r) => setTimeout(r, 200));
    const got = readCounters(vm1.ns);
    assert.ok(firstAt <= from && lastAt >= to, `control: the flood ran through every replacement (${firstAt - from} / ${lastAt - to} ms)`);
    assert.ok(swaps >= 8, `replaced ${swaps} times during the flood`);
    assert.ok(sent[ALLOWED] > 200, `probes sent: ${JSON.stringify(sent)}`);
    assert.is(got[FORBIDDEN], 0, `forbidden datagrams that arrived (of ${sent[FORBIDDEN]} sent, ${swaps} swaps)`);
    assert.ok(got[ALLOWED] <= sent[ALLOWED] && got[ALLOWED] >= sent[ALLOWED] - 2, `allowed: ${got[ALLOWED]} of ${sent[ALLOWED]} (${swaps} swaps)`);
  } finally {
    if (stateDir) killRouterDaemons(stateDir);
    s.cleanup();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  }
});

test('bindings follow the NICs: release-nic, prepare-nic, remove-dhcp-entry, restore-network; restore-all after a reboot; destroy removes the table', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-vmf-'));
  let procs: ChildProcess[] = [];
  let stateDir = '';
  try {
    const r = cliRouter(s, dir);
    stateDir = r.stateDir;
    const macs = () => JSON.stringify(filterSet(r.hostNs, r.ns, 'nic_mac'));
    assert.ok(macs().includes(VM1_MAC) && macs().includes(VM2_MAC), macs());
    assert.is(r.setRules({ mac: VM1_MAC, rules: ONLY_SSH_IN }).status, 0);
    assert.ok(await reach(r.vm2, '10.1.1.1'), 'vm2 reaches the router');
    procs = servers(r.vm1, [22, 8080], []);
    assert.ok(await serversUp(r.vm1, [22, 8080], []));
    assert.not.ok(tcpOk(r.vm2, '10.1.1.10', 8080), 'the set is enforced');
    assert.ok(tcpOk(r.vm2, '10.1.1.10', 22), 'what it allows passes');
    const inChain = `in_${VM1_MAC.replace(/:/g, '')}`;
    // release-nic (the VM stops): its bindings go, its rule set stays stored for its next run
    r.run(['release-nic', ...r.net, '--mac', VM1_MAC, '--ip', '10.1.1.10']);
    assert.not.ok(macs().includes(VM1_MAC), 'vm1 unbound');
    assert.not.ok(filterTable(r.hostNs, r.ns).includes(inChain), 'its chain is gone');
    assert.ok(macs().includes(VM2_MAC));
    const listed = JSON.parse(r.setRules({}).stdout) as { message: Array<{ name: string; state: string }> };
    assert.equal(listed.message.map((x) => [x.name, x.state]), [[VM1_MAC, 'not known (no prepare-nic / DHCP entry)']]);
    // prepare-nic (it starts again): bound again, with its set
    r.run(['prepare-nic', ...r.net, '--mac', VM1_MAC, '--ip', '10.1.1.10']);
    assert.ok(macs().includes(VM1_MAC) && filterTable(r.hostNs, r.ns).includes(inChain));
    assert.not.ok(tcpOk(r.vm2, '10.1.1.10', 8080), 'enforced again');
    assert.ok(tcpOk(r.vm2, '10.1.1.10', 22));
    // remove-dhcp-entry: vm2's binding goes
    r.run(['remove-dhcp-entry', ...r.net, '--mac', VM2_MAC]);
    assert.not.ok(macs().includes(VM2_MAC), 'vm2 unbound');
    // restore-network brings the network's NICs back from restore_data
    const restore = { dhcp_enabled: true, dns_enabled: false, userdata_enabled: false, vms: [
      { ip: '10.1.1.10', mac: VM1_MAC, default_nic: true }, { ip: '10.1.1.11', mac: VM2_MAC, default_nic: true }] };
    r.run(['restore-network', ...r.net, '--gateway', '10.1.1.1', '--cidr', '10.1.1.0/24', '--restore-data', JSON.stringify(restore)]);
    assert.ok(macs().includes(VM1_MAC) && macs().includes(VM2_MAC), macs());
    // a reboot: router namespace, daemons and the host's nft tables gone; restore-all rebuilds the filter
    const killed = killRouterDaemons(r.stateDir);
    assert.ok(await waitFor(() => allGone(killed)), 'dnsmasq and the metadata daemon are gone');
    deleteNetns(r.ns, { ifExists: true });
    nsExec(r.hostNs, ['nft', 'delete', 'table', 'bridge', VMFILTER_TABLE.name]);
    assert.is(filterTable(r.hostNs, r.ns), '');
    // (nothing holds the namespace any more; the kernel removes its links asynchronously)
    assert.ok(await waitFor(() => !ping(r.vm2, '10.1.1.1'), 5000), 'the router is gone');
    const res = r.cli(['restore-all']);
    assert.is(res.status, 0, res.stderr);
    assert.ok(macs().includes(VM1_MAC) && macs().includes(VM2_MAC), 'bindings back');
    assert.ok(await reach(r.vm2, '10.1.1.1'), 'the router is back');
    assert.ok(tcpOk(r.vm2, '10.1.1.10', 22), 'ssh in');
    assert.not.ok(tcpOk(r.vm2, '10.1.1.10', 8080), 'and the set is enforced after the reboot');
    // destroy: the table goes with the router
    r.run(['destroy-network', ...r.net]);
    assert.is(filterTable(r.hostNs, r.ns), '', 'no table left');
    assert.ok(tcpOk(r.vm2, '10.1.1.10', 8080), 'nothing filters vm1 any more');
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    if (stateDir) killRouterDaemons(stateDir);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('strict network: unknown MACs reach neither the router nor vm1, and vm2 cannot use vm1\'s MAC from its own port; off again, they do', async () => {
  const s = new Scratch();
  let stateDir = '';
  try {
    const t = await vmfTopo(s, { strict: true });
    stateDir = t.stateDir;
    const { engine, net, vm1, vm2, router, ns } = t;
    const x = strangerVm(s, t.h, t.bridge, '10.1.1.60');
    assert.ok(await reach(vm1.ns, router.ip) && await reach(vm2.ns, vm1.ip), 'known VMs work');
    assert.not.ok(ping(x.ns, router.ip), 'unknown MAC → router: dropped');
    assert.not.ok(ping(x.ns, vm1.ip), 'unknown MAC → vm1: dropped');
    // vm2 sends with vm1's MAC and address: vm1's port was learned first
    installCounters(ns, [9005]);
    const spoof = udp4Frame({ src: vm1.mac, dst: router.mac, saddr: vm1.ip, daddr: router.ip, sport: 4444, dport: 9005 });
    sendFrames(vm2.ns, 'eth0', [spoof], 5);
    sendFrames(vm1.ns, 'eth0', [spoof], 5);
    assert.ok(await waitFor(() => readCounters(ns)[9005] === 5), `only vm1's own frames arrive: ${JSON.stringify(readCounters(ns))}`);
    // vm1 starts again on a new tap (a new run; its old tap goes quiet): refused there until its prepare-nic
    // forgets the learned port
    t.h.netlink.linkSetDown(vm1.port);
    const vm1b = addVm(s, t.h, t.bridge, `${vm1.ip}/24`, router.ip, vm1.mac);
    sendFrames(vm1b.ns, 'eth0', [spoof], 5);
    await runCommand(engine, { command: 'prepare-nic', ...net, mac: vm1.mac, ip: vm1.ip, defaultNic: true });
    sendFrames(vm1b.ns, 'eth0', [spoof], 5);
    assert.ok(await waitFor(() => readCounters(ns)[9005] === 10), `after prepare-nic the new port is vm1's: ${JSON.stringify(readCounters(ns))}`);
    // the old tap back: now it is the one refused
    t.h.netlink.linkSetUp(vm1.port);
    sendFrames(vm1.ns, 'eth0', [spoof], 5);
    await new Promise((r) => setTimeout(r, 300));
    assert.is(readCounters(ns)[9005], 10, 'and the old one no longer is');
    // the policy follows the network's detail (absent keeps it, false turns it off)
    await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni: t.vni }, gateway: '10.1.1.1', cidr: { family: 4, address: '10.1.1.0', prefix: 24 }, vmFilter: true });
    assert.not.ok(ping(x.ns, router.ip), 'still strict without the detail');
    await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni: t.vni }, gateway: '10.1.1.1', cidr: { family: 4, address: '10.1.1.0', prefix: 24 }, vmFilter: true, vmFilterStrict: false });
    // (neighbour entries the refused attempts left failed take a retry to resolve)
    assert.ok(await waitFor(() => ping(x.ns, router.ip)), 'allowed once strict is off');
    assert.ok(await waitFor(() => ping(x.ns, vm1.ip)), 'allowed to vm1 too');
  } finally {
    if (stateDir) killRouterDaemons(stateDir);
    s.cleanup();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  }
});

test('two routers with the same subnet on one host: each filter judges only its own NICs and ports', async () => {
  const s = new Scratch();
  const dirs: string[] = [];
  try {
    const a = await vmfTopo(s, { strict: true });
    dirs.push(a.stateDir);
    // network B on the same simulated host: same addresses, other MACs, its own router (another engine)
    const { RouterEngine } = await import('../../lib/router/engine.js');
    const stateB = mkdtempSync(join(tmpdir(), 'nr-vmf-b-'));
    dirs.push(stateB);
    const eb = new RouterEngine({ stateDir: stateB, hostNetns: a.hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    const idB = String(Number(a.id) + 1);
    const nsB = s.track(`cs-net-${idB}`);
    const vniB = a.vni + 1;
    await runCommand(eb, { command: 'implement-network', networkId: idB, namespace: nsB, segment: { kind: 'vxlan', vni: vniB }, gateway: '10.1.1.1', cidr: { family: 4, address: '10.1.1.0', prefix: 24 }, vmFilter: true });
    const b1 = addVm(s, a.h, `brvx-${vniB}`, '10.1.1.10/24', '10.1.1.1', '02:cc:00:00:00:0a');
    const b2 = addVm(s, a.h, `brvx-${vniB}`, '10.1.1.11/24', '10.1.1.1', '02:cc:00:00:00:0b');
    assert.ok(filterTable(a.hostNs, nsB) !== '' && filterTable(a.hostNs, a.ns) !== '', 'both filters in the shared table');
    // B's VMs use A's addresses with MACs A does not know, and answer ARP for 10.1.1.1's network: A leaves them alone
    assert.ok(await reach(b1.ns, '10.1.1.1'), 'B: vm → its router');
    assert.ok(await reach(b2.ns, '10.1.1.10'), 'B: vm → vm');
    assert.ok(await reach(a.vm1.ns, '10.1.1.1') && await reach(a.vm2.ns, '10.1.1.10'), 'A works');
    assert.not.ok(JSON.stringify(filterSet(a.hostNs, a.ns, 'nic_mac')).includes('02:cc:'), 'A knows nothing of B');
    killRouterDaemons(stateB);
  } finally {
    for (const d of dirs) killRouterDaemons(d);
    s.cleanup();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
});

test('a table of the filter\'s name that netns-router did not make is refused, left alone, and the retry works once it is gone', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-vmf-'));
  try {
    const { hostNs } = simulatedHost(s);
    const id = String(3000 + (parseInt(uid(4), 16) % 6000));
    const ns = s.track(`cs-net-${id}`);
    const cli = routerCli(join(dir, 'state'), join(dir, 'log'), hostNs);
    const t = VMFILTER_TABLE;
    nsExec(hostNs, ['nft', '-f', '-'], { input: `table bridge ${t.name} {\n chain c { type filter hook forward priority 0; }\n}\n` });
    const foreign = nsTry(hostNs, ['nft', '-j', 'list', 'table', 'bridge', t.name]).stdout;
    const r = cli(['implement-network', '--network-id', id, '--vlan', `vxlan://${9000 + (Number(id) % 6000)}`, '--gateway', '10.1.1.1', '--cidr', '10.1.1.0/24', '--network-extension-details', '{"vm-filter":"true"}']);
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`table bridge ${t.name} exists and is not netns-router's`));
    assert.is(nsTry(hostNs, ['nft', '-j', 'list', 'table', 'bridge', t.name]).stdout, foreign, 'left alone');
    // refused before anything was made: no router namespace, no segment device or bridge on the host
    assert.not.ok(netnsExists(ns), 'no router namespace');
    assert.equal(nsExec(hostNs, ['ip', '-o', 'link', 'show']).split('\n').filter((l) => /vxlan|brvx-|vh-/.test(l)), [], 'no host link made');
    nsExec(hostNs, ['nft', 'delete', 'table', 'bridge', t.name]);
    const again = cli(['implement-network', '--network-id', id, '--vlan', `vxlan://${9000 + (Number(id) % 6000)}`, '--gateway', '10.1.1.1', '--cidr', '10.1.1.0/24', '--network-extension-details', '{"vm-filter":"true"}']);
    assert.is(again.status, 0, again.stderr);
    assert.ok(filterTable(hostNs, ns) !== '');
  } finally {
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
