/**
 * Warm-up of a long-lived engine (`netns-router serve`): runs the CPU-heavy paths of a rule-heavy command —
 * document validation, firewall/ACL compilation, router table indexing and diff — on synthetic rule sets in
 * memory, so the JIT has compiled them before the first real command arrives. Touches no kernel, no file.
 */
import { emptyModel, type RouterModel } from './model.js';
import { natPlan } from './topology.js';
import { routerObjects } from './router-table.js';
import { parseAclDocument, parseFwDocument } from './firewall/rules.js';
import { putAcl, putFwDocument } from './firewall/state.js';
import { firewallObjects } from './firewall/firewall-objects.js';
import { diffTable, tableContents } from '../nft/table-sync.js';
import { ROUTER_TABLE } from './router-table.js';

function tier(m: RouterModel, id: string, cidr: string, gateway: string): void {
  m.tiers[id] = { networkId: id, segment: { kind: 'vxlan', vni: Number(id) }, hostDev: 'eth1', gateway, cidr, extensionIp: gateway, guestType: 'isolated', implemented: true };
}

function fwRules(n: number, shift: number): unknown {
  const rules: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const publicIp = `198.18.${(i >> 4) & 255}.${(i >> 12) + 1}`;
    if (i % 5 === 4) rules.push({ id: i, type: 'egress', protocol: 'udp', portStart: 2000 + i, portEnd: 2010 + i, destCidrs: [`172.16.${i % 256}.0/24`] });
    else rules.push({ id: i, type: 'ingress', protocol: i % 3 ? 'tcp' : 'udp', portStart: 1000 + (i % 100) + shift, portEnd: 1000 + (i % 100) + shift, publicIp, sourceCidrs: [i % 2 ? '0.0.0.0/0' : `10.${i % 250}.0.0/16`] });
  }
  return { default_egress_allow: true, rules };
}

function aclRules(n: number, shift: number): unknown {
  const rules: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const r: Record<string, unknown> = { id: `r${i}`, number: i + 1, action: i % 40 === 39 ? 'Deny' : 'Allow', trafficType: i % 2 ? 'Egress' : 'Ingress', sourceCidrs: [`10.${(i >> 8) % 250}.${i % 256}.0/24`] };
    if (i % 10 === 9) Object.assign(r, { protocol: 'icmp', icmpType: 8, icmpCode: -1 });
    else Object.assign(r, { protocol: i % 3 ? 'tcp' : 'udp', portStart: 1 + ((i * 7 + shift) % 60000), portEnd: 1 + ((i * 7 + shift) % 60000) + (i % 4) });
    rules.push(r);
  }
  return rules;
}

/** One round of the hot paths with `n` rules per document; a few rounds make the JIT settle. */
export function warmUp(n = 2000, rounds = 3): void {
  let previous: ReturnType<typeof tableContents> | undefined;
  for (let round = 0; round < rounds; round++) {
    const m = emptyModel('warm-up', 'vpc', '1');
    tier(m, '1', '10.1.0.0/24', '10.1.0.1');
    tier(m, '2', '10.2.0.0/24', '10.2.0.1');
    putFwDocument(m, '1', parseFwDocument(fwRules(n, round)));
    putAcl(m, '2', parseAclDocument(aclRules(n, round)));
    const text = JSON.stringify(m);
    const objs = routerObjects(natPlan(m), firewallObjects(JSON.parse(text) as RouterModel));
    const contents = tableContents(objs);
    if (previous) diffTable(ROUTER_TABLE, previous, contents, { stage: true });
    previous = contents;
  }
}
