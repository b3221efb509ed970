/**
 * The DHCP/DNS module's slot in the router model (`model.extra.dhcp`): per guest tier, whether DHCP and DNS
 * are served, the subnet options given to config-dhcp/dns-subnet, the static reservations, the DNS names and
 * the per-NIC options. Addressing that the plumbing owns (CIDR, extension IP, IPv6 prefix) stays in the
 * tier model and is read from there.
 */
import type { RouterModel } from '../model.js';
import { moduleState, setModuleState } from '../router-module.js';

export const DHCP = 'dhcp';

export interface DhcpReservation {
  ip: string;
  hostname?: string;
  /** false: a secondary NIC, offered no router. */
  defaultNic: boolean;
  /** CloudStack NIC id (set-dhcp-options addresses NICs by it). */
  nicId?: string;
  ip6?: string;
}

export interface DnsName {
  hostname: string;
  ip6?: string;
}

export interface DhcpTierState {
  /** DHCP served (config-dhcp-subnet or config-dns-subnet ran, remove-dhcp-subnet not since). */
  dhcp: boolean;
  /** DNS answered on port 53 (config-dns-subnet ran, remove-dns-subnet not since). */
  dns: boolean;
  /** Option 3 as configured (default: the tier's gateway). */
  gateway?: string;
  dnsServers?: string[];
  dns6Servers?: string[];
  domain?: string;
  /** Address of the `data-server` name (config-dns-subnet --extension-ip; default: the tier's). */
  dataServer?: string;
  /** Static reservations by MAC. */
  hosts: Record<string, DhcpReservation>;
  /** DNS names by IPv4 address. */
  names: Record<string, DnsName>;
  /** set-dhcp-options by NIC id: option code → value. */
  nicOptions: Record<string, Record<string, string>>;
}

export interface DhcpState {
  tiers: Record<string, DhcpTierState>;
}

export function dhcpState(m: RouterModel): DhcpState {
  return moduleState<DhcpState>(m, DHCP) ?? { tiers: {} };
}

export function setDhcpState(m: RouterModel, s: DhcpState): void {
  setModuleState(m, DHCP, Object.keys(s.tiers).length ? s : undefined);
}

export function emptyTierState(): DhcpTierState {
  return { dhcp: false, dns: false, hosts: {}, names: {}, nicOptions: {} };
}

/** True when a tier state holds nothing worth keeping. */
export function tierStateIsEmpty(t: DhcpTierState): boolean {
  return !t.dhcp && !t.dns && !Object.keys(t.hosts).length && !Object.keys(t.names).length && !Object.keys(t.nicOptions).length;
}
