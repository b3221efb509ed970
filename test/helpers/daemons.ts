/** The daemons a router starts (dnsmasq, the metadata daemon), found by pid from its state directory. */
import { dnsmasqPids } from './dhcp.js';
import { daemonPid } from '../../lib/services/metadata/index.js';

/** SIGKILL the router daemons of a state directory (dnsmasq, the metadata daemon) by pid; the pids killed. */
export function killRouterDaemons(stateDir: string): number[] {
  const md = daemonPid(stateDir);
  const pids = [...dnsmasqPids(stateDir), ...(md !== undefined ? [md] : [])];
  for (const p of pids) {
    try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
  }
  return pids;
}

/** No process of `pids` is left (not even a zombie we could still signal). */
export const allGone = (pids: number[]) => pids.every((p) => {
  try { process.kill(p, 0); return false; } catch { return true; }
});
