/** Load balancing of a router: apply-lb-rules, rules per network, haproxy in the namespace. */
export * from './types.js';
export { parseLbDocument } from './parse.js';
export { LB, lbModule, lbState, activeLbRules, applyLbRules, renderLbConfig, toProxy, supervisorFor, haproxyRunDir, haproxyOf } from './module.js';
