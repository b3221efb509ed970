/**
 * The resident engine for benchmarks: `netns-router serve` started for one benchmark (its socket in the
 * benchmark's work directory), and the extension's wrapper shim installed against it — the production path
 * (CloudStack runs the shim; the shim hands the command line to the engine without starting node).
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { distRoot } from './paths.js';

export const installedCliPath = (): string => join(distRoot(), 'cli', 'netns-router.cjs');

export interface Resident {
  socket: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Start `serve` with its socket at `dir/engine.sock`. `mountNsOfPid`: run it in that process's mount namespace
 * (the Spawner's, whose commands must see the same /var/lib and /var/log as the engine).
 */
export async function startResident(dir: string, opts: { mountNsOfPid?: number } = {}): Promise<Resident> {
  const socket = join(dir, 'engine.sock');
  const argv = [process.execPath, installedCliPath(), 'serve', '--socket', socket];
  const full = opts.mountNsOfPid !== undefined ? ['nsenter', '-t', String(opts.mountNsOfPid), '-m', '--', ...argv] : argv;
  const proc = spawn(full[0], full.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (c: string) => { err += c; });
  const t0 = Date.now();
  while (!/listening on/.test(err)) {
    if (proc.exitCode !== null || Date.now() - t0 > 30_000) {
      proc.kill();
      throw new Error(`netns-router serve did not start: ${err.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    socket,
    pid: proc.pid!,
    stop: () => new Promise<void>((res) => {
      if (proc.exitCode !== null) { res(); return; }
      proc.once('exit', () => res());
      proc.kill('SIGTERM');
    }),
  };
}

/** Install the wrapper shim of extension `ext` under `root`, with `bakedArgs` (--state-dir …); returns its path. */
export function installShim(root: string, ext: string, bakedArgs: string[]): string {
  const r = spawnSync(process.execPath, [installedCliPath(), 'install-wrapper', '--extension', ext, '--root', root, '--script', installedCliPath(), ...bakedArgs], {
    encoding: 'utf8', env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: 'off' },
  });
  if (r.status !== 0) throw new Error(`install-wrapper: ${r.stderr}`);
  return join(root, 'etc', 'cloudstack', 'extensions', ext, `${ext}-wrapper.sh`);
}
