/**
 * `serve` tells the operator when the kernel's neighbour tables overflow (lib/sys/neigh-stats.ts): a host whose
 * routers see more neighbours than `gc_thresh3` drops new entries, and guests' first packets — a DHCP renewal's
 * answer, a first metadata request — go unanswered although every router is in place. Nothing in netns-router
 * can fix that; the host's limit must be raised (docs/metadata.md "Neighbour table").
 */
import { neighbourLimit, neighbourOverflows } from '../lib/sys/neigh-stats.js';

/** How often serve looks, and how seldom it says so again. */
export const NEIGH_CHECK_MS = 10_000;
export const NEIGH_QUIET_MS = 600_000;

export class NeighbourWatch {
  private last: number | undefined;
  /** Overflows not said yet. */
  private pending = 0;
  private saidAt = -Infinity;
  private since: number;

  constructor(
    now: number,
    private readonly read: () => number | undefined = neighbourOverflows,
    private readonly limit: () => number | undefined = neighbourLimit,
    private readonly quietMs = NEIGH_QUIET_MS,
  ) {
    this.last = read();
    this.since = now;
  }

  /** The line to say at `now`, if the tables overflowed since the last look and nothing was said for a while. */
  check(now: number): string | undefined {
    const n = this.read();
    if (n !== undefined && this.last !== undefined && n > this.last) this.pending += n - this.last;
    this.last = n;
    if (this.pending === 0 || now - this.saidAt < this.quietMs) return undefined;
    const minutes = Math.max(1, Math.round((now - this.since) / 60_000));
    const limit = this.limit();
    const line = `netns-router serve: the kernel's neighbour table had no room ${this.pending} time(s) in the last ${minutes} min`
      + `${limit !== undefined ? ` (net.ipv4.neigh.default.gc_thresh3 = ${limit})` : ''}: guests' first packets go unanswered;`
      + ' raise net.ipv4.neigh.default.gc_thresh1/2/3 and the net.ipv6 ones (docs/metadata.md, "Neighbour table")';
    this.pending = 0;
    this.saidAt = now;
    this.since = now;
    return line;
  }
}
