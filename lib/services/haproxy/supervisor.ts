/**
 * One haproxy per router namespace, in master-worker mode (`-W -p PIDFILE -S MASTER_SOCKET -f CONFIG`),
 * posix_spawn'ed from a thread inside the namespace (as dnsmasq: lib/sys/posix-spawn.ts) so that it binds the
 * router's public addresses there. The master is detached (own session, stdin closed) but not `-D`: a
 * daemonized master sends its stderr to /dev/null, and then the reason of a failed reload is lost; this way it
 * lands in haproxy.log. It stays this process's child: a long-lived process reaps it when it dies (status()).
 *
 * - apply(text): check with `haproxy -c` first (a bad text never reaches the running haproxy), then start, or
 *   reload when the text differs from the running one. A reload is SIGUSR2 to the master: it re-reads the same
 *   file, takes over the listening sockets and forks a new worker while the old worker finishes its established
 *   connections, so nothing is refused or cut. Done when a new worker appears among the master's children.
 * - status(): the pid file plus /proc (alive, our command line, the right namespace). A dead or foreign
 *   process counts as not running, so the next apply() starts a fresh one (supervision by reconciliation).
 * - stop(): SIGTERM to the master (it stops its workers), SIGKILL after a grace period.
 *
 * Runtime files live in `runDir`: haproxy.cfg, haproxy.pid, master.sock, haproxy.log (the daemon's stderr).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { join, basename } from 'node:path';
import { netnsPath, runInNetns } from '../../sys/setns.js';
import { childEnvList } from '../../sys/children.js';
import { posixSpawn, reapIfExited } from '../../sys/posix-spawn.js';
import { checkConfig, haproxyExecutable } from './check.js';
import { HaproxyError } from './errors.js';
import { netnsFileInode, pollUntil, procAlive, procChildren, procCmdline, procNetnsInode, readPidFile, sleepSync } from './proc.js';

export interface HaproxySupervisorOptions {
  /** Named network namespace to run in; absent: the caller's namespace (used by the benchmark baseline). */
  netns?: string;
  /** Directory for the runtime files (created on demand). */
  runDir: string;
  /** haproxy executable (default `haproxy` from PATH). */
  binary?: string;
  /** Budget for each start/reload/stop wait (ms, default 10 s). */
  timeoutMs?: number;
}

export type ApplyOutcome = 'started' | 'reloaded' | 'unchanged';

export interface HaproxyStatus {
  running: boolean;
  /** Master pid when running. */
  pid?: number;
  workers: number[];
  /** Why it is not running. */
  reason?: 'no-pid-file' | 'dead' | 'not-ours' | 'other-namespace';
}

/** sun_path is 108 bytes; longer paths cannot be bound, so the master socket is then left out. */
const MAX_SOCKET_PATH = 100;
/** The master's stderr (notices, alerts, server state changes) is trimmed past this size at start/reload. */
const MAX_LOG_BYTES = 1 << 20;

export class HaproxySupervisor {
  readonly opts: HaproxySupervisorOptions;
  readonly paths: { config: string; checkedBy: string; pid: string; log: string; masterSocket?: string };

  constructor(opts: HaproxySupervisorOptions) {
    this.opts = opts;
    const sock = join(opts.runDir, 'master.sock');
    this.paths = {
      config: join(opts.runDir, 'haproxy.cfg'),
      checkedBy: join(opts.runDir, 'haproxy.cfg.checked-by'),
      pid: join(opts.runDir, 'haproxy.pid'),
      log: join(opts.runDir, 'haproxy.log'),
      ...(sock.length <= MAX_SOCKET_PATH ? { masterSocket: sock } : {}),
    };
  }

  /** The haproxy to run, found in the child PATH (HaproxyError 'E_HAPROXY_SPAWN' when it is not installed). */
  private get binary(): string {
    return haproxyExecutable(this.opts.binary);
  }

  private get timeoutMs(): number {
    return this.opts.timeoutMs ?? 10_000;
  }

  /** Is the process of `pid` our haproxy master (our config file on its command line)? */
  private isOurs(pid: number): boolean {
    let argv = procCmdline(pid);
    // the master re-executes itself (reloads, and at times right after start): while the new image is
    // being set up /proc/PID/cmdline reads empty. Wait that out (a few ms) instead of disowning it.
    for (let i = 0; i < 100 && argv.length === 0 && procAlive(pid); i++) {
      sleepSync(2);
      argv = procCmdline(pid);
    }
    if (argv.length === 0 || !basename(argv[0]).startsWith('haproxy')) return false;
    const f = argv.indexOf('-f');
    return f >= 0 && argv[f + 1] === this.paths.config;
  }

  status(): HaproxyStatus {
    const pid = readPidFile(this.paths.pid);
    if (pid === undefined) return { running: false, workers: [], reason: 'no-pid-file' };
    if (!procAlive(pid)) {
      reapIfExited(pid); // a master this process started and that died: not left a zombie
      return { running: false, workers: [], reason: 'dead' };
    }
    if (!this.isOurs(pid)) return { running: false, workers: [], reason: 'not-ours' };
    if (this.opts.netns !== undefined) {
      const want = netnsFileInode(netnsPath(this.opts.netns));
      if (want === undefined || procNetnsInode(pid) !== want) return { running: false, pid, workers: [], reason: 'other-namespace' };
    }
    return { running: true, pid, workers: procChildren(pid).filter(procAlive) };
  }

  /** The configuration the running haproxy was last (re)loaded with, if any. */
  runningConfig(): string | undefined {
    if (!this.status().running) return undefined;
    try {
      return readFileSync(this.paths.config, 'utf8');
    } catch {
      return undefined;
    }
  }

  /** The configuration file with the identity of the haproxy that accepted it (apply's `checkedBy`), if recorded. */
  checkedConfig(): { text: string; checkedBy: string } | undefined {
    try {
      const checkedBy = readFileSync(this.paths.checkedBy, 'utf8').trim();
      return checkedBy ? { text: readFileSync(this.paths.config, 'utf8'), checkedBy } : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Check `text`, then start haproxy with it or reload the running one (no-op when unchanged).
   * `checked`: the caller already had this exact text accepted by `haproxy -c` (skips a second check), by the
   * haproxy named `checkedBy` (recorded beside the file: see checkedConfig).
   */
  async apply(text: string, opts: { checked?: boolean; checkedBy?: string } = {}): Promise<ApplyOutcome> {
    const st = this.status();
    const previous = existsSync(this.paths.config) ? readFileSync(this.paths.config, 'utf8') : undefined;
    // the running haproxy already has this text: nothing to check or run (not even haproxy -c)
    if (st.running && previous === text) {
      if (opts.checked && opts.checkedBy && !existsSync(this.paths.checkedBy)) writeFileSync(this.paths.checkedBy, `${opts.checkedBy}\n`, { mode: 0o600 });
      return 'unchanged';
    }
    const check = opts.checked ? { ok: true, problems: [], output: '' } : checkConfig(text, { binary: this.binary });
    if (!check.ok) {
      throw new HaproxyError('E_HAPROXY_CONFIG', `haproxy refused the configuration: ${check.problems.map((p) => p.message).join('; ')}`, { output: check.output, problems: check.problems });
    }
    // a master left in another (deleted/re-created) namespace serves nobody: replace it
    if (!st.running && st.reason === 'other-namespace' && st.pid !== undefined) await this.killTree(st.pid);
    mkdirSync(this.opts.runDir, { recursive: true, mode: 0o700 });
    // who checked the text is recorded only once it is in place; a stale record never vouches for a new text
    rmSync(this.paths.checkedBy, { force: true });
    this.writeConfig(text);
    if (opts.checkedBy) writeFileSync(this.paths.checkedBy, `${opts.checkedBy}\n`, { mode: 0o600 });
    if (st.running && st.pid !== undefined) {
      try {
        await this.reload(st.pid);
      } catch (err) {
        // the master kept its old workers (and configuration): keep the file telling the truth
        rmSync(this.paths.checkedBy, { force: true });
        if (previous !== undefined) this.writeConfig(previous);
        throw err;
      }
      return 'reloaded';
    }
    await this.start();
    return 'started';
  }

  private writeConfig(text: string): void {
    // rewritten from the router's state by every reconcile: atomic, not durable
    writeFileAtomic(this.paths.config, text, { what: this.paths.config, durable: false });
  }

  private logTail(from = 0, lines = 15): string {
    try {
      const text = readFileSync(this.paths.log).subarray(from).toString('utf8');
      return text.split('\n').filter((l) => l.trim()).slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  private logSize(): number {
    try {
      return statSync(this.paths.log).size;
    } catch {
      return 0;
    }
  }

  /** The log is opened O_APPEND by the master, so truncating it in place is safe. */
  private trimLog(): void {
    if (this.logSize() > MAX_LOG_BYTES) truncateSync(this.paths.log, 0);
  }

  private async start(): Promise<void> {
    rmSync(this.paths.pid, { force: true });
    if (this.paths.masterSocket) rmSync(this.paths.masterSocket, { force: true });
    this.trimLog();
    const from = this.logSize();
    const args = ['-W', '-p', this.paths.pid, ...(this.paths.masterSocket ? ['-S', `${this.paths.masterSocket},mode,600`] : []), '-f', this.paths.config];
    const bin = this.binary;
    let pid: number;
    try {
      // posix_spawn from this thread while it is inside the namespace: the master is born there (no `ip netns
      // exec` in between, no page-table copy of this process); stdout and stderr append to the log, a session
      // of its own, the minimal child environment (never the caller's: extension details, lib/sys/children.ts)
      const spawnIt = () => posixSpawn(bin, [bin, ...args], {
        stderrPath: this.paths.log, appendStderr: true, stdoutToStderr: true, newSession: true, cwd: this.opts.runDir, env: childEnvList(),
      });
      pid = this.opts.netns !== undefined ? runInNetns(this.opts.netns, spawnIt) : spawnIt();
    } catch (e) {
      throw new HaproxyError('E_HAPROXY_SPAWN', `starting haproxy${this.opts.netns !== undefined ? ` in ${this.opts.netns}` : ''}: ${(e as Error).message}`, { cause: e });
    }
    let exited: string | undefined;
    const ok = await pollUntil(() => {
      const st = reapIfExited(pid);
      if (st) exited = `exit ${st.code ?? `signal ${st.signal}`}`;
      return exited !== undefined || (readPidFile(this.paths.pid) === pid && procChildren(pid).some(procAlive));
    }, this.timeoutMs);
    const out = this.logTail(from);
    if (exited !== undefined) {
      throw new HaproxyError('E_HAPROXY_START', `haproxy did not start (${exited})${out ? `: ${alerts(out)}` : ''}`, { output: out });
    }
    if (!ok) {
      await this.killTree(pid);
      throw new HaproxyError('E_HAPROXY_START', `haproxy started but no worker came up within ${this.timeoutMs} ms${out ? `: ${alerts(out)}` : ''}`, { output: out });
    }
  }

  /**
   * SIGUSR2 to the master. It re-executes itself with the same file and prints "Loading success." (new
   * worker forked, old ones finish their connections) or "Loading failure!" (old workers resumed, still
   * serving the previous configuration) to its stderr, our log.
   */
  private async reload(pid: number): Promise<void> {
    this.trimLog();
    const before = new Set(procChildren(pid));
    const from = this.logSize();
    process.kill(pid, 'SIGUSR2');
    let verdict: 'success' | 'failure' | undefined;
    const ok = await pollUntil(() => {
      if (!procAlive(pid)) return true;
      const tail = this.logTail(from, 200);
      if (tail.includes('Loading failure!')) { verdict = 'failure'; return true; }
      if (tail.includes('Loading success.')) verdict = 'success';
      // the re-executed master rewrites its pid file around forking the new worker: wait for both
      return verdict === 'success' && procChildren(pid).some((c) => !before.has(c) && procAlive(c)) &&
        readPidFile(this.paths.pid) === pid && this.isOurs(pid);
    }, this.timeoutMs);
    const out = this.logTail(from, 200);
    if (!procAlive(pid)) throw new HaproxyError('E_HAPROXY_RELOAD', `haproxy master exited during reload${out ? `: ${alerts(out, pid)}` : ''}`, { output: out });
    if (verdict === 'failure') throw new HaproxyError('E_HAPROXY_RELOAD', `haproxy could not load the new configuration; the old workers keep serving: ${alerts(out, pid)}`, { output: out });
    if (!ok) throw new HaproxyError('E_HAPROXY_RELOAD', `no new haproxy worker within ${this.timeoutMs} ms after reload`, { output: out });
  }

  /** Reload even when the text is unchanged (e.g. to re-resolve or reset state). */
  async forceReload(): Promise<void> {
    const st = this.status();
    if (!st.running || st.pid === undefined) throw new HaproxyError('E_HAPROXY_RELOAD', 'haproxy is not running');
    await this.reload(st.pid);
  }

  private async killTree(pid: number): Promise<void> {
    const kids = procChildren(pid);
    // a master this process started stays a zombie until reaped (procAlive counts that as gone): reap it
    const gone = () => !procAlive(pid) && (reapIfExited(pid), kids.every((k) => !procAlive(k)));
    try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
    if (await pollUntil(gone, Math.min(this.timeoutMs, 5000))) return;
    for (const p of [pid, ...kids]) {
      try { process.kill(p, 'SIGKILL'); } catch { /* already gone */ }
    }
    if (!(await pollUntil(gone, 2000))) throw new HaproxyError('E_HAPROXY_STOP', `haproxy ${pid} did not exit after SIGKILL`);
  }

  /** Stop haproxy (if running) and remove its runtime files; `purge` removes the whole run directory. */
  async stop(opts: { purge?: boolean } = {}): Promise<boolean> {
    const st = this.status();
    const pid = st.running ? st.pid : st.reason === 'other-namespace' ? st.pid : undefined;
    if (pid !== undefined) await this.killTree(pid);
    if (opts.purge) rmSync(this.opts.runDir, { recursive: true, force: true });
    else {
      for (const f of [this.paths.pid, this.paths.config, this.paths.checkedBy, this.paths.masterSocket]) if (f) rmSync(f, { force: true });
    }
    return pid !== undefined;
  }
}

/** haproxy's ALERT lines (of process `pid` when given; without the generic closing ones), else its last line. */
function alerts(out: string, pid?: number): string {
  const lines = out.split('\n').filter((l) => l.trim());
  const picked = lines.filter((l) => l.includes('[ALERT]') && (pid === undefined || l.includes(`(${pid})`)) &&
    !/Fatal errors found|Error\(s\) found|Some protocols failed to start|Exiting\.$/.test(l));
  const pick = picked.length ? picked : lines.slice(-1);
  return pick.map((l) => l.replace(/^\[ALERT\]\s+\(\d+\)\s*:\s*/, '').trim()).join('; ');
}
