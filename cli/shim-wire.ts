/**
 * Wire format between the extension's wrapper shim (bash, lib/router/contract/install-wrapper.ts) and the
 * resident engine's loopback port (serve.ts). Made for what bash can write and read without helpers:
 *
 *   shim → engine   NUL-terminated fields: MAGIC, token, script, cwd, invoked-as, argc, argv…, envc, NAME=VALUE…
 *   engine → shim   "stale WHY\n"  (not run: the shim runs netns-router itself), or "ok\n" (it would run it);
 *   shim → engine   "go\n": from here on the shim never runs the command itself (a shim that waited too long for
 *                   "ok" closes the connection instead and runs it itself: the engine never runs a command line
 *                   whose client gave up on it);
 *   engine → shim   "run SECONDS\n" once the command line is parsed and the command taken (SECONDS: what is left of
 *                   its time limit; the answer comes within it — a shim that waited that long and 10 s more gives up
 *                   with exit 2 instead of waiting on a hung engine as long as CloudStack would);
 *   engine → shim   "EXIT STDOUT_BYTES STDERR_BYTES\n", the stdout bytes, the stderr bytes.
 *
 * Older shims are served as they expect: MAGIC_V2 shims get no "run" line (they wait for the answer without a
 * limit); the first shims (MAGIC_V1) waited for "ok" without a limit and send no "go": the engine runs their
 * command at once. The token is checked as soon as it has arrived: whoever does not know it (any local user can reach the
 * port) is refused before anything else of the request is read.
 */
export const SHIM_MAGIC = 'netns-router-shim-3';
export const SHIM_MAGIC_V2 = 'netns-router-shim-2';
export const SHIM_MAGIC_V1 = 'netns-router-shim-1';
const MAGICS = new Set([SHIM_MAGIC, SHIM_MAGIC_V2, SHIM_MAGIC_V1]);
export const SHIM_ACCEPTED = 'ok\n';
export const SHIM_GO = 'go\n';
/** Most bytes read before the token has arrived (the magic and a token are 69). */
const MAX_BEFORE_TOKEN = 256;

export interface ShimRequest {
  token: string;
  /** The netns-router script the shim would run itself (must be of this server's installation). */
  script: string;
  cwd: string;
  invokedAs: string;
  argv: string[];
  env: Record<string, string>;
  /** The shim confirms with "go" after "ok" (false: a first shim, run at once). */
  handshake: boolean;
  /** The shim reads "run SECONDS" before the answer (MAGIC; not the older shims). */
  announce: boolean;
}

/** Why a request is refused: the text of the `stale` answer. */
export class ShimRefusal extends Error {}

/**
 * Collects a request from socket chunks; `push` returns it once complete, throws a ShimRefusal on a malformed one
 * or as soon as the token has arrived and `tokenOk` rejects it. Each push scans only what is new.
 */
export class ShimRequestReader {
  private buf: Buffer = Buffer.alloc(0);
  /** Where the next field starts in buf. */
  private at = 0;
  private readonly fields: string[] = [];

  constructor(private readonly max: number, private readonly tokenOk: (token: string) => boolean = () => true) {}

  push(chunk: Buffer): ShimRequest | undefined {
    try {
      return this.parse(chunk);
    } catch (e) {
      throw e instanceof ShimRefusal ? e : new ShimRefusal(`malformed request: ${(e as Error).message}`);
    }
  }

  private parse(chunk: Buffer): ShimRequest | undefined {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const fields = this.fields;
    for (let nul = this.buf.indexOf(0, this.at); nul >= 0; nul = this.buf.indexOf(0, this.at)) {
      fields.push(this.buf.toString('utf8', this.at, nul));
      this.at = nul + 1;
      if (fields.length === 1 && !MAGICS.has(fields[0])) throw new Error('not a shim request');
      if (fields.length === 2 && !this.tokenOk(fields[1])) throw new ShimRefusal('bad token');
    }
    if (this.buf.length > (fields.length < 2 ? MAX_BEFORE_TOKEN : this.max)) throw new Error('too large');
    if (fields.length < 6) return undefined;
    const argc = count(fields[5], 'argc');
    if (fields.length < 7 + argc) return undefined;
    const envc = count(fields[6 + argc], 'envc');
    if (fields.length < 7 + argc + envc) return undefined;
    if (fields.length > 7 + argc + envc || this.at !== this.buf.length) throw new Error('trailing data');
    const env: Record<string, string> = {};
    for (const kv of fields.slice(7 + argc)) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new Error('bad environment entry');
      env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    return {
      token: fields[1], script: fields[2], cwd: fields[3], invokedAs: fields[4], argv: fields.slice(6, 6 + argc), env,
      handshake: fields[0] !== SHIM_MAGIC_V1, announce: fields[0] === SHIM_MAGIC,
    };
  }
}

function count(text: string, what: string): number {
  if (!/^\d{1,6}$/.test(text)) throw new Error(`bad ${what}`);
  return Number(text);
}

export function shimStale(why: string): string {
  return `stale ${why.replace(/\s+/g, ' ')}\n`;
}

/** The command is taken; its answer comes within `deadline` (epoch ms). */
export function shimRunning(deadline: number, now = Date.now()): string {
  return `run ${Math.max(0, Math.ceil((deadline - now) / 1000))}\n`;
}

export function shimReply(exit: number, stdout: string, stderr: string): Buffer {
  const out = Buffer.from(stdout, 'utf8');
  const err = Buffer.from(stderr, 'utf8');
  return Buffer.concat([Buffer.from(`${exit} ${out.length} ${err.length}\n`), out, err]);
}
