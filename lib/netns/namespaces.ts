/**
 * Named network namespaces made exactly as iproute2 makes them: /run/netns is a shared mount point,
 * /run/netns/NAME a bind mount of a namespace's nsfs inode. So `ip netns list`/`ip netns exec` see ours and
 * we see theirs. Everything here runs synchronously on the calling (main) thread: setns/unshare affect only
 * the calling thread, which is why no await may happen while the thread is inside another namespace.
 * Entering a namespace (runInNetns, openNetnsFd, …) is lib/sys/setns.ts's; netns-router/netns exports both.
 */
import { mkdirSync, readdirSync, unlinkSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { libc } from '../sys/index.js';
import { SysError } from '../sys/errors.js';
import { NETNS_RUN_DIR, NetnsError, netnsPath, openCurrentNetns } from '../sys/setns.js';

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

/** Whether the named namespace exists (/run/netns/NAME is there). An invalid name throws NetnsError EINVAL. */
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
