/**
 * THE place where the CLI is wired to the reconcile engine (the command table, lib/router/command-table.ts).
 * Loaded lazily so that parsing, validation, help, version and install-wrapper never load the kernel layers.
 */
import type { RouterApi } from '../lib/router/contract/router-api.js';
import { SystemError } from '../lib/util/errors.js';
import type { Background } from '../lib/util/background.js';

/** How the CLI's engine runs: see createRouterApi. */
export interface RouterApiOptions {
  /** A long-lived process answers before a command's deferred clean-up (it waits for it at exit). */
  background?: Background;
  /** false: one command per process — nothing kept warm for the fast way of NAT commands (docs/delta-nat.md). */
  fastNat?: false;
  /** NAT changes reconcile only what they touch (a process without a resident engine behind it, docs/reconcile.md). */
  natScope?: boolean;
  /** The process exits after its command: slow-to-release kernel handles go as soon as the kernel is reconciled. */
  oneShot?: boolean;
}

export async function loadRouterApi(opts: RouterApiOptions = {}): Promise<RouterApi> {
  let mod: { createRouterApi?: (o: RouterApiOptions) => RouterApi };
  try {
    mod = await import('../lib/router/command-table.js');
  } catch (e) {
    throw SystemError.from(e, 'loading the router engine (lib/router/command-table.js)');
  }
  if (typeof mod.createRouterApi !== 'function') {
    throw new SystemError('the router engine of this installation is incomplete (lib/router/command-table.js has no createRouterApi)', { code: 'E_ENGINE_MISSING' });
  }
  return mod.createRouterApi(opts);
}
