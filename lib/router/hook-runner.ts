/**
 * Operator hooks as processes (custom-action hooks, lib/router/custom-action.ts): what runs, how it is stopped,
 * and what is left of it after the process that started it died.
 *
 * - A hook runs in a process group (and session) of its own. At its time limit, or when its command is cancelled,
 *   the whole group is killed (SIGKILL), not the hook alone: a child of the hook (`sleep 600`, a tool that hangs)
 *   keeps the hook's output pipes open, the command waits for those, and the router's lock would stay held for as
 *   long as that child lived.
 * - While it runs, the run is recorded in `<stateDir>/hook-runs/<lock file name>` (its process group and a random
 *   run id), and the hook and everything it starts carry `NETNS_ROUTER_HOOK_RUN=<run id>` in their environment.
 *   A CLI process or resident engine killed (-9) in the middle of a hook leaves the record behind: the next command
 *   of that router, under the router's lock and before anything else, kills the processes of the group that carry
 *   the run id (`reapHookRun`), so a dead command's hook never runs beside the next command. Processes that left
 *   the group (setsid: a daemon the hook meant to start) are left alone, as at the time limit.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { procEnvironHas, procGroupMembers } from '../sys/proc.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { SystemError } from '../util/errors.js';
import { lockFileName, type RouterKey } from './state/lock.js';

/** The environment entry that marks a hook run's processes. */
export const HOOK_RUN_ENV = 'NETNS_ROUTER_HOOK_RUN';

/** What a hook left: its exit, its output. */
export interface HookResult {
  status: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface HookRun {
  file: string;
  args: string[];
  /** The child's whole environment (childEnv); the run id is added. */
  env: Record<string, string>;
  timeoutMs: number;
  signal: AbortSignal;
  /** The router whose lock the command holds, and the state directory the run is recorded in. */
  stateDir: string;
  router: RouterKey;
}

/** The record of a router's running hook. */
export function hookRunPath(stateDir: string, router: RouterKey): string {
  return join(stateDir, 'hook-runs', lockFileName(router));
}

interface RunRecord { pgid: number; run: string }

/** The record's run; undefined when there is none (the usual case), null when it cannot be read or parsed. */
function readRecord(path: string): RunRecord | undefined | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw SystemError.from(e, `reading hook run record ${path}`);
  }
  try {
    const r = JSON.parse(text) as Partial<RunRecord>;
    if (Number.isInteger(r.pgid) && r.pgid! > 1 && typeof r.run === 'string' && /^[0-9a-f]{32}$/.test(r.run)) return r as RunRecord;
  } catch {
    /* torn or foreign: nothing to reap by */
  }
  return null;
}

/**
 * Kills process group `pgid` when it is the run's: one of its live members carries `run` (its leader may be gone, and
 * its number reused). Returns how many marked members there were (0: nothing killed).
 */
function killRun(pgid: number, run: string): number {
  const mark = `${HOOK_RUN_ENV}=${run}`;
  const ours = procGroupMembers(pgid).filter((pid) => procEnvironHas(pid, mark)).length;
  // the group as a whole: members it forked meanwhile included
  if (ours > 0) { try { process.kill(-pgid, 'SIGKILL'); } catch { /* gone meanwhile */ } }
  return ours;
}

/**
 * Before a command of `router` runs (its lock held): kills what is left of a hook whose command died before the
 * hook ended, and forgets the record. Returns the number of processes killed (0 almost always: no record).
 */
export function reapHookRun(stateDir: string, router: RouterKey): number {
  const path = hookRunPath(stateDir, router);
  const rec = readRecord(path);
  if (rec === undefined) return 0;
  const killed = rec ? killRun(rec.pgid, rec.run) : 0;
  rmSync(path, { force: true });
  return killed;
}

/** Runs a hook (see the module comment); killed with its process group at the time limit or when `signal` aborts. */
export function runHook(o: HookRun): Promise<HookResult> {
  const run = randomBytes(16).toString('hex');
  const record = hookRunPath(o.stateDir, o.router);
  return new Promise((resolve, reject) => {
    // detached: setsid() in the child, which makes it the leader of a new process group (and session)
    const child = spawn(o.file, o.args, { env: { ...o.env, [HOOK_RUN_ENV]: run }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let recorded = false;
    if (child.pid !== undefined) {
      try {
        mkdirSync(join(o.stateDir, 'hook-runs'), { recursive: true, mode: 0o700 });
        // not durable: a machine that went down took the hook with it
        writeFileAtomic(record, `${JSON.stringify({ pgid: child.pid, run })}\n`, { what: `hook run record ${record}`, durable: false });
        recorded = true;
      } catch (e) {
        // without its record the hook could outlive a crash unnoticed: not started at all
        try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
        child.stdout?.destroy();
        child.stderr?.destroy();
        reject(e);
        return;
      }
    }
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
    child.stderr!.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    let killed = false;
    const kill = (): void => {
      killed = true;
      const pid = child.pid;
      if (pid === undefined) return;
      // the leader not reaped yet (its exit is seen on this thread): the group is certainly ours, even before its
      // exec gave it the mark; once reaped, its number is ours only while marked members are left in the group
      if (child.exitCode === null && child.signalCode === null) {
        try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
      } else {
        killRun(pid, run);
      }
    };
    const timer = setTimeout(kill, o.timeoutMs);
    o.signal.addEventListener('abort', kill, { once: true });
    const done = (): void => {
      clearTimeout(timer);
      o.signal.removeEventListener('abort', kill);
      if (recorded) rmSync(record, { force: true });
    };
    child.on('error', (e: NodeJS.ErrnoException) => {
      done();
      // EACCES: not executable after all (a noexec mount, a race with chmod)
      reject(e.code === 'EACCES' ? new SystemError(`hook ${o.file} is not executable`, { cause: e })
        : SystemError.from(e, `running hook ${o.file}`));
    });
    // a killed hook is over when it has exited: a process that left its group may still hold the pipes
    child.on('exit', () => { if (killed) { child.stdout?.destroy(); child.stderr?.destroy(); } });
    child.on('close', (status, sig) => {
      done();
      resolve({ status, signal: sig, stdout, stderr });
    });
  });
}
