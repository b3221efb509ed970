/**
 * Firewall (apply-fw-rules), VPC network ACLs (apply-network-acl) and the custom action list-firewall-rules
 * as a RouterModule: the documents are validated completely before the engine's change starts (a bad one is
 * a UsageError and nothing changes), stored in model.extra.firewall, turned into nft objects of the router
 * table (firewall-objects.ts) — so the new rule set replaces the old one in the engine's single transaction — and,
 * after the kernel has the new rules, flows they forbid are removed from conntrack (forbidden-flows.ts).
 */
import type { RouterModule } from '../router-module.js';
import type { RouterModel } from '../model.js';
import { modelIsIdle } from '../model.js';
import type { MutationVerdict } from '../engine.js';
import type { NetworkState } from '../contract/types.js';
import { DORMANT_STATES } from '../shared-network.js';
import { UsageError } from '../../util/errors.js';
import { netnsExists } from '../../netns/namespaces.js';
import { sameValue } from '../../util/compare.js';
import { parseAclDocument, parseFwDocument } from './rules.js';
import { FIREWALL, filteredAddresses, forgetTierRules, putAcl, putFwDocument, storedFwDocument } from './state.js';
import { payloadDigest } from './payload-digest.js';
import { firewallObjects } from './firewall-objects.js';
import { endForbiddenFlows } from './forbidden-flows.js';
import { describeFirewall } from './describe.js';

/** The rules (or the tiers they are judged against) changed (compared structurally: equal slots of 10,000 rules
 *  take a walk, different ones usually stop at the first). */
function firewallChanged(m: RouterModel, previous: RouterModel | undefined): boolean {
  const slot = (x: RouterModel | undefined): unknown => x?.extra?.[FIREWALL] ?? null;
  return !(sameValue(slot(m), slot(previous)) && (slot(m) === null || sameValue(m.tiers, previous?.tiers)));
}

/**
 * The verdict on a rules document for a network the router does not serve (destroyed, or not implemented yet),
 * undefined when it does. CloudStack revokes a network's rules around its shutdown, and upstream answers such a
 * call with a no-op success when the network is reported as not running (`network_state` shutdown, destroy,
 * allocated); so does this one then, and whenever the document holds no rules — storing nothing (a stored document
 * would be a router that does not exist: listed, restored by restore-all, its rules back at the next implement).
 * Rules for a network reported running that the router does not have are bad input.
 */
function unserved(m: RouterModel, req: { networkId: string; networkState?: NetworkState }, rules: number): MutationVerdict | undefined {
  if (m.tiers[req.networkId]) return undefined;
  if (rules && !(req.networkState && DORMANT_STATES.has(req.networkState))) {
    throw new UsageError(`network ${req.networkId} has no guest tier on router ${m.namespace} (run implement-network first); nothing was changed`, 'network_id');
  }
  // nothing written: a router left empty is not stored (the engine drops it)
  return 'unchanged';
}

export const firewallModule: RouterModule = {
  name: FIREWALL,
  commands: {
    // the documents are checked whole before the change starts: a bad one changes nothing. A text given before,
    // byte for byte (its digest is stored with the network's rules), is the stored document: not parsed again
    // (payload-digest.ts); any other is parsed and validated whole — in the mutation, under the lock, still
    // before anything changes — and its digest stored with it
    'apply-fw-rules': {
      change(req) {
        const raw = req.fwRules?.raw;
        if (raw === undefined) {
          const doc = parseFwDocument(req.fwRules?.value);
          return (m) => unserved(m, req, doc.rules.length) ?? putFwDocument(m, req.networkId, doc);
        }
        const digest = payloadDigest('fw_rules', raw);
        return (m) => {
          const doc = storedFwDocument(m, req.networkId, digest) ?? parseFwDocument(req.fwRules?.value);
          return unserved(m, req, doc.rules.length) ?? putFwDocument(m, req.networkId, doc, digest);
        };
      },
    },
    'apply-network-acl': {
      change(req) {
        const rules = parseAclDocument(req.aclRules?.value);
        return (m) => unserved(m, req, rules.length) ?? putAcl(m, req.networkId, rules);
      },
    },
  },
  actions: {
    // upstream: [{table, rules}] with the rules as one newline-separated string (iptables-save lines)
    'list-firewall-rules': {
      async run(_b, req, { engine }) {
        const m = engine.storedModel(req.namespace);
        return (m ? describeFirewall(m) : []).map((l) => ({ table: l.table, chain: l.chain, rules: l.rules.join('\n') }));
      },
    },
  },
  nftObjects: (m) => firewallObjects(m),
  forgetTier: forgetTierRules,
  // packets to a filtered address that reach the public guard have passed fw_ingress
  publicIngress: (m) => ({ filtered: filteredAddresses(m) }),
  // the flows the changed rules forbid are found in the conntrack table when the command runs
  plan(m, previous, ctx) {
    if (modelIsIdle(m) || !ctx.kernel.netnsExists(m.namespace) || !firewallChanged(m, previous)) return [];
    return [{ kind: 'conntrack', action: 'change', where: m.namespace, what: 'established flows the changed firewall or ACL rules forbid are ended (marked), ended ones they allow again resumed (found in the conntrack table when the command runs)' }];
  },
  async reconcile(m, previous) {
    if (modelIsIdle(m) || !netnsExists(m.namespace)) return;
    // nothing to judge unless the rules (or the tiers they are judged against) changed: a conntrack dump walks
    // the kernel's whole table (~15 ms), which every other command would otherwise pay
    if (!firewallChanged(m, previous)) return;
    endForbiddenFlows(m, previous);
  },
};
