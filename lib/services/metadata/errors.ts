/** Typed failures of the metadata/password service (daemon and its control client). */
export type MetadataErrorCode =
  /** the daemon could not be started, or did not answer in time after starting */
  | 'E_DAEMON_START'
  /** the control socket answered something that is not our protocol, or closed early */
  | 'E_DAEMON_PROTOCOL'
  /** no answer within the time budget */
  | 'E_DAEMON_TIMEOUT'
  /** the daemon reported a failure applying a router's listeners (bind …) */
  | 'E_LISTEN'
  /** the router's namespace does not exist (yet: e.g. during a restore) */
  | 'E_NO_NAMESPACE'
  /** another daemon instance holds the lock */
  | 'E_DAEMON_RUNNING';

export class MetadataError extends Error {
  readonly code: MetadataErrorCode;
  constructor(code: MetadataErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MetadataError';
    this.code = code;
  }
}
