#!/usr/bin/env node
// netns-router, the installed command: `netns-router <command> <payload-file> <timeout-seconds>` (or options).
// CommonJS, loading only node built-ins until it knows it needs more: with a resident engine (`netns-router
// serve`) listening, the command line goes over its socket and this process never loads the engine.
import { runViaResident } from './resident.cjs';

async function main(argv: string[]): Promise<number> {
  const forwarded = await runViaResident(argv);
  if (forwarded !== undefined) return forwarded;
  // no resident engine: everything else is ESM (a CommonJS module can load it only asynchronously)
  const { runMain } = await import('./entry.js') as typeof import('./entry.js');
  return runMain(argv, { tryResident: false });
}

main(process.argv.slice(2)).then((code) => process.exit(code), (e: unknown) => {
  process.stderr.write(`netns-router: internal error: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(2);
});
