/** The machine's processes read from /proc — tests find the daemons they started by what the kernel says, not by our records. */
import { readdirSync, readFileSync } from 'node:fs';

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
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state === 'Z' || state === 'X') continue;
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (pick({ pid: Number(d), argv })) out.push(Number(d));
    } catch { /* gone meanwhile */ }
  }
  return out.sort((a, b) => a - b);
}
