/**
 * Content store of a router's VM data: `<stateDir>/vmdata/<ns>/blobs/<id>`, id = HMAC-SHA256 of the content
 * under a per-host random key (so that an id in the model or a log reveals nothing about a password), files
 * 0600 in 0700 directories, written atomically and durably. Served files are hard links to blobs, so
 * materialising them copies nothing.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { blobDir, keyFile, vmdataRoot } from '../../services/metadata/layout.js';

const BLOB_ID_RE = /^[0-9a-f]{40}$/;
const keys = new Map<string, Buffer>();

/** The host's blob-naming key, created (0600) on first use. */
export function blobKey(stateDir: string): Buffer {
  const cached = keys.get(stateDir);
  if (cached) return cached;
  const p = keyFile(stateDir);
  mkdirSync(vmdataRoot(stateDir), { recursive: true, mode: 0o700 });
  let key: Buffer;
  // created exclusively, not replaced (two first writers must not both win): not writeFileAtomic
  try {
    const fd = openSync(p, 'wx', 0o600);
    key = randomBytes(32);
    try {
      writeSync(fd, key);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    key = readFileSync(p);
    if (key.length !== 32) throw new Error(`${p} is not a 32-byte key`);
  }
  keys.set(stateDir, key);
  return key;
}

export function blobId(key: Buffer, content: Buffer): string {
  return createHmac('sha256', key).update(content).digest('hex').slice(0, 40);
}

export function blobPath(stateDir: string, ns: string, id: string): string {
  if (!BLOB_ID_RE.test(id)) throw new Error(`invalid blob id ${JSON.stringify(id)}`);
  return join(blobDir(stateDir, ns), id);
}

let planKey: Buffer | undefined;

/**
 * The id `putBlob` would give `content`, storing nothing (a plan: lib/router/plan.ts): with the host's key when
 * it exists, else with a key of this process (the key file is not created; a plan's ids are never stored).
 */
export function blobIdOf(stateDir: string, content: Buffer): string {
  let key = keys.get(stateDir);
  if (!key) {
    try {
      const k = readFileSync(keyFile(stateDir));
      if (k.length === 32) key = k;
    } catch { /* none yet */ }
  }
  return blobId(key ?? (planKey ??= randomBytes(32)), content);
}

/** Store `content` (if not stored yet) and return its id. */
export function putBlob(stateDir: string, ns: string, content: Buffer): string {
  const id = blobId(blobKey(stateDir), content);
  const p = blobPath(stateDir, ns, id);
  if (existsSync(p)) return id;
  mkdirSync(blobDir(stateDir, ns), { recursive: true, mode: 0o700 });
  writeFileAtomic(p, content, { what: `metadata blob ${p}` });
  return id;
}

/** Delete every blob (and stale temp file) of a router not in `keep`. */
export function collectBlobs(stateDir: string, ns: string, keep: Set<string>): number {
  const dir = blobDir(stateDir, ns);
  if (!existsSync(dir)) return 0;
  let removed = 0;
  for (const name of readdirSync(dir)) {
    if (BLOB_ID_RE.test(name) && keep.has(name)) continue;
    try {
      unlinkSync(join(dir, name));
      removed++;
    } catch { /* raced */ }
  }
  return removed;
}
