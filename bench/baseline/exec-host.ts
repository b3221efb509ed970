/**
 * Process launcher for the spawned contestants of the benchmarks (our CLI cold start, the spawn-per-
 * operation baseline, an operator's wrapper script). Started by bench/lib/spawner.ts inside its own
 * mount namespace where /var/lib and /var/log are throwaway tmpfs, so that a wrapper with hard-coded
 * state and log paths (upstream writes /var/lib/cloudstack/<ext> and /var/log/cloudstack/…) never
 * writes to the machine's disk. /run/netns stays shared with the benchmark, so namespaces created
 * here are visible (and cleaned up) there.
 *
 * Protocol: one JSON request per stdin line {id, argv, netns?, env?, timeoutMs?}; one JSON reply per
 * stdout line {id, ms, status, signal, stdout, stderr}. `ms` is the wall time of the child alone,
 * measured here, so the pipe to the benchmark costs nothing. With `netns`, the child starts with
 * its network namespace set to that one (the thread enters it for the synchronous spawn).
 */
import { spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { runInNetns } from '../../lib/sys/setns.js';

interface Request {
  id: number;
  argv: string[];
  netns?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

if (process.env.NETNS_ROUTER_SANDBOX !== '1') {
  console.error('exec-host: run inside the sandbox (npm run bench)');
  process.exit(1);
}

const tail = (s: string, n: number): string => (s.length > n ? s.slice(s.length - n) : s);

function run(req: Request): string {
  const go = () => {
    const t = performance.now();
    const r = spawnSync(req.argv[0], req.argv.slice(1), {
      // stdin from /dev/null: with a socket on stdin, Debian's bash -c sources ~/.bashrc (it thinks sshd started it)
      stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', env: { ...process.env, ...(req.env ?? {}) }, timeout: req.timeoutMs ?? 120_000, maxBuffer: 64 << 20,
    });
    const ms = performance.now() - t;
    return { ms, status: r.status, signal: r.signal, stdout: tail(r.stdout ?? '', 8192), stderr: tail(`${r.stderr ?? ''}${r.error ? String(r.error) : ''}`, 4096) };
  };
  try {
    const res = req.netns ? runInNetns(req.netns, go) : go();
    return JSON.stringify({ id: req.id, ...res });
  } catch (e) {
    return JSON.stringify({ id: req.id, ms: 0, status: null, signal: null, stdout: '', stderr: `exec-host: ${(e as Error).message}` });
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  let req: Request;
  try {
    req = JSON.parse(line) as Request;
  } catch {
    process.stdout.write(`${JSON.stringify({ id: -1, ms: 0, status: null, signal: null, stdout: '', stderr: 'exec-host: bad request' })}\n`);
    return;
  }
  process.stdout.write(`${run(req)}\n`);
});
