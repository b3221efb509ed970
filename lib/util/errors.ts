/**
 * The error classes every layer shares (docs/errors.md): input refused before any I/O (ValidationError), and
 * the errors that carry a process exit code (RouterError and its kinds). Exit codes follow the upstream
 * wrapper's contract: 1 for bad input (upstream `die` also exits 1), 2 for anything that failed while acting
 * on the system, including time-outs.
 */

export const EXIT_OK = 0;
/** Exit code of bad input (UsageError). */
export const EXIT_USAGE = 1;
/** Exit code of a failure acting on the system, a time-out or a busy lock. */
export const EXIT_SYSTEM = 2;

/**
 * Input refused before any I/O — a malformed name, address, port, VLAN id — by the layer that would have
 * used it: never dressed up as an answer of the kernel. `field` names the input, `value` is what it was.
 */
export class ValidationError extends Error {
  readonly code: `E_INVALID_${string}`;
  readonly field: string;
  readonly value: unknown;
  constructor(code: `E_INVALID_${string}`, field: string, value: unknown, message: string) {
    super(message);
    this.name = 'ValidationError';
    this.code = code;
    this.field = field;
    this.value = value;
  }
}

/** The router's own codes; a layer may add its own `E_…` (docs/errors.md lists them all). */
export type RouterErrorCode =
  | 'E_USAGE'
  | 'E_SYSTEM'
  | 'E_STATE'
  | 'E_TIMEOUT'
  | 'E_LOCK_TIMEOUT'
  | 'E_ABORTED'
  | 'E_ENGINE_MISSING'
  | 'E_INTERNAL'
  | `E_${string}`;

/** Base class: every error the router reports has a code and an exit code. */
export class RouterError extends Error {
  readonly code: RouterErrorCode;
  readonly exitCode: number;
  constructor(code: RouterErrorCode, message: string, exitCode: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RouterError';
    this.code = code;
    this.exitCode = exitCode;
  }
}

/**
 * Bad input: unknown command, missing or malformed argument. `argument` names the offending
 * option or payload key (`--public-port`, `payload.public_port`) when there is one.
 */
export class UsageError extends RouterError {
  readonly argument?: string;
  constructor(message: string, argument?: string) {
    super('E_USAGE', message, EXIT_USAGE);
    this.name = 'UsageError';
    this.argument = argument;
  }
}

/** A system operation failed; `kernelText` is the kernel's/libc's own description when known. */
export class SystemError extends RouterError {
  readonly kernelText?: string;
  readonly errno?: number;
  readonly errnoCode?: string;
  constructor(
    message: string,
    details: { kernelText?: string; errno?: number; errnoCode?: string; code?: RouterErrorCode; cause?: unknown } = {},
  ) {
    super(details.code ?? 'E_SYSTEM', message, EXIT_SYSTEM, { cause: details.cause });
    this.name = 'SystemError';
    this.kernelText = details.kernelText;
    this.errno = details.errno;
    this.errnoCode = details.errnoCode;
  }

  /**
   * Wraps a libc/kernel/Node failure with what we were doing: "opening lock file …: Permission denied (EACCES)".
   * Anything with a string `code` (SysError, Node's ErrnoException) keeps its errno and code.
   */
  static from(err: unknown, doing: string): SystemError {
    if (err instanceof SystemError) return err;
    const e = err as NodeJS.ErrnoException;
    if (e && typeof e === 'object' && typeof e.code === 'string' && typeof e.message === 'string') {
      return new SystemError(`${doing}: ${e.message}`, {
        kernelText: e.message, errno: typeof e.errno === 'number' ? Math.abs(e.errno) : undefined, errnoCode: e.code, cause: err,
      });
    }
    return new SystemError(`${doing}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/** The persisted desired state is unreadable (corrupt, or written by a newer schema). */
export class StateError extends SystemError {
  readonly file: string;
  constructor(file: string, message: string, cause?: unknown) {
    super(`state file ${file}: ${message}`, { code: 'E_STATE', cause });
    this.name = 'StateError';
    this.file = file;
  }
}

/**
 * The command's time budget ran out (`E_LOCK_TIMEOUT` waiting for a lock, `E_TIMEOUT` waiting for the engine), or
 * its caller cancelled it (`E_ABORTED`, a library call's AbortSignal). Exit 2.
 */
export class TimeoutError extends RouterError {
  /** How long the command had waited (ms). */
  readonly timeoutMs: number;
  constructor(message: string, timeoutMs: number, code: 'E_TIMEOUT' | 'E_LOCK_TIMEOUT' | 'E_ABORTED' = 'E_TIMEOUT') {
    super(code, message, EXIT_SYSTEM);
    this.name = 'TimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/** Exit code for anything thrown out of a command; unknown errors are internal failures (2). */
export function exitCodeOf(err: unknown): number {
  return err instanceof RouterError ? err.exitCode : EXIT_SYSTEM;
}

/** One-line description of any thrown value, for stderr. */
export function describeError(err: unknown): string {
  if (err instanceof RouterError) return err.message;
  if (err instanceof Error) return `internal error: ${err.message}`;
  return `internal error: ${String(err)}`;
}
