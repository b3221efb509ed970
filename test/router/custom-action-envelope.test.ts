/**
 * Every custom action through the CLI with CloudStack's flat custom-action payload file, its output read the
 * way CloudStack reads it (stdout+stderr merged, a JSON object whose status must be "success") and the way its
 * UI shows it (printmessage "true", a list of string-valued rows); list shapes as upstream's wrapper gives
 * them — the routes and rules are exactly what `ip route show` / `ip rule show` print in the namespace.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { Scratch, addVm, ping, simulatedHost, uid } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { cloudstackReads, dumpSection, envelopeMessage, tableRows } from '../helpers/cloudstack.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

/** `ip …` output lines inside the namespace, trailing blanks trimmed (upstream's rstrip). */
const ipLines = (ns: string, ...args: string[]): string[] =>
  spawnSync('ip', ['netns', 'exec', ns, 'ip', ...args], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.trimEnd()).filter((l) => l !== '');

test('custom actions: CloudStack\'s envelope and upstream\'s message shapes, for every built-in and for hooks', () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-envelope-'));
  const id = String(2000 + (parseInt(uid(4), 16) % 7000));
  const vni = 6000 + (Number(id) % 1000);
  const ns = s.track(`cs-net-${id}`);
  try {
    const { hostNs, h } = simulatedHost(s);
    const state = join(dir, 'state');
    const g = ['--host-netns', hostNs, '--state-dir', state, '--log-file', join(dir, 'log')];
    const phys = { 'guest.network.device': 'eth1', 'public.network.device': 'eth1', physicalnetworkname: 'pn1' };
    let n = 0;
    const run = (command: string, doc: object) => {
      const file = join(dir, `p${n++}.json`);
      writeFileSync(file, JSON.stringify(doc));
      return spawnSync(process.execPath, [CLI, command, file, '60', ...g], { encoding: 'utf8', timeout: 30_000 });
    };
    const cmd = (command: string, payload: object) => {
      const r = run(command, { 'physical-network-extension-details': phys, 'network-extension-details': {}, payload: { network_id: id, zone_id: '1', ...payload } });
      assert.is(r.status, 0, `${command}: ${r.stderr}`);
      return r;
    };
    // CloudStack's custom-action payload: flat; the action's parameters as strings
    const action = (name: string, params: Record<string, string> = {}, target: object = { network_id: id }) =>
      run('custom-action', { ...target, zone_id: '1', action: name, 'action-params': params, 'physical-network-extension-details': phys, 'network-extension-details': {} });
    const message = (name: string, params: Record<string, string> = {}) => envelopeMessage(action(name, params));

    const imp = cmd('implement-network', { vlan: `vxlan://${vni}`, gateway: '10.9.0.1', cidr: '10.9.0.0/24', guest_type: 'isolated' });
    assert.is(imp.stdout, '', 'no isolation pool configured: implement-network prints nothing (as today)');
    cmd('assign-ip', { public_ip: '203.0.113.60', public_vlan: 'untagged', public_gateway: '203.0.113.1', public_cidr: '203.0.113.0/24', source_nat: 'true' });
    cmd('apply-fw-rules', { fw_rules: { default_egress_allow: true, cidr: '10.9.0.0/24', rules: [{ id: 3, type: 'ingress', protocol: 'tcp', portStart: 22, portEnd: 22, publicIp: '203.0.113.60', sourceCidrs: ['0.0.0.0/0'] }] } });
    const vm = addVm(s, h, `brvx-${vni}`, '10.9.0.10/24', '10.9.0.1');
    assert.ok(ping(vm.ns, '10.9.0.1'), 'the router is up (positive control for reboot-device below)');

    // reboot-device: upstream's text as the message
    assert.is(message('reboot-device'), `reboot-device: OK (namespace=${ns})`);
    assert.ok(ping(vm.ns, '10.9.0.1'), 'still routing after reboot-device');

    // dump-config: one row per section (upstream prints "=== section ===" blocks), cells are text
    const dump = message('dump-config');
    assert.equal(tableRows(dump).map((r) => r.section), ['namespace', 'state', 'nat', 'nftables']);
    assert.is(dumpSection(dump, 'namespace'), ns);
    assert.is(dumpSection(dump, 'state').tiers[id].gateway, '10.9.0.1');
    assert.ok(JSON.stringify(dumpSection(dump, 'nftables')).includes('fw_ingress'), 'the live table');

    // list-firewall-rules: upstream's [{table, rules}] with the rules as one newline-separated text
    const fwRows = tableRows(message('list-firewall-rules'));
    const ingress = fwRows.find((r) => r.table === 'firewall ingress 203.0.113.60');
    assert.ok(ingress, JSON.stringify(fwRows));
    assert.equal(ingress!.rules.split('\n'), ['established,related (unless ended by a tightening): accept', '#0 id 3: tcp dport 22 from 0.0.0.0/0 to 203.0.113.60: accept', 'default: drop']);

    // pbr: upstream's texts for the changes, its rows for the lists
    assert.is(message('pbr-create-table', { 'table-id': '100', 'table-name': 'isp1' }), 'pbr-create-table: OK 100 isp1');
    assert.is(message('pbr-create-table', { table_id: '100', table_name: 'isp1' }), 'pbr-create-table: exists 100 isp1');
    assert.equal(message('pbr-list-tables'), [
      { id: '255', name: 'local' }, { id: '254', name: 'main' }, { id: '253', name: 'default' }, { id: '0', name: 'unspec' }, { id: '100', name: 'isp1' },
    ]);
    assert.is(message('pbr-add-route', { table: 'isp1', route: 'default via 203.0.113.1' }), 'pbr-add-route: OK table=isp1 route=default via 203.0.113.1');
    assert.is(message('pbr-add-route', { table: 'isp1', route: '198.51.100.0/24 via 203.0.113.1 metric 5' }), 'pbr-add-route: OK table=isp1 route=198.51.100.0/24 via 203.0.113.1 metric 5');
    const one = tableRows(message('pbr-list-routes', { table: 'isp1' })).map((r) => r.route);
    assert.equal(one, ipLines(ns, 'route', 'show', 'table', 'isp1'), 'one table: `ip route show table isp1`, line for line');
    assert.is(one.length, 2);
    assert.equal(tableRows(message('pbr-list-routes', { table: '100' })).map((r) => r.route), one, 'the same table by id');
    const all = tableRows(message('pbr-list-routes')).map((r) => r.route);
    assert.equal(all, ipLines(ns, 'route', 'show', 'table', 'all'), 'no table: `ip route show table all`, line for line');
    assert.ok(all.some((l) => l.includes('table isp1')) && all.some((l) => l.includes('table local')), all.join('\n'));

    assert.is(message('pbr-add-rule', { table: 'isp1', rule: 'from 10.9.0.0/24 priority 100' }), 'pbr-add-rule: OK table=isp1 rule=from 10.9.0.0/24 priority 100');
    assert.is(message('pbr-add-rule', { 'table-id': '100', 'rule-spec': 'fwmark 0x10/0xff priority 101' }), 'pbr-add-rule: OK table=100 rule=fwmark 0x10/0xff priority 101');
    const rules = tableRows(message('pbr-list-rules')).map((r) => r.rule);
    assert.equal(rules, ipLines(ns, 'rule', 'show'), 'rules: `ip rule show`, line for line');
    assert.ok(rules.includes('100:\tfrom 10.9.0.0/24 lookup isp1'), rules.join('\n'));
    const ispRules = ['100:\tfrom 10.9.0.0/24 lookup isp1', '101:\tfrom all fwmark 0x10/0xff lookup isp1'];
    assert.equal(tableRows(message('pbr-list-rules', { table: 'isp1' })).map((r) => r.rule), ispRules);
    assert.equal(tableRows(message('pbr-list-rules', { table: '100' })).map((r) => r.rule), ispRules, 'by id too (upstream greps the text given)');

    assert.is(message('pbr-delete-rule', { table: 'isp1', rule: 'from 10.9.0.0/24 priority 100' }), 'pbr-delete-rule: OK table=isp1 rule=from 10.9.0.0/24 priority 100');
    assert.is(message('pbr-delete-route', { table: 'isp1', route: 'default via 203.0.113.1' }), 'pbr-delete-route: OK table=isp1 route=default via 203.0.113.1');
    assert.is(message('pbr-delete-table', { 'table-name': 'isp1' }), 'pbr-delete-table: OK id=n/a name=isp1');
    assert.equal(tableRows(message('pbr-list-rules', {})).map((r) => r.rule), ipLines(ns, 'rule', 'show'));
    assert.not.ok(ipLines(ns, 'rule', 'show').some((l) => l.includes('lookup 100') || l.includes('isp1')), 'the table\'s rules (a masked fwmark one too) went with it');

    // a VPC-level action (vpc_id only) answers in the same envelope
    assert.equal(tableRows(envelopeMessage(action('pbr-list-tables', {}, { vpc_id: `v${id}` }))).length, 4);

    // hooks: upstream's arguments; text → the message; JSON rows → the message; a JSON object with a status
    // is the hook's own answer and passes unchanged (a failure status makes CloudStack fail the action)
    const hooks = join(state, 'hooks');
    mkdirSync(hooks, { recursive: true });
    writeFileSync(join(hooks, 'custom-action-argv.sh'), `#!/bin/sh\nprintf '%s\\n' "$@" > ${join(dir, 'argv')}\necho "did it"\n`, { mode: 0o755 });
    writeFileSync(join(hooks, 'custom-action-rows.sh'), '#!/bin/sh\necho \'[{"vm":"a","state":"up"}]\'\n', { mode: 0o755 });
    writeFileSync(join(hooks, 'custom-action-own.sh'), '#!/bin/sh\necho \'{"status":"error","message":"device busy"}\'\n', { mode: 0o755 });
    writeFileSync(join(hooks, 'custom-action-quiet.sh'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    writeFileSync(join(hooks, 'custom-action-fails.sh'), '#!/bin/sh\necho "half" ; echo "no such device" >&2 ; exit 3\n', { mode: 0o755 });
    assert.is(message('argv', { key: 'v a l' }), 'did it');
    assert.equal(readFileSync(join(dir, 'argv'), 'utf8').split('\n').slice(0, -1), ['--network-id', id, '--action', 'argv', '--action-params', '{"key":"v a l"}']);
    assert.equal(message('rows'), [{ vm: 'a', state: 'up' }]);
    assert.is(message('quiet'), 'quiet: OK');
    const own = action('own');
    assert.is(own.status, 0, own.stderr);
    assert.is(own.stdout, '{"status":"error","message":"device busy"}\n');
    assert.not.ok(cloudstackReads(own).ok, 'CloudStack fails it on the hook\'s own status');
    const fails = action('fails');
    assert.is(fails.status, 2);
    assert.is(fails.stdout, '', 'a failed hook prints no success envelope');
    assert.match(fails.stderr, 'no such device');
    assert.not.ok(cloudstackReads(fails).ok);

    // failures are non-zero exits (CloudStack's only failure signal besides a status), one line on stderr
    const unknown = action('no-such-action');
    assert.is(unknown.status, 1);
    assert.is(unknown.stdout, '');
    assert.match(unknown.stderr, /unknown custom action "no-such-action"/);
    const badTable = action('pbr-add-route', { table: 'nosuch', route: 'default via 203.0.113.1' });
    assert.is(badTable.status, 1);
    assert.is(badTable.stdout, '');

    cmd('destroy-network', {});
  } finally {
    s.cleanup();
    rmSync(join('/etc/netns', ns), { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
