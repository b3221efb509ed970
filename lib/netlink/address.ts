/** Addresses (RTM_NEWADDR/DELADDR/GETADDR): ifaddrmsg + IFA_* attributes, IPv4 and IPv6. */
import { NlWriter, parseAttrs } from './attrs.js';
import { afOf, familyOfAf } from './ip.js';
import { AddressError, bigIntToIp, bytesToIp, cidrBounds, ipToBytes, toCidr, type IpFamily } from '../util/ip.js';
import { NetlinkProtocolError } from './errors.js';

/** An address's scope (`ip addr … scope`). */
export type AddrScope = 'universe' | 'site' | 'link' | 'host' | 'nowhere';
export const SCOPES: Record<AddrScope, number> = { universe: 0, site: 200, link: 253, host: 254, nowhere: 255 };
export const scopeName = (n: number): AddrScope =>
  (Object.entries(SCOPES).find(([, v]) => v === n)?.[0] as AddrScope | undefined) ?? 'universe';

const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, BROADCAST: 4, FLAGS: 8 } as const;
/** Address flag: no duplicate address detection (IPv6). */
export const IFA_F_NODAD = 0x02;
/** Address flag: a permanent (configured, not autoconfigured) address. */
export const IFA_F_PERMANENT = 0x80;
/** Address flag: no prefix route is installed for the address. */
export const IFA_F_NOPREFIXROUTE = 0x200;

/** An address to add/replace/delete. */
export interface AddressSpec {
  /** Interface name or index. */
  dev: string | number;
  /** "10.0.0.1/24", "2001:db8::1/64", or a bare address (host prefix). */
  address: string;
  /**
   * Point-to-point peer, IPv4 only: "10.0.0.2", or "10.0.0.0/30" whose length then becomes the prefix length
   * (as with `ip addr add 10.0.0.1 peer 10.0.0.2/30`). Give the same peer to `addrDel`.
   */
  peer?: string;
  /** IPv4 broadcast address, or true to compute it from the prefix (`ip addr add … brd +`). */
  broadcast?: string | true;
  label?: string;
  scope?: AddrScope;
  /** Do not install the prefix route. */
  noPrefixRoute?: boolean;
  /** IPv6: skip duplicate address detection (the address is usable at once). */
  noDad?: boolean;
}

/** An address as read back: "10.0.0.1/24" with its family, prefix length, interface, scope and flags. */
export interface Address {
  ifindex: number;
  /** "10.0.0.1/24". */
  address: string;
  family: IpFamily;
  prefixLen: number;
  /** The address without the prefix length. */
  ip: string;
  peer?: string;
  broadcast?: string;
  label?: string;
  scope: AddrScope;
  flags: number;
  /** Resolved by the handle. */
  dev?: string;
}

/** IPv4 broadcast address of ip/len (all host bits set). */
export function broadcastOf(ip: string, len: number): string {
  return bigIntToIp(cidrBounds({ family: 4, address: ip, prefix: len }).hi, 4);
}

/** The prefix length sent for `spec`: a peer's own length wins, as with `ip addr add … peer P/len`. */
export function encodedPrefixLen(spec: AddressSpec, ownLen: number): number {
  const slash = spec.peer?.indexOf('/') ?? -1;
  return spec.peer !== undefined && slash >= 0 ? toCidr(spec.peer, 'peer').prefix : ownLen;
}

export function encodeAddress(spec: AddressSpec, ifindex: number): Buffer {
  const p = toCidr(spec.address, 'address');
  const peer = spec.peer === undefined ? undefined : toCidr(spec.peer, 'peer');
  if (peer && (peer.family !== 4 || p.family !== 4)) throw new AddressError(spec.peer!, 'peer: IPv4 addresses only', 'peer');
  const prefixLen = encodedPrefixLen(spec, p.prefix);
  const w = new NlWriter(96);
  let flags = 0;
  if (spec.noPrefixRoute) flags |= IFA_F_NOPREFIXROUTE;
  if (spec.noDad) flags |= IFA_F_NODAD;
  w.u8(afOf(p.family)).u8(prefixLen).u8(flags & 0xff).u8(SCOPES[spec.scope ?? 'universe']).u32(ifindex);
  const local = ipToBytes(p.address);
  if (p.family === 4) {
    w.attr(IFA.LOCAL, local);
    w.attr(IFA.ADDRESS, peer ? ipToBytes(peer.address) : local);
    if (spec.broadcast !== undefined) {
      const brd = spec.broadcast === true ? broadcastOf(p.address, p.prefix) : spec.broadcast;
      w.attr(IFA.BROADCAST, ipToBytes(brd));
    }
  } else {
    w.attr(IFA.ADDRESS, local);
  }
  if (spec.label !== undefined) w.attrString(IFA.LABEL, spec.label);
  if (flags) w.attrU32(IFA.FLAGS, flags);
  return w.finish();
}

/** Body of an address dump, filtered by family (0 = all) and interface (0 = all). */
export function encodeAddressDump(family: IpFamily | 0, ifindex = 0): Buffer {
  const w = new NlWriter(16);
  w.u8(family ? afOf(family) : 0).u8(0).u8(0).u8(0).u32(ifindex);
  return w.finish();
}

export function decodeAddress(payload: Buffer): Address {
  if (payload.length < 8) throw new NetlinkProtocolError('short ifaddrmsg');
  const family = familyOfAf(payload.readUInt8(0));
  const prefixLen = payload.readUInt8(1);
  const scope = scopeName(payload.readUInt8(3));
  const ifindex = payload.readUInt32LE(4);
  const a = parseAttrs(payload, 8);
  const localRaw = a.raw(IFA.LOCAL);
  const addrRaw = a.raw(IFA.ADDRESS);
  const ipRaw = localRaw ?? addrRaw;
  if (!ipRaw) throw new NetlinkProtocolError('address message without IFA_LOCAL/IFA_ADDRESS');
  const ip = bytesToIp(ipRaw);
  const out: Address = {
    ifindex, family, prefixLen, ip, address: `${ip}/${prefixLen}`, scope,
    flags: a.u32(IFA.FLAGS) ?? payload.readUInt8(2),
  };
  if (localRaw && addrRaw && !localRaw.equals(addrRaw)) out.peer = bytesToIp(addrRaw);
  const brd = a.raw(IFA.BROADCAST);
  if (brd) out.broadcast = bytesToIp(brd);
  const label = a.string(IFA.LABEL);
  if (label) out.label = label;
  return out;
}
