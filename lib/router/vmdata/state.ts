/**
 * The metadata module's slot in the router model. Only names and blob ids live here, never contents: the
 * model is printed by dump-config and passwords, user data and keys must not be. Contents are in the blob
 * store (blobs.ts), named by a keyed hash so that equal contents are stored once.
 */
import type { RouterModel } from '../model.js';
import { moduleState, setModuleState } from '../router-module.js';
import { dhcpState } from '../dhcp/state.js';

export const VMDATA = 'vmdata';

export interface VmRecord {
  /** Network (tier) id the VM's address belongs to. */
  tier: string;
  /** The NIC's MAC when a prepare-nic/restore told us; a different MAC for the same IP means another VM. */
  mac?: string;
  /** Served path below the VM's directory ("user-data", "meta-data/<name>") → blob id. */
  files: Record<string, string>;
  /** Pending password: blob id and a per-router serial (a delivered serial is never served again). */
  password?: { blob: string; serial: number };
}

/**
 * A NIC as prepare-nic (or restore-network) described it, kept whether or not the address has data yet —
 * CloudStack prepares a NIC before it sends the VM's rows, and on a tier without DHCP nothing else records
 * the NIC's MAC (the requester check and network_data.json need it).
 */
export interface NicRecord {
  tier: string;
  mac: string;
  defaultNic?: boolean;
  hostname?: string;
  ip6?: string;
}

export interface VmDataState {
  /** By the VM's IPv4 address on the tier (what the guest's requests come from). */
  vms: Record<string, VmRecord>;
  /** Last password serial handed out. */
  serial: number;
  /** Prepared NICs by IPv4 address (prepare-nic, restore-network; release-nic drops them). */
  nics?: Record<string, NicRecord>;
}

export function vmdataState(m: RouterModel): VmDataState {
  const s = moduleState<VmDataState>(m, VMDATA);
  if (!s) return { vms: {}, serial: 0 };
  return { vms: { ...s.vms }, serial: s.serial ?? 0, ...(s.nics && Object.keys(s.nics).length ? { nics: { ...s.nics } } : {}) };
}

export function setVmdataState(m: RouterModel, s: VmDataState): void {
  const { nics, ...rest } = s;
  const keep: VmDataState = nics && Object.keys(nics).length ? { ...rest, nics } : rest;
  setModuleState(m, VMDATA, Object.keys(keep.vms).length === 0 && !keep.nics ? undefined : keep);
}

/** Blob ids a model refers to. */
export function referencedBlobs(m: RouterModel | undefined): Set<string> {
  const out = new Set<string>();
  if (!m) return out;
  for (const r of Object.values(vmdataState(m).vms)) {
    for (const id of Object.values(r.files)) out.add(id);
    if (r.password) out.add(r.password.blob);
  }
  return out;
}

/** A tier leaves the router: the data and pending passwords of its VMs go with it, and its prepared NICs. */
export function forgetVmdataTier(m: RouterModel, networkId: string): void {
  const s = vmdataState(m);
  const mine = Object.keys(s.vms).filter((ip) => s.vms[ip].tier === networkId);
  const nics = Object.keys(s.nics ?? {}).filter((ip) => s.nics![ip].tier === networkId);
  if (!mine.length && !nics.length) return;
  for (const ip of mine) delete s.vms[ip];
  for (const ip of nics) delete s.nics![ip];
  setVmdataState(m, s);
}

/**
 * The MAC a VM's data belong to (only a requester the router sees with it is answered): the one prepare-nic
 * or restore-network gave with the data, else the NIC prepare-nic described at the address (before the data
 * came), else the tier's DHCP reservation of the address (add-dhcp-entry, prepare-nic). undefined: no MAC is
 * known for the address, which is then served by address alone.
 */
export function recordedMac(m: RouterModel, ip: string, r: VmRecord): string | undefined {
  if (r.mac) return r.mac;
  const nic = moduleState<VmDataState>(m, VMDATA)?.nics?.[ip];
  if (nic && nic.tier === r.tier) return nic.mac;
  for (const [mac, h] of Object.entries(dhcpState(m).tiers[r.tier]?.hosts ?? {})) if (h.ip === ip) return mac;
  return undefined;
}

/** Blob ids a model needs on disk: files, and pending passwords not yet acknowledged (`delivered(ip, serial)`). */
export function neededBlobs(m: RouterModel, delivered: (ip: string, serial: number) => boolean): Set<string> {
  const out = new Set<string>();
  for (const [ip, r] of Object.entries(vmdataState(m).vms)) {
    for (const id of Object.values(r.files)) out.add(id);
    if (r.password && !delivered(ip, r.password.serial)) out.add(r.password.blob);
  }
  return out;
}
