/**
 * Loads the CLI from its one-file bundle (scripts/bundle-cli.mjs builds dist/cli/netns-router.bundle.cjs) with
 * a V8 code cache, for a cold `netns-router` process: one file read and (with the cache) no compilation of what
 * a command ran before, instead of resolving and compiling ~180 modules. Node 20 has no module compile cache,
 * hence vm.Script's cachedData.
 *
 * The cache lives beside the bundle (`<bundle>.cache`): a header naming the bundle it was made from (inode,
 * size, mtime — V8's own check is the source length only) and the kind of run that made it, then V8's data.
 * It is written, atomically and best effort, when it is missing, was refused by V8 (another Node), or was made
 * by a run that loaded less than a router command did. Writing it requires the rights that writing the bundle
 * requires (same directory), so it is no other trust than the code itself.
 *
 * Without the bundle (a development tree before the build step), undefined: the caller imports the ES modules.
 */
import { closeSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Script } from 'node:vm';

export type BundleLoad = ((id: string) => unknown) & { has(id: string): boolean };

const BUNDLE = join(__dirname, 'netns-router.bundle.cjs');
const CACHE = `${BUNDLE}.cache`;
const MAGIC = 'netns-router-code-cache 1';
/** A run that loaded the router engine: its cache covers what router commands need. */
const ENGINE_MODULE = 'dist/lib/router/engine.js';

interface Loaded {
  load: BundleLoad;
  /** Write the code cache if it is worth it (call once the command has run). */
  saveCache(): void;
}

function bundleId(): string {
  const st = statSync(BUNDLE);
  return `${st.ino}:${st.size}:${Math.floor(st.mtimeMs)}`;
}

export function loadBundle(): Loaded | undefined {
  let source: string;
  let id: string;
  try {
    // ASCII by construction (scripts/bundle-cli.mjs): latin1 gives V8 a one-byte string without decoding
    source = readFileSync(BUNDLE, 'latin1');
    id = bundleId();
  } catch {
    return undefined;
  }
  let cachedData: Buffer | undefined;
  let cachedKind = '';
  try {
    const raw = readFileSync(CACHE);
    const nl = raw.indexOf(10);
    const [magic, of, kind] = raw.subarray(0, nl).toString('latin1').split('\t');
    if (nl > 0 && magic === MAGIC && of === id) {
      cachedData = raw.subarray(nl + 1);
      cachedKind = kind ?? '';
    }
  } catch {
    /* no cache yet */
  }
  const script = new Script(source, { filename: BUNDLE, ...(cachedData ? { cachedData } : {}) });
  const accepted = cachedData !== undefined && !script.cachedDataRejected;
  const root = resolve(__dirname, '..', '..');
  const load = (script.runInThisContext() as (cr: typeof createRequire, p: typeof pathToFileURL, root: string) => BundleLoad)(createRequire, pathToFileURL, root);
  return {
    load,
    saveCache(): void {
      const kind = load.has(ENGINE_MODULE) ? 'engine' : 'other';
      if (accepted && (cachedKind === 'engine' || kind !== 'engine')) return;
      try {
        const data = script.createCachedData();
        const tmp = `${CACHE}.${process.pid}.tmp`;
        const fd = openSync(tmp, 'w', 0o644);
        try {
          writeSync(fd, `${MAGIC}\t${id}\t${kind}\n`);
          writeSync(fd, data);
        } finally {
          closeSync(fd);
        }
        renameSync(tmp, CACHE);
      } catch {
        /* a read-only installation: no cache, still one file */
      }
    },
  };
}
