/**
 * Validation of the `lb_rules` document of apply-lb-rules into typed rules. Every rejection is a UsageError
 * (exit 1) naming the document, the rule id and the field. Unknown fields are ignored (CloudStack sends more
 * than we use); keys are matched without regard to case, '-' and '_' (publicIp = public_ip), and CloudStack's
 * own names for health-check and stickiness parameters are accepted next to ours.
 *
 * Rule: {id, publicIp, publicPort, algorithm, backends:[{ip, port, revoked, weight}], revoke, privatePort,
 *        protocol (tcp|http; udp refused), maxconn, healthcheck, stickiness}
 */
import { UsageError } from '../../util/errors.js';
import { canonicalIpv4, canonicalIpv6 } from '../../util/ip.js';
import type { OpaqueJson } from '../contract/types.js';
import { BALANCE_ALGORITHMS, haproxySizeRefusal, type BalanceAlgorithm, type HealthCheckSpec, type StickinessSpec } from '../../services/haproxy/config.js';
import type { LbBackend, LbDocument, LbRule } from './types.js';

type Obj = Record<string, unknown>;

const RULE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const COOKIE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const DOMAIN = /^\.?[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*$/;
// no '#' (haproxy comment), quotes, backslash or spaces: the path goes verbatim into the configuration
const CHECK_PATH = /^\/[A-Za-z0-9\-._~!$&()*+,;=:@%/?]{0,255}$/;
const DURATION = /^(\d{1,9})(ms|s|m|h|d)$/;
const TABLE_SIZE = /^\d{1,10}[kmg]?$/;
const normKey = (k: string): string => k.toLowerCase().replace(/[-_]/g, '');
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const absent = (v: unknown): boolean => v === undefined || v === null || v === '';

/** First present value among `names` (compared by normKey). */
function field(o: Obj, ...names: string[]): unknown {
  const wanted = names.map(normKey);
  for (const w of wanted) {
    for (const [k, v] of Object.entries(o)) if (normKey(k) === w && !absent(v)) return v;
  }
  return undefined;
}

class RuleContext {
  constructor(readonly source: string, readonly index: number, readonly id?: string) {}
  fail(fieldName: string, message: string): never {
    const who = this.id !== undefined ? `rule ${this.id}` : `rule #${this.index}`;
    throw new UsageError(`${this.source}: ${who}: ${fieldName}: ${message}`, 'lb_rules');
  }
}

function integer(c: RuleContext, name: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) c.fail(name, `${JSON.stringify(v)} is not an integer in ${min}..${max}`);
  return n;
}

function bool(c: RuleContext, name: string, v: unknown): boolean {
  if (v === undefined || v === null || v === '') return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
  return c.fail(name, `${JSON.stringify(v)} is not true or false`);
}

/** A flag parameter: present with no value means on (CloudStack sends `nocache` as a bare name). */
function flag(c: RuleContext, name: string, v: unknown): boolean {
  return v === '' ? true : bool(c, name, v);
}

function ipv4(c: RuleContext, name: string, v: unknown): string {
  if (typeof v !== 'string') c.fail(name, `${JSON.stringify(v)} is not an IPv4 address`);
  const ip = canonicalIpv4(v.trim());
  if (ip === undefined) {
    c.fail(name, canonicalIpv6(v.trim()) !== undefined ? `IPv6 address ${v} is not supported for load balancing` : `${JSON.stringify(v)} is not an IPv4 address`);
  }
  if (ip === '0.0.0.0' || ip === '255.255.255.255' || Number(ip.split('.')[0]) >= 224) c.fail(name, `${ip} is not a unicast address`);
  return ip;
}

/** Seconds (number or numeric string, fractions allowed) → milliseconds. */
function secondsToMs(c: RuleContext, name: string, v: unknown, maxSeconds: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(n) || n <= 0 || n > maxSeconds) c.fail(name, `${JSON.stringify(v)} is not a number of seconds in (0, ${maxSeconds}]`);
  const ms = Math.round(n * 1000);
  if (ms < 10) c.fail(name, `${JSON.stringify(v)} seconds is below 10 ms`);
  return ms;
}

/** haproxy duration: "30m", "3h", "20s", "500ms", "2d"; a bare number is seconds. */
function duration(c: RuleContext, name: string, v: unknown): string {
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) return `${v}s`;
  if (typeof v === 'string' && DURATION.test(v.trim()) && Number(DURATION.exec(v.trim())![1]) > 0) return v.trim();
  return c.fail(name, `${JSON.stringify(v)} is not a duration like 30m, 3h, 20s or 2d (one unit, no combinations)`);
}

// ── stickiness ─────────────────────────────────────────────────────────────────────────────────────────

const STICKY_METHODS: Record<string, StickinessSpec['method']> = {
  sourcebased: 'SourceBased', lbcookie: 'LbCookie', lbcookiebased: 'LbCookie', appcookie: 'AppCookie', appcookiebased: 'AppCookie',
};
/** CloudStack's parameter names per method (HAProxy stickiness capability of the virtual router). */
const STICKY_PARAMS: Record<StickinessSpec['method'], string[]> = {
  SourceBased: ['tablesize', 'expire'],
  LbCookie: ['cookie-name', 'mode', 'nocache', 'indirect', 'postonly', 'domain'],
  AppCookie: ['cookie-name', 'length', 'holdtime', 'request-learn', 'prefix', 'mode'],
};

/** Parameters as an object, an array of {name, value}, or an array of [name, value] pairs → normKey → value. */
function stickyParams(c: RuleContext, v: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (v === undefined || v === null) return out;
  if (isObj(v)) {
    for (const [k, x] of Object.entries(v)) out.set(normKey(k), x);
    return out;
  }
  if (Array.isArray(v)) {
    for (const p of v) {
      if (Array.isArray(p) && p.length === 2 && typeof p[0] === 'string') out.set(normKey(p[0]), p[1]);
      else if (isObj(p) && typeof field(p, 'name', 'first') === 'string') out.set(normKey(field(p, 'name', 'first') as string), field(p, 'value', 'second') ?? '');
      else c.fail('stickiness.params', `${JSON.stringify(p)} is not a {name, value} parameter`);
    }
    return out;
  }
  return c.fail('stickiness.params', 'expected an object or a list of {name, value}');
}

function stickiness(c: RuleContext, v: unknown): StickinessSpec | undefined {
  if (absent(v) || v === false) return undefined;
  if (Array.isArray(v)) {
    if (v.length === 0) return undefined;
    if (v.length > 1) c.fail('stickiness', 'only one stickiness policy per rule');
    v = v[0];
  }
  if (!isObj(v)) return c.fail('stickiness', 'expected an object {method, params}');
  const methodText = field(v, 'method', 'methodname');
  if (typeof methodText !== 'string') return c.fail('stickiness.method', 'missing (SourceBased, LbCookie or AppCookie)');
  const method = STICKY_METHODS[normKey(methodText)];
  if (!method) return c.fail('stickiness.method', `${JSON.stringify(methodText)} is not one of SourceBased, LbCookie, AppCookie`);
  const params = stickyParams(c, field(v, 'params', 'param', 'parameters'));
  const known = STICKY_PARAMS[method];
  for (const k of params.keys()) {
    if (!known.map(normKey).includes(k)) c.fail(`stickiness.params.${k}`, `unknown parameter for ${method} (known: ${known.join(', ')})`);
  }
  const p = (name: string) => { const x = params.get(normKey(name)); return x === null ? undefined : x; };
  const str = (name: string, re: RegExp, what: string): string | undefined => {
    const x = p(name);
    if (x === undefined || x === '') return undefined;
    if (typeof x !== 'string' || !re.test(x)) c.fail(`stickiness.params.${name}`, `${JSON.stringify(x)} is not ${what}`);
    return x;
  };
  switch (method) {
    case 'SourceBased': {
      const size = p('tablesize');
      let tableSize = '200k';
      if (size !== undefined && size !== '') {
        const text = typeof size === 'number' ? String(size) : size;
        if (typeof text !== 'string' || !TABLE_SIZE.test(text.toLowerCase()) || /^0+[kmg]?$/.test(text.toLowerCase()) || haproxySizeRefusal(text) !== undefined) {
          c.fail('stickiness.params.tablesize', `${JSON.stringify(size)} is not a table size like 200k, 300m or 3g (1 to 4294967295 entries)`);
        }
        tableSize = text.toLowerCase();
      }
      const exp = p('expire');
      return { method, tableSize, expire: exp === undefined || exp === '' ? '3h' : duration(c, 'stickiness.params.expire', exp) };
    }
    case 'LbCookie': {
      const mode = str('mode', /^(insert|rewrite|prefix)$/, 'insert, rewrite or prefix') ?? 'insert';
      const spec: StickinessSpec = {
        method, mode: mode as 'insert' | 'rewrite' | 'prefix',
        cookieName: str('cookie-name', COOKIE_NAME, 'a cookie name ([A-Za-z0-9_.-], at most 64)') ?? `SRV_${c.id ?? 'lb'}`.replace(/[^A-Za-z0-9_.-]/g, '_'),
        nocache: flag(c, 'stickiness.params.nocache', p('nocache')),
        indirect: flag(c, 'stickiness.params.indirect', p('indirect')),
        postonly: flag(c, 'stickiness.params.postonly', p('postonly')),
      };
      if ((spec.nocache || spec.postonly) && mode !== 'insert') c.fail('stickiness.params.mode', `nocache and postonly only apply to mode insert, not ${mode}`);
      const domain = str('domain', DOMAIN, 'a domain name');
      if (domain) spec.domain = domain;
      return spec;
    }
    case 'AppCookie': {
      const cookieName = str('cookie-name', COOKIE_NAME, 'a cookie name ([A-Za-z0-9_.-], at most 64)');
      if (!cookieName) return c.fail('stickiness.params.cookie-name', 'AppCookie needs the name of the application\'s session cookie');
      if (flag(c, 'stickiness.params.prefix', p('prefix'))) {
        c.fail('stickiness.params.prefix', 'cookie-prefix matching (haproxy appsession) does not exist in haproxy 2.x; give the exact cookie-name');
      }
      const len = p('length');
      const hold = p('holdtime');
      return {
        method, cookieName,
        length: len === undefined || len === '' ? 52 : integer(c, 'stickiness.params.length', len, 1, 4096),
        holdtime: hold === undefined || hold === '' ? '3h' : duration(c, 'stickiness.params.holdtime', hold),
        requestLearn: flag(c, 'stickiness.params.request-learn', p('request-learn')),
        mode: (str('mode', /^(path-parameters|query-string)$/, 'path-parameters or query-string') ?? 'path-parameters') as 'path-parameters' | 'query-string',
      };
    }
  }
}

// ── health check ───────────────────────────────────────────────────────────────────────────────────────

function healthcheck(c: RuleContext, v: unknown): HealthCheckSpec | undefined {
  if (absent(v)) return undefined;
  if (v === false) return { enabled: false };
  if (v === true) return { enabled: true };
  if (Array.isArray(v)) {
    if (v.length === 0) return undefined;
    if (v.length > 1) c.fail('healthcheck', 'only one health-check policy per rule');
    v = v[0];
  }
  if (!isObj(v)) return c.fail('healthcheck', 'expected an object {path, interval, timeout, rise, fall}');
  const enabled = field(v, 'enabled');
  if (enabled !== undefined && !bool(c, 'healthcheck.enabled', enabled)) return { enabled: false };
  const spec: HealthCheckSpec = { enabled: true };
  const path = field(v, 'path', 'pingpath');
  if (path !== undefined) {
    if (typeof path !== 'string' || !CHECK_PATH.test(path)) c.fail('healthcheck.path', `${JSON.stringify(path)} is not an absolute URL path (no spaces, quotes or '#')`);
    spec.path = path;
  }
  const interval = field(v, 'interval', 'intervaltime', 'healthcheckinterval');
  if (interval !== undefined) spec.intervalMs = secondsToMs(c, 'healthcheck.interval', interval, 3600);
  const timeout = field(v, 'timeout', 'responsetimeout', 'responsetime');
  if (timeout !== undefined) spec.timeoutMs = secondsToMs(c, 'healthcheck.timeout', timeout, 3600);
  const rise = field(v, 'rise', 'healthythreshold', 'healthcheckthresshold', 'healthcheckthreshold');
  if (rise !== undefined) spec.rise = integer(c, 'healthcheck.rise', rise, 1, 100);
  const fall = field(v, 'fall', 'unhealthythreshold', 'unhealththresshold', 'unhealththreshold');
  if (fall !== undefined) spec.fall = integer(c, 'healthcheck.fall', fall, 1, 100);
  return spec;
}

// ── rules ──────────────────────────────────────────────────────────────────────────────────────────────

function backends(c: RuleContext, v: unknown, privatePort: number | undefined): LbBackend[] {
  if (absent(v)) return [];
  if (!Array.isArray(v)) return c.fail('backends', 'expected a list of {ip, port}');
  const out: LbBackend[] = [];
  const seen = new Set<string>();
  v.forEach((b, i) => {
    const name = `backends[${i}]`;
    if (!isObj(b)) c.fail(name, 'expected an object {ip, port}');
    if (bool(c, `${name}.revoked`, field(b, 'revoked', 'revoke'))) return;
    const ip = ipv4(c, `${name}.ip`, field(b, 'ip', 'address', 'destip'));
    const portRaw = field(b, 'port', 'destport', 'privateport');
    if (portRaw === undefined && privatePort === undefined) c.fail(`${name}.port`, 'missing (and the rule has no privatePort)');
    const port = portRaw === undefined ? privatePort! : integer(c, `${name}.port`, portRaw, 1, 65535);
    const key = `${ip}:${port}`;
    if (seen.has(key)) c.fail(name, `backend ${key} is listed twice`);
    seen.add(key);
    const be: LbBackend = { ip, port };
    const w = field(b, 'weight');
    if (w !== undefined) be.weight = integer(c, `${name}.weight`, w, 0, 256);
    out.push(be);
  });
  return out;
}

function ruleId(c: RuleContext, v: unknown): string {
  const id = typeof v === 'number' && Number.isInteger(v) && v >= 0 ? String(v) : v;
  if (typeof id !== 'string' || !RULE_ID.test(id)) c.fail('id', `${JSON.stringify(v)} is not a rule id (1-64 characters of [A-Za-z0-9_.-])`);
  return id;
}

function parseRule(source: string, index: number, raw: unknown): { revoke: true; id: string } | { revoke: false; rule: LbRule } {
  const c0 = new RuleContext(source, index);
  if (!isObj(raw)) return c0.fail('', 'expected an object');
  const id = ruleId(c0, field(raw, 'id', 'uuid'));
  const c = new RuleContext(source, index, id);
  if (bool(c, 'revoke', field(raw, 'revoke', 'revoked'))) return { revoke: true, id };

  const publicIp = ipv4(c, 'publicIp', field(raw, 'publicIp', 'srcip', 'sourceip'));
  const publicPortRaw = field(raw, 'publicPort', 'srcport', 'sourceport');
  if (publicPortRaw === undefined) c.fail('publicPort', 'missing');
  const publicPort = integer(c, 'publicPort', publicPortRaw, 1, 65535);
  const ppRaw = field(raw, 'privatePort', 'defaultport');
  const privatePort = ppRaw === undefined ? undefined : integer(c, 'privatePort', ppRaw, 1, 65535);

  const protoRaw = field(raw, 'protocol', 'lbprotocol');
  let protocol: 'tcp' | 'http' = 'tcp';
  if (protoRaw !== undefined) {
    const p = typeof protoRaw === 'string' ? protoRaw.toLowerCase() : protoRaw;
    if (p === 'udp') c.fail('protocol', 'udp load balancing is not supported (haproxy balances TCP and HTTP only)');
    if (p !== 'tcp' && p !== 'http') c.fail('protocol', `${JSON.stringify(protoRaw)} is not one of tcp, http`);
    protocol = p as 'tcp' | 'http';
  }
  const algRaw = field(raw, 'algorithm', 'algo');
  let algorithm: BalanceAlgorithm = 'roundrobin';
  if (algRaw !== undefined) {
    const a = typeof algRaw === 'string' ? algRaw.toLowerCase() : '';
    if (!(BALANCE_ALGORITHMS as readonly string[]).includes(a)) c.fail('algorithm', `${JSON.stringify(algRaw)} is not one of ${BALANCE_ALGORITHMS.join(', ')}`);
    algorithm = a as BalanceAlgorithm;
  }
  const rule: LbRule = {
    id, publicIp, publicPort, protocol, algorithm,
    backends: backends(c, field(raw, 'backends', 'destinations'), privatePort),
  };
  const name = field(raw, 'name');
  if (typeof name === 'string') rule.name = name.slice(0, 255);
  const maxconn = field(raw, 'maxconn', 'maxconnections');
  if (maxconn !== undefined) rule.maxconn = integer(c, 'maxconn', maxconn, 1, 1_000_000);
  const hc = healthcheck(c, field(raw, 'healthcheck', 'healthcheckpolicy', 'healthcheckpolicies'));
  if (hc) rule.healthcheck = hc;
  const st = stickiness(c, field(raw, 'stickiness', 'stickinesspolicy', 'stickinesspolicies'));
  if (st) rule.stickiness = st;
  return { revoke: false, rule };
}

/** Parse a whole `lb_rules` document (a JSON array of rules; `{"rules": [...]}` is accepted too). */
export function parseLbDocument(doc: OpaqueJson): LbDocument {
  let list = doc.value;
  if (isObj(list)) list = field(list, 'rules', 'lbrules') ?? list;
  if (!Array.isArray(list)) throw new UsageError(`${doc.source}: expected a JSON array of load-balancing rules`, 'lb_rules');
  const out: LbDocument = { upserts: [], revokes: [] };
  const seen = new Set<string>();
  list.forEach((raw, i) => {
    const r = parseRule(doc.source, i, raw);
    const id = r.revoke ? r.id : r.rule.id;
    if (seen.has(id)) throw new UsageError(`${doc.source}: rule ${id}: id: listed twice in the document`, 'lb_rules');
    seen.add(id);
    if (r.revoke) out.revokes.push(r.id);
    else out.upserts.push(r.rule);
  });
  return out;
}
