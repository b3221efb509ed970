/**
 * Real clients for the DHCP/DNS tests: guests without addresses, busybox udhcpc with a script that records
 * what it was given, busybox nslookup, a router-advertisement capture over a raw ICMPv6 socket, and a /proc
 * scan for dnsmasq processes.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { NetnsHandle } from '../../lib/netns/handle.js';
import { runInNetns } from '../../lib/sys/setns.js';
import * as libc from '../../lib/sys/libc.js';
import { Scratch, uid } from './topo.js';
import { pidsWhere } from './procs.js';

/** A guest namespace with one interface `eth0` (given MAC) plugged into `bridge`, no address. */
export function addGuest(s: Scratch, host: NetnsHandle, bridge: string, mac: string): { ns: string; hostEnd: string } {
  const ns = s.ns('g');
  const hostEnd = `tg${uid(6)}`;
  host.netlink.linkAdd({ kind: 'veth', name: hostEnd, master: bridge, up: true, peer: { name: 'eth0', namespace: { netns: ns }, up: true, mac } });
  const h = s.handle(ns);
  h.netlink.linkSetUp('lo');
  return { ns, hostEnd };
}

let scriptDir: string | undefined;
function udhcpcScript(): string {
  if (!scriptDir) {
    scriptDir = mkdtempSync(join(tmpdir(), 'nr-udhcpc-'));
    process.on('exit', () => rmSync(scriptDir!, { recursive: true, force: true }));
  }
  const path = join(scriptDir, 'record.sh');
  if (!existsSync(path)) {
    writeFileSync(path, [
      '#!/bin/sh',
      '# udhcpc event script: record what the server gave (bound/renew), optionally configure the address',
      'case "$1" in',
      '  bound|renew)',
      '    env > "$NR_DHCP_OUT.tmp" && mv "$NR_DHCP_OUT.tmp" "$NR_DHCP_OUT"',
      '    if [ "$NR_DHCP_CONFIGURE" = 1 ]; then busybox ip addr replace "$ip/$mask" dev "$interface"; fi',
      '    ;;',
      'esac',
      'exit 0',
      '',
    ].join('\n'), { mode: 0o755 });
  }
  return path;
}

/**
 * Run busybox udhcpc once in `ns` on `ifname` (`args`: more of its options, e.g. `-x hostname:NAME`, `-F FQDN`). Returns the variables of the bound event (ip, router, dns,
 * domain, hostname, optNNN for requested options, …) or undefined when no lease was obtained.
 */
export function udhcpc(ns: string, opts: { ifname?: string; request?: number[]; configure?: boolean; tries?: number; args?: string[] } = {}): Record<string, string> | undefined {
  const out = join(udhcpcScript(), '..', `env-${ns}-${uid(6)}`);
  const args = ['netns', 'exec', ns, 'busybox', 'udhcpc', '-i', opts.ifname ?? 'eth0', '-n', '-q', '-f', '-s', udhcpcScript(),
    '-t', String(opts.tries ?? 4), '-T', '1', ...(opts.request ?? []).flatMap((c) => ['-O', String(c)]), ...(opts.args ?? [])];
  spawnSync('ip', args, {
    encoding: 'utf8', timeout: 20_000,
    env: { ...process.env, NR_DHCP_OUT: out, NR_DHCP_CONFIGURE: opts.configure ? '1' : '0' },
  });
  if (!existsSync(out)) return undefined;
  const env: Record<string, string> = {};
  for (const line of readFileSync(out, 'utf8').split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
  }
  rmSync(out, { force: true });
  return env;
}

/** Addresses busybox nslookup gets for `name` of `type` from `server`, queried from `ns` ([] when none). */
export function nslookup(ns: string, server: string, name: string, type: 'A' | 'AAAA' = 'A'): string[] {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'busybox', 'nslookup', '-timeout=2', '-retry=1', `-type=${type}`, name, server], { encoding: 'utf8', timeout: 10_000 });
  const text = r.stdout ?? '';
  const at = text.indexOf('\nName:');
  if (at < 0) return [];
  return [...text.slice(at).matchAll(/^Address:\s*(\S+)$/gm)].map((x) => x[1]);
}

/** Pids of dnsmasq processes whose command line mentions `pathPart` (e.g. a state directory). */
export const dnsmasqPids = (pathPart: string): number[] =>
  pidsWhere(({ argv }) => argv[0]?.endsWith('dnsmasq') === true && argv.join('\0').includes(pathPart));

/** IPv4 leases (mac → ip) in a dnsmasq lease file. */
export function leaseFile(path: string): Map<string, string> {
  const m = new Map<string, string>();
  if (!existsSync(path)) return m;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length >= 4 && /^\d+$/.test(f[0]) && f[1].includes(':') && f[2].includes('.')) m.set(f[1], f[2]);
  }
  return m;
}

export interface RouterAdvert {
  managed: boolean;
  other: boolean;
  prefixes: Array<{ prefix: string; autonomous: boolean }>;
  rdnss: string[];
}

function ntop6(b: Buffer): string {
  const w: string[] = [];
  for (let i = 0; i < 16; i += 2) w.push(b.readUInt16BE(i).toString(16));
  return w.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::');
}

/**
 * Send a router solicitation from `ns` on `ifname` and return the first router advertisement received
 * (raw ICMPv6 socket bound to the interface), or undefined after `timeoutMs`.
 */
export async function routerAdvert(ns: string, ifname: string, timeoutMs = 4000): Promise<RouterAdvert | undefined> {
  const IPPROTO_ICMPV6 = 58;
  const IPPROTO_IPV6 = 41;
  const IPV6_MULTICAST_HOPS = 18;
  const SO_BINDTODEVICE = 25;
  const fd = runInNetns(ns, () => libc.socket(libc.AF_INET6, libc.SOCK_RAW | libc.SOCK_NONBLOCK, IPPROTO_ICMPV6));
  try {
    libc.setsockopt(fd, libc.SOL_SOCKET, SO_BINDTODEVICE, Buffer.from(`${ifname}\0`));
    libc.setsockoptInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 255); // ND messages must carry hop limit 255
    const h = NetnsHandle.open(ns);
    let ifindex: number;
    try {
      ifindex = h.netlink.indexOf(ifname);
    } finally {
      h.close();
    }
    const to = Buffer.alloc(28);
    to.writeUInt16LE(libc.AF_INET6, 0);
    Buffer.from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]).copy(to, 8);
    to.writeUInt32LE(ifindex, 24);
    // the solicitation leaves once the guest's link-local address has passed DAD (EADDRNOTAVAIL before)
    const ready = Date.now() + 5000;
    for (;;) {
      try {
        libc.sendto(fd, Buffer.from([133, 0, 0, 0, 0, 0, 0, 0]), to);
        break;
      } catch (e) {
        if (Date.now() > ready) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const buf = Buffer.alloc(2048);
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const n = libc.recvRaw(fd, buf);
      if (n < 0) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      if (buf[0] !== 134) continue;
      const ra: RouterAdvert = { managed: (buf[5] & 0x80) !== 0, other: (buf[5] & 0x40) !== 0, prefixes: [], rdnss: [] };
      for (let i = 16; i + 2 <= n && buf[i + 1] > 0; i += buf[i + 1] * 8) {
        const type = buf[i];
        const len = buf[i + 1] * 8;
        if (type === 3) ra.prefixes.push({ prefix: `${ntop6(buf.subarray(i + 16, i + 32))}/${buf[i + 2]}`, autonomous: (buf[i + 3] & 0x40) !== 0 });
        if (type === 25) for (let j = i + 8; j + 16 <= i + len; j += 16) ra.rdnss.push(ntop6(buf.subarray(j, j + 16)));
      }
      return ra;
    }
    return undefined;
  } finally {
    libc.close(fd);
  }
}
