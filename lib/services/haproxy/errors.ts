/** Typed failures of the haproxy service (all map to exit 2 through SystemError, unless the caller rethrows). */
import { SystemError } from '../../util/errors.js';

export type HaproxyFailure =
  /** `haproxy -c` refused the configuration (nothing was started or reloaded). */
  | 'config-invalid'
  /** haproxy could not be run at all (binary missing, `ip netns exec` failed). */
  | 'spawn-failed'
  /** The master did not start (bind error, …); `output` holds its stderr. */
  | 'start-failed'
  /** The master did not bring up a new worker after a reload request. */
  | 'reload-failed'
  /** The processes did not go away. */
  | 'stop-failed';

/** One problem reported by `haproxy -c`, with the configuration line it names when it names one. */
export interface ConfigProblem {
  line?: number;
  message: string;
}

export class HaproxyError extends SystemError {
  readonly failure: HaproxyFailure;
  /** haproxy's own output (stderr/log tail), for the operator. */
  readonly output: string;
  readonly problems: ConfigProblem[];
  constructor(failure: HaproxyFailure, message: string, details: { output?: string; problems?: ConfigProblem[]; cause?: unknown } = {}) {
    super(message, { cause: details.cause });
    this.name = 'HaproxyError';
    this.failure = failure;
    this.output = details.output ?? '';
    this.problems = details.problems ?? [];
  }
}
