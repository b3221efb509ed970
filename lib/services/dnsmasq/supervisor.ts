/**
 * Supervision of one dnsmasq inside a router namespace: files written atomically in its runtime directory;
 * dnsmasq found in the child PATH and posix_spawn'ed with the minimal child environment (lib/sys/children.ts)
 * from this thread while it is inside the namespace (dnsmasq daemonises itself; its launcher exits non-zero
 * with dnsmasq's own message when start-up fails; the daemon's namespace is checked afterwards); found again
 * through its pid file (checked against /proc so that a reused pid is never signalled); reloaded with SIGHUP
 * when only its files changed, restarted only when its command line changed (sha256 kept in the runtime
 * directory: its presence also means "this dnsmasq should be running", which the watchdog checks), stopped
 * with SIGTERM (SIGKILL after a grace period).
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { netnsPath, runInNetns } from '../../sys/setns.js';
import { posixSpawn, waitChild } from '../../sys/posix-spawn.js';
import { childEnvList, findExecutable } from '../../sys/children.js';
import { procAlive } from '../../sys/proc.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { DNSMASQ_BIN, dnsmasqPaths, type DnsmasqPaths, type RenderedDnsmasq } from './config.js';
import { DnsmasqProcessError } from './errors.js';
import { dropLeases, parseLeases, type Lease } from './leases.js';
import { sendDhcpReleases } from './release.js';

/** What applying a configuration did to a router's dnsmasq. */
export type ApplyAction = 'started' | 'restarted' | 'reloaded' | 'unchanged';

/** What applying a configuration did to a router's dnsmasq, and the pid it runs as. */
export interface ApplyResult {
  action: ApplyAction;
  pid: number;
}

/** Leases to release, grouped by the interface and server address they were handed out on. */
export interface ReleaseGroup {
  ifname: string;
  serverIp: string;
  leases: Lease[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha256 = (argv: string[]) => createHash('sha256').update(argv.join('\0')).digest('hex');

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * The account dnsmasq should drop to: `dnsmasq` when that user exists and can reach the runtime directory
 * (every ancestor searchable by others), else root. dnsmasq re-reads its files after dropping privileges.
 */
export function dnsmasqUserFor(dir: string): string {
  const passwd = readText('/etc/passwd') ?? '';
  if (!passwd.split('\n').some((l) => l.startsWith('dnsmasq:'))) return 'root';
  for (let d = dir; ; d = dirname(d)) {
    try {
      if (existsSync(d) && (statSync(d).mode & 0o001) === 0) return 'root';
    } catch {
      return 'root';
    }
    if (d === '/') break;
  }
  return 'dnsmasq';
}

/**
 * What a router's DHCP/DNS module drives of its dnsmasq (DnsmasqInstance; an in-memory fake in
 * lib/router/fake-kernel.ts): supervision by reconciliation, leases, what a change would do.
 */
export type DnsmasqControl = Pick<DnsmasqInstance, 'paths' | 'pid' | 'present' | 'leases' | 'apply' | 'preview' | 'destroy' | 'releaseLeases'>;

/** One router's dnsmasq: its runtime directory, its process (supervised through the pid file), its leases. */
export class DnsmasqInstance {
  readonly paths: DnsmasqPaths;

  constructor(readonly netns: string, dir: string, private readonly opts: { binary?: string } = {}) {
    this.paths = dnsmasqPaths(dir);
  }

  /** Pid of this instance's dnsmasq when it runs (pid file checked against the process's command line). */
  pid(): number | undefined {
    const text = readText(this.paths.pid);
    const pid = Number(text?.trim());
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    const cmdline = readText(`/proc/${pid}/cmdline`);
    if (!cmdline) return undefined;
    const args = cmdline.split('\0');
    if (basename(args[0] ?? '') !== 'dnsmasq' || !args.includes(`--pid-file=${this.paths.pid}`)) return undefined;
    return procAlive(pid) ? pid : undefined;
  }

  leases(): Lease[] {
    return parseLeases(readText(this.paths.leases) ?? '');
  }

  /** Anything of this instance there: its runtime directory or its process. */
  present(): boolean {
    return existsSync(this.paths.dir) || this.pid() !== undefined;
  }

  /**
   * Write the files, then start, reload (SIGHUP) or restart dnsmasq as the change requires. When dnsmasq is
   * (re)started anyway, the leases `forget` picks are removed from the lease file while it is down.
   */
  async apply(r: RenderedDnsmasq, opts: { forget?: (leases: Lease[]) => Lease[] } = {}): Promise<ApplyResult> {
    this.prepareDir();
    let changed = false;
    for (const [path, content] of Object.entries(r.files)) changed = this.writeIfChanged(path, content) || changed;
    const hash = sha256(r.argv);
    const pid = this.pid();
    if (pid !== undefined && readText(this.paths.cmdlineHash)?.trim() === hash) {
      if (!changed) return { action: 'unchanged', pid };
      try {
        process.kill(pid, 'SIGHUP');
        return { action: 'reloaded', pid };
      } catch {
        // died just now: start it below
      }
    }
    const running = this.pid();
    const action: ApplyAction = running !== undefined ? 'restarted' : 'started';
    if (running !== undefined) await this.stop();
    const gone = opts.forget?.(this.leases()) ?? [];
    const text = gone.length ? readText(this.paths.leases) : undefined;
    if (text !== undefined) this.writeAtomic(this.paths.leases, dropLeases(text, new Set(gone.map((l) => l.mac))));
    return { action, pid: await this.start(r.argv, hash) };
  }

  /**
   * What `apply(r)` would do, without doing it: the files it would write (their current and new contents) and
   * whether dnsmasq would be started, reloaded, restarted or left alone (a router's plan, lib/router/plan.ts).
   */
  preview(r: RenderedDnsmasq): { action: ApplyAction; files: Array<{ path: string; before: string | undefined; after: string }> } {
    const files = Object.entries(r.files).flatMap(([path, after]) => {
      const before = readText(path);
      return before === after ? [] : [{ path, before, after }];
    });
    const pid = this.pid();
    if (pid !== undefined && readText(this.paths.cmdlineHash)?.trim() === sha256(r.argv)) return { action: files.length ? 'reloaded' : 'unchanged', files };
    return { action: pid !== undefined ? 'restarted' : 'started', files };
  }

  /** Stop dnsmasq (if it runs). Returns whether one was running. */
  async stop(graceMs = 2000): Promise<boolean> {
    const pid = this.pid();
    if (pid === undefined) {
      rmSync(this.paths.pid, { force: true });
      return false;
    }
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // exited between the check and the signal
    }
    if (!(await this.waitGone(pid, graceMs))) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone meanwhile */ }
      if (!(await this.waitGone(pid, 1000))) throw new DnsmasqProcessError('E_DNSMASQ_STOP', `dnsmasq ${pid} in ${this.netns} does not exit`);
    }
    rmSync(this.paths.pid, { force: true });
    return true;
  }

  /** Stop dnsmasq and remove the runtime directory (leases included). */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.paths.dir, { recursive: true, force: true });
  }

  /**
   * Make dnsmasq forget leases: a DHCPRELEASE for each (see leases.ts); whatever is still in the lease file
   * after `waitMs` is removed the hard way (stop, edit the file, start again with `argv`). Returns the MACs
   * that needed the hard way.
   */
  async releaseLeases(groups: ReleaseGroup[], argv: string[], waitMs = 1000): Promise<string[]> {
    const wanted = new Set(groups.flatMap((g) => g.leases.map((l) => l.mac)));
    if (!wanted.size) return [];
    for (const g of groups) {
      if (!g.ifname || !g.serverIp) continue; // no interface to send through: the fallback drops them
      try {
        sendDhcpReleases(this.netns, g.ifname, g.serverIp, g.leases);
      } catch {
        // interface gone or not up: the fallback below handles these leases
      }
    }
    const left = (): string[] => this.leases().filter((l) => wanted.has(l.mac)).map((l) => l.mac);
    const end = Date.now() + waitMs;
    while (left().length && Date.now() < end) await sleep(20);
    const stuck = left();
    if (!stuck.length) return [];
    await this.stop();
    const text = readText(this.paths.leases);
    if (text !== undefined) this.writeAtomic(this.paths.leases, dropLeases(text, new Set(stuck)));
    await this.start(argv, sha256(argv));
    return stuck;
  }

  private prepareDir(): void {
    try {
      mkdirSync(this.paths.dir, { recursive: true, mode: 0o755 });
      chmodSync(this.paths.dir, 0o755);
    } catch (e) {
      throw new DnsmasqProcessError('E_DNSMASQ_RUNDIR', `cannot prepare ${this.paths.dir}`, (e as Error).message, { cause: e });
    }
  }

  private writeAtomic(path: string, content: string): void {
    // rewritten from the router's state by every reconcile: atomic, not durable
    writeFileAtomic(path, content, { what: path, mode: 0o644, durable: false });
  }

  private writeIfChanged(path: string, content: string): boolean {
    if (readText(path) === content) return false;
    this.writeAtomic(path, content);
    return true;
  }

  /** The process lives in this instance's network namespace (same nsfs inode). */
  private inNamespace(pid: number): boolean {
    try {
      const m = /\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/net`));
      return !!m && Number(m[1]) === statSync(netnsPath(this.netns)).ino;
    } catch {
      return false;
    }
  }

  private async waitGone(pid: number, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (procAlive(pid)) {
      if (Date.now() > end) return false;
      await sleep(10);
    }
    return true;
  }

  private async start(argv: string[], hash: string): Promise<number> {
    rmSync(this.paths.pid, { force: true });
    rmSync(this.paths.cmdlineHash, { force: true });
    let bin: string;
    try {
      bin = findExecutable(this.opts.binary ?? DNSMASQ_BIN);
    } catch (e) {
      throw new DnsmasqProcessError('E_DNSMASQ_START', `cannot start dnsmasq in ${this.netns}`, (e as Error).message, { cause: e });
    }
    const errFile = join(this.paths.dir, 'dnsmasq.start-errors');
    let code: number | null;
    let stderr = '';
    try {
      // posix_spawn (no page-table copy of this process) from this thread while it is inside the namespace:
      // the child is born there, with no nsenter exec in between
      const launcher = runInNetns(this.netns, () => posixSpawn(bin, [bin, ...argv], { stderrPath: errFile, env: childEnvList() }));
      const st = await waitChild(launcher);
      code = st.code;
      stderr = readText(errFile) ?? '';
      if (st.signal !== null) stderr = `killed by signal ${st.signal}. ${stderr}`;
    } catch (e) {
      throw new DnsmasqProcessError('E_DNSMASQ_START', `cannot run ${bin} in ${this.netns}`, (e as Error).message, { cause: e });
    } finally {
      rmSync(errFile, { force: true });
    }
    if (code !== 0) throw new DnsmasqProcessError('E_DNSMASQ_START', `dnsmasq did not start in ${this.netns} (exit ${code})`, stderr.trim());
    const end = Date.now() + 2000;
    for (;;) {
      const pid = this.pid();
      if (pid !== undefined) {
        if (!this.inNamespace(pid)) {
          process.kill(pid, 'SIGKILL');
          throw new DnsmasqProcessError('E_DNSMASQ_START', `dnsmasq ${pid} is not in network namespace ${this.netns}; killed`);
        }
        this.writeAtomic(this.paths.cmdlineHash, `${hash}\n`);
        return pid;
      }
      if (Date.now() > end) throw new DnsmasqProcessError('E_DNSMASQ_START', `dnsmasq started in ${this.netns} but its pid file ${this.paths.pid} names no running dnsmasq`);
      await sleep(10);
    }
  }
}
