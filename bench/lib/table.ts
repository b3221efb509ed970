/**
 * Plain-text tables: aligned columns for the terminal, and the same rows as GitHub markdown for
 * docs/benchmarks.md. Numeric-looking cells are right-aligned.
 */

export interface Table {
  title: string;
  headers: string[];
  rows: string[][];
  /** Lines printed under the table (method, caveats). */
  notes?: string[];
}

const numeric = (s: string): boolean => /^[-+]?[\d.,]+\s*(µs|ms|s|min|×|%|B|KiB|MiB|GiB|Gbit\/s|Mbit\/s|\/s)?(\s*\(.*\))?$/.test(s.trim()) || s === '—';

/** Width in terminal columns (µ, ×, – and — are single-width). */
const width = (s: string): number => [...s].length;

function pad(s: string, w: number, right: boolean): string {
  const fill = ' '.repeat(Math.max(0, w - width(s)));
  return right ? fill + s : s + fill;
}

export function renderText(t: Table): string {
  const cols = t.headers.length;
  const widths = t.headers.map((h, i) => Math.max(width(h), ...t.rows.map((r) => width(r[i] ?? ''))));
  const right = t.headers.map((_, i) => i > 0 && t.rows.length > 0 && t.rows.every((r) => numeric(r[i] ?? '')));
  const line = (cells: string[]): string => Array.from({ length: cols }, (_, i) => pad(cells[i] ?? '', widths[i], right[i])).join('  ').trimEnd();
  const out = [`== ${t.title}`, line(t.headers), widths.map((w) => '─'.repeat(w)).join('  ')];
  for (const r of t.rows) out.push(line(r));
  for (const n of t.notes ?? []) out.push(`  ${n}`);
  return `${out.join('\n')}\n`;
}

export function renderMarkdown(t: Table): string {
  const right = t.headers.map((_, i) => i > 0 && t.rows.length > 0 && t.rows.every((r) => numeric(r[i] ?? '')));
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const out = [
    `| ${t.headers.map(esc).join(' | ')} |`,
    `|${right.map((r) => (r ? '---:' : '---')).join('|')}|`,
    ...t.rows.map((r) => `| ${t.headers.map((_, i) => esc(r[i] ?? '')).join(' | ')} |`),
  ];
  if (t.notes?.length) out.push('', ...t.notes.map((n) => `- ${n}`));
  return `${out.join('\n')}\n`;
}
