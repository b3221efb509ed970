/**
 * RouterModule "vmdata": the metadata (port 80) and password (port 8080) service of a router; the save-*
 * commands, restore-network and the NIC hooks prepare-nic/release-nic (their changes in mutators.ts).
 *
 * reconcile: (1) the served tree `<stateDir>/vmdata/<ns>/vms/<ip>/…` is made to match the model, as hard
 * links to blobs (nothing copied; a pending password appears as password-<serial> unless the guest already
 * acknowledged that serial), with the MAC the data belong to in `mac`; unreferenced blobs are collected;
 * (2) `listen.json` names the router addresses
 * to serve on (the extension IP of every implemented tier with VM data); (3) the host's one metadata daemon
 * is asked (through the engine's kernel, RouterKernel.metadata: the real daemon's control socket, or the fake
 * kernel's in-memory one) to converge this router's listeners, and started first if it is not running — so a
 * daemon that died is back with the next command. A failure (socket cannot be bound, daemon
 * does not start) fails the command; the engine then re-applies the previous state.
 *
 * teardown (router idle: shutdown/destroy): the daemon closes the router's sockets and connections before the
 * namespace is deleted (an open socket would keep the deleted namespace alive). The data stay for a later
 * re-implement (shutdown); data of routers whose state file vanished otherwise are removed then.
 *
 * plan (--dry-run): what reconcile or teardown would do, described without writing or asking anything (plan.ts).
 *
 * committed (state saved or deleted): blobs no stored state needs any more are deleted, a destroyed router's
 * directory goes whole. (forgetTier drops a destroyed VPC tier's VMs from the state in the same change.)
 */
import {
  existsSync, linkSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, readFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { createHash } from 'node:crypto';
import type { RouterModule, ReconcileContext } from '../router-module.js';
import type { RouterModel, TierModel } from '../model.js';
import { SystemError } from '../../util/errors.js';
import { TEMP_MARK, writeFileAtomic } from '../../util/atomic-file.js';
import { isIpv4 } from '../../util/ip.js';
import { libc } from '../../sys/index.js';
import {
  DELIVERED_PREFIX, EC2_TREE_FILE, FILE_NAME_RE, MAC_FILE, META_DATA_JSON, NETWORK_DATA_JSON, NS_NAME_RE, OPENSTACK_DIR,
  OS_PASSWORD_FILE, OWNER_FILE, PASSWORD_PREFIX, blobDir, listenFile, routerDir, vmDir, vmdataRoot, vmsDir, type LinkLocalSpec, type ListenSpec,
} from '../../services/metadata/layout.js';
import { MetadataError } from '../../services/metadata/errors.js';
import type { MetadataControl } from '../../services/metadata/control.js';
import { readListenSpec } from '../../services/metadata/listen-spec.js';
import { diffLines, type PlanStep } from '../plan.js';
import { daemonSteps, nicSteps, vmSteps } from './plan.js';
import { LruMap } from '../../util/lru-map.js';
import { dhcpState } from '../dhcp/state.js';
import { StateStore } from '../state/store.js';
import { blobPath, collectBlobs } from './blobs.js';
import { vmDocuments, type VmDocuments } from './documents.js';
import { VMDATA, forgetVmdataTier, neededBlobs, recordedMac, referencedBlobs, vmdataState, type VmRecord } from './state.js';
import * as mut from './mutators.js';
import { dhcpPrepareNic, dhcpReleaseNic, dhcpRestoreNetwork } from '../dhcp/mutators.js';
import { vmfilterPrepareNic, vmfilterReleaseNic } from '../vmfilter/nics.js';
import type { CommandEnv, Mutation } from '../command-table.js';
import { VM_RECORDS_SCOPE as scope } from '../vm-records-scope.js';
import { ensureLinkLocal, hasIpv6, segmentMtus, tierIfname, wellKnownObjects } from './well-known.js';
import { compareText } from '../../util/compare.js';

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

/**
 * Replace `p` by `text` (atomic, 0600), unless it already holds it. `durable` false for generated files: every
 * restore (after a reboot) rebuilds them, so they need no flush.
 */
function writeReplacing(p: string, text: string, what: string, durable = true): void {
  if (existsSync(p) && readFileSync(p, 'utf8') === text) return;
  writeFileAtomic(p, text, { what, durable });
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

/** The tiers the service runs on: each implemented, routed tier that has VM data (by network id). */
export function servedTiers(m: RouterModel): TierModel[] {
  const tiers = new Set(Object.values(vmdataState(m).vms).map((r) => r.tier));
  return Object.values(m.tiers)
    .filter((t) => t.implemented && t.guestType !== 'l2' && tiers.has(t.networkId) && isIpv4(t.extensionIp))
    .sort((a, b) => compareText(a.networkId, b.networkId));
}

/** Router addresses to serve on: the extension IP of each served tier. */
export function listenAddresses(m: RouterModel): string[] {
  return [...new Set(servedTiers(m).map((t) => t.extensionIp))].sort();
}

/**
 * Tier interfaces served at [fe80::a9fe:a9fe] (served tiers with IPv6), each with the recorded MACs of its
 * VM addresses: an IPv6 requester is identified by its MAC.
 */
export function linkLocalSpecs(m: RouterModel): LinkLocalSpec[] {
  const vms = vmdataState(m).vms;
  return servedTiers(m).filter(hasIpv6).map((t) => {
    const macs: Record<string, string> = {};
    for (const [ip, r] of Object.entries(vms)) {
      const mac = r.tier === t.networkId && isIpv4(ip) ? recordedMac(m, ip, r) : undefined;
      if (mac) macs[mac.toLowerCase()] = ip;
    }
    return { ifname: tierIfname(m, t), macs };
  });
}

/** listen.json for these addresses (undefined: no file, nothing to serve). */
function listenSpec(ns: string, addresses: string[], linkLocal: LinkLocalSpec[] = []): ListenSpec | undefined {
  return addresses.length ? { namespace: ns, addresses, ...(linkLocal.length ? { linkLocal } : {}) } : undefined;
}

const listenText = (spec: ListenSpec | undefined): string | undefined => (spec ? `${JSON.stringify(spec)}\n` : undefined);

/** Write (or remove) listen.json; returns whether a daemon may hold listeners for this router. */
function writeListen(stateDir: string, ns: string, addresses: string[], linkLocal: LinkLocalSpec[] = []): boolean {
  const p = listenFile(stateDir, ns);
  const had = existsSync(p);
  const text = listenText(listenSpec(ns, addresses, linkLocal));
  if (text === undefined) {
    removeFile(p);
    return had;
  }
  mkdirSync(dirname(p), { recursive: true, mode: 0o700 });
  writeReplacing(p, text, `metadata listen file ${p}`);
  return true;
}

const readText = (p: string): string | undefined => (existsSync(p) ? readFileSync(p, 'utf8') : undefined);

/** The listen specification the daemon serves a router from now (a file it would refuse: none). */
function currentListen(stateDir: string, ns: string): ListenSpec | undefined {
  try {
    return readListenSpec(stateDir, ns);
  } catch {
    return undefined;
  }
}

/** listen.json's change as a plan step (diffed as indented JSON: the lines say which addresses change). */
function listenStep(p: string, before: string | undefined, after: string | undefined): PlanStep[] {
  if (before === after) return [];
  const readable = (t: string | undefined): string => {
    if (t === undefined) return '';
    try { return JSON.stringify(JSON.parse(t), null, 1); } catch { return t; }
  };
  const lines = diffLines(readable(before), readable(after));
  return [{ kind: 'file', action: after === undefined ? 'delete' : 'write', where: p, what: 'the router\'s metadata listen file', ...(lines.length ? { lines } : {}) }];
}

/** Blobs stored for the router that no state needs once `m` is saved (committed deletes them). */
function blobsToDrop(stateDir: string, m: RouterModel): number {
  const dir = blobDir(stateDir, m.namespace);
  if (!existsSync(dir)) return 0;
  const keep = blobsToKeep(stateDir, m);
  return readdirSync(dir).filter((n) => !keep.has(n)).length;
}

async function syncDaemon(daemon: MetadataControl, ns: string, start: boolean): Promise<void> {
  try {
    const st = await daemon.sync(ns, { start, timeoutMs: vmdataSettings.daemonTimeoutMs, idleExitMs: vmdataSettings.daemonIdleExitMs });
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
  const store = new StateStore(stateDir);
  for (const ns of readdirSync(root)) {
    if (!NS_NAME_RE.test(ns) || store.has(ns)) continue;
    const lockDir = join(stateDir, 'locks');
    mkdirSync(lockDir, { recursive: true, mode: 0o700 });
    const fd = libc.open(join(lockDir, `${ns}.lock`), libc.O_RDWR | libc.O_CREAT, 0o600);
    try {
      if (!libc.tryFlock(fd, libc.LOCK_EX)) continue;
      if (store.has(ns) || existsSync(listenFile(stateDir, ns))) continue;
      rmSync(routerDir(stateDir, ns), { recursive: true, force: true });
      removed.push(ns);
    } finally {
      libc.close(fd);
    }
  }
  return removed;
}

const orphansCollected = new Set<string>();

/** Version of what documents.ts generates: a change rewrites every VM's documents once. */
const DOCUMENTS_VERSION = 1;
const DOCUMENTS_KEY_FILE = 'documents.key';

/** Entry texts by blob id (blobs are content-addressed, so a cached text never goes stale). */
const blobTexts = new LruMap<string, string>(4096);

function blobText(stateDir: string, ns: string, id: string): string {
  const k = `${stateDir}\0${id}`;
  let v = blobTexts.get(k);
  if (v === undefined) {
    v = readFileSync(blobPath(stateDir, ns, id), 'utf8');
    blobTexts.set(k, v);
  }
  return v;
}

/** What the documents depend on: VM data, DHCP state, tiers and the segments' MTUs. */
function documentsKey(m: RouterModel, mtus: Record<string, number>): string {
  return createHash('sha256')
    .update(JSON.stringify([DOCUMENTS_VERSION, m.extra?.[VMDATA] ?? null, dhcpState(m), m.tiers, mtus]))
    .digest('hex');
}

const json = (v: unknown) => `${JSON.stringify(v, null, 1)}\n`;

/**
 * One VM's generated files: the OpenStack documents and the EC2 tree (removed for a VM without identity);
 * `owner` records whose directory it is, and a change of owner drops what the previous guest POSTed.
 */
function writeDocuments(dir: string, ip: string, ns: string, d: VmDocuments): void {
  const ownerPath = join(dir, OWNER_FILE);
  const before = existsSync(ownerPath) ? readFileSync(ownerPath, 'utf8') : undefined;
  if (before !== `${d.owner}\n`) {
    removeFile(join(dir, OS_PASSWORD_FILE));
    writeReplacing(ownerPath, `${d.owner}\n`, `owner of ${ip} in ${ns}`, false);
  }
  const osDir = join(dir, OPENSTACK_DIR);
  if (d.meta && d.network && d.ec2) {
    mkdirSync(osDir, { recursive: true, mode: 0o700 });
    writeReplacing(join(osDir, META_DATA_JSON), json(d.meta), `meta_data.json of ${ip} in ${ns}`, false);
    writeReplacing(join(osDir, NETWORK_DATA_JSON), json(d.network), `network_data.json of ${ip} in ${ns}`, false);
    writeReplacing(join(dir, EC2_TREE_FILE), json(d.ec2), `EC2 meta-data of ${ip} in ${ns}`, false);
  } else {
    rmSync(osDir, { recursive: true, force: true });
    removeFile(join(dir, EC2_TREE_FILE));
  }
}

/** Every served VM's generated files (the tree of materialize() must be in place). */
function materializeDocuments(stateDir: string, m: RouterModel, mtus: Record<string, number>): void {
  const ns = m.namespace;
  const docs = vmDocuments(m, { text: (id) => blobText(stateDir, ns, id), mtus });
  for (const [ip, d] of docs) {
    const dir = vmDir(stateDir, ns, ip);
    if (existsSync(dir)) writeDocuments(dir, ip, ns, d);
  }
}

/** The documents' key as last written for this router, and writing it. */
const documentsKeyPath = (stateDir: string, ns: string) => join(routerDir(stateDir, ns), DOCUMENTS_KEY_FILE);


/** A metadata mutator as a command's change: the limits are read (and checked) before the router's lock. */
const withEnv = <R>(fn: (m: RouterModel, req: R, env: mut.VmDataEnv) => void) => (req: R, { ctx }: CommandEnv): Mutation => {
  const env = mut.vmdataEnv(ctx);
  return (m) => fn(m, req, env);
};

export const vmdataModule: RouterModule = {
  name: VMDATA,
  // a shared network gets no implement-network: these commands implement its router when it has none; the
  // NIC hooks and restore-network change the DHCP/DNS module's part of the VM in the same change; each changes the
  // VM records only (a scope the engine verifies: vm-records-scope.ts)
  commands: {
    'save-vm-data': { shared: 'implement', scope, change: withEnv(mut.saveVmData) },
    'save-userdata': { shared: 'implement', scope, change: withEnv(mut.saveUserdata) },
    'save-password': { shared: 'implement', scope, change: withEnv(mut.savePassword) },
    'save-sshkey': { shared: 'implement', scope, change: withEnv(mut.saveSshkey) },
    'save-hypervisor-hostname': { shared: 'implement', scope, change: withEnv(mut.saveHypervisorHostname) },
    'prepare-nic': {
      ifRouterExists: true,
      scope,
      shared: 'ifComplete',
      // the metadata step first: it compares with the MAC the DHCP reservation held before this NIC's; the
      // guest-segment filter's last: it records the NIC where the DHCP reservation does not hold it
      change: withEnv((m, req, env) => { mut.prepareNicVmData(m, req, env); dhcpPrepareNic(m, req); vmfilterPrepareNic(m, req); }),
    },
    'release-nic': {
      ifRouterExists: true,
      scope,
      change: withEnv((m, req, env) => { dhcpReleaseNic(m, req); mut.releaseNicVmData(m, req, env); vmfilterReleaseNic(m, req); }),
    },
    'restore-network': { shared: 'implement', scope, change: withEnv(mut.restoreNetworkWith(dhcpRestoreNetwork)) },
  },
  forgetTier: forgetVmdataTier,

  /** 169.254.169.254:80 to each served tier's service; the address never forwarded (well-known.ts). */
  nftObjects(m: RouterModel) {
    return wellKnownObjects(m, servedTiers(m));
  },

  async reconcile(m: RouterModel, previous: RouterModel | undefined, ctx: ReconcileContext): Promise<void> {
    const { stateDir } = ctx;
    const ns = m.namespace;
    const hasData = Object.keys(vmdataState(m).vms).length > 0;
    if (!hasData && !existsSync(routerDir(stateDir, ns))) return; // never had metadata: nothing at all to do
    // the served tree only changes with the slot, tiers or recorded MACs; a restore (no previous) rebuilds it
    let rebuilt = false;
    if (!previous || treeKey(previous) !== treeKey(m) || (hasData && !existsSync(vmsDir(stateDir, ns)))) {
      materialize(stateDir, m);
      rebuilt = true;
      const keep = referencedBlobs(m);
      for (const id of referencedBlobs(previous)) keep.add(id); // the engine may re-apply `previous` on failure
      collectBlobs(stateDir, ns, keep);
    }
    const served = servedTiers(m);
    if (hasData) {
      // the documents follow the DHCP state, the tiers and the kernel's MTUs too: regenerated when any differs
      const mtus = segmentMtus(ctx.host, m, served);
      const key = documentsKey(m, mtus);
      const keyPath = documentsKeyPath(stateDir, ns);
      if (rebuilt || !existsSync(keyPath) || readFileSync(keyPath, 'utf8') !== key) {
        materializeDocuments(stateDir, m, mtus);
        writeReplacing(keyPath, key, `metadata documents key of ${ns}`, false);
      }
    }
    if (Object.values(m.tiers).some((t) => t.implemented && hasIpv6(t))) {
      const h = ctx.kernel.open(ns);
      try {
        ensureLinkLocal(h, m, served.filter(hasIpv6));
      } finally {
        h.close();
      }
    }
    const addresses = listenAddresses(m);
    const mayListen = writeListen(stateDir, ns, addresses, linkLocalSpecs(m));
    const daemon = ctx.kernel.metadata(stateDir);
    if (addresses.length > 0) await syncDaemon(daemon, ns, true);
    else if (mayListen) await syncDaemon(daemon, ns, false);
    // a restore (no previous state) is a good moment to drop data of destroyed routers; once per process
    if (!previous && !orphansCollected.has(stateDir)) {
      orphansCollected.add(stateDir);
      collectOrphans(stateDir);
    }
  },

  /**
   * A plan's part (nothing written, nothing asked of the daemon): the NICs recorded or released, the VMs whose
   * served data change — by file name, never a content —, the generated documents, the link-local address
   * (through the plan's kernel), listen.json, what the daemon is told, and the blobs deleted once saved.
   */
  async plan(m: RouterModel, previous: RouterModel | undefined, ctx: ReconcileContext, opts: { teardown?: boolean } = {}): Promise<PlanStep[]> {
    const { stateDir } = ctx;
    const ns = m.namespace;
    const running = ctx.kernel.metadata(stateDir).pid() !== undefined;
    const p = listenFile(stateDir, ns);
    const before = readText(p);
    if (opts.teardown) {
      if (before === undefined) return [];
      return [...listenStep(p, before, undefined), ...daemonSteps(ns, currentListen(stateDir, ns), undefined, running)];
    }
    const hasData = Object.keys(vmdataState(m).vms).length > 0;
    if (!hasData && !existsSync(routerDir(stateDir, ns))) return [];
    const steps: PlanStep[] = [...nicSteps(previous, m), ...vmSteps(previous, m, (ip) => vmDir(stateDir, ns, ip))];
    const served = servedTiers(m);
    if (hasData) {
      const key = documentsKey(m, segmentMtus(ctx.host, m, served));
      if (readText(documentsKeyPath(stateDir, ns)) !== key) {
        steps.push({ kind: 'file', action: 'write', where: vmsDir(stateDir, ns), what: 'the generated documents of the served VMs (OpenStack meta_data.json, network_data.json; the EC2 tree)' });
      }
    }
    if (Object.values(m.tiers).some((t) => t.implemented && hasIpv6(t))) {
      const h = ctx.kernel.open(ns); // the plan's kernel: the address change is recorded, not made
      try {
        ensureLinkLocal(h, m, served.filter(hasIpv6));
      } finally {
        h.close();
      }
    }
    const next = listenSpec(ns, listenAddresses(m), linkLocalSpecs(m));
    steps.push(...listenStep(p, before, listenText(next)));
    steps.push(...daemonSteps(ns, currentListen(stateDir, ns), next, running));
    const drop = blobsToDrop(stateDir, m);
    if (drop) steps.push({ kind: 'file', action: 'delete', where: blobDir(stateDir, ns), what: `${drop} stored blob${drop === 1 ? '' : 's'} no state needs any more (once the state is saved)` });
    return steps;
  },

  async teardown(m: RouterModel, ctx: ReconcileContext): Promise<void> {
    const { stateDir } = ctx;
    if (writeListen(stateDir, m.namespace, [])) await syncDaemon(ctx.kernel.metadata(stateDir), m.namespace, false);
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
    if (name === 'meta-data' || name === OPENSTACK_DIR) for (const f of readdirSync(join(dir, name))) { if (FILE_NAME_RE.test(f)) out.push(`${name}/${f}`); }
    else if (FILE_NAME_RE.test(name) && name !== MAC_FILE && name !== OWNER_FILE) out.push(name);
  }
  return out.sort();
}
