/**
 * Glue between the CLI's RouterApi and the metadata mutators: one `engine.change` per command, in which every
 * step (this module's, and the DHCP/DNS module's for prepare-nic/release-nic/restore-network) mutates the
 * same model — so the whole command is one reconcile and one saved state.
 */
import type { RouterEngine } from '../engine.js';
import type { RouterModel } from '../model.js';
import type * as T from '../contract/types.js';
import { vmdataEnv, type VmDataEnv } from './mutators.js';

export type VmDataStep<R> = (m: RouterModel, req: R, env: VmDataEnv) => void;

export interface VmDataCommandContext {
  settings: { stateDir: string };
  details?: { physicalNetwork?: Record<string, unknown> };
}

/**
 * Run `steps` in one engine change. With `ifRouterExists`, a router without stored state is left alone
 * (prepare-nic/release-nic on a network this host does not route: nothing to do, and no empty state or
 * namespace teardown as a side effect).
 */
export async function vmDataCommand<R extends T.NetworkTarget>(
  engine: Pick<RouterEngine, 'change' | 'initFor' | 'store'>, ctx: VmDataCommandContext, req: R,
  steps: Array<VmDataStep<R>>, opts: { ifRouterExists?: boolean } = {},
): Promise<void> {
  const env = vmdataEnv(ctx);
  if (opts.ifRouterExists && !engine.store.load(req.namespace)) return;
  await engine.change(req.namespace, engine.initFor(req), (m) => {
    for (const step of steps) step(m, req, env);
  });
}
