/** The machine's processes read from /proc — tests find the daemons they started by what the kernel says, not by our records. */
import { readFileSync } from 'node:fs';
import { listPids, procAlive } from '../../lib/sys/proc.js';

export interface ProcInfo {
  pid: number;
  /** The command line (argv), as /proc/PID/cmdline holds it. */
  argv: string[];
}

/**
 * Pids of the live processes (zombies and dead ones left out) that `pick` accepts, ascending. A process that ends
 * while it is read — or whose `pick` throws because it did (a /proc file gone) — is skipped.
 */
export function pidsWhere(pick: (p: ProcInfo) => boolean): number[] {
  const out: number[] = [];
  for (const pid of listPids()) {
    try {
      if (!procAlive(pid)) continue;
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (pick({ pid, argv })) out.push(pid);
    } catch { /* gone meanwhile */ }
  }
  return out.sort((a, b) => a - b);
}
