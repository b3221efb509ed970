/**
 * The rule-set language of the guest-segment filter (nwfilter-style), pure: parsing and validation of rules and
 * named filters as JSON arrives (action-params, library calls), and flattening a NIC's set — its own rules plus
 * referenced named filters, ordered by priority — with the NIC's variables bound.
 *
 *   { "action": "accept", "direction": "in", "priority": 100, "protocol": "tcp", "dstport": "22" }
 *   { "action": "drop",   "direction": "in", "protocol": "all" }
 *   { "action": "drop",   "direction": "out", "protocol": "udp", "dstip": "$GATEWAY", "dstport": 53 }
 *
 * Fields are packet fields (as nwfilter's srcipaddr/dstipaddr): `in` matches frames addressed to the NIC, `out`
 * frames it sends, `inout` both. Rules are stateless (the bridge family has no connection tracking on this
 * kernel); `established: true` on a TCP rule matches segments carrying ACK — everything of a connection but its
 * opening SYN — the usual stateless stand-in. See docs/vm-filter.md.
 */
import { BadValue, parseIpv4, parseIpv6, parseMac, parsePortRange } from '../contract/values.js';
import { networkText, parseCidr } from '../../util/ip.js';

export type Direction = 'in' | 'out' | 'inout';
export type RuleAction = 'accept' | 'drop' | 'return';
export type RuleProtocol = 'all' | 'mac' | 'arp' | 'ipv4' | 'ipv6' | 'tcp' | 'udp' | 'icmp' | 'icmpv6';
/** Values bound per NIC: its MAC, its IPv4 and IPv6 addresses, the tier's IPv4 and IPv6 gateways. */
export type Variable = '$MAC' | '$IP' | '$IPV6' | '$GATEWAY' | '$GATEWAY6';

/** An address field: a literal address or CIDR (canonical), or a variable. */
export type AddrField = { cidr: string; family: 4 | 6 } | { variable: Variable };
export type MacField = { mac: string } | { variable: '$MAC' };

/** One validated rule (canonical: what is stored and compiled). */
export interface VmRule {
  action: RuleAction;
  direction: Direction;
  /** -1000 … 1000; lower first (nwfilter's default for rules: 500). */
  priority: number;
  protocol: RuleProtocol;
  srcmac?: MacField;
  dstmac?: MacField;
  srcip?: AddrField;
  dstip?: AddrField;
  srcport?: [number, number];
  dstport?: [number, number];
  /** icmp/icmpv6 type and code. */
  type?: number;
  code?: number;
  /** tcp: segments carrying ACK only (see the file comment). */
  established?: true;
}

/** A named filter: rules and references to other named filters, with a priority for where it sorts. */
export interface NamedFilter {
  /** Position among the rules and references of whoever references it (nwfilter's filter priority: default 0). */
  priority: number;
  rules: VmRule[];
  filters: string[];
}

/** A NIC's own set: its rules and the named filters it references. */
export interface NicRuleSet {
  rules: VmRule[];
  filters: string[];
}

/**
 * The anti-spoofing base every known NIC gets (MAC ↔ IPv4/IPv6, ARP/NDP, DHCP/RA/redirect guards). It is not
 * made of rules of this language (it is compiled from the NIC's addresses, docs/vm-filter.md); naming it in a
 * NIC's `filters` is accepted and changes nothing, so libvirt-style sets ("clean-traffic" + own rules) read as
 * they do there.
 */
export const CLEAN_TRAFFIC = 'clean-traffic';

export const LIMITS = { rulesPerSet: 1000, filters: 256, refsPerSet: 32, depth: 8 } as const;

const ACTIONS: readonly RuleAction[] = ['accept', 'drop', 'return'];
const DIRECTIONS: readonly Direction[] = ['in', 'out', 'inout'];
const PROTOCOLS: readonly RuleProtocol[] = ['all', 'mac', 'arp', 'ipv4', 'ipv6', 'tcp', 'udp', 'icmp', 'icmpv6'];
const ADDR_VARS: readonly Variable[] = ['$IP', '$IPV6', '$GATEWAY', '$GATEWAY6'];
const RULE_KEYS = new Set(['action', 'direction', 'priority', 'protocol', 'srcmac', 'dstmac', 'srcip', 'dstip', 'srcport', 'dstport', 'type', 'code', 'established', 'comment']);
const FILTER_NAME_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

const q = (v: unknown): string => JSON.stringify(v);

function str(v: unknown, what: string): string {
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string') throw new BadValue(`${what} must be a string`);
  return v.trim();
}

function intIn(v: unknown, what: string, min: number, max: number): number {
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) throw new BadValue(`${what}: ${q(v)} is not a whole number from ${min} to ${max}`);
  return n;
}

function oneOf<T extends string>(v: unknown, what: string, allowed: readonly T[]): T {
  const s = typeof v === 'string' ? v.trim().toLowerCase() : v;
  if (typeof s !== 'string' || !(allowed as readonly string[]).includes(s)) throw new BadValue(`${what}: ${q(v)} is not one of ${allowed.join(', ')}`);
  return s as T;
}

/** A filter name: letter first, then letters, digits, '.', '_', '-' (at most 64). */
export function parseFilterName(v: unknown, what = 'filter name'): string {
  const s = str(v, what);
  if (!FILTER_NAME_RE.test(s)) throw new BadValue(`${what}: ${q(v)} is not a filter name (a letter, then letters, digits, '.', '_', '-'; at most 64)`);
  return s;
}

function addrField(v: unknown, what: string): AddrField {
  const s = str(v, what);
  if (s.startsWith('$')) {
    const name = s.toUpperCase() as Variable;
    if (!ADDR_VARS.includes(name)) throw new BadValue(`${what}: ${q(v)} is not an address variable (${ADDR_VARS.join(', ')})`);
    return { variable: name };
  }
  if (s.includes('/')) {
    const c = parseCidr(s);
    if (!c) throw new BadValue(`${what}: ${q(v)} is not an address or CIDR`);
    // canonical network form: host bits cleared (10.1.1.7/24 → 10.1.1.0/24)
    return { cidr: networkText(c), family: c.family };
  }
  try {
    return { cidr: parseIpv4(s), family: 4 };
  } catch {
    try {
      return { cidr: parseIpv6(s), family: 6 };
    } catch {
      throw new BadValue(`${what}: ${q(v)} is not an address or CIDR`);
    }
  }
}

function macField(v: unknown, what: string): MacField {
  const s = str(v, what);
  if (s.toUpperCase() === '$MAC') return { variable: '$MAC' };
  try {
    return { mac: parseMac(s) };
  } catch (e) {
    throw new BadValue(`${what}: ${e instanceof BadValue ? e.message : q(v)}`);
  }
}

function portField(v: unknown, what: string): [number, number] {
  try {
    const r = parsePortRange(str(v, what));
    return [r.start, r.end];
  } catch (e) {
    throw new BadValue(`${what}: ${e instanceof BadValue ? e.message : q(v)}`);
  }
}

const familyOfVar = (v: Variable): 4 | 6 | undefined => (v === '$IP' || v === '$GATEWAY' ? 4 : v === '$IPV6' || v === '$GATEWAY6' ? 6 : undefined);
const fieldFamily = (f: AddrField | undefined): 4 | 6 | undefined => (f === undefined ? undefined : 'cidr' in f ? f.family : familyOfVar(f.variable));

/** Parse one rule; `where` names it in messages (`rules[3]`). */
export function parseRule(raw: unknown, where: string): VmRule {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new BadValue(`${where} must be an object`);
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!RULE_KEYS.has(k)) throw new BadValue(`${where}: unknown field ${q(k)}`);
  const given = (k: string): boolean => o[k] !== undefined && o[k] !== null && o[k] !== '';
  if (!given('action')) throw new BadValue(`${where}.action is required (${ACTIONS.join(', ')})`);
  if (!given('direction')) throw new BadValue(`${where}.direction is required (${DIRECTIONS.join(', ')})`);
  const r: VmRule = {
    action: oneOf(o.action, `${where}.action`, ACTIONS),
    direction: oneOf(o.direction, `${where}.direction`, DIRECTIONS),
    priority: given('priority') ? intIn(o.priority, `${where}.priority`, -1000, 1000) : 500,
    protocol: given('protocol') ? oneOf(o.protocol, `${where}.protocol`, PROTOCOLS) : 'all',
  };
  if (given('srcmac')) r.srcmac = macField(o.srcmac, `${where}.srcmac`);
  if (given('dstmac')) r.dstmac = macField(o.dstmac, `${where}.dstmac`);
  if (given('srcip')) r.srcip = addrField(o.srcip, `${where}.srcip`);
  if (given('dstip')) r.dstip = addrField(o.dstip, `${where}.dstip`);
  if (given('srcport')) r.srcport = portField(o.srcport, `${where}.srcport`);
  if (given('dstport')) r.dstport = portField(o.dstport, `${where}.dstport`);
  if (given('type')) r.type = intIn(o.type, `${where}.type`, 0, 255);
  if (given('code')) r.code = intIn(o.code, `${where}.code`, 0, 255);
  if (given('established')) {
    const e = o.established;
    if (e !== true && e !== 'true') {
      if (e === false || e === 'false') { /* the default */ } else throw new BadValue(`${where}.established must be true or false`);
    } else r.established = true;
  }
  if (given('comment') && (typeof o.comment !== 'string' || o.comment.length > 256)) throw new BadValue(`${where}.comment must be a string of at most 256 characters`);
  checkShape(r, where);
  return r;
}

/** Fields that make sense together for the protocol. */
function checkShape(r: VmRule, where: string): void {
  const p = r.protocol;
  const ports = r.srcport !== undefined || r.dstport !== undefined;
  const icmp = r.type !== undefined || r.code !== undefined;
  const ipFields = r.srcip !== undefined || r.dstip !== undefined;
  if (ports && p !== 'tcp' && p !== 'udp') throw new BadValue(`${where}: ports need protocol tcp or udp`);
  if (icmp && p !== 'icmp' && p !== 'icmpv6') throw new BadValue(`${where}: type and code need protocol icmp or icmpv6`);
  if (r.code !== undefined && r.type === undefined) throw new BadValue(`${where}: code needs a type`);
  if (r.established && p !== 'tcp') throw new BadValue(`${where}: established needs protocol tcp`);
  if (p === 'mac' && ipFields) throw new BadValue(`${where}: protocol mac has no address fields (use srcmac/dstmac)`);
  const fams = new Set([fieldFamily(r.srcip), fieldFamily(r.dstip)].filter((f) => f !== undefined));
  if (fams.size > 1) throw new BadValue(`${where}: srcip and dstip are of different families`);
  const fam = [...fams][0];
  const need: Partial<Record<RuleProtocol, 4 | 6>> = { arp: 4, ipv4: 4, icmp: 4, ipv6: 6, icmpv6: 6 };
  if (fam !== undefined && need[p] !== undefined && need[p] !== fam) throw new BadValue(`${where}: protocol ${p} takes IPv${need[p]} addresses`);
}

function list(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null || v === '') return [];
  let x = v;
  if (typeof x === 'string') {
    const t = x.trim();
    if (t.startsWith('[')) {
      try {
        x = JSON.parse(t);
      } catch {
        throw new BadValue(`${what} is not valid JSON`);
      }
    } else return t.split(/[,\s]+/).filter((s) => s !== '');
  }
  if (!Array.isArray(x)) throw new BadValue(`${what} must be a list`);
  return x;
}

/** Rules as given (a JSON array, or a string holding one). */
export function parseRules(v: unknown, what = 'rules'): VmRule[] {
  const items = list(v, what);
  if (items.length > LIMITS.rulesPerSet) throw new BadValue(`${what}: at most ${LIMITS.rulesPerSet} rules`);
  return items.map((r, i) => parseRule(typeof r === 'string' ? parseJsonObject(r, `${what}[${i}]`) : r, `${what}[${i}]`));
}

function parseJsonObject(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new BadValue(`${what} is not valid JSON`);
  }
}

/** Filter references as given: a list, or a comma/space separated string. */
export function parseFilterRefs(v: unknown, what = 'filters'): string[] {
  const items = list(v, what).map((x, i) => parseFilterName(x, `${what}[${i}]`));
  if (items.length > LIMITS.refsPerSet) throw new BadValue(`${what}: at most ${LIMITS.refsPerSet} references`);
  return [...new Set(items)];
}

/** Check that every reference resolves, no reference cycles and nesting is bounded. */
export function checkFilterGraph(filters: Record<string, NamedFilter>, roots: Array<{ refs: string[]; where: string }>): void {
  const visit = (name: string, path: string[], where: string): void => {
    if (name === CLEAN_TRAFFIC) return;
    const f = filters[name];
    if (!f) throw new BadValue(`${where}: filter ${q(name)} is not defined (vm-filter-set with "filter" defines one)`);
    if (path.includes(name)) throw new BadValue(`${where}: filter references form a cycle (${[...path, name].join(' → ')})`);
    if (path.length >= LIMITS.depth) throw new BadValue(`${where}: filter references nested deeper than ${LIMITS.depth}`);
    for (const r of f.filters) visit(r, [...path, name], where);
  };
  for (const root of roots) for (const r of root.refs) visit(r, [], root.where);
}

/** A rule with its variables resolved (undefined: a variable has no value for this NIC). */
export interface BoundRule extends Omit<VmRule, 'srcmac' | 'dstmac' | 'srcip' | 'dstip'> {
  srcmac?: string;
  dstmac?: string;
  /** One or more CIDRs of one family. */
  srcip?: string[];
  dstip?: string[];
  family?: 4 | 6;
}

export interface NicVariables {
  mac: string;
  ip: string[];
  ipv6: string[];
  gateway: string[];
  gateway6: string[];
}

const VAR_VALUES: Record<Variable, keyof NicVariables> = { $MAC: 'mac', $IP: 'ip', $IPV6: 'ipv6', $GATEWAY: 'gateway', $GATEWAY6: 'gateway6' };

function bindAddr(f: AddrField | undefined, vars: NicVariables): string[] | undefined | null {
  if (f === undefined) return undefined;
  if ('cidr' in f) return [f.cidr];
  const v = vars[VAR_VALUES[f.variable]] as string[];
  return v.length ? v : null;
}

/** A rule with the NIC's variables bound; null when a variable it uses has no value (the rule is left out). */
export function bindRule(r: VmRule, vars: NicVariables): BoundRule | null {
  const { srcmac, dstmac, srcip, dstip, ...rest } = r;
  const b: BoundRule = { ...rest };
  const mac = (f: MacField | undefined): string | undefined => (f === undefined ? undefined : 'mac' in f ? f.mac : vars.mac);
  const s = mac(srcmac); if (s !== undefined) b.srcmac = s;
  const d = mac(dstmac); if (d !== undefined) b.dstmac = d;
  const si = bindAddr(srcip, vars);
  const di = bindAddr(dstip, vars);
  if (si === null || di === null) return null;
  if (si) b.srcip = si;
  if (di) b.dstip = di;
  const fam = fieldFamily(srcip) ?? fieldFamily(dstip);
  if (fam) b.family = fam;
  return b;
}

/**
 * A NIC's rules in evaluation order: its own rules and the rules of the named filters it references (recursively),
 * sorted by priority — a reference sorts at its filter's priority and brings its own ordered rules there; equal
 * priorities keep the order given. clean-traffic references add nothing (see CLEAN_TRAFFIC).
 */
export function flattenRuleSet(set: NicRuleSet, filters: Record<string, NamedFilter>): VmRule[] {
  const expand = (rules: VmRule[], refs: string[], depth: number): VmRule[] => {
    type Entry = { priority: number; order: number; rules: VmRule[] };
    const entries: Entry[] = rules.map((r, i) => ({ priority: r.priority, order: i, rules: [r] }));
    refs.forEach((name, i) => {
      const f = filters[name];
      if (name === CLEAN_TRAFFIC || !f || depth >= LIMITS.depth) return;
      entries.push({ priority: f.priority, order: rules.length + i, rules: expand(f.rules, f.filters, depth + 1) });
    });
    entries.sort((a, b) => a.priority - b.priority || a.order - b.order);
    return entries.flatMap((e) => e.rules);
  };
  return expand(set.rules, set.filters, 0);
}
