/**
 * netns-router/nft: typed nftables transactions rendered to libnftables JSON and applied in-process
 * (libnftables via koffi), with the nft CLI as a fallback and an in-memory fake for tests. See README.md in
 * this directory.
 */
export * from './json.js';
export * from './errors.js';
export * from './validate.js';
export * from './priorities.js';
export * from './values.js';
export * from './expr.js';
export * from './objects.js';
export * from './transaction.js';
export * from './listing.js';
export * from './executor.js';
export * from './table-sync.js';
export * from './set-backend.js';
export * from './generation.js';
export { locateFailure, type Located, type DryRun } from './locate.js';
export { LibnftablesRunner, openLibnftables, sharedLibnftables, leaseLibnftables, MAX_SHARED, libnftablesAvailable, type LibnftablesOptions } from './libnftables.js';
export { FakeNftExecutor, openFake } from './fake.js';
export { NftCliRunner, openNftCli, type NftCliOptions } from './nft-cli.js';
export { namespaceExecutor, type NamespaceExecutorOptions } from './namespace-executor.js';
export { ConntrackCliError, conntrackArgs, deleteConntrackCli, type ConntrackCliOptions } from './conntrack-cli.js';
export {
  ConntrackSocket, listConntrack, deleteConntrack, deleteConntrackAny, decodeEntry, encodeDelete, IPPROTO,
  type ConntrackEntry, type ConntrackFilter, type ConntrackOptions, type ConntrackTuple, type ProtoName,
} from './ctnetlink.js';
