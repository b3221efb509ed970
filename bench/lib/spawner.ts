/**
 * Client of bench/baseline/exec-host.js: starts it in a private mount namespace (throwaway /var/lib and
 * /var/log) and runs commands there one at a time, returning the child's own wall time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { join } from 'node:path';
import { distRoot } from './paths.js';

export interface SpawnResult {
  ms: number;
  status: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export class SpawnError extends Error {
  readonly code = 'E_BENCH_SPAWN';
  constructor(message: string, readonly result?: SpawnResult) {
    super(message);
    this.name = 'SpawnError';
  }
}

export class Spawner {
  private child: ChildProcess;
  private lines: Interface;
  private waiting = new Map<number, (r: SpawnResult) => void>();
  private seq = 0;
  private exited = false;

  private constructor() {
    const host = join(distRoot(), 'bench', 'baseline', 'exec-host.js');
    const setup = [
      'set -e',
      'mount -t tmpfs bench-var-lib /var/lib',
      'mkdir -p /var/lib/cloudstack',
      'mount -t tmpfs bench-var-log /var/log',
      'mkdir -p /var/log/cloudstack/extensions',
      'exec "$@"',
    ].join('\n');
    this.child = spawn('unshare', ['--mount', '--propagation', 'unchanged', '--', 'sh', '-c', setup, 'exec-host', process.execPath, host], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.lines = createInterface({ input: this.child.stdout! });
    this.lines.on('line', (line) => {
      let msg: SpawnResult & { id: number };
      try {
        msg = JSON.parse(line) as SpawnResult & { id: number };
      } catch {
        return;
      }
      const w = this.waiting.get(msg.id);
      if (w) {
        this.waiting.delete(msg.id);
        w(msg);
      }
    });
    this.child.on('exit', () => {
      this.exited = true;
      for (const w of this.waiting.values()) w({ ms: 0, status: null, signal: 'exec-host exited', stdout: '', stderr: 'exec-host exited' });
      this.waiting.clear();
    });
  }

  static start(): Spawner {
    return new Spawner();
  }

  /** pid of the exec host (its mount namespace is the one the commands run in). */
  get pid(): number {
    return this.child.pid!;
  }

  /** Run argv (optionally with the network namespace `netns`); resolves with the child's wall time. */
  run(argv: string[], opts: { netns?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<SpawnResult> {
    if (this.exited) return Promise.reject(new SpawnError('exec-host is not running'));
    const id = ++this.seq;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.child.stdin!.write(`${JSON.stringify({ id, argv, ...opts })}\n`);
    });
  }

  /** Like run(), but a non-zero exit is an error (its stderr in the message). */
  async must(argv: string[], opts: { netns?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<SpawnResult> {
    const r = await this.run(argv, opts);
    if (r.status !== 0) {
      throw new SpawnError(`${argv.slice(0, 3).join(' ')} … exited ${r.status ?? r.signal}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`, r);
    }
    return r;
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin!.end();
    await done;
  }
}
