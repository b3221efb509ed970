/**
 * A rule split by address family: each Matcher holds only the CIDRs of its family, so an IPv6 CIDR never
 * becomes part of an IPv4 match (a rule whose CIDRs are all of the other family simply has no matcher for
 * that family). The same matchers drive the nft generation and the conntrack evaluation, so the two agree.
 */
import type { IpFamily } from '../../util/ip.js';
import { contains, isAny, parseRuleCidr, isCidr, addressValue, type RuleCidr } from './cidr.js';
import { protoNumber, type MatchSpec } from './rules.js';


export interface Matcher {
  family: IpFamily;
  /** IP protocol number; undefined = any. */
  proto?: number;
  ports?: [number, number];
  icmpType?: number;
  icmpCode?: number;
  /** Empty = any address of the family. */
  src: RuleCidr[];
  dst: RuleCidr[];
  /** Ingress firewall: the public IP (destination before DNAT). */
  pubIp?: string;
}

function cidrsOf(texts: string[]): RuleCidr[] {
  const out: RuleCidr[] = [];
  for (const t of texts) {
    const c = parseRuleCidr(t);
    if (isCidr(c)) out.push(c);
  }
  return out;
}

/**
 * Matchers of one rule. `src`/`dst` are the CIDR lists that constrain the source/destination address (which
 * list of the rule plays which role depends on the document and direction).
 */
export function expand(spec: MatchSpec, src: string[], dst: string[], pubIp?: string): Matcher[] {
  const s = cidrsOf(src);
  const d = cidrsOf(dst);
  const pubFamily = pubIp !== undefined ? addressValue(pubIp)?.family : undefined;
  const out: Matcher[] = [];
  for (const family of [4, 6] as const) {
    if (pubFamily !== undefined && pubFamily !== family) continue;
    const proto = protoNumber(spec.protocol, family);
    if (proto === null) continue;
    const sf = s.filter((c) => c.family === family);
    const df = d.filter((c) => c.family === family);
    if ((s.length && !sf.length) || (d.length && !df.length)) continue; // only other-family CIDRs: never matches here
    // "icmp" type numbers are ICMPv4's unless the rule is about IPv6 addresses (then they are ICMPv6's)
    if (spec.protocol === 'icmp' && family === 6 && !sf.length && !df.length) continue;
    const m: Matcher = { family, src: sf.some(isAny) ? [] : sf, dst: df.some(isAny) ? [] : df };
    if (proto !== undefined) m.proto = proto;
    if (spec.ports) m.ports = spec.ports;
    if (proto === 1 || proto === 58) {
      if (spec.icmpType !== undefined) m.icmpType = spec.icmpType;
      if (spec.icmpCode !== undefined) m.icmpCode = spec.icmpCode;
    }
    if (pubIp !== undefined) m.pubIp = pubIp;
    out.push(m);
  }
  return out;
}

/** A packet (or a conntrack entry's first packet) as the filter sees it. */
export interface Packet {
  family: IpFamily;
  proto: number;
  src: bigint;
  dst: bigint;
  dport?: number;
  icmpType?: number;
  icmpCode?: number;
}

export function matches(m: Matcher, p: Packet): boolean {
  if (m.family !== p.family) return false;
  if (m.proto !== undefined && m.proto !== p.proto) return false;
  if (m.ports && (p.dport === undefined || p.dport < m.ports[0] || p.dport > m.ports[1])) return false;
  if (m.icmpType !== undefined && m.icmpType !== p.icmpType) return false;
  if (m.icmpCode !== undefined && m.icmpCode !== p.icmpCode) return false;
  if (m.src.length && !m.src.some((c) => contains(c, p.src))) return false;
  if (m.dst.length && !m.dst.some((c) => contains(c, p.dst))) return false;
  return true;
}

/**
 * Matchers indexed for evaluating many packets (conntrack entries) against many rules: single-port matchers
 * by (family, protocol, port), the others by (family, protocol). `first(p)` is the lowest `order` among the
 * matchers that match — the first rule that matches, for first-match semantics.
 */
export class MatcherIndex {
  private readonly exact = new Map<string, Array<[number, Matcher]>>();
  private readonly rest = new Map<string, Array<[number, Matcher]>>();
  size = 0;

  add(order: number, m: Matcher): void {
    const exact = m.ports && m.ports[0] === m.ports[1] && m.proto !== undefined;
    const key = exact ? `${m.family}|${m.proto}|${m.ports![0]}` : `${m.family}|${m.proto ?? '*'}`;
    const map = exact ? this.exact : this.rest;
    const list = map.get(key);
    if (list) list.push([order, m]);
    else map.set(key, [[order, m]]);
    this.size++;
  }

  first(p: Packet): number | undefined {
    let best: number | undefined;
    const scan = (list: Array<[number, Matcher]> | undefined): void => {
      if (!list) return;
      for (const [o, m] of list) {
        if (best !== undefined && o >= best) continue;
        if (matches(m, p)) best = o;
      }
    };
    if (p.dport !== undefined) scan(this.exact.get(`${p.family}|${p.proto}|${p.dport}`));
    scan(this.rest.get(`${p.family}|${p.proto}`));
    scan(this.rest.get(`${p.family}|*`));
    return best;
  }
}
