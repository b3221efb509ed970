/**
 * The kernel load balancer (network-extension-details `lb-provider` "kernel", docs/load-balancing.md "Kernel
 * provider"): plain TCP rules served by nftables in the router table instead of haproxy — conntrack DNAT in the
 * datapath, as OVN's native load balancer does. Objects (only while a rule is kernel-served):
 *
 *   set  lb_listen   publicIp . port of every kernel-served rule
 *   map  lb_addr     publicIp . port . slot → backend address   (slot = ct mark: KERNEL_LB_MARK + n)
 *   map  lb_port     publicIp . port . slot → backend port      (two maps: nft 1.0.6 crashes on concatenated values)
 *   lb_pre  (nat prerouting, dstnat-5) / lb_out (nat output, dstnat-5):
 *            ip daddr . tcp dport @lb_listen jump lb_dnat
 *   lb_dnat, per rule:  [ip daddr P tcp dport Q ct count over MAXCONN drop]
 *                       ip daddr P tcp dport Q ct mark set (numgen inc | jhash ip saddr) mod SLOTS offset MARK
 *                                              dnat to (daddr . dport . ct mark) map @lb_addr : … map @lb_port
 *   lb_post (nat postrouting, srcnat-15): ct mark & 0xff000000 == 0x4c000000 masquerade
 *
 * A backend holds `weight / gcd(weights)` slots (haproxy's default weight 1; weight 0: none), interleaved as a
 * smooth weighted round robin, so a rule's cost is its elements, not one rule per backend. After the static NAT /
 * port-forward chain (dstnat-10): a DNAT there would win, as it wins over a haproxy listener. Before source NAT
 * (srcnat-10): the flow leaves with the router's own address on the backend's side (masquerade: the address the
 * kernel picks for the outgoing interface, as for haproxy's connect()), so backends see the router, and replies —
 * a hairpin from a guest of the backend's tier included — come back through it.
 */
import { createHash } from 'node:crypto';
import { baseChain, chain, map, rule, set, type ElementItem, type NftObject } from '../../nft/objects.js';
import { F, concatKey, counter, ct, dnat, drop, jhash, jump, lookup, mapLookup, masquerade, match, numgen } from '../../nft/expr.js';
import { KERNEL_LB_MARK, kernelLbFlow } from '../router-table.js';
import type { ConntrackFilter } from '../../nft/ctnetlink.js';
import type { LbBackend, LbRule } from './types.js';

/** Who serves a network's load-balancing rules (network-extension-details `lb-provider`). */
export type LbProvider = 'haproxy' | 'kernel';
export const LB_PROVIDERS: readonly LbProvider[] = ['haproxy', 'kernel'];

/** At most this many slots per rule (the weights over their greatest common divisor): map elements stay few. */
export const MAX_KERNEL_SLOTS = 4096;

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The backends' slots in draw order: smooth weighted round robin over weight/gcd (haproxy's default weight 1). */
export function backendSlots(backends: LbBackend[]): LbBackend[] {
  const weights = backends.map((b) => b.weight ?? 1);
  const g = weights.reduce((a, w) => (w > 0 ? gcd(a, w) : a), 0);
  if (g === 0) return [];
  const w = weights.map((x) => x / g);
  const total = w.reduce((a, x) => a + x, 0);
  if (total > MAX_KERNEL_SLOTS) return new Array<LbBackend>(total); // only its length is looked at (kernelRefusal)
  const cur = w.map(() => 0);
  const out: LbBackend[] = [];
  for (let n = 0; n < total; n++) {
    let best = -1;
    for (let i = 0; i < w.length; i++) {
      if (w[i] === 0) continue;
      cur[i] += w[i];
      if (best < 0 || cur[i] > cur[best]) best = i;
    }
    cur[best] -= total;
    out.push(backends[best]);
  }
  return out;
}

/** Why the kernel cannot serve `r` faithfully (haproxy serves it then); undefined: it can. */
export function kernelRefusal(r: LbRule): string | undefined {
  if (r.protocol !== 'tcp') return 'HTTP mode';
  if (r.stickiness && r.stickiness.method !== 'SourceBased') return `${r.stickiness.method} stickiness`;
  if (r.algorithm !== 'roundrobin' && r.algorithm !== 'source') return `algorithm ${r.algorithm}`;
  if (r.healthcheck && r.healthcheck.enabled) return 'health check';
  const slots = backendSlots(r.backends).length;
  if (slots > MAX_KERNEL_SLOTS) return `weights need ${slots} slots (at most ${MAX_KERNEL_SLOTS})`;
  return undefined;
}

/** Whether the rule's backend is drawn by a hash of the client address (`source`, or SourceBased stickiness). */
export const bySource = (r: LbRule): boolean => r.algorithm === 'source' || r.stickiness?.method === 'SourceBased';

/** A fixed seed per listener: the same model always compiles to the same table. */
function seedOf(r: LbRule): number {
  return createHash('sha256').update(`${r.publicIp}:${r.publicPort}`).digest().readUInt32BE(0);
}

/** The nft objects serving `rules` (all kernel-servable); none when there are none. */
export function kernelLbObjects(rules: LbRule[]): NftObject[] {
  if (rules.length === 0) return [];
  const listen: ElementItem[] = [];
  const addr: ElementItem[] = [];
  const port: ElementItem[] = [];
  const body: NftObject[] = [];
  const key = () => concatKey(F.ipDaddr, F.tcpDport, F.ctMark);
  for (const r of rules) {
    const slots = backendSlots(r.backends);
    if (slots.length === 0) continue; // no backend takes new connections: nothing is translated
    listen.push({ key: [r.publicIp, r.publicPort] });
    slots.forEach((b, n) => {
      addr.push({ key: [r.publicIp, r.publicPort, KERNEL_LB_MARK + n], value: b.ip });
      port.push({ key: [r.publicIp, r.publicPort, KERNEL_LB_MARK + n], value: b.port });
    });
    const listener = () => [match(F.ipDaddr, r.publicIp), match(F.tcpDport, r.publicPort)];
    if (r.maxconn !== undefined) {
      body.push(rule('lb_dnat', [...listener(), ct.count(r.maxconn), counter(), drop()], { comment: `rule ${r.id}: maxconn ${r.maxconn}` }));
    }
    const pick = bySource(r) ? jhash(F.ipSaddr, slots.length, { seed: seedOf(r), offset: KERNEL_LB_MARK }) : numgen(slots.length, KERNEL_LB_MARK);
    body.push(rule('lb_dnat', [...listener(), ct.markSet(pick), dnat({ family: 'ip', addr: mapLookup(key(), 'lb_addr'), port: mapLookup(key(), 'lb_port') })], { comment: `rule ${r.id}` }));
  }
  if (listen.length === 0) return [];
  const enter = () => [lookup(concatKey(F.ipDaddr, F.tcpDport), 'lb_listen'), jump('lb_dnat')];
  return [
    set('lb_listen', ['ipv4_addr', 'inet_service'], { elements: listen }),
    map('lb_addr', ['ipv4_addr', 'inet_service', 'mark'], 'ipv4_addr', { elements: addr }),
    map('lb_port', ['ipv4_addr', 'inet_service', 'mark'], 'inet_service', { elements: port }),
    chain('lb_dnat'),
    ...body,
    baseChain('lb_pre', { type: 'nat', hook: 'prerouting', priority: { base: 'dstnat', offset: -5 } }),
    rule('lb_pre', enter(), { comment: 'kernel load balancer' }),
    baseChain('lb_out', { type: 'nat', hook: 'output', priority: { base: 'dstnat', offset: -5 } }),
    rule('lb_out', enter(), { comment: 'kernel load balancer' }),
    baseChain('lb_post', { type: 'nat', hook: 'postrouting', priority: { base: 'srcnat', offset: -15 } }),
    rule('lb_post', [kernelLbFlow(), masquerade()], { comment: "kernel load balancer: the router's address towards the backend" }),
  ];
}

/** The flows of kernel-served listeners that are no longer served at all (`served`: `ip:port` of every rule served now). */
export function goneListenerFilters(before: LbRule[], served: Set<string>): ConntrackFilter[] {
  const out: ConntrackFilter[] = [];
  for (const r of before) {
    if (served.has(`${r.publicIp}:${r.publicPort}`)) continue;
    out.push({ family: 'ipv4', proto: 'tcp', origDst: r.publicIp, origDstPort: r.publicPort });
  }
  return out;
}
