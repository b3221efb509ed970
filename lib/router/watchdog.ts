/**
 * The daemon watchdog: dnsmasq, haproxy and the metadata service of every router of the watched state
 * directories come back within seconds when they die (OOM killer, crash, kill -9), with no command sent.
 * The resident engine (`netns-router serve`, cli/serve.ts) runs one; docs/daemons.md says why there.
 *
 * Each tick (default every second) reads only runtime files and /proc — no state file is parsed — to find the
 * routers whose daemon should run and does not:
 *
 *   dnsmasq   `<stateDir>/run/<ns>/dnsmasq/cmdline.sha256` exists (written when it was started, removed with
 *             the directory when the router stops serving DHCP/DNS) and its pid file names no live dnsmasq
 *   haproxy   `<stateDir>/run/<ns>/haproxy/haproxy.cfg` exists (removed when no rule is active) and its
 *             master is not running
 *   metadata  `<stateDir>/vmdata/<ns>/listen.json` exists and the state directory's daemon is not alive
 *
 * and hands each to RouterEngine.reviveServices, which reconciles the router's modules to its stored state
 * under the router's lock (plumbing and nft are left alone). A router whose namespace is gone is left to
 * `restore-all`. A failed or skipped revival is retried after a growing pause (1 s doubling to 60 s) and
 * logged once per streak, not once per tick.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { netnsExists } from '../netns/namespaces.js';
import { daemonPid } from '../services/metadata/client.js';
import { NS_NAME_RE, listenFile, vmdataRoot } from '../services/metadata/layout.js';
import { dnsmasqInstance } from './dhcp/module.js';
import { supervisorFor } from './lb/module.js';
import { RouterEngine } from './engine.js';
import { compareText } from '../util/compare.js';

export type WatchedDaemon = 'dnsmasq' | 'haproxy' | 'metadata';

export interface DeadDaemons {
  stateDir: string;
  namespace: string;
  daemons: WatchedDaemon[];
}

export interface Revival extends DeadDaemons {
  outcome: 'revived' | 'busy' | 'unneeded' | 'skipped' | 'failed';
  error?: string;
  ms: number;
}

export interface WatchdogOptions {
  /** Pause between ticks (ms, default 1000). */
  intervalMs?: number;
  /** Event lines (revived, failed); default none. */
  log?: (event: string, fields: Record<string, unknown>) => void;
}

const MAX_BACKOFF_MS = 60_000;

function dirNames(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => NS_NAME_RE.test(n));
  } catch {
    return [];
  }
}

/** The routers of `stateDir` whose daemons should run and do not (runtime files and /proc only). */
export function deadDaemons(stateDir: string): DeadDaemons[] {
  const out = new Map<string, WatchedDaemon[]>();
  const add = (ns: string, d: WatchedDaemon) => out.set(ns, [...(out.get(ns) ?? []), d]);
  for (const ns of dirNames(join(stateDir, 'run'))) {
    try {
      const dns = dnsmasqInstance(stateDir, ns);
      if (existsSync(dns.paths.cmdlineHash) && dns.pid() === undefined) add(ns, 'dnsmasq');
      const lb = supervisorFor(ns, stateDir);
      if (existsSync(lb.paths.config) && !lb.status().running) add(ns, 'haproxy');
    } catch {
      // a directory that is no router's (unusable path): nothing to watch there
    }
  }
  const served = dirNames(vmdataRoot(stateDir)).filter((ns) => existsSync(listenFile(stateDir, ns)));
  if (served.length && daemonPid(stateDir) === undefined) for (const ns of served) add(ns, 'metadata');
  return [...out.entries()].sort(([a], [b]) => compareText(a, b)).map(([namespace, daemons]) => ({ stateDir, namespace, daemons }));
}

export class ServiceWatchdog {
  private readonly dirs = new Set<string>();
  private readonly backoff = new Map<string, { until: number; delayMs: number }>();
  private readonly intervalMs: number;
  private readonly log: (event: string, fields: Record<string, unknown>) => void;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(opts: WatchdogOptions = {}) {
    this.intervalMs = opts.intervalMs ?? 1000;
    this.log = opts.log ?? (() => {});
  }

  /** Watch the routers of this state directory too; returns whether it is new. */
  watch(stateDir: string): boolean {
    const d = resolve(stateDir);
    if (this.dirs.has(d)) return false;
    this.dirs.add(d);
    return true;
  }

  get stateDirs(): string[] {
    return [...this.dirs];
  }

  /** Tick every interval until stop(). */
  start(): void {
    if (this.timer || this.stopped) return;
    const loop = (): void => {
      this.running = this.tick().catch((e: unknown) => this.log('watchdog error', { error: (e as Error).message }))
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.timer = setTimeout(loop, this.intervalMs);
        });
    };
    this.timer = setTimeout(loop, this.intervalMs);
  }

  /** Stop ticking; resolves once a tick in progress has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One pass over every watched state directory: revive what died (routers one after another). */
  async tick(): Promise<Revival[]> {
    const done: Revival[] = [];
    for (const stateDir of this.dirs) {
      for (const dead of deadDaemons(stateDir)) {
        const key = `${stateDir}\0${dead.namespace}`;
        const b = this.backoff.get(key);
        if (b && Date.now() < b.until) continue;
        if (!netnsExists(dead.namespace)) continue; // a reboot: restore-all's work
        const r = await this.revive(dead);
        done.push(r);
        if (r.outcome === 'revived' || r.outcome === 'busy' || r.outcome === 'unneeded') {
          if (r.outcome === 'revived') {
            this.log('daemon revived', { stateDir, namespace: dead.namespace, daemons: dead.daemons, ms: r.ms });
          }
          this.backoff.delete(key);
        } else {
          const delayMs = Math.min(MAX_BACKOFF_MS, b ? b.delayMs * 2 : this.intervalMs);
          this.backoff.set(key, { until: Date.now() + delayMs, delayMs });
          if (!b && r.outcome === 'failed') {
            this.log('daemon revival failed', { stateDir, namespace: dead.namespace, daemons: dead.daemons, error: r.error, retryInMs: delayMs });
          }
        }
      }
    }
    return done;
  }

  private async revive(dead: DeadDaemons): Promise<Revival> {
    const t0 = Date.now();
    // devices only name host devices for new objects; reviving creates none
    const engine = new RouterEngine({ stateDir: dead.stateDir, devices: { guest: 'eth1', public: 'eth1' } });
    const stillDead = (): boolean => deadDaemons(dead.stateDir).some((d) => d.namespace === dead.namespace);
    try {
      const outcome = await engine.reviveServices(dead.namespace, stillDead);
      // a reconcile that "succeeded" but left the daemon dead must not be repeated every tick (a daemon may
      // write its pid file a moment after it answers: a short grace first)
      for (let i = 0; outcome === 'revived' && i < 10 && stillDead(); i++) await new Promise((res) => setTimeout(res, 100));
      if (outcome === 'revived' && stillDead()) {
        return { ...dead, outcome: 'failed', error: 'still not running after its router was reconciled', ms: Date.now() - t0 };
      }
      return { ...dead, outcome, ms: Date.now() - t0 };
    } catch (e) {
      return { ...dead, outcome: 'failed', error: (e as Error).message, ms: Date.now() - t0 };
    }
  }
}
