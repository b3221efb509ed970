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
import { tcpListenSocket } from '../../sys/inet-socket.js';
import { MetadataError } from './errors.js';
import { METADATA_PORT, PASSWORD_PORT } from './layout.js';

export type ServiceKind = 'metadata' | 'password';

export interface ConnectionSink {
  (socket: Socket, namespace: string, kind: ServiceKind): void;
}

interface Listener {
  address: string;
  port: number;
  kind: ServiceKind;
  server: Server;
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

/** Stop listening; resolves when the handle (and its fd) is closed — connections of the server are ours to end. */
function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

export class RouterListeners {
  private readonly listeners = new Map<string, Listener>();
  private readonly connections = new Set<Socket>();
  private inode: number;

  constructor(readonly namespace: string, private readonly sink: ConnectionSink, private readonly maxConnections = 256) {
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
   * Converge to listening on `addresses` (ports 80 and 8080 each). A namespace that was re-created since the
   * last call (other inode) gets all-new sockets.
   */
  async apply(addresses: string[]): Promise<void> {
    const ino = namespaceInode(this.namespace);
    if (ino !== this.inode) {
      await this.closeAll();
      this.inode = ino;
    }
    const want = new Map<string, { address: string; port: number; kind: ServiceKind }>();
    for (const a of addresses) {
      want.set(key(a, METADATA_PORT), { address: a, port: METADATA_PORT, kind: 'metadata' });
      want.set(key(a, PASSWORD_PORT), { address: a, port: PASSWORD_PORT, kind: 'password' });
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
        for (const [, w] of missing) fds.push(tcpListenSocket(w.address, w.port));
      });
    } catch (e) {
      for (const fd of fds) libc.close(fd);
      throw new MetadataError('E_LISTEN', `listening in ${this.namespace}: ${(e as Error).message}`, { cause: e });
    } finally {
      h.close();
    }
    for (let i = 0; i < missing.length; i++) {
      const [k, w] = missing[i];
      const server = createServer((sock) => this.accept(sock, w.kind));
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

  private accept(sock: Socket, kind: ServiceKind): void {
    this.connections.add(sock);
    sock.once('close', () => this.connections.delete(sock));
    sock.on('error', () => sock.destroy());
    this.sink(sock, this.namespace, kind);
  }

  /** Close every listening socket and every open connection of this router; resolves once the fds are closed. */
  async closeAll(): Promise<void> {
    const servers = [...this.listeners.values()].map((l) => l.server);
    this.listeners.clear();
    for (const c of this.connections) c.destroy();
    this.connections.clear();
    await Promise.all(servers.map(closeServer));
  }
}
