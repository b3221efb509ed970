export { addNetns, deleteNetns, listNetns, netnsExists, onBeforeNetnsDelete } from './namespaces.js';
export {
  NETNS_RUN_DIR, NetnsError, netnsPath, openNetnsFd, runInNetns, runInNetnsFd, openCurrentNetns, validateNetnsName,
} from '../sys/setns.js';
export { NetnsHandle } from './handle.js';
export { SysctlError, sysctlPath, confKey } from './sysctl.js';
