/**
 * CIDRs of firewall/ACL rules: parsed once, kept as canonical text plus the [lo, hi] address range, so rules
 * can be grouped, packed into sets and evaluated against conntrack entries without re-parsing.
 */
import { bigIntToIp, bitsOf, canonicalIp, cidrBounds, type Cidr, type IpFamily } from '../../util/ip.js';

/** A rule's prefix: `address` is the network address (host bits cleared), with its text and bounds. */
export interface RuleCidr extends Cidr {
  /** Canonical "address/prefix". */
  text: string;
  lo: bigint;
  hi: bigint;
}

/** Why a CIDR text is malformed (undefined when it is fine). */
export type CidrProblem = string;

/**
 * Parse "10.0.0.0/8", "10.1.2.3" (a host), "2001:db8::/32". Host bits are cleared ("10.1.1.5/24" is the
 * network 10.1.1.0/24, as iptables reads it). Returns a problem text instead of throwing.
 */
export function parseRuleCidr(input: unknown): RuleCidr | CidrProblem {
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
const cache = new Map<string, RuleCidr | CidrProblem>();

function parseCidrText(input: string): RuleCidr | CidrProblem {
  const text = input.trim();
  const slash = text.indexOf('/');
  const addrText = slash >= 0 ? text.slice(0, slash) : text;
  const a = canonicalIp(addrText);
  if (!a) return `${JSON.stringify(input)} is not an IPv4/IPv6 CIDR`;
  const bits = bitsOf(a.family);
  let len = bits;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > bits) return `${JSON.stringify(input)}: prefix length must be 0–${bits}`;
    len = Number(lenText);
  }
  const { lo, hi } = cidrBounds({ family: a.family, address: a.address, prefix: len });
  const address = bigIntToIp(lo, a.family);
  return { family: a.family, address, prefix: len, text: `${address}/${len}`, lo, hi };
}

export function isCidr(c: RuleCidr | CidrProblem): c is RuleCidr {
  return typeof c !== 'string';
}

/** The whole address space of the family (0.0.0.0/0, ::/0). */
export const isAny = (c: RuleCidr): boolean => c.prefix === 0;
/** A single host (/32, /128): usable in a hash set. */
export const isHost = (c: RuleCidr): boolean => c.prefix === bitsOf(c.family);

export function contains(c: RuleCidr, addr: bigint): boolean {
  return addr >= c.lo && addr <= c.hi;
}

/** Address text → family and value, or undefined when it is not an address literal. */
export function addressValue(addr: string): { family: IpFamily; value: bigint } | undefined {
  if (addr.includes('/')) return undefined;
  const c = parseRuleCidr(addr);
  return isCidr(c) ? { family: c.family, value: c.lo } : undefined;
}
