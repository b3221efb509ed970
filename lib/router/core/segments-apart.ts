/**
 * A router's guest segments and its public segments are never one segment: its guest veth and public veth
 * would be ports of one host bridge, and the public segment would reach the guests at layer 2, past the
 * public guard (docs/contract.md, "guest and public segments"). Checked here on the model — the same device and
 * segment — by the changes that add a tier or a public IP, so the command fails with the argument named and
 * nothing changed; what only the host shows (two devices on one bridge, another router's veths) is checked by
 * plumbing.ts before it changes anything.
 */
import type { PublicIpModel, RouterModel, TierModel } from '../model.js';
import type { Segment } from '../segment.js';
import { segmentText } from '../segment.js';
import { UsageError } from '../../util/errors.js';

const label = (arg: string) => `--${arg.replace(/_/g, '-')} (payload.${arg})`;
const WHY = 'a router\'s guest and public segments must differ (the public segment would reach the guests at layer 2)';

interface Wire { hostDev: string; segment: Segment }

const sameWire = (a: Wire, b: Wire): boolean => {
  if (a.hostDev !== b.hostDev || a.segment.kind !== b.segment.kind) return false;
  if (a.segment.kind === 'vlan') return a.segment.id === (b.segment as { id: number }).id;
  if (a.segment.kind === 'vxlan') return a.segment.vni === (b.segment as { vni: number }).vni;
  return true;
};

const where = (w: Wire): string => `${segmentText(w.segment)} on ${w.hostDev}`;

/** Refuses tier `t` (just put into `m`) when its segment is one of `m`'s public segments. */
export function checkTierSegment(m: RouterModel, t: TierModel): void {
  for (const p of Object.values(m.publicIps)) {
    if (sameWire(t, p)) {
      throw new UsageError(`${label('vlan')} ${where(t)}: the guest segment of network ${t.networkId} is the public segment of ${p.ip} on ${m.namespace}; ${WHY}`, 'vlan');
    }
  }
}

/** Refuses public IP `p` (just put into `m`) when its segment is one of `m`'s guest segments. */
export function checkPublicSegment(m: RouterModel, p: PublicIpModel): void {
  for (const t of Object.values(m.tiers)) {
    if (sameWire(t, p)) {
      throw new UsageError(`${label('public_vlan')} ${where(p)}: the public segment of ${p.ip} is the guest segment of network ${t.networkId} on ${m.namespace}; ${WHY}`, 'public_vlan');
    }
  }
}
