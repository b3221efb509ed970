/**
 * The haproxy of a router namespace as the load-balancing module drives it (RouterKernel.haproxy,
 * lib/router/kernel.ts): check a configuration text as `haproxy -c` would, apply it (checked, then started,
 * reloaded, or left alone when the running haproxy has it), its pid and running configuration, stop.
 * `RouterHaproxy` is the real one: a HaproxySupervisor (supervisor.ts: one haproxy process posix_spawn'ed
 * in the namespace, no master) and the process's ConfigValidator (check.ts: only the sections not accepted before are
 * checked); the fake kernel has an in-memory one (lib/router/fake-haproxy.ts).
 */
import { ConfigValidator, type CheckResult } from './check.js';
import { HaproxyError } from './errors.js';
import { HaproxySupervisor, type ApplyOutcome } from './supervisor.js';

/** The haproxy of one router namespace (see the header). */
export interface HaproxyControl {
  readonly netns: string;
  readonly runDir: string;
  /** What `haproxy -c` says of `text` (HaproxyError E_HAPROXY_SPAWN only when haproxy cannot run). */
  check(text: string): CheckResult;
  /**
   * Make haproxy run `text`: nothing when it already does; else check it (HaproxyError E_HAPROXY_CONFIG, nothing
   * changed) and start haproxy (E_HAPROXY_SPAWN / E_HAPROXY_START) or reload the running one (E_HAPROXY_RELOAD:
   * the old workers keep serving the previous configuration).
   */
  apply(text: string): Promise<ApplyOutcome>;
  /** The configuration the running haproxy was last (re)loaded with; undefined when none runs. */
  runningConfig(): string | undefined;
  /** The pid of the current haproxy process; undefined when none runs. */
  pid(): number | undefined;
  /** Stop haproxy and remove its run directory; true when one was running. */
  stop(): Promise<boolean>;
}

/**
 * What `haproxy -c` accepted in this process (a command's check, then its reconcile; the running
 * configurations, checked before they were written): a text is checked as its head and its new or changed
 * proxy sections.
 */
const validator = new ConfigValidator();

/** The real haproxy of router namespace `netns`, runtime files in `runDir` (see the header). */
export class RouterHaproxy implements HaproxyControl {
  readonly supervisor: HaproxySupervisor;
  constructor(readonly netns: string, readonly runDir: string) {
    this.supervisor = new HaproxySupervisor({ netns, runDir });
  }

  /** The configuration the router's haproxy runs was accepted by `haproxy -c` before it was written: known good. */
  private learnRunning(): void {
    try {
      const c = this.supervisor.checkedConfig();
      if (c) validator.accepted(c.text, c.checkedBy);
    } catch {
      /* nothing known: everything is checked */
    }
  }

  check(text: string): CheckResult {
    this.learnRunning();
    return validator.check(text);
  }

  async apply(text: string): Promise<ApplyOutcome> {
    // first what a command killed during a change left (a process spawned and not recorded as current)
    await this.supervisor.recover();
    // the running haproxy already has this text (checked before it was written): nothing to check or run
    if (this.supervisor.runningConfig() === text) return 'unchanged';
    // a configuration not checked yet (a restore, a reconcile of a router whose rules were stored by another
    // process) is checked here, its unknown parts only; the supervisor records who checked it
    const check = this.check(text);
    if (!check.ok) {
      throw new HaproxyError('E_HAPROXY_CONFIG', `haproxy refused the configuration: ${check.problems.map((p) => p.message).join('; ')}`, { output: check.output, problems: check.problems });
    }
    return this.supervisor.apply(text, { checked: true, checkedBy: validator.identity() });
  }

  runningConfig(): string | undefined { return this.supervisor.runningConfig(); }
  pid(): number | undefined {
    const st = this.supervisor.status();
    return st.running ? st.pid : undefined; // a haproxy left in a replaced namespace serves nobody: apply replaces it
  }
  stop(): Promise<boolean> { return this.supervisor.stop({ purge: true }); }
}
