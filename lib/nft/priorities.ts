/**
 * Base-chain priorities: nft's named ones (`{ base, offset }` renders as base + offset) and where netns-router
 * puts its chains (ROUTER_PRIORITIES) — the reasoning is in lib/nft/README.md ("Priorities netns-router uses").
 */import { NftValidationError } from './errors.js';
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

/** A base-chain priority: a number, or a named priority with an explicit offset. */
export type Priority = number | { base: PriorityName; offset?: number };

/** Hooks where nft accepts each priority *name* (ip/ip6/inet families). */
const NAME_HOOKS: Record<PriorityName, readonly Hook[] | 'all'> = {
  raw: 'all',
  mangle: 'all',
  dstnat: ['prerouting', 'output'],
  filter: 'all',
  security: 'all',
  srcnat: ['postrouting', 'input'],
};

/** Hooks each chain type may attach to (ip/ip6/inet). */
export const CHAIN_TYPE_HOOKS: Record<ChainType, readonly Hook[]> = {
  filter: ['prerouting', 'input', 'forward', 'output', 'postrouting', 'ingress'],
  nat: ['prerouting', 'input', 'output', 'postrouting'],
  route: ['output'],
};

/** Render a priority as the number libnftables JSON expects; checks the name fits the hook. */
export function resolvePriority(p: Priority, family: Family, hook: Hook): number {
  // netdev (ingress) chains: `filter` (0) is the only name nft knows there; numbers as anywhere
  if (family === 'netdev' && typeof p === 'object' && p !== null && p.base === 'filter') return checkOffset(p, p.offset ?? 0);
  if (family !== 'inet' && family !== 'ip' && family !== 'ip6' && !(family === 'netdev' && typeof p === 'number')) {
    throw new NftValidationError('E_INVALID_PRIORITY', 'priority', p, `no standard priorities for family ${String(family)}`);
  }
  if (typeof p === 'number') {
    if (!Number.isInteger(p) || p < -2147483648 || p > 2147483647) {
      throw new NftValidationError('E_INVALID_PRIORITY', 'priority', p, 'must be a 32-bit integer');
    }
    return p;
  }
  if (!p || typeof p !== 'object' || !(p.base in PRIORITY)) {
    throw new NftValidationError('E_INVALID_PRIORITY', 'priority', p,
      `base must be one of ${Object.keys(PRIORITY).join(', ')}`);
  }
  const hooks = NAME_HOOKS[p.base];
  if (hooks !== 'all' && !hooks.includes(hook)) {
    throw new NftValidationError('E_INVALID_PRIORITY', 'priority', p, `${p.base} is meant for ${hooks.join('/')} hooks, not ${hook}`);
  }
  return PRIORITY[p.base] + checkOffset(p, p.offset ?? 0);
}

function checkOffset(p: Priority, offset: number): number {
  if (!Number.isInteger(offset) || Math.abs(offset) > 1000) {
    throw new NftValidationError('E_INVALID_PRIORITY', 'priority', p, 'offset must be an integer within ±1000');
  }
  return offset;
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
} as const satisfies Record<string, Priority>;
