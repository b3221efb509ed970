/**
 * What a program passes to the router (createRouter, lib/router/create-router.ts): one object of plain values per
 * command. Its properties are the CLI's options in camelCase (`publicPort` is `--public-port`, `networkIp6Cidr` is
 * `--network-ip6-cidr`) and take what the option takes, as a string or as the natural JavaScript value (a number
 * for a port or an id, a boolean for a flag, an object for a JSON document). They are validated by the CLI's own
 * builders (build.ts), so a bad value fails with the CLI's message, naming the option: `--public-port: "99999" is
 * not a port (1-65535)`. An optional property may be `undefined` (absent), also under `exactOptionalPropertyTypes`.
 */
import type { GuestType, NetworkState, Protocol } from './types.js';

/** A CloudStack id: digits (or letters, digits, '.', '_', '-'; at most 64). */
export type IdValue = string | number;

/** A guest or public segment: `100`, `'vlan://100'`, `'untagged'`, `'vxlan://5001'`. A bare number is a VLAN unless the router's isolation is vxlan. */
export type SegmentValue = string | number;

/** A port, or an inclusive range `'8000-8099'` (also `'8000:8099'`). */
export type PortValue = string | number;

/** A flag: a boolean, or `'true'`/`'false'` as CloudStack sends it. */
export type FlagValue = boolean | 'true' | 'false';

/** A JSON document: the value itself (an object or array), or its JSON or base64 text. */
export type JsonDocumentValue = string | object;

/** Which network a command is about (the router is the network's, or its VPC's for a tier). */
export interface NetworkInput {
  /** CloudStack network id; the router's namespace is `cs-net-<networkId>` (a tier's: `cs-vpc-<vpcId>`). */
  networkId: IdValue;
  /** VPC id, for a VPC tier. */
  vpcId?: IdValue | undefined;
  /** `isolated` (default), `shared` or `l2`. */
  guestType?: GuestType | undefined;
  /** CloudStack's state of the network, lower case (informational, as upstream). */
  networkState?: NetworkState | undefined;
  /** CloudStack zone id (informational). */
  zoneId?: IdValue | undefined;
}

/** The guest network's addressing, as network-level commands may carry it. */
export interface GuestAddressingInput {
  /** Guest segment (`vlan`). */
  vlan?: SegmentValue | undefined;
  /** Guest gateway (IPv4): the router's address on the guest network. */
  gateway?: string | undefined;
  /** Guest CIDR (IPv4), e.g. `'10.1.1.0/24'`. */
  cidr?: string | undefined;
  /** Router address on the guest network when it is not the gateway. */
  extensionIp?: string | undefined;
  /** Guest IPv6 gateway. */
  networkIp6Gateway?: string | undefined;
  /** Guest IPv6 CIDR. */
  networkIp6Cidr?: string | undefined;
  /** IPv4 DNS servers: a list, or comma separated text. */
  dns?: string | readonly string[] | undefined;
  /** IPv6 DNS servers: a list, or comma separated text. */
  dns6?: string | readonly string[] | undefined;
  /** Network domain suffix. */
  domain?: string | undefined;
}

/** A network-level command's arguments: its network and, optionally, the guest addressing. */
export type NetworkCommandInput = NetworkInput & GuestAddressingInput;

/** A public IP as CloudStack describes it. */
export interface PublicIpInput {
  /** The public IPv4 address. */
  publicIp: string;
  /** Public segment (`'untagged'`, `'vlan://200'`, …); needed by assignIp, elsewhere taken from the router's state. */
  publicVlan?: SegmentValue | undefined;
  /** Public gateway (IPv4). */
  publicGateway?: string | undefined;
  /** The public range's CIDR; its prefix is the address's prefix. */
  publicCidr?: string | undefined;
  /** Whether this is the network's source-NAT address (default false). */
  sourceNat?: FlagValue | undefined;
}

/** A VM's NIC, as the DHCP, DNS and metadata commands take it. */
export interface NicInput {
  /** The NIC's MAC address. */
  mac?: string | undefined;
  /** The NIC's IPv4 address. */
  ip?: string | undefined;
  /** The VM's host name. */
  hostname?: string | undefined;
  /** false for a secondary NIC: no default route is offered to it (default true). */
  defaultNic?: FlagValue | undefined;
  /** CloudStack NIC id. */
  nicId?: IdValue | undefined;
  /** NIC UUID. */
  nicUuid?: IdValue | undefined;
  /** The NIC's IPv6 address. */
  ip6Address?: string | undefined;
}

/** A VPC-level command's arguments. */
export interface VpcInput {
  /** CloudStack VPC id; the router's namespace is `cs-vpc-<vpcId>`. */
  vpcId: IdValue;
}

/** implement-network. */
export type ImplementNetworkInput = NetworkCommandInput;
/** shutdown-network. */
export type ShutdownNetworkInput = NetworkCommandInput;
/** destroy-network. */
export type DestroyNetworkInput = NetworkCommandInput;
/** implement-vpc: with a public IP also the VPC's source NAT. */
export type ImplementVpcInput = VpcInput & Partial<PublicIpInput> & {
  /** The VPC's super-CIDR (IPv4). */
  vpcCidr?: string | undefined;
};
/** update-vpc-source-nat-ip. */
export type UpdateVpcSourceNatIpInput = VpcInput & PublicIpInput & {
  /** The VPC's super-CIDR (IPv4). */
  vpcCidr?: string | undefined;
};
/** shutdown-vpc. */
export type ShutdownVpcInput = VpcInput;
/** destroy-vpc. */
export type DestroyVpcInput = VpcInput;
/** assign-ip: the public segment is required. */
export type AssignIpInput = NetworkCommandInput & PublicIpInput & { publicVlan: SegmentValue };
/** release-ip. */
export type ReleaseIpInput = NetworkCommandInput & PublicIpInput;
/** add-static-nat. */
export type AddStaticNatInput = NetworkCommandInput & PublicIpInput & {
  /** The VM's private IPv4 address. */
  privateIp: string;
};
/** delete-static-nat. */
export type DeleteStaticNatInput = NetworkCommandInput & PublicIpInput & {
  /** The VM's private IPv4 address. */
  privateIp?: string | undefined;
};
/** A port forward's own arguments. */
export interface PortForwardInput {
  /** Public port or range. */
  publicPort: PortValue;
  /** The VM's private IPv4 address. */
  privateIp: string;
  /** Private port or range (as long as the public range). */
  privatePort: PortValue;
  /** `tcp` (default) or `udp`. */
  protocol?: Protocol | undefined;
}
/** add-port-forward. */
export type AddPortForwardInput = NetworkCommandInput & PublicIpInput & PortForwardInput;
/** delete-port-forward. */
export type DeletePortForwardInput = NetworkCommandInput & PublicIpInput & PortForwardInput;
/** apply-fw-rules: the whole firewall of the network (docs/firewall.md). */
export type ApplyFwRulesInput = NetworkCommandInput & {
  /** The firewall rules document CloudStack sends (`{"default_egress_allow": …, "rules": […]}`). */
  fwRules?: JsonDocumentValue | undefined;
};
/** apply-network-acl: a VPC tier's ACL (docs/firewall.md). */
export type ApplyNetworkAclInput = NetworkCommandInput & {
  /** The ACL document CloudStack sends. */
  aclRules?: JsonDocumentValue | undefined;
};
/** apply-lb-rules (docs/load-balancing.md). */
export type ApplyLbRulesInput = NetworkCommandInput & {
  /** The load-balancer rules document CloudStack sends. */
  lbRules?: JsonDocumentValue | undefined;
};
/** config-dhcp-subnet / config-dns-subnet: gateway and CIDR are required. */
export type SubnetInput = NetworkCommandInput & {
  /** Guest gateway (IPv4). */
  gateway: string;
  /** Guest CIDR (IPv4). */
  cidr: string;
};
/** config-dhcp-subnet. */
export type ConfigDhcpSubnetInput = SubnetInput;
/** remove-dhcp-subnet. */
export type RemoveDhcpSubnetInput = NetworkCommandInput;
/** add-dhcp-entry: a static lease. */
export type AddDhcpEntryInput = NetworkCommandInput & NicInput & { mac: string; ip: string };
/** remove-dhcp-entry. */
export type RemoveDhcpEntryInput = NetworkCommandInput & NicInput & { mac: string };
/** set-dhcp-options: extra DHCP options of one NIC. */
export type SetDhcpOptionsInput = NetworkCommandInput & {
  /** CloudStack NIC id. */
  nicId: IdValue;
  /** `{"<option code>": "<value>"}`, or its JSON text. */
  options: Readonly<Record<string, string | number | boolean>> | string;
};
/** config-dns-subnet. */
export type ConfigDnsSubnetInput = SubnetInput;
/** remove-dns-subnet. */
export type RemoveDnsSubnetInput = NetworkCommandInput;
/** add-dns-entry. */
export type AddDnsEntryInput = NetworkCommandInput & NicInput & { ip: string; hostname: string };
/** remove-dns-entry. */
export type RemoveDnsEntryInput = NetworkCommandInput & NicInput & { ip: string };
/** prepare-nic: before a VM boots. */
export type PrepareNicInput = NetworkCommandInput & NicInput;
/** release-nic: after a VM stopped. */
export type ReleaseNicInput = NetworkCommandInput & NicInput;
/** save-vm-data (docs/metadata.md). */
export type SaveVmDataInput = NetworkCommandInput & {
  /** The VM's IPv4 address. */
  ip: string;
  /** The VM data document CloudStack sends (`[{dir, file, content}, …]`). */
  vmData: JsonDocumentValue;
};
/** save-userdata. */
export type SaveUserdataInput = NetworkCommandInput & {
  /** The VM's IPv4 address. */
  ip: string;
  /** The user data (plain text). */
  userdata?: string | undefined;
};
/** save-password. */
export type SavePasswordInput = NetworkCommandInput & {
  /** The VM's IPv4 address. */
  ip: string;
  /** The VM's password (plain text); absent: the saved one is removed. */
  password?: string | undefined;
};
/** save-sshkey. */
export type SaveSshkeyInput = NetworkCommandInput & {
  /** The VM's IPv4 address. */
  ip: string;
  /** The SSH public key(s). */
  sshkey?: string | undefined;
};
/** save-hypervisor-hostname. */
export type SaveHypervisorHostnameInput = NetworkCommandInput & {
  /** The VM's IPv4 address. */
  ip: string;
  /** The hypervisor's host name. */
  hypervisorHostname?: string | undefined;
};
/** restore-network: DHCP, DNS and metadata of every VM of the network. */
export type RestoreNetworkInput = NetworkCommandInput & {
  /** The restore document CloudStack sends. */
  restoreData: JsonDocumentValue;
};
/** custom-action: a built-in action (dump-config, pbr-*, …) or an operator hook. */
export interface CustomActionInput {
  /** The network (or give vpcId). */
  networkId?: IdValue | undefined;
  /** The VPC (or give networkId). */
  vpcId?: IdValue | undefined;
  /** The action's name. */
  action: string;
  /** The action's parameters: an object, or its JSON text. */
  actionParams?: Readonly<Record<string, unknown>> | string | undefined;
}
/** status: every router of the state directory, or one. */
export interface StatusInput {
  /** One network's router. */
  networkId?: IdValue | undefined;
  /** One VPC's router. */
  vpcId?: IdValue | undefined;
}
/** restore-all takes no arguments. */
export type RestoreAllInput = Record<string, never>;

/** The input of each command, by command name. */
export interface CommandInputs {
  'implement-network': ImplementNetworkInput;
  'shutdown-network': ShutdownNetworkInput;
  'destroy-network': DestroyNetworkInput;
  'implement-vpc': ImplementVpcInput;
  'update-vpc-source-nat-ip': UpdateVpcSourceNatIpInput;
  'shutdown-vpc': ShutdownVpcInput;
  'destroy-vpc': DestroyVpcInput;
  'assign-ip': AssignIpInput;
  'release-ip': ReleaseIpInput;
  'add-static-nat': AddStaticNatInput;
  'delete-static-nat': DeleteStaticNatInput;
  'add-port-forward': AddPortForwardInput;
  'delete-port-forward': DeletePortForwardInput;
  'apply-fw-rules': ApplyFwRulesInput;
  'apply-network-acl': ApplyNetworkAclInput;
  'apply-lb-rules': ApplyLbRulesInput;
  'config-dhcp-subnet': ConfigDhcpSubnetInput;
  'remove-dhcp-subnet': RemoveDhcpSubnetInput;
  'add-dhcp-entry': AddDhcpEntryInput;
  'remove-dhcp-entry': RemoveDhcpEntryInput;
  'set-dhcp-options': SetDhcpOptionsInput;
  'config-dns-subnet': ConfigDnsSubnetInput;
  'remove-dns-subnet': RemoveDnsSubnetInput;
  'add-dns-entry': AddDnsEntryInput;
  'remove-dns-entry': RemoveDnsEntryInput;
  'prepare-nic': PrepareNicInput;
  'release-nic': ReleaseNicInput;
  'save-vm-data': SaveVmDataInput;
  'save-userdata': SaveUserdataInput;
  'save-password': SavePasswordInput;
  'save-sshkey': SaveSshkeyInput;
  'save-hypervisor-hostname': SaveHypervisorHostnameInput;
  'restore-network': RestoreNetworkInput;
  'custom-action': CustomActionInput;
  status: StatusInput;
  'restore-all': RestoreAllInput;
}
