/** haproxy as a service: configuration rendering, `haproxy -c` validation, supervision of one process per router. */
export * from './config.js';
export * from './check.js';
export * from './errors.js';
export * from './supervisor.js';
export * from './control.js';
export { workerAccount } from './account.js';
export { openFilesHardLimit } from '../../sys/proc.js';
export { procAlive, procChildren } from '../../sys/proc.js';
