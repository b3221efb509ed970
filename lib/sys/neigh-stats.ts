/**
 * The kernel's neighbour tables (ARP, NDP) are one per machine, shared by every network namespace, and bounded by
 * `gc_thresh3` (1,024 by default): a host whose routers see more neighbours than that drops new entries — a
 * guest's first packets get no answer (docs/metadata.md "Neighbour table"). Their statistics are listed in the
 * initial namespace's /proc/net/stat (read through pid 1's view).
 */
import { readFileSync } from 'node:fs';

/** The sum over CPUs of a column of a /proc/net/stat table (header of names, then one line of hex per CPU). */
export function statColumn(text: string, column: string): number | undefined {
  const [head, ...cpus] = text.trim().split('\n').map((l) => l.trim().split(/\s+/));
  const at = head?.indexOf(column) ?? -1;
  if (at < 0) return undefined;
  let n = 0;
  for (const c of cpus) {
    const v = parseInt(c[at] ?? '', 16);
    if (!Number.isFinite(v)) return undefined;
    n += v;
  }
  return n;
}

/** How often the ARP and NDP tables were full since boot (`table_fulls`); undefined when unreadable. */
export function neighbourOverflows(procRoot = '/proc/1'): number | undefined {
  let n = 0;
  for (const table of ['arp_cache', 'ndisc_cache']) {
    let text: string;
    try {
      text = readFileSync(`${procRoot}/net/stat/${table}`, 'utf8');
    } catch {
      return undefined;
    }
    const v = statColumn(text, 'table_fulls');
    if (v === undefined) return undefined;
    n += v;
  }
  return n;
}

/**
 * The IPv4 neighbour table's hard limit (net.ipv4.neigh.default.gc_thresh3) as the calling thread's namespace
 * lists it — only the initial namespace does (where serve runs); undefined elsewhere or when unreadable.
 */
export function neighbourLimit(procRoot = '/proc'): number | undefined {
  try {
    const v = Number(readFileSync(`${procRoot}/sys/net/ipv4/neigh/default/gc_thresh3`, 'utf8').trim());
    return Number.isInteger(v) ? v : undefined;
  } catch {
    return undefined;
  }
}
