/**
 * Named network namespaces made exactly as iproute2 makes them: /run/netns is a shared mount point,
 * /run/netns/NAME a bind mount of a namespace's nsfs inode. So `ip netns list`/`ip netns exec` see ours and
 * we see theirs. Everything here runs synchronously on the calling (main) thread: setns/unshare affect only
 * the calling thread, which is why no await may happen while the thread is inside another namespace.
 */
import { mkdirSync, readdirSync, unlinkSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { libc } from '../sys/index.js';
import { SysError } from '../sys/errors.js';

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

export function netnsPath(name: string): string {
  validateNetnsName(name);
  return join(NETNS_RUN_DIR, name);
}

let runDirReady = false;

/** mkdir /run/netns and make it a shared mount point (bind it onto itself first if it is not a mount). */
function prepareRunDir(): void {
  if (runDirReady) return;
  mkdirSync(NETNS_RUN_DIR, { recursive: true, mode: 0o755 });
  try {
    libc.mount('', NETNS_RUN_DIR, 'none', libc.MS_SHARED | libc.MS_REC, null);
  } catch (e) {
    if (!(e instanceof SysError) || e.code !== 'EINVAL') throw e;
    // Not a mount point yet: bind it onto itself, then make it shared (what iproute2 does).
    libc.mount(NETNS_RUN_DIR, NETNS_RUN_DIR, 'none', libc.MS_BIND | libc.MS_REC, null);
    libc.mount('', NETNS_RUN_DIR, 'none', libc.MS_SHARED | libc.MS_REC, null);
  }
  runDirReady = true;
}

/** Open the calling thread's current network namespace (to come back to it after setns). */
export function openCurrentNetns(): number {
  return libc.open('/proc/thread-self/ns/net', libc.O_RDONLY);
}

/**
 * Run `fn` with the calling thread inside the namespace open on `nsFd`, then return to where it was.
 * `fn` must be synchronous: sockets and /proc/sys files it opens stay bound to the target namespace.
 */
export function runInNetnsFd<T>(nsFd: number, fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError('runInNetnsFd: fn must be a function');
  // Refused before entering: its body after the first await would run outside the namespace.
  if (fn.constructor?.name === 'AsyncFunction' || fn.constructor?.name === 'AsyncGeneratorFunction') {
    throw new NetnsError('EINVAL', `fd ${nsFd}`, 'runInNetns: the callback must be synchronous, not an async function');
  }
  const self = openCurrentNetns();
  try {
    libc.setns(nsFd, libc.CLONE_NEWNET);
    try {
      const r = fn();
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

/** Run `fn` synchronously inside the named namespace. */
export function runInNetns<T>(name: string, fn: () => T): T {
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

function isNsfsMount(path: string): boolean {
  // A bound namespace file reports the nsfs device; a plain placeholder file is on tmpfs.
  try {
    const st = statSync(path);
    const parent = statSync(NETNS_RUN_DIR);
    return st.dev !== parent.dev;
  } catch {
    return false;
  }
}

/**
 * Identity of the namespace /run/netns/NAME names now ("dev:inode" of its nsfs file), or undefined when none.
 * A long-lived socket or context inside a namespace must check it before each use: another process may have
 * deleted the namespace and made a new one of the same name, and the old socket would act on the old one.
 */
export function netnsIdentity(name: string): string | undefined {
  const st = statSync(netnsPath(name), { throwIfNoEntry: false });
  return st ? `${st.dev}:${st.ino}` : undefined;
}

export function netnsExists(name: string): boolean {
  const p = netnsPath(name);
  return existsSync(p) && isNsfsMount(p);
}

/** Names in /run/netns that are live namespaces, sorted. */
export function listNetns(): string[] {
  if (!existsSync(NETNS_RUN_DIR)) return [];
  return readdirSync(NETNS_RUN_DIR).filter((n) => isNsfsMount(join(NETNS_RUN_DIR, n))).sort();
}

/**
 * Create a named namespace (EEXIST as NetnsError if it exists). ~1 ms.
 * With `ifMissing`, an existing namespace is not an error. `init` runs synchronously inside the new namespace
 * before it gets its name: whatever it sets up (e.g. an ownership mark) is there from the moment the
 * namespace is visible, and if it throws (or the process dies) the namespace never appears.
 */
export function addNetns(name: string, opts: { ifMissing?: boolean; init?: () => void } = {}): void {
  const p = netnsPath(name);
  prepareRunDir();
  if (existsSync(p)) {
    if (isNsfsMount(p)) {
      if (opts.ifMissing) return;
      throw new NetnsError('EEXIST', name, `network namespace "${name}" already exists`);
    }
    unlinkSync(p); // stale placeholder of an interrupted add
  }
  const fd = libc.open(p, libc.O_RDONLY | libc.O_CREAT | libc.O_EXCL, 0);
  libc.close(fd);
  const self = openCurrentNetns();
  try {
    libc.unshare(libc.CLONE_NEWNET);
    try {
      opts.init?.();
      libc.mount(`/proc/self/task/${libc.gettid()}/ns/net`, p, 'none', libc.MS_BIND, null);
    } finally {
      libc.setns(self, libc.CLONE_NEWNET);
    }
  } catch (e) {
    try { unlinkSync(p); } catch { /* already gone */ }
    throw e;
  } finally {
    libc.close(self);
  }
}

type CloseHook = (name: string) => void;
const beforeDeleteHooks = new Set<CloseHook>();

/**
 * Register a hook run before a namespace is deleted: owners of sockets/contexts inside it close them there,
 * since an open socket keeps a deleted namespace (and its interfaces) alive.
 */
export function onBeforeNetnsDelete(hook: CloseHook): () => void {
  beforeDeleteHooks.add(hook);
  return () => beforeDeleteHooks.delete(hook);
}

/** Delete a named namespace (unmount + unlink). With `ifExists`, a missing one is not an error. */
export function deleteNetns(name: string, opts: { ifExists?: boolean } = {}): void {
  const p = netnsPath(name);
  if (!existsSync(p)) {
    if (opts.ifExists) return;
    throw new NetnsError('ENOENT', name, `network namespace "${name}" does not exist`);
  }
  for (const h of beforeDeleteHooks) h(name);
  try {
    libc.umount2(p, libc.MNT_DETACH);
  } catch (e) {
    if (!(e instanceof SysError) || e.code !== 'EINVAL') throw e; // EINVAL: not mounted (stale placeholder)
  }
  unlinkSync(p);
}
