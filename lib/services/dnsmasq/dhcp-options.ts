/**
 * DHCPv4 options as dnsmasq reads them in a dhcp-optsfile line (`tag:T,<code>,<value>`): which codes exist,
 * how dnsmasq types their values (its option table: address lists, names, RFC 1035 name lists, fixed-size
 * integers), and how a user's value is written so that dnsmasq reads back exactly that value.
 *
 * Values dnsmasq parses itself (addresses, integers, domain lists, hex bytes) are validated and written
 * canonically; anything else is written as a double-quoted string with `\` and `"` escaped, so commas,
 * `#` and spaces stay literal. Control characters are refused: a newline can never reach the file.
 */
import { DnsmasqValueError } from './errors.js';
import { checkDomain, checkIpv4 } from './values.js';

type Kind = 'addr' | 'name' | 'domains' | 'uint' | 'generic' | 'internal';

interface OptionInfo {
  name?: string;
  kind: Kind;
  /** uint: size in bytes. */
  size?: 1 | 2 | 4;
  /** name: must be a domain name. */
  domain?: boolean;
  why?: string;
}

/** dnsmasq 2.90's DHCPv4 option table (names as `dnsmasq --help dhcp` prints them). */
const OPTIONS: Record<number, OptionInfo> = {
  1: { name: 'netmask', kind: 'addr' },
  2: { name: 'time-offset', kind: 'uint', size: 4 },
  3: { name: 'router', kind: 'addr' },
  6: { name: 'dns-server', kind: 'addr' },
  7: { name: 'log-server', kind: 'addr' },
  9: { name: 'lpr-server', kind: 'addr' },
  12: { name: 'hostname', kind: 'internal', why: 'the host name comes from the reservation (--hostname)' },
  13: { name: 'boot-file-size', kind: 'uint', size: 2 },
  15: { name: 'domain-name', kind: 'name', domain: true },
  16: { name: 'swap-server', kind: 'addr' },
  17: { name: 'root-path', kind: 'name' },
  18: { name: 'extension-path', kind: 'name' },
  19: { name: 'ip-forward-enable', kind: 'uint', size: 1 },
  20: { name: 'non-local-source-routing', kind: 'uint', size: 1 },
  21: { name: 'policy-filter', kind: 'addr' },
  22: { name: 'max-datagram-reassembly', kind: 'uint', size: 2 },
  23: { name: 'default-ttl', kind: 'uint', size: 1 },
  26: { name: 'mtu', kind: 'uint', size: 2 },
  27: { name: 'all-subnets-local', kind: 'uint', size: 1 },
  28: { name: 'broadcast', kind: 'internal', why: 'derived from the subnet' },
  31: { name: 'router-discovery', kind: 'uint', size: 1 },
  32: { name: 'router-solicitation', kind: 'addr' },
  33: { name: 'static-route', kind: 'addr' },
  34: { name: 'trailer-encapsulation', kind: 'uint', size: 1 },
  35: { name: 'arp-timeout', kind: 'uint', size: 4 },
  36: { name: 'ethernet-encap', kind: 'uint', size: 1 },
  37: { name: 'tcp-ttl', kind: 'uint', size: 1 },
  38: { name: 'tcp-keepalive', kind: 'uint', size: 4 },
  40: { name: 'nis-domain', kind: 'name' },
  41: { name: 'nis-server', kind: 'addr' },
  42: { name: 'ntp-server', kind: 'addr' },
  43: { name: 'vendor-encap', kind: 'internal', why: 'vendor-encapsulated options need dnsmasq encap syntax' },
  44: { name: 'netbios-ns', kind: 'addr' },
  45: { name: 'netbios-dd', kind: 'addr' },
  46: { name: 'netbios-nodetype', kind: 'uint', size: 1 },
  47: { name: 'netbios-scope', kind: 'generic' },
  48: { name: 'x-windows-fs', kind: 'addr' },
  49: { name: 'x-windows-dm', kind: 'addr' },
  50: { name: 'requested-address', kind: 'internal' },
  51: { name: 'lease-time', kind: 'internal', why: 'the lease time is the server\'s' },
  52: { name: 'option-overload', kind: 'internal' },
  53: { name: 'message-type', kind: 'internal' },
  54: { name: 'server-identifier', kind: 'internal' },
  55: { name: 'parameter-request', kind: 'internal' },
  56: { name: 'message', kind: 'internal' },
  57: { name: 'max-message-size', kind: 'internal' },
  58: { name: 'T1', kind: 'uint', size: 4 },
  59: { name: 'T2', kind: 'uint', size: 4 },
  60: { name: 'vendor-class', kind: 'generic' },
  61: { name: 'client-id', kind: 'internal' },
  64: { name: 'nis+-domain', kind: 'name' },
  65: { name: 'nis+-server', kind: 'addr' },
  66: { name: 'tftp-server', kind: 'name' },
  67: { name: 'bootfile-name', kind: 'name' },
  68: { name: 'mobile-ip-home', kind: 'addr' },
  69: { name: 'smtp-server', kind: 'addr' },
  70: { name: 'pop3-server', kind: 'addr' },
  71: { name: 'nntp-server', kind: 'addr' },
  74: { name: 'irc-server', kind: 'addr' },
  77: { name: 'user-class', kind: 'generic' },
  80: { name: 'rapid-commit', kind: 'internal' },
  81: { name: 'FQDN', kind: 'internal' },
  82: { name: 'agent-id', kind: 'internal' },
  93: { name: 'client-arch', kind: 'uint', size: 2 },
  94: { name: 'client-interface-id', kind: 'generic' },
  97: { name: 'client-machine-id', kind: 'generic' },
  100: { name: 'posix-timezone', kind: 'name' },
  101: { name: 'tzdb-timezone', kind: 'name' },
  108: { name: 'ipv6-only', kind: 'uint', size: 4 },
  118: { name: 'subnet-select', kind: 'internal' },
  119: { name: 'domain-search', kind: 'domains' },
  120: { name: 'sip-server', kind: 'generic' },
  121: { name: 'classless-static-route', kind: 'generic' },
  125: { name: 'vendor-id-encap', kind: 'generic' },
  150: { name: 'tftp-server-address', kind: 'addr' },
};

const BY_NAME = new Map(Object.entries(OPTIONS).filter(([, o]) => o.name).map(([c, o]) => [o.name!.toLowerCase(), Number(c)]));

/**
 * Resolve an option key — a code 1-254 or `option:NAME` — to its code. `option6:` keys are refused: a
 * per-NIC DHCPv6 option has no client identity to attach to under stateless DHCPv6.
 */
export function dhcpOptionCode(key: string): number {
  const field = 'DHCP option';
  if (typeof key !== 'string') throw new DnsmasqValueError(field, key, 'not an option code');
  let code: number;
  if (/^(0|[1-9][0-9]{0,2})$/.test(key)) code = Number(key);
  else if (/^option:[A-Za-z0-9+-]{1,40}$/.test(key)) {
    const c = BY_NAME.get(key.slice(7).toLowerCase());
    if (c === undefined) throw new DnsmasqValueError(field, key, 'unknown option name (see `dnsmasq --help dhcp`)');
    code = c;
  } else if (key.startsWith('option6:')) {
    throw new DnsmasqValueError(field, key, 'per-NIC DHCPv6 options are not supported (IPv6 is stateless: router advertisements)');
  } else throw new DnsmasqValueError(field, key, 'not a DHCP option (code 1-254 or option:NAME)');
  if (code < 1 || code > 254) throw new DnsmasqValueError(field, key, 'option codes are 1-254');
  const info = OPTIONS[code];
  if (info?.kind === 'internal') throw new DnsmasqValueError(field, key, `option ${code} (${info.name}) is set by the server itself${info.why ? `: ${info.why}` : ''}`);
  return code;
}

const CONTROL = /[\u0000-\u001f\u007f]/;
const IPV4_LIST = /^\d{1,3}(\.\d{1,3}){3}(\s*,\s*\d{1,3}(\.\d{1,3}){3})*$/;
const HEX_BYTES = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){0,254}$/;
const UINT = /^(0|[1-9][0-9]{0,9})$/;

/** A double-quoted dnsmasq string: `\` and `"` escaped, everything else literal. */
export function quoteDnsmasqString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function addrList(field: string, value: string): string {
  if (value.trim() === '') return '';
  const items = value.split(',').map((x) => x.trim());
  if (items.length > 63) throw new DnsmasqValueError(field, value, 'at most 63 addresses fit in an option');
  return items.map((x) => checkIpv4(x, field)).join(',');
}

/**
 * The `<code>[,<value>]` text of a dhcp-optsfile line for one option (the caller prefixes `tag:T,`).
 * Throws DnsmasqValueError for anything dnsmasq would reject or misread.
 */
export function encodeDhcpOption(key: string, value: string): { code: number; text: string } {
  const code = dhcpOptionCode(key);
  const field = `DHCP option ${code}`;
  if (typeof value !== 'string') throw new DnsmasqValueError(field, value, 'the value must be a string');
  if (CONTROL.test(value)) throw new DnsmasqValueError(field, value, 'control characters (newline, tab, …) are not allowed');
  if (Buffer.byteLength(value) > 255) throw new DnsmasqValueError(field, value, 'longer than the 255 bytes an option can hold');
  const info = OPTIONS[code] ?? { kind: 'generic' as const };
  const withValue = (v: string) => ({ code, text: v === '' ? String(code) : `${code},${v}` });
  switch (info.kind) {
    case 'addr':
      // an empty address option is meaningful: "send this option empty" (e.g. 3: no router)
      return withValue(addrList(field, value));
    case 'uint': {
      const max = info.size === 1 ? 255 : info.size === 2 ? 65535 : 4294967295;
      if (!UINT.test(value) || Number(value) > max) throw new DnsmasqValueError(field, value, `not an integer 0-${max}`);
      return withValue(value);
    }
    case 'domains': {
      const items = value.split(',').map((x) => x.trim());
      return withValue(items.map((d) => checkDomain(d, field)).join(','));
    }
    case 'name':
      if (value === '') throw new DnsmasqValueError(field, value, 'empty');
      return withValue(quoteDnsmasqString(info.domain ? checkDomain(value, field) : value));
    default:
      if (value === '') throw new DnsmasqValueError(field, value, 'empty');
      if (IPV4_LIST.test(value)) return withValue(addrList(field, value));
      if (UINT.test(value) || HEX_BYTES.test(value)) return withValue(value);
      return withValue(quoteDnsmasqString(value));
  }
}

/** Canonical form of a NIC's option set (code → value), validated; keys sorted numerically. */
export function normalizeDhcpOptions(options: Record<string, string>): Record<string, string> {
  if (!options || typeof options !== 'object' || Array.isArray(options)) throw new DnsmasqValueError('DHCP options', options, 'expected an object {"<code>": "<value>"}');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(options)) {
    const { code } = encodeDhcpOption(k, v);
    if (out[code] !== undefined) throw new DnsmasqValueError('DHCP options', k, `option ${code} is given twice`);
    out[code] = v;
  }
  return out;
}
