/**
 * Reconcile scopes (docs/reconcile.md): a command that changes only some modules' slots of the model declares
 * them (`scope` in the command table), and the engine reconciles just those modules, after cheap checks that
 * the rest of the router is as the last commit left it — instead of the whole router (plumbing, nft table,
 * conntrack, every module's daemons). The scope is a promise the engine verifies, never trusts: a mutation that
 * changed anything outside the declared slots, or a module's contribution to the router table, gets the full
 * reconcile.
 */
import { sameValue } from '../util/compare.js';
import type { RouterModel } from './model.js';
import type { RouterModule } from './router-module.js';

/**
 * What a command's change touches: the model slots (`model.extra[name]`) of these modules and nothing else.
 * Other modules' table contributions (nftObjects, publicIngress) must not read these slots (asserted for the
 * default modules by test/router/reconcile-scope.test.ts).
 */
export interface ReconcileScope {
  readonly modules: readonly string[];
}

/** The model minus the slots of `modules`, for comparison (a shallow copy: nothing is cloned). */
function outside(m: RouterModel, modules: readonly string[]): object {
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m.extra ?? {})) if (!modules.includes(k)) extra[k] = v;
  return { ...m, extra };
}

/** `after` differs from `before` in the slots of `scope`'s modules at most. */
export function changedOnlyWithin(before: RouterModel, after: RouterModel, scope: ReconcileScope): boolean {
  return before === after || sameValue(outside(before, scope.modules), outside(after, scope.modules));
}

/** The scope's modules contribute the same to the router table (objects and public ingress) for both models. */
export function tableInputsEqual(modules: readonly RouterModule[], before: RouterModel, after: RouterModel): boolean {
  if (before === after) return true;
  return modules.every((mod) => sameValue(mod.nftObjects?.(before), mod.nftObjects?.(after))
    && sameValue(mod.publicIngress?.(before), mod.publicIngress?.(after)));
}
