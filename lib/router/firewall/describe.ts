/**
 * Readable listing of the active rules (custom-action list-firewall-rules): one line per rule, in the order
 * and with the verdicts the kernel applies, grouped by chain.
 */
import type { RouterModel } from '../model.js';
import { tierAttachment } from '../topology.js';
import { chainNames } from './firewall-objects.js';
import { aclMatchersOf, egressMatchersOf, firewallState, ingressMatchers } from './state.js';
import type { MatchSpec, Protocol } from './rules.js';
import { expand } from './matcher.js';

const NAMES: Record<number, string> = { 1: 'icmp(v4)', 6: 'tcp', 17: 'udp', 33: 'dccp', 47: 'gre', 50: 'esp', 51: 'ah', 58: 'icmpv6', 132: 'sctp', 136: 'udplite' };
const protoText = (p: Protocol): string => (typeof p === 'number' ? NAMES[p] ?? `proto ${p}` : p);

function matchText(r: MatchSpec, src: string[], dst: string[]): string {
  const parts = [protoText(r.protocol)];
  if (r.ports) parts.push(`dport ${r.ports[0] === r.ports[1] ? r.ports[0] : `${r.ports[0]}-${r.ports[1]}`}`);
  if (r.icmpType !== undefined) parts.push(`type ${r.icmpType}`);
  if (r.icmpCode !== undefined) parts.push(`code ${r.icmpCode}`);
  parts.push(`from ${src.length ? src.join(',') : 'any'}`);
  parts.push(`to ${dst.length ? dst.join(',') : 'any'}`);
  return parts.join(' ');
}

const inert = (n: number): string => (n === 0 ? ' (matches nothing: no CIDR of the address family it applies to)' : '');

export interface Listing {
  table: string;
  chain?: string;
  rules: string[];
}

export function describeFirewall(m: RouterModel): Listing[] {
  const s = firewallState(m);
  const out: Listing[] = [];
  const ingress = ingressMatchers(m, s);
  for (const ip of ingress.keys()) {
    const rules = ['established,related (unless ended by a tightening): accept'];
    for (const id of Object.keys(s.fw).sort()) {
      for (const r of s.fw[id].rules) {
        if (r.type !== 'ingress' || r.publicIp !== ip) continue;
        rules.push(`#${r.index}${r.id !== undefined ? ` id ${r.id}` : ''}: ${matchText(r, r.sourceCidrs, [ip])}: accept${inert(expand(r, r.sourceCidrs, [], ip).length)}`);
      }
    }
    rules.push('default: drop');
    out.push({ table: `firewall ingress ${ip}`, chain: chainNames.ingressRules, rules });
  }
  for (const id of Object.keys(s.fw).sort()) {
    const n = s.fw[id];
    const t = m.tiers[id];
    const rules = ['established,related (unless ended by a tightening): accept'];
    for (const r of n.rules.filter((x) => x.type === 'egress')) {
      rules.push(`#${r.index}${r.id !== undefined ? ` id ${r.id}` : ''}: ${matchText(r, r.sourceCidrs, r.destCidrs)}: ${n.defaultEgressAllow ? 'drop' : 'accept'}${inert(egressMatchersOf(r).length)}`);
    }
    rules.push(`default: ${n.defaultEgressAllow ? 'accept' : 'drop'}`);
    out.push({ table: `firewall egress network ${id}${t ? ` (from ${tierAttachment(m, t).nsVeth})` : ' (network not implemented here yet: inactive)'}`, chain: chainNames.egress(id), rules });
  }
  for (const id of Object.keys(s.acl).sort()) {
    const t = m.tiers[id];
    for (const dir of ['ingress', 'egress'] as const) {
      const rules = ['established,related (unless ended by a tightening): accept'];
      for (const r of s.acl[id].rules.filter((x) => x.trafficType === dir)) {
        const [src, dst] = dir === 'ingress' ? [r.sourceCidrs, r.destCidrs] : r.destCidrs.length ? [r.sourceCidrs, r.destCidrs] : [[], r.sourceCidrs];
        rules.push(`number ${r.number}${r.id !== undefined ? ` id ${r.id}` : ''}: ${matchText(r, src, dst)}: ${r.action}${inert(aclMatchersOf(r).length)}`);
      }
      rules.push('default: deny');
      const dev = t ? tierAttachment(m, t).nsVeth : undefined;
      out.push({
        table: `network ACL ${dir} tier ${id}${dev ? ` (${dir === 'ingress' ? 'to' : 'from'} ${dev})` : ' (tier not implemented here yet: inactive)'}`,
        chain: dir === 'ingress' ? chainNames.aclIn(id) : chainNames.aclOut(id),
        rules,
      });
    }
  }
  return out;
}
