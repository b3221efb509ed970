/**
 * dnsmasq's lease file and the DHCPRELEASE that makes it forget one.
 *
 * dnsmasq keeps leases in memory and rewrites the file itself, so editing the file under a running dnsmasq
 * is undone at its next write; and `dhcp_release` (dnsmasq-utils) is not installed with dnsmasq-base. A
 * lease is therefore released the way that tool does it: a DHCPRELEASE in the client's name (its MAC and
 * client-id from the lease file, ciaddr = the leased address, server-identifier = our address on the
 * interface), sent from inside the router namespace by a UDP socket bound to the guest interface, so that
 * dnsmasq sees it arrive on that interface. This file holds the pure parts (parsing, packet building).
 */
import { ipToBytes } from '../../util/ip.js';

/** One line of dnsmasq's lease file. */
export interface Lease {
  /** Expiry (epoch seconds; 0 = infinite). */
  expires: number;
  mac: string;
  ip: string;
  hostname?: string;
  /** Client identifier as dnsmasq prints it (hex bytes with ':'), when the client sent one. */
  clientId?: string;
}

/** The IPv4 leases of a dnsmasq lease file (DHCPv6 entries, after the `duid` line, are skipped). */
export function parseLeases(text: string): Lease[] {
  const out: Lease[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'duid') break;
    if (f.length < 4 || !/^\d+$/.test(f[0]) || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(f[1]) || !/^\d{1,3}(\.\d{1,3}){3}$/.test(f[2])) continue;
    const l: Lease = { expires: Number(f[0]), mac: f[1], ip: f[2] };
    if (f[3] !== '*') l.hostname = f[3];
    if (f[4] && f[4] !== '*' && /^[0-9a-f]{2}(:[0-9a-f]{2})*$/.test(f[4])) l.clientId = f[4];
    out.push(l);
  }
  return out;
}

/** The lease file without the leases of the given MACs (used only while dnsmasq is stopped). */
export function dropLeases(text: string, macs: Set<string>): string {
  const lines = text.split('\n');
  let v6 = false;
  return lines.filter((line) => {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'duid') v6 = true;
    return v6 || !(f.length >= 3 && macs.has(f[1]));
  }).join('\n');
}

/** A BOOTP/DHCP DHCPRELEASE message for `lease`, addressed to the server `serverId`. */
export function dhcpReleasePacket(lease: Lease, serverId: string, xid: number): Buffer {
  const b = Buffer.alloc(236);
  b[0] = 1; // BOOTREQUEST
  b[1] = 1; // ethernet
  b[2] = 6; // hardware address length
  b.writeUInt32BE(xid >>> 0, 4);
  ipToBytes(lease.ip).copy(b, 12); // ciaddr
  Buffer.from(lease.mac.split(':').map((h) => parseInt(h, 16))).copy(b, 28); // chaddr
  const opts: number[] = [0x63, 0x82, 0x53, 0x63, 53, 1, 7, 54, 4, ...ipToBytes(serverId)];
  if (lease.clientId) {
    const id = lease.clientId.split(':').map((h) => parseInt(h, 16));
    if (id.length <= 255) opts.push(61, id.length, ...id);
  }
  opts.push(255);
  return Buffer.concat([b, Buffer.from(opts)]);
}
