export { vmdataModule, vmdataSettings, materialize, listenAddresses, collectOrphans, servedFiles } from './module.js';
export {
  vmdataEnv, saveVmData, saveUserdata, savePassword, saveSshkey, saveHypervisorHostname, prepareNicVmData,
  releaseNicVmData, restoreNetworkVmData, parseRestore, restoreForDhcp, restoreNetworkWith, type RestoreForDhcp, USERDATA_LIMIT_DETAIL, USERDATA_LIMIT_ENV, type VmDataEnv,
} from './mutators.js';
export { parseVmData, parseRestoreData, DEFAULT_LIMITS, type VmDataLimits, type ParsedVmData, type ParsedRestoreData } from './entries.js';
export { VMDATA, vmdataState, type VmDataState, type VmRecord } from './state.js';
