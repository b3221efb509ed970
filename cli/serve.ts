/**
 * `netns-router serve [--socket PATH]`: the resident engine. Listens on a unix socket (default
 * /run/netns-router/engine.sock, root only) and runs the command lines CLI processes forward to it
 * (cli/resident.ts) exactly as they would run them: same parser, same router locks, same log files, same exit
 * codes. What it adds is warmth: code already compiled by the JIT, the router tables compiled for the last
 * models (EngineCaches), nftables contexts kept open.
 *
 * Safety: commands of different routers run concurrently, commands of one router wait for each other on the
 * router's lock (flock excludes two descriptors even inside one process); a command that timed out keeps its
 * lock until its engine call has really ended. A CLI of another build is told `stale` and runs the command
 * itself; when this server's own files change (an upgrade) it stops taking commands and exits once idle, so
 * a supervisor (systemd Restart=always) brings up the new code.
 */
import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { dirname } from 'node:path';
import {
  DEFAULT_RESIDENT_SOCKET, RESIDENT_PROTOCOL, buildId, jsonLines, namespacesId, type ResidentReply, type ResidentRequest,
} from './resident.cjs';
import { loadRouterApi } from './engine.js';
import { runCli } from './run.js';
import type { RouterApi } from '../lib/router/contract/api.js';

const USAGE = 'usage: netns-router serve [--socket PATH]   (default socket ' + DEFAULT_RESIDENT_SOCKET + ')';
/** Largest request line accepted (argv and environment; payloads travel as file paths). */
const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

export interface ServeOptions {
  socket: string;
  /** One-line messages (start, stop, refusals); default stderr. */
  say?: (line: string) => void;
  /** The installed files changed: the server takes no more commands (serve exits once idle). */
  onUpgrade?: () => void;
}

export interface ResidentServer {
  readonly socket: string;
  /** Commands running now. */
  readonly running: number;
  /** Stop listening, wait for the running commands, remove the socket. */
  close(): Promise<void>;
}

function parseServeArgs(argv: readonly string[]): ServeOptions | string {
  let socket = DEFAULT_RESIDENT_SOCKET;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--socket' && i + 1 < argv.length) socket = argv[++i];
    else if (a.startsWith('--socket=')) socket = a.slice('--socket='.length);
    else if (a === '--help' || a === '-h') return USAGE;
    else return `serve: unknown argument ${JSON.stringify(a)}\n${USAGE}`;
  }
  if (socket === '' || socket.includes('\0')) return `serve: --socket: empty path\n${USAGE}`;
  return { socket };
}

/** Is somebody answering on the socket path already? */
function listening(path: string): Promise<boolean> {
  return new Promise((res) => {
    const s = connect(path);
    s.on('connect', () => { s.destroy(); res(true); });
    s.on('error', () => res(false));
  });
}

export async function startResidentServer(opts: ServeOptions): Promise<ResidentServer> {
  const say = opts.say ?? ((l: string) => { process.stderr.write(`${l}\n`); });
  const build = buildId();
  const namespaces = namespacesId();
  let api: RouterApi | undefined;
  const apiOnce = async (): Promise<RouterApi> => (api ??= await loadRouterApi());
  await apiOnce();

  mkdirSync(dirname(opts.socket), { recursive: true, mode: 0o700 });
  if (await listening(opts.socket)) throw new Error(`another resident engine is already listening on ${opts.socket}`);
  try { unlinkSync(opts.socket); } catch { /* no stale socket */ }

  let running = 0;
  let draining = false;
  const idle: Array<() => void> = [];
  const settle = (): void => {
    if (running === 0) for (const f of idle.splice(0)) f();
  };

  const reply = (sock: Socket, r: ResidentReply): void => {
    if (!sock.destroyed) sock.write(`${JSON.stringify(r)}\n`);
  };

  const serveOne = async (sock: Socket, req: ResidentRequest): Promise<void> => {
    const why = req.proto !== RESIDENT_PROTOCOL ? 'protocol' : req.build !== build ? 'build'
      : req.namespaces !== namespaces ? 'namespaces' : draining ? 'stopping' : undefined;
    if (why) {
      reply(sock, { stale: true, build, why });
      sock.end();
      return;
    }
    // an upgrade replaced our files since we started (the client is of the old build too, or would have been
    // refused above): refuse, and let serve leave once idle so that the supervisor starts the new code
    let current: string;
    try { current = buildId(); } catch { current = ''; }
    if (current !== build) {
      draining = true;
      say(`netns-router serve: the installed files changed (build ${build} → ${current || 'gone'}); exiting when idle`);
      reply(sock, { stale: true, build });
      sock.end();
      opts.onUpgrade?.();
      return;
    }
    let stdout = '';
    let stderr = '';
    running++;
    try {
      const exit = await runCli(req.argv, {
        api: apiOnce,
        env: req.env,
        cwd: req.cwd,
        invokedAs: req.invokedAs,
        nodePath: req.nodePath,
        stdout: (t) => { stdout += t; },
        stderr: (t) => { stderr += t; },
        onAccepted: (deadline) => reply(sock, { accepted: true, deadline }),
      });
      reply(sock, { exit, stdout, stderr });
    } catch (e) {
      reply(sock, { error: `internal error: ${(e as Error).message}` });
    } finally {
      running--;
      sock.end();
      settle();
    }
  };

  const srv = createServer((sock) => {
    let got = false;
    let size = 0;
    sock.on('error', () => { /* the client went away; its command (if started) finishes under its lock */ });
    sock.on('data', (c: Buffer | string) => {
      size += c.length;
      if (size > MAX_REQUEST_BYTES && !got) {
        got = true;
        reply(sock, { error: 'request too large' });
        sock.destroy();
      }
    });
    jsonLines(sock, (v) => {
      if (got) return;
      got = true;
      const r = v as Partial<ResidentRequest>;
      if (!Array.isArray(r.argv) || !r.argv.every((a) => typeof a === 'string') || typeof r.cwd !== 'string'
        || typeof r.env !== 'object' || r.env === null || typeof r.nodePath !== 'string' || typeof r.namespaces !== 'string') {
        reply(sock, { error: 'malformed request' });
        sock.end();
        return;
      }
      void serveOne(sock, r as ResidentRequest);
    }, () => { got = true; reply(sock, { error: 'malformed request' }); sock.destroy(); });
  });

  await new Promise<void>((res, rej) => {
    srv.once('error', rej);
    // root only: the socket is created 0600 inside a 0700 directory
    const old = process.umask(0o177);
    srv.listen(opts.socket, () => { process.umask(old); srv.off('error', rej); res(); });
  });
  chmodSync(opts.socket, 0o600);
  say(`netns-router serve: listening on ${opts.socket} (build ${build}, pid ${process.pid})`);

  let closing: Promise<void> | undefined;
  const server: ResidentServer = {
    socket: opts.socket,
    get running() { return running; },
    close() {
      closing ??= (async () => {
        draining = true;
        await new Promise<void>((res) => srv.close(() => res()));
        if (running > 0) await new Promise<void>((res) => { idle.push(res); });
        try { unlinkSync(opts.socket); } catch { /* already gone */ }
      })();
      return closing;
    },
  };
  return server;
}

/** The `serve` command: runs until SIGTERM/SIGINT, then finishes the running commands and exits 0. */
export async function serveMain(argv: readonly string[]): Promise<number> {
  const o = parseServeArgs(argv);
  if (typeof o === 'string') {
    const help = o === USAGE;
    (help ? process.stdout : process.stderr).write(`${o}\n`);
    return help ? 0 : 1;
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
