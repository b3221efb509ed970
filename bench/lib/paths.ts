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

/** The installed command (bundle + code cache: cli/bundle.cts), as a cold process runs it. */
export const cliPath = (): string => join(distRoot(), 'cli', 'netns-router.cjs');
export const spawnBaselinePath = (): string => join(repoRoot(), 'bench', 'baseline', 'spawn-router.sh');
