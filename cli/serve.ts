/**
 * `netns-router serve [--socket PATH] [--no-shim-port] [--state-dir DIR]... [--no-watchdog]`: the resident
 * engine. It runs the command lines other processes hand it exactly as they would run them — same parser, same
 * router locks, same log files, same exit codes — but warm: code already compiled by the JIT, the router tables
 * compiled for the last models (EngineCaches), nftables contexts kept open. Two front doors:
 *
 *  - a unix socket (default /run/netns-router/engine.sock, root only: mode 0600, in a directory that belongs to
 *    root and that nobody else can write — serve refuses any other), used by the netns-router command itself
 *    (cli/resident.cts, JSON lines);
 *  - a loopback TCP port for the extension's wrapper shim, which is bash and reaches it without starting node at
 *    all (lib/router/contract/install-wrapper.ts; wire format in shim-wire.ts). The port, a random token and
 *    this process's pid and start time are in `engine.tcp` next to the socket (root only): a process that
 *    cannot read that file cannot use the port, one in another network namespace does not reach it, and the
 *    shim talks to the port only while this process is alive (so it never sends a command line to whatever
 *    listens there after a crash).
 *
 * It also runs the daemon watchdog (lib/router/watchdog.ts, docs/daemons.md): dnsmasq, haproxy and metadata
 * daemons of the watched state directories that die are restarted within seconds. Watched: `--state-dir`
 * (repeatable; default the extension's), every state directory of a command served, and those an earlier run
 * learned (`watched-state-dirs` next to the socket). `--no-watchdog` turns it off.
 *
 * Hostile or faulty clients: a connection has 10 s to deliver its request, at most 256 per front door wait for
 * theirs (more are closed at once), the shim port reads at most 256 bytes before the token and refuses a wrong one
 * at once; a command line runs only after its client's go (a client that gave up waiting for "ready" runs the
 * command itself, and the engine never runs it late). A client that disconnects after its go does not stop its
 * command: it completes (or fails) under its router's lock like any other.
 *
 * Safety: commands of different routers run concurrently, commands of one router wait for each other on the
 * router's lock (flock excludes two descriptors even inside one process); a command that timed out keeps its
 * lock until its engine call has really ended. A client of another build (or another namespace) is told
 * `stale` and runs the command itself; when this server's own files change (an upgrade) it stops taking
 * commands and exits once idle, so that a supervisor (systemd Restart=always) brings up the new code.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { appendFileSync, chmodSync, closeSync, mkdirSync, openSync, readFileSync, realpathSync, unlinkSync } from 'node:fs';
import { writeFileAtomic } from '../lib/util/atomic-file.js';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  RESIDENT_PROTOCOL, buildId, jsonLines, namespacesId, socketDirProblem, type ResidentReply, type ResidentRequest,
} from './resident.cjs';
import { loadRouterApi } from './engine.js';
import { runCli } from './run.js';
import { ShimRefusal, ShimRequestReader, shimReply, shimRunning, shimStale, SHIM_ACCEPTED, SHIM_GO, type ShimRequest } from './shim-wire.js';
import { terminalWidth } from './help.js';
import { parseServeArgs, serveHelp } from './serve-args.js';
import { renderHelp } from '../lib/router/contract/help.js';
import type { RouterApi } from '../lib/router/contract/router-api.js';
import { Background } from '../lib/util/background.js';
import { LOCK_EX, mallocTrim, peerCredentials, tryFlock } from '../lib/sys/libc.js';
import type { ServiceWatchdog } from '../lib/router/watchdog.js';
import { NEIGH_CHECK_MS, NeighbourWatch } from './neigh-watch.js';
import { socketFd } from '../lib/sys/inet-socket.js';

/** How long the resident engine is idle before it returns the C heap's free pages (mallocTrim). */
const TRIM_AFTER_IDLE_MS = 2000;

/** Largest request accepted (argv and environment; payloads travel as file paths). */
const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

/** A connection has this long to deliver its request (and its go); a client waits 5 s for the engine to answer. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Connections of one front door whose request is not yet taken; more are closed at once (the client then runs
 *  the command itself). Any local user can connect to the shim's port: this bounds what that costs. (A burst of
 *  legitimate commands is accepted in one turn of the event loop before any is read: room for a few hundred.) */
const MAX_PENDING = 256;

/** The uid of a unix socket's peer (undefined: not readable). */
function peerUid(sock: Socket): number | undefined {
  const fd = socketFd(sock);
  if (fd === undefined) return undefined;
  try {
    return peerCredentials(fd).uid;
  } catch {
    return undefined;
  }
}

/** Only root and the engine's own user may hand it a command line. */
const peerAllowed = (uid: number | undefined): boolean => uid !== undefined && (uid === 0 || uid === process.geteuid?.());

/**
 * Admission of one front door's connections: a connection is closed at once beyond MAX_PENDING pending ones, and
 * when it has not delivered its request within REQUEST_TIMEOUT_MS. Returns the function to call once its
 * request is taken (undefined: closed).
 */
function admission(): (sock: Socket) => (() => void) | undefined {
  let pending = 0;
  return (sock) => {
    if (pending >= MAX_PENDING) {
      sock.destroy();
      return undefined;
    }
    pending++;
    const timer = setTimeout(() => sock.destroy(), REQUEST_TIMEOUT_MS);
    let open = true;
    const taken = (): void => {
      if (!open) return;
      open = false;
      pending--;
      clearTimeout(timer);
    };
    sock.once('close', taken);
    return taken;
  };
}

export interface ServeOptions {
  socket: string;
  /** Also listen on a loopback port for the wrapper shim (default true). */
  shimPort?: boolean;
  /** One-line messages (start, stop, refusals); default stderr. */
  say?: (line: string) => void;
  /** The installed files changed: the server takes no more commands (serve exits once idle). */
  onUpgrade?: () => void;
  /**
   * Run the daemon watchdog (lib/router/watchdog.ts) over these state directories and those of the commands
   * served; absent: no watchdog.
   */
  watchdog?: { stateDirs: string[]; intervalMs?: number };
}

export interface ResidentServer {
  readonly socket: string;
  /** `engine.tcp`: "PORT TOKEN" for the wrapper shim (undefined without the shim port). */
  readonly shimFile: string | undefined;
  /** Commands running now. */
  readonly running: number;
  /** The daemon watchdog, when it runs. */
  readonly watchdog: ServiceWatchdog | undefined;
  /** Stop listening, wait for the running commands, remove the socket and the port file. */
  close(): Promise<void>;
}

/** This process's start time (field 22 of /proc/self/stat, clock ticks since boot): with the pid, its identity. */
export function processStartTime(pid: number | 'self' = 'self'): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

/** The port file of a socket path: `engine.tcp` in the same directory. */
export const shimFileFor = (socket: string): string => join(dirname(socket), 'engine.tcp');

/** The state directories the watchdog learned from commands, one a line, next to the socket. */
export const learnedFileFor = (socket: string): string => join(dirname(socket), 'watched-state-dirs');

/** The directory of this installation's CLI entry points (a shim names its script; it must live here). */
const CLI_DIR = dirname(fileURLToPath(import.meta.url));

/** Is somebody answering on the socket path already? */
function listening(path: string): Promise<boolean> {
  return new Promise((res) => {
    const s = connect(path);
    s.on('connect', () => { s.destroy(); res(true); });
    s.on('error', () => res(false));
  });
}

function listen(srv: Server, ...args: unknown[]): Promise<void> {
  return new Promise<void>((res, rej) => {
    srv.once('error', rej);
    (srv.listen as (...a: unknown[]) => void)(...args, () => { srv.off('error', rej); res(); });
  });
}

const sameRealDir = (a: string, b: string): boolean => {
  try { return realpathSync(a) === realpathSync(b); } catch { return false; }
};

export async function startResidentServer(opts: ServeOptions): Promise<ResidentServer> {
  const say = opts.say ?? ((l: string) => { process.stderr.write(`${l}\n`); });
  const build = buildId();
  const namespaces = namespacesId();
  let api: RouterApi | undefined;
  // clean-up the answers need not wait for (a destroyed router's links): finished before the engine exits
  const background = new Background((e) => say(`netns-router serve: clean-up after a command failed: ${(e as Error).message}`));
  const apiOnce = async (): Promise<RouterApi> => (api ??= await loadRouterApi({ background }));
  await apiOnce();
  const warm0 = Date.now();
  (await import('../lib/router/warm-up.js')).warmUp();
  const warmMs = Date.now() - warm0;

  mkdirSync(dirname(opts.socket), { recursive: true, mode: 0o700 });
  // the socket, the port file with its token and the learned state directories live there: nobody else's
  const dirProblem = socketDirProblem(dirname(opts.socket));
  if (dirProblem) throw new Error(`${dirProblem}: refusing to serve there`);
  // one engine per socket, for its whole life: two started at the same moment would both find no listener below
  // (the lock file stays; the lock goes with the process, whatever ends it — O_CLOEXEC: no daemon inherits it)
  const lockFd = openSync(`${opts.socket}.lock`, 'a', 0o600);
  if (!tryFlock(lockFd, LOCK_EX)) {
    closeSync(lockFd);
    throw new Error(`another resident engine is starting or serving on ${opts.socket}`);
  }
  if (await listening(opts.socket)) throw new Error(`another resident engine is already listening on ${opts.socket}`);
  try { unlinkSync(opts.socket); } catch { /* no stale socket */ }

  // the daemon watchdog: dnsmasq/haproxy/metadata daemons that die come back within seconds (docs/daemons.md)
  let watchdog: ServiceWatchdog | undefined;
  if (opts.watchdog) {
    const { ServiceWatchdog: Watchdog } = await import('../lib/router/watchdog.js');
    watchdog = new Watchdog({
      ...(opts.watchdog.intervalMs !== undefined ? { intervalMs: opts.watchdog.intervalMs } : {}),
      log: (event, f) => say(`netns-router serve: watchdog: ${event}: ${JSON.stringify(f)}`),
    });
    for (const d of opts.watchdog.stateDirs) watchdog.watch(d);
    // state directories learned by an earlier run of serve (an upgrade restarts it; /run empties at reboot)
    try {
      for (const d of readFileSync(learnedFileFor(opts.socket), 'utf8').split('\n')) if (isAbsolute(d)) watchdog.watch(d);
    } catch { /* none yet */ }
  }
  const learn = (stateDir: string): void => {
    if (!watchdog?.watch(stateDir)) return;
    try {
      appendFileSync(learnedFileFor(opts.socket), `${resolve(stateDir)}\n`, { mode: 0o600 });
    } catch { /* watched anyway until this process ends */ }
  };

  let running = 0;
  // connections told "ready" whose go has not come yet: the engine does not stop before they go or leave
  let awaitingGo = 0;
  let draining = false;
  const idle: Array<() => void> = [];
  // the C heap keeps what libnftables contexts and large transactions freed (glibc returns only its top): once
  // no command has run for a while, the resident engine gives it back (bench/memory.ts: ~12 MB at 150 routers)
  let trimTimer: ReturnType<typeof setTimeout> | undefined;
  const settle = (): void => {
    if (running !== 0 || awaitingGo !== 0) return;
    for (const f of idle.splice(0)) f();
    clearTimeout(trimTimer);
    trimTimer = setTimeout(() => { if (running === 0) mallocTrim(); }, TRIM_AFTER_IDLE_MS);
    trimTimer.unref();
  };

  /** Why this server must not run a command now (undefined: it may). Notices an upgrade of its own files. */
  const refusal = (): string | undefined => {
    if (draining) return 'stopping';
    let current: string;
    try { current = buildId(); } catch { current = ''; }
    if (current === build) return undefined;
    // an upgrade replaced our files since we started: refuse, and let serve leave once idle so that the
    // supervisor starts the new code
    draining = true;
    say(`netns-router serve: the installed files changed (build ${build} → ${current || 'gone'}); exiting when idle`);
    opts.onUpgrade?.();
    return 'upgraded';
  };

  /** Counts a connection told "ready" until its go comes (call the result then) or it closes. */
  const awaitGo = (sock: Socket): (() => void) => {
    awaitingGo++;
    let waiting = true;
    const ended = (): void => {
      if (!waiting) return;
      waiting = false;
      awaitingGo--;
      settle();
    };
    sock.once('close', ended);
    return ended;
  };

  /** One command line, as the CLI would run it; its output collected. */
  const runOne = async (
    argv: string[], d: { env: Record<string, string>; cwd: string; invokedAs?: string; nodePath?: string; onAccepted?: (deadline: number) => void },
  ): Promise<{ exit: number; stdout: string; stderr: string }> => {
    let stdout = '';
    let stderr = '';
    running++;
    try {
      const exit = await runCli(argv, {
        api: apiOnce, env: d.env, cwd: d.cwd, invokedAs: d.invokedAs, nodePath: d.nodePath ?? process.execPath,
        stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; },
        onAccepted: (deadline, settings) => {
          learn(settings.stateDir);
          d.onAccepted?.(deadline);
        },
      });
      return { exit, stdout, stderr };
    } finally {
      running--;
      settle();
    }
  };

  // ── unix socket: the netns-router command (JSON lines) ──
  const reply = (sock: Socket, r: ResidentReply): void => {
    if (!sock.destroyed) sock.write(`${JSON.stringify(r)}\n`);
  };
  /** Why a request is not to be run here (undefined: it may be). */
  const staleness = (req: ResidentRequest): string | undefined => (req.proto !== RESIDENT_PROTOCOL ? 'protocol'
    : req.build !== build ? 'build' : req.namespaces !== namespaces ? 'namespaces' : refusal());
  const serveJson = async (sock: Socket, req: ResidentRequest): Promise<void> => {
    try {
      const r = await runOne(req.argv, {
        env: req.env, cwd: req.cwd, invokedAs: req.invokedAs, nodePath: req.nodePath,
        onAccepted: (deadline) => reply(sock, { accepted: true, deadline }),
      });
      reply(sock, r);
    } catch (e) {
      reply(sock, { error: `internal error: ${(e as Error).message}` });
    } finally {
      sock.end();
    }
  };
  const unixAdmission = admission();
  const unixSrv = createServer((sock) => {
    sock.on('error', () => { /* the client went away; its command (if started) finishes under its lock */ });
    // the socket's mode and directory keep other users out; a peer that is not root nor this engine's user (a mode
    // changed by hand) is refused all the same, before anything is read
    const uid = peerUid(sock);
    if (!peerAllowed(uid)) {
      say(`netns-router serve: refused a connection from uid ${uid ?? '?'} on ${opts.socket}`);
      sock.destroy();
      return;
    }
    const taken = unixAdmission(sock);
    if (!taken) return;
    let req: ResidentRequest | undefined;
    let went = (): void => {};
    let done = false;
    let size = 0;
    const refuse = (r: ResidentReply): void => { done = true; reply(sock, r); sock.end(); };
    sock.on('data', (c: Buffer | string) => {
      size += c.length;
      if (size > MAX_REQUEST_BYTES && !done) {
        refuse({ error: 'request too large' });
        sock.destroy();
      }
    });
    jsonLines(sock, (v) => {
      if (done) return;
      if (req) {
        // the client's go: from here on it never runs the command itself (one that gave up closed the connection)
        done = true;
        taken();
        if ((v as { go?: unknown }).go === true) void serveJson(sock, req);
        else sock.destroy();
        went();
        return;
      }
      const r = v as Partial<ResidentRequest>;
      if (!Array.isArray(r.argv) || !r.argv.every((a) => typeof a === 'string') || typeof r.cwd !== 'string'
        || typeof r.env !== 'object' || r.env === null || typeof r.nodePath !== 'string' || typeof r.namespaces !== 'string') {
        refuse({ error: 'malformed request' });
        return;
      }
      const why = staleness(r as ResidentRequest);
      if (why) {
        refuse({ stale: true, build, why });
        return;
      }
      req = r as ResidentRequest;
      went = awaitGo(sock);
      reply(sock, { ready: true });
    }, () => { done = true; reply(sock, { error: 'malformed request' }); sock.destroy(); });
  });
  {
    // root only: the socket is created 0600, in a directory of root's own that nobody else can write (socketDirProblem)
    const old = process.umask(0o177);
    try { await listen(unixSrv, opts.socket); } finally { process.umask(old); }
  }
  chmodSync(opts.socket, 0o600);

  // ── loopback port: the wrapper shim (bash, NUL-separated fields) ──
  let tcpSrv: Server | undefined;
  let shimFile: string | undefined;
  if (opts.shimPort !== false) {
    const token = randomBytes(24).toString('hex');
    const tokenBuf = Buffer.from(token);
    const tokenOk = (given: string): boolean => {
      const b = Buffer.from(given);
      return b.length === tokenBuf.length && timingSafeEqual(b, tokenBuf);
    };
    const tcpAdmission = admission();
    // a wrapper shim installed by an older build is still served, without what it lacks (protocol 1: no
    // handshake; 2: no time limit of its own): said once per wrapper, with the cure
    const toldOld = new Set<string>();
    const oldShim = (r: ShimRequest): void => {
      if (toldOld.has(r.invokedAs) || toldOld.size >= 64) return;
      toldOld.add(r.invokedAs);
      say(`netns-router serve: the wrapper shim ${JSON.stringify(r.invokedAs.slice(0, 256))} is of an older build (${r.handshake ? 'no time limit of its own' : 'no handshake'}); run \`netns-router install-wrapper\` again`);
    };
    tcpSrv = createServer((sock) => {
      sock.on('error', () => { /* as above */ });
      // any local user reaches this port: until its token is checked a connection costs little and not for long
      const taken = tcpAdmission(sock);
      if (!taken) return;
      const reader = new ShimRequestReader(MAX_REQUEST_BYTES, tokenOk);
      let req: ShimRequest | undefined;
      let went = (): void => {};
      let go = '';
      const start = (r: ShimRequest): void => {
        taken();
        runOne(r.argv, { env: r.env, cwd: r.cwd, invokedAs: r.invokedAs, ...(r.announce ? { onAccepted: (deadline: number) => { if (!sock.destroyed) sock.write(shimRunning(deadline)); } } : {}) })
          .then((o) => sock.end(shimReply(o.exit, o.stdout, o.stderr)))
          .catch((e: unknown) => sock.end(shimReply(2, '', `netns-router: resident engine: internal error: ${(e as Error).message}\n`)));
      };
      const onData = (c: Buffer): void => {
        if (req) {
          // the shim's "go": it will not run the command itself (one that gave up closed the connection instead)
          go += c.toString('latin1');
          if (go.length < SHIM_GO.length) return;
          sock.off('data', onData);
          if (go === SHIM_GO) start(req);
          else sock.destroy();
          went();
          return;
        }
        try {
          req = reader.push(c);
        } catch (e) {
          sock.off('data', onData);
          sock.end(shimStale(e instanceof ShimRefusal ? e.message : `malformed request: ${(e as Error).message}`));
          return;
        }
        if (!req) return;
        const why = !sameRealDir(dirname(req.script), CLI_DIR) ? 'another installation' : refusal();
        if (why) {
          sock.off('data', onData);
          sock.end(shimStale(why));
          return;
        }
        if (!req.announce) oldShim(req);
        if (req.handshake) went = awaitGo(sock);
        sock.write(SHIM_ACCEPTED);
        if (!req.handshake) {
          sock.off('data', onData);
          start(req);
        }
      };
      sock.on('data', onData);
    });
    await listen(tcpSrv, 0, '127.0.0.1');
    const port = (tcpSrv.address() as { port: number }).port;
    shimFile = shimFileFor(opts.socket);
    // pid and start time let the shim check that the engine which wrote the file is alive, i.e. still holds
    // the port: after a crash another process could be listening there, and must not receive a command line.
    // Runtime (under /run, rewritten by every start): atomic, not durable.
    writeFileAtomic(shimFile, `${port} ${token} ${process.pid} ${processStartTime()}\n`, { what: shimFile, durable: false });
  }
  watchdog?.start();
  const neigh = new NeighbourWatch(Date.now());
  const neighTimer = setInterval(() => { const line = neigh.check(Date.now()); if (line) say(line); }, NEIGH_CHECK_MS);
  neighTimer.unref();
  say(`netns-router serve: listening on ${opts.socket}${tcpSrv ? ` and 127.0.0.1:${(tcpSrv.address() as { port: number }).port} (wrapper shim)` : ''} (build ${build}, pid ${process.pid}, warmed up in ${warmMs} ms${watchdog ? `; watchdog over ${watchdog.stateDirs.join(', ')}` : ''})`);

  let closing: Promise<void> | undefined;
  return {
    socket: opts.socket,
    shimFile,
    get running() { return running; },
    watchdog,
    close() {
      closing ??= (async () => {
        draining = true;
        clearInterval(neighTimer);
        if (shimFile) { try { unlinkSync(shimFile); } catch { /* already gone */ } }
        await Promise.all([unixSrv, tcpSrv].filter((s): s is Server => s !== undefined)
          .map((s) => new Promise<void>((res) => s.close(() => res()))));
        await watchdog?.stop();
        if (running > 0 || awaitingGo > 0) await new Promise<void>((res) => { idle.push(res); });
        await background.settled();
        try { unlinkSync(opts.socket); } catch { /* already gone */ }
        closeSync(lockFd);
      })();
      return closing;
    },
  };
}

/** The `serve` command: runs until SIGTERM/SIGINT, then finishes the running commands and exits 0. */
export async function serveMain(argv: readonly string[]): Promise<number> {
  const o = parseServeArgs(argv);
  if (o === 'help') {
    process.stdout.write(renderHelp(serveHelp(), terminalWidth()));
    return 0;
  }
  if ('error' in o) {
    process.stderr.write(`netns-router serve: ${o.error}\n`);
    return 1;
  }
  let server: ResidentServer;
  let upgraded = (): void => {};
  try {
    server = await startResidentServer({ ...o, onUpgrade: () => upgraded() });
  } catch (e) {
    process.stderr.write(`netns-router serve: ${(e as Error).message}\n`);
    return 2;
  }
  // a defect must not leave a half-alive server: the supervisor restarts it; clients of the commands it was
  // running are told the engine went away (exit 2)
  process.on('uncaughtException', (e) => {
    process.stderr.write(`netns-router serve: internal error, exiting: ${e.stack ?? e.message}\n`);
    process.exit(70);
  });
  return new Promise<number>((res) => {
    const stop = (why: string): void => {
      process.stderr.write(`netns-router serve: ${why}: finishing ${server.running} running command(s)\n`);
      void server.close().then(() => res(0));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    upgraded = () => stop('upgraded');
  });
}
