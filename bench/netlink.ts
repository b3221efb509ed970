/**
 * rtnetlink latency benchmark (not a test). Run inside the sandbox:
 *   node scripts/in-sandbox.mjs node dist/bench/netlink.js [--quick]
 *
 * Per operation: the library in-process (one synchronous request + ACK through koffi), one spawned `ip`
 * per operation, `ip -batch` (one process for all N operations, amortised per op), and the library's own
 * batch (many requests per datagram, amortised). Operations, in pipeline order on N fresh veth pairs:
 * create veth, add address, set up, add route, delete link; then create + delete a named namespace.
 * Every method works in its own fresh namespace; spawned `ip` runs with the main thread inside it (no
 * `ip -n` remount overhead). N runs are timed one by one after a warm-up; median and p95 are reported.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { addNetns, deleteNetns, runInNetns, NetnsHandle } from '../lib/netns/index.js';
import type { NetlinkHandle, NlRequest } from '../lib/netlink/index.js';

if (process.env.NETNS_ROUTER_SANDBOX !== '1') {
  console.error('run inside the sandbox: node scripts/in-sandbox.mjs node dist/bench/netlink.js [--quick]');
  process.exit(1);
}

const quick = process.argv.includes('--quick');
const N = quick ? 40 : 200;
const WARMUP = quick ? 5 : 20;
const dir = mkdtempSync(join(tmpdir(), 'nl-bench-'));

type Op = 'create veth' | 'add address' | 'set up' | 'add route' | 'delete link' | 'netns add+del';
const OPS: Op[] = ['create veth', 'add address', 'set up', 'add route', 'delete link', 'netns add+del'];

interface Row { lib: number[]; ip: number[]; ipBatch?: number; libBatch?: number }
const rows = new Map<Op, Row>(OPS.map((o) => [o, { lib: [], ip: [] }]));

const now = (): number => performance.now();
function timed(fn: () => void): number {
  const t = now();
  fn();
  return now() - t;
}

/** Names and parameters of object i (veth a/b, address, route). */
const obj = (p: string, i: number) => ({
  a: `${p}a${i}`, b: `${p}b${i}`, addr: `10.${100 + (i >> 8)}.${i & 255}.1/32`, route: `172.${16 + (i >> 8)}.${i & 255}.0/24`,
});

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

function ipBatch(ns: string, lines: string[]): number {
  const file = join(dir, 'batch');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return runInNetns(ns, () => timed(() => ip(['-batch', file]))) / lines.length;
}

/** The library, one synchronous request per operation. */
function runLib(nl: NetlinkHandle, p: string, count: number, record: boolean): void {
  const add = (op: Op, t: number) => { if (record) rows.get(op)!.lib.push(t); };
  for (let i = 0; i < count; i++) { const o = obj(p, i); add('create veth', timed(() => nl.linkAdd({ kind: 'veth', name: o.a, peer: { name: o.b } }))); }
  for (let i = 0; i < count; i++) { const o = obj(p, i); add('add address', timed(() => nl.addrAdd({ dev: o.a, address: o.addr }))); }
  for (let i = 0; i < count; i++) { const o = obj(p, i); add('set up', timed(() => nl.linkSetUp(o.a))); }
  for (let i = 0; i < count; i++) { const o = obj(p, i); add('add route', timed(() => nl.routeAdd({ dst: o.route, dev: o.a }))); }
  for (let i = 0; i < count; i++) { const o = obj(p, i); add('delete link', timed(() => nl.linkDel(o.a))); }
}

/** One spawned `ip` per operation, the main thread inside the namespace. */
function runIp(ns: string, p: string, count: number, record: boolean): void {
  const add = (op: Op, t: number) => { if (record) rows.get(op)!.ip.push(t); };
  runInNetns(ns, () => {
    for (let i = 0; i < count; i++) { const o = obj(p, i); add('create veth', timed(() => ip(['link', 'add', o.a, 'type', 'veth', 'peer', 'name', o.b]))); }
    for (let i = 0; i < count; i++) { const o = obj(p, i); add('add address', timed(() => ip(['addr', 'add', o.addr, 'dev', o.a]))); }
    for (let i = 0; i < count; i++) { const o = obj(p, i); add('set up', timed(() => ip(['link', 'set', o.a, 'up']))); }
    for (let i = 0; i < count; i++) { const o = obj(p, i); add('add route', timed(() => ip(['route', 'add', o.route, 'dev', o.a]))); }
    for (let i = 0; i < count; i++) { const o = obj(p, i); add('delete link', timed(() => ip(['link', 'del', o.a]))); }
  });
}

function runIpBatch(ns: string, p: string, count: number): void {
  const is = Array.from({ length: count }, (_, i) => obj(p, i));
  rows.get('create veth')!.ipBatch = ipBatch(ns, is.map((o) => `link add ${o.a} type veth peer name ${o.b}`));
  rows.get('add address')!.ipBatch = ipBatch(ns, is.map((o) => `addr add ${o.addr} dev ${o.a}`));
  rows.get('set up')!.ipBatch = ipBatch(ns, is.map((o) => `link set ${o.a} up`));
  rows.get('add route')!.ipBatch = ipBatch(ns, is.map((o) => `route add ${o.route} dev ${o.a}`));
  rows.get('delete link')!.ipBatch = ipBatch(ns, is.map((o) => `link del ${o.a}`));
}

/**
 * The library's batch, amortised per op: requests built and sent together. Interface names are resolved once
 * by one link dump (timed apart, reported below the table) and the requests carry ifindexes, the way to use
 * batches.
 */
let resolveNote = '';
function runLibBatch(nl: NetlinkHandle, p: string, count: number): void {
  const is = Array.from({ length: count }, (_, i) => obj(p, i));
  let index = new Map<string, number>();
  const send = (op: Op, build: () => NlRequest[]) => {
    const t = now();
    const res = nl.batch(build(), { stopOnError: true });
    rows.get(op)!.libBatch = (now() - t) / res.length;
  };
  send('create veth', () => is.map((o) => nl.linkAddRequest({ kind: 'veth', name: o.a, peer: { name: o.b } })));
  const tResolve = timed(() => { index = new Map(nl.linkList().map((l) => [l.name, l.index])); });
  resolveNote = `lib batch: names resolved beforehand by one link dump of ${index.size} links in ${tResolve.toFixed(1)} ms (not in the per-op figures)`;
  send('add address', () => is.map((o) => nl.addrRequest('add', { dev: index.get(o.a)!, address: o.addr })));
  send('set up', () => is.map((o) => nl.linkSetRequest(index.get(o.a)!, { up: true })));
  send('add route', () => is.map((o) => nl.routeRequest('add', { dst: o.route, dev: index.get(o.a)! })));
  send('delete link', () => is.map((o) => nl.linkDelRequest(index.get(o.a)!)));
}

function withNs(prefix: string, fn: (ns: string, h: NetnsHandle) => void): void {
  const ns = `${prefix}-${process.pid}`;
  addNetns(ns);
  const h = NetnsHandle.open(ns);
  try {
    fn(ns, h);
  } finally {
    h.close();
    deleteNetns(ns);
  }
}

function benchNetns(): void {
  const row = rows.get('netns add+del')!;
  for (let i = 0; i < WARMUP + N; i++) {
    const name = `bn-l-${i}`;
    const t = timed(() => { addNetns(name); deleteNetns(name); });
    if (i >= WARMUP) row.lib.push(t);
  }
  for (let i = 0; i < WARMUP + N; i++) {
    const name = `bn-i-${i}`;
    const t = timed(() => { ip(['netns', 'add', name]); ip(['netns', 'del', name]); });
    if (i >= WARMUP) row.ip.push(t);
  }
  // all adds, then all deletes (interleaving add/del lines in one batch runs at ~50 ms per pair here)
  const lines: string[] = [];
  for (let i = 0; i < N; i++) lines.push(`netns add bn-b-${i}`);
  for (let i = 0; i < N; i++) lines.push(`netns del bn-b-${i}`);
  const file = join(dir, 'nsbatch');
  writeFileSync(file, `${lines.join('\n')}\n`);
  row.ipBatch = timed(() => ip(['-batch', file])) / N;
}

/** linkDelAsync: wall time of concurrent deletes and how long the event loop was ever blocked. */
async function benchAsyncDelete(): Promise<string> {
  const ns = `bn-async-${process.pid}`;
  addNetns(ns);
  const h = NetnsHandle.open(ns);
  try {
    const nl = h.netlink;
    const count = quick ? 8 : 32;
    for (let i = 0; i < count; i++) nl.linkAdd({ kind: 'veth', name: `as${i}`, peer: { name: `at${i}` } });
    await nl.linkDelAsync('none', { ifExists: true });
    const hist = monitorEventLoopDelay({ resolution: 1 });
    hist.enable();
    const t = now();
    await Promise.all(Array.from({ length: count }, (_, i) => nl.linkDelAsync(`as${i}`)));
    const wall = now() - t;
    hist.disable();
    for (let i = 0; i < count; i++) nl.linkAdd({ kind: 'veth', name: `as${i}`, peer: { name: `at${i}` } });
    const tSync = timed(() => { for (let i = 0; i < count; i++) nl.linkDel(`as${i}`); });
    return `linkDelAsync: ${count} concurrent deletes in ${wall.toFixed(1)} ms wall (event loop max delay ` +
      `${(hist.max / 1e6).toFixed(1)} ms); the same ${count} with linkDel: ${tSync.toFixed(1)} ms, event loop blocked throughout`;
  } finally {
    h.close();
    deleteNetns(ns);
  }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const p95 = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil(s.length * 0.95) - 1)]; };
const ms = (x: number | undefined): string => (x === undefined ? '—' : x < 0.1 ? `${(x * 1000).toFixed(1)} µs` : `${x.toFixed(x < 10 ? 3 : 1)} ms`);
const ratio = (a: number | undefined, b: number): string => (a === undefined ? '—' : `${(a / b).toFixed(a / b < 10 ? 1 : 0)}×`);

async function main(): Promise<void> {
  console.log(`rtnetlink benchmark: N = ${N} per operation after ${WARMUP} warm-up runs (${quick ? 'quick' : 'full'}), kernel ${spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim()}`);
  withNs('bn-lib', (_ns, h) => {
    runLib(h.netlink, 'w', WARMUP, false);
    runLib(h.netlink, 'm', N, true);
  });
  withNs('bn-ip', (ns) => {
    runIp(ns, 'w', WARMUP, false);
    runIp(ns, 'm', N, true);
  });
  withNs('bn-ipb', (ns) => runIpBatch(ns, 'm', N));
  withNs('bn-libb', (_ns, h) => runLibBatch(h.netlink, 'm', N));
  benchNetns();
  const asyncLine = await benchAsyncDelete();

  const header = ['operation', 'lib median', 'lib p95', 'ip median', 'ip p95', 'ip -batch/op', 'lib batch/op', 'ip/lib', 'ip -batch/lib'];
  const table = OPS.map((op) => {
    const r = rows.get(op)!;
    const lm = median(r.lib);
    return [op, ms(lm), ms(p95(r.lib)), ms(median(r.ip)), ms(p95(r.ip)), ms(r.ipBatch), ms(r.libBatch), ratio(median(r.ip), lm), ratio(r.ipBatch, lm)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log('');
  console.log(line(header));
  console.log(widths.map((w) => '─'.repeat(w)).join('  '));
  for (const row of table) console.log(line(row));
  console.log('');
  console.log(asyncLine);
  console.log(resolveNote);
  console.log('ratios: spawned ip median ÷ library median (per single operation); ip -batch is amortised over N.');
}

main().finally(() => rmSync(dir, { recursive: true, force: true })).catch((e) => {
  console.error(e);
  process.exit(1);
});
