/** Typed failures of the haproxy service (SystemErrors: exit 2, unless the caller rethrows). */
import { SystemError } from '../../util/errors.js';

export type HaproxyErrorCode =
  /** `haproxy -c` refused the configuration (nothing was started or reloaded). */
  | 'E_HAPROXY_CONFIG'
  /** haproxy could not be run at all (binary missing, `ip netns exec` failed). */
  | 'E_HAPROXY_SPAWN'
  /** haproxy did not start (bind error, …); `output` holds its stderr. */
  | 'E_HAPROXY_START'
  /** The new process of a reload did not come up (the old one keeps serving). */
  | 'E_HAPROXY_RELOAD'
  /** The processes did not go away. */
  | 'E_HAPROXY_STOP';

/** One problem reported by `haproxy -c`, with the configuration line it names when it names one. */
export interface ConfigProblem {
  line?: number;
  message: string;
}

export class HaproxyError extends SystemError {
  declare readonly code: HaproxyErrorCode;
  /** haproxy's own output (stderr/log tail), for the operator. */
  readonly output: string;
  readonly problems: ConfigProblem[];
  constructor(code: HaproxyErrorCode, message: string, details: { output?: string; problems?: ConfigProblem[]; cause?: unknown } = {}) {
    super(message, { code, cause: details.cause });
    this.name = 'HaproxyError';
    this.output = details.output ?? '';
    this.problems = details.problems ?? [];
  }
}
