/**
 * Firewall rule SHAPES beside the kernel's floor (part of bench/firewall.ts). The cost of a rule set depends
 * less on its size than on its shape: which fields vary decides the sets the compiler makes, and the set type
 * decides the kernel's backend (a set keyed by a port alone got the bitmap backend, whose updates are
 * quadratic: lib/nft/set-backend.ts). N rules (10,000; --quick 1,000) of one isolated network:
 *
 *   ports on one IP    N tcp ports open on one public IP, from anywhere
 *   IPs × one port     tcp 443 open on N public IPs
 *   CIDRs              tcp 22 on one public IP, from N source /24s
 *   mixed              10 rules per public IP: tcp ports, udp ranges from a /16, tcp from two /24s, ICMP types,
 *                      egress denies to /24s (the rule mix of bench/firewall.ts)
 *
 * each for three operations on the router (in-library apply-fw-rules, median of the runs):
 *   add            from no rules to the N rules
 *   replace-all    to N other rules (no element in common)
 *   change 1%      N/100 of the rules replaced by others
 * beside the FLOOR, measured in the same run: the same set and map elements (the firewall's sets and verdict
 * maps, with the chains they refer to, no rules) brought from the old contents to the new by one spawned
 * `nft -j -f` in a scratch namespace: the kernel's and nft's own cost of those elements, process start
 * included. The engine's `nft` phase (libnftables in-process: the whole table change, rules included) is
 * listed as well.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addNetns, deleteNetns, netnsExists } from '../lib/netns/namespaces.js';
import { runInNetns } from '../lib/sys/setns.js';
import { RouterEngine } from '../lib/router/engine.js';
import { runCommand } from '../lib/router/command-table.js';
import { firewallObjects } from '../lib/router/firewall/firewall-objects.js';
import { diffTable, tableContents, Transaction, type NftObject, type TableRef } from '../lib/nft/index.js';
import type { Table } from './lib/table.js';
import { fmtInt, fmtMs, fmtRatio } from './lib/format.js';

type Rule = Record<string, unknown>;
type Doc = { default_egress_allow: boolean; rules: Rule[] };

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const now = (): number => performance.now();

const PUB = '203.0.113.10';
/** k-th address of 198.18.0.0/15. */
const ipOf = (k: number): string => `198.${18 + ((k >> 16) & 1)}.${(k >> 8) & 255}.${k & 255}`;
/** k-th /24 of 10.0.0.0/8. */
const net24 = (k: number): string => `10.${(k >> 8) & 255}.${k & 255}.0/24`;

/** Rule i of a shape, its values taken from `k` (distinct k → distinct rule). */
const SHAPES: Record<string, (k: number) => Rule> = {
  'ports on one IP': (k) => ({ type: 'ingress', protocol: 'tcp', portStart: 1 + (k % 65535), publicIp: PUB, sourceCidrs: ['0.0.0.0/0'] }),
  'IPs × one port': (k) => ({ type: 'ingress', protocol: 'tcp', portStart: 443, publicIp: ipOf(k), sourceCidrs: ['0.0.0.0/0'] }),
  'CIDRs': (k) => ({ type: 'ingress', protocol: 'tcp', portStart: 22, publicIp: PUB, sourceCidrs: [net24(k)] }),
  'mixed': (k) => {
    const publicIp = ipOf(Math.floor(k / 10));
    const j = k % 20;
    if (j < 14) return { type: 'ingress', protocol: 'tcp', portStart: 1000 + (k % 10) * 7, publicIp, sourceCidrs: ['0.0.0.0/0'] };
    if (j < 17) return { type: 'ingress', protocol: 'udp', portStart: 20000 + (k % 1000) * 8, portEnd: 20005 + (k % 1000) * 8, publicIp, sourceCidrs: [`10.${k % 250}.0.0/16`] };
    if (j === 17) return { type: 'ingress', protocol: 'tcp', portStart: 5000 + (k % 1000), publicIp, sourceCidrs: [`192.168.${k % 256}.0/24`, `172.20.${k % 256}.0/24`] };
    if (j === 18) return { type: 'ingress', protocol: 'icmp', icmpType: (k >> 4) % 2 ? 8 : 0, icmpCode: -1, publicIp, sourceCidrs: ['0.0.0.0/0'] };
    return { type: 'egress', protocol: 'tcp', portStart: 3000 + (k % 1000), destCidrs: [`172.${16 + ((k >> 8) & 15)}.${k & 255}.0/24`] };
  },
};

/** N rules of a shape: k = i + base, except the first `changed` rules, which take values no other variant uses. */
function doc(shape: string, n: number, base: number, changed = 0, tag = 0): Doc {
  const f = SHAPES[shape];
  // mixed: a different rule per k needs k spread over whole groups of 20 (the IP changes every 10)
  const rules = Array.from({ length: n }, (_, i) => f(i < changed ? 4 * n + tag * n + i * 20 : base + i));
  return { default_egress_allow: true, rules };
}

interface Op { name: string; from: (n: number, r: number) => Doc | undefined; to: (n: number, r: number) => Doc }

/** The operations; `r` is the run number (runs alternate directions, so each one really changes N or N/100 rules). */
const OPS: Op[] = [
  { name: 'add', from: () => undefined, to: (n, r) => docOf(n, r % 2 ? 2 * n : 0) },
  { name: 'replace-all', from: (n, r) => docOf(n, r % 2 ? 2 * n : 0), to: (n, r) => docOf(n, r % 2 ? 0 : 2 * n) },
  { name: 'change 1%', from: (n, r) => (r % 2 ? docOf(n, 0, n / 100, 1) : docOf(n, 0)), to: (n, r) => (r % 2 ? docOf(n, 0) : docOf(n, 0, n / 100, 1)) },
];
let currentShape = '';
const docOf = (n: number, base: number, changed = 0, tag = 0): Doc => doc(currentShape, n, base, changed, tag);

const SCRATCH_TABLE: TableRef = { family: 'inet', name: 'floor' };

/** The firewall's sets and maps with the chains they refer to (no rules): what the floor applies. */
function elementObjects(objs: readonly NftObject[]): NftObject[] {
  return objs.filter((o) => o.kind === 'set' || o.kind === 'map' || (o.kind === 'chain' && o.hook === undefined));
}

/** One `nft -j -f FILE` in `ns` taking the scratch table from `from` to `to`; its wall time. */
function floorOnce(ns: string, dir: string, from: NftObject[], to: NftObject[]): number {
  const d = diffTable(SCRATCH_TABLE, tableContents(from), tableContents(to));
  if (!d) throw new Error('floor: no in-place diff');
  const file = join(dir, 'floor.json');
  writeFileSync(file, d.body.render());
  const t0 = now();
  const r = runInNetns(ns, () => spawnSync('nft', ['-j', '-f', file], { encoding: 'utf8' }));
  const ms = now() - t0;
  if (r.status !== 0) throw new Error(`floor: nft -j -f: ${r.stderr}`);
  return ms;
}

function prepareFloor(ns: string, dir: string, objs: NftObject[]): void {
  runInNetns(ns, () => spawnSync('nft', ['flush', 'ruleset'], { encoding: 'utf8' }));
  const file = join(dir, 'floor-setup.json');
  writeFileSync(file, new Transaction(SCRATCH_TABLE).add({ kind: 'table' }, ...objs).render());
  const r = runInNetns(ns, () => spawnSync('nft', ['-j', '-f', file], { encoding: 'utf8' }));
  if (r.status !== 0) throw new Error(`floor setup: ${r.stderr}`);
}

export interface ShapeRow { shape: string; op: string; n: number; lib: number; nft: number; floor: number; sets: number; elements: number }

export async function shapesMatrix(o: {
  quick: boolean; log: (m: string) => void; engine: RouterEngine; net: { networkId: string; namespace: string }; dir: string;
}): Promise<{ table: Table; rows: ShapeRow[]; worst: ShapeRow | undefined }> {
  const n = o.quick ? 1000 : 10_000;
  const runs = o.quick ? 2 : 3;
  const floorNs = `fwfloor-${process.pid}`;
  addNetns(floorNs);
  const rows: ShapeRow[] = [];
  const apply = async (d: Doc): Promise<number> => {
    const t0 = now();
    await runCommand(o.engine, { command: 'apply-fw-rules', ...o.net, fwRules: { value: d, source: 'bench' } });
    return now() - t0;
  };
  const objsOf = (): NftObject[] => elementObjects(firewallObjects(o.engine.store.load(o.net.namespace)!));
  try {
    for (const shape of Object.keys(SHAPES)) {
      currentShape = shape;
      for (const op of OPS) {
        o.log(`firewall shapes: ${shape}, ${op.name}, N=${n}`);
        const lib: number[] = [];
        const nft: number[] = [];
        const floor: number[] = [];
        let counts = { sets: 0, elements: 0 };
        for (let r = -1; r < runs; r++) { // r = -1: a warm-up run (JIT), not counted
          const from = op.from(n, r);
          await apply(from ?? { default_egress_allow: true, rules: [] });
          const before = objsOf();
          const ms = await apply(op.to(n, r));
          const after = objsOf();
          if (r < 0) continue;
          lib.push(ms);
          nft.push(o.engine.lastPhases.nft ?? NaN);
          prepareFloor(floorNs, o.dir, before);
          floor.push(floorOnce(floorNs, o.dir, before, after));
          const sets = after.filter((x) => x.kind === 'set' || x.kind === 'map') as Array<{ elements?: unknown[] }>;
          counts = { sets: sets.length, elements: sets.reduce((a, x) => a + (x.elements?.length ?? 0), 0) };
        }
        rows.push({ shape, op: op.name, n, lib: median(lib), nft: median(nft), floor: median(floor), ...counts });
      }
    }
  } finally {
    if (netnsExists(floorNs)) deleteNetns(floorNs, { ifExists: true });
    await apply({ default_egress_allow: true, rules: [] }).catch(() => undefined);
  }
  const worst = rows.reduce<ShapeRow | undefined>((w, r) => (!w || r.lib / r.floor > w.lib / w.floor ? r : w), undefined);
  const table: Table = {
    title: `Firewall rule shapes: ${fmtInt(n)} rules, in-library vs the floor (one nft -f of the same elements), median of ${runs}`,
    headers: ['shape', 'operation', 'library', 'nft phase', 'floor (nft -f)', 'library ÷ floor', 'sets + maps', 'elements'],
    rows: rows.map((r) => [r.shape, r.op, fmtMs(r.lib), fmtMs(r.nft), fmtMs(r.floor), fmtRatio(r.lib / r.floor), fmtInt(r.sets), fmtInt(r.elements)]),
    notes: [
      'library: apply-fw-rules in-library (runCommand: validation, lock, state, compile, the one table change, conntrack check, save)',
      'nft phase: the engine\'s libnftables transaction(s) alone (the whole table change: rules and elements)',
      'floor: the firewall\'s sets and verdict maps (and the chains they name, no rules) taken from the old to the new elements by one spawned `nft -j -f` in a scratch namespace, process start included',
      'add: from no rules; replace-all: to rules with no element in common; change 1%: N/100 rules replaced',
    ],
  };
  return { table, rows, worst };
}
