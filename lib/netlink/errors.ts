import { errnoMessage, errnoName } from '../sys/errors.js';

/**
 * A request the kernel refused: errno, symbolic code, which operation, and the kernel's extended-ACK text
 * (e.g. "Unknown device type." when a link kind's driver is missing). Never a bare string.
 */
export class NetlinkError extends Error {
  /** Positive errno value (17 for EEXIST). */
  readonly errno: number;
  /** Symbolic errno code ("EEXIST", "ENODEV", …). */
  readonly code: string;
  /** What we asked, e.g. "RTM_NEWLINK veth0 (veth)". */
  readonly operation: string;
  /** The kernel's extended-ACK message, when it gave one. */
  readonly extAck?: string;
  /** Byte offset of the offending attribute in our request, when the kernel said. */
  readonly attrOffset?: number;

  constructor(errno: number, operation: string, extAck?: string, attrOffset?: number) {
    const code = errnoName(errno);
    super(`${operation}: ${extAck ? `${extAck} ` : ''}(${code}: ${errnoMessage(errno)})`);
    this.name = 'NetlinkError';
    this.errno = errno;
    this.code = code;
    this.operation = operation;
    if (extAck !== undefined) this.extAck = extAck;
    if (attrOffset !== undefined) this.attrOffset = attrOffset;
  }
}

/** Whether `e` is a NetlinkError (with errno name `code`, when given). */
export function isNetlinkError(e: unknown, code?: string): e is NetlinkError {
  return e instanceof NetlinkError && (code === undefined || e.code === code);
}
/** Whether `e` is the kernel saying the object is not there (ENODEV, ENOENT, ESRCH, EADDRNOTAVAIL). */
export const isNotFound = (e: unknown): boolean =>
  isNetlinkError(e) && (e.code === 'ENODEV' || e.code === 'ENOENT' || e.code === 'ESRCH' || e.code === 'EADDRNOTAVAIL');
/** Whether `e` is the kernel saying the object exists already (EEXIST). */
export const isExists = (e: unknown): boolean => isNetlinkError(e, 'EEXIST');

/** Codes of NetlinkProtocolError: a message we cannot decode, or a request on a socket already closed. */
export type NetlinkProtocolCode = 'E_NETLINK_PROTOCOL' | 'EBADF';

/**
 * A malformed message from the kernel (code `E_NETLINK_PROTOCOL`), or a request on a closed socket (`EBADF`).
 * Input we refuse is a ValidationError; an answer of the kernel is a NetlinkError.
 */
export class NetlinkProtocolError extends Error {
  /** `E_NETLINK_PROTOCOL` or `EBADF` (docs/errors.md). */
  readonly code: NetlinkProtocolCode;
  constructor(message: string, code: NetlinkProtocolCode = 'E_NETLINK_PROTOCOL') {
    super(message);
    this.name = 'NetlinkProtocolError';
    this.code = code;
  }
}
