/**
 * Help text, one formatter for every command of the CLI (router commands, serve, proxy, install-proxy), in the
 * layout operators know from git and iproute2: "Usage:" lines (alternatives as "   or:"), a description, then
 * two-column sections wrapped to the terminal's width (80 columns when output is not a terminal). A term too
 * long for the column gets its text on the next line instead of pushing the column out.
 *
 * Also the "did you mean" of unknown commands and options: the closest names by edit distance.
 */

export const DEFAULT_HELP_WIDTH = 80;
const MIN_WIDTH = 40;

export interface HelpItem {
  term: string;
  text: string;
}

export interface HelpSection {
  title: string;
  items: readonly HelpItem[];
}

export interface HelpDoc {
  /** Synopsis lines, each a whole command line ("netns-router serve [--socket <path>]"). */
  usage: readonly string[];
  /** Paragraphs (separated by blank lines in the output). */
  description?: readonly string[];
  sections: readonly HelpSection[];
  /** Closing paragraphs. */
  footer?: readonly string[];
}

/** Greedy word wrap of one paragraph to `width` columns; lines after the first start with `indent` spaces. */
export function wrapText(text: string, width: number, indent = 0, firstIndent = 0): string[] {
  return wrapWords(text.split(/\s+/).filter(Boolean), width, indent, firstIndent);
}

function wrapWords(words: readonly string[], width: number, indent: number, firstIndent: number): string[] {
  const lines: string[] = [];
  let line = '';
  let room = width - firstIndent;
  for (const w of words) {
    if (line !== '' && line.length + 1 + w.length > room) {
      lines.push(line);
      line = w;
      room = width - indent;
    } else {
      line = line === '' ? w : `${line} ${w}`;
    }
  }
  if (line !== '' || lines.length === 0) lines.push(line);
  return lines.map((l, i) => (i === 0 ? l : ' '.repeat(indent) + l));
}

/** Words of a synopsis: split at spaces outside [...] and <...>, an option kept with its value placeholder (a
 *  group of alternatives "(a | b)" may break between them). */
function synopsisWords(line: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of line) {
    if ('[<'.includes(ch)) depth++;
    if (']>'.includes(ch)) depth = Math.max(0, depth - 1);
    if (ch === ' ' && depth === 0) {
      if (cur) out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  if (cur) out.push(cur);
  // an option and its value placeholder stay on one line
  return out.reduce<string[]>((acc, w) => {
    if (w.startsWith('<') && acc.length > 0 && /^\(?--/.test(acc[acc.length - 1])) acc[acc.length - 1] += ` ${w}`;
    else acc.push(w);
    return acc;
  }, []);
}

function renderUsage(lines: readonly string[], width: number): string[] {
  const out: string[] = [];
  lines.forEach((line, i) => {
    const prefix = i === 0 ? 'Usage: ' : '   or: ';
    const words = synopsisWords(line);
    // continuation lines line up after "netns-router <command> " (as git does), unless that is too deep
    const head = words.slice(0, words[0] === 'netns-router' && words.length > 1 ? 2 : 1).join(' ');
    let indent = prefix.length + head.length + 1;
    if (indent > width / 2) indent = prefix.length + 4;
    out.push(...wrapWords(words, width, indent, prefix.length).map((l, j) => (j === 0 ? prefix + l : l)));
  });
  return out;
}

/** Width of the term column: the longest term of all sections (one column for the whole text), capped. */
function termColumn(sections: readonly HelpSection[], width: number): number {
  const longest = Math.max(0, ...sections.flatMap((s) => s.items.map((i) => i.term.length)));
  return Math.min(longest, Math.max(16, Math.min(32, Math.floor(width * 0.35))));
}

function renderSection(section: HelpSection, width: number, col: number): string[] {
  const out = [`${section.title}:`];
  const textIndent = 2 + col + 2;
  const textWidth = width - textIndent;
  for (const item of section.items) {
    if (!item.text) {
      out.push(`  ${item.term}`);
      continue;
    }
    if (textWidth < 20) {
      // a very narrow terminal: the text goes below the term
      out.push(`  ${item.term}`, ...wrapText(item.text, width, 6, 6).map((l, j) => (j === 0 ? `      ${l}` : l)));
      continue;
    }
    const text = wrapText(item.text, width, textIndent, textIndent);
    if (item.term.length > col) {
      out.push(`  ${item.term}`, ' '.repeat(textIndent) + text[0], ...text.slice(1));
    } else {
      out.push(`  ${item.term.padEnd(col)}  ${text[0]}`, ...text.slice(1));
    }
  }
  return out;
}

/** The help text of `doc`, every line at most `width` columns (unless one word is longer), ending in a newline. */
export function renderHelp(doc: HelpDoc, width = DEFAULT_HELP_WIDTH): string {
  const w = Math.max(MIN_WIDTH, Math.floor(width));
  const blocks: string[][] = [renderUsage(doc.usage, w)];
  for (const p of doc.description ?? []) blocks.push(wrapText(p, w));
  const sections = doc.sections.filter((s) => s.items.length > 0);
  const col = termColumn(sections, w);
  for (const s of sections) blocks.push(renderSection(s, w, col));
  for (const p of doc.footer ?? []) blocks.push(wrapText(p, w));
  return `${blocks.map((b) => b.join('\n')).join('\n\n')}\n`;
}

/** Optimal-string-alignment distance (Levenshtein plus swapping two neighbours, the commonest typo). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * Names the user probably meant: the candidates closest to `word` by edit distance, if close enough (at most a
 * third of the word's length, at least 1), else those that start with it (`implement` → implement-network,
 * implement-vpc). At most `max`, best first.
 */
export function suggest(word: string, candidates: readonly string[], max = 3): string[] {
  const w = word.toLowerCase();
  if (w === '') return [];
  const limit = Math.max(1, Math.floor(w.length / 3));
  const scored = [...new Set(candidates)].map((c) => ({ c, d: editDistance(w, c.toLowerCase()) })).filter((x) => x.d <= limit);
  if (scored.length > 0) {
    const best = Math.min(...scored.map((x) => x.d));
    return scored.filter((x) => x.d === best).map((x) => x.c).slice(0, max);
  }
  if (w.length >= 3) return candidates.filter((c) => c.toLowerCase().startsWith(w)).slice(0, max);
  return [];
}

/** " (did you mean 'x' or 'y'?)", or "" when nothing is close. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  const s = suggest(word, candidates);
  if (s.length === 0) return '';
  const quoted = s.map((x) => `'${x}'`);
  return ` (did you mean ${quoted.length > 1 ? `${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}` : quoted[0]}?)`;
}
