/**
 * The load-balancing module's logic on the in-memory kernel (FakeKernel, FakeHaproxy): apply-lb-rules creating,
 * changing and deleting rules, when haproxy is started, reloaded, left alone and stopped, what `haproxy -c`
 * refuses (exit 1, nothing changed), a haproxy that cannot bind (exit 2, the previous configuration running and
 * the router as it was), a destroyed tier's rules forgotten, destroy, a killed haproxy, a reboot (restoreAll on a
 * new kernel), plans (on an overlay of the fake kernel), and the fake's check against the real `haproxy -c`. No
 * root, no haproxy process. What clients get through haproxy (balancing, stickiness, reloads without a lost
 * request) stays with test/router/lb-engine.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterEngine } from '../../lib/router/engine.js';
import { runCommand } from '../../lib/router/command-table.js';
import { requestFromValues } from '../../lib/router/contract/plain-values.js';
import type { CommandInputs } from '../../lib/router/contract/inputs.js';
import type { EngineCommand } from '../../lib/router/contract/types.js';
import { FakeKernel } from '../../lib/router/fake-kernel.js';
import { commandContext } from '../../lib/router/command-table.js';
import { PlanRecorder, type PlanStep } from '../../lib/router/plan.js';
import { ROUTER_TABLE } from '../../lib/router/router-table.js';
import { FakeHaproxy, fakeHaproxyCheck } from '../../lib/router/fake-haproxy.js';
import { haproxyOf, lbState, renderLbConfig } from '../../lib/router/lb/index.js';
import { checkConfig, haproxyExecutable, HaproxyError } from '../../lib/services/haproxy/index.js';
import { exitCodeOf } from '../../lib/util/errors.js';

const pub = { publicVlan: 'untagged', publicGateway: '203.0.113.1', publicCidr: '203.0.113.0/24' } as const;

function setup(stateDir = mkdtempSync(join(tmpdir(), 'nr-fake-lb-'))) {
  const k = new FakeKernel({ devices: ['eth1'] });
  const engine = new RouterEngine({ stateDir, devices: { guest: 'eth1', public: 'eth1' }, kernel: k });
  const run = <C extends EngineCommand>(c: C, input: CommandInputs[C]) => runCommand(engine, requestFromValues(c, input, { networkDetails: {} }));
  const lb = (networkId: string, ns: string, rules: unknown[]) => runCommand(engine, {
    command: 'apply-lb-rules', networkId, namespace: ns, ...(ns.startsWith('cs-vpc-') ? { vpcId: ns.slice(7) } : {}), lbRules: { value: rules, source: 'payload.lb_rules' },
  });
  const hx = (ns: string) => haproxyOf(k, ns, stateDir) as FakeHaproxy;
  /** apply-lb-rules as a plan, on an overlay of this fake kernel (what --dry-run does on the real one). */
  const planLb = async (networkId: string, ns: string, rules: unknown[]): Promise<PlanStep[]> => {
    const overlay = await FakeKernel.overlay(k, { tables: (n) => (n === undefined ? [] : [ROUTER_TABLE]) });
    try {
      const rec = new PlanRecorder(overlay);
      const pe = new RouterEngine({ stateDir, devices: { guest: 'eth1', public: 'eth1' }, kernel: overlay, plan: rec });
      const ctx = commandContext(pe);
      await runCommand(pe, { command: 'apply-lb-rules', networkId, namespace: ns, lbRules: { value: rules, source: 'payload.lb_rules' } }, { ...ctx, settings: { ...ctx.settings, dryRun: 'json' } });
      return rec.steps;
    } finally {
      overlay.dispose();
    }
  };
  return { k, engine, run, lb, hx, planLb, stateDir, done: () => rmSync(stateDir, { recursive: true, force: true }) };
}

const rule = (id: number, ip: string, port: number, over: Record<string, unknown> = {}) => ({
  id, publicIp: ip, publicPort: port, algorithm: 'roundrobin', revoke: false, backends: [{ ip: '10.71.0.11', port: 8080 }, { ip: '10.71.0.12', port: 8080 }], ...over,
});

async function fails(p: Promise<unknown>, code: number, ...parts: string[]): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    assert.is(exitCodeOf(e), code, String(e));
    for (const x of parts) assert.match(String((e as Error).message), x);
    return e;
  }
  return assert.unreachable(`should have failed with exit ${code}`);
}

async function isolated(s: ReturnType<typeof setup>): Promise<void> {
  await s.run('implement-network', { networkId: 71, vlan: 'vxlan://5071', gateway: '10.71.0.1', cidr: '10.71.0.0/24' });
  await s.run('assign-ip', { networkId: 71, publicIp: '203.0.113.70', sourceNat: true, ...pub });
  await s.run('assign-ip', { networkId: 71, publicIp: '203.0.113.71', ...pub });
}

test('apply-lb-rules: started, reloaded for a change, left alone when nothing changes, stopped with the last rule', async () => {
  const s = setup();
  try {
    await isolated(s);
    const h = s.hx('cs-net-71');
    assert.is(h.pid(), undefined, 'no rule: no haproxy');
    await s.lb('71', 'cs-net-71', [rule(1, '203.0.113.71', 80)]);
    assert.equal(h.actions, ['start']);
    const pid = h.pid();
    assert.ok(pid);
    assert.match(h.runningConfig()!, /listen lb_1\n\s+bind 203\.0\.113\.71:80\n/);
    assert.is(h.runningConfig(), renderLbConfig(s.engine.store.load('cs-net-71')!).text, 'it runs what the rules render');

    await s.lb('71', 'cs-net-71', [rule(1, '203.0.113.71', 80)]);
    await s.lb('71', 'cs-net-71', []);
    const checks = h.checks;
    await s.run('assign-ip', { networkId: 71, publicIp: '203.0.113.72', ...pub });
    assert.equal(h.actions, ['start'], 'the same rules, an empty document, another command: nothing to do');
    assert.is(h.checks, checks, 'what runs is not checked again (no haproxy -c)');

    await s.lb('71', 'cs-net-71', [rule(2, '203.0.113.71', 81, { algorithm: 'source' })]);
    assert.equal(h.actions, ['start', 'reload'], 'a new rule: a reload');
    assert.is(h.pid(), pid, 'the same master');
    assert.match(h.runningConfig()!, /listen lb_2\n\s+bind 203\.0\.113\.71:81\n\s+mode tcp\n\s+balance source/);
    await s.lb('71', 'cs-net-71', [rule(1, '203.0.113.71', 80, { backends: [{ ip: '10.71.0.13', port: 8080 }] })]);
    assert.equal(h.actions, ['start', 'reload', 'reload'], 'a changed rule: a reload');
    assert.match(h.runningConfig()!, /server 10\.71\.0\.13:8080 10\.71\.0\.13:8080 check/);
    assert.not.match(h.runningConfig()!.split('\nlisten ').find((x) => x.startsWith('lb_1'))!, /10\.71\.0\.11/, "rule 1's old backends are gone");

    await s.lb('71', 'cs-net-71', [{ id: 1, revoke: true }]);
    assert.equal(h.actions.at(-1), 'reload', 'one rule left: a reload');
    assert.not.match(h.runningConfig()!, /lb_1/);
    // the public IP of a rule released: the rule is inactive, the last one: stopped
    await s.run('release-ip', { networkId: 71, publicIp: '203.0.113.71', ...pub });
    assert.equal(h.actions.at(-1), 'stop');
    assert.is(h.pid(), undefined);
    assert.is(h.config, undefined, 'its run directory removed');
    await s.run('assign-ip', { networkId: 71, publicIp: '203.0.113.71', ...pub });
    assert.equal(h.actions.at(-1), 'start', 'assigned again: its rule is served again');
    await s.lb('71', 'cs-net-71', [{ id: 2, revoke: true }]);
    assert.equal(h.actions.at(-1), 'stop', 'no rule left: stopped');
    assert.is(s.engine.store.load('cs-net-71')!.extra?.lb, undefined, 'no LB state left');
  } finally {
    s.done();
  }
});

test('what haproxy -c refuses exits 1 naming the rule, nothing changed; a haproxy that cannot bind exits 2 with the router as it was', async () => {
  const s = setup();
  try {
    await isolated(s);
    const h = s.hx('cs-net-71');
    await s.lb('71', 'cs-net-71', [rule(1, '203.0.113.71', 80)]);
    const pid = h.pid();
    const state = JSON.stringify(s.engine.store.load('cs-net-71'));
    const config = h.runningConfig();
    const sticky = (params: Record<string, string>) => ({ methodname: 'SourceBased', param: Object.entries(params).map(([name, value]) => ({ name, value })) });
    // the document is valid; haproxy is not: a timer over 2^31-1 ms (a table size over 32 bits is the parser's)
    await fails(s.lb('71', 'cs-net-71', [rule(3, '203.0.113.71', 82, { stickiness: sticky({ expire: '30d' }) })]), 1, 'rule 3', 'haproxy refused the configuration', 'timer overflow');
    await fails(s.lb('71', 'cs-net-71', [rule(3, '203.0.113.71', 82, { stickiness: sticky({ tablesize: '4g' }) })]), 1, 'rule 3', 'stickiness.params.tablesize');
    await fails(s.lb('71', 'cs-net-71', [rule(3, '203.0.113.71', 80)]), 1, 'rule 3', '203.0.113.71:80 is already used by rule 1');
    assert.is(JSON.stringify(s.engine.store.load('cs-net-71')), state, 'state unchanged');
    assert.equal(h.actions, ['start'], 'haproxy untouched');
    await s.lb('71', 'cs-net-71', [rule(3, '203.0.113.71', 82, { stickiness: sticky({ expire: '24d', tablesize: '4m' }) })]);
    assert.equal(h.actions, ['start', 'reload'], 'positive control: 24 days and 4m are accepted');

    // someone else holds 203.0.113.71:83 in the namespace: the reload fails, the old configuration keeps running
    const before = { state: JSON.stringify(s.engine.store.load('cs-net-71')), config: h.runningConfig() };
    h.occupied.add('203.0.113.71:83');
    const e = await fails(s.lb('71', 'cs-net-71', [rule(4, '203.0.113.71', 83)]), 2, 'Address already in use');
    assert.ok(e instanceof Error);
    assert.is(JSON.stringify(s.engine.store.load('cs-net-71')), before.state, 'state as it was');
    assert.is(h.runningConfig(), before.config, 'the previous configuration runs (and its file says so)');
    assert.is(h.pid(), pid, 'the same master');
    assert.not.ok(lbState(s.engine.store.load('cs-net-71')!).networks['71']['4']);
    h.occupied.delete('203.0.113.71:83');
    await s.lb('71', 'cs-net-71', [rule(4, '203.0.113.71', 83)]);
    assert.match(h.runningConfig()!, /bind 203\.0\.113\.71:83/, 'positive control: free again, served');
    assert.ok(config !== h.runningConfig());

    // a start that cannot bind: exit 2, no haproxy, no rule stored
    await s.lb('71', 'cs-net-71', [1, 3, 4].map((id) => ({ id, revoke: true })));
    assert.is(h.pid(), undefined);
    h.occupied.add('203.0.113.71:90');
    await fails(s.lb('71', 'cs-net-71', [rule(5, '203.0.113.71', 90)]), 2, 'haproxy did not start', 'Address already in use');
    assert.is(h.pid(), undefined);
    assert.is(s.engine.store.load('cs-net-71')!.extra?.lb, undefined, 'nothing stored');
  } finally {
    s.done();
  }
});

test('VPC: one haproxy for every tier; a destroyed tier takes its rules along; destroy stops it', async () => {
  const s = setup();
  try {
    await s.run('implement-vpc', { vpcId: 72, vpcCidr: '10.72.0.0/16' });
    await s.run('implement-network', { networkId: 721, vpcId: 72, vlan: 'vxlan://5721', gateway: '10.72.1.1', cidr: '10.72.1.0/24' });
    await s.run('implement-network', { networkId: 722, vpcId: 72, vlan: 'vxlan://5722', gateway: '10.72.2.1', cidr: '10.72.2.0/24' });
    await s.run('assign-ip', { networkId: 721, vpcId: 72, publicIp: '203.0.113.80', sourceNat: true, ...pub });
    const h = s.hx('cs-vpc-72');
    await s.lb('721', 'cs-vpc-72', [rule(1, '203.0.113.80', 80, { backends: [{ ip: '10.72.1.5', port: 80 }] })]);
    await s.lb('722', 'cs-vpc-72', [rule(2, '203.0.113.80', 81, { backends: [{ ip: '10.72.2.5', port: 80 }] })]);
    assert.equal(h.actions, ['start', 'reload'], 'one haproxy serves both tiers');
    assert.match(h.runningConfig()!, /network 722/);
    await s.run('destroy-network', { networkId: 722, vpcId: 72 });
    assert.equal(Object.keys(lbState(s.engine.store.load('cs-vpc-72')!).networks), ['721'], "the tier's rules forgotten");
    assert.equal(h.actions.at(-1), 'reload');
    assert.not.match(h.runningConfig()!, /lb_2|network 722/);
    // the same tier made again starts without rules
    await s.run('implement-network', { networkId: 722, vpcId: 72, vlan: 'vxlan://5722', gateway: '10.72.2.1', cidr: '10.72.2.0/24' });
    assert.not.match(h.runningConfig()!, /lb_2/);
    await s.run('destroy-network', { networkId: 722, vpcId: 72 });
    await s.run('destroy-network', { networkId: 721, vpcId: 72 });
    assert.equal(h.actions.at(-1), 'stop', 'no tier left: stopped');
    await s.run('destroy-vpc', { vpcId: 72 });
    assert.equal(s.k.namespaces(), []);
  } finally {
    s.done();
  }
});

test('destroy stops haproxy; a killed one is started by the next command; it dies with its namespace and comes back with restoreAll', async () => {
  const s = setup();
  try {
    await isolated(s);
    const h = s.hx('cs-net-71');
    await s.lb('71', 'cs-net-71', [rule(1, '203.0.113.71', 80), rule(2, '203.0.113.70', 443)]);
    const text = h.runningConfig();
    h.kill();
    assert.is(h.pid(), undefined);
    await s.lb('71', 'cs-net-71', []);
    assert.equal(h.actions, ['start', 'killed', 'start'], 'any command of the router starts it again');
    assert.is(h.runningConfig(), text);

    // a reboot: namespaces and processes gone, the state kept; a new kernel, restoreAll
    s.k.deleteNetns('cs-net-71');
    assert.is(h.pid(), undefined, 'it died with its namespace');
    const after = setup(s.stateDir);
    assert.equal(await after.engine.restoreAll(), ['cs-net-71']);
    const h2 = after.hx('cs-net-71');
    assert.equal(h2.actions, ['start']);
    assert.is(h2.runningConfig(), text, 'every rule restored');

    await after.run('destroy-network', { networkId: 71 });
    assert.equal(h2.actions, ['start', 'stop']);
    assert.is(h2.pid(), undefined);
    assert.equal(after.k.namespaces(), []);
    assert.not.ok(existsSync(join(s.stateDir, 'run', 'cs-net-71')));
  } finally {
    s.done();
  }
});

test('plans: the configuration diff with start, reload or stop; a plan starts, reloads and stops nothing', async () => {
  const s = setup();
  try {
    await isolated(s);
    const h = s.hx('cs-net-71');
    const service = (steps: PlanStep[]) => steps.filter((x) => x.kind === 'service' && x.what.startsWith('haproxy')).map((x) => x.action);
    const write = (steps: PlanStep[]) => steps.find((x) => x.kind === 'file' && x.what === 'haproxy configuration');
    let steps = await s.planLb('71', 'cs-net-71', [rule(1, '203.0.113.71', 80)]);
    assert.equal(service(steps), ['start']);
    assert.ok(write(steps)?.lines?.some((l) => l.includes('bind 203.0.113.71:80')), JSON.stringify(write(steps)));
    assert.equal(h.actions, [], 'the plan started nothing');
    assert.is(s.engine.store.load('cs-net-71')!.extra?.lb, undefined, 'nor stored a rule');
    await s.lb('71', 'cs-net-71', [rule(1, '203.0.113.71', 80)]);
    assert.equal(service(await s.planLb('71', 'cs-net-71', [rule(1, '203.0.113.71', 80)])), [], 'the same rules: nothing');
    steps = await s.planLb('71', 'cs-net-71', [rule(2, '203.0.113.71', 81)]);
    assert.equal(service(steps), ['reload']);
    assert.ok(write(steps)?.lines?.some((l) => l.includes('bind 203.0.113.71:81')));
    assert.equal(service(await s.planLb('71', 'cs-net-71', [{ id: 1, revoke: true }])), ['stop']);
    await fails(s.planLb('71', 'cs-net-71', [rule(3, '203.0.113.71', 82, { stickiness: { methodname: 'SourceBased', param: [{ name: 'expire', value: '30d' }] } })]), 1, 'rule 3', 'timer overflow');
    assert.equal(h.actions, ['start'], 'plans changed nothing');
  } finally {
    s.done();
  }
});

test('FakeHaproxy: no start in a namespace that does not exist, nor on an address someone holds; refuses a refused text', async () => {
  const k = new FakeKernel();
  const h = k.haproxy('cs-net-9', '/nonexistent/haproxy') as FakeHaproxy;
  const text = 'global\n    maxconn 4096\n\ndefaults\n    mode tcp\n\nlisten lb_1\n    bind 198.51.100.9:80\n    server a 10.0.0.1:80\n';
  const code = async (p: Promise<unknown>): Promise<string | undefined> => { try { await p; } catch (e) { assert.instance(e, HaproxyError); return (e as HaproxyError).code; } return undefined; };
  assert.is(await code(h.apply(text)), 'E_HAPROXY_SPAWN');
  k.addNetns('cs-net-9');
  h.occupied.add('198.51.100.9:80');
  assert.is(await code(h.apply(text)), 'E_HAPROXY_START', 'the address is held by someone else');
  h.occupied.clear();
  assert.is(await code(h.apply('')), 'E_HAPROXY_CONFIG', 'an empty text: no listener');
  assert.is(await code(h.apply('listen lb_1\n    bind 198.51.100.9:80\nlisten lb_1\n    bind 198.51.100.9:81\n')), 'E_HAPROXY_CONFIG', 'a proxy named twice');
  assert.is(h.pid(), undefined);
  assert.is(await h.apply(text), 'started', 'positive control (IP_FREEBIND: the address need not be on an interface)');
  assert.is(await h.apply(text), 'unchanged');
  assert.is(await h.apply(text.replace(':80', ':81')), 'reloaded');
  assert.is(await code(h.apply('bogus\n')), 'E_HAPROXY_CONFIG');
  assert.ok(h.runningConfig()?.includes(':81'), 'a refused text changes nothing');
});

test("the fake's haproxy -c agrees with the real one (verdict and line) on what the module can produce", () => {
  let bin: string | undefined;
  try { bin = haproxyExecutable(); } catch { /* not installed */ }
  if (!bin) {
    console.log('  haproxy is not installed: the comparison with the real haproxy -c is skipped');
    return;
  }
  const base = 'global\n    maxconn 4096\n\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 50s\n    timeout server 50s\n    retries 3\n    option redispatch\n';
  const listen = (name: string, extra: string[] = [], bind = '203.0.113.5:80') => `\nlisten ${name}\n    bind ${bind}\n    mode tcp\n    balance roundrobin\n    maxconn 2000\n${extra.map((l) => `    ${l}\n`).join('')}    server 10.0.0.1:80 10.0.0.1:80 check\n`;
  const cases: Array<[string, string]> = [
    ['a valid configuration', base + listen('lb_1') + listen('lb_2', [], '203.0.113.5:81')],
    ['one address bound by two proxies (SO_REUSEPORT)', base + listen('lb_1') + listen('lb_2')],
    ['an expire of 30 days', base + listen('lb_1', ['stick-table type ip size 200k expire 30d', 'stick on src'])],
    ['an expire of 24 days', base + listen('lb_1', ['stick-table type ip size 200k expire 24d', 'stick on src'])],
    ['an expire of 2^31 ms', base + listen('lb_1', ['stick-table type ip size 200k expire 2147483648ms', 'stick on src'])],
    ['a table size of 4g (over 32 bits)', base + listen('lb_1', ['stick-table type ip size 4g expire 3h', 'stick on src'])],
    ['a table size of 3g', base + listen('lb_1', ['stick-table type ip size 3g expire 3h', 'stick on src'])],
    ['a table size of 4096m', base + listen('lb_1', ['stick-table type ip size 4096m expire 3h', 'stick on src'])],
    ['a table size of 2^32-1', base + listen('lb_1', ['stick-table type ip size 4294967295 expire 3h', 'stick on src'])],
    ['a table size of 2^32', base + listen('lb_1', ['stick-table type ip size 4294967296 expire 3h', 'stick on src'])],
    ['a table size with a unit inside', base + listen('lb_1', ['stick-table type ip size 1k0 expire 3h', 'stick on src'])],
    ['a table size in m', base + listen('lb_1', ['stick-table type string len 52 size 300m expire 3h', 'stick on src'])],
    ['a proxy named twice', base + listen('lb_1') + listen('lb_1', [], '203.0.113.5:81')],
    ['an unknown keyword out of section', `bogus\n${base}${listen('lb_1')}`],
    ['an empty text', ''],
    ['no listener', base],
  ];
  for (const [what, text] of cases) {
    const real = checkConfig(text);
    const fake = fakeHaproxyCheck(text);
    assert.is(fake.ok, real.ok, `${what}: real ${JSON.stringify(real.problems)}, fake ${JSON.stringify(fake.problems)}`);
    assert.is(fake.problems[0]?.line, real.problems[0]?.line, `${what}: the line`);
  }
});

test.run();
