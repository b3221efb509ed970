/**
 * Who is asking: the MAC address behind a guest connection, as the router sees it. The services answer a VM
 * only when that MAC is the one recorded for the source address (docs/metadata.md, "Who gets a VM's data").
 *
 * The router's neighbour entry for the connection's source address — on the interface that holds the
 * connection's local (router) address, read in the router namespace with RTM_GETNEIGH — is what the router
 * sends its answer to. Only a confirmed entry is taken as it is: REACHABLE (the kernel saw an ARP/NDP reply,
 * or forward progress of a connection, within reachable_time) or PERMANENT (set by an administrator). Any
 * other (STALE, DELAY, PROBE: a MAC learnt earlier, not confirmed since; INCOMPLETE, FAILED, none) is
 * resolved again: the entry is deleted and the kernel asked to resolve the address now (NTF_USE), which
 * broadcasts a request and records whoever answers. No confirmed answer within the deadline → no MAC, and
 * the caller refuses: there is never a fall-back to the address alone. A kernel without room for the entry
 * (ENOBUFS: the host's neighbour table full) is asked again until the deadline, not taken as a fault.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { NetnsHandle } from '../../netns/handle.js';
import { NETNS_RUN_DIR } from '../../sys/setns.js';
import { familyOf } from '../../util/ip.js';
import { isNetlinkError } from '../../netlink/errors.js';
import type { Neigh } from '../../netlink/neigh.js';

export interface Requester {
  /** The confirmed MAC, or undefined when none could be confirmed. */
  mac?: string;
  /**
   * Neighbour state it was read in, or why there is none ('no-interface', 'unresolved', 'failed', 'table-full':
   * the kernel's neighbour table had no room for the entry until the deadline).
   */
  state: string;
}

const confirmed = (n: Neigh | undefined): n is Neigh & { mac: string } =>
  n !== undefined && n.mac !== undefined && (n.state === 'reachable' || n.state === 'permanent');

/** How often a resolution is started again when something else moved the entry meanwhile. */
const MAX_RESTARTS = 3;

const inodeOf = (ns: string): number | undefined => statSync(join(NETNS_RUN_DIR, ns), { throwIfNoEntry: false })?.ino;

/** The neighbour table of one router namespace, read (and re-resolved) on behalf of its guests. */
export class NeighbourView {
  private handle?: NetnsHandle;
  private inode?: number;
  /** Resolutions in progress, by ifindex|address: concurrent requests of one guest share one. */
  private readonly pending = new Map<string, Promise<Requester>>();
  /**
   * Interface of each router address. An address dump costs ~1 ms (it names every link), so it is cached
   * until `forget()` — the daemon calls it on every sync of the router, i.e. after every command on it, the
   * only way its interfaces change — or until the interface is gone.
   */
  private readonly ifindexes = new Map<string, number>();

  /** `deadlineMs`: how long a resolution may take (the kernel gives up after 3 probes, 1 s apart). */
  constructor(readonly namespace: string, private readonly deadlineMs = 3500) {}

  /** The namespace's handle, re-opened when the namespace was made again under the same name. */
  private netlink() {
    const ino = inodeOf(this.namespace);
    if (this.handle && ino !== this.inode) this.close();
    if (!this.handle) {
      this.handle = NetnsHandle.open(this.namespace);
      this.inode = ino;
    }
    return this.handle.netlink;
  }

  /** The MAC behind a connection from `remote` to the router's address `local`. Netlink failures throw. */
  async requester(local: string, remote: string): Promise<Requester> {
    const nl = this.netlink();
    let ifindex = this.ifindexes.get(local);
    let n: Neigh | undefined;
    for (let fresh = ifindex === undefined; ; fresh = true) {
      if (ifindex === undefined) {
        ifindex = nl.addrList({ family: familyOf(local) }).find((a) => a.ip === local)?.ifindex;
        if (ifindex === undefined) return { state: 'no-interface' };
        this.ifindexes.set(local, ifindex);
      }
      try {
        n = nl.neighGet(ifindex, remote);
        break;
      } catch (e) {
        if (fresh || !isNetlinkError(e, 'ENODEV')) throw e;
        this.ifindexes.delete(local); // the interface went away: look again
        ifindex = undefined;
      }
    }
    return this.confirm(ifindex, remote, n);
  }

  /**
   * The MAC behind a connection from `remote` that arrived on interface `ifindex` (a link-local listener's
   * interface: there the local address names no single interface).
   */
  async requesterOn(ifindex: number, remote: string): Promise<Requester> {
    return this.confirm(ifindex, remote, this.netlink().neighGet(ifindex, remote));
  }

  private confirm(ifindex: number, remote: string, n: Neigh | undefined): Promise<Requester> {
    if (confirmed(n)) return Promise.resolve({ mac: n.mac, state: n.state });
    const key = `${ifindex}|${remote}`;
    let p = this.pending.get(key);
    if (!p) {
      p = this.resolve(ifindex, remote).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }

  private async resolve(ifindex: number, ip: string): Promise<Requester> {
    const nl = this.netlink();
    /** The kernel had no room for the entry at the last attempt (ENOBUFS). */
    let tableFull = false;
    const restart = (n: Neigh | undefined): void => {
      // a PERMANENT/NOARP entry is an administrator's: never deleted (it is not confirmable either)
      if (n && n.state !== 'permanent' && n.state !== 'noarp') nl.neighDel({ dev: ifindex, ip }, { ifExists: true });
      try {
        nl.neighResolve(ifindex, ip);
        tableFull = false;
      } catch (e) {
        // the host's neighbour table (one for all namespaces) is at gc_thresh3 with entries too recent to reclaim:
        // room comes back as they age, so this is tried again until the deadline, like a waiting packet would be
        if (!isNetlinkError(e, 'ENOBUFS')) throw e;
        tableFull = true;
      }
    };
    let n = nl.neighGet(ifindex, ip);
    if (n?.state === 'noarp') return { state: 'noarp' };
    restart(n);
    const end = Date.now() + this.deadlineMs;
    let restarts = 0;
    for (let wait = 1; Date.now() < end; wait = Math.min(wait * 2, 50)) {
      await new Promise((r) => setTimeout(r, wait));
      n = nl.neighGet(ifindex, ip);
      if (confirmed(n)) return { mac: n.mac, state: n.state };
      if (n?.state === 'failed') return { state: 'failed' };
      if (n === undefined && tableFull) {
        restart(undefined);
        continue;
      }
      // an ARP request from the guest (or a packet of ours) replaced the probe by a STALE/DELAY entry
      if (n?.state !== 'incomplete') {
        if (++restarts > MAX_RESTARTS) break;
        restart(n);
      }
    }
    return { state: tableFull ? 'table-full' : 'unresolved' };
  }

  /** Forget the interfaces of the router's addresses (they may have changed). */
  forget(): void {
    this.ifindexes.clear();
  }

  /** Close the namespace handle (an open handle would keep a deleted namespace alive). */
  close(): void {
    this.ifindexes.clear();
    this.handle?.close();
    this.handle = undefined;
    this.inode = undefined;
  }
}

/**
 * Whether a requester may have the data recorded for its address. `recorded` undefined: no MAC is known for
 * the address (the VM is served by address alone — unprotected, see docs/metadata.md).
 */
export function requesterMatches(recorded: string | undefined, seen: Requester): boolean {
  if (recorded === undefined) return true;
  return seen.mac !== undefined && seen.mac === recorded.toLowerCase();
}
