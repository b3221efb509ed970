/**
 * Parse the `ip route` / `ip rule` argument text that pbr-* custom actions carry (upstream hands it to
 * `ip … table T` through a shell; we parse it and act over netlink). Supported: the forms policy routing needs.
 *   route:  [TYPE] (default|PREFIX|ADDR) [via ADDR] [dev IF] [metric|preference N] [src ADDR] [scope SCOPE] [proto P]
 *   rule:   [from PREFIX|all] [to PREFIX|all] [iif IF] [oif IF] [fwmark N[/M]] [priority|pref|order N]
 */
import type { RouteSpec, RouteType } from '../../netlink/route.js';
import type { RuleSpec } from '../../netlink/rule.js';
import type { AddrScope } from '../../netlink/address.js';
import { cidrText, networkText, toCidr } from '../../util/ip.js';
import { UsageError } from '../../util/errors.js';

const ROUTE_TYPES: RouteType[] = ['unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw'];
const SCOPES: AddrScope[] = ['universe', 'site', 'link', 'host', 'nowhere'];

function bad(what: string, text: string, why: string): never {
  throw new UsageError(`action-params ${what}: ${why} in ${JSON.stringify(text)}`, 'action-params');
}

function num(what: string, text: string, v: string | undefined, max = 0xffffffff): number {
  if (v === undefined || !/^\d+$/.test(v) || Number(v) > max) bad(what, text, `expected a number, got ${JSON.stringify(v ?? '')}`);
  return Number(v);
}

function addr(what: string, text: string, v: string | undefined, allowPrefix: boolean): string {
  if (v === undefined) bad(what, text, 'missing address');
  try {
    const p = toCidr(v, what);
    if (!allowPrefix && v.includes('/')) bad(what, text, `${v} must be an address`);
    return allowPrefix ? cidrText(p) : p.address;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    return bad(what, text, `${JSON.stringify(v)} is not an IP address`);
  }
}

export function parseRouteText(text: string): Omit<RouteSpec, 'table'> {
  const t = text.trim().split(/\s+/).filter(Boolean);
  if (t.length === 0) bad('route', text, 'empty route');
  let i = 0;
  let type: RouteType | undefined;
  if ((ROUTE_TYPES as string[]).includes(t[0])) type = t[i++] as RouteType;
  const dstTok = t[i++];
  if (dstTok === undefined) bad('route', text, 'missing destination');
  const spec: Omit<RouteSpec, 'table'> = { dst: dstTok === 'default' ? 'default' : addr('route', text, dstTok, true), protocol: 'static' };
  // the kernel refuses a route prefix with host bits (EINVAL): bad input, named here
  if (spec.dst !== 'default' && networkText(toCidr(spec.dst)) !== spec.dst) bad('route', text, `${dstTok} has host bits set (the network is ${networkText(toCidr(spec.dst))})`);
  if (type) spec.type = type;
  while (i < t.length) {
    const k = t[i++];
    const v = t[i++];
    switch (k) {
      case 'via': spec.via = addr('route', text, v, false); break;
      case 'dev': case 'oif':
        if (!v || !/^[A-Za-z0-9_.@-]{1,15}$/.test(v)) bad('route', text, 'bad device name');
        spec.dev = v; break;
      case 'metric': case 'preference': case 'priority': spec.metric = num('route', text, v); break;
      case 'src': spec.src = addr('route', text, v, false); break;
      case 'scope':
        if (!v || !(SCOPES as string[]).includes(v)) bad('route', text, `scope must be one of ${SCOPES.join(', ')}`);
        spec.scope = v as AddrScope; break;
      case 'proto': case 'protocol':
        if (v === 'static' || v === 'boot' || v === 'kernel') spec.protocol = v;
        else spec.protocol = num('route', text, v, 255);
        break;
      default:
        bad('route', text, `unsupported keyword ${JSON.stringify(k)}`);
    }
  }
  if (spec.dst === 'default' && !spec.via && spec.dev === undefined && !type) bad('route', text, 'a default route needs via or dev');
  return spec;
}

export function parseRuleText(text: string): Omit<RuleSpec, 'table'> {
  const t = text.trim().split(/\s+/).filter(Boolean);
  const spec: Omit<RuleSpec, 'table'> = {};
  for (let i = 0; i < t.length;) {
    const k = t[i++];
    const v = t[i++];
    switch (k) {
      case 'from': if (v !== 'all') spec.from = addr('rule', text, v, true); break;
      case 'to': if (v !== 'all') spec.to = addr('rule', text, v, true); break;
      case 'iif': case 'dev':
        if (!v || !/^[A-Za-z0-9_.@-]{1,15}$/.test(v)) bad('rule', text, 'bad interface name');
        spec.iif = v; break;
      case 'oif':
        if (!v || !/^[A-Za-z0-9_.@-]{1,15}$/.test(v)) bad('rule', text, 'bad interface name');
        spec.oif = v; break;
      case 'fwmark': {
        const [mark, mask] = (v ?? '').split('/');
        const parse = (x: string) => (/^0x[0-9a-f]+$/i.test(x) ? parseInt(x, 16) : num('rule', text, x));
        spec.fwmark = parse(mark);
        if (mask !== undefined) spec.fwmask = parse(mask);
        break;
      }
      case 'priority': case 'pref': case 'preference': case 'order':
        spec.priority = num('rule', text, v);
        // 0 is the kernel's own rule (lookup local); rules added after one there all get 0 too
        if (spec.priority === 0) bad('rule', text, 'priority 0 is the kernel\'s "lookup local" rule (use 1 or more)');
        break;
      default:
        bad('rule', text, `unsupported keyword ${JSON.stringify(k)}`);
    }
  }
  if (spec.from === undefined && spec.to === undefined && spec.iif === undefined && spec.oif === undefined && spec.fwmark === undefined) {
    bad('rule', text, 'a rule needs a selector (from, to, iif, oif or fwmark)');
  }
  return spec;
}
