/**
 * Benchmark topology: a simulated KVM host (a namespace whose `eth1` is a veth to an "upstream"
 * namespace holding the public gateways), in which routers plug their host-side links. Every contestant
 * of a comparison gets its own host, so their bridges and links never meet. Everything lives in the
 * benchmark's sandbox and is deleted at the end.
 */
import { addNetns, deleteNetns, netnsExists, listNetns } from '../../lib/netns/namespaces.js';
import { NetnsHandle } from '../../lib/netns/handle.js';

export const PUBLIC_GW = '203.0.113.1';
export const PUBLIC_GW2 = '203.0.113.2';
export const PUBLIC_CIDR = '203.0.113.0/24';
export const UPLINK = 'eth1';

export interface BenchHost {
  /** Namespace standing for the KVM host (--host-netns). */
  hostNs: string;
  /** Upstream router namespace (public gateways, internet-side peer). */
  upNs: string;
}

const made = new Set<string>();

/** Namespace names created for this run ("bh-<tag>"); short because interface names derive from nothing here. */
export function makeHost(tag: string): BenchHost {
  const hostNs = `bh-${tag}`;
  const upNs = `bu-${tag}`;
  for (const n of [hostNs, upNs]) if (netnsExists(n)) deleteNetns(n, { ifExists: true });
  addNetns(hostNs);
  made.add(hostNs);
  addNetns(upNs);
  made.add(upNs);
  const h = NetnsHandle.open(hostNs);
  const u = NetnsHandle.open(upNs);
  try {
    h.netlink.linkSetUp('lo');
    h.netlink.linkAdd({ kind: 'veth', name: UPLINK, up: true, peer: { name: 'up0', namespace: { fd: u.fd }, up: true } });
    u.netlink.linkSetUp('lo');
    u.netlink.addrAdd({ dev: 'up0', address: `${PUBLIC_GW}/24` });
    u.netlink.addrAdd({ dev: 'up0', address: `${PUBLIC_GW2}/24` });
    u.sysctlSet('net.ipv4.ip_forward', 1);
  } finally {
    h.close();
    u.close();
  }
  return { hostNs, upNs };
}

/** Remove a host made by makeHost (its links go with it). */
export function removeHost(h: BenchHost): void {
  for (const n of [h.hostNs, h.upNs]) {
    if (netnsExists(n)) deleteNetns(n, { ifExists: true });
    made.delete(n);
  }
}

/** Delete namespaces by name prefix (routers the contestants created: cs-net-<id>, cs-vpc-<id>). */
export function deleteNamespaces(match: (name: string) => boolean): number {
  let n = 0;
  for (const name of listNetns()) {
    if (!match(name)) continue;
    deleteNetns(name, { ifExists: true });
    n++;
  }
  return n;
}

/** Everything this module made (called once at the end of a run). */
export function removeAllHosts(): void {
  for (const n of [...made]) {
    if (netnsExists(n)) deleteNetns(n, { ifExists: true });
    made.delete(n);
  }
}
