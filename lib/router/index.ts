/**
 * netns-router/router: the router layer for programs. createRouter is the whole router behind one typed method
 * per command (docs/library.md); below it the pieces it is made of, for programs that need them: the engine
 * (load → mutate → reconcile → save), the command table, the contract (the CLI's parser, the builders and value
 * checks every input goes through), the state store and the routers' locks, the feature modules' interface.
 */
export { createRouter, type Router, type RouterOptions, type CallOptions, type CommandResult } from './create-router.js';
export type * from './contract/inputs.js';
export { invokeCommand, type InvokeLimits, type RunningCommand, type CommandContextBase } from './invoke.js';
export type { RouterLogger } from './log.js';
export {
  runCommand, commandContext, createRouterApi, commandTable, actionTable,
  type CommandEnv, type Mutation, type RouterCommand, type CommandTable, type CustomAction, type ActionTable,
} from './command-table.js';
export { RouterEngine, EngineCaches, type EngineOptions, type CommandRef, type MutationVerdict } from './engine.js';
export type { ReconcileScope } from './reconcile-scope.js';
export { realKernel, type RouterKernel, type NsOps, type NetOps } from './kernel.js';
export type { NatPlan, PortForward } from './router-table.js';
export { FakeKernel, FakeDnsmasq, FakeMetadata } from './fake-kernel.js';
export { FakeHaproxy } from './fake-haproxy.js';
// the daemons' seams of RouterKernel, with the types a program implementing them needs
export type { DnsmasqControl, ApplyResult, ApplyAction, ReleaseGroup } from '../services/dnsmasq/supervisor.js';
export type { RenderedDnsmasq, DnsmasqPaths } from '../services/dnsmasq/config.js';
export type { Lease } from '../services/dnsmasq/leases.js';
export type { MetadataControl, MetadataSyncOptions } from '../services/metadata/control.js';
export type { DaemonStatus, RouterStatus } from '../services/metadata/daemon.js';
export type { HaproxyControl } from '../services/haproxy/control.js';
export type { CheckResult } from '../services/haproxy/check.js';
export type { ConfigProblem } from '../services/haproxy/errors.js';
export type { ApplyOutcome } from '../services/haproxy/supervisor.js';
export { PlanRecorder, planText, planJson, type Plan, type PlanStep } from './plan.js';
export type { RouterModule, ReconcileContext, PublicIngress, PublicService, HostTable } from './router-module.js';
export { defaultModules } from './default-modules.js';
export { emptyModel, modelIsIdle, type RouterModel, type TierModel, type PublicIpModel, type L2Model, type PortForwardModel } from './model.js';
export { StateStore } from './state/store.js';
export {
  acquireRouterLock, tryAcquireRouterLock, withRouterLock, routerKeyOf, requestLockKey, lockPath, lockFileName,
  type RouterKey, type LockHandle, type AcquireOptions,
} from './state/lock.js';
export { routerNamespace, bridgeName, segmentDeviceName, vethNames, type VethInputs } from './names.js';

// the contract: what every invocation form is parsed into, and the code that parses and checks it
export type * from './contract/types.js';
export { GUEST_TYPES, NETWORK_STATES, LOG_LEVELS } from './contract/types.js';
export { API_METHOD, dispatch, type RouterApi, type CommandContext, type CommandOutput } from './contract/router-api.js';
export { parseInvocation, devicesOf, isolationOf, DEFAULT_TIMEOUT_SECONDS, DEFAULT_DEVICE, type ParseEnvironment } from './contract/parse.js';
export { BUILDERS, type BuildContext } from './contract/build.js';
export { requestFromValues, networkDetailsOf } from './contract/plain-values.js';
export * from './contract/values.js';
export { COMMANDS, commandSpec, type CommandSpec, type CommandName } from './contract/command-specs.js';
export { FIELDS, type FieldDef } from './contract/fields.js';
export { FieldBag, FieldReader } from './contract/reader.js';

export {
  RouterError, UsageError, SystemError, StateError, TimeoutError, ValidationError, exitCodeOf, describeError,
  EXIT_OK, EXIT_USAGE, EXIT_SYSTEM, type RouterErrorCode,
} from '../util/errors.js';
