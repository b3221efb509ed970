/**
 * Milliseconds on a monotonic clock, for phase timings. Not `performance.now()`: Node's global `performance`
 * loads perf_hooks on first use (~1 ms of a cold CLI process, for a number the command only logs).
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
