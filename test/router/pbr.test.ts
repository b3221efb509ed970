/** Policy-routing custom actions change the real path of guest traffic; state survives a restore. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync, spawn } from 'node:child_process';
import { RouterEngine } from '../../lib/router/engine.js';
import { deleteNetns } from '../../lib/netns/namespaces.js';
import { Scratch, addVm, tcpAsk, waitFor, cidr } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { envelopeMessage, tableRows } from '../helpers/cloudstack.js';
import { runCommand } from '../../lib/router/command-table.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

test('pbr: table + default route + rule move a tier\'s egress to another gateway; listed; restored', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-pbr-'));
  const id = String(3000 + Math.floor(Math.random() * 6000));
  const ns = s.track(`cs-net-${id}`);
  const procs: Array<{ kill: () => void }> = [];
  try {
    const hostNs = s.ns('host');
    const h = s.handle(hostNs);
    h.netlink.linkAdd({ kind: 'bridge', name: 'pub', up: true });
    h.netlink.linkAdd({ kind: 'veth', name: 'eth1', up: true, master: 'pub', peer: { name: 'eth1p', up: true } });
    // two upstream gateways on the public segment, both "serving" 198.51.100.1 and saying who they are
    for (const [name, gw] of [['up1', '203.0.113.1'], ['up2', '203.0.113.2']] as const) {
      const u = s.ns(name);
      h.netlink.linkAdd({ kind: 'veth', name: `h${name}`, master: 'pub', up: true, peer: { name: 'wan', namespace: { netns: u }, up: true } });
      const uh = s.handle(u);
      uh.netlink.linkSetUp('lo');
      uh.netlink.addrAdd({ dev: 'wan', address: `${gw}/24` });
      uh.netlink.addrAdd({ dev: 'lo', address: '198.51.100.1/32' });
      procs.push(spawn('ip', ['netns', 'exec', u, 'socat', 'TCP-LISTEN:9000,fork,reuseaddr', `SYSTEM:echo ${name}`], { stdio: 'ignore' }));
    }
    const engine = new RouterEngine({ stateDir: join(dir, 'state'), hostNetns: hostNs, devices: { guest: 'pub', public: 'pub' } });
    const net = { networkId: id, namespace: ns };
    await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni: 6000 + Number(id) % 1000 }, gateway: '10.6.0.1', cidr: cidr('10.6.0.0/24') });
    // the public bridge IS the device here (untagged → joins br<dev>-u); keep it simple: public untagged on 'pub'
    await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.10', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: true } });
    const vxBridge = h.netlink.linkList().find((l) => l.kind === 'bridge' && l.name.startsWith('brvx-'))!.name;
    const vm = addVm(s, h, vxBridge, '10.6.0.10/24', '10.6.0.1');
    await waitFor(() => tcpAsk(vm.ns, '198.51.100.1', 9000) !== '');
    assert.is(tcpAsk(vm.ns, '198.51.100.1', 9000), 'up1', 'main table: via up1');

    const g = ['--host-netns', hostNs, '--state-dir', join(dir, 'state'), '--log-file', join(dir, 'log')];
    const act = (action: string, params: Record<string, string>) =>
      spawnSync(process.execPath, [CLI, 'custom-action', '--network-id', id, '--action', action, '--action-params', JSON.stringify(params), ...g], { encoding: 'utf8', timeout: 30_000 });
    let r = act('pbr-create-table', { 'table-id': '100', 'table-name': 'alt' });
    assert.is(r.status, 0, r.stderr);
    r = act('pbr-add-route', { table: 'alt', route: 'default via 203.0.113.2' });
    assert.is(r.status, 0, r.stderr);
    assert.is(tcpAsk(vm.ns, '198.51.100.1', 9000), 'up1', 'a table alone changes nothing');
    r = act('pbr-add-rule', { table: 'alt', rule: 'from 10.6.0.0/24 priority 100' });
    assert.is(r.status, 0, r.stderr);
    assert.is(tcpAsk(vm.ns, '198.51.100.1', 9000), 'up2', 'the rule sends the tier via up2');

    r = act('pbr-list-rules', {});
    assert.is(r.status, 0, r.stderr);
    // upstream's rows: `ip rule show` lines
    assert.ok(tableRows(envelopeMessage(r)).some((x) => x.rule === '100:\tfrom 10.6.0.0/24 lookup alt'), r.stdout);
    assert.match(readFileSync(join('/etc/netns', ns, 'iproute2', 'rt_tables'), 'utf8'), /100\talt/);
    const ipShow = spawnSync('ip', ['netns', 'exec', ns, 'ip', 'route', 'show', 'table', 'alt'], { encoding: 'utf8' });
    assert.match(ipShow.stdout, 'default via 203.0.113.2', 'ip netns exec sees the named table');

    r = act('pbr-add-route', { table: 'nosuch', route: 'default via 203.0.113.2' });
    assert.is(r.status, 1, 'unknown table → exit 1');
    r = act('pbr-add-route', { table: 'alt', route: 'default via 203.0.113.2; reboot' });
    assert.is(r.status, 1, 'shell syntax refused');

    // reboot: namespace gone, state kept → restore brings the policy routing back
    deleteNetns(ns);
    await engine.restoreAll();
    await waitFor(() => tcpAsk(vm.ns, '198.51.100.1', 9000) !== '');
    assert.is(tcpAsk(vm.ns, '198.51.100.1', 9000), 'up2', 'restored with its rule');

    // a rule without a priority (the kernel picks one): one kernel rule however many commands follow, and its
    // deletion (also given without a priority) takes it out of the kernel
    const altRules = () => spawnSync('ip', ['netns', 'exec', ns, 'ip', 'rule', 'show', 'table', 'alt'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
    r = act('pbr-add-rule', { table: 'alt', rule: 'from 10.6.0.10/32' });
    assert.is(r.status, 0, r.stderr);
    for (const t of ['101', '102']) assert.is(act('pbr-create-table', { 'table-id': t, 'table-name': `t${t}` }).status, 0);
    assert.is(altRules().length, 2, altRules().join('\n'));
    r = act('pbr-delete-rule', { table: 'alt', rule: 'from 10.6.0.0/24 priority 100' });
    assert.is(r.status, 0, r.stderr);
    assert.is(tcpAsk(vm.ns, '198.51.100.1', 9000), 'up2', 'the VM\'s own rule still sends it via up2');
    r = act('pbr-delete-rule', { table: 'alt', rule: 'from 10.6.0.10/32' });
    assert.is(r.status, 0, r.stderr);
    assert.equal(altRules(), [], 'no rule of the table left in the kernel');
    assert.is(tcpAsk(vm.ns, '198.51.100.1', 9000), 'up1', 'rules deleted: back via up1');
    for (const t of ['101', '102']) assert.is(act('pbr-delete-table', { 'table-id': t }).status, 0);
    r = act('pbr-delete-table', { 'table-name': 'alt' });
    assert.is(r.status, 0, r.stderr);
    assert.equal(envelopeMessage(act('pbr-list-tables', {})), [{ id: '255', name: 'local' }, { id: '254', name: 'main' }, { id: '253', name: 'default' }, { id: '0', name: 'unspec' }]);
  } finally {
    for (const p of procs) p.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
