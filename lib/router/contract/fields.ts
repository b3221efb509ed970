/**
 * Every argument the contract knows: its payload key (snake_case, as CloudStack writes it), its
 * option (kebab-case, as the older CLI form passes it) and a one-line help. The same table drives
 * both invocation forms, so a payload key and its option always mean the same thing.
 */

export interface FieldDef {
  /** payload key, e.g. "public_port"; for custom-action also top-level keys like "action-params" */
  key: string;
  /** option name without dashes, e.g. "public-port" */
  option: string;
  help: string;
  /** payload aliases accepted for the same field (other CloudStack builds' spellings) */
  aliases?: readonly string[];
  /** value is a JSON document: the option takes JSON or base64, `--<option>-file` takes a file */
  document?: boolean;
  /** never echo the value (logs, error messages) */
  secret?: boolean;
}

const F = (key: string, help: string, extra: Partial<FieldDef> = {}): FieldDef => ({
  key, option: key.replace(/_/g, '-'), help, ...extra,
});

/** Every argument of the contract: payload key, option, help. */
export const FIELDS: readonly FieldDef[] = [
  F('network_id', 'CloudStack network id'),
  F('vpc_id', 'VPC id (the router is then the VPC namespace cs-vpc-<id>)'),
  F('vlan', 'guest segment: N, vlan://N, untagged or vxlan://VNI'),
  F('gateway', 'guest gateway (IPv4)'),
  F('cidr', 'guest CIDR (IPv4)'),
  F('extension_ip', 'router address on the guest network (defaults to the gateway)'),
  F('guest_type', 'isolated, shared or l2'),
  F('network_state', 'allocated, setup, implementing, implemented, shutdown or destroy'),
  F('zone_id', 'CloudStack zone id'),
  F('network_ip6_gateway', 'guest IPv6 gateway'),
  F('network_ip6_cidr', 'guest IPv6 CIDR'),
  F('dns', 'IPv4 DNS servers, comma separated'),
  F('dns6', 'IPv6 DNS servers, comma separated'),
  F('domain', 'network domain suffix'),
  F('vpc_cidr', 'VPC super-CIDR (IPv4)'),
  F('public_ip', 'public IPv4 address'),
  F('public_vlan', 'public segment: N, vlan://N, untagged or vxlan://VNI'),
  F('public_gateway', 'public gateway (IPv4)'),
  F('public_cidr', 'public range CIDR; its prefix is the public address prefix'),
  F('source_nat', 'true when the public IP is the source-NAT address'),
  F('private_ip', 'VM private IPv4 address (NAT target)'),
  F('public_port', 'public port or range (80, 80:90, 80-90)'),
  F('private_port', 'private port or range'),
  F('protocol', 'tcp or udp (default tcp)'),
  F('mac', 'VM NIC MAC address'),
  F('ip', 'VM NIC IPv4 address'),
  F('hostname', 'VM host name'),
  F('default_nic', 'false for a secondary NIC (no default route offered)'),
  F('nic_id', 'CloudStack NIC id'),
  F('nic_uuid', 'NIC UUID'),
  F('netmask', 'VM NIC netmask (informational)'),
  F('device_id', 'NIC device slot (informational)'),
  F('ip6_address', 'VM NIC IPv6 address', { aliases: ['nic_ip6_address'] }),
  F('ip6_gateway', 'VM NIC IPv6 gateway (informational)', { aliases: ['nic_ip6_gateway'] }),
  F('ip6_cidr', 'VM NIC IPv6 CIDR (informational)', { aliases: ['nic_ip6_cidr'] }),
  F('userdata', 'user data (plain text)', { secret: true }),
  F('password', 'VM password (plain text)', { secret: true }),
  F('sshkey', 'SSH public key(s) (plain text)', { secret: true }),
  F('hypervisor_hostname', 'hypervisor host name'),
  F('fw_rules', 'firewall rules document (JSON or base64)', { document: true }),
  F('acl_rules', 'network ACL document (JSON or base64)', { document: true }),
  F('lb_rules', 'load-balancer rules document (JSON or base64)', { document: true }),
  F('vm_data', 'VM metadata document (JSON or base64)', { document: true, secret: true }),
  F('restore_data', 'network restore document (JSON or base64)', { document: true, secret: true }),
  F('options', 'extra DHCP options, JSON object {"<code>":"<value>"}'),
  F('action', 'custom action name'),
  { key: 'action-params', option: 'action-params', help: 'custom action parameters, JSON object', aliases: ['action_params'] },
  F('current_details', 'ensure-network-device only (ignored)'),
];

export const FIELD_BY_KEY: ReadonlyMap<string, FieldDef> = new Map(FIELDS.map((f) => [f.key, f]));

/** Field looked up by a payload key or one of its aliases. */
export function fieldOfPayloadKey(key: string): FieldDef | undefined {
  return FIELD_BY_KEY.get(key) ?? FIELDS.find((f) => f.aliases?.includes(key));
}

/** commander's camelCase attribute name of an option ("public-port" → "publicPort"). */
export function optionAttr(option: string): string {
  return option.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
