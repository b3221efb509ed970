/**
 * RouterModule "vmdata": the metadata (port 80) and password (port 8080) service of a router; the save-*
 * commands, restore-network and the NIC hooks prepare-nic/release-nic (their changes in mutators.ts).
 *
 * reconcile: (1) the served tree `<stateDir>/vmdata/<ns>/vms/<ip>/…` is made to match the model, as hard
 * links to blobs (nothing copied; a pending password appears as password-<serial> unless the guest already
 * acknowledged that serial), with the MAC the data belong to in `mac`; unreferenced blobs are collected;
 * (2) `listen.json` names the router addresses
 * to serve on (the extension IP of every implemented tier with VM data); (3) the host's one metadata daemon
 * is asked over its control socket to converge this router's listeners, and started first if it is not
 * running — so a daemon that died is back with the next command. A failure (socket cannot be bound, daemon
 * does not start) fails the command; the engine then re-applies the previous state.
 *
 * teardown (router idle: shutdown/destroy): the daemon closes the router's sockets and connections before the
 * namespace is deleted (an open socket would keep the deleted namespace alive). The data stay for a later
 * re-implement (shutdown); data of routers whose state file vanished otherwise are removed then.
 *
 * committed (state saved or deleted): blobs no stored state needs any more are deleted, a destroyed router's
 * directory goes whole. (forgetTier drops a destroyed VPC tier's VMs from the state in the same change.)
 */
import {
  existsSync, linkSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, readFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import type { RouterModule, ReconcileContext } from '../router-module.js';
import type { RouterModel } from '../model.js';
import { SystemError } from '../../util/errors.js';
import { TEMP_MARK, writeFileAtomic } from '../../util/atomic-file.js';
import { isIpv4 } from '../../util/ip.js';
import { libc } from '../../sys/index.js';
import {
  DELIVERED_PREFIX, FILE_NAME_RE, MAC_FILE, NS_NAME_RE, PASSWORD_PREFIX, listenFile, routerDir, vmDir, vmdataRoot, vmsDir,
  type ListenSpec,
} from '../../services/metadata/layout.js';
import { syncRouter } from '../../services/metadata/client.js';
import { MetadataError } from '../../services/metadata/errors.js';
import { blobPath, collectBlobs } from './blobs.js';
import { VMDATA, forgetVmdataTier, neededBlobs, recordedMac, referencedBlobs, vmdataState, type VmRecord } from './state.js';
import * as mut from './mutators.js';
import { dhcpPrepareNic, dhcpReleaseNic, dhcpRestoreNetwork } from '../dhcp/mutators.js';
import type { CommandEnv, Mutation } from '../command-table.js';

/** Tunables (tests shorten the daemon's idle exit). */
export const vmdataSettings = {
  /** How long the daemon lingers with nothing to serve (ms); negative: forever. */
  daemonIdleExitMs: 5000,
  /** Budget for one control request to the daemon (ms). */
  daemonTimeoutMs: 15_000,
};

const inode = (p: string): number | undefined => statSync(p, { throwIfNoEntry: false })?.ino;

/** Make `target` a hard link of `source` (atomically replacing whatever is there). */
function linkInto(source: string, target: string): void {
  const src = inode(source);
  if (src === undefined) throw new SystemError(`metadata store: blob ${source} is missing`);
  if (inode(target) === src) return;
  const tmp = join(dirname(target), `.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  linkSync(source, tmp);
  renameSync(tmp, target);
}

function removeFile(p: string): void {
  try { unlinkSync(p); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
}

/** Replace `p` by `text` (crash-safe, 0600), unless it already holds it. */
function writeReplacing(p: string, text: string, what: string): void {
  if (existsSync(p) && readFileSync(p, 'utf8') === text) return;
  writeFileAtomic(p, text, { what });
}

/**
 * One VM's served directory from its record. The recorded MAC goes first: data never appear in a directory
 * that would be served by address alone when a MAC is known.
 */
function materializeVm(stateDir: string, ns: string, ip: string, r: VmRecord, mac: string | undefined): void {
  const dir = vmDir(stateDir, ns, ip);
  mkdirSync(join(dir, 'meta-data'), { recursive: true, mode: 0o700 });
  if (mac) writeReplacing(join(dir, MAC_FILE), `${mac}\n`, `recorded MAC of ${ip} in ${ns}`);
  const wanted = new Set(Object.keys(r.files));
  for (const [rel, id] of Object.entries(r.files)) linkInto(blobPath(stateDir, ns, id), join(dir, rel));
  if (!wanted.has('user-data')) removeFile(join(dir, 'user-data'));
  for (const name of readdirSync(join(dir, 'meta-data'))) {
    if (!wanted.has(`meta-data/${name}`)) removeFile(join(dir, 'meta-data', name));
  }
  const serial = r.password?.serial;
  const delivered = serial !== undefined && existsSync(join(dir, `${DELIVERED_PREFIX}${serial}`));
  for (const name of readdirSync(dir)) {
    if (name.startsWith(PASSWORD_PREFIX) && !(name === `${PASSWORD_PREFIX}${serial}` && !delivered)) removeFile(join(dir, name));
    if (name.startsWith(DELIVERED_PREFIX) && name !== `${DELIVERED_PREFIX}${serial}`) removeFile(join(dir, name));
    if (name.includes(TEMP_MARK)) removeFile(join(dir, name));
  }
  if (r.password && !delivered) {
    const blob = blobPath(stateDir, ns, r.password.blob);
    // a pending password's blob is only ever deleted after its acknowledgement (committed): its marker was lost
    if (existsSync(blob)) linkInto(blob, join(dir, `${PASSWORD_PREFIX}${serial}`));
    else writeReplacing(join(dir, `${DELIVERED_PREFIX}${serial}`), '', `delivery marker of ${ip} in ${ns}`);
  }
  if (!mac) removeFile(join(dir, MAC_FILE));
}

/** The whole served tree of a router from its model (records of tiers that no longer exist are not served). */
export function materialize(stateDir: string, m: RouterModel): void {
  const ns = m.namespace;
  const vms = Object.entries(vmdataState(m).vms).filter(([ip, r]) => isIpv4(ip) && m.tiers[r.tier]);
  const root = vmsDir(stateDir, ns);
  if (vms.length === 0) {
    if (existsSync(root)) rmSync(root, { recursive: true, force: true });
    return;
  }
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const keep = new Set(vms.map(([ip]) => ip));
  for (const name of readdirSync(root)) if (!keep.has(name)) rmSync(join(root, name), { recursive: true, force: true });
  for (const [ip, r] of vms) materializeVm(stateDir, ns, ip, r, recordedMac(m, ip, r));
}

/** What the served tree depends on besides the slot: the tiers, and the MACs the DHCP module records. */
function treeKey(m: RouterModel | undefined): string {
  if (!m) return '';
  const macs = Object.entries(vmdataState(m).vms).map(([ip, r]) => [ip, recordedMac(m, ip, r) ?? null]);
  return JSON.stringify([m.extra?.[VMDATA] ?? null, Object.keys(m.tiers).sort(), macs]);
}

/** Blobs to keep on disk for `m` (password blobs of acknowledged passwords are not needed any more). */
function blobsToKeep(stateDir: string, m: RouterModel): Set<string> {
  return neededBlobs(m, (ip, serial) => existsSync(join(vmDir(stateDir, m.namespace, ip), `${DELIVERED_PREFIX}${serial}`)));
}

/** Router addresses to serve on: the extension IP of each implemented, routed tier that has VM data. */
export function listenAddresses(m: RouterModel): string[] {
  const tiers = new Set(Object.values(vmdataState(m).vms).map((r) => r.tier));
  const out = new Set<string>();
  for (const t of Object.values(m.tiers)) {
    if (t.implemented && t.guestType !== 'l2' && tiers.has(t.networkId) && isIpv4(t.extensionIp)) out.add(t.extensionIp);
  }
  return [...out].sort();
}

/** Write (or remove) listen.json; returns whether a daemon may hold listeners for this router. */
function writeListen(stateDir: string, ns: string, addresses: string[]): boolean {
  const p = listenFile(stateDir, ns);
  const had = existsSync(p);
  if (addresses.length === 0) {
    removeFile(p);
    return had;
  }
  const spec: ListenSpec = { namespace: ns, addresses };
  mkdirSync(dirname(p), { recursive: true, mode: 0o700 });
  writeReplacing(p, `${JSON.stringify(spec)}\n`, `metadata listen file ${p}`);
  return true;
}

async function syncDaemon(stateDir: string, ns: string, start: boolean): Promise<void> {
  try {
    const st = await syncRouter(stateDir, ns, { start, timeoutMs: vmdataSettings.daemonTimeoutMs, idleExitMs: vmdataSettings.daemonIdleExitMs });
    if (start && st.listening.length === 0) throw new MetadataError('E_LISTEN', `metadata daemon serves nothing in ${ns}`);
  } catch (e) {
    throw SystemError.from(e, `metadata service of ${ns}`);
  }
}

/**
 * Remove the data of routers whose model is gone (destroyed). Each is checked under that router's lock,
 * taken without waiting: a router in use is left for next time.
 */
export function collectOrphans(stateDir: string): string[] {
  const root = vmdataRoot(stateDir);
  if (!existsSync(root)) return [];
  const removed: string[] = [];
  for (const ns of readdirSync(root)) {
    if (!NS_NAME_RE.test(ns) || existsSync(join(stateDir, 'routers', `${ns}.json`))) continue;
    const lockDir = join(stateDir, 'locks');
    mkdirSync(lockDir, { recursive: true, mode: 0o700 });
    const fd = libc.open(join(lockDir, `${ns}.lock`), libc.O_RDWR | libc.O_CREAT, 0o600);
    try {
      if (!libc.tryFlock(fd, libc.LOCK_EX)) continue;
      if (existsSync(join(stateDir, 'routers', `${ns}.json`)) || existsSync(listenFile(stateDir, ns))) continue;
      rmSync(routerDir(stateDir, ns), { recursive: true, force: true });
      removed.push(ns);
    } finally {
      libc.close(fd);
    }
  }
  return removed;
}

const orphansCollected = new Set<string>();


/** A metadata mutator as a command's change: the limits are read (and checked) before the router's lock. */
const withEnv = <R>(fn: (m: RouterModel, req: R, env: mut.VmDataEnv) => void) => (req: R, { ctx }: CommandEnv): Mutation => {
  const env = mut.vmdataEnv(ctx);
  return (m) => fn(m, req, env);
};

export const vmdataModule: RouterModule = {
  name: VMDATA,
  // a shared network gets no implement-network: these commands implement its router when it has none; the
  // NIC hooks and restore-network change the DHCP/DNS module's part of the VM in the same change
  commands: {
    'save-vm-data': { shared: 'implement', change: withEnv(mut.saveVmData) },
    'save-userdata': { shared: 'implement', change: withEnv(mut.saveUserdata) },
    'save-password': { shared: 'implement', change: withEnv(mut.savePassword) },
    'save-sshkey': { shared: 'implement', change: withEnv(mut.saveSshkey) },
    'save-hypervisor-hostname': { shared: 'implement', change: withEnv(mut.saveHypervisorHostname) },
    'prepare-nic': {
      ifRouterExists: true,
      shared: 'ifComplete',
      // the metadata step first: it compares with the MAC the DHCP reservation held before this NIC's
      change: withEnv((m, req, env) => { mut.prepareNicVmData(m, req, env); dhcpPrepareNic(m, req); }),
    },
    'release-nic': {
      ifRouterExists: true,
      change: withEnv((m, req, env) => { dhcpReleaseNic(m, req); mut.releaseNicVmData(m, req, env); }),
    },
    'restore-network': { shared: 'implement', change: withEnv(mut.restoreNetworkWith(dhcpRestoreNetwork)) },
  },
  forgetTier: forgetVmdataTier,

  async reconcile(m: RouterModel, previous: RouterModel | undefined, ctx: ReconcileContext): Promise<void> {
    const { stateDir } = ctx;
    const ns = m.namespace;
    const hasData = Object.keys(vmdataState(m).vms).length > 0;
    if (!hasData && !existsSync(routerDir(stateDir, ns))) return; // never had metadata: nothing at all to do
    // the served tree only changes with the slot, tiers or recorded MACs; a restore (no previous) rebuilds it
    if (!previous || treeKey(previous) !== treeKey(m) || (hasData && !existsSync(vmsDir(stateDir, ns)))) {
      materialize(stateDir, m);
      const keep = referencedBlobs(m);
      for (const id of referencedBlobs(previous)) keep.add(id); // the engine may re-apply `previous` on failure
      collectBlobs(stateDir, ns, keep);
    }
    const addresses = listenAddresses(m);
    const mayListen = writeListen(stateDir, ns, addresses);
    if (addresses.length > 0) await syncDaemon(stateDir, ns, true);
    else if (mayListen) await syncDaemon(stateDir, ns, false);
    // a restore (no previous state) is a good moment to drop data of destroyed routers; once per process
    if (!previous && !orphansCollected.has(stateDir)) {
      orphansCollected.add(stateDir);
      collectOrphans(stateDir);
    }
  },

  async teardown(m: RouterModel, ctx: ReconcileContext): Promise<void> {
    const { stateDir } = ctx;
    if (writeListen(stateDir, m.namespace, [])) await syncDaemon(stateDir, m.namespace, false);
    collectOrphans(stateDir);
  },

  /**
   * Secrets do not outlive what needs them: once the state is saved, blobs no stored state refers to (a
   * replaced or acknowledged password, a released VM's data, a destroyed tier's) are deleted; a destroyed
   * router's whole directory goes (the daemon was told to close it in teardown, and it keeps no copies).
   */
  committed(ns: string, m: RouterModel | undefined, stateDir: string): void {
    const dir = routerDir(stateDir, ns);
    if (!existsSync(dir)) return;
    if (!m) {
      rmSync(dir, { recursive: true, force: true });
      return;
    }
    collectBlobs(stateDir, ns, blobsToKeep(stateDir, m));
    // nothing left to serve: no empty directories either
    if (Object.keys(vmdataState(m).vms).length === 0 && !existsSync(listenFile(stateDir, ns))) rmSync(dir, { recursive: true, force: true });
  },
};

/** For tests: the names of the files served to one VM (relative to its directory). */
export function servedFiles(stateDir: string, ns: string, ip: string): string[] {
  const dir = vmDir(stateDir, ns, ip);
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'meta-data') for (const f of readdirSync(join(dir, name))) { if (FILE_NAME_RE.test(f)) out.push(`meta-data/${f}`); }
    else if (FILE_NAME_RE.test(name) && name !== MAC_FILE) out.push(name);
  }
  return out.sort();
}
