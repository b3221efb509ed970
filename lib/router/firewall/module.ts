/**
 * Firewall (apply-fw-rules) and VPC network ACLs (apply-network-acl) as a RouterModule: the documents are
 * validated completely before the engine's change starts (a bad one is a UsageError and nothing changes),
 * stored in model.extra.firewall, turned into nft objects of the router table (ruleset.ts) — so the new
 * rule set replaces the old one in the engine's single transaction — and, after the kernel has the new
 * rules, flows they forbid are removed from conntrack (conntrack.ts).
 */
import type { RouterModule } from '../module.js';
import type { RouterModel } from '../model.js';
import { modelIsIdle } from '../model.js';
import type { RouterEngine } from '../engine.js';
import type * as T from '../contract/types.js';
import { netnsExists } from '../../netns/namespaces.js';
import { sameValue } from '../../util/compare.js';
import { parseAclDocument, parseFwDocument } from './rules.js';
import { FIREWALL, filteredAddresses, forgetTierRules, putAcl, putFwDocument } from './state.js';
import { firewallObjects } from './ruleset.js';
import { deleteForbiddenFlows } from './conntrack.js';
import { describeFirewall, type Listing } from './describe.js';

export const firewallModule: RouterModule = {
  name: FIREWALL,
  nftObjects: (m) => firewallObjects(m),
  forgetTier: forgetTierRules,
  // packets to a filtered address that reach the public guard have passed fw_ingress
  publicIngress: (m) => ({ filtered: filteredAddresses(m) }),
  async reconcile(m, previous) {
    if (modelIsIdle(m) || !netnsExists(m.namespace)) return;
    // nothing to judge unless the rules (or the tiers they are judged against) changed: a conntrack dump walks
    // the kernel's whole table (~15 ms), which every other command would otherwise pay
    // (compared structurally: equal slots of 10,000 rules take a walk, different ones usually stop at the first)
    const slot = (x: RouterModel | undefined): unknown => x?.extra?.[FIREWALL] ?? null;
    if (sameValue(slot(m), slot(previous)) && (slot(m) === null || sameValue(m.tiers, previous?.tiers))) return;
    await deleteForbiddenFlows(m, previous);
  },
};

/** apply-fw-rules: replace the network's firewall (ingress per public IP, egress policy). */
export async function applyFwRules(engine: RouterEngine, req: T.ApplyFwRulesRequest): Promise<RouterModel | undefined> {
  const doc = parseFwDocument(req.fwRules?.value);
  return engine.changeFor(req, (m) => putFwDocument(m, req.networkId, doc));
}

/** apply-network-acl: replace a tier's ACL. */
export async function applyNetworkAcl(engine: RouterEngine, req: T.ApplyNetworkAclRequest): Promise<RouterModel | undefined> {
  const rules = parseAclDocument(req.aclRules?.value);
  return engine.changeFor(req, (m) => putAcl(m, req.networkId, rules));
}

/** custom-action list-firewall-rules: the active rules, readable, grouped by chain. */
export function listFirewallRules(engine: RouterEngine, namespace: string): Listing[] {
  const m = engine.store.load(namespace);
  return m ? describeFirewall(m) : [];
}
