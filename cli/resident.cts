/**
 * The resident engine's wire contract and its client. `netns-router serve` keeps one warm engine (JIT-compiled
 * code, compiled router tables, open nftables contexts) and runs command lines sent to its unix socket; a CLI
 * process that finds the socket forwards its command line there instead of loading the engine itself, which
 * saves the engine's start-up and a cold compile on every command.
 *
 * This module is what every CLI process loads first, so it imports only node built-ins, and it is CommonJS:
 * Node's ESM loader costs a CLI process ~15 ms before the first line runs.
 *
 * One connection = one command. The client writes one JSON line (ResidentRequest); the server answers
 * `{"stale":…}` when it will not run it (built from other files than the client — an upgrade —, another
 * namespace, stopping): the client then runs the command itself; else `{"ready":true}`, and the client answers
 * `{"go":true}` — from then on it never runs the command itself. A client that waited too long for "ready" closes
 * the connection instead and runs the command itself: the server runs nothing it was sent without the go, so a
 * command line is never run twice, nor late (after commands its client ran since). Then the server sends
 * `{"accepted":…,"deadline":…}` once the command line is parsed, and `{"exit":…,"stdout":…,"stderr":…}`.
 */
import { lstatSync, readlinkSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Socket } from 'node:net';

export const RESIDENT_PROTOCOL = 2;
export const DEFAULT_RESIDENT_SOCKET = '/run/netns-router/engine.sock';
/** Socket path; `off` (or empty) makes the CLI run every command itself. */
export const RESIDENT_SOCKET_ENV = 'NETNS_ROUTER_ENGINE_SOCKET';
/** Exit code when the resident engine went away in the middle of a command (the command may have run). */
export const EXIT_RESIDENT_LOST = 2;

export interface ResidentRequest {
  proto: number;
  /** Build of the client (see buildId); a server of another build refuses with `stale`. */
  build: string;
  argv: string[];
  cwd: string;
  /** The client's NETNS_ROUTER_* and CS_* variables (what the command line parser reads). */
  env: Record<string, string>;
  invokedAs?: string;
  nodePath: string;
  /** The client's network and mount namespaces (namespacesId): the server runs only commands of its own,
   *  since "the host" of a command is the namespace its process runs in, and paths are its mount's. */
  namespaces: string;
}

export type ResidentReply =
  | { ready: true }
  | { accepted: true; deadline?: number }
  | { exit: number; stdout: string; stderr: string }
  | { stale: true; build: string; why?: string }
  | { error: string };

/**
 * Identity of the installed code: inode, size and modification time of this very file. A rebuild or an
 * upgrade rewrites it, so a server started before an upgrade and a client started after it disagree.
 */
export function buildId(): string {
  const st = statSync(__filename);
  return `${st.ino}:${st.size}:${Math.floor(st.mtimeMs)}`;
}

/** The calling process's network and mount namespaces, e.g. "net:[4026531840] mnt:[4026531841]". */
export function namespacesId(): string {
  return `${readlinkSync('/proc/self/ns/net')} ${readlinkSync('/proc/self/ns/mnt')}`;
}

/** The variables a command line's meaning depends on (ENV in lib/router/contract/parse.ts). */
export function forwardedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v !== undefined && (k.startsWith('NETNS_ROUTER_') || k.startsWith('CS_')) && k !== RESIDENT_SOCKET_ENV) out[k] = v;
  }
  return out;
}

export function residentSocketPath(env: NodeJS.ProcessEnv): string | undefined {
  const v = env[RESIDENT_SOCKET_ENV];
  if (v === undefined) return DEFAULT_RESIDENT_SOCKET;
  return v === '' || v === 'off' ? undefined : v;
}

/**
 * Why the engine's socket directory cannot be trusted (undefined: it can): it must belong to this user (root) and
 * be writable by nobody else — or another user could put a socket, a port file or a symlink where the engine and
 * its clients look (a directory like /tmp). The engine refuses to start there, the clients never talk to it.
 */
export function socketDirProblem(dir: string): string | undefined {
  const st = statSync(dir);
  const uid = process.geteuid?.() ?? 0;
  if (!st.isDirectory()) return `socket directory ${dir} is not a directory`;
  if (st.uid !== uid) return `socket directory ${dir} is owned by uid ${st.uid}, not by this user (${uid})`;
  if ((st.mode & 0o022) !== 0) return `socket directory ${dir} is writable by group or others (mode ${(st.mode & 0o7777).toString(8)})`;
  return undefined;
}

/** A socket the engine of this user made: in a directory socketDirProblem accepts, owned by this user. */
function trustedSocket(path: string): boolean {
  try {
    return socketDirProblem(dirname(path)) === undefined && lstatSync(path).uid === (process.geteuid?.() ?? 0);
  } catch {
    return false;
  }
}

/** Newline-delimited JSON reader over a socket. */
export function jsonLines(sock: Socket, onValue: (v: unknown) => void, onBad: (why: string) => void): void {
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('data', (chunk: string) => {
    buf += chunk;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const lineText = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (lineText === '') continue;
      let v: unknown;
      try {
        v = JSON.parse(lineText);
      } catch {
        onBad('a reply that is not JSON');
        return;
      }
      onValue(v);
    }
  });
}

export interface ForwardResult {
  exit: number;
  stdout: string;
  stderr: string;
}

/**
 * Sends the command line to the resident engine. Resolves undefined when there is none to talk to (no socket,
 * nobody listening, another build): the caller then runs the command itself. Once the engine has accepted
 * the command, a lost connection is an error result, never a silent local re-run.
 */
export function forwardToResident(
  req: Omit<ResidentRequest, 'proto' | 'build' | 'namespaces'>, socketPath: string, opts: { connectTimeoutMs?: number } = {},
): Promise<ForwardResult | undefined> {
  // (another user's socket is never talked to: it would get the command line, and could answer "done")
  if (!trustedSocket(socketPath)) return Promise.resolve(undefined);
  let build: string;
  let namespaces: string;
  try {
    build = buildId();
    namespaces = namespacesId();
  } catch {
    return Promise.resolve(undefined);
  }
  return new Promise((resolvePromise) => {
    // sent the go: from here on the command is the engine's, never run here
    let committed = false;
    let settled = false;
    let deadlineTimer: NodeJS.Timeout | undefined;
    // node:net (and the stream modules under it) only when there is a socket to try: a cold command without a
    // resident engine never pays for loading them
    const { connect } = require('node:net') as typeof import('node:net');
    const sock = connect(socketPath);
    const finish = (r: ForwardResult | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(answerTimer);
      clearTimeout(deadlineTimer);
      sock.destroy();
      resolvePromise(r);
    };
    const lost = (why: string): void => finish(committed
      ? { exit: EXIT_RESIDENT_LOST, stdout: '', stderr: `netns-router: the resident engine (${socketPath}) ${why} while running the command; it may or may not have been applied: run it again\n` }
      : undefined);
    // a server that accepts connections but never answers must not hang the command: before the go the command
    // runs here instead (the server then never runs it), after it the command ends with exit 2
    const answerMs = opts.connectTimeoutMs ?? 5000;
    let answerTimer = setTimeout(() => lost('did not answer'), answerMs);
    sock.on('error', (e) => lost(`failed (${(e as NodeJS.ErrnoException).code ?? e.message})`));
    sock.on('close', () => lost('closed the connection'));
    sock.on('connect', () => {
      const full: ResidentRequest = { proto: RESIDENT_PROTOCOL, build, namespaces, ...req };
      sock.write(`${JSON.stringify(full)}\n`);
    });
    jsonLines(sock, (v) => {
      const r = v as Record<string, unknown>;
      if (r.ready === true && !committed) {
        committed = true;
        sock.write('{"go":true}\n');
        clearTimeout(answerTimer);
        answerTimer = setTimeout(() => lost('did not answer'), answerMs);
      } else if (r.accepted === true) {
        clearTimeout(answerTimer);
        // the server ends the command at its deadline; past that (and a grace) it is not coming back
        if (typeof r.deadline === 'number') {
          deadlineTimer = setTimeout(() => lost('did not report back'), Math.max(0, r.deadline - Date.now()) + 10_000);
        }
      } else if (typeof r.exit === 'number') {
        finish({ exit: r.exit, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') });
      } else if (r.stale === true && !committed) {
        finish(undefined);
      } else if (typeof r.error === 'string') {
        if (committed) finish({ exit: EXIT_RESIDENT_LOST, stdout: '', stderr: `netns-router: resident engine: ${r.error}\n` });
        else finish(undefined);
      }
    }, (why) => lost(`sent ${why}`));
  });
}

/** Command lines a process always runs itself: the SSH proxy side, the resident engine itself, and help (it is
 *  wrapped to this process's terminal). */
export const isLocalCommand = (argv: readonly string[]): boolean =>
  argv[0] === 'proxy' || argv[0] === 'install-proxy' || argv[0] === 'serve'
  || argv.length === 0 || argv[0] === 'help' || argv.includes('--help') || argv.includes('-h');

/**
 * Hand this process's command line to the resident engine and print what it answers. Resolves the exit code,
 * or undefined when the command is to run here (a local command, no engine, `NETNS_ROUTER_ENGINE_SOCKET=off`,
 * or an engine that refused it).
 */
export async function runViaResident(argv: readonly string[]): Promise<number | undefined> {
  const socket = isLocalCommand(argv) ? undefined : residentSocketPath(process.env);
  if (socket === undefined) return undefined;
  const r = await forwardToResident({
    argv: [...argv], cwd: process.cwd(), env: forwardedEnv(process.env), invokedAs: process.argv[1], nodePath: process.execPath,
  }, socket);
  if (!r) return undefined;
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  return r.exit;
}
