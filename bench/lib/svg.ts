/**
 * Dependency-free SVG charts: line plots with linear or logarithmic axes (latency vs N) and
 * grouped horizontal bar charts with a logarithmic value axis (per-command latency). The output is
 * a standalone SVG 1.1 document that any browser or image viewer shows.
 */

export interface Point {
  x: number;
  y: number;
}

export interface Series {
  name: string;
  points: Point[];
  /** Drawn dashed (e.g. extrapolated or lower-bound figures). */
  dashed?: boolean;
}

export interface LinePlot {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  logX?: boolean;
  logY?: boolean;
  /** Format of tick labels (default: compact numbers). */
  xTick?: (v: number) => string;
  yTick?: (v: number) => string;
  /** Small print under the chart (machine, date). */
  footnote?: string;
}

export interface BarGroup {
  label: string;
  /** One value per series name (missing → no bar). */
  values: Record<string, number | undefined>;
}

export interface BarChart {
  title: string;
  valueLabel: string;
  seriesNames: string[];
  groups: BarGroup[];
  logValue?: boolean;
  valueTick?: (v: number) => string;
  footnote?: string;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#17becf', '#bcbd22'];
const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** Compact tick label: 1, 10, 100, 1k, 10k, 1M; 0.1, 0.01 … */
export function compactNumber(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  if (a === 0) return '0';
  return `${+v.toPrecision(3)}`;
}

/** Tick label for milliseconds: 10 µs, 1 ms, 100 ms, 1 s, 1 min. */
export function msTick(v: number): string {
  if (v < 1) return `${+(v * 1000).toPrecision(3)} µs`;
  if (v < 1000) return `${+v.toPrecision(3)} ms`;
  return `${compactNumber(v / 1000)} s`;
}

interface Axis {
  min: number;
  max: number;
  log: boolean;
  ticks: number[];
  /** value → 0..1 */
  frac(v: number): number;
}

function niceStep(span: number, target: number): number {
  const raw = span / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

function makeAxis(values: number[], log: boolean): Axis {
  const finite = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  let lo = finite.length ? Math.min(...finite) : 1;
  let hi = finite.length ? Math.max(...finite) : 10;
  if (log) {
    let a = Math.floor(Math.log10(lo));
    let b = Math.ceil(Math.log10(hi));
    if (a === b) { a -= 1; b += 1; }
    const ticks: number[] = [];
    for (let e = a; e <= b; e++) ticks.push(10 ** e);
    return { min: 10 ** a, max: 10 ** b, log, ticks, frac: (v) => (Math.log10(v) - a) / (b - a) };
  }
  if (lo > 0) lo = 0;
  if (hi === lo) hi = lo + 1;
  const step = niceStep(hi - lo, 5);
  const min = Math.floor(lo / step) * step;
  const max = Math.ceil(hi / step) * step;
  const ticks: number[] = [];
  for (let v = min; v <= max + step / 2; v += step) ticks.push(+v.toPrecision(12));
  return { min, max, log, ticks, frac: (v) => (v - min) / (max - min) };
}

const f1 = (n: number): string => n.toFixed(1);

function header(w: number, h: number, title: string): string[] {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" ${FONT} font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="0" y="0" width="${w}" height="${h}" fill="#ffffff"/>`,
    `<text x="${w / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
  ];
}

export function renderLinePlot(p: LinePlot): string {
  const W = 760;
  // two legend columns unless a name would run into the next column (~6.5 px per character at 12 px)
  const legendCols = p.series.some((x) => [...x.name].length * 6.5 + 30 > (760 - 78 - 24) / 2) ? 1 : 2;
  const legendRows = Math.ceil(p.series.length / legendCols);
  const m = { left: 78, right: 24, top: 40, bottom: 62 + legendRows * 16 + (p.footnote ? 14 : 0) };
  const H = m.top + 330 + m.bottom;
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const xs = p.series.flatMap((s) => s.points.map((q) => q.x));
  const ys = p.series.flatMap((s) => s.points.map((q) => q.y));
  const ax = makeAxis(xs, !!p.logX);
  const ay = makeAxis(ys, !!p.logY);
  const X = (v: number): number => m.left + ax.frac(v) * pw;
  const Y = (v: number): number => m.top + ph - ay.frac(v) * ph;
  const xt = p.xTick ?? compactNumber;
  const yt = p.yTick ?? compactNumber;
  const out = header(W, H, p.title);
  // grid + ticks
  for (const t of ay.ticks) {
    out.push(`<line x1="${m.left}" y1="${f1(Y(t))}" x2="${m.left + pw}" y2="${f1(Y(t))}" stroke="#dddddd"/>`);
    out.push(`<text x="${m.left - 6}" y="${f1(Y(t) + 4)}" text-anchor="end">${escapeXml(yt(t))}</text>`);
  }
  if (ay.log) {
    for (let i = 0; i + 1 < ay.ticks.length; i++) {
      for (const k of [2, 5]) {
        const v = ay.ticks[i] * k;
        out.push(`<line x1="${m.left}" y1="${f1(Y(v))}" x2="${m.left + pw}" y2="${f1(Y(v))}" stroke="#f0f0f0"/>`);
      }
    }
  }
  for (const t of ax.ticks) {
    out.push(`<line x1="${f1(X(t))}" y1="${m.top}" x2="${f1(X(t))}" y2="${m.top + ph}" stroke="#dddddd"/>`);
    out.push(`<text x="${f1(X(t))}" y="${m.top + ph + 16}" text-anchor="middle">${escapeXml(xt(t))}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333333"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${m.top + ph + 36}" text-anchor="middle">${escapeXml(p.xLabel + (p.logX ? ' (log scale)' : ''))}</text>`);
  out.push(`<text x="16" y="${m.top + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${m.top + ph / 2})">${escapeXml(p.yLabel + (p.logY ? ' (log scale)' : ''))}</text>`);
  // series
  p.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const pts = s.points.filter((q) => Number.isFinite(q.x) && Number.isFinite(q.y) && (!p.logX || q.x > 0) && (!p.logY || q.y > 0))
      .sort((a, b) => a.x - b.x);
    if (pts.length > 1) {
      const d = pts.map((q, j) => `${j ? 'L' : 'M'}${f1(X(q.x))},${f1(Y(q.y))}`).join(' ');
      out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6,4"' : ''}/>`);
    }
    for (const q of pts) out.push(`<circle cx="${f1(X(q.x))}" cy="${f1(Y(q.y))}" r="3.5" fill="${color}"/>`);
  });
  // legend under the plot, two columns
  p.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const col = i % legendCols;
    const row = Math.floor(i / legendCols);
    const lx = m.left + col * (pw / 2);
    const ly = m.top + ph + 54 + row * 16;
    out.push(`<line x1="${lx}" y1="${ly - 4}" x2="${lx + 22}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6,4"' : ''}/>`);
    out.push(`<text x="${lx + 28}" y="${ly}">${escapeXml(s.name)}</text>`);
  });
  if (p.footnote) out.push(`<text x="${W - 6}" y="${H - 6}" text-anchor="end" font-size="10" fill="#666666">${escapeXml(p.footnote)}</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export function renderBarChart(c: BarChart): string {
  const W = 760;
  const barH = 9;
  const groupH = c.seriesNames.length * barH + 10;
  const longest = Math.max(0, ...c.groups.map((g) => [...g.label].length));
  const m = { left: Math.max(80, 14 + longest * 7), right: 24, top: 40, bottom: 60 + Math.ceil(c.seriesNames.length / 2) * 16 + (c.footnote ? 14 : 0) };
  const ph = c.groups.length * groupH;
  const H = m.top + ph + m.bottom;
  const pw = W - m.left - m.right;
  const values = c.groups.flatMap((g) => Object.values(g.values).filter((v): v is number => v !== undefined));
  const ax = makeAxis(values, !!c.logValue);
  const X = (v: number): number => m.left + ax.frac(Math.max(v, ax.min)) * pw;
  const vt = c.valueTick ?? compactNumber;
  const out = header(W, H, c.title);
  for (const t of ax.ticks) {
    out.push(`<line x1="${f1(X(t))}" y1="${m.top}" x2="${f1(X(t))}" y2="${m.top + ph}" stroke="#dddddd"/>`);
    out.push(`<text x="${f1(X(t))}" y="${m.top + ph + 16}" text-anchor="middle">${escapeXml(vt(t))}</text>`);
  }
  c.groups.forEach((g, gi) => {
    const gy = m.top + gi * groupH + 5;
    out.push(`<text x="${m.left - 6}" y="${f1(gy + (c.seriesNames.length * barH) / 2 + 4)}" text-anchor="end">${escapeXml(g.label)}</text>`);
    c.seriesNames.forEach((name, si) => {
      const v = g.values[name];
      if (v === undefined || !Number.isFinite(v) || (c.logValue && v <= 0)) return;
      const color = PALETTE[si % PALETTE.length];
      const x0 = m.left;
      const x1 = X(v);
      out.push(`<rect x="${x0}" y="${f1(gy + si * barH)}" width="${f1(Math.max(1, x1 - x0))}" height="${barH - 1}" fill="${color}"><title>${escapeXml(`${g.label} — ${name}: ${vt(v)}`)}</title></rect>`);
    });
  });
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333333"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${m.top + ph + 34}" text-anchor="middle">${escapeXml(c.valueLabel + (c.logValue ? ' (log scale)' : ''))}</text>`);
  c.seriesNames.forEach((name, i) => {
    const color = PALETTE[i % PALETTE.length];
    const lx = m.left + (i % 2) * (pw / 2);
    const ly = m.top + ph + 52 + Math.floor(i / 2) * 16;
    out.push(`<rect x="${lx}" y="${ly - 10}" width="14" height="10" fill="${color}"/>`);
    out.push(`<text x="${lx + 20}" y="${ly}">${escapeXml(name)}</text>`);
  });
  if (c.footnote) out.push(`<text x="${W - 6}" y="${H - 6}" text-anchor="end" font-size="10" fill="#666666">${escapeXml(c.footnote)}</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
