/** Public IPs and NAT as changes of the router's model: assign/release, source NAT, static NAT, port forwards. */
import type * as T from '../contract/types.js';
import type { PublicIpModel, RouterModel } from '../model.js';
import type { Segment } from '../segment.js';
import { DORMANT_STATES } from '../shared-network.js';
import { UsageError } from '../../util/errors.js';
import { networkText } from '../../util/ip.js';
import { guestTier } from './tiers.js';
import { checkPublicSegment, checkTierSegment } from './segments-apart.js';

/** Add or update a public IP; what the request leaves out is kept from the stored one. */
export function putPublicIp(m: RouterModel, p: T.PublicIpSpec, owner: string, devices: T.HostDevices): void {
  const cur = m.publicIps[p.ip];
  const segment: Segment | undefined = p.segment ?? cur?.segment;
  if (!segment) throw new UsageError(`missing --public-vlan for public IP ${p.ip}`, 'public_vlan');
  const model: PublicIpModel = {
    ip: p.ip,
    prefixLen: p.cidr ? p.cidr.prefix : cur?.prefixLen ?? 32,
    segment,
    hostDev: cur?.hostDev ?? devices.public,
    sourceNat: p.sourceNat || (cur?.sourceNat ?? false),
    owner: cur?.owner ?? owner,
  };
  const gw = p.gateway ?? cur?.gateway;
  if (gw) model.gateway = gw;
  checkPublicSegment(m, model);
  ownPublicIps(m)[p.ip] = model;
}

/**
 * The model's public IPs, to write into: a large router's map is shared frozen by the engine's draft of the stored
 * model (warm-cache.ts draftOf) and copied here (its entries stay shared), instead of the draft being dropped for
 * a parse of the whole state (~20 ms at 10,000 public IPs).
 */
function ownPublicIps(m: RouterModel): RouterModel['publicIps'] {
  if (Object.isFrozen(m.publicIps)) {
    // (a for-in copy: 2.8 ms at 10,000 against 7 for a spread; keys are addresses, never integer-like, so the
    // order — the stored text's — is kept)
    const own: RouterModel['publicIps'] = {};
    for (const k in m.publicIps) own[k] = m.publicIps[k];
    m.publicIps = own;
  }
  return m.publicIps;
}

/** A public IP goes, with the static NAT and port forwards on it. */
export function dropPublicIp(m: RouterModel, ip: string): void {
  if (m.publicIps[ip]) delete ownPublicIps(m)[ip];
  // (lists without an entry on it are kept as they are: a large router's compile knows them by identity)
  if (m.staticNats.some((s) => s.publicIp === ip)) m.staticNats = m.staticNats.filter((s) => s.publicIp !== ip);
  if (m.portForwards.some((p) => p.publicIp === ip)) m.portForwards = m.portForwards.filter((p) => p.publicIp !== ip);
}

function requirePublicIp(m: RouterModel, ip: string): void {
  if (!m.publicIps[ip]) throw new UsageError(`public IP ${ip} is not assigned to ${m.namespace} (run assign-ip first)`, 'public_ip');
}

export function assignIp(m: RouterModel, req: T.AssignIpRequest, devices: T.HostDevices): void {
  // assign-ip may arrive before implement-network (upstream implements on demand) — but not for a network
  // CloudStack reports as not running: then the IP is only remembered, as upstream's no-op success
  const dormant = req.networkState !== undefined && DORMANT_STATES.has(req.networkState);
  if (!dormant && req.vpcId === undefined && !m.tiers[req.networkId] && req.gateway && req.cidr && req.segment) {
    m.tiers[req.networkId] = guestTier(req, undefined, devices);
    checkTierSegment(m, m.tiers[req.networkId]);
  }
  putPublicIp(m, req.publicIp, req.networkId, devices);
}

export function releaseIp(m: RouterModel, req: T.ReleaseIpRequest): void {
  dropPublicIp(m, req.publicIp.ip);
}

/** update-vpc-source-nat-ip: the VPC's source NAT moves to `req.publicIp`. */
export function updateVpcSourceNatIp(m: RouterModel, req: T.UpdateVpcSourceNatIpRequest, devices: T.HostDevices): void {
  if (req.vpcCidr) m.vpc = { ...(m.vpc ?? { id: req.vpcId, implemented: true }), cidr: networkText(req.vpcCidr) };
  for (const p of Object.values(m.publicIps)) p.sourceNat = false;
  putPublicIp(m, { ...req.publicIp, sourceNat: true }, req.vpcId, devices);
}

/** NAT translates to a VM, never to the router itself (one of its guest-side or public addresses). */
function requireGuestTarget(m: RouterModel, privateIp: string): void {
  const own = Object.values(m.tiers).find((t) => t.gateway === privateIp || t.extensionIp === privateIp);
  if (own || m.publicIps[privateIp]) {
    throw new UsageError(`--private-ip ${privateIp} is an address of the router ${m.namespace} itself${own ? ` (network ${own.networkId})` : ''}, not a VM's`, 'private-ip');
  }
}

export function addStaticNat(m: RouterModel, req: T.AddStaticNatRequest): void {
  requirePublicIp(m, req.publicIp.ip);
  requireGuestTarget(m, req.privateIp);
  // all of a static NAT address's traffic goes to one VM: not the address the network's other VMs leave with, nor
  // one whose ports are forwarded elsewhere (CloudStack refuses both too)
  if (m.publicIps[req.publicIp.ip]!.sourceNat) {
    throw new UsageError(`--public-ip ${req.publicIp.ip} is the source NAT address of ${m.namespace}; static NAT needs an address of its own`, 'public-ip');
  }
  const pf = m.portForwards.find((p) => p.publicIp === req.publicIp.ip);
  if (pf) throw new UsageError(`--public-ip ${req.publicIp.ip} has port forwarding (${pf.protocol} ${pf.publicPorts.join('-')} → ${pf.privateIp}); delete it before static NAT`, 'public-ip');
  const ip = req.publicIp.ip;
  // one pass (a router may hold 10,000; the model's list itself is not written: the fast way's is frozen)
  const next: RouterModel['staticNats'] = [];
  for (const s of m.staticNats) {
    if (s.publicIp === ip) continue;
    // a VM leaves through one public address: a second static NAT for its private IP would be ambiguous
    if (s.privateIp === req.privateIp) {
      throw new UsageError(`--private-ip ${req.privateIp} already has static NAT to ${s.publicIp}; delete that one first`, 'private-ip');
    }
    next.push(s);
  }
  next.push({ publicIp: ip, privateIp: req.privateIp });
  m.staticNats = next;
}

export function deleteStaticNat(m: RouterModel, req: T.DeleteStaticNatRequest): void {
  m.staticNats = m.staticNats.filter((s) => s.publicIp !== req.publicIp.ip);
}

export function addPortForward(m: RouterModel, req: T.AddPortForwardRequest): void {
  requirePublicIp(m, req.publicIp.ip);
  requireGuestTarget(m, req.privateIp);
  const sn = m.staticNats.find((x) => x.publicIp === req.publicIp.ip);
  if (sn) throw new UsageError(`--public-ip ${req.publicIp.ip} is a static NAT address (all its traffic goes to ${sn.privateIp})`, 'public-ip');
  const pf = {
    publicIp: req.publicIp.ip, protocol: req.protocol,
    publicPorts: [req.publicPorts.start, req.publicPorts.end] as [number, number],
    privateIp: req.privateIp, privatePorts: [req.privatePorts.start, req.privatePorts.end] as [number, number],
  };
  const overlaps = (a: [number, number], b: [number, number]) => a[0] <= b[1] && b[0] <= a[1];
  m.portForwards = m.portForwards.filter((p) => !(p.publicIp === pf.publicIp && p.protocol === pf.protocol && overlaps(p.publicPorts, pf.publicPorts)));
  m.portForwards.push(pf);
}

export function deletePortForward(m: RouterModel, req: T.DeletePortForwardRequest): void {
  m.portForwards = m.portForwards.filter((p) => !(p.publicIp === req.publicIp.ip && p.protocol === req.protocol &&
    p.publicPorts[0] === req.publicPorts.start && p.publicPorts[1] === req.publicPorts.end));
}
