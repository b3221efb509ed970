/**
 * Finding the command that broke a batch. In JSON mode the kernel's error carries no position, so:
 * 1. a JSON parse error names its index ("Parsing command array at index N failed");
 * 2. otherwise bisect with dry runs (nft -c / NFT_CTX_DRY_RUN: the kernel checks the batch and
 *    aborts it) for the shortest failing prefix. A failing prefix keeps failing when extended, so the
 *    last command of the shortest failing prefix is the culprit. Costs log2(n) dry runs, only on
 *    failure.
 */
import type { RunResult } from './executor.js';
import type { Transaction } from './transaction.js';

/** The failing command of a batch: its index and the error that isolated it. */
export interface Located {
  index: number;
  /** Error text of the dry run that isolated it (or of the batch for parse errors). */
  error: string;
}

/** Run commands [from, to) of the transaction as a dry run. */
export type DryRun = (from: number, to: number) => Promise<RunResult>;

/**
 * The index of the command that broke a batch: from a JSON parse error's position, else by bisecting with dry runs
 * (only on failure; log2(n) runs). Undefined when no prefix fails on its own.
 */
export async function locateFailure(tx: Transaction, batchError: string, dryRun: DryRun): Promise<Located | undefined> {
  const n = tx.length;
  if (n === 0) return undefined;
  // index 0 of the document is the metainfo object
  const parse = /Parsing command array at index (\d+) failed/.exec(batchError);
  if (parse) {
    const i = Number(parse[1]) - 1;
    if (i >= 0 && i < n) return { index: i, error: batchError };
  }
  if (n === 1) return { index: 0, error: batchError };
  // invariant: prefix [0, hi] fails; prefix [0, lo - 1] passes
  const whole = await dryRun(0, n);
  if (whole.ok) return undefined; // failed only at commit time (or state changed meanwhile)
  let lo = 0, hi = n - 1, error = whole.error;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const r = await dryRun(0, mid + 1);
    if (r.ok) lo = mid + 1;
    else { hi = mid; error = r.error; }
  }
  return { index: hi, error };
}
