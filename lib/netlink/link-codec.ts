/** rtnetlink wire format of links: ifinfomsg + IFLA_* attributes, IFLA_LINKINFO per kind. */
import { NlWriter, parseAttrs, type Attrs } from './attrs.js';
import { macToBytes, bytesToMac } from './ip.js';
import { bytesToIp, familyOf, ipToBytes } from '../util/ip.js';
import { NetlinkProtocolError } from './errors.js';
import type { Bridge, Link, LinkSpec, LinkChange, MacvlanMode, VlanProtocol, LinkState } from './link.js';
import { ValidationError } from '../util/errors.js';

export const IFLA = {
  ADDRESS: 1, BROADCAST: 2, IFNAME: 3, MTU: 4, LINK: 5, MASTER: 10, TXQLEN: 13, OPERSTATE: 16,
  LINKINFO: 18, NET_NS_PID: 19, IFALIAS: 20, AF_SPEC: 26, GROUP: 27, NET_NS_FD: 28, EXT_MASK: 29, LINK_NETNSID: 37,
} as const;
const INFO = { KIND: 1, DATA: 2, SLAVE_KIND: 4, SLAVE_DATA: 5 } as const;
const VETH_INFO_PEER = 1;
const VLAN = { ID: 1, FLAGS: 2, PROTOCOL: 5 } as const;
const VXLAN = { ID: 1, GROUP: 2, LINK: 3, LOCAL: 4, TTL: 5, LEARNING: 7, PORT: 15, GROUP6: 16, LOCAL6: 17 } as const;
const MACVLAN_MODE = 1;
const BR = { FORWARD_DELAY: 1, AGEING_TIME: 4, STP_STATE: 5, VLAN_FILTERING: 7, MCAST_SNOOPING: 23, VLAN_DEFAULT_PVID: 39 } as const;

export const IFF_UP = 0x1;
/** IFLA_EXT_MASK filters of a RTM_GETLINK (linux/rtnetlink.h RTEXT_FILTER_*). */
export const RTEXT_FILTER = { BRVLAN_COMPRESSED: 1 << 2, SKIP_STATS: 1 << 3 } as const;
export const IFF_LOWER_UP = 0x10000;
const ETH_P_8021Q = 0x8100;
const ETH_P_8021AD = 0x88a8;
const USER_HZ = 100; // bridge times are in clock_t (centiseconds)

const MACVLAN_MODES: Record<MacvlanMode, number> = { private: 1, vepa: 2, bridge: 4, passthru: 8, source: 16 };
const OPERSTATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];

/** Resolves a name to an ifindex in the request's namespace (done by the handle before encoding). */
export type IndexOf = (nameOrIndex: string | number, what: string) => number;

/** struct ifinfomsg: family, type, index, flags, change. */
export function writeIfinfomsg(w: NlWriter, index = 0, flags = 0, change = 0, family = 0): void {
  w.u8(family).u8(0).u16(0).i32(index).u32(flags).u32(change);
}

export interface NsFds {
  /** fd for IFLA_NET_NS_FD of the link itself, if it is created in / moved to another namespace. */
  self?: number;
  selfPid?: number;
  /** fd for the veth peer's namespace. */
  peer?: number;
  peerPid?: number;
}

/** Body of RTM_NEWLINK creating `spec`. */
export function encodeLinkCreate(spec: LinkSpec, indexOf: IndexOf, ns: NsFds): Buffer {
  const w = new NlWriter(256);
  writeIfinfomsg(w, 0, spec.up ? IFF_UP : 0, spec.up ? IFF_UP : 0);
  writeCommonAttrs(w, spec, indexOf);
  if (ns.self !== undefined) w.attrU32(IFLA.NET_NS_FD, ns.self);
  if (ns.selfPid !== undefined) w.attrU32(IFLA.NET_NS_PID, ns.selfPid);
  w.nest(IFLA.LINKINFO, () => {
    w.attrString(INFO.KIND, spec.kind);
    switch (spec.kind) {
      case 'veth':
        w.nest(INFO.DATA, () => {
          w.nest(VETH_INFO_PEER, () => {
            // the peer is a full ifinfomsg + attributes inside VETH_INFO_PEER. Never IFF_UP here: the kernel
            // configures the peer before pairing it, so veth_open fails with ENOTCONN; the handle brings it up after.
            writeIfinfomsg(w, 0, 0, 0);
            w.attrString(IFLA.IFNAME, spec.peer.name);
            if (spec.peer.mtu !== undefined) w.attrU32(IFLA.MTU, spec.peer.mtu);
            if (spec.peer.mac !== undefined) w.attr(IFLA.ADDRESS, macToBytes(spec.peer.mac));
            if (ns.peer !== undefined) w.attrU32(IFLA.NET_NS_FD, ns.peer);
            if (ns.peerPid !== undefined) w.attrU32(IFLA.NET_NS_PID, ns.peerPid);
          });
        });
        break;
      case 'bridge':
        w.nest(INFO.DATA, () => writeBridgeData(w, spec));
        break;
      case 'vlan':
        w.nest(INFO.DATA, () => {
          w.attrU16(VLAN.ID, spec.id);
          w.attrBe16(VLAN.PROTOCOL, spec.protocol === '802.1ad' ? ETH_P_8021AD : ETH_P_8021Q);
        });
        break;
      case 'vxlan':
        w.nest(INFO.DATA, () => {
          w.attrU32(VXLAN.ID, spec.vni);
          const remote = spec.remote ?? spec.group;
          if (remote !== undefined) {
            if (familyOf(remote) === 4) w.attr(VXLAN.GROUP, ipToBytes(remote));
            else w.attr(VXLAN.GROUP6, ipToBytes(remote));
          }
          if (spec.local !== undefined) {
            if (familyOf(spec.local) === 4) w.attr(VXLAN.LOCAL, ipToBytes(spec.local));
            else w.attr(VXLAN.LOCAL6, ipToBytes(spec.local));
          }
          if (spec.dev !== undefined) w.attrU32(VXLAN.LINK, indexOf(spec.dev, 'vxlan dev'));
          if (spec.dstPort !== undefined) w.attrBe16(VXLAN.PORT, spec.dstPort);
          if (spec.learning !== undefined) w.attrU8(VXLAN.LEARNING, spec.learning ? 1 : 0);
          if (spec.ttl !== undefined) w.attrU8(VXLAN.TTL, spec.ttl);
        });
        break;
      case 'macvlan':
        w.nest(INFO.DATA, () => {
          w.attrU32(MACVLAN_MODE, MACVLAN_MODES[spec.mode]);
        });
        break;
      default:
        throw new ValidationError('E_INVALID_VALUE', 'link kind', (spec as { kind: string }).kind, `unsupported link kind ${(spec as { kind: string }).kind}`);
    }
  });
  if (spec.kind === 'vlan' || spec.kind === 'macvlan') w.attrU32(IFLA.LINK, indexOf(spec.parent, `${spec.kind} parent`));
  return w.finish();
}

/** Bridge options that can be given at creation and changed later (IFLA_INFO_DATA of kind "bridge"). */
export type BridgeOptions = Pick<Bridge, 'stp' | 'vlanFiltering' | 'vlanDefaultPvid' | 'forwardDelay' | 'ageingTime' | 'mcastSnooping'>;

function writeBridgeData(w: NlWriter, o: BridgeOptions): void {
  if (o.forwardDelay !== undefined) w.attrU32(BR.FORWARD_DELAY, Math.round(o.forwardDelay * USER_HZ));
  if (o.ageingTime !== undefined) w.attrU32(BR.AGEING_TIME, Math.round(o.ageingTime * USER_HZ));
  if (o.stp !== undefined) w.attrU32(BR.STP_STATE, o.stp ? 1 : 0);
  if (o.vlanFiltering !== undefined) w.attrU8(BR.VLAN_FILTERING, o.vlanFiltering ? 1 : 0);
  if (o.vlanDefaultPvid !== undefined) w.attrU16(BR.VLAN_DEFAULT_PVID, o.vlanDefaultPvid);
  if (o.mcastSnooping !== undefined) w.attrU8(BR.MCAST_SNOOPING, o.mcastSnooping ? 1 : 0);
}

/** Body of RTM_NEWLINK changing a bridge's own options in place (kind + data, no NLM_F_CREATE). */
export function encodeBridgeChange(index: number, o: BridgeOptions): Buffer {
  const w = new NlWriter(96);
  writeIfinfomsg(w, index);
  w.nest(IFLA.LINKINFO, () => {
    w.attrString(INFO.KIND, 'bridge');
    w.nest(INFO.DATA, () => writeBridgeData(w, o));
  });
  return w.finish();
}

function writeCommonAttrs(w: NlWriter, a: { name?: string; mtu?: number; mac?: string; master?: string | number | null; alias?: string; txqlen?: number }, indexOf: IndexOf): void {
  if (a.name !== undefined) w.attrString(IFLA.IFNAME, a.name);
  if (a.mtu !== undefined) w.attrU32(IFLA.MTU, a.mtu);
  if (a.mac !== undefined) w.attr(IFLA.ADDRESS, macToBytes(a.mac));
  if (a.master !== undefined) w.attrU32(IFLA.MASTER, a.master === null ? 0 : indexOf(a.master, 'master'));
  if (a.alias !== undefined) w.attrString(IFLA.IFALIAS, a.alias);
  if (a.txqlen !== undefined) w.attrU32(IFLA.TXQLEN, a.txqlen);
}

/** Body of RTM_NEWLINK (no NLM_F_CREATE) changing an existing link. */
export function encodeLinkChange(ref: number | string, ch: LinkChange, indexOf: IndexOf, nsFd?: number, nsPid?: number): Buffer {
  // A link can be addressed by name (ifindex 0 + IFLA_IFNAME), saving a lookup; not while renaming it, since
  // IFLA_IFNAME then carries the new name.
  if (typeof ref === 'string' && ch.name !== undefined) throw new ValidationError('E_INVALID_REQUEST', 'link', ref, 'encodeLinkChange: a rename needs the ifindex');
  const w = new NlWriter(128);
  const flags = ch.up === undefined ? 0 : ch.up ? IFF_UP : 0;
  const change = ch.up === undefined ? 0 : IFF_UP;
  writeIfinfomsg(w, typeof ref === 'number' ? ref : 0, flags, change);
  if (typeof ref === 'string') w.attrString(IFLA.IFNAME, ref);
  writeCommonAttrs(w, ch, indexOf);
  if (nsFd !== undefined) w.attrU32(IFLA.NET_NS_FD, nsFd);
  if (nsPid !== undefined) w.attrU32(IFLA.NET_NS_PID, nsPid);
  return w.finish();
}

/** Body of RTM_DELLINK addressing one link by index or name (a RTM_GETLINK takes encodeLinkGet). */
export function encodeLinkRef(ref: string | number): Buffer {
  const w = new NlWriter(64);
  writeIfinfomsg(w, typeof ref === 'number' ? ref : 0);
  if (typeof ref === 'string') w.attrString(IFLA.IFNAME, ref);
  return w.finish();
}

/**
 * Body of RTM_GETLINK for one link by index or name. Without statistics (RTEXT_FILTER_SKIP_STATS: the kernel
 * then skips summing the per-CPU counters and IPv6's statistics blocks, ~40% of a veth's message): nothing here
 * reads them.
 */
export function encodeLinkGet(ref: string | number): Buffer {
  const w = new NlWriter(64);
  writeIfinfomsg(w, typeof ref === 'number' ? ref : 0);
  if (typeof ref === 'string') w.attrString(IFLA.IFNAME, ref);
  w.attrU32(IFLA.EXT_MASK, RTEXT_FILTER.SKIP_STATS);
  return w.finish();
}

/**
 * Body of a RTM_GETLINK dump (strict checking wants a clean ifinfomsg). The kernel filters by master and kind
 * when asked (a kind whose module is not loaded is not filtered: callers check the kind themselves).
 */
export function encodeLinkDump(filter: { master?: number; kind?: string } = {}): Buffer {
  const w = new NlWriter(40);
  writeIfinfomsg(w);
  w.attrU32(IFLA.EXT_MASK, RTEXT_FILTER.SKIP_STATS);
  if (filter.master !== undefined) w.attrU32(IFLA.MASTER, filter.master);
  if (filter.kind !== undefined) {
    const kind = filter.kind;
    w.nest(IFLA.LINKINFO, () => { w.attrString(INFO.KIND, kind); });
  }
  return w.finish();
}

/** Raw decode of one RTM_NEWLINK message; names of master/parent/peer are resolved later by the handle. */
export interface RawLink {
  link: Link;
  /** Indices to resolve into names: master, parent (vlan/macvlan/vxlan dev), veth peer. */
  refs: { master?: number; parent?: number; vxlanDev?: number; peer?: number };
}

export function decodeLink(payload: Buffer): RawLink {
  if (payload.length < 16) throw new NetlinkProtocolError('short ifinfomsg');
  const index = payload.readInt32LE(4);
  const flags = payload.readUInt32LE(8);
  const a = parseAttrs(payload, 16);
  const name = a.string(IFLA.IFNAME) ?? '';
  const macRaw = a.raw(IFLA.ADDRESS);
  const state: LinkState = {
    index,
    flags,
    up: (flags & IFF_UP) !== 0,
    lowerUp: (flags & IFF_LOWER_UP) !== 0,
    operState: OPERSTATES[a.u8(IFLA.OPERSTATE) ?? 0] ?? 'unknown',
    mtu: a.u32(IFLA.MTU) ?? 0,
  };
  if (macRaw && macRaw.length === 6) state.mac = bytesToMac(macRaw);
  const master = a.u32(IFLA.MASTER);
  if (master) state.masterIndex = master;
  const linkIdx = a.u32(IFLA.LINK);
  const nsid = a.i32(IFLA.LINK_NETNSID);
  // a peer/parent in another namespace may well have the same ifindex as this link
  if (linkIdx !== undefined && (linkIdx !== index || nsid !== undefined)) state.linkIndex = linkIdx;
  if (nsid !== undefined) state.linkNetnsId = nsid;
  const alias = a.string(IFLA.IFALIAS);
  const txqlen = a.u32(IFLA.TXQLEN);

  const info = a.nested(IFLA.LINKINFO);
  const kind = info?.string(INFO.KIND);
  const data = info?.nested(INFO.DATA);
  const common = {
    name, ...state,
    ...(alias ? { alias } : {}),
    ...(txqlen !== undefined ? { txqlen } : {}),
  };
  const refs: RawLink['refs'] = {};
  if (master) refs.master = master;
  let link: Link;
  switch (kind) {
    case 'veth':
    {
      const peer: { index?: number; netnsId?: number } = {};
      if (linkIdx) {
        peer.index = linkIdx;
        if (nsid !== undefined) peer.netnsId = nsid;
        else refs.peer = linkIdx;
      }
      link = { ...common, kind: 'veth', peer } as Link;
      break;
    }
    case 'bridge':
      link = { ...common, kind: 'bridge', ...decodeBridge(data) } as Link;
      break;
    case 'vlan': {
      const proto = data?.be16(VLAN.PROTOCOL);
      link = {
        ...common, kind: 'vlan', id: data?.u16(VLAN.ID) ?? 0, parent: linkIdx ?? 0,
        protocol: (proto === ETH_P_8021AD ? '802.1ad' : '802.1Q') as VlanProtocol,
      } as Link;
      if (linkIdx && nsid === undefined) refs.parent = linkIdx;
      break;
    }
    case 'vxlan':
      // with IFLA_LINK_NETNSID, the vxlan's dev index belongs to another namespace: not resolvable here
      link = { ...common, kind: 'vxlan', ...decodeVxlan(data, nsid === undefined ? refs : {}) } as Link;
      break;
    case 'macvlan': {
      const m = data?.u32(MACVLAN_MODE) ?? 4;
      const mode = (Object.entries(MACVLAN_MODES).find(([, v]) => v === m)?.[0] ?? 'bridge') as MacvlanMode;
      link = { ...common, kind: 'macvlan', parent: linkIdx ?? 0, mode } as Link;
      if (linkIdx && nsid === undefined) refs.parent = linkIdx;
      break;
    }
    default:
      link = { ...common, kind: 'device', ...(kind ? { rawKind: kind } : {}) } as Link;
  }
  return { link, refs };
}

function decodeBridge(d: Attrs | undefined): Record<string, unknown> {
  if (!d) return {};
  const out: Record<string, unknown> = {};
  const stp = d.u32(BR.STP_STATE);
  if (stp !== undefined) out.stp = stp !== 0;
  const vf = d.u8(BR.VLAN_FILTERING);
  if (vf !== undefined) out.vlanFiltering = vf !== 0;
  const pvid = d.u16(BR.VLAN_DEFAULT_PVID);
  if (pvid !== undefined) out.vlanDefaultPvid = pvid;
  const fd = d.u32(BR.FORWARD_DELAY);
  if (fd !== undefined) out.forwardDelay = fd / USER_HZ;
  const at = d.u32(BR.AGEING_TIME);
  if (at !== undefined) out.ageingTime = at / USER_HZ;
  const ms = d.u8(BR.MCAST_SNOOPING);
  if (ms !== undefined) out.mcastSnooping = ms !== 0;
  return out;
}

function decodeVxlan(d: Attrs | undefined, refs: RawLink['refs']): Record<string, unknown> {
  if (!d) return { vni: 0 };
  const out: Record<string, unknown> = { vni: d.u32(VXLAN.ID) ?? 0 };
  const g = d.raw(VXLAN.GROUP) ?? d.raw(VXLAN.GROUP6);
  if (g) {
    const ip = bytesToIp(g);
    if (ip !== '0.0.0.0' && ip !== '::') {
      const multicast = g.length === 4 ? g[0] >= 224 && g[0] <= 239 : g[0] === 0xff;
      out[multicast ? 'group' : 'remote'] = ip;
    }
  }
  const l = d.raw(VXLAN.LOCAL) ?? d.raw(VXLAN.LOCAL6);
  if (l) {
    const ip = bytesToIp(l);
    if (ip !== '0.0.0.0' && ip !== '::') out.local = ip;
  }
  const dev = d.u32(VXLAN.LINK);
  if (dev) { out.dev = dev; refs.vxlanDev = dev; }
  const port = d.be16(VXLAN.PORT);
  if (port !== undefined) out.dstPort = port;
  const learning = d.u8(VXLAN.LEARNING);
  if (learning !== undefined) out.learning = learning !== 0;
  const ttl = d.u8(VXLAN.TTL);
  if (ttl !== undefined) out.ttl = ttl;
  return out;
}
