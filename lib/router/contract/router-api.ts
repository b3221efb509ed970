/**
 * RouterApi: the engine's side of the contract, one typed method per command. The CLI parses
 * and validates, takes the router's lock, then calls exactly one of these with the typed request
 * and a context (settings, host devices, details, deadline). The command table implements it
 * (createRouterApi, lib/router/command-table.ts); the CLI's tests substitute a recording one.
 */
import type { RouterLogger } from '../log.js';
import type {
  AddDhcpEntryRequest, AddDnsEntryRequest, AddPortForwardRequest, AddStaticNatRequest, ApplyFwRulesRequest,
  ApplyLbRulesRequest, ApplyNetworkAclRequest, AssignIpRequest, ConfigDhcpSubnetRequest, ConfigDnsSubnetRequest,
  CustomActionRequest, DeletePortForwardRequest, DeleteStaticNatRequest, DestroyNetworkRequest, DestroyVpcRequest,
  EngineCommand, GuestIsolation, HostDevices, ImplementNetworkRequest, ImplementVpcRequest, InvocationForm, PrepareNicRequest,
  ReleaseIpRequest, ReleaseNicRequest, RemoveDhcpEntryRequest, RemoveDhcpSubnetRequest, RemoveDnsEntryRequest,
  RemoveDnsSubnetRequest, RequestOf, RestoreNetworkRequest, RouterSettings, SaveHypervisorHostnameRequest,
  SavePasswordRequest, SaveSshkeyRequest, SaveUserdataRequest, SaveVmDataRequest, SetDhcpOptionsRequest,
  RestoreAllRequest, ShutdownNetworkRequest, ShutdownVpcRequest, StatusRequest, UpdateVpcSourceNatIpRequest,
} from './types.js';

/** What a command prints on success (custom-action's JSON, status text …). */
export type CommandOutput = void | { stdout?: string };

/** Everything besides the request that a command may need. */
export interface CommandContext {
  settings: RouterSettings;
  /** guest/public host devices from the physical-network details (default eth1) */
  devices: HostDevices;
  /** guest.network.isolation[.range] from the physical-network details; absent: bare numbers are VLANs, no pool */
  isolation?: GuestIsolation;
  details: {
    physicalNetwork: Record<string, unknown>;
    network: Record<string, unknown>;
  };
  form: InvocationForm;
  /** Epoch ms by which the command must be finished (the CLI gives up then). */
  deadline: number;
  /** Aborted when the deadline passes; long waits should listen to it. */
  signal: AbortSignal;
  /** Where the command logs (the CLI: its pino log file; the library: the caller's logger, or none). */
  log: RouterLogger;
}

/**
 * The engine. Each method is called with the router's lock held (lock-network-<id>, or
 * lock-vpc-<id> for VPC tiers and VPC commands; none for `status`) and must leave the kernel
 * either fully at the new desired state or unchanged. Throw UsageError (exit 1) for requests
 * that are well-formed but impossible (e.g. unknown public IP), SystemError (exit 2) otherwise.
 */
export interface RouterApi {
  implementNetwork(req: ImplementNetworkRequest, ctx: CommandContext): Promise<CommandOutput>;
  shutdownNetwork(req: ShutdownNetworkRequest, ctx: CommandContext): Promise<CommandOutput>;
  destroyNetwork(req: DestroyNetworkRequest, ctx: CommandContext): Promise<CommandOutput>;
  implementVpc(req: ImplementVpcRequest, ctx: CommandContext): Promise<CommandOutput>;
  updateVpcSourceNatIp(req: UpdateVpcSourceNatIpRequest, ctx: CommandContext): Promise<CommandOutput>;
  shutdownVpc(req: ShutdownVpcRequest, ctx: CommandContext): Promise<CommandOutput>;
  destroyVpc(req: DestroyVpcRequest, ctx: CommandContext): Promise<CommandOutput>;
  assignIp(req: AssignIpRequest, ctx: CommandContext): Promise<CommandOutput>;
  releaseIp(req: ReleaseIpRequest, ctx: CommandContext): Promise<CommandOutput>;
  addStaticNat(req: AddStaticNatRequest, ctx: CommandContext): Promise<CommandOutput>;
  deleteStaticNat(req: DeleteStaticNatRequest, ctx: CommandContext): Promise<CommandOutput>;
  addPortForward(req: AddPortForwardRequest, ctx: CommandContext): Promise<CommandOutput>;
  deletePortForward(req: DeletePortForwardRequest, ctx: CommandContext): Promise<CommandOutput>;
  applyFwRules(req: ApplyFwRulesRequest, ctx: CommandContext): Promise<CommandOutput>;
  applyNetworkAcl(req: ApplyNetworkAclRequest, ctx: CommandContext): Promise<CommandOutput>;
  applyLbRules(req: ApplyLbRulesRequest, ctx: CommandContext): Promise<CommandOutput>;
  configDhcpSubnet(req: ConfigDhcpSubnetRequest, ctx: CommandContext): Promise<CommandOutput>;
  removeDhcpSubnet(req: RemoveDhcpSubnetRequest, ctx: CommandContext): Promise<CommandOutput>;
  addDhcpEntry(req: AddDhcpEntryRequest, ctx: CommandContext): Promise<CommandOutput>;
  removeDhcpEntry(req: RemoveDhcpEntryRequest, ctx: CommandContext): Promise<CommandOutput>;
  setDhcpOptions(req: SetDhcpOptionsRequest, ctx: CommandContext): Promise<CommandOutput>;
  configDnsSubnet(req: ConfigDnsSubnetRequest, ctx: CommandContext): Promise<CommandOutput>;
  removeDnsSubnet(req: RemoveDnsSubnetRequest, ctx: CommandContext): Promise<CommandOutput>;
  addDnsEntry(req: AddDnsEntryRequest, ctx: CommandContext): Promise<CommandOutput>;
  removeDnsEntry(req: RemoveDnsEntryRequest, ctx: CommandContext): Promise<CommandOutput>;
  prepareNic(req: PrepareNicRequest, ctx: CommandContext): Promise<CommandOutput>;
  releaseNic(req: ReleaseNicRequest, ctx: CommandContext): Promise<CommandOutput>;
  saveVmData(req: SaveVmDataRequest, ctx: CommandContext): Promise<CommandOutput>;
  saveUserdata(req: SaveUserdataRequest, ctx: CommandContext): Promise<CommandOutput>;
  savePassword(req: SavePasswordRequest, ctx: CommandContext): Promise<CommandOutput>;
  saveSshkey(req: SaveSshkeyRequest, ctx: CommandContext): Promise<CommandOutput>;
  saveHypervisorHostname(req: SaveHypervisorHostnameRequest, ctx: CommandContext): Promise<CommandOutput>;
  restoreNetwork(req: RestoreNetworkRequest, ctx: CommandContext): Promise<CommandOutput>;
  customAction(req: CustomActionRequest, ctx: CommandContext): Promise<CommandOutput>;
  status(req: StatusRequest, ctx: CommandContext): Promise<CommandOutput>;
  restoreAll(req: RestoreAllRequest, ctx: CommandContext): Promise<CommandOutput>;
}

/** Command → RouterApi method name. */
export const API_METHOD = {
  'implement-network': 'implementNetwork',
  'shutdown-network': 'shutdownNetwork',
  'destroy-network': 'destroyNetwork',
  'implement-vpc': 'implementVpc',
  'update-vpc-source-nat-ip': 'updateVpcSourceNatIp',
  'shutdown-vpc': 'shutdownVpc',
  'destroy-vpc': 'destroyVpc',
  'assign-ip': 'assignIp',
  'release-ip': 'releaseIp',
  'add-static-nat': 'addStaticNat',
  'delete-static-nat': 'deleteStaticNat',
  'add-port-forward': 'addPortForward',
  'delete-port-forward': 'deletePortForward',
  'apply-fw-rules': 'applyFwRules',
  'apply-network-acl': 'applyNetworkAcl',
  'apply-lb-rules': 'applyLbRules',
  'config-dhcp-subnet': 'configDhcpSubnet',
  'remove-dhcp-subnet': 'removeDhcpSubnet',
  'add-dhcp-entry': 'addDhcpEntry',
  'remove-dhcp-entry': 'removeDhcpEntry',
  'set-dhcp-options': 'setDhcpOptions',
  'config-dns-subnet': 'configDnsSubnet',
  'remove-dns-subnet': 'removeDnsSubnet',
  'add-dns-entry': 'addDnsEntry',
  'remove-dns-entry': 'removeDnsEntry',
  'prepare-nic': 'prepareNic',
  'release-nic': 'releaseNic',
  'save-vm-data': 'saveVmData',
  'save-userdata': 'saveUserdata',
  'save-password': 'savePassword',
  'save-sshkey': 'saveSshkey',
  'save-hypervisor-hostname': 'saveHypervisorHostname',
  'restore-network': 'restoreNetwork',
  'custom-action': 'customAction',
  status: 'status',
  'restore-all': 'restoreAll',
} as const satisfies { readonly [C in EngineCommand]: keyof RouterApi };

type MethodFor<C extends EngineCommand> = (typeof API_METHOD)[C];

/** Compile-time check that each table entry's method takes that command's request. */
type _Consistent = {
  [C in EngineCommand]: RouterApi[MethodFor<C>] extends (req: RequestOf<C>, ctx: CommandContext) => Promise<CommandOutput> ? true : never
};
const _consistent: _Consistent = Object.fromEntries(Object.keys(API_METHOD).map((k) => [k, true])) as _Consistent;
void _consistent;

/** Calls the RouterApi method that handles `req`. */
export function dispatch(api: RouterApi, req: RequestOf<EngineCommand>, ctx: CommandContext): Promise<CommandOutput> {
  const method = API_METHOD[req.command];
  const fn = api[method] as (r: typeof req, c: CommandContext) => Promise<CommandOutput>;
  if (typeof fn !== 'function') throw new TypeError(`RouterApi has no method ${method}`);
  return fn.call(api, req, ctx);
}
