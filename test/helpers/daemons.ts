/** The daemons a router starts (dnsmasq, the metadata daemon, haproxy), found by pid from its state directory. */
import { readdirSync, readFileSync } from 'node:fs';
import { dnsmasqPids } from './dhcp.js';
import { daemonPid } from '../../lib/services/metadata/index.js';

/** Every haproxy whose command line names a file under `stateDir` (a router's: -f <stateDir>/run/<ns>/haproxy/…). */
export function haproxyPidsUnder(stateDir: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith('haproxy') && argv.some((a) => a.startsWith(`${stateDir}/`))) out.push(Number(d));
    } catch { /* gone meanwhile */ }
  }
  return out;
}

/** SIGKILL the router daemons of a state directory (dnsmasq, the metadata daemon, haproxy) by pid; the pids killed. */
export function killRouterDaemons(stateDir: string): number[] {
  const md = daemonPid(stateDir);
  const pids = [...dnsmasqPids(stateDir), ...(md !== undefined ? [md] : []), ...haproxyPidsUnder(stateDir)];
  for (const p of pids) {
    try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
  }
  return pids;
}

/** No process of `pids` is left (not even a zombie we could still signal). */
export const allGone = (pids: number[]) => pids.every((p) => {
  try { process.kill(p, 0); return false; } catch { return true; }
});
