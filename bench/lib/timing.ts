/** Timing helpers: a monotonic clock, warm-up + measured runs, process memory. */
import { readFileSync } from 'node:fs';
import { summarize, type Summary } from './stats.js';

/** Milliseconds from a monotonic clock. */
export const now = (): number => performance.now();

export function timeSync(fn: () => void): number {
  const t = now();
  fn();
  return now() - t;
}

export async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const t = now();
  await fn();
  return now() - t;
}

export interface MeasureOptions {
  /** Unrecorded runs first (JIT, caches, first-use kernel allocations). */
  warmup: number;
  runs: number;
}

/** Run `once` warm-up + runs times; each call returns its own elapsed ms (so it can exclude set-up). */
export async function measure(opts: MeasureOptions, once: (i: number) => Promise<number> | number): Promise<{ samples: number[]; summary: Summary }> {
  for (let i = 0; i < opts.warmup; i++) await once(-1 - i);
  const samples: number[] = [];
  for (let i = 0; i < opts.runs; i++) samples.push(await once(i));
  return { samples, summary: summarize(samples) };
}

/** Resident set size of this process (bytes). */
export function rss(): number {
  return process.memoryUsage().rss;
}

/** Try to return freed memory before an RSS reading (only when node runs with --expose-gc). */
export function collectGarbage(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) g();
}

/** Fields of /proc/meminfo in bytes (kernel-side memory, e.g. Slab, for rule/link footprints). */
export function meminfo(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync('/proc/meminfo', 'utf8').split('\n')) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?$/.exec(line.trim());
    if (m) out[m[1]] = Number(m[2]) * 1024;
  }
  return out;
}

/** Kernel memory that network objects consume: slab (unreclaimable part) + kernel stacks/pages. */
export function kernelNetMemory(): number {
  const m = meminfo();
  return (m.SUnreclaim ?? m.Slab ?? 0);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
