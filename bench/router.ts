/**
 * Router-core benchmarks (issue 4, issue 9 workloads 1 and 2).
 *
 * latency  Every command of the network lifecycle that works today, run as CloudStack runs it (payload
 *          file), by each contestant in turn: netns-router in-library, netns-router as a cold CLI
 *          process, the spawn-per-operation baseline (bench/baseline/spawn-router.sh) and, with
 *          --baseline-wrapper, an operator's wrapper. One warm-up lifecycle, then R measured ones; the
 *          contestants' order rotates every repetition and ratios are taken pair by pair (same
 *          repetition), so a slow minute of the machine hits both sides of a ratio.
 * rules    Port forwards and static NATs at N = 10 … 50,000: time to apply all N (one engine change
 *          whose model holds N entries, i.e. one reconcile), time to change one on the loaded router
 *          (one add-port-forward / add-static-nat), process and kernel memory, nft table size; against
 *          iptables-restore batches, one iptables process per rule, and the baseline script run once
 *          per object.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { RouterEngine } from '../lib/router/engine.js';
import { type RouterModel, type PortForwardModel } from '../lib/router/model.js';
import { netnsExists } from '../lib/netns/namespaces.js';
import { runInNetns } from '../lib/sys/setns.js';
import { summarize, pairedRatios, type Summary } from './lib/stats.js';
import { now, rss, collectGarbage, kernelNetMemory, timeAsync, sleep } from './lib/timing.js';
import { fmtMs, fmtRatio, fmtBytes, fmtInt } from './lib/format.js';
import { renderBarChart, renderLinePlot, msTick, type Series } from './lib/svg.js';
import type { Table } from './lib/table.js';
import { emptySection, type BenchOptions, type SectionResult } from './lib/report.js';
import { Spawner } from './lib/spawner.js';
import { cliPath, spawnBaselinePath } from './lib/paths.js';
import { makeHost, removeHost, deleteNamespaces, PUBLIC_GW, type BenchHost } from './lib/topo.js';
import {
  lifecycleSteps, writePayloads, libContestant, cliContestant, shimContestant, spawnBaseline, scriptContestant, type Contestant,
} from './lib/lifecycle.js';
import { startResident, type Resident } from './lib/resident.js';
import { runCommand } from '../lib/router/command-table.js';

// ── workload 1: command latency ─────────────────────────────────────────────────────────────────────────

/** python3 processes the upstream wrapper starts per network command to read the payload (41 keys in parse_args + 2 detail blobs). */
const UPSTREAM_PYTHON_PER_COMMAND = 43;

interface StepSamples {
  label: string;
  command: string;
  /** contestant key → ms per measured repetition (NaN where the step failed) */
  ms: Record<string, number[]>;
  failures: Record<string, string[]>;
}

export async function runLatency(opts: BenchOptions): Promise<SectionResult> {
  const sec = emptySection('latency', 'Command latency over the network lifecycle');
  const t0 = now();
  const runs = opts.runs ?? (opts.quick ? 1 : 6);
  const warmup = opts.quick ? 0 : 1;
  const work = join(opts.outDir, 'work-latency');
  const spawner = Spawner.start();
  const contestants: Contestant[] = [];
  let resident: Resident | undefined;
  try {
    mkdirSync(work, { recursive: true });
    resident = await startResident(work, { mountNsOfPid: spawner.pid });
    contestants.push(libContestant(work, 1000), cliContestant(work, 2000, spawner), shimContestant(work, 5000, spawner, resident.socket), spawnBaseline(work, 3000, spawner));
    if (opts.baselineWrapper) contestants.push(scriptContestant('wrapper', `wrapper ${opts.baselineWrapper}`, opts.baselineWrapper, work, 4000, spawner));
    const plans = contestants.map((c) => {
      const steps = lifecycleSteps(c.ids);
      return { c, steps, files: writePayloads(join(work, c.key, 'payloads'), steps) };
    });
    const labels = plans[0].steps.map((s) => ({ label: s.label, command: s.command }));
    const results: StepSamples[] = labels.map((l) => ({
      ...l, ms: Object.fromEntries(contestants.map((c) => [c.key, []])), failures: Object.fromEntries(contestants.map((c) => [c.key, []])),
    }));
    const totals: Record<string, number[]> = Object.fromEntries(contestants.map((c) => [c.key, []]));

    // floor of a cold start: the CLI printing its version, and bash starting the baseline script's interpreter
    const floors: Record<string, number[]> = { cli: [], bash: [], python3: [] };
    const python3 = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : undefined;

    // cold-start floors, measured before the lifecycles (interleaved, after one unrecorded round)
    for (let i = -1; i < runs; i++) {
      const c = (await spawner.run([process.execPath, cliPath(), '--version'])).ms;
      const b = (await spawner.run(['bash', '-c', ':'])).ms;
      const py = python3 ? (await spawner.run([python3, '-c', 'pass'])).ms : Number.NaN;
      if (i < 0) continue;
      floors.cli.push(c);
      floors.bash.push(b);
      if (python3) floors.python3.push(py);
    }

    for (let rep = -warmup; rep < runs; rep++) {
      const order = plans.map((_, i) => plans[(i + Math.max(0, rep)) % plans.length]);
      opts.log(`latency: ${rep < 0 ? 'warm-up' : `repetition ${rep + 1}/${runs}`} (${order.map((p) => p.c.key).join(' → ')})`);
      for (const { c, steps, files } of order) {
        let total = 0;
        let failed = false;
        for (let i = 0; i < steps.length; i++) {
          const r = await c.run(steps[i], files[i]);
          if (rep >= 0) {
            results[i].ms[c.key].push(r.ok ? r.ms : Number.NaN);
            if (!r.ok) results[i].failures[c.key].push(r.error ?? 'failed');
          }
          if (!r.ok) failed = true;
          total += r.ms;
        }
        if (rep >= 0) totals[c.key].push(failed ? Number.NaN : total);
        if (failed) {
          opts.log(`latency: ${c.key} had failures in this repetition; resetting its routers and host`);
          c.reset();
        }
      }
    }

    // ── tables
    const keys = contestants.map((c) => c.key);
    const has = (k: string) => keys.includes(k);
    const okSamples = (xs: number[]) => xs.filter((x) => Number.isFinite(x));
    const sum = (xs: number[]): Summary => summarize(okSamples(xs));
    const rowFor = (label: string, ms: Record<string, number[]>, fails: Record<string, string[]>): string[] => {
      const s = Object.fromEntries(keys.map((k) => [k, sum(ms[k])]));
      const cell = (k: string) => (fails[k]?.length ? `FAILED ×${fails[k].length}` : `${fmtMs(s[k].median)} / ${fmtMs(s[k].p95)}`);
      const row = [label, cell('lib'), cell('cli'), cell('shim'), cell('spawn'), fmtRatio(pairedRatios(ms.cli, ms.spawn).median), fmtRatio(pairedRatios(ms.shim, ms.spawn).median), fmtRatio(pairedRatios(ms.lib, ms.spawn).median)];
      if (has('wrapper')) row.push(cell('wrapper'), fmtRatio(pairedRatios(ms.cli, ms.wrapper).median));
      return row;
    };
    const headers = ['command', 'library med/p95', 'CLI cold med/p95', 'shim+resident med/p95', 'spawn baseline med/p95', 'spawn÷CLI', 'spawn÷shim', 'spawn÷lib'];
    if (has('wrapper')) headers.push('wrapper med/p95', 'wrapper÷CLI');
    const rows = results.map((r) => rowFor(r.label, r.ms, r.failures));
    rows.push(rowFor('whole lifecycle (sum)', totals, Object.fromEntries(keys.map((k) => [k, totals[k].filter((x) => !Number.isFinite(x)).map(() => 'failed')]))));
    const fc = summarize(floors.cli);
    const fb = summarize(floors.bash);
    const table: Table = {
      title: `Command latency (${runs} repetitions after ${warmup} warm-up; median / p95)`,
      headers, rows,
      notes: [
        'library = RouterApi → RouterEngine in this process (request parsed beforehand); CLI cold = `node dist/cli/main.js <command> <payload-file> 60 --host-netns H --state-dir D`, no resident engine;',
        'shim+resident = the extension wrapper shim (install-wrapper; bash) run as CloudStack runs it, with `netns-router serve` running: the shim hands the command line to the resident engine, no node start per command;',
        'spawn baseline = bench/baseline/spawn-router.sh: one ip/iptables process per object, `ip netns exec` per namespace step, iptables-save after each change (lean: payload parsed by bash).',
        `ratios: median of per-repetition ratios (same repetition, same machine minute). Cold-start floors: netns-router --version ${fmtMs(fc.median)}, bash -c : ${fmtMs(fb.median)}.`,
        'Segments: guest vxlan://N, public untagged (this kernel has no 802.1Q; VLAN devices would add one more ip link per network on both sides).',
        ...(python3 ? [`Not in the baseline: the upstream wrapper parses the payload with one python3 per key (${UPSTREAM_PYTHON_PER_COMMAND} per network command, read from its source); one python3 start here: ${fmtMs(summarize(floors.python3).median)}, i.e. ≈ ${fmtMs(UPSTREAM_PYTHON_PER_COMMAND * summarize(floors.python3).median)} per command (estimate, not measured on the upstream script, which needs 802.1Q to run at all).`] : []),
      ],
    };
    sec.tables.push(table);
    for (const r of results) {
      for (const k of keys) if (r.failures[k].length) sec.partial.push(`${r.label}: ${k} failed ${r.failures[k].length}× (${r.failures[k][0]})`);
    }
    sec.data = {
      runs, warmup, contestants: contestants.map((c) => ({ key: c.key, label: c.label })),
      steps: results.map((r) => ({
        label: r.label, command: r.command, samplesMs: r.ms, failures: r.failures,
        summary: Object.fromEntries(keys.map((k) => [k, sum(r.ms[k])])),
        ratios: { spawnOverCli: pairedRatios(r.ms.cli, r.ms.spawn), spawnOverShim: pairedRatios(r.ms.shim, r.ms.spawn), spawnOverLib: pairedRatios(r.ms.lib, r.ms.spawn), ...(has('wrapper') ? { wrapperOverCli: pairedRatios(r.ms.cli, r.ms.wrapper), wrapperOverLib: pairedRatios(r.ms.lib, r.ms.wrapper) } : {}) },
      })),
      totals: Object.fromEntries(keys.map((k) => [k, { samplesMs: totals[k], summary: sum(totals[k]) }])),
      floors: { cliVersion: fc, bashTrue: fb, python3: summarize(floors.python3) }, upstreamPythonPerCommand: UPSTREAM_PYTHON_PER_COMMAND,
    };
    const names: Record<string, string> = { lib: 'netns-router library', cli: 'netns-router CLI (cold)', shim: 'wrapper shim + resident engine', spawn: 'spawn-per-operation baseline', wrapper: 'wrapper (--baseline-wrapper)' };
    sec.plots.push({
      file: 'latency-commands.svg',
      title: 'Command latency (median)',
      svg: renderBarChart({
        title: 'Command latency over the lifecycle (median)', valueLabel: 'time per command', logValue: true, valueTick: msTick,
        seriesNames: keys.map((k) => names[k]),
        groups: results.map((r) => ({ label: r.label, values: Object.fromEntries(keys.map((k) => [names[k], r.failures[k].length ? undefined : sum(r.ms[k]).median])) })),
        footnote: opts.footnote,
      }),
    });
  } finally {
    for (const c of contestants) c.close();
    await resident?.stop();
    await spawner.close();
    rmSync(work, { recursive: true, force: true });
  }
  sec.elapsedMs = now() - t0;
  return sec;
}

// ── workload 2: rule scaling ────────────────────────────────────────────────────────────────────────────

/** Largest static-NAT count of the default sizes (see the partial note in runRules). */
const SNAT_MAX = 10_000;
const RULE_NET = '7001';
const RULE_NS = `cs-net-${RULE_NET}`;
const BASE_NET = '7501';
const BASE_NS = `cs-net-${BASE_NET}`;
const GUEST = { cidr: '10.128.0.0/9', gateway: '10.128.0.1' };
const cidrOf = (s: string) => { const [address, p] = s.split('/'); return { family: 4 as const, address, prefix: Number(p) }; };

/** i-th private address inside 10.128.0.0/9 (skipping .0/.1 of the first /24). */
function privateIp(i: number): string {
  const v = (10 << 24) + (128 << 16) + 2 + i;
  return [24, 16, 8, 0].map((s) => (v >>> s) & 255).join('.');
}
/** i-th "public" address for static NATs: 198.18.0.0/15 (benchmarking range), skipping .0. */
function staticPublicIp(i: number): string {
  const v = (198 << 24) + (18 << 16) + 1 + i;
  return [24, 16, 8, 0].map((s) => (v >>> s) & 255).join('.');
}
const PF_PUBLIC = '203.0.113.10';
/** Private address of the "change one" object: outside the range the N objects use (a private IP has one static NAT). */
const CHANGE_PRIVATE = '10.200.0.5';
const pfOf = (i: number): PortForwardModel => ({ publicIp: PF_PUBLIC, protocol: i % 2 ? 'udp' : 'tcp', publicPorts: [1000 + (i >> 1), 1000 + (i >> 1)], privateIp: privateIp(i), privatePorts: [8000, 8000] });

type Kind = 'pf' | 'snat';

interface RulePoint {
  n: number;
  kind: Kind;
  applyMs?: Summary;
  changeOneMs?: Summary;
  removeAllMs?: number;
  rssDeltaBytes?: number;
  peakRssBytes?: number;
  kernelDeltaBytes?: number;
  nftRules?: number;
  nftElements?: number;
  nftListingBytes?: number;
  stateFileBytes?: number;
  iptRestoreMs?: Summary;
  iptRestoreRules?: number;
  iptRestoreKernelDeltaBytes?: number;
  iptSpawnMs?: number;
  iptSpawnExtrapolated?: boolean;
  scriptPerObjectMs?: number;
  scriptPerObjectExtrapolated?: boolean;
  scriptChangeOneMs?: Summary;
}

function runsFor(n: number, quick: boolean): number {
  if (quick) return n >= 1000 ? 2 : 3;
  return n <= 1000 ? 5 : n <= 10_000 ? 3 : 2;
}

async function implementRuleRouter(engine: RouterEngine, kind: Kind): Promise<void> {
  await runCommand(engine, { command: 'implement-network', networkId: RULE_NET, namespace: RULE_NS, segment: { kind: 'vxlan', vni: 7001 }, gateway: GUEST.gateway, cidr: cidrOf(GUEST.cidr), guestType: 'isolated' });
  await runCommand(engine, { command: 'assign-ip', networkId: RULE_NET, namespace: RULE_NS, publicIp: { ip: PF_PUBLIC, segment: { kind: 'untagged' }, gateway: PUBLIC_GW, cidr: cidrOf('203.0.113.0/24'), sourceNat: true } });
  void kind;
}

/** The model change of "apply all": N port forwards, or N static NATs each with its own public IP. */
function fill(m: RouterModel, kind: Kind, n: number): void {
  if (kind === 'pf') {
    m.portForwards = Array.from({ length: n }, (_, i) => pfOf(i));
    return;
  }
  const pub0 = m.publicIps[PF_PUBLIC];
  for (let i = 0; i < n; i++) {
    const ip = staticPublicIp(i);
    m.publicIps[ip] = { ip, prefixLen: 32, segment: pub0.segment, hostDev: pub0.hostDev, sourceNat: false, owner: RULE_NET };
    m.staticNats.push({ publicIp: ip, privateIp: privateIp(i) });
  }
}

function tableSize(ns: string): { rules: number; elements: number; bytes: number } {
  const r = runInNetns(ns, () => spawnSync('nft', ['-j', 'list', 'table', 'inet', 'netns_router'], { encoding: 'utf8', maxBuffer: 1 << 30 }));
  if (r.status !== 0) return { rules: Number.NaN, elements: Number.NaN, bytes: Number.NaN };
  const doc = JSON.parse(r.stdout) as { nftables: Array<Record<string, { elem?: unknown[] }>> };
  let rules = 0;
  let elements = 0;
  for (const o of doc.nftables) {
    if ('rule' in o) rules++;
    const s = o.set ?? o.map;
    if (s?.elem) elements += s.elem.length;
  }
  const text = runInNetns(ns, () => spawnSync('nft', ['list', 'table', 'inet', 'netns_router'], { encoding: 'utf8', maxBuffer: 1 << 30 }));
  return { rules, elements, bytes: Buffer.byteLength(text.stdout ?? '') };
}

/** Our engine: apply N entries in one change; change one on the loaded router; memory and table size. */
async function oursAt(opts: BenchOptions, kind: Kind, n: number, workDir: string): Promise<Partial<RulePoint>> {
  const runs = runsFor(n, opts.quick);
  const host = makeHost(`r${kind}`);
  const stateDir = join(workDir, `ours-${kind}-${n}`);
  const engine = new RouterEngine({ stateDir, hostNetns: host.hostNs, devices: { guest: 'eth1', public: 'eth1' } });
  const init = engine.initFor({ namespace: RULE_NS, networkId: RULE_NET });
  const apply: number[] = [];
  const out: Partial<RulePoint> = {};
  // a fresh router for every run: emptying a loaded one would time the removal instead (measured apart below)
  const fresh = async () => {
    if (engine.store.load(RULE_NS)) await runCommand(engine, { command: 'destroy-network', networkId: RULE_NET, namespace: RULE_NS });
    await implementRuleRouter(engine, kind);
  };
  try {
    for (let r = 0; r < runs; r++) {
      await fresh();
      // let the kernel finish freeing the previous router (namespace cleanup runs in the background)
      if (r === runs - 1) await sleep(300);
      collectGarbage();
      const rss0 = rss();
      const k0 = kernelNetMemory();
      const t = now();
      await engine.change(RULE_NS, init, (m) => fill(m, kind, n));
      apply.push(now() - t);
      if (r === runs - 1) {
        collectGarbage();
        out.rssDeltaBytes = rss() - rss0;
        out.kernelDeltaBytes = kernelNetMemory() - k0;
        out.peakRssBytes = process.resourceUsage().maxRSS * 1024;
      }
    }
    out.applyMs = summarize(apply);
    const size = tableSize(RULE_NS);
    out.nftRules = size.rules;
    out.nftElements = size.elements;
    out.nftListingBytes = size.bytes;
    try {
      out.stateFileBytes = Buffer.byteLength(JSON.stringify(engine.store.load(RULE_NS)));
    } catch { /* size unknown */ }
    // change one on the loaded router: the command CloudStack sends, timed in-library
    const change: number[] = [];
    const changeRuns = opts.quick ? 3 : 9; // cheap beside "apply all"; a median of few runs is at the mercy of one slow one
    for (let r = 0; r < changeRuns; r++) {
      if (kind === 'pf') {
        const req = { command: 'add-port-forward' as const, networkId: RULE_NET, namespace: RULE_NS, publicIp: { ip: PF_PUBLIC, sourceNat: true }, publicPorts: { start: 65000, end: 65000 }, privateIp: CHANGE_PRIVATE, privatePorts: { start: 80, end: 80 }, protocol: 'tcp' as const };
        change.push(await timeAsync(() => runCommand(engine, req)));
        await runCommand(engine, { ...req, command: 'delete-port-forward' });
      } else {
        const ip = '198.19.255.250';
        await runCommand(engine, { command: 'assign-ip', networkId: RULE_NET, namespace: RULE_NS, publicIp: { ip, segment: { kind: 'untagged' }, sourceNat: false } });
        const req = { command: 'add-static-nat' as const, networkId: RULE_NET, namespace: RULE_NS, publicIp: { ip, sourceNat: false }, privateIp: CHANGE_PRIVATE };
        change.push(await timeAsync(() => runCommand(engine, req)));
        await runCommand(engine, { command: 'release-ip', networkId: RULE_NET, namespace: RULE_NS, publicIp: { ip, sourceNat: false } });
      }
    }
    out.changeOneMs = summarize(change);
    // remove all N in one change (the engine then also deletes the conntrack entries of every removed mapping)
    if (n <= (kind === 'pf' ? (opts.quick ? 100 : 1000) : (opts.quick ? 10 : 100))) {
      out.removeAllMs = await timeAsync(() => engine.change(RULE_NS, init, (m) => {
        m.portForwards = [];
        m.staticNats = [];
        for (const ip of Object.keys(m.publicIps)) if (ip !== PF_PUBLIC) delete m.publicIps[ip];
      }).then(() => undefined));
    }
  } finally {
    try {
      await runCommand(engine, { command: 'destroy-network', networkId: RULE_NET, namespace: RULE_NS });
    } catch { /* the namespace goes with the host below */ }
    deleteNamespaces((x) => x === RULE_NS);
    removeHost(host);
    rmSync(stateDir, { recursive: true, force: true });
  }
  return out;
}

// ── baselines of workload 2 ──

/** The rules spawn-router.sh (like the upstream wrapper) installs per object, in iptables-save syntax. */
function iptRulesFor(kind: Kind, i: number, net: string, vethN: string, pvethN: string): { nat: string[]; filter: string[] } {
  const pr = `CS_EXTNET_${net}_PR`;
  const post = `CS_EXTNET_${net}_POST`;
  const fwd = `CS_EXTNET_FWD_${net}`;
  if (kind === 'pf') {
    const p = pfOf(i);
    return {
      nat: [`-A ${pr} -d ${p.publicIp}/32 -p ${p.protocol} -m ${p.protocol} --dport ${p.publicPorts[0]} -j DNAT --to-destination ${p.privateIp}:${p.privatePorts[0]}`],
      filter: [
        `-A ${fwd} -d ${p.privateIp}/32 -o ${vethN} -p ${p.protocol} -m ${p.protocol} --dport ${p.privatePorts[0]} -j ACCEPT`,
        `-A ${fwd} -s ${p.privateIp}/32 -i ${vethN} -p ${p.protocol} -m ${p.protocol} --sport ${p.privatePorts[0]} -j ACCEPT`,
      ],
    };
  }
  const pub = staticPublicIp(i);
  const priv = privateIp(i);
  return {
    nat: [`-A ${pr} -d ${pub}/32 -j DNAT --to-destination ${priv}`, `-A ${post} -s ${priv}/32 -o ${pvethN} -j SNAT --to-source ${pub}`],
    filter: [`-A ${fwd} -d ${priv}/32 -o ${vethN} -j ACCEPT`, `-A ${fwd} -s ${priv}/32 -i ${vethN} -j ACCEPT`],
  };
}

function restoreText(kind: Kind, n: number, net: string, vethN: string, pvethN: string): { text: string; rules: number } {
  const nat: string[] = [];
  const filter: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = iptRulesFor(kind, i, net, vethN, pvethN);
    nat.push(...r.nat);
    filter.push(...r.filter);
  }
  return { text: ['*nat', ...nat, 'COMMIT', '*filter', ...filter, 'COMMIT', ''].join('\n'), rules: nat.length + filter.length };
}

/** A router built by the baseline script itself (implement-network + assign-ip), in its own host. */
async function baselineRouter(spawner: Spawner, host: BenchHost, stateDir: string, workDir: string): Promise<(cmd: string, payload: Record<string, string>) => Promise<number>> {
  const env = { SPAWN_ROUTER_STATE_DIR: stateDir };
  const net = { network_id: BASE_NET, vlan: 'vxlan://7501', gateway: GUEST.gateway, cidr: GUEST.cidr, guest_type: 'isolated' };
  let seq = 0;
  const cmd = async (command: string, payload: Record<string, string>): Promise<number> => {
    const f = join(workDir, `b-${++seq}.json`);
    writeFileSync(f, JSON.stringify({ 'physical-network-extension-details': { 'guest.network.device': 'eth1', 'public.network.device': 'eth1' }, payload: { ...net, ...payload } }));
    const r = await spawner.must([spawnBaselinePath(), command, f, '60'], { netns: host.hostNs, env, timeoutMs: 600_000 });
    return r.ms;
  };
  await cmd('implement-network', {});
  await cmd('assign-ip', { public_ip: PF_PUBLIC, public_vlan: 'untagged', public_gateway: PUBLIC_GW, public_cidr: '203.0.113.0/24', source_nat: 'true' });
  return cmd;
}

async function baselinesAt(opts: BenchOptions, spawner: Spawner, kind: Kind, n: number, workDir: string, perSpawn: { ipt?: number; script?: number }): Promise<Partial<RulePoint>> {
  const out: Partial<RulePoint> = {};
  const runs = runsFor(n, opts.quick);
  const host = makeHost(`b${kind}`);
  const stateDir = join(workDir, `base-${kind}-${n}`);
  mkdirSync(stateDir, { recursive: true });
  const vethN = `vn-x7501-${BASE_NET}`;
  const pvethN = `vpn-u-${BASE_NET}`;
  const nsx = (argv: string[]) => ['ip', 'netns', 'exec', BASE_NS, ...argv];
  try {
    const cmd = await baselineRouter(spawner, host, stateDir, workDir);
    const { text, rules } = restoreText(kind, n, BASE_NET, vethN, pvethN);
    const file = join(workDir, `rules-${kind}-${n}.ipt`);
    writeFileSync(file, text);
    // addresses + host routes the static NATs need (a batch router uses ip -batch for them)
    const addrFile = join(workDir, `addr-${kind}-${n}.ip`);
    const routeFile = join(workDir, `route-${kind}-${n}.ip`);
    if (kind === 'snat') {
      writeFileSync(addrFile, `${Array.from({ length: n }, (_, i) => `addr add ${staticPublicIp(i)}/32 dev ${pvethN}`).join('\n')}\n`);
      writeFileSync(routeFile, `${Array.from({ length: n }, (_, i) => `route add ${staticPublicIp(i)}/32 dev vph-u-${BASE_NET}`).join('\n')}\n`);
    }
    // (1) iptables-restore --noflush of all rules into the router's chains (+ ip -batch for addresses)
    const restore: number[] = [];
    let kDelta = Number.NaN;
    for (let r = 0; r < runs; r++) {
      // back to the router's own rules: flush the chains the objects go into
      await spawner.must(nsx(['sh', '-c', `iptables -t nat -F CS_EXTNET_${BASE_NET}_PR && iptables -t nat -F CS_EXTNET_${BASE_NET}_POST && iptables -t filter -F CS_EXTNET_FWD_${BASE_NET}`]));
      if (kind === 'snat') {
        await spawner.run(nsx(['ip', 'addr', 'flush', 'dev', pvethN]));
        await spawner.run(['ip', 'route', 'flush', 'dev', `vph-u-${BASE_NET}`], { netns: host.hostNs });
      }
      if (r === runs - 1) await sleep(300);
      const k0 = kernelNetMemory();
      let ms = (await spawner.must(nsx(['iptables-restore', '--noflush', file]), { timeoutMs: 600_000 })).ms;
      if (kind === 'snat') {
        ms += (await spawner.must(nsx(['ip', '-batch', addrFile]), { timeoutMs: 600_000 })).ms;
        ms += (await spawner.must(['ip', '-batch', routeFile], { netns: host.hostNs, timeoutMs: 600_000 })).ms;
      }
      restore.push(ms);
      if (r === runs - 1) kDelta = kernelNetMemory() - k0;
    }
    out.iptRestoreMs = summarize(restore);
    out.iptRestoreRules = rules;
    out.iptRestoreKernelDeltaBytes = kDelta;

    // (2) change one on the loaded router: one baseline-script command (rules already loaded above)
    const change: number[] = [];
    const changeRuns = opts.quick ? 2 : n >= 10_000 ? 1 : 5;
    for (let r = 0; r < changeRuns; r++) {
      const last = r === changeRuns - 1; // no undo after the last run: the router is deleted next
      if (kind === 'pf') {
        const p = { public_ip: PF_PUBLIC, public_port: '65000', private_ip: CHANGE_PRIVATE, private_port: '80', protocol: 'tcp' };
        change.push(await cmd('add-port-forward', p));
        if (!last) await cmd('delete-port-forward', p);
      } else {
        const p = { public_ip: '198.19.255.250', public_vlan: 'untagged', source_nat: 'false' };
        await cmd('assign-ip', p);
        change.push(await cmd('add-static-nat', { ...p, private_ip: CHANGE_PRIVATE }));
        if (!last) {
          await cmd('delete-static-nat', { ...p, private_ip: CHANGE_PRIVATE });
          await cmd('release-ip', p);
        }
      }
    }
    out.scriptChangeOneMs = summarize(change);

    // (3) one iptables process per rule (what a shell loop does), on the loaded-from-empty chains
    // per-process baselines are measured where they take seconds, not minutes; beyond: extrapolated (lower bound)
    const spawnLimit = 100;
    const perObjLimit = opts.quick ? 10 : 30;
    await spawner.must(nsx(['sh', '-c', `iptables -t nat -F CS_EXTNET_${BASE_NET}_PR && iptables -t nat -F CS_EXTNET_${BASE_NET}_POST && iptables -t filter -F CS_EXTNET_FWD_${BASE_NET}`]));
    if (n <= spawnLimit) {
      const lines: string[] = [];
      for (let i = 0; i < n; i++) {
        const r = iptRulesFor(kind, i, BASE_NET, vethN, pvethN);
        for (const x of r.nat) lines.push(`ip netns exec ${BASE_NS} iptables -t nat ${x}`);
        for (const x of r.filter) lines.push(`ip netns exec ${BASE_NS} iptables -t filter ${x}`);
      }
      const script = join(workDir, `spawn-${kind}-${n}.sh`);
      writeFileSync(script, `set -e\n${lines.join('\n')}\n`);
      out.iptSpawnMs = (await spawner.must(['bash', script], { netns: host.hostNs, timeoutMs: 900_000 })).ms;
      perSpawn.ipt = out.iptSpawnMs / lines.length;
    } else if (perSpawn.ipt !== undefined) {
      out.iptSpawnMs = perSpawn.ipt * rules;
      out.iptSpawnExtrapolated = true;
    }
    // (4) the baseline script once per object (N add-port-forward, or N assign-ip + add-static-nat)
    await spawner.must(nsx(['sh', '-c', `iptables -t nat -F CS_EXTNET_${BASE_NET}_PR && iptables -t nat -F CS_EXTNET_${BASE_NET}_POST && iptables -t filter -F CS_EXTNET_FWD_${BASE_NET}`]));
    if (n <= perObjLimit) {
      let total = 0;
      for (let i = 0; i < n; i++) {
        if (kind === 'pf') {
          const p = pfOf(i);
          total += await cmd('add-port-forward', { public_ip: p.publicIp, public_port: String(p.publicPorts[0]), private_ip: p.privateIp, private_port: String(p.privatePorts[0]), protocol: p.protocol });
        } else {
          const pub = { public_ip: staticPublicIp(i), public_vlan: 'untagged', source_nat: 'false' };
          total += await cmd('assign-ip', pub);
          total += await cmd('add-static-nat', { ...pub, private_ip: privateIp(i) });
        }
      }
      out.scriptPerObjectMs = total;
      perSpawn.script = total / n;
    } else if (perSpawn.script !== undefined) {
      out.scriptPerObjectMs = perSpawn.script * n;
      out.scriptPerObjectExtrapolated = true;
    }
  } finally {
    deleteNamespaces((x) => x === BASE_NS);
    rmSync(`/etc/netns/${BASE_NS}`, { recursive: true, force: true });
    removeHost(host);
    rmSync(stateDir, { recursive: true, force: true });
  }
  return out;
}

export async function runRules(opts: BenchOptions): Promise<SectionResult> {
  const sec = emptySection('rules', 'Rule scaling: port forwards and static NATs');
  const t0 = now();
  const sizes = opts.sizes ?? (opts.quick ? [10, 1000] : [10, 100, 1000, 10_000, 50_000]);
  const work = join(opts.outDir, 'work-rules');
  mkdirSync(work, { recursive: true });
  const spawner = Spawner.start();
  const points: RulePoint[] = [];
  try {
    for (const kind of ['pf', 'snat'] as Kind[]) {
      const perSpawn: { ipt?: number; script?: number } = {};
      for (const n of sizes) {
        if (kind === 'snat' && n > SNAT_MAX && !opts.sizes) {
          sec.partial.push(`static NATs stop at N=${fmtInt(SNAT_MAX)}: each needs its own public address on the public interface, and the kernel's IPv4 address insertion walks the interface's address list, so adding them is quadratic for every contestant (compare the 1,000 and 10,000 rows: ten times the NATs cost far more than ten times the time)`);
          continue;
        }
        opts.log(`rules: ${kind === 'pf' ? 'port forwards' : 'static NATs'} N=${n}: netns-router`);
        const p: RulePoint = { n, kind };
        try {
          Object.assign(p, await oursAt(opts, kind, n, work));
        } catch (e) {
          sec.partial.push(`netns-router for ${kind} N=${n} failed: ${(e as Error).message}`);
        }
        opts.log(`rules: ${kind === 'pf' ? 'port forwards' : 'static NATs'} N=${n}: baselines`);
        try {
          Object.assign(p, await baselinesAt(opts, spawner, kind, n, work, perSpawn));
        } catch (e) {
          sec.partial.push(`baselines for ${kind} N=${n} failed: ${(e as Error).message}`);
        }
        points.push(p);
      }
    }
  } finally {
    await spawner.close();
    if (netnsExists(RULE_NS)) deleteNamespaces((x) => x === RULE_NS);
    rmSync(work, { recursive: true, force: true });
  }

  const kindName = (k: Kind) => (k === 'pf' ? 'port forwards' : 'static NATs');
  for (const kind of ['pf', 'snat'] as Kind[]) {
    const ps = points.filter((p) => p.kind === kind);
    const x = (ms: number | undefined, extrap?: boolean) => (ms === undefined ? '—' : `${fmtMs(ms)}${extrap ? ' (extrap.)' : ''}`);
    sec.tables.push({
      title: `Apply all N ${kindName(kind)} (median of runs; ratios against netns-router)`,
      headers: ['N', 'netns-router', 'iptables-restore', 'ratio', 'iptables ×rule', 'ratio', 'script ×object', 'ratio'],
      rows: ps.map((p) => {
        const ours = p.applyMs?.median;
        const r = (v: number | undefined) => (ours && v !== undefined ? fmtRatio(v / ours) : '—');
        return [fmtInt(p.n), fmtMs(ours), fmtMs(p.iptRestoreMs?.median), r(p.iptRestoreMs?.median), x(p.iptSpawnMs, p.iptSpawnExtrapolated), r(p.iptSpawnMs), x(p.scriptPerObjectMs, p.scriptPerObjectExtrapolated), r(p.scriptPerObjectMs)];
      }),
      notes: [
        'netns-router: one engine change holding N entries (load state, reconcile links/addresses, ONE nft transaction of maps, save state), in-library.',
        `iptables-restore: the ${kind === 'pf' ? '3' : '4'} rules per object the shell wrapper installs, one --noflush batch${kind === 'snat' ? ' + `ip -batch` for the N addresses and N host routes' : ''}.`,
        'iptables ×rule: one `ip netns exec … iptables -A` process per rule; script ×object: bench/baseline/spawn-router.sh once per object (incl. its -C checks and iptables-save).',
        '(extrap.) = per-process cost at the largest measured N times the count: a LOWER bound (each iptables-nft run reads the whole table, so it slows as N grows).',
      ],
    });
    sec.tables.push({
      title: `Change one on a router holding N ${kindName(kind)}; memory and table size`,
      headers: ['N', 'netns-router', 'script', 'ratio', 'remove all N', 'RSS Δ', 'kernel Δ (nft)', 'kernel Δ (iptables)', 'nft rules', 'nft elements', 'listing', 'state file'],
      rows: ps.map((p) => [
        fmtInt(p.n), fmtMs(p.changeOneMs?.median), fmtMs(p.scriptChangeOneMs?.median),
        p.changeOneMs && p.scriptChangeOneMs ? fmtRatio(p.scriptChangeOneMs.median / p.changeOneMs.median) : '—', fmtMs(p.removeAllMs),
        fmtBytes(p.rssDeltaBytes), fmtBytes(p.kernelDeltaBytes), fmtBytes(p.iptRestoreKernelDeltaBytes), fmtInt(p.nftRules), fmtInt(p.nftElements), fmtBytes(p.nftListingBytes), fmtBytes(p.stateFileBytes),
      ]),
      notes: [
        `change one = ${kind === 'pf' ? 'add-port-forward' : 'add-static-nat (its public IP assigned beforehand, untimed)'}: netns-router in-library; script = spawn-router.sh as a process.`,
        'netns-router changes the table in place (element-level map updates in one transaction); on a router of ≥ 256 NAT entries kept warm by the engine, change one takes the fast way (docs/delta-nat.md: only the change is compiled, one element-only nft transaction, one NAT-log record), else the whole router is loaded, compiled, compared and saved.',
        'remove all N = one engine change emptying the model (netns-router, once; measured up to N=1,000 port forwards / 100 static NATs in full mode): it includes deleting the conntrack entries of every removed mapping, from one ctnetlink dump.',
        'RSS Δ: this process after the apply (after GC) minus before; kernel Δ: /proc/meminfo SUnreclaim before/after the last apply (approximate: other activity on the machine shows up too).',
      ],
    });
    const line = (name: string, get: (p: RulePoint) => number | undefined, dashed = false): Series => ({ name, dashed, points: ps.filter((p) => get(p) !== undefined).map((p) => ({ x: p.n, y: get(p)! })) });
    sec.plots.push({
      file: `rules-${kind}-apply.svg`,
      title: `Apply all N ${kindName(kind)}`,
      svg: renderLinePlot({
        title: `Time to apply N ${kindName(kind)}`, xLabel: `N (${kindName(kind)})`, yLabel: 'time', logX: true, logY: true, yTick: msTick,
        series: [
          line('netns-router (one reconcile, nft maps)', (p) => p.applyMs?.median),
          line('iptables-restore batch', (p) => p.iptRestoreMs?.median),
          line('iptables process per rule (measured)', (p) => (p.iptSpawnExtrapolated ? undefined : p.iptSpawnMs)),
          line('iptables process per rule (extrapolated, lower bound)', (p) => p.iptSpawnMs, true),
          line('baseline script per object', (p) => p.scriptPerObjectMs, true),
        ].filter((s) => s.points.length > 0),
        footnote: opts.footnote,
      }),
    });
    sec.plots.push({
      file: `rules-${kind}-change-one.svg`,
      title: `Change one ${kind === 'pf' ? 'port forward' : 'static NAT'} with N loaded`,
      svg: renderLinePlot({
        title: `Change one ${kind === 'pf' ? 'port forward' : 'static NAT'} on a router holding N`, xLabel: `N (${kindName(kind)} loaded)`, yLabel: 'time', logX: true, logY: true, yTick: msTick,
        series: [
          line('netns-router (in-library command)', (p) => p.changeOneMs?.median),
          line('baseline script (one command)', (p) => p.scriptChangeOneMs?.median),
        ].filter((s) => s.points.length > 0),
        footnote: opts.footnote,
      }),
    });
  }
  for (const p of points) {
    if (p.iptSpawnExtrapolated) sec.partial.push(`${kindName(p.kind)} N=${p.n}: iptables-per-rule figure extrapolated (lower bound)`);
    if (p.scriptPerObjectExtrapolated) sec.partial.push(`${kindName(p.kind)} N=${p.n}: script-per-object figure extrapolated (lower bound)`);
  }
  sec.data = { sizes, points };
  sec.elapsedMs = now() - t0;
  return sec;
}
