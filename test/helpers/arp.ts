/**
 * ARP on the wire, for tests: a raw AF_PACKET socket (ETH_P_ARP) bound to one interface of a namespace sends
 * ARP requests as a peer would and records every ARP frame the interface sees (replies, gratuitous ARPs).
 * Built on lib/sys (no arping/tcpdump needed).
 */
import { libc } from '../../lib/sys/index.js';
import { runInNetns } from '../../lib/sys/setns.js';
import { NetnsHandle } from '../../lib/netns/handle.js';
import { macToBytes } from '../../lib/netlink/ip.js';
import { ipToBytes } from '../../lib/util/ip.js';

const AF_PACKET = 17;
const ETH_P_ARP = 0x0806;
const EAGAIN = 11;
const EINTR = 4;

export interface ArpFrame {
  /** Ethernet source and destination. */
  src: string;
  dst: string;
  op: 'request' | 'reply' | number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

const macText = (b: Buffer, at: number): string => Array.from(b.subarray(at, at + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
const ipText = (b: Buffer, at: number): string => Array.from(b.subarray(at, at + 4)).join('.');
const nap = new Int32Array(new SharedArrayBuffer(4));

export class ArpTap {
  private constructor(private readonly fd: number, readonly dev: string, readonly mac: string, private readonly ifindex: number) {}

  /** A tap on `dev` of namespace `ns`. Close it (in finally). */
  static open(ns: string, dev: string): ArpTap {
    const h = NetnsHandle.open(ns);
    let link;
    try {
      link = h.netlink.linkGet(dev);
    } finally {
      h.close();
    }
    const proto = ((ETH_P_ARP & 0xff) << 8) | (ETH_P_ARP >> 8); // htons
    const fd = runInNetns(ns, () => libc.socket(AF_PACKET, libc.SOCK_RAW | libc.SOCK_CLOEXEC, proto));
    const sll = Buffer.alloc(20);
    sll.writeUInt16LE(AF_PACKET, 0);
    sll.writeUInt16BE(ETH_P_ARP, 2);
    sll.writeInt32LE(link.index, 4);
    libc.bind(fd, sll);
    return new ArpTap(fd, dev, link.mac!, link.index);
  }

  /** Broadcast "who has `targetIp`? tell `senderIp`" from this interface's MAC. */
  request(targetIp: string, senderIp: string): void {
    const f = Buffer.alloc(42);
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).copy(f, 0);
    macToBytes(this.mac).copy(f, 6);
    f.writeUInt16BE(ETH_P_ARP, 12);
    f.writeUInt16BE(1, 14); // Ethernet
    f.writeUInt16BE(0x0800, 16); // IPv4
    f.writeUInt8(6, 18);
    f.writeUInt8(4, 19);
    f.writeUInt16BE(1, 20); // request
    macToBytes(this.mac).copy(f, 22);
    ipToBytes(senderIp).copy(f, 28);
    ipToBytes(targetIp).copy(f, 38);
    const sll = Buffer.alloc(20);
    sll.writeUInt16LE(AF_PACKET, 0);
    sll.writeUInt16BE(ETH_P_ARP, 2);
    sll.writeInt32LE(this.ifindex, 4);
    sll.writeUInt8(6, 11);
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).copy(sll, 12);
    libc.sendto(this.fd, f, sll);
  }

  /** ARP frames arriving within `ms` (or until `until` holds for one of them). */
  read(ms: number, until?: (f: ArpFrame) => boolean): ArpFrame[] {
    const out: ArpFrame[] = [];
    const buf = Buffer.alloc(2048);
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const n = libc.recvRaw(this.fd, buf, libc.MSG_DONTWAIT);
      if (n < 0) {
        if (-n !== EAGAIN && -n !== EINTR) throw new Error(`recv: errno ${-n}`);
        Atomics.wait(nap, 0, 0, 5);
        continue;
      }
      if (n < 42 || buf.readUInt16BE(12) !== ETH_P_ARP) continue;
      const op = buf.readUInt16BE(20);
      const f: ArpFrame = {
        dst: macText(buf, 0), src: macText(buf, 6), op: op === 1 ? 'request' : op === 2 ? 'reply' : op,
        senderMac: macText(buf, 22), senderIp: ipText(buf, 28), targetMac: macText(buf, 32), targetIp: ipText(buf, 38),
      };
      out.push(f);
      if (until?.(f)) break;
    }
    return out;
  }

  /**
   * Ask for `ip` as a peer does, repeating the request every 300 ms, and return the first reply (undefined when
   * none came within `ms`). One request is not always enough: a namespace's kernel leaves some requests for its
   * own addresses unanswered here (measured before the ARP responder existed too: about 1 in 20, mostly right
   * after the topology is made; the responder answered every one).
   */
  ask(ip: string, senderIp: string, ms = 3000): ArpFrame | undefined {
    const isReply = (f: ArpFrame): boolean => f.op === 'reply' && f.senderIp === ip;
    this.drain();
    const end = Date.now() + ms;
    while (Date.now() < end) {
      this.request(ip, senderIp);
      const r = this.read(Math.min(300, end - Date.now()), isReply).find(isReply);
      if (r) return r;
    }
    return undefined;
  }

  /** Forget the frames that arrived so far (late replies to earlier requests). */
  drain(): void {
    const buf = Buffer.alloc(2048);
    while (libc.recvRaw(this.fd, buf, libc.MSG_DONTWAIT) >= 0) { /* dropped */ }
  }

  close(): void {
    libc.close(this.fd);
  }
}
