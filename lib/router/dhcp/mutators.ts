/**
 * Model mutators of the DHCP/DNS commands, for `engine.change(ns, init, (m) => …)`. Each validates every
 * value with the same checks the renderer applies (so a bad value is a usage error, exit 1, and never
 * reaches a dnsmasq file) and edits only the module's slot — except config-dhcp/dns-subnet, which also
 * records a late IPv6 prefix on the tier, as upstream does, so that the plumbing puts it on the interface.
 *
 * `dhcpPrepareNic` / `dhcpReleaseNic` are the per-NIC halves of prepare-nic / release-nic: silently nothing
 * when DHCP is not configured on the tier. `dhcpRestoreNetwork` rebuilds a tier from restore-network data.
 */
import type * as T from '../contract/types.js';
import { modelIsEmpty, type RouterModel, type TierModel } from '../model.js';
import { UsageError } from '../../util/errors.js';
import { externalGateway } from '../shared-network.js';
import {
  DnsmasqValueError, checkDhcpHostname, checkDomain, checkHostInSubnet, checkHostname, checkIpv4, checkIpv6, checkMac,
  normalizeDhcpOptions, parseSubnet4, type Subnet4,
} from '../../services/dnsmasq/index.js';
import { dhcpState, emptyTierState, setDhcpState, tierStateIsEmpty, type DhcpState, type DhcpTierState } from './state.js';

type Verdict = void | 'delete';

/** Run a check; a rejected value becomes a UsageError naming the argument. */
function arg<V>(argument: string, fn: () => V): V {
  try {
    return fn();
  } catch (e) {
    if (e instanceof DnsmasqValueError) {
      const label = argument.includes('.') ? argument : `--${argument.replace(/_/g, '-')}`;
      throw new UsageError(`${label}: ${e.message}`, argument);
    }
    throw e;
  }
}

function requireTier(m: RouterModel, networkId: string): TierModel {
  const t = m.tiers[networkId];
  if (!t) throw new UsageError(`network ${networkId} has no guest tier on router ${m.namespace} (run implement-network first)`, 'network_id');
  return t;
}

const subnetOf = (t: TierModel): Subnet4 => parseSubnet4(t.cidr);


/** A MAC is reserved on one tier only: taking it on `networkId` drops it from the router's other tiers. */
function takeOverMac(m: RouterModel, networkId: string, mac: string): void {
  const s = dhcpState(m);
  let changed = false;
  for (const [id, t] of Object.entries(s.tiers)) {
    if (id !== networkId && t.hosts[mac]) {
      delete t.hosts[mac];
      changed = true;
    }
  }
  if (changed) setDhcpState(m, s);
}

/** Edit one tier's state (created on demand), dropping it when it ends empty and tiers that no longer exist. */
function editTier(m: RouterModel, networkId: string, fn: (t: DhcpTierState) => void): void {
  const s: DhcpState = dhcpState(m);
  const t = s.tiers[networkId] ?? emptyTierState();
  fn(t);
  s.tiers[networkId] = t;
  if (tierStateIsEmpty(t)) delete s.tiers[networkId];
  for (const id of Object.keys(s.tiers)) if (!m.tiers[id]) delete s.tiers[id];
  setDhcpState(m, s);
}

/** A reservation's address: a host of the tier's subnet, not the router's own. */
function reservationIp(tier: TierModel, ip: string, argument = 'ip'): string {
  const v = arg(argument, () => checkHostInSubnet(ip, subnetOf(tier)));
  if (v === tier.gateway || v === tier.extensionIp) throw new UsageError(`--${argument}: ${v} is the router's own address on network ${tier.networkId}`, argument);
  return v;
}

function putReservation(t: DhcpTierState, mac: string, r: DhcpTierState['hosts'][string]): void {
  // one address, one NIC: a reservation taking over an address replaces the one that held it
  for (const [k, h] of Object.entries(t.hosts)) if (h.ip === r.ip && k !== mac) delete t.hosts[k];
  t.hosts[mac] = r;
}

function configSubnet(m: RouterModel, req: T.ConfigDhcpSubnetRequest | T.ConfigDnsSubnetRequest, dns: boolean): void {
  const tier = requireTier(m, req.networkId);
  const subnet = subnetOf(tier);
  const given = arg('cidr', () => parseSubnet4(`${req.cidr.address}/${req.cidr.prefix}`));
  if (given.network !== subnet.network || given.prefixLen !== subnet.prefixLen) {
    throw new UsageError(`--cidr ${given.network}/${given.prefixLen} is not network ${req.networkId}'s subnet ${tier.cidr}`, 'cidr');
  }
  const gateway = arg('gateway', () => checkHostInSubnet(req.gateway, subnet, 'gateway'));
  const domain = req.domain !== undefined ? arg('domain', () => checkDomain(req.domain!)) : undefined;
  const dnsServers = req.dns?.map((d) => arg('dns', () => checkIpv4(d, 'dns')));
  const dns6Servers = req.dns6?.map((d) => arg('dns6', () => checkIpv6(d, 'dns6')));
  const dataServer = dns && req.extensionIp !== undefined ? arg('extension_ip', () => checkIpv4(req.extensionIp!, 'extension_ip')) : undefined;
  if (req.ip6Gateway && req.ip6Cidr && !externalGateway(tier)) {
    // upstream adds a late IPv6 prefix to the guest interface here; the plumbing does it from the tier (not
    // on a shared network served from its own address: the IPv6 gateway is the external router's)
    tier.ip6Gateway = req.ip6Gateway;
    tier.ip6Cidr = `${req.ip6Cidr.address}/${req.ip6Cidr.prefix}`;
  }
  editTier(m, req.networkId, (t) => {
    t.dhcp = true;
    if (dns) t.dns = true; // config-dhcp-subnet after config-dns-subnet keeps DNS on (remove-dns-subnet turns it off)
    t.gateway = gateway;
    if (dnsServers) t.dnsServers = dnsServers;
    if (dns6Servers) t.dns6Servers = dns6Servers;
    if (domain) t.domain = domain;
    if (dataServer) t.dataServer = dataServer;
  });
}

export function configDhcpSubnet(m: RouterModel, req: T.ConfigDhcpSubnetRequest): Verdict {
  configSubnet(m, req, false);
}

export function configDnsSubnet(m: RouterModel, req: T.ConfigDnsSubnetRequest): Verdict {
  configSubnet(m, req, true);
}

/** DHCP, DNS and router advertisements off for the tier; its reservations and names are dropped. */
export function removeDhcpSubnet(m: RouterModel, req: T.RemoveDhcpSubnetRequest): Verdict {
  if (modelIsEmpty(m)) return 'delete';
  editTier(m, req.networkId, (t) => {
    t.dhcp = false;
    t.dns = false;
    t.hosts = {};
    t.names = {};
    t.nicOptions = {};
  });
}

/** DNS off (port 53 closed to the tier), DHCP stays. */
export function removeDnsSubnet(m: RouterModel, req: T.RemoveDnsSubnetRequest): Verdict {
  if (modelIsEmpty(m)) return 'delete';
  if (!dhcpState(m).tiers[req.networkId]) return;
  editTier(m, req.networkId, (t) => { t.dns = false; });
}

export function addDhcpEntry(m: RouterModel, req: T.AddDhcpEntryRequest): Verdict {
  const tier = requireTier(m, req.networkId);
  const mac = arg('mac', () => checkMac(req.mac));
  const ip = reservationIp(tier, req.ip);
  const hostname = req.hostname !== undefined ? arg('hostname', () => checkDhcpHostname(req.hostname!)) : undefined;
  const ip6 = req.ip6Address !== undefined ? arg('ip6_address', () => checkIpv6(req.ip6Address!)) : undefined;
  takeOverMac(m, req.networkId, mac);
  editTier(m, req.networkId, (t) => putReservation(t, mac, {
    ip, defaultNic: req.defaultNic, ...(hostname ? { hostname } : {}), ...(req.nicId ? { nicId: req.nicId } : {}), ...(ip6 ? { ip6 } : {}),
  }));
}

export function removeDhcpEntry(m: RouterModel, req: T.RemoveDhcpEntryRequest): Verdict {
  if (modelIsEmpty(m)) return 'delete';
  const mac = arg('mac', () => checkMac(req.mac));
  if (!dhcpState(m).tiers[req.networkId]?.hosts[mac]) return;
  editTier(m, req.networkId, (t) => { delete t.hosts[mac]; });
}

export function setDhcpOptions(m: RouterModel, req: T.SetDhcpOptionsRequest): Verdict {
  requireTier(m, req.networkId);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(req.nicId)) throw new UsageError(`--nic-id ${JSON.stringify(req.nicId)} is not an id`, 'nic_id');
  const options = arg('options', () => normalizeDhcpOptions(req.options));
  editTier(m, req.networkId, (t) => {
    if (Object.keys(options).length) t.nicOptions[req.nicId] = options;
    else delete t.nicOptions[req.nicId];
  });
}

export function addDnsEntry(m: RouterModel, req: T.AddDnsEntryRequest): Verdict {
  requireTier(m, req.networkId);
  const ip = arg('ip', () => checkIpv4(req.ip));
  const hostname = arg('hostname', () => checkHostname(req.hostname));
  const ip6 = req.ip6Address !== undefined ? arg('ip6_address', () => checkIpv6(req.ip6Address!)) : undefined;
  editTier(m, req.networkId, (t) => { t.names[ip] = { hostname, ...(ip6 ? { ip6 } : {}) }; });
}

export function removeDnsEntry(m: RouterModel, req: T.RemoveDnsEntryRequest): Verdict {
  if (modelIsEmpty(m)) return 'delete';
  const ip = arg('ip', () => checkIpv4(req.ip));
  if (!dhcpState(m).tiers[req.networkId]?.names[ip]) return;
  editTier(m, req.networkId, (t) => { delete t.names[ip]; });
}

/** What prepare-nic and restore-network know about one NIC. */
export interface NicSpec {
  mac?: string;
  ip?: string;
  hostname?: string;
  defaultNic?: boolean;
  nicId?: string;
  ip6Address?: string;
}

/** Reservation + DNS name for one NIC on a tier state (validated). */
function putNic(tier: TierModel, t: DhcpTierState, nic: NicSpec, argPrefix = ''): void {
  const ip = nic.ip !== undefined ? reservationIp(tier, nic.ip, `${argPrefix}ip`) : undefined;
  const hostname = nic.hostname !== undefined ? arg(`${argPrefix}hostname`, () => checkDhcpHostname(nic.hostname!)) : undefined;
  const ip6 = nic.ip6Address !== undefined ? arg(`${argPrefix}ip6_address`, () => checkIpv6(nic.ip6Address!)) : undefined;
  if (nic.mac !== undefined && ip) {
    const mac = arg(`${argPrefix}mac`, () => checkMac(nic.mac!));
    putReservation(t, mac, {
      ip, defaultNic: nic.defaultNic ?? true, ...(hostname ? { hostname } : {}), ...(nic.nicId ? { nicId: nic.nicId } : {}), ...(ip6 ? { ip6 } : {}),
    });
  }
  if (ip && hostname) t.names[ip] = { hostname, ...(ip6 ? { ip6 } : {}) };
}

/**
 * prepare-nic's DHCP/DNS part: the NIC's reservation (MAC → IP, host name, default-nic) and its DNS name
 * (AAAA too with ip6_address). Nothing when DHCP is not configured on the tier.
 */
export function dhcpPrepareNic(m: RouterModel, req: T.PrepareNicRequest): void {
  const tier = m.tiers[req.networkId];
  if (!tier || !dhcpState(m).tiers[req.networkId]?.dhcp) return;
  if (req.mac !== undefined) takeOverMac(m, req.networkId, arg('mac', () => checkMac(req.mac!)));
  editTier(m, req.networkId, (t) => putNic(tier, t, req));
}

/** release-nic's DHCP/DNS part: drop the NIC's reservation (by MAC, else by IP) and the DNS name of its IP. */
export function dhcpReleaseNic(m: RouterModel, req: T.ReleaseNicRequest): void {
  if (!dhcpState(m).tiers[req.networkId]) return;
  const mac = req.mac !== undefined ? arg('mac', () => checkMac(req.mac!)) : undefined;
  const ip = req.ip !== undefined ? arg('ip', () => checkIpv4(req.ip!)) : undefined;
  editTier(m, req.networkId, (t) => {
    if (mac) delete t.hosts[mac];
    else if (ip) for (const [k, h] of Object.entries(t.hosts)) if (h.ip === ip) delete t.hosts[k];
    if (ip) delete t.names[ip];
  });
}

/** restore-network's DHCP/DNS part. */
export interface DhcpRestore {
  networkId: string;
  dhcpEnabled: boolean;
  dnsEnabled: boolean;
  gateway?: string;
  dns?: string[];
  dns6?: string[];
  domain?: string;
  extensionIp?: string;
  vms: NicSpec[];
}

/**
 * Rebuild a tier's reservations and names from restore-network data (set-dhcp-options stay: restore data
 * does not carry them). DHCP and DNS flags follow the data; both false removes the tier's state.
 */
export function dhcpRestoreNetwork(m: RouterModel, r: DhcpRestore): void {
  const tier = requireTier(m, r.networkId);
  const subnet = subnetOf(tier);
  const gateway = r.gateway !== undefined ? arg('gateway', () => checkHostInSubnet(r.gateway!, subnet, 'gateway')) : undefined;
  const domain = r.domain !== undefined ? arg('domain', () => checkDomain(r.domain!)) : undefined;
  const dnsServers = r.dns?.map((d) => arg('dns', () => checkIpv4(d, 'dns')));
  const dns6Servers = r.dns6?.map((d) => arg('dns6', () => checkIpv6(d, 'dns6')));
  const dataServer = r.extensionIp !== undefined ? arg('extension_ip', () => checkIpv4(r.extensionIp!, 'extension_ip')) : undefined;
  if (r.dhcpEnabled || r.dnsEnabled) {
    r.vms.forEach((vm, i) => { if (vm.mac !== undefined) takeOverMac(m, r.networkId, arg(`restore_data.vms[${i}].mac`, () => checkMac(vm.mac!))); });
  }
  editTier(m, r.networkId, (t) => {
    t.hosts = {};
    t.names = {};
    if (!r.dhcpEnabled && !r.dnsEnabled) {
      t.dhcp = false;
      t.dns = false;
      t.nicOptions = {};
      return;
    }
    t.dhcp = true;
    t.dns = r.dnsEnabled;
    if (gateway) t.gateway = gateway;
    if (dnsServers) t.dnsServers = dnsServers;
    if (dns6Servers) t.dns6Servers = dns6Servers;
    if (domain) t.domain = domain;
    if (dataServer && r.dnsEnabled) t.dataServer = dataServer;
    r.vms.forEach((vm, i) => putNic(tier, t, vm, `restore_data.vms[${i}].`));
  });
}

/** Forget a tier entirely: its subnet settings, reservations, DNS names and NIC options (the module's forgetTier). */
export function dhcpForgetTier(m: RouterModel, networkId: string): void {
  const s = dhcpState(m);
  if (!s.tiers[networkId]) return;
  delete s.tiers[networkId];
  setDhcpState(m, s);
}
