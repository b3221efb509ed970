/**
 * koffi, loaded on first use. Loading it (resolving the package, dlopen of its native addon, opening libc)
 * costs a cold process ~10 ms, which commands that never reach the kernel (help, version, bad input, the
 * resident engine's client) need not pay; and a V8 startup snapshot cannot hold a native addon, so whatever
 * is in one must not have loaded it yet. Every binding in lib/sys declares its functions on first call
 * through this module.
 *
 * Loading koffi through Node's resolver costs a cold process 6-20 ms (resolving and realpath-ing two
 * packages, compiling koffi's loader scripts, reading the ELF header of the node binary to choose its glibc
 * or musl build) for a ~1 ms dlopen. So koffi's prebuilt addon is first looked for where npm puts it — the
 * package @koromix/koffi-<platform>-<arch> in a node_modules directory at or above koffi's real location —
 * and required by its path: the build for the C library this process runs on (the musl one when the
 * process maps musl's loader), taken only if its version is that of the koffi package found. Anything else
 * (another layout or system, a koffi built from source, a mismatch) loads koffi the ordinary way. Both ways
 * give the addon's own functions (koffi's package only re-exports them, adding deprecated aliases that
 * netns-router does not use), and a later require('koffi') in the process finds the same addon in Node's
 * module cache.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Koffi from 'koffi';

export type KoffiModule = typeof Koffi;

let mod: KoffiModule | undefined;
let libcHandle: ReturnType<KoffiModule['load']> | undefined;

/** The koffi module (loaded now if it was not). */
export function koffi(): KoffiModule {
  if (mod === undefined) {
    const require = createRequire(import.meta.url);
    mod = prebuiltAddon(require) ?? (require('koffi') as KoffiModule);
  }
  return mod;
}

/** `name`'s directory in the nearest node_modules at or above `from`, as Node would look first. */
function findPackage(name: string, from: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

/** koffi's prebuilt addon required by its path (see the module comment), or undefined. */
function prebuiltAddon(require: NodeRequire): KoffiModule | undefined {
  try {
    const koffiDir = findPackage('koffi', dirname(fileURLToPath(import.meta.url)));
    if (koffiDir === undefined) return undefined;
    const { version } = JSON.parse(readFileSync(join(koffiDir, 'package.json'), 'utf8')) as { version?: unknown };
    // a package's own dependencies are found from its real location (koffi may be a link, as npm makes for a
    // dependency installed from a directory)
    const platformDir = findPackage(`@koromix/koffi-${process.platform}-${process.arch}`, realpathSync.native(koffiDir));
    if (platformDir === undefined || typeof version !== 'string') return undefined;
    const musl = readFileSync('/proc/self/maps', 'latin1').includes('/ld-musl-');
    const file = join(platformDir, musl ? `musl_${process.arch}` : `${process.platform}_${process.arch}`, 'koffi.node');
    if (!existsSync(file)) return undefined;
    const addon = require(file) as KoffiModule & { version?: unknown };
    return addon.version === version && typeof addon.load === 'function' ? addon : undefined;
  } catch {
    /* the ordinary way */
  }
  return undefined;
}

/** libc.so.6, opened once for every binding of lib/sys. */
export function libcLibrary(): ReturnType<KoffiModule['load']> {
  return (libcHandle ??= koffi().load('libc.so.6'));
}

/** errno of the last koffi call on this thread (or of an async call, in its completion callback). */
export function errno(): number {
  return koffi().errno();
}

/**
 * A table of functions declared on first use: `declare` runs once, on the first call of `bound()`.
 */
export function lazyBinding<T>(declare: () => T): () => T {
  let table: T | undefined;
  return () => (table ??= declare());
}
