/** Typed errors of the dnsmasq service layer (the router maps value errors to exit 1, process errors to 2). */
import { ValidationError } from '../../util/errors.js';

export type DnsmasqErrorCode =
  /** dnsmasq did not start (its own message is in `detail`). */
  | 'E_DNSMASQ_START'
  /** A running dnsmasq did not stop. */
  | 'E_DNSMASQ_STOP'
  /** The runtime directory is unusable (path, permissions). */
  | 'E_DNSMASQ_RUNDIR';

export class DnsmasqError extends Error {
  readonly code: DnsmasqErrorCode;
  constructor(code: DnsmasqErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DnsmasqError';
    this.code = code;
  }
}

/**
 * A value that would reach a dnsmasq file or argument is malformed or unsafe; `field` names what it was (mac,
 * ip, hostname, option 119, …).
 */
export class DnsmasqValueError extends ValidationError {
  constructor(field: string, value: unknown, why: string) {
    super('E_INVALID_VALUE', field, value, `${field} ${JSON.stringify(value)}: ${why}`);
    this.name = 'DnsmasqValueError';
  }
}

/** dnsmasq refused to start or stop; `detail` is what it printed. */
export class DnsmasqProcessError extends DnsmasqError {
  readonly detail: string;
  constructor(code: 'E_DNSMASQ_START' | 'E_DNSMASQ_STOP' | 'E_DNSMASQ_RUNDIR', message: string, detail = '', options?: { cause?: unknown }) {
    super(code, detail ? `${message}: ${detail}` : message, options);
    this.name = 'DnsmasqProcessError';
    this.detail = detail;
  }
}
