/** Number formatting shared by the tables, the JSON notes and docs/benchmarks.md. */

/** Milliseconds with a sensible precision: 0.042 ms → "42 µs", 3.456 → "3.46 ms", 1234 → "1.23 s". */
export function fmtMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1) return `${(ms * 1000).toFixed(ms < 0.1 ? 1 : 0)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : ms < 100 ? 1 : 0)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

/** A ratio as "12.3×" (or "—"). */
export function fmtRatio(r: number | undefined): string {
  if (r === undefined || !Number.isFinite(r)) return '—';
  return `${r.toFixed(r < 10 ? 2 : r < 100 ? 1 : 0)}×`;
}

export function fmtBytes(b: number | undefined): string {
  if (b === undefined || !Number.isFinite(b)) return '—';
  const a = Math.abs(b);
  const sign = b < 0 ? '-' : '';
  if (a < 1024) return `${sign}${a.toFixed(0)} B`;
  if (a < 1024 ** 2) return `${sign}${(a / 1024).toFixed(1)} KiB`;
  if (a < 1024 ** 3) return `${sign}${(a / 1024 ** 2).toFixed(1)} MiB`;
  return `${sign}${(a / 1024 ** 3).toFixed(2)} GiB`;
}

export function fmtInt(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  return Math.round(n).toLocaleString('en-US');
}

/** Bits per second as Gbit/s or Mbit/s. */
export function fmtBps(bps: number | undefined): string {
  if (bps === undefined || !Number.isFinite(bps)) return '—';
  if (bps >= 1e9) return `${(bps / 1e9).toFixed(2)} Gbit/s`;
  return `${(bps / 1e6).toFixed(1)} Mbit/s`;
}

/** Median with its range: "3.21 ms (2.9–4.1)". */
export function fmtRange(median: number, min: number, max: number): string {
  return `${fmtMs(median)} (${fmtMs(min)}–${fmtMs(max)})`;
}
