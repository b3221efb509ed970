/**
 * Validators for single argument values. Each takes the raw text and returns the canonical typed
 * value or throws BadValue with a problem description that does NOT repeat the argument name
 * (the field reader prefixes it: `--public-port: "99999" is not a port (1-65535)`).
 */
import { canonicalIpv4, canonicalIpv6, parseCidr as cidrFromText, type Cidr, type IpFamily } from '../../util/ip.js';
import type { GuestType, NetworkState, PortRange, Protocol, Segment } from './types.js';
import { GUEST_TYPES, NETWORK_STATES } from './types.js';

/**
 * A value refused by a parser of this module: the message says what is wrong, without the argument's name (the
 * FieldReader adds it: `--public-port: "99999" is not a port (1-65535)`).
 */
export class BadValue extends Error {
  constructor(problem: string) {
    super(problem);
    this.name = 'BadValue';
  }
}

const q = (s: string) => JSON.stringify(s.length > 80 ? `${s.slice(0, 77)}...` : s);

/** Lowest VLAN id. */
export const VLAN_MIN = 1;
/** Highest VLAN id. */
export const VLAN_MAX = 4094;
/** Lowest VXLAN VNI. */
export const VNI_MIN = 1;
/** Highest VXLAN VNI. */
export const VNI_MAX = 16777215;

/** CloudStack ids are numeric; UUID-like ids are accepted too. Never a path component risk. */
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** A CloudStack id: letters, digits, '.', '_', '-' (not first), at most 64 (BadValue otherwise). */
export function parseId(text: string): string {
  if (!ID_RE.test(text)) throw new BadValue(`${q(text)} is not an id (letters, digits, '.', '_', '-'; at most 64)`);
  return text;
}

const UINT_RE = /^(0|[1-9][0-9]*)$/;

function parseIntIn(text: string, min: number, max: number, what: string): number {
  if (!UINT_RE.test(text) || Number(text) < min || Number(text) > max) {
    throw new BadValue(`${q(text)} is not ${what} (${min}-${max})`);
  }
  return Number(text);
}

/** A VLAN id 1–4094. */
export function parseVlanId(text: string): number {
  return parseIntIn(text, VLAN_MIN, VLAN_MAX, 'a VLAN id');
}

/** A VXLAN VNI 1–16777215. */
export function parseVni(text: string): number {
  return parseIntIn(text, VNI_MIN, VNI_MAX, 'a VXLAN VNI');
}

/**
 * What a bare number in a guest segment value means (physical-network detail `guest.network.isolation`):
 * CloudStack strips the scheme of the broadcast URI, so a VXLAN network arrives as `"5001"`.
 */
export type SegmentKind = 'vlan' | 'vxlan';

/**
 * `100`, `vlan://100`, `untagged`, `vlan://untagged`, `vxlan://5000`; with `bare` = vxlan a bare number is a
 * VNI (`5001` → vxlan://5001). An explicit scheme always wins.
 */
export function parseSegment(text: string, bare: SegmentKind = 'vlan'): Segment {
  const t = text.trim();
  const m = /^([A-Za-z]+):\/\/(.*)$/.exec(t);
  const scheme = m ? m[1].toLowerCase() : undefined;
  const rest = m ? m[2] : t;
  if (scheme === undefined && bare === 'vxlan' && UINT_RE.test(rest)) return { kind: 'vxlan', vni: parseVni(rest) };
  if (scheme === undefined || scheme === 'vlan') {
    if (rest.toLowerCase() === 'untagged') return { kind: 'untagged' };
    if (!UINT_RE.test(rest)) throw new BadValue(`${q(text)} is not a VLAN (1-4094, vlan://N, untagged or vxlan://VNI)`);
    if (scheme === undefined && Number(rest) > VLAN_MAX && Number(rest) <= VNI_MAX) {
      throw new BadValue(`${q(text)} is not a VLAN id (1-4094); a VXLAN network needs vxlan://${rest} or the physical-network detail guest.network.isolation=vxlan`);
    }
    return { kind: 'vlan', id: parseVlanId(rest) };
  }
  if (scheme === 'vxlan') return { kind: 'vxlan', vni: parseVni(rest) };
  throw new BadValue(`${q(text)}: unsupported segment scheme "${scheme}://" (vlan:// or vxlan://)`);
}

/** An isolation method: `vlan` or `vxlan`. */
export function parseSegmentKind(text: string): SegmentKind {
  const t = text.trim().toLowerCase();
  if (t !== 'vlan' && t !== 'vxlan') throw new BadValue(`${q(text)} is not an isolation method (vlan or vxlan)`);
  return t;
}

/** Most items a segment range list may have. */
export const SEGMENT_RANGES_MAX = 64;

/**
 * Segment ids the extension may allocate: `5000-5999`, `100-199,300`, items separated by ',', ';' or
 * blanks; each within the kind's bounds, start ≤ end.
 */
export function parseSegmentRanges(text: string, kind: SegmentKind): Array<[number, number]> {
  const items = text.split(/[,;\s]+/).filter((x) => x !== '');
  if (items.length === 0) throw new BadValue(`${q(text)} is not a list of ${kind === 'vlan' ? 'VLAN' : 'VNI'} ranges (e.g. 5000-5999)`);
  if (items.length > SEGMENT_RANGES_MAX) throw new BadValue(`${q(text)}: at most ${SEGMENT_RANGES_MAX} ranges`);
  const one = kind === 'vlan' ? parseVlanId : parseVni;
  return items.map((item) => {
    const m = /^([^-]+)-([^-]+)$/.exec(item);
    const [a, b] = m ? [one(m[1]), one(m[2])] : [one(item), one(item)];
    if (a > b) throw new BadValue(`${q(item)} is not a range (start must not exceed end)`);
    return [a, b] as [number, number];
  });
}

/** A strict dotted-quad IPv4 address, canonical. */
export function parseIpv4(text: string): string {
  const v = canonicalIpv4(text);
  if (!v) throw new BadValue(`${q(text)} is not an IPv4 address`);
  return v;
}

/** An IPv6 address, canonical (RFC 5952). */
export function parseIpv6(text: string): string {
  const v = canonicalIpv6(text);
  if (!v) throw new BadValue(`${q(text)} is not an IPv6 address`);
  return v;
}

/** An address/prefix of `family`, the address canonical (host bits are kept). */
export function parseCidr(text: string, family: IpFamily): Cidr {
  const c = cidrFromText(text);
  if (!c || c.family !== family) throw new BadValue(`${q(text)} is not an IPv${family} CIDR (address/prefix)`);
  return c;
}

/** Comma (or space) separated address list, e.g. dns "8.8.8.8,1.1.1.1". */
export function parseIpList(text: string, family: IpFamily): string[] {
  const items = text.split(/[,\s]+/).filter((s) => s !== '');
  if (items.length === 0) throw new BadValue(`${q(text)} is not a list of IPv${family} addresses`);
  return items.map((s) => (family === 4 ? parseIpv4(s) : parseIpv6(s)));
}

/** Unicast MAC, ':' or '-' separated; returned lower case with ':'. */
export function parseMac(text: string): string {
  if (!/^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$/.test(text)) {
    throw new BadValue(`${q(text)} is not a MAC address (xx:xx:xx:xx:xx:xx)`);
  }
  const mac = text.toLowerCase().replace(/-/g, ':');
  if (parseInt(mac.slice(0, 2), 16) & 1) throw new BadValue(`${q(text)} is a multicast MAC address`);
  if (mac === '00:00:00:00:00:00') throw new BadValue(`${q(text)} is the all-zero MAC address`);
  return mac;
}

const LABEL_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** RFC 1123 host name (one or more labels). */
export function parseHostname(text: string): string {
  if (text.length > 253 || !text.split('.').every((l) => LABEL_RE.test(l))) {
    throw new BadValue(`${q(text)} is not a host name (RFC 1123)`);
  }
  return text;
}

/** Network domain suffix: same rules as a host name. */
export function parseDomain(text: string): string {
  if (text.length > 253 || !text.split('.').every((l) => LABEL_RE.test(l))) {
    throw new BadValue(`${q(text)} is not a domain name (RFC 1123)`);
  }
  return text;
}

/** A port 1–65535. */
export function parsePort(text: string): number {
  if (!UINT_RE.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new BadValue(`${q(text)} is not a port (1-65535)`);
  }
  return Number(text);
}

/** `80`, `80:90` (iptables style, upstream README) or `80-90` (CloudStack docs). */
export function parsePortRange(text: string): PortRange {
  const m = /^([^:-]+)[:-]([^:-]+)$/.exec(text);
  if (!m) {
    const p = parsePort(text);
    return { start: p, end: p };
  }
  const start = parsePort(m[1]);
  const end = parsePort(m[2]);
  if (start > end) throw new BadValue(`${q(text)} is not a port range (start must not exceed end)`);
  return { start, end };
}

/** `tcp` or `udp` (any case). */
export function parseProtocol(text: string): Protocol {
  const p = text.toLowerCase();
  if (p !== 'tcp' && p !== 'udp') throw new BadValue(`${q(text)} is not a protocol (tcp or udp)`);
  return p;
}

/** `true` or `false` (any case). */
export function parseBool(text: string): boolean {
  const t = text.toLowerCase();
  if (t === 'true') return true;
  if (t === 'false') return false;
  throw new BadValue(`${q(text)} is not a boolean (true or false)`);
}

/** `isolated`, `shared` or `l2` (any case). */
export function parseGuestType(text: string): GuestType {
  const t = text.toLowerCase() as GuestType;
  if (!GUEST_TYPES.includes(t)) throw new BadValue(`${q(text)} is not a guest type (${GUEST_TYPES.join(', ')})`);
  return t;
}

/** A CloudStack network state (any case), lower case. */
export function parseNetworkState(text: string): NetworkState {
  const t = text.toLowerCase() as NetworkState;
  if (!NETWORK_STATES.includes(t)) throw new BadValue(`${q(text)} is not a network state (${NETWORK_STATES.join(', ')})`);
  return t;
}

/**
 * Linux interface name for a host device (guest.network.device …): 1-15 bytes, no '/', ':' or
 * whitespace, not "." or "..".
 */
export function parseIfName(text: string): string {
  if (text.length < 1 || Buffer.byteLength(text) > 15 || /[/:\s]/.test(text) || text === '.' || text === '..') {
    throw new BadValue(`${q(text)} is not a network interface name (1-15 characters, no '/', ':' or spaces)`);
  }
  return text;
}

/** Name usable for a file under /run/netns and an nft-friendly identifier. */
export function parseNamespaceName(text: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(text)) {
    throw new BadValue(`${q(text)} is not a namespace name (letters, digits, '.', '_', '-')`);
  }
  return text;
}

/** An extension name: letters, digits, '.', '_', '-' (not first), at most 64. */
export function parseExtensionName(text: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(text)) {
    throw new BadValue(`${q(text)} is not an extension name (letters, digits, '.', '_', '-')`);
  }
  return text;
}

/** Longest time limit a command may be given (one day). */
export const TIMEOUT_MAX_SECONDS = 86400;

/** A time limit in seconds: 0 < t ≤ TIMEOUT_MAX_SECONDS, decimals allowed. */
export function parseTimeoutSeconds(text: string): number {
  if (!/^[0-9]+(\.[0-9]+)?$/.test(text) || Number(text) <= 0 || Number(text) > TIMEOUT_MAX_SECONDS) {
    throw new BadValue(`${q(text)} is not a timeout in seconds (0 < t <= ${TIMEOUT_MAX_SECONDS})`);
  }
  return Number(text);
}

/** Custom action name (also a hook file name component upstream). */
export function parseActionName(text: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(text)) {
    throw new BadValue(`${q(text)} is not an action name (letters, digits, '.', '_', '-')`);
  }
  return text;
}

/** Policy-routing table id (rt_tables): 1-4294967295 minus the reserved 253/254/255. */
export function parseTableId(text: string): number {
  const n = parseIntIn(text, 1, 4294967295, 'a routing table id');
  if (n === 253 || n === 254 || n === 255) throw new BadValue(`${q(text)} is a reserved routing table id (default/main/local)`);
  return n;
}

/** Policy-routing table: a name or a numeric id. */
export function parseTableRef(text: string): string {
  if (UINT_RE.test(text)) return String(parseIntIn(text, 1, 4294967295, 'a routing table id'));
  return parseTableName(text);
}

/** A policy-routing table name (pbr-*): a letter or '_' first, at most 32, not a reserved table's name. */
export function parseTableName(text: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/.test(text) || ['local', 'main', 'default', 'unspec'].includes(text)) {
    throw new BadValue(`${q(text)} is not a routing table name (letter first; not local/main/default/unspec)`);
  }
  return text;
}

/** `ip route`/`ip rule` argument text of the PBR actions: words of a safe alphabet only. */
export function parseRouteSpec(text: string): string {
  const t = text.trim().replace(/\s+/g, ' ');
  if (t === '' || t.length > 256 || !/^[A-Za-z0-9 .:/_-]+$/.test(t)) {
    throw new BadValue(`${q(text)} is not a route/rule specification (letters, digits, ' . : / _ -')`);
  }
  return t;
}

/** DHCP option key: numeric code 1-254, or a dnsmasq name `option:NAME` / `option6:NAME`. */
export function parseDhcpOptionKey(text: string): string {
  if (UINT_RE.test(text)) return String(parseIntIn(text, 1, 254, 'a DHCP option code'));
  if (/^option6?:[a-z0-9-]{1,40}$/.test(text)) return text;
  throw new BadValue(`${q(text)} is not a DHCP option (code 1-254 or option:NAME)`);
}
