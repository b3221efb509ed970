/**
 * Command mutators of the metadata module, for `engine.change(ns, init, (m) => …)`. Each one checks its whole
 * input first (UsageError, nothing stored), then writes the new contents to the blob store and records their
 * ids in the model; the module's reconcile then makes the served files and the daemon's listeners match.
 * A blob written for a command that later fails is unreferenced and collected by the next reconcile.
 */
import type { DhcpRestore } from '../dhcp/mutators.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { RouterModel } from '../model.js';
import type * as T from '../contract/types.js';
import { UsageError } from '../../util/errors.js';
import { cidrContains, parseCidr } from '../../util/ip.js';
import { DELIVERED_PREFIX, vmDir } from '../../services/metadata/layout.js';
import { blobIdOf, putBlob } from './blobs.js';
import {
  DEFAULT_LIMITS, checkValue, parseRestoreData, parseVmData, type ParsedRestoreData, type ParsedVmData, type VmDataLimits,
} from './entries.js';
import { recordedMac, setVmdataState, vmdataState, type NicRecord, type VmDataState, type VmRecord } from './state.js';

export interface VmDataEnv {
  stateDir: string;
  limits: VmDataLimits;
  /** A plan (--dry-run): blobs are named, not stored (no secret reaches the disk). */
  dryRun?: boolean;
}

/** A blob of the router's VM data: stored (putBlob), or in a plan only named. */
const storeBlob = (env: VmDataEnv, ns: string, content: Buffer): string =>
  (env.dryRun ? blobIdOf(env.stateDir, content) : putBlob(env.stateDir, ns, content));

/** Where the user-data limit can be configured (CloudStack's own setting name), and its environment twin. */
export const USERDATA_LIMIT_DETAIL = 'vm.userdata.max.length';
export const USERDATA_LIMIT_ENV = 'NETNS_ROUTER_USERDATA_MAX_LENGTH';

/**
 * The mutators' environment for a command: state directory and limits. The user-data limit comes from the
 * physical-network extension detail `vm.userdata.max.length`, else NETNS_ROUTER_USERDATA_MAX_LENGTH, else
 * 32768 (base64 characters, CloudStack's default).
 */
export function vmdataEnv(ctx: { settings: { stateDir: string; dryRun?: 'text' | 'json' }; details?: { physicalNetwork?: Record<string, unknown> } }): VmDataEnv {
  const fromDetail = ctx.details?.physicalNetwork?.[USERDATA_LIMIT_DETAIL];
  const raw = fromDetail ?? process.env[USERDATA_LIMIT_ENV];
  let userdataMaxBase64 = DEFAULT_LIMITS.userdataMaxBase64;
  if (raw !== undefined && raw !== null && raw !== '') {
    const n = Number(raw);
    const where = fromDetail !== undefined ? `physical-network-extension-details.${USERDATA_LIMIT_DETAIL}` : USERDATA_LIMIT_ENV;
    if (!Number.isInteger(n) || n < 4 || n > 16 * 1024 * 1024) throw new UsageError(`${where}: expected a whole number of base64 characters (4 to 16777216)`, where);
    userdataMaxBase64 = n;
  }
  return { stateDir: ctx.settings.stateDir, limits: { ...DEFAULT_LIMITS, userdataMaxBase64 }, ...(ctx.settings.dryRun ? { dryRun: true } : {}) };
}

function requireTier(m: RouterModel, networkId: string): void {
  if (!m.tiers[networkId]) {
    throw new UsageError(`network ${networkId} is not implemented on router ${m.namespace} (implement-network first)`, 'network_id');
  }
}

/**
 * Drop passwords the guest has acknowledged (the daemon renamed password-N to delivered-N) and records of
 * tiers that no longer exist. Run at the start of every mutation so the model follows what the daemon did.
 */
function prune(m: RouterModel, s: VmDataState, env: VmDataEnv): void {
  for (const [ip, n] of Object.entries(s.nics ?? {})) if (!m.tiers[n.tier]) delete s.nics![ip];
  for (const [ip, r] of Object.entries(s.vms)) {
    if (!m.tiers[r.tier]) {
      delete s.vms[ip];
      continue;
    }
    if (r.password && existsSync(join(vmDir(env.stateDir, m.namespace, ip), `${DELIVERED_PREFIX}${r.password.serial}`))) {
      const { password: _gone, ...rest } = r;
      s.vms[ip] = rest;
    }
  }
}

const isEmpty = (r: VmRecord) => Object.keys(r.files).length === 0 && !r.password && !r.mac;

/** The record for `ip` on tier `tier` (a fresh one if the address now belongs to another tier). */
function recordFor(s: VmDataState, ip: string, tier: string): VmRecord {
  const cur = s.vms[ip];
  const r: VmRecord = cur && cur.tier === tier ? { ...cur, files: { ...cur.files } } : { tier, files: {} };
  s.vms[ip] = r;
  return r;
}

function apply(m: RouterModel, r: VmRecord, s: VmDataState, d: ParsedVmData, env: VmDataEnv): void {
  for (const [path, content] of d.files) {
    if (content === null) delete r.files[path];
    else r.files[path] = storeBlob(env, m.namespace, content);
  }
  if (d.password !== undefined) {
    s.serial += 1;
    r.password = { blob: storeBlob(env, m.namespace, Buffer.from(d.password, 'utf8')), serial: s.serial };
  }
}

function commit(m: RouterModel, s: VmDataState): void {
  for (const [ip, r] of Object.entries(s.vms)) if (isEmpty(r)) delete s.vms[ip];
  setVmdataState(m, s);
}

/** Change one VM's data: check first, then store. */
function changeVm(m: RouterModel, networkId: string, ip: string, env: VmDataEnv, d: ParsedVmData): void {
  requireTier(m, networkId);
  const s = vmdataState(m);
  prune(m, s, env);
  apply(m, recordFor(s, ip, networkId), s, d, env);
  commit(m, s);
}

/** save-vm-data: the VM's whole set (user data, meta-data entries, password) in one go; merged by file. */
export function saveVmData(m: RouterModel, req: T.SaveVmDataRequest, env: VmDataEnv): void {
  const d = parseVmData(req.vmData.value, req.vmData.source, env.limits);
  changeVm(m, req.networkId, req.ip, env, d);
}

/** save-userdata: the user data alone (empty → an empty user-data, like upstream). */
export function saveUserdata(m: RouterModel, req: T.SaveUserdataRequest, env: VmDataEnv): void {
  const content = checkValue('userdata', req.userdata, 'userdata', env.limits);
  changeVm(m, req.networkId, req.ip, env, { files: new Map([['user-data', content]]) });
}

/** save-password: a new pending password (empty → nothing, like upstream). */
export function savePassword(m: RouterModel, req: T.SavePasswordRequest, env: VmDataEnv): void {
  const pw = req.password ?? '';
  checkValue('password', pw, 'password', env.limits);
  if (pw === '') {
    requireTier(m, req.networkId);
    return;
  }
  changeVm(m, req.networkId, req.ip, env, { files: new Map(), password: pw });
}

/** save-sshkey: meta-data/public-keys (empty → removed). */
export function saveSshkey(m: RouterModel, req: T.SaveSshkeyRequest, env: VmDataEnv): void {
  const b = checkValue('entry', req.sshkey, 'sshkey', env.limits);
  changeVm(m, req.networkId, req.ip, env, { files: new Map([['meta-data/public-keys', b.length ? b : null]]) });
}

/** save-hypervisor-hostname: meta-data/hypervisor-host-name (CloudStack's entry name). */
export function saveHypervisorHostname(m: RouterModel, req: T.SaveHypervisorHostnameRequest, env: VmDataEnv): void {
  const b = Buffer.from(req.hypervisorHostname, 'utf8');
  changeVm(m, req.networkId, req.ip, env, { files: new Map([['meta-data/hypervisor-host-name', b.length ? b : null]]) });
}

/**
 * prepare-nic, metadata part: nothing when no data are stored for the address. When data are stored under
 * another MAC (the record's, else the DHCP reservation's — so this step runs before prepare-nic's DHCP part)
 * they belonged to a previous VM with this address: they are dropped (a new VM must never see the old one's
 * password or user data). Otherwise the MAC is remembered.
 */
export function prepareNicVmData(m: RouterModel, req: T.PrepareNicRequest, env: VmDataEnv): void {
  if (!req.ip || !m.tiers[req.networkId]) return;
  const s = vmdataState(m);
  prune(m, s, env);
  const cur = s.vms[req.ip];
  if (cur) {
    const known = recordedMac(m, req.ip, cur);
    if (cur.tier !== req.networkId || (known && req.mac && known !== req.mac)) {
      s.vms[req.ip] = { tier: req.networkId, files: {}, ...(req.mac ? { mac: req.mac } : {}) };
    } else if (req.mac) {
      s.vms[req.ip] = { ...cur, mac: req.mac };
    }
  }
  // a NIC outside the tier's subnet (a shared network's secondary range) is not the router's to serve
  const subnet = parseCidr(m.tiers[req.networkId].cidr);
  if (req.mac && subnet && cidrContains(subnet, req.ip)) s.nics = { ...s.nics, [req.ip]: nicRecord(req.networkId, req.mac, req) };
  commit(m, s);
}

/** What a NIC description (prepare-nic, a VM of restore_data) tells about the NIC. */
function nicRecord(tier: string, mac: string, d: { defaultNic?: boolean; hostname?: string; ip6Address?: string }): NicRecord {
  return {
    tier, mac, ...(d.defaultNic !== undefined ? { defaultNic: d.defaultNic } : {}),
    ...(d.hostname ? { hostname: d.hostname } : {}), ...(d.ip6Address ? { ip6: d.ip6Address } : {}),
  };
}

/** release-nic, metadata part: the VM's data and password go (by IP; by MAC when no IP is given). */
export function releaseNicVmData(m: RouterModel, req: T.ReleaseNicRequest, env: VmDataEnv): void {
  const s = vmdataState(m);
  if (Object.keys(s.vms).length === 0 && !s.nics) return;
  prune(m, s, env);
  const ips = req.ip ? [req.ip] : req.mac ? Object.keys(s.vms).filter((ip) => s.vms[ip].mac === req.mac) : [];
  for (const ip of ips) {
    const r = s.vms[ip];
    // the address is now someone else's (another MAC recorded): not this NIC's data
    if (r && !(r.mac && req.mac && r.mac !== req.mac)) delete s.vms[ip];
  }
  for (const [ip, n] of Object.entries(s.nics ?? {})) {
    if (req.ip ? ip === req.ip && !(req.mac && n.mac !== req.mac) : n.mac === req.mac) delete s.nics![ip];
  }
  commit(m, s);
}

/** Parse restore_data once (all of it checked before anything changes). */
export function parseRestore(req: T.RestoreNetworkRequest, env: VmDataEnv): ParsedRestoreData {
  return parseRestoreData(req.restoreData.value, req.restoreData.source, env.limits);
}

/** restore-network's input for the DHCP/DNS module (lib/router/dhcp `dhcpRestoreNetwork`), from the same parse. */
export type RestoreForDhcp = DhcpRestore;

export function restoreForDhcp(req: T.RestoreNetworkRequest, parsed: ParsedRestoreData): RestoreForDhcp {
  const out: RestoreForDhcp = {
    networkId: req.networkId,
    dhcpEnabled: parsed.dhcpEnabled,
    dnsEnabled: parsed.dnsEnabled,
    vms: parsed.vms.map((v) => ({
      ip: v.ip,
      ...(v.mac ? { mac: v.mac } : {}),
      ...(v.hostname !== undefined ? { hostname: v.hostname } : {}),
      ...(v.defaultNic !== undefined ? { defaultNic: v.defaultNic } : {}),
      ...(v.ip6Address !== undefined ? { ip6Address: v.ip6Address } : {}),
    })),
  };
  if (req.gateway) out.gateway = req.gateway;
  if (req.dns) out.dns = req.dns;
  if (req.dns6) out.dns6 = req.dns6;
  if (req.domain) out.domain = req.domain;
  if (req.extensionIp) out.extensionIp = req.extensionIp;
  return out;
}

/**
 * restore-network, metadata part: with userdata_enabled the tier's VMs become exactly the listed ones —
 * each listed VM's files replaced by its vm_data (a VM listed without vm_data keeps what is stored),
 * pending passwords kept (CloudStack does not re-send them), VMs not listed dropped. Without
 * userdata_enabled the stored metadata is left as it is (upstream does the same).
 */
export function restoreNetworkVmData(
  m: RouterModel, req: T.RestoreNetworkRequest, env: VmDataEnv, parsed = parseRestore(req, env), known = knownMacs(m),
): void {
  requireTier(m, req.networkId);
  const s = vmdataState(m);
  prune(m, s, env);
  // the NICs of the tier become exactly the listed ones that have a MAC (with or without user data)
  const nics = Object.fromEntries(Object.entries(s.nics ?? {}).filter(([, n]) => n.tier !== req.networkId));
  const subnet = parseCidr(m.tiers[req.networkId].cidr);
  for (const vm of parsed.vms) if (vm.mac && subnet && cidrContains(subnet, vm.ip)) nics[vm.ip] = nicRecord(req.networkId, vm.mac, vm);
  s.nics = nics;
  if (!parsed.userdataEnabled) {
    commit(m, s);
    return;
  }
  const listed = new Set(parsed.vms.map((v) => v.ip));
  for (const [ip, r] of Object.entries(s.vms)) if (r.tier === req.networkId && !listed.has(ip)) delete s.vms[ip];
  for (const vm of parsed.vms) {
    const cur = s.vms[vm.ip];
    const mac = known.get(vm.ip);
    const sameVm = cur && cur.tier === req.networkId && !(mac && vm.mac && mac !== vm.mac);
    const r: VmRecord = sameVm ? { ...cur, files: vm.data ? {} : { ...cur.files } } : { tier: req.networkId, files: {} };
    if (vm.mac) r.mac = vm.mac;
    s.vms[vm.ip] = r;
    if (vm.data) apply(m, r, s, vm.data, env);
  }
  commit(m, s);
}

/**
 * restore-network as one step: restore_data checked once, then the DHCP/DNS part (`dhcpPart`, e.g.
 * lib/router/dhcp `dhcpRestoreNetwork`) and the metadata part on the same model.
 */
export function restoreNetworkWith(dhcpPart?: (m: RouterModel, r: RestoreForDhcp) => void) {
  return (m: RouterModel, req: T.RestoreNetworkRequest, env: VmDataEnv): void => {
    const parsed = parseRestore(req, env);
    const known = knownMacs(m); // before the DHCP part rewrites the reservations
    dhcpPart?.(m, restoreForDhcp(req, parsed));
    restoreNetworkVmData(m, req, env, parsed, known);
  };
}

/** The MAC each stored VM's data belong to (recordedMac), by address. */
function knownMacs(m: RouterModel): Map<string, string> {
  const out = new Map<string, string>();
  for (const [ip, r] of Object.entries(vmdataState(m).vms)) {
    const mac = recordedMac(m, ip, r);
    if (mac) out.set(ip, mac);
  }
  return out;
}
