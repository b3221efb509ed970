/**
 * netns-router/sys: the only FFI of netns-router (koffi → libc). libc calls with errno as a typed SysError,
 * entering network namespaces (setns, synchronous only), and the minimal environment of child processes.
 */
export * from './errors.js';
/** The libc calls netns-router makes (open, close, socket, bind, send/recv, setns, unshare, mount, flock, …): each throws SysError with the call's errno. */
export * as libc from './libc.js';
export * from './children.js';
export {
  NETNS_RUN_DIR, NetnsError, netnsPath, openNetnsFd, runInNetns, runInNetnsFd, openCurrentNetns, validateNetnsName, type Synchronous,
} from './setns.js';
