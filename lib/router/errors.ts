/**
 * Typed errors of the router and the process exit code each one maps to.
 *
 * Exit codes follow the upstream wrapper's contract: 0 success, non-zero failure (CloudStack only
 * distinguishes zero from non-zero). We use 1 for bad input (upstream `die` on a missing argument
 * also exits 1) and 2 for anything that failed while acting on the system, including timeouts.
 */
import { SysError } from '../sys/errors.js';

export const EXIT_OK = 0;
export const EXIT_USAGE = 1;
export const EXIT_SYSTEM = 2;

export type RouterErrorCode =
  | 'E_USAGE'
  | 'E_SYSTEM'
  | 'E_STATE'
  | 'E_TIMEOUT'
  | 'E_LOCK_TIMEOUT'
  | 'E_ENGINE_MISSING'
  | 'E_INTERNAL';

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

  /** Wraps a libc/kernel failure with what we were doing: "opening lock file …: Permission denied (EACCES)". */
  static from(err: unknown, doing: string): SystemError {
    if (err instanceof SystemError) return err;
    if (err instanceof SysError) {
      return new SystemError(`${doing}: ${err.message}`, {
        kernelText: err.message, errno: err.errno, errnoCode: err.code, cause: err,
      });
    }
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

/** The command's time budget ran out (waiting for a lock, or for the engine). */
export class TimeoutError extends RouterError {
  readonly timeoutMs: number;
  constructor(message: string, timeoutMs: number, code: 'E_TIMEOUT' | 'E_LOCK_TIMEOUT' = 'E_TIMEOUT') {
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
