/** DHCP and DNS for guest tiers (dnsmasq): the RouterModule, command mutators and per-NIC hooks. */
export { dhcpModule, dnsmasqDir, dnsmasqInstance } from './module.js';
export * from './mutators.js';
export { dhcpState, type DhcpState, type DhcpTierState, type DhcpReservation, type DnsName, DHCP } from './state.js';
export { dnsmasqSpec, orphanLeases, servedTiers, tierGuestOptions, tierTag, type TierGuestOptions } from './spec.js';
