/**
 * The network and VPC lifecycle as changes of the router's model: implement, shut down and destroy a network
 * (an isolated network, a VPC tier, a shared network implemented lazily, an L2 network) or a VPC.
 */
import type * as T from '../contract/types.js';
import type { RouterModel } from '../model.js';
import type { RouterModule } from '../router-module.js';
import { UsageError } from '../../util/errors.js';
import { networkText } from '../../util/ip.js';
import { dropPublicIp, putPublicIp } from './public-ips.js';
import { guestTier } from './tiers.js';
import { checkTierSegment } from './segments-apart.js';

/** implement-network: the tier (and a VPC's implemented flag), or an L2 network's segment. */
export function implementNetwork(m: RouterModel, req: T.ImplementNetworkRequest, devices: T.HostDevices): void {
  if (req.guestType === 'l2' || (req.guestType === undefined && m.l2)) return implementL2(m, req, devices);
  if (m.l2) {
    throw new UsageError(`network ${req.networkId} is implemented as an L2 network (guest_type l2); destroy it before implementing it as ${req.guestType}`, 'guest_type');
  }
  m.tiers[req.networkId] = guestTier(req, m.tiers[req.networkId], devices);
  checkTierSegment(m, m.tiers[req.networkId]);
  if (m.kind === 'vpc') m.vpc = { ...(m.vpc ?? { id: req.vpcId ?? '' }), implemented: true };
}

/** implement-network of an L2 network: its segment, nothing at L3 (lib/router/l2-segment.ts). */
function implementL2(m: RouterModel, req: T.ImplementNetworkRequest, devices: T.HostDevices): void {
  if (req.vpcId !== undefined || m.kind === 'vpc') throw new UsageError('--guest-type (payload.guest_type) l2: a VPC tier cannot be an L2 network', 'guest_type');
  const l3: Array<[keyof T.GuestAddressing, string]> = [['gateway', 'gateway'], ['cidr', 'cidr'], ['extensionIp', 'extension_ip'], ['ip6Gateway', 'network_ip6_gateway'], ['ip6Cidr', 'network_ip6_cidr']];
  for (const [prop, arg] of l3) {
    if (req[prop] !== undefined) throw new UsageError(`--${arg.replace(/_/g, '-')} (payload.${arg}): an L2 network (guest_type l2) has no L3 addressing`, arg);
  }
  if (Object.keys(m.tiers).length || Object.keys(m.publicIps).length) {
    throw new UsageError(`network ${req.networkId} is implemented as a routed network on ${m.namespace}; destroy it before implementing it as L2 (guest_type l2)`, 'guest_type');
  }
  const segment = req.segment ?? m.l2?.segment;
  if (!segment) throw new UsageError('missing --vlan (payload.vlan): the guest segment is required', 'vlan');
  m.l2 = { networkId: req.networkId, segment, hostDev: m.l2?.hostDev ?? devices.guest, implemented: true };
}

export function shutdownNetwork(m: RouterModel, req: T.ShutdownNetworkRequest): void {
  if (m.l2) m.l2.implemented = false;
  const t = m.tiers[req.networkId];
  if (t) t.implemented = false;
}

/**
 * destroy-network: an isolated (or L2) network's state goes; a VPC tier leaves the VPC — every module forgets
 * it first, while it is still in the model (a tier implemented again starts empty), and its public IPs go.
 */
export function destroyNetwork(m: RouterModel, req: T.DestroyNetworkRequest, devices: T.HostDevices, modules: readonly RouterModule[]): void | 'delete' {
  if (m.l2 || (req.guestType === 'l2' && m.kind === 'network' && !Object.keys(m.tiers).length)) {
    // without stored state the request's segment still names the links to look at (only marked ones go)
    if (!m.l2 && req.segment) m.l2 = { networkId: req.networkId, segment: req.segment, hostDev: devices.guest, implemented: false };
    if (m.l2) m.l2.implemented = false;
    return 'delete';
  }
  const t = m.tiers[req.networkId];
  if (t) for (const mod of modules) mod.forgetTier?.(m, req.networkId);
  if (t) t.implemented = false;
  if (m.kind === 'network') {
    for (const k of Object.keys(m.tiers)) m.tiers[k].implemented = false;
    return 'delete';
  }
  delete m.tiers[req.networkId];
  for (const [ip, p] of Object.entries(m.publicIps)) if (p.owner === req.networkId) dropPublicIp(m, ip);
}

export function implementVpc(m: RouterModel, req: T.ImplementVpcRequest, devices: T.HostDevices): void {
  m.vpc = { id: req.vpcId, implemented: true, ...(req.vpcCidr ? { cidr: networkText(req.vpcCidr) } : m.vpc?.cidr ? { cidr: m.vpc.cidr } : {}) };
  if (req.publicIp) putPublicIp(m, req.publicIp, req.vpcId, devices);
}

export function shutdownVpc(m: RouterModel): void {
  if (m.vpc) m.vpc.implemented = false;
  for (const t of Object.values(m.tiers)) t.implemented = false;
}

export function destroyVpc(m: RouterModel): 'delete' {
  shutdownVpc(m);
  return 'delete';
}
