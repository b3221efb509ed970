/**
 * Input validation shared by the DSL and objects: names, comments, ports, interface names, addresses.
 * Everything throws NftValidationError with a code; nothing is silently fixed up.
 */
import { NftValidationError } from './errors.js';
import type { Family } from './json.js';
import { bigIntToIp, canonicalIp, ipToBigInt, type IpFamily } from '../util/ip.js';

/** Kernel limit NFT_NAME_MAXLEN is 256 bytes including the NUL. */
export const MAX_NAME_LENGTH = 255;
/** nft refuses comments longer than 128 bytes (NFT_USERDATA_MAXLEN leaves room for the TLV). */
export const MAX_COMMENT_LENGTH = 128;
const NAME_RE = /^[A-Za-z0-9_.-]+$/;

/** Table/chain/set/map/counter names: [A-Za-z0-9_.-], 1–255 characters. */
export function checkName(what: string, name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new NftValidationError('E_INVALID_NAME', what, name, 'must be a non-empty string');
  }
  if (name.length > MAX_NAME_LENGTH) {
    throw new NftValidationError('E_INVALID_NAME', what, name, `longer than ${MAX_NAME_LENGTH} characters`);
  }
  if (!NAME_RE.test(name)) {
    throw new NftValidationError('E_INVALID_NAME', what, name, 'only letters, digits, "_", "-" and "." are allowed');
  }
  return name;
}

/** `family` if it is inet, ip or ip6 (NftValidationError otherwise). */
export function checkFamily(family: unknown): Family {
  if (family !== 'inet' && family !== 'ip' && family !== 'ip6' && family !== 'netdev' && family !== 'bridge') {
    throw new NftValidationError('E_INVALID_VALUE', 'family', family, 'must be inet, ip, ip6, netdev or bridge');
  }
  return family;
}

/** `comment` if it is a string nft takes: at most 128 bytes, no NUL, newline or double quote. */
export function checkComment(comment: unknown): string {
  if (typeof comment !== 'string') throw new NftValidationError('E_INVALID_COMMENT', 'comment', comment, 'must be a string');
  if (Buffer.byteLength(comment) > MAX_COMMENT_LENGTH) {
    throw new NftValidationError('E_INVALID_COMMENT', 'comment', comment, `longer than ${MAX_COMMENT_LENGTH} bytes`);
  }
  if (/[\0\n\r"]/.test(comment)) {
    throw new NftValidationError('E_INVALID_COMMENT', 'comment', comment, 'must not contain NUL, newlines or double quotes');
  }
  return comment;
}

/** `port` if it is an integer 0–65535 (NftValidationError E_INVALID_PORT naming `what` otherwise). */
export function checkPort(what: string, port: unknown): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new NftValidationError('E_INVALID_PORT', what, port, 'must be an integer 0–65535');
  }
  return port;
}

/** An integer from `min` to `max` (inclusive; by default any unsigned 32-bit one). */
export function checkUint(what: string, v: unknown, max = 0xffffffff, min = 0): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new NftValidationError('E_INVALID_VALUE', what, v, `must be an integer ${min}–${max}`);
  }
  return v;
}

/** Interface names: 1–15 bytes (IFNAMSIZ-1), no '/', whitespace or quotes; a trailing '*' is a wildcard. */
export function checkIfname(what: string, name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > 15) {
    throw new NftValidationError('E_INVALID_IFNAME', what, name, 'must be 1–15 bytes');
  }
  if (/[\s/"\\\0]/.test(name) || name.slice(0, -1).includes('*')) {
    throw new NftValidationError('E_INVALID_IFNAME', what, name, 'contains a forbidden character');
  }
  return name;
}

// ── Addresses ──────────────────────────────────────────────────────────────────────────────────────

/** Canonical text of an address literal (IPv6 lower-case, compressed); throws when not a literal. */
export function canonicalAddress(what: string, addr: unknown, version?: IpFamily): { addr: string; version: IpFamily } {
  if (typeof addr !== 'string') throw new NftValidationError('E_INVALID_ADDRESS', what, addr, 'must be a string');
  if (addr.includes('%')) throw new NftValidationError('E_INVALID_ADDRESS', what, addr, 'zone indices are not allowed');
  const c = canonicalIp(addr);
  if (!c) {
    throw new NftValidationError('E_INVALID_ADDRESS', what, addr,
      'not an IP address literal (nft would resolve it as a hostname); use ifname()/symbol() for names');
  }
  if (version && c.family !== version) {
    throw new NftValidationError('E_INVALID_ADDRESS', what, addr, `expected an IPv${version} address`);
  }
  return { addr: c.address, version: c.family };
}

/** Parsed address input: a literal, a prefix (CIDR, host bits must be zero) or an inclusive range. */
export type ParsedAddress =
  | { kind: 'addr'; version: IpFamily; addr: string }
  | { kind: 'prefix'; version: IpFamily; addr: string; len: number }
  | { kind: 'range'; version: IpFamily; from: string; to: string };

/** Parse "10.0.0.1", "10.0.0.0/8" or "10.0.0.1-10.0.0.9" (same for IPv6). */
export function parseAddress(what: string, input: unknown, version?: IpFamily): ParsedAddress {
  if (typeof input !== 'string') throw new NftValidationError('E_INVALID_ADDRESS', what, input, 'must be a string');
  const slash = input.indexOf('/');
  if (slash >= 0) {
    const { addr, version: v } = canonicalAddress(what, input.slice(0, slash), version);
    const lenText = input.slice(slash + 1);
    const len = /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
    const bits = v === 4 ? 32 : 128;
    if (!(len >= 0 && len <= bits)) {
      throw new NftValidationError('E_INVALID_ADDRESS', what, input, `prefix length must be 0–${bits}`);
    }
    const value = ipToBigInt(addr);
    const hostMask = (1n << BigInt(bits - len)) - 1n;
    if ((value & hostMask) !== 0n) {
      const net = bigIntToIp(value & ~hostMask & ((1n << BigInt(bits)) - 1n), v);
      throw new NftValidationError('E_INVALID_ADDRESS', what, input, `host bits set (did you mean ${net}/${len}?)`);
    }
    return { kind: 'prefix', version: v, addr, len };
  }
  // a range: two literals around one '-' (IPv6 literals never contain '-')
  const dash = input.indexOf('-');
  if (dash >= 0) {
    const a = canonicalAddress(what, input.slice(0, dash), version);
    const b = canonicalAddress(what, input.slice(dash + 1), a.version);
    if (ipToBigInt(a.addr) > ipToBigInt(b.addr)) {
      throw new NftValidationError('E_INVALID_ADDRESS', what, input, 'range start is above its end');
    }
    return { kind: 'range', version: a.version, from: a.addr, to: b.addr };
  }
  const { addr, version: v } = canonicalAddress(what, input, version);
  return { kind: 'addr', version: v, addr };
}
