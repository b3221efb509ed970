/**
 * The only libc FFI of netns-router (koffi). Every wrapper throws SysError with the errno on failure;
 * callers never see -1. Buffers passed as `void *` are used only during the call (koffi pins them).
 */
import { SysError } from './errors.js';
import { errno, lazyBinding, libcLibrary } from './ffi.js';

const c = lazyBinding(() => {
  const libc = libcLibrary();
  return {
    socket: libc.func('int socket(int domain, int type, int protocol)'),
    bind: libc.func('int bind(int fd, const void *addr, uint32_t len)'),
    setsockopt: libc.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
    getsockopt: libc.func('int getsockopt(int fd, int level, int name, _Inout_ void *val, _Inout_ uint32_t *len)'),
    getsockname: libc.func('int getsockname(int fd, _Inout_ void *addr, _Inout_ uint32_t *len)'),
    getpeername: libc.func('int getpeername(int fd, _Inout_ void *addr, _Inout_ uint32_t *len)'),
    sendto: libc.func('intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t alen)'),
    send: libc.func('intptr_t send(int fd, const void *buf, size_t len, int flags)'),
    recv: libc.func('intptr_t recv(int fd, _Inout_ void *buf, size_t len, int flags)'),
    close: libc.func('int close(int fd)'),
    setns: libc.func('int setns(int fd, int nstype)'),
    unshare: libc.func('int unshare(int flags)'),
    mount: libc.func('int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const char *data)'),
    umount2: libc.func('int umount2(const char *target, int flags)'),
    open: libc.func('int open(const char *path, int flags, uint32_t mode)'),
    flock: libc.func('int flock(int fd, int op)'),
    gettid: libc.func('int gettid()'),
    // variadic in libc: declared as such so that koffi passes the optional argument correctly
    ioctl: libc.func('int ioctl(int fd, unsigned long request, ...)'),
    getpid: libc.func('int getpid()'),
    malloc_trim: libc.func('int malloc_trim(size_t pad)'),
    poll: libc.func('int poll(_Inout_ void *fds, unsigned long nfds, int timeout)'),
    // variadic in libc, like ioctl
    fcntl: libc.func('int fcntl(int fd, int cmd, ...)'),
  };
});

function check(name: string, rc: number | bigint, detail?: string): number {
  const n = Number(rc);
  if (n < 0) throw new SysError(name, errno(), detail);
  return n;
}

// Constants (x86_64 / generic Linux UAPI values).
export const AF_NETLINK = 16;
/** NETLINK_NETFILTER (linux/netlink.h): nftables, conntrack. */
export const NETLINK_NETFILTER = 12;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_UNSPEC = 0;
export const AF_BRIDGE = 7;
export const SOCK_RAW = 3;
export const SOCK_DGRAM = 2;
export const SOCK_STREAM = 1;
export const SOCK_CLOEXEC = 0o2000000;
export const SOCK_NONBLOCK = 0o4000;
export const SOL_SOCKET = 1;
export const SO_RCVBUF = 8;
export const SO_SNDBUF = 7;
export const SO_RCVBUFFORCE = 33;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVTIMEO = 20;
export const SO_REUSEADDR = 2;
export const SO_PROTOCOL = 38;
export const SO_DOMAIN = 39;
export const SO_PEERCRED = 17;
export const MSG_DONTWAIT = 0x40;
export const MSG_PEEK = 0x2;
export const MSG_TRUNC = 0x20;
export const CLONE_NEWNET = 0x40000000;
export const CLONE_NEWNS = 0x00020000;
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_CLOEXEC = 0o2000000;
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;
export const MS_BIND = 4096;
export const MS_REC = 16384;
export const MS_SHARED = 1 << 20;
export const MS_PRIVATE = 1 << 18;
export const MS_SLAVE = 1 << 19;
export const MNT_DETACH = 2;
/** ioctl on a socket: an fd on the network namespace the socket belongs to (Linux ≥ 4.9). */
export const SIOCGSKNS = 0x894c;

export function socket(domain: number, type: number, protocol: number, detail?: string): number {
  return check('socket', c().socket(domain, type | SOCK_CLOEXEC, protocol), detail);
}

export function bind(fd: number, addr: Uint8Array): void {
  check('bind', c().bind(fd, addr, addr.length));
}

export function setsockopt(fd: number, level: number, name: number, value: Uint8Array): void {
  check('setsockopt', c().setsockopt(fd, level, name, value, value.length), `(level ${level}, option ${name})`);
}

/** setsockopt with a 32-bit integer value. */
export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value, 0);
  setsockopt(fd, level, name, b);
}

/** getsockopt returning the raw bytes the kernel wrote (at most `size`). */
export function getsockopt(fd: number, level: number, name: number, size = 4): Buffer {
  const b = Buffer.alloc(size);
  const len = [size];
  check('getsockopt', c().getsockopt(fd, level, name, b, len), `(level ${level}, option ${name})`);
  return b.subarray(0, len[0]);
}

/** The credentials of a unix socket's peer, as the kernel took them when it connected (SO_PEERCRED: struct ucred). */
export function peerCredentials(fd: number): { pid: number; uid: number; gid: number } {
  const b = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, 12);
  return { pid: b.readInt32LE(0), uid: b.readUInt32LE(4), gid: b.readUInt32LE(8) };
}

export function getsockname(fd: number, size = 128): Buffer {
  const b = Buffer.alloc(size);
  const len = [size];
  check('getsockname', c().getsockname(fd, b, len));
  return b.subarray(0, len[0]);
}

/** The peer's struct sockaddr of a connected socket. */
export function getpeername(fd: number, size = 128): Buffer {
  const b = Buffer.alloc(size);
  const len = [size];
  check('getpeername', c().getpeername(fd, b, len));
  return b.subarray(0, len[0]);
}

export function sendto(fd: number, buf: Uint8Array, addr: Uint8Array | null, flags = 0): number {
  return check('sendto', c().sendto(fd, buf, buf.length, flags, addr, addr ? addr.length : 0));
}

export function send(fd: number, buf: Uint8Array, flags = 0): number {
  return check('send', c().send(fd, buf, buf.length, flags));
}

/** recv into `buf`; returns the byte count (with MSG_TRUNC: the real datagram length). */
export function recv(fd: number, buf: Uint8Array, flags = 0): number {
  return check('recv', c().recv(fd, buf, buf.length, flags));
}

/** recv that returns -errno instead of throwing (for EAGAIN/EINTR loops). */
export function recvRaw(fd: number, buf: Uint8Array, flags = 0): number {
  const n = Number(c().recv(fd, buf, buf.length, flags));
  return n < 0 ? -errno() : n;
}

const POLLIN = 0x1;
const POLLERR = 0x8;
const POLLHUP = 0x10;
const EINTR = 4;

/**
 * poll(2) for reading: the fds of `fds` that are readable (or in error) within `timeoutMs`; none on a timeout or
 * when a signal interrupted the wait (the caller loops on its own deadline).
 */
export function pollReadable(fds: readonly number[], timeoutMs: number): number[] {
  const b = Buffer.alloc(8 * fds.length); // struct pollfd { int fd; short events; short revents; }
  fds.forEach((fd, i) => { b.writeInt32LE(fd, 8 * i); b.writeInt16LE(POLLIN, 8 * i + 4); });
  if (Number(c().poll(b, fds.length, Math.max(0, Math.ceil(timeoutMs)))) < 0) {
    const e = errno();
    if (e === EINTR) return [];
    throw new SysError('poll', e);
  }
  return fds.filter((_, i) => (b.readInt16LE(8 * i + 6) & (POLLIN | POLLERR | POLLHUP)) !== 0);
}

function completion(name: string, detail: string | undefined, resolve: (n: number) => void, reject: (e: unknown) => void) {
  return (err: unknown, rc: number | bigint): void => {
    if (err) return reject(err);
    const n = Number(rc);
    if (n < 0) return reject(new SysError(name, errno(), detail));
    resolve(n);
  };
}

/**
 * sendto on koffi's worker pool. For netlink the kernel runs the request inside sendto (e.g. an RCU-bound
 * link delete of ~20 ms), so this is the call to move off the event loop. The socket must not be used by
 * anyone else until the promise settles. When koffi refuses the call (its limit of asynchronous calls in flight:
 * a slot frees only when a completion runs on the event loop) this throws synchronously — the caller knows the
 * call was not queued — instead of returning a rejected promise.
 */
export function sendtoAsync(fd: number, buf: Uint8Array, addr: Uint8Array | null, flags = 0): Promise<number> {
  let settle: [(n: number) => void, (e: unknown) => void] | undefined;
  const p = new Promise<number>((resolve, reject) => { settle = [resolve, reject]; });
  // koffi passes a typed array as a bare pointer to its memory and holds no reference to it: until the worker
  // has run, only this closure keeps `buf` and `addr` from the garbage collector (freed, the kernel reads
  // whatever took their place — a message it drops without an ACK)
  const held: Array<Uint8Array | null> = [buf, addr];
  const done = completion('sendto', undefined, ...settle!);
  c().sendto.async(fd, buf, buf.length, flags, addr, addr ? addr.length : 0, (err: unknown, rc: number | bigint) => {
    held.length = 0;
    done(err, rc);
  });
  return p;
}

/** An fd on the network namespace a socket belongs to (SIOCGSKNS); the caller closes it. */
export function socketNetns(fd: number): number {
  return check('ioctl', c().ioctl(fd, SIOCGSKNS, 'uintptr_t', 0), '(SIOCGSKNS)');
}

export function close(fd: number): void {
  check('close', c().close(fd));
}

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/** Mark `fd` close-on-exec (FD_CLOEXEC): for descriptors a C library opened without it. */
export function setCloexec(fd: number): void {
  const flags = check('fcntl', c().fcntl(fd, F_GETFD), '(F_GETFD)');
  if (!(flags & FD_CLOEXEC)) check('fcntl', c().fcntl(fd, F_SETFD, 'int', flags | FD_CLOEXEC), '(F_SETFD)');
}

/** Whether `fd` is close-on-exec. */
export function isCloexec(fd: number): boolean {
  return (check('fcntl', c().fcntl(fd, F_GETFD), '(F_GETFD)') & FD_CLOEXEC) !== 0;
}

/** Most closes left on koffi's worker pool at once (closeAsync); beyond it a close runs on the calling thread. */
export const CLOSES_MAX = 64;
let closesInFlight = 0;

/**
 * close on koffi's worker pool: the release of some sockets waits in the kernel — an AF_PACKET socket for an RCU
 * grace period (packet_release → synchronize_net, 8-15 ms), a NETLINK_NETFILTER socket for nf_tables' clean-up of
 * the last transactions when one deleted anything (its NETLINK_URELEASE notifier flushes that work, which waits
 * for a grace period: 5-20 ms) — and that wait then runs on the worker, not the event loop. koffi holds at most
 * 256 calls and frees one only when its completion has run on the event loop: at most CLOSES_MAX closes are left
 * there (the rest of koffi's slots stay for the calls a caller awaits — a large nft batch, waitpid, sendto);
 * beyond that, or when koffi refuses the call, the descriptor is closed here, now (closesWaiting: a long
 * synchronous stretch gives the event loop a turn before it comes to that).
 */
export function closeAsync(fd: number): Promise<void> {
  if (closesInFlight >= CLOSES_MAX) {
    close(fd);
    return Promise.resolve();
  }
  let settle: [(n: number) => void, (e: unknown) => void] | undefined;
  const p = new Promise<number>((resolve, reject) => { settle = [resolve, reject]; });
  const done = completion('close', undefined, ...settle!);
  try {
    c().close.async(fd, (err: unknown, rc: number | bigint) => {
      closesInFlight--;
      done(err, rc);
    });
  } catch {
    close(fd);
    return Promise.resolve();
  }
  closesInFlight++;
  return p.then(() => undefined);
}

/** Closes left on the worker pool (closeAsync) whose completion has not run on the event loop yet. */
export function closesWaiting(): number {
  return closesInFlight;
}

const F_DUPFD_CLOEXEC = 1030;

/** A new descriptor (close-on-exec) for what `fd` refers to. */
export function dupCloexec(fd: number): number {
  return check('fcntl', c().fcntl(fd, F_DUPFD_CLOEXEC, 'int', 0), '(F_DUPFD_CLOEXEC)');
}

export function setns(fd: number, nstype: number): void {
  check('setns', c().setns(fd, nstype));
}

export function unshare(flags: number): void {
  check('unshare', c().unshare(flags));
}

export function mount(src: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void {
  check('mount', c().mount(src, target, fstype, flags, data), target);
}

export function umount2(target: string, flags: number): void {
  check('umount2', c().umount2(target, flags), target);
}

export function open(path: string, flags: number, mode = 0o644): number {
  return check('open', c().open(path, flags | O_CLOEXEC, mode), path);
}

export function flock(fd: number, op: number): void {
  check('flock', c().flock(fd, op));
}

/** flock that returns false instead of throwing when a non-blocking lock is held elsewhere. */
export function tryFlock(fd: number, op: number): boolean {
  const rc = c().flock(fd, op | LOCK_NB);
  if (rc === 0) return true;
  const e = errno();
  if (e === 11 /* EWOULDBLOCK */) return false;
  throw new SysError('flock', e);
}

export function gettid(): number {
  return c().gettid();
}

/**
 * Give the C heap's free pages back to the system (glibc malloc_trim(0)): frees inside the heap — e.g. a
 * libnftables context with its ruleset cache, ~0.6 MB per table — are otherwise kept by the process for good.
 */
export function mallocTrim(): void {
  c().malloc_trim(0);
}

export function getpid(): number {
  return c().getpid();
}
