/**
 * The router for programs: `createRouter(options)` gives one typed method per command of the CLI
 * (`implementNetwork`, `assignIp`, `addPortForward`, …) taking plain values (contract/inputs.ts). A call runs
 * exactly what the CLI runs, minus the command line: the same builders validate its values (the CLI's messages
 * and UsageError, nothing changed), the same code takes the router's upstream-named lock and enforces the time
 * limit (invoke.ts), the same command table runs it (command-table.ts). A CLI process and a library call on one
 * router therefore never interleave, and a time-out means the same in both.
 */
import { resolve } from 'node:path';
import { API_METHOD, type CommandOutput } from './contract/router-api.js';
import type { CommandInputs } from './contract/inputs.js';
import { networkDetailsOf, requestFromValues } from './contract/plain-values.js';
import { DEFAULT_TIMEOUT_SECONDS, devicesOf, isolationOf, parseDryRun } from './contract/parse.js';
import type { Plan } from './plan.js';
import type { EngineCommand, GuestIsolation, HostDevices, RouterRequest, RouterSettings } from './contract/types.js';
import { BadValue, parseNamespaceName, parseTimeoutSeconds } from './contract/values.js';
import { decodeDetails } from './contract/decode.js';
import { createRouterApi } from './command-table.js';
import type { RouterKernel } from './kernel.js';
import { invokeCommand, type RunningCommand } from './invoke.js';
import { abbreviate, redact, type RouterLogger } from './log.js';
import { SystemError, UsageError } from '../util/errors.js';

/** How a router is set up: the CLI's global options and physical-network details, as values. */
export interface RouterOptions {
  /** The state directory (the CLI's `--state-dir`): routers' desired state, their locks, daemons' files. */
  stateDir: string;
  /** Host devices: `guest` carries the guest segments, `public` the public ones (the physical-network details `guest.network.device`, `public.network.device`; default eth1). */
  devices?: { guest?: string | undefined; public?: string | undefined } | undefined;
  /** Do host-side plumbing (bridges, segment devices, host veth ends) inside this named namespace instead of the caller's (`--host-netns`). */
  hostNetns?: string | undefined;
  /**
   * Guest isolation (physical-network details `guest.network.isolation[.range]`): what a bare number in `vlan`
   * is, and a range the router allocates segments from when implementNetwork gets none (docs/contract.md 2.7).
   */
  isolation?: { kind?: 'vlan' | 'vxlan' | undefined; range?: string | undefined } | undefined;
  /** Any other physical-network extension details (an object or its JSON text), as CloudStack sends them. */
  physicalNetworkDetails?: Readonly<Record<string, unknown>> | string | undefined;
  /** Where the router logs (a pino logger, `console`, …); default: nowhere. */
  logger?: RouterLogger | undefined;
  /** Each command's time limit in seconds unless a call says otherwise (the CLI's default: 60). */
  timeoutSeconds?: number | undefined;
  /**
   * The kernel the router reconciles (default: the machine's, `realKernel`): e.g. a `FakeKernel` (netns-router/router)
   * runs every command in memory — no root, no namespace, link, rule or daemon made —, a delegating one adds
   * checks or records; plans (`plan` calls) overlay it.
   */
  kernel?: RouterKernel | undefined;
}

/** Options of one call. */
export interface CallOptions {
  /** Cancels the call: it fails with TimeoutError `E_ABORTED` (a running engine call still completes or rolls back). */
  signal?: AbortSignal | undefined;
  /** This call's time limit in seconds: lock wait and engine call. */
  timeoutSeconds?: number | undefined;
  /** The network's extension details (`namespace`, `adopt-namespace`, …): an object or its JSON text. */
  networkDetails?: Readonly<Record<string, unknown>> | string | undefined;
  /**
   * Plan only (the CLI's `--dry-run`, lib/router/plan.ts): the call changes nothing and returns what it would
   * change — as text (`true` or 'text') or as one JSON document ('json'). `router.plan(…)` gives it as a Plan.
   */
  plan?: boolean | 'text' | 'json' | undefined;
}

/**
 * What a command printed on the CLI's stdout, without the final newline: JSON for status, restore-all and
 * custom actions (CloudStack's envelope), the allocated segment for implementNetwork with an isolation range;
 * undefined for every other command.
 */
export type CommandResult = string | undefined;

/** The router: one method per command, named after the CLI's (`add-port-forward` → `addPortForward`). */
export interface Router {
  /** implement-network: the router namespace, guest bridge, veths and gateway address. */
  implementNetwork(input: CommandInputs['implement-network'], opts?: CallOptions): Promise<CommandResult>;
  /** shutdown-network: remove the network's veths, rules and services (and its namespace unless a VPC tier). */
  shutdownNetwork(input: CommandInputs['shutdown-network'], opts?: CallOptions): Promise<CommandResult>;
  /** destroy-network: like shutdownNetwork, and forget the network's state. */
  destroyNetwork(input: CommandInputs['destroy-network'], opts?: CallOptions): Promise<CommandResult>;
  /** implement-vpc: the VPC namespace; with a source-NAT IP also the VPC's source NAT. */
  implementVpc(input: CommandInputs['implement-vpc'], opts?: CallOptions): Promise<CommandResult>;
  /** update-vpc-source-nat-ip: move the VPC's source NAT to another public IP. */
  updateVpcSourceNatIp(input: CommandInputs['update-vpc-source-nat-ip'], opts?: CallOptions): Promise<CommandResult>;
  /** shutdown-vpc: delete the VPC namespace. */
  shutdownVpc(input: CommandInputs['shutdown-vpc'], opts?: CallOptions): Promise<CommandResult>;
  /** destroy-vpc: delete the VPC namespace and its state. */
  destroyVpc(input: CommandInputs['destroy-vpc'], opts?: CallOptions): Promise<CommandResult>;
  /** assign-ip: attach a public IP (public veth, address, route; source NAT when `sourceNat`). */
  assignIp(input: CommandInputs['assign-ip'], opts?: CallOptions): Promise<CommandResult>;
  /** release-ip: detach a public IP and its NAT rules. */
  releaseIp(input: CommandInputs['release-ip'], opts?: CallOptions): Promise<CommandResult>;
  /** add-static-nat: one-to-one NAT public IP ↔ private IP. */
  addStaticNat(input: CommandInputs['add-static-nat'], opts?: CallOptions): Promise<CommandResult>;
  /** delete-static-nat: remove a one-to-one NAT. */
  deleteStaticNat(input: CommandInputs['delete-static-nat'], opts?: CallOptions): Promise<CommandResult>;
  /** add-port-forward: DNAT publicIp:publicPort → privateIp:privatePort. */
  addPortForward(input: CommandInputs['add-port-forward'], opts?: CallOptions): Promise<CommandResult>;
  /** delete-port-forward: remove a port forward. */
  deletePortForward(input: CommandInputs['delete-port-forward'], opts?: CallOptions): Promise<CommandResult>;
  /** apply-fw-rules: replace the network's firewall (ingress per public IP, egress policy). */
  applyFwRules(input: CommandInputs['apply-fw-rules'], opts?: CallOptions): Promise<CommandResult>;
  /** apply-network-acl: replace a VPC tier's ACL. */
  applyNetworkAcl(input: CommandInputs['apply-network-acl'], opts?: CallOptions): Promise<CommandResult>;
  /** apply-lb-rules: apply or revoke load-balancer rules. */
  applyLbRules(input: CommandInputs['apply-lb-rules'], opts?: CallOptions): Promise<CommandResult>;
  /** config-dhcp-subnet: DHCP for the subnet (DNS port off). */
  configDhcpSubnet(input: CommandInputs['config-dhcp-subnet'], opts?: CallOptions): Promise<CommandResult>;
  /** remove-dhcp-subnet: stop DHCP (and router advertisements) for the network. */
  removeDhcpSubnet(input: CommandInputs['remove-dhcp-subnet'], opts?: CallOptions): Promise<CommandResult>;
  /** add-dhcp-entry: a static DHCP lease mac → ip. */
  addDhcpEntry(input: CommandInputs['add-dhcp-entry'], opts?: CallOptions): Promise<CommandResult>;
  /** remove-dhcp-entry: remove a static DHCP lease. */
  removeDhcpEntry(input: CommandInputs['remove-dhcp-entry'], opts?: CallOptions): Promise<CommandResult>;
  /** set-dhcp-options: extra DHCP options for one NIC. */
  setDhcpOptions(input: CommandInputs['set-dhcp-options'], opts?: CallOptions): Promise<CommandResult>;
  /** config-dns-subnet: DHCP and DNS (port 53) for the subnet. */
  configDnsSubnet(input: CommandInputs['config-dns-subnet'], opts?: CallOptions): Promise<CommandResult>;
  /** remove-dns-subnet: turn DNS off, keep DHCP. */
  removeDnsSubnet(input: CommandInputs['remove-dns-subnet'], opts?: CallOptions): Promise<CommandResult>;
  /** add-dns-entry: host name → ip (and AAAA with ip6Address). */
  addDnsEntry(input: CommandInputs['add-dns-entry'], opts?: CallOptions): Promise<CommandResult>;
  /** remove-dns-entry: remove a host name. */
  removeDnsEntry(input: CommandInputs['remove-dns-entry'], opts?: CallOptions): Promise<CommandResult>;
  /** prepare-nic: before a VM boots, the DHCP/DNS entries of its NIC (a shared network is implemented on the way). */
  prepareNic(input: CommandInputs['prepare-nic'], opts?: CallOptions): Promise<CommandResult>;
  /** release-nic: after a VM stopped, remove its DHCP/DNS entries and metadata. */
  releaseNic(input: CommandInputs['release-nic'], opts?: CallOptions): Promise<CommandResult>;
  /** save-vm-data: the VM's metadata, user data and password from one document. */
  saveVmData(input: CommandInputs['save-vm-data'], opts?: CallOptions): Promise<CommandResult>;
  /** save-userdata: a VM's user data. */
  saveUserdata(input: CommandInputs['save-userdata'], opts?: CallOptions): Promise<CommandResult>;
  /** save-password: a VM's password for the password server. */
  savePassword(input: CommandInputs['save-password'], opts?: CallOptions): Promise<CommandResult>;
  /** save-sshkey: a VM's SSH public keys. */
  saveSshkey(input: CommandInputs['save-sshkey'], opts?: CallOptions): Promise<CommandResult>;
  /** save-hypervisor-hostname: the hypervisor host name in the VM's metadata. */
  saveHypervisorHostname(input: CommandInputs['save-hypervisor-hostname'], opts?: CallOptions): Promise<CommandResult>;
  /** restore-network: DHCP, DNS and metadata of every VM of the network from one document. */
  restoreNetwork(input: CommandInputs['restore-network'], opts?: CallOptions): Promise<CommandResult>;
  /** custom-action: a built-in action (dump-config, list-firewall-rules, pbr-*, reboot-device) or an operator hook; returns CloudStack's envelope. */
  customAction(input: CommandInputs['custom-action'], opts?: CallOptions): Promise<CommandResult>;
  /** status: the routers of the state directory (or one of them), as JSON. */
  status(input?: CommandInputs['status'], opts?: CallOptions): Promise<CommandResult>;
  /** restore-all: after a reboot, every stored router back (namespaces, rules, daemons). */
  restoreAll(input?: CommandInputs['restore-all'], opts?: CallOptions): Promise<CommandResult>;
  /** Any command by its CLI name: `router.run('add-port-forward', {...})` is `router.addPortForward({...})`. */
  run<C extends EngineCommand>(command: C, input: CommandInputs[C], opts?: CallOptions): Promise<CommandResult>;
  /**
   * What a command would change, without changing anything (plan before apply; the CLI's `--dry-run=json`):
   * links, addresses, routes, sysctls, the nft transactions, daemon configuration diffs, conntrack deletions,
   * the stored state. Fails as the command would (same error).
   */
  plan<C extends EngineCommand>(command: C, input: CommandInputs[C], opts?: Omit<CallOptions, 'plan'>): Promise<Plan>;
  /**
   * Stops taking calls (later ones fail with SystemError `E_CLOSED`) and resolves once every call has ended — an
   * engine call that outlived its time limit included. Routers, namespaces and daemons stay as they are.
   */
  close(): Promise<void>;
}

/** Compile-time check: every command of the engine has its method here, taking that command's input. */
type _EveryCommand = {
  [C in EngineCommand]: Router[(typeof API_METHOD)[C]] extends (input: CommandInputs[C], opts?: CallOptions) => Promise<CommandResult> ? true : never
};
const _everyCommand: _EveryCommand = Object.fromEntries(Object.keys(API_METHOD).map((k) => [k, true])) as _EveryCommand;
void _everyCommand;

const SILENT: RouterLogger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * The caller's logger behind the redaction of the CLI's log (log.ts): whatever the engine or a module logs, no
 * secret-looking field and no private key reaches it.
 */
function redacting(logger: RouterLogger): RouterLogger {
  const level = (name: keyof RouterLogger) => (record: object | string, message?: string): void => {
    const r = typeof record === 'string' ? redact(record) as string : redact(record) as object;
    if (message === undefined) logger[name](r);
    else logger[name](r, message);
  };
  return { debug: level('debug'), info: level('info'), warn: level('warn'), error: level('error') };
}

/** `label: problem` as a UsageError naming `label`, for a router option's value. */
function option<T>(label: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof BadValue) throw new UsageError(`${label}: ${e.message}`, label);
    throw e;
  }
}

/** The router's settings from its options, each checked as the CLI checks the option it stands for. */
function settingsOf(o: RouterOptions): { settings: RouterSettings; devices: HostDevices; isolation: GuestIsolation; physicalNetwork: Record<string, unknown> } {
  if (typeof o !== 'object' || o === null) throw new UsageError('createRouter: options { stateDir, … } are required', 'stateDir');
  if (typeof o.stateDir !== 'string' || o.stateDir.trim() === '' || o.stateDir.includes('\0')) {
    throw new UsageError('--state-dir: empty path', '--state-dir');
  }
  const physicalNetwork: Record<string, unknown> = {
    ...option('--physical-network-extension-details', () => decodeDetails(o.physicalNetworkDetails)),
  };
  // the named options are the physical-network details the CLI reads, checked by the same code
  if (o.devices?.guest !== undefined) physicalNetwork['guest.network.device'] = o.devices.guest;
  if (o.devices?.public !== undefined) physicalNetwork['public.network.device'] = o.devices.public;
  if (o.isolation?.kind !== undefined) physicalNetwork['guest.network.isolation'] = o.isolation.kind;
  if (o.isolation?.range !== undefined) physicalNetwork['guest.network.isolation.range'] = o.isolation.range;
  const settings: RouterSettings = {
    extension: 'netns-router', stateDir: resolve(o.stateDir), logFile: '', logLevel: 'info',
    timeoutSeconds: o.timeoutSeconds === undefined ? DEFAULT_TIMEOUT_SECONDS : option('--timeout', () => parseTimeoutSeconds(String(o.timeoutSeconds))),
  };
  if (o.hostNetns !== undefined) settings.hostNetns = option('--host-netns', () => parseNamespaceName(String(o.hostNetns)));
  return { settings, devices: devicesOf(physicalNetwork), isolation: isolationOf(physicalNetwork), physicalNetwork };
}

/** The CLI's output as a library result: the text without its final newline. */
function resultOf(out: CommandOutput): CommandResult {
  if (!out || typeof out !== 'object' || typeof out.stdout !== 'string' || out.stdout === '') return undefined;
  return out.stdout.replace(/\n$/, '');
}

/**
 * A router for this process: checks `options` (UsageError naming the option, as the CLI's) and returns the
 * command methods. Engines are made per call and share compiled router tables (like the resident engine's).
 */
export function createRouter(options: RouterOptions): Router {
  const { settings, devices, isolation, physicalNetwork } = settingsOf(options);
  const log = options.logger ? redacting(options.logger) : SILENT;
  const api = createRouterApi(options.kernel ? { kernel: options.kernel } : {});
  const running = new Set<Promise<void>>();
  let closed = false;

  async function run<C extends EngineCommand>(command: C, input: CommandInputs[C] | undefined, opts: CallOptions = {}): Promise<CommandResult> {
    if (closed) throw new SystemError('this router was closed (createRouter … close())', { code: 'E_CLOSED' });
    const started = Date.now();
    // everything is checked before the lock is taken: bad input changes nothing
    const network = networkDetailsOf(opts.networkDetails);
    const timeoutSeconds = opts.timeoutSeconds === undefined ? settings.timeoutSeconds : option('--timeout', () => parseTimeoutSeconds(String(opts.timeoutSeconds)));
    const dryRun = opts.plan === undefined || opts.plan === false ? undefined : parseDryRun(opts.plan === true ? true : opts.plan);
    // (a refusal here is the caller's to report, as the CLI's parse errors go to stderr only, not to the log)
    const req: RouterRequest = requestFromValues(command, input, { networkDetails: network, bareSegment: isolation.kind });
    log.debug({ command, request: abbreviate(req) }, 'command start');
    const call: RunningCommand = invokeCommand(api, req, {
      settings: { ...settings, timeoutSeconds, ...(dryRun ? { dryRun } : {}) }, devices, isolation, details: { physicalNetwork, network }, form: 'options', log,
    }, { timeoutSeconds, signal: opts.signal, startedAt: started });
    running.add(call.ended);
    void call.ended.then(() => running.delete(call.ended));
    try {
      const out = resultOf(await call.result);
      log.info({ command, durationMs: Date.now() - started }, 'command done');
      return out;
    } catch (e) {
      if (e instanceof UsageError) log.info({ command, durationMs: Date.now() - started, err: e }, 'command rejected');
      else log.error({ command, durationMs: Date.now() - started, err: e }, 'command failed');
      throw e;
    }
  }

  const router: Record<string, unknown> = {
    run,
    async plan(command: EngineCommand, input: never, opts: CallOptions = {}): Promise<Plan> {
      const doc = JSON.parse((await run(command, input, { ...opts, plan: 'json' }))!) as { plan: string; changes: Plan['changes'] };
      return { command: doc.plan, changes: doc.changes };
    },
    async close(): Promise<void> {
      closed = true;
      await Promise.all([...running]);
    },
  };
  for (const [command, method] of Object.entries(API_METHOD)) {
    router[method] = (input: unknown, opts?: CallOptions) => run(command as EngineCommand, input as never, opts);
  }
  return router as unknown as Router;
}
