/**
 * Child processes of a proxy call (ssh, scp, sshpass). Each runs in its own process group so that
 * a timeout or a signal ends the whole group (sshpass and the ssh it started) by its id; the
 * groups still running are remembered so that a second signal can end them synchronously.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  aborted: boolean;
  /** spawn failure (ENOENT: the program is not installed) */
  error?: NodeJS.ErrnoException;
}

export interface ChildOptions {
  env: NodeJS.ProcessEnv;
  /** absolute time (ms since epoch) after which the group is ended */
  deadline?: number;
  signal?: AbortSignal;
  /** stream output to these as it arrives (it is collected too) */
  onStdout?: (text: string) => void;
  onStderr?: (text: string) => void;
}

const liveGroups = new Set<number>();

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    /* already gone */
  }
}

/** SIGKILL every process group we started that is still running (signal handlers, exit). */
export function killAllChildren(): void {
  for (const pid of liveGroups) killGroup(pid, 'SIGKILL');
  liveGroups.clear();
}

/** A started child; `done` settles when it has exited and its pipes are drained. */
export interface ChildHandle {
  readonly pid: number | undefined;
  readonly done: Promise<ChildResult>;
  exited(): boolean;
  /** SIGTERM the group, SIGKILL after `graceMs` if it is still there */
  stop(graceMs?: number): Promise<ChildResult>;
}

export function startChild(argv: readonly string[], opts: ChildOptions): ChildHandle {
  let child: ChildProcess;
  const result: ChildResult = { status: null, signal: null, stdout: '', stderr: '', timedOut: false, aborted: false };
  let exited = false;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  let killTimer: NodeJS.Timeout | undefined;

  const done = new Promise<ChildResult>((resolveDone) => {
    try {
      child = spawn(argv[0], argv.slice(1), { env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    } catch (e) {
      exited = true;
      result.error = e as NodeJS.ErrnoException;
      resolveDone(result);
      return;
    }
    const pid = child.pid;
    if (pid !== undefined) liveGroups.add(pid);
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => { result.stdout += s; opts.onStdout?.(s); });
    child.stderr!.on('data', (s: string) => { result.stderr += s; opts.onStderr?.(s); });
    child.on('error', (e) => {
      result.error = e as NodeJS.ErrnoException;
      if (pid === undefined) {
        exited = true;
        resolveDone(result);
      }
    });
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      clearTimeout(drainTimer);
      if (onAbort) opts.signal?.removeEventListener('abort', onAbort);
      resolveDone(result);
    };
    let drainTimer: NodeJS.Timeout | undefined;
    child.on('exit', (status, signal) => {
      exited = true;
      if (pid !== undefined) liveGroups.delete(pid);
      // the leader is gone; anything left in its group (an ssh under sshpass) goes too
      if (pid !== undefined) killGroup(pid, 'SIGKILL');
      result.status = status;
      result.signal = signal;
      // an ssh control-master client hands its stdout/stderr to the master, which keeps them
      // open while the remote command runs: after a kill the pipes may never close
      drainTimer = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        settle();
      }, 500);
    });
    child.on('close', settle);
  });

  const terminate = (graceMs: number): void => {
    const pid = child?.pid;
    if (exited || pid === undefined) return;
    killGroup(pid, 'SIGTERM');
    killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
  };

  if (opts.deadline !== undefined) {
    const ms = Math.max(0, opts.deadline - Date.now());
    timer = setTimeout(() => { result.timedOut = true; terminate(1000); }, ms);
  }
  if (opts.signal) {
    onAbort = () => { result.aborted = true; terminate(1000); };
    if (opts.signal.aborted) onAbort();
    else opts.signal.addEventListener('abort', onAbort, { once: true });
  }

  return {
    get pid() { return child?.pid; },
    done,
    exited: () => exited,
    stop: (graceMs = 1000) => { terminate(graceMs); return done; },
  };
}

/** Runs a child to completion. */
export function runChild(argv: readonly string[], opts: ChildOptions): Promise<ChildResult> {
  return startChild(argv, opts).done;
}
