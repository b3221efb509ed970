/**
 * The metadata daemon of a state directory as the router's VM-data module drives it (RouterKernel.metadata,
 * lib/router/kernel.ts): converge one router to its listen.json (starting the daemon when it is needed and not
 * running), the daemon's pid and status, stop. The module writes the files the daemon serves (listen.json, the
 * VM directories) itself; nothing of a VM's data goes through this interface, so no secret reaches the daemon's
 * argv, environment or log. `DaemonControl` is the real daemon (client.ts); the fake kernel has an in-memory one.
 */
import { daemonPid, daemonStatus, stopDaemon, syncRouter } from './client.js';
import type { DaemonStatus, RouterStatus } from './daemon.js';

/** How a sync may reach the daemon (MetadataControl.sync). */
export interface MetadataSyncOptions {
  /** Start the daemon when it is not running (false: a router nobody serves needs nothing done). */
  start: boolean;
  /** Budget of the control request (ms). */
  timeoutMs?: number;
  /** A daemon started now exits this long after it has nothing left to serve (ms; negative: never). */
  idleExitMs?: number;
}

/** The metadata daemon of a state directory, as the VM-data module drives it (see the header). */
export interface MetadataControl {
  readonly stateDir: string;
  /** The daemon's pid; undefined when none runs. */
  pid(): number | undefined;
  /**
   * Converge router `ns` to its listen.json: serve its addresses (a router new to the daemon is registered), or
   * — no listen.json, or no address — close its sockets and connections (unregistered). Resolves with what the
   * daemon then holds for it; a socket that cannot be made, or a namespace that does not exist, rejects
   * (MetadataError E_LISTEN / E_NO_NAMESPACE). A daemon that is not running is started only with `start`.
   */
  sync(ns: string, opts: MetadataSyncOptions): Promise<RouterStatus>;
  /** Every router the daemon serves; undefined when none runs. */
  status(): Promise<DaemonStatus | undefined>;
  /** Stop the daemon (its sockets and connections close). */
  stop(): Promise<void>;
}

/** The real daemon of `stateDir` (a detached process, over its control socket). */
export class DaemonControl implements MetadataControl {
  constructor(readonly stateDir: string) {}
  pid(): number | undefined { return daemonPid(this.stateDir); }
  sync(ns: string, opts: MetadataSyncOptions): Promise<RouterStatus> { return syncRouter(this.stateDir, ns, opts); }
  status(): Promise<DaemonStatus | undefined> { return daemonStatus(this.stateDir); }
  stop(): Promise<void> { return stopDaemon(this.stateDir); }
}
