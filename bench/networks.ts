/**
 * Workload 3: many isolated networks with source NAT on one host. For N = 1, 10, 100, 1,000 (cumulative:
 * the networks of the previous level stay):
 *   implement   implement-network (own VXLAN segment → segment device + bridge + guest veth pair) and
 *               assign-ip with source NAT (public veth pair, address, default route, nft table), in-library;
 *   restore     a simulated reboot — every router namespace AND the host namespace deleted (links, rules
 *               and processes gone), the state directory kept — then RouterEngine.restoreAll() from a
 *               fresh engine (what a boot-time `netns-router restore` does);
 *   footprint   links (host + routers), processes inside router namespaces, kernel memory (SUnreclaim Δ),
 *               state on disk, per network.
 * Baseline: the spawn script running the same two commands per network (measured up to a limit,
 * then extrapolated), and re-running them after the same simulated reboot (a shell router has no restore:
 * CloudStack re-sends the commands). DHCP/DNS and metadata services per network are measured by their
 * owners' benchmarks (bench/dhcp.ts, bench/metadata.ts) when present.
 */
import { mkdirSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RouterEngine } from '../lib/router/engine.js';
import { NetnsHandle } from '../lib/netns/handle.js';
import { netnsExists } from '../lib/netns/namespaces.js';
import { netnsPath } from '../lib/sys/setns.js';
import { summarize, type Summary } from './lib/stats.js';
import { now, collectGarbage, rss, kernelNetMemory, sleep } from './lib/timing.js';
import { fmtMs, fmtInt, fmtBytes, fmtRatio } from './lib/format.js';
import { renderLinePlot, msTick } from './lib/svg.js';
import { emptySection, type BenchOptions, type SectionResult } from './lib/report.js';
import { makeHost, removeHost, deleteNamespaces, type BenchHost } from './lib/topo.js';
import { Spawner } from './lib/spawner.js';
import { spawnBaselinePath } from './lib/paths.js';
import { runCommand } from '../lib/router/command-table.js';

const cidrOf = (s: string) => { const [address, p] = s.split('/'); return { family: 4 as const, address, prefix: Number(p) }; };

/** Network k: id, VNI, guest /24 and public IP (198.18.0.0/15, gateway 198.18.0.1 on the upstream). */
function netK(k: number, base: number) {
  const id = String(base + k);
  const g = `10.${64 + (k >> 8)}.${k & 255}`;
  const p = 2 + k;
  return {
    id, ns: `cs-net-${id}`, vni: 20_000 + k,
    gateway: `${g}.1`, cidr: `${g}.0/24`,
    publicIp: `198.18.${p >> 8}.${p & 255}`,
  };
}
const PUB_GW = '198.18.0.1';
/** Highest descriptor count at which the default (libnftables) engine is still safe here. */
const FD_BUDGET = 900;
const openFds = (): number => readdirSync('/proc/self/fd').length;
const PUB_CIDR = '198.18.0.0/15';

function addUpstreamGateway(h: BenchHost): void {
  const u = NetnsHandle.open(h.upNs);
  try {
    u.netlink.addrAdd({ dev: 'up0', address: `${PUB_GW}/15` });
  } finally {
    u.close();
  }
}

interface Footprint {
  hostLinks: number;
  routerLinks: number;
  processes: number;
  stateBytes: number;
}

/** Processes whose network namespace is one of `names` (compared by nsfs inode). */
function processesIn(names: string[]): number {
  const inodes = new Set<string>();
  for (const n of names) {
    try {
      inodes.add(`net:[${statSync(netnsPath(n)).ino}]`);
    } catch { /* gone */ }
  }
  let count = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (inodes.has(readlinkSync(`/proc/${pid}/ns/net`))) count++;
    } catch { /* exited */ }
  }
  return count;
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += dirBytes(p);
    else if (e.isFile()) total += statSync(p).size;
  }
  return total;
}

function footprint(host: BenchHost, routers: string[], stateDir: string): Footprint {
  const h = NetnsHandle.open(host.hostNs);
  let hostLinks = 0;
  try {
    hostLinks = h.netlink.linkList().filter((l) => l.name !== 'lo' && l.name !== 'eth1').length;
  } finally {
    h.close();
  }
  let routerLinks = 0;
  for (const ns of routers) {
    const r = NetnsHandle.open(ns);
    try {
      routerLinks += r.netlink.linkList().filter((l) => l.name !== 'lo').length;
    } finally {
      r.close();
    }
  }
  return { hostLinks, routerLinks, processes: processesIn(routers), stateBytes: dirBytes(stateDir) };
}

interface Level {
  n: number;
  /** ms per network of the networks added at this level (implement-network + assign-ip) */
  perNetworkMs: Summary;
  /** wall time to bring this level's new networks up */
  addedWallMs: number;
  /** implementing all N from nothing, estimated as the sum of every network's time so far */
  cumulativeMs: number;
  restoreMs: number;
  restoredOk: boolean;
  footprint: Footprint;
  kernelDeltaPerNetwork: number;
  rssBytes: number;
  /** Ran with the nft CLI executor (see the partial note). */
  nftCli: boolean;
  /** Descriptors open in the benchmark process after the level's restore. */
  fds: number;
  baseline?: { perNetworkMs: Summary; totalMs: number; extrapolated: boolean; restoreMs?: number; footprint?: Footprint };
}

async function baselineLevel(spawner: Spawner, host: BenchHost, stateDir: string, work: string, from: number, to: number): Promise<number[]> {
  const times: number[] = [];
  for (let k = from; k < to; k++) {
    const n = netK(k, 60_000);
    const net = { network_id: n.id, vlan: `vxlan://${n.vni}`, gateway: n.gateway, cidr: n.cidr, guest_type: 'isolated' };
    let ms = 0;
    for (const [cmd, extra] of [['implement-network', {}], ['assign-ip', { public_ip: n.publicIp, public_vlan: 'untagged', public_gateway: PUB_GW, public_cidr: PUB_CIDR, source_nat: 'true' }]] as const) {
      const f = join(work, `b-${k}-${cmd}.json`);
      writeFileSync(f, JSON.stringify({ 'physical-network-extension-details': { 'guest.network.device': 'eth1', 'public.network.device': 'eth1' }, payload: { ...net, ...extra } }));
      ms += (await spawner.must([spawnBaselinePath(), cmd, f, '60'], { netns: host.hostNs, env: { SPAWN_ROUTER_STATE_DIR: stateDir } })).ms;
    }
    times.push(ms);
  }
  return times;
}

export async function runNetworks(opts: BenchOptions): Promise<SectionResult> {
  const sec = emptySection('networks', 'Network scaling: isolated networks with source NAT on one host');
  const t0 = now();
  const sizes = opts.sizes ?? (opts.quick ? [1, 10] : [1, 10, 100, 1000]);
  const baselineLimit = 10;
  const work = join(opts.outDir, 'work-networks');
  const stateDir = join(work, 'state');
  const bstate = join(work, 'bstate');
  mkdirSync(stateDir, { recursive: true });
  mkdirSync(bstate, { recursive: true });
  let host = makeHost('net');
  addUpstreamGateway(host);
  let bhost: BenchHost | undefined;
  const spawner = Spawner.start();
  const levels: Level[] = [];
  const routers: string[] = [];
  const ourNs = (x: string) => /^cs-net-5\d{4}$/.test(x);
  const baseNs = (x: string) => /^cs-net-6\d{4}$/.test(x);
  try {
    let engine = new RouterEngine({ stateDir, hostNetns: host.hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    let cumulative = 0;
    const baseTimes: number[] = [];
    let done = 0;
    await sleep(opts.quick ? 500 : 2000); // let the kernel finish freeing the previous workload's namespaces
    const fds0 = openFds();
    let lastFds = fds0;
    let lastDone = 0;
    let cliExecutor = false;
    for (const n of sizes) {
      // The engine keeps a libnftables context and a packet socket open per live router; libnftables
      // aborts the process (select(), FD_SETSIZE) once a descriptor number passes 1023. Past that point
      // the level runs with the engine's nft CLI executor (spawned nft per reconcile) and says so.
      // growth per router over the previous level (not since the start: the engine's per-namespace handles are
      // kept for the most recently used routers only, so the count levels off once those caches are full)
      const perRouter = done > 0 ? (openFds() - lastFds) / Math.max(1, done - lastDone) : 2;
      if (!cliExecutor && openFds() + perRouter * (n - done) > FD_BUDGET) {
        cliExecutor = true;
        sec.partial.push(`N=${n}: run with the engine's nft CLI executor (nftCli): the default in-process libnftables path keeps ~${perRouter.toFixed(1)} descriptors per live router open and libnftables aborts the process ("bit out of range 0 - FD_SETSIZE on fd_set") once a descriptor number exceeds 1023, i.e. at roughly ${Math.floor((1024 - fds0) / Math.max(1, perRouter))} routers in one process`);
        engine = new RouterEngine({ stateDir, hostNetns: host.hostNs, devices: { guest: 'eth1', public: 'eth1' }, nftCli: true });
      }
      lastFds = openFds();
      lastDone = done;
      opts.log(`networks: implementing networks ${done + 1}…${n}${cliExecutor ? ' (nft CLI executor)' : ''}`);
      collectGarbage();
      const k0 = kernelNetMemory();
      const per: number[] = [];
      const tl = now();
      for (let k = done; k < n; k++) {
        const x = netK(k, 50_000);
        const t = now();
        await runCommand(engine, { command: 'implement-network', networkId: x.id, namespace: x.ns, segment: { kind: 'vxlan', vni: x.vni }, gateway: x.gateway, cidr: cidrOf(x.cidr), guestType: 'isolated' });
        await runCommand(engine, { command: 'assign-ip', networkId: x.id, namespace: x.ns, publicIp: { ip: x.publicIp, segment: { kind: 'untagged' }, gateway: PUB_GW, cidr: cidrOf(PUB_CIDR), sourceNat: true } });
        per.push(now() - t);
        routers.push(x.ns);
      }
      const addedWall = now() - tl;
      cumulative += per.reduce((a, b) => a + b, 0);
      const kDelta = kernelNetMemory() - k0;
      const added = n - done;
      const fp = footprint(host, routers, stateDir);
      collectGarbage();
      const rssNow = rss();

      // simulated reboot: routers and the host namespace vanish, the state directory stays
      opts.log(`networks: simulated reboot with ${n} networks, then restoreAll()`);
      deleteNamespaces(ourNs);
      removeHost(host);
      host = makeHost('net');
      addUpstreamGateway(host);
      engine = new RouterEngine({ stateDir, hostNetns: host.hostNs, devices: { guest: 'eth1', public: 'eth1' }, ...(cliExecutor ? { nftCli: true } : {}) });
      const tr = now();
      const restored = await engine.restoreAll();
      const restoreMs = now() - tr;
      const after = footprint(host, routers, stateDir);
      const restoredOk = restored.length === n && routers.every((r) => netnsExists(r)) && after.hostLinks === fp.hostLinks && after.routerLinks === fp.routerLinks;
      if (!restoredOk) sec.partial.push(`N=${n}: restore incomplete (${restored.length} routers; links host ${after.hostLinks}/${fp.hostLinks}, routers ${after.routerLinks}/${fp.routerLinks})`);

      const level: Level = {
        n, perNetworkMs: summarize(per), addedWallMs: addedWall, cumulativeMs: cumulative, restoreMs, restoredOk,
        // fewer than 10 networks: the kernel's background freeing of earlier workloads outweighs them
        footprint: fp, kernelDeltaPerNetwork: added >= 10 ? kDelta / added : Number.NaN, rssBytes: rssNow, nftCli: cliExecutor, fds: openFds(),
      };

      // baseline: the same two commands per network through the spawn script
      if (n <= baselineLimit) {
        opts.log(`networks: baseline script, networks ${done + 1}…${n}`);
        bhost ??= makeHost('netb');
        if (done === 0) addUpstreamGateway(bhost);
        baseTimes.push(...await baselineLevel(spawner, bhost, bstate, work, done, n));
        const bfp = footprint(bhost, Array.from({ length: n }, (_, k) => netK(k, 60_000).ns), bstate);
        // the shell router's "restore": CloudStack re-sends the commands after the reboot
        deleteNamespaces(baseNs);
        removeHost(bhost);
        bhost = makeHost('netb');
        addUpstreamGateway(bhost);
        const rb = await baselineLevel(spawner, bhost, bstate, work, 0, n);
        level.baseline = { perNetworkMs: summarize(baseTimes), totalMs: baseTimes.reduce((a, b) => a + b, 0), extrapolated: false, restoreMs: rb.reduce((a, b) => a + b, 0), footprint: bfp };
      } else if (baseTimes.length) {
        const s = summarize(baseTimes);
        level.baseline = { perNetworkMs: s, totalMs: s.median * n, extrapolated: true };
      }
      levels.push(level);
      done = n;
    }
  } catch (e) {
    sec.error = (e as Error).stack ?? String(e);
  } finally {
    await spawner.close();
    deleteNamespaces((x) => ourNs(x) || baseNs(x));
    removeHost(host);
    if (bhost) removeHost(bhost);
    rmSync(work, { recursive: true, force: true });
    // the kernel frees deleted namespaces in the background; let it finish before the next workload
    await sleep(opts.quick ? 1000 : 5000);
  }

  sec.tables.push({
    title: 'Implement and restore N isolated networks (implement-network + assign-ip with source NAT each)',
    headers: ['N', 'per network (med/p95)', 'all N', 'restore all', 'baseline per network', 'baseline all N', 'ratio', 'baseline restore', 'ratio'],
    rows: levels.map((l) => {
      const b = l.baseline;
      return [
        `${fmtInt(l.n)}${l.nftCli ? ' †' : ''}`, `${fmtMs(l.perNetworkMs.median)} / ${fmtMs(l.perNetworkMs.p95)}`, fmtMs(l.cumulativeMs), fmtMs(l.restoreMs) + (l.restoredOk ? '' : ' (INCOMPLETE)'),
        b ? fmtMs(b.perNetworkMs.median) : '—', b ? `${fmtMs(b.totalMs)}${b.extrapolated ? ' (extrap.)' : ''}` : '—', b ? fmtRatio(b.totalMs / l.cumulativeMs) : '—',
        b?.restoreMs !== undefined ? fmtMs(b.restoreMs) : '—', b?.restoreMs !== undefined ? fmtRatio(b.restoreMs / l.restoreMs) : '—',
      ];
    }),
    notes: [
      'Levels are cumulative (networks of the previous level stay); per network = networks added at this level, each implement-network + assign-ip in-library; all N = sum over every network so far.',
      'restore all = simulated reboot (all router namespaces and the host namespace deleted, state kept), then RouterEngine.restoreAll() from a fresh engine, sequential.',
      'baseline = bench/baseline/spawn-router.sh running the same two commands per network; its "restore" re-runs them (CloudStack re-sends commands; shell routers keep no desired state to replay).',
      '(extrap.) = median per network at the largest measured N times N.',
      ...(levels.some((l) => l.nftCli) ? ['† with the nft CLI executor (one spawned nft per reconcile) for the networks of that level and its restore: the default libnftables executor cannot hold that many routers in one process (see partial).'] : []),
    ],
  });
  sec.tables.push({
    title: 'Footprint per network',
    headers: ['N', 'host links', 'router links', 'links/network', 'processes', 'kernel mem/network', 'state/network', 'bench RSS', 'bench fds'],
    rows: levels.map((l) => [
      fmtInt(l.n), fmtInt(l.footprint.hostLinks), fmtInt(l.footprint.routerLinks), ((l.footprint.hostLinks + l.footprint.routerLinks) / l.n).toFixed(1),
      fmtInt(l.footprint.processes), fmtBytes(l.kernelDeltaPerNetwork), fmtBytes(l.footprint.stateBytes / l.n), fmtBytes(l.rssBytes), fmtInt(l.fds),
    ]),
    notes: [
      'links: host side (VXLAN device, bridge, host veth ends; the shared public bridge once) and router side (veth ends) — 6 per network plus the shared bridge; processes: inside router namespaces (0 without DHCP/metadata).',
      'kernel mem/network: /proc/meminfo SUnreclaim growth while this level\'s networks were added, divided by their count (approximate; not shown below 10 networks).',
    ],
  });
  sec.plots.push({
    file: 'networks-scaling.svg',
    title: 'Implement and restore N networks',
    svg: renderLinePlot({
      title: 'N isolated networks with source NAT: time to implement / restore all', xLabel: 'N (networks)', yLabel: 'time', logX: true, logY: true, yTick: msTick,
      series: [
        { name: `netns-router implement (in-library${levels.some((l) => l.nftCli) ? '; † nft CLI executor' : ''})`, points: levels.map((l) => ({ x: l.n, y: l.cumulativeMs })) },
        { name: 'netns-router restoreAll after reboot', points: levels.map((l) => ({ x: l.n, y: l.restoreMs })) },
        { name: 'baseline script implement (measured)', points: levels.filter((l) => l.baseline && !l.baseline.extrapolated).map((l) => ({ x: l.n, y: l.baseline!.totalMs })) },
        { name: 'baseline script implement (extrapolated)', dashed: true, points: levels.filter((l) => l.baseline).map((l) => ({ x: l.n, y: l.baseline!.totalMs })) },
      ].filter((s) => s.points.length > 0),
      footnote: opts.footnote,
    }),
  });
  for (const l of levels) if (l.baseline?.extrapolated) sec.partial.push(`baseline at N=${l.n} extrapolated from N≤${baselineLimit}`);
  sec.data = { sizes, levels };
  sec.elapsedMs = now() - t0;
  return sec;
}
