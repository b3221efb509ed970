/**
 * Fallback nftables executor: one `nft -j -f FILE` process per call. Same interface and semantics as
 * the libnftables executor (lib/nft), ~1000× slower per call; useful where libnftables cannot be
 * loaded, and as a reference in tests.
 *
 * - nft 1.0.6 cannot read JSON from a Node child's stdin (a socket), so the document goes through a
 *   private temp file.
 * - Another namespace: `nsenter --net=/run/netns/NAME nft …` (no `ip netns exec` remount dance).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonExecutor, type JsonExecutorOptions, type NftRunner, type RunOptions, type RunResult } from './executor.js';
import { NftValidationError } from './errors.js';
import { childEnv } from '../sys/children.js';

/** Options of the nft CLI executor: its namespace (entered with nsenter), the nft and nsenter binaries. */
export interface NftCliOptions extends JsonExecutorOptions {
  /** Named namespace (/run/netns/NAME); default: the current one. */
  netns?: string;
  /** nft binary (default "nft" from PATH). */
  nft?: string;
  /** nsenter binary (default "nsenter"). */
  nsenter?: string;
}

const NETNS_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

interface Exit { code: number | null; stdout: string; stderr: string; spawnError?: Error }

function run(cmd: string, args: string[]): Promise<Exit> {
  return new Promise((resolve) => {
    // the minimal child environment (lib/sys/children.ts): never the caller's
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => resolve({ code: null, stdout: '', stderr: '', spawnError: e }));
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

/** Runs libnftables input documents as `nft -j -f FILE` processes (through `nsenter --net=` for a namespace). */
export class NftCliRunner implements NftRunner {
  readonly name = 'nft-cli';
  private readonly prefix: string[];
  private readonly dir: string;
  private seq = 0;

  constructor(opts: NftCliOptions = {}) {
    const nftBin = opts.nft ?? 'nft';
    if (opts.netns !== undefined) {
      if (!NETNS_RE.test(opts.netns)) throw new NftValidationError('E_INVALID_NAME', 'namespace name', opts.netns, 'not a valid namespace name');
      this.prefix = [opts.nsenter ?? 'nsenter', `--net=/run/netns/${opts.netns}`, nftBin];
    } else {
      this.prefix = [nftBin];
    }
    this.dir = mkdtempSync(join(tmpdir(), 'netns-router-nft-'));
  }

  async run(input: string, opts: RunOptions): Promise<RunResult> {
    const file = join(this.dir, `batch-${process.pid}-${++this.seq}.json`);
    writeFileSync(file, input, { mode: 0o600 });
    try {
      const args = [...this.prefix.slice(1), '-j'];
      if (opts.dryRun) args.push('-c');
      if (opts.terse) args.push('-t');
      args.push('-f', file);
      const r = await run(this.prefix[0], args);
      if (r.spawnError) return { ok: false, output: '', error: `cannot run ${this.prefix[0]}: ${r.spawnError.message}`, executorFailed: true };
      return { ok: r.code === 0, output: r.stdout, error: r.stderr };
    } finally {
      rmSync(file, { force: true });
    }
  }

  async close(): Promise<void> {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** nft CLI executor for the current namespace or `netns`. */
export function openNftCli(opts: NftCliOptions = {}): JsonExecutor {
  return new JsonExecutor(new NftCliRunner(opts), opts);
}
