/**
 * haproxy configuration rendering (pure). One `listen` section per load-balancing rule; runtime paths (pid
 * file, stats socket) stay on the command line or in the supervisor's own file so that the text depends only on the rules, is
 * deterministic, and can be compared with the running configuration byte for byte.
 *
 * Written for haproxy 2.6 (Debian 12): `appsession` is gone since 1.6, so application-cookie stickiness is a
 * string stick-table fed by the response cookie (and the request cookie with request-learn).
 */
import { createHash } from 'node:crypto';

export type BalanceAlgorithm = 'roundrobin' | 'leastconn' | 'source' | 'static-rr';
export const BALANCE_ALGORITHMS: readonly BalanceAlgorithm[] = ['roundrobin', 'leastconn', 'source', 'static-rr'];

/**
 * Whether haproxy 2.6 accepts a size (e.g. a stick-table's; parse_size_err): digits read into 32 bits, then at
 * most one unit k/m/g (powers of 1024). The character it names when it refuses — the digit or unit that
 * overflows, or anything else ('' for an empty size) — or undefined when the size is accepted.
 */
export function haproxySizeRefusal(arg: string): string | undefined {
  if (arg === '') return '';
  let v = 0;
  for (let i = 0; i < arg.length; i++) {
    const ch = arg[i]!;
    if (ch >= '0' && ch <= '9') {
      v = v * 10 + Number(ch);
      if (v > 0xffff_ffff) return ch;
      continue;
    }
    const mult = ({ k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as Record<string, number>)[ch.toLowerCase()];
    if (mult === undefined || i !== arg.length - 1 || v * mult > 0xffff_ffff) return ch;
  }
  return undefined;
}

export interface ServerSpec {
  ip: string;
  port: number;
  /** 0..256 (0 = no new traffic); haproxy's default 1 when absent. */
  weight?: number;
}

/** Health checking of the servers. Absent: a plain connect check with haproxy's defaults (2 s, rise 2, fall 3). */
export type HealthCheckSpec =
  | { enabled: false }
  | { enabled: true; path?: string; intervalMs?: number; timeoutMs?: number; rise?: number; fall?: number };

/** Stickiness policies, CloudStack's three methods with their parameters already validated. */
export type StickinessSpec =
  | { method: 'SourceBased'; tableSize: string; expire: string }
  | { method: 'LbCookie'; cookieName: string; mode: 'insert' | 'rewrite' | 'prefix'; nocache: boolean; indirect: boolean; postonly: boolean; domain?: string }
  | { method: 'AppCookie'; cookieName: string; length: number; holdtime: string; requestLearn: boolean; mode: 'path-parameters' | 'query-string' };

export interface ProxySpec {
  /** Unique name part ([A-Za-z0-9_.-]); the section is `lb_<id>`. */
  id: string;
  /** Free text for the section comment (which network the rule belongs to). */
  comment?: string;
  bindIp: string;
  bindPort: number;
  mode: 'tcp' | 'http';
  algorithm: BalanceAlgorithm;
  servers: ServerSpec[];
  maxconn?: number;
  healthcheck?: HealthCheckSpec;
  stickiness?: StickinessSpec;
}

export interface RenderedConfig {
  text: string;
  /** owners[i] = id of the proxy that line i+1 belongs to (undefined for global/defaults). */
  owners: Array<string | undefined>;
}

/** Frontend connection limit when a rule sets none. */
export const DEFAULT_PROXY_MAXCONN = 2000;
/** Connections beyond the proxies' own limits: the supervisor's stats socket (readiness probe, the listening
 * sockets handed to the next process at reload: supervisor.ts). */
const CLI_MAXCONN_RESERVE = 16;
const MAX_GLOBAL_MAXCONN = 1_000_000;
/** Descriptors kept for listeners, health checks, sockets of the master and pollers. */
const FD_RESERVE = 256;

export const proxyName = (id: string): string => `lb_${id}`;
export const serverName = (s: ServerSpec): string => `${s.ip}:${s.port}`;
/** Cookie value naming a server: stable per address, without exposing the guest address to clients. */
export const serverCookie = (s: ServerSpec): string => createHash('sha256').update(serverName(s)).digest('hex').slice(0, 10);

function stickinessLines(st: StickinessSpec): string[] {
  switch (st.method) {
    case 'SourceBased':
      return [`stick-table type ip size ${st.tableSize} expire ${st.expire}`, 'stick on src'];
    case 'LbCookie': {
      const words = ['cookie', st.cookieName, st.mode];
      if (st.nocache) words.push('nocache');
      if (st.indirect) words.push('indirect');
      if (st.postonly) words.push('postonly');
      if (st.domain) words.push('domain', st.domain);
      return [words.join(' ')];
    }
    case 'AppCookie': {
      const lines = [
        `stick-table type string len ${st.length} size 200k expire ${st.holdtime}`,
        `stick store-response res.cook(${st.cookieName})`,
        `stick match req.cook(${st.cookieName})`,
      ];
      if (st.requestLearn) lines.push(`stick store-request req.cook(${st.cookieName})`);
      // the session id may also travel in the URL: ";name=value" path parameters or "?name=value"
      lines.push(st.mode === 'query-string' ? `stick match urlp(${st.cookieName})` : `stick match urlp(${st.cookieName},;)`);
      return lines;
    }
  }
}

function serverLine(p: ProxySpec, s: ServerSpec): string {
  const words = ['server', serverName(s), `${s.ip}:${s.port}`];
  if (s.weight !== undefined) words.push('weight', String(s.weight));
  if (p.healthcheck?.enabled !== false) words.push('check');
  if (p.stickiness?.method === 'LbCookie') words.push('cookie', serverCookie(s));
  return words.join(' ');
}

function proxyLines(p: ProxySpec): string[] {
  const lines = [
    `bind ${p.bindIp}:${p.bindPort}`,
    `mode ${p.mode}`,
    `balance ${p.algorithm}`,
    `maxconn ${p.maxconn ?? DEFAULT_PROXY_MAXCONN}`,
  ];
  if (p.mode === 'http') lines.push('option forwardfor');
  const hc = p.healthcheck;
  if (hc?.enabled) {
    if (hc.path) lines.push(`option httpchk GET ${hc.path}`);
    const d: string[] = [];
    if (hc.intervalMs !== undefined) d.push('inter', `${hc.intervalMs}ms`);
    if (hc.rise !== undefined) d.push('rise', String(hc.rise));
    if (hc.fall !== undefined) d.push('fall', String(hc.fall));
    if (d.length) lines.push(`default-server ${d.join(' ')}`);
    if (hc.timeoutMs !== undefined) lines.push(`timeout check ${hc.timeoutMs}ms`);
  }
  if (p.stickiness) lines.push(...stickinessLines(p.stickiness));
  for (const s of p.servers) lines.push(serverLine(p, s));
  return lines;
}

/**
 * Process settings that shrink each haproxy's memory without a change a tenant can see (figures: private
 * dirty memory of one haproxy 2.6 with one tcp rule, docs/load-balancing.md):
 * - `nbthread 1`: one thread, not one per CPU (−0.21 MiB on 2 CPUs, more on larger hosts); a router's
 *   load balancer is far from saturating a core.
 * - `httpclient.ssl.verify none`: haproxy's internal HTTP client (used only by Lua scripts, which these
 *   configurations never load) would otherwise load the system's whole CA bundle at start (−0.87 MiB).
 */
export const MEMORY_TUNING: readonly string[] = ['nbthread 1', 'httpclient.ssl.verify none'];

const oneLine = (t: string): string => t.replace(/[\u0000-\u001f\u007f]/g, ' ');

/**
 * Global connection limit: the sum of the proxies' limits plus a small reserve for the stats socket, within
 * what the file descriptor limit allows. No larger floor: haproxy sizes its descriptor table (~0.2 MiB
 * less at 2,016 than at 4,096) from it, and a proxy's own maxconn caps its connections first. haproxy needs about two descriptors per connection and refuses to start ("Cannot
 * raise FD limit") when the hard RLIMIT_NOFILE is too small for an explicit maxconn, which `haproxy -c` does
 * not detect; without an explicit maxconn it would size itself from the soft limit (often 1024 → ~500).
 */
export function globalMaxconn(proxies: ProxySpec[], fdHardLimit?: number): number {
  const wanted = proxies.reduce((a, p) => a + (p.maxconn ?? DEFAULT_PROXY_MAXCONN), 0);
  const cap = fdHardLimit === undefined ? MAX_GLOBAL_MAXCONN : Math.max(100, Math.floor((fdHardLimit - FD_RESERVE) / 2));
  return Math.min(cap, MAX_GLOBAL_MAXCONN, wanted + CLI_MAXCONN_RESERVE);
}

/**
 * The whole configuration for a set of proxies (order kept as given: callers sort). `fdHardLimit`: the hard
 * RLIMIT_NOFILE haproxy will run with (bounds the global maxconn); `runAs`: account the workers switch to.
 */
export function renderConfig(proxies: ProxySpec[], opts: { title?: string; fdHardLimit?: number; runAs?: { user: string; group: string } } = {}): RenderedConfig {
  const out: string[] = [];
  const owners: Array<string | undefined> = [];
  const put = (line: string, owner?: string) => { out.push(line); owners.push(owner); };
  put(`# ${opts.title ?? 'haproxy configuration'} (managed by netns-router; regenerated on every change)`);
  put('global');
  put(`    maxconn ${globalMaxconn(proxies, opts.fdHardLimit)}`);
  for (const l of MEMORY_TUNING) put(`    ${l}`);
  if (opts.runAs) {
    put(`    user ${opts.runAs.user}`);
    put(`    group ${opts.runAs.group}`);
  }
  put('');
  put('defaults');
  put('    mode tcp');
  put('    timeout connect 5s');
  put('    timeout client 50s');
  put('    timeout server 50s');
  put('    retries 3');
  put('    option redispatch');
  for (const p of proxies) {
    put('');
    put(`# rule ${p.id}${p.comment ? ` (${oneLine(p.comment)})` : ''}`, p.id);
    put(`listen ${proxyName(p.id)}`, p.id);
    for (const l of proxyLines(p)) put(`    ${l}`, p.id);
  }
  return { text: `${out.join('\n')}\n`, owners };
}
