/**
 * Guest-segment filter benchmark (not a test): one VM added to and removed from a guest segment that already holds
 * 1,000 known VMs. Run inside the sandbox:
 *   node scripts/in-sandbox.mjs node dist/bench/vmfilter.js [--quick]
 * (also run by bench/run.ts through the exported bench()).
 *
 * The router serves one network (10.1.0.0/16) whose 1,000 NICs were given by one restore-network; each run then:
 *   prepare-nic   a new VM starts: its NIC becomes known (`RouterApi` in-library, the whole command: lock, state,
 *                 router table check, the filter table changed in place, save)
 *   release-nic   the VM started by the previous run stops: its bindings go
 * (every command leads to a filter never compiled before, as in real use; the previous one is the engine's last,
 * as in the resident engine)
 * and, measured in the same run as the floor of that change, the SAME element operations (what the in-place diff
 * sent, without its stamp) applied
 *   nft -f        by one `nft -j -f FILE` process in the host namespace (process start included), and
 *   libnftables   in-process through the executor netns-router uses (one transaction, no diff, no stamp).
 * Two tiers: IPv4 only (element updates only), and with an IPv6 /64 (the NIC's neighbour-advertisement chain and
 * a claim bucket change too). Median of the runs; the table size is printed for scale.
 *
 * Second section (`routersBench`, also `--section routers`): ONE router's commands (prepare-nic, release-nic) with
 * 1, 100 and 300 routers' filters on the host — the others' filters are the same router's compiled under other
 * namespaces, in the shared table (this design) and then, in the same run, each in a table of its own (the
 * previous design, `nr_vmf_<namespace>`) — and, as its cause, one nft CLI transaction (`nft -c -j -f`, one
 * element) in a namespace holding N tables versus one table holding N sets and N chains (nft 1.0.6 dumps and
 * caches per table on every transaction that needs a cache).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { addNetns, deleteNetns, netnsExists } from '../lib/netns/namespaces.js';
import { runInNetns } from '../lib/sys/setns.js';
import { NetnsHandle } from '../lib/netns/handle.js';
import { createRouterApi } from '../lib/router/command-table.js';
import { dispatch, type CommandContext } from '../lib/router/contract/router-api.js';
import { parseInvocation } from '../lib/router/contract/parse.js';
import type { EngineInvocation } from '../lib/router/contract/types.js';
import { StateStore } from '../lib/router/state/store.js';
import { VMFILTER_TABLE, filterNames, filterObjects } from '../lib/router/vmfilter/compile.js';
import type { RouterModel } from '../lib/router/model.js';
import { lastVmfilterSync } from '../lib/router/vmfilter/module.js';
import { diffTable, scopeDeletion, tableContents } from '../lib/nft/table-sync.js';
import { sharedLibnftables } from '../lib/nft/libnftables.js';
import { Transaction } from '../lib/nft/transaction.js';
import { renderText, type Table } from './lib/table.js';
import { fmtMs, fmtInt, fmtRatio } from './lib/format.js';

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const now = (): number => performance.now();
const macOf = (i: number) => `02:00:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
const ipOf = (i: number) => `10.1.${(i >> 8) + 1}.${i & 255}`;

interface Row {
  tier: string;
  vms: number;
  op: 'add' | 'remove';
  command: number;
  sync: number;
  ops: number;
  nftF: number;
  libnft: number;
  floorOps: number;
}

type Section = { title: string; tables: Table[]; notes: string[]; partial: string[]; data: unknown; text: string };

export async function bench(o: { quick: boolean; log: (m: string) => void; sections?: Array<'segment' | 'routers'> }): Promise<Section> {
  const sections = o.sections ?? ['segment', 'routers'];
  const parts: Section[] = [];
  if (sections.includes('segment')) parts.push(await segmentBench(o));
  if (sections.includes('routers')) parts.push(await routersBench(o));
  return {
    title: parts.map((x) => x.title).join('; '), tables: parts.flatMap((x) => x.tables), notes: parts.flatMap((x) => x.notes),
    partial: parts.flatMap((x) => x.partial), data: Object.fromEntries(parts.map((x, i) => [sections[i], x.data])), text: parts.map((x) => x.text).join('\n'),
  };
}

/**
 * A scratch host namespace (uplink eth1) and state directory, and `run`: one command line through the CLI's parser
 * and the engine in this process, timed.
 */
function benchHost(dirPrefix: string, hostNs: string) {
  const dir = mkdtempSync(join(tmpdir(), dirPrefix));
  const stateDir = join(dir, 'state');
  addNetns(hostNs);
  const h = NetnsHandle.open(hostNs);
  h.netlink.linkAdd({ kind: 'veth', name: 'eth1', up: true, peer: { name: 'up0' } });
  h.close();
  const api = createRouterApi();
  const log = pino({ level: 'silent' });
  const run = async (argv: string[]): Promise<number> => {
    const inv = parseInvocation([...argv, '--host-netns', hostNs, '--state-dir', stateDir, '--log-file', join(dir, 'log')], { env: {}, version: 'bench' }) as EngineInvocation;
    const ctx: CommandContext = { settings: inv.settings, devices: inv.devices, details: inv.details, form: inv.form, deadline: Date.now() + 120_000, signal: new AbortController().signal, log };
    const t0 = now();
    await dispatch(api, inv.request, ctx);
    return now() - t0;
  };
  return { dir, stateDir, hostNs, run, store: new StateStore(stateDir) };
}

/** The segments measured: IPv4 only, with IPv6, IPv4 with DHCP served (dnsmasq, the DHCP claim chains). */
const TIERS = ['IPv4', 'IPv4 + IPv6 /64', 'IPv4, DHCP served'] as const;

async function segmentBench(o: { quick: boolean; log: (m: string) => void }): Promise<Section> {
  const vms = 1000;
  const runs = o.quick ? 3 : 9;
  const { dir, hostNs, run, store } = benchHost('vmfbench-', `vmfbench-host-${process.pid}`);
  const rows: Row[] = [];
  const sizes: Record<string, { chains: number; rules: number; elements: number }> = {};
  const namespaces: string[] = [];
  try {
    for (const tier of TIERS) {
      const id = tier === 'IPv4' ? '4601' : tier === 'IPv4 + IPv6 /64' ? '4602' : '4603';
      const served = tier === 'IPv4, DHCP served';
      const ns = `cs-net-${id}`;
      namespaces.push(ns);
      const net = ['--network-id', id];
      const v6 = tier !== 'IPv4 + IPv6 /64' ? [] : ['--network-ip6-gateway', 'fd00:46::1', '--network-ip6-cidr', 'fd00:46::/64'];
      o.log(`${tier}: ${vms} VMs`);
      await run(['implement-network', ...net, '--vlan', `vxlan://${id}`, '--gateway', '10.1.0.1', '--cidr', '10.1.0.0/16', ...v6, '--network-extension-details', '{"vm-filter":"true"}']);
      // DHCP served: dnsmasq runs, and the filter drops DHCP client messages naming a NIC's MAC from another MAC
      // (one claim chain per last byte of the MACs, docs/vm-filter.md)
      const restore = { dhcp_enabled: served, dns_enabled: false, userdata_enabled: false, vms: Array.from({ length: vms }, (_, i) => ({ ip: ipOf(i + 10), mac: macOf(i + 10), default_nic: true })) };
      const initial = await run(['restore-network', ...net, '--gateway', '10.1.0.1', '--cidr', '10.1.0.0/16', '--restore-data', JSON.stringify(restore)]);
      o.log(`${tier}: restore-network of ${vms} NICs ${fmtMs(initial)} (${lastVmfilterSync?.mode}, ${lastVmfilterSync?.operations} operations)`);
      const objs = filterObjects(store.load(ns)!)!;
      sizes[tier] = {
        chains: objs.filter((x) => x.kind === 'chain').length,
        rules: objs.filter((x) => x.kind === 'rule').length,
        elements: objs.reduce((n, x) => n + ((x as { elements?: unknown[] }).elements?.length ?? 0), 0),
      };
      const t = VMFILTER_TABLE;
      const ex = sharedLibnftables(hostNs);
      const vm = (k: number) => ['--mac', macOf(vms + 20 + k), '--ip', ipOf(vms + 20 + k), '--gateway', '10.1.0.1', '--cidr', '10.1.0.0/16', '--vlan', `vxlan://${id}`];
      await run(['prepare-nic', ...net, ...vm(-2)]);
      for (let r = -1; r < runs; r++) {
        // the change itself, through the whole command: a new VM starts, the previous run's VM stops
        const before = store.load(ns)!;
        const add = await run(['prepare-nic', ...net, ...vm(r)]);
        const addSync = lastVmfilterSync!;
        const after = store.load(ns)!;
        const del = await run(['release-nic', ...net, '--mac', macOf(vms + 20 + r - 1), '--ip', ipOf(vms + 20 + r - 1)]);
        const delSync = lastVmfilterSync!;
        const released = store.load(ns)!;
        if (addSync.mode !== 'diff' || delSync.mode !== 'diff') throw new Error(`expected in-place changes, got ${addSync.mode}/${delSync.mode} (${addSync.reason ?? delSync.reason})`);
        // the floor: the same operations, without diff and stamp
        const body = (a: typeof before, b: typeof before): Transaction => diffTable(t, tableContents(filterObjects(a)!), tableContents(filterObjects(b)!))!.body;
        const addTx = body(before, after);
        const delTx = body(after, released);
        // each floor replays the two changes from where they started: the table is put back to `before`
        // (untimed), and ends as the commands left it (`released`, so the stamp still matches)
        const rewind = body(released, before);
        const files = [addTx, delTx].map((tx, i) => { const f = join(dir, `floor-${i}.json`); writeFileSync(f, tx.render()); return f; });
        await ex.apply(rewind, { locate: false });
        const nftF = files.map((f) => {
          const t0 = now();
          const p = runInNetns(hostNs, () => spawnSync('nft', ['-j', '-f', f], { encoding: 'utf8' }));
          const ms = now() - t0;
          if (p.status !== 0) throw new Error(`nft -j -f: ${p.stderr}`);
          return ms;
        });
        await ex.apply(rewind, { locate: false });
        const lib: number[] = [];
        for (const tx of [addTx, delTx]) {
          const t0 = now();
          await ex.apply(tx, { locate: false });
          lib.push(now() - t0);
        }
        if (r < 0) continue; // warm-up
        rows.push({ tier, vms, op: 'add', command: add, sync: addSync.ms, ops: addSync.operations, nftF: nftF[0], libnft: lib[0], floorOps: addTx.length });
        rows.push({ tier, vms, op: 'remove', command: del, sync: delSync.ms, ops: delSync.operations, nftF: nftF[1], libnft: lib[1], floorOps: delTx.length });
      }
      await run(['destroy-network', ...net]);
    }
  } finally {
    // (a run that failed half-way: its routers' daemons stop with them)
    for (const ns of namespaces) {
      if (store.has(ns)) try { await run(['destroy-network', '--network-id', ns.slice('cs-net-'.length)]); } catch { /* deleted below */ }
    }
    for (const ns of [...namespaces, hostNs]) if (netnsExists(ns)) deleteNetns(ns, { ifExists: true });
    rmSync(dir, { recursive: true, force: true });
  }
  const agg = (tier: string, op: 'add' | 'remove') => {
    const rs = rows.filter((r) => r.tier === tier && r.op === op);
    return { command: median(rs.map((r) => r.command)), sync: median(rs.map((r) => r.sync)), ops: median(rs.map((r) => r.ops)), nftF: median(rs.map((r) => r.nftF)), libnft: median(rs.map((r) => r.libnft)), floorOps: median(rs.map((r) => r.floorOps)) };
  };
  const tiers: readonly string[] = TIERS;
  const table: Table = {
    title: `guest-segment filter: one VM added / removed on a segment of ${fmtInt(vms)} (median of ${runs})`,
    headers: ['tier', 'change', 'whole command (in-library)', 'filter table sync', 'operations', 'floor: nft -f (same ops)', 'floor: libnftables (same ops)', 'floor ops', 'sync ÷ nft -f'],
    rows: tiers.flatMap((tier) => (['add', 'remove'] as const).map((op) => {
      const a = agg(tier, op);
      return [tier, op === 'add' ? 'prepare-nic (VM starts)' : 'release-nic (VM stops)', fmtMs(a.command), fmtMs(a.sync), fmtInt(a.ops), fmtMs(a.nftF), fmtMs(a.libnft), fmtInt(a.floorOps), fmtRatio(a.nftF / a.sync)];
    })),
    notes: [
      'whole command: RouterApi in-library — lock, state, router table check, the filter table changed in place, save',
      'filter table sync: the guarded in-place transaction of the host-side bridge table (diff + stamp), timed in the module',
      'operations: commands in that transaction (the stamp swap is 2 of them); floor ops: the same change without the stamp',
      'floor: nft -f — one `nft -j -f FILE` process in the host namespace, process start included; libnftables — the same transaction in-process',
      ...tiers.map((tier) => `${tier}: the table holds ${fmtInt(sizes[tier].chains)} chains, ${fmtInt(sizes[tier].rules)} rules, ${fmtInt(sizes[tier].elements)} set/map elements with ${fmtInt(vms)} VMs`),
    ],
  };
  const text = renderText(table);
  return { title: 'Guest-segment filter: one VM on a segment of 1,000 (bench/vmfilter.ts)', tables: [table], notes: [], partial: [], data: { rows, sizes, runs }, text };
}

/** An nft CLI run in a namespace; its wall time in ms. Throws on failure. */
function nftIn(ns: string, args: string[]): number {
  const t0 = now();
  const p = runInNetns(ns, () => spawnSync('nft', args, { encoding: 'utf8', maxBuffer: 1 << 28 }));
  const ms = now() - t0;
  if (p.status !== 0) throw new Error(`nft ${args.join(' ')}: ${p.stderr}`);
  return ms;
}

/**
 * The cause, with the nft CLI alone: one transaction adding one element (JSON, checked only: `nft -c -j -f`) in a
 * fresh namespace holding N bridge tables of one set and one chain each, versus ONE table holding N sets and N
 * chains.
 */
function tableCountRows(dir: string, counts: number[], runs: number): { n: number; tables: number; oneTable: number }[] {
  const out: { n: number; tables: number; oneTable: number }[] = [];
  for (const n of counts) {
    const row = { n, tables: 0, oneTable: 0 };
    for (const layout of ['tables', 'oneTable'] as const) {
      const ns = `vmfbench-cnt-${process.pid}`;
      addNetns(ns);
      try {
        const text: string[] = [];
        if (layout === 'tables') for (let i = 0; i < n; i++) text.push(`table bridge t${i} {\n set s { type ether_addr; }\n chain c { }\n}`);
        else {
          text.push('table bridge t0 {');
          for (let i = 0; i < n; i++) text.push(` set s${i} { type ether_addr; }\n chain c${i} { }`);
          text.push('}');
        }
        // (files: a child's stdin from spawnSync is a socket, which nft cannot open as /dev/stdin)
        const setup = join(dir, 'tables.nft');
        writeFileSync(setup, `${text.join('\n')}\n`);
        nftIn(ns, ['-f', setup]);
        const doc = join(dir, 'element.json');
        writeFileSync(doc, JSON.stringify({ nftables: [{ add: { element: { family: 'bridge', table: 't0', name: layout === 'tables' ? 's' : 's0', elem: ['02:00:00:00:00:01'] } } }] }));
        const times: number[] = [];
        for (let r = 0; r < runs; r++) times.push(nftIn(ns, ['-c', '-j', '-f', doc]));
        row[layout] = median(times);
      } finally {
        deleteNetns(ns, { ifExists: true });
      }
    }
    out.push(row);
  }
  return out;
}

/** One router's commands with 1, 100, 300 routers' filters on the host: shared table vs a table per router. */
async function routersBench(o: { quick: boolean; log: (m: string) => void }): Promise<Section> {
  const counts = [1, 100, 300];
  const runs = o.quick ? 3 : 7;
  const vms = 10;
  const { dir, hostNs, run, store } = benchHost('vmfbench-r-', `vmfbench-rhost-${process.pid}`);
  const id = '4701';
  const ns = `cs-net-${id}`;
  const net = ['--network-id', id];
  type Layout = 'shared' | 'per-router';
  const rows: Array<{ layout: Layout; routers: number; command: number; sync: number }> = [];
  try {
    await run(['implement-network', ...net, '--vlan', `vxlan://${id}`, '--gateway', '10.1.0.1', '--cidr', '10.1.0.0/16', '--network-extension-details', '{"vm-filter":"true"}']);
    const restore = { dhcp_enabled: false, dns_enabled: false, userdata_enabled: false, vms: Array.from({ length: vms }, (_, i) => ({ ip: ipOf(i + 10), mac: macOf(i + 10), default_nic: true })) };
    await run(['restore-network', ...net, '--gateway', '10.1.0.1', '--cidr', '10.1.0.0/16', '--restore-data', JSON.stringify(restore)]);
    const model = store.load(ns)!;
    // another router's filter: this router's, compiled under another namespace (its own prefix and mark)
    const other = (i: number) => filterObjects({ ...structuredClone(model), namespace: `cs-other-${i}` } as RouterModel)!;
    const ex = sharedLibnftables(hostNs);
    const vm = (k: number) => ['--mac', macOf(vms + 20 + k), '--ip', ipOf(vms + 20 + k), '--gateway', '10.1.0.1', '--cidr', '10.1.0.0/16', '--vlan', `vxlan://${id}`];
    let k = 0;
    const measure = async (layout: Layout, routers: number): Promise<void> => {
      for (let r = -1; r < runs; r++) {
        const add = await run(['prepare-nic', ...net, ...vm(k)]);
        const addSync = lastVmfilterSync!;
        const del = await run(['release-nic', ...net, '--mac', macOf(vms + 20 + k), '--ip', ipOf(vms + 20 + k)]);
        const delSync = lastVmfilterSync!;
        k++;
        if (addSync.mode !== 'diff' || delSync.mode !== 'diff') throw new Error(`expected in-place changes, got ${addSync.mode}/${delSync.mode}`);
        if (r < 0) continue; // warm-up
        rows.push({ layout, routers, command: add, sync: addSync.ms }, { layout, routers, command: del, sync: delSync.ms });
      }
    };
    for (const layout of ['shared', 'per-router'] as const) {
      let placed = 0;
      for (const n of counts) {
        // the others' filters, added in batches (untimed)
        while (placed < n - 1) {
          const batch = Math.min(50, n - 1 - placed);
          const tx = new Transaction(VMFILTER_TABLE);
          for (let i = placed; i < placed + batch; i++) {
            if (layout === 'shared') tx.add(...other(i));
            else tx.append(new Transaction({ family: 'bridge', name: `nr_vmf_cs-other-${i}` }).add({ kind: 'table' }, ...other(i)));
          }
          await ex.apply(tx, { locate: false });
          placed += batch;
        }
        o.log(`routers: ${layout}, ${n} routers' filters on the host`);
        await measure(layout, n);
      }
      // remove the others (untimed)
      let tx = new Transaction(VMFILTER_TABLE);
      for (let i = 0; i < placed; i++) {
        if (layout === 'shared') tx.append(await scopeDeletion(ex, VMFILTER_TABLE, filterNames(`cs-other-${i}`).prefix));
        else tx.append(new Transaction({ family: 'bridge', name: `nr_vmf_cs-other-${i}` }).delete({ kind: 'table' }));
        if (tx.length > 2000 || i === placed - 1) { await ex.apply(tx, { locate: false }); tx = new Transaction(VMFILTER_TABLE); }
      }
    }
    await run(['destroy-network', ...net]);
  } finally {
    for (const x of [ns, hostNs]) if (netnsExists(x)) deleteNetns(x, { ifExists: true });
  }
  const agg = (layout: Layout, n: number) => {
    const rs = rows.filter((r) => r.layout === layout && r.routers === n);
    return { command: median(rs.map((r) => r.command)), sync: median(rs.map((r) => r.sync)) };
  };
  const base = { shared: agg('shared', 1), 'per-router': agg('per-router', 1) };
  const t1: Table = {
    title: `guest-segment filter: one router's command with N routers' filters on the host (prepare-nic and release-nic, median of ${runs * 2})`,
    headers: ['routers on the host', 'shared table: whole command', 'shared: filter sync', 'shared: sync ÷ 1 router', 'table per router: whole command', 'per router: filter sync', 'per router: sync ÷ 1 router'],
    rows: counts.map((n) => {
      const s = agg('shared', n); const p = agg('per-router', n);
      return [fmtInt(n), fmtMs(s.command), fmtMs(s.sync), fmtRatio(s.sync / base.shared.sync), fmtMs(p.command), fmtMs(p.sync), fmtRatio(p.sync / base['per-router'].sync)];
    }),
    notes: [
      `the router has ${vms} VMs; every other router's filter is the same router's compiled under another namespace`,
      'shared table: this design (one `bridge netns_router_vmf`, objects named per router); table per router: the others in tables of their own, as the previous design kept them',
      'filter sync: the router\'s guarded in-place transaction(s) in the host namespace, timed in the module',
    ],
  };
  o.log(renderText(t1));
  o.log('routers: nft CLI, N tables vs one table');
  let cnt: ReturnType<typeof tableCountRows>;
  try {
    cnt = tableCountRows(dir, [1, 100, 300, 1000], runs);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const t2: Table = {
    title: `nft ${nftVersion()} CLI: one element added (nft -c -j -f) in a namespace holding N tables vs one table of N sets + N chains (median of ${runs})`,
    headers: ['N', 'N tables (1 set + 1 chain each)', 'one table (N sets + N chains)', 'ratio'],
    rows: cnt.map((r) => [fmtInt(r.n), fmtMs(r.tables), fmtMs(r.oneTable), fmtRatio(r.tables / r.oneTable)]),
    notes: ['process start included (the N = 1 row is the floor)'],
  };
  const text = `${renderText(t1)}\n${renderText(t2)}`;
  return { title: 'Guest-segment filter: one router among many (bench/vmfilter.ts)', tables: [t1, t2], notes: [], partial: [], data: { rows, cnt, runs }, text };
}

function nftVersion(): string {
  const m = /v?(\d+\.\d+\.\d+)/.exec(spawnSync('nft', ['--version'], { encoding: 'utf8' }).stdout ?? '');
  return m ? m[1] : '?';
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  if (process.env.NETNS_ROUTER_SANDBOX !== '1') {
    console.error('run inside the sandbox: node scripts/in-sandbox.mjs node dist/bench/vmfilter.js [--quick]');
    process.exit(1);
  }
  const only = process.argv.indexOf('--section');
  const sections = only > 0 ? [process.argv[only + 1] as 'segment' | 'routers'] : undefined;
  const r = await bench({ quick: process.argv.includes('--quick'), log: (m) => process.stderr.write(`${m}\n`), ...(sections ? { sections } : {}) });
  process.stdout.write(r.text);
}
