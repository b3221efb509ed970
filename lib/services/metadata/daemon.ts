/**
 * The host's one metadata + password service process. For every router with VM data it listens inside the
 * router's namespace on the tier addresses (ports 80 and 8080) with sockets made there (listeners.ts) and
 * answers each guest from the files of the VM whose address the connection comes from (handlers.ts) —
 * when a MAC is recorded for that address, only if the router sees the requester with it (requester.ts).
 *
 * Control: a Unix socket `<stateDir>/run/metadata.sock` speaking JSON lines —
 *   {"op":"sync","namespace":NS}  re-read NS's listen.json and converge its listeners; answers when done,
 *                                 with the error if a socket could not be made (the router module's reconcile
 *                                 uses this, so a command fails instead of silently serving nothing)
 *   {"op":"rescan"}               the same for every router (also on SIGHUP)
 *   {"op":"status"}               routers, listening sockets, connections, RSS
 *   {"op":"stop"}                 close everything and exit
 * One instance per state directory (flock on metadata.lock); pid in metadata.pid. With no router left to
 * serve it exits after `idleExitMs`; the next command that needs it starts it again.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LruMap } from '../../util/lru-map.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { isIpv4 } from '../../util/ip.js';
import { libc } from '../../sys/index.js';
import { MetadataError } from './errors.js';
import { handleMetadata, handlePassword } from './handlers.js';
import { MAC_FILE, NS_NAME_RE, controlSocket, lockFile, pidFile, runDir, vmDir, vmdataRoot } from './layout.js';
import { readListenSpec } from './listen-spec.js';
import { RouterListeners, peerAddress6, type ListenerLink, type ServiceKind } from './listeners.js';
import { NeighbourView, requesterMatches, type Requester } from './requester.js';

/** At most one refusal line per router and address in this time. */
const REFUSAL_LOG_MS = 10_000;

export interface DaemonOptions {
  stateDir: string;
  /** Exit this long after the last router went away (ms); negative: never. Default 5000. */
  idleExitMs?: number;
  /** Where event lines go (default: stdout as JSON lines). Never given secrets. */
  log?: (event: string, fields?: Record<string, unknown>) => void;
}

/** One router as the metadata daemon serves it: its namespace, the addresses it listens on, open connections. */
export interface RouterStatus {
  namespace: string;
  listening: string[];
  connections: number;
}

/** The metadata daemon's answer to a status request: its pid, the routers it serves, its resident memory. */
export interface DaemonStatus {
  pid: number;
  routers: RouterStatus[];
  rssBytes: number;
}

const defaultLog = (event: string, fields: Record<string, unknown> = {}) => {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), pid: process.pid, event, ...fields })}\n`);
};

export class MetadataDaemon {
  readonly stateDir: string;
  private readonly idleExitMs: number;
  private readonly log: (event: string, fields?: Record<string, unknown>) => void;
  private readonly routers = new Map<string, RouterListeners>();
  private readonly metaHttp: HttpServer;
  private readonly pwHttp: HttpServer;
  private readonly routerOf = new WeakMap<Socket, string>();
  /** Connections of link-local listeners: the tier interface they arrived on. */
  private readonly linkOf = new WeakMap<Socket, ListenerLink>();
  /** Per router and link-local interface: recorded MAC → the VM's address (listen.json's linkLocal). */
  private readonly linkMacs = new Map<string, Map<string, Record<string, string>>>();
  /** Per router: its neighbour table, read to tell who is asking (closed with the router). */
  private readonly views = new Map<string, NeighbourView>();
  /** Last refusal logged per router|address, to bound the log a hostile guest can cause. */
  private readonly refusals = new LruMap<string, { at: number; suppressed: number }>(4096);
  private control?: NetServer;
  private readonly controlClients = new Set<Socket>();
  private lockFd = -1;
  private queue: Promise<unknown> = Promise.resolve();
  private idleTimer?: NodeJS.Timeout;
  private stopping?: Promise<void>;
  /** Resolves when the daemon has stopped (stop op, signal, idle). */
  readonly stopped: Promise<void>;
  private resolveStopped!: () => void;

  constructor(opts: DaemonOptions) {
    this.stateDir = opts.stateDir;
    this.idleExitMs = opts.idleExitMs ?? 5000;
    this.log = opts.log ?? defaultLog;
    this.stopped = new Promise((r) => { this.resolveStopped = r; });
    // timeouts are checked every connectionsCheckingInterval (Node's default 30 s would let a slow client hold
    // its connection up to 40 s instead of headersTimeout's 10)
    const serve = (kind: ServiceKind) => createHttpServer({ connectionsCheckingInterval: 1000 }, (req, res) => {
      const ns = this.routerOf.get(req.socket);
      const handler = kind === 'metadata' ? handleMetadata : handlePassword;
      this.vmRoot(req.socket, ns, kind).then((root) => handler(req, res, root)).catch((e: Error) => {
        this.log('request failed', { namespace: ns, kind, error: e.message });
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end();
      });
    });
    this.metaHttp = serve('metadata');
    this.pwHttp = serve('password');
    for (const s of [this.metaHttp, this.pwHttp]) {
      s.headersTimeout = 10_000;
      s.requestTimeout = 15_000;
      s.keepAliveTimeout = 5_000;
      s.maxHeadersCount = 64;
    }
  }

  /** Take the instance lock, open the control socket, serve every router on disk. */
  async start(): Promise<void> {
    mkdirSync(runDir(this.stateDir), { recursive: true, mode: 0o700 });
    this.lockFd = libc.open(lockFile(this.stateDir), libc.O_RDWR | libc.O_CREAT, 0o600);
    const deadline = Date.now() + 3000;
    // a previous instance may still be exiting (idle): wait for its lock a little
    while (!libc.tryFlock(this.lockFd, libc.LOCK_EX)) {
      if (Date.now() > deadline) {
        libc.close(this.lockFd);
        this.lockFd = -1;
        throw new MetadataError('E_DAEMON_RUNNING', `another metadata daemon holds ${lockFile(this.stateDir)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const sock = controlSocket(this.stateDir);
    if (existsSync(sock)) unlinkSync(sock); // stale: we hold the lock, so nobody serves it
    const control = createNetServer((c) => this.controlConnection(c));
    await new Promise<void>((resolve, reject) => {
      control.once('error', reject);
      control.listen(sock, () => { control.off('error', reject); resolve(); });
    });
    chmodSync(sock, 0o600);
    this.control = control;
    await this.enqueue(() => this.rescan());
    writeFileAtomic(pidFile(this.stateDir), `${process.pid}\n`, { what: 'the metadata daemon\'s pid file', durable: false });
    this.log('started', { routers: this.routers.size });
  }

  /** Run one operation at a time (applies await socket set-up; two must not interleave on a router). */
  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Converge one router to its listen.json. */
  async sync(ns: string): Promise<RouterStatus> {
    if (!NS_NAME_RE.test(ns)) throw new MetadataError('E_LISTEN', `invalid namespace name ${JSON.stringify(ns)}`);
    try {
      const spec = readListenSpec(this.stateDir, ns);
      const cur = this.routers.get(ns);
      if (!spec || spec.addresses.length === 0) {
        if (cur) {
          await cur.closeAll();
          this.routers.delete(ns);
          this.log('router closed', { namespace: ns });
        }
        this.linkMacs.delete(ns);
        this.closeNeighbours(ns);
        return { namespace: ns, listening: [], connections: 0 };
      }
      const r = cur ?? new RouterListeners(ns, (s, n, kind, link) => this.inject(s, n, kind, link));
      if (!cur) this.routers.set(ns, r);
      this.linkMacs.set(ns, new Map((spec.linkLocal ?? []).map((l) => [l.ifname, l.macs])));
      try {
        await r.apply(spec.addresses, (spec.linkLocal ?? []).map((l) => l.ifname));
      } catch (e) {
        if (!cur) {
          await r.closeAll();
          this.routers.delete(ns);
        }
        throw e;
      }
      this.views.get(ns)?.forget(); // a command ran on the router: its interfaces may have changed
      if (!cur) this.log('router serving', { namespace: ns, addresses: spec.addresses });
      return { namespace: ns, listening: r.listening, connections: r.connectionCount };
    } finally {
      this.checkIdle();
    }
  }

  /** Converge every router on disk; routers without a listen.json any more are closed. */
  async rescan(): Promise<{ errors: Record<string, string> }> {
    const root = vmdataRoot(this.stateDir);
    const names = existsSync(root) ? readdirSync(root).filter((n) => NS_NAME_RE.test(n)) : [];
    const errors: Record<string, string> = {};
    for (const ns of new Set([...names, ...this.routers.keys()])) {
      try {
        await this.sync(ns);
      } catch (e) {
        errors[ns] = (e as Error).message;
        // a namespace not made yet (a restore in progress) is not worth a log line per router
        if (!(e instanceof MetadataError && e.code === 'E_NO_NAMESPACE')) this.log('router failed', { namespace: ns, error: (e as Error).message });
      }
    }
    return { errors };
  }

  status(): DaemonStatus {
    return {
      pid: process.pid,
      routers: [...this.routers.entries()].map(([namespace, r]) => ({ namespace, listening: r.listening, connections: r.connectionCount })),
      rssBytes: process.memoryUsage.rss(),
    };
  }

  /**
   * The directory of the VM a connection may be answered from: the one of its source address, provided the
   * router sees the requester with the MAC recorded for that address. Otherwise undefined — answered like an
   * address the router has no data for (404; `saved_password`), so a spoofer learns nothing, not even that
   * data exist — and one log line (address, MACs, neighbour state; never data).
   */
  private async vmRoot(sock: Socket, ns: string | undefined, kind: ServiceKind): Promise<string | undefined> {
    const link = this.linkOf.get(sock);
    if (link) return this.vmRootByMac(sock, ns, kind, link);
    const ip = sock.remoteAddress;
    const local = sock.localAddress;
    if (!ns || !ip || !local || !isIpv4(ip)) return undefined;
    const root = vmDir(this.stateDir, ns, ip);
    let recorded: string;
    try {
      recorded = (await readFile(join(root, MAC_FILE), 'utf8')).trim();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return root; // no data, or no MAC known: by address
      throw e;
    }
    let seen: Requester;
    try {
      seen = await this.neighbours(ns).requester(local, ip);
    } catch (e) {
      seen = { state: `error: ${(e as Error).message}` };
    }
    if (requesterMatches(recorded, seen)) return root;
    this.refused(ns, kind, ip, recorded, seen);
    return undefined;
  }

  /**
   * A connection to [fe80::a9fe:a9fe%if]: the requester (a link-local or other IPv6 address of a guest on that
   * tier) is identified by the MAC the router sees for it, and served the data of the VM address recorded with
   * that MAC on this interface; nothing when the MAC is unconfirmed or unknown.
   */
  private async vmRootByMac(sock: Socket, ns: string | undefined, kind: ServiceKind, link: ListenerLink): Promise<string | undefined> {
    const remote = peerAddress6(sock);
    if (!ns || !remote) return undefined;
    let seen: Requester;
    try {
      seen = await this.neighbours(ns).requesterOn(link.ifindex, remote);
    } catch (e) {
      seen = { state: `error: ${(e as Error).message}` };
    }
    const macs = this.linkMacs.get(ns)?.get(link.ifname);
    const ip = seen.mac !== undefined && macs && Object.hasOwn(macs, seen.mac) ? macs[seen.mac] : undefined;
    if (ip === undefined) {
      this.refused(ns, kind, remote, '(none for this MAC)', seen);
      return undefined;
    }
    const root = vmDir(this.stateDir, ns, ip);
    // the directory's own record must agree (listen.json and the tree are written by the same reconcile)
    let recorded: string;
    try {
      recorded = (await readFile(join(root, MAC_FILE), 'utf8')).trim();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    if (requesterMatches(recorded, seen)) return root;
    this.refused(ns, kind, remote, recorded, seen);
    return undefined;
  }

  private neighbours(ns: string): NeighbourView {
    let v = this.views.get(ns);
    if (!v) this.views.set(ns, (v = new NeighbourView(ns)));
    return v;
  }

  private closeNeighbours(ns: string): void {
    this.views.get(ns)?.close();
    this.views.delete(ns);
  }

  /** Log a refusal, at most one line per router and address every REFUSAL_LOG_MS (a guest can repeat it). */
  private refused(ns: string, kind: ServiceKind, ip: string, recorded: string, seen: Requester): void {
    const key = `${ns}|${ip}`;
    const now = Date.now();
    const last = this.refusals.get(key);
    if (last && now - last.at < REFUSAL_LOG_MS) {
      last.suppressed++;
      return;
    }
    this.refusals.set(key, { at: now, suppressed: 0 });
    this.log('requester refused', {
      namespace: ns, kind, source: ip, recordedMac: recorded, seenMac: seen.mac ?? null, neighbourState: seen.state,
      ...(last?.suppressed ? { suppressedSinceLast: last.suppressed } : {}),
    });
  }

  private inject(sock: Socket, ns: string, kind: ServiceKind, link?: ListenerLink): void {
    this.routerOf.set(sock, ns);
    if (link) this.linkOf.set(sock, link);
    (kind === 'metadata' ? this.metaHttp : this.pwHttp).emit('connection', sock);
  }

  private controlConnection(c: Socket): void {
    this.controlClients.add(c);
    c.once('close', () => { this.controlClients.delete(c); this.checkIdle(); });
    c.on('error', () => c.destroy());
    let buf = '';
    c.setEncoding('utf8');
    c.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > 65536) return void c.destroy();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        void this.answer(line).then((reply) => { if (!c.destroyed) c.write(`${JSON.stringify(reply)}\n`); });
      }
    });
  }

  private async answer(line: string): Promise<Record<string, unknown>> {
    let req: { op?: unknown; namespace?: unknown };
    try {
      req = JSON.parse(line) as typeof req;
    } catch {
      return { ok: false, code: 'E_DAEMON_PROTOCOL', error: 'request is not JSON' };
    }
    try {
      switch (req.op) {
        case 'sync':
          return { ok: true, ...(await this.enqueue(() => this.sync(String(req.namespace)))) };
        case 'rescan':
          return { ok: true, ...(await this.enqueue(() => this.rescan())) };
        case 'status':
          return { ok: true, ...this.status() };
        case 'stop':
          setImmediate(() => void this.stop('stop requested'));
          return { ok: true, pid: process.pid };
        default:
          return { ok: false, code: 'E_DAEMON_PROTOCOL', error: `unknown op ${JSON.stringify(req.op)}` };
      }
    } catch (e) {
      return { ok: false, code: e instanceof MetadataError ? e.code : 'E_LISTEN', error: (e as Error).message };
    }
  }

  private checkIdle(): void {
    if (this.idleExitMs < 0 || this.stopping) return;
    if (this.routers.size > 0) {
      if (this.idleTimer) clearTimeout(this.idleTimer);
      this.idleTimer = undefined;
      return;
    }
    if (this.idleTimer) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.routers.size === 0 && this.controlClients.size === 0) void this.stop('idle');
      else this.checkIdle();
    }, this.idleExitMs);
  }

  /** Close every listener and the control socket, release the lock. */
  stop(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      if (this.idleTimer) clearTimeout(this.idleTimer);
      await this.queue;
      await Promise.all([...this.routers.values()].map((r) => r.closeAll()));
      this.routers.clear();
      for (const ns of [...this.views.keys()]) this.closeNeighbours(ns);
      const sock = controlSocket(this.stateDir);
      // unlink first: a client arriving now gets ENOENT and starts a fresh daemon (which waits for our lock)
      try { unlinkSync(sock); } catch { /* gone */ }
      try {
        if (readFileSync(pidFile(this.stateDir), 'utf8').trim() === String(process.pid)) unlinkSync(pidFile(this.stateDir));
      } catch { /* gone */ }
      const closed = new Promise<void>((r) => (this.control ? this.control.close(() => r()) : r()));
      // let a pending reply (e.g. to "stop") go out, then drop the clients so close() can finish
      setTimeout(() => { for (const c of this.controlClients) c.destroy(); }, 100).unref();
      await closed;
      this.metaHttp.closeAllConnections();
      this.pwHttp.closeAllConnections();
      if (this.lockFd >= 0) libc.close(this.lockFd);
      this.lockFd = -1;
      this.log('stopped', { reason });
      this.resolveStopped();
    })();
    return this.stopping;
  }
}
