/**
 * Base-chain priorities.
 *
 * nft names a few standard priorities; in JSON the priority is always a number, so we render
 * `{ base, offset }` as base + offset. Values for the ip, ip6 and inet families (bridge differs and
 * is not supported here):
 *
 *   name      value  usable with hooks (nft's own rule for the *name*; the number works anywhere)
 *   raw       -300   all          (before conntrack: notrack, early drops)
 *   mangle    -150   all
 *   dstnat    -100   prerouting, output
 *   filter       0   all          (iptables-nft's filter chains sit here)
 *   security    50   all
 *   srcnat     100   postrouting, input
 *
 * Lower runs first. Where netns-router puts its chains (ROUTER_PRIORITIES below) and why:
 *
 * - NAT: for a new connection, the first NAT chain (lowest priority) that sets a mapping wins; later
 *   NAT chains of that hook no longer see the flow. Our DNAT chains run at dstnat - 10 (-110) and SNAT
 *   at srcnat - 10 (90), so our port forwards and source NAT win over iptables-nft / firewalld /
 *   Docker chains at the standard -100 / 100.
 * - Filtering: an `accept` only ends the current base chain. Every other base chain on the same hook,
 *   in any table, still sees the packet, and any `drop` there is final. Our accept therefore cannot
 *   protect traffic from another table's drop (e.g. Docker's FORWARD policy drop); this is avoided by
 *   running the router in its own network namespace, where only our table exists. Our filter chains
 *   run at filter - 10 (-10): before iptables-nft (0), so our drops are cheap and final, and the
 *   conntrack established/related accept comes first.
 * - Our raw chain (notrack, anti-spoofing) runs at raw + 10 (-290), after the conntrack-zone/raw
 *   chains others may install at -300 but still before conntrack itself (-200).
 * - Deleting the last NAT chain of a hook stops NAT for existing flows too: table replacement
 *   (replaceTable) is a single transaction, so there is never a moment without our NAT chains.
 */
import { NftValidationError } from './errors.js';
import type { ChainType, Family, Hook } from './json.js';

export const PRIORITY = {
  raw: -300,
  mangle: -150,
  dstnat: -100,
  filter: 0,
  security: 50,
  srcnat: 100,
} as const;

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
  filter: ['prerouting', 'input', 'forward', 'output', 'postrouting'],
  nat: ['prerouting', 'input', 'output', 'postrouting'],
  route: ['output'],
};

/** Render a priority as the number libnftables JSON expects; checks the name fits the hook. */
export function resolvePriority(p: Priority, family: Family, hook: Hook): number {
  if (family !== 'inet' && family !== 'ip' && family !== 'ip6') {
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
  const offset = p.offset ?? 0;
  if (!Number.isInteger(offset) || Math.abs(offset) > 1000) {
    throw new NftValidationError('E_INVALID_PRIORITY', 'priority', p, 'offset must be an integer within ±1000');
  }
  return PRIORITY[p.base] + offset;
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
