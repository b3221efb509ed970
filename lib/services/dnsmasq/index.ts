/** dnsmasq as the DHCP/DNS/RA server of a router namespace: validation, pure rendering, supervision. */
export * from './errors.js';
export * from './values.js';
export * from './dhcp-options.js';
export * from './config.js';
export * from './leases.js';
export { sendDhcpReleases } from './release.js';
export * from './supervisor.js';
