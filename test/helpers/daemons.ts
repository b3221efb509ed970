/** The daemons a router starts (dnsmasq, the metadata daemon, haproxy), found by pid from its state directory. */
import { pidsWhere } from './procs.js';
import { dnsmasqPids } from './dhcp.js';
import { daemonPid } from '../../lib/services/metadata/index.js';

/** Every haproxy whose command line names a file under `stateDir` (a router's: -f <stateDir>/run/<ns>/haproxy/…). */
export const haproxyPidsUnder = (stateDir: string): number[] =>
  pidsWhere(({ argv }) => argv[0]?.endsWith('haproxy') === true && argv.some((a) => a.startsWith(`${stateDir}/`)));

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
