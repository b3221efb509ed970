/**
 * The kernel load-balancing provider's logic on the in-memory kernel: which rules the kernel serves and which stay
 * on haproxy, what it compiles (slots, maps, chains), switching a network between providers with any command, the
 * flows of a listener gone deleted (and only then), plans, VPC tiers each with their own provider, restore, bad
 * input. No root, no process. Packets: test/router/lb-kernel.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterEngine } from '../../lib/router/engine.js';
import { runCommand, commandContext } from '../../lib/router/command-table.js';
import { requestFromValues } from '../../lib/router/contract/plain-values.js';
import type { CommandInputs } from '../../lib/router/contract/inputs.js';
import type { EngineCommand } from '../../lib/router/contract/types.js';
import { FakeKernel } from '../../lib/router/fake-kernel.js';
import { PlanRecorder, type PlanStep } from '../../lib/router/plan.js';
import { ROUTER_TABLE } from '../../lib/router/router-table.js';
import type { FakeHaproxy } from '../../lib/router/fake-haproxy.js';
import { haproxyOf, lbState } from '../../lib/router/lb/index.js';
import { backendSlots, kernelRefusal } from '../../lib/router/lb/kernel.js';
import { parseLbDocument } from '../../lib/router/lb/parse.js';
import { exitCodeOf } from '../../lib/util/errors.js';

const pub = { publicVlan: 'untagged', publicGateway: '203.0.113.1', publicCidr: '203.0.113.0/24' } as const;

function setup(stateDir = mkdtempSync(join(tmpdir(), 'nr-fake-lbk-'))) {
  const k = new FakeKernel({ devices: ['eth1'] });
  const engine = new RouterEngine({ stateDir, devices: { guest: 'eth1', public: 'eth1' }, kernel: k });
  const run = <C extends EngineCommand>(c: C, input: CommandInputs[C], details: Record<string, unknown> = {}) =>
    runCommand(engine, requestFromValues(c, input, { networkDetails: details }));
  const lb = (networkId: number, rules: unknown[], details: Record<string, unknown> = {}, vpcId?: number) =>
    run('apply-lb-rules', { networkId, ...(vpcId !== undefined ? { vpcId } : {}), lbRules: JSON.stringify(rules) } as CommandInputs['apply-lb-rules'], details);
  const hx = (ns: string) => haproxyOf(k, ns, stateDir) as FakeHaproxy;
  const table = async (ns: string) => k.nftOf(ns).list(ROUTER_TABLE);
  const lbRulesIn = async (ns: string) => (await table(ns)).rules.filter((r) => r.chain === 'lb_dnat').map((r) => r.comment);
  const elems = async (ns: string, name: string) => ((await table(ns)).maps.find((x) => x.name === name)?.elem ?? []) as unknown[];
  const services = async (ns: string) => ((await table(ns)).sets.find((x) => x.name === 'pub_services')?.elem ?? []) as unknown[];
  const plan = async (c: EngineCommand, input: object, details: Record<string, unknown> = {}): Promise<PlanStep[]> => {
    const overlay = await FakeKernel.overlay(k, { tables: (n) => (n === undefined ? [] : [ROUTER_TABLE]) });
    try {
      const rec = new PlanRecorder(overlay);
      const pe = new RouterEngine({ stateDir, devices: { guest: 'eth1', public: 'eth1' }, kernel: overlay, plan: rec });
      const ctx = commandContext(pe);
      await runCommand(pe, requestFromValues(c, input as never, { networkDetails: details }), { ...ctx, settings: { ...ctx.settings, dryRun: 'json' } });
      return rec.steps;
    } finally {
      overlay.dispose();
    }
  };
  return { k, engine, run, lb, hx, table, lbRulesIn, elems, services, plan, stateDir, done: () => rmSync(stateDir, { recursive: true, force: true }) };
}

const KERNEL = { 'lb-provider': 'kernel' };
const HAPROXY = { 'lb-provider': 'haproxy' };
const rule = (id: number, port: number, over: Record<string, unknown> = {}) => ({
  id, publicIp: '203.0.113.71', publicPort: port, algorithm: 'roundrobin', revoke: false,
  backends: [{ ip: '10.71.0.11', port: 8080 }, { ip: '10.71.0.12', port: 8080 }], ...over,
});

async function isolated(s: ReturnType<typeof setup>): Promise<void> {
  await s.run('implement-network', { networkId: 71, vlan: 'vxlan://5071', gateway: '10.71.0.1', cidr: '10.71.0.0/24' });
  await s.run('assign-ip', { networkId: 71, publicIp: '203.0.113.70', sourceNat: true, ...pub });
  await s.run('assign-ip', { networkId: 71, publicIp: '203.0.113.71', ...pub });
}

const conntrackDeletes = (k: FakeKernel, from: number) => k.changes.slice(from).filter((c) => c.kind === 'conntrack').map((c) => c.detail);

test('which rules the kernel can serve, and the slots of weighted backends', () => {
  const one = (over: Record<string, unknown>) => parseLbDocument({ value: [rule(1, 80, over)], source: 't' }).upserts[0];
  assert.is(kernelRefusal(one({})), undefined, 'plain roundrobin');
  assert.is(kernelRefusal(one({ algorithm: 'source' })), undefined);
  assert.is(kernelRefusal(one({ healthcheck: false })), undefined, 'health check off');
  assert.is(kernelRefusal(one({ stickiness: { methodname: 'SourceBased', param: [] } })), undefined);
  assert.is(kernelRefusal(one({ healthcheck: { interval: 2 } })), 'health check');
  assert.is(kernelRefusal(one({ protocol: 'http' })), 'HTTP mode');
  assert.is(kernelRefusal(one({ stickiness: { methodname: 'LbCookie', param: [] } })), 'LbCookie stickiness');
  assert.is(kernelRefusal(one({ algorithm: 'leastconn' })), 'algorithm leastconn');
  assert.is(kernelRefusal(one({ algorithm: 'static-rr' })), 'algorithm static-rr');
  const b = (w: number[]) => w.map((weight, i) => ({ ip: `10.0.0.${i + 1}`, port: 80, weight }));
  assert.equal(backendSlots(b([3, 2, 1])).map((x) => x.ip.slice(-1)), ['1', '2', '1', '3', '2', '1'], 'smooth weighted round robin');
  assert.is(backendSlots(b([100, 200])).length, 3, 'over their greatest common divisor');
  assert.equal(backendSlots(b([0, 5])).map((x) => x.ip), ['10.0.0.2'], 'weight 0: no slot');
  assert.equal(backendSlots(b([0, 0])), [], 'no backend takes new connections');
  assert.match(kernelRefusal(one({ backends: [{ ip: '10.0.0.1', port: 1, weight: 256 }, { ip: '10.0.0.2', port: 1, weight: 255 }, ...Array.from({ length: 20 }, (_, i) => ({ ip: `10.0.1.${i + 1}`, port: 1, weight: 254 }))] }))!, /slots/);
});

test('kernel mode compiles plain rules into maps, keeps the others on haproxy; switching moves them with any command', async () => {
  const s = setup();
  try {
    await isolated(s);
    const h = s.hx('cs-net-71');
    await s.lb(71, [rule(1, 80, { backends: [{ ip: '10.71.0.11', port: 8080, weight: 3 }, { ip: '10.71.0.12', port: 8081, weight: 1 }] }), rule(2, 81, { algorithm: 'source', maxconn: 50 })], KERNEL);
    assert.equal(h.actions, [], 'every rule in the kernel: no haproxy started');
    assert.equal(await s.lbRulesIn('cs-net-71'), ['rule 1', 'rule 2: maxconn 50', 'rule 2']);
    assert.is((await s.elems('cs-net-71', 'lb_addr')).length, 4 + 2, '3+1 slots, 1+1 slots');
    assert.equal(await s.services('cs-net-71'), [], 'no haproxy listener declared to the public guard');
    const dnat2 = (await s.table('cs-net-71')).rules.find((r) => r.comment === 'rule 2')!;
    assert.match(JSON.stringify(dnat2.expr), /"jhash"/, 'source: a hash of the client address');
    const dnat1 = (await s.table('cs-net-71')).rules.find((r) => r.comment === 'rule 1')!;
    assert.match(JSON.stringify(dnat1.expr), /"numgen":\{"mode":"inc","mod":4,"offset":1275068416\}/);
    assert.is(lbState(s.engine.store.load('cs-net-71')!).providers?.['71'], 'kernel', 'recorded');

    // a health-checked rule stays on haproxy (its listener declared), the plain ones do not move
    await s.lb(71, [rule(3, 82, { healthcheck: { interval: 1 } })]);
    assert.equal(h.actions, ['start']);
    assert.match(h.runningConfig()!, /listen lb_3\b/);
    assert.not.match(h.runningConfig()!, /listen lb_[12]\b/);
    assert.is((await s.services('cs-net-71')).length, 1);
    assert.equal(await s.lbRulesIn('cs-net-71'), ['rule 1', 'rule 2: maxconn 50', 'rule 2']);

    // another command carrying the detail moves the network back: haproxy serves all, no kernel objects
    let mark = s.k.changes.length;
    await s.run('assign-ip', { networkId: 71, publicIp: '203.0.113.72', ...pub }, HAPROXY);
    assert.equal(h.actions, ['start', 'reload'], 'prepare: reloaded before the DNAT went; nothing more after');
    assert.match(h.runningConfig()!, /listen lb_1\b[\s\S]*listen lb_2\b[\s\S]*listen lb_3\b/);
    assert.equal(await s.lbRulesIn('cs-net-71'), []);
    assert.not.ok((await s.table('cs-net-71')).chains.some((c) => c.name.startsWith('lb_')), 'no lb_ chain left');
    assert.equal(conntrackDeletes(s.k, mark), [], 'moving a rule between providers flushes nothing');
    assert.is(lbState(s.engine.store.load('cs-net-71')!).providers, undefined);
    // a command without the detail keeps the recorded provider
    await s.run('assign-ip', { networkId: 71, publicIp: '203.0.113.73', ...pub });
    assert.equal(await s.lbRulesIn('cs-net-71'), []);

    // and to the kernel again: haproxy keeps rule 3 only
    await s.lb(71, [], KERNEL);
    assert.equal(h.actions.at(-1), 'reload');
    assert.not.match(h.runningConfig()!, /listen lb_[12]\b/);
    // revoke the health check: no haproxy left
    mark = s.k.changes.length;
    await s.lb(71, [{ id: 3, revoke: true }]);
    assert.equal(h.actions.at(-1), 'stop');
    assert.equal(conntrackDeletes(s.k, mark), [], 'a haproxy rule revoked: haproxy finishes its connections');

    // a backend removed: flows kept; the rule revoked / its IP released: its flows deleted
    mark = s.k.changes.length;
    await s.lb(71, [rule(1, 80)]);
    assert.equal(conntrackDeletes(s.k, mark), [], 'a backend removed: existing flows continue');
    await s.lb(71, [{ id: 1, revoke: true }]);
    assert.equal(conntrackDeletes(s.k, mark), [{ family: 'ipv4', proto: 'tcp', origDst: '203.0.113.71', origDstPort: 80 }]);
    mark = s.k.changes.length;
    await s.run('release-ip', { networkId: 71, publicIp: '203.0.113.71', ...pub });
    assert.equal(conntrackDeletes(s.k, mark).filter((f) => (f as { origDstPort?: number }).origDstPort === 81), [{ family: 'ipv4', proto: 'tcp', origDst: '203.0.113.71', origDstPort: 81 }]);
    assert.equal(await s.lbRulesIn('cs-net-71'), [], 'inactive: nothing compiled');
  } finally {
    s.done();
  }
});

test('bad lb-provider: exit 1 naming network-extension-details.lb-provider, nothing changed', async () => {
  const s = setup();
  try {
    await isolated(s);
    await s.lb(71, [rule(1, 80)], KERNEL);
    const file = join(s.stateDir, 'routers', 'cs-net-71.json');
    const before = { state: readFileSync(file, 'utf8'), table: JSON.stringify(await s.table('cs-net-71')), changes: s.k.changes.length };
    for (const bad of ['nginx', 'KERNEL', true, 1, ['kernel'], { a: 1 }]) {
      try {
        await s.lb(71, [rule(2, 81)], { 'lb-provider': bad });
        assert.unreachable(`accepted ${JSON.stringify(bad)}`);
      } catch (e) {
        assert.is(exitCodeOf(e), 1, String(e));
        assert.match(String((e as Error).message), /^network-extension-details\.lb-provider: .* is not one of haproxy, kernel$/);
      }
    }
    assert.is(readFileSync(file, 'utf8'), before.state);
    assert.is(JSON.stringify(await s.table('cs-net-71')), before.table);
    assert.is(s.k.changes.length, before.changes, 'no kernel change');
  } finally {
    s.done();
  }
});

test('plans: which rules move where, the nft objects, no haproxy started or stopped, flows of a revoked rule', async () => {
  const s = setup();
  try {
    await isolated(s);
    const h = s.hx('cs-net-71');
    await s.lb(71, [rule(1, 80), rule(2, 81, { healthcheck: { interval: 1 } })]);
    assert.equal(h.actions, ['start']);
    let steps = await s.plan('apply-lb-rules', { networkId: 71, lbRules: '[]' }, KERNEL);
    const serve = steps.find((x) => x.action === 'serve');
    assert.is(serve?.what, 'load balancing: rule 1: kernel; rule 2: haproxy (health check)');
    assert.ok(steps.some((x) => x.kind === 'service' && x.action === 'reload'), 'haproxy reloaded without rule 1');
    assert.ok(steps.some((x) => x.kind === 'nft' && JSON.stringify(x.detail ?? x.lines ?? '').includes('lb_dnat')), 'the kernel objects in the transaction');
    assert.equal(h.actions, ['start'], 'nothing run');
    await s.lb(71, [{ id: 2, revoke: true }], KERNEL);
    assert.equal(h.actions.at(-1), 'stop');
    steps = await s.plan('apply-lb-rules', { networkId: 71, lbRules: JSON.stringify([{ id: 1, revoke: true }]) });
    assert.ok(steps.some((x) => x.kind === 'conntrack' && x.what.includes('203.0.113.71') && x.what.includes('80')), JSON.stringify(steps));
    assert.not.ok(steps.some((x) => x.kind === 'service'), 'no haproxy to stop or start');
  } finally {
    s.done();
  }
});

test('VPC: the provider is per tier (the rules applied for that tier); a destroyed tier forgets it; restore compiles it again', async () => {
  const s = setup();
  try {
    await s.run('implement-vpc', { vpcId: 72, vpcCidr: '10.72.0.0/16' });
    await s.run('implement-network', { networkId: 721, vpcId: 72, vlan: 'vxlan://5721', gateway: '10.72.1.1', cidr: '10.72.1.0/24' }, KERNEL);
    await s.run('implement-network', { networkId: 722, vpcId: 72, vlan: 'vxlan://5722', gateway: '10.72.2.1', cidr: '10.72.2.0/24' });
    await s.run('assign-ip', { networkId: 721, vpcId: 72, publicIp: '203.0.113.80', sourceNat: true, ...pub });
    const h = s.hx('cs-vpc-72');
    const r = (id: number, port: number, be: string) => ({ ...rule(id, port), publicIp: '203.0.113.80', backends: [{ ip: be, port: 80 }] });
    await s.lb(721, [r(1, 80, '10.72.1.5')], {}, 72);
    await s.lb(722, [r(2, 81, '10.72.2.5')], {}, 72);
    assert.equal(await s.lbRulesIn('cs-vpc-72'), ['rule 1'], "tier 721's rule in the kernel");
    assert.match(h.runningConfig()!, /listen lb_2\b/);
    assert.not.match(h.runningConfig()!, /listen lb_1\b/);
    // the reboot: a new kernel, restoreAll
    s.k.deleteNetns('cs-vpc-72');
    const after = setup(s.stateDir);
    assert.equal(await after.engine.restoreAll(), ['cs-vpc-72']);
    assert.equal(await after.lbRulesIn('cs-vpc-72'), ['rule 1']);
    assert.equal(after.hx('cs-vpc-72').actions, ['start']);
    await after.run('destroy-network', { networkId: 721, vpcId: 72 });
    assert.equal(lbState(after.engine.store.load('cs-vpc-72')!).providers, undefined, "the tier's provider forgotten");
    assert.equal(await after.lbRulesIn('cs-vpc-72'), []);
    await after.run('destroy-network', { networkId: 722, vpcId: 72 });
    await after.run('destroy-vpc', { vpcId: 72 });
    assert.equal(after.k.namespaces(), []);
    assert.equal(after.hx('cs-vpc-72').actions.at(-1), 'stop');
  } finally {
    s.done();
  }
});

test.run();
