/**
 * Which kernel backend a named set gets, as far as it matters for update cost.
 *
 * The kernel picks a set's backend from its key length and flags. A plain set (no interval, timeout or
 * dynamic flag, not a map) whose key is 16 bits or less — `inet_service`, `inet_proto`, `icmp_type`,
 * `ether_type` … on its own — gets `nft_set_bitmap`, whose element lookup on every update walks a list: a
 * batch of N changes costs O(N²) (10,000 ports: add ~0.4 s, replace-all ~1.1–1.8 s, measured here). The same
 * elements in a hash set (a wider key, e.g. a concatenation `meta l4proto . th dport`) add in ~60 ms and
 * replace in ~60–90 ms. A concatenation's fields are 32-bit aligned, so any concatenation is wide enough.
 */
import type { KeyType, SetFlag } from './json.js';

/** Key width in bits of each key type (`ifname` is IFNAMSIZ bytes). */
export const KEY_BITS: Readonly<Record<KeyType, number>> = {
  ipv4_addr: 32, ipv6_addr: 128, inet_service: 16, inet_proto: 8, ifname: 128, ether_addr: 48, mark: 32,
  nf_proto: 8, ct_state: 32, icmp_type: 8, icmpv6_type: 8, iface_index: 32,
};

/** Largest key (bits) the kernel's bitmap backend takes. */
export const BITMAP_MAX_KEY_BITS = 16;

/** Does a named set of this key type and these flags land on the bitmap backend (quadratic updates)? */
export function landsOnBitmap(type: KeyType | readonly KeyType[], flags: readonly SetFlag[] = [], isMap = false): boolean {
  if (isMap || flags.includes('interval') || flags.includes('timeout')) return false;
  if (Array.isArray(type)) return type.length === 1 && KEY_BITS[type[0] as KeyType] <= BITMAP_MAX_KEY_BITS;
  return KEY_BITS[type as KeyType] <= BITMAP_MAX_KEY_BITS;
}
