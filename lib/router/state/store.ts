/**
 * Persistence of router models: per router namespace, `<stateDir>/routers/<namespace>.journal` (the state: two
 * slots, each save one record written in place and fdatasync'ed — journal.ts) and `<namespace>.json` (the same
 * text, readable by people and tools; overwritten in place, not synced). Reading takes the journal's newest valid
 * record, else the JSON file (a router saved by a build without the journal). A save writes the journal record
 * first: once `save` returns, the new state survives a crash (a torn record falls back to the other slot, which
 * holds the state before); then the copy. A copy that cannot be written (disk full) puts the old state back
 * into the journal and fails the save. Saves happen with the router's engine lock held (`lock()`).
 *
 * The copy is overwritten in place (atomic-file.ts overwriteInPlace), not renamed over: a rename costs ext4's flush
 * of the file, 1–3 ms per command on a busy disk — more than the sync that makes the state durable. A reader of
 * the copy may see it followed by blanks for a moment (still one JSON document); netns-router itself does not
 * read it while a journal exists.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as libc from '../../sys/libc.js';
import { StateError, SystemError, TimeoutError } from '../../util/errors.js';
import { MODEL_VERSION, type RouterModel } from '../model.js';
import { TEMP_MARK, fsyncDir, overwriteInPlace } from '../../util/atomic-file.js';
import { journalMark, readJournal, recordIdOf, recordIdSeq, writeJournal } from './journal.js';
import { natLogPath, readNatLog, removeNatLog, replay, snapshotHash, snapshotHashOnce } from './nat-log.js';
import { modelText, type FreshTexts } from './model-text.js';

export interface StoreHooks {
  /** Test hook: runs after the journal record was written (the save is durable) and before the JSON copy. */
  beforeCopy?: () => void;
}


const NS_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

function checkNs(ns: string): string {
  if (!NS_RE.test(ns)) throw new StateError(String(ns), `invalid router namespace name ${JSON.stringify(ns)}`);
  return ns;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Structural check of a loaded document; the detailed shape is the writer's responsibility. */
function validate(path: string, ns: string, doc: unknown): RouterModel {
  if (!isObj(doc)) throw new StateError(path, 'not a JSON object');
  if (typeof doc.version !== 'number') throw new StateError(path, 'no version');
  if (doc.version > MODEL_VERSION) throw new StateError(path, `version ${doc.version} is newer than this netns-router understands (${MODEL_VERSION})`);
  if (doc.version < 1) throw new StateError(path, `unknown version ${doc.version}`);
  if (doc.namespace !== ns) throw new StateError(path, `holds router ${String(doc.namespace)}, expected ${ns}`);
  if (doc.kind !== 'network' && doc.kind !== 'vpc') throw new StateError(path, `unknown router kind ${String(doc.kind)}`);
  if (!isObj(doc.tiers) || !isObj(doc.publicIps)) throw new StateError(path, 'tiers/publicIps are not objects');
  if (!Array.isArray(doc.staticNats) || !Array.isArray(doc.portForwards)) throw new StateError(path, 'staticNats/portForwards are not lists');
  return doc as unknown as RouterModel;
}

/**
 * The routers' stored desired state: `<stateDir>/routers/<namespace>.json`, written atomically, read with
 * schema checks (StateError), and the engine's per-router lock.
 */
export class StateStore {
  readonly dir: string;

  constructor(readonly stateDir: string, private readonly hooks: StoreHooks = {}) {
    this.dir = join(stateDir, 'routers');
  }

  /** The router's readable state file (JSON). */
  pathOf(ns: string): string {
    return join(this.dir, `${checkNs(ns)}.json`);
  }

  /** The router's state journal (what makes a save durable; journal.ts). */
  journalOf(ns: string): string {
    return join(this.dir, `${checkNs(ns)}.journal`);
  }

  /** What `read` last found per router: the journal's record number (0: none) and the text. */
  private readonly seen = new Map<string, { seq: number; text: string | undefined; record?: string; id?: string }>();

  /** The saved model, or undefined when none was saved. */
  load(ns: string): RouterModel | undefined {
    const text = this.read(ns);
    return text === undefined ? undefined : this.parse(ns, text);
  }

  /** True when a state is saved for the router (without reading it). */
  has(ns: string): boolean {
    return existsSync(this.journalOf(ns)) || existsSync(this.pathOf(ns));
  }

  /**
   * The saved state's text (the journal's newest record, else the JSON file), or undefined when none was saved —
   * with the NAT log's records applied when the fast way of NAT commands logged changes since (nat-log.ts).
   */
  read(ns: string): string | undefined {
    const rec = readJournal(this.journalOf(ns));
    let text = rec?.text;
    if (text === undefined) {
      const path = this.pathOf(ns);
      try {
        text = readFileSync(path, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw SystemError.from(e, `reading state file ${path}`);
      }
    }
    if (text !== undefined) {
      const log = readNatLog(this.natLogOf(ns));
      if (log?.records.length && this.isLogBase(log.base, text, rec)) {
        text = StateStore.serialize(replay(this.natLogOf(ns), this.parse(ns, text), log.records));
      }
    }
    this.seen.set(ns, { seq: rec?.seq ?? 0, text, ...(rec ? { record: rec.text, id: rec.id } : {}) });
    return text;
  }

  /**
   * Does a NAT log's `base` name the saved state `text` (`rec`: the journal record it came from)? A base is the
   * journal record's identity (recordId: `J<seq>:<digest>`), or the text's hash (a log of an older build; base64,
   * never a colon). A state read from the JSON copy is checked against an identity by its digest.
   */
  private isLogBase(base: string, text: string, rec: { seq: number; id: string } | undefined): boolean {
    const seq = recordIdSeq(base);
    if (seq === undefined) return base === snapshotHash(text);
    return rec ? base === rec.id : base === recordIdOf(seq, text);
  }

  /**
   * `read` for a state whose text the caller holds (a warm router's model, serialised): the saved state is the one
   * of `mark` (savedMark, checked by the caller) — the next save numbers its record after it. Returns `text`.
   */
  assume(ns: string, mark: string, text: string): string {
    this.seen.set(ns, { seq: Number(mark.slice(mark.lastIndexOf(':') + 1)), text });
    return text;
  }

  /**
   * What a NAT log started on the saved state `text` names it by (nat-log.ts): the journal record's identity when
   * `text` is the record this store last saved or read — free — else the text's hash (made on first use).
   */
  logBase(ns: string, text: string): () => string {
    const s = this.seen.get(ns);
    if (s?.id !== undefined && s.record === text) {
      const id = s.id;
      return () => id;
    }
    return snapshotHashOnce(text);
  }

  /**
   * Is the readable JSON copy older than the journal's last record? A save writes the copy right after the record;
   * a writer killed between the two leaves the copy one state behind (the journal holds the state), and a retry
   * that finds the state already in place saves nothing — refreshCopy brings the copy up to date then.
   */
  private copyIsStale(ns: string): boolean {
    try {
      const j = statSync(this.journalOf(ns), { bigint: true });
      const c = statSync(this.pathOf(ns), { bigint: true, throwIfNoEntry: false });
      return c === undefined || c.mtimeNs < j.mtimeNs;
    } catch {
      return false;
    }
  }

  /**
   * After a change made durable in the NAT log (a scoped command on a warm router, engine.ts logChange): the
   * readable copy brought up to date with `text`, the state journal and log now hold (not synced: they decide). Best
   * effort: the change is already durable, so a copy that cannot be written is left as it was.
   */
  writeCopy(ns: string, text: string): void {
    const path = this.pathOf(ns);
    try {
      overwriteInPlace(path, text, { what: `state file ${path}` });
    } catch {
      /* the journal and its log are read, never the copy while they exist */
    }
  }

  /**
   * After a command that saved nothing (its state was already the stored one): rewrite the readable copy with the
   * journal record the last `read` found, if the copy is older than the journal (not synced: the journal is what
   * a crash keeps). Under the router's lock.
   */
  refreshCopy(ns: string): void {
    const record = this.seen.get(ns)?.record;
    if (record === undefined || !this.copyIsStale(ns)) return;
    const path = this.pathOf(ns);
    overwriteInPlace(path, record, { what: `state file ${path}` });
  }

  /** The NAT log of the fast way of NAT commands beside the router's state (nat-log.ts). */
  natLogOf(ns: string): string {
    return natLogPath(this.pathOf(ns));
  }

  /** What the router's saved state is, cheaply (journal.ts journalMark): unchanged as long as nobody saves. */
  savedMark(ns: string): string | undefined {
    return journalMark(this.journalOf(ns));
  }

  /** A state file's text as a model (checked: router name, version, shape). Each call returns a new object. */
  parse(ns: string, text: string): RouterModel {
    const path = this.pathOf(ns);
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new StateError(path, 'not valid JSON', e);
    }
    return validate(path, ns, doc);
  }

  /**
   * The text `save` writes for a model (compact JSON: a 10,000-rule firewall is 1.5 MB), its frozen large parts'
   * known texts reused (model-text.ts); `fresh` receives the texts made for large parts.
   */
  static serialize(m: RouterModel, fresh?: FreshTexts): string {
    return modelText(m, fresh);
  }

  /** Atomically replaces the router's state file (`text`: the model's `serialize`d text, when already made). */
  save(m: RouterModel, text: string = StateStore.serialize(m)): void {
    const path = this.pathOf(m.namespace);
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw SystemError.from(e, `creating state directory ${this.dir}`);
    }
    const ns = m.namespace;
    // the journal record numbers go on from the newest valid one (its slot is then never overwritten)
    const prev = this.seen.get(ns) ?? (this.read(ns), this.seen.get(ns)!);
    const journal = this.journalOf(ns);
    // temp files are made only when a journal is made (and by builds before the journal): cleaned up then, not
    // by listing the directory — one entry per router — on every save
    const written = writeJournal(journal, prev.seq + 1, text);
    if (written.how === 'made') this.removeStaleTemps(ns);
    try {
      this.hooks.beforeCopy?.();
      overwriteInPlace(path, text, { what: `state file ${path}` });
    } catch (e) {
      // the new state must not stay: the old one goes back into the journal (in place: no allocation), and
      // into the copy (it fits where it was)
      try {
        if (prev.text === undefined) {
          unlinkSync(journal);
          unlinkSync(path);
          this.fsyncDir();
        } else {
          writeJournal(journal, prev.seq + 2, prev.text);
          this.seen.set(ns, { seq: prev.seq + 2, text: prev.text });
          overwriteInPlace(path, prev.text, { what: `state file ${path}` });
        }
      } catch { /* best effort: what the journal holds is read */ }
      throw SystemError.from(e, `writing state file ${path}`);
    }
    this.seen.set(ns, { seq: prev.seq + 1, text, record: text, id: written.id });
    // the state saved holds the NAT log's records (not synced: a log left by a crash names the older state)
    removeNatLog(this.natLogOf(ns));
  }

  /**
   * Deletes the router's state (destroy). Missing is fine. The JSON file goes first: whatever a crash keeps of
   * the two unlinks, what is read is the last saved state or nothing.
   */
  remove(ns: string): void {
    this.removeStaleTemps(ns);
    let removed = false;
    for (const path of [this.pathOf(ns), this.journalOf(ns), this.natLogOf(ns)]) {
      try {
        unlinkSync(path);
        removed = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw SystemError.from(e, `removing state file ${path}`);
      }
    }
    this.seen.delete(ns);
    if (removed) this.fsyncDir();
  }

  /** Namespaces of the routers with a saved state, sorted. */
  list(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw SystemError.from(e, `listing state directory ${this.dir}`);
    }
    const routers = new Set<string>();
    for (const n of names) {
      const ns = n.endsWith('.json') ? n.slice(0, -5) : n.endsWith('.journal') ? n.slice(0, -8) : undefined;
      if (ns !== undefined && NS_RE.test(ns)) routers.add(ns);
    }
    return [...routers].sort();
  }

  /**
   * The router's engine lock (flock on `<stateDir>/locks/<namespace>.lock`), waiting at most `timeoutMs`.
   * Separate from the CLI's upstream-named lock (state/lock.ts), which the CLI takes first: flock excludes
   * two descriptors of one file even in one process, so the two must be different files.
   */
  async lock(ns: string, timeoutMs: number): Promise<() => void> {
    const dir = join(this.stateDir, 'locks');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const fd = libc.open(join(dir, `${checkNs(ns)}.lock`), libc.O_RDWR | libc.O_CREAT, 0o600);
    const deadline = Date.now() + timeoutMs;
    let wait = 2;
    while (!libc.tryFlock(fd, libc.LOCK_EX)) {
      if (Date.now() >= deadline) {
        libc.close(fd);
        throw new TimeoutError(`router ${ns} is busy: another command held its lock for ${timeoutMs} ms`, timeoutMs, 'E_LOCK_TIMEOUT');
      }
      await sleep(wait);
      wait = Math.min(wait * 2, 50);
    }
    this.seen.delete(ns); // another holder may have saved since: the next save reads the journal again
    let released = false;
    return () => {
      if (released) return;
      released = true;
      libc.close(fd); // closing the descriptor releases the flock
    };
  }

  private removeStaleTemps(ns: string): void {
    const prefixes = [`${ns}.json${TEMP_MARK}`, `${ns}.journal${TEMP_MARK}`];
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const n of names) {
      if (prefixes.some((p) => n.startsWith(p))) {
        try { unlinkSync(join(this.dir, n)); } catch { /* raced with another cleanup */ }
      }
    }
  }

  private fsyncDir(): void {
    fsyncDir(this.dir);
  }
}
