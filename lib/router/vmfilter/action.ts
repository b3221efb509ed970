/**
 * vm-filter-set: the typed library call and the custom action that change a router's rule sets — one NIC's own
 * set and port binding, or one named filter — in one engine change (so the filter table changes in one
 * transaction), and report every NIC set and named filter as rows (CloudStack's UI shows them as a table).
 *
 * action-params (CloudStack sends strings; JSON values are accepted too):
 *   {"mac": "02:…", "rules": "[{…}, …]", "filters": "clean-traffic,web", "port": "vnet3"}   a NIC's set
 *   {"mac": "02:…", "clear": "true"}                                                     its set and binding go
 *   {"filter": "web", "priority": "100", "rules": "[…]", "filters": "other"}              define a named filter
 *   {"filter": "web", "delete": "true"}                                                  remove it (unreferenced)
 *   {}                                                                                   list only
 */
import type { RouterEngine } from '../engine.js';
import type { RouterModel } from '../model.js';
import { UsageError } from '../../util/errors.js';
import { BadValue, parseBool, parseIfName, parseMac } from '../contract/values.js';
import { checkIfname } from '../../nft/validate.js';
import { NftValidationError } from '../../nft/errors.js';
import {
  CLEAN_TRAFFIC, LIMITS, checkFilterGraph, parseFilterName, parseFilterRefs, parseRules, type AddrField, type MacField,
  type NamedFilter, type VmRule,
} from './rules.js';
import { editNic, setVmfilterState, tierFiltered, vmfilterState, type VmFilterState } from './state.js';
import { knownNics } from './nics.js';
import { compareText } from '../../util/compare.js';

export type VmFilterChange =
  | { kind: 'list' }
  | { kind: 'nic'; mac: string; rules?: VmRule[]; filters?: string[]; port?: string | null; clear?: boolean }
  | { kind: 'filter'; name: string; priority?: number; rules?: VmRule[]; filters?: string[]; delete?: boolean };

export interface VmFilterSetRequest {
  namespace: string;
  /** The NIC's network; a VPC-level request finds the network by the NIC's MAC. */
  networkId?: string;
  vpcId?: string;
  change: VmFilterChange;
}

/** One row of the action's answer. */
export interface VmFilterRow {
  kind: 'nic' | 'filter';
  name: string;
  network: string;
  port: string;
  state: string;
  rules: string;
}

const PARAM_KEYS = new Set(['mac', 'rules', 'filters', 'port', 'clear', 'filter', 'priority', 'delete']);

/** action-params → the change (UsageError naming action-params on bad input). */
export function parseVmFilterParams(params: Record<string, unknown>): VmFilterChange {
  const fail = (msg: string): never => { throw new UsageError(`action-params: ${msg}`, 'action-params'); };
  try {
    for (const k of Object.keys(params)) if (!PARAM_KEYS.has(k)) fail(`unknown key ${JSON.stringify(k)} for vm-filter-set (${[...PARAM_KEYS].join(', ')})`);
    const given = (k: string) => params[k] !== undefined && params[k] !== null && params[k] !== '';
    const flag = (k: string) => given(k) && (typeof params[k] === 'boolean' ? params[k] as boolean : parseBool(String(params[k])));
    if (given('mac') && given('filter')) fail('give either mac (a NIC\'s set) or filter (a named filter), not both');
    if (given('mac')) {
      if (given('priority') || given('delete')) fail('priority and delete belong to a named filter (filter)');
      const c: VmFilterChange = { kind: 'nic', mac: parseMac(String(params.mac)) };
      if (flag('clear')) {
        if (given('rules') || given('filters') || params.port !== undefined) fail('clear takes nothing else');
        return { ...c, clear: true };
      }
      if (given('rules')) c.rules = parseRules(params.rules);
      else if (params.rules !== undefined) c.rules = [];
      if (given('filters')) c.filters = parseFilterRefs(params.filters);
      else if (params.filters !== undefined) c.filters = [];
      if (params.port !== undefined) c.port = given('port') && String(params.port).toLowerCase() !== 'none' ? parsePort(String(params.port)) : null;
      return c;
    }
    if (given('filter')) {
      if (given('port') || given('clear')) fail('port and clear belong to a NIC (mac)');
      const name = parseFilterName(params.filter, 'filter');
      if (name === CLEAN_TRAFFIC) fail(`${CLEAN_TRAFFIC} is built in (the anti-spoofing base of every NIC) and cannot be redefined`);
      if (flag('delete')) return { kind: 'filter', name, delete: true };
      const c: VmFilterChange = { kind: 'filter', name, rules: given('rules') ? parseRules(params.rules) : [] };
      if (given('filters')) c.filters = parseFilterRefs(params.filters);
      if (given('priority')) {
        const p = Number(params.priority);
        if (!Number.isInteger(p) || p < -1000 || p > 1000) fail(`priority: ${JSON.stringify(params.priority)} is not a whole number from -1000 to 1000`);
        c.priority = p;
      }
      return c;
    }
    if (Object.keys(params).some((k) => given(k))) fail('vm-filter-set needs mac (a NIC\'s set) or filter (a named filter); without either it only lists');
    return { kind: 'list' };
  } catch (e) {
    if (e instanceof BadValue) fail(e.message);
    throw e;
  }
}

/** A bridge port name as nft takes it: an interface name, no wildcard. */
function parsePort(text: string): string {
  const refuse = () => new BadValue(`port: ${JSON.stringify(text)} is not a bridge port name (1-15 characters, no wildcard, quotes or spaces)`);
  if (text.includes('*')) throw refuse();
  try {
    return checkIfname('port', parseIfName(text));
  } catch (e) {
    if (e instanceof NftValidationError || e instanceof BadValue) throw refuse();
    throw e;
  }
}

/** Which tier a NIC change addresses: the request's network, else the one whose NIC has the MAC. */
function tierFor(m: RouterModel, req: VmFilterSetRequest, mac: string): string {
  if (req.networkId !== undefined) {
    if (!m.tiers[req.networkId]) throw new UsageError(`network ${req.networkId} has no guest tier on router ${m.namespace} (run implement-network first)`, 'network_id');
    return req.networkId;
  }
  const hit = knownNics(m).find((n) => n.mac === mac)?.networkId
    ?? Object.entries(vmfilterState(m).nics).find(([, nics]) => nics[mac])?.[0];
  if (!hit) throw new UsageError(`no network of router ${m.namespace} knows NIC ${mac}; give --network-id`, 'network_id');
  return hit;
}

/** Named filters that reference `name` (by filter, or by a NIC's set). */
function referrers(s: VmFilterState, name: string): string[] {
  const out: string[] = [];
  for (const [n, f] of Object.entries(s.filters)) if (f.filters.includes(name)) out.push(`filter ${n}`);
  for (const [id, nics] of Object.entries(s.nics)) for (const [mac, r] of Object.entries(nics)) if (r.filters?.includes(name)) out.push(`NIC ${mac} (network ${id})`);
  return out;
}

/** Apply a change to the model (validated first: nothing is changed on bad input). */
export function applyVmFilterChange(m: RouterModel, req: VmFilterSetRequest): void {
  const c = req.change;
  if (c.kind === 'list') return;
  if (!Object.keys(m.tiers).length) throw new UsageError(`router ${m.namespace} has no guest network (implement-network first)`, 'network_id');
  const s = vmfilterState(m);
  if (c.kind === 'filter') {
    if (c.delete) {
      if (!s.filters[c.name]) throw new UsageError(`action-params: filter ${JSON.stringify(c.name)} is not defined`, 'action-params');
      const users = referrers(s, c.name);
      if (users.length) throw new UsageError(`action-params: filter ${JSON.stringify(c.name)} is referenced by ${users.join(', ')}`, 'action-params');
      delete s.filters[c.name];
    } else {
      if (!s.filters[c.name] && Object.keys(s.filters).length >= LIMITS.filters) throw new UsageError(`action-params: at most ${LIMITS.filters} named filters`, 'action-params');
      const f: NamedFilter = { priority: c.priority ?? s.filters[c.name]?.priority ?? 0, rules: c.rules ?? [], filters: c.filters ?? [] };
      s.filters[c.name] = f;
    }
  } else {
    const id = tierFor(m, req, c.mac);
    // a rule set on a network whose segment is not filtered would be kept and never enforced
    if (!c.clear && !tierFiltered(s.tiers[id])) {
      throw new UsageError(`network ${id} is not filtered: network-extension-details "vm-filter": "true" turns its guest-segment filter on`, 'network-extension-details.vm-filter');
    }
    editNic(s, id, c.mac, (r) => {
      if (c.clear) {
        delete r.rules;
        delete r.filters;
        delete r.port;
        return;
      }
      if (c.rules !== undefined) { if (c.rules.length) r.rules = c.rules; else delete r.rules; }
      if (c.filters !== undefined) { if (c.filters.length) r.filters = c.filters; else delete r.filters; }
      if (c.port === null) delete r.port;
      else if (c.port !== undefined) r.port = c.port;
    });
  }
  // every reference of every set must resolve, without cycles (a redefinition may have introduced one)
  try {
    checkFilterGraph(s.filters, [
      ...Object.entries(s.filters).map(([n, f]) => ({ refs: f.filters, where: `filter ${n}` })),
      ...Object.entries(s.nics).flatMap(([, nics]) => Object.entries(nics).map(([mac, r]) => ({ refs: r.filters ?? [], where: `NIC ${mac}` }))),
    ]);
  } catch (e) {
    if (e instanceof BadValue) throw new UsageError(`action-params: ${e.message}`, 'action-params');
    throw e;
  }
  setVmfilterState(m, s);
}

// ── rows ────────────────────────────────────────────────────────────────────────────────────────────

const addrText = (f: AddrField) => ('cidr' in f ? f.cidr : f.variable);
const macText = (f: MacField) => ('mac' in f ? f.mac : f.variable);

/** One rule as a readable line (`500 in accept tcp dstport 22`). */
export function ruleText(r: VmRule): string {
  const parts = [String(r.priority), r.direction, r.action, r.protocol];
  if (r.srcmac) parts.push(`srcmac ${macText(r.srcmac)}`);
  if (r.dstmac) parts.push(`dstmac ${macText(r.dstmac)}`);
  if (r.srcip) parts.push(`srcip ${addrText(r.srcip)}`);
  if (r.dstip) parts.push(`dstip ${addrText(r.dstip)}`);
  const port = (p: [number, number]) => (p[0] === p[1] ? String(p[0]) : `${p[0]}-${p[1]}`);
  if (r.srcport) parts.push(`srcport ${port(r.srcport)}`);
  if (r.dstport) parts.push(`dstport ${port(r.dstport)}`);
  if (r.type !== undefined) parts.push(`type ${r.type}`);
  if (r.code !== undefined) parts.push(`code ${r.code}`);
  if (r.established) parts.push('established');
  return parts.join(' ');
}

/** Every NIC set or binding and every named filter of a router. */
export function vmFilterRows(m: RouterModel | undefined): VmFilterRow[] {
  if (!m) return [];
  const s = vmfilterState(m);
  const known = new Map(knownNics(m).map((n) => [n.mac, n]));
  const rows: VmFilterRow[] = [];
  for (const [id, nics] of Object.entries(s.nics).sort(([a], [b]) => compareText(a, b))) {
    for (const [mac, r] of Object.entries(nics).sort(([a], [b]) => compareText(a, b))) {
      if (!r.rules?.length && !r.filters?.length && r.port === undefined) continue;
      const lines = [...(r.filters ?? []).map((f) => `filter ${f}`), ...(r.rules ?? []).map(ruleText)];
      rows.push({ kind: 'nic', name: mac, network: id, port: r.port ?? '', state: known.has(mac) ? 'bound' : 'not known (no prepare-nic / DHCP entry)', rules: lines.join('\n') });
    }
  }
  for (const [name, f] of Object.entries(s.filters).sort(([a], [b]) => compareText(a, b))) {
    const lines = [...f.filters.map((x) => `filter ${x}`), ...f.rules.map(ruleText)];
    rows.push({ kind: 'filter', name, network: '', port: '', state: `priority ${f.priority}`, rules: lines.join('\n') });
  }
  return rows;
}

/** The library call: apply the change in one engine change and return the router's rows. */
export async function vmFilterSet(engine: RouterEngine, req: VmFilterSetRequest): Promise<VmFilterRow[]> {
  if (req.change.kind === 'list') return vmFilterRows(engine.storedModel(req.namespace));
  const m = await engine.changeFor({ ...req, command: 'custom-action vm-filter-set' }, (x) => applyVmFilterChange(x, req));
  return vmFilterRows(m);
}
