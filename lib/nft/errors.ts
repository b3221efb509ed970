/**
 * Typed errors of lib/nft (codes: docs/errors.md). Two kinds:
 * - NftValidationError: we refused to render something (bad name, address, port…), before any I/O.
 * - NftError: an executor (libnftables, nft CLI, the fake) rejected a transaction. It names the
 *   offending command (index in the transaction + its JSON) and carries the executor's error text.
 */

import { ValidationError } from '../util/errors.js';

/** What was invalid. */
export type NftValidationCode =
  | 'E_INVALID_NAME' | 'E_INVALID_ADDRESS' | 'E_INVALID_PORT' | 'E_INVALID_PRIORITY' | 'E_INVALID_CHAIN'
  | 'E_INVALID_COMMENT' | 'E_INVALID_IFNAME' | 'E_INVALID_VALUE' | 'E_INVALID_VERB' | 'E_INVALID_OBJECT';

/** `field` says which input was wrong, e.g. "set name" or "tcp dport". */
export class NftValidationError extends ValidationError {
  declare readonly code: NftValidationCode;
  constructor(code: NftValidationCode, field: string, value: unknown, why: string) {
    super(code, field, value, `invalid ${field} ${safeShow(value)}: ${why}`);
    this.name = 'NftValidationError';
  }
}

function safeShow(v: unknown): string {
  try {
    const s = typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v);
    return s.length > 120 ? `${s.slice(0, 117)}...` : s;
  } catch {
    return String(v);
  }
}

/**
 * Why a transaction failed. errno-like codes where the executor's text carries one (the kernel's
 * strerror, or nft's own wording for interval conflicts); E_NFT_PARSE for JSON/syntax errors nft
 * reported before talking to the kernel; E_NFT_FAILED otherwise; E_NFT_EXECUTOR when the executor itself
 * failed (nft binary missing, context closed…).
 */
export type NftErrorCode =
  | 'ENOENT' | 'EEXIST' | 'EBUSY' | 'EINVAL' | 'EOPNOTSUPP' | 'EPERM' | 'ELOOP' | 'EMLINK' | 'ENOSPC' | 'ENFILE'
  | 'ERANGE' | 'E2BIG' | 'ENOMEM' | 'ENOBUFS' | 'EMSGSIZE' | 'EAFNOSUPPORT'
  | 'E_NFT_PARSE' | 'E_NFT_FAILED' | 'E_NFT_EXECUTOR';

/** What an NftError carries: code, the executor's text, the executor, the failing command when located, the operation. */
export interface NftErrorDetails {
  code: NftErrorCode;
  /** The executor's error output (libnftables error buffer / nft stderr), trimmed. */
  stderr: string;
  /** Which executor: "libnftables", "nft-cli", "fake". */
  executor: string;
  /** Index of the offending command in the transaction, when located. */
  index?: number;
  /** JSON of the offending command, when located. */
  command?: unknown;
  /** What we were doing: "apply", "list table inet t", … */
  operation: string;
}

/**
 * nftables refused a transaction or a listing (or the executor failed). `code` is the errno name of the kernel's
 * answer, else `E_NFT_PARSE`, `E_NFT_FAILED`, `E_NFT_EXECUTOR` (docs/errors.md); `index`/`command` name the
 * failing command of a batch when it was located.
 */
export class NftError extends Error {
  readonly code: NftErrorCode;
  readonly stderr: string;
  readonly executor: string;
  readonly index?: number;
  readonly command?: unknown;
  readonly operation: string;
  constructor(d: NftErrorDetails) {
    const where = d.index !== undefined ? ` at command #${d.index} ${safeShow(d.command)}` : '';
    const text = d.stderr || d.code;
    super(`nft ${d.operation} failed${where} (${d.executor}): ${text} [${d.code}]`);
    this.name = 'NftError';
    this.code = d.code;
    this.stderr = d.stderr;
    this.executor = d.executor;
    if (d.index !== undefined) this.index = d.index;
    if (d.command !== undefined) this.command = d.command;
    this.operation = d.operation;
  }
}

/** Whether `e` is an NftError (with `code`, when given). */
export const isNftError = (e: unknown, code?: NftErrorCode): e is NftError =>
  e instanceof NftError && (code === undefined || e.code === code);
/** Whether `e` is nftables saying the object does not exist (ENOENT). */
export const isNftNotFound = (e: unknown): boolean => isNftError(e, 'ENOENT');
/** Whether `e` is nftables saying the object exists already (EEXIST). */
export const isNftExists = (e: unknown): boolean => isNftError(e, 'EEXIST');

/** Phrases in nft/libnftables error text → code. strerror texts first, then nft's own wording. */
const TEXT_CODES: Array<[RegExp, NftErrorCode]> = [
  [/No such file or directory|element does not exist|Could not find/i, 'ENOENT'],
  [/File exists|interval overlaps|conflicting intervals/i, 'EEXIST'],
  [/Device or resource busy/i, 'EBUSY'],
  [/Operation not supported/i, 'EOPNOTSUPP'],
  [/Operation not permitted/i, 'EPERM'],
  [/Too many levels of symbolic links/i, 'ELOOP'],
  [/Too many links/i, 'EMLINK'],
  [/No space left on device/i, 'ENOSPC'],
  [/Too many open files in system/i, 'ENFILE'], // a set's `size` reached
  [/Numerical result out of range/i, 'ERANGE'],
  [/Argument list too long/i, 'E2BIG'],
  [/Cannot allocate memory/i, 'ENOMEM'],
  [/No buffer space available/i, 'ENOBUFS'],
  [/Message too long/i, 'EMSGSIZE'],
  [/Address family not supported/i, 'EAFNOSUPPORT'],
  [/Invalid argument/i, 'EINVAL'],
  [/syntax error|Could not parse|Parsing .* failed|Unknown .* object|Invalid .*|JSON/i, 'E_NFT_PARSE'],
];

/**
 * The lines of nft's own report, "[<where>: ]Error: <message>", without the marker. nft follows such a line
 * with the command it refers to and a line of ^^^ under the culprit: those are our input, not its verdict
 * (a comment or name reading "No such file or directory" must not make a syntax error ENOENT). Text without
 * a marker (the fake's, a runner's own message) is a verdict as a whole.
 */
export function verdictLines(text: string): string[] {
  const lines = text.split('\n');
  const marked = lines.filter((l) => /(^|: )Error: /.test(l)).map((l) => l.replace(/^(.*?: )?Error: /, ''));
  return marked.length ? marked : lines;
}

/** Classify an executor's error text by nft's/the kernel's verdict in it (verdictLines). */
export function codeFromText(text: string): NftErrorCode {
  const verdict = verdictLines(text).join('\n');
  for (const [re, code] of TEXT_CODES) if (re.test(verdict)) return code;
  return 'E_NFT_FAILED';
}

/** Tidy nft's error text: drop the meaningless "internal:0:0-0: " JSON-mode position and blank lines. */
export function cleanErrorText(text: string): string {
  return text
    .split('\n')
    .map((l) => l.replace(/^internal:0:0-0: /, '').replace(/^Error: /, '').trimEnd())
    .filter((l) => l.length > 0)
    .join('\n');
}
