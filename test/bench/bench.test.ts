/**
 * Benchmark suite smoke test: `bench/run.js --quick` of a tiny workload (rule scaling at N=10) prints a
 * table, writes a valid results.json and well-formed SVG plots; plus the pure helpers (statistics, tables,
 * SVG) on known inputs.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, percentile, summarize, pairedRatios } from '../../bench/lib/stats.js';
import { renderText, renderMarkdown } from '../../bench/lib/table.js';
import { renderLinePlot, renderBarChart, escapeXml, msTick } from '../../bench/lib/svg.js';
import { fmtMs, fmtRatio } from '../../bench/lib/format.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();
const RUN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'run.js');

/** Minimal XML well-formedness check: balanced tags, one root <svg>, quoted attributes, no stray '<' or '&'. */
function checkSvg(text: string): void {
  const body = text.replace(/^<\?xml[^?]*\?>\s*/, '');
  assert.ok(body.startsWith('<svg '), 'root element is <svg>');
  assert.match(body, /xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  const stack: string[] = [];
  let roots = 0;
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  let m: RegExpExecArray | null;
  while ((m = tag.exec(body))) {
    const between = body.slice(last, m.index);
    assert.not.ok(between.includes('<'), `stray "<" before offset ${m.index}`);
    assert.not.ok(/&(?!amp;|lt;|gt;|quot;|apos;)/.test(between), `unescaped "&" before offset ${m.index}`);
    last = tag.lastIndex;
    const [, close, name, , selfClose] = m;
    if (close) {
      assert.is(stack.pop(), name, `closing </${name}> matches`);
      continue;
    }
    if (stack.length === 0) roots++;
    if (!selfClose) stack.push(name);
  }
  assert.is(body.slice(last).trim(), '', 'nothing after the root element');
  assert.is(stack.length, 0, 'every element closed');
  assert.is(roots, 1, 'exactly one root element');
}

test('stats: median, nearest-rank p95, paired ratios', () => {
  assert.is(median([3, 1, 2]), 2);
  assert.is(median([4, 1, 3, 2]), 2.5);
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.is(percentile(xs, 95), 95);
  assert.is(percentile([5, 1], 95), 5);
  const s = summarize([10, 30, 20]);
  assert.equal([s.n, s.median, s.min, s.max, s.mean], [3, 20, 10, 30, 20]);
  // pairs: (1→2), (2→8), (4→4): ratios 2, 4, 1 → median 2
  assert.is(pairedRatios([1, 2, 4], [2, 8, 4]).median, 2);
  assert.ok(Number.isNaN(summarize([]).median));
});

test('format and table: units, alignment, markdown', () => {
  assert.is(fmtMs(0.042), '42.0 µs');
  assert.is(fmtMs(3.456), '3.46 ms');
  assert.is(fmtMs(1234), '1.23 s');
  assert.is(fmtRatio(12.34), '12.3×');
  const t = { title: 'T', headers: ['name', 'time'], rows: [['a', '1.00 ms'], ['bb', '10.0 ms']] };
  const text = renderText(t).split('\n');
  assert.is(text[0], '== T');
  assert.is(text[3], 'a     1.00 ms', 'numbers right-aligned');
  assert.is(text[4], 'bb    10.0 ms');
  const md = renderMarkdown(t).split('\n');
  assert.is(md[1], '|---|---:|');
});

test('svg: log axes, escaping, well-formed', () => {
  const svg = renderLinePlot({
    title: 'a < b & "c"', xLabel: 'N', yLabel: 'time', logX: true, logY: true, yTick: msTick,
    series: [{ name: 'x', points: [{ x: 10, y: 0.5 }, { x: 1000, y: 40 }] }, { name: 'y', dashed: true, points: [{ x: 10, y: 2 }, { x: 50_000, y: 9000 }] }],
  });
  checkSvg(svg);
  assert.ok(svg.includes(escapeXml('a < b & "c"')));
  for (const tick of ['>10<', '>100<', '>1k<', '>10k<', '>100k<']) assert.ok(svg.includes(tick), `x tick ${tick}`);
  assert.ok(svg.includes('stroke-dasharray'), 'dashed series');
  const bars = renderBarChart({ title: 'bars', valueLabel: 'ms', logValue: true, seriesNames: ['p', 'q'], groups: [{ label: 'one', values: { p: 1, q: 100 } }, { label: 'two', values: { p: 3, q: undefined } }] });
  checkSvg(bars);
  assert.is((bars.match(/<\/rect>/g) ?? []).length, 3, "three bars (missing value skipped)");
});

test('bench --quick --only rules --sizes 10: table on stdout, results.json, SVG plots', () => {
  const out = mkdtempSync(join(tmpdir(), 'nr-bench-'));
  try {
    const r = spawnSync(process.execPath, [RUN, '--quick', '--only', 'rules', '--sizes', '10', '--out', out], { encoding: 'utf8', timeout: 50_000 });
    assert.is(r.status, 0, `exit 0 (stderr: ${r.stderr.slice(-2000)})`);
    assert.match(r.stdout, /== Apply all N port forwards/);
    assert.match(r.stdout, /\n10 +\d[\d.]* (µs|ms|s) +\d/, 'a row for N=10 with times');
    assert.match(r.stdout, /machine: .*cores.*kernel/);
    assert.match(r.stdout, /load average before: [\d.]+ [\d.]+ [\d.]+; after:/);
    const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
      mode: string; machine: { cores: number; kernel: string }; sections: Array<{ name: string; error?: string; plots: string[]; data: { points: Array<{ n: number; kind: string; applyMs: { median: number; n: number }; iptRestoreMs: { median: number } }> } }>;
    };
    assert.is(res.mode, 'quick');
    assert.ok(res.machine.cores >= 1 && res.machine.kernel.length > 0);
    assert.is(res.sections.length, 1);
    const sec = res.sections[0];
    assert.is(sec.name, 'rules');
    assert.is(sec.error, undefined);
    const pf = sec.data.points.find((p) => p.kind === 'pf' && p.n === 10)!;
    assert.ok(pf.applyMs.n >= 2 && pf.applyMs.median > 0, 'netns-router apply time measured');
    assert.ok(pf.iptRestoreMs.median > 0, 'iptables-restore baseline measured');
    assert.ok(sec.plots.length >= 2);
    const svgs = readdirSync(out).filter((f) => f.endsWith('.svg'));
    assert.equal(svgs.sort(), [...sec.plots].sort(), 'every listed plot written');
    for (const f of svgs) checkSvg(readFileSync(join(out, f), 'utf8'));
    assert.ok(existsSync(join(out, 'report.md')) && existsSync(join(out, 'report.txt')));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test.run();
