/**
 * The guest-segment filter's slot in the router model (`model.extra.vmfilter`): per network, whether unknown MACs
 * are denied (strict); per NIC (by MAC) what only the filter keeps — an explicit bridge-port binding and the NIC's
 * own rule set —; the router's named filters; the NICs' run counters. Which NICs exist, and their addresses, come
 * from the DHCP reservations and the metadata module's prepared NICs (nics.ts). Rule sets are kept across
 * release-nic (a stopped VM keeps its filter, as libvirt keeps a domain's filterref); they are compiled only while
 * the NIC is known.
 */
import type { RouterModel } from '../model.js';
import { moduleState, setModuleState } from '../router-module.js';
import type { NamedFilter, VmRule } from './rules.js';

export const VMFILTER = 'vmfilter';

export interface NicRecord {
  /** Explicit bridge-port binding (vm-filter-set `port`): frames with this MAC only from that port. */
  port?: string;
  /** The NIC's own rules and referenced named filters (vm-filter-set). */
  rules?: VmRule[];
  filters?: string[];
}

export interface TierPolicy {
  /** network-extension-details vm-filter=true: the network's guest segment is filtered (off by default). */
  enabled?: true;
  /** network-extension-details vm-filter-strict=true: frames from unknown MACs are dropped (implies enabled). */
  strict?: true;
}

/** Is the network's guest segment filtered? */
export const tierFiltered = (p: TierPolicy | undefined): boolean => p?.enabled === true || p?.strict === true;

export interface VmFilterState {
  tiers: Record<string, TierPolicy>;
  /** networkId → MAC → record. */
  nics: Record<string, Record<string, NicRecord>>;
  /** Named filters of the router, by name. */
  filters: Record<string, NamedFilter>;
  /**
   * MAC → run counter, bumped by every prepare-nic and release-nic of a known NIC: a new run of the VM (a new
   * tap) — the bridge ports the kernel learned for its previous run are forgotten by that command's reconcile.
   */
  runs: Record<string, number>;
}

export function vmfilterState(m: RouterModel): VmFilterState {
  const s = moduleState<Partial<VmFilterState>>(m, VMFILTER);
  return { tiers: { ...(s?.tiers ?? {}) }, nics: { ...(s?.nics ?? {}) }, filters: { ...(s?.filters ?? {}) }, runs: { ...(s?.runs ?? {}) } };
}

const recordIsEmpty = (r: NicRecord): boolean => r.port === undefined && !r.rules?.length && !r.filters?.length;

/** Store the slot, dropping empty records and networks the router no longer has. */
export function setVmfilterState(m: RouterModel, s: VmFilterState): void {
  for (const [id, nics] of Object.entries(s.nics)) {
    for (const [mac, r] of Object.entries(nics)) if (recordIsEmpty(r)) delete nics[mac];
    if (!m.tiers[id] || !Object.keys(nics).length) delete s.nics[id];
  }
  for (const [id, t] of Object.entries(s.tiers)) if (!m.tiers[id] || !tierFiltered(t)) delete s.tiers[id];
  const empty = [s.tiers, s.nics, s.filters, s.runs].every((x) => !Object.keys(x).length);
  setModuleState(m, VMFILTER, empty ? undefined : s);
}

/** Edit one NIC's record (created on demand; copied, so the previous model stays as it was). */
export function editNic(s: VmFilterState, networkId: string, mac: string, fn: (r: NicRecord) => void): void {
  const nics = { ...(s.nics[networkId] ?? {}) };
  const r: NicRecord = { ...(nics[mac] ?? {}) };
  fn(r);
  nics[mac] = r;
  s.nics[networkId] = nics;
}
