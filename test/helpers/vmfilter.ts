/**
 * The guest-segment filter's test topology: a simulated KVM host (its own namespace) with one isolated network on
 * a VXLAN segment (10.1.1.0/24, IPv6 fd00:1::/64, DHCP served by the router), two VMs with known MACs (DHCP
 * reservations), and helpers to read neighbour tables, the filter table and what arrived where.
 */
import { RouterEngine } from '../../lib/router/engine.js';
import { runCommand } from '../../lib/router/command-table.js';
import { tierAttachment } from '../../lib/router/topology.js';
import { slaacOf } from '../../lib/router/vmfilter/nics.js';
import { VMFILTER_TABLE, vmfilterPrefix } from '../../lib/router/vmfilter/compile.js';
import { NetnsHandle } from '../../lib/netns/handle.js';
import { Scratch, addVm, nsExec, nsTry, ping, uid, waitFor } from './topo.js';
import { hostAndUpstream, cidr } from './fw.js';

export interface Vm { ns: string; port: string; mac: string; ip: string; ip6: string }

export const VM1_MAC = '02:aa:00:00:00:0a';
export const VM2_MAC = '02:aa:00:00:00:0b';
export const PREFIX6 = 'fd00:1::/64';

export async function vmfTopo(s: Scratch, opts: { strict?: boolean; dhcp?: boolean; ipv6?: boolean } = {}) {
  const base = hostAndUpstream(s);
  const { engine, h } = base;
  const id = String(2000 + (parseInt(uid(4), 16) % 7000));
  const ns = s.track(`cs-net-${id}`);
  const vni = 8000 + (Number(id) % 8000);
  const net = { networkId: id, namespace: ns };
  await runCommand(engine, {
    command: 'implement-network', ...net, segment: { kind: 'vxlan', vni }, gateway: '10.1.1.1', cidr: cidr('10.1.1.0/24'),
    ...(opts.ipv6 === false ? {} : { ip6Gateway: 'fd00:1::1', ip6Cidr: { family: 6 as const, address: 'fd00:1::', prefix: 64 } }), vmFilter: true, ...(opts.strict ? { vmFilterStrict: true } : {}),
  });
  if (opts.dhcp !== false) await runCommand(engine, { command: 'config-dhcp-subnet', ...net, gateway: '10.1.1.1', cidr: cidr('10.1.1.0/24') });
  const bridge = `brvx-${vni}`;
  const vm = async (mac: string, ip: string): Promise<Vm> => {
    await runCommand(engine, { command: 'add-dhcp-entry', ...net, mac, ip, defaultNic: true });
    const v = addVm(s, h, bridge, `${ip}/24`, '10.1.1.1', mac);
    return { ns: v.ns, port: v.hostEnd, mac, ip, ip6: slaacOf(mac, PREFIX6)! };
  };
  const vm1 = await vm(VM1_MAC, '10.1.1.10');
  const vm2 = await vm(VM2_MAC, '10.1.1.11');
  const m = engine.store.load(ns)!;
  const att = tierAttachment(m, m.tiers[id]);
  const router = { ns, ifname: att.nsVeth, port: att.hostVeth, mac: att.nsMac!, ip: '10.1.1.1', ip6: 'fd00:1::1' };
  return { ...base, id, ns, net, vni, bridge, vm1, vm2, router };
}

/** A guest on the bridge with a MAC the router does not know. */
export function strangerVm(s: Scratch, host: NetnsHandle, bridge: string, ip: string, mac = `02:bb:00:00:${uid(2)}:01`): Vm {
  const v = addVm(s, host, bridge, `${ip}/24`, '10.1.1.1', mac);
  return { ns: v.ns, port: v.hostEnd, mac, ip, ip6: slaacOf(mac, PREFIX6)! };
}

/** The VM's IPv6 address, added without DAD (tests that are not about SLAAC). */
export function addIp6(vm: Vm): void {
  nsExec(vm.ns, ['ip', '-6', 'addr', 'add', `${vm.ip6}/64`, 'dev', 'eth0', 'nodad']);
}

/** The link-layer address a namespace's neighbour table holds for `ip` on `dev` (undefined: no entry). */
export function neighMac(ns: string, dev: string, ip: string): string | undefined {
  const h = NetnsHandle.open(ns);
  try {
    return h.netlink.neighList({ dev }).find((n) => n.ip === ip)?.mac;
  } finally {
    h.close();
  }
}

/** Set a neighbour entry to a MAC (state stale), so that an announcement would visibly change it. */
export function setNeigh(ns: string, dev: string, ip: string, mac: string): void {
  const h = NetnsHandle.open(ns);
  try {
    h.netlink.neighReplace({ dev, ip, mac, state: 'stale' });
  } finally {
    h.close();
  }
}

/**
 * First contact that must work (a positive control): ping until it answers. The kernel's neighbour tables are
 * shared by every namespace of the machine; when other namespaces fill them ("neighbor table overflow"), a first
 * ARP exchange can be lost and only a retry gets through.
 */
export const reach = (ns: string, ip: string): Promise<boolean> => waitFor(() => ping(ns, ip), 10_000);

/** Linux ignores a second ARP update of an entry within its locktime (1 s): wait it out before a probe. */
export const afterLocktime = () => new Promise((r) => setTimeout(r, 1100));

/**
 * A router's filter as `nft -j` lists the shared table in the host namespace: the listing's objects named with the
 * router's prefix (rules: of its chains), `{"nftables":[…]}`; '' when it has none.
 */
export function filterTable(hostNs: string, ns: string): string {
  const t = VMFILTER_TABLE;
  const p = vmfilterPrefix(ns);
  const r = nsTry(hostNs, ['nft', '-j', 'list', 'table', t.family, t.name]);
  if (r.status !== 0) return '';
  const doc = JSON.parse(r.stdout) as { nftables: Array<Record<string, { name?: string; chain?: string }>> };
  const mine = doc.nftables.filter((o) => Object.values(o).some((v) => (v.chain ?? v.name ?? '').startsWith(p)));
  return mine.length ? JSON.stringify({ nftables: mine }) : '';
}

/** All netns-router's filter objects in the host namespace's shared table, by name (empty: none, or no table). */
export function sharedFilterNames(hostNs: string): string[] {
  const r = nsTry(hostNs, ['nft', '-j', '-t', 'list', 'table', VMFILTER_TABLE.family, VMFILTER_TABLE.name]);
  if (r.status !== 0) return [];
  const doc = JSON.parse(r.stdout) as { nftables: Array<Record<string, { name?: string }>> };
  return doc.nftables.flatMap((o) => (o.chain ?? o.set ?? o.map)?.name ?? []);
}

/** Elements of one set/map of a router's filter (its name without the router's prefix), as listed JSON values. */
export function filterSet(hostNs: string, ns: string, set: string): unknown[] {
  const t = VMFILTER_TABLE;
  const r = nsTry(hostNs, ['nft', '-j', 'list', /^(nic_tier|mac_fwd|nic_chain|nic_in|port_tier)$/.test(set) ? 'map' : 'set', t.family, t.name, `${vmfilterPrefix(ns)}${set}`]);
  if (r.status !== 0) return [];
  const doc = JSON.parse(r.stdout) as { nftables: Array<{ set?: { elem?: unknown[] }; map?: { elem?: unknown[] } }> };
  const o = doc.nftables.find((x) => x.set || x.map);
  return (o?.set ?? o?.map)?.elem ?? [];
}

/**
 * Count what arrives in `ns` before any routing decision (prerouting, priority -500: also packets the stack then
 * drops, such as a DHCP offer to an address the client does not have yet): label → nft match text.
 */
export function countArrivals(ns: string, matches: Record<string, string>): () => Record<string, number> {
  const lines = ['table inet arrivals {', ' chain pre { type filter hook prerouting priority -500; policy accept;'];
  for (const [label, m] of Object.entries(matches)) lines.push(`  ${m} counter comment "${label}"`);
  lines.push(' }', '}');
  nsExec(ns, ['nft', '-f', '-'], { input: `${lines.join('\n')}\n` });
  return () => {
    const j = JSON.parse(nsExec(ns, ['nft', '-j', 'list', 'table', 'inet', 'arrivals'])) as { nftables: Array<{ rule?: { comment?: string; expr: Array<{ counter?: { packets: number } }> } }> };
    const out: Record<string, number> = {};
    for (const o of j.nftables) if (o.rule?.comment) out[o.rule.comment] = o.rule.expr.find((e) => e.counter)?.counter?.packets ?? 0;
    return out;
  };
}

/**
 * Count frames entering the host's bridges before the filter sees them (bridge prerouting, priority -400): what a
 * VM really sent, whatever happens to it next. label → nft match text.
 */
export function countOnBridge(hostNs: string, matches: Record<string, string>): () => Record<string, number> {
  const name = `probe_${uid(6)}`;
  const lines = [`table bridge ${name} {`, ' chain pre { type filter hook prerouting priority -400; policy accept;'];
  for (const [label, m] of Object.entries(matches)) lines.push(`  ${m} counter comment "${label}"`);
  lines.push(' }', '}');
  nsExec(hostNs, ['nft', '-f', '-'], { input: `${lines.join('\n')}\n` });
  return () => {
    const j = JSON.parse(nsExec(hostNs, ['nft', '-j', 'list', 'table', 'bridge', name])) as { nftables: Array<{ rule?: { comment?: string; expr: Array<{ counter?: { packets: number } }> } }> };
    const out: Record<string, number> = {};
    for (const o of j.nftables) if (o.rule?.comment) out[o.rule.comment] = o.rule.expr.find((e) => e.counter)?.counter?.packets ?? 0;
    return out;
  };
}

/** Wait until the VM's SLAAC address exists and has passed DAD. */
export async function slaacReady(vm: Vm, ms = 8000): Promise<boolean> {
  return waitFor(() => {
    const out = nsTry(vm.ns, ['ip', '-6', 'addr', 'show', 'dev', 'eth0']).stdout;
    const line = out.split('\n').find((l) => l.includes(`${vm.ip6}/64`));
    return line !== undefined && !line.includes('tentative');
  }, ms);
}

export { RouterEngine };
