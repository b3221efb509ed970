/**
 * The one IP address and prefix module (pure, no FFI): strict literals (IPv4 dotted decimal without leading
 * zeros, IPv6 in RFC 5952 canonical form, no zone ids), their numeric and byte forms, and prefixes (`Cidr`).
 * Every layer parses and formats addresses through here.
 */
import { ValidationError } from './errors.js';

/** The address family: 4 or 6. */
export type IpFamily = 4 | 6;

/** An address (or prefix) refused before any I/O. */
export class AddressError extends ValidationError {
  constructor(input: string, message: string, field = 'address') {
    super('E_INVALID_ADDRESS', field, input, message);
    this.name = 'AddressError';
  }
}

/** Address width of a family in bits (32 or 128). */
export const bitsOf = (f: IpFamily): number => (f === 4 ? 32 : 128);

// ── literals ────────────────────────────────────────────────────────────────────────────────────────────

const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const V4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);
const HEX_WORD = /^[0-9a-fA-F]{1,4}$/;

/** Canonical IPv4 text (a strict dotted quad is its own canonical form), or undefined. */
export function canonicalIpv4(text: string): string | undefined {
  return V4.test(text) ? text : undefined;
}

/** The eight 16-bit words of an IPv6 literal (embedded IPv4 tail allowed), or undefined. Zone ids are refused. */
function ipv6Words(text: string): number[] | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  let s = text;
  const tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (lastColon < 0) return undefined;
  if (s.slice(lastColon + 1).includes('.')) {
    const v4 = canonicalIpv4(s.slice(lastColon + 1));
    if (!v4) return undefined;
    const o = v4.split('.').map(Number);
    tail.push((o[0] << 8) | o[1], (o[2] << 8) | o[3]);
    s = s.slice(0, lastColon + 1);
    if (!s.endsWith('::')) s = s.slice(0, -1); // "a:b::1.2.3.4" keeps its "::", "a:…:f:1.2.3.4" drops the ':'
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const words = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    for (const w of part.split(':')) {
      if (!HEX_WORD.test(w)) return undefined;
      out.push(parseInt(w, 16));
    }
    return out;
  };
  const head = words(halves[0]);
  if (!head) return undefined;
  if (halves.length === 1) {
    const all = [...head, ...tail];
    return all.length === 8 ? all : undefined;
  }
  const rest = words(halves[1]);
  if (!rest) return undefined;
  const fill = 8 - head.length - rest.length - tail.length;
  if (fill < 1) return undefined;
  return [...head, ...new Array<number>(fill).fill(0), ...rest, ...tail];
}

/** RFC 5952 text of eight words: lower case, the longest run of ≥ 2 zero words (the first on ties) as "::". */
function formatIpv6(w: readonly number[]): string {
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i >= 2 && j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (a: readonly number[]) => a.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(w) : `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

/** Canonical IPv6 text (RFC 5952), or undefined. Zone ids are refused. */
export function canonicalIpv6(text: string): string | undefined {
  const w = ipv6Words(text);
  return w && formatIpv6(w);
}

/** A strict, canonical dotted quad (what may become a directory name). */
export const isIpv4 = (text: unknown): text is string => typeof text === 'string' && canonicalIpv4(text) === text;

/** Family and canonical text of an address of either family, or undefined. */
export function canonicalIp(text: string): { family: IpFamily; address: string } | undefined {
  if (typeof text !== 'string') return undefined;
  const v4 = canonicalIpv4(text);
  if (v4) return { family: 4, address: v4 };
  const v6 = canonicalIpv6(text);
  if (v6) return { family: 6, address: v6 };
  return undefined;
}

/** Family of an address literal; AddressError when it is none. */
export function familyOf(ip: string): IpFamily {
  const c = canonicalIp(ip);
  if (!c) throw new AddressError(ip, `not an IP address: ${JSON.stringify(ip)}`);
  return c.family;
}

// ── numeric and byte forms ──────────────────────────────────────────────────────────────────────────────

/** IPv4 text (valid) → 32-bit number. */
export function ipv4ToNumber(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

/** 32-bit number → IPv4 text. */
export function numberToIpv4(v: number): string {
  return [24, 16, 8, 0].map((s) => (v >>> s) & 255).join('.');
}

/** The dotted netmask of an IPv4 prefix length ("255.255.255.0" for 24). */
export function netmask(prefix: number): string {
  return numberToIpv4(prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
}

/** Address literal → its value (32 or 128 bits); AddressError when it is not a literal. */
export function ipToBigInt(ip: string): bigint {
  const v4 = canonicalIpv4(ip);
  if (v4) return BigInt(ipv4ToNumber(v4));
  const w = ipv6Words(ip);
  if (!w) throw new AddressError(ip, `not an IP address: ${JSON.stringify(ip)}`);
  return w.reduce((acc, x) => (acc << 16n) | BigInt(x), 0n);
}

/** Value → canonical text of the family (IPv6 in RFC 5952 form, as nft and iproute2 print it). */
export function bigIntToIp(v: bigint, family: IpFamily): string {
  if (family === 4) return numberToIpv4(Number(v & 0xffffffffn));
  const w: number[] = [];
  for (let i = 7; i >= 0; i--) w.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  return formatIpv6(w);
}

/** Address literal → network-order bytes (4 or 16); AddressError when it is not a literal. */
export function ipToBytes(ip: string): Buffer {
  const v4 = canonicalIpv4(ip);
  if (v4) return Buffer.from(v4.split('.').map(Number));
  const w = ipv6Words(ip);
  if (!w) throw new AddressError(ip, `not an IP address: ${JSON.stringify(ip)}`);
  const out = Buffer.alloc(16);
  w.forEach((x, i) => out.writeUInt16BE(x, i * 2));
  return out;
}

/** Network-order bytes (4 or 16) → canonical text. */
export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new AddressError('', `address of ${b.length} bytes`);
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push((b[i] << 8) | b[i + 1]);
  return formatIpv6(w);
}

// ── prefixes ────────────────────────────────────────────────────────────────────────────────────────────

/**
 * A prefix: canonical address text and length. The address may carry host bits ("10.1.1.7/24": CloudStack
 * names a NIC's subnet so); `networkAddress` clears them.
 */
export interface Cidr {
  family: IpFamily;
  address: string;
  prefix: number;
}

const PREFIX_LEN = /^(0|[1-9][0-9]{0,2})$/;

/** "addr/len" (strict literal, length without leading zeros) → Cidr; undefined when malformed. */
export function parseCidr(text: string): Cidr | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = canonicalIp(text.slice(0, slash));
  const len = text.slice(slash + 1);
  if (!ip || !PREFIX_LEN.test(len) || Number(len) > bitsOf(ip.family)) return undefined;
  return { family: ip.family, address: ip.address, prefix: Number(len) };
}

/**
 * "addr/len", or a bare address (a host prefix) → Cidr; AddressError naming `what` when malformed (the
 * form the netlink verbs take: addresses, routes, rules).
 */
export function toCidr(text: string, what = 'address'): Cidr {
  if (typeof text !== 'string') throw new AddressError(String(text), `${what}: expected a string`, what);
  const slash = text.indexOf('/');
  const ip = canonicalIp(slash >= 0 ? text.slice(0, slash) : text);
  if (!ip) throw new AddressError(text, `${what}: not an IP address or CIDR: ${JSON.stringify(text)}`, what);
  if (slash < 0) return { family: ip.family, address: ip.address, prefix: bitsOf(ip.family) };
  const len = text.slice(slash + 1);
  if (!PREFIX_LEN.test(len) || Number(len) > bitsOf(ip.family)) {
    throw new AddressError(text, `${what}: bad prefix length in ${JSON.stringify(text)}`, what);
  }
  return { family: ip.family, address: ip.address, prefix: Number(len) };
}

/** "address/prefix". */
export const cidrText = (c: Cidr): string => `${c.address}/${c.prefix}`;

/** The lowest and highest address of a prefix. */
export function cidrBounds(c: Cidr): { lo: bigint; hi: bigint } {
  const bits = bitsOf(c.family);
  const host = (1n << BigInt(bits - c.prefix)) - 1n;
  const lo = ipToBigInt(c.address) & (((1n << BigInt(bits)) - 1n) ^ host);
  return { lo, hi: lo | host };
}

/** The network address of a prefix ("10.1.1.7/24" → "10.1.1.0"). */
export function networkAddress(c: Cidr): string {
  return bigIntToIp(cidrBounds(c).lo, c.family);
}

/** "network/prefix" with host bits cleared ("10.1.1.7/24" → "10.1.1.0/24"). */
export const networkText = (c: Cidr): string => `${networkAddress(c)}/${c.prefix}`;

/** True when `ip` (an address literal of the same family) lies inside `c`. */
export function cidrContains(c: Cidr, ip: string): boolean {
  const a = canonicalIp(ip);
  if (!a || a.family !== c.family) return false;
  const v = ipToBigInt(a.address);
  const { lo, hi } = cidrBounds(c);
  return v >= lo && v <= hi;
}
