/**
 * The command set: upstream's wrapper commands (same names), plus our own status, version,
 * install-wrapper and help, and the commands that run as processes of their own (the resident engine
 * `serve`, the management side `proxy` and `install-proxy`; cli/entry.ts starts them). The help of the CLI is
 * generated from this table. `fields` lists the arguments shown in a command's help; every other known
 * argument is still accepted (CloudStack sends more than each command needs) and ignored. `required` must
 * match the builders (build.ts); test/cli/help.test.ts checks that it does.
 */
import type { EngineCommand } from './types.js';

export type LocalCommand = 'install-wrapper' | 'version' | 'help';
/** Commands that run as a process of their own, never through the router's parser or the resident engine. */
export type FrontEndCommand = 'serve' | 'proxy' | 'install-proxy';
/** Every command of the CLI. */
export type CommandName = EngineCommand | LocalCommand | FrontEndCommand;

/** A command of the CLI: name, summary, the arguments its help shows, the required ones. */
export interface CommandSpec {
  name: CommandName;
  summary: string;
  /** payload keys shown in help */
  fields: readonly string[];
  /** payload keys without which the command is refused; an array entry: one of these (network_id or vpc_id) */
  required?: readonly (string | readonly string[])[];
  /** custom-action's payload file is flat (no nested "payload" object) */
  flatPayload?: boolean;
  /** runs as a process of its own (see FrontEndCommand) */
  frontEnd?: true;
}

const NET = ['network_id', 'vpc_id', 'guest_type', 'network_state'];
const ADDR = ['vlan', 'gateway', 'cidr', 'extension_ip', 'network_ip6_gateway', 'network_ip6_cidr', 'dns', 'dns6', 'domain'];
const PUB = ['public_ip', 'public_vlan', 'public_gateway', 'public_cidr', 'source_nat'];
const NIC = ['mac', 'ip', 'hostname', 'default_nic', 'nic_id', 'nic_uuid', 'ip6_address'];
const PF_REQ = ['network_id', 'public_ip', 'public_port', 'private_ip', 'private_port'];

/** Every command of the CLI; the help is generated from it. */
export const COMMANDS: readonly CommandSpec[] = [
  { name: 'implement-network', summary: 'create the router namespace, guest bridge/veth and gateway address', fields: [...NET, ...ADDR], required: ['network_id'] },
  { name: 'shutdown-network', summary: 'remove the network\'s veths, rules and services (and its namespace unless a VPC tier)', fields: [...NET, ...ADDR], required: ['network_id'] },
  { name: 'destroy-network', summary: 'like shutdown-network, and forget the network\'s state', fields: [...NET, ...ADDR], required: ['network_id'] },
  { name: 'implement-vpc', summary: 'create the VPC namespace; with a source-NAT IP also the VPC SNAT', fields: ['vpc_id', 'vpc_cidr', ...PUB], required: ['vpc_id'] },
  { name: 'update-vpc-source-nat-ip', summary: 'move the VPC source NAT to another public IP', fields: ['vpc_id', 'public_ip', 'vpc_cidr', 'public_vlan', 'public_gateway', 'public_cidr', 'source_nat'], required: ['vpc_id', 'public_ip'] },
  { name: 'shutdown-vpc', summary: 'delete the VPC namespace', fields: ['vpc_id'], required: ['vpc_id'] },
  { name: 'destroy-vpc', summary: 'delete the VPC namespace and its state', fields: ['vpc_id'], required: ['vpc_id'] },
  { name: 'assign-ip', summary: 'attach a public IP (public veth, address, route; SNAT when source_nat)', fields: [...NET, ...PUB, 'vlan', 'gateway', 'cidr'], required: ['network_id', 'public_ip', 'public_vlan'] },
  { name: 'release-ip', summary: 'detach a public IP and its NAT rules', fields: [...NET, ...PUB, 'cidr'], required: ['network_id', 'public_ip'] },
  { name: 'add-static-nat', summary: 'one-to-one NAT public IP <-> private IP', fields: [...NET, 'public_ip', 'private_ip', 'vlan', 'public_vlan', 'public_cidr'], required: ['network_id', 'public_ip', 'private_ip'] },
  { name: 'delete-static-nat', summary: 'remove a one-to-one NAT', fields: [...NET, 'public_ip', 'private_ip', 'public_vlan'], required: ['network_id', 'public_ip'] },
  { name: 'add-port-forward', summary: 'DNAT public_ip:public_port -> private_ip:private_port', fields: [...NET, 'public_ip', 'public_port', 'private_ip', 'private_port', 'protocol', 'vlan', 'public_vlan', 'public_cidr'], required: PF_REQ },
  { name: 'delete-port-forward', summary: 'remove a port forward', fields: [...NET, 'public_ip', 'public_port', 'private_ip', 'private_port', 'protocol', 'public_vlan'], required: PF_REQ },
  { name: 'apply-fw-rules', summary: 'rebuild the firewall (ingress per public IP, egress policy) from fw_rules', fields: [...NET, 'fw_rules', 'vlan', 'gateway', 'cidr'], required: ['network_id'] },
  { name: 'apply-network-acl', summary: 'rebuild a VPC tier\'s ACL from acl_rules', fields: [...NET, 'acl_rules', 'vlan', 'gateway', 'cidr'], required: ['network_id'] },
  { name: 'apply-lb-rules', summary: 'apply/revoke load-balancer rules from lb_rules', fields: [...NET, 'lb_rules', 'vlan'], required: ['network_id'] },
  { name: 'config-dhcp-subnet', summary: 'configure DHCP for the subnet (DNS port off)', fields: [...NET, 'gateway', 'cidr', 'dns', 'domain', 'extension_ip', 'vlan', 'network_ip6_gateway', 'network_ip6_cidr', 'dns6'], required: ['network_id', 'gateway', 'cidr'] },
  { name: 'remove-dhcp-subnet', summary: 'stop DHCP (and router advertisements) for the network', fields: [...NET, 'extension_ip'], required: ['network_id'] },
  { name: 'add-dhcp-entry', summary: 'static DHCP lease mac -> ip', fields: [...NET, ...NIC, 'gateway', 'cidr', 'dns', 'domain', 'extension_ip'], required: ['network_id', 'mac', 'ip'] },
  { name: 'remove-dhcp-entry', summary: 'remove a static DHCP lease', fields: [...NET, 'mac', 'ip', 'extension_ip'], required: ['network_id', 'mac'] },
  { name: 'set-dhcp-options', summary: 'extra DHCP options for one NIC', fields: [...NET, 'nic_id', 'options', 'extension_ip'], required: ['network_id', 'nic_id', 'options'] },
  { name: 'config-dns-subnet', summary: 'configure DHCP and DNS (port 53) for the subnet', fields: [...NET, 'gateway', 'cidr', 'dns', 'domain', 'extension_ip', 'vlan', 'network_ip6_gateway', 'network_ip6_cidr', 'dns6'], required: ['network_id', 'gateway', 'cidr'] },
  { name: 'remove-dns-subnet', summary: 'turn DNS off, keep DHCP', fields: [...NET, 'extension_ip'], required: ['network_id'] },
  { name: 'add-dns-entry', summary: 'host name -> ip (and AAAA with ip6_address)', fields: [...NET, 'ip', 'hostname', 'ip6_address', 'extension_ip'], required: ['network_id', 'ip', 'hostname'] },
  { name: 'remove-dns-entry', summary: 'remove a host name', fields: [...NET, 'ip', 'ip6_address'], required: ['network_id', 'ip'] },
  { name: 'prepare-nic', summary: 'before a VM boots: DHCP/DNS entries for its NIC (shared networks: implement lazily)', fields: [...NET, ...NIC, 'vlan', 'gateway', 'cidr', 'extension_ip'], required: ['network_id'] },
  { name: 'release-nic', summary: 'after a VM stops: remove its DHCP/DNS entries and metadata', fields: [...NET, 'mac', 'ip', 'ip6_address'], required: ['network_id'] },
  { name: 'save-vm-data', summary: 'store the VM\'s metadata/userdata/password set from vm_data', fields: [...NET, 'ip', 'vm_data', 'gateway', 'extension_ip'], required: ['network_id', 'ip', 'vm_data'] },
  { name: 'save-userdata', summary: 'store a VM\'s user data', fields: [...NET, 'ip', 'userdata'], required: ['network_id', 'ip'] },
  { name: 'save-password', summary: 'store a VM\'s password for the password server', fields: [...NET, 'ip', 'password'], required: ['network_id', 'ip'] },
  { name: 'save-sshkey', summary: 'store a VM\'s SSH public keys', fields: [...NET, 'ip', 'sshkey'], required: ['network_id', 'ip'] },
  { name: 'save-hypervisor-hostname', summary: 'store the hypervisor host name in the VM\'s metadata', fields: [...NET, 'ip', 'hypervisor_hostname'], required: ['network_id', 'ip'] },
  { name: 'restore-network', summary: 'rebuild DHCP/DNS/metadata of all VMs from restore_data', fields: [...NET, 'restore_data', 'vlan', 'gateway', 'cidr', 'dns', 'domain', 'extension_ip'], required: ['network_id', 'restore_data'] },
  { name: 'custom-action', summary: 'run an operator action (reboot-device, dump-config, list-firewall-rules, pbr-*, vm-filter-set)', fields: ['network_id', 'vpc_id', 'action', 'action-params'], required: [['network_id', 'vpc_id'], 'action'], flatPayload: true },
  { name: 'restore-all', summary: 'after a reboot: bring every stored router back (namespaces, rules, dnsmasq, haproxy, metadata)', fields: [], required: [] },
  { name: 'status', summary: 'show the routers known to this host (or one of them)', fields: ['network_id', 'vpc_id'] },
  { name: 'install-wrapper', summary: 'install /etc/cloudstack/extensions/NAME/NAME-wrapper.sh that runs netns-router', fields: [] },
  { name: 'serve', summary: 'run the resident engine: commands then cost milliseconds instead of a node start-up', fields: [], frontEnd: true },
  { name: 'proxy', summary: 'management-server side: run a command on the network\'s KVM host over SSH', fields: [], frontEnd: true },
  { name: 'install-proxy', summary: 'install the management-server entry of the extension that runs netns-router proxy', fields: [], frontEnd: true },
  { name: 'version', summary: 'print the version', fields: [] },
  { name: 'help', summary: 'show help for a command', fields: [] },
];

export const COMMAND_NAMES: readonly CommandName[] = COMMANDS.map((c) => c.name);

/** The spec of the command named `name`, if there is one. */
export function commandSpec(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

export function isLocalCommand(name: CommandName): name is LocalCommand {
  return name === 'install-wrapper' || name === 'version' || name === 'help';
}

export function isFrontEndCommand(name: CommandName): name is FrontEndCommand {
  return commandSpec(name)?.frontEnd === true;
}
