/**
 * The default executor: libnftables in-process through koffi (lib/sys/libnftables.ts).
 *
 * One long-lived context per namespace. nft_ctx_new opens its netlink socket in the namespace of the
 * calling thread, so for a named namespace we enter it synchronously (setns on the main thread via
 * lib/netns), create the context and come straight back; the context keeps talking to that
 * namespace. A live context also keeps the namespace alive: close() (or lib/netns' deleteNetns, which
 * runs our before-delete hook) frees it.
 *
 * Small inputs run synchronously (a round trip is ~0.1 ms, far less than a thread hop); large ones
 * on koffi's worker thread so a 50k-rule batch does not block the event loop. JsonExecutor
 * serialises every call, so the context is never used by two threads at once.
 */
import * as nft from '../sys/libnftables.js';
import { onBeforeNetnsDelete } from '../netns/namespaces.js';
import { mallocTrim } from '../sys/libc.js';
import { releaseLater } from '../sys/slow-release.js';
import { runInNetns } from '../sys/setns.js';
import { NamespaceCache } from '../netns/namespace-cache.js';
import { NftError } from './errors.js';
import { JsonExecutor, type JsonExecutorOptions, type NftRunner, type RunOptions, type RunResult } from './executor.js';

/** Options of a libnftables executor: its namespace, the input size from which calls run on a worker thread. */
export interface LibnftablesOptions extends JsonExecutorOptions {
  /** Named namespace (/run/netns/NAME); default: the namespace of the calling thread. */
  netns?: string;
  /** Inputs of at least this many bytes run on a worker thread (default 64 KiB; Infinity = never). */
  asyncThreshold?: number;
}

/** Runs libnftables input documents through one libnftables context (FFI), created inside its namespace. */
export class LibnftablesRunner implements NftRunner {
  readonly name = 'libnftables';
  readonly netns: string | undefined;
  private ctx: nft.NftCtx | null;
  private busy = false;
  private closeWhenIdle = false;
  /** Users holding the context through a lease (leaseLibnftables), and whether it is to be freed when they are done. */
  private leases = 0;
  private retired = false;
  private readonly asyncThreshold: number;
  private readonly unhook: (() => void) | undefined;

  private constructor(ctx: nft.NftCtx, private readonly socket: number | undefined, netns: string | undefined, asyncThreshold: number) {
    this.ctx = ctx;
    this.netns = netns;
    this.asyncThreshold = asyncThreshold;
    if (netns !== undefined) {
      this.unhook = onBeforeNetnsDelete((name) => {
        if (name === this.netns) this.closeNow();
      });
    }
  }

  /** Create the context (synchronously, inside the namespace when one is named). */
  static open(opts: LibnftablesOptions = {}): LibnftablesRunner {
    const create = (): { ctx: nft.NftCtx; socket: number | undefined } => {
      const made = nft.ctxNew(nft.NFT_CTX_DEFAULT);
      if (!made) {
        throw new NftError({ code: 'E_NFT_EXECUTOR', stderr: 'nft_ctx_new failed', executor: 'libnftables', operation: 'open' });
      }
      nft.bufferOutput(made.ctx);
      nft.bufferError(made.ctx);
      nft.outputSetFlags(made.ctx, nft.NFT_CTX_OUTPUT_JSON);
      return made;
    };
    const { ctx, socket } = opts.netns !== undefined ? runInNetns(opts.netns, create) : create();
    return new LibnftablesRunner(ctx, socket, opts.netns, opts.asyncThreshold ?? 64 * 1024);
  }

  async run(input: string, opts: RunOptions): Promise<RunResult> {
    const ctx = this.ctx;
    if (!ctx || this.closeWhenIdle) {
      return { ok: false, output: '', error: 'libnftables context is closed', executorFailed: true };
    }
    this.busy = true;
    try {
      nft.outputSetFlags(ctx, nft.NFT_CTX_OUTPUT_JSON | (opts.terse ? nft.NFT_CTX_OUTPUT_TERSE : 0));
      nft.setDryRun(ctx, Boolean(opts.dryRun));
      const rc = input.length >= this.asyncThreshold
        ? await nft.runCmdFromBufferAsync(ctx, input)
        : nft.runCmdFromBuffer(ctx, input);
      // read both buffers every time: reading rewinds them
      const output = nft.getOutputBuffer(ctx);
      const error = nft.getErrorBuffer(ctx);
      return { ok: rc === 0, output, error };
    } finally {
      nft.setDryRun(ctx, false);
      this.busy = false;
      if (this.closeWhenIdle) this.closeNow();
    }
  }

  /**
   * Free the context now, or as soon as the call in flight returns. Its socket's release waits in the kernel after a
   * commit that deleted anything (lib/sys/slow-release.ts): the last reference goes on a worker thread, so that a
   * resident engine destroying a router does not stall every other command for it.
   */
  private closeNow(): void {
    this.closeWhenIdle = true;
    if (this.busy || !this.ctx) return;
    if (this.socket !== undefined) releaseLater([this.socket]);
    nft.ctxFree(this.ctx);
    this.ctx = null;
    this.unhook?.();
    // a context's cache leaves holes in the C heap that malloc keeps (~0.6 MB per cached table; a resident engine
    // cycling through routers would grow by them): return them (~0.1–1 ms, once per freed context)
    mallocTrim();
  }

  async close(): Promise<void> {
    this.closeNow();
  }

  /** Hold the context open until the returned release is called (retire waits for it; close does not). */
  lease(): () => void {
    this.leases++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (--this.leases === 0 && this.retired) this.closeNow();
    };
  }

  /** Free the context once no lease holds it (a kept context pushed out of the cache: its users may be mid-command). */
  retire(): void {
    this.retired = true;
    if (this.leases === 0) this.closeNow();
  }

  get isOpen(): boolean {
    return this.ctx !== null && !this.closeWhenIdle && !this.retired;
  }
}

/** libnftables executor for the current namespace, or for `netns` (context created inside it). */
export function openLibnftables(opts: LibnftablesOptions = {}): JsonExecutor {
  return new JsonExecutor(LibnftablesRunner.open(opts), opts);
}

/**
 * The long-lived executor of a namespace (one context per namespace, created on first use). It is
 * freed automatically when lib/netns deletes the namespace; after that (or after close()) the next
 * call creates a new one.
 */
export function sharedLibnftables(netns?: string): JsonExecutor {
  return sharedEntry(netns).executor;
}

/**
 * The long-lived executor of a namespace for the length of a command: until `release`, the context stays open even
 * when the cache pushes it out (more than MAX_SHARED namespaces used meanwhile) — it is freed at the release then.
 * Deleting the namespace (lib/netns) still frees it at once.
 */
export function leaseLibnftables(netns?: string): { ex: JsonExecutor; release: () => void } {
  const e = sharedEntry(netns);
  return { ex: e.executor, release: e.runner.lease() };
}

function sharedEntry(netns: string | undefined): { executor: JsonExecutor; runner: LibnftablesRunner } {
  return shared.get(netns, () => {
    const runner = LibnftablesRunner.open(netns !== undefined ? { netns } : {});
    return { executor: new JsonExecutor(runner), runner };
  }, (e) => e.runner.isOpen);
}

/** Most long-lived contexts kept open at once (least recently used ones are freed beyond it). */
export const MAX_SHARED = 32;

// Bounded: each context holds descriptors, and libnftables aborts the process once a descriptor number passes
// FD_SETSIZE (1024) — a process reconciling hundreds of routers would otherwise crash.
// A context pushed out while a command holds it (leaseLibnftables) is freed when that command releases it.
const shared = new NamespaceCache<{ executor: JsonExecutor; runner: LibnftablesRunner }>(MAX_SHARED, (e) => { e.runner.retire(); });

/** True when libnftables.so.1 can be loaded here. */
export const libnftablesAvailable = nft.available;

/** Why libnftables.so.1 cannot be loaded here (undefined when it can). */
export const libnftablesProblem = nft.problem;
