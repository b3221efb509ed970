/**
 * The private directory of one proxy call (mode 0700 under $TMPDIR): the SSH key file (0600,
 * written only for the moment the connection authenticates), the SSH control sockets and the
 * payload prepared for upload. Removed in `finally`; directories still present when the process
 * exits or is signalled are removed synchronously by removeAllCallDirs().
 */
import { closeSync, constants, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const liveDirs = new Set<string>();

/** ssh takes these paths inside `-o Key=value`: no whitespace or quotes; '%' is escaped later. */
const SAFE_PATH = /^\/[^\s"'\\]*$/;

/** Longest unix socket path is 107 bytes; ssh binds `<ControlPath>.<16 random chars>` first. */
const MAX_BASE = 60;

function baseDir(): string {
  const t = tmpdir();
  return SAFE_PATH.test(t) && t.length <= MAX_BASE ? t : '/tmp';
}

export class CallDir {
  readonly path: string;
  private removed = false;

  private constructor(path: string) {
    this.path = path;
  }

  static create(): CallDir {
    const path = mkdtempSync(join(baseDir(), 'nrp-')); // mkdtemp makes it 0700
    liveDirs.add(path);
    return new CallDir(path);
  }

  file(name: string): string {
    return join(this.path, name);
  }

  /** Writes a new 0600 file (never follows or reuses an existing one). */
  writePrivate(name: string, content: string): string {
    const p = this.file(name);
    const fd = openSync(p, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      writeSync(fd, content);
    } finally {
      closeSync(fd);
    }
    return p;
  }

  removeFile(path: string): void {
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  }

  remove(): void {
    if (this.removed) return;
    this.removed = true;
    rmSync(this.path, { recursive: true, force: true });
    liveDirs.delete(this.path);
  }
}

export function removeAllCallDirs(): void {
  for (const d of liveDirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort on the way out */
    }
  }
  liveDirs.clear();
}
