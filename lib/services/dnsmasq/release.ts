/** Sending a DHCPRELEASE to our dnsmasq from inside its namespace (see leases.ts for why). */
import { randomInt } from 'node:crypto';
import { runInNetns } from '../../sys/setns.js';
import * as libc from '../../sys/libc.js';
import { ipToBytes } from '../../util/ip.js';
import { dhcpReleasePacket, type Lease } from './leases.js';

const SO_BINDTODEVICE = 25;

function sockaddrIn(ip: string, port: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(libc.AF_INET, 0);
  b.writeUInt16BE(port, 2);
  ipToBytes(ip).copy(b, 4);
  return b;
}

/**
 * Send one DHCPRELEASE per lease to `serverIp`:67 through `ifname` in namespace `netns`. The socket is bound to
 * the interface, so the kernel delivers the datagram locally as if it had come in on that interface.
 */
export function sendDhcpReleases(netns: string, ifname: string, serverIp: string, leases: Lease[]): void {
  if (!leases.length) return;
  const fd = runInNetns(netns, () => {
    const s = libc.socket(libc.AF_INET, libc.SOCK_DGRAM, 0);
    try {
      libc.setsockopt(s, libc.SOL_SOCKET, SO_BINDTODEVICE, Buffer.from(`${ifname}\0`));
    } catch (e) {
      libc.close(s);
      throw e;
    }
    return s;
  });
  try {
    const to = sockaddrIn(serverIp, 67);
    for (const l of leases) libc.sendto(fd, dhcpReleasePacket(l, serverIp, randomInt(0, 0x7fffffff)), to);
  } finally {
    libc.close(fd);
  }
}
