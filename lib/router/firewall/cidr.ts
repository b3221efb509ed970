/**
 * CIDRs of firewall/ACL rules: parsed once, kept as canonical text plus the [lo, hi] address range, so rules
 * can be grouped, packed into sets and evaluated against conntrack entries without re-parsing.
 */
import { addressToBigInt, bigIntToAddress, canonicalAddress, type IpVersion } from '../../nft/validate.js';

export interface Cidr {
  family: IpVersion;
  /** Network address (host bits cleared), canonical text. */
  addr: string;
  len: number;
  /** Canonical "addr/len". */
  text: string;
  lo: bigint;
  hi: bigint;
}

const bitsOf = (f: IpVersion): number => (f === 4 ? 32 : 128);

/** Why a CIDR text is malformed (undefined when it is fine). */
export type CidrProblem = string;

/**
 * Parse "10.0.0.0/8", "10.1.2.3" (a host), "2001:db8::/32". Host bits are cleared ("10.1.1.5/24" is the
 * network 10.1.1.0/24, as iptables reads it). Returns a problem text instead of throwing.
 */
export function parseCidr(input: unknown): Cidr | CidrProblem {
  if (typeof input !== 'string') return `expected a CIDR string, got ${JSON.stringify(input)}`;
  const hit = cache.get(input);
  if (hit !== undefined) return hit;
  const c = parseCidrText(input);
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(input, c);
  return c;
}

// Rule sets repeat the same CIDRs (and every apply re-reads the stored ones): parse each text once.
const CACHE_MAX = 200_000;
const cache = new Map<string, Cidr | CidrProblem>();

function parseCidrText(input: string): Cidr | CidrProblem {
  const text = input.trim();
  const slash = text.indexOf('/');
  const addrText = slash >= 0 ? text.slice(0, slash) : text;
  let a: { addr: string; version: IpVersion };
  try {
    a = canonicalAddress('cidr', addrText);
  } catch {
    return `${JSON.stringify(input)} is not an IPv4/IPv6 CIDR`;
  }
  const bits = bitsOf(a.version);
  let len = bits;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > bits) return `${JSON.stringify(input)}: prefix length must be 0–${bits}`;
    len = Number(lenText);
  }
  const all = (1n << BigInt(bits)) - 1n;
  const host = (1n << BigInt(bits - len)) - 1n;
  const lo = addressToBigInt(a.addr) & (all ^ host);
  const addr = bigIntToAddress(lo, a.version);
  return { family: a.version, addr, len, text: `${addr}/${len}`, lo, hi: lo | host };
}

export function isCidr(c: Cidr | CidrProblem): c is Cidr {
  return typeof c !== 'string';
}

/** The whole address space of the family (0.0.0.0/0, ::/0). */
export const isAny = (c: Cidr): boolean => c.len === 0;
/** A single host (/32, /128): usable in a hash set. */
export const isHost = (c: Cidr): boolean => c.len === bitsOf(c.family);

export function contains(c: Cidr, addr: bigint): boolean {
  return addr >= c.lo && addr <= c.hi;
}

/** Address text → family and value, or undefined when it is not an address literal. */
export function addressValue(addr: string): { family: IpVersion; value: bigint } | undefined {
  if (addr.includes('/')) return undefined;
  const c = parseCidr(addr);
  return isCidr(c) ? { family: c.family, value: c.lo } : undefined;
}
