/**
 * VLANs of bridge ports (what `bridge vlan add/del/show` does), for bridges with vlan_filtering on:
 * RTM_SETLINK / RTM_DELLINK with family AF_BRIDGE and IFLA_AF_SPEC { IFLA_BRIDGE_FLAGS, IFLA_BRIDGE_VLAN_INFO },
 * listed by an AF_BRIDGE RTM_GETLINK dump with IFLA_EXT_MASK = RTEXT_FILTER_BRVLAN_COMPRESSED.
 * Kernels built without CONFIG_BRIDGE_VLAN_FILTERING answer EOPNOTSUPP to add/del and list nothing.
 */
import { NlWriter, parseAttrs } from './attrs.js';
import { IFLA, RTEXT_FILTER, writeIfinfomsg } from './link-codec.js';
import { NetlinkProtocolError } from './errors.js';
import { AF_BRIDGE } from '../sys/libc.js';
import { ValidationError } from '../util/errors.js';

const IFLA_BRIDGE_FLAGS = 0;
const IFLA_BRIDGE_VLAN_INFO = 2;
const BRIDGE_FLAGS_SELF = 2;
/** BRIDGE_VLAN_INFO_* flags of a bridge port VLAN entry (linux/if_bridge.h). */
export const BRIDGE_VLAN_INFO = {
  MASTER: 1 << 0, PVID: 1 << 1, UNTAGGED: 1 << 2, RANGE_BEGIN: 1 << 3, RANGE_END: 1 << 4, BRENTRY: 1 << 5,
} as const;

/** A VLAN (or range) of a bridge port to add/delete, as `bridge vlan add/del` takes it. */
export interface BridgeVlanSpec {
  /** The bridge port (or, with `self`, the bridge itself), by name or index. */
  dev: string | number;
  /** VLAN id 1–4094. */
  vid: number;
  /** Last id of a range vid…vidEnd (not with `pvid`). */
  vidEnd?: number;
  /** Untagged frames entering the port are put into this VLAN (one per port). */
  pvid?: boolean;
  /** Frames of this VLAN leave the port untagged. */
  untagged?: boolean;
  /** The bridge device's own VLAN membership (`bridge vlan add … dev br0 self`). */
  self?: boolean;
}

/** A bridge port VLAN entry as read back (`bridge vlan show`). */
export interface BridgeVlan {
  ifindex: number;
  /** Resolved by the handle. */
  dev?: string;
  vid: number;
  /** Present when the kernel reported a range vid…vidEnd. */
  vidEnd?: number;
  pvid: boolean;
  untagged: boolean;
  /** Raw BRIDGE_VLAN_INFO_* flags of the entry. */
  flags: number;
}

function checkVid(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 1 || v > 4094) {
    throw new ValidationError('E_INVALID_VALUE', `bridge vlan ${what}`, v, `bridge vlan ${what} ${v}: a VLAN id is an integer in 1-4094`);
  }
}

/** Body of RTM_SETLINK (add) or RTM_DELLINK (delete) for one VLAN or range on a port. */
export function encodeBridgeVlan(spec: BridgeVlanSpec, ifindex: number): Buffer {
  checkVid(spec.vid, 'vid');
  if (spec.vidEnd !== undefined) {
    checkVid(spec.vidEnd, 'vidEnd');
    if (spec.vidEnd < spec.vid) throw new ValidationError('E_INVALID_VALUE', 'bridge vlan vidEnd', spec.vidEnd, `bridge vlan ${spec.vid}-${spec.vidEnd}: range end below its start`);
    if (spec.pvid && spec.vidEnd !== spec.vid) throw new ValidationError('E_INVALID_VALUE', 'bridge vlan pvid', spec.pvid, `bridge vlan ${spec.vid}-${spec.vidEnd}: a PVID cannot be a range`);
  }
  let flags = 0;
  if (spec.pvid) flags |= BRIDGE_VLAN_INFO.PVID;
  if (spec.untagged) flags |= BRIDGE_VLAN_INFO.UNTAGGED;
  const w = new NlWriter(64);
  writeIfinfomsg(w, ifindex, 0, 0, AF_BRIDGE);
  const info = (f: number, vid: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt16LE(f, 0);
    b.writeUInt16LE(vid, 2);
    return b;
  };
  w.nest(IFLA.AF_SPEC, () => {
    if (spec.self) w.attrU16(IFLA_BRIDGE_FLAGS, BRIDGE_FLAGS_SELF);
    if (spec.vidEnd !== undefined && spec.vidEnd !== spec.vid) {
      w.attr(IFLA_BRIDGE_VLAN_INFO, info(flags | BRIDGE_VLAN_INFO.RANGE_BEGIN, spec.vid));
      w.attr(IFLA_BRIDGE_VLAN_INFO, info(flags | BRIDGE_VLAN_INFO.RANGE_END, spec.vidEnd));
    } else {
      w.attr(IFLA_BRIDGE_VLAN_INFO, info(flags, spec.vid));
    }
  });
  return w.finish();
}

/** Body of the AF_BRIDGE RTM_GETLINK dump that reports port VLANs (ranges compressed). */
export function encodeBridgeVlanDump(): Buffer {
  const w = new NlWriter(32);
  writeIfinfomsg(w, 0, 0, 0, AF_BRIDGE);
  w.attrU32(IFLA.EXT_MASK, RTEXT_FILTER.BRVLAN_COMPRESSED);
  return w.finish();
}

/** VLAN entries of one AF_BRIDGE RTM_NEWLINK message (none when the port has no VLANs). */
export function decodeBridgeVlans(payload: Buffer): BridgeVlan[] {
  if (payload.length < 16) throw new NetlinkProtocolError('short ifinfomsg');
  const ifindex = payload.readInt32LE(4);
  const spec = parseAttrs(payload, 16).nested(IFLA.AF_SPEC);
  if (!spec) return [];
  const out: BridgeVlan[] = [];
  let begin: { vid: number; flags: number } | undefined;
  for (const [type, b] of spec.list) {
    if (type !== IFLA_BRIDGE_VLAN_INFO || b.length < 4) continue;
    const flags = b.readUInt16LE(0);
    const vid = b.readUInt16LE(2);
    if (flags & BRIDGE_VLAN_INFO.RANGE_BEGIN) {
      begin = { vid, flags };
      continue;
    }
    const entry = (first: number, f: number): BridgeVlan => ({
      ifindex, vid: first, pvid: (f & BRIDGE_VLAN_INFO.PVID) !== 0, untagged: (f & BRIDGE_VLAN_INFO.UNTAGGED) !== 0,
      flags: f & ~(BRIDGE_VLAN_INFO.RANGE_BEGIN | BRIDGE_VLAN_INFO.RANGE_END),
    });
    if (flags & BRIDGE_VLAN_INFO.RANGE_END && begin) {
      out.push({ ...entry(begin.vid, begin.flags), vidEnd: vid });
      begin = undefined;
    } else {
      out.push(entry(vid, flags));
    }
  }
  return out;
}
