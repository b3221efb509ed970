/**
 * Raw koffi binding of libnftables.so.1 (nftables 1.0.x). Only what lib/nft needs; no policy here.
 *
 * Quirks worth knowing:
 * - nft_ctx_new(NFT_CTX_DEFAULT) opens the nfnetlink socket immediately, in the network namespace of
 *   the calling thread. The context keeps talking to that namespace (and keeps it alive) until freed.
 *   The socket is opened without SOCK_CLOEXEC (libmnl's mnl_socket_open): ctxNew marks it close-on-exec.
 * - nft_ctx_new ends the process (exit 3, "mnl.c:60: Unable to initialize Netlink socket") when it cannot open
 *   that socket: ctxNew opens one of the same kind first and throws when that fails.
 * - With NFT_CTX_OUTPUT_JSON set, nft_run_cmd_from_buffer parses the input as JSON first (falling back
 *   to the text syntax when it is not JSON) and prints listings as JSON.
 * - nft_ctx_get_output_buffer / get_error_buffer return the text written since the previous read and
 *   rewind the buffer: read both after every command.
 * - Dry run (nft -c): the batch is sent to the kernel without its END message, so the kernel checks
 *   every message (missing chains, sets…) and then aborts; nothing is committed.
 */
import { koffi } from './ffi.js';
import { AF_NETLINK, NETLINK_NETFILTER, SOCK_RAW, close, isCloexec, setCloexec, socket as openSocket } from './libc.js';
import { isNetfilterNetlink, netfilterSockets } from './slow-release.js';
import type { LibraryHandle } from 'koffi';

export const LIBNFTABLES_PATH = 'libnftables.so.1';

/** nft_ctx_new flags. */
export const NFT_CTX_DEFAULT = 0;

/** nft_ctx_output_set_flags bits (libnftables.h). */
export const NFT_CTX_OUTPUT_REVERSEDNS = 1 << 0;
export const NFT_CTX_OUTPUT_SERVICE = 1 << 1;
export const NFT_CTX_OUTPUT_STATELESS = 1 << 2;
export const NFT_CTX_OUTPUT_HANDLE = 1 << 3;
export const NFT_CTX_OUTPUT_JSON = 1 << 4;
export const NFT_CTX_OUTPUT_ECHO = 1 << 5;
export const NFT_CTX_OUTPUT_GUID = 1 << 6;
export const NFT_CTX_OUTPUT_NUMERIC_PROTO = 1 << 7;
export const NFT_CTX_OUTPUT_NUMERIC_PRIO = 1 << 8;
export const NFT_CTX_OUTPUT_NUMERIC_SYMBOL = 1 << 9;
export const NFT_CTX_OUTPUT_NUMERIC_TIME = 1 << 10;
export const NFT_CTX_OUTPUT_TERSE = 1 << 11;

/** Opaque `struct nft_ctx *`. */
export type NftCtx = unknown;

type KoffiFunction = ReturnType<LibraryHandle['func']>;

interface Binding {
  ctxNew: KoffiFunction;
  ctxFree: KoffiFunction;
  setDryRun: KoffiFunction;
  getDryRun: KoffiFunction;
  outputSetFlags: KoffiFunction;
  outputGetFlags: KoffiFunction;
  bufferOutput: KoffiFunction;
  bufferError: KoffiFunction;
  getOutputBuffer: KoffiFunction;
  getErrorBuffer: KoffiFunction;
  runCmdFromBuffer: KoffiFunction;
}

let binding: Binding | undefined;

/** Loads the library on first use (so importing lib/nft does not require libnftables to be installed). */
function lib(): Binding {
  if (binding) return binding;
  const so = koffi().load(LIBNFTABLES_PATH);
  koffi().opaque('nft_ctx');
  binding = {
    ctxNew: so.func('nft_ctx *nft_ctx_new(uint32_t flags)'),
    ctxFree: so.func('void nft_ctx_free(nft_ctx *ctx)'),
    setDryRun: so.func('void nft_ctx_set_dry_run(nft_ctx *ctx, bool dry)'),
    getDryRun: so.func('bool nft_ctx_get_dry_run(nft_ctx *ctx)'),
    outputSetFlags: so.func('void nft_ctx_output_set_flags(nft_ctx *ctx, unsigned int flags)'),
    outputGetFlags: so.func('unsigned int nft_ctx_output_get_flags(nft_ctx *ctx)'),
    bufferOutput: so.func('int nft_ctx_buffer_output(nft_ctx *ctx)'),
    bufferError: so.func('int nft_ctx_buffer_error(nft_ctx *ctx)'),
    getOutputBuffer: so.func('const char *nft_ctx_get_output_buffer(nft_ctx *ctx)'),
    getErrorBuffer: so.func('const char *nft_ctx_get_error_buffer(nft_ctx *ctx)'),
    runCmdFromBuffer: so.func('int nft_run_cmd_from_buffer(nft_ctx *ctx, const char *buf)'),
  };
  return binding;
}

/** True when libnftables.so.1 can be loaded on this machine. */
export function available(): boolean {
  return problem() === undefined;
}

/** Why libnftables.so.1 cannot be loaded (the dynamic loader's text), undefined when it can. */
export function problem(): string | undefined {
  try {
    lib();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * nft_ctx_new; the context binds to the calling thread's network namespace. Null on failure. Its nfnetlink socket
 * (opened without SOCK_CLOEXEC) is made close-on-exec; `socket`: its descriptor (undefined: not found).
 */
export function ctxNew(flags = NFT_CTX_DEFAULT): { ctx: NftCtx; socket: number | undefined } | null {
  // nft_ctx_new ends the whole process (exit 3, "Unable to initialize Netlink socket") when it cannot open its
  // socket (no descriptor left, no nfnetlink, no memory): a socket of the same kind, opened and closed first, turns
  // that into this error instead. The number it got is where nft_ctx_new's socket lands — the one descriptor it
  // leaves open, the lowest free (checked: a NETLINK_NETFILTER socket not yet close-on-exec); when another thread
  // took that number meanwhile, a scan of ours finds it: every other netfilter socket of ours is close-on-exec
  const lowest = openSocket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER, '(an nftables socket: NETLINK_NETFILTER)');
  close(lowest);
  const ctx = lib().ctxNew(flags) as NftCtx | null;
  if (!ctx) return null;
  const socket = fresh(lowest) ? lowest : netfilterSockets().find(fresh);
  if (socket !== undefined) setCloexec(socket);
  return { ctx, socket };
}

const fresh = (fd: number): boolean => {
  try {
    return isNetfilterNetlink(fd) && !isCloexec(fd);
  } catch {
    return false;
  }
};

export function ctxFree(ctx: NftCtx): void {
  lib().ctxFree(ctx);
}

export function setDryRun(ctx: NftCtx, dry: boolean): void {
  lib().setDryRun(ctx, dry);
}

export function getDryRun(ctx: NftCtx): boolean {
  return Boolean(lib().getDryRun(ctx));
}

export function outputSetFlags(ctx: NftCtx, flags: number): void {
  lib().outputSetFlags(ctx, flags >>> 0);
}

export function outputGetFlags(ctx: NftCtx): number {
  return Number(lib().outputGetFlags(ctx));
}

/** Redirects output to an internal buffer; returns 0 on success. */
export function bufferOutput(ctx: NftCtx): number {
  return Number(lib().bufferOutput(ctx));
}

/** Redirects error messages to an internal buffer; returns 0 on success. */
export function bufferError(ctx: NftCtx): number {
  return Number(lib().bufferError(ctx));
}

export function getOutputBuffer(ctx: NftCtx): string {
  return (lib().getOutputBuffer(ctx) as string | null) ?? '';
}

export function getErrorBuffer(ctx: NftCtx): string {
  return (lib().getErrorBuffer(ctx) as string | null) ?? '';
}

/** nft_run_cmd_from_buffer, synchronous; returns 0 on success, non-zero on failure. */
export function runCmdFromBuffer(ctx: NftCtx, buf: string): number {
  return Number(lib().runCmdFromBuffer(ctx, buf));
}

/**
 * nft_run_cmd_from_buffer on koffi's worker thread, so a large batch does not block the event loop.
 * Safe because the context's socket is already bound to its namespace; the caller must not touch the
 * same context until the promise settles.
 */
export function runCmdFromBufferAsync(ctx: NftCtx, buf: string): Promise<number> {
  return new Promise((resolve, reject) => {
    lib().runCmdFromBuffer.async(ctx, buf, (err: unknown, rc: number) => {
      if (err) reject(err);
      else resolve(Number(rc));
    });
  });
}
