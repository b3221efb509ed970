export * from './constants.js';
export { NetlinkError, NetlinkProtocolError, isNetlinkError, isNotFound, isExists, type NetlinkProtocolCode } from './errors.js';
// what the handle throws for input it refuses before any I/O (a bad name, address, VLAN id)
export { ValidationError } from '../util/errors.js';
export { NlWriter, Attrs, parseAttrs, align4 } from './attrs.js';
export { NetlinkSocket, parseMessages, decodeError, NLMSG_HDRLEN, type NlMessage, type NlRequest, type NetlinkSocketOptions } from './socket.js';
export * from './link.js';
export * from './ip.js';
export * from '../util/ip.js';
export type { Address, AddressSpec, AddrScope } from './address.js';
export { IFA_F_NODAD, IFA_F_PERMANENT, IFA_F_NOPREFIXROUTE } from './address.js';
export type { Route, RouteSpec, RouteType } from './route.js';
export { RT_TABLE } from './route.js';
export type { Neigh, NeighSpec, NeighState } from './neigh.js';
export type { Rule, RuleSpec } from './rule.js';
export type { BridgeVlan, BridgeVlanSpec } from './bridge-vlan.js';
export { BRIDGE_VLAN_INFO } from './bridge-vlan.js';
export { NetlinkHandle, canonicalCidr, type LinkRef, type EnsureAction } from './handle.js';
