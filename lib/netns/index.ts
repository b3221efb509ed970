export {
  NETNS_RUN_DIR, NetnsError, addNetns, deleteNetns, listNetns, netnsExists, netnsPath, openNetnsFd,
  runInNetns, runInNetnsFd, openCurrentNetns, onBeforeNetnsDelete, validateNetnsName,
} from './namespaces.js';
export { NetnsHandle } from './handle.js';
export { SysctlError, sysctlPath, confKey } from './sysctl.js';
