/**
 * Validation of every value that ends up in a dnsmasq file or argument. Each check returns the canonical
 * text or throws DnsmasqValueError. Nothing that passes can carry a newline, a comma where dnsmasq splits
 * fields, or a token dnsmasq would read as something else (a lease time, `ignore`, a tag).
 */
import { canonicalIpv4, canonicalIpv6, cidrBounds, cidrContains, ipToBigInt, networkAddress } from '../../util/ip.js';
import { DnsmasqValueError } from './errors.js';

const LABEL_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

export function checkMac(mac: string, field = 'mac'): string {
  if (typeof mac !== 'string' || !/^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$/.test(mac)) {
    throw new DnsmasqValueError(field, mac, 'not a MAC address (xx:xx:xx:xx:xx:xx)');
  }
  const m = mac.toLowerCase().replace(/-/g, ':');
  if (parseInt(m.slice(0, 2), 16) & 1) throw new DnsmasqValueError(field, mac, 'a multicast MAC address');
  if (m === '00:00:00:00:00:00') throw new DnsmasqValueError(field, mac, 'the all-zero MAC address');
  return m;
}

export function checkIpv4(ip: string, field = 'ip'): string {
  const v = typeof ip === 'string' ? canonicalIpv4(ip) : undefined;
  if (!v) throw new DnsmasqValueError(field, ip, 'not an IPv4 address');
  return v;
}

export function checkIpv6(ip: string, field = 'ip6'): string {
  const v = typeof ip === 'string' ? canonicalIpv6(ip) : undefined;
  if (!v) throw new DnsmasqValueError(field, ip, 'not an IPv6 address');
  return v;
}

/** An IPv4 subnet as network address + prefix length (from "a.b.c.d/n"). */
export interface Subnet4 {
  network: string;
  prefixLen: number;
}

export function parseSubnet4(cidr: string, field = 'cidr'): Subnet4 {
  const [addr, len, extra] = typeof cidr === 'string' ? cidr.split('/') : [];
  const a = addr !== undefined ? canonicalIpv4(addr) : undefined;
  const n = Number(len);
  if (!a || extra !== undefined || !/^\d{1,2}$/.test(len ?? '') || n < 1 || n > 30) {
    throw new DnsmasqValueError(field, cidr, 'not an IPv4 subnet a.b.c.d/1-30');
  }
  return { network: networkAddress({ family: 4, address: a, prefix: n }), prefixLen: n };
}

/** A host address of the subnet: inside it, and neither its network nor its broadcast address. */
export function checkHostInSubnet(ip: string, subnet: Subnet4, field = 'ip'): string {
  const v = checkIpv4(ip, field);
  const c = { family: 4 as const, address: subnet.network, prefix: subnet.prefixLen };
  if (!cidrContains(c, v)) throw new DnsmasqValueError(field, ip, `not inside ${subnet.network}/${subnet.prefixLen}`);
  const { lo, hi } = cidrBounds(c);
  const n = ipToBigInt(v);
  if (n === lo || n === hi) throw new DnsmasqValueError(field, ip, `the network or broadcast address of ${subnet.network}/${subnet.prefixLen}`);
  return v;
}

/** RFC 1123 host name (one or more labels, at most 253 characters). */
export function checkHostname(name: string, field = 'hostname'): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 253 || !name.split('.').every((l) => LABEL_RE.test(l))) {
    throw new DnsmasqValueError(field, name, 'not a host name (RFC 1123: letters, digits, inner hyphens; labels of 1-63)');
  }
  return name;
}

/**
 * A host name as it goes into a dhcp-host line: RFC 1123, and not a word dnsmasq parses as something else
 * there (a lease time such as `3600`, `12h`, `infinite`; `ignore`).
 */
export function checkDhcpHostname(name: string, field = 'hostname'): string {
  checkHostname(name, field);
  const first = name.split('.')[0];
  if (/^\d+[smhdw]?$/i.test(first) || /^(infinite|ignore|deprecated)$/i.test(first)) {
    throw new DnsmasqValueError(field, name, 'dnsmasq would read it as a lease time or keyword; use a name that starts with a letter');
  }
  return name;
}

export function checkDomain(domain: string, field = 'domain'): string {
  if (typeof domain !== 'string' || domain.length === 0 || domain.length > 253 || !domain.split('.').every((l) => LABEL_RE.test(l))) {
    throw new DnsmasqValueError(field, domain, 'not a domain name (RFC 1123)');
  }
  return domain.toLowerCase();
}

/** A dnsmasq tag name of ours: letters, digits, '.', '_', '-' (no ',' ':' or spaces). */
export function checkTag(tag: string, field = 'tag'): string {
  if (typeof tag !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/.test(tag)) {
    throw new DnsmasqValueError(field, tag, 'not a tag (letters, digits, ".", "_", "-")');
  }
  return tag;
}

export function checkIfname(name: string, field = 'interface'): string {
  if (typeof name !== 'string' || name.length < 1 || Buffer.byteLength(name) > 15 || !/^[A-Za-z0-9._-]+$/.test(name)) {
    throw new DnsmasqValueError(field, name, 'not an interface name');
  }
  return name;
}

/** An absolute path usable in a dnsmasq argument (dnsmasq splits some options at commas). */
export function checkPath(path: string, field = 'path'): string {
  if (typeof path !== 'string' || !path.startsWith('/') || !/^[A-Za-z0-9/._+@=-]+$/.test(path)) {
    throw new DnsmasqValueError(field, path, 'not an absolute path of letters, digits and / . _ + @ = -');
  }
  return path;
}
