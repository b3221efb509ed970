/**
 * Base-chain priorities: nft's named ones (`{ base, offset }` renders as base + offset; the bridge family has
 * its own numbers) and where netns-router puts its chains (ROUTER_PRIORITIES) — the reasoning is in
 * lib/nft/README.md ("Priorities netns-router uses").
 */
import { NftValidationError } from './errors.js';
import type { ChainType, Family, Hook } from './json.js';

/** nft's named base-chain priorities and their values. */
export const PRIORITY = {
  raw: -300,
  mangle: -150,
  dstnat: -100,
  filter: 0,
  security: 50,
  srcnat: 100,
} as const;

/** A named priority of PRIORITY. */
export type PriorityName = keyof typeof PRIORITY;

/** A base-chain priority: a number, or a named priority (of the chain's family) with an explicit offset. */
export type Priority = number | { base: PriorityName | BridgePriorityName; offset?: number };

/** Hooks where nft accepts each priority *name* (ip/ip6/inet families). */
const NAME_HOOKS: Record<PriorityName, readonly Hook[] | 'all'> = {
  raw: 'all',
  mangle: 'all',
  dstnat: ['prerouting', 'output'],
  filter: 'all',
  security: 'all',
  srcnat: ['postrouting', 'input'],
};

/** The bridge family's named priorities (nft's bridge_std_prios). */
export const BRIDGE_PRIORITY = {
  dstnat: -300,
  filter: -200,
  out: 100,
  srcnat: 300,
} as const;

/** A named priority of BRIDGE_PRIORITY. */
export type BridgePriorityName = keyof typeof BRIDGE_PRIORITY;

const BRIDGE_NAME_HOOKS: Record<BridgePriorityName, readonly Hook[] | 'all'> = {
  dstnat: ['prerouting'],
  filter: 'all',
  out: ['output'],
  srcnat: ['postrouting'],
};

/** Hooks each chain type may attach to (ip/ip6/inet). */
export const CHAIN_TYPE_HOOKS: Record<ChainType, readonly Hook[]> = {
  filter: ['prerouting', 'input', 'forward', 'output', 'postrouting', 'ingress'],
  nat: ['prerouting', 'input', 'output', 'postrouting'],
  route: ['output'],
};

/** Render a priority as the number libnftables JSON expects; checks the name exists in the family and fits the hook. */
export function resolvePriority(p: Priority, family: Family, hook: Hook): number {
  if (typeof p === 'number') {
    if (!Number.isInteger(p) || p < -2147483648 || p > 2147483647) {
      throw new NftValidationError('E_INVALID_PRIORITY', 'priority', p, 'must be a 32-bit integer');
    }
    return p;
  }
  // the same name means another number in the bridge family (filter: 0 vs -200), some names exist in one only,
  // and netdev (ingress) chains know `filter` (0) alone
  const values: Record<string, number> =
    family === 'bridge' ? BRIDGE_PRIORITY : family === 'netdev' ? { filter: 0 } : family === 'inet' || family === 'ip' || family === 'ip6' ? PRIORITY : {};
  const nameHooks: Record<string, readonly Hook[] | 'all'> =
    family === 'bridge' ? BRIDGE_NAME_HOOKS : family === 'netdev' ? { filter: 'all' } : NAME_HOOKS;
  if (!Object.keys(values).length) {
    throw new NftValidationError('E_INVALID_PRIORITY', 'priority', p, `no standard priorities for family ${String(family)}`);
  }
  if (!p || typeof p !== 'object' || typeof p.base !== 'string' || !Object.hasOwn(values, p.base)) {
    throw new NftValidationError('E_INVALID_PRIORITY', 'priority', p,
      `base must be one of ${Object.keys(values).join(', ')} in the ${family} family`);
  }
  const hooks = nameHooks[p.base]!;
  if (hooks !== 'all' && !hooks.includes(hook)) {
    throw new NftValidationError('E_INVALID_PRIORITY', 'priority', p, `${p.base} is meant for ${hooks.join('/')} hooks, not ${hook}`);
  }
  const offset = p.offset ?? 0;
  if (!Number.isInteger(offset) || Math.abs(offset) > 1000) {
    throw new NftValidationError('E_INVALID_PRIORITY', 'priority', p, 'offset must be an integer within ±1000');
  }
  return values[p.base]! + offset;
}

/** The priorities netns-router's own base chains use (see the comment at the top of this file). */
export const ROUTER_PRIORITIES = {
  /** notrack / anti-spoofing before conntrack (-290). */
  raw: { base: 'raw', offset: 10 },
  /** Port forwards / static NAT in prerouting and output (-110): our DNAT mapping wins. */
  dstnat: { base: 'dstnat', offset: -10 },
  /** Source NAT / masquerade in postrouting (90): our SNAT mapping wins. */
  srcnat: { base: 'srcnat', offset: -10 },
  /** Forward/input/output filtering (-10): before iptables-nft's filter chains. */
  filter: { base: 'filter', offset: -10 },
  /** The guest-segment filter's bridge chains (bridge family, -210): before ebtables-nft's filter chains. */
  bridgeFilter: { base: 'filter', offset: -10 },
} as const satisfies Record<string, Priority>;
