/**
 * Listening sockets inside router namespaces, served by this process. The thread enters the namespace only
 * long enough to create and bind the sockets (synchronously), comes back, and hands each fd to a net.Server.
 * Every connection remembers its router so the HTTP layer can find the VM's data; on close all of a router's
 * sockets and connections go (an open socket would keep a deleted namespace alive).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { NetnsHandle } from '../../netns/handle.js';
import { NETNS_RUN_DIR } from '../../sys/setns.js';
import { libc } from '../../sys/index.js';
import { socketFd, tcpListenSocket, tcpListenSocket6 } from '../../sys/inet-socket.js';
import { bytesToIp, ipToBytes } from '../../util/ip.js';
import { MetadataError } from './errors.js';
import { METADATA_PORT, PASSWORD_PORT, WELL_KNOWN_V6 } from './layout.js';

export type ServiceKind = 'metadata' | 'password';

/** The tier interface a link-local (IPv6) listener is bound to: its connections are that tier's guests. */
export interface ListenerLink {
  ifname: string;
  ifindex: number;
}

export interface ConnectionSink {
  (socket: Socket, namespace: string, kind: ServiceKind, link?: ListenerLink): void;
}

interface Listener {
  address: string;
  port: number;
  kind: ServiceKind;
  server: Server;
  link?: ListenerLink;
}

interface Wanted {
  address: string;
  port: number;
  kind: ServiceKind;
  link?: ListenerLink;
}

/** Identity of a named namespace: its nsfs inode (a namespace re-created under the same name differs). */
export function namespaceInode(ns: string): number {
  try {
    return statSync(join(NETNS_RUN_DIR, ns)).ino;
  } catch {
    throw new MetadataError('E_NO_NAMESPACE', `network namespace "${ns}" does not exist`);
  }
}

const key = (address: string, port: number) => `${address}:${port}`;

/**
 * Connections one source address may hold open to a router's listeners together (all its addresses and ports):
 * a guest's agents fetch one request at a time; without it one guest could hold every slot of a listener
 * (maxConnections) — its own tier's and, routed through the router, another tier's — and starve the rest.
 */
export const MAX_CONNECTIONS_PER_SOURCE = 16;

/**
 * The IPv6 peer of a link-local listener's connection, read with getpeername(2): Node's remoteAddress names
 * the scope by its interface, which it looks up in the daemon's own namespace — where that index is another
 * interface or none (ENXIO).
 */
export function peerAddress6(sock: Socket): string | undefined {
  const fd = socketFd(sock);
  if (fd === undefined) return undefined;
  const sa = libc.getpeername(fd);
  if (sa.length < 24 || sa.readUInt16LE(0) !== libc.AF_INET6) return undefined;
  return bytesToIp(sa.subarray(8, 24));
}

/** Stop listening; resolves when the handle (and its fd) is closed — connections of the server are ours to end. */
function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

export class RouterListeners {
  private readonly listeners = new Map<string, Listener>();
  private readonly connections = new Set<Socket>();
  /** Open connections per source address (link-local ones with their interface). */
  private readonly bySource = new Map<string, number>();
  private inode: number;

  constructor(readonly namespace: string, private readonly sink: ConnectionSink, private readonly maxConnections = 256,
    private readonly maxPerSource = MAX_CONNECTIONS_PER_SOURCE) {
    this.inode = namespaceInode(namespace);
  }

  get addresses(): string[] {
    return [...new Set([...this.listeners.values()].map((l) => l.address))].sort();
  }

  get listening(): string[] {
    return [...this.listeners.keys()].sort();
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Converge to listening on `addresses` (ports 80 and 8080 each) and on [fe80::a9fe:a9fe%ifname]:80 for each
   * of `links` (the metadata service only). A namespace that was re-created since the last call (other
   * inode) gets all-new sockets; so does an interface made again (other index: a socket stays bound to the
   * index it was made for).
   */
  async apply(addresses: string[], links: string[] = []): Promise<void> {
    const ino = namespaceInode(this.namespace);
    if (ino !== this.inode) {
      await this.closeAll();
      this.inode = ino;
    }
    const want = new Map<string, Wanted>();
    for (const a of addresses) {
      want.set(key(a, METADATA_PORT), { address: a, port: METADATA_PORT, kind: 'metadata' });
      want.set(key(a, PASSWORD_PORT), { address: a, port: PASSWORD_PORT, kind: 'password' });
    }
    if (links.length) {
      const h = NetnsHandle.open(this.namespace);
      try {
        for (const ifname of links) {
          const ifindex = h.netlink.linkFind(ifname)?.index;
          // an interface that is not there (yet) is simply not listened on; the next sync looks again
          if (ifindex === undefined) continue;
          want.set(`[${WELL_KNOWN_V6}%${ifname}#${ifindex}]:${METADATA_PORT}`, {
            address: WELL_KNOWN_V6, port: METADATA_PORT, kind: 'metadata', link: { ifname, ifindex },
          });
        }
      } finally {
        h.close();
      }
    }
    const closing: Array<Promise<void>> = [];
    for (const [k, l] of this.listeners) {
      if (!want.has(k)) {
        closing.push(closeServer(l.server));
        this.listeners.delete(k);
      }
    }
    await Promise.all(closing);
    const missing = [...want.entries()].filter(([k]) => !this.listeners.has(k));
    if (missing.length === 0) return;
    // all sockets of this round in one visit of the namespace; none leaks if one fails
    const fds: number[] = [];
    const h = NetnsHandle.open(this.namespace);
    try {
      h.run(() => {
        for (const [, w] of missing) {
          fds.push(w.link ? tcpListenSocket6(ipToBytes(w.address), w.port, w.link.ifindex) : tcpListenSocket(w.address, w.port));
        }
      });
    } catch (e) {
      for (const fd of fds) libc.close(fd);
      throw new MetadataError('E_LISTEN', `listening in ${this.namespace}: ${(e as Error).message}`, { cause: e });
    } finally {
      h.close();
    }
    for (let i = 0; i < missing.length; i++) {
      const [k, w] = missing[i];
      const server = createServer((sock) => this.accept(sock, w.kind, w.link));
      server.maxConnections = this.maxConnections;
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ fd: fds[i] }, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } catch (e) {
        // fds[i] belongs to Node's handle now (closing it again could hit a reused number); the rest are ours
        for (const fd of fds.slice(i + 1)) libc.close(fd);
        throw new MetadataError('E_LISTEN', `serving ${k} in ${this.namespace}: ${(e as Error).message}`, { cause: e });
      }
      server.on('error', () => { /* accept errors (EMFILE …) must not crash the daemon */ });
      this.listeners.set(k, { ...w, server });
    }
  }

  private accept(sock: Socket, kind: ServiceKind, link?: ListenerLink): void {
    sock.on('error', () => sock.destroy());
    const peer = link ? peerAddress6(sock) : sock.remoteAddress;
    const source = link ? `${peer}%${link.ifindex}` : peer;
    const held = source !== undefined && peer !== undefined ? (this.bySource.get(source) ?? 0) : Infinity;
    if (held >= this.maxPerSource) return void sock.destroy();
    this.bySource.set(source!, held + 1);
    this.connections.add(sock);
    sock.once('close', () => {
      this.connections.delete(sock);
      const n = (this.bySource.get(source!) ?? 1) - 1;
      if (n > 0) this.bySource.set(source!, n);
      else this.bySource.delete(source!);
    });
    this.sink(sock, this.namespace, kind, link);
  }

  /** Close every listening socket and every open connection of this router; resolves once the fds are closed. */
  async closeAll(): Promise<void> {
    const servers = [...this.listeners.values()].map((l) => l.server);
    this.listeners.clear();
    for (const c of this.connections) c.destroy();
    this.connections.clear(); // bySource empties as their 'close' events come
    await Promise.all(servers.map(closeServer));
  }
}
