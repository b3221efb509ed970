/**
 * Pure rendering of one router's dnsmasq: its command line and the files it re-reads on SIGHUP.
 *
 * What needs a restart lives on the command line (interfaces, DHCP ranges and their tags, the DNS port,
 * router advertisements, the per-NIC tags); what can change under a running dnsmasq lives in files that
 * SIGHUP re-reads: static reservations (dhcp-hostsfile), options (dhcp-optsfile), DNS names (addn-hosts)
 * and upstream servers (servers-file).
 *
 * Per-NIC options are keyed by a tag set with `--dhcp-mac=set:TAG,MAC` on the command line, never with
 * `set:` inside the hosts file: dnsmasq 2.90 crashes on SIGHUP when a dhcp-hostsfile entry carrying `set:`
 * has served a lease (reproduced here; known upstream as the netid free on reload). An option tagged by a
 * host tag overrides the same option tagged by the subnet's range tag (dnsmasq gives context tags the lowest
 * precedence), which is how `default-nic false` sends an empty router option.
 */
import { join } from 'node:path';
import { encodeDhcpOption } from './dhcp-options.js';
import { DnsmasqValueError } from './errors.js';
import { netmask } from '../../util/ip.js';
import {
  checkDhcpHostname, checkDomain, checkHostInSubnet, checkHostname, checkIfname, checkIpv4, checkIpv6, checkMac,
  checkPath, checkTag, type Subnet4,
} from './values.js';
import { compareText } from '../../util/compare.js';

/** dnsmasq's program name, looked up in the child PATH (lib/sys/children.ts) when it is started. */
export const DNSMASQ_BIN = 'dnsmasq';

/** Files of one dnsmasq in its runtime directory. */
export interface DnsmasqPaths {
  dir: string;
  pid: string;
  leases: string;
  log: string;
  hosts: string;
  opts: string;
  names: string;
  servers: string;
  /** sha256 of the command line of the running instance. */
  cmdlineHash: string;
}

export function dnsmasqPaths(dir: string): DnsmasqPaths {
  checkPath(dir, 'runtime directory');
  return {
    dir,
    pid: join(dir, 'dnsmasq.pid'),
    leases: join(dir, 'dnsmasq.leases'),
    log: join(dir, 'dnsmasq.log'),
    hosts: join(dir, 'dhcp-hosts'),
    opts: join(dir, 'dhcp-opts'),
    names: join(dir, 'dns-hosts'),
    servers: join(dir, 'dns-servers'),
    cmdlineHash: join(dir, 'cmdline.sha256'),
  };
}

/** A static reservation (dhcp-host). */
export interface HostSpec {
  mac: string;
  ip: string;
  hostname?: string;
  /** Options for this NIC only (code → value); `router: false` sends an empty router option. */
  options?: Record<string, string>;
  /** false: no router option (a secondary NIC must not get a competing default route). */
  router?: boolean;
}

/** A DNS name published in addn-hosts. */
export interface NameSpec {
  ip?: string;
  ip6?: string;
  names: string[];
}

/** One guest subnet served on one interface. */
export interface TierSpec {
  /** Range tag (unique per instance). */
  tag: string;
  ifname: string;
  subnet: Subnet4;
  /** Option 3; undefined → none. */
  router?: string;
  /** Option 6, in order. */
  dnsServers: string[];
  domain?: string;
  /** DNS answers on this interface (else port 53 is closed to it by the caller's firewall rule). */
  dns: boolean;
  /** Router advertisements (SLAAC + RDNSS) on this interface. */
  ipv6?: { prefixLen: number; dnsServers: string[] };
  hosts: HostSpec[];
  names: NameSpec[];
}

export interface DnsmasqSpec {
  paths: DnsmasqPaths;
  /** Account dnsmasq drops to after binding. */
  user: string;
  tiers: TierSpec[];
  /** Upstream resolvers for names we do not hold. */
  upstream: string[];
  /** Lease time of the DHCP ranges (dnsmasq syntax: 12h, 3600, infinite). */
  leaseTime?: string;
}

/** A router's dnsmasq as rendered from its model: the command line and the files it reads. */
export interface RenderedDnsmasq {
  /** Arguments after the binary. */
  argv: string[];
  /** File contents by path. */
  files: Record<string, string>;
  /** Whether DNS (port 53) is served at all. */
  dnsPort: 0 | 53;
}

/** Tag of a NIC with options of its own. */
export const nicTag = (mac: string): string => `nic-${mac.replace(/:/g, '')}`;

export function renderDnsmasq(spec: DnsmasqSpec): RenderedDnsmasq {
  const p = spec.paths;
  const user = spec.user;
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(user)) throw new DnsmasqValueError('user', user, 'not a user name');
  const leaseTime = spec.leaseTime ?? '12h';
  if (!/^(\d{1,9}[smhdw]?|infinite)$/.test(leaseTime)) throw new DnsmasqValueError('lease time', leaseTime, 'not a dnsmasq lease time');
  const tiers = [...spec.tiers].sort((a, b) => compareText(a.tag, b.tag));
  const dnsPort: 0 | 53 = tiers.some((t) => t.dns) ? 53 : 0;

  const argv = [
    '--conf-file=/dev/null', // never read /etc/dnsmasq.conf
    `--pid-file=${p.pid}`,
    `--dhcp-leasefile=${p.leases}`,
    `--log-facility=${p.log}`,
    `--user=${user}`,
    `--port=${dnsPort}`,
    '--bind-dynamic',
    '--except-interface=lo',
    '--no-hosts',
    '--no-resolv',
    `--servers-file=${p.servers}`,
    `--addn-hosts=${p.names}`,
    `--dhcp-hostsfile=${p.hosts}`,
    `--dhcp-optsfile=${p.opts}`,
    '--dhcp-authoritative',
    '--dhcp-lease-max=65535',
    '--localise-queries',
    '--domain-needed',
    '--bogus-priv',
    // names come from CloudStack only (dhcp-host, addn-hosts): a guest's DHCP host name (option 12) or FQDN
    // (81) would otherwise enter DNS — `wpad`, `login`, … — for a reservation without a name of its own
    '--dhcp-ignore-names',
  ];
  const hostLines: string[] = [];
  const optLines: string[] = [];
  const nameLines: string[] = [];
  const seenTags = new Set<string>();
  const seenMacs = new Set<string>();
  const nicTags: string[] = [];
  let ra = false;

  for (const t of tiers) {
    const tag = checkTag(t.tag, 'tier tag');
    if (seenTags.has(tag)) throw new DnsmasqValueError('tier tag', tag, 'used twice');
    seenTags.add(tag);
    const ifname = checkIfname(t.ifname);
    argv.push(`--interface=${ifname}`);
    argv.push(`--dhcp-range=set:${tag},${checkIpv4(t.subnet.network, 'subnet')},static,${netmask(t.subnet.prefixLen)},${leaseTime}`);
    if (t.ipv6) {
      ra = true;
      const plen = t.ipv6.prefixLen;
      if (!Number.isInteger(plen) || plen < 64 || plen > 120) throw new DnsmasqValueError('IPv6 prefix length', plen, 'router advertisements need a prefix of 64-120 (SLAAC needs 64)');
      // addresses come from the interface (constructor:), RDNSS/DNSSL from the tagged option6 lines below
      argv.push(`--dhcp-range=set:${tag},::,constructor:${ifname},ra-stateless,${plen},${leaseTime}`);
    }
    // an empty option 3/6 stops dnsmasq offering its own address by default (it would, for DNS, whenever
    // another tier has port 53 open)
    optLines.push(t.router !== undefined ? `tag:${tag},3,${checkIpv4(t.router, 'gateway')}` : `tag:${tag},3`);
    optLines.push(t.dnsServers.length ? `tag:${tag},6,${t.dnsServers.map((d) => checkIpv4(d, 'dns')).join(',')}` : `tag:${tag},6`);
    if (t.domain) optLines.push(`tag:${tag},15,"${checkDomain(t.domain)}"`);
    if (t.ipv6) {
      // empty: no RDNSS at all (dnsmasq would advertise its link-local address whenever port 53 is open)
      const servers = t.ipv6.dnsServers.map((d) => `[${checkIpv6(d, 'dns6')}]`).join(',');
      optLines.push(servers ? `tag:${tag},option6:dns-server,${servers}` : `tag:${tag},option6:dns-server`);
    }
    if (t.ipv6 && t.domain) optLines.push(`tag:${tag},option6:domain-search,${checkDomain(t.domain)}`);

    const seenIps = new Set<string>();
    for (const h of [...t.hosts].sort((a, b) => compareText(a.mac, b.mac))) {
      const mac = checkMac(h.mac);
      if (seenMacs.has(mac)) throw new DnsmasqValueError('mac', mac, 'reserved twice');
      seenMacs.add(mac);
      const ip = checkHostInSubnet(h.ip, t.subnet);
      if (seenIps.has(ip)) throw new DnsmasqValueError('ip', ip, 'reserved for two MAC addresses');
      seenIps.add(ip);
      // dhcp-host takes a single label (option 12); the full name is in DNS
      const label = h.hostname !== undefined ? checkDhcpHostname(h.hostname).split('.')[0] : undefined;
      hostLines.push(label ? `${mac},${ip},${label}` : `${mac},${ip}`);
      const opts = Object.entries(h.options ?? {}).map(([k, v]) => encodeDhcpOption(k, v)).sort((a, b) => a.code - b.code);
      const noRouter = h.router === false && !opts.some((o) => o.code === 3);
      if (noRouter || opts.length) {
        const nt = nicTag(mac);
        nicTags.push(`--dhcp-mac=set:${nt},${mac}`);
        if (noRouter) optLines.push(`tag:${nt},3`);
        for (const o of opts) optLines.push(`tag:${nt},${o.text}`);
      }
    }
    if (t.dns) {
      for (const n of t.names) {
        if (!n.names.length) continue;
        const names = n.names.map((x) => checkHostname(x, 'DNS name'));
        if (n.ip) nameLines.push(`${checkIpv4(n.ip, 'DNS address')} ${names.join(' ')}`);
        if (n.ip6) nameLines.push(`${checkIpv6(n.ip6, 'DNS address')} ${names.join(' ')}`);
      }
    }
  }
  if (ra) argv.push('--enable-ra');
  argv.push(...nicTags);

  const domains = [...new Set(tiers.filter((t) => t.dns && t.domain).map((t) => checkDomain(t.domain!)))].sort();
  const upstream = [...new Set(spec.upstream.map((u) => checkIpv4(u, 'upstream DNS')))];
  const serverLines = [
    // names in a guest domain are answered from our records only, never forwarded
    ...domains.map((d) => `server=/${d}/`),
    ...upstream.map((u) => `server=${u}`),
  ];

  const text = (lines: string[]) => (lines.length ? `${lines.join('\n')}\n` : '');
  return {
    argv,
    dnsPort,
    files: {
      [p.hosts]: text(hostLines),
      [p.opts]: text(optLines),
      [p.names]: text(nameLines),
      [p.servers]: text(serverLines),
    },
  };
}
