/** Shared helpers of the contract/CLI tests: temp dirs, a recording RouterApi. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_METHOD, type CommandContext, type CommandOutput, type RouterApi } from '../../lib/router/contract/router-api.js';
import type { RouterRequest } from '../../lib/router/contract/types.js';
import { runCli, type CliDeps } from '../../cli/run.js';

/** A temp directory removed by cleanup(). */
export class TempDir {
  readonly path: string;
  constructor(tag: string) {
    this.path = mkdtempSync(join(tmpdir(), `netns-router-${tag}-`));
  }
  file(name: string, content: string | object): string {
    const p = join(this.path, name);
    writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
    return p;
  }
  join(...parts: string[]): string {
    return join(this.path, ...parts);
  }
  cleanup(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}

export interface Call {
  method: string;
  req: RouterRequest;
  ctx: CommandContext;
}

export type Behaviour = (method: string, req: RouterRequest, ctx: CommandContext) => Promise<CommandOutput> | CommandOutput;

/** RouterApi whose every method records its call and runs `behaviour` (default: succeed silently). */
export function recordingApi(behaviour?: Behaviour): { api: RouterApi; calls: Call[] } {
  const calls: Call[] = [];
  const api = {} as Record<string, (req: RouterRequest, ctx: CommandContext) => Promise<CommandOutput>>;
  for (const method of Object.values(API_METHOD)) {
    api[method] = async (req, ctx) => {
      calls.push({ method, req, ctx });
      return behaviour ? behaviour(method, req, ctx) : undefined;
    };
  }
  return { api: api as unknown as RouterApi, calls };
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  calls: Call[];
}

/** runCli with a recording API, captured output and an isolated state dir/log (inside `dir`). */
export async function cli(
  argv: string[], dir: TempDir, opts: { behaviour?: Behaviour; env?: Record<string, string | undefined>; deps?: Partial<CliDeps> } = {},
): Promise<CliRun> {
  const { api, calls } = recordingApi(opts.behaviour);
  let stdout = '';
  let stderr = '';
  const env = {
    NETNS_ROUTER_STATE_DIR: dir.join('state'),
    NETNS_ROUTER_LOG_FILE: dir.join('router.log'),
    ...(opts.env ?? {}),
  };
  const code = await runCli(argv, {
    api, env,
    stdout: (s) => { stdout += s; },
    stderr: (s) => { stderr += s; },
    ...(opts.deps ?? {}),
  });
  return { code, stdout, stderr, calls };
}

/** argv of the option form from payload-style fields: {public_port: '80'} → ['--public-port', '80']. */
export function optionArgs(fields: Record<string, string>): string[] {
  return Object.entries(fields).flatMap(([k, v]) => [`--${k.replace(/_/g, '-')}`, v]);
}
