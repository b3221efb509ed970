/**
 * Sockets whose release waits in the kernel, and how netns-router keeps that wait off the path a caller waits on:
 * - AF_PACKET (the gratuitous-ARP sockets): packet_release → synchronize_net, an RCU grace period (8-15 ms);
 * - NETLINK_NETFILTER (libnftables contexts, nftables generation readers): when the last reference goes, nf_tables'
 *   NETLINK_URELEASE notifier flushes the clean-up work of its last transactions if one deleted anything — every
 *   commit of ours deletes the table's stamp element — and that work waits for a grace period (5-20 ms; longer on
 *   an idle machine, where grace periods end later).
 * A long-lived process (the resident engine) closes its own descriptors on a worker thread (libc.closeAsync) and,
 * before a C library closes one of its own, takes a duplicate to close there (`releaseLater`). (A cold CLI process
 * pays the wait in its exit, ~7 ms: handing its sockets to a short-lived holder process saved that much of the exit
 * but not of the command as a whole, measured — docs/benchmarks.md.)
 */
import { readdirSync, readlinkSync } from 'node:fs';
import * as libc from './libc.js';

/** Whether `fd` is a NETLINK_NETFILTER socket. */
export function isNetfilterNetlink(fd: number): boolean {
  try {
    return libc.getsockopt(fd, libc.SOL_SOCKET, libc.SO_DOMAIN).readInt32LE(0) === libc.AF_NETLINK
      && libc.getsockopt(fd, libc.SOL_SOCKET, libc.SO_PROTOCOL).readInt32LE(0) === libc.NETLINK_NETFILTER;
  } catch {
    return false; // closed meanwhile
  }
}

/** This process's NETLINK_NETFILTER sockets (descriptor numbers). */
export function netfilterSockets(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc/self/fd')) {
    const fd = Number(name);
    if (fd <= 2) continue;
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue; // the listing's own descriptor, closed since
    }
    if (target.startsWith('socket:') && isNetfilterNetlink(fd)) out.push(fd);
  }
  return out;
}

/**
 * Before a library closes these descriptors itself (nft_ctx_free): a duplicate of each, closed on a worker thread,
 * so that the last reference — and the kernel's wait — goes there.
 */
export function releaseLater(fds: readonly number[]): void {
  for (const fd of fds) {
    let dup: number;
    try {
      dup = libc.dupCloexec(fd);
    } catch {
      continue;
    }
    void libc.closeAsync(dup).catch(() => { /* ours alone */ });
  }
}
