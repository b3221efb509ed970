#!/usr/bin/env node
// netns-router, the installed command: `netns-router <command> <payload-file> <timeout-seconds>` (or options).
// CommonJS, loading only node built-ins until it knows it needs more: with a resident engine (`netns-router
// serve`) listening, the command line goes over its socket and this process never loads the engine. Without
// one, the CLI is loaded from its one-file bundle with a V8 code cache (bundle.cts); without the bundle (a tree
// built without its bundle step), from the ES modules.
import { runViaResident } from './resident.cjs';
import { loadBundle } from './bundle.cjs';

type Entry = typeof import('./entry.js');

let saveCache: ((argv: readonly string[]) => void) | undefined;

async function main(argv: string[]): Promise<number> {
  const forwarded = await runViaResident(argv);
  if (forwarded !== undefined) return forwarded;
  const bundle = loadBundle();
  saveCache = bundle?.saveCache;
  // no resident engine: everything else is ESM (a CommonJS module can load it only asynchronously)
  const { runMain } = bundle ? bundle.load('dist/cli/entry.js') as Entry : await import('./entry.js') as Entry;
  return runMain(argv, { tryResident: false });
}

main(process.argv.slice(2)).then((code) => {
  saveCache?.(process.argv.slice(2));
  process.exit(code);
}, (e: unknown) => {
  process.stderr.write(`netns-router: internal error: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(2);
});
