/** Routes (RTM_NEWROUTE/DELROUTE/GETROUTE): rtmsg + RTA_* attributes. */
import { NlWriter, parseAttrs } from './attrs.js';
import { afOf, familyOfAf } from './ip.js';
import { bytesToIp, familyOf, ipToBytes, toCidr, type IpFamily } from '../util/ip.js';
import { NetlinkProtocolError } from './errors.js';
import { SCOPES, scopeName, type AddrScope } from './address.js';
import { ValidationError } from '../util/errors.js';

/** A route's type (`ip route add <type> …`). */
export type RouteType = 'unicast' | 'local' | 'broadcast' | 'anycast' | 'multicast' | 'blackhole' | 'unreachable' | 'prohibit' | 'throw';
const TYPES: RouteType[] = ['unicast', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw'];
export const routeTypeNum = (t: RouteType): number => TYPES.indexOf(t, 1);

/** The reserved routing table ids by name. */
export const RT_TABLE = { unspec: 0, compat: 252, default: 253, main: 254, local: 255 } as const;
const PROTOCOLS: Record<string, number> = { redirect: 1, kernel: 2, boot: 3, static: 4, ra: 9, dhcp: 16 };

const RTA = { DST: 1, SRC: 2, IIF: 3, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, TABLE: 15, PREF: 20 } as const;
// ICMPV6_ROUTER_PREF_* (RFC 4191), the values of RTA_PREF
const PREFS: Record<number, Route['pref']> = { 0: 'medium', 1: 'high', 3: 'low' };

/** A route to add/replace/delete, as `ip route` takes it: destination, gateway, device, table, metric, scope, type, source. */
export interface RouteSpec {
  /** "default", "10.0.0.0/24", "2001:db8::/64" or a bare address (host route). */
  dst: string;
  /** Address family; only needed for `dst: "default"` without a `via` (defaults to 4). */
  family?: IpFamily;
  via?: string;
  dev?: string | number;
  /** Routing table id or name (main, local, default); default main. */
  table?: number | 'main' | 'local' | 'default';
  /** RTA_PRIORITY. */
  metric?: number;
  scope?: AddrScope;
  type?: RouteType;
  /** Preferred source address (RTA_PREFSRC). */
  src?: string;
  /** Route origin; default "boot" like `ip route add`. */
  protocol?: keyof typeof PROTOCOLS | number;
}

/** A route as read back. */
export interface Route {
  family: IpFamily;
  /** "default" or a CIDR. */
  dst: string;
  table: number;
  type: RouteType;
  scope: AddrScope;
  protocol: number;
  via?: string;
  oif?: number;
  dev?: string;
  metric?: number;
  src?: string;
  /** IPv6 router preference (RTA_PREF; the kernel reports it for every IPv6 route) */
  pref?: 'medium' | 'high' | 'low';
}

export function tableId(t: RouteSpec['table']): number {
  if (t === undefined) return RT_TABLE.main;
  if (typeof t === 'number') {
    if (!Number.isInteger(t) || t < 1 || t > 0xffffffff) throw new ValidationError('E_INVALID_VALUE', 'route table', t, `bad routing table ${t}`);
    return t;
  }
  return RT_TABLE[t];
}

/** IpFamily and prefix of a route's destination. */
export function routeDst(spec: RouteSpec): { family: IpFamily; addr?: Buffer; len: number } {
  if (spec.dst === 'default') {
    const family = spec.family ?? (spec.via ? familyOf(spec.via) : 4);
    return { family, len: 0 };
  }
  const p = toCidr(spec.dst, 'route destination');
  return { family: p.family, addr: ipToBytes(p.address), len: p.prefix };
}

export function encodeRoute(spec: RouteSpec, oif: number | undefined, forDelete = false): Buffer {
  const d = routeDst(spec);
  const table = tableId(spec.table);
  const type = spec.type ?? 'unicast';
  let scope = spec.scope;
  if (scope === undefined) {
    if (type === 'local') scope = 'host';
    else if (!spec.via && type === 'unicast' && oif !== undefined) scope = 'link';
    else scope = 'universe';
  }
  const proto = spec.protocol === undefined ? PROTOCOLS.boot : typeof spec.protocol === 'number' ? spec.protocol : PROTOCOLS[spec.protocol];
  const w = new NlWriter(96);
  w.u8(afOf(d.family)).u8(d.len).u8(0).u8(0)
    .u8(table < 256 ? table : RT_TABLE.compat)
    .u8(forDelete ? 0 : proto)
    .u8(forDelete && spec.scope === undefined ? SCOPES.nowhere : SCOPES[scope])
    // a delete without a type matches any type (RTN_UNSPEC), as `ip route del` does
    .u8(forDelete && spec.type === undefined ? 0 : routeTypeNum(type))
    .u32(0);
  w.attrU32(RTA.TABLE, table);
  if (d.addr) w.attr(RTA.DST, d.addr);
  if (spec.via) {
    if (familyOf(spec.via) !== d.family) throw new ValidationError('E_INVALID_VALUE', 'route via', spec.via, `route via ${spec.via}: family differs from ${spec.dst}`);
    w.attr(RTA.GATEWAY, ipToBytes(spec.via));
  }
  if (oif !== undefined) w.attrU32(RTA.OIF, oif);
  if (spec.metric !== undefined) w.attrU32(RTA.PRIORITY, spec.metric);
  if (spec.src) w.attr(RTA.PREFSRC, ipToBytes(spec.src));
  return w.finish();
}

export function encodeRouteDump(family: IpFamily | 0): Buffer {
  const w = new NlWriter(16);
  w.u8(family ? afOf(family) : 0).zeros(11);
  return w.finish();
}

export function decodeRoute(payload: Buffer): Route {
  if (payload.length < 12) throw new NetlinkProtocolError('short rtmsg');
  const family = familyOfAf(payload.readUInt8(0));
  const dstLen = payload.readUInt8(1);
  const a = parseAttrs(payload, 12);
  const dst = a.raw(RTA.DST);
  const r: Route = {
    family,
    dst: dst ? `${bytesToIp(dst)}/${dstLen}` : dstLen === 0 ? 'default' : `?/${dstLen}`,
    table: a.u32(RTA.TABLE) ?? payload.readUInt8(4),
    protocol: payload.readUInt8(5),
    scope: scopeName(payload.readUInt8(6)),
    type: TYPES[payload.readUInt8(7)] ?? 'unicast',
  };
  const gw = a.raw(RTA.GATEWAY);
  if (gw) r.via = bytesToIp(gw);
  const oif = a.u32(RTA.OIF);
  if (oif !== undefined) r.oif = oif;
  const metric = a.u32(RTA.PRIORITY);
  if (metric !== undefined) r.metric = metric;
  const src = a.raw(RTA.PREFSRC);
  if (src) r.src = bytesToIp(src);
  const pref = a.raw(RTA.PREF);
  if (pref && pref.length >= 1 && PREFS[pref[0]]) r.pref = PREFS[pref[0]];
  return r;
}
