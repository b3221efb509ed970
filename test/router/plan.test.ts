/**
 * Plan before apply (--dry-run): for a router's lifecycle through the CLI, each command is planned first. The plan
 * changes nothing (host and router namespace, nft tables, state directory identical), and the real command
 * then changes exactly what the plan said: the kernel before, with the plan's link/address/route changes and its
 * nft transactions applied (on the nft fake), is the kernel after. A plan of a failing command fails the same way.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRouter } from '../../lib/router/create-router.js';
import { UsageError } from '../../lib/util/errors.js';
import { NetnsHandle } from '../../lib/netns/handle.js';
import { netnsExists } from '../../lib/netns/namespaces.js';
import { openNftCli } from '../../lib/nft/nft-cli.js';
import { openFake } from '../../lib/nft/fake.js';
import { stripHandles, type ListedTable } from '../../lib/nft/listing.js';
import { listingDocument } from '../../lib/router/fake-kernel.js';
import type { PlanStep } from '../../lib/router/plan.js';
import { daemonPid, stopDaemon } from '../../lib/services/metadata/index.js';
import type { JsonCommand } from '../../lib/nft/json.js';
import { Scratch, simulatedHost } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { killDaemons } from '../helpers/router-cli.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');
const TABLES = [{ family: 'inet', name: 'netns_router' }, { family: 'netdev', name: 'netns_router_arp' }] as const;

interface Snap {
  links: Set<string>;
  addrs: Set<string>;
  routes: Set<string>;
  nft: Map<string, ListedTable>;
  files: Map<string, string>;
}

const linkKeys = (where: string, h: NetnsHandle): string[] => h.netlink.linkList().map((l) => `${where} ${l.name}`);

async function snapshot(hostNs: string, ns: string, stateDir: string): Promise<Snap> {
  const host = NetnsHandle.open(hostNs);
  const s: Snap = { links: new Set(linkKeys('host', host)), addrs: new Set(), routes: new Set(), nft: new Map(), files: new Map() };
  host.close();
  if (netnsExists(ns)) {
    const h = NetnsHandle.open(ns);
    for (const k of linkKeys(ns, h)) s.links.add(k);
    for (const a of h.netlink.addrList()) if (!a.ip.startsWith('fe80:') && a.dev !== 'lo') s.addrs.add(`${a.address} dev ${a.dev}`);
    for (const r of h.netlink.routeList({ table: 'all' })) if (r.protocol === 4) s.routes.add(`${r.table} ${r.dst}`);
    h.close();
    const ex = openNftCli({ netns: ns });
    for (const t of TABLES) {
      try {
        s.nft.set(`${t.family} ${t.name}`, await ex.list(t));
      } catch { /* absent */ }
    }
    await ex.close();
  }
  const walk = (d: string): void => {
    let entries: string[];
    try { entries = readdirSync(d); } catch { return; } // no state directory yet
    for (const e of entries) {
      const p = join(d, e);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      // lock files hold flocks only (a plan takes the locks, for a consistent view); sockets are not files
      else if (st.isFile() && !basename(p).startsWith('lock') && !p.endsWith('.lock')) s.files.set(p.slice(stateDir.length), readFileSync(p, 'utf8'));
    }
  };
  walk(stateDir);
  return s;
}

/**
 * A table compared across the kernel and the nft fake: chains, sets and maps with their elements, and per chain
 * its rules' comments in order (the fake keeps rule bodies as sent; the kernel lists them normalised).
 */
const tableText = (t: ListedTable | undefined): string => {
  if (!t) return 'null';
  const x = stripHandles(t);
  const sorted = (l: unknown[]): string[] => l.map((e) => JSON.stringify(e)).sort();
  return JSON.stringify({
    chains: sorted(x.chains),
    sets: [...x.sets, ...x.maps].map((st) => ({ ...st, elem: sorted((st as { elem?: unknown[] }).elem ?? []) })).sort((a, b) => a.name.localeCompare(b.name)),
    rules: x.rules.map((r) => `${r.chain}: ${r.comment ?? ''}`),
  });
};

/** The snapshot `before` with the plan's kernel changes made (links, addresses, routes; nft on the fake). */
async function applyPlan(before: Snap, changes: PlanStep[], ns: string): Promise<{ links: Set<string>; addrs: Set<string>; routes: Set<string>; nft: Map<string, string> }> {
  const links = new Set(before.links);
  const addrs = new Set(before.addrs);
  const routes = new Set(before.routes);
  const fake = openFake();
  for (const t of before.nft.values()) fake.applyDocument(listingDocument(t));
  for (const c of changes) {
    if (c.kind === 'netns' && c.action === 'create') links.add(`${c.where} lo`);
    if (c.kind === 'netns' && c.action === 'delete') {
      for (const k of [...links]) if (k.startsWith(`${c.where} `)) links.delete(k);
      addrs.clear(); routes.clear();
      for (const t of fake.tableNames()) fake.applyDocument({ nftables: [{ delete: { table: { family: t.split(' ')[0], name: t.split(' ')[1] } } }] } as never);
    }
    if (c.kind === 'link') {
      const d = c.detail as { name?: string; kind?: string; peer?: { name: string } } | undefined;
      if (c.action === 'create') {
        links.add(`${c.where} ${d!.name}`);
        if (d!.kind === 'veth') links.add(`${c.where === 'host' ? ns : 'host'} ${d!.peer!.name}`);
      }
      if (c.action === 'delete') {
        const name = c.what.split(' ')[1];
        links.delete(`${c.where} ${name}`);
        for (const a of [...addrs]) if (a.endsWith(` dev ${name}`)) addrs.delete(a);
      }
    }
    if (c.kind === 'address') {
      const d = c.detail as { dev: string; address: string };
      if (c.action === 'add') addrs.add(`${d.address} dev ${d.dev}`); else addrs.delete(`${d.address} dev ${d.dev}`);
    }
    if (c.kind === 'route') {
      const r = c.detail as { table: number; dst: string; protocol: number };
      if (c.action === 'replace' && r.protocol === 4) routes.add(`${r.table} ${r.dst}`);
      if (c.action === 'delete') routes.delete(`${r.table} ${r.dst}`);
    }
    if (c.kind === 'nft' && c.where === ns) fake.applyDocument({ nftables: c.detail as JsonCommand[] } as never);
  }
  const nft = new Map<string, string>();
  for (const t of fake.dump()) nft.set(`${t.table.family} ${t.table.name}`, tableText(t));
  return { links, addrs, routes, nft };
}

test('a plan changes nothing, and the command then changes exactly what its plan said', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-plan-'));
  const stateDir = join(dir, 'state');
  const id = String(2000 + Math.floor(Math.random() * 7000));
  const ns = s.track(`cs-net-${id}`);
  try {
    const { hostNs } = simulatedHost(s);
    const g = ['--host-netns', hostNs, '--state-dir', stateDir, '--log-file', join(dir, 'log')];
    const cli = (...a: string[]) => spawnSync(process.execPath, [CLI, ...a, ...g], { encoding: 'utf8', timeout: 60_000 });
    const steps: Array<[string, string[]]> = [
      ['implement-network', ['--network-id', id, '--vlan', 'vxlan://4322', '--gateway', '10.4.4.1', '--cidr', '10.4.4.0/24']],
      ['assign-ip', ['--network-id', id, '--public-ip', '203.0.113.44', '--public-vlan', 'untagged', '--public-gateway', '203.0.113.1', '--public-cidr', '203.0.113.0/24', '--source-nat', 'true']],
      ['assign-ip', ['--network-id', id, '--public-ip', '203.0.113.45', '--public-vlan', 'untagged', '--public-gateway', '203.0.113.1', '--public-cidr', '203.0.113.0/24']],
      ['add-static-nat', ['--network-id', id, '--public-ip', '203.0.113.45', '--private-ip', '10.4.4.20']],
      ['add-port-forward', ['--network-id', id, '--public-ip', '203.0.113.44', '--public-port', '80', '--private-ip', '10.4.4.10', '--private-port', '8080', '--protocol', 'tcp']],
      ['apply-fw-rules', ['--network-id', id, '--fw-rules', JSON.stringify({ rules: [{ type: 'ingress', protocol: 'tcp', portStart: 80, publicIp: '203.0.113.44' }] })]],
      ['delete-static-nat', ['--network-id', id, '--public-ip', '203.0.113.45', '--private-ip', '10.4.4.20']],
      ['config-dhcp-subnet', ['--network-id', id, '--gateway', '10.4.4.1', '--cidr', '10.4.4.0/24']],
      ['destroy-network', ['--network-id', id]],
    ];
    for (const [command, args] of steps) {
      const before = await snapshot(hostNs, ns, stateDir);
      const p = cli(command, ...args, '--dry-run=json');
      assert.is(p.status, 0, `${command} plan: ${p.stderr}`);
      const plan = JSON.parse(p.stdout) as { plan: string; changes: PlanStep[] };
      assert.is(plan.plan, command);
      assert.ok(plan.changes.length > 0, `${command}: the plan lists changes`);
      const text = cli(command, ...args, '--dry-run');
      assert.is(text.status, 0, text.stderr);
      assert.match(text.stdout, `plan of ${command}: ${plan.changes.length} change`);
      const same = await snapshot(hostNs, ns, stateDir);
      assert.equal([...same.links].sort(), [...before.links].sort(), `${command}: the plan changed no link`);
      assert.equal([...same.addrs].sort(), [...before.addrs].sort(), `${command}: the plan changed no address`);
      assert.equal([...same.routes].sort(), [...before.routes].sort(), `${command}: the plan changed no route`);
      assert.equal([...same.nft].map(([k, t]) => [k, tableText(t)]), [...before.nft].map(([k, t]) => [k, tableText(t)]), `${command}: the plan changed no nft table`);
      assert.equal([...same.files], [...before.files], `${command}: the plan wrote no file of the state directory`);

      const r = cli(command, ...args);
      assert.is(r.status, 0, `${command}: ${r.stderr}`);
      const after = await snapshot(hostNs, ns, stateDir);
      const want = await applyPlan(before, plan.changes, ns);
      // veth host ends go with their namespace ends (the plan names the namespace end): compare router-side links
      // exactly, host links by what the plan created
      assert.equal([...after.links].filter((l) => !l.startsWith('host ')).sort(), [...want.links].filter((l) => !l.startsWith('host ')).sort(), `${command}: router links as planned`);
      for (const l of want.links) if (l.startsWith('host ') && !before.links.has(l)) assert.ok(after.links.has(l), `${command}: ${l} created as planned`);
      assert.equal([...after.addrs].sort(), [...want.addrs].sort(), `${command}: addresses as planned`);
      assert.equal([...after.routes].sort(), [...want.routes].sort(), `${command}: routes as planned`);
      // a scoped command (docs/reconcile.md) commits no nft transaction when the rest of the router is as our last
      // commit left it, and its plan shows the full reconcile: the one difference allowed is the router table's
      // stamp element (its generation not advanced)
      const scoped = command === 'config-dhcp-subnet';
      const unstamped = (text: string | undefined): string | undefined => (scoped && text ? text.replace(/"contents_stamp"(.*?)"elem":\[[^\]]*\]/, '"contents_stamp"$1"elem":[]') : text);
      for (const [k, t] of after.nft) {
        assert.is(unstamped(want.nft.get(k)), unstamped(tableText(t)), `${command}: ${k} as planned`);
      }
      for (const k of want.nft.keys()) assert.ok(after.nft.has(k), `${command}: ${k} exists as planned`);
      const planned = new Set(plan.changes.filter((c) => c.kind === 'state').map((c) => c.action));
      if (command === 'destroy-network') assert.ok(planned.has('delete'), 'the plan deletes the state');
      else assert.ok(planned.has('save') || planned.has('create'), `${command}: the plan saves the state`);
      if (command === 'config-dhcp-subnet') {
        assert.ok(plan.changes.some((c) => c.kind === 'service' && c.action === 'start' && c.what.startsWith('dnsmasq')), 'dnsmasq start planned');
        assert.ok(plan.changes.some((c) => c.kind === 'file' && c.where.includes('/dnsmasq/')), 'its files planned');
      }
    }
    assert.not.ok(netnsExists(ns), 'destroyed');
  } finally {
    killDaemons({ ns, stateDir }); // a step that failed before destroy-network leaves its dnsmasq
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a plan of a failing command fails the same way (exit code and message), and changes nothing', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-plan-'));
  const stateDir = join(dir, 'state');
  const id = String(2000 + Math.floor(Math.random() * 7000));
  const ns = s.track(`cs-net-${id}`);
  try {
    const { hostNs } = simulatedHost(s);
    const g = ['--host-netns', hostNs, '--state-dir', stateDir, '--log-file', join(dir, 'log')];
    const cli = (...a: string[]) => spawnSync(process.execPath, [CLI, ...a, ...g], { encoding: 'utf8', timeout: 60_000 });
    let r = cli('implement-network', '--network-id', id, '--vlan', 'vxlan://4323', '--gateway', '10.4.5.1', '--cidr', '10.4.5.0/24');
    assert.is(r.status, 0, r.stderr);
    const failing: string[][] = [
      // bad input: exit 1
      ['add-static-nat', '--network-id', id, '--public-ip', '198.51.100.9', '--private-ip', '10.4.5.10'],
      ['add-port-forward', '--network-id', id, '--public-ip', '203.0.113.46', '--public-port', '70000', '--private-ip', '10.4.5.10', '--private-port', '80', '--protocol', 'tcp'],
      // a fault in plumbing (the public device does not exist): exit 2 with the kernel's side of the story
      ['assign-ip', '--network-id', id, '--public-ip', '198.51.100.7', '--public-vlan', 'vxlan://999', '--public-gateway', '198.51.100.1',
        '--public-cidr', '198.51.100.0/24', '--physical-network-extension-details', JSON.stringify({ 'public.network.device': 'nosuch0' })],
      // a namespace someone else made, named for this router
    ];
    for (const args of failing) {
      const before = await snapshot(hostNs, ns, stateDir);
      const p = cli(...args, '--dry-run');
      const real = cli(...args);
      assert.ok(real.status !== 0, `${args[0]} fails (${real.stderr})`);
      assert.is(p.status, real.status, `${args[0]}: the plan's exit code is the command's`);
      assert.is(p.stderr, real.stderr, `${args[0]}: the plan's message is the command's`);
      assert.is(p.stdout, '');
      const after = await snapshot(hostNs, ns, stateDir);
      assert.equal([...after.links].sort(), [...before.links].sort());
      assert.equal([...after.files], [...before.files]);
    }
    // VM data: a plan stores no blob and shows no secret (blob ids only); the real command then stores it
    const SECRET = 'Plan-Secret-Pw-9';
    const beforePw = await snapshot(hostNs, ns, stateDir);
    r = cli('save-password', '--network-id', id, '--ip', '10.4.5.10', '--password', SECRET, '--dry-run=json');
    assert.is(r.status, 0, r.stderr);
    assert.not.match(r.stdout + r.stderr, SECRET, 'no secret in the plan');
    const pwPlan = (JSON.parse(r.stdout) as { changes: PlanStep[] }).changes;
    assert.ok(pwPlan.some((c) => c.kind === 'state' && c.action === 'save'));
    // the metadata service's part is described: the VM's served files by name, listen.json, the daemon started and told
    assert.ok(pwPlan.some((c) => c.kind === 'file' && c.action === 'write' && c.where.endsWith('/vms/10.4.5.10') && c.what.endsWith(': password-1')), JSON.stringify(pwPlan));
    assert.ok(pwPlan.some((c) => c.kind === 'file' && c.where.endsWith(`/vmdata/${ns}/listen.json`)));
    assert.equal(pwPlan.filter((c) => c.kind === 'service').map((c) => c.action), ['start', 'register']);
    assert.not.ok(pwPlan.some((c) => c.what.includes('not described')));
    assert.equal([...(await snapshot(hostNs, ns, stateDir)).files], [...beforePw.files], 'no blob, no file written');
    assert.is(daemonPid(stateDir), undefined, 'no daemon started by the plan');
    r = cli('save-password', '--network-id', id, '--ip', '10.4.5.10', '--password', SECRET);
    assert.is(r.status, 0, r.stderr);
    assert.ok(daemonPid(stateDir), 'positive control: the command started the daemon the plan said it would');
    const stored = [...(await snapshot(hostNs, ns, stateDir)).files].filter(([f]) => !beforePw.files.has(f));
    assert.ok(stored.some(([, c]) => c.includes(SECRET)), `positive control: the command stores the password's blob (${stored.map(([f]) => f).join(', ')})`);

    // positive control: the same plan with a good value succeeds
    r = cli('assign-ip', '--network-id', id, '--public-ip', '203.0.113.47', '--public-vlan', 'untagged', '--public-gateway', '203.0.113.1', '--public-cidr', '203.0.113.0/24', '--dry-run');
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, 'plan of assign-ip');
    assert.match(r.stdout, '203.0.113.47/24');
    // --dry-run anywhere: before the command name it is the text plan, not that name as its format
    r = spawnSync(process.execPath, [CLI, '--dry-run', 'status', ...g], { encoding: 'utf8', timeout: 60_000 });
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout, 'plan of status: no changes\n');
    // a bad plan format is bad input
    r = cli('status', '--dry-run=yaml');
    assert.is(r.status, 1);
    assert.match(r.stderr, '--dry-run');
    r = cli('destroy-network', '--network-id', id);
    assert.is(r.status, 0, r.stderr);
  } finally {
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

async function serve(dir: string): Promise<{ pid: number; socket: string; stop: () => Promise<void> }> {
  const socket = join(dir, 'run', 'engine.sock');
  const proc = spawn(process.execPath, [join(dirname(CLI), 'netns-router.cjs'), 'serve', '--socket', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (c: string) => { err += c; });
  const t0 = Date.now();
  while (!/listening on/.test(err)) {
    if (proc.exitCode !== null || Date.now() - t0 > 20_000) throw new Error(`serve did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    pid: proc.pid!, socket,
    stop: () => new Promise((res) => {
      if (proc.exitCode !== null) { res(); return; }
      proc.once('exit', () => res());
      proc.kill('SIGTERM');
    }),
  };
}

test('plans through the resident engine and the library; a plan of an allocating implement records the pool\'s write only', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-plan-'));
  const stateDir = join(dir, 'state');
  const id = String(2000 + Math.floor(Math.random() * 7000));
  const ns = s.track(`cs-net-${id}`);
  let srv: Awaited<ReturnType<typeof serve>> | undefined;
  try {
    const { hostNs } = simulatedHost(s);
    const log = join(dir, 'log');
    const g = ['--host-netns', hostNs, '--state-dir', stateDir, '--log-file', log];
    const range = JSON.stringify({ 'guest.network.isolation': 'vxlan', 'guest.network.isolation.range': '7100-7109' });
    const implement = ['implement-network', '--network-id', id, '--gateway', '10.4.6.1', '--cidr', '10.4.6.0/24', '--physical-network-extension-details', range];

    // the resident engine plans too: the command line reaches it whole, --dry-run included
    srv = await serve(dir);
    const r = spawnSync(process.execPath, [join(dirname(CLI), 'netns-router.cjs'), ...implement, ...g, '--dry-run=json'], {
      encoding: 'utf8', timeout: 60_000, env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: srv.socket },
    });
    assert.is(r.status, 0, r.stderr);
    const starts = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; pid: number }).filter((l) => l.msg === 'command start');
    assert.is(starts.at(-1)!.pid, srv.pid, 'planned by the resident engine');
    const viaEngine = JSON.parse(r.stdout) as { plan: string; changes: PlanStep[] };
    const pool = viaEngine.changes.find((c) => c.kind === 'segment-pool');
    assert.ok(pool, 'the pool\'s write is planned');
    assert.ok((pool!.lines ?? []).some((l) => l.includes('7100')), 'with the segment it would allocate');
    assert.ok(viaEngine.changes.some((c) => c.kind === 'link' && c.what === 'vxlan vxlan7100'), 'and the plumbing of that segment');
    assert.not.ok(existsSync(join(stateDir, 'segment-pool.json')), 'the pool is not written');
    assert.not.ok(netnsExists(ns), 'no namespace made');

    // the library: the same plan, as a Plan
    const router = createRouter({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' }, physicalNetworkDetails: range });
    const plan = await router.plan('implement-network', { networkId: id, gateway: '10.4.6.1', cidr: '10.4.6.0/24' });
    assert.equal(plan.changes.map((c) => `${c.kind} ${c.action} ${c.where} ${c.what}`), viaEngine.changes.map((c) => `${c.kind} ${c.action} ${c.where} ${c.what}`), 'the library plans what the CLI plans');
    // bad input: the CLI's error class, code and argument; nothing changed
    let bad: unknown;
    try { await router.plan('add-port-forward', { networkId: id, publicIp: '203.0.113.9', publicPort: 70000, privateIp: '10.4.6.10', privatePort: 80 }); } catch (e) { bad = e; }
    assert.instance(bad, UsageError);
    assert.match(String(bad), '--public-port');
    // positive control: the real command then does what was planned (the segment from the pool)
    const out = JSON.parse((await router.implementNetwork({ networkId: id, gateway: '10.4.6.1', cidr: '10.4.6.0/24' }))!) as Record<string, string>;
    assert.is(out['network.broadcast_uri'], 'vxlan://7100');
    assert.ok(netnsExists(ns));
    await router.destroyNetwork({ networkId: id });
    await router.close();
  } finally {
    await srv?.stop();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
