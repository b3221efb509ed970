/** The resident engine (`netns-router serve`) and the extension's wrapper shim, started for real in tests. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/cli/netns-router.cjs: the installed command. */
export const CJS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'netns-router.cjs');

export interface Served { proc: ChildProcess; pid: number; socket: string; stderr: () => string; stop: () => Promise<number | null> }

/** `netns-router serve --socket <dir>/run/engine.sock` (or `socket`), once it listens. */
export async function serve(dir: string, opts: { socket?: string; args?: string[] } = {}): Promise<Served> {
  const socket = opts.socket ?? join(dir, 'run', 'engine.sock');
  const proc = spawn(process.execPath, [CJS, 'serve', '--socket', socket, ...(opts.args ?? [])], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (c: string) => { err += c; });
  const t0 = Date.now();
  while (!/listening on/.test(err)) {
    if (proc.exitCode !== null || Date.now() - t0 > 20_000) {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      throw new Error(`serve did not start: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    proc, pid: proc.pid!, socket, stderr: () => err,
    stop: () => new Promise((res) => {
      if (proc.exitCode !== null || proc.signalCode !== null) { res(proc.exitCode); return; }
      proc.once('exit', (code) => res(code));
      proc.kill('SIGTERM');
    }),
  };
}

/** Installs the wrapper shim of extension `ext` under `root` running this build's CLI with the options `g`; its path. */
export function installShim(root: string, ext: string, g: string[], env: NodeJS.ProcessEnv): string {
  const r = spawnSync(process.execPath, [CJS, 'install-wrapper', '--extension', ext, '--root', root, '--script', CJS, ...g], { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`install-wrapper: ${r.stderr}`);
  return join(root, `etc/cloudstack/extensions/${ext}/${ext}-wrapper.sh`);
}

export interface Ran { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; pid: number }

/** Runs a process to its end (killed by pid with SIGKILL after `killAfterMs`, default 60 s); `started` sees it start. */
export function run(
  cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; killAfterMs?: number; started?: (p: ChildProcess) => void } = {},
): Promise<Ran> {
  return new Promise((res) => {
    const p = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (c: Buffer) => { stdout += c.toString(); });
    p.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
    const t = setTimeout(() => p.kill('SIGKILL'), opts.killAfterMs ?? 60_000);
    p.on('error', (e) => { stderr += `spawn: ${e.message}`; });
    p.on('close', (code, signal) => { clearTimeout(t); res({ code, signal, stdout, stderr, pid: p.pid! }); });
    opts.started?.(p);
  });
}

/** pid of the process that logged `command start` for the last command in the log file. */
export function lastRunner(log: string): number {
  const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; pid: number });
  const start = lines.filter((l) => l.msg === 'command start').pop();
  if (!start) throw new Error('no command start record');
  return start.pid;
}
