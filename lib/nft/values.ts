/**
 * Literal values for matches, set elements and map values. The rule: a string reaching nft is either
 * a validated IP literal, or an explicitly typed name (ifname(), symbol(), setRef()). nft resolves any
 * other string in an address position as a hostname, so plain non-address strings are refused.
 */
import { NftValidationError } from './errors.js';
import type { ConcatExpr, Expr, PrefixExpr, RangeExpr, SetExpr, Verdict } from './json.js';
import { checkIfname, checkName, checkPort, checkUint, parseAddress } from './validate.js';
import { type IpFamily } from '../util/ip.js';

/** A typed non-address string. Serialises (JSON.stringify) to its plain text. */
export class Literal {
  constructor(readonly kind: 'ifname' | 'symbol' | 'ref' | 'ether' | 'raw', readonly text: string) {}
  toJSON(): string {
    return this.text;
  }
  toString(): string {
    return this.text;
  }
}

/** An interface name (sets of type ifname, iifname/oifname matches). A trailing '*' is a wildcard. */
export function ifname(name: string): Literal {
  return new Literal('ifname', checkIfname('interface name', name));
}

const SYMBOL_RE = /^[a-z][a-z0-9-]{0,63}$/;
/** An nft symbolic constant: "tcp", "established", "echo-request", "ipv4", … */
export function symbol(name: string): Literal {
  if (typeof name !== 'string' || !SYMBOL_RE.test(name)) {
    throw new NftValidationError('E_INVALID_VALUE', 'symbol', name, 'must be lower-case letters, digits and "-"');
  }
  return new Literal('symbol', name);
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
/** An Ethernet address (`ether saddr`, sets of type ether_addr), lower case with ':'. */
export function etherAddr(mac: string): Literal {
  const m = typeof mac === 'string' ? mac.toLowerCase() : mac;
  if (typeof m !== 'string' || !MAC_RE.test(m)) {
    throw new NftValidationError('E_INVALID_VALUE', 'ether address', mac, 'must be six hex bytes separated by ":"');
  }
  return new Literal('ether', m);
}

/**
 * An integer of `bits` bits as nft's hex literal, for raw payload matches (`@th,64,128 != 0x2001…`): nft 1.0.6
 * types a raw payload as a plain integer, so it compares only with integers, never with an address literal.
 */
export function rawValue(v: bigint, bits: number): Literal {
  if (!Number.isInteger(bits) || bits < 1 || bits > 128 || bits % 4 !== 0) {
    throw new NftValidationError('E_INVALID_VALUE', 'raw value width', bits, 'a multiple of 4 bits, at most 128');
  }
  if (typeof v !== 'bigint' || v < 0n || v >= 1n << BigInt(bits)) {
    throw new NftValidationError('E_INVALID_VALUE', 'raw value', String(v), `must fit in ${bits} bits`);
  }
  return new Literal('raw', `0x${v.toString(16).padStart(bits / 4, '0')}`);
}

/** Reference to a named set or map: `@name`. */
export function setRef(name: string): Literal {
  return new Literal('ref', `@${checkName('set name', name)}`);
}

/** One IP address literal (canonical form). */
export function addr(address: string, version?: IpFamily): string {
  const p = parseAddress('address', address, version);
  if (p.kind !== 'addr') throw new NftValidationError('E_INVALID_ADDRESS', 'address', address, 'expected a single address');
  return p.addr;
}

/** An IP prefix from CIDR text ("10.0.0.0/8"); host bits must be zero. */
export function prefix(cidr: string, version?: IpFamily): PrefixExpr | string {
  const p = parseAddress('prefix', cidr, version);
  if (p.kind === 'range') throw new NftValidationError('E_INVALID_ADDRESS', 'prefix', cidr, 'expected CIDR notation');
  // a full-length prefix is listed by nft as the bare address; render it the same way
  if (p.kind === 'addr' || p.len === (p.version === 4 ? 32 : 128)) return p.addr;
  return { prefix: { addr: p.addr, len: p.len } };
}

/** An inclusive address range. */
export function addrRange(from: string, to: string): RangeExpr {
  const p = parseAddress('address range', `${from}-${to}`);
  if (p.kind !== 'range') throw new NftValidationError('E_INVALID_ADDRESS', 'address range', `${from}-${to}`, 'expected two addresses');
  return { range: [p.from, p.to] };
}

/** `n` if it is a port 0–65535 (NftValidationError otherwise). */
export function port(n: number): number {
  return checkPort('port', n);
}

/** An inclusive port range (0–65535). */
export function portRange(from: number, to: number): { range: [number, number] } {
  checkPort('port range start', from);
  checkPort('port range end', to);
  if (from > to) throw new NftValidationError('E_INVALID_PORT', 'port range', [from, to], 'start is above end');
  return { range: [from, to] };
}

/** What callers may pass where a value is expected. Strings must be address/prefix/range text. */
export type ValueInput = string | number | Literal | PrefixExpr | RangeExpr | ConcatExpr | ValueInput[];

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Convert one input to a JSON expression, validating it. Strings: "1.2.3.4" → literal,
 * "10.0.0.0/8" → prefix, "1.2.3.4-1.2.3.9" → range (anything else is refused). Numbers: non-negative
 * integers. Arrays: concatenations (use anonSet() for `{ a, b }`).
 */
export function value(input: ValueInput, what = 'value', version?: IpFamily): Expr {
  if (typeof input === 'number') return checkUint(what, input);
  if (typeof input === 'string') {
    const p = parseAddress(what, input, version);
    if (p.kind === 'addr') return p.addr;
    if (p.kind === 'range') return { range: [p.from, p.to] };
    if (p.len === (p.version === 4 ? 32 : 128)) return p.addr;
    return { prefix: { addr: p.addr, len: p.len } };
  }
  if (input instanceof Literal) return input;
  if (Array.isArray(input)) return concat(...input);
  if (isObj(input)) {
    if ('prefix' in input) {
      const px = input.prefix as { addr?: unknown; len?: unknown } | null;
      if (!px || typeof px.addr !== 'string' || typeof px.len !== 'number') {
        throw new NftValidationError('E_INVALID_ADDRESS', what, input, 'malformed prefix');
      }
      return prefix(`${px.addr}/${px.len}`, version);
    }
    if ('range' in input && Array.isArray(input.range) && input.range.length === 2) {
      const [a, b] = input.range as unknown[];
      if (typeof a === 'number' && typeof b === 'number') {
        checkUint(`${what} range start`, a);
        checkUint(`${what} range end`, b);
        if (a > b) throw new NftValidationError('E_INVALID_VALUE', what, input, 'range start is above its end');
        return { range: [a, b] };
      }
      if (typeof a === 'string' && typeof b === 'string') return addrRange(a, b);
    }
    if ('concat' in input) return concat(...(input.concat as ValueInput[]));
  }
  throw new NftValidationError('E_INVALID_VALUE', what, input, 'not an address, prefix, range, number or typed literal');
}

/** Concatenation `a . b` (e.g. address . port keys). */
export function concat(...parts: ValueInput[]): ConcatExpr {
  if (parts.length < 2) throw new NftValidationError('E_INVALID_VALUE', 'concatenation', parts, 'needs at least two parts');
  return { concat: parts.map((p) => value(p, 'concatenation part')) };
}

/** Anonymous set `{ a, b, … }` of values. */
export function anonSet(items: ValueInput[], what = 'set'): SetExpr {
  if (!Array.isArray(items) || items.length === 0) {
    throw new NftValidationError('E_INVALID_VALUE', what, items, 'an anonymous set needs at least one element');
  }
  return { set: items.map((i) => value(i, what)) };
}

/** Is this JSON expression a verdict? */
export function isVerdict(v: unknown): v is Verdict {
  if (!isObj(v)) return false;
  const keys = Object.keys(v);
  return keys.length === 1 && ['accept', 'drop', 'continue', 'return', 'jump', 'goto'].includes(keys[0]);
}
