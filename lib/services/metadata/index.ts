export * from './errors.js';
export * from './layout.js';
export { MetadataDaemon, type DaemonOptions, type DaemonStatus, type RouterStatus } from './daemon.js';
export { handleMetadata, handlePassword, metadataTarget, pendingPassword, acknowledgePassword } from './handlers.js';
export { RouterListeners, namespaceInode } from './listeners.js';
export { DAEMON_MAIN, request, daemonPid, startDaemon, syncRouter, daemonStatus, stopDaemon } from './client.js';
export { readListenSpec } from './listen-spec.js';
export { DaemonControl, type MetadataControl, type MetadataSyncOptions } from './control.js';
