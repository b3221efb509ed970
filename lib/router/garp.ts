/**
 * Gratuitous ARP (an ARP request for our own address, broadcast) so upstream switches and gateways learn a
 * public IP's new location at once — the same packet `arping -U` sends, without spawning it. Sent from an
 * AF_PACKET socket created inside the router namespace.
 */
import { libc } from '../sys/index.js';
import { macToBytes } from '../netlink/ip.js';
import { ipToBytes } from '../util/ip.js';
import type { NetnsHandle } from '../netns/handle.js';
import { NamespaceCache } from '../netns/namespace-cache.js';

// Closing an AF_PACKET socket waits for an RCU grace period (packet_release → synchronize_net, 8-15 ms), so
// one socket per namespace is kept open and reused (NamespaceCache: closed just before its namespace is
// deleted, checked against the namespace's identity, bounded like the nft contexts: hundreds of routers in one
// process must not exhaust descriptors) — and closed on a worker thread, so that no command waits for that
// grace period (the socket only keeps its namespace alive a few ms longer).
const sockets = new NamespaceCache<number>(32, (fd) => { libc.closeAsync(fd).catch(() => { /* EBADF cannot happen: ours alone */ }); });

/**
 * Close every kept socket now (on the worker pool): for a process about to exit after its one command (the cold
 * CLI), whose exit would otherwise wait for each socket's grace period in the kernel — started now, it runs while
 * the process saves its state.
 */
export function closeGratuitousArpSockets(): void {
  sockets.clear();
}

function packetSocket(ns: NetnsHandle): number {
  // protocol 0: a send-only socket, never hooked into the receive path
  return sockets.get(ns.name ?? undefined, () => ns.run(() => libc.socket(AF_PACKET, libc.SOCK_DGRAM, 0)));
}

const AF_PACKET = 17;
const ETH_P_ARP = 0x0806;
const ARPHRD_ETHER = 1;

/** Send `count` gratuitous ARP requests for `ip` out of `dev` (in the namespace of `ns`). */
export function sendGratuitousArp(ns: NetnsHandle, dev: string, ip: string, count = 1): void {
  sendGratuitousArps(ns, dev, Array.from({ length: count }, () => ip));
}

/**
 * One gratuitous ARP request for each of `ips` out of `dev`: one link lookup and one socket for them all (10,000
 * addresses: one send each, no per-address lookup). Returns the number sent.
 */
export function sendGratuitousArps(ns: NetnsHandle, dev: string, ips: readonly string[]): number {
  if (!ips.length) return 0;
  const link = ns.netlink.linkGet(dev);
  if (!link.mac) return 0;
  const fd = packetSocket(ns);
  const arp = Buffer.alloc(28);
  arp.writeUInt16BE(ARPHRD_ETHER, 0); // hardware type
  arp.writeUInt16BE(0x0800, 2); // protocol type IPv4
  arp.writeUInt8(6, 4);
  arp.writeUInt8(4, 5);
  arp.writeUInt16BE(1, 6); // request
  macToBytes(link.mac).copy(arp, 8);
  // target MAC zero; sender IP = target IP = the address (gratuitous), filled per address below
  // struct sockaddr_ll: family u16, protocol be16, ifindex i32, hatype u16, pkttype u8, halen u8, addr[8]
  const sll = Buffer.alloc(20);
  sll.writeUInt16LE(AF_PACKET, 0);
  sll.writeUInt16BE(ETH_P_ARP, 2);
  sll.writeInt32LE(link.index, 4);
  sll.writeUInt16LE(ARPHRD_ETHER, 8);
  sll.writeUInt8(0, 10);
  sll.writeUInt8(6, 11);
  Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).copy(sll, 12);
  for (const ip of ips) {
    const addr = ipToBytes(ip);
    addr.copy(arp, 14);
    addr.copy(arp, 24);
    libc.sendto(fd, arp, sll);
  }
  return ips.length;
}
