/**
 * Network sysctls read/written through /proc/sys. The net.* tree of a /proc/sys file belongs to the namespace
 * of the thread that OPENED it, so the file is opened while inside the target namespace (see NetnsHandle).
 */
import { readSync, writeSync, closeSync } from 'node:fs';
import { libc } from '../sys/index.js';
import { SysError } from '../sys/errors.js';
import { validIfName } from '../netlink/link.js';

/** A sysctl that cannot be read or written: a bad key, or one the namespace does not have (`code` EINVAL, ENOENT, …). */
export class SysctlError extends Error {
  readonly key: string;
  readonly code: string;
  constructor(key: string, code: string, message: string) {
    super(message);
    this.name = 'SysctlError';
    this.key = key;
    this.code = code;
  }
}

/** "net.ipv4.conf.eth0/1.rp_filter" → path; interface names may contain dots, so '/' stands for '.' as in sysctl(8). */
export function sysctlPath(key: string): string {
  const bad = (why: string): SysctlError =>
    new SysctlError(key, 'EINVAL', `invalid network sysctl key ${JSON.stringify(key)}: ${why}`);
  if (typeof key !== 'string' || !/^net\.[A-Za-z0-9_./+@-]+$/.test(key)) throw bad('must start with "net." and hold only [A-Za-z0-9_./+@-]');
  // '.' separates path components, '/' stands for a '.' inside one; every component must be a plain name
  // (no empty, "." or ".." component: "net.//.//.x" would otherwise climb out of /proc/sys/net).
  const parts = key.split('.').map((p) => p.replace(/\//g, '.'));
  if (parts.some((p) => p === '' || p === '.' || p === '..')) throw bad('empty, "." or ".." component');
  return `/proc/sys/${parts.join('/')}`;
}

/** Key for a per-interface setting, e.g. confKey('ipv6', 'vn-100-2a', 'disable_ipv6'). */
export function confKey(family: 'ipv4' | 'ipv6', ifname: string, setting: string): string {
  if (family !== 'ipv4' && family !== 'ipv6') throw new SysctlError(String(family), 'EINVAL', `confKey: family must be ipv4 or ipv6`);
  if (!validIfName(ifname) && ifname !== 'all' && ifname !== 'default') {
    throw new SysctlError(String(ifname), 'EINVAL', `confKey: invalid interface name ${JSON.stringify(ifname)}`);
  }
  if (!/^[A-Za-z0-9_]+$/.test(setting)) throw new SysctlError(String(setting), 'EINVAL', `confKey: invalid setting ${JSON.stringify(setting)}`);
  return `net.${family}.conf.${ifname.replace(/\./g, '/')}.${setting}`;
}

/** Open a sysctl file in the calling thread's current namespace (throws SysctlError). */
export function openSysctl(key: string, write: boolean): number {
  try {
    return libc.open(sysctlPath(key), write ? libc.O_WRONLY : libc.O_RDONLY);
  } catch (e) {
    if (e instanceof SysError) throw new SysctlError(key, e.code, `sysctl ${key}: ${e.message}`);
    throw e;
  }
}

export function readSysctlFd(fd: number): string {
  try {
    const b = Buffer.alloc(4096);
    const n = readSync(fd, b, 0, b.length, 0);
    return b.toString('utf8', 0, n).trim();
  } finally {
    closeSync(fd);
  }
}

export function writeSysctlFd(key: string, fd: number, value: string | number): void {
  try {
    writeSync(fd, `${value}\n`);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new SysctlError(key, err.code ?? 'EIO', `sysctl ${key}=${value}: ${err.message}`);
  } finally {
    closeSync(fd);
  }
}
