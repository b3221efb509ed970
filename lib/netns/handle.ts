/**
 * A handle on one network namespace: netlink sockets created inside it, sysctls opened inside it, and
 * `run(fn)` to execute synchronous code there. Handles on named namespaces are closed automatically before
 * `deleteNetns` removes the namespace.
 */
import { libc } from '../sys/index.js';
import { NetlinkSocket, type NetlinkSocketOptions } from '../netlink/socket.js';
import { NetlinkHandle } from '../netlink/handle.js';
import { NETLINK_ROUTE } from '../netlink/constants.js';
import { onBeforeNetnsDelete } from './namespaces.js';
import { NetnsError, openNetnsFd, openCurrentNetns, runInNetnsFd, validateNetnsName, type Synchronous } from '../sys/setns.js';
import { openSysctl, readSysctlFd, writeSysctlFd, confKey } from './sysctl.js';

const openHandles = new Map<string, Set<NetnsHandle>>();
onBeforeNetnsDelete((name) => {
  for (const h of openHandles.get(name) ?? []) h.close();
});

/**
 * An open named namespace (or the caller's, `NetnsHandle.current()`): its rtnetlink verbs (`.netlink`),
 * sockets created inside it (`.socket(protocol)`), its sysctls (`.sysctlGet/.sysctlSet/.setConf`), and `.run(fn)`
 * for synchronous code inside it. Close handles before deleting their namespace (an open socket keeps it alive;
 * deleteNetns closes this package's own handles of it).
 */
export class NetnsHandle {
  /** Namespace name, or null for the namespace the process was in when the handle was opened. */
  readonly name: string | null;
  /** An fd on the namespace (for setns and IFLA_NET_NS_FD). */
  readonly fd: number;
  private nl?: NetlinkHandle;
  private readonly closers = new Set<() => void>();
  private closed = false;

  private constructor(name: string | null, fd: number) {
    this.name = name;
    this.fd = fd;
  }

  /** Open a handle on a named namespace (/run/netns/NAME). */
  static open(name: string): NetnsHandle {
    validateNetnsName(name);
    const h = new NetnsHandle(name, openNetnsFd(name));
    let set = openHandles.get(name);
    if (!set) openHandles.set(name, (set = new Set()));
    set.add(h);
    return h;
  }

  /** A handle on the calling thread's current namespace. */
  static current(): NetnsHandle {
    return new NetnsHandle(null, openCurrentNetns());
  }

  private check(): void {
    if (this.closed) throw new NetnsError('EBADF', this.name ?? '(current)', `namespace handle ${this.name ?? '(current)'} is closed`);
  }

  /** Run synchronous code inside the namespace (an async callback does not type-check: see Synchronous). */
  run<T>(fn: () => Synchronous<T>): T {
    this.check();
    return runInNetnsFd(this.fd, fn);
  }

  /** Open a netlink socket of any protocol inside the namespace (caller closes it, or it closes with the handle). */
  socket(protocol = NETLINK_ROUTE, opts?: NetlinkSocketOptions): NetlinkSocket {
    const s = this.run(() => NetlinkSocket.open(protocol, opts));
    this.closers.add(() => s.close());
    return s;
  }

  /** The rtnetlink verbs (links, addresses, routes, neighbours) of this namespace, on one shared socket. */
  get netlink(): NetlinkHandle {
    this.check();
    if (!this.nl || this.nl.socket.isClosed) this.nl = new NetlinkHandle(this.socket(NETLINK_ROUTE));
    return this.nl;
  }

  /**
   * An rtnetlink handle on this namespace that neither this handle's close nor deleteNetns closes: its socket
   * keeps the namespace alive until the caller closes it (`.socket.close()`) — e.g. to delete the namespace's
   * links after its name is gone.
   */
  detachedNetlink(): NetlinkHandle {
    return new NetlinkHandle(this.run(() => NetlinkSocket.open(NETLINK_ROUTE)));
  }

  /** Register something to close with this handle (e.g. an nft context bound to the namespace). */
  onClose(fn: () => void): void {
    this.closers.add(fn);
  }

  sysctlGet(key: string): string {
    const fd = this.run(() => openSysctl(key, false));
    return readSysctlFd(fd);
  }

  sysctlSet(key: string, value: string | number): void {
    const fd = this.run(() => openSysctl(key, true));
    writeSysctlFd(key, fd, value);
  }

  /** Per-interface sysctl, e.g. setConf('ipv6', 'vn-100-2a', 'disable_ipv6', 1). */
  setConf(family: 'ipv4' | 'ipv6', ifname: string, setting: string, value: string | number): void {
    this.sysctlSet(confKey(family, ifname, setting), value);
  }

  getConf(family: 'ipv4' | 'ipv6', ifname: string, setting: string): string {
    return this.sysctlGet(confKey(family, ifname, setting));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.closers) {
      try { c(); } catch { /* closing best-effort */ }
    }
    this.closers.clear();
    libc.close(this.fd);
    if (this.name) openHandles.get(this.name)?.delete(this);
  }
}
