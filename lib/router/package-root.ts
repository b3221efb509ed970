/**
 * The package's root entry point (`import … from 'netns-router'`): the router for programs — createRouter, one
 * typed method per command (docs/library.md) — with the types of its inputs and the errors it throws. Everything
 * else of the router is in `netns-router/router`; the kernel layers are `netns-router/netlink`, `/netns`,
 * `/nft` and `/sys`.
 */
export { createRouter, type Router, type RouterOptions, type CallOptions, type CommandResult } from './create-router.js';
export type * from './contract/inputs.js';
export type { RouterLogger } from './log.js';
export type { Plan, PlanStep } from './plan.js';
export type { GuestType, NetworkState, Protocol } from './contract/types.js';
export { routerNamespace } from './names.js';
export {
  RouterError, UsageError, SystemError, StateError, TimeoutError, ValidationError, exitCodeOf, describeError,
  EXIT_OK, EXIT_USAGE, EXIT_SYSTEM, type RouterErrorCode,
} from '../util/errors.js';
