/** The engine's default modules, with the reconcile/teardown time of one of them summed into `acc.ms`. */
import { defaultModules } from '../../lib/router/default-modules.js';
import type { RouterModule } from '../../lib/router/router-module.js';
import { now } from './timing.js';

export function timedModules(name: string, acc: { ms: number }): RouterModule[] {
  return defaultModules().map((m) => {
    if (m.name !== name) return m;
    return {
      ...m,
      reconcile: async (...a: Parameters<NonNullable<RouterModule['reconcile']>>) => { const t = now(); try { await m.reconcile!(...a); } finally { acc.ms += now() - t; } },
      teardown: async (...a: Parameters<NonNullable<RouterModule['teardown']>>) => { const t = now(); try { await m.teardown!(...a); } finally { acc.ms += now() - t; } },
    };
  });
}
