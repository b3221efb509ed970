/**
 * A router's NAT log: `<stateDir>/routers/<namespace>.natlog`, beside its saved state (journal.ts and the JSON
 * copy). The fast way of NAT commands (lib/router/fast-change.ts) records its change here — one appended line
 * and one fdatasync — instead of saving the whole model (1.8 MB at 10,000 static NATs: serialising and writing
 * it cost ~25 ms); so does a scoped command on a router kept warm (the parts it changed: a VM's DHCP entry, its
 * VM data), engine.ts. The stored model is the saved state (the base) with the log's records applied in order
 * (StateStore.read and load do it, so every reader sees the same model); every save of the whole model removes
 * the log (a compaction), and the fast way compacts when the log grows (natLogLimits).
 *
 *   line 1:   `netns-router natlog 1 <base>`   base: the saved state the records apply to — the identity of its
 *                                              journal record (journal.ts recordId, `J<seq>:<sha256>`, known without
 *                                              hashing the state again), or the text's snapshotHash (older builds,
 *                                              a state read from the JSON copy)
 *   record:   `<json>\t<check>`                 check: the first 16 characters of the json's sha256 (base64)
 *
 * Crash safety: a record is appended by one write and made durable before the command answers (a new log:
 * its directory too). A record cut short by a crash (no newline, or a check that fails) is the last one and is
 * ignored: the command it belonged to never answered, the state is the one before it. A log whose base is not
 * the saved state's belongs to an older state (a save that crashed before removing it: the saved state
 * already holds its records) and is ignored. A damaged record followed by others is a StateError.
 * Only a warm router's command appends, and only to the log it knows to the byte (its warm router's identity of the
 * file): a log with a cut-short record is never appended to, the next save replaces it.
 */
import { createHash } from 'node:crypto';
import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readFileSync, unlinkSync, writeSync, type BigIntStats } from 'node:fs';
import { dirname } from 'node:path';
import { StateError, SystemError } from '../../util/errors.js';
import { fsyncDir } from '../../util/atomic-file.js';
import type { RouterModel } from '../model.js';

const MAGIC = 'netns-router natlog 1 ';

/** When the fast way compacts (a full save instead of a record): from this many records, or bytes, on (tests lower them). */
export const natLogLimits = { records: 1000, bytes: 1 << 20 };

/** Is a log of this many records and bytes due for compaction (its next change saved whole instead of appended)? */
export const natLogFull = (log: { records: number; bytes: number }): boolean =>
  log.records + 1 >= natLogLimits.records || log.bytes >= natLogLimits.bytes;

/** The NAT log beside a router's JSON state copy (`x.json` → `x.natlog`). */
export const natLogPath = (statePath: string): string => statePath.replace(/\.json$/, '.natlog');

/** The hash a log names its base state by. */
export const snapshotHash = (text: string): string => createHash('sha256').update(text).digest('base64');

/** snapshotHash of `text`, made on first use (a warm router's log base: needed only once a NAT record is appended). */
export function snapshotHashOnce(text: string): () => string {
  let hash: string | undefined;
  return () => (hash ??= snapshotHash(text));
}

const check = (json: string): string => createHash('sha256').update(json).digest('base64').slice(0, 16);

/** One list's change: entries removed (their indexes in the list before, and their values to check), entries appended. */
export interface ListChange<T> {
  /** Indexes (ascending) in the list before the change. */
  del: number[];
  /** The removed entries' values (checked when replayed). */
  was: T[];
  add: T[];
}

/** One record: the changes of a fast NAT command, or the parts a scoped command changed. */
export interface NatLogRecord {
  staticNats?: ListChange<RouterModel['staticNats'][number]>;
  portForwards?: ListChange<RouterModel['portForwards'][number]>;
  /**
   * Model members (`name`) and module slots (`extra.<slot>`) replaced with these values (model-text.ts
   * changedParts: each existed before, so the members' order, and the text, are the command's).
   */
  parts?: Record<string, unknown>;
}

/** What a NAT log holds: its base, its complete records, and its valid length in bytes. */
export interface NatLog {
  base: string;
  records: NatLogRecord[];
  bytes: number;
}

/** The log's bytes, or undefined when there is none. */
function readBytes(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw SystemError.from(e, `reading NAT log ${path}`);
  }
}

/** Parse a NAT log (undefined: none, or its header cut short). A cut-short last record is left out. */
export function readNatLog(path: string): NatLog | undefined {
  const buf = readBytes(path);
  if (!buf) return undefined;
  const text = buf.toString('utf8');
  const nl = text.indexOf('\n');
  if (nl < 0 || !text.startsWith(MAGIC)) {
    if (nl < 0 && MAGIC.startsWith(text.slice(0, MAGIC.length))) return undefined; // a header cut short
    throw new StateError(path, 'not a netns-router NAT log');
  }
  const base = text.slice(MAGIC.length, nl);
  const records: NatLogRecord[] = [];
  let at = nl + 1;
  while (at < text.length) {
    const end = text.indexOf('\n', at);
    const line = end < 0 ? text.slice(at) : text.slice(at, end);
    const tab = line.lastIndexOf('\t');
    const json = tab < 0 ? '' : line.slice(0, tab);
    let rec: NatLogRecord | undefined;
    if (end >= 0 && tab >= 0 && check(json) === line.slice(tab + 1)) {
      try {
        rec = JSON.parse(json) as NatLogRecord;
      } catch {
        rec = undefined;
      }
    }
    if (!rec) {
      // a record cut short by a crash is the last one; anything else is damage
      if (end < 0 || end + 1 >= text.length) break;
      throw new StateError(path, `damaged record at byte ${at}`);
    }
    records.push(rec);
    at = end + 1;
  }
  return { base, records, bytes: Buffer.byteLength(text.slice(0, at)) };
}

function applyList<T>(path: string, list: T[], ch: ListChange<T> | undefined): T[] {
  if (!ch) return list;
  const gone = new Set(ch.del);
  ch.del.forEach((i, n) => {
    if (i < 0 || i >= list.length || JSON.stringify(list[i]) !== JSON.stringify(ch.was[n])) throw new StateError(path, `a record removes entry ${i}, which the model does not hold`);
  });
  const out = gone.size ? list.filter((_, i) => !gone.has(i)) : [...list];
  out.push(...ch.add);
  return out;
}

/** The model with the records applied in order (in place: its lists are replaced). */
export function replay(path: string, m: RouterModel, records: readonly NatLogRecord[]): RouterModel {
  for (const r of records) {
    m.staticNats = applyList(path, m.staticNats, r.staticNats);
    m.portForwards = applyList(path, m.portForwards, r.portForwards);
    for (const [key, value] of Object.entries(r.parts ?? {})) {
      const slot = key.startsWith('extra.') ? key.slice(6) : undefined;
      const into = (slot !== undefined ? m.extra : m) as Record<string, unknown> | undefined;
      const name = slot ?? key;
      if (!into || !Object.prototype.hasOwnProperty.call(into, name)) throw new StateError(path, `a record replaces ${key}, which the model does not hold`);
      into[name] = value;
    }
  }
  return m;
}

/** A file's identity: device, inode, size, mtime and ctime in ns (any write or replacement changes it). */
export const statIdentity = (st: BigIntStats): string => `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;

/** The log after an append: its size, and its identity (statIdentity). */
export interface Appended {
  bytes: number;
  identity: string;
}

/**
 * Append `rec` durably (fdatasync; a new log — `bytes` 0 — is created with its header for `base`, and the
 * directory synced). The caller knows the log holds exactly `bytes` bytes of records it trusts.
 */
export function appendRecord(path: string, base: string, bytes: number, rec: NatLogRecord): Appended {
  const json = JSON.stringify(rec);
  const line = `${json}\t${check(json)}\n`;
  const data = Buffer.from(bytes === 0 ? `${MAGIC}${base}\n${line}` : line, 'utf8');
  let fd: number | undefined;
  try {
    // a new log replaces whatever is there (a log of an older state: ignored anyway)
    fd = bytes === 0 ? openSync(path, 'w', 0o600) : openSync(path, 'a');
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fdatasyncSync(fd);
    const st = fstatSync(fd, { bigint: true });
    if (bytes === 0) fsyncDir(dirname(path));
    return { bytes: Number(st.size), identity: statIdentity(st) };
  } catch (e) {
    // a record that failed (disk full, an I/O error on the sync) must not be read as committed: cut it off
    try {
      if (bytes === 0) unlinkSync(path);
      else if (fd !== undefined) ftruncateSync(fd, bytes);
    } catch {
      /* a cut-short record is ignored by readers anyway; a complete one would not be: nothing better to do */
    }
    throw SystemError.from(e, `writing NAT log ${path}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Remove the log (after a save of the whole model: it holds the records). True when there was one. */
export function removeNatLog(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw SystemError.from(e, `removing NAT log ${path}`);
  }
}
