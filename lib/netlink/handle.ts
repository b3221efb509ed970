/**
 * rtnetlink verbs on one socket (one namespace), named after `ip`/`bridge`: linkAdd, linkDel, linkSet, addrAdd,
 * routeAdd, neighAdd, ruleAdd, bridgeVlanAdd … plus idempotent helpers (ensureLink, ensureAddress, *Replace,
 * delete-if-present with `ifExists`), request builders for `batch`, and linkDelAsync off the event loop.
 * Get one with `NetnsHandle.netlink` (inside a namespace) or `NetlinkHandle.open()` (the calling thread's
 * namespace). Public API: docs/netlink.md.
 */
import { NetlinkSocket, type NlMessage, type NlRequest, type NetlinkSocketOptions } from './socket.js';
import {
  NETLINK_ROUTE, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, RTM_DELADDR, RTM_DELLINK, RTM_DELNEIGH, RTM_DELROUTE,
  RTM_DELRULE, RTM_GETADDR, RTM_GETLINK, RTM_GETNEIGH, RTM_GETROUTE, RTM_GETRULE, RTM_NEWADDR, RTM_NEWLINK,
  RTM_NEWNEIGH, RTM_NEWROUTE, RTM_NEWRULE, RTM_SETLINK, RTM_GETNSID, RTM_NEWNSID, NETNSA_FD, NETNSA_NSID, RTNLGRP_LINK,
} from './constants.js';
import { NetlinkError, isNetlinkError, isNotFound } from './errors.js';
import type { Link, LinkSpec, LinkChange, NetnsRef } from './link.js';
import { validIfName } from './link.js';
import {
  IFLA, decodeLink, encodeBridgeChange, encodeLinkChange, encodeLinkCreate, encodeLinkDump, encodeLinkGet, encodeLinkRef,
  type BridgeOptions, type NsFds, type RawLink,
} from './link-codec.js';
import { NlWriter, parseAttrs } from './attrs.js';
import { decodeBridgeVlans, encodeBridgeVlan, encodeBridgeVlanDump, type BridgeVlan, type BridgeVlanSpec } from './bridge-vlan.js';
import { broadcastOf, decodeAddress, encodeAddress, encodeAddressDump, encodedPrefixLen, type Address, type AddressSpec } from './address.js';
import { decodeRoute, encodeRoute, encodeRouteDump, tableId, type Route, type RouteSpec } from './route.js';
import { decodeNeigh, encodeNeigh, encodeNeighDump, encodeNeighGet, type Neigh, type NeighSpec } from './neigh.js';
import { decodeRule, encodeRule, encodeRuleDump, type Rule, type RuleSpec } from './rule.js';
import { toCidr, cidrText, type IpFamily } from '../util/ip.js';
import { openNetnsFd, runInNetnsFd } from '../sys/setns.js';
import { libc } from '../sys/index.js';
import { ValidationError } from '../util/errors.js';

/** A link by name or by index. */
export type LinkRef = string | number;

/** Outcome of an idempotent ensure: what had to be done. */
export type EnsureAction = 'created' | 'recreated' | 'updated' | 'unchanged';

/**
 * The kernel's announcement that link `index` is unregistered: RTM_DELLINK of family AF_UNSPEC (a bridge also sends
 * an AF_BRIDGE RTM_DELLINK when a port leaves it, before the port is gone). Indexes are not reused soon (the kernel
 * allocates them cyclically).
 */
function isUnregistered(m: NlMessage, index: number): boolean {
  return m.type === RTM_DELLINK && m.payload.length >= 16 && m.payload.readUInt8(0) === 0 && m.payload.readInt32LE(4) === index;
}

/** How long linkDel waits for its send to be run by the worker pool before deleting synchronously. */
const LINK_DEL_STALL_MS = 500;

function describe(ref: LinkRef): string {
  return typeof ref === 'number' ? `ifindex ${ref}` : ref;
}

function checkName(name: string, what: string): void {
  if (!validIfName(name)) {
    throw new ValidationError('E_INVALID_NAME', what, name, `${what} ${JSON.stringify(name)}: invalid interface name: 1-15 bytes, no "/", ":" or whitespace`);
  }
}

/** Resolve a NetnsRef into an fd (opened here, closed by the returned function) or a pid. */
function nsTarget(ref: NetnsRef | undefined): { fd?: number; pid?: number; close: () => void } {
  if (!ref) return { close: () => {} };
  if ('fd' in ref) return { fd: ref.fd, close: () => {} };
  if ('pid' in ref) return { pid: ref.pid, close: () => {} };
  const fd = openNetnsFd(ref.netns);
  return { fd, close: () => libc.close(fd) };
}

/** Run `fn` with a temporary handle inside the namespace `ref` designates. */
function withHandleIn<T>(ref: NetnsRef, fn: (h: NetlinkHandle) => T): T {
  let fd: number;
  let close = (): void => {};
  if ('fd' in ref) fd = ref.fd;
  else {
    fd = 'pid' in ref ? libc.open(`/proc/${ref.pid}/ns/net`, libc.O_RDONLY) : openNetnsFd(ref.netns);
    const opened = fd;
    close = () => libc.close(opened);
  }
  try {
    const h = runInNetnsFd(fd, () => NetlinkHandle.open());
    try {
      return fn(h);
    } finally {
      h.close();
    }
  } finally {
    close();
  }
}

const BRIDGE_OPTIONS = ['stp', 'vlanFiltering', 'vlanDefaultPvid', 'forwardDelay', 'ageingTime', 'mcastSnooping'] as const;

/**
 * The rtnetlink verbs of one namespace, named after `ip`: links (`linkAdd`, `linkSet`, `ensureLink`, …),
 * addresses, routes, neighbours, rules, bridge port VLANs, batches. `NetlinkHandle.open()` works in the caller's
 * namespace; `NetnsHandle.open(name).netlink` (netns-router/netns) in another. Kernel refusals are NetlinkError,
 * input refused before any I/O ValidationError.
 */
export class NetlinkHandle {
  readonly socket: NetlinkSocket;

  constructor(socket: NetlinkSocket) {
    if (socket.protocol !== NETLINK_ROUTE) throw new ValidationError('E_INVALID_REQUEST', 'socket', socket.protocol, 'NetlinkHandle needs a NETLINK_ROUTE socket');
    this.socket = socket;
  }

  /** A handle in the calling thread's current namespace. */
  static open(opts?: NetlinkSocketOptions): NetlinkHandle {
    return new NetlinkHandle(NetlinkSocket.open(NETLINK_ROUTE, opts));
  }

  close(): void {
    this.socket.close();
  }

  // ── links ────────────────────────────────────────────────────────────────────────────────────────────

  /** ifindex of a link given by name (or an index, returned as is). */
  indexOf(ref: LinkRef, what = 'link'): number {
    if (typeof ref === 'number') return ref;
    checkName(ref, what);
    const [m] = this.socket.request({ type: RTM_GETLINK, body: encodeLinkGet(ref), operation: `${what} ${ref}` });
    if (!m) throw new NetlinkError(19, `${what} ${ref}`);
    return m.payload.readInt32LE(4);
  }

  private resolveNames(raws: RawLink[], byIndex?: Map<number, string>): Link[] {
    const names = byIndex ?? new Map<number, string>();
    const lookup = (i: number): string | undefined => {
      if (names.has(i)) return names.get(i);
      try {
        const [m] = this.socket.request({ type: RTM_GETLINK, body: encodeLinkGet(i), operation: `RTM_GETLINK ifindex ${i}` });
        const n = m ? decodeLink(m.payload).link.name : undefined;
        if (n) names.set(i, n);
        return n;
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
    };
    return raws.map(({ link, refs }) => {
      const l = link as Link & Record<string, unknown>;
      if (refs.master !== undefined) {
        const n = lookup(refs.master);
        if (n) l.master = n;
      }
      if (refs.parent !== undefined) {
        const n = lookup(refs.parent);
        if (n) l.parent = n;
      }
      if (refs.vxlanDev !== undefined) {
        const n = lookup(refs.vxlanDev);
        if (n) l.dev = n;
      }
      if (refs.peer !== undefined && l.kind === 'veth') {
        const n = lookup(refs.peer);
        if (n) (l.peer as { name?: string }).name = n;
      }
      return link;
    });
  }

  /** Read one link (NetlinkError ENODEV if missing). */
  linkGet(ref: LinkRef): Link {
    if (typeof ref === 'string') checkName(ref, 'link');
    const [m] = this.socket.request({ type: RTM_GETLINK, body: encodeLinkGet(ref), operation: `RTM_GETLINK ${describe(ref)}` });
    if (!m) throw new NetlinkError(19, `RTM_GETLINK ${describe(ref)}`);
    return this.resolveNames([decodeLink(m.payload)])[0];
  }

  /** Read one link, or undefined if there is none by that name/index. */
  linkFind(ref: LinkRef): Link | undefined {
    try {
      return this.linkGet(ref);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /**
   * All links of the namespace; with `filter`, only the ports of `master` and/or the links of `kind` (filtered
   * by the kernel, and again here for a kind the kernel does not know).
   */
  linkList(filter: { master?: LinkRef; kind?: Link['kind'] } = {}): Link[] {
    const master = filter.master === undefined ? undefined : this.indexOf(filter.master, 'master');
    const body = encodeLinkDump({
      ...(master !== undefined ? { master } : {}), ...(filter.kind !== undefined && filter.kind !== 'device' ? { kind: filter.kind } : {}),
    });
    const msgs = this.socket.dump({ type: RTM_GETLINK, body, operation: 'RTM_GETLINK dump' });
    const raws = msgs.filter((m) => m.type === RTM_NEWLINK).map((m) => decodeLink(m.payload))
      .filter((r) => (master === undefined || r.link.masterIndex === master) && (filter.kind === undefined || r.link.kind === filter.kind));
    const byIndex = new Map(raws.map((r) => [r.link.index, r.link.name] as [number, string]));
    return this.resolveNames(raws, byIndex);
  }

  /**
   * Create a link (EEXIST if the name is taken). With `namespace`, the link is created directly there and its
   * `master` is looked up there (the kernel enslaves it in the namespace it lands in); a macvlan/vlan parent or
   * a vxlan dev stays a link of this handle's namespace.
   */
  linkAdd(spec: LinkSpec): void {
    checkName(spec.name, 'link');
    if (spec.kind === 'veth') checkName(spec.peer.name, 'veth peer');
    if (spec.namespace && typeof spec.master === 'string') {
      const master = spec.master;
      const idx = withHandleIn(spec.namespace, (h) => h.indexOf(master, 'master'));
      spec = { ...spec, master: idx };
    }
    const self = nsTarget(spec.namespace);
    let peer: ReturnType<typeof nsTarget> = { close: () => {} };
    try {
      // opened after this end's: a missing peer namespace throws with this end's fd open
      if (spec.kind === 'veth') peer = nsTarget(spec.peer.namespace);
      const ns: NsFds = {};
      if (self.fd !== undefined) ns.self = self.fd;
      if (self.pid !== undefined) ns.selfPid = self.pid;
      if (peer.fd !== undefined) ns.peer = peer.fd;
      if (peer.pid !== undefined) ns.peerPid = peer.pid;
      const body = encodeLinkCreate(spec, (r, what) => this.indexOf(r, what), ns);
      this.socket.request({
        type: RTM_NEWLINK, flags: NLM_F_CREATE | NLM_F_EXCL, body,
        operation: `RTM_NEWLINK ${spec.name} (${spec.kind}${spec.kind === 'veth' ? ` peer ${spec.peer.name}` : ''})`,
      });
      if (spec.kind === 'veth' && spec.peer.up) this.peerUp(spec.peer.name, peer);
      if (spec.alias !== undefined) {
        // the kernel ignores IFLA_IFALIAS in a create (only a change sets it)
        const alias = spec.alias;
        if (spec.namespace) withHandleIn(spec.namespace, (h) => h.linkSet(spec.name, { alias }));
        else this.linkSet(spec.name, { alias });
      }
    } finally {
      self.close();
      peer.close();
    }
  }

  /** Bring a new veth's peer up, in its own namespace when it was created elsewhere. */
  private peerUp(name: string, where: { fd?: number; pid?: number }): void {
    if (where.fd !== undefined) withHandleIn({ fd: where.fd }, (h) => h.linkSetUp(name));
    else if (where.pid !== undefined) withHandleIn({ pid: where.pid }, (h) => h.linkSetUp(name));
    else this.linkSetUp(name);
  }

  /**
   * Delete a link. With `ifExists`, a missing link is not an error; returns whether one was deleted. Returns once
   * the kernel announces the link unregistered (RTM_DELLINK: it and a veth's peer are no longer listed, their
   * names free; what the kernel still does for them under its RTNL lock — flushing their addresses and routes —
   * is done before any later change request, which takes that lock); the kernel's wait for RCU callbacks that
   * follows (10–30 ms) ends on a worker thread (NetlinkSocket.requestUntilAnnounced). The link is deleted by
   * index, so a request the worker pool runs late can never delete a link made since under the same name.
   */
  linkDel(ref: LinkRef, opts: { ifExists?: boolean } = {}): boolean {
    if (typeof ref === 'string') checkName(ref, 'link');
    try {
      const index = typeof ref === 'number' ? ref : this.indexIfAny(ref);
      const req: NlRequest = { type: RTM_DELLINK, body: encodeLinkRef(index ?? ref), operation: `RTM_DELLINK ${describe(ref)}` };
      if (index === undefined) {
        this.socket.request(req); // no such link: the kernel's own answer (ENODEV), or a link made meanwhile deleted
        return true;
      }
      const how = this.socket.requestUntilAnnounced(req, RTNLGRP_LINK, (m) => isUnregistered(m, index), { stallMs: LINK_DEL_STALL_MS });
      if (how === 'stalled') {
        // the worker pool has not run the send (its threads busy): delete here; the queued request, when it runs,
        // finds no link of that index (ENODEV, ignored) — or it got there first, and this one does
        try {
          this.socket.request(req);
        } catch (e) {
          if (!isNotFound(e)) throw e;
        }
      }
      return true;
    } catch (e) {
      if (opts.ifExists && isNotFound(e)) return false;
      throw e;
    }
  }

  /** The index of link `name`, or undefined when there is none (one RTM_GETLINK, no names resolved). */
  private indexIfAny(name: string): number | undefined {
    try {
      const [m] = this.socket.request({ type: RTM_GETLINK, body: encodeLinkGet(name), operation: `RTM_GETLINK ${name}` });
      return m ? m.payload.readInt32LE(4) : undefined;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /**
   * `linkDel` without blocking the event loop: the kernel waits for an RCU grace period (~20 ms) inside the
   * request, which here runs on a worker thread (see NetlinkSocket.requestAsync). Deletes may run concurrently.
   */
  async linkDelAsync(ref: LinkRef, opts: { ifExists?: boolean } = {}): Promise<boolean> {
    if (typeof ref === 'string') checkName(ref, 'link');
    try {
      await this.socket.requestAsync({ type: RTM_DELLINK, body: encodeLinkRef(ref), operation: `RTM_DELLINK ${describe(ref)}` });
      return true;
    } catch (e) {
      if (opts.ifExists && isNotFound(e)) return false;
      throw e;
    }
  }

  /** Change attributes of an existing link (up/down, MTU, MAC, master, name, alias, namespace). */
  linkSet(ref: LinkRef, change: LinkChange): void {
    if (change.name !== undefined) checkName(change.name, 'new link name');
    if (typeof ref === 'string') checkName(ref, 'link');
    // by name in the request itself (one round trip), except for a rename
    const target = change.name !== undefined ? this.indexOf(ref) : ref;
    const ns = nsTarget(change.namespace);
    try {
      const body = encodeLinkChange(target, change, (r, what) => this.indexOf(r, what), ns.fd, ns.pid);
      this.socket.request({ type: RTM_NEWLINK, body, operation: `RTM_NEWLINK (set) ${describe(ref)}` });
    } finally {
      ns.close();
    }
  }

  /**
   * The id this namespace knows another namespace (open on `fd`) by — what links whose peer or parent lives
   * there report as `peer.netnsId` / `linkNetnsId` — or undefined when none is assigned (RTM_GETNSID).
   */
  netnsIdOf(fd: number): number | undefined {
    const w = new NlWriter(16);
    w.u8(0).zeros(3); // struct rtgenmsg, padded
    w.attrU32(NETNSA_FD, fd);
    const [m] = this.socket.request({ type: RTM_GETNSID, body: w.finish(), operation: 'RTM_GETNSID' });
    if (!m || m.type !== RTM_NEWNSID) return undefined;
    const id = parseAttrs(m.payload, 4).i32(NETNSA_NSID);
    return id === undefined || id < 0 ? undefined : id;
  }

  linkSetUp(ref: LinkRef): void { this.linkSet(ref, { up: true }); }
  linkSetDown(ref: LinkRef): void { this.linkSet(ref, { up: false }); }
  linkSetMaster(ref: LinkRef, master: LinkRef | null): void { this.linkSet(ref, { master }); }
  linkSetNs(ref: LinkRef, ns: NetnsRef): void { this.linkSet(ref, { namespace: ns }); }

  /**
   * Create the link, or converge an existing one to the spec: mutable attributes (MTU, MAC, master, up, alias,
   * txqlen, bridge options) are set in place; a different kind or a different immutable attribute (VLAN id/
   * parent/protocol, VXLAN VNI/remote/group/local/dev/port/learning/ttl, macvlan parent/mode) makes it delete
   * and recreate the link. A veth whose peer is in another namespace cannot be compared by peer name: only its
   * kind and local attributes are checked. With `namespace`, the link is looked for and converged there.
   */
  ensureLink(spec: LinkSpec): EnsureAction {
    const ns = spec.namespace;
    const cur = ns ? withHandleIn(ns, (h) => h.linkFind(spec.name)) : this.linkFind(spec.name);
    if (!cur) {
      this.linkAdd(spec);
      return 'created';
    }
    // A parent (vlan/macvlan) or vxlan dev is a link of THIS namespace even when the link lives elsewhere: the
    // shape is compared here, the rest where the link is.
    if (!this.sameShape(cur, spec)) {
      if (ns) withHandleIn(ns, (h) => h.linkDel(cur.index));
      else this.linkDel(cur.index);
      this.linkAdd(spec);
      return 'recreated';
    }
    if (ns) {
      const { namespace: _here, ...there } = spec;
      return withHandleIn(ns, (h) => h.converge(cur, there as LinkSpec));
    }
    return this.converge(cur, spec);
  }

  /** Update `cur` (a link of this handle's namespace, same shape as `spec`) in place towards `spec`. */
  private converge(cur: Link, spec: LinkSpec): 'updated' | 'unchanged' {
    let updated = false;
    if (spec.kind === 'bridge') {
      const c = cur as unknown as Record<string, unknown>;
      const opts: Record<string, unknown> = {};
      for (const k of BRIDGE_OPTIONS) {
        if (spec[k] !== undefined && spec[k] !== c[k]) opts[k] = spec[k];
      }
      if (Object.keys(opts).length) {
        this.socket.request({
          type: RTM_NEWLINK, body: encodeBridgeChange(cur.index, opts as BridgeOptions),
          operation: `RTM_NEWLINK (set) ${spec.name} (bridge ${Object.keys(opts).join(', ')})`,
        });
        updated = true;
      }
    }
    const change: LinkChange = {};
    if (spec.mtu !== undefined && spec.mtu !== cur.mtu) change.mtu = spec.mtu;
    if (spec.mac !== undefined && spec.mac.toLowerCase() !== cur.mac) change.mac = spec.mac;
    if (spec.master !== undefined) {
      const want = this.indexOf(spec.master, 'master');
      if (want !== cur.masterIndex) change.master = want;
    }
    if (spec.alias !== undefined && spec.alias !== (cur as { alias?: string }).alias) change.alias = spec.alias;
    if (spec.txqlen !== undefined && spec.txqlen !== (cur as { txqlen?: number }).txqlen) change.txqlen = spec.txqlen;
    if (spec.up !== undefined && spec.up !== cur.up) change.up = spec.up;
    if (Object.keys(change).length) {
      this.linkSet(cur.index, change);
      updated = true;
    }
    return updated ? 'updated' : 'unchanged';
  }

  private sameShape(cur: Link, spec: LinkSpec): boolean {
    if (cur.kind !== spec.kind) return false;
    const c = cur as unknown as Record<string, unknown>;
    switch (spec.kind) {
      case 'veth': {
        const peer = c.peer as { name?: string; netnsId?: number };
        // same namespace: the peer name must match; other namespace: we cannot tell, accept
        return spec.peer.namespace !== undefined || peer.netnsId !== undefined || peer.name === spec.peer.name;
      }
      case 'vlan':
        return c.id === spec.id && (c.protocol ?? '802.1Q') === (spec.protocol ?? '802.1Q') &&
          this.sameLink(c.parent as LinkRef, spec.parent);
      case 'vxlan':
        return c.vni === spec.vni && (spec.dstPort === undefined || c.dstPort === spec.dstPort) &&
          (spec.remote === undefined || c.remote === spec.remote) && (spec.group === undefined || c.group === spec.group) &&
          (spec.local === undefined || c.local === spec.local) &&
          (spec.learning === undefined || c.learning === spec.learning) && (spec.ttl === undefined || c.ttl === spec.ttl) &&
          (spec.dev === undefined || this.sameLink(c.dev as LinkRef, spec.dev));
      case 'macvlan':
        return c.mode === spec.mode && this.sameLink(c.parent as LinkRef, spec.parent);
      case 'bridge':
        return true;
    }
  }

  private sameLink(a: LinkRef | undefined, b: LinkRef): boolean {
    if (a === undefined) return false;
    if (typeof a === typeof b) return a === b;
    try {
      return this.indexOf(a) === this.indexOf(b);
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  // ── addresses ────────────────────────────────────────────────────────────────────────────────────────

  private addrOp(type: number, flags: number, spec: AddressSpec, verb: string): void {
    this.socket.request(this.addrReq(type, flags, spec, verb));
  }

  private addrReq(type: number, flags: number, spec: AddressSpec, verb: string): NlRequest {
    const idx = this.indexOf(spec.dev, 'address dev');
    return { type, flags, body: encodeAddress(spec, idx), operation: `${verb} ${spec.address} dev ${describe(spec.dev)}` };
  }

  /** Add an address (EEXIST if present). */
  addrAdd(spec: AddressSpec): void { this.addrOp(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, spec, 'RTM_NEWADDR'); }
  /**
   * Add an address, or accept it if present (idempotent). Like `ip addr replace`, the kernel does not change the
   * broadcast, label or peer of an IPv4 address that exists already: use `ensureAddress` to converge those.
   */
  addrReplace(spec: AddressSpec): void { this.addrOp(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, spec, 'RTM_NEWADDR (replace)'); }

  /**
   * Converge one address: add it if missing; if present with another broadcast, label, peer or scope, delete and
   * add it again ('recreated'; deleting a primary IPv4 address also removes its secondaries unless the
   * interface's promote_secondaries sysctl is on).
   */
  ensureAddress(spec: AddressSpec): EnsureAction {
    const want = toCidr(spec.address, 'address');
    const cur = this.addrList({ dev: spec.dev, family: want.family })
      .find((a) => a.ip === want.address && a.prefixLen === encodedPrefixLen(spec, want.prefix));
    if (!cur) {
      this.addrAdd(spec);
      return 'created';
    }
    const same = (spec.scope ?? 'universe') === cur.scope &&
      (spec.label === undefined || spec.label === (cur.label ?? '')) &&
      (spec.peer === undefined ? cur.peer === undefined : toCidr(spec.peer, 'peer').address === cur.peer) &&
      (spec.broadcast === undefined || cur.broadcast === (spec.broadcast === true ? broadcastOf(want.address, cur.prefixLen) : spec.broadcast));
    if (same) return 'unchanged';
    this.addrDel({ dev: spec.dev, address: spec.address, ...(cur.peer ? { peer: cur.peer } : {}) });
    this.addrAdd(spec);
    return 'recreated';
  }
  /** Delete an address; with `ifExists` a missing one is not an error. */
  addrDel(spec: AddressSpec, opts: { ifExists?: boolean } = {}): boolean {
    try {
      this.addrOp(RTM_DELADDR, 0, spec, 'RTM_DELADDR');
      return true;
    } catch (e) {
      if (opts.ifExists && isNotFound(e)) return false;
      throw e;
    }
  }

  /**
   * Addresses, optionally of one interface and/or family. `names: false`: without their devices' names (`dev`;
   * saves a link lookup per device), for a caller that needs none.
   */
  addrList(filter: { dev?: LinkRef; family?: IpFamily; names?: boolean } = {}): Address[] {
    const idx = filter.dev === undefined ? 0 : this.indexOf(filter.dev, 'address dev');
    const msgs = this.socket.dump({ type: RTM_GETADDR, body: encodeAddressDump(filter.family ?? 0, idx), operation: 'RTM_GETADDR dump' });
    const out = msgs.filter((m) => m.type === RTM_NEWADDR).map((m) => decodeAddress(m.payload))
      .filter((a) => (idx === 0 || a.ifindex === idx) && (!filter.family || a.family === filter.family));
    if (filter.names !== false) this.attachDevNames(out);
    return out;
  }

  /** Names of the links `items` refer to: one GETLINK each for a few, one dump (names only) for many. */
  private attachDevNames(items: Array<{ ifindex?: number; oif?: number; dev?: string }>): void {
    const wanted = new Set<number>();
    for (const it of items) {
      const i = it.ifindex ?? it.oif;
      if (i) wanted.add(i);
    }
    let names: Map<number, string>;
    if (wanted.size > 8) {
      names = this.linkNames();
    } else {
      names = new Map();
      for (const i of wanted) {
        const m = this.linkFindRaw(i);
        if (m) names.set(i, m);
      }
    }
    for (const it of items) {
      const n = names.get(it.ifindex ?? it.oif ?? 0);
      if (n) it.dev = n;
    }
  }

  /** ifindex → name of every link of the namespace (a dump decoding names only). */
  linkNames(): Map<number, string> {
    const msgs = this.socket.dump({ type: RTM_GETLINK, body: encodeLinkDump(), operation: 'RTM_GETLINK dump' });
    const out = new Map<number, string>();
    for (const m of msgs) {
      if (m.type !== RTM_NEWLINK) continue;
      const name = parseAttrs(m.payload, 16).string(IFLA.IFNAME);
      if (name) out.set(m.payload.readInt32LE(4), name);
    }
    return out;
  }

  private linkFindRaw(index: number): string | undefined {
    try {
      const [m] = this.socket.request({ type: RTM_GETLINK, body: encodeLinkGet(index), operation: `RTM_GETLINK ifindex ${index}` });
      return m ? parseAttrs(m.payload, 16).string(IFLA.IFNAME) : undefined;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  // ── routes ───────────────────────────────────────────────────────────────────────────────────────────

  private routeOp(type: number, flags: number, spec: RouteSpec, verb: string, forDelete = false): void {
    this.socket.request(this.routeReq(type, flags, spec, verb, forDelete));
  }

  private routeReq(type: number, flags: number, spec: RouteSpec, verb: string, forDelete = false): NlRequest {
    const oif = spec.dev === undefined ? undefined : this.indexOf(spec.dev, 'route dev');
    return {
      type, flags, body: encodeRoute(spec, oif, forDelete),
      operation: `${verb} ${spec.dst}${spec.via ? ` via ${spec.via}` : ''}${spec.dev !== undefined ? ` dev ${describe(spec.dev)}` : ''}${spec.table !== undefined ? ` table ${spec.table}` : ''}`,
    };
  }

  routeAdd(spec: RouteSpec): void { this.routeOp(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, spec, 'RTM_NEWROUTE'); }
  /** Add or replace a route (idempotent). */
  routeReplace(spec: RouteSpec): void { this.routeOp(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, spec, 'RTM_NEWROUTE (replace)'); }
  routeDel(spec: RouteSpec, opts: { ifExists?: boolean } = {}): boolean {
    try {
      this.routeOp(RTM_DELROUTE, 0, spec, 'RTM_DELROUTE', true);
      return true;
    } catch (e) {
      if (opts.ifExists && (isNotFound(e) || (e instanceof NetlinkError && e.code === 'ESRCH'))) return false;
      throw e;
    }
  }

  /**
   * Routes of one table (default main; 'all' for every table), optionally of one family / device. `names: false`:
   * without their devices' names (`dev`; saves a link lookup per device), for a caller that needs none.
   */
  routeList(filter: { family?: IpFamily; table?: RouteSpec['table'] | 'all'; dev?: LinkRef; names?: boolean } = {}): Route[] {
    const table = filter.table === 'all' ? undefined : tableId(filter.table);
    const oif = filter.dev === undefined ? undefined : this.indexOf(filter.dev, 'route dev');
    const msgs = this.socket.dump({ type: RTM_GETROUTE, body: encodeRouteDump(filter.family ?? 0), operation: 'RTM_GETROUTE dump' });
    const out = msgs.filter((m) => m.type === RTM_NEWROUTE).map((m) => decodeRoute(m.payload))
      .filter((r) => (table === undefined || r.table === table) && (oif === undefined || r.oif === oif) &&
        (!filter.family || r.family === filter.family));
    if (filter.names !== false) this.attachDevNames(out);
    return out;
  }

  // ── neighbours ───────────────────────────────────────────────────────────────────────────────────────

  private neighOp(type: number, flags: number, spec: NeighSpec, verb: string): void {
    this.socket.request(this.neighReq(type, flags, spec, verb));
  }

  private neighReq(type: number, flags: number, spec: NeighSpec, verb: string): NlRequest {
    const idx = this.indexOf(spec.dev, 'neighbour dev');
    return { type, flags, body: encodeNeigh(spec, idx), operation: `${verb} ${spec.ip} dev ${describe(spec.dev)}` };
  }

  neighAdd(spec: NeighSpec): void { this.neighOp(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL, spec, 'RTM_NEWNEIGH'); }
  neighReplace(spec: NeighSpec): void { this.neighOp(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, spec, 'RTM_NEWNEIGH (replace)'); }
  neighDel(spec: NeighSpec, opts: { ifExists?: boolean } = {}): boolean {
    try {
      this.neighOp(RTM_DELNEIGH, 0, spec, 'RTM_DELNEIGH');
      return true;
    } catch (e) {
      if (opts.ifExists && isNotFound(e)) return false;
      throw e;
    }
  }
  /**
   * The entry for `ip` on `dev` (RTM_GETNEIGH, one entry, no dump); undefined when there is none. `dev` of the
   * result is left unset (the caller named the device; resolving the name would cost a second request).
   */
  neighGet(dev: LinkRef, ip: string): Neigh | undefined {
    const idx = this.indexOf(dev, 'neighbour dev');
    let msgs: NlMessage[];
    try {
      msgs = this.socket.request({ type: RTM_GETNEIGH, body: encodeNeighGet(ip, idx), operation: `RTM_GETNEIGH ${ip} dev ${describe(dev)}` });
    } catch (e) {
      if (isNetlinkError(e, 'ENOENT')) return undefined;
      throw e;
    }
    const m = msgs.find((x) => x.type === RTM_NEWNEIGH);
    return m ? decodeNeigh(m.payload) : undefined;
  }
  /**
   * Have the kernel resolve `ip` on `dev` now (NTF_USE, as a waiting packet would): a missing entry is created
   * INCOMPLETE and probed at once; an existing one follows its state machine (a STALE one only moves to DELAY).
   */
  neighResolve(dev: LinkRef, ip: string): void {
    this.neighOp(RTM_NEWNEIGH, NLM_F_CREATE, { dev, ip, use: true }, 'RTM_NEWNEIGH (use)');
  }
  neighList(filter: { dev?: LinkRef; family?: IpFamily; proxy?: boolean } = {}): Neigh[] {
    const idx = filter.dev === undefined ? 0 : this.indexOf(filter.dev, 'neighbour dev');
    const body = encodeNeighDump(filter.family ?? 0, idx, filter.proxy ?? false);
    const msgs = this.socket.dump({ type: RTM_GETNEIGH, body, operation: 'RTM_GETNEIGH dump' });
    const out = msgs.filter((m: NlMessage) => m.type === RTM_NEWNEIGH).map((m) => decodeNeigh(m.payload))
      .filter((n) => (idx === 0 || n.ifindex === idx) && (!filter.family || n.family === filter.family));
    this.attachDevNames(out);
    return out;
  }

  // ── bridge port VLANs (vlan_filtering bridges) ─────────────────────────────────────────────────────────

  private bridgeVlanOp(type: number, spec: BridgeVlanSpec, verb: string): void {
    const idx = this.indexOf(spec.dev, 'bridge vlan dev');
    const vids = spec.vidEnd !== undefined && spec.vidEnd !== spec.vid ? `${spec.vid}-${spec.vidEnd}` : `${spec.vid}`;
    const flags = `${spec.pvid ? ' pvid' : ''}${spec.untagged ? ' untagged' : ''}${spec.self ? ' self' : ''}`;
    this.socket.request({
      type, body: encodeBridgeVlan(spec, idx), operation: `${verb} bridge vlan ${vids} dev ${describe(spec.dev)}${flags}`,
    });
  }

  /** `bridge vlan add`: make a port (or, with `self`, the bridge) a member of a VLAN or a range of VLANs. */
  bridgeVlanAdd(spec: BridgeVlanSpec): void { this.bridgeVlanOp(RTM_SETLINK, spec, 'RTM_SETLINK'); }

  /** `bridge vlan del`; with `ifExists`, a VLAN the port is not a member of is not an error. */
  bridgeVlanDel(spec: BridgeVlanSpec, opts: { ifExists?: boolean } = {}): boolean {
    try {
      this.bridgeVlanOp(RTM_DELLINK, spec, 'RTM_DELLINK');
      return true;
    } catch (e) {
      if (opts.ifExists && isNotFound(e)) return false;
      throw e;
    }
  }

  /** `bridge vlan show`: VLAN entries of bridge ports (and bridges), optionally of one device. */
  bridgeVlanList(filter: { dev?: LinkRef } = {}): BridgeVlan[] {
    const idx = filter.dev === undefined ? 0 : this.indexOf(filter.dev, 'bridge vlan dev');
    const msgs = this.socket.dump({ type: RTM_GETLINK, body: encodeBridgeVlanDump(), operation: 'RTM_GETLINK (AF_BRIDGE) dump' });
    const out = msgs.filter((m) => m.type === RTM_NEWLINK).flatMap((m) => decodeBridgeVlans(m.payload))
      .filter((v) => idx === 0 || v.ifindex === idx);
    this.attachDevNames(out);
    return out;
  }

  // ── batches: requests built now (names resolved), sent together ─────────────────────────────────────

  /**
   * Send many requests in as few datagrams as possible and get one result per request, in order; the kernel
   * carries on after a failed one. With `stopOnError`, the first failure is thrown once all were answered.
   * Build the requests with the *Request methods below; they resolve names when built, so a request cannot
   * refer by name to a link created earlier in the same batch.
   */
  batch(reqs: NlRequest[], opts: { stopOnError?: boolean } = {}): Array<{ replies: NlMessage[]; error?: NetlinkError }> {
    return this.socket.batch(reqs, opts);
  }

  /**
   * RTM_NEWLINK creating `spec` as one request. Refuses what needs more than one request or an fd kept open
   * (`namespace`, `peer.namespace`, `alias`, `peer.up`): use linkAdd for those.
   */
  linkAddRequest(spec: LinkSpec): NlRequest {
    checkName(spec.name, 'link');
    if (spec.kind === 'veth') checkName(spec.peer.name, 'veth peer');
    if (spec.namespace || spec.alias !== undefined || (spec.kind === 'veth' && (spec.peer.namespace || spec.peer.up))) {
      throw new ValidationError('E_INVALID_REQUEST', 'link', spec.name, `linkAddRequest ${spec.name}: namespace, alias and peer.up need linkAdd (more than one request)`);
    }
    return {
      type: RTM_NEWLINK, flags: NLM_F_CREATE | NLM_F_EXCL, body: encodeLinkCreate(spec, (r, what) => this.indexOf(r, what), {}),
      operation: `RTM_NEWLINK ${spec.name} (${spec.kind}${spec.kind === 'veth' ? ` peer ${spec.peer.name}` : ''})`,
    };
  }

  linkDelRequest(ref: LinkRef): NlRequest {
    if (typeof ref === 'string') checkName(ref, 'link');
    return { type: RTM_DELLINK, body: encodeLinkRef(ref), operation: `RTM_DELLINK ${describe(ref)}` };
  }

  /** RTM_NEWLINK changing a link (not `namespace`: use linkSet). */
  linkSetRequest(ref: LinkRef, change: LinkChange): NlRequest {
    if (change.name !== undefined) checkName(change.name, 'new link name');
    if (change.namespace) throw new ValidationError('E_INVALID_REQUEST', 'namespace', change.namespace, 'linkSetRequest: moving to a namespace needs linkSet');
    if (typeof ref === 'string') checkName(ref, 'link');
    const body = encodeLinkChange(change.name !== undefined ? this.indexOf(ref) : ref, change, (r, what) => this.indexOf(r, what));
    return { type: RTM_NEWLINK, body, operation: `RTM_NEWLINK (set) ${describe(ref)}` };
  }

  addrRequest(verb: 'add' | 'replace' | 'del', spec: AddressSpec): NlRequest {
    if (verb === 'add') return this.addrReq(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, spec, 'RTM_NEWADDR');
    if (verb === 'replace') return this.addrReq(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, spec, 'RTM_NEWADDR (replace)');
    return this.addrReq(RTM_DELADDR, 0, spec, 'RTM_DELADDR');
  }

  routeRequest(verb: 'add' | 'replace' | 'del', spec: RouteSpec): NlRequest {
    if (verb === 'add') return this.routeReq(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, spec, 'RTM_NEWROUTE');
    if (verb === 'replace') return this.routeReq(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, spec, 'RTM_NEWROUTE (replace)');
    return this.routeReq(RTM_DELROUTE, 0, spec, 'RTM_DELROUTE', true);
  }

  neighRequest(verb: 'add' | 'replace' | 'del', spec: NeighSpec): NlRequest {
    if (verb === 'add') return this.neighReq(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_EXCL, spec, 'RTM_NEWNEIGH');
    if (verb === 'replace') return this.neighReq(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, spec, 'RTM_NEWNEIGH (replace)');
    return this.neighReq(RTM_DELNEIGH, 0, spec, 'RTM_DELNEIGH');
  }

  ruleRequest(verb: 'add' | 'del', spec: RuleSpec): NlRequest {
    return verb === 'add'
      ? { type: RTM_NEWRULE, flags: NLM_F_CREATE | NLM_F_EXCL, body: encodeRule(spec), operation: `RTM_NEWRULE ${ruleText(spec)}` }
      : { type: RTM_DELRULE, body: encodeRule(spec), operation: `RTM_DELRULE ${ruleText(spec)}` };
  }

  // ── policy-routing rules ─────────────────────────────────────────────────────────────────────────────

  ruleAdd(spec: RuleSpec): void {
    this.socket.request({ type: RTM_NEWRULE, flags: NLM_F_CREATE | NLM_F_EXCL, body: encodeRule(spec), operation: `RTM_NEWRULE ${ruleText(spec)}` });
  }
  ruleDel(spec: RuleSpec, opts: { ifExists?: boolean } = {}): boolean {
    try {
      this.socket.request({ type: RTM_DELRULE, body: encodeRule(spec), operation: `RTM_DELRULE ${ruleText(spec)}` });
      return true;
    } catch (e) {
      if (opts.ifExists && isNotFound(e)) return false;
      throw e;
    }
  }
  ruleList(family: IpFamily | 0 = 0): Rule[] {
    const msgs = this.socket.dump({ type: RTM_GETRULE, body: encodeRuleDump(family), operation: 'RTM_GETRULE dump' });
    return msgs.filter((m) => m.type === RTM_NEWRULE).map((m) => decodeRule(m.payload));
  }
}

function ruleText(s: RuleSpec): string {
  return [s.priority !== undefined ? `pref ${s.priority}` : '', s.from ? `from ${s.from}` : '', s.to ? `to ${s.to}` : '',
    s.iif ? `iif ${s.iif}` : '', s.fwmark !== undefined ? `fwmark ${s.fwmark}` : '', `lookup ${s.table}`].filter(Boolean).join(' ');
}

/** Normalise a CIDR to its canonical text (for comparisons). */
export function canonicalCidr(s: string): string {
  return cidrText(toCidr(s));
}
