#!/usr/bin/env node
// netns-router entry point (ESM): `netns-router <command> <payload-file> <timeout-seconds>` (or options).
// The installed command is netns-router.cjs, which reaches a resident engine without loading any ESM.
import { runMain } from './entry.js';

const code = await runMain(process.argv.slice(2), { tryResident: true });
// exit now: after a timeout the engine may still be running; its transactions are atomic. (`serve` returns
// only once it has finished its commands.)
process.exit(code);
