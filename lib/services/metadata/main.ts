#!/usr/bin/env node
/**
 * Entry of the metadata daemon process: `node main.js --state-dir DIR [--idle-exit-ms N]`.
 * Started (detached) by the router module's reconcile through client.ts; runs until stopped, signalled
 * (SIGTERM/SIGINT) or idle. SIGHUP re-reads every router's listen.json.
 */
import { MetadataDaemon } from './daemon.js';
import { MetadataError } from './errors.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const stateDir = arg('--state-dir');
if (!stateDir) {
  process.stderr.write('usage: main.js --state-dir DIR [--idle-exit-ms N]\n');
  process.exit(1);
}
const idle = arg('--idle-exit-ms');
const daemon = new MetadataDaemon({ stateDir, ...(idle !== undefined ? { idleExitMs: Number(idle) } : {}) });

process.on('SIGHUP', () => void daemon.rescan().catch(() => undefined));
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => void daemon.stop(sig));

try {
  await daemon.start();
} catch (e) {
  process.stderr.write(`metadata daemon: ${(e as Error).message}\n`);
  process.exit(e instanceof MetadataError && e.code === 'E_DAEMON_RUNNING' ? 3 : 1);
}
await daemon.stopped;
process.exit(0);
