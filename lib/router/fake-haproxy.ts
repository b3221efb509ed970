/**
 * A router's haproxy in memory (the fake kernel's RouterKernel.haproxy), deciding as RouterHaproxy and
 * HaproxySupervisor do (lib/services/haproxy/): a text the running haproxy has changes nothing; any other is
 * checked first — refused as `haproxy -c` refuses it (HaproxyError E_HAPROXY_CONFIG, nothing changed) — then
 * haproxy is started (a new pid) or the running one reloaded (same pid). It runs only in a namespace that exists
 * (E_HAPROXY_SPAWN, as a spawn into a missing namespace) and dies with it; a start or reload binds every `bind`
 * address — with IP_FREEBIND, as haproxy 2.6 does, so an address not (yet) on an interface is no refusal; one held
 * by someone else (`occupied`) fails the start (E_HAPROXY_START) or the reload (E_HAPROXY_RELOAD: the old
 * configuration keeps running, and the file says so), as the real master does.
 *
 * The check (`fakeHaproxyCheck`) models `haproxy -c` for the grammar the module renders (config.ts): sections
 * and their keywords, a proxy name declared twice, bind addresses, timer overflows (> 2^31-1 ms) and stick-table
 * sizes haproxy cannot read, no listener at all (exit 2). Two proxies binding one address are accepted, as by the
 * real haproxy (SO_REUSEPORT: the module refuses them itself). Not modelled: traffic, health checks, workers,
 * the accounts the workers switch to.
 */
import { HaproxyError, type ConfigProblem } from '../services/haproxy/errors.js';
import type { CheckResult } from '../services/haproxy/check.js';
import type { ApplyOutcome } from '../services/haproxy/supervisor.js';
import type { HaproxyControl } from '../services/haproxy/control.js';
import { BALANCE_ALGORITHMS, haproxySizeRefusal } from '../services/haproxy/config.js';
import { canonicalIpv4, canonicalIpv6 } from '../util/ip.js';
import type { RouterKernel } from './kernel.js';
import type { PlanStep } from './plan.js';

const MAX_TIMER_MS = 2147483647;
const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** The keywords the module's configurations use, per section kind. */
const KEYWORDS: Record<string, readonly string[]> = {
  global: ['maxconn', 'nbthread', 'httpclient.ssl.verify', 'user', 'group'],
  defaults: ['mode', 'timeout', 'retries', 'option'],
  listen: ['bind', 'mode', 'balance', 'maxconn', 'option', 'default-server', 'timeout', 'stick-table', 'stick', 'cookie', 'server'],
};

/** `haproxy -c` of `text` as haproxy 2.6 answers for the configurations the module renders (see the header). */
export function fakeHaproxyCheck(text: string): CheckResult {
  const problems: ConfigProblem[] = [];
  const names = new Map<string, number>();
  let section: string | undefined;
  let listeners = 0;
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = i + 1;
    const words = raw.replace(/#.*$/, '').trim().split(/\s+/).filter(Boolean);
    if (!words.length) return;
    const fail = (message: string): void => { problems.push({ line, message }); };
    if (!/^\s/.test(raw)) {
      if (!['global', 'defaults', 'listen', 'frontend', 'backend'].includes(words[0])) {
        section = undefined;
        return fail(`unknown keyword '${words[0]}' out of section.`);
      }
      section = words[0] === 'frontend' || words[0] === 'backend' ? 'listen' : words[0];
      if (section === 'listen') {
        const name = words[1];
        if (!name) return fail(`'${words[0]}' expects <name> as an argument.`);
        const at = names.get(name);
        if (at !== undefined) return fail(`proxy '${name}' has the same name as proxy '${name}' declared at line ${at}.`);
        names.set(name, line);
      }
      return;
    }
    if (!section) return fail(`unknown keyword '${words[0]}' out of section.`);
    if (!KEYWORDS[section].includes(words[0])) return fail(`unknown keyword '${words[0]}' in '${section}' section`);
    const timer = (arg: string | undefined, kw: string): void => {
      const m = /^(\d+)(us|ms|s|m|h|d)?$/.exec(arg ?? '');
      if (!m) return fail(`unexpected character in argument <${arg ?? ''}> to <${kw}>.`);
      if (Number(m[1]) * UNIT_MS[m[2] ?? 'ms'] > MAX_TIMER_MS) fail(`timer overflow in argument <${arg}> to <${kw}>, maximum value is ${MAX_TIMER_MS} ms (~24.8 days).`);
    };
    switch (words[0]) {
      case 'bind': {
        const m = /^(.+):(\d+)$/.exec(words[1] ?? '');
        if (!m || (canonicalIpv4(m[1]) ?? canonicalIpv6(m[1])) === undefined || Number(m[2]) < 1 || Number(m[2]) > 65535) return fail(`'bind' : invalid address: '${words[1] ?? ''}'.`);
        listeners++;
        return;
      }
      case 'mode': if (!['tcp', 'http'].includes(words[1] ?? '')) fail(`unknown proxy mode '${words[1] ?? ''}'.`); return;
      case 'balance': if (!(BALANCE_ALGORITHMS as readonly string[]).includes(words[1] ?? '')) fail(`'balance' : unknown balancing algorithm '${words[1] ?? ''}'.`); return;
      case 'timeout': timer(words[2], `timeout ${words[1] ?? ''}`); return;
      case 'stick-table': {
        const size = words[words.indexOf('size') + 1] ?? '';
        const bad = words.includes('size') ? haproxySizeRefusal(size) : undefined;
        if (bad !== undefined) return fail(`stick-table: unexpected character '${bad}' in argument of 'size'.`);
        if (words.includes('expire')) {
          const arg = words[words.indexOf('expire') + 1];
          const m = /^(\d+)(us|ms|s|m|h|d)?$/.exec(arg ?? '');
          if (!m || Number(m[1]) * UNIT_MS[m[2] ?? 'ms'] > MAX_TIMER_MS) fail(`stick-table: timer overflow in argument <${arg}> to <expire>, maximum value is ${MAX_TIMER_MS} ms (~24.8 days).`);
        }
        return;
      }
      default:
    }
  });
  if (problems.length) return { ok: false, problems, output: problems.map((p) => `[ALERT]    (0) : config : parsing [haproxy.cfg:${p.line}] : ${p.message}`).join('\n') };
  // parsed, but nothing to listen on: "Configuration file has no error but will not start (no listener) => exit(2)."
  if (listeners === 0) return { ok: false, problems: [{ message: 'haproxy -c exited with 2' }], output: 'Configuration file has no error but will not start (no listener) => exit(2).' };
  return { ok: true, problems: [], output: '' };
}

let fakePid = 60_000;

/** See the header. */
export class FakeHaproxy implements HaproxyControl {
  /** The configuration file (undefined: none written). */
  config: string | undefined;
  private running: { pid: number; identity: string | undefined } | undefined;
  /** `<ip>:<port>` someone else holds in the namespace: binding it fails with EADDRINUSE, as in the kernel. */
  readonly occupied = new Set<string>();
  /** What it did, in order (start, reload, stop, killed). */
  readonly actions: string[] = [];
  /** How many times `haproxy -c` ran. */
  checks = 0;

  constructor(readonly netns: string, readonly runDir: string, private readonly k: RouterKernel, private readonly record: (s: PlanStep) => void) {}

  pid(): number | undefined {
    // a master in a namespace deleted (or made again) since serves nobody: not running (died with it)
    if (this.running && this.k.netnsIdentity(this.netns) !== this.running.identity) this.running = undefined;
    return this.running?.pid;
  }

  runningConfig(): string | undefined { return this.pid() !== undefined ? this.config : undefined; }

  check(text: string): CheckResult {
    this.checks++;
    return fakeHaproxyCheck(text);
  }

  async apply(text: string): Promise<ApplyOutcome> {
    if (this.runningConfig() === text) return 'unchanged';
    const check = this.check(text);
    if (!check.ok) {
      throw new HaproxyError('E_HAPROXY_CONFIG', `haproxy refused the configuration: ${check.problems.map((p) => p.message).join('; ')}`, { output: check.output, problems: check.problems });
    }
    const pid = this.pid();
    if (pid === undefined && !this.k.netnsExists(this.netns)) {
      throw new HaproxyError('E_HAPROXY_SPAWN', `starting haproxy in ${this.netns}: network namespace "${this.netns}" does not exist`);
    }
    const refused = this.unbindable(text, pid !== undefined ? this.config : undefined);
    const before = this.config;
    this.config = text;
    this.record({ kind: 'file', action: 'write', where: this.runDir, what: 'haproxy configuration' });
    if (pid !== undefined) {
      if (refused) {
        this.config = before; // the master kept its old workers (and configuration): the file tells the truth
        throw new HaproxyError('E_HAPROXY_RELOAD', `haproxy could not load the new configuration; the old workers keep serving: ${refused}`);
      }
      this.done('reload');
      return 'reloaded';
    }
    if (refused) throw new HaproxyError('E_HAPROXY_START', `haproxy did not start (exit 1): ${refused}`);
    this.running = { pid: fakePid++, identity: this.k.netnsIdentity(this.netns) };
    this.done('start');
    return 'started';
  }

  async stop(): Promise<boolean> {
    const was = this.pid() !== undefined;
    if (was) this.done('stop');
    this.running = undefined;
    this.config = undefined; // stop({purge}) removes the run directory
    return was;
  }

  /** The master and its workers die (kill -9): the file stays; the next apply starts a new one. */
  kill(): void {
    this.running = undefined;
    this.actions.push('killed');
  }

  /** Why a `bind` of `text` cannot be bound now (undefined: all can); those of `held` the master holds already. */
  private unbindable(text: string, held: string | undefined): string | undefined {
    const binds = (t: string | undefined): string[] => (t ?? '').split('\n').map((l) => /^\s+bind\s+(\S+)/.exec(l)?.[1]).filter((b): b is string => b !== undefined);
    const mine = new Set(binds(held));
    // a reload takes the listening sockets it has over; IP_FREEBIND: a missing address is no refusal
    const taken = binds(text).find((b) => !mine.has(b) && this.occupied.has(b));
    return taken === undefined ? undefined : `Starting proxy: cannot bind socket (Address already in use) [${taken}]`;
  }

  private done(action: string): void {
    this.actions.push(action);
    this.record({ kind: 'service', action, where: this.netns, what: 'haproxy' });
  }
}
