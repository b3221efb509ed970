/**
 * Parsing and validation of the two rule documents: `fw_rules` (apply-fw-rules) and `acl_rules`
 * (apply-network-acl). The whole document is checked before anything changes; the first problem becomes a
 * UsageError (exit 1) naming the rule (index, id, number) and the field. Rules are stored normalised
 * (canonical CIDRs, protocol names/numbers, port ranges), which is also what dump-config shows.
 */
import { UsageError } from '../../util/errors.js';
import { isCidr, parseRuleCidr } from './cidr.js';
import { addressValue } from './cidr.js';
import type { IpFamily } from '../../util/ip.js';

export type Direction = 'ingress' | 'egress';

/**
 * 'all', 'tcp', 'udp', 'icmp' (ICMPv4; for a rule naming IPv6 CIDRs, ICMPv6 on its IPv6 side), 'icmpv6' (IPv6 only),
 * or an IP protocol number (1 is ICMP for IPv4 only, like any number it means exactly that protocol).
 */
export type Protocol = 'all' | 'tcp' | 'udp' | 'icmp' | 'icmpv6' | number;

/** What both documents' rules share after normalisation. */
export interface MatchSpec {
  protocol: Protocol;
  /** Destination port range (tcp, udp, sctp, dccp, udplite only); absent = every port. */
  ports?: [number, number];
  /** ICMP type/code; absent = any (-1 on the wire). */
  icmpType?: number;
  icmpCode?: number;
  /** Canonical CIDR texts; empty = any. */
  sourceCidrs: string[];
  destCidrs: string[];
}

export interface FwRule extends MatchSpec {
  /** Position in the document's `rules` array. */
  index: number;
  id?: string;
  type: Direction;
  /** Ingress: the public IP the rule opens. */
  publicIp?: string;
}

export interface FwDocument {
  defaultEgressAllow: boolean;
  cidr?: string;
  rules: FwRule[];
}

export interface AclRule extends MatchSpec {
  index: number;
  id?: string;
  number: number;
  action: 'allow' | 'deny';
  trafficType: Direction;
}

/** IP protocol numbers with a destination port. */
export const PORT_PROTOCOLS = new Set([6, 17, 33, 132, 136]);

const PROTO_NAMES: Record<string, Protocol> = {
  all: 'all', any: 'all', tcp: 'tcp', udp: 'udp', icmp: 'icmp', icmpv6: 'icmpv6', 'ipv6-icmp': 'icmpv6',
  sctp: 132, dccp: 33, udplite: 136, gre: 47, esp: 50, ah: 51,
};

const NUMBER_NAMES: Record<number, Protocol> = { 6: 'tcp', 17: 'udp', 58: 'icmpv6' };

/** The IP protocol number of a protocol for one family (null: not applicable to it, undefined: any). */
export function protoNumber(p: Protocol, family: IpFamily): number | null | undefined {
  if (p === 'all') return undefined;
  if (p === 'tcp') return 6;
  if (p === 'udp') return 17;
  if (p === 'icmp') return family === 4 ? 1 : 58;
  if (p === 'icmpv6') return family === 6 ? 58 : null;
  if (p === 1 && family === 6) return null;
  return p;
}

class FieldProblem extends Error {
  constructor(readonly field: string, message: string) {
    super(message);
  }
}

const blank = (v: unknown): boolean => v === undefined || v === null || v === '';

function optInt(field: string, v: unknown): number | undefined {
  if (blank(v)) return undefined;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v)) return Number(v);
  throw new FieldProblem(field, `${JSON.stringify(v)} is not an integer`);
}

function optString(field: string, v: unknown): string | undefined {
  if (blank(v)) return undefined;
  if (typeof v === 'string') return v.trim();
  if (typeof v === 'number') return String(v);
  throw new FieldProblem(field, `${JSON.stringify(v)} is not a string`);
}

function parseProtocol(v: unknown): Protocol {
  if (blank(v)) return 'all';
  if (typeof v === 'number' || (typeof v === 'string' && /^\s*\d+\s*$/.test(v))) {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 255) throw new FieldProblem('protocol', `${JSON.stringify(v)}: protocol numbers are 0–255`);
    return NUMBER_NAMES[n] ?? n;
  }
  if (typeof v === 'string') {
    const p = PROTO_NAMES[v.trim().toLowerCase()];
    if (p !== undefined) return p;
  }
  throw new FieldProblem('protocol', `unknown protocol ${JSON.stringify(v)} (use tcp, udp, icmp, all, a name like gre/esp/sctp, or a number 0–255)`);
}

function parsePort(field: string, v: unknown): number | undefined {
  const n = optInt(field, v);
  if (n === undefined) return undefined;
  if (n < 1 || n > 65535) throw new FieldProblem(field, `${n} is outside 1–65535`);
  return n;
}

function parseIcmp(field: string, v: unknown): number | undefined {
  const n = optInt(field, v);
  if (n === undefined || n === -1) return undefined;
  if (n < 0 || n > 255) throw new FieldProblem(field, `${n} is outside 0–255 (-1 = any)`);
  return n;
}

function parseCidrList(field: string, v: unknown): string[] {
  if (blank(v)) return [];
  const items: unknown[] = Array.isArray(v) ? v : typeof v === 'string' ? v.split(',') : [v];
  const out: string[] = [];
  for (const [i, raw] of items.entries()) {
    if (typeof raw === 'string' && raw.trim() === '') continue;
    const c = parseRuleCidr(raw);
    if (!isCidr(c)) throw new FieldProblem(`${field}[${i}]`, c);
    if (!out.includes(c.text)) out.push(c.text);
  }
  return out;
}

function parseMatch(r: Record<string, unknown>): MatchSpec {
  const protocol = parseProtocol(r.protocol);
  const start = parsePort('portStart', r.portStart);
  const end = parsePort('portEnd', r.portEnd);
  if (start === undefined && end !== undefined) throw new FieldProblem('portStart', `missing while portEnd is ${end}`);
  if (start !== undefined && end !== undefined && start > end) throw new FieldProblem('portEnd', `${end} is below portStart ${start}`);
  const icmpType = parseIcmp('icmpType', r.icmpType);
  const icmpCode = parseIcmp('icmpCode', r.icmpCode);
  const m: MatchSpec = { protocol, sourceCidrs: parseCidrList('sourceCidrs', r.sourceCidrs), destCidrs: parseCidrList('destCidrs', r.destCidrs) };
  const num = typeof protocol === 'number' ? protocol : protocol === 'tcp' ? 6 : protocol === 'udp' ? 17 : -1;
  // ports/ICMP fields only mean something for their protocols (upstream ignores them elsewhere too)
  if (start !== undefined && PORT_PROTOCOLS.has(num)) m.ports = [start, end ?? start];
  const icmpish = protocol === 'icmp' || protocol === 'icmpv6' || protocol === 1;
  if (icmpish && icmpType !== undefined) m.icmpType = icmpType;
  if (icmpish && icmpCode !== undefined) m.icmpCode = icmpCode;
  return m;
}

function asObject(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FieldProblem(what, `expected a JSON object, got ${Array.isArray(v) ? 'an array' : JSON.stringify(v)}`);
  return v as Record<string, unknown>;
}

function lower(field: string, v: unknown, allowed: readonly string[]): string {
  const s = optString(field, v)?.toLowerCase();
  if (s === undefined) throw new FieldProblem(field, `missing (one of ${allowed.join(', ')})`);
  if (!allowed.includes(s)) throw new FieldProblem(field, `${JSON.stringify(v)} is not one of ${allowed.join(', ')}`);
  return s;
}

function parseBool(field: string, v: unknown, dflt: boolean): boolean {
  if (blank(v)) return dflt;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(true|false)$/i.test(v.trim())) return v.trim().toLowerCase() === 'true';
  throw new FieldProblem(field, `${JSON.stringify(v)} is not a boolean`);
}

/** Parse `fw_rules`. `value` is the decoded JSON document (or undefined when the command had none). */
export function parseFwDocument(value: unknown): FwDocument {
  if (value === undefined) throw new UsageError('apply-fw-rules needs fw_rules (payload.fw_rules, --fw-rules or --fw-rules-file); nothing was changed', 'fw_rules');
  let doc: Record<string, unknown>;
  try {
    doc = asObject(value, 'fw_rules');
  } catch (e) {
    throw new UsageError(`fw_rules: ${(e as Error).message}`, 'fw_rules');
  }
  const top = (f: () => void): void => {
    try { f(); } catch (e) {
      if (e instanceof FieldProblem) throw new UsageError(`fw_rules.${e.field}: ${e.message}`, 'fw_rules');
      throw e;
    }
  };
  let defaultEgressAllow = true;
  let cidr: string | undefined;
  top(() => { defaultEgressAllow = parseBool('default_egress_allow', doc.default_egress_allow, true); });
  top(() => {
    if (!blank(doc.cidr)) {
      const c = parseRuleCidr(doc.cidr);
      if (!isCidr(c)) throw new FieldProblem('cidr', c);
      cidr = c.text;
    }
  });
  const rawRules = blank(doc.rules) ? [] : doc.rules;
  if (!Array.isArray(rawRules)) throw new UsageError(`fw_rules.rules: expected an array, got ${JSON.stringify(rawRules)}`, 'fw_rules');
  const rules: FwRule[] = rawRules.map((raw, index) => {
    let id: string | undefined;
    try {
      const r = asObject(raw, 'rule');
      id = optString('id', r.id);
      const type = lower('type', r.type, ['ingress', 'egress']) as Direction;
      const rule: FwRule = { index, ...(id !== undefined ? { id } : {}), type, ...parseMatch(r) };
      if (type === 'ingress') {
        const ip = optString('publicIp', r.publicIp);
        if (ip === undefined) throw new FieldProblem('publicIp', 'required for an ingress rule');
        const a = addressValue(ip);
        if (!a) throw new FieldProblem('publicIp', `${JSON.stringify(r.publicIp)} is not an IP address`);
        rule.publicIp = canonicalIp(ip);
      }
      return rule;
    } catch (e) {
      if (e instanceof FieldProblem) {
        throw new UsageError(`fw_rules.rules[${index}]${id !== undefined ? ` (id ${id})` : ''}: ${e.field}: ${e.message}; nothing was changed`, 'fw_rules');
      }
      throw e;
    }
  });
  return { defaultEgressAllow, ...(cidr ? { cidr } : {}), rules };
}

/** Parse `acl_rules` (a JSON array). */
export function parseAclDocument(value: unknown): AclRule[] {
  if (value === undefined) throw new UsageError('apply-network-acl needs acl_rules (payload.acl_rules, --acl-rules or --acl-rules-file); nothing was changed', 'acl_rules');
  // some senders wrap the list: {"rules": [...]} / {"acl_rules": [...]}
  let list = value;
  if (typeof list === 'object' && list !== null && !Array.isArray(list)) {
    const o = list as Record<string, unknown>;
    list = o.rules ?? o.acl_rules ?? o.aclRules ?? list;
  }
  if (!Array.isArray(list)) throw new UsageError(`acl_rules: expected a JSON array of rules, got ${JSON.stringify(value).slice(0, 80)}`, 'acl_rules');
  const rules = list.map((raw, index): AclRule => {
    let id: string | undefined;
    let number: number | undefined;
    try {
      const r = asObject(raw, 'rule');
      id = optString('id', r.id);
      number = optInt('number', r.number);
      if (number === undefined) throw new FieldProblem('number', 'required (rules are evaluated in number order)');
      if (number < 0) throw new FieldProblem('number', `${number} is negative`);
      const action = lower('action', r.action, ['allow', 'deny']) as 'allow' | 'deny';
      const trafficType = lower('trafficType', r.trafficType, ['ingress', 'egress']) as Direction;
      return { index, ...(id !== undefined ? { id } : {}), number, action, trafficType, ...parseMatch(r) };
    } catch (e) {
      if (e instanceof FieldProblem) {
        const who = [number !== undefined ? `number ${number}` : undefined, `index ${index}`, id !== undefined ? `id ${id}` : undefined].filter(Boolean).join(', ');
        throw new UsageError(`acl_rules rule (${who}): ${e.field}: ${e.message}; nothing was changed`, 'acl_rules');
      }
      throw e;
    }
  });
  // evaluation order: number, then position (a stable sort)
  return rules.sort((a, b) => a.number - b.number || a.index - b.index);
}

function canonicalIp(ip: string): string {
  const c = parseRuleCidr(ip);
  return isCidr(c) ? c.address : ip;
}
