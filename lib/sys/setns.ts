/**
 * Entering network namespaces: setns(2) round trips for the calling thread, and the names iproute2 gives
 * namespaces (/run/netns/NAME). setns affects only the calling thread, so the callbacks here are synchronous:
 * no await may happen while the thread is inside another namespace. Making and deleting named namespaces is
 * lib/netns's.
 */
import { join } from 'node:path';
import * as libc from './libc.js';
import { SysError } from './errors.js';

/** Where named namespaces live (iproute2's NETNS_RUN_DIR). */
export const NETNS_RUN_DIR = '/run/netns';

/** Error for an invalid namespace name or a namespace that does not exist / already exists. */
export class NetnsError extends Error {
  /** EINVAL: bad name or callback; ENOENT / EEXIST: missing / existing namespace; EBADF: handle closed. */
  readonly code: 'EINVAL' | 'ENOENT' | 'EEXIST' | 'EBADF';
  readonly netns: string;
  constructor(code: 'EINVAL' | 'ENOENT' | 'EEXIST' | 'EBADF', netns: string, message: string) {
    super(message);
    this.name = 'NetnsError';
    this.code = code;
    this.netns = netns;
  }
}

/** iproute2 refuses names with '/', '.' and '..'; we also keep them shell- and file-safe. */
export function validateNetnsName(name: string): void {
  if (typeof name !== 'string' || !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(name)) {
    throw new NetnsError('EINVAL', String(name),
      `invalid namespace name ${JSON.stringify(name)}: 1-64 characters of [A-Za-z0-9_.-], not starting with '.' or '-'`);
  }
}

/** /run/netns/NAME for a valid namespace name (NetnsError EINVAL otherwise). */
export function netnsPath(name: string): string {
  validateNetnsName(name);
  return join(NETNS_RUN_DIR, name);
}

/**
 * The result type of a callback that runs inside a namespace: `T` itself, unless `T` is a promise — then a
 * message type no value has, so `runInNetns(ns, async () => …)` fails to type-check (setns holds only until the
 * callback returns: the code after its first await would run in the original namespace). At run time an async
 * callback is refused as well (NetnsError EINVAL), before the thread enters the namespace.
 */
export type Synchronous<T> = T extends PromiseLike<unknown> ? 'the callback must be synchronous: setns must never span an await' : T;

/** Open the calling thread's current network namespace (to come back to it after setns). */
export function openCurrentNetns(): number {
  return libc.open('/proc/thread-self/ns/net', libc.O_RDONLY);
}

/**
 * Run `fn` with the calling thread inside the namespace open on `nsFd`, then return to where it was.
 * `fn` must be synchronous: sockets and /proc/sys files it opens stay bound to the target namespace.
 */
export function runInNetnsFd<T>(nsFd: number, fn: () => Synchronous<T>): T {
  if (typeof fn !== 'function') throw new TypeError('runInNetnsFd: fn must be a function');
  // Refused before entering: its body after the first await would run outside the namespace.
  if (fn.constructor?.name === 'AsyncFunction' || fn.constructor?.name === 'AsyncGeneratorFunction') {
    throw new NetnsError('EINVAL', `fd ${nsFd}`, 'runInNetns: the callback must be synchronous, not an async function');
  }
  const self = openCurrentNetns();
  try {
    libc.setns(nsFd, libc.CLONE_NEWNET);
    try {
      const r = fn() as T;
      if (r && typeof (r as { then?: unknown }).then === 'function') {
        // refused; keep its eventual rejection from crashing the process as an unhandled one
        Promise.resolve(r).catch(() => {});
        throw new NetnsError('EINVAL', `fd ${nsFd}`, 'runInNetns: the callback returned a Promise; it must be synchronous (the thread leaves the namespace on return)');
      }
      return r;
    } finally {
      libc.setns(self, libc.CLONE_NEWNET);
    }
  } finally {
    libc.close(self);
  }
}

/**
 * Run `fn` synchronously inside the named namespace (/run/netns/NAME) and return its result; the thread is back
 * in its own namespace when this returns. Sockets and /proc/sys files opened by `fn` stay bound to the target.
 * `fn` must be synchronous (see Synchronous).
 */
export function runInNetns<T>(name: string, fn: () => Synchronous<T>): T {
  const fd = openNetnsFd(name);
  try {
    return runInNetnsFd(fd, fn);
  } finally {
    libc.close(fd);
  }
}

/** Open /run/netns/NAME (O_RDONLY): the fd to pass to setns or IFLA_NET_NS_FD. */
export function openNetnsFd(name: string): number {
  const p = netnsPath(name);
  try {
    return libc.open(p, libc.O_RDONLY);
  } catch (e) {
    if (e instanceof SysError && e.code === 'ENOENT') throw new NetnsError('ENOENT', name, `network namespace "${name}" does not exist`);
    throw e;
  }
}

