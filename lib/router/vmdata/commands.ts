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

export interface VmDataCommandOptions {
  /**
   * A NIC lifecycle hook (prepare-nic/release-nic): a router without stored state that the request cannot
   * implement, and an L2 network, are left alone — nothing to do, and no empty state or namespace teardown as
   * a side effect.
   */
  ifRouterExists?: boolean;
  /**
   * Implement a shared network's router first when it has none (RouterEngine.implementShared): 'implement'
   * fails when the request does not describe the network, 'ifComplete' then does nothing.
   */
  shared?: 'implement' | 'ifComplete';
}

/** Run `steps` in one engine change. */
export async function vmDataCommand<R extends T.NetworkTarget & T.GuestAddressing & { command: string }>(
  engine: Pick<RouterEngine, 'changeFor' | 'store' | 'implementShared' | 'canImplementShared'>, ctx: VmDataCommandContext, req: R,
  steps: Array<VmDataStep<R>>, opts: VmDataCommandOptions = {},
): Promise<void> {
  const env = vmdataEnv(ctx);
  if (opts.ifRouterExists) {
    const stored = engine.store.load(req.namespace);
    if (req.guestType === 'l2' || stored?.l2) return;
    if (!stored && !(opts.shared && engine.canImplementShared(req))) return;
  }
  await engine.changeFor(req, (m) => {
    if (opts.shared) engine.implementShared(m, req, { ifComplete: opts.shared === 'ifComplete' });
    for (const step of steps) step(m, req, env);
  });
}
