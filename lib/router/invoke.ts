/**
 * One engine command the way the CLI runs it — and the library (createRouter) too, through this same code: the
 * router's upstream-named lock (lock-network-<id> / lock-vpc-<id>, state/lock.ts), then the RouterApi call, both
 * within one deadline. So a CLI process and a library call on one router never interleave, and a time-out or a
 * cancellation means the same everywhere:
 *
 * - the deadline covers loading the engine, the lock wait and the engine call; past it the command fails with a
 *   TimeoutError (`E_LOCK_TIMEOUT` while waiting for the lock, else `E_TIMEOUT`; exit 2);
 * - the caller's AbortSignal ends it early the same way (TimeoutError `E_ABORTED`);
 * - either way an engine call already running is not interrupted: it either completes or puts the router back
 *   (engine.ts), and the router's lock is held until it has ended, so the next command sees a settled router;
 * - once it holds the lock, a command first kills what a dead command's operator hook left running
 *   (hook-runner.ts), so that never runs beside it.
 */
import { dispatch, type CommandContext, type CommandOutput, type RouterApi } from './contract/router-api.js';
import type { RouterRequest } from './contract/types.js';
import { acquireRouterLock, requestLockKey } from './state/lock.js';
import { reapHookRun } from './hook-runner.js';
import { TimeoutError } from '../util/errors.js';

/** How long a command may take and who may cancel it. */
export interface InvokeLimits {
  /** The whole command's time limit (seconds): lock wait and engine call. */
  timeoutSeconds: number;
  /** The caller's cancellation: aborting it fails the command with TimeoutError `E_ABORTED`. */
  signal?: AbortSignal | undefined;
  /** Epoch ms the time limit counts from (default: now). */
  startedAt?: number | undefined;
}

/** A command on its way. */
export interface RunningCommand {
  /** The command's outcome: its output, or why it failed (TimeoutError at the deadline or on abort). */
  result: Promise<CommandOutput>;
  /**
   * Settles (never rejects) once nothing of the command runs any more: after a time-out the engine call may
   * still be finishing when `result` has already failed. Its lock is released then.
   */
  ended: Promise<void>;
}

/** The context a command runs with, but its deadline and signal (invokeCommand sets them). */
export type CommandContextBase = Omit<CommandContext, 'deadline' | 'signal'>;

/**
 * Runs `req` on the RouterApi `api` gives (a factory is called within the deadline: loading the engine counts)
 * under the router's lock, within `limits`. `ctx.settings.stateDir` is where the lock files are.
 */
export function invokeCommand(
  api: RouterApi | (() => Promise<RouterApi>), req: RouterRequest, base: CommandContextBase, limits: InvokeLimits,
): RunningCommand {
  const started = limits.startedAt ?? Date.now();
  const timeoutMs = Math.round(limits.timeoutSeconds * 1000);
  const deadline = started + timeoutMs;
  const abort = new AbortController();
  let endWork: () => void = () => {};
  const ended = new Promise<void>((res) => { endWork = res; });

  const cancelled = (): TimeoutError => new TimeoutError(
    `cancelled by the caller after ${((Date.now() - started) / 1000).toFixed(1)} s`, Date.now() - started, 'E_ABORTED',
  );
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  // rejects at the deadline or when the caller aborts; observed through Promise.race only
  const stopped = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abort.abort();
      reject(new TimeoutError(`timed out after ${limits.timeoutSeconds} s`, timeoutMs));
    }, Math.max(0, deadline - Date.now()));
    onAbort = () => { abort.abort(); reject(cancelled()); };
    limits.signal?.addEventListener('abort', onAbort, { once: true });
  });
  stopped.catch(() => { /* a late expiry must not be "unhandled" */ });
  const ctx: CommandContext = { ...base, deadline, signal: abort.signal };
  let work: Promise<unknown> | undefined;

  const run = async (): Promise<CommandOutput> => {
    if (limits.signal?.aborted) throw cancelled(); // before anything: no lock taken, nothing changed
    const engine = typeof api === 'function' ? await Promise.race([api(), stopped]) : api;
    const key = requestLockKey(req);
    let lock;
    try {
      // the lock wait honours the deadline itself (and says which lock it waited for)
      lock = key ? await acquireRouterLock(base.settings.stateDir, key, { deadline, signal: abort.signal }) : undefined;
    } catch (e) {
      if (limits.signal?.aborted) throw cancelled();
      throw e;
    }
    try {
      // what a dead command's hook left of itself dies before this command touches the router
      if (key) {
        const killed = reapHookRun(base.settings.stateDir, key);
        if (killed > 0) base.log.warn({ killed }, 'killed the processes of a hook whose command died before it ended');
      }
      return await Promise.race([(work = dispatch(engine, req, ctx)), stopped]);
    } finally {
      // held until the engine call has really ended (after a time-out it may still be running)
      const done = () => { lock?.release(); endWork(); };
      if (work) work.then(done, done);
      else done();
    }
  };
  const result = run().finally(() => {
    clearTimeout(timer);
    if (onAbort) limits.signal?.removeEventListener('abort', onAbort);
  });
  // no engine call started (no engine, lock not taken, cancelled first): nothing is left running
  result.then(() => {}, () => { if (!work) endWork(); });
  return { result, ended };
}
