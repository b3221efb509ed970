/**
 * Which executor runs a namespace's transactions: the long-lived libnftables context of the namespace
 * (freeing one costs ~10 ms; lib/netns frees it before the namespace is deleted), or — when the caller asks
 * for it, or libnftables cannot be loaded — an nft CLI executor per call (~1000× slower, same semantics).
 */
import type { NftExecutor } from './executor.js';
import { leaseLibnftables, libnftablesAvailable, libnftablesProblem } from './libnftables.js';
import { openNftCli } from './nft-cli.js';

/** How namespaceExecutor chooses: the nft CLI on request, and who is told when it has to stand in for libnftables. */
export interface NamespaceExecutorOptions {
  /** Use the nft CLI even where libnftables works. */
  cli?: boolean;
  /** Told why the nft CLI stands in for libnftables when it is not usable (not when `cli` asked for it). */
  onFallback?: (reason: string) => void;
}

/** The executor for `ns` (undefined: the caller's namespace) and how to give it back after use. */
export function namespaceExecutor(ns: string | undefined, opts: NamespaceExecutorOptions = {}): { ex: NftExecutor; release: () => Promise<void> } {
  if (!opts.cli && libnftablesAvailable()) {
    // leased: the context stays open until the caller is done, even if other namespaces push it out of the cache
    const { ex, release } = leaseLibnftables(ns);
    return { ex, release: async () => release() };
  }
  if (!opts.cli) opts.onFallback?.(libnftablesProblem() ?? 'unknown reason');
  const ex = openNftCli(ns !== undefined ? { netns: ns } : {});
  return { ex, release: () => ex.close() };
}
