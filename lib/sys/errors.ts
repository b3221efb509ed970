import { constants as osConstants } from 'node:os';

/** errno number → symbolic code (EEXIST, ENOENT, …), built from Node's own table. */
const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(osConstants.errno)) {
  if (!errnoNames.has(value)) errnoNames.set(value, name);
}
// Linux aliases: report the names the kernel and iproute2 use.
if (osConstants.errno.EOPNOTSUPP !== undefined) errnoNames.set(osConstants.errno.EOPNOTSUPP, 'EOPNOTSUPP');
if (osConstants.errno.EAGAIN !== undefined) errnoNames.set(osConstants.errno.EAGAIN, 'EAGAIN');

/** Symbolic name of an errno value, e.g. 17 → "EEXIST". */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

const messages: Record<string, string> = {
  EPERM: 'Operation not permitted', ENOENT: 'No such file or directory', ESRCH: 'No such process',
  EINTR: 'Interrupted system call', EIO: 'Input/output error', EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable', ENOMEM: 'Cannot allocate memory', EACCES: 'Permission denied',
  EBUSY: 'Device or resource busy', EEXIST: 'File exists', ENODEV: 'No such device',
  ENOTDIR: 'Not a directory', EINVAL: 'Invalid argument', ENOSPC: 'No space left on device',
  ERANGE: 'Numerical result out of range', ENOTSUP: 'Operation not supported',
  EOPNOTSUPP: 'Operation not supported', EAFNOSUPPORT: 'Address family not supported by protocol',
  EADDRINUSE: 'Address already in use', EADDRNOTAVAIL: 'Cannot assign requested address',
  ENETUNREACH: 'Network is unreachable', ENOBUFS: 'No buffer space available',
  ETIMEDOUT: 'Connection timed out', EPROTONOSUPPORT: 'Protocol not supported',
  ENOTEMPTY: 'Directory not empty', EMSGSIZE: 'Message too long', ENOLINK: 'Link has been severed',
  EHOSTUNREACH: 'No route to host', EWOULDBLOCK: 'Resource temporarily unavailable',
  EROFS: 'Read-only file system', EDQUOT: 'Disk quota exceeded', EMFILE: 'Too many open files',
  ENFILE: 'Too many open files in system', ENAMETOOLONG: 'File name too long', EISDIR: 'Is a directory',
  ELOOP: 'Too many levels of symbolic links', EXDEV: 'Invalid cross-device link', ETXTBSY: 'Text file busy',
  ENOEXEC: 'Exec format error', EFBIG: 'File too large', ENXIO: 'No such device or address',
};

/** strerror-like text for an errno value (English, locale independent). */
export function errnoMessage(errno: number): string {
  const code = errnoName(errno);
  return messages[code] ?? code;
}

/** A failed libc call: which call, errno, its symbolic code. */
export class SysError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  constructor(syscall: string, errno: number, detail?: string) {
    const code = errnoName(errno);
    super(`${syscall}${detail ? ` ${detail}` : ''}: ${errnoMessage(errno)} (${code})`);
    this.name = 'SysError';
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
  }
}
