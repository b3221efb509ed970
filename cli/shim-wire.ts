/**
 * Wire format between the extension's wrapper shim (bash, lib/router/contract/install-wrapper.ts) and the
 * resident engine's loopback port (serve.ts). Made for what bash can write and read without helpers:
 *
 *   shim → engine   NUL-terminated fields: MAGIC, token, script, cwd, invoked-as, argc, argv…, envc, NAME=VALUE…
 *   engine → shim   "stale WHY\n"  (not run: the shim runs netns-router itself), or
 *                   "ok\n", then "EXIT STDOUT_BYTES STDERR_BYTES\n", the stdout bytes, the stderr bytes.
 */
export const SHIM_MAGIC = 'netns-router-shim-1';
export const SHIM_ACCEPTED = 'ok\n';

export interface ShimRequest {
  token: string;
  /** The netns-router script the shim would run itself (must be of this server's installation). */
  script: string;
  cwd: string;
  invokedAs: string;
  argv: string[];
  env: Record<string, string>;
}

/** Collects a request from socket chunks; `push` returns it once complete, throws on a malformed one. */
export class ShimRequestReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly max: number) {}

  push(chunk: Buffer): ShimRequest | undefined {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    if (this.buf.length > this.max) throw new Error('too large');
    const fields: string[] = [];
    let at = 0;
    for (let nul = this.buf.indexOf(0, at); nul >= 0; nul = this.buf.indexOf(0, at)) {
      fields.push(this.buf.toString('utf8', at, nul));
      at = nul + 1;
    }
    if (fields.length && fields[0] !== SHIM_MAGIC) throw new Error('not a shim request');
    if (fields.length < 6) return undefined;
    const argc = count(fields[5], 'argc');
    if (fields.length < 7 + argc) return undefined;
    const envc = count(fields[6 + argc], 'envc');
    if (fields.length < 7 + argc + envc) return undefined;
    if (fields.length > 7 + argc + envc || at !== this.buf.length) throw new Error('trailing data');
    const env: Record<string, string> = {};
    for (const kv of fields.slice(7 + argc)) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new Error('bad environment entry');
      env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    return { token: fields[1], script: fields[2], cwd: fields[3], invokedAs: fields[4], argv: fields.slice(6, 6 + argc), env };
  }
}

function count(text: string, what: string): number {
  if (!/^\d{1,6}$/.test(text)) throw new Error(`bad ${what}`);
  return Number(text);
}

export function shimStale(why: string): string {
  return `stale ${why.replace(/\s+/g, ' ')}\n`;
}

export function shimReply(exit: number, stdout: string, stderr: string): Buffer {
  const out = Buffer.from(stdout, 'utf8');
  const err = Buffer.from(stderr, 'utf8');
  return Buffer.concat([Buffer.from(`${exit} ${out.length} ${err.length}\n`), out, err]);
}
