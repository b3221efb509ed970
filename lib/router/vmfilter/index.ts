/** The guest-segment filter (anti-spoofing, guest guards, nwfilter-style rule sets): docs/vm-filter.md. */
export { vmfilterModule, lastVmfilterSync } from './module.js';
export { vmfilterPrepareNic, vmfilterReleaseNic, knownNics, type KnownNic } from './nics.js';
export { filterObjects, filterView, compileFilter, VMFILTER_TABLE, vmfilterPrefix, legacyVmfilterTable, LEARN_TIMEOUT, PORT_TIMEOUT } from './compile.js';
export {
  vmFilterSet, parseVmFilterParams, applyVmFilterChange, vmFilterRows, ruleText,
  type VmFilterChange, type VmFilterSetRequest, type VmFilterRow,
} from './action.js';
export { parseRule, parseRules, flattenRuleSet, CLEAN_TRAFFIC, type VmRule, type NamedFilter, type NicRuleSet } from './rules.js';
export { vmfilterState, VMFILTER, type VmFilterState } from './state.js';
