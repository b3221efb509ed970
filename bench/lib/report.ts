/**
 * What every workload returns: tables for the terminal and the docs, SVG plots, raw numbers for the
 * JSON file, and notes on anything not measured (a partial result is labelled, never hidden).
 */
import type { Table } from './table.js';

export interface Plot {
  /** File name inside the results folder ("rules-apply.svg"). */
  file: string;
  title: string;
  svg: string;
}

export interface SectionResult {
  /** Short id used by --only ("latency", "rules", …). */
  name: string;
  title: string;
  tables: Table[];
  plots: Plot[];
  /** Raw measurements (samples, summaries) for results.json. */
  data: unknown;
  notes: string[];
  /** What was skipped or extrapolated, and why. */
  partial: string[];
  elapsedMs: number;
  /** Set when the section failed; tables may still hold what was measured before. */
  error?: string;
}

export interface BenchOptions {
  quick: boolean;
  /** Results folder (already created). */
  outDir: string;
  /** Wrapper script speaking the command contract, timed on the same payloads. */
  baselineWrapper?: string;
  /** Override of the N values of scaling workloads. */
  sizes?: number[];
  /** Override of the repetition count of latency workloads. */
  runs?: number;
  /** Progress lines (stderr). */
  log: (msg: string) => void;
  /** Machine line printed under every plot. */
  footnote: string;
}

export function emptySection(name: string, title: string): SectionResult {
  return { name, title, tables: [], plots: [], data: {}, notes: [], partial: [], elapsedMs: 0 };
}
