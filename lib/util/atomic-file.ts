/**
 * The one way netns-router replaces a file: the data go to a temp file in the same directory, which is renamed
 * over the old file — so a reader (or a crash) sees the old or the new contents, never a mix. A durable write
 * (the default: the segment pool, VM data, installed shims; router states have their journal,
 * lib/router/state/journal.ts) also fsyncs the file before the
 * rename and the directory after it, so the new contents survive a power loss. Files regenerated from the
 * stored state by every reconcile (daemon configurations, pid files) pass `durable: false`: after a crash they
 * are rewritten anyway, and an fsync costs milliseconds per command. Temp files are named
 * `<file>.tmp-<pid>-<random>`; a writer may remove stale ones of its file (nobody else renames them). Not
 * this: a child's scratch input in a private temp directory (nft -f, haproxy -c), a file created exclusively
 * (the metadata blob key), a marker whose existence is the message, a hard link put in place. `overwriteInPlace`
 * is the cheaper, weaker way for copies and regenerated files whose format ignores trailing blanks.
 */
import { closeSync, fchmodSync, fstatSync, fsyncSync, ftruncateSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { SystemError } from './errors.js';

export const TEMP_MARK = '.tmp-';

export interface AtomicWriteOptions {
  /** What the file is, for error messages ("state file /x"). */
  what: string;
  /** Mode of the new file (default 0600); applied whatever the umask. */
  mode?: number;
  /** fsync file and directory (default true); false only for files every reconcile rewrites from the state, and
   *  runtime records that mean nothing after the machine went down. */
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

/**
 * Overwrite `path` in place (created with `mode` when missing): the data, then blanks up to the old length, then
 * cut to the data's length — so that a reader sees the old or the new contents, the new ones possibly followed by
 * blanks for a moment, and half of each only while the write is under way. Not atomic like writeFileAtomic and
 * not durable: for copies of what is stored elsewhere and files every reconcile rewrites, in formats that ignore
 * trailing blanks (JSON, iproute2's tables). Why not a rename: ext4 flushes a file renamed over another at once
 * (its replace-via-rename heuristic), 1–3 ms per write on a busy disk.
 */
export function overwriteInPlace(path: string, data: string, opts: { what: string; mode?: number }): void {
  try {
    let fd: number;
    try {
      fd = openSync(path, 'r+');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      fd = openSync(path, 'wx', opts.mode ?? 0o600);
    }
    try {
      const body = Buffer.from(data, 'utf8');
      const old = fstatSync(fd).size;
      const buf = old > body.length ? Buffer.concat([body, Buffer.alloc(old - body.length, 0x20)]) : body;
      for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off, off);
      if (old > body.length) ftruncateSync(fd, body.length);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw SystemError.from(e, `writing ${opts.what}`);
  }
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
