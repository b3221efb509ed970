/**
 * What every child process of netns-router gets: a minimal, explicit environment, and its executable found
 * through that environment's PATH.
 *
 * The caller's environment is never passed on: CloudStack puts the network and physical-network extension
 * details (`CS_NETWORK_EXTENSION_DETAILS`, `CS_PHYSICAL_NETWORK_EXTENSION_DETAILS`, which can hold passwords
 * or SSH keys) into it, and a daemon would carry them in /proc/<pid>/environ for its whole life. A child gets
 * PATH (the caller's, else the standard one), LC_ALL=C (messages that are parsed or quoted stay English) and
 * only what its call site adds by name.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

/** PATH of a child when the caller has none (what systemd gives its services). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The keys every child environment holds. */
export const BASE_CHILD_ENV_KEYS = ['PATH', 'LC_ALL'] as const;

/** The PATH children get (and executables are looked up in). */
export function childPath(): string {
  return process.env.PATH || DEFAULT_PATH;
}

/** The environment of a child process: the base keys plus `extra` (named explicitly by the call site). */
export function childEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = { PATH: childPath(), LC_ALL: 'C' };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

/** `childEnv` as NAME=value strings (posix_spawn's envp). */
export function childEnvList(extra: Record<string, string | undefined> = {}): string[] {
  return Object.entries(childEnv(extra)).map(([k, v]) => `${k}=${v}`);
}

/** An executable could not be found (or is not executable). */
export class ExecutableNotFoundError extends Error {
  constructor(readonly program: string, readonly searched: string) {
    super(`${program} is not installed: no executable "${program}" in PATH=${searched}`);
    this.name = 'ExecutableNotFoundError';
  }
}

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Absolute path of `program` as a child would find it (execvp over the child PATH); an absolute or relative
 * path with a slash is checked as given. Throws ExecutableNotFoundError naming the program and the PATH.
 */
export function findExecutable(program: string, path: string = childPath()): string {
  if (program.includes('/')) {
    if (isExecutableFile(program)) return program;
    throw new ExecutableNotFoundError(program, isAbsolute(program) ? '(absolute path)' : '(relative path)');
  }
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, program);
    if (isExecutableFile(p)) return p;
  }
  throw new ExecutableNotFoundError(program, path);
}
