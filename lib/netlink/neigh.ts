/** Neighbours (ARP/NDP entries; RTM_NEWNEIGH/DELNEIGH/GETNEIGH): ndmsg + NDA_* attributes. */
import { NlWriter, parseAttrs } from './attrs.js';
import { macToBytes, bytesToMac, afOf, familyOfAf } from './ip.js';
import { bytesToIp, familyOf, ipToBytes, type IpFamily } from '../util/ip.js';
import { NetlinkProtocolError } from './errors.js';

/** A neighbour entry's state (`ip neigh … nud`). */
export type NeighState = 'incomplete' | 'reachable' | 'stale' | 'delay' | 'probe' | 'failed' | 'noarp' | 'permanent';
const STATES: Record<NeighState, number> = {
  incomplete: 0x01, reachable: 0x02, stale: 0x04, delay: 0x08, probe: 0x10, failed: 0x20, noarp: 0x40, permanent: 0x80,
};
const NDA = { DST: 1, LLADDR: 2, IFINDEX: 8 } as const;
const NTF_USE = 0x01;
const NTF_PROXY = 0x08;

/** A neighbour (ARP/NDP) entry to add/replace/delete, as `ip neigh` takes it. */
export interface NeighSpec {
  dev: string | number;
  ip: string;
  /** Link-layer address; required unless `proxy`. */
  mac?: string;
  /** Default permanent. */
  state?: NeighState;
  /** Proxy ARP/NDP entry (`ip neigh add proxy`). */
  proxy?: boolean;
  /**
   * NTF_USE: no entry is written, the kernel is asked to resolve the address as if a packet were waiting
   * (a missing entry is created INCOMPLETE and probed at once; no `mac` or `state`).
   */
  use?: boolean;
}

/** A neighbour entry as read back. */
export interface Neigh {
  ifindex: number;
  dev?: string;
  family: IpFamily;
  ip: string;
  mac?: string;
  state: NeighState | 'none';
  proxy: boolean;
}

export function encodeNeigh(spec: NeighSpec, ifindex: number): Buffer {
  const family = familyOf(spec.ip);
  const w = new NlWriter(64);
  w.u8(afOf(family)).u8(0).u16(0).i32(ifindex)
    .u16(spec.proxy || spec.use ? 0 : STATES[spec.state ?? 'permanent'])
    .u8((spec.proxy ? NTF_PROXY : 0) | (spec.use ? NTF_USE : 0)).u8(0);
  w.attr(NDA.DST, ipToBytes(spec.ip));
  if (spec.mac) w.attr(NDA.LLADDR, macToBytes(spec.mac));
  return w.finish();
}

/**
 * Body of a neighbour dump. Strict checking refuses a non-zero ndm_ifindex in a dump request ("Invalid values
 * in header for neighbor dump request"): the interface filter goes in NDA_IFINDEX.
 */
export function encodeNeighDump(family: IpFamily | 0, ifindex = 0, proxy = false): Buffer {
  const w = new NlWriter(24);
  w.u8(family ? afOf(family) : 0).u8(0).u16(0).i32(0).u16(0).u8(proxy ? NTF_PROXY : 0).u8(0);
  if (ifindex) w.attrU32(NDA.IFINDEX, ifindex);
  return w.finish();
}

/**
 * Body of RTM_GETNEIGH for one entry (the kernel's neigh_get, Linux ≥ 5.0): the device in ndm_ifindex,
 * the address in NDA_DST and nothing else — state, type and flags must be zero or the request is refused.
 */
export function encodeNeighGet(ip: string, ifindex: number): Buffer {
  const w = new NlWriter(32);
  w.u8(afOf(familyOf(ip))).u8(0).u16(0).i32(ifindex).u16(0).u8(0).u8(0);
  w.attr(NDA.DST, ipToBytes(ip));
  return w.finish();
}

export function decodeNeigh(payload: Buffer): Neigh {
  if (payload.length < 12) throw new NetlinkProtocolError('short ndmsg');
  const a = parseAttrs(payload, 12);
  const st = payload.readUInt16LE(8);
  const dst = a.raw(NDA.DST);
  const ll = a.raw(NDA.LLADDR);
  const n: Neigh = {
    family: familyOfAf(payload.readUInt8(0)),
    ifindex: payload.readInt32LE(4),
    ip: dst ? bytesToIp(dst) : '',
    state: (Object.entries(STATES).find(([, v]) => v === st)?.[0] as NeighState | undefined) ?? 'none',
    proxy: (payload.readUInt8(10) & NTF_PROXY) !== 0,
  };
  if (ll && ll.length === 6) n.mac = bytesToMac(ll);
  return n;
}
