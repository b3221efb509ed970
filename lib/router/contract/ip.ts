/**
 * Strict IP address / CIDR parsing for command arguments (pure, no FFI).
 * IPv4 must be dotted decimal without leading zeros (inet_aton would read "010" as octal);
 * IPv6 is returned in RFC 5952 canonical form.
 */
import { isIPv6 } from 'node:net';

export type IpFamily = 4 | 6;

/** A prefix as given on the command line: address (canonical text, host bits kept) + length. */
export interface Cidr {
  family: IpFamily;
  address: string;
  prefix: number;
}

const V4_OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** Canonical IPv4 text, or undefined when not a strict dotted quad. */
export function canonicalIpv4(text: string): string | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  for (const p of parts) {
    if (!V4_OCTET.test(p) || Number(p) > 255) return undefined;
  }
  return parts.join('.');
}

/** Canonical IPv6 text (lower case, longest zero run compressed), or undefined. Zone ids are refused. */
export function canonicalIpv6(text: string): string | undefined {
  if (text.includes('%') || !isIPv6(text)) return undefined;
  return bigintToIpv6(ipv6ToBigint(text));
}

export function ipv4ToNumber(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

export function ipv6ToBigint(ip: string): bigint {
  let s = ip.toLowerCase();
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    // embedded IPv4 (::ffff:1.2.3.4): rewrite the dotted tail as two hex words
    const o = tail.split('.').map(Number);
    s = `${s.slice(0, lastColon + 1)}${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
  }
  const words = (part: string): number[] => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  let all: number[];
  if (s.includes('::')) {
    const [a, b] = s.split('::');
    const head = words(a);
    const rest = words(b);
    all = [...head, ...new Array(8 - head.length - rest.length).fill(0), ...rest];
  } else {
    all = words(s);
  }
  return all.reduce((acc, w) => (acc << 16n) | BigInt(w), 0n);
}

export function bigintToIpv6(v: bigint): string {
  const w: number[] = [];
  for (let i = 7; i >= 0; i--) w.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i >= 2 && j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(w) : `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

/** Family and canonical text of an address of either family. */
export function canonicalIp(text: string): { family: IpFamily; address: string } | undefined {
  const v4 = canonicalIpv4(text);
  if (v4) return { family: 4, address: v4 };
  const v6 = canonicalIpv6(text);
  if (v6) return { family: 6, address: v6 };
  return undefined;
}

/** Parses "addr/len"; undefined when malformed. */
export function parseCidrText(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = canonicalIp(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (!ip || !/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return undefined;
  const prefix = Number(lenText);
  if (prefix > (ip.family === 4 ? 32 : 128)) return undefined;
  return { family: ip.family, address: ip.address, prefix };
}

export function cidrToString(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}

/** True when `ip` (canonical, same family) lies inside `cidr`. */
export function cidrContains(cidr: Cidr, ip: string): boolean {
  if (cidr.family === 4) {
    if (!canonicalIpv4(ip)) return false;
    if (cidr.prefix === 0) return true;
    const shift = 32 - cidr.prefix;
    return Math.floor(ipv4ToNumber(cidr.address) / 2 ** shift) === Math.floor(ipv4ToNumber(ip) / 2 ** shift);
  }
  if (!canonicalIpv6(ip)) return false;
  const shift = BigInt(128 - cidr.prefix);
  return ipv6ToBigint(cidr.address) >> shift === ipv6ToBigint(ip) >> shift;
}

/** The network address of a prefix ("10.1.1.7/24" → "10.1.1.0"). */
export function cidrNetwork(cidr: Cidr): string {
  if (cidr.family === 4) {
    const n = ipv4ToNumber(cidr.address);
    const size = 2 ** (32 - cidr.prefix);
    const net = Math.floor(n / size) * size;
    return [24, 16, 8, 0].map((s) => Math.floor(net / 2 ** s) % 256).join('.');
  }
  const shift = BigInt(128 - cidr.prefix);
  return bigintToIpv6((ipv6ToBigint(cidr.address) >> shift) << shift);
}
