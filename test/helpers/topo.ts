/** Test topology helpers: unique names, namespaces made and removed, commands run inside namespaces. */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { addNetns, deleteNetns, netnsExists } from '../../lib/netns/namespaces.js';
import { NetnsHandle } from '../../lib/netns/handle.js';
import { neighbourOverflows } from '../../lib/sys/neigh-stats.js';

/** Short random suffix for unique object names (interface names are ≤ 15 chars). */
export function uid(n = 4): string {
  return randomBytes(n).toString('hex').slice(0, n);
}

/** Run a command inside a namespace (via `ip netns exec`), returning stdout; throws on failure. */
export function nsExec(ns: string, cmd: string[], opts: { timeout?: number; input?: string } = {}): string {
  return execFileSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', timeout: opts.timeout ?? 10_000, input: opts.input, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Run and return the status instead of throwing. */
export function nsTry(ns: string, cmd: string[], timeout = 10_000): { status: number; stdout: string; stderr: string } {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', timeout });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/**
 * nsTry for a guest's request that must get through (`ok`: exit 0). It is run again (`tries` times in all) only
 * when it failed while the kernel's neighbour table overflowed: other suites on the machine can hold that one
 * table at gc_thresh3 for seconds, and then no namespace gets a new entry — the guest's ARP for its gateway or
 * the router's for the guest, so a first contact gets no answer. A real guest has a table of its own, and a
 * real host is sized for its guests (docs/metadata.md). Any other failure is returned at once.
 */
export function guestTry(ns: string, cmd: string[], timeout = 10_000, ok = (r: { status: number }) => r.status === 0, tries = 3) {
  for (let i = 1; ; i++) {
    const before = neighbourOverflows();
    const r = nsTry(ns, cmd, timeout);
    if (ok(r)) return r;
    const after = neighbourOverflows();
    if (before === undefined || after === undefined || after === before) return r;
    process.stderr.write(`note: ${cmd[0]} in ${ns} failed while the kernel's neighbour table overflowed (${after - before} times)${i < tries ? ': once more' : ''}\n`);
    if (i >= tries) return r;
  }
}

export function ping(ns: string, ip: string, count = 1): boolean {
  return nsTry(ns, ['ping', '-c', String(count), '-W', '1', '-i', '0.2', ip]).status === 0;
}

/** Namespaces made for one test; `cleanup()` removes them all (use in finally). */
export class Scratch {
  readonly names: string[] = [];
  private handles: NetnsHandle[] = [];

  ns(prefix: string): string {
    const name = `${prefix}-${uid(6)}`;
    addNetns(name);
    this.names.push(name);
    return name;
  }

  /** Track a namespace created by the code under test so that it is removed too. */
  track(name: string): string {
    this.names.push(name);
    return name;
  }

  handle(name: string): NetnsHandle {
    const h = NetnsHandle.open(name);
    this.handles.push(h);
    return h;
  }

  cleanup(): void {
    for (const h of this.handles) h.close();
    for (const n of this.names.reverse()) if (netnsExists(n)) deleteNetns(n, { ifExists: true });
  }
}

/**
 * One test on a fresh Scratch: `make` builds its topology, `body` runs on it and pushes the processes it starts
 * into `procs`. Whatever happens, the processes are killed (and `opts.stop(stateDir)` kills what the router
 * started, e.g. killRouterDaemons), the namespaces removed and the topology's `workDir` (default: its state
 * directory) deleted.
 */
export async function inScratch<T extends { stateDir: string; workDir?: string }>(
  make: (s: Scratch) => T | Promise<T>, body: (t: T, procs: ChildProcess[], s: Scratch) => Promise<void>,
  opts: { stop?: (stateDir: string) => unknown } = {},
): Promise<void> {
  const s = new Scratch();
  const procs: ChildProcess[] = [];
  let stateDir = '';
  let workDir = '';
  try {
    const t = await make(s);
    stateDir = t.stateDir;
    workDir = t.workDir ?? t.stateDir;
    await body(t, procs, s);
  } finally {
    for (const p of procs) p.kill();
    if (stateDir) await opts.stop?.(stateDir);
    s.cleanup();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  }
}

/** A "VM": a namespace with one veth whose host end is enslaved to `bridge` in the host namespace. */
export function addVm(scratch: Scratch, host: NetnsHandle, bridge: string, ip: string, gateway?: string, mac?: string): { ns: string; hostEnd: string } {
  const ns = scratch.ns('vm');
  const hostEnd = `tv${uid(6)}`;
  host.netlink.linkAdd({ kind: 'veth', name: hostEnd, master: bridge, up: true, peer: { name: 'eth0', namespace: { netns: ns }, up: true, ...(mac ? { mac } : {}) } });
  const h = scratch.handle(ns);
  h.netlink.linkSetUp('lo');
  h.netlink.addrAdd({ dev: 'eth0', address: ip });
  if (gateway) h.netlink.routeReplace({ dst: 'default', via: gateway });
  return { ns, hostEnd };
}


/** A TCP server in a namespace answering each connection with the client's address (SOCAT_PEERADDR). */
export function whoamiServer(ns: string, port: number): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, 'socat', `TCP-LISTEN:${port},fork,reuseaddr`, 'SYSTEM:echo $SOCAT_PEERADDR'], { stdio: 'ignore' });
}

/** Connect from a namespace and return what the server said (trimmed), or '' on failure. */
export function tcpAsk(ns: string, ip: string, port: number): string {
  const r = nsTry(ns, ['socat', '-T2', '-', `TCP:${ip}:${port},connect-timeout=2`], 5000);
  return r.status === 0 ? r.stdout.trim() : '';
}

export async function waitFor(fn: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return fn();
}

/** A simulated KVM host: namespace `host-*` whose `eth1` is a veth to an upstream namespace `up-*` holding
 * the public gateway 203.0.113.1/24 (and loopback up). */
export function simulatedHost(s: Scratch): { hostNs: string; upNs: string; h: NetnsHandle } {
  const hostNs = s.ns('host');
  const upNs = s.ns('up');
  const h = s.handle(hostNs);
  h.netlink.linkAdd({ kind: 'veth', name: 'eth1', up: true, peer: { name: 'up0', namespace: { netns: upNs }, up: true } });
  const up = s.handle(upNs);
  up.netlink.linkSetUp('lo');
  up.netlink.addrAdd({ dev: 'up0', address: '203.0.113.1/24' });
  return { hostNs, upNs, h };
}

/** "10.0.0.0/24" → the contract's Cidr. */
export const cidr = (text: string): { family: 4; address: string; prefix: number } => {
  const [address, p] = text.split('/');
  return { family: 4, address, prefix: Number(p) };
};

/** IPv4 addresses on a link of a namespace, sorted. */
export function addressesOf(ns: string, dev: string): string[] {
  const h = NetnsHandle.open(ns);
  try {
    return h.netlink.addrList({ dev }).filter((a) => a.family === 4).map((a) => a.ip).sort();
  } finally {
    h.close();
  }
}
