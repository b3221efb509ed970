/**
 * Crash-safe replacement of a small state file: the text goes to a temp file in the same directory, which is
 * fsynced, renamed over the old file, and the directory fsynced — so after a crash at any point the path
 * holds either the old or the new text, never a mix. Temp files are named `<file>.tmp-<pid>-<random>`; a
 * writer may remove stale ones of its file before writing (they are never renamed by anyone else).
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { SystemError } from '../errors.js';

export const TEMP_MARK = '.tmp-';

export interface DurableWriteOptions {
  /** What the file is, for error messages ("state file /x"). */
  what: string;
  /** Mode of a new file (default 0600). */
  mode?: number;
  /** Test hook: runs after the temp file is durable and before it replaces the old file. */
  beforeRename?: (tempPath: string, finalPath: string) => void;
}

export function writeFileDurably(path: string, text: string, opts: DurableWriteOptions): void {
  const buf = Buffer.from(text, 'utf8');
  const temp = `${path}${TEMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const fd = openSync(temp, 'wx', opts.mode ?? 0o600);
    try {
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    opts.beforeRename?.(temp, path);
    renameSync(temp, path);
  } catch (e) {
    try { unlinkSync(temp); } catch { /* already gone or never created */ }
    throw SystemError.from(e, `writing ${opts.what}`);
  }
  fsyncDir(dirname(path));
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
