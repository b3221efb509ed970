/**
 * Routers kept warm between commands of one process (docs/delta-nat.md): the model as stored, deep-frozen, with
 * what the last reconcile compiled for it and the stamp that commit left in the kernel. A command's mutation then
 * runs on a copy of the model's top level only — every container and entry the stored model's, frozen, so a
 * mutation that writes into one throws TypeError and the engine takes the full way — and the change is found by
 * identity (delta-compile.ts), without reading, parsing or serialising the whole router first.
 *
 * A cache, never the truth: an entry is used only while the saved state is the one it was made from (the state
 * journal's mark: every save writes a higher record number, state/journal.ts journalMark) and the NAT log the
 * very log it left (device, inode, size, mtime and ctime in ns: every append grows it), so another process's
 * write shows; and only while the namespace is the one and its nftables generation the one our last commit left.
 */
import { statSync } from 'node:fs';
import type { RouterModel } from './model.js';
import type { Compiled } from './delta-compile.js';
import { LruMap } from '../util/lru-map.js';
import { statIdentity } from './state/nat-log.js';
import { keepTexts, partText, type FreshTexts } from './state/model-text.js';

/** A router kept warm: its stored model and the compile and stamp of its last reconcile. */
export interface WarmRouter {
  /** The saved state's mark (StateStore.savedMark) when `model` was saved or read. */
  file: string;
  /** The stored model, deep-frozen. */
  model: RouterModel;
  compiled: Compiled;
  /** The stamp our last commit left: its fingerprint (router table and ARP responder), generation, namespace. */
  stamp: { fingerprint: number; generation: number; netns: string };
  /** The NAT log as our last write left it (state/nat-log.ts): the saved state's hash (made on first use), the
   *  log's length and records, its identity (undefined: there is none). */
  log: { base: () => string; bytes: number; records: number; identity?: string };
}

/** The identity of a file (undefined: missing or unreadable). */
export function fileIdentity(path: string): string | undefined {
  try {
    return statIdentity(statSync(path, { bigint: true }));
  } catch {
    return undefined;
  }
}

/** Freeze `x` and everything reachable from it. */
export function deepFreeze<T>(x: T): T {
  if (typeof x !== 'object' || x === null || Object.isFrozen(x)) return x;
  Object.freeze(x);
  if (Array.isArray(x)) for (const v of x) deepFreeze(v); // a router's lists hold thousands: no copy of them
  else for (const k in x) deepFreeze((x as Record<string, unknown>)[k]);
  return x;
}

/** The cache slot of a router: its state directory and namespace. */
const slot = (stateDir: string, ns: string): string => `${stateDir}\0${ns}`;

/** Warm routers by state directory and namespace (a few: each holds a router's model and compile). */
export class WarmCache {
  private readonly routers: LruMap<string, WarmRouter>;
  constructor(max = 8) {
    this.routers = new LruMap(max);
  }

  /** The warm router, if the saved state (`mark`: StateStore.savedMark) and the NAT log are still the ones it left. */
  get(stateDir: string, ns: string, mark: string | undefined, logPath: string): WarmRouter | undefined {
    const w = this.routers.get(slot(stateDir, ns));
    if (!w) return undefined;
    if (mark !== undefined && mark === w.file && fileIdentity(logPath) === w.log.identity) return w;
    this.routers.delete(slot(stateDir, ns));
    return undefined;
  }

  set(stateDir: string, ns: string, w: WarmRouter): void {
    this.routers.set(slot(stateDir, ns), w);
  }

  drop(stateDir: string, ns: string): void {
    this.routers.delete(slot(stateDir, ns));
  }
}

/**
 * The stored model of large routers, deep-frozen, by the exact text it was saved as (or read from): the next full
 * command of such a router takes it as its model before the change instead of parsing the text a second time
 * (~12–20 ms and its garbage on a router of 10,000 firewall rules). A hit needs the very text `read` returns now,
 * so another process's save, a NAT log or a hand edit only misses.
 */
export class StoredModels {
  private readonly routers: LruMap<string, { text: string; model: RouterModel }>;
  constructor(max = 8) {
    this.routers = new LruMap(max);
  }

  /** The frozen model saved as `text`, if this is the one kept. */
  get(stateDir: string, ns: string, text: string): RouterModel | undefined {
    const hit = this.routers.get(slot(stateDir, ns));
    return hit !== undefined && hit.text === text ? hit.model : undefined;
  }

  /**
   * Keep `model` (frozen here) as the router's model stored as `text`; `fresh`: the texts of its large parts made
   * when `text` was (model-text.ts), recorded for the next command's draftOf and serialisation.
   */
  set(stateDir: string, ns: string, text: string, model: RouterModel, fresh?: FreshTexts): void {
    this.routers.set(slot(stateDir, ns), { text, model: deepFreeze(model) });
    if (fresh) keepTexts(fresh);
  }

  drop(stateDir: string, ns: string): void {
    this.routers.delete(slot(stateDir, ns));
  }
}

/** A member of a stored model as the draft holds it: shared (frozen) when large and not `own`, else a copy. */
function draftPart(v: unknown, own: boolean): unknown {
  if (typeof v !== 'object' || v === null) return v;
  const text = partText(v);
  if (text === undefined) return structuredClone(v);
  return own ? JSON.parse(text) : v; // (a parse of the known text: ~3× cheaper than structuredClone)
}

/**
 * A model for a command to change, made from a kept stored one (StoredModels) without parsing the state: the
 * model's members and module slots (`extra`) whose text is recorded (large: model-text.ts) are shared, still
 * frozen — a mutation that writes into one throws TypeError, and the engine runs it again on the parsed state —,
 * every other member, and the slots of the `own` modules (the command's scope), are copies of its own. The
 * parts the command leaves alone stay the very objects of the model before it: compared by identity, serialised
 * from their recorded text.
 */
export function draftOf(stored: RouterModel, own: readonly string[]): RouterModel {
  const m: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(stored)) {
    if (k !== 'extra' || typeof v !== 'object' || v === null) {
      m[k] = draftPart(v, false);
      continue;
    }
    const extra: Record<string, unknown> = {};
    for (const [slotName, part] of Object.entries(v)) extra[slotName] = draftPart(part, own.includes(slotName));
    m[k] = extra;
  }
  return m as unknown as RouterModel;
}
