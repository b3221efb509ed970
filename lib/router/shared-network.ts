/**
 * Shared networks (guest_type shared): CloudStack never sends implement-network for them (they are "Setup"
 * from creation on), so the router is implemented by the first command that describes the network — as the
 * upstream wrapper does in prepare-nic. Every network-level payload carries `vlan`, `gateway` and `cidr`
 * (NetworkExtensionElement's addNetworkToPayload; a NIC's gateway replaces the network's where the NIC is
 * added) and the DHCP/DNS/metadata commands carry `extension_ip`: the router's own address on the network,
 * a placeholder IP CloudStack allocates when the provider is not the network's gateway. The router takes that
 * address, never the gateway's (the gateway of a shared network is usually an external router): without
 * `extension_ip` it does not implement at all.
 */
import type * as T from './contract/types.js';
import type { TierModel } from './model.js';
import { cidrContains, parseCidr } from '../util/ip.js';

/**
 * A shared tier served from an address of its own: the network's gateway is another router, for IPv4 and for
 * IPv6 — so the router does not take the IPv6 gateway address either (nor advertise itself as a router).
 */
export const externalGateway = (t: TierModel): boolean => t.guestType === 'shared' && t.extensionIp !== t.gateway;

/** Why a request cannot implement a shared network by itself, naming the argument. */
export interface SharedGap {
  argument: string;
  /**
   * 'incomplete': the request does not describe the network (a field absent, or the NIC of a secondary IP
   * range); a command that only adds to an existing router (prepare-nic) then does nothing. 'invalid': a
   * value is wrong — always an error.
   */
  kind: 'incomplete' | 'invalid';
  message: string;
}

const label = (arg: string) => `--${arg.replace(/_/g, '-')} (payload.${arg})`;

/** Network states in which CloudStack says the network is not running: nothing is implemented then. */
export const DORMANT_STATES: ReadonlySet<T.NetworkState> = new Set(['shutdown', 'destroy', 'allocated']);

/**
 * undefined when `req` — with what `cur`, a shut-down tier, still knows — describes the shared network:
 * segment, gateway inside the CIDR, and an extension IP inside the CIDR. A gateway outside the CIDR comes
 * from a NIC of a secondary IP range and cannot describe the network.
 */
export function sharedGap(req: T.NetworkTarget & T.GuestAddressing, cur?: TierModel): SharedGap | undefined {
  const why = `shared network ${req.networkId} has no router yet, and CloudStack sends no implement-network for a shared network (the first command that describes it implements it)`;
  const incomplete = (argument: string, message: string): SharedGap => ({ argument, kind: 'incomplete', message });
  const segment = req.segment ?? cur?.segment;
  const gateway = req.gateway ?? cur?.gateway;
  const cidr = req.cidr ?? (cur ? parseCidr(cur.cidr) : undefined);
  const extensionIp = req.extensionIp ?? cur?.extensionIp;
  if (!segment) return incomplete('vlan', `missing ${label('vlan')}: ${why}`);
  if (!gateway) return incomplete('gateway', `missing ${label('gateway')}: ${why}`);
  if (!cidr) return incomplete('cidr', `missing ${label('cidr')}: ${why}`);
  if (!extensionIp) {
    return incomplete('extension_ip', `missing ${label('extension_ip')}: ${why}; the router needs its own address on the network and never takes the gateway's (a shared network's gateway is the external router)`);
  }
  const net = `${label('cidr')} ${cidr.address}/${cidr.prefix}`;
  if (!cidrContains(cidr, gateway)) return incomplete('gateway', `${label('gateway')} ${gateway} is not inside ${net} (the NIC of a secondary IP range): ${why}`);
  if (!cidrContains(cidr, extensionIp)) return { argument: 'extension_ip', kind: 'invalid', message: `${label('extension_ip')} ${extensionIp} is not inside ${net}` };
  return undefined;
}
