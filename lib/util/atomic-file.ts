/**
 * The one way netns-router replaces a file: the data go to a temp file in the same directory, which is renamed
 * over the old file — so a reader (or a crash) sees the old or the new contents, never a mix. A durable write
 * (the default: state files, the segment pool, VM data, installed shims) also fsyncs the file before the
 * rename and the directory after it, so the new contents survive a power loss. Files regenerated from the
 * stored state by every reconcile (daemon configurations, pid files) pass `durable: false`: after a crash they
 * are rewritten anyway, and an fsync costs milliseconds per command. Temp files are named
 * `<file>.tmp-<pid>-<random>`; a writer may remove stale ones of its file (nobody else renames them). Not
 * this: a child's scratch input in a private temp directory (nft -f, haproxy -c), a file created exclusively
 * (the metadata blob key), a marker whose existence is the message, a hard link put in place.
 */
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { SystemError } from './errors.js';

export const TEMP_MARK = '.tmp-';

export interface AtomicWriteOptions {
  /** What the file is, for error messages ("state file /x"). */
  what: string;
  /** Mode of the new file (default 0600); applied whatever the umask. */
  mode?: number;
  /** fsync file and directory (default true); false only for files every reconcile rewrites from the state. */
  durable?: boolean;
  /** Test hook: runs after the temp file is written (and synced) and before it replaces the old file. */
  beforeRename?: (tempPath: string, finalPath: string) => void;
}

/** Replace `path` with `data` atomically (see the module comment); failures are SystemErrors naming `what`. */
export function writeFileAtomic(path: string, data: string | Uint8Array, opts: AtomicWriteOptions): void {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const durable = opts.durable ?? true;
  const mode = opts.mode ?? 0o600;
  const temp = `${path}${TEMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const fd = openSync(temp, 'wx', mode);
    try {
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fchmodSync(fd, mode); // the mode asked for, whatever the umask
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    opts.beforeRename?.(temp, path);
    renameSync(temp, path);
  } catch (e) {
    try { unlinkSync(temp); } catch { /* already gone or never created */ }
    throw SystemError.from(e, `writing ${opts.what}`);
  }
  if (durable) fsyncDir(dirname(path));
}

/** fsync a directory (makes a rename or unlink in it durable). */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (e) {
    throw SystemError.from(e, `syncing state directory ${dir}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
