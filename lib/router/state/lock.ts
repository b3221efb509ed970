/**
 * One lock per router: flock(2) on <stateDir>/lock-network-<id> or lock-vpc-<id> (upstream's lock
 * file names, so an upstream wrapper and netns-router on the same host also exclude each other).
 * Waiting polls LOCK_NB with a growing sleep so the event loop stays free and the command's
 * deadline is honoured. Lock files are never deleted: unlinking a path someone else is waiting on
 * lets a third process lock a new inode while the waiter locks the old one (upstream's rm -f).
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as libc from '../../sys/libc.js';
import { SystemError, TimeoutError } from '../../util/errors.js';
/** Which router a lock belongs to: the VPC for tiers and VPC commands, else the network. */
export type RouterKey = { kind: 'network'; networkId: string } | { kind: 'vpc'; vpcId: string };

/** Router a request belongs to: the VPC for tiers and VPC commands, else the network. */
export function routerKeyOf(ref: { networkId?: string; vpcId?: string }): RouterKey {
  if (ref.vpcId !== undefined) return { kind: 'vpc', vpcId: ref.vpcId };
  if (ref.networkId !== undefined) return { kind: 'network', networkId: ref.networkId };
  throw new Error('routerKeyOf: neither vpcId nor networkId');
}

/**
 * The lock a command takes before its engine call (cli/run.ts and the library, lib/router/invoke.ts): its router's,
 * or none — `status` without ids reads only, `restore-all` locks each router itself.
 */
export function requestLockKey(req: { command: string; networkId?: string; vpcId?: string }): RouterKey | undefined {
  if (req.command === 'restore-all') return undefined;
  if (req.command === 'status' && req.networkId === undefined && req.vpcId === undefined) return undefined;
  return routerKeyOf(req);
}

/** The lock file's name: upstream's `lock-network-<id>` or `lock-vpc-<id>`. */
export function lockFileName(key: RouterKey): string {
  return key.kind === 'network' ? `lock-network-${key.networkId}` : `lock-vpc-${key.vpcId}`;
}

/** The lock file of `key` in `stateDir`. */
export function lockPath(stateDir: string, key: RouterKey): string {
  return join(stateDir, lockFileName(key));
}

/** A router lock held; `release()` gives it back. */
export interface LockHandle {
  readonly path: string;
  readonly key: RouterKey;
  /** Releases the lock (closing the descriptor). Idempotent. */
  release(): void;
}

/** How long to wait for a lock, and who may stop the wait. */
export interface AcquireOptions {
  /** Epoch ms after which waiting fails with TimeoutError. Default: wait forever. */
  deadline?: number | undefined;
  signal?: AbortSignal | undefined;
  /** First poll interval (ms); doubles up to maxPollMs. */
  pollMs?: number | undefined;
  maxPollMs?: number | undefined;
  /** Clock, for tests. */
  now?: (() => number) | undefined;
}

const describe = (key: RouterKey) => (key.kind === 'network' ? `network ${key.networkId}` : `VPC ${key.vpcId}`);

/**
 * Tries once to flock(LOCK_EX) the file at `path` (created, with its directory, when missing); returns the
 * release function, or undefined when another holder has it.
 */
export function tryAcquireFileLock(path: string): (() => void) | undefined {
  const dir = dirname(path);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
  } catch (e) {
    throw SystemError.from(e, `creating state directory ${dir}`);
  }
  let fd: number;
  try {
    fd = libc.open(path, libc.O_RDWR | libc.O_CREAT, 0o600);
  } catch (e) {
    throw SystemError.from(e, `opening lock file ${path}`);
  }
  let locked: boolean;
  try {
    locked = libc.tryFlock(fd, libc.LOCK_EX);
  } catch (e) {
    libc.close(fd);
    throw SystemError.from(e, `locking ${path}`);
  }
  if (!locked) {
    libc.close(fd);
    return undefined;
  }
  let open = true;
  return () => {
    if (!open) return;
    open = false;
    libc.close(fd); // closing the only descriptor of the open file description drops the flock
  };
}

/**
 * Waits for the lock of the file at `path` until `deadline`; on time-out or abort throws a TimeoutError
 * saying what was waited for (`what`: "the lock of network 42", "the segment pool's lock").
 */
export async function acquireFileLock(path: string, what: string, opts: AcquireOptions = {}): Promise<() => void> {
  const now = opts.now ?? Date.now;
  const start = now();
  let pause = opts.pollMs ?? 10;
  const maxPause = opts.maxPollMs ?? 200;
  const timeout = () => new TimeoutError(
    `timed out after ${((now() - start) / 1000).toFixed(1)} s waiting for ${what} (${path})`, now() - start, 'E_LOCK_TIMEOUT',
  );
  for (;;) {
    const release = tryAcquireFileLock(path);
    if (release) return release;
    if (opts.signal?.aborted) throw timeout();
    const left = opts.deadline === undefined ? pause : opts.deadline - now();
    if (left <= 0) throw timeout();
    try {
      await sleep(Math.min(pause, left), undefined, opts.signal ? { signal: opts.signal } : undefined);
    } catch {
      throw timeout(); // aborted
    }
    pause = Math.min(pause * 2, maxPause);
  }
}

const handleOf = (path: string, key: RouterKey, release: () => void): LockHandle => ({ path, key, release });

/** Tries once; returns the handle, or undefined when another holder has it. */
export function tryAcquireRouterLock(stateDir: string, key: RouterKey): LockHandle | undefined {
  const path = lockPath(stateDir, key);
  const release = tryAcquireFileLock(path);
  return release && handleOf(path, key, release);
}

/** Waits for the router's lock until `deadline`. */
export async function acquireRouterLock(stateDir: string, key: RouterKey, opts: AcquireOptions = {}): Promise<LockHandle> {
  const path = lockPath(stateDir, key);
  try {
    return handleOf(path, key, await acquireFileLock(path, `the lock of ${describe(key)}`, opts));
  } catch (e) {
    if (e instanceof TimeoutError) {
      throw new TimeoutError(`${e.message}: another command on this router is still running`, e.timeoutMs, 'E_LOCK_TIMEOUT');
    }
    throw e;
  }
}

/** Runs `fn` with the router's lock held. */
export async function withRouterLock<T>(
  stateDir: string, key: RouterKey, opts: AcquireOptions, fn: (lock: LockHandle) => Promise<T>,
): Promise<T> {
  const lock = await acquireRouterLock(stateDir, key, opts);
  try {
    return await fn(lock);
  } finally {
    lock.release();
  }
}
