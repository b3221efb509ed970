/** Where things are: the repository root, the compiled tree, the CLI and the baseline script. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/ (this file is dist/bench/lib/paths.js once compiled). */
export function distRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

export function repoRoot(): string {
  return join(distRoot(), '..');
}

export const cliPath = (): string => join(distRoot(), 'cli', 'main.js');
export const spawnBaselinePath = (): string => join(repoRoot(), 'bench', 'baseline', 'spawn-router.sh');
