/**
 * TCP listening sockets (IPv4, and IPv6 with a scope for link-local addresses) made with libc directly, so that they can be created while the thread is inside
 * another network namespace (the socket stays bound to the namespace it was created in) and then handed to
 * Node (`net.Server.listen({ fd })`). libc.ts has socket/setsockopt/bind/close; `listen` is bound here.
 */
import { SysError } from './errors.js';
import { errno, lazyBinding, libcLibrary } from './ffi.js';
import * as libc from './libc.js';

const cListen = lazyBinding(() => libcLibrary().func('int listen(int fd, int backlog)'));

export const IPPROTO_IP = 0;
export const IPPROTO_IPV6 = 41;
/** Bind to an address that is not (yet) configured on an interface of the namespace (IPv6 sockets too). */
export const IP_FREEBIND = 15;
/** An AF_INET6 socket that takes IPv6 only (no IPv4-mapped peers). */
export const IPV6_V6ONLY = 26;

/** The descriptor under a Node socket (its libuv handle's), for calls Node has none of; undefined once closed. */
export function socketFd(sock: object): number | undefined {
  const fd = (sock as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

export function listen(fd: number, backlog: number): void {
  const rc = Number(cListen()(fd, backlog));
  if (rc < 0) throw new SysError('listen', errno());
}

/** struct sockaddr_in for a dotted-quad address and a port. */
export function sockaddrIn(address: string, port: number): Buffer {
  const parts = address.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new SysError('bind', 22, `(invalid IPv4 address ${JSON.stringify(address)})`);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new SysError('bind', 22, `(invalid port ${port})`);
  const b = Buffer.alloc(16);
  b.writeUInt16LE(libc.AF_INET, 0);
  b.writeUInt16BE(port, 2);
  for (let i = 0; i < 4; i++) b[4 + i] = parts[i];
  return b;
}

/**
 * struct sockaddr_in6 for 16 address bytes, a port and a scope (interface index; needed for a link-local
 * address, 0 otherwise).
 */
export function sockaddrIn6(address: Uint8Array, port: number, scopeId = 0): Buffer {
  if (address.length !== 16) throw new SysError('bind', 22, '(an IPv6 address is 16 bytes)');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new SysError('bind', 22, `(invalid port ${port})`);
  if (!Number.isInteger(scopeId) || scopeId < 0 || scopeId > 0xffffffff) throw new SysError('bind', 22, `(invalid scope ${scopeId})`);
  const b = Buffer.alloc(28);
  b.writeUInt16LE(libc.AF_INET6, 0);
  b.writeUInt16BE(port, 2);
  // bytes 4..7: flow info (0)
  Buffer.from(address).copy(b, 8);
  b.writeUInt32LE(scopeId, 24);
  return b;
}

export interface TcpListenOptions {
  /** listen(2) backlog (default 128). */
  backlog?: number;
  /** IP_FREEBIND: allow the address to appear on an interface later (default true). */
  freebind?: boolean;
}

/**
 * A non-blocking, close-on-exec TCP socket bound to address:port and listening, in the calling thread's
 * current network namespace. Returns the fd (the caller owns it).
 */
export function tcpListenSocket(address: string, port: number, opts: TcpListenOptions = {}): number {
  return listening(libc.AF_INET, sockaddrIn(address, port), opts);
}

/**
 * The same for IPv6: `address` as 16 bytes, `scopeId` the interface a link-local address belongs to (a
 * socket bound to fe80::…%if only accepts connections arriving on that interface). IPv6 only (V6ONLY).
 */
export function tcpListenSocket6(address: Uint8Array, port: number, scopeId: number, opts: TcpListenOptions = {}): number {
  return listening(libc.AF_INET6, sockaddrIn6(address, port, scopeId), opts);
}

function listening(family: number, addr: Buffer, opts: TcpListenOptions): number {
  const fd = libc.socket(family, libc.SOCK_STREAM | libc.SOCK_NONBLOCK, 0);
  try {
    libc.setsockoptInt(fd, libc.SOL_SOCKET, libc.SO_REUSEADDR, 1);
    if (family === libc.AF_INET6) libc.setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    if (opts.freebind !== false) libc.setsockoptInt(fd, IPPROTO_IP, IP_FREEBIND, 1);
    libc.bind(fd, addr);
    listen(fd, opts.backlog ?? 128);
    return fd;
  } catch (e) {
    try { libc.close(fd); } catch { /* already failing */ }
    throw e;
  }
}
