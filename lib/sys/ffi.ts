/**
 * koffi, loaded on first use. Loading it (resolving the package, dlopen of its native addon, opening libc)
 * costs a cold process ~10 ms, which commands that never reach the kernel (help, version, bad input, the
 * resident engine's client) need not pay; and a V8 startup snapshot cannot hold a native addon, so whatever
 * is in one must not have loaded it yet. Every binding in lib/sys declares its functions on first call
 * through this module.
 */
import { createRequire } from 'node:module';
import type * as Koffi from 'koffi';

export type KoffiModule = typeof Koffi;

let mod: KoffiModule | undefined;
let libcHandle: ReturnType<KoffiModule['load']> | undefined;

/** The koffi module (loaded now if it was not). */
export function koffi(): KoffiModule {
  if (mod === undefined) {
    mod = createRequire(import.meta.url)('koffi') as KoffiModule;
  }
  return mod;
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
