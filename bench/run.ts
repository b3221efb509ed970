/**
 * `npm run bench` — the whole benchmark suite in one command, inside the sandbox (scripts/in-sandbox.mjs):
 *
 *   node dist/bench/run.js [--quick] [--only NAME[,NAME…]] [--baseline-wrapper PATH] [--out DIR]
 *                          [--sizes 10,100,…] [--runs R]
 *
 * Workloads (ours): latency (command latency over the lifecycle), rules (port forward / static NAT scaling),
 * networks (1 … 1,000 isolated networks: implement, restore after a simulated reboot), datapath (throughput
 * and connection rate through the router vs a direct veth). Other engineers' benchmarks (bench/nft.ts,
 * netlink.ts, firewall.ts, dhcp.ts, metadata.ts, lb.ts, memory.ts) are included when they exist: through an exported
 * `bench(opts)` entry function when they have one, otherwise run as a child process with `--quick` passed
 * through and their output copied into the report.
 *
 * Output: a plain-text table on stdout, and in the results folder (default bench/results/<date>/):
 * results.json (every sample, summaries, machine), report.txt (the stdout tables), report.md (the same as
 * markdown) and SVG plots.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describeMachine, loadAverage, machineLine } from './lib/machine.js';
import { renderText, renderMarkdown, type Table } from './lib/table.js';
import { emptySection, type BenchOptions, type SectionResult } from './lib/report.js';
import { fmtMs } from './lib/format.js';
import { now } from './lib/timing.js';
import { distRoot, repoRoot } from './lib/paths.js';
import { removeAllHosts } from './lib/topo.js';

if (process.env.NETNS_ROUTER_SANDBOX !== '1') {
  console.error('run inside the sandbox: npm run bench [-- --quick] (node scripts/in-sandbox.mjs node dist/bench/run.js)');
  process.exit(1);
}

// RSS figures are taken after a collection: make gc() callable without a command-line flag
setFlagsFromString('--expose-gc');
(globalThis as { gc?: () => void }).gc = runInNewContext('gc') as () => void;

interface Args {
  quick: boolean;
  only?: string[];
  baselineWrapper?: string;
  out?: string;
  sizes?: number[];
  runs?: number;
  /** Internal: run this one workload in this process and write its result file (see runIsolated). */
  section?: string;
  help: boolean;
}

export class BenchUsageError extends Error {
  readonly code = 'E_BENCH_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'BenchUsageError';
  }
}

const OURS = ['latency', 'rules', 'datapath', 'networks'] as const;
const EXTERNAL = ['nft', 'netlink', 'firewall', 'startup', 'vmfilter', 'dhcp', 'metadata', 'lb', 'memory'] as const;
const ALL: readonly string[] = [...OURS, ...EXTERNAL];

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new BenchUsageError(`${k} needs a value`);
      return v;
    };
    switch (k) {
      case '--quick': a.quick = true; break;
      case '--only': a.only = val().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--baseline-wrapper': a.baselineWrapper = resolve(val()); break;
      case '--out': a.out = resolve(val()); break;
      case '--sizes': a.sizes = val().split(',').map((s) => Number(s.replace(/_/g, ''))); break;
      case '--runs': a.runs = Number(val()); break;
      case '--section': a.section = val(); break;
      case '-h': case '--help': a.help = true; break;
      default: throw new BenchUsageError(`unknown argument ${k} (see --help)`);
    }
  }
  if (a.section !== undefined && !ALL.includes(a.section)) throw new BenchUsageError(`--section: unknown workload "${a.section}"`);
  for (const o of a.only ?? []) if (!ALL.includes(o)) throw new BenchUsageError(`--only: unknown workload "${o}" (workloads: ${ALL.join(', ')})`);
  if (a.sizes && a.sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new BenchUsageError('--sizes: positive integers, comma separated');
  if (a.runs !== undefined && (!Number.isInteger(a.runs) || a.runs < 1)) throw new BenchUsageError('--runs: a positive integer');
  if (a.baselineWrapper && !existsSync(a.baselineWrapper)) throw new BenchUsageError(`--baseline-wrapper: ${a.baselineWrapper} does not exist`);
  return a;
}

const HELP = `npm run bench -- [--quick] [--only NAME[,NAME…]] [--baseline-wrapper PATH] [--out DIR] [--sizes N,N…] [--runs R]
  workloads: ${ALL.join(', ')}
  --quick             smaller N and fewer repetitions (CI smoke, < 2 min)
  --baseline-wrapper  also time this wrapper script (same payload files, same command contract); ratios pair by pair
  --out               results folder (default bench/results/<date>/)
  --sizes             N values of the scaling workloads (rules, networks, memory)
  --runs              repetitions of the latency workload`;

function stamp(d: Date): string {
  return d.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
}

/** Someone else's bench: entry function when exported (without import side effects), else a child process. */
async function runExternal(name: string, opts: BenchOptions): Promise<SectionResult | undefined> {
  const file = join(distRoot(), 'bench', `${name}.js`);
  if (!existsSync(file)) return undefined;
  const sec = emptySection(name, `bench/${name}.ts`);
  const t0 = now();
  const src = readFileSync(file, 'utf8');
  if (/export\s+(async\s+)?function\s+bench\s*\(/.test(src) || /export\s*\{[^}]*\bbench\b[^}]*\}/.test(src)) {
    opts.log(`${name}: entry function bench()`);
    try {
      const mod = await import(pathToFileURL(file).href) as { bench: (o: { quick: boolean; outDir: string; log: (m: string) => void; sizes?: number[] }) => Promise<Partial<SectionResult> & { text?: string }> };
      const r = await mod.bench({ quick: opts.quick, outDir: opts.outDir, log: (m) => opts.log(`${name}: ${m}`), ...(opts.sizes ? { sizes: opts.sizes } : {}) });
      Object.assign(sec, { tables: r.tables ?? [], plots: r.plots ?? [], notes: r.notes ?? [], data: r.data ?? {}, partial: r.partial ?? [], title: r.title ?? sec.title });
      if (r.text && !sec.notes.includes(r.text)) sec.notes.push(r.text);
    } catch (e) {
      sec.error = (e as Error).stack ?? String(e);
    }
  } else {
    const args = [file, ...(opts.quick ? ['--quick'] : [])];
    opts.log(`${name}: child process node ${args.map((x) => x.replace(`${distRoot()}/`, 'dist/')).join(' ')}`);
    const r = await new Promise<{ code: number | null; out: string }>((res) => {
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { for (const l of d.toString().split('\n')) if (l.trim()) opts.log(`${name}: ${l}`); });
      const timer = setTimeout(() => child.kill('SIGKILL'), (opts.quick ? 3 : 10) * 60_000);
      child.on('close', (code) => { clearTimeout(timer); res({ code, out }); });
    });
    sec.data = { mode: 'child process', exitCode: r.code, stdout: r.out };
    sec.notes.push(r.out.trim());
    if (r.code !== 0) sec.error = `exited with ${r.code}`;
  }
  sec.elapsedMs = now() - t0;
  return sec;
}

async function runOurs(name: string, opts: BenchOptions): Promise<SectionResult> {
  switch (name) {
    case 'latency': return (await import('./router.js')).runLatency(opts);
    case 'rules': return (await import('./router.js')).runRules(opts);
    case 'networks': return (await import('./networks.js')).runNetworks(opts);
    case 'datapath': return (await import('./datapath.js')).runDatapath(opts);
    default: throw new BenchUsageError(`not a workload: ${name}`);
  }
}

const resultFile = (outDir: string, name: string): string => join(outDir, `.section-${name}.json`);

/**
 * Run one workload in a child process (`run.js --section NAME`), so that a crash of the code under test
 * (an abort in a native library, a runaway process) is reported as that workload's failure instead of
 * ending the whole suite, and every workload starts with a fresh process (memory, descriptors, caches).
 */
async function runIsolated(name: string, args: Args, opts: BenchOptions): Promise<SectionResult | undefined> {
  const argv = [join(distRoot(), 'bench', 'run.js'), '--section', name, '--out', opts.outDir];
  if (args.quick) argv.push('--quick');
  if (args.sizes) argv.push('--sizes', args.sizes.join(','));
  if (args.runs) argv.push('--runs', String(args.runs));
  if (args.baselineWrapper) argv.push('--baseline-wrapper', args.baselineWrapper);
  const file = resultFile(opts.outDir, name);
  rmSync(file, { force: true });
  const t0 = now();
  const tail: string[] = [];
  const r = await new Promise<{ code: number | null; signal: string | null }>((res) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (d: Buffer) => {
      process.stderr.write(d);
      tail.push(...d.toString().split('\n').filter((l) => l.trim()));
      tail.splice(0, Math.max(0, tail.length - 5));
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), (args.quick ? 4 : 15) * 60_000);
    child.on('close', (code, signal) => { clearTimeout(timer); res({ code, signal }); });
  });
  if (existsSync(file)) {
    const sec = JSON.parse(readFileSync(file, 'utf8')) as SectionResult | { skipped: true };
    rmSync(file, { force: true });
    return 'skipped' in sec ? undefined : sec;
  }
  return {
    ...emptySection(name, name), elapsedMs: now() - t0,
    error: `the workload's process ended with ${r.signal ?? `exit ${r.code}`} before reporting; last output: ${tail.join(' | ')}`,
  };
}

function sectionText(s: SectionResult, md: boolean): string {
  const out: string[] = [];
  out.push(md ? `### ${s.title}\n` : `\n### ${s.title}  [${s.name}, ${fmtMs(s.elapsedMs)}]\n`);
  if (s.error) out.push(md ? `**FAILED:** \`${s.error.split('\n')[0]}\`\n` : `!! FAILED: ${s.error}\n`);
  for (const t of s.tables) out.push(md ? `#### ${t.title}\n\n${renderMarkdown(t)}` : renderText(t));
  for (const n of s.notes) out.push(md ? (n.includes('\n') ? `\`\`\`\n${n}\n\`\`\`\n` : `${n}\n`) : `${n}\n`);
  if (s.partial.length) out.push(`${md ? '**Partial:**' : '!! partial:'}\n${s.partial.map((p) => `${md ? '-' : '  -'} ${p}`).join('\n')}\n`);
  for (const p of s.plots) out.push(md ? `![${p.title}](${p.file})\n` : `  plot: ${p.file}\n`);
  return out.join('\n');
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`bench: ${(e as Error).message}`);
    return 1;
  }
  if (args.help) {
    console.log(HELP);
    return 0;
  }
  const started = new Date();
  const outDir = args.out ?? join(repoRoot(), 'bench', 'results', stamp(started));
  mkdirSync(outDir, { recursive: true });
  const machine = describeMachine();
  const loadBefore = loadAverage();
  const footnote = `${machineLine(machine)} — ${started.toISOString().slice(0, 10)}`;
  // children log with the parent's clock, so the progress lines of the whole run share one time axis
  const t0Wall = Number(process.env.NETNS_ROUTER_BENCH_T0 ?? Date.now());
  process.env.NETNS_ROUTER_BENCH_T0 = String(t0Wall);
  const log = (m: string) => process.stderr.write(`[bench ${fmtMs(Date.now() - t0Wall).padStart(8)}] ${m}\n`);
  const opts: BenchOptions = {
    quick: args.quick, outDir, log, footnote,
    ...(args.baselineWrapper ? { baselineWrapper: args.baselineWrapper } : {}),
    ...(args.sizes ? { sizes: args.sizes } : {}),
    ...(args.runs ? { runs: args.runs } : {}),
  };
  if (args.section) {
    // child of runIsolated: one workload, result to a file
    let s: SectionResult | undefined;
    try {
      s = (OURS as readonly string[]).includes(args.section) ? await runOurs(args.section, opts) : await runExternal(args.section, opts);
    } catch (e) {
      s = { ...emptySection(args.section, args.section), error: (e as Error).stack ?? String(e) };
    } finally {
      removeAllHosts();
    }
    writeFileSync(resultFile(outDir, args.section), JSON.stringify(s ?? { skipped: true }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)));
    return 0;
  }
  // networks last: tearing down 1,000 namespaces keeps the kernel's cleanup worker busy for a minute or more
  // afterwards, which would land on whatever ran next
  const wanted = (args.only ?? ALL).filter((n) => n !== 'networks').concat((args.only ?? ALL).includes('networks') ? ['networks'] : []);
  const sections: SectionResult[] = [];
  const t0 = now();
  log(`machine: ${machineLine(machine)}; load ${loadBefore.map((l) => l.toFixed(2)).join(' ')}; mode ${args.quick ? 'quick' : 'full'}; results → ${outDir}`);
  for (const name of wanted) {
    const s = await runIsolated(name, args, opts);
    if (s?.error) log(`${name}: FAILED: ${s.error.split('\n')[0]}`);
    if (!s) {
      log(`${name}: bench/${name}.ts not built (yet): skipped`);
      continue;
    }
    sections.push(s);
    process.stdout.write(sectionText(s, false));
    for (const p of s.plots) writeFileSync(join(outDir, p.file), p.svg);
  }
  const loadAfter = loadAverage();
  const elapsed = now() - t0;
  const head = [
    `netns-router benchmarks — ${started.toISOString()} — ${args.quick ? 'quick' : 'full'} mode — ${fmtMs(elapsed)}`,
    `machine: ${machineLine(machine)}`,
    `tools: ${Object.values(machine.tools).join('; ')}`,
    `load average before: ${loadBefore.map((l) => l.toFixed(2)).join(' ')}; after: ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`,
  ];
  const summary: Table = {
    title: 'Workloads',
    headers: ['workload', 'status', 'time'],
    rows: sections.map((s) => [s.name, s.error ? 'FAILED' : s.partial.length ? 'partial' : 'ok', fmtMs(s.elapsedMs)]),
  };
  process.stdout.write(`\n${head.join('\n')}\n\n${renderText(summary)}`);
  const md = [`## Results ${started.toISOString().slice(0, 10)} (${args.quick ? 'quick' : 'full'} mode)\n`, ...head.slice(1).map((h) => `- ${h}`), '', ...sections.map((s) => sectionText(s, true))].join('\n');
  writeFileSync(join(outDir, 'report.md'), `${md}\n`);
  writeFileSync(join(outDir, 'report.txt'), `${head.join('\n')}\n${sections.map((s) => sectionText(s, false)).join('\n')}\n${renderText(summary)}`);
  writeFileSync(join(outDir, 'results.json'), `${JSON.stringify({
    schema: 1, startedAt: started.toISOString(), elapsedMs: elapsed, mode: args.quick ? 'quick' : 'full', argv: process.argv.slice(2),
    machine, loadAverage: { before: loadBefore, after: loadAfter },
    sections: sections.map((s) => ({ name: s.name, title: s.title, elapsedMs: s.elapsedMs, error: s.error, partial: s.partial, notes: s.notes, tables: s.tables, plots: s.plots.map((p) => p.file), data: s.data })),
  }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  log(`done in ${fmtMs(elapsed)}: ${join(outDir, 'results.json')}`);
  return sections.some((s) => s.error) ? 2 : 0;
}

main().then((code) => {
  removeAllHosts();
  process.exit(code);
}, (e) => {
  console.error(e);
  removeAllHosts();
  process.exit(2);
});
