/**
 * Policy routing (custom-action pbr-*) on the in-memory kernel: tables, routes and rules in the router namespace,
 * its rt_tables file, the listings, a restore after a reboot, and the refusals — without root. Packets taking
 * the tables stay with test/router/pbr.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterEngine } from '../../lib/router/engine.js';
import { runCommand } from '../../lib/router/command-table.js';
import { requestFromValues } from '../../lib/router/contract/plain-values.js';
import type { CommandInputs } from '../../lib/router/contract/inputs.js';
import type { EngineCommand } from '../../lib/router/contract/types.js';
import { FakeKernel } from '../../lib/router/fake-kernel.js';
import { exitCodeOf } from '../../lib/util/errors.js';

test('pbr on the fake kernel: table, route, rule, rt_tables, listings, restore, delete', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'nr-fake-pbr-'));
  const k = new FakeKernel({ devices: ['eth1'] });
  const engine = new RouterEngine({ stateDir, devices: { guest: 'eth1', public: 'eth1' }, kernel: k });
  const run = <C extends EngineCommand>(c: C, input: CommandInputs[C]) => runCommand(engine, requestFromValues(c, input, { networkDetails: {} }));
  const act = async (action: string, params: Record<string, string>): Promise<unknown> => {
    const out = await run('custom-action', { networkId: 91, action, actionParams: params });
    return JSON.parse((out as { stdout: string }).stdout).message;
  };
  const rtTables = '/etc/netns/cs-net-91/iproute2/rt_tables';
  try {
    await run('implement-network', { networkId: 91, vlan: 'vxlan://5091', gateway: '10.91.0.1', cidr: '10.91.0.0/24' });
    await run('assign-ip', { networkId: 91, publicIp: '203.0.113.91', publicVlan: 'untagged', publicGateway: '203.0.113.1', publicCidr: '203.0.113.0/24', sourceNat: true });
    await act('pbr-create-table', { 'table-id': '100', 'table-name': 'alt' });
    assert.match(k.etcRead(rtTables) ?? '', /100\talt/, 'rt_tables names the table');
    await act('pbr-add-route', { table: 'alt', route: 'default via 203.0.113.2' });
    await act('pbr-add-rule', { table: 'alt', rule: 'from 10.91.0.0/24 priority 100' });
    const ns = k.open('cs-net-91').netlink;
    assert.ok(ns.routeList({ table: 100 }).some((r) => r.dst === 'default' && r.via === '203.0.113.2'), 'the route in table 100');
    assert.ok(ns.ruleList(4).some((r) => r.table === 100 && r.priority === 100 && r.from === '10.91.0.0/24'), 'the rule');
    const rows = await act('pbr-list-rules', {}) as Array<{ rule: string }>;
    assert.ok(rows.some((x) => x.rule === '100:\tfrom 10.91.0.0/24 lookup alt'), JSON.stringify(rows));

    // a gateway no connected prefix reaches: the kernel refuses it (exit 2), nothing stored
    let e: unknown;
    try { await act('pbr-add-route', { table: 'alt', route: '198.51.100.0/24 via 192.0.2.1' }); } catch (x) { e = x; }
    assert.is(exitCodeOf(e), 2, String(e));
    assert.match(String(e), 'ENETUNREACH');
    assert.not.ok(ns.routeList({ table: 100 }).some((r) => r.dst === '198.51.100.0/24'));
    // an unknown table: bad input (exit 1)
    e = undefined;
    try { await act('pbr-add-route', { table: 'nosuch', route: 'default via 203.0.113.2' }); } catch (x) { e = x; }
    assert.is(exitCodeOf(e), 1);

    // a reboot: namespace gone, state kept; restore-all brings the policy routing back
    k.deleteNetns('cs-net-91');
    await run('restore-all', {});
    const again = k.open('cs-net-91').netlink;
    assert.ok(again.ruleList(4).some((r) => r.table === 100 && r.from === '10.91.0.0/24'), 'restored with its rule');
    assert.ok(again.routeList({ table: 100 }).some((r) => r.via === '203.0.113.2'), 'and its route');

    await act('pbr-delete-rule', { table: 'alt', rule: 'from 10.91.0.0/24 priority 100' });
    assert.not.ok(again.ruleList(4).some((r) => r.table === 100), 'rule deleted');
    await act('pbr-delete-table', { 'table-name': 'alt' });
    assert.equal(again.routeList({ table: 100 }), [], 'the table\'s routes go with it');
    assert.is(k.etcRead(rtTables), undefined, 'no table left: /etc/netns/<ns> goes');
    await run('destroy-network', { networkId: 91 });
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('pbr rules without a priority (the kernel chooses one): applied once however many commands follow; deleted by their selectors; a rule at priority 0 refused', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'nr-fake-pbr-'));
  const k = new FakeKernel({ devices: ['eth1'] });
  const engine = new RouterEngine({ stateDir, devices: { guest: 'eth1', public: 'eth1' }, kernel: k });
  const run = <C extends EngineCommand>(c: C, input: CommandInputs[C]) => runCommand(engine, requestFromValues(c, input, { networkDetails: {} }));
  const act = (action: string, params: Record<string, string>) => run('custom-action', { networkId: 92, action, actionParams: params });
  try {
    await run('implement-network', { networkId: 92, vlan: 'vxlan://5092', gateway: '10.92.0.1', cidr: '10.92.0.0/24' });
    await act('pbr-create-table', { 'table-id': '100', 'table-name': 'isp1' });
    await act('pbr-add-rule', { table: 'isp1', rule: 'from 10.92.0.11/32' });
    await act('pbr-add-rule', { table: 'isp1', rule: 'from 10.92.0.5/24' });
    await act('pbr-add-rule', { table: 'isp1', rule: 'fwmark 5' });
    await act('pbr-add-rule', { table: 'isp1', rule: 'iif lo priority 200' });
    const ours = () => k.open('cs-net-92').netlink.ruleList(0).filter((r) => r.table === 100);
    assert.is(ours().length, 4, JSON.stringify(ours()));
    // commands that reconcile the router (its pbr part, or all of it) add nothing more
    await act('pbr-create-table', { 'table-id': '101', 'table-name': 'isp2' });
    await run('assign-ip', { networkId: 92, publicIp: '203.0.113.92', publicVlan: 'untagged', publicGateway: '203.0.113.1', publicCidr: '203.0.113.0/24', sourceNat: true });
    await act('pbr-add-route', { table: 'isp1', route: 'default via 203.0.113.2' });
    assert.is(ours().length, 4, `still one kernel rule each: ${JSON.stringify(ours())}`);
    // deleted without its priority (as `ip rule del` is given): its kernel rule goes, the others stay
    await act('pbr-delete-rule', { table: 'isp1', rule: 'from 10.92.0.11/32' });
    assert.not.ok(ours().some((r) => r.from === '10.92.0.11/32'), 'the deleted rule left the kernel');
    await act('pbr-delete-rule', { table: 'isp1', rule: 'iif lo' });
    assert.equal(ours().map((r) => r.from ?? `fwmark ${r.fwmark}`).sort(), ['10.92.0.5/24', 'fwmark 5'], 'the rest stay');
    // priority 0 is the kernel's "lookup local" rule: bad input, nothing stored
    let e: unknown;
    try { await act('pbr-add-rule', { table: 'isp1', rule: 'from 10.92.0.0/24 priority 0' }); } catch (x) { e = x; }
    assert.is(exitCodeOf(e), 1, String(e));
    assert.match(String(e), /priority 0/);
    assert.is(ours().length, 2);
    // a route prefix with host bits: the kernel's EINVAL, as bad input named (exit 1), nothing stored
    e = undefined;
    try { await act('pbr-add-route', { table: 'isp1', route: '10.9.0.5/16 via 203.0.113.1' }); } catch (x) { e = x; }
    assert.is(exitCodeOf(e), 1, String(e));
    assert.match(String(e), /host bits set \(the network is 10\.9\.0\.0\/16\)/);
    await run('destroy-network', { networkId: 92 });
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test.run();
