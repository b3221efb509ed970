/** IP address and prefix codecs shared by the rtnetlink families. */
import { isIPv4, isIPv6 } from 'node:net';
import { AF_INET, AF_INET6 } from '../sys/libc.js';

export class AddressError extends Error {
  readonly input: string;
  constructor(input: string, message: string) {
    super(message);
    this.name = 'AddressError';
    this.input = input;
  }
}

export type Family = 4 | 6;

export function familyOf(ip: string): Family {
  if (isIPv4(ip)) return 4;
  if (isIPv6(ip)) return 6;
  throw new AddressError(ip, `not an IP address: ${JSON.stringify(ip)}`);
}

export const afOf = (f: Family): number => (f === 4 ? AF_INET : AF_INET6);
export const familyOfAf = (af: number): Family => (af === AF_INET ? 4 : 6);

/** Address → network-order bytes (4 or 16). */
export function ipToBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) throw new AddressError(ip, `not an IP address: ${JSON.stringify(ip)}`);
  let s = ip;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  // embedded IPv4 tail (::ffff:1.2.3.4)
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  let tailWords: number[] = [];
  if (tail.includes('.')) {
    const b = tail.split('.').map(Number);
    tailWords = [(b[0] << 8) | b[1], (b[2] << 8) | b[3]];
    s = s.slice(0, lastColon + 1) + '0'; // placeholder, removed below
  }
  const [head, rest] = s.includes('::') ? s.split('::') : [s, undefined];
  const parse = (part: string): number[] => (part ? part.split(':').map((h) => parseInt(h, 16)) : []);
  let hw = parse(head);
  let tw = rest !== undefined ? parse(rest) : [];
  if (tailWords.length) {
    if (rest !== undefined) tw = tw.slice(0, -1).concat(tailWords);
    else hw = hw.slice(0, -1).concat(tailWords);
  }
  const words = rest !== undefined ? [...hw, ...new Array(8 - hw.length - tw.length).fill(0), ...tw] : hw;
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

/** Network-order bytes → canonical text (RFC 5952 for IPv6). */
export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new AddressError('', `address of ${b.length} bytes`);
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push((b[i] << 8) | b[i + 1]);
  // longest run of ≥ 2 zero words becomes "::"
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

export interface Prefix {
  address: string;
  prefixLen: number;
  family: Family;
}

/** "10.0.0.1/24" (or a bare address = host prefix) → parts; validates the length. */
export function parsePrefix(s: string, what = 'address'): Prefix {
  if (typeof s !== 'string') throw new AddressError(String(s), `${what}: expected a string`);
  const slash = s.indexOf('/');
  const addr = slash >= 0 ? s.slice(0, slash) : s;
  const family = isIPv4(addr) ? 4 : isIPv6(addr) ? 6 : 0;
  if (!family) throw new AddressError(s, `${what}: not an IP address or CIDR: ${JSON.stringify(s)}`);
  const max = family === 4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    const t = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(t) || Number(t) > max) throw new AddressError(s, `${what}: bad prefix length in ${JSON.stringify(s)}`);
    len = Number(t);
  }
  return { address: family === 6 ? bytesToIp(ipToBytes(addr)) : addr, prefixLen: len, family: family as Family };
}

/** Network address of a prefix (host bits cleared), as text. */
export function networkOf(p: Prefix): string {
  const b = ipToBytes(p.address);
  for (let i = 0; i < b.length; i++) {
    const bitsLeft = p.prefixLen - i * 8;
    if (bitsLeft >= 8) continue;
    b[i] &= bitsLeft <= 0 ? 0 : (0xff << (8 - bitsLeft)) & 0xff;
  }
  return bytesToIp(b);
}

/** True when `ip` lies inside `cidr`. */
export function prefixContains(cidr: Prefix, ip: string): boolean {
  if (familyOf(ip) !== cidr.family) return false;
  return networkOf(cidr) === networkOf({ address: ip, prefixLen: cidr.prefixLen, family: cidr.family });
}

/** MAC text "aa:bb:…" ↔ bytes. */
export function macToBytes(mac: string): Buffer {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) throw new AddressError(mac, `not a MAC address: ${JSON.stringify(mac)}`);
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

export function bytesToMac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}
