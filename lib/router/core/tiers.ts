/** A tier from a request's addressing, and shared networks' lazy implementation (lib/router/shared-network.ts). */
import type * as T from '../contract/types.js';
import type { RouterModel, TierModel } from '../model.js';
import { DORMANT_STATES, externalGateway, sharedGap } from '../shared-network.js';
import { UsageError } from '../../util/errors.js';
import { cidrText, networkText } from '../../util/ip.js';
import { checkTierSegment } from './segments-apart.js';

/** A tier from a request's addressing, filling what it leaves out from the tier stored before (`cur`). */
export function guestTier(req: T.NetworkTarget & T.GuestAddressing, cur: TierModel | undefined, devices: T.HostDevices): TierModel {
  const segment = req.segment ?? cur?.segment;
  const gateway = req.gateway ?? cur?.gateway;
  const cidr = req.cidr ? networkText(req.cidr) : cur?.cidr;
  if (!segment) throw new UsageError('missing --vlan (payload.vlan): the guest segment is required', 'vlan');
  if (!gateway) throw new UsageError('missing --gateway (payload.gateway)', 'gateway');
  if (!cidr) throw new UsageError('missing --cidr (payload.cidr)', 'cidr');
  const t: TierModel = {
    networkId: req.networkId, segment, hostDev: cur?.hostDev ?? devices.guest, gateway, cidr,
    extensionIp: req.extensionIp ?? cur?.extensionIp ?? gateway,
    guestType: req.guestType === 'shared' || cur?.guestType === 'shared' ? 'shared' : 'isolated',
    implemented: true,
  };
  const ip6g = req.ip6Gateway ?? cur?.ip6Gateway;
  const ip6c = req.ip6Cidr ? cidrText(req.ip6Cidr) : cur?.ip6Cidr;
  // the IPv6 gateway of a shared network served from its own address is the external router's: not taken
  if (ip6g && ip6c && !externalGateway(t)) { t.ip6Gateway = ip6g; t.ip6Cidr = ip6c; }
  const dns = req.dns ?? cur?.dns; if (dns) t.dns = dns;
  const dns6 = req.dns6 ?? cur?.dns6; if (dns6) t.dns6 = dns6;
  const domain = req.domain ?? cur?.domain; if (domain) t.domain = domain;
  return t;
}

/**
 * Implements a shared network's router from a command that describes the network (lib/router/shared-network.ts),
 * inside that command's change, when it is not implemented yet. Nothing for other guest types, VPC tiers or
 * dormant networks. A request that does not describe the network fails with the argument named — unless
 * `ifComplete` (prepare-nic: a NIC on a network this router does not serve is no error), then it does nothing.
 */
export function implementShared(
  m: RouterModel, req: T.NetworkTarget & T.GuestAddressing, devices: T.HostDevices, opts: { ifComplete?: boolean } = {},
): void {
  if (req.guestType !== 'shared' || req.vpcId !== undefined || m.l2) return;
  if (req.networkState && DORMANT_STATES.has(req.networkState)) return;
  const cur = m.tiers[req.networkId];
  if (cur?.implemented) return;
  const gap = sharedGap(req, cur);
  if (gap) {
    if (gap.kind === 'incomplete' && opts.ifComplete) return;
    throw new UsageError(gap.message, gap.argument);
  }
  m.tiers[req.networkId] = guestTier(req, cur, devices);
  checkTierSegment(m, m.tiers[req.networkId]);
}

/** Whether `req` could implement its shared network (see implementShared), judged without its router's state. */
export function canImplementShared(req: T.NetworkTarget & T.GuestAddressing): boolean {
  return req.guestType === 'shared' && req.vpcId === undefined && !(req.networkState && DORMANT_STATES.has(req.networkState)) && sharedGap(req) === undefined;
}
