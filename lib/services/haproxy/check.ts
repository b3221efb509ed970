/**
 * Configuration check with haproxy itself (`haproxy -c -f FILE`), run before any start or reload so that a
 * bad configuration never reaches a running haproxy. The file must be a real file: haproxy cannot open a
 * Node pipe/socket as /dev/stdin (ENXIO).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childEnv, findExecutable } from '../../sys/children.js';
import { HaproxyError, type ConfigProblem } from './errors.js';

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
    const at = /^(?:parsing\s+)?\[[^\]]*:(\d+)\]\s*:\s*(.*)$/.exec(text);
    if (at) problems.push({ line: Number(at[1]), message: at[2].trim() });
    else {
      text = text.trim();
      if (text) problems.push({ message: text });
    }
  }
  return problems;
}

/** Check `text` with `haproxy -c`. Throws HaproxyError('E_HAPROXY_SPAWN') only when haproxy cannot run. */
export function checkConfig(text: string, opts: { binary?: string; timeoutMs?: number } = {}): CheckResult {
  const bin = haproxyExecutable(opts.binary);
  const dir = mkdtempSync(join(tmpdir(), 'nr-haproxy-check-'));
  try {
    const file = join(dir, 'haproxy.cfg');
    writeFileSync(file, text, { mode: 0o600 });
    const r = spawnSync(bin, ['-c', '-f', file], { encoding: 'utf8', timeout: opts.timeoutMs ?? 15_000, env: childEnv() });
    if (r.error) throw new HaproxyError('E_HAPROXY_SPAWN', `running ${bin} -c: ${r.error.message}`, { cause: r.error });
    const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    if (r.status === 0) return { ok: true, problems: [], output };
    const problems = parseCheckOutput(output);
    if (problems.length === 0) problems.push({ message: `haproxy -c exited with ${r.status ?? r.signal}` });
    return { ok: false, problems, output };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
