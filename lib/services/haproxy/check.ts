/**
 * Configuration check with haproxy itself (`haproxy -c -f FILE`), run before any start or reload so that a
 * bad configuration never reaches a running haproxy. The file must be a real file: haproxy cannot open a
 * Node pipe/socket as /dev/stdin (ENXIO). haproxy is posix_spawn'ed (lib/sys/posix-spawn.ts): a fork of a
 * large resident process would copy its page tables first (20–45 ms at 200 MB).
 *
 * A check costs a haproxy start-up (~35 ms here, ~70 ms for 1,000 proxies), so ConfigValidator checks only
 * what it has not seen accepted: the head (global, defaults) and each proxy section are remembered once
 * haproxy accepted them (keyed by their text, the defaults they were checked under and the haproxy binary),
 * and a configuration is checked as its head plus its unknown sections. The sections of a generated
 * configuration are independent (unique names, own servers; `-c` binds nothing), so a text whose parts were
 * all accepted is accepted.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childEnvList, findExecutable } from '../../sys/children.js';
import { posixSpawn, waitChildSync } from '../../sys/posix-spawn.js';
import { HaproxyError, type ConfigProblem } from './errors.js';

/** What `haproxy -c` said of a configuration: accepted or not, the problems it named, its whole output. */
export interface CheckResult {
  ok: boolean;
  problems: ConfigProblem[];
  output: string;
}

/** haproxy's program name, looked up in the child PATH (lib/sys/children.ts). */
export const DEFAULT_HAPROXY = 'haproxy';

/** Absolute path of the haproxy to run; HaproxyError('E_HAPROXY_SPAWN') naming the PATH when there is none. */
export function haproxyExecutable(binary = DEFAULT_HAPROXY): string {
  try {
    return findExecutable(binary);
  } catch (e) {
    throw new HaproxyError('E_HAPROXY_SPAWN', (e as Error).message, { cause: e });
  }
}

/** `[ALERT]    (123) : config : parsing [/path/file:12] : message` → {line 12, message}. */
export function parseCheckOutput(output: string): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const raw of output.split('\n')) {
    const m = /^\[ALERT\]\s+\(\d+\)\s*:\s*(.*)$/.exec(raw.trim());
    if (!m) continue;
    let text = m[1].replace(/^config\s*:\s*/, '');
    if (/^(Error\(s\) found in configuration file|Fatal errors found in configuration)/.test(text)) continue;
    const at = /^(?:parsing\s+)?\[[^\]]*:(\d+)\]\s*:\s*(.*)$/i.exec(text);
    if (at) problems.push({ line: Number(at[1]), message: at[2].trim() });
    else {
      text = text.trim();
      if (text) problems.push({ message: text });
    }
  }
  return problems;
}

/** Check `text` with `haproxy -c`. Throws HaproxyError('E_HAPROXY_SPAWN') only when haproxy cannot run. */
export function checkConfig(text: string, opts: { binary?: string } = {}): CheckResult {
  const bin = haproxyExecutable(opts.binary);
  const dir = mkdtempSync(join(tmpdir(), 'nr-haproxy-check-'));
  try {
    const file = join(dir, 'haproxy.cfg');
    const outFile = join(dir, 'output');
    writeFileSync(file, text, { mode: 0o600 });
    let st;
    try {
      st = waitChildSync(posixSpawn(bin, [bin, '-c', '-f', file], { stderrPath: outFile, stdoutToStderr: true, env: childEnvList() }));
    } catch (e) {
      throw new HaproxyError('E_HAPROXY_SPAWN', `running ${bin} -c: ${(e as Error).message}`, { cause: e });
    }
    let output = '';
    try { output = readFileSync(outFile, 'utf8'); } catch { /* no output */ }
    if (st.code === 0) return { ok: true, problems: [], output };
    const problems = parseCheckOutput(output);
    if (problems.length === 0) problems.push({ message: `haproxy -c exited with ${st.code ?? `signal ${st.signal}`}` });
    return { ok: false, problems, output };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A configuration cut into its head (everything before the first proxy section) and its proxy sections. */
export interface ConfigParts {
  head: string[];
  /** The head's `defaults` section (what a proxy section's meaning depends on). */
  defaults: string;
  sections: Array<{ lines: string[]; firstLine: number }>;
}

const PROXY_SECTION = /^(listen|frontend|backend)\s/;

/** Comments and blank lines before a section belong to it. */
export function splitConfig(text: string): ConfigParts {
  const lines = text.replace(/\n$/, '').split('\n');
  const starts: number[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!PROXY_SECTION.test(lines[i])) continue;
    let j = i;
    while (j > 0 && (lines[j - 1].trim() === '' || lines[j - 1].startsWith('#')) && !starts.includes(j - 1)) j--;
    if (starts.length && j <= starts[starts.length - 1]) j = i;
    starts.push(j);
  }
  const head = lines.slice(0, starts[0] ?? lines.length);
  const d = head.findIndex((l) => /^defaults(\s|$)/.test(l));
  let e = d + 1;
  while (d >= 0 && e < head.length && !/^\S/.test(head[e])) e++;
  const defaults = d >= 0 ? head.slice(d, e).join('\n') : '';
  const sections = starts.map((s, k) => ({ lines: lines.slice(s, starts[k + 1] ?? lines.length), firstLine: s + 1 }));
  return { head, defaults, sections };
}

/** Identity of a haproxy executable: a changed binary checks everything again. */
function binaryIdentity(path: string): string {
  try {
    const st = statSync(path);
    return `${path}:${st.ino}:${st.size}:${Math.floor(st.mtimeMs)}`;
  } catch {
    return path;
  }
}

const digest = (...parts: string[]): string => createHash('sha256').update(parts.join('\0')).digest('base64');

/**
 * `haproxy -c` of only what has not been accepted before (see the header). One validator per process; it
 * remembers up to `max` accepted parts.
 */
export class ConfigValidator {
  private readonly good = new Set<string>();
  constructor(private readonly max = 8192) {}

  private keys(parts: ConfigParts, id: string): { head: string; sections: string[] } {
    return {
      head: digest('h', id, parts.head.join('\n')),
      sections: parts.sections.map((x) => digest('s', id, parts.defaults, x.lines.join('\n'))),
    };
  }

  private remember(keys: string[]): void {
    if (this.good.size + keys.length > this.max) this.good.clear();
    for (const k of keys) this.good.add(k);
  }

  /** Was every part of `text` accepted already (no check needed)? */
  known(text: string, opts: { binary?: string } = {}): boolean {
    const k = this.keys(splitConfig(text), binaryIdentity(haproxyExecutable(opts.binary)));
    return this.good.has(k.head) && k.sections.every((x) => this.good.has(x));
  }

  /**
   * Record `text` as accepted by the haproxy whose identity was `checkedBy` (e.g. the configuration a running
   * haproxy loaded, as written after its check): ignored when the binary changed since.
   */
  accepted(text: string, checkedBy: string, opts: { binary?: string } = {}): void {
    if (checkedBy !== binaryIdentity(haproxyExecutable(opts.binary))) return;
    const k = this.keys(splitConfig(text), checkedBy);
    this.remember([k.head, ...k.sections]);
  }

  /** The identity of the haproxy that checks (stored beside a configuration written after a check). */
  identity(opts: { binary?: string } = {}): string {
    return binaryIdentity(haproxyExecutable(opts.binary));
  }

  /**
   * Check `text`: its head and the sections not accepted before, in one `haproxy -c` (none when all are
   * known). Problems carry the line numbers of `text`.
   */
  check(text: string, opts: { binary?: string } = {}): CheckResult & { checkedLines: number } {
    const bin = haproxyExecutable(opts.binary);
    const parts = splitConfig(text);
    const k = this.keys(parts, binaryIdentity(bin));
    const unknown = parts.sections.map((x, i) => ({ ...x, key: k.sections[i] })).filter((x) => !this.good.has(x.key));
    if (this.good.has(k.head) && unknown.length === 0) return { ok: true, problems: [], output: '', checkedLines: 0 };
    // a new head (e.g. another global maxconn) over known sections: checked with one of them, since haproxy -c
    // refuses a configuration without a listener ("will not start (no listener) => exit(2)")
    if (unknown.length === 0 && parts.sections.length) unknown.push({ ...parts.sections[0], key: k.sections[0] });
    // the reduced configuration, and the line of `text` each of its lines came from
    const lines = [...parts.head];
    const from = parts.head.map((_, i) => i + 1);
    for (const x of unknown) {
      x.lines.forEach((l, j) => { lines.push(l); from.push(x.firstLine + j); });
    }
    const r = checkConfig(`${lines.join('\n')}\n`, { binary: bin });
    if (!r.ok) {
      const problems = r.problems.map((p) => (p.line !== undefined && from[p.line - 1] !== undefined ? { ...p, line: from[p.line - 1] } : p));
      return { ...r, problems, checkedLines: lines.length };
    }
    this.remember([k.head, ...unknown.map((x) => x.key)]);
    return { ...r, checkedLines: lines.length };
  }
}
