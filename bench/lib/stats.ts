/**
 * Summary statistics of timing samples. Medians and ranges, never means alone: the machines these
 * benchmarks run on are shared and noisy, and one slow outlier must not move the headline figure.
 */

export interface Summary {
  /** Number of samples (after warm-up). */
  n: number;
  median: number;
  /** Nearest-rank 95th percentile (equals max below 20 samples). */
  p95: number;
  min: number;
  max: number;
  mean: number;
}

function sorted(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = sorted(xs);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = sorted(xs);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))];
}

export function summarize(xs: readonly number[]): Summary {
  if (xs.length === 0) return { n: 0, median: Number.NaN, p95: Number.NaN, min: Number.NaN, max: Number.NaN, mean: Number.NaN };
  const s = sorted(xs);
  return {
    n: s.length,
    median: median(s),
    p95: percentile(s, 95),
    min: s[0],
    max: s[s.length - 1],
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  };
}

/**
 * Ratio of two paired sample lists (b[i] / a[i] for each run i of the same run order), summarised.
 * Pairing cancels slow drifts of the machine: both members of a pair ran seconds apart.
 */
export function pairedRatios(a: readonly number[], b: readonly number[]): Summary {
  const n = Math.min(a.length, b.length);
  const r: number[] = [];
  for (let i = 0; i < n; i++) if (a[i] > 0) r.push(b[i] / a[i]);
  return summarize(r);
}
