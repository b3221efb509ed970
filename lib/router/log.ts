/**
 * JSON-lines log to the extension's log file, in pino's line format — `{"level":30,"time":"<ISO 8601>","pid":…,
 * <the logger's fields>, <the record's fields>,"msg":"…"}` — with secrets removed before anything is serialized:
 * values under secret-looking keys anywhere in a record (password, sshkey, userdata, vm_data, restore_data, …) and
 * any string holding a PEM private key become "[redacted]". Like upstream, a log file that cannot be opened never
 * fails the command.
 *
 * Written here rather than through pino: a record is one JSON.stringify and one write(2), and a cold CLI process
 * does not load pino and what it brings (worker_threads, streams, SonicBoom, thread-stream: ~3 ms of its start).
 * A library caller may still pass a pino logger (RouterLogger is all the router needs).
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { LogLevel } from './contract/types.js';
import { RouterError } from '../util/errors.js';

/**
 * What the router logs through: four levels, each taking a record (an object of fields) and a message, or a
 * message alone. A pino logger is one, so is `console`; createRouter's `logger` option takes any such object.
 * The router never puts a secret (password, SSH key, user data, extension details) into a record.
 */
export interface RouterLogger {
  /** Per-command detail: phase times, how the nft table was brought up to date. */
  debug(record: object | string, message?: string): void;
  /** A command started, ended, or was refused. */
  info(record: object | string, message?: string): void;
  /** Degraded operation (libnftables missing: the nft command stands in). */
  warn(record: object | string, message?: string): void;
  /** A command failed; a router could not be restored. */
  error(record: object | string, message?: string): void;
}

export const REDACTED = '[redacted]';

/** Key names (compared lower-case, without '-', '_' and '.') whose values are never logged. */
const SECRET_KEYS = new Set([
  'password', 'passwd', 'vmpassword', 'sshkey', 'sshkeys', 'sshprivatekey', 'privatekey', 'publickeys',
  'userdata', 'vmdata', 'restoredata', 'secret', 'secretkey', 'apikey', 'token', 'authorization',
]);

export function isSecretKey(key: string): boolean {
  return SECRET_KEYS.has(key.toLowerCase().replace(/[-_.]/g, ''));
}

const PEM_PRIVATE = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/** Deep copy of `value` with secrets replaced; Errors become plain {type, message, code, stack}. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 32) return '[too deep]';
  if (typeof value === 'string') return PEM_PRIVATE.test(value) ? REDACTED : value;
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof Error) {
    const e = value as Error & { code?: unknown; argument?: unknown; exitCode?: unknown };
    const out: Record<string, unknown> = { type: e.name, message: redact(e.message, depth + 1) };
    if (e.code !== undefined) out.code = e.code;
    if (e.argument !== undefined) out.argument = e.argument;
    if (e.exitCode !== undefined) out.exitCode = e.exitCode;
    // our own errors (the router's and the proxy's: they carry their exit code) are expected outcomes, their
    // message says it all; only an unexpected error (a defect) keeps its stack
    if (e.stack && !(value instanceof RouterError) && typeof e.exitCode !== 'number') out.stack = redact(e.stack, depth + 1);
    return out;
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = isSecretKey(k) && v !== undefined && v !== null && v !== '' ? REDACTED : redact(v, depth + 1);
  }
  return out;
}

/**
 * A loggable digest of a large value: long arrays keep their first items and a count, long strings are cut.
 * A request can carry 10,000 firewall rules; logging them whole cost 40 ms per command and said nothing.
 */
export function abbreviate(value: unknown, opts: { maxItems?: number; maxString?: number } = {}, depth = 0): unknown {
  const maxItems = opts.maxItems ?? 20;
  const maxString = opts.maxString ?? 2000;
  if (depth > 32) return '[too deep]';
  if (typeof value === 'string') return value.length > maxString ? `${value.slice(0, maxString)}… (${value.length} chars)` : value;
  if (typeof value !== 'object' || value === null || value instanceof Error) return value;
  if (Array.isArray(value)) {
    const head = value.slice(0, maxItems).map((v) => abbreviate(v, opts, depth + 1));
    return value.length > maxItems ? [...head, `… ${value.length - maxItems} more (${value.length} in all)`] : head;
  }
  const out: Record<string, unknown> = {};
  // an accessor is not run: a document given as text is decoded only when read (contract/reader.ts lazyDocument)
  for (const [k, d] of Object.entries(Object.getOwnPropertyDescriptors(value))) {
    if (d.enumerable) out[k] = d.get ? '[not decoded]' : abbreviate(d.value, opts, depth + 1);
  }
  return out;
}

export interface LoggerOptions {
  /** Log file; omitted → no output (silent logger). */
  file?: string;
  level?: LogLevel;
  /** Extra fields on every record (command, extension …). */
  base?: Record<string, unknown>;
}

/** What createLogger returns: a RouterLogger (the four levels the router and the CLI log at). */
export type Logger = RouterLogger;

export interface CreatedLogger {
  logger: Logger;
  /** Why the file could not be used (the logger is then silent). */
  problem?: string;
  /** Closes the log file (a long-lived process opens one per command). Idempotent. */
  close: () => void;
}

/** pino's level numbers (the `level` field of a record). */
const LEVEL_NUMBERS: Record<Exclude<LogLevel, 'silent'>, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

const noClose = (): void => {};
const ignore = (): void => {};

/** A logger that writes nothing. */
export const silentLogger: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore };

/** A bigint (never in a record today) as its digits, where JSON.stringify would throw. */
const jsonValue = (_key: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v);

/**
 * The logger over `write` (one call per record, the line with its newline): records below `level` are dropped;
 * `record` may be a message alone, or an Error (logged as `err`); a record without a message takes its `err`'s,
 * as pino does.
 */
function jsonLinesLogger(level: LogLevel, base: Record<string, unknown>, write: (line: string) => void): Logger {
  const min = level === 'silent' ? Infinity : LEVEL_NUMBERS[level] ?? LEVEL_NUMBERS.info;
  // the logger's own fields, serialized once: `,"pid":1234,"extension":"…"`
  const bound = Object.entries(base).filter(([, v]) => v !== undefined).map(([k, v]) => `,${JSON.stringify(k)}:${JSON.stringify(v, jsonValue)}`).join('');
  const at = (name: Exclude<LogLevel, 'silent'>) => {
    const n = LEVEL_NUMBERS[name];
    if (n < min) return ignore;
    return (record: object | string, message?: string): void => {
      let fields: Record<string, unknown> = {};
      let msg = message;
      if (typeof record === 'string') msg = record;
      else if (record instanceof Error) {
        fields = { err: record };
        msg ??= record.message;
      } else if (record !== null && record !== undefined) {
        fields = record as Record<string, unknown>;
        const err = fields.err as { message?: unknown } | undefined;
        if (msg === undefined && fields.msg === undefined && err && typeof err.message === 'string') msg = err.message;
      }
      const body = JSON.stringify(redact(fields), jsonValue);
      const props = body.length > 2 ? `,${body.slice(1, -1)}` : '';
      const text = msg === undefined ? undefined : redact(msg);
      write(`{"level":${n},"time":${JSON.stringify(new Date().toISOString())}${bound}${props}${text !== undefined ? `,"msg":${JSON.stringify(text)}` : ''}}\n`);
    };
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Logger writing JSON lines synchronously to `file` (so nothing is lost on process.exit). */
export function createLogger(opts: LoggerOptions): CreatedLogger {
  const level = opts.level ?? 'info';
  if (!opts.file || level === 'silent') return { logger: silentLogger, close: noClose };
  const base = { pid: process.pid, ...(opts.base ?? {}) };
  try {
    mkdirSync(dirname(opts.file), { recursive: true, mode: 0o750 });
    // one write(2) per record: nothing is lost on process.exit, and closing is a close(2) — no fsync: the
    // router's state file, not its log, must be durable
    // a new log is not world-readable (commands and their arguments are in it)
    const fd = openSync(opts.file, 'a', 0o640);
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      try { closeSync(fd); } catch { /* already closed */ }
    };
    const write = (line: string): void => {
      if (closed) return;
      try {
        const b = Buffer.from(line);
        for (let off = 0; off < b.length;) off += writeSync(fd, b, off, b.length - off);
      } catch {
        close(); // a log that cannot be written (disk full) is given up; the command goes on
      }
    };
    return { logger: jsonLinesLogger(level, base, write), close };
  } catch (e) {
    return { logger: silentLogger, problem: `cannot write log file ${opts.file}: ${(e as Error).message}`, close: noClose };
  }
}
