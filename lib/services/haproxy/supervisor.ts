/**
 * One haproxy process per router namespace — no master: a master-worker haproxy is two processes, and the
 * master alone costs ~2.2 MiB per router. posix_spawn'ed from a thread inside the namespace (as dnsmasq:
 * lib/sys/posix-spawn.ts) so that it binds the router's public addresses there; in the foreground, in a
 * session of its own, stdin closed, stdout and stderr appended to haproxy.log (its notices, alerts and server
 * state changes stay readable; `-D` would send them to /dev/null). It stays this process's child: a
 * long-lived process reaps it when it dies (status()).
 *
 * The supervision the master did is here:
 * - apply(text): check with `haproxy -c` first (a bad text never reaches the running haproxy), then start, or
 *   reload when the text differs from the running one.
 * - Ready = the process answers `show info` with its own pid on its stats socket (served only once every
 *   listener is bound and its event loop runs). It exits instead → its ALERT lines are the error.
 * - Reload = a new process started with `-x haproxy.sock -sf OLD`: it takes the listening sockets from the old
 *   one over the stats socket (`expose-fd listeners`), so no connection attempt is refused, then tells the old
 *   one to stop softly: the old process finishes its established connections and exits. A new process that
 *   cannot load (e.g. a port taken) exits and tells the old one to resume: the old configuration keeps
 *   serving. Old processes still finishing are recorded in haproxy.old (stop kills them too).
 * - status(): the pid file (written by us) plus /proc (alive, our config on its command line, the right
 *   namespace). A dead or foreign process counts as not running, so the next apply() starts a fresh one
 *   (supervision by reconciliation; the resident engine's watchdog does it between commands). Read only: the
 *   watchdog calls it without the router's lock.
 * - No process is lost to a command killed midway (kill -9 during the wait for readiness): a change writes
 *   haproxy.spawned (`spawning`) before it touches anything, replaces that line by the new pid right after
 *   posix_spawn returns (before any await), and removes the file once the pid file names the process or the
 *   failure is handled. The next apply/stop finds the file (recover()): the recorded process (or, after a bare
 *   `spawning`, any haproxy naming our config on its command line) is waited for as the dead command would
 *   have, then adopted when it answers on the stats socket (it holds the listeners), else stopped.
 * - stop(): SIGTERM to every recorded process (after an interrupted change, also to any haproxy naming our
 *   config: a scan of /proc), SIGKILL after a grace period.
 *
 * Runtime files live in `runDir`: haproxy.cfg, runtime.cfg (the stats socket), haproxy.pid, haproxy.old,
 * haproxy.spawned, haproxy.sock (root-only: mode 600), haproxy.log (stderr of every process).
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { join, basename } from 'node:path';
import { netnsPath, runInNetns } from '../../sys/setns.js';
import { childEnvList } from '../../sys/children.js';
import { posixSpawn, reapIfExited } from '../../sys/posix-spawn.js';
import { checkConfig, haproxyExecutable } from './check.js';
import { HaproxyError } from './errors.js';
import { netnsFileInode, pollUntil, procAlive, procChildren, procCmdline, procNetnsInode, procsWithArg, readPidFile, sleep, sleepSync } from '../../sys/proc.js';

export interface HaproxySupervisorOptions {
  /** Named network namespace to run in; absent: the caller's namespace (used by the benchmark baseline). */
  netns?: string;
  /** Directory for the runtime files (created on demand). */
  runDir: string;
  /** haproxy executable (default `haproxy` from PATH). */
  binary?: string;
  /** Budget for each start/reload/stop wait (ms, default 10 s). */
  timeoutMs?: number;
  /**
   * Tests only (production passes none): called right after posix_spawn returns with the new pid, before it is
   * recorded in haproxy.spawned (`recorded` false), then once it is (true) — where a test kills the command.
   */
  onSpawn?: (pid: number, recorded: boolean) => void;
}

/** haproxy.spawned: a change in progress (`spawning`), its new process (`PID`), processes to stop (`stop PID`). */
interface SpawnRecord { spawning: boolean; pids: number[]; stray: number[] }

/** What applying a configuration did to a router's haproxy. */
export type ApplyOutcome = 'started' | 'reloaded' | 'unchanged';

export interface HaproxyStatus {
  running: boolean;
  /** The current process (the last one started or reloaded) when running. */
  pid?: number;
  /** Every live process of this haproxy: the current one first, then older ones finishing their connections. */
  workers: number[];
  /** Why it is not running. */
  reason?: 'no-pid-file' | 'dead' | 'not-ours' | 'other-namespace';
}

/**
 * The stats socket, named relative to the run directory (every process runs there): haproxy binds it and `-x`
 * reaches it whatever the length of the run directory's path (sun_path holds 108 bytes).
 */
const STATS_SOCKET = 'haproxy.sock';
/** Settings of our own, given as a second file: the rendered text stays the same for every router. */
const RUNTIME_CONFIG = `# managed by netns-router: the supervisor's stats socket (readiness, listeners handed over at reload)
global
    stats socket unix@${STATS_SOCKET} mode 600 level admin expose-fd listeners
`;
/** haproxy's stderr (notices, alerts, server state changes) is trimmed past this size at start/reload. */
const MAX_LOG_BYTES = 1 << 20;

export class HaproxySupervisor {
  readonly opts: HaproxySupervisorOptions;
  readonly paths: { config: string; runtimeConfig: string; checkedBy: string; pid: string; old: string; spawned: string; log: string; statsSocket: string };

  constructor(opts: HaproxySupervisorOptions) {
    this.opts = opts;
    this.paths = {
      config: join(opts.runDir, 'haproxy.cfg'),
      runtimeConfig: join(opts.runDir, 'runtime.cfg'),
      checkedBy: join(opts.runDir, 'haproxy.cfg.checked-by'),
      pid: join(opts.runDir, 'haproxy.pid'),
      old: join(opts.runDir, 'haproxy.old'),
      spawned: join(opts.runDir, 'haproxy.spawned'),
      log: join(opts.runDir, 'haproxy.log'),
      statsSocket: join(opts.runDir, STATS_SOCKET),
    };
  }

  /** The haproxy to run, found in the child PATH (HaproxyError 'E_HAPROXY_SPAWN' when it is not installed). */
  private get binary(): string {
    return haproxyExecutable(this.opts.binary);
  }

  private get timeoutMs(): number {
    return this.opts.timeoutMs ?? 10_000;
  }

  /** Is the process of `pid` our haproxy (our config file on its command line)? */
  private isOurs(pid: number): boolean {
    let argv = procCmdline(pid);
    // a process being exec'ed (just spawned) reads an empty /proc/PID/cmdline for a moment: wait that out
    for (let i = 0; i < 100 && argv.length === 0 && procAlive(pid); i++) {
      sleepSync(2);
      argv = procCmdline(pid);
    }
    if (argv.length === 0 || !basename(argv[0]).startsWith('haproxy')) return false;
    return argv.some((a, i) => a === '-f' && argv[i + 1] === this.paths.config);
  }

  /**
   * Older processes still finishing their connections (haproxy.old), alive and ours; the dead ones reaped. Read
   * only: the file is rewritten (pruned) by start/reload/stop alone, which run under the router's lock (status()
   * also runs from the watchdog, unlocked).
   */
  private draining(): number[] {
    let listed: number[];
    try {
      listed = readFileSync(this.paths.old, 'utf8').split(/\s+/).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n > 1);
    } catch {
      return [];
    }
    return listed.filter((p) => {
      if (procAlive(p)) return this.isOurs(p);
      reapIfExited(p); // one this process started: not left a zombie
      return false;
    });
  }

  private writeDraining(pids: number[]): void {
    if (pids.length) writeFileAtomic(this.paths.old, `${pids.join('\n')}\n`, { what: this.paths.old, durable: false });
    else rmSync(this.paths.old, { force: true });
  }

  private readSpawned(): SpawnRecord | undefined {
    let text: string;
    try {
      text = readFileSync(this.paths.spawned, 'utf8');
    } catch {
      return undefined;
    }
    const rec: SpawnRecord = { spawning: false, pids: [], stray: [] };
    const pidOf = (w: string | undefined) => { const n = Number(w); return Number.isInteger(n) && n > 1 ? n : undefined; };
    for (const line of text.split('\n')) {
      const [a, b] = line.trim().split(/\s+/);
      if (a === 'spawning') rec.spawning = true;
      else if (a === 'stop' && pidOf(b) !== undefined) rec.stray.push(pidOf(b)!);
      else if (pidOf(a) !== undefined) rec.pids.push(pidOf(a)!);
    }
    // unreadable contents: a change was in progress, what it spawned is unknown
    if (!rec.pids.length && !rec.stray.length) rec.spawning = true;
    return rec;
  }

  /** Rewritten only under the router's lock (apply, recover, stop); not durable: a reboot ends the processes too. */
  private writeSpawned(rec: SpawnRecord): void {
    const lines = [...(rec.spawning ? ['spawning'] : []), ...rec.pids.map(String), ...rec.stray.map((p) => `stop ${p}`)];
    if (lines.length) writeFileAtomic(this.paths.spawned, `${lines.join('\n')}\n`, { what: this.paths.spawned, durable: false });
    else rmSync(this.paths.spawned, { force: true });
  }

  /**
   * Run a change (start or reload) with haproxy.spawned telling the next command, should this one be killed
   * midway, that a process may have been spawned and not recorded in the pid file (see recover()).
   */
  private async change<T>(run: () => Promise<T>): Promise<T> {
    this.writeSpawned({ spawning: true, pids: [], stray: [] });
    try {
      return await run();
    } finally {
      // the outcome is recorded (pid file) or handled (the new process exited or was killed); a process that
      // would not die stays recorded for the next command
      const current = readPidFile(this.paths.pid);
      const rec = this.readSpawned();
      this.writeSpawned({ spawning: false, pids: (rec?.pids ?? []).filter((p) => p !== current && procAlive(p)), stray: rec?.stray ?? [] });
    }
  }

  /**
   * Finish what a command killed during a change left behind (haproxy.spawned; nothing to do without it): its new
   * process — recorded, or after a bare `spawning` found by our config on its command line — is waited for as
   * the dead command would have, then adopted if it answers on the stats socket (it holds the listeners: the
   * pid file names it, the previous process is soft-stopped and recorded as draining), else stopped. When no
   * process of that change took over, what runs may not run the configuration file's text: the file is removed,
   * so the next apply reloads. Runs under the router's lock (apply, RouterHaproxy.apply).
   */
  async recover(): Promise<void> {
    const rec = this.readSpawned();
    if (rec === undefined) return;
    const live = (p: number) => { if (procAlive(p)) return true; reapIfExited(p); return false; };
    const current = readPidFile(this.paths.pid);
    const draining = this.draining();
    // (the workers of a master-worker haproxy of an earlier version name our config too: known, not found)
    const known = new Set([...(current !== undefined ? [current] : []), ...draining].flatMap((p) => [p, ...procChildren(p)]));
    const want = this.opts.netns !== undefined ? netnsFileInode(netnsPath(this.opts.netns)) : undefined;
    const inNamespace = (p: number) => this.opts.netns === undefined || (want !== undefined && procNetnsInode(p) === want);
    const found = [...new Set([...rec.pids, ...(rec.spawning ? procsWithArg(this.paths.config) : [])])]
      .filter((p) => !known.has(p) && live(p) && this.isOurs(p));
    const candidates = found.filter(inNamespace);
    const stray = [...rec.stray.filter((p) => live(p) && this.isOurs(p)), ...found.filter((p) => !inNamespace(p))];
    let adopted: number | undefined;
    const end = Date.now() + this.timeoutMs;
    while (candidates.some(live) && Date.now() < end) {
      const who = await this.statsPid();
      if (who !== undefined && candidates.includes(who)) { adopted = who; break; }
      await sleep(10);
    }
    stray.push(...candidates.filter((p) => p !== adopted && live(p)));
    if (adopted !== undefined) {
      // a reload's new process soft-stopped the old one (-sf) before answering; a start's had none: either way
      // the previous process must not keep serving beside it (SIGUSR1 = haproxy's soft stop, harmless twice)
      const previous = current !== undefined && current !== adopted && live(current) && this.isOurs(current) ? [current] : [];
      for (const p of previous) {
        try { process.kill(p, 'SIGUSR1'); } catch { /* gone */ }
      }
      this.writeDraining([...new Set([...previous, ...draining])].filter((p) => p !== adopted));
      writeFileAtomic(this.paths.pid, `${adopted}\n`, { what: this.paths.pid, durable: false });
    } else if ((rec.spawning || rec.pids.length) && !(current !== undefined && rec.pids.includes(current))) {
      rmSync(this.paths.checkedBy, { force: true });
      rmSync(this.paths.config, { force: true });
    }
    if (stray.length) {
      // recorded first: a command killed during this stop leaves them to be stopped, not waited for
      this.writeSpawned({ spawning: false, pids: [], stray });
      await this.killAll(stray);
    }
    rmSync(this.paths.spawned, { force: true });
  }

  status(): HaproxyStatus {
    const pid = readPidFile(this.paths.pid);
    if (pid === undefined) return { running: false, workers: [], reason: 'no-pid-file' };
    if (!procAlive(pid)) {
      reapIfExited(pid); // a haproxy this process started and that died: not left a zombie
      return { running: false, workers: [], reason: 'dead' };
    }
    if (!this.isOurs(pid)) return { running: false, workers: [], reason: 'not-ours' };
    if (this.opts.netns !== undefined) {
      const want = netnsFileInode(netnsPath(this.opts.netns));
      if (want === undefined || procNetnsInode(pid) !== want) return { running: false, pid, workers: [], reason: 'other-namespace' };
    }
    return { running: true, pid, workers: [pid, ...this.draining().filter((p) => p !== pid)] };
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
    await this.recover();
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
    // a haproxy left in another (deleted/re-created) namespace serves nobody: replace it (and what it left draining)
    if (!st.running && st.reason === 'other-namespace' && st.pid !== undefined) {
      await this.killAll([st.pid, ...this.draining().filter((p) => p !== st.pid)]);
      rmSync(this.paths.old, { force: true });
    }
    mkdirSync(this.opts.runDir, { recursive: true, mode: 0o700 });
    return this.change(async () => {
      // who checked the text is recorded only once it is in place; a stale record never vouches for a new text
      rmSync(this.paths.checkedBy, { force: true });
      this.writeConfig(text);
      if (opts.checkedBy) writeFileSync(this.paths.checkedBy, `${opts.checkedBy}\n`, { mode: 0o600 });
      if (st.running && st.pid !== undefined) {
        try {
          await this.reload(st.pid);
        } catch (err) {
          // the old process resumed and keeps serving its configuration: keep the file telling the truth
          rmSync(this.paths.checkedBy, { force: true });
          if (previous !== undefined) this.writeConfig(previous);
          else rmSync(this.paths.config, { force: true }); // what it runs is not known (recover() removed it)
          throw err;
        }
        return 'reloaded';
      }
      await this.start();
      return 'started';
    });
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

  /** The log is opened O_APPEND by every process, so truncating it in place is safe. */
  private trimLog(): void {
    if (this.logSize() > MAX_LOG_BYTES) truncateSync(this.paths.log, 0);
  }

  /**
   * posix_spawn `haproxy -f runtime.cfg -f haproxy.cfg EXTRA` in the namespace, then wait until it answers on
   * its stats socket. `what`: start or reload (error codes and wording). Returns the new pid; on failure the
   * new process is gone (exited by itself or killed) and the error carries its ALERT lines.
   */
  private async spawnReady(extra: string[], what: 'start' | 'reload'): Promise<number> {
    const code = what === 'start' ? 'E_HAPROXY_START' : 'E_HAPROXY_RELOAD';
    this.trimLog();
    const from = this.logSize();
    writeFileAtomic(this.paths.runtimeConfig, RUNTIME_CONFIG, { what: this.paths.runtimeConfig, durable: false });
    const args = ['-f', this.paths.runtimeConfig, '-f', this.paths.config, ...extra];
    const bin = this.binary;
    let pid: number;
    try {
      // posix_spawn from this thread while it is inside the namespace: haproxy is born there (no `ip netns
      // exec` in between, no page-table copy of this process); stdout and stderr append to the log, a session
      // of its own, the minimal child environment (never the caller's: extension details, lib/sys/children.ts)
      const spawnIt = () => posixSpawn(bin, [bin, ...args], {
        stderrPath: this.paths.log, appendStderr: true, stdoutToStderr: true, newSession: true, cwd: this.opts.runDir, env: childEnvList(),
      });
      pid = this.opts.netns !== undefined ? runInNetns(this.opts.netns, spawnIt) : spawnIt();
    } catch (e) {
      throw new HaproxyError('E_HAPROXY_SPAWN', `starting haproxy${this.opts.netns !== undefined ? ` in ${this.opts.netns}` : ''}: ${(e as Error).message}`, { cause: e });
    }
    // recorded at once (synchronously, before any await): a command killed while it waits leaves it known
    this.opts.onSpawn?.(pid, false);
    const rec = this.readSpawned();
    this.writeSpawned({ spawning: false, pids: [...(rec?.pids ?? []), pid], stray: rec?.stray ?? [] });
    this.opts.onSpawn?.(pid, true);
    let exited: string | undefined;
    const end = Date.now() + this.timeoutMs;
    let ready = false;
    while (!ready && Date.now() < end) {
      const st = reapIfExited(pid);
      if (st) { exited = `exit ${st.code ?? `signal ${st.signal}`}`; break; }
      ready = (await this.statsPid()) === pid;
      if (!ready) await sleep(10);
    }
    const out = this.logTail(from, 200);
    if (exited !== undefined) {
      throw new HaproxyError(code, what === 'start'
        ? `haproxy did not start (${exited})${out ? `: ${alerts(out, pid)}` : ''}`
        : `haproxy could not load the new configuration (${exited}); the old process keeps serving${out ? `: ${alerts(out, pid)}` : ''}`, { output: out });
    }
    if (!ready) {
      await this.killAll([pid]);
      throw new HaproxyError(code, `haproxy ${pid} did not answer on its stats socket within ${this.timeoutMs} ms${out ? `: ${alerts(out, pid)}` : ''}`, { output: out });
    }
    return pid;
  }

  /**
   * The pid `show info` reports on the stats socket (undefined: no answer). Connected through
   * /proc/self/fd/N/haproxy.sock, N the run directory opened here: short whatever the run directory's path.
   */
  private async statsPid(): Promise<number | undefined> {
    let dir: number;
    try {
      dir = openSync(this.opts.runDir, 'r');
    } catch {
      return undefined;
    }
    try {
      return await new Promise<number | undefined>((resolve) => {
        let text = '';
        const sock = createConnection({ path: `/proc/self/fd/${dir}/${STATS_SOCKET}` });
        const done = (v: number | undefined) => { sock.destroy(); resolve(v); };
        sock.setTimeout(1000, () => done(undefined));
        sock.on('connect', () => sock.end('show info\n'));
        sock.on('data', (d) => { text += d.toString('utf8'); });
        sock.on('error', () => done(undefined));
        sock.on('close', () => { const m = /^Pid: (\d+)$/m.exec(text); done(m ? Number(m[1]) : undefined); });
      });
    } finally {
      closeSync(dir);
    }
  }

  private async start(): Promise<void> {
    rmSync(this.paths.pid, { force: true });
    rmSync(this.paths.statsSocket, { force: true });
    // older processes still finishing (a process killed while one drained): soft-stopped once the new one is
    // bound — listeners use SO_REUSEPORT, so a straggler still listening does not make the bind fail
    const old = this.draining();
    this.writeDraining(old);
    const pid = await this.spawnReady(old.length ? ['-sf', ...old.map(String)] : [], 'start');
    writeFileAtomic(this.paths.pid, `${pid}\n`, { what: this.paths.pid, durable: false });
  }

  /**
   * A new process takes the listening sockets from `pid` (`-x` over its stats socket) and soft-stops it (`-sf`):
   * nothing is refused, established connections finish on the old process. The old pid is recorded in
   * haproxy.old before the new one starts, the pid file names the new one once it answers: a process killed
   * midway leaves every haproxy it started recorded (stop kills them all).
   */
  private async reload(pid: number): Promise<void> {
    const old = [pid, ...this.draining().filter((p) => p !== pid)];
    this.writeDraining(old);
    // a master-worker haproxy started by an earlier netns-router (`-W`, no stats socket): the new process binds
    // beside it (SO_REUSEPORT) instead of taking its sockets, and -sf makes the master soft-stop its workers
    const legacy = procCmdline(pid).includes('-W') || !existsSync(this.paths.statsSocket);
    let next: number;
    try {
      next = await this.spawnReady([...(legacy ? [] : ['-x', STATS_SOCKET]), '-sf', String(pid)], 'reload');
    } catch (e) {
      this.writeDraining(old.slice(1)); // the old process resumed: current again, not draining
      throw e;
    }
    writeFileAtomic(this.paths.pid, `${next}\n`, { what: this.paths.pid, durable: false });
    if (legacy) rmSync(join(this.opts.runDir, 'master.sock'), { force: true });
  }

  /** Reload even when the text is unchanged (e.g. to re-resolve or reset state). */
  async forceReload(): Promise<void> {
    await this.recover();
    const st = this.status();
    if (!st.running || st.pid === undefined) throw new HaproxyError('E_HAPROXY_RELOAD', 'haproxy is not running');
    await this.change(() => this.reload(st.pid!));
  }

  /** SIGTERM (hard stop) to each pid, SIGKILL after a grace period; reaped when they are this process's children. */
  private async killAll(pids: number[]): Promise<void> {
    const gone = () => pids.every((p) => { reapIfExited(p); return !procAlive(p); });
    for (const p of pids) {
      try { process.kill(p, 'SIGTERM'); } catch { /* already gone */ }
    }
    if (await pollUntil(gone, Math.min(this.timeoutMs, 5000))) return;
    for (const p of pids) {
      try { process.kill(p, 'SIGKILL'); } catch { /* already gone */ }
    }
    if (!(await pollUntil(gone, 2000))) throw new HaproxyError('E_HAPROXY_STOP', `haproxy ${pids.filter(procAlive).join(', ')} did not exit after SIGKILL`);
  }

  /**
   * Stop haproxy and remove its runtime files (true when a process was stopped); `purge` removes the whole run
   * directory. Stopped: the current process, the draining ones, those haproxy.spawned records and, when that
   * file exists (a change was interrupted: its process may be spawned and not yet recorded), every haproxy
   * naming this router's configuration on its command line. No recover() wait: everything is stopped.
   */
  async stop(opts: { purge?: boolean } = {}): Promise<boolean> {
    const st = this.status();
    const pid = st.running ? st.pid : st.reason === 'other-namespace' ? st.pid : undefined;
    const rec = this.readSpawned();
    // an interrupted change (the record exists) may have spawned a process it did not record: scan /proc for
    // any haproxy naming our config (~17 µs per process on the host: 51 ms at 3,100, so not at every stop)
    const recorded = [...(rec?.pids ?? []), ...(rec?.stray ?? []), ...(rec ? procsWithArg(this.paths.config) : [])].filter((p) => procAlive(p) && this.isOurs(p));
    const all = [...new Set([...(pid !== undefined ? [pid] : []), ...this.draining(), ...recorded])];
    if (all.length) await this.killAll(all);
    if (opts.purge) rmSync(this.opts.runDir, { recursive: true, force: true });
    else {
      for (const f of [this.paths.pid, this.paths.old, this.paths.spawned, this.paths.config, this.paths.runtimeConfig, this.paths.checkedBy, this.paths.statsSocket]) rmSync(f, { force: true });
    }
    return all.length > 0;
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
