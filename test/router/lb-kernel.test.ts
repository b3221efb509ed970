/**
 * The kernel load balancer (network-extension-details lb-provider "kernel") end to end: a simulated KVM host, an
 * upstream client namespace, three guest VMs answering HTTP with their own name (8080), their peer's address (9090)
 * and one more open port (2222); real traffic through nftables in the router namespace, no haproxy where the kernel
 * serves every rule.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { RouterEngine } from '../../lib/router/engine.js';
import { supervisorFor } from '../../lib/router/lb/index.js';
import { deleteNetns, netnsExists } from '../../lib/netns/namespaces.js';
import { netnsPath } from '../../lib/sys/setns.js';
import { Scratch, addVm, inScratch, simulatedHost, cidr, nsExec, tcpAsk, uid, waitFor, whoamiServer } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { openIngress, servers, serversUp, tcpOk, vpcTopo } from '../helpers/fw.js';
import { killRouterDaemons } from '../helpers/daemons.js';
import { pidsWhere } from '../helpers/procs.js';
import { httpGet, httpNameServer, requestLoop, tally } from '../helpers/lb.js';
import { runCommand } from '../../lib/router/command-table.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

const LB_IP = '203.0.113.62';
const SNAT_IP = '203.0.113.60';
const VMS = ['10.5.2.11', '10.5.2.12', '10.5.2.13'];
const backends = (port = 8080, weights?: number[]) => VMS.map((ip, i) => ({ ip, port, revoked: false, ...(weights ? { weight: weights[i] } : {}) }));
const rule = (id: number, port: number, over: Record<string, unknown> = {}) => ({
  id, publicIp: LB_IP, publicPort: port, algorithm: 'roundrobin', revoke: false, backends: backends(), ...over,
});

interface Ctx {
  s: Scratch; dir: string; stateDir: string; engine: RouterEngine; id: string; ns: string; hostNs: string; upNs: string;
  vms: Array<{ ns: string }>; procs: ChildProcess[];
}
let ctx: Ctx;

const apply = (rules: unknown[], lbProvider?: 'haproxy' | 'kernel') => runCommand(ctx.engine, {
  command: 'apply-lb-rules', networkId: ctx.id, namespace: ctx.ns, lbRules: { value: rules, source: 'payload.lb_rules' }, ...(lbProvider ? { lbProvider } : {}),
});
const sup = () => supervisorFor(ctx.ns, ctx.stateDir);
const url = (port: number) => `http://${LB_IP}:${port}/`;
const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args, '--host-netns', ctx.hostNs, '--state-dir', ctx.stateDir, '--log-file', join(ctx.dir, 'cli.log')], { encoding: 'utf8', timeout: 30_000 });
const stateFile = () => join(ctx.stateDir, 'routers', `${ctx.ns}.json`);
const table = () => nsExec(ctx.ns, ['nft', 'list', 'table', 'inet', 'netns_router']);
const sorted = (t: Map<string, number>) => [...t.entries()].sort();

/** Every haproxy process in the router namespace, by a scan of /proc (not the supervisor's records). */
function haproxyInRouter(): number[] {
  const ino = statSync(netnsPath(ctx.ns)).ino;
  return pidsWhere(({ pid }) => readlinkSync(`/proc/${pid}/exe`).endsWith('/haproxy') && statSync(`/proc/${pid}/ns/net`).ino === ino);
}

test.before(async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-lbk-'));
  const stateDir = join(dir, 'state');
  const id = String(3000 + Math.floor(Math.random() * 6000));
  const ns = s.track(`cs-net-${id}`);
  const { hostNs, upNs, h } = simulatedHost(s);
  const engine = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
  ctx = { s, dir, stateDir, engine, id, ns, hostNs, upNs, vms: [], procs: [] };
  const vni = 6000 + (Number(id) % 1000);
  await runCommand(engine, { command: 'implement-network', networkId: id, namespace: ns, segment: { kind: 'vxlan', vni }, gateway: '10.5.2.1', cidr: cidr('10.5.2.0/24') });
  for (const ip of [SNAT_IP, LB_IP]) {
    await runCommand(engine, { command: 'assign-ip', networkId: id, namespace: ns, publicIp: { ip, segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: ip === SNAT_IP } });
  }
  await openIngress(engine, { networkId: id, namespace: ns }, [{ ip: LB_IP, protocol: 'tcp' }]);
  for (let i = 1; i <= 3; i++) {
    const vm = addVm(s, h, `brvx-${vni}`, `${VMS[i - 1]}/24`, '10.5.2.1');
    ctx.vms.push(vm);
    ctx.procs.push(await httpNameServer(vm.ns, 8080, `vm${i}`), whoamiServer(vm.ns, 9090), ...servers(vm.ns, [2222], []));
  }
  // a hostile upstream: it routes the guest CIDR to the router's public address
  nsExec(upNs, ['ip', 'route', 'add', '10.5.2.0/24', 'via', SNAT_IP]);
  assert.ok(await waitFor(() => tcpAsk(ctx.vms[1].ns, VMS[0], 9090) === VMS[1], 5000), 'backends up');
});

test.after(async () => {
  for (const p of ctx.procs) p.kill();
  await sup().stop({ purge: true }).catch(() => undefined);
  ctx.s.cleanup();
  rmSync(ctx.dir, { recursive: true, force: true });
});

test('kernel: round robin spreads evenly over 3 backends, with no haproxy in the router', async () => {
  await apply([rule(1, 80)], 'kernel');
  const t = tally(ctx.upNs, url(80), 9);
  assert.equal(sorted(t), [['vm1', 3], ['vm2', 3], ['vm3', 3]], JSON.stringify([...t]));
  assert.equal(haproxyInRouter(), [], 'no haproxy process in the router namespace');
  assert.not.ok(existsSync(sup().opts.runDir), 'no haproxy run directory');
  assert.match(table(), /chain lb_dnat/);
  const dump = await ctx.engine.dumpConfig(ctx.ns);
  assert.equal((dump.modules?.lb as { rules: unknown }).rules, { 1: 'kernel' });
});

test('kernel: weights are respected (3:2:1 → 6/4/2 of 12)', async () => {
  await apply([rule(2, 81, { backends: backends(8080, [3, 2, 1]) })]);
  const t = tally(ctx.upNs, url(81), 12);
  assert.equal(sorted(t), [['vm1', 6], ['vm2', 4], ['vm3', 2]], JSON.stringify([...t]));
  // weight 0: no new connections
  await apply([rule(2, 81, { backends: backends(8080, [0, 1, 0]) })]);
  assert.equal(sorted(tally(ctx.upNs, url(81), 4)), [['vm2', 4]]);
});

test('kernel: source (and SourceBased stickiness) keeps a client on one backend; round robin on another port does not', async () => {
  await apply([rule(3, 82, { algorithm: 'source' }), rule(4, 83, { stickiness: { methodname: 'SourceBased', param: [] } })]);
  for (const port of [82, 83]) {
    const t = tally(ctx.upNs, url(port), 8);
    assert.is(t.size, 1, `${port}: ${JSON.stringify([...t])}`);
    assert.not.ok(t.has(''), 'no failure');
  }
  assert.is(tally(ctx.upNs, url(80), 6).size, 3, 'rule 1 still spreads');
});

test('kernel: backends see the router tier address, from upstream and in a hairpin from a guest of the same tier', async () => {
  await apply([rule(5, 90, { backends: backends(9090) })]);
  const seen = new Set<string>();
  for (let i = 0; i < 3; i++) seen.add(tcpAsk(ctx.upNs, LB_IP, 90));
  assert.equal([...seen], ['10.5.2.1'], 'upstream client seen as the router');
  // hairpin: vm1 → LB → each backend (vm1 itself included) sees the router, and the reply comes back
  const hair = new Set<string>();
  for (let i = 0; i < 3; i++) hair.add(tcpAsk(ctx.vms[0].ns, LB_IP, 90));
  assert.equal([...hair], ['10.5.2.1'], `hairpin: ${[...hair]}`);
  // control: directly, the backend sees the guest's own address
  assert.is(tcpAsk(ctx.vms[0].ns, VMS[1], 9090), VMS[0]);
});

test('kernel mode: a rule with a health check or cookie stickiness is served by haproxy, plain ones by the kernel', async () => {
  await apply([rule(6, 84, { healthcheck: { interval: 0.5 } }), rule(7, 85, { protocol: 'http', stickiness: { methodname: 'LbCookie', param: [] } })]);
  assert.is(haproxyInRouter().length, 1, 'one haproxy in the router');
  const cfg = readFileSync(sup().paths.config, 'utf8');
  assert.match(cfg, /listen lb_6\b/);
  assert.match(cfg, /listen lb_7\b/);
  assert.not.match(cfg, /listen lb_1\b/, 'rule 1 is not on haproxy');
  assert.ok(/^vm[123]$/.test(httpGet(ctx.upNs, url(84))), 'haproxy serves rule 6');
  assert.ok(/^vm[123]$/.test(httpGet(ctx.upNs, url(85))), 'haproxy serves rule 7');
  assert.equal(sorted(tally(ctx.upNs, url(80), 3)), [['vm1', 1], ['vm2', 1], ['vm3', 1]], 'the kernel still serves rule 1');
  const dump = await ctx.engine.dumpConfig(ctx.ns);
  const rules = (dump.modules?.lb as { rules: Record<string, string> }).rules;
  assert.is(rules['6'], 'haproxy (health check)');
  assert.is(rules['7'], 'haproxy (HTTP mode)');
  assert.is(rules['1'], 'kernel');
  // the last of them gone: haproxy stops, its run directory goes
  await apply([{ id: 6, revoke: true }, { id: 7, revoke: true }]);
  assert.equal(haproxyInRouter(), []);
  assert.not.ok(existsSync(sup().opts.runDir));
  assert.ok(/^vm[123]$/.test(httpGet(ctx.upNs, url(80))), 'positive control: the LB answers');
});

test('kernel: maxconn refuses new connections over the limit (dropped, not queued) and admits them again once one closes', async () => {
  await apply([rule(9, 87, { maxconn: 1 })]);
  const est = () => nsExec(ctx.ns, ['conntrack', '-L', '-p', 'tcp', '--orig-dst', LB_IP, '--dport', '87']).split('\n').filter((l) => l.includes('ESTABLISHED')).length;
  const holder = spawn('ip', ['netns', 'exec', ctx.upNs, 'socat', '-', `TCP:${LB_IP}:87`], { stdio: ['pipe', 'ignore', 'ignore'] });
  ctx.procs.push(holder);
  assert.ok(await waitFor(() => est() === 1, 5000), 'one connection held');
  assert.is(httpGet(ctx.upNs, url(87)), '', 'a second one is over maxconn 1');
  holder.kill();
  assert.ok(await waitFor(() => /^vm[123]$/.test(httpGet(ctx.upNs, url(87))), 10_000), 'admitted once the first closed (positive control)');
  await apply([{ id: 9, revoke: true }]);
});

test('isolation: from the public side only the rule port answers; the firewall filters it like any public IP', async () => {
  // positive controls from a guest of the tier
  assert.is(tcpAsk(ctx.vms[1].ns, VMS[0], 2222), 'hello', 'the backend port 2222 is open');
  assert.ok(/^vm1$/.test(httpGet(ctx.vms[1].ns, `http://${VMS[0]}:8080/`)), 'the backend port 8080 is open');
  assert.ok(/^vm[123]$/.test(httpGet(ctx.upNs, url(80))), 'the rule answers from upstream');
  // a hostile upstream host routing the guest CIDR through the router, or knocking on other LB ports
  assert.is(tcpAsk(ctx.upNs, VMS[0], 2222), '', 'backend port 2222 not reachable directly');
  assert.is(httpGet(ctx.upNs, `http://${VMS[0]}:8080/`), '', 'backend port 8080 not reachable directly');
  assert.is(tcpAsk(ctx.upNs, LB_IP, 2222), '', 'the LB address does not forward other ports');
  assert.is(httpGet(ctx.upNs, `http://${LB_IP}:8080/`), '', 'nor the backend port on the LB address');
  // the firewall: only port 81 open on the LB address → rule 1 (port 80) is blocked, rule 2 (81) still answers
  await openIngress(ctx.engine, { networkId: ctx.id, namespace: ctx.ns }, [{ ip: LB_IP, protocol: 'tcp', ports: [81, 81] }]);
  assert.is(httpGet(ctx.upNs, url(80)), '', 'port 80 denied by the firewall');
  assert.is(httpGet(ctx.upNs, url(81)), 'vm2', 'port 81 allowed (positive control)');
  await openIngress(ctx.engine, { networkId: ctx.id, namespace: ctx.ns }, [{ ip: LB_IP, protocol: 'tcp' }]);
  assert.ok(/^vm[123]$/.test(httpGet(ctx.upNs, url(80))), 'allowed again');
});

test('switching haproxy → kernel → haproxy under a request loop: service answers after each command', async () => {
  await apply([rule(1, 80)], 'haproxy');
  assert.is(haproxyInRouter().length, 1, 'haproxy serves the network');
  assert.not.match(table(), /lb_dnat/, 'no kernel objects');
  // one request loop per command (4 connections at a time), the command in its middle
  const step = async (provider: 'haproxy' | 'kernel') => {
    const loop = requestLoop(ctx.upNs, LB_IP, 80, 2500, 4);
    await new Promise((r) => setTimeout(r, 800));
    // any command carrying the detail moves the network (here the CLI's apply-lb-rules with an empty document)
    const r = cli(['apply-lb-rules', '--network-id', ctx.id, '--lb-rules', '[]', '--network-extension-details', JSON.stringify({ 'lb-provider': provider })]);
    assert.is(r.status, 0, r.stderr);
    const res = await loop;
    assert.ok(/^vm[123]$/.test(httpGet(ctx.upNs, url(80))), `answers after the move to ${provider}`);
    assert.ok(res.ok > 20, `requests flowed: ${JSON.stringify(res)}`);
    console.log(`      → ${provider}: ${JSON.stringify(res)}`);
    return { res, haproxy: haproxyInRouter().length };
  };
  const toKernel = await step('kernel');
  assert.is(toKernel.haproxy, 0, 'kernel: no haproxy');
  assert.match(table(), /lb_dnat/);
  const toHaproxy = await step('haproxy');
  assert.is(toHaproxy.haproxy, 1, 'haproxy again');
  assert.not.match(table(), /lb_dnat/);
  const again = await step('kernel');
  assert.is(again.haproxy, 0);
  // kernel → haproxy: haproxy listens before the DNAT goes, flows the kernel translated continue: nothing fails
  assert.is(toHaproxy.res.fail, 0, `kernel → haproxy is hitless: ${JSON.stringify(toHaproxy.res)}`);
  // haproxy → kernel: the connections haproxy holds when it stops are reset (documented); new ones meet the DNAT
  for (const x of [toKernel, again]) assert.ok(x.res.fail <= 8, `haproxy → kernel: only what haproxy held at its stop: ${JSON.stringify(x.res)}`);
});

test('revoke stops service and flushes its flows; restore after a reboot; bad lb-provider changes nothing', async () => {
  // bad input first, through the CLI: exit 1 naming the key, state and table byte-identical
  const before = { state: readFileSync(stateFile(), 'utf8'), table: table() };
  for (const bad of ['nginx', 'Kernel', ' kernel']) {
    const r = cli(['apply-lb-rules', '--network-id', ctx.id, '--lb-rules', JSON.stringify([rule(50, 99)]), '--network-extension-details', JSON.stringify({ 'lb-provider': bad })]);
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, 'network-extension-details.lb-provider');
    assert.is(r.stderr.trim().split('\n').length, 1, 'one line');
  }
  assert.is(readFileSync(stateFile(), 'utf8'), before.state, 'state unchanged');
  assert.is(table(), before.table, 'table unchanged');

  // reboot: namespace and processes gone, state kept
  deleteNetns(ctx.ns);
  assert.equal(await ctx.engine.restoreAll(), [ctx.ns]);
  assert.ok(await waitFor(() => /^vm[123]$/.test(httpGet(ctx.upNs, url(80))), 5000), 'restored in the kernel');
  assert.equal(haproxyInRouter(), []);

  // an established connection through rule 1 is cut when the rule is revoked (its conntrack entry deleted)
  const flows = () => nsExec(ctx.ns, ['conntrack', '-L', '-p', 'tcp', '--orig-dst', LB_IP, '--dport', '80']).split('\n').filter((l) => l.includes('ESTABLISHED')).length;
  const keep = spawn('ip', ['netns', 'exec', ctx.upNs, 'socat', '-', `TCP:${LB_IP}:80`], { stdio: ['pipe', 'ignore', 'ignore'] });
  ctx.procs.push(keep);
  assert.ok(await waitFor(() => flows() === 1, 5000), 'one established flow');
  await apply([{ id: 1, revoke: true }]);
  assert.is(flows(), 0, 'its flow flushed');
  assert.is(httpGet(ctx.upNs, url(80)), '', 'revoked rule no longer served');
  assert.ok(/^vm[123]$/.test(httpGet(ctx.upNs, url(81))), 'others still are');
  keep.kill();
});

test('VPC: the provider is per tier; kernel-served flows pass the tier ACL as haproxy connections do, other traffic does not', async () => {
  await inScratch((s) => vpcTopo(s, String(100 + (parseInt(uid(4), 16) % 800))), async (t, procs) => {
    const { engine, ns, vpcId, a, b, A, B, S, upNs } = t;
    procs.push(...servers(a, [8080], []), ...servers(b, [8080], []));
    assert.ok(await serversUp(a, [8080], []) && await serversUp(b, [8080], []));
    const VIP = '203.0.113.22';
    await runCommand(engine, { command: 'assign-ip', networkId: '11', vpcId, namespace: ns, publicIp: { ip: VIP, segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: false } });
    const lb = (networkId: string, id: number, port: number, be: string, lbProvider?: 'kernel') => runCommand(engine, {
      command: 'apply-lb-rules', networkId, vpcId, namespace: ns, ...(lbProvider ? { lbProvider } : {}),
      lbRules: { value: [{ id, publicIp: VIP, publicPort: port, algorithm: 'roundrobin', backends: [{ ip: be, port: 8080 }] }], source: 'test' },
    });
    await lb('11', 1, 80, A, 'kernel');
    await lb('12', 2, 81, B);
    const dump = (await engine.dumpConfig(ns)).modules?.lb as { rules: Record<string, string>; providers: Record<string, string> };
    assert.equal(dump.rules, { 1: 'kernel', 2: 'haproxy' }, 'tier 11 kernel, tier 12 haproxy');
    assert.equal(dump.providers, { 11: 'kernel' });
    // (an "open" probe may be retried — the first connection through a path waits for ARP, and a loaded machine can
    // lose a try; the "closed" probes are single tries, each beside open ones)
    assert.ok(await waitFor(() => tcpOk(upNs, VIP, 80), 8000), 'kernel rule answers');
    assert.ok(await waitFor(() => tcpOk(upNs, VIP, 81), 8000), 'haproxy rule answers');
    assert.ok(await waitFor(() => tcpOk(upNs, S, 8080), 5000), 'control: the static NAT to A answers before the ACL');
    // both tiers: an empty ACL (implicit deny of everything new)
    for (const id of ['11', '12']) await runCommand(engine, { command: 'apply-network-acl', networkId: id, vpcId, namespace: ns, aclRules: { value: [], source: 'test' } });
    assert.not.ok(tcpOk(upNs, S, 8080), 'the ACL denies the static NAT to A');
    assert.not.ok(tcpOk(b, A, 8080), 'and tier B to tier A');
    assert.ok(await waitFor(() => tcpOk(upNs, VIP, 81), 5000), 'haproxy still reaches B (its connections are the router\'s own)');
    assert.ok(await waitFor(() => tcpOk(upNs, VIP, 80), 5000), 'the kernel rule still reaches A, as haproxy would');
    assert.ok(await waitFor(() => tcpOk(b, VIP, 80), 5000), 'hairpin from tier B through the kernel rule too');
  }, { stop: killRouterDaemons }); // tier B's haproxy: by pid, whatever happened above
});

test('destroy leaves no nft object nor process', async () => {
  await apply([rule(8, 86, { healthcheck: { interval: 1 } })]);
  assert.is(haproxyInRouter().length, 1);
  const pid = haproxyInRouter()[0];
  await runCommand(ctx.engine, { command: 'destroy-network', networkId: ctx.id, namespace: ctx.ns });
  assert.not.ok(netnsExists(ctx.ns));
  assert.not.ok(existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] !== 'Z', 'haproxy gone');
  assert.not.ok(existsSync(sup().opts.runDir));
  assert.not.ok(existsSync(stateFile()));
});

test.run();
