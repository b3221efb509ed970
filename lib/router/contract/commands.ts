/**
 * The command set: upstream's wrapper commands (same names), plus our own status, version,
 * install-wrapper and help. `fields` lists the arguments shown in a command's help; every other
 * known argument is still accepted (CloudStack sends more than each command needs) and ignored.
 */
import type { EngineCommand } from './types.js';

export type LocalCommand = 'install-wrapper' | 'version' | 'help';
export type CommandName = EngineCommand | LocalCommand;

export interface CommandSpec {
  name: CommandName;
  summary: string;
  /** payload keys shown in help (required ones first) */
  fields: readonly string[];
  /** custom-action's payload file is flat (no nested "payload" object) */
  flatPayload?: boolean;
}

const NET = ['network_id', 'vpc_id', 'guest_type', 'network_state'];
const ADDR = ['vlan', 'gateway', 'cidr', 'extension_ip', 'network_ip6_gateway', 'network_ip6_cidr', 'dns', 'dns6', 'domain'];
const PUB = ['public_ip', 'public_vlan', 'public_gateway', 'public_cidr', 'source_nat'];
const NIC = ['mac', 'ip', 'hostname', 'default_nic', 'nic_id', 'nic_uuid', 'ip6_address'];

export const COMMANDS: readonly CommandSpec[] = [
  { name: 'implement-network', summary: 'create the router namespace, guest bridge/veth and gateway address', fields: [...NET, ...ADDR] },
  { name: 'shutdown-network', summary: 'remove the network\'s veths, rules and services (and its namespace unless a VPC tier)', fields: [...NET, ...ADDR] },
  { name: 'destroy-network', summary: 'like shutdown-network, and forget the network\'s state', fields: [...NET, ...ADDR] },
  { name: 'implement-vpc', summary: 'create the VPC namespace; with a source-NAT IP also the VPC SNAT', fields: ['vpc_id', 'vpc_cidr', ...PUB] },
  { name: 'update-vpc-source-nat-ip', summary: 'move the VPC source NAT to another public IP', fields: ['vpc_id', 'public_ip', 'vpc_cidr', 'public_vlan', 'public_gateway', 'public_cidr', 'source_nat'] },
  { name: 'shutdown-vpc', summary: 'delete the VPC namespace', fields: ['vpc_id'] },
  { name: 'destroy-vpc', summary: 'delete the VPC namespace and its state', fields: ['vpc_id'] },
  { name: 'assign-ip', summary: 'attach a public IP (public veth, address, route; SNAT when source_nat)', fields: [...NET, ...PUB, 'vlan', 'gateway', 'cidr'] },
  { name: 'release-ip', summary: 'detach a public IP and its NAT rules', fields: [...NET, ...PUB, 'cidr'] },
  { name: 'add-static-nat', summary: 'one-to-one NAT public IP <-> private IP', fields: [...NET, 'public_ip', 'private_ip', 'vlan', 'public_vlan', 'public_cidr'] },
  { name: 'delete-static-nat', summary: 'remove a one-to-one NAT', fields: [...NET, 'public_ip', 'private_ip', 'public_vlan'] },
  { name: 'add-port-forward', summary: 'DNAT public_ip:public_port -> private_ip:private_port', fields: [...NET, 'public_ip', 'public_port', 'private_ip', 'private_port', 'protocol', 'vlan', 'public_vlan', 'public_cidr'] },
  { name: 'delete-port-forward', summary: 'remove a port forward', fields: [...NET, 'public_ip', 'public_port', 'private_ip', 'private_port', 'protocol', 'public_vlan'] },
  { name: 'apply-fw-rules', summary: 'rebuild the firewall (ingress per public IP, egress policy) from fw_rules', fields: [...NET, 'fw_rules', 'vlan', 'gateway', 'cidr'] },
  { name: 'apply-network-acl', summary: 'rebuild a VPC tier\'s ACL from acl_rules', fields: [...NET, 'acl_rules', 'vlan', 'gateway', 'cidr'] },
  { name: 'apply-lb-rules', summary: 'apply/revoke load-balancer rules from lb_rules', fields: [...NET, 'lb_rules', 'vlan'] },
  { name: 'config-dhcp-subnet', summary: 'configure DHCP for the subnet (DNS port off)', fields: [...NET, 'gateway', 'cidr', 'dns', 'domain', 'extension_ip', 'vlan', 'network_ip6_gateway', 'network_ip6_cidr', 'dns6'] },
  { name: 'remove-dhcp-subnet', summary: 'stop DHCP (and router advertisements) for the network', fields: [...NET, 'extension_ip'] },
  { name: 'add-dhcp-entry', summary: 'static DHCP lease mac -> ip', fields: [...NET, ...NIC, 'gateway', 'cidr', 'dns', 'domain', 'extension_ip'] },
  { name: 'remove-dhcp-entry', summary: 'remove a static DHCP lease', fields: [...NET, 'mac', 'ip', 'extension_ip'] },
  { name: 'set-dhcp-options', summary: 'extra DHCP options for one NIC', fields: [...NET, 'nic_id', 'options', 'extension_ip'] },
  { name: 'config-dns-subnet', summary: 'configure DHCP and DNS (port 53) for the subnet', fields: [...NET, 'gateway', 'cidr', 'dns', 'domain', 'extension_ip', 'vlan', 'network_ip6_gateway', 'network_ip6_cidr', 'dns6'] },
  { name: 'remove-dns-subnet', summary: 'turn DNS off, keep DHCP', fields: [...NET, 'extension_ip'] },
  { name: 'add-dns-entry', summary: 'host name -> ip (and AAAA with ip6_address)', fields: [...NET, 'ip', 'hostname', 'ip6_address', 'extension_ip'] },
  { name: 'remove-dns-entry', summary: 'remove a host name', fields: [...NET, 'ip', 'ip6_address'] },
  { name: 'prepare-nic', summary: 'before a VM boots: DHCP/DNS entries for its NIC (shared networks: implement lazily)', fields: [...NET, ...NIC, 'vlan', 'gateway', 'cidr', 'extension_ip'] },
  { name: 'release-nic', summary: 'after a VM stops: remove its DHCP/DNS entries and metadata', fields: [...NET, 'mac', 'ip', 'ip6_address'] },
  { name: 'save-vm-data', summary: 'store the VM\'s metadata/userdata/password set from vm_data', fields: [...NET, 'ip', 'vm_data', 'gateway', 'extension_ip'] },
  { name: 'save-userdata', summary: 'store a VM\'s user data', fields: [...NET, 'ip', 'userdata'] },
  { name: 'save-password', summary: 'store a VM\'s password for the password server', fields: [...NET, 'ip', 'password'] },
  { name: 'save-sshkey', summary: 'store a VM\'s SSH public keys', fields: [...NET, 'ip', 'sshkey'] },
  { name: 'save-hypervisor-hostname', summary: 'store the hypervisor host name in the VM\'s metadata', fields: [...NET, 'ip', 'hypervisor_hostname'] },
  { name: 'restore-network', summary: 'rebuild DHCP/DNS/metadata of all VMs from restore_data', fields: [...NET, 'restore_data', 'vlan', 'gateway', 'cidr', 'dns', 'domain', 'extension_ip'] },
  { name: 'custom-action', summary: 'run an operator action (reboot-device, dump-config, list-firewall-rules, pbr-*)', fields: ['network_id', 'vpc_id', 'action', 'action-params'], flatPayload: true },
  { name: 'status', summary: 'show the routers known to this host (or one of them)', fields: ['network_id', 'vpc_id'] },
  { name: 'install-wrapper', summary: 'install /etc/cloudstack/extensions/NAME/NAME-wrapper.sh that runs netns-router', fields: [] },
  { name: 'version', summary: 'print the version', fields: [] },
  { name: 'help', summary: 'show help for a command', fields: [] },
];

export const COMMAND_NAMES: readonly CommandName[] = COMMANDS.map((c) => c.name);

export function commandSpec(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

export function isLocalCommand(name: CommandName): name is LocalCommand {
  return name === 'install-wrapper' || name === 'version' || name === 'help';
}
