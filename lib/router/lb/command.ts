/** apply-lb-rules on the engine: one change of the router (validate + merge, reconcile, persist). */
import type { RouterEngine } from '../engine.js';
import type { ApplyLbRulesRequest } from '../contract/types.js';
import { applyLbRules } from './module.js';

export async function applyLbRulesCommand(engine: RouterEngine, req: ApplyLbRulesRequest): Promise<void> {
  await engine.changeFor(req, (m) => applyLbRules(m, req));
}
