/**
 * THE place where the CLI is wired to the reconcile engine (lib/router/api.ts). Loaded lazily so
 * that parsing, validation, help, version and install-wrapper never load the kernel layers.
 */
import type { RouterApi } from '../lib/router/contract/api.js';
import { SystemError } from '../lib/util/errors.js';

export async function loadRouterApi(): Promise<RouterApi> {
  let mod: { createRouterApi?: () => RouterApi };
  try {
    mod = await import('../lib/router/api.js');
  } catch (e) {
    throw SystemError.from(e, 'loading the router engine (lib/router/api.js)');
  }
  if (typeof mod.createRouterApi !== 'function') {
    throw new SystemError('router engine not built yet (lib/router/api.js has no createRouterApi)', { code: 'E_ENGINE_MISSING' });
  }
  return mod.createRouterApi();
}
