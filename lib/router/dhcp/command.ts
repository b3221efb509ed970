/** The DHCP/DNS commands on the engine: one `engine.change` per command, with the command's mutator. */
import type { RouterEngine } from '../engine.js';
import type { RouterModel } from '../model.js';
import type * as T from '../contract/types.js';
import * as mut from './mutators.js';

export type DhcpRequest =
  | T.ConfigDhcpSubnetRequest | T.RemoveDhcpSubnetRequest | T.AddDhcpEntryRequest | T.RemoveDhcpEntryRequest
  | T.SetDhcpOptionsRequest | T.ConfigDnsSubnetRequest | T.RemoveDnsSubnetRequest | T.AddDnsEntryRequest | T.RemoveDnsEntryRequest;

function mutator(req: DhcpRequest): (m: RouterModel) => void | 'delete' {
  switch (req.command) {
    case 'config-dhcp-subnet': return (m) => mut.configDhcpSubnet(m, req);
    case 'remove-dhcp-subnet': return (m) => mut.removeDhcpSubnet(m, req);
    case 'add-dhcp-entry': return (m) => mut.addDhcpEntry(m, req);
    case 'remove-dhcp-entry': return (m) => mut.removeDhcpEntry(m, req);
    case 'set-dhcp-options': return (m) => mut.setDhcpOptions(m, req);
    case 'config-dns-subnet': return (m) => mut.configDnsSubnet(m, req);
    case 'remove-dns-subnet': return (m) => mut.removeDnsSubnet(m, req);
    case 'add-dns-entry': return (m) => mut.addDnsEntry(m, req);
    case 'remove-dns-entry': return (m) => mut.removeDnsEntry(m, req);
  }
}

/** Commands that add to a router: on a shared network without one, they implement it first (removals do not). */
const ADDING = new Set<DhcpRequest['command']>(['config-dhcp-subnet', 'config-dns-subnet', 'add-dhcp-entry', 'add-dns-entry', 'set-dhcp-options']);

export async function runDhcpCommand(engine: RouterEngine, req: DhcpRequest): Promise<void> {
  const change = mutator(req);
  await engine.changeFor(req, (m) => {
    if (ADDING.has(req.command)) engine.implementShared(m, req);
    return change(m);
  });
}
