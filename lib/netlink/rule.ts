/** Policy-routing rules (RTM_NEWRULE/DELRULE/GETRULE): fib_rule_hdr + FRA_* attributes. */
import { NlWriter, parseAttrs } from './attrs.js';
import { afOf, familyOfAf } from './ip.js';
import { bytesToIp, ipToBytes, toCidr, type IpFamily } from '../util/ip.js';
import { NetlinkProtocolError } from './errors.js';
import { tableId, type RouteSpec } from './route.js';

const FRA = { DST: 1, SRC: 2, IIFNAME: 3, PRIORITY: 6, FWMARK: 10, TABLE: 15, FWMASK: 16, OIFNAME: 17 } as const;
const FR_ACT_TO_TBL = 1;

/** A policy routing rule to add/delete, as `ip rule` takes it: priority, lookup table, selectors. */
export interface RuleSpec {
  family?: IpFamily;
  priority?: number;
  /** Lookup table (id or main/local/default). */
  table: RouteSpec['table'];
  from?: string;
  to?: string;
  iif?: string;
  oif?: string;
  fwmark?: number;
  fwmask?: number;
}

/** A policy routing rule as read back (`action` 1 = lookup a table). */
export interface Rule {
  family: IpFamily;
  priority?: number;
  table: number;
  from?: string;
  to?: string;
  iif?: string;
  oif?: string;
  fwmark?: number;
  fwmask?: number;
  action: number;
}

export function encodeRule(spec: RuleSpec): Buffer {
  const src = spec.from ? toCidr(spec.from, 'rule from') : undefined;
  const dst = spec.to ? toCidr(spec.to, 'rule to') : undefined;
  const family = spec.family ?? src?.family ?? dst?.family ?? 4;
  const table = tableId(spec.table);
  const w = new NlWriter(96);
  w.u8(afOf(family)).u8(dst?.prefix ?? 0).u8(src?.prefix ?? 0).u8(0)
    .u8(table < 256 ? table : 0).u8(0).u8(0).u8(FR_ACT_TO_TBL).u32(0);
  w.attrU32(FRA.TABLE, table);
  if (spec.priority !== undefined) w.attrU32(FRA.PRIORITY, spec.priority);
  if (src) w.attr(FRA.SRC, ipToBytes(src.address));
  if (dst) w.attr(FRA.DST, ipToBytes(dst.address));
  if (spec.iif) w.attrString(FRA.IIFNAME, spec.iif);
  if (spec.oif) w.attrString(FRA.OIFNAME, spec.oif);
  if (spec.fwmark !== undefined) w.attrU32(FRA.FWMARK, spec.fwmark);
  if (spec.fwmask !== undefined) w.attrU32(FRA.FWMASK, spec.fwmask);
  return w.finish();
}

export function encodeRuleDump(family: IpFamily | 0): Buffer {
  const w = new NlWriter(16);
  w.u8(family ? afOf(family) : 0).zeros(11);
  return w.finish();
}

export function decodeRule(payload: Buffer): Rule {
  if (payload.length < 12) throw new NetlinkProtocolError('short fib_rule_hdr');
  const a = parseAttrs(payload, 12);
  const r: Rule = {
    family: familyOfAf(payload.readUInt8(0)),
    table: a.u32(FRA.TABLE) ?? payload.readUInt8(4),
    action: payload.readUInt8(7),
  };
  // the kernel leaves FRA_PRIORITY out for priority 0 (the "lookup local" rule)
  r.priority = a.u32(FRA.PRIORITY) ?? 0;
  const src = a.raw(FRA.SRC);
  if (src) r.from = `${bytesToIp(src)}/${payload.readUInt8(2)}`;
  const dst = a.raw(FRA.DST);
  if (dst) r.to = `${bytesToIp(dst)}/${payload.readUInt8(1)}`;
  const iif = a.string(FRA.IIFNAME);
  if (iif) r.iif = iif;
  const oif = a.string(FRA.OIFNAME);
  if (oif) r.oif = oif;
  const mark = a.u32(FRA.FWMARK);
  if (mark !== undefined) r.fwmark = mark;
  const mask = a.u32(FRA.FWMASK);
  if (mask !== undefined) r.fwmask = mask;
  return r;
}
