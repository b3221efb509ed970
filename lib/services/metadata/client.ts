/**
 * Control client of the metadata daemon (used by the router module's reconcile, tests and the benchmark):
 * send one JSON request over `<stateDir>/run/metadata.sock`, get one JSON answer; start the daemon when it
 * is not running.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { childEnv } from '../../sys/children.js';
import { procAlive } from '../../sys/proc.js';
import { MetadataError } from './errors.js';
import { controlSocket, logFile, pidFile, runDir } from './layout.js';
import type { DaemonStatus, RouterStatus } from './daemon.js';

/** The daemon's entry script (next to this file once compiled). */
export const DAEMON_MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

/** Marker argument so `ps` shows what the process is. */
const PROCESS_TAG = '--netns-router-metadata';

function isDown(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

/** One request/answer on the control socket. Errors with code ENOENT/ECONNREFUSED mean "not running". */
export async function request(stateDir: string, body: Record<string, unknown>, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const path = controlSocket(stateDir);
  if (Buffer.byteLength(path) > 107) {
    throw new MetadataError('E_DAEMON_START', `control socket path too long for a Unix socket (${path})`);
  }
  // loaded on first use: most commands never talk to the daemon, and node:net costs a cold command a few ms
  const { connect } = await import('node:net');
  return new Promise((resolve, reject) => {
    const c = connect(path);
    let buf = '';
    let done = false;
    const finish = (err: Error | undefined, v?: Record<string, unknown>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      c.destroy();
      if (err) reject(err);
      else resolve(v!);
    };
    const timer = setTimeout(() => finish(new MetadataError('E_DAEMON_TIMEOUT', `metadata daemon did not answer "${String(body.op)}" within ${timeoutMs} ms`)), timeoutMs);
    c.setEncoding('utf8');
    c.on('connect', () => c.write(`${JSON.stringify(body)}\n`));
    c.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        finish(undefined, JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      } catch {
        finish(new MetadataError('E_DAEMON_PROTOCOL', 'metadata daemon answered something that is not JSON'));
      }
    });
    c.on('error', (e) => finish(e));
    c.on('close', () => finish(new MetadataError('E_DAEMON_PROTOCOL', 'metadata daemon closed the control connection without an answer')));
  });
}

/**
 * Pid from the pid file when that process is alive (not a zombie) and is this state directory's daemon (its
 * command line checked: after a crash or a reboot the pid may belong to anything else).
 */
export function daemonPid(stateDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile(stateDir), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    if (!procAlive(pid)) return undefined;
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const at = argv.indexOf('--state-dir');
    return argv.includes(PROCESS_TAG) && at >= 0 && argv[at + 1] === stateDir ? pid : undefined;
  } catch {
    return undefined;
  }
}

export interface StartOptions {
  idleExitMs?: number;
  timeoutMs?: number;
}

/** Start the daemon (detached, outliving this process) and wait until it answers. Returns its pid. */
export async function startDaemon(stateDir: string, opts: StartOptions = {}): Promise<number> {
  mkdirSync(runDir(stateDir), { recursive: true, mode: 0o700 });
  const out = openSync(logFile(stateDir), 'a', 0o600);
  let exited: number | null | undefined;
  try {
    const args = [DAEMON_MAIN, PROCESS_TAG, '--state-dir', stateDir];
    if (opts.idleExitMs !== undefined) args.push('--idle-exit-ms', String(opts.idleExitMs));
    // the minimal child environment: the caller's may hold extension details (SSH keys, passwords) that the
    // daemon must not carry for its whole life in /proc/<pid>/environ
    const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', out, out], cwd: '/', env: childEnv() });
    child.once('exit', (code) => { exited = code; });
    child.unref();
  } finally {
    closeSync(out);
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    try {
      const r = await request(stateDir, { op: 'status' }, 2000);
      if (r.ok === true && typeof r.pid === 'number') return r.pid;
    } catch (e) {
      if (!isDown(e)) throw e;
    }
    // exit 3: another instance won the race; keep waiting for it to answer
    if ((exited !== undefined && exited !== 3) || Date.now() > deadline) {
      const tail = existsSync(logFile(stateDir)) ? readFileSync(logFile(stateDir), 'utf8').trim().split('\n').slice(-3).join(' | ') : '';
      throw new MetadataError('E_DAEMON_START', `metadata daemon did not start${exited !== undefined ? ` (exit ${exited})` : ''}${tail ? `: ${tail}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, wait));
  }
}

/** Make the daemon converge router `ns` to its listen.json; starts the daemon when `start` and it is down. */
export async function syncRouter(stateDir: string, ns: string, opts: { start: boolean; timeoutMs?: number; idleExitMs?: number }): Promise<RouterStatus> {
  for (let attempt = 0; ; attempt++) {
    let r: Record<string, unknown>;
    try {
      r = await request(stateDir, { op: 'sync', namespace: ns }, opts.timeoutMs ?? 10_000);
    } catch (e) {
      if (!isDown(e)) throw e;
      if (!opts.start) return { namespace: ns, listening: [], connections: 0 };
      if (attempt > 0) throw new MetadataError('E_DAEMON_START', `metadata daemon is not reachable at ${controlSocket(stateDir)}`);
      await startDaemon(stateDir, { ...(opts.idleExitMs !== undefined ? { idleExitMs: opts.idleExitMs } : {}) });
      continue;
    }
    if (r.ok !== true) throw new MetadataError('E_LISTEN', String(r.error ?? 'metadata daemon refused the request'));
    return r as unknown as RouterStatus;
  }
}

/** Status of the running daemon, or undefined when none runs. */
export async function daemonStatus(stateDir: string): Promise<DaemonStatus | undefined> {
  try {
    const r = await request(stateDir, { op: 'status' }, 5000);
    return r.ok === true ? (r as unknown as DaemonStatus) : undefined;
  } catch (e) {
    if (isDown(e)) return undefined;
    throw e;
  }
}

/** Stop the daemon of `stateDir` (if any) and wait until its process is gone. */
export async function stopDaemon(stateDir: string, timeoutMs = 5000): Promise<void> {
  const pid = daemonPid(stateDir);
  try {
    await request(stateDir, { op: 'stop' }, 2000);
  } catch (e) {
    if (!isDown(e) && pid === undefined) throw e;
    if (pid !== undefined) {
      try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    }
  }
  if (pid === undefined) return;
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
}
