/**
 * An in-memory kernel for the router engine (RouterKernel, kernel.ts): network namespaces with links (devices,
 * bridges, VLAN and VXLAN devices, veth pairs across namespaces), addresses, routes and sysctls, an nft fake
 * (lib/nft/fake.ts) per namespace with its generation id, and conntrack deletions — each change recorded as a
 * PlanStep (`changes`). What netns-router relies on behaves as the kernel's does (checked against kernel 6.x):
 *
 * - a link name taken in its namespace, a second VLAN device for one (parent, id), a second VXLAN device for
 *   one VNI → EEXIST; a name longer than 15 bytes → EINVAL; a missing link, parent or master → ENODEV; a master
 *   that is not a bridge → EOPNOTSUPP;
 * - deleting one end of a veth deletes the pair; deleting a link deletes its addresses, the routes through it,
 *   the VLAN devices on it and frees its bridge ports; deleting a namespace deletes its links (and so the
 *   other ends of their veth pairs);
 * - a namespace that exists → NetnsError EEXIST; opening a missing one → NetnsError ENOENT; a new namespace has
 *   a `lo` that is down;
 * - an address or route on a missing device → ENODEV; an IPv4 gateway outside every connected prefix →
 *   ENETUNREACH; a route with host bits set → EINVAL; deleting what is not there → ESRCH / EADDRNOTAVAIL;
 * - a sysctl of a missing interface → ENOENT.
 *
 * Not modelled: carriers and packets (gratuitous ARPs are not sent), what the kernel adds by itself (connected
 * routes of addresses, IPv6 link-local addresses, lo's addresses once it is up), policy routing rules.
 *
 * `FakeKernel.overlay(real)` is the plan's kernel (plan.ts): each namespace is copied from the real kernel when
 * first touched (links, addresses, routes; sysctls read through; the nft tables it is told to copy), then
 * changed in memory only.
 */
import type { HostTable } from './router-module.js';
import { NetlinkError } from '../netlink/errors.js';
import { validIfName, type Link, type LinkChange, type LinkSpec } from '../netlink/link.js';
import type { Address, AddressSpec } from '../netlink/address.js';
import type { Route, RouteSpec } from '../netlink/route.js';
import type { Rule, RuleSpec } from '../netlink/rule.js';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NetnsError } from '../sys/setns.js';
import { SysctlError } from '../netns/sysctl.js';
import { openFake, FakeNftExecutor } from '../nft/fake.js';
import type { NftExecutor, ListOptions } from '../nft/executor.js';
import type { JsonCommand, NftDocument, TableRef } from '../nft/json.js';
import type { ListedTable } from '../nft/listing.js';
import type { Transaction } from '../nft/transaction.js';
import { NftError } from '../nft/errors.js';
import { FINGERPRINT_SET } from '../nft/table-sync.js';
import { cidrContains, networkText, toCidr } from '../util/ip.js';
import { namespaceMark } from './ownership.js';
import { conntrackFilters } from './nat-flow-cleanup.js';
import type { NatPlan } from './router-table.js';
import type { ConntrackFilter } from '../nft/ctnetlink.js';
import { netnsEtcDir, type NetOps, type NsOps, type RouterKernel } from './kernel.js';
import { dnsmasqPaths, type DnsmasqPaths, type RenderedDnsmasq } from '../services/dnsmasq/config.js';
import type { ApplyResult, DnsmasqControl, ReleaseGroup } from '../services/dnsmasq/supervisor.js';
import { DnsmasqProcessError } from '../services/dnsmasq/errors.js';
import type { Lease } from '../services/dnsmasq/leases.js';
import type { MetadataControl, MetadataSyncOptions } from '../services/metadata/control.js';
import type { DaemonStatus, RouterStatus } from '../services/metadata/daemon.js';
import { readListenSpec } from '../services/metadata/listen-spec.js';
import { MetadataError } from '../services/metadata/errors.js';
import { METADATA_PORT, NS_NAME_RE, PASSWORD_PORT, WELL_KNOWN_V6, vmdataRoot } from '../services/metadata/layout.js';
import type { HaproxyControl } from '../services/haproxy/control.js';
import { FakeHaproxy } from './fake-haproxy.js';
import { diffLines, nftCommandText, type PlanStep } from './plan.js';

const ERRNO = { ENOENT: 2, ESRCH: 3, EEXIST: 17, ENODEV: 19, EINVAL: 22, EOPNOTSUPP: 95, EADDRNOTAVAIL: 99, ENETUNREACH: 101 } as const;
const HOST = '(host)';
const PROTO: Record<string, number> = { kernel: 2, boot: 3, static: 4 };

type LinkRef = string | number;

interface FLink {
  index: number;
  name: string;
  kind: Link['kind'];
  up: boolean;
  alias?: string;
  mac: string;
  mtu: number;
  masterIndex?: number;
  /** vlan: parent index; vxlan: underlying device index (same namespace). */
  parentIndex?: number;
  id?: number;
  vni?: number;
  dstPort?: number;
  /** veth: where the other end is (a namespace of this kernel, or only the id the real kernel gave it). */
  peer?: { ns?: FNs; nsid?: number; index: number };
  rawKind?: string;
}

interface FRoute { family: 4 | 6; dst: string; table: number; protocol: number; via?: string; oif?: number; metric?: number }

class FNs {
  readonly links = new Map<number, FLink>();
  addrs: Array<Omit<Address, 'dev'>> = [];
  routes: FRoute[] = [];
  /** Policy routing rules; a new namespace has the kernel's defaults (local, main, default). */
  rules: Rule[] = [
    { family: 4, priority: 0, table: 255, action: 1 }, { family: 4, priority: 32766, table: 254, action: 1 }, { family: 4, priority: 32767, table: 253, action: 1 },
    { family: 6, priority: 0, table: 255, action: 1 }, { family: 6, priority: 32766, table: 254, action: 1 },
  ];
  readonly sysctls = new Map<string, string>();
  readonly nsids = new Map<FNs, number>();
  nextIndex = 1;
  nextNsid = 0;
  gen = 1;
  readonly nft: FakeNftExecutor = openFake();
  /** Overlay: a sysctl not set here is read from the real namespace. */
  readSysctl?: (key: string) => string;
  /** Overlay: settles once the real namespace's nft tables are copied in. */
  ready: Promise<void> = Promise.resolve();
  constructor(readonly name: string, readonly fd: number) {}

  find(ref: LinkRef): FLink | undefined {
    if (typeof ref === 'number') return this.links.get(ref);
    for (const l of this.links.values()) if (l.name === ref) return l;
    return undefined;
  }
}

const nlErr = (code: keyof typeof ERRNO, op: string, ack?: string): NetlinkError => new NetlinkError(ERRNO[code], op, ack);
let macSeq = 0;
const newMac = (): string => `02:fa:4e:${[(macSeq >> 16) & 255, (macSeq >> 8) & 255, macSeq++ & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;

/** See the header. */
export class FakeKernel implements RouterKernel {
  readonly name: string;
  /** Every change made, in order (a plan's kernel part). */
  readonly changes: PlanStep[] = [];
  private readonly spaces = new Map<string, FNs>();
  private readonly byFd = new Map<number, FNs>();
  private nextFd = 1000;
  private readonly hostNs: FNs;
  /** Overlay: copies a real namespace into this kernel when first touched (undefined: it does not exist). */
  private readonly seed: ((name: string) => FNs | undefined) | undefined;
  /** Namespaces deleted here (an overlay does not copy them again). */
  private readonly gone = new Set<string>();
  private readonly daemons = new Map<string, FakeDnsmasq>();
  private readonly metadataDaemons = new Map<string, FakeMetadata>();
  private readonly haproxies = new Map<string, FakeHaproxy>();
  /** /etc/netns files written (undefined: deleted) here. */
  private readonly etc = new Map<string, string | undefined>();
  /** Overlay: /etc/netns files not written here are the machine's. */
  private realEtc = false;
  /** Overlay: the machine's daemons, read (overlayOf). */
  private realDnsmasq: RouterKernel['dnsmasq'] | undefined;
  private realMetadata: RouterKernel['metadata'] | undefined;
  private realHaproxy: RouterKernel['haproxy'] | undefined;

  /** `devices`: links of the host namespace besides `lo` (the uplinks guest/public devices are made on). */
  constructor(opts: { devices?: string[]; name?: string } = {}) {
    this.name = opts.name ?? 'fake';
    this.hostNs = this.makeNs(HOST);
    for (const d of opts.devices ?? []) this.addRaw(this.hostNs, { name: d, kind: 'device', up: true });
  }

  // ── RouterKernel ──────────────────────────────────────────────────────────────────────────────────

  host(): NsOps { return this.handle(this.hostNs); }

  open(ns: string): NsOps {
    const s = this.space(ns);
    if (!s) throw new NetnsError('ENOENT', ns, `network namespace "${ns}" does not exist`);
    return this.handle(s);
  }

  netnsExists(ns: string): boolean { return this.space(ns) !== undefined; }

  netnsIdentity(ns: string): string | undefined {
    const s = this.space(ns);
    return s ? `${this.name}:${s.fd}` : undefined;
  }

  addNetns(ns: string): void {
    if (this.space(ns)) throw new NetnsError('EEXIST', ns, `network namespace "${ns}" already exists`);
    this.gone.delete(ns);
    const s = this.makeNs(ns);
    this.addRaw(s, { name: 'lo', kind: 'device', up: false, alias: namespaceMark(ns), mac: '00:00:00:00:00:00' });
    this.record({ kind: 'netns', action: 'create', where: ns, what: `namespace ${ns}` });
  }

  deleteNetns(ns: string): void {
    const s = this.space(ns);
    if (!s) return;
    for (const l of [...s.links.values()]) if (s.links.has(l.index)) this.removeLink(s, l);
    this.spaces.delete(ns);
    this.byFd.delete(s.fd);
    this.gone.add(ns);
    this.record({ kind: 'netns', action: 'delete', where: ns, what: `namespace ${ns} (and everything in it)` });
  }

  nft(ns: string | undefined): { ex: NftExecutor; release: () => Promise<void> } {
    const s = ns === undefined ? this.hostNs : this.space(ns);
    if (!s) throw new NftError({ code: 'E_NFT_EXECUTOR', stderr: `network namespace "${ns}" does not exist`, executor: this.name, operation: 'open' });
    return { ex: new RecordingNft(s, (step) => this.record(step)), release: async () => {} };
  }

  nftGeneration(ns: string): number {
    const s = this.space(ns);
    if (!s) throw new NetnsError('ENOENT', ns, `network namespace "${ns}" does not exist`);
    return s.gen;
  }

  async deleteNatConntrack(ns: string, before: NatPlan, after: NatPlan): Promise<void> {
    await this.deleteConntrack(ns, conntrackFilters(before, after));
  }

  async deleteConntrack(ns: string, filters: ConntrackFilter[]): Promise<void> {
    for (const f of filters) {
      const what = Object.entries(f).filter(([k]) => k !== 'family').map(([k, v]) => `${k} ${Array.isArray(v) ? v.join('-') : String(v)}`).join(' ');
      this.record({ kind: 'conntrack', action: 'delete', where: ns, what: `flows ${what}`, detail: f });
    }
  }

  gratuitousArps(): void { /* packets are not modelled */ }
  announceArp(): void { /* packets are not modelled */ }

  /** `/etc/netns/<ns>` files, in memory (an overlay's start as the machine's). */
  netnsEtc(ns: string, path: string, content: string | undefined): void {
    const root = netnsEtcDir(ns);
    if (content === undefined) {
      const had = [...this.etcPaths(root)];
      if (!had.length) return;
      for (const p of had) this.etc.set(p, undefined);
      this.record({ kind: 'file', action: 'delete', where: root, what: `the namespace's configuration files (${had.map((p) => p.slice(root.length + 1)).join(', ')})` });
      return;
    }
    const file = join(root, path);
    const before = this.etcRead(file);
    if (before === content) return;
    this.etc.set(file, content);
    this.record({ kind: 'file', action: 'write', where: file, what: `the namespace's ${path}`, lines: diffLines(before ?? '', content) });
  }

  /** The content of an /etc/netns file here (undefined: none). */
  etcRead(file: string): string | undefined {
    if (this.etc.has(file)) return this.etc.get(file);
    if (!this.realEtc) return undefined;
    try { return readFileSync(file, 'utf8'); } catch { return undefined; }
  }

  private *etcPaths(root: string): Iterable<string> {
    for (const [p, c] of this.etc) if (p.startsWith(`${root}/`) && c !== undefined) yield p;
    if (!this.realEtc) return;
    const walk = function* (d: string): Iterable<string> {
      let entries: string[];
      try { entries = readdirSync(d); } catch { return; }
      for (const e of entries) {
        const p = join(d, e);
        let dir = false;
        try { dir = statSync(p).isDirectory(); } catch { continue; }
        if (dir) yield* walk(p); else yield p;
      }
    };
    for (const p of walk(root)) if (!this.etc.has(p)) yield p;
  }

  /** The router's dnsmasq, in memory (FakeDnsmasq): one per runtime directory, like the real one. An overlay's
   *  is the machine's, read only (a plan previews it; starting or stopping it is refused). */
  dnsmasq(ns: string, dir: string): DnsmasqControl {
    if (this.realDnsmasq) {
      const real = this.realDnsmasq(ns, dir);
      const refuse = (): never => { throw new Error(`a plan does not run daemons (dnsmasq of ${ns})`); };
      return {
        paths: real.paths, pid: () => real.pid(), present: () => real.present(), leases: () => real.leases(), preview: (r) => real.preview(r),
        apply: async () => refuse(), destroy: async () => refuse(), releaseLeases: async () => refuse(),
      };
    }
    let d = this.daemons.get(dir);
    if (!d) {
      d = new FakeDnsmasq(ns, dir, this, (step) => this.record(step));
      this.daemons.set(dir, d);
    }
    return d;
  }

  /** The metadata daemon of a state directory, in memory (FakeMetadata): one per state directory, like the real
   *  one. An overlay's is the machine's, read only (a plan reads its pid and status; syncing or stopping is refused). */
  metadata(stateDir: string): MetadataControl {
    if (this.realMetadata) {
      const real = this.realMetadata(stateDir);
      const refuse = (): never => { throw new Error(`a plan does not run daemons (metadata daemon of ${stateDir})`); };
      return { stateDir, pid: () => real.pid(), status: () => real.status(), sync: async () => refuse(), stop: async () => refuse() };
    }
    let d = this.metadataDaemons.get(stateDir);
    if (!d) {
      d = new FakeMetadata(stateDir, this, (step) => this.record(step));
      this.metadataDaemons.set(stateDir, d);
    }
    return d;
  }

  /** The router's haproxy, in memory (FakeHaproxy, fake-haproxy.ts): one per runtime directory, like the real
   *  one. An overlay's is the machine's, read only (a plan reads its running configuration and pid, and checks a
   *  text as the command would; applying or stopping is refused). */
  haproxy(ns: string, runDir: string): HaproxyControl {
    if (this.realHaproxy) {
      const real = this.realHaproxy(ns, runDir);
      const refuse = (): never => { throw new Error(`a plan does not run daemons (haproxy of ${ns})`); };
      return { netns: ns, runDir, check: (t) => real.check(t), runningConfig: () => real.runningConfig(), pid: () => real.pid(), apply: async () => refuse(), stop: async () => refuse() };
    }
    let d = this.haproxies.get(runDir);
    if (!d) {
      d = new FakeHaproxy(ns, runDir, this, (step) => this.record(step));
      this.haproxies.set(runDir, d);
    }
    return d;
  }

  // ── test helpers ──────────────────────────────────────────────────────────────────────────────────

  /** Called by dispose (an overlay closes its handle on the real host namespace). */
  onDispose: (() => void) | undefined;

  /** Release what the kernel holds of the real one (an overlay's handles). */
  dispose(): void {
    this.onDispose?.();
    this.onDispose = undefined;
  }

  /** Names of the namespaces (the host's excluded). */
  namespaces(): string[] { return [...this.spaces.keys()].filter((n) => n !== HOST).sort(); }

  /** The nft fake of a namespace (undefined: the host's). */
  nftOf(ns?: string): FakeNftExecutor {
    const s = ns === undefined ? this.hostNs : this.space(ns);
    if (!s) throw new Error(`no namespace ${ns}`);
    return s.nft;
  }

  /** Make a namespace appear as someone else would (e.g. `ip netns add` by hand: `lo` unmarked). */
  addForeignNetns(ns: string): void {
    const s = this.makeNs(ns);
    this.addRaw(s, { name: 'lo', kind: 'device', up: true, mac: '00:00:00:00:00:00' });
  }

  /** Put a link on the host as someone else would (a device, a bridge) — outside of `changes`. */
  addHostLink(name: string, kind: 'device' | 'bridge' = 'device', alias?: string): void {
    this.addRaw(this.hostNs, { name, kind, up: true, ...(alias !== undefined ? { alias } : {}) });
  }

  // ── overlay ───────────────────────────────────────────────────────────────────────────────────────

  /**
   * A kernel that starts as `real` is and changes in memory only (a plan's): the host namespace's links are
   * copied now, a router namespace when first touched (links, addresses, routes, the nft `tables` of it), its
   * sysctls are read through. Reads of the real kernel only; nothing real is changed.
   */
  static overlay(real: RouterKernel, opts: { tables: (ns: string | undefined) => HostTable[] }): Promise<FakeKernel> {
    return overlayOf(real, opts);
  }

  /** @internal (overlayOf) */
  static withSeed(seed: (k: FakeKernel, name: string) => FNs | undefined): FakeKernel {
    const k = new FakeKernel({ name: 'plan' });
    (k as unknown as { seed: (name: string) => FNs | undefined }).seed = (name) => seed(k, name);
    return k;
  }

  /** @internal the machine's daemons, previewed by a plan (overlayOf) */
  readDaemonsOf(real: RouterKernel): void {
    this.realDnsmasq = (ns, dir) => real.dnsmasq(ns, dir);
    this.realMetadata = (stateDir) => real.metadata(stateDir);
    this.realHaproxy = (ns, runDir) => real.haproxy(ns, runDir);
    this.realEtc = true;
  }
  /** @internal the host namespace (overlayOf copies the real one into it) */
  hostSpace(): FNs { return this.hostNs; }
  /** @internal */
  newSpace(name: string): FNs { return this.makeNs(name); }
  /** @internal put a link as it is, its index kept */
  putLink(s: FNs, l: FLink): void {
    s.links.set(l.index, l);
    s.nextIndex = Math.max(s.nextIndex, l.index + 1);
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────────────

  private space(name: string): FNs | undefined {
    const s = this.spaces.get(name);
    if (s || !this.seed || this.gone.has(name)) return s;
    this.gone.add(name); // asked once: a namespace the real kernel lacks stays absent until made here
    const seeded = this.seed(name);
    if (seeded) this.gone.delete(name);
    return seeded;
  }

  private makeNs(name: string): FNs {
    const s = new FNs(name, this.nextFd++);
    this.spaces.set(name, s);
    this.byFd.set(s.fd, s);
    return s;
  }

  private record(step: PlanStep): void {
    this.changes.push(step);
  }

  private where(s: FNs): string { return s === this.hostNs ? 'host' : s.name; }

  private addRaw(s: FNs, l: Omit<FLink, 'index' | 'mac' | 'mtu'> & { mac?: string; mtu?: number }): FLink {
    const link: FLink = { mac: newMac(), mtu: 1500, ...l, index: s.nextIndex++ };
    s.links.set(link.index, link);
    return link;
  }

  private nsidOf(from: FNs, to: FNs): number {
    let id = from.nsids.get(to);
    if (id === undefined) {
      id = from.nextNsid++;
      from.nsids.set(to, id);
    }
    return id;
  }

  private view(s: FNs, l: FLink): Link {
    const state = {
      index: l.index, flags: l.up ? 1 : 0, up: l.up, lowerUp: l.up, operState: l.up ? 'up' : 'down', mtu: l.mtu, mac: l.mac,
      ...(l.masterIndex !== undefined ? { masterIndex: l.masterIndex } : {}),
    };
    const base = { name: l.name, ...(l.alias !== undefined ? { alias: l.alias } : {}), ...state };
    const nameOf = (i: number | undefined): string | number | undefined => (i === undefined ? undefined : s.links.get(i)?.name ?? i);
    switch (l.kind) {
      case 'veth': {
        const p = l.peer!;
        const same = p.ns === s;
        const peer = same ? { name: p.ns!.links.get(p.index)?.name, index: p.index }
          : { index: p.index, ...(p.ns ? { netnsId: this.nsidOf(s, p.ns) } : p.nsid !== undefined ? { netnsId: p.nsid } : {}) };
        return { kind: 'veth', ...base, peer } as Link;
      }
      case 'vlan': return { kind: 'vlan', ...base, parent: nameOf(l.parentIndex)!, id: l.id!, protocol: '802.1Q' } as Link;
      case 'vxlan': return { kind: 'vxlan', ...base, vni: l.vni!, ...(l.parentIndex !== undefined ? { dev: nameOf(l.parentIndex) } : {}), ...(l.dstPort !== undefined ? { dstPort: l.dstPort } : {}) } as Link;
      case 'bridge': return { kind: 'bridge', ...base } as Link;
      default: return { kind: 'device', ...base, ...(l.rawKind ? { rawKind: l.rawKind } : {}) } as Link;
    }
  }

  private removeLink(s: FNs, l: FLink): void {
    if (!s.links.delete(l.index)) return;
    s.addrs = s.addrs.filter((a) => a.ifindex !== l.index);
    s.routes = s.routes.filter((r) => r.oif !== l.index);
    for (const o of [...s.links.values()]) {
      if (o.masterIndex === l.index) delete o.masterIndex;
      if (o.kind === 'vlan' && o.parentIndex === l.index) this.removeLink(s, o);
    }
    if (l.kind === 'veth' && l.peer?.ns) {
      const other = l.peer.ns.links.get(l.peer.index);
      if (other) this.removeLink(l.peer.ns, other);
    }
  }

  private handle(s: FNs): NsOps {
    const k = this;
    let closed = false;
    const check = (): void => {
      if (closed) throw new NetnsError('EBADF', s.name, `namespace handle ${s.name} is closed`);
      if (s !== k.hostNs && k.spaces.get(s.name) !== s) throw new NetnsError('ENOENT', s.name, `network namespace "${s.name}" was deleted`);
    };
    const get = (ref: LinkRef, op: string): FLink => {
      const l = s.find(ref);
      if (!l) throw nlErr('ENODEV', op);
      return l;
    };
    const where = (): string => k.where(s);
    const linkText = (l: FLink): string => `${l.kind} ${l.name}`;
    const netlink: NetOps = {
      linkFind(ref) { check(); const l = s.find(ref); return l && k.view(s, l); },
      linkGet(ref) { check(); return k.view(s, get(ref, `RTM_GETLINK ${ref}`)); },
      linkList(filter = {}) {
        check();
        const master = filter.master === undefined ? undefined : get(filter.master, `master ${filter.master}`).index;
        return [...s.links.values()].filter((l) => (master === undefined || l.masterIndex === master) && (!filter.kind || l.kind === filter.kind)).map((l) => k.view(s, l));
      },
      indexOf(ref, what = 'link') { check(); return get(ref, `${what} ${ref}`).index; },
      linkAdd(spec: LinkSpec) {
        check();
        const op = `RTM_NEWLINK ${spec.name} (${spec.kind})`;
        const taken = (ns: FNs, name: string): void => {
          if (!validIfName(name)) throw nlErr('EINVAL', op, 'Attribute failed policy validation');
          if (ns.find(name)) throw nlErr('EEXIST', op);
        };
        taken(s, spec.name);
        const master = spec.master === undefined ? undefined : get(spec.master, op);
        if (master && master.kind !== 'bridge') throw nlErr('EOPNOTSUPP', op);
        const common = { up: spec.up ?? false, ...(spec.alias !== undefined ? { alias: spec.alias } : {}), ...(spec.mac ? { mac: spec.mac } : {}), ...(master ? { masterIndex: master.index } : {}) };
        let made: FLink;
        switch (spec.kind) {
          case 'bridge': made = k.addRaw(s, { name: spec.name, kind: 'bridge', ...common }); break;
          case 'vlan': {
            const parent = get(spec.parent, op);
            if ([...s.links.values()].some((l) => l.kind === 'vlan' && l.parentIndex === parent.index && l.id === spec.id)) throw nlErr('EEXIST', op);
            made = k.addRaw(s, { name: spec.name, kind: 'vlan', parentIndex: parent.index, id: spec.id, ...common });
            break;
          }
          case 'vxlan': {
            const dev = spec.dev === undefined ? undefined : get(spec.dev, op);
            const port = spec.dstPort ?? 8472;
            if ([...s.links.values()].some((l) => l.kind === 'vxlan' && l.vni === spec.vni && (l.dstPort ?? 8472) === port)) throw nlErr('EEXIST', op, 'A VXLAN device with the specified VNI already exists');
            made = k.addRaw(s, { name: spec.name, kind: 'vxlan', vni: spec.vni, dstPort: port, ...(dev ? { parentIndex: dev.index } : {}), ...common });
            break;
          }
          case 'veth': {
            const pns = spec.peer.namespace === undefined ? s : 'fd' in spec.peer.namespace ? k.byFd.get(spec.peer.namespace.fd)
              : 'netns' in spec.peer.namespace ? k.space(spec.peer.namespace.netns) : undefined;
            if (!pns) throw nlErr('EINVAL', op, 'Invalid peer namespace');
            taken(pns, spec.peer.name);
            if (pns === s && spec.peer.name === spec.name) throw nlErr('EEXIST', op);
            made = k.addRaw(s, { name: spec.name, kind: 'veth', ...common, peer: { ns: pns, index: 0 } });
            const other = k.addRaw(pns, { name: spec.peer.name, kind: 'veth', up: spec.peer.up ?? false, ...(spec.peer.mac ? { mac: spec.peer.mac } : {}), peer: { ns: s, index: made.index } });
            made.peer!.index = other.index;
            k.record({ kind: 'link', action: 'create', where: where(), what: `veth ${spec.name} (peer ${spec.peer.name} in ${k.where(pns)})`, detail: spec });
            return;
          }
          default: throw nlErr('EOPNOTSUPP', op);
        }
        k.record({ kind: 'link', action: 'create', where: where(), what: linkText(made), detail: spec });
      },
      linkSet(ref, change: LinkChange) {
        check();
        const l = get(ref, `RTM_NEWLINK (set) ${ref}`);
        const parts: string[] = [];
        if (change.master !== undefined) {
          if (change.master === null) {
            if (l.masterIndex !== undefined) { delete l.masterIndex; parts.push('nomaster'); }
          } else {
            const m = get(change.master, `master ${change.master}`);
            if (m.kind !== 'bridge') throw nlErr('EOPNOTSUPP', `RTM_NEWLINK (set) ${ref}`);
            if (l.masterIndex !== m.index) { l.masterIndex = m.index; parts.push(`master ${m.name}`); }
          }
        }
        if (change.name !== undefined && change.name !== l.name) {
          if (s.find(change.name)) throw nlErr('EEXIST', `RTM_NEWLINK (set) ${ref}`);
          parts.push(`name ${change.name}`);
          l.name = change.name;
        }
        if (change.alias !== undefined && change.alias !== l.alias) { l.alias = change.alias; parts.push(`alias "${change.alias}"`); }
        if (change.mac !== undefined && change.mac.toLowerCase() !== l.mac) { l.mac = change.mac.toLowerCase(); parts.push(`address ${change.mac}`); }
        if (change.mtu !== undefined && change.mtu !== l.mtu) { l.mtu = change.mtu; parts.push(`mtu ${change.mtu}`); }
        if (change.up !== undefined && change.up !== l.up) { l.up = change.up; parts.push(change.up ? 'up' : 'down'); }
        if (change.namespace !== undefined) throw nlErr('EOPNOTSUPP', `RTM_NEWLINK (set) ${ref}`, 'moving links between namespaces is not modelled');
        if (!parts.length) return; // nothing differs: nothing changes
        k.record({ kind: 'link', action: 'change', where: where(), what: `${l.name}: ${parts.join(' ')}`, detail: { link: l.name, ...change } });
      },
      linkSetUp(ref) { netlink.linkSet(ref, { up: true }); },
      linkDel(ref, opts = {}) {
        check();
        const l = s.find(ref);
        if (!l) {
          if (opts.ifExists) return false;
          throw nlErr('ENODEV', `RTM_DELLINK ${ref}`);
        }
        k.removeLink(s, l);
        k.record({ kind: 'link', action: 'delete', where: where(), what: `${linkText(l)}${l.kind === 'veth' ? ' (and its peer)' : ''}` });
        return true;
      },
      netnsIdOf(fd) {
        check();
        const other = k.byFd.get(fd);
        return other ? k.nsidOf(s, other) : undefined;
      },
      addrList(filter = {}) {
        check();
        const dev = filter.dev === undefined ? undefined : get(filter.dev, `dev ${filter.dev}`).index;
        return s.addrs.filter((a) => (dev === undefined || a.ifindex === dev) && (!filter.family || a.family === filter.family))
          .map((a) => ({ ...a, dev: s.links.get(a.ifindex)?.name }));
      },
      addrReplace(spec: AddressSpec) {
        check();
        const l = get(spec.dev, 'RTM_NEWADDR (replace)');
        const c = toCidr(spec.address);
        const a = { ifindex: l.index, address: `${c.address}/${c.prefix}`, family: c.family, prefixLen: c.prefix, ip: c.address, scope: 0 as unknown as Address['scope'], flags: 0 };
        const i = s.addrs.findIndex((x) => x.ifindex === l.index && x.ip === a.ip);
        if (i >= 0 && s.addrs[i].prefixLen === a.prefixLen) return; // the same: nothing changes
        if (i >= 0) s.addrs[i] = a; else s.addrs.push(a);
        k.record({ kind: 'address', action: 'add', where: where(), what: `${a.address} dev ${l.name}`, detail: { dev: l.name, address: a.address } });
      },
      addrDel(spec: AddressSpec, opts = {}) {
        check();
        const l = s.find(spec.dev);
        const c = toCidr(spec.address);
        const i = l ? s.addrs.findIndex((x) => x.ifindex === l.index && x.ip === c.address) : -1;
        if (i < 0) {
          if (opts.ifExists) return false;
          throw nlErr(l ? 'EADDRNOTAVAIL' : 'ENODEV', 'RTM_DELADDR');
        }
        const [a] = s.addrs.splice(i, 1);
        k.record({ kind: 'address', action: 'delete', where: where(), what: `${a.address} dev ${l!.name}`, detail: { dev: l!.name, address: a.address } });
        return true;
      },
      routeList(filter = {}) {
        check();
        const table = filter.table === 'all' ? undefined : tableOf(filter.table);
        const dev = filter.dev === undefined ? undefined : get(filter.dev, `dev ${filter.dev}`).index;
        return s.routes.filter((r) => (table === undefined || r.table === table) && (!filter.family || r.family === filter.family) && (dev === undefined || r.oif === dev))
          .map((r) => routeView(s, r));
      },
      routeReplace(spec: RouteSpec) {
        check();
        const op = 'RTM_NEWROUTE (replace)';
        const r = routeOf(s, spec, op);
        if (r.via && r.family === 4 && !s.addrs.some((a) => a.family === 4 && (r.oif === undefined || a.ifindex === r.oif) && s.links.get(a.ifindex)?.up && cidrContains(toCidr(`${a.ip}/${a.prefixLen}`), r.via!))) {
          throw nlErr('ENETUNREACH', op, 'Nexthop has invalid gateway');
        }
        const i = s.routes.findIndex((x) => sameRoute(x, r));
        if (i >= 0 && JSON.stringify(s.routes[i]) === JSON.stringify(r)) return; // the same: nothing changes
        if (i >= 0) s.routes[i] = r; else s.routes.push(r);
        k.record({ kind: 'route', action: 'replace', where: where(), what: routeText(s, r), detail: routeView(s, r) });
      },
      ruleList(family = 0) {
        check();
        return s.rules.filter((r) => family === 0 || r.family === family).map((r) => ({ ...r }));
      },
      ruleAdd(spec: RuleSpec) {
        check();
        const r = ruleOf(spec);
        // no priority given: the kernel's choice (fib_default_rule_pref), one below the second rule of the family's
        // list when that one is not at 0, else 0
        if (r.priority === undefined) {
          const second = s.rules.filter((x) => x.family === r.family)[1];
          r.priority = second?.priority ? second.priority - 1 : 0;
        }
        const op = 'RTM_NEWRULE';
        if (s.rules.some((x) => sameRule(x, r))) throw nlErr('EEXIST', op);
        s.rules.push(r);
        // stable: a rule joins the end of those of its priority, as in the kernel's list
        s.rules.sort((a, b) => (a.priority ?? 0) - (b.priority ?? 0));
        k.record({ kind: 'rule', action: 'add', where: where(), what: `${ruleText(r)}`, detail: r });
      },
      ruleDel(spec: RuleSpec, opts = {}) {
        check();
        const want = ruleOf(spec);
        const i = s.rules.findIndex((x) => x.family === want.family && x.table === want.table && (spec.priority === undefined || x.priority === spec.priority)
          && x.from === want.from && x.to === want.to && x.iif === want.iif && x.oif === want.oif && x.fwmark === want.fwmark);
        if (i < 0) {
          if (opts.ifExists) return false;
          throw nlErr('ENOENT', 'RTM_DELRULE');
        }
        const [gone] = s.rules.splice(i, 1);
        k.record({ kind: 'rule', action: 'delete', where: where(), what: `${ruleText(gone)}`, detail: gone });
        return true;
      },
      routeDel(spec: RouteSpec, opts = {}) {
        check();
        const r = routeOf(s, spec, 'RTM_DELROUTE');
        const i = s.routes.findIndex((x) => sameRoute(x, r, true));
        if (i < 0) {
          if (opts.ifExists) return false;
          throw nlErr('ESRCH', 'RTM_DELROUTE');
        }
        const [gone] = s.routes.splice(i, 1);
        k.record({ kind: 'route', action: 'delete', where: where(), what: routeText(s, gone), detail: routeView(s, gone) });
        return true;
      },
    };
    return {
      fd: s.fd,
      netlink,
      sysctlGet(key) {
        check();
        const v = s.sysctls.get(key);
        if (v !== undefined) return v;
        missingInterface(s, key);
        return s.readSysctl ? s.readSysctl(key) : '0';
      },
      sysctlSet(key, value) {
        check();
        missingInterface(s, key);
        s.sysctls.set(key, String(value));
        k.record({ kind: 'sysctl', action: 'set', where: where(), what: `${key} = ${value}`, detail: { key, value: String(value) } });
      },
      close() { closed = true; },
    };
  }
}

let fakePid = 40_000;

/**
 * dnsmasq in memory, deciding as DnsmasqInstance does (lib/services/dnsmasq/supervisor.ts): files written when
 * they differ; a running instance with the same command line is reloaded when a file changed and left alone
 * otherwise; anything else is (re)started — with a new pid. It runs only in a namespace that exists (and dies
 * with it); a start elsewhere fails as the real one does (E_DNSMASQ_START). Leases are what a test puts in
 * `leasesHeld`. `actions`: what it did, in order.
 */
export class FakeDnsmasq implements DnsmasqControl {
  readonly paths: DnsmasqPaths;
  /** File contents by path, as written. */
  readonly files = new Map<string, string>();
  /** The command line it runs with (undefined: never started). */
  argv: string[] | undefined;
  private running: number | undefined;
  leasesHeld: Lease[] = [];
  readonly actions: string[] = [];
  constructor(readonly netns: string, dir: string, private readonly k: FakeKernel, private readonly record: (s: PlanStep) => void) {
    this.paths = dnsmasqPaths(dir);
  }

  pid(): number | undefined {
    if (this.running !== undefined && !this.k.netnsExists(this.netns)) this.running = undefined; // died with its namespace
    return this.running;
  }

  present(): boolean { return this.files.size > 0 || this.pid() !== undefined; }
  leases(): Lease[] { return [...this.leasesHeld]; }

  preview(r: RenderedDnsmasq): ReturnType<DnsmasqControl['preview']> {
    const files = Object.entries(r.files).flatMap(([path, after]) => (this.files.get(path) === after ? [] : [{ path, before: this.files.get(path), after }]));
    const pid = this.pid();
    if (pid !== undefined && JSON.stringify(this.argv) === JSON.stringify(r.argv)) return { action: files.length ? 'reloaded' : 'unchanged', files };
    return { action: pid !== undefined ? 'restarted' : 'started', files };
  }

  async apply(r: RenderedDnsmasq, opts: { forget?: (leases: Lease[]) => Lease[] } = {}): Promise<ApplyResult> {
    const p = this.preview(r);
    for (const f of p.files) {
      this.files.set(f.path, f.after);
      this.record({ kind: 'file', action: 'write', where: f.path, what: 'dnsmasq file' });
    }
    if (p.action === 'unchanged' || p.action === 'reloaded') {
      if (p.action === 'reloaded') this.done('reload');
      return { action: p.action, pid: this.running! };
    }
    if (!this.k.netnsExists(this.netns)) {
      throw new DnsmasqProcessError('E_DNSMASQ_START', `dnsmasq for ${this.netns} did not start`, `network namespace "${this.netns}" does not exist`);
    }
    const gone = new Set((opts.forget?.(this.leases()) ?? []).map((l) => l.mac));
    this.leasesHeld = this.leasesHeld.filter((l) => !gone.has(l.mac));
    this.argv = [...r.argv];
    this.running = fakePid++;
    this.done(p.action === 'restarted' ? 'restart' : 'start');
    return { action: p.action, pid: this.running };
  }

  async destroy(): Promise<void> {
    if (this.pid() !== undefined) this.done('stop');
    this.running = undefined;
    this.files.clear();
    this.leasesHeld = [];
  }

  async releaseLeases(groups: ReleaseGroup[]): Promise<string[]> {
    const macs = new Set(groups.flatMap((g) => g.leases.map((l) => l.mac)));
    if (!macs.size) return [];
    this.leasesHeld = this.leasesHeld.filter((l) => !macs.has(l.mac));
    this.done(`release ${[...macs].join(' ')}`);
    return [];
  }

  private done(action: string): void {
    this.actions.push(action);
    this.record({ kind: 'service', action: action.split(' ')[0], where: this.netns, what: `dnsmasq${action.includes(' ') ? ` leases ${action.slice(action.indexOf(' ') + 1)}` : ''}` });
  }
}

/**
 * The host's metadata daemon in memory, deciding as MetadataDaemon and its client do (lib/services/metadata/):
 * a sync reads the router's listen.json with the daemon's own checks; a router with addresses is served on each
 * of them (ports 80 and 8080) and at [fe80::a9fe:a9fe] on each link-local interface that exists in its namespace;
 * a router without (no listen.json, no address) is let go. A sync of a router whose namespace does not exist is
 * refused (E_NO_NAMESPACE), a namespace made again gets new sockets. A daemon that is not running answers a sync
 * only with `start` — it then starts (a new pid) and serves every router on disk first (its rescan). Sockets
 * bind with IP_FREEBIND, so an address not (yet) on an interface is no refusal; one someone else holds
 * (`occupied`) is (E_LISTEN, EADDRINUSE). A failure of any other kind reaches the caller as E_LISTEN, as the
 * daemon's {ok:false} answer does. Not modelled: requests and
 * connections (test/router/vmdata*.test.ts: real guests), the idle exit's timer (`idleExit()` does it).
 * `actions`: what it did, in order; `heldDeleted()`: routers whose sockets would keep a deleted namespace alive.
 */
export class FakeMetadata implements MetadataControl {
  private running: number | undefined;
  private readonly routers = new Map<string, { listening: string[]; identity: string | undefined }>();
  /** The idle exit the daemon was started with (ms; negative: never). */
  idleExitMs: number | undefined;
  readonly actions: string[] = [];
  constructor(readonly stateDir: string, private readonly k: FakeKernel, private readonly record: (s: PlanStep) => void) {}

  pid(): number | undefined { return this.running; }

  async sync(ns: string, opts: MetadataSyncOptions): Promise<RouterStatus> {
    if (this.running === undefined) {
      if (!opts.start) return { namespace: ns, listening: [], connections: 0 };
      this.running = fakePid++;
      this.idleExitMs = opts.idleExitMs;
      this.done('start', '', 'the metadata daemon');
      // started: it serves every router on disk (a failing one is left out, as the real rescan does)
      const root = vmdataRoot(this.stateDir);
      for (const r of existsSync(root) ? readdirSync(root).filter((n) => NS_NAME_RE.test(n)).sort() : []) {
        try { this.converge(r); } catch { /* its own sync reports it */ }
      }
    }
    try {
      return this.converge(ns);
    } catch (e) {
      // the daemon answers any failure as {ok:false}, which its client throws as E_LISTEN
      throw e instanceof MetadataError ? e : new MetadataError('E_LISTEN', (e as Error).message);
    }
  }

  async status(): Promise<DaemonStatus | undefined> {
    if (this.running === undefined) return undefined;
    return { pid: this.running, routers: [...this.routers].map(([namespace, r]) => ({ namespace, listening: [...r.listening], connections: 0 })), rssBytes: 0 };
  }

  async stop(): Promise<void> {
    if (this.running === undefined) return;
    this.routers.clear();
    this.running = undefined;
    this.done('stop', '', 'the metadata daemon');
  }

  // ── test helpers ──

  /** The sockets it holds for router `ns` (empty: not served). */
  listening(ns: string): string[] { return [...(this.routers.get(ns)?.listening ?? [])]; }

  /** The daemon dies (kill -9): its sockets go with it; the next sync with `start` starts it again. */
  kill(): void {
    this.routers.clear();
    this.running = undefined;
    this.actions.push('killed');
  }

  /** Its idle timer expires: with no router left to serve (and an idle exit), it exits. */
  idleExit(): void {
    if (this.running === undefined || this.routers.size || (this.idleExitMs ?? 5000) < 0) return;
    this.running = undefined;
    this.actions.push('idle exit');
  }

  /** Sockets someone else holds (`<ns> <ip>:<port>`): binding them fails with EADDRINUSE, as in the kernel. */
  readonly occupied = new Set<string>();

  /** Routers it holds sockets of in a namespace that was deleted (or made again): a leak the real kernel has. */
  heldDeleted(): string[] {
    return [...this.routers].filter(([ns, r]) => this.k.netnsIdentity(ns) !== r.identity).map(([ns]) => ns).sort();
  }

  private converge(ns: string): RouterStatus {
    if (!NS_NAME_RE.test(ns)) throw new MetadataError('E_LISTEN', `invalid namespace name ${JSON.stringify(ns)}`);
    const spec = readListenSpec(this.stateDir, ns);
    const cur = this.routers.get(ns);
    if (!spec || spec.addresses.length === 0) {
      if (cur) {
        this.routers.delete(ns);
        this.done('unregister', ns, `router ${ns} from the metadata daemon (its sockets and connections there close)`);
      }
      return { namespace: ns, listening: [], connections: 0 };
    }
    const identity = this.k.netnsIdentity(ns);
    if (identity === undefined) {
      // a router new to the daemon is dropped again; one it serves keeps what it had
      throw new MetadataError('E_NO_NAMESPACE', `network namespace "${ns}" does not exist`);
    }
    const want = spec.addresses.flatMap((a) => [`${a}:${METADATA_PORT}`, `${a}:${PASSWORD_PORT}`]);
    if (spec.linkLocal?.length) {
      const h = this.k.open(ns);
      try {
        for (const l of spec.linkLocal) {
          const index = h.netlink.linkFind(l.ifname)?.index;
          if (index !== undefined) want.push(`[${WELL_KNOWN_V6}%${l.ifname}#${index}]:${METADATA_PORT}`);
        }
      } finally {
        h.close();
      }
    }
    want.sort();
    const listening = cur && cur.identity === identity ? cur.listening : [];
    const taken = want.filter((w) => !listening.includes(w) && this.occupied.has(`${ns} ${w}`));
    if (taken.length) {
      if (cur) cur.listening = listening.filter((l) => want.includes(l)); // what it closed stays closed
      throw new MetadataError('E_LISTEN', `listening in ${ns}: bind ${taken[0]}: EADDRINUSE (Address already in use)`);
    }
    if (!cur || JSON.stringify(listening) !== JSON.stringify(want)) {
      this.routers.set(ns, { listening: want, identity });
      this.done(cur ? 'sync' : 'register', ns, `router ${ns} with the metadata daemon, served on ${want.join(' ')}`);
    }
    return { namespace: ns, listening: [...want], connections: 0 };
  }

  private done(action: string, ns: string, what: string): void {
    this.actions.push(ns ? `${action} ${ns}` : action);
    this.record({ kind: 'service', action, where: ns || this.stateDir, what });
  }
}

function ruleOf(spec: RuleSpec): Rule {
  const from = spec.from ? toCidr(spec.from) : undefined;
  const to = spec.to ? toCidr(spec.to) : undefined;
  const family = spec.family ?? from?.family ?? to?.family ?? 4;
  return {
    family, table: tableOf(spec.table), action: 1,
    ...(spec.priority !== undefined ? { priority: spec.priority } : {}),
    // the kernel keeps a selector's host bits (`from 10.1.1.5/24`), and lists a mark's mask (all ones when not given)
    ...(from ? { from: `${from.address}/${from.prefix}` } : {}), ...(to ? { to: `${to.address}/${to.prefix}` } : {}),
    ...(spec.iif ? { iif: spec.iif } : {}), ...(spec.oif ? { oif: spec.oif } : {}),
    ...(spec.fwmark !== undefined ? { fwmark: spec.fwmark, fwmask: (spec.fwmask ?? 0xffffffff) >>> 0 } : {}),
  };
}

const sameRule = (a: Rule, b: Rule): boolean => JSON.stringify({ ...a, priority: a.priority ?? 0 }) === JSON.stringify({ ...b, priority: b.priority ?? 0 });

function ruleText(r: Rule): string {
  return [`${r.priority ?? 0}:`, r.from ? `from ${r.from}` : 'from all', r.to ? `to ${r.to}` : '', r.iif ? `iif ${r.iif}` : '', r.oif ? `oif ${r.oif}` : '',
    r.fwmark !== undefined ? `fwmark ${r.fwmark}` : '', `lookup ${r.table}`].filter(Boolean).join(' ');
}

/** A per-interface sysctl of a link that does not exist: the file is not there. */
function missingInterface(s: FNs, key: string): void {
  const m = /^net\.ipv[46]\.conf\.([^.]+)\./.exec(key);
  if (m && m[1] !== 'all' && m[1] !== 'default' && !s.find(m[1].replace(/\//g, '.'))) throw new SysctlError(key, 'ENOENT', `sysctl ${key}: No such file or directory`);
}

function tableOf(t: RouteSpec['table'] | undefined): number {
  if (t === undefined || t === 'main') return 254;
  if (t === 'local') return 255;
  if (t === 'default') return 253;
  return t;
}

function routeOf(s: FNs, spec: RouteSpec, op: string): FRoute {
  let family: 4 | 6;
  let dst: string;
  if (spec.dst === 'default') {
    family = spec.family ?? (spec.via?.includes(':') ? 6 : 4);
    dst = 'default';
  } else {
    const c = toCidr(spec.dst);
    family = c.family;
    dst = networkText(c);
    if (dst !== `${c.address}/${c.prefix}`) throw nlErr('EINVAL', op, 'Invalid prefix for given prefix length');
    if (c.prefix === 0) dst = 'default';
  }
  let oif: number | undefined;
  if (spec.dev !== undefined) {
    const l = s.find(spec.dev);
    if (!l) throw nlErr('ENODEV', op);
    oif = l.index;
  }
  const protocol = spec.protocol === undefined ? PROTO.boot : typeof spec.protocol === 'number' ? spec.protocol : PROTO[spec.protocol] ?? 3;
  return { family, dst, table: tableOf(spec.table), protocol, ...(spec.via ? { via: spec.via } : {}), ...(oif !== undefined ? { oif } : {}), ...(spec.metric !== undefined ? { metric: spec.metric } : {}) };
}

/** The kernel's identity of a route (deletion: the attributes given must match). */
function sameRoute(a: FRoute, b: FRoute, del = false): boolean {
  if (a.family !== b.family || a.table !== b.table || a.dst !== b.dst) return false;
  if (del) return (b.metric === undefined || a.metric === b.metric) && (b.via === undefined || a.via === b.via);
  return (a.metric ?? 0) === (b.metric ?? 0);
}

function routeView(s: FNs, r: FRoute): Route {
  return {
    family: r.family, dst: r.dst, table: r.table, type: 'unicast' as Route['type'], scope: (r.via ? 0 : 253) as unknown as Route['scope'], protocol: r.protocol,
    ...(r.via ? { via: r.via } : {}), ...(r.oif !== undefined ? { oif: r.oif, dev: s.links.get(r.oif)?.name } : {}), ...(r.metric !== undefined ? { metric: r.metric } : {}),
  } as Route;
}

function routeText(s: FNs, r: FRoute): string {
  const v = routeView(s, r);
  return [r.dst, v.via ? `via ${v.via}` : '', v.dev ? `dev ${v.dev}` : '', r.table !== 254 ? `table ${r.table}` : '', r.metric !== undefined ? `metric ${r.metric}` : ''].filter(Boolean).join(' ');
}

/** The nft fake of a namespace, recording each applied transaction and counting generations like the kernel. */
class RecordingNft implements NftExecutor {
  readonly name = 'fake';
  constructor(private readonly s: FNs, private readonly record: (step: PlanStep) => void) {}
  async apply(tx: Transaction): Promise<void> {
    await this.s.ready;
    await this.s.nft.apply(tx);
    this.s.gen = (this.s.gen + 1) >>> 0;
    const commands = tx.commands();
    // a transaction that only swaps a table's stamp (lib/nft/table-sync.ts) changes no rule, set or chain
    const stampOnly = tx.operations.every((o) => o.object.kind === 'element' && o.object.set.endsWith(FINGERPRINT_SET));
    this.record({
      kind: 'nft', action: 'transaction', where: this.s.name === HOST ? 'host' : this.s.name,
      what: stampOnly ? `the stamp of ${tx.table.family} ${tx.table.name} renewed (no rule, set or chain changes)`
        : `one transaction of ${commands.length} command${commands.length === 1 ? '' : 's'}`,
      detail: commands, lines: commands.map(nftCommandText),
    });
  }
  async check(tx: Transaction): Promise<void> { await this.s.ready; return this.s.nft.check(tx); }
  async list(table: TableRef, opts?: ListOptions): Promise<ListedTable> { await this.s.ready; return this.s.nft.list(table, opts); }
  async listSet(table: TableRef, name: string, kind?: 'set' | 'map'): ReturnType<NftExecutor['listSet']> { await this.s.ready; return this.s.nft.listSet(table, name, kind); }
  async close(): Promise<void> {}
}

/** A listed table as the commands that make it (handles dropped). */
export function listingDocument(t: ListedTable): NftDocument {
  const strip = <T extends object>(o: T): T => {
    const { handle: _h, ...rest } = o as T & { handle?: number };
    return rest as T;
  };
  const cmds: JsonCommand[] = [{ add: { table: strip(t.table) } } as JsonCommand];
  for (const c of t.chains) cmds.push({ add: { chain: strip(c) } } as JsonCommand);
  for (const x of t.sets) cmds.push({ add: { set: strip(x) } } as JsonCommand);
  for (const x of t.maps) cmds.push({ add: { map: strip(x) } } as JsonCommand);
  for (const x of t.counters) cmds.push({ add: { counter: strip(x) } } as JsonCommand);
  for (const r of t.rules) cmds.push({ add: { rule: strip(r) } } as JsonCommand);
  return { nftables: cmds } as NftDocument;
}

async function overlayOf(real: RouterKernel, opts: { tables: (ns: string | undefined) => HostTable[] }): Promise<FakeKernel> {
  const copyLinks = (k: FakeKernel, s: FNs, nl: NetOps, peerNs: (nsid: number | undefined) => FNs | undefined): void => {
    for (const l of nl.linkList()) {
      const f: FLink = { index: l.index, name: l.name, kind: l.kind, up: l.up, mac: l.mac ?? '00:00:00:00:00:00', mtu: l.mtu, ...(l.alias !== undefined ? { alias: l.alias } : {}), ...(l.masterIndex !== undefined ? { masterIndex: l.masterIndex } : {}) };
      if (l.kind === 'vlan') { f.id = l.id; f.parentIndex = typeof l.parent === 'number' ? l.parent : nl.linkFind(l.parent)?.index; }
      if (l.kind === 'vxlan') { f.vni = l.vni; f.dstPort = l.dstPort ?? 8472; if (l.dev !== undefined) f.parentIndex = typeof l.dev === 'number' ? l.dev : nl.linkFind(l.dev)?.index; }
      if (l.kind === 'veth') {
        const pn = l.peer.netnsId === undefined ? s : peerNs(l.peer.netnsId);
        f.peer = { index: l.peer.index ?? 0, ...(pn ? { ns: pn } : {}), ...(l.peer.netnsId !== undefined ? { nsid: l.peer.netnsId } : {}) };
      }
      k.putLink(s, f);
    }
  };
  const seedNft = async (s: FNs, ns: string | undefined): Promise<void> => {
    const { ex, release } = real.nft(ns);
    try {
      for (const t of opts.tables(ns)) {
        let listed: ListedTable;
        try {
          listed = await ex.list(t);
        } catch (e) {
          if (e instanceof NftError && e.code === 'ENOENT') continue;
          throw e;
        }
        if (t.only) {
          // a table shared by routers: this router's part (and the rules of its chains)
          const only = t.only;
          listed = { ...listed, chains: listed.chains.filter((c) => only(c.name)), rules: listed.rules.filter((r) => only(r.chain)),
            sets: listed.sets.filter((x) => only(x.name)), maps: listed.maps.filter((x) => only(x.name)), counters: listed.counters.filter((x) => only(x.name)) };
        }
        s.nft.applyDocument(listingDocument(listed));
      }
    } finally {
      await release();
    }
  };
  const hostReal = real.host();
  const k = FakeKernel.withSeed((k, name) => {
    if (!real.netnsExists(name)) return undefined;
    const h = real.open(name);
    try {
      const s = k.newSpace(name);
      const host = k.hostSpace();
      const nsidFromHost = hostReal.netlink.netnsIdOf(h.fd);
      const hostFromNs = h.netlink.netnsIdOf(hostReal.fd);
      if (nsidFromHost !== undefined) {
        host.nsids.set(s, nsidFromHost);
        host.nextNsid = Math.max(host.nextNsid, nsidFromHost + 1);
        for (const l of host.links.values()) if (l.peer && !l.peer.ns && l.peer.nsid === nsidFromHost) l.peer.ns = s;
      }
      if (hostFromNs !== undefined) { s.nsids.set(host, hostFromNs); s.nextNsid = hostFromNs + 1; }
      copyLinks(k, s, h.netlink, (id) => (id === hostFromNs ? host : undefined));
      s.addrs = h.netlink.addrList().map(({ dev: _d, ...a }) => a);
      s.routes = h.netlink.routeList({ table: 'all' }).map((r) => ({
        family: r.family, dst: r.dst, table: r.table, protocol: r.protocol,
        ...(r.via ? { via: r.via } : {}), ...(r.oif !== undefined ? { oif: r.oif } : {}), ...(r.metric !== undefined ? { metric: r.metric } : {}),
      }));
      s.rules = h.netlink.ruleList(0);
      s.gen = real.nftGeneration(name);
      s.readSysctl = (key) => {
        const r = real.open(name);
        try { return r.sysctlGet(key); } finally { r.close(); }
      };
      s.ready = seedNft(s, name);
      s.ready.catch(() => { /* reported by the first nft call, which awaits it */ });
      return s;
    } finally {
      h.close();
    }
  });
  const host = k.hostSpace();
  host.links.clear();
  copyLinks(k, host, hostReal.netlink, () => undefined);
  host.readSysctl = (key) => hostReal.sysctlGet(key);
  try {
    await seedNft(host, undefined);
  } catch (e) {
    hostReal.close();
    throw e;
  }
  k.onDispose = () => hostReal.close();
  k.readDaemonsOf(real);
  return k;
}
