/**
 * Typed requests: what every invocation form (payload file, kebab-case options) is parsed into.
 * Every value here is already validated and canonical (IPs canonical text, VLANs numbers, …).
 */
import type { Cidr } from '../../util/ip.js';
import type { Segment } from '../segment.js';

export type { Cidr } from '../../util/ip.js';

export type { Segment } from '../segment.js';

/** A guest network's type as CloudStack sends it. */
export type GuestType = 'isolated' | 'shared' | 'l2';
/** Every GuestType. */
export const GUEST_TYPES: readonly GuestType[] = ['isolated', 'shared', 'l2'];

/** CloudStack Network.State, lower-cased as in the payload. */
export type NetworkState = 'allocated' | 'setup' | 'implementing' | 'implemented' | 'shutdown' | 'destroy';
/** Every NetworkState. */
export const NETWORK_STATES: readonly NetworkState[] = ['allocated', 'setup', 'implementing', 'implemented', 'shutdown', 'destroy'];

/** A port forward's protocol. */
export type Protocol = 'tcp' | 'udp';

/** Inclusive port range; a single port has start === end. */
export interface PortRange {
  start: number;
  end: number;
}

/**
 * A JSON document handed over undecoded-in-meaning (fw_rules, acl_rules, lb_rules, vm_data,
 * restore_data): already decoded from base64/JSON/file, validated later by its own module.
 * `source` names where it came from, for that module's error messages.
 */
export interface OpaqueJson {
  value: unknown;
  source: string;
  /**
   * The document exactly as given — an option's or a payload string's text, a file's bytes — when it came so
   * rather than as a JSON value inside a payload: a module may recognise a document it already validated and
   * applied by its digest (apply-fw-rules, lib/router/firewall/payload-digest.ts). Kept only for the documents
   * whose command asks for it, and non-enumerable: never logged nor serialised with the request.
   */
  raw?: string | Buffer;
}

/** Which router a network-level command addresses. `namespace` is already resolved. */
export interface NetworkTarget {
  networkId: string;
  /** Present for VPC tiers: the router is then the VPC's namespace. */
  vpcId?: string;
  namespace: string;
  /** network-extension-details adopt-namespace=true: a namespace netns-router did not create may be taken over. */
  adoptNamespace?: true;
  /** network-extension-details vm-filter: true filters the network's guest segment (docs/vm-filter.md; off by default). */
  vmFilter?: boolean;
  /**
   * network-extension-details vm-filter-strict: true drops frames from MACs the router does not know on the
   * network's guest segment (docs/vm-filter.md); false allows them again; absent keeps what was recorded.
   */
  vmFilterStrict?: boolean;
  /**
   * network-extension-details lb-provider: who serves the network's load-balancing rules, haproxy (the default) or
   * the kernel (plain TCP rules in nftables, docs/load-balancing.md "Kernel provider"); absent keeps what was recorded.
   */
  lbProvider?: 'haproxy' | 'kernel';
  guestType?: GuestType;
  networkState?: NetworkState;
  zoneId?: string;
}

/** Which router a VPC-level command addresses. */
export interface VpcTarget {
  vpcId: string;
  namespace: string;
  /** As NetworkTarget.adoptNamespace. */
  adoptNamespace?: true;
}

/** Guest-side addressing that network-level commands may carry (all optional on the wire). */
export interface GuestAddressing {
  segment?: Segment;
  gateway?: string;
  cidr?: Cidr;
  extensionIp?: string;
  ip6Gateway?: string;
  ip6Cidr?: Cidr;
  dns?: string[];
  dns6?: string[];
  domain?: string;
}

/** A public IP as the payload describes it. */
export interface PublicIpSpec {
  ip: string;
  /** public_vlan; may be omitted where upstream reloads it from state. */
  segment?: Segment;
  gateway?: string;
  /** public_cidr: the public range; its prefix length is the address's prefix. */
  cidr?: Cidr;
  sourceNat: boolean;
}

/** NIC fields of the DHCP/DNS/metadata commands. */
export interface NicFields {
  mac?: string;
  ip?: string;
  hostname?: string;
  defaultNic: boolean;
  nicId?: string;
  nicUuid?: string;
  ip6Address?: string;
}

type NetCmd<C extends string, X = object> = { command: C } & NetworkTarget & GuestAddressing & X;
type VpcCmd<C extends string, X = object> = { command: C } & VpcTarget & X;

/** The typed request of implement-network. */
export type ImplementNetworkRequest = NetCmd<'implement-network'>;
/** The typed request of shutdown-network. */
export type ShutdownNetworkRequest = NetCmd<'shutdown-network'>;
/** The typed request of destroy-network. */
export type DestroyNetworkRequest = NetCmd<'destroy-network'>;

/** The typed request of implement-vpc. */
export type ImplementVpcRequest = VpcCmd<'implement-vpc', { vpcCidr?: Cidr; publicIp?: PublicIpSpec }>;
/** The typed request of update-vpc-source-nat-ip. */
export type UpdateVpcSourceNatIpRequest = VpcCmd<'update-vpc-source-nat-ip', { vpcCidr?: Cidr; publicIp: PublicIpSpec }>;
/** The typed request of shutdown-vpc. */
export type ShutdownVpcRequest = VpcCmd<'shutdown-vpc'>;
/** The typed request of destroy-vpc. */
export type DestroyVpcRequest = VpcCmd<'destroy-vpc'>;

/** The typed request of assign-ip. */
export type AssignIpRequest = NetCmd<'assign-ip', { publicIp: PublicIpSpec & { segment: Segment } }>;
/** The typed request of release-ip. */
export type ReleaseIpRequest = NetCmd<'release-ip', { publicIp: PublicIpSpec }>;
/** The typed request of add-static-nat. */
export type AddStaticNatRequest = NetCmd<'add-static-nat', { publicIp: PublicIpSpec; privateIp: string }>;
/** The typed request of delete-static-nat. */
export type DeleteStaticNatRequest = NetCmd<'delete-static-nat', { publicIp: PublicIpSpec; privateIp?: string }>;

/** A port forward as requests carry it: public IP, port ranges, private IP, protocol. */
export interface PortForwardFields {
  publicIp: PublicIpSpec;
  publicPorts: PortRange;
  privateIp: string;
  privatePorts: PortRange;
  protocol: Protocol;
}
/** The typed request of add-port-forward. */
export type AddPortForwardRequest = NetCmd<'add-port-forward', PortForwardFields>;
/** The typed request of delete-port-forward. */
export type DeletePortForwardRequest = NetCmd<'delete-port-forward', PortForwardFields>;

/** The typed request of apply-fw-rules. */
export type ApplyFwRulesRequest = NetCmd<'apply-fw-rules', { fwRules?: OpaqueJson }>;
/** The typed request of apply-network-acl. */
export type ApplyNetworkAclRequest = NetCmd<'apply-network-acl', { aclRules?: OpaqueJson }>;
/** The typed request of apply-lb-rules. */
export type ApplyLbRulesRequest = NetCmd<'apply-lb-rules', { lbRules?: OpaqueJson }>;

/** The typed request of config-dhcp-subnet. */
export type ConfigDhcpSubnetRequest = NetCmd<'config-dhcp-subnet', { gateway: string; cidr: Cidr }>;
/** The typed request of remove-dhcp-subnet. */
export type RemoveDhcpSubnetRequest = NetCmd<'remove-dhcp-subnet'>;
/** The typed request of add-dhcp-entry. */
export type AddDhcpEntryRequest = NetCmd<'add-dhcp-entry', NicFields & { mac: string; ip: string }>;
/** The typed request of remove-dhcp-entry. */
export type RemoveDhcpEntryRequest = NetCmd<'remove-dhcp-entry', NicFields & { mac: string }>;
/** The typed request of set-dhcp-options. */
export type SetDhcpOptionsRequest = NetCmd<'set-dhcp-options', { nicId: string; options: Record<string, string> }>;
/** The typed request of config-dns-subnet. */
export type ConfigDnsSubnetRequest = NetCmd<'config-dns-subnet', { gateway: string; cidr: Cidr }>;
/** The typed request of remove-dns-subnet. */
export type RemoveDnsSubnetRequest = NetCmd<'remove-dns-subnet'>;
/** The typed request of add-dns-entry. */
export type AddDnsEntryRequest = NetCmd<'add-dns-entry', NicFields & { ip: string; hostname: string }>;
/** The typed request of remove-dns-entry. */
export type RemoveDnsEntryRequest = NetCmd<'remove-dns-entry', NicFields & { ip: string }>;

/** The typed request of prepare-nic. */
export type PrepareNicRequest = NetCmd<'prepare-nic', NicFields>;
/** The typed request of release-nic. */
export type ReleaseNicRequest = NetCmd<'release-nic', NicFields>;

/** The typed request of save-vm-data. */
export type SaveVmDataRequest = NetCmd<'save-vm-data', { ip: string; vmData: OpaqueJson }>;
/** The typed request of save-userdata. */
export type SaveUserdataRequest = NetCmd<'save-userdata', { ip: string; userdata: string }>;
/** The typed request of save-password. */
export type SavePasswordRequest = NetCmd<'save-password', { ip: string; password?: string }>;
/** The typed request of save-sshkey. */
export type SaveSshkeyRequest = NetCmd<'save-sshkey', { ip: string; sshkey: string }>;
/** The typed request of save-hypervisor-hostname. */
export type SaveHypervisorHostnameRequest = NetCmd<'save-hypervisor-hostname', { ip: string; hypervisorHostname: string }>;
/** The typed request of restore-network. */
export type RestoreNetworkRequest = NetCmd<'restore-network', { restoreData: OpaqueJson }>;

/** Built-in custom actions of the upstream wrapper, with their action-params decoded. */
export type BuiltinCustomAction =
  | { name: 'reboot-device' }
  | { name: 'dump-config' }
  | { name: 'list-firewall-rules' }
  | { name: 'pbr-create-table'; tableId: number; tableName: string }
  | { name: 'pbr-delete-table'; tableId?: number; tableName?: string }
  | { name: 'pbr-list-tables' }
  | { name: 'pbr-add-route'; table: string; route: string }
  | { name: 'pbr-delete-route'; table: string; route: string }
  | { name: 'pbr-list-routes'; table?: string }
  | { name: 'pbr-add-rule'; table: string; rule: string }
  | { name: 'pbr-delete-rule'; table: string; rule: string }
  | { name: 'pbr-list-rules'; table?: string }
  /** netns-router's own: the guest-segment filter's rule sets (action-params decoded by lib/router/vmfilter). */
  | { name: 'vm-filter-set' };

/** The typed request of custom-action: the action, its parameters, and the built-in it names (if any). */
export interface CustomActionRequest {
  command: 'custom-action';
  networkId?: string;
  vpcId?: string;
  namespace: string;
  action: string;
  /** action-params as given (string values for the API, objects allowed). */
  actionParams: Record<string, unknown>;
  /** Set when `action` is one of the upstream built-ins; undefined → a hook action. */
  builtin?: BuiltinCustomAction;
}

/** The typed request of status: all routers, or one network's or VPC's. */
export interface StatusRequest {
  command: 'status';
  networkId?: string;
  vpcId?: string;
  namespace?: string;
}

/** Re-apply every stored router of the state directory (after a reboot). Takes no CLI lock: it locks each router. */
export interface RestoreAllRequest {
  command: 'restore-all';
}

/** Every request the engine (RouterApi) receives. */
export type RouterRequest =
  | ImplementNetworkRequest | ShutdownNetworkRequest | DestroyNetworkRequest
  | ImplementVpcRequest | UpdateVpcSourceNatIpRequest | ShutdownVpcRequest | DestroyVpcRequest
  | AssignIpRequest | ReleaseIpRequest | AddStaticNatRequest | DeleteStaticNatRequest
  | AddPortForwardRequest | DeletePortForwardRequest
  | ApplyFwRulesRequest | ApplyNetworkAclRequest | ApplyLbRulesRequest
  | ConfigDhcpSubnetRequest | RemoveDhcpSubnetRequest | AddDhcpEntryRequest | RemoveDhcpEntryRequest | SetDhcpOptionsRequest
  | ConfigDnsSubnetRequest | RemoveDnsSubnetRequest | AddDnsEntryRequest | RemoveDnsEntryRequest
  | PrepareNicRequest | ReleaseNicRequest
  | SaveVmDataRequest | SaveUserdataRequest | SavePasswordRequest | SaveSshkeyRequest | SaveHypervisorHostnameRequest
  | RestoreNetworkRequest | CustomActionRequest | StatusRequest | RestoreAllRequest;

/** The name of every command the engine runs (the CLI's router commands). */
export type EngineCommand = RouterRequest['command'];
/** The typed request of command `C`. */
export type RequestOf<C extends EngineCommand> = Extract<RouterRequest, { command: C }>;

/** Commands handled by the CLI itself (no engine, no lock). */
export interface InstallWrapperRequest {
  command: 'install-wrapper';
  extension: string;
  /** Prefix for /etc/cloudstack/… (tests install under a temp dir). */
  root: string;
  /** Interpreter and entry script the shim execs. */
  node: string;
  script: string;
  /** global options given explicitly to install-wrapper, baked into the shim (--state-dir …) */
  extraArgs: string[];
  force: boolean;
  /** forget the options baked into an existing shim (by default those not given again are kept) */
  reset?: boolean;
}
/** `netns-router version`. */
export interface VersionRequest { command: 'version' }
/** Help text to print; `error` when shown because the command line was incomplete (exit 1). */
export interface HelpRequest { command: 'help'; text: string; error: boolean }
/** A command the CLI runs itself, without the engine. */
export type LocalRequest = InstallWrapperRequest | VersionRequest | HelpRequest;

/** Host devices from the physical-network extension details. */
export interface HostDevices {
  /** guest.network.device (default eth1) */
  guest: string;
  /** public.network.device (default eth1) */
  public: string;
}

/**
 * Guest isolation from the physical-network extension details: `guest.network.isolation` (vlan | vxlan:
 * what a bare number in `vlan` means, and what the extension allocates) and `guest.network.isolation.range`
 * (when set, implement-network without a segment allocates one from it and prints the broadcast URI).
 */
export interface GuestIsolation {
  kind: 'vlan' | 'vxlan';
  range?: {
    ranges: Array<[number, number]>;
    /** the detail's text, for messages */
    text: string;
  };
}

/** Process-wide settings from global options / environment. */
export interface RouterSettings {
  extension: string;
  stateDir: string;
  logFile: string;
  /** Do host-side plumbing (bridges, VLAN devices, host veth ends) inside this named netns. */
  hostNetns?: string;
  logLevel: LogLevel;
  /** Seconds the whole command may take. */
  timeoutSeconds: number;
  /** Plan only (`--dry-run[=json]`, lib/router/plan.ts): print what the command would change, change nothing. */
  dryRun?: 'text' | 'json';
}

/** A log level of the CLI's log. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
/** Every LogLevel. */
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** How the arguments were given. */
export type InvocationForm = 'payload-file' | 'options';

/** Fully parsed invocation of an engine command. */
export interface EngineInvocation {
  kind: 'engine';
  form: InvocationForm;
  request: RouterRequest;
  settings: RouterSettings;
  devices: HostDevices;
  isolation: GuestIsolation;
  details: {
    physicalNetwork: Record<string, unknown>;
    network: Record<string, unknown>;
  };
}

/** A parsed command line of a local command. */
export interface LocalInvocation {
  kind: 'local';
  request: LocalRequest;
  settings: RouterSettings;
}

/** A parsed command line: an engine command or a local one. */
export type Invocation = EngineInvocation | LocalInvocation;
