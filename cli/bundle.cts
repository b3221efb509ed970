/**
 * Loads the CLI from its one-file bundle (scripts/bundle-cli.mjs builds dist/cli/netns-router.bundle.cjs) with
 * a V8 code cache, for a cold `netns-router` process: one file read and (with the cache) no compilation of what
 * a command ran before, instead of resolving and compiling ~180 modules. Node 20 has no module compile cache,
 * hence vm.Script's cachedData.
 *
 * The cache lives beside the bundle (`<bundle>.cache`): a header naming the bundle it was made from (inode,
 * size, mtime — V8's own check is the source length only) and the kind of run that made it, then V8's data.
 * It is written, atomically and best effort, when it is missing, was refused by V8 (another Node), or does not
 * cover the router command that just ran: the header lists the router commands whose runs made it, and V8's
 * data made after a run holds what the old cache held plus what this run compiled, so the cache grows to the
 * commands this host uses (each new one costs one rewrite) — a cache made by add-static-nat alone left every
 * delete-static-nat compiling its conntrack code cold. Writing it requires the rights that writing the bundle
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
const MAGIC = 'netns-router-code-cache 2';
/** A run that loaded the router engine: its cache covers what router commands need. */
const ENGINE_MODULE = 'dist/lib/router/engine.js';
/** The command table the parser used: which word of the command line is the command (options may come first,
 *  as the wrapper shim puts its baked --extension and options there). */
const SPECS_MODULE = 'dist/lib/router/contract/command-specs.js';
/** A command name as the header lists it. */
const COMMAND = /^[a-z][a-z0-9-]{0,63}$/;
/** Never written by these: the resident engine's cache would hold whatever it compiled over its lifetime. */
const LONG_LIVED = new Set(['serve']);

interface Loaded {
  load: BundleLoad;
  /** Write the code cache if it is worth it (call once the command has run, with its command line). */
  saveCache(argv: readonly string[]): void;
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
  let covered: string[] = [];
  try {
    const raw = readFileSync(CACHE);
    const nl = raw.indexOf(10);
    const [magic, of, commands] = raw.subarray(0, nl).toString('latin1').split('\t');
    if (nl > 0 && magic === MAGIC && of === id) {
      cachedData = raw.subarray(nl + 1);
      covered = commands ? commands.split(',') : [];
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
    saveCache(argv: readonly string[]): void {
      const specs = load.has(SPECS_MODULE) ? load(SPECS_MODULE) as { commandSpec(name: string): unknown } : undefined;
      const command = argv.find((a) => COMMAND.test(a) && specs?.commandSpec(a) !== undefined) ?? argv[0];
      if (command !== undefined && LONG_LIVED.has(command)) return;
      // a run that did not load the engine (help, version, bad input) adds nothing a router command needs
      const ran = load.has(ENGINE_MODULE) && command !== undefined && COMMAND.test(command) ? command : undefined;
      if (accepted && (ran === undefined || covered.includes(ran))) return;
      const commands = [...(accepted ? covered : []), ...(ran !== undefined ? [ran] : [])];
      try {
        const data = script.createCachedData();
        const tmp = `${CACHE}.${process.pid}.tmp`;
        const fd = openSync(tmp, 'w', 0o644);
        try {
          writeSync(fd, `${MAGIC}\t${id}\t${commands.join(',')}\n`);
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
