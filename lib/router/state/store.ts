/**
 * Persistence of router models: `<stateDir>/routers/<namespace>.json`, one file per router namespace.
 * A save writes a temp file in the same directory, fsyncs it, renames it over the old file and fsyncs the
 * directory, so a crash at any point leaves either the old or the new file, never a mix; temp files of a
 * crashed writer are removed by the next save. Saves happen with the router's engine lock held (`lock()`).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as libc from '../../sys/libc.js';
import { StateError, SystemError, TimeoutError } from '../../util/errors.js';
import { MODEL_VERSION, type RouterModel } from '../model.js';
import { TEMP_MARK, fsyncDir, writeFileAtomic } from '../../util/atomic-file.js';

export interface StoreHooks {
  /** Test hook: runs after the temp file is durable and before it replaces the old file. */
  beforeRename?: (tempPath: string, finalPath: string) => void;
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

  pathOf(ns: string): string {
    return join(this.dir, `${checkNs(ns)}.json`);
  }

  /** The saved model, or undefined when none was saved. */
  load(ns: string): RouterModel | undefined {
    const text = this.read(ns);
    return text === undefined ? undefined : this.parse(ns, text);
  }

  /** True when a state is saved for the router (without reading it). */
  has(ns: string): boolean {
    return existsSync(this.pathOf(ns));
  }

  /** The saved state file's text, or undefined when none was saved. */
  read(ns: string): string | undefined {
    const path = this.pathOf(ns);
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw SystemError.from(e, `reading state file ${path}`);
    }
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

  /** The text `save` writes for a model (compact JSON: a 10,000-rule firewall is 1.5 MB). */
  static serialize(m: RouterModel): string {
    return `${JSON.stringify(m)}\n`;
  }

  /** Atomically replaces the router's state file (`text`: the model's `serialize`d text, when already made). */
  save(m: RouterModel, text: string = StateStore.serialize(m)): void {
    const path = this.pathOf(m.namespace);
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw SystemError.from(e, `creating state directory ${this.dir}`);
    }
    this.removeStaleTemps(m.namespace);
    writeFileAtomic(path, text, { what: `state file ${path}`, beforeRename: this.hooks.beforeRename });
  }

  /** Deletes the router's state (destroy). Missing is fine. */
  remove(ns: string): void {
    const path = this.pathOf(ns);
    this.removeStaleTemps(ns);
    try {
      unlinkSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw SystemError.from(e, `removing state file ${path}`);
      return;
    }
    this.fsyncDir();
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
    return names.filter((n) => n.endsWith('.json') && NS_RE.test(n.slice(0, -5))).map((n) => n.slice(0, -5)).sort();
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
    let released = false;
    return () => {
      if (released) return;
      released = true;
      libc.close(fd); // closing the descriptor releases the flock
    };
  }

  private removeStaleTemps(ns: string): void {
    const prefix = `${ns}.json${TEMP_MARK}`;
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const n of names) {
      if (n.startsWith(prefix)) {
        try { unlinkSync(join(this.dir, n)); } catch { /* raced with another cleanup */ }
      }
    }
  }

  private fsyncDir(): void {
    fsyncDir(this.dir);
  }
}
