/**
 * nftables apply benchmark (not a test). Run inside the sandbox:
 *   node scripts/in-sandbox.mjs node dist/bench/nft.js [--quick]
 *
 * Workload: N port forwards, each = one DNAT (public ip:port → private ip:port) + one forward accept,
 * applied into a fresh namespace. Layouts and executors:
 *   ffi/rules    libnftables via koffi, one rule per object (2N rules)
 *   ffi/maps     libnftables via koffi, 2 rules + two maps holding the N forwards (2N elements:
 *                address and port maps, since nft 1.0.6 crashes on concatenated map values; the
 *                forward rule accepts `ct status dnat`)
 *   nft -j -f    the same per-rule JSON through a spawned nft (file argument)
 *   ipt-restore  iptables-nft-restore of the equivalent 2N rules
 *   ipt spawns   2N separate `iptables` processes (measured up to N = 1,000, --quick: 100; extrapolated beyond)
 * Then single-element add/delete latency on a loaded table: FFI vs spawned nft.
 * Spawned tools run with the main thread inside the namespace (no nsenter overhead).
 * Times exclude building the objects; they include rendering to JSON. Median of several runs.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addNetns, deleteNetns } from '../lib/netns/namespaces.js';
import { runInNetns } from '../lib/sys/setns.js';
import * as N from '../lib/nft/index.js';

if (process.env.NETNS_ROUTER_SANDBOX !== '1') {
  console.error('run inside the sandbox: node scripts/in-sandbox.mjs node dist/bench/nft.js [--quick]');
  process.exit(1);
}

const quick = process.argv.includes('--quick');
const SIZES = quick ? [100, 1000] : [100, 1000, 10_000, 50_000];
const runsFor = (n: number): number => (quick ? 3 : n <= 1000 ? 5 : n <= 10_000 ? 3 : 2);
const SPAWN_LIMIT = quick ? 100 : 1000;
const T: N.TableRef = { family: 'ip', name: 'bench' };
const dir = mkdtempSync(join(tmpdir(), 'nft-bench-'));

interface Fwd { pub: string; port: number; priv: string; pport: number }

function forwards(n: number): Fwd[] {
  const out: Fwd[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      pub: `198.18.${(i >> 8) & 255}.${i & 255}`,
      port: 1000 + (i % 50_000),
      priv: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      pport: 2000 + (i % 50_000),
    });
  }
  return out;
}

function chains(): N.NftObject[] {
  return [
    N.baseChain('pre', { type: 'nat', hook: 'prerouting', priority: N.ROUTER_PRIORITIES.dstnat }),
    N.baseChain('fwd', { type: 'filter', hook: 'forward', priority: N.ROUTER_PRIORITIES.filter }),
  ];
}

function perRule(fw: Fwd[]): N.Transaction {
  const objs = chains();
  for (const f of fw) {
    objs.push(N.rule('pre', [N.ip.daddr(f.pub), N.tcp.dport(f.port), N.dnat({ addr: f.priv, port: f.pport })]));
    objs.push(N.rule('fwd', [N.ip.daddr(f.priv), N.tcp.dport(f.pport), N.accept()]));
  }
  return N.replaceTable(T, objs);
}

function withMaps(fw: Fwd[]): N.Transaction {
  const k = (): N.Expr => N.concatKey(N.F.ipDaddr, N.F.tcpDport);
  return N.replaceTable(T, [
    ...chains(),
    N.map('fwd_addr', ['ipv4_addr', 'inet_service'], 'ipv4_addr', { elements: fw.map((f) => ({ key: [f.pub, f.port], value: f.priv })) }),
    N.map('fwd_port', ['ipv4_addr', 'inet_service'], 'inet_service', { elements: fw.map((f) => ({ key: [f.pub, f.port], value: f.pport })) }),
    N.rule('pre', [N.dnat({ addr: N.mapLookup(k(), 'fwd_addr'), port: N.mapLookup(k(), 'fwd_port') })]),
    // forwarded traffic of the port forwards: whatever was DNATed (no per-forward filter entry needed)
    N.rule('fwd', [N.ct.status('dnat'), N.accept()]),
  ]);
}

function iptRules(f: Fwd): [string, string] {
  return [
    `-A PREROUTING -d ${f.pub}/32 -p tcp --dport ${f.port} -j DNAT --to-destination ${f.priv}:${f.pport}`,
    `-A FORWARD -d ${f.priv}/32 -p tcp --dport ${f.pport} -j ACCEPT`,
  ];
}

function iptRestoreText(fw: Fwd[]): string {
  const nat: string[] = ['*nat', ':PREROUTING ACCEPT [0:0]'];
  const filter: string[] = ['*filter', ':FORWARD ACCEPT [0:0]'];
  for (const f of fw) {
    const [a, b] = iptRules(f);
    nat.push(a);
    filter.push(b);
  }
  return [...nat, 'COMMIT', ...filter, 'COMMIT', ''].join('\n');
}

let nsSeq = 0;
/** Run `fn` against a fresh namespace, deleted afterwards. */
async function inFreshNs<R>(fn: (ns: string) => Promise<R>): Promise<R> {
  const ns = `nftbench-${process.pid}-${++nsSeq}`;
  addNetns(ns);
  try {
    return await fn(ns);
  } finally {
    deleteNetns(ns, { ifExists: true });
  }
}

/** Spawn synchronously with the main thread inside `ns` (the child inherits the namespace). */
function spawnIn(ns: string, cmd: string, args: string[], input?: string): void {
  const r = runInNetns(ns, () => spawnSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 1 << 30 }));
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 6).join(' ')} exited ${r.status}: ${r.stderr}`);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function measure(runs: number, once: () => Promise<number>): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) xs.push(await once());
  return median(xs);
}

const now = (): number => performance.now();

async function ffiApply(tx: N.Transaction): Promise<number> {
  return inFreshNs(async (ns) => {
    const ex = N.openLibnftables({ netns: ns });
    try {
      const t0 = now();
      await ex.apply(tx);
      return now() - t0;
    } finally {
      await ex.close();
    }
  });
}

async function nftSpawnApply(tx: N.Transaction): Promise<number> {
  const file = join(dir, 'batch.json');
  return inFreshNs(async (ns) => {
    const t0 = now();
    writeFileSync(file, tx.render());
    spawnIn(ns, 'nft', ['-j', '-f', file]);
    return now() - t0;
  });
}

async function iptRestore(fw: Fwd[]): Promise<number> {
  const file = join(dir, 'rules.ipt');
  writeFileSync(file, iptRestoreText(fw));
  return inFreshNs(async (ns) => {
    const t0 = now();
    spawnIn(ns, 'iptables-nft-restore', [file]);
    return now() - t0;
  });
}

async function iptSpawns(fw: Fwd[]): Promise<number> {
  return inFreshNs(async (ns) => {
    const t0 = now();
    for (const f of fw) {
      const [a, b] = iptRules(f);
      spawnIn(ns, 'iptables', ['-t', 'nat', ...a.split(' ')]);
      spawnIn(ns, 'iptables', ['-t', 'filter', ...b.split(' ')]);
    }
    return now() - t0;
  });
}

const fmt = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));

interface Row { n: number; method: string; ms: number; note?: string }

async function main(): Promise<void> {
  const rows: Row[] = [];
  let perSpawnMs: number | undefined;
  for (const n of SIZES) {
    const runs = runsFor(n);
    const fw = forwards(n);
    const rulesTx = perRule(fw);
    const mapsTx = withMaps(fw);
    process.stderr.write(`N=${n}: building done, measuring (${runs} runs)…\n`);
    rows.push({ n, method: 'ffi/rules (libnftables, 2N rules)', ms: await measure(runs, () => ffiApply(rulesTx)) });
    rows.push({ n, method: 'ffi/maps (2 rules + 2N elements)', ms: await measure(runs, () => ffiApply(mapsTx)) });
    rows.push({ n, method: 'nft -j -f (spawned, 2N rules)', ms: await measure(runs, () => nftSpawnApply(rulesTx)) });
    rows.push({ n, method: 'iptables-nft-restore (2N rules)', ms: await measure(runs, () => iptRestore(fw)) });
    if (n <= SPAWN_LIMIT) {
      const ms = await measure(n >= 1000 ? 1 : Math.min(runs, 3), () => iptSpawns(fw));
      perSpawnMs = ms / (2 * n);
      rows.push({ n, method: `iptables x ${2 * n} spawns`, ms });
    } else if (perSpawnMs !== undefined) {
      rows.push({ n, method: `iptables x ${2 * n} spawns`, ms: perSpawnMs * 2 * n, note: `EXTRAPOLATED (${perSpawnMs.toFixed(2)} ms/spawn)` });
    }
  }

  console.log('\n## Apply N port forwards into a fresh namespace (median ms; ratio = time / ffi-rules time)\n');
  console.log('| N | method | ms | ratio | note |');
  console.log('|---:|---|---:|---:|---|');
  for (const n of SIZES) {
    const base = rows.find((r) => r.n === n && r.method.startsWith('ffi/rules'))!.ms;
    for (const r of rows.filter((x) => x.n === n)) {
      console.log(`| ${n.toLocaleString('en-US')} | ${r.method} | ${fmt(r.ms)} | ${(r.ms / base).toFixed(2)}x | ${r.note ?? ''} |`);
    }
  }

  // single-element latency on a loaded maps table
  const loaded = quick ? 1000 : 10_000;
  const iters = quick ? 100 : 300;
  const spawnIters = quick ? 10 : 20;
  const lat = await inFreshNs(async (ns) => {
    const ex = N.openLibnftables({ netns: ns });
    try {
      await ex.apply(withMaps(forwards(loaded)));
      const key: N.ValueInput = ['198.19.0.1', 4242];
      const add = new N.Transaction(T).add(N.element('fwd_addr', key, '10.200.0.1'));
      const del = new N.Transaction(T).delete(N.element('fwd_addr', key));
      const addMs: number[] = [];
      const delMs: number[] = [];
      for (let i = 0; i < iters; i++) {
        let t0 = now();
        await ex.apply(add);
        addMs.push(now() - t0);
        t0 = now();
        await ex.apply(del);
        delMs.push(now() - t0);
      }
      const addFile = join(dir, 'add.json');
      const delFile = join(dir, 'del.json');
      writeFileSync(addFile, add.render());
      writeFileSync(delFile, del.render());
      const sAdd: number[] = [];
      const sDel: number[] = [];
      for (let i = 0; i < spawnIters; i++) {
        let t0 = now();
        spawnIn(ns, 'nft', ['-j', '-f', addFile]);
        sAdd.push(now() - t0);
        t0 = now();
        spawnIn(ns, 'nft', ['-j', '-f', delFile]);
        sDel.push(now() - t0);
      }
      return { ffiAdd: median(addMs), ffiDel: median(delMs), nftAdd: median(sAdd), nftDel: median(sDel) };
    } finally {
      await ex.close();
    }
  });
  console.log(`\n## One map element on a loaded table (${loaded.toLocaleString('en-US')} forwards; median of ${iters} FFI / ${spawnIters} spawned)\n`);
  console.log('| operation | ffi ms | spawned nft ms | ratio |');
  console.log('|---|---:|---:|---:|');
  console.log(`| add element | ${lat.ffiAdd.toFixed(3)} | ${fmt(lat.nftAdd)} | ${(lat.nftAdd / lat.ffiAdd).toFixed(0)}x |`);
  console.log(`| delete element | ${lat.ffiDel.toFixed(3)} | ${fmt(lat.nftDel)} | ${(lat.nftDel / lat.ffiDel).toFixed(0)}x |`);

  console.log('\n## Targets\n');
  const maps10k = rows.find((r) => r.n === 10_000 && r.method.startsWith('ffi/maps'));
  if (maps10k) console.log(`- 10,000 port forwards via maps <= 100 ms: ${fmt(maps10k.ms)} ms -> ${maps10k.ms <= 100 ? 'PASS' : 'FAIL'}`);
  else console.log('- 10,000 port forwards via maps <= 100 ms: not measured (--quick)');
  const worst = Math.max(lat.ffiAdd, lat.ffiDel);
  console.log(`- single-element change <= 1 ms: ${worst.toFixed(3)} ms -> ${worst <= 1 ? 'PASS' : 'FAIL'}`);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => rmSync(dir, { recursive: true, force: true }));
