/**
 * Hand-made Ethernet frames for the guest-segment filter tests: forged ARP, IPv4/UDP, IPv6/ICMPv6 (router and
 * neighbour advertisements) sent from a namespace over an AF_PACKET socket (created inside the namespace through
 * lib/sys), and a raw ICMPv6 listener that records which router advertisements arrive. Checksums are computed
 * here; nothing but the kernel's own stack answers.
 */
import { runInNetns } from '../../lib/sys/setns.js';
import { NetnsHandle } from '../../lib/netns/handle.js';
import * as libc from '../../lib/sys/libc.js';
import { ipToBigInt } from '../../lib/util/ip.js';

const AF_PACKET = 17;
const ETH_P_ALL = 0x0003;
const IPPROTO_ICMPV6 = 58;

export const BROADCAST = 'ff:ff:ff:ff:ff:ff';

const macBytes = (mac: string): Buffer => Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));
const ip4Bytes = (ip: string): Buffer => Buffer.from(ip.split('.').map(Number));
function ip6Bytes(ip: string): Buffer {
  const v = ipToBigInt(ip);
  const b = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) b[i] = Number((v >> BigInt((15 - i) * 8)) & 0xffn);
  return b;
}

function csum(...parts: Buffer[]): number {
  const all = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i + 1 < all.length; i += 2) sum += all.readUInt16BE(i);
  if (all.length % 2) sum += all[all.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ether(dst: string, src: string, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  macBytes(dst).copy(h, 0);
  macBytes(src).copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

/** An ARP frame (op 1 request, 2 reply); `sha` defaults to the frame's source. */
export function arpFrame(o: { src: string; dst: string; op: 1 | 2; sha?: string; spa: string; tha?: string; tpa: string }): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0);
  a.writeUInt16BE(0x0800, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(o.op, 6);
  macBytes(o.sha ?? o.src).copy(a, 8);
  ip4Bytes(o.spa).copy(a, 14);
  macBytes(o.tha ?? '00:00:00:00:00:00').copy(a, 18);
  ip4Bytes(o.tpa).copy(a, 24);
  return ether(o.dst, o.src, 0x0806, a);
}

/** An IPv4/UDP frame. */
export function udp4Frame(o: { src: string; dst: string; saddr: string; daddr: string; sport: number; dport: number; payload?: Buffer }): Buffer {
  const data = o.payload ?? Buffer.from('probe');
  const u = Buffer.alloc(8);
  u.writeUInt16BE(o.sport, 0);
  u.writeUInt16BE(o.dport, 2);
  u.writeUInt16BE(8 + data.length, 4);
  const pseudo = Buffer.concat([ip4Bytes(o.saddr), ip4Bytes(o.daddr), Buffer.from([0, 17]), Buffer.from([(8 + data.length) >> 8, (8 + data.length) & 255])]);
  u.writeUInt16BE(csum(pseudo, u, data) || 0xffff, 6);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + data.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  ip4Bytes(o.saddr).copy(ip, 12);
  ip4Bytes(o.daddr).copy(ip, 16);
  ip.writeUInt16BE(csum(ip), 10);
  return ether(o.dst, o.src, 0x0800, Buffer.concat([ip, u, data]));
}

/** An IPv6/UDP frame. */
export function udp6Frame(o: { src: string; dst: string; saddr: string; daddr: string; sport: number; dport: number; payload?: Buffer }): Buffer {
  const data = o.payload ?? Buffer.from('probe');
  const len = 8 + data.length;
  const u = Buffer.alloc(8);
  u.writeUInt16BE(o.sport, 0);
  u.writeUInt16BE(o.dport, 2);
  u.writeUInt16BE(len, 4);
  const pseudo = Buffer.concat([ip6Bytes(o.saddr), ip6Bytes(o.daddr), Buffer.from([0, 0, len >> 8, len & 255, 0, 0, 0, 17])]);
  u.writeUInt16BE(csum(pseudo, u, data) || 0xffff, 6);
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(len, 4);
  ip[6] = 17;
  ip[7] = 64;
  ip6Bytes(o.saddr).copy(ip, 8);
  ip6Bytes(o.daddr).copy(ip, 24);
  return ether(o.dst, o.src, 0x86dd, Buffer.concat([ip, u, data]));
}

/** An IPv6 frame carrying one ICMPv6 message (hop limit 255, as neighbour discovery requires). */
export function icmp6Frame(o: { src: string; dst: string; saddr: string; daddr: string; type: number; code?: number; body: Buffer }): Buffer {
  const msg = Buffer.concat([Buffer.from([o.type, o.code ?? 0, 0, 0]), o.body]);
  const len = msg.length;
  const pseudo = Buffer.concat([ip6Bytes(o.saddr), ip6Bytes(o.daddr), Buffer.from([0, 0, len >> 8, len & 255, 0, 0, 0, 58])]);
  msg.writeUInt16BE(csum(pseudo, msg), 2);
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(len, 4);
  ip[6] = 58;
  ip[7] = 255;
  ip6Bytes(o.saddr).copy(ip, 8);
  ip6Bytes(o.daddr).copy(ip, 24);
  return ether(o.dst, o.src, 0x86dd, Buffer.concat([ip, msg]));
}

/** A router advertisement announcing `prefix`/64 (on-link, autonomous) and a default route, from `src`. */
export function raFrame(o: { src: string; saddr: string; prefix: string }): Buffer {
  const body = Buffer.alloc(12 + 8 + 32);
  body[0] = 64; // cur hop limit
  body.writeUInt16BE(1800, 2); // router lifetime: a default router
  // source link-layer address option
  body[12] = 1; body[13] = 1; macBytes(o.src).copy(body, 14);
  // prefix information option
  const p = 20;
  body[p] = 3; body[p + 1] = 4; body[p + 2] = 64; body[p + 3] = 0xc0;
  body.writeUInt32BE(86400, p + 4);
  body.writeUInt32BE(14400, p + 8);
  ip6Bytes(o.prefix).copy(body, p + 16);
  return icmp6Frame({ src: o.src, dst: '33:33:00:00:00:01', saddr: o.saddr, daddr: 'ff02::1', type: 134, body });
}

/** Neighbour-discovery option types (RFC 4861, RFC 7527). */
export const ND_SLLA = 1;
export const ND_TLLA = 2;
export const ND_NONCE = 14;

/** An 8-byte neighbour-discovery option: `type`, length 1, six bytes (a link-layer address, or a nonce). */
export function ndOption(type: number, six: string): Buffer {
  return Buffer.concat([Buffer.from([type, 1]), macBytes(six)]);
}

/** A neighbour advertisement: `target` is at `src` (override set; `options`: a TLLA option naming `src`), to all nodes. */
export function naFrame(o: { src: string; saddr: string; target: string; dst?: string; daddr?: string; options?: Buffer[] }): Buffer {
  const body = Buffer.alloc(4 + 16);
  body[0] = 0x20; // override
  ip6Bytes(o.target).copy(body, 4);
  const opts = o.options ?? [ndOption(ND_TLLA, o.src)];
  return icmp6Frame({ src: o.src, dst: o.dst ?? '33:33:00:00:00:01', saddr: o.saddr, daddr: o.daddr ?? 'ff02::1', type: 136, body: Buffer.concat([body, ...opts]) });
}

/** A neighbour solicitation for `target` to its solicited-node group (`options`: an SLLA option naming `src`). */
export function nsFrame(o: { src: string; saddr: string; target: string; options?: Buffer[] }): Buffer {
  const body = Buffer.alloc(4 + 16);
  const t = ip6Bytes(o.target);
  t.copy(body, 4);
  const group = Buffer.concat([Buffer.from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff]), t.subarray(13)]);
  const daddr = Array.from({ length: 8 }, (_, i) => group.readUInt16BE(i * 2).toString(16)).join(':');
  const dst = `33:33:${Array.from(group.subarray(12), (b) => b.toString(16).padStart(2, '0')).join(':')}`;
  const opts = o.options ?? [ndOption(ND_SLLA, o.src)];
  return icmp6Frame({ src: o.src, dst, saddr: o.saddr, daddr, type: 135, body: Buffer.concat([body, ...opts]) });
}

/** A router solicitation to all routers (`options`: an SLLA option naming `src`). */
export function rsFrame(o: { src: string; saddr: string; options?: Buffer[] }): Buffer {
  const opts = o.options ?? [ndOption(ND_SLLA, o.src)];
  return icmp6Frame({ src: o.src, dst: '33:33:00:00:00:02', saddr: o.saddr, daddr: 'ff02::2', type: 133, body: Buffer.concat([Buffer.alloc(4), ...opts]) });
}

/**
 * A DHCP client message (BOOTREQUEST) from 0.0.0.0:68 to 255.255.255.255:67, as a client without an address
 * sends it: message type `type` (4 DECLINE, 7 RELEASE, …) for hardware address `chaddr`, with the requested
 * address (option 50) and the server identifier (54).
 */
export function dhcpClientFrame(o: {
  src: string; chaddr: string; type: number; requested: string; server: string; ciaddr?: string;
  /** Unicast instead (a client with an address): source, destination, the MAC it goes to, the source port. */
  saddr?: string; daddr?: string; dst?: string; sport?: number;
}): Buffer {
  const b = Buffer.alloc(240);
  b[0] = 1; b[1] = 1; b[2] = 6;
  b.writeUInt32BE(0x4e520001, 4);
  ip4Bytes(o.ciaddr ?? '0.0.0.0').copy(b, 12);
  macBytes(o.chaddr).copy(b, 28);
  b.writeUInt32BE(0x63825363, 236);
  const opts = Buffer.concat([Buffer.from([53, 1, o.type, 50, 4]), ip4Bytes(o.requested), Buffer.from([54, 4]), ip4Bytes(o.server), Buffer.from([255])]);
  return udp4Frame({ src: o.src, dst: o.dst ?? BROADCAST, saddr: o.saddr ?? '0.0.0.0', daddr: o.daddr ?? '255.255.255.255', sport: o.sport ?? 68, dport: 67, payload: Buffer.concat([b, opts]) });
}

/**
 * The frame with 802.1Q tags inserted after its MAC addresses, outermost first: `[0]` is a priority tag (VID 0,
 * which Linux receives as untagged), `[100, 200]` a double tag (802.1ad outer, 802.1Q inner), `tpid` forces the
 * outer tag's type.
 */
export function vlanTagged(frame: Buffer, vids: number[], tpid?: number): Buffer {
  const tags = vids.map((vid, i) => {
    const t = Buffer.alloc(4);
    t.writeUInt16BE(i === 0 ? (tpid ?? (vids.length > 1 ? 0x88a8 : 0x8100)) : 0x8100, 0);
    t.writeUInt16BE(vid & 0xfff, 2);
    return t;
  });
  return Buffer.concat([frame.subarray(0, 12), ...tags, frame.subarray(12)]);
}

/** Send frames out of `ifname` in namespace `ns` (AF_PACKET), `repeat` times each. */
export function sendFrames(ns: string, ifname: string, frames: Buffer[], repeat = 1): void {
  const h = NetnsHandle.open(ns);
  let ifindex: number;
  try {
    ifindex = h.netlink.indexOf(ifname);
  } finally {
    h.close();
  }
  const proto = ((ETH_P_ALL & 0xff) << 8) | (ETH_P_ALL >> 8);
  const fd = runInNetns(ns, () => libc.socket(AF_PACKET, libc.SOCK_RAW, proto));
  try {
    const sll = Buffer.alloc(20);
    sll.writeUInt16LE(AF_PACKET, 0);
    sll.writeUInt16LE(proto, 2);
    sll.writeInt32LE(ifindex, 4);
    libc.bind(fd, sll);
    for (let i = 0; i < repeat; i++) for (const f of frames) libc.send(fd, f);
  } finally {
    libc.close(fd);
  }
}

/** A raw ICMPv6 listener in `ns`: the source addresses of the router advertisements it has received. */
export class RaListener {
  private readonly fd: number;
  readonly sources = new Set<string>();
  constructor(ns: string) {
    this.fd = runInNetns(ns, () => libc.socket(libc.AF_INET6, libc.SOCK_RAW | libc.SOCK_NONBLOCK, IPPROTO_ICMPV6));
  }

  /** Read what has arrived (recvfrom's source address is not exposed: the RA's source link-layer option is used). */
  poll(): Set<string> {
    const buf = Buffer.alloc(2048);
    for (;;) {
      const n = libc.recvRaw(this.fd, buf);
      if (n < 0) break;
      if (buf[0] !== 134) continue;
      for (let i = 16; i + 8 <= n && buf[i + 1] > 0; i += buf[i + 1] * 8) {
        if (buf[i] === 1) this.sources.add(Array.from(buf.subarray(i + 2, i + 8), (b) => b.toString(16).padStart(2, '0')).join(':'));
      }
    }
    return this.sources;
  }

  close(): void {
    libc.close(this.fd);
  }
}
