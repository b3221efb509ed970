/**
 * What pbr-list-tables / pbr-list-routes / pbr-list-rules report, in the shapes upstream's wrapper gives
 * (so an operator's script written against it parses ours): the tables of the namespace's rt_tables file
 * (the kernel's standard ones first) with string ids, and the kernel's routes and rules as the lines
 * `ip route show` / `ip rule show` print (trailing blanks trimmed, as upstream does), read over netlink.
 */
import type { Route } from '../../netlink/route.js';
import type { Rule } from '../../netlink/rule.js';
import type { NsOps, RouterKernel } from '../kernel.js';
import type { PbrState } from './module.js';

/** The lines upstream seeds every namespace's rt_tables with (and iproute2's own names). */
const STANDARD_TABLES: ReadonlyArray<[number, string]> = [[255, 'local'], [254, 'main'], [253, 'default'], [0, 'unspec']];

/** Rows of pbr-list-tables: `{id, name}` with the id as text, standard tables first (rt_tables order). */
export function tableRows(s: PbrState): Array<{ id: string; name: string }> {
  return [...STANDARD_TABLES.map(([id, name]) => ({ id: String(id), name })),
    ...Object.entries(s.tables).map(([id, name]) => ({ id, name }))];
}

/** Table id → name as iproute2 resolves it in the namespace (standard names, then the pbr tables). */
function tableNames(s: PbrState): (id: number) => string {
  const names = new Map<number, string>([...STANDARD_TABLES, ...Object.entries(s.tables).map(([id, n]) => [Number(id), n] as [number, string])]);
  return (id) => names.get(id) ?? String(id);
}

// iproute2's /etc/iproute2/rt_protos names
const PROTOCOLS: Record<number, string> = { 0: 'unspec', 1: 'redirect', 2: 'kernel', 3: 'boot', 4: 'static', 8: 'gated', 9: 'ra', 10: 'mrt', 11: 'zebra', 12: 'bird', 13: 'dnrouted', 14: 'xorp', 15: 'ntk', 16: 'dhcp', 18: 'keepalived', 42: 'babel', 186: 'bgp', 187: 'isis', 188: 'ospf', 189: 'rip', 192: 'eigrp' };

const hostLess = (prefix: string): string => prefix.replace(/\/32$/, '').replace(/\/128$/, '');

/**
 * One `ip route show` line (iproute2's field order: type unless unicast, destination, via, dev, table unless
 * main — only when listing all tables —, proto unless boot, scope unless global, src, metric, IPv6 pref).
 */
export function routeLine(r: Route, name: (id: number) => string, withTable: boolean): string {
  const f: string[] = [];
  if (r.type !== 'unicast') f.push(r.type);
  f.push(r.dst === 'default' ? 'default' : hostLess(r.dst));
  if (r.via) f.push('via', r.via);
  if (r.dev) f.push('dev', r.dev);
  if (withTable && r.table !== 254) f.push('table', name(r.table));
  if (r.protocol !== 3) f.push('proto', PROTOCOLS[r.protocol] ?? String(r.protocol));
  if (r.scope !== 'universe') f.push('scope', r.scope);
  if (r.src) f.push('src', r.src);
  if (r.metric !== undefined) f.push('metric', String(r.metric));
  if (r.pref) f.push('pref', r.pref);
  return f.join(' ');
}

// FR_ACT_* of rules that look up no table
const RULE_ACTIONS: Record<number, string> = { 3: 'nop', 6: 'blackhole', 7: 'unreachable', 8: 'prohibit' };

/** One `ip rule show` line: `PRIO:\tfrom SRC [to DST] [fwmark M[/MASK]] [iif I] [oif O] lookup TABLE`. */
export function ruleLine(r: Rule, name: (id: number) => string): string {
  const f = [`from ${r.from ? hostLess(r.from) : 'all'}`];
  if (r.to) f.push(`to ${hostLess(r.to)}`);
  if (r.fwmark !== undefined || r.fwmask !== undefined) {
    const mask = r.fwmask ?? 0xffffffff;
    f.push(`fwmark 0x${(r.fwmark ?? 0).toString(16)}${mask !== 0xffffffff ? `/0x${mask.toString(16)}` : ''}`);
  }
  if (r.iif) f.push(`iif ${r.iif}`);
  if (r.oif) f.push(`oif ${r.oif}`);
  if (r.table) f.push(`lookup ${name(r.table)}`);
  else if (RULE_ACTIONS[r.action]) f.push(RULE_ACTIONS[r.action]);
  return `${r.priority ?? 0}:\t${f.join(' ')}`;
}

/** Runs `fn` on the namespace's netlink handle; a namespace that does not exist has nothing to list. */
function inNamespace<T>(k: RouterKernel, ns: string, fn: (h: NsOps) => T[]): T[] {
  if (!k.netnsExists(ns)) return [];
  const h = k.open(ns);
  try {
    return fn(h);
  } finally {
    h.close();
  }
}

/** pbr-list-routes rows: one table's routes (`ip route show table T`), or every table's (`… table all`); IPv4 and IPv6. */
export function routeRows(k: RouterKernel, ns: string, s: PbrState, table?: number): Array<{ route: string }> {
  const name = tableNames(s);
  const routes = inNamespace(k, ns, (h) => h.netlink.routeList({ table: table ?? 'all' }));
  return routes.map((r) => ({ route: routeLine(r, name, table === undefined) }));
}

/** pbr-list-rules rows: the namespace's IPv4 rules (`ip rule show`), or those looking up `table`. */
export function ruleRows(k: RouterKernel, ns: string, s: PbrState, table?: number): Array<{ rule: string }> {
  const name = tableNames(s);
  const rules = inNamespace(k, ns, (h) => h.netlink.ruleList(4));
  return rules.filter((r) => table === undefined || r.table === table).map((r) => ({ rule: ruleLine(r, name) }));
}
