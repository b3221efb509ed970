/**
 * Policy-based routing (the custom actions pbr-*, declared here): named routing tables, routes and rules inside the router
 * namespace, done over netlink and kept in the router's state so that a restore brings them back. Table
 * names are also written to /etc/netns/<ns>/iproute2/rt_tables, where `ip netns exec NS ip route show table
 * NAME` finds them (what upstream does).
 */
import type { ReconcileContext, RouterModule } from '../router-module.js';
import { moduleState, setModuleState } from '../router-module.js';
import { modelIsEmpty, type RouterModel } from '../model.js';
import { UsageError } from '../../util/errors.js';
import { parseRouteText, parseRuleText } from './spec-text.js';
import type { RouteSpec } from '../../netlink/route.js';
import type { RuleSpec } from '../../netlink/rule.js';
import { cidrContains, toCidr, type Cidr } from '../../util/ip.js';
import { tierAttachment } from '../topology.js';
import type { RouterEngine } from '../engine.js';
import { routeRows, ruleRows, tableRows } from './listing.js';

export const PBR = 'pbr';

export interface PbrState {
  /** table id → name */
  tables: Record<string, string>;
  routes: Array<{ table: number; route: string }>;
  rules: Array<{ table: number; rule: string }>;
}

const empty = (): PbrState => ({ tables: {}, routes: [], rules: [] });
export const pbrState = (m: RouterModel): PbrState => moduleState<PbrState>(m, PBR) ?? empty();

/** Resolve a table reference (id or name) against the stored tables. */
export function resolveTable(s: PbrState, ref: string | number): number {
  const text = String(ref);
  if (/^\d+$/.test(text)) {
    if (!s.tables[text]) throw new UsageError(`pbr table ${text} does not exist (pbr-create-table first)`, 'action-params');
    return Number(text);
  }
  const hit = Object.entries(s.tables).find(([, n]) => n === text);
  if (!hit) throw new UsageError(`pbr table "${text}" does not exist (pbr-create-table first)`, 'action-params');
  return Number(hit[0]);
}

const listedTable = (s: PbrState, table: string | undefined): number | undefined =>
  table === undefined ? undefined : /^\d+$/.test(table) ? Number(table) : resolveTable(s, table);

export function createTable(m: RouterModel, id: number, name: string): void {
  const s = pbrState(m);
  const byName = Object.entries(s.tables).find(([, n]) => n === name);
  if (byName && Number(byName[0]) !== id) throw new UsageError(`pbr table name "${name}" is already table ${byName[0]}`, 'action-params');
  if (s.tables[id] && s.tables[id] !== name) throw new UsageError(`pbr table ${id} already exists as "${s.tables[id]}"`, 'action-params');
  s.tables[id] = name;
  setModuleState(m, PBR, s);
}

export function deleteTable(m: RouterModel, ref: { tableId?: number; tableName?: string }): void {
  const s = pbrState(m);
  const id = resolveTable(s, ref.tableId ?? ref.tableName ?? '');
  delete s.tables[id];
  s.routes = s.routes.filter((r) => r.table !== id);
  s.rules = s.rules.filter((r) => r.table !== id);
  setModuleState(m, PBR, s);
}

export function addRoute(m: RouterModel, table: string, route: string): void {
  const s = pbrState(m);
  const id = resolveTable(s, table);
  const spec = parseRouteText(route); // validates
  s.routes = s.routes.filter((r) => !(r.table === id && parseRouteText(r.route).dst === spec.dst));
  s.routes.push({ table: id, route });
  setModuleState(m, PBR, s);
}

export function deleteRoute(m: RouterModel, table: string, route: string): void {
  const s = pbrState(m);
  const id = resolveTable(s, table);
  const dst = parseRouteText(route).dst;
  s.routes = s.routes.filter((r) => !(r.table === id && parseRouteText(r.route).dst === dst));
  setModuleState(m, PBR, s);
}

/**
 * What a rule selects packets by, as the kernel lists it (from/to keep their host bits in both; a mark without a
 * mask has the kernel's mask of all ones) — its priority aside: a rule added without one gets the kernel's choice.
 */
const selectorKey = (r: Omit<RuleSpec, 'table'>): string =>
  JSON.stringify([r.from ?? null, r.to ?? null, r.iif ?? null, r.oif ?? null, r.fwmark ?? null, r.fwmark !== undefined ? (r.fwmask ?? 0xffffffff) >>> 0 : null]);
/** A stored rule's identity: its selectors and its priority when it names one. */
const ruleKey = (r: Omit<RuleSpec, 'table'>): string => `${r.priority ?? '-'} ${selectorKey(r)}`;

export function addRule(m: RouterModel, table: string, rule: string): void {
  const s = pbrState(m);
  const id = resolveTable(s, table);
  const k = ruleKey(parseRuleText(rule));
  s.rules = s.rules.filter((r) => !(r.table === id && ruleKey(parseRuleText(r.rule)) === k));
  s.rules.push({ table: id, rule });
  setModuleState(m, PBR, s);
}

/** Like `ip rule del`: a rule given with a priority goes exactly; without one, the table's rules of those selectors go. */
export function deleteRule(m: RouterModel, table: string, rule: string): void {
  const s = pbrState(m);
  const id = resolveTable(s, table);
  const spec = parseRuleText(rule);
  const matches = (r: Omit<RuleSpec, 'table'>): boolean =>
    spec.priority !== undefined ? ruleKey(r) === ruleKey(spec) : selectorKey(r) === selectorKey(spec);
  s.rules = s.rules.filter((r) => !(r.table === id && matches(parseRuleText(r.rule))));
  setModuleState(m, PBR, s);
}

/** `text` (a prefix or an address) lies wholly inside one of `nets`. */
function inside(nets: Cidr[], text: string | undefined): boolean {
  if (text === undefined || text === 'default' || text === 'all') return false;
  const p = toCidr(text);
  return nets.some((n) => n.family === p.family && p.prefix >= n.prefix && cidrContains(n, p.address));
}

/**
 * A tier leaves the router: routes and rules that only make sense with it go — those naming its interface
 * (dev, iif, oif), routes whose next hop is in its subnet, rules selecting only its subnet (from/to inside
 * it). Tables and everything else stay (they belong to the router). Without this a re-implemented tier
 * would get its old policy routing back, and a route through its vanished interface would fail the reconcile.
 */
export function forgetPbrTier(m: RouterModel, networkId: string): void {
  const t = m.tiers[networkId];
  const s = moduleState<PbrState>(m, PBR);
  if (!t || !s) return;
  const dev = tierAttachment(m, t).nsVeth;
  const nets = [t.cidr, t.ip6Cidr].filter((c): c is string => c !== undefined).map((c) => toCidr(c));
  const routes = s.routes.filter((r) => {
    const spec = parseRouteText(r.route);
    return spec.dev !== dev && !inside(nets, spec.via);
  });
  const rules = s.rules.filter((r) => {
    const spec = parseRuleText(r.rule);
    return spec.iif !== dev && spec.oif !== dev && !inside(nets, spec.from) && !inside(nets, spec.to);
  });
  if (routes.length === s.routes.length && rules.length === s.rules.length) return;
  setModuleState(m, PBR, { ...s, routes, rules });
}

const ourRule = (r: { table: number; priority?: number }, ids: Set<number>) => ids.has(r.table);

/** The namespace's iproute2/rt_tables (no table: /etc/netns/<ns> goes), through the engine's kernel. */
function writeRtTables(ctx: ReconcileContext, ns: string, s: PbrState): void {
  if (Object.keys(s.tables).length === 0) {
    ctx.kernel.netnsEtc(ns, 'iproute2/rt_tables', undefined);
    return;
  }
  const lines = ['# managed by netns-router (pbr custom actions)', '255\tlocal', '254\tmain', '253\tdefault', '0\tunspec',
    ...Object.entries(s.tables).map(([id, n]) => `${id}\t${n}`)];
  ctx.kernel.netnsEtc(ns, 'iproute2/rt_tables', `${lines.join('\n')}\n`);
}

/** pbr-list-*: the stored tables, routes or rules of the router (none when it has no state). */
function listing(req: { namespace: string }, engine: RouterEngine): PbrState {
  const m = engine.storedModel(req.namespace);
  return m ? pbrState(m) : empty();
}

/** The pbr-* changes touch the module's slot alone: only its routes and rules are reconciled (docs/reconcile.md). */
const scope = { modules: [PBR] };

/** Policy routing lives in a router: none on one that does not exist (destroyed, never implemented) — a stored table
 *  would make it exist (listed, restored by restore-all). */
function inRouter<R>(change: (m: RouterModel) => R): (m: RouterModel) => R {
  return (m) => {
    if (modelIsEmpty(m)) {
      const [arg, cmd] = m.kind === 'vpc' ? ['vpc_id', 'implement-vpc'] : ['network_id', 'implement-network'];
      throw new UsageError(`router ${m.namespace} does not exist (run ${cmd} first); nothing was changed`, arg);
    }
    return change(m);
  };
}

export const pbrModule: RouterModule = {
  name: PBR,
  // custom-action pbr-*: a change answers upstream's message, a listing its rows
  actions: {
    'pbr-create-table': {
      scope,
      change: (b) => inRouter((m) => {
        const existed = pbrState(m).tables[b.tableId] === b.tableName;
        createTable(m, b.tableId, b.tableName);
        return `pbr-create-table: ${existed ? 'exists' : 'OK'} ${b.tableId} ${b.tableName}`;
      }),
    },
    'pbr-delete-table': {
      scope,
      change: (b) => inRouter((m) => {
        deleteTable(m, b);
        return `pbr-delete-table: OK id=${b.tableId ?? 'n/a'} name=${b.tableName ?? 'n/a'}`;
      }),
    },
    'pbr-add-route': { scope, change: (b) => inRouter((m) => { addRoute(m, b.table, b.route); return `${b.name}: OK table=${b.table} route=${b.route}`; }) },
    'pbr-delete-route': { scope, change: (b) => inRouter((m) => { deleteRoute(m, b.table, b.route); return `${b.name}: OK table=${b.table} route=${b.route}`; }) },
    'pbr-add-rule': { scope, change: (b) => inRouter((m) => { addRule(m, b.table, b.rule); return `${b.name}: OK table=${b.table} rule=${b.rule}`; }) },
    'pbr-delete-rule': { scope, change: (b) => inRouter((m) => { deleteRule(m, b.table, b.rule); return `${b.name}: OK table=${b.table} rule=${b.rule}`; }) },
    'pbr-list-tables': { run: async (_b, req, { engine }) => tableRows(listing(req, engine)) },
    // a table given by number is listed even when it is not one of ours (`ip route show table 254`)
    'pbr-list-routes': { run: async (b, req, { engine }) => { const s = listing(req, engine); return routeRows(engine.kernel, req.namespace, s, listedTable(s, b.table)); } },
    'pbr-list-rules': { run: async (b, req, { engine }) => { const s = listing(req, engine); return ruleRows(engine.kernel, req.namespace, s, listedTable(s, b.table)); } },
  },
  forgetTier: forgetPbrTier,
  async reconcile(m, previous, ctx) {
    const s = pbrState(m);
    const prev = previous ? pbrState(previous) : empty();
    const known = new Set([...Object.keys(s.tables), ...Object.keys(prev.tables)].map(Number));
    if (known.size === 0 || !ctx.kernel.netnsExists(m.namespace)) return;
    const ns = ctx.kernel.open(m.namespace);
    try {
      const nl = ns.netlink;
      // routes: replace wanted, delete ours that are no longer wanted
      const want = new Map<string, RouteSpec>();
      for (const r of s.routes) {
        const spec: RouteSpec = { ...parseRouteText(r.route), table: r.table };
        want.set(`${r.table} ${spec.dst}`, spec);
      }
      for (const cur of nl.routeList({ table: 'all', names: false })) {
        if (!known.has(cur.table) || cur.protocol === 2 /* kernel */) continue;
        if (!want.has(`${cur.table} ${cur.dst}`)) nl.routeDel({ dst: cur.dst, family: cur.family, table: cur.table }, { ifExists: true });
      }
      for (const spec of want.values()) nl.routeReplace(spec);
      // rules: every rule looking up one of our tables is ours. Each wanted rule holds one such kernel rule of its
      // selectors — of its priority when it names one (matched first), else of any (the kernel chose it when it was
      // added); the rest go, and wanted rules holding none are added
      const wanted = s.rules.map((r) => ({ spec: { ...parseRuleText(r.rule), table: r.table } as RuleSpec, held: false }));
      const current = [...nl.ruleList(4), ...nl.ruleList(6)].filter((cur) => ourRule(cur, known)).map((cur) => ({ cur, key: selectorKey(cur), kept: false }));
      for (const exact of [true, false]) {
        for (const w of wanted) {
          if (w.held || (w.spec.priority !== undefined) !== exact) continue;
          const key = selectorKey(w.spec);
          const hit = current.find((c) => !c.kept && c.cur.table === w.spec.table && c.key === key && (!exact || c.cur.priority === w.spec.priority));
          if (hit) hit.kept = w.held = true;
        }
      }
      for (const { cur, kept } of current) {
        if (kept) continue;
        nl.ruleDel({ family: cur.family, table: cur.table, ...(cur.priority !== undefined ? { priority: cur.priority } : {}), ...(cur.from ? { from: cur.from } : {}), ...(cur.to ? { to: cur.to } : {}), ...(cur.iif ? { iif: cur.iif } : {}), ...(cur.oif ? { oif: cur.oif } : {}), ...(cur.fwmark !== undefined ? { fwmark: cur.fwmark } : {}),
          // the kernel matches a deletion's mark mask (0xffffffff when absent): a masked rule needs its own
          ...(cur.fwmask !== undefined ? { fwmask: cur.fwmask } : {}) }, { ifExists: true });
      }
      for (const w of wanted) if (!w.held) nl.ruleAdd(w.spec);
    } finally {
      ns.close();
    }
    writeRtTables(ctx, m.namespace, s);
  },
  async teardown(m, ctx) {
    writeRtTables(ctx, m.namespace, empty());
  },
  // all of it goes through the engine's kernel (routes, rules, rt_tables): planned by running it on the plan's kernel
  async plan(m, previous, ctx, opts = {}) {
    if (opts.teardown) await pbrModule.teardown!(m, ctx);
    else await pbrModule.reconcile!(m, previous, ctx);
    return [];
  },
};
