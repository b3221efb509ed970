/**
 * Typed errors of the management-side proxy and the exit code each maps to. The codes are the
 * upstream proxy's (network-namespace.sh): 0 ok, 1 usage/configuration (missing argument, no
 * host, no reachable host), 2 SSH connection/authentication/transfer failure, 3 the remote wrapper
 * exited non-zero.
 */
import { RouterError } from '../util/errors.js';

export const PROXY_EXIT_OK = 0;
export const PROXY_EXIT_USAGE = 1;
export const PROXY_EXIT_SSH = 2;
export const PROXY_EXIT_REMOTE = 3;

export type ProxyErrorCode =
  | 'E_PROXY_CONFIG'     // bad/missing physical-network details, bad proxy option
  | 'E_PROXY_NO_HOST'    // no host configured / none reachable
  | 'E_SSH_TOOL'         // ssh, scp or sshpass missing
  | 'E_SSH_CONNECT'      // TCP/SSH connection failed
  | 'E_SSH_AUTH'         // authentication rejected
  | 'E_SSH_HOSTKEY'      // host key differs from the one recorded
  | 'E_SSH_TRANSFER'     // remote temp file / upload failed
  | 'E_SSH_LOST'         // connection lost while the wrapper ran
  | 'E_SSH_TIMEOUT'      // the command's time limit ran out
  | 'E_INTERRUPTED'      // SIGTERM/SIGINT/SIGHUP
  | 'E_REMOTE';          // the wrapper exited non-zero

export class ProxyError extends Error {
  readonly code: ProxyErrorCode;
  readonly exitCode: number;
  constructor(code: ProxyErrorCode, message: string, exitCode: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProxyError';
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** Configuration problem (exit 1); `argument` names the detail or option, like UsageError. */
export class ProxyConfigError extends ProxyError {
  readonly argument?: string;
  constructor(message: string, argument?: string, code: 'E_PROXY_CONFIG' | 'E_PROXY_NO_HOST' = 'E_PROXY_CONFIG') {
    super(code, message, PROXY_EXIT_USAGE);
    this.name = 'ProxyConfigError';
    this.argument = argument;
  }
}

/** Anything that went wrong talking SSH to `host`:`port` (exit 2). */
export class SshError extends ProxyError {
  readonly host: string;
  readonly port: number;
  constructor(code: ProxyErrorCode, host: string, port: number, message: string, options?: { cause?: unknown }) {
    super(code, message, PROXY_EXIT_SSH, options);
    this.name = 'SshError';
    this.host = host;
    this.port = port;
  }
}

/** The remote wrapper ran and failed (exit 3); its stderr has already been passed through. */
export class RemoteCommandError extends ProxyError {
  readonly status: number | null;
  readonly signal: string | null;
  constructor(message: string, status: number | null, signal: string | null) {
    super('E_REMOTE', message, PROXY_EXIT_REMOTE);
    this.name = 'RemoteCommandError';
    this.status = status;
    this.signal = signal;
  }
}

/** Exit code of anything thrown out of a proxy call: usage errors 1, unknown errors 2. */
export function proxyExitCodeOf(err: unknown): number {
  if (err instanceof ProxyError) return err.exitCode;
  if (err instanceof RouterError) return err.exitCode === PROXY_EXIT_USAGE ? PROXY_EXIT_USAGE : PROXY_EXIT_SSH;
  return PROXY_EXIT_SSH;
}

export function describeProxyError(err: unknown): string {
  if (err instanceof ProxyError || err instanceof RouterError) return err.message;
  if (err instanceof Error) return `internal error: ${err.message}`;
  return `internal error: ${String(err)}`;
}
