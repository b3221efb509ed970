/**
 * Netlink attribute (TLV) codec: `nlattr { u16 len; u16 type; }` + payload, each padded to 4 bytes.
 * Writer builds requests with nesting; `parseAttrs` reads a run of attributes into a lookup.
 */
import { NLA_F_NESTED, NLA_TYPE_MASK } from './constants.js';
import { NetlinkProtocolError } from './errors.js';

/** `n` rounded up to a multiple of 4 (netlink's alignment). */
export const align4 = (n: number): number => (n + 3) & ~3;

/** Growable little-endian byte writer with netlink attribute helpers. */
export class NlWriter {
  private buf: Buffer;
  length = 0;
  private nests: number[] = [];

  constructor(initial = 256) {
    this.buf = Buffer.alloc(initial);
  }

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  pad(): this {
    const p = align4(this.length) - this.length;
    this.reserve(p);
    this.buf.fill(0, this.length, this.length + p);
    this.length += p;
    return this;
  }

  u8(v: number): this { this.reserve(1); this.buf.writeUInt8(v, this.length); this.length += 1; return this; }
  u16(v: number): this { this.reserve(2); this.buf.writeUInt16LE(v, this.length); this.length += 2; return this; }
  u32(v: number): this { this.reserve(4); this.buf.writeUInt32LE(v >>> 0, this.length); this.length += 4; return this; }
  i32(v: number): this { this.reserve(4); this.buf.writeInt32LE(v, this.length); this.length += 4; return this; }
  bytes(b: Uint8Array): this { this.reserve(b.length); this.buf.set(b, this.length); this.length += b.length; return this; }
  zeros(n: number): this { this.reserve(n); this.buf.fill(0, this.length, this.length + n); this.length += n; return this; }

  /** Overwrite a u32 at an absolute offset (for lengths known only at the end). */
  patchU32(offset: number, v: number): void { this.buf.writeUInt32LE(v >>> 0, offset); }
  patchU16(offset: number, v: number): void { this.buf.writeUInt16LE(v, offset); }

  /** Attribute with a raw payload. */
  attr(type: number, payload: Uint8Array): this {
    const len = 4 + payload.length;
    this.u16(len).u16(type).bytes(payload).pad();
    return this;
  }
  attrU8(type: number, v: number): this { return this.attr(type, Uint8Array.of(v & 0xff)); }
  attrU16(type: number, v: number): this { const b = Buffer.alloc(2); b.writeUInt16LE(v); return this.attr(type, b); }
  /** u16 in network byte order (ports, VLAN protocol). */
  attrBe16(type: number, v: number): this { const b = Buffer.alloc(2); b.writeUInt16BE(v); return this.attr(type, b); }
  attrU32(type: number, v: number): this { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return this.attr(type, b); }
  attrBe32(type: number, v: number): this { const b = Buffer.alloc(4); b.writeUInt32BE(v >>> 0); return this.attr(type, b); }
  attrI32(type: number, v: number): this { const b = Buffer.alloc(4); b.writeInt32LE(v); return this.attr(type, b); }
  attrU64(type: number, v: bigint): this { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return this.attr(type, b); }
  /** NUL-terminated string attribute. */
  attrString(type: number, s: string): this { return this.attr(type, Buffer.from(`${s}\0`, 'utf8')); }
  attrFlag(type: number): this { return this.attr(type, new Uint8Array(0)); }

  /** Open a nested attribute; close it with `endNest()`. */
  beginNest(type: number): this {
    this.pad();
    this.nests.push(this.length);
    this.u16(0).u16(type | NLA_F_NESTED);
    return this;
  }
  endNest(): this {
    const start = this.nests.pop();
    if (start === undefined) throw new NetlinkProtocolError('endNest without beginNest');
    this.patchU16(start, this.length - start);
    return this.pad();
  }
  /** Nested attribute built by a callback. */
  nest(type: number, body: (w: this) => void): this {
    this.beginNest(type);
    body(this);
    return this.endNest();
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

/** A run of parsed attributes, keyed by type (without the NESTED/BYTEORDER flag bits). */
export class Attrs {
  readonly map = new Map<number, Buffer>();
  /** Attributes in order (some families repeat a type, e.g. multipath nexthops). */
  readonly list: Array<[number, Buffer]> = [];

  has(t: number): boolean { return this.map.has(t); }
  raw(t: number): Buffer | undefined { return this.map.get(t); }
  u8(t: number): number | undefined { const b = this.map.get(t); return b && b.length >= 1 ? b.readUInt8(0) : undefined; }
  u16(t: number): number | undefined { const b = this.map.get(t); return b && b.length >= 2 ? b.readUInt16LE(0) : undefined; }
  be16(t: number): number | undefined { const b = this.map.get(t); return b && b.length >= 2 ? b.readUInt16BE(0) : undefined; }
  u32(t: number): number | undefined { const b = this.map.get(t); return b && b.length >= 4 ? b.readUInt32LE(0) : undefined; }
  be32(t: number): number | undefined { const b = this.map.get(t); return b && b.length >= 4 ? b.readUInt32BE(0) : undefined; }
  i32(t: number): number | undefined { const b = this.map.get(t); return b && b.length >= 4 ? b.readInt32LE(0) : undefined; }
  u64(t: number): bigint | undefined { const b = this.map.get(t); return b && b.length >= 8 ? b.readBigUInt64LE(0) : undefined; }
  string(t: number): string | undefined {
    const b = this.map.get(t);
    if (!b) return undefined;
    const nul = b.indexOf(0);
    return b.toString('utf8', 0, nul >= 0 ? nul : b.length);
  }
  nested(t: number): Attrs | undefined { const b = this.map.get(t); return b ? parseAttrs(b) : undefined; }
}

/** Parse consecutive attributes from `buf` (a nested payload or what follows a fixed header). */
export function parseAttrs(buf: Buffer, offset = 0, end = buf.length): Attrs {
  const out = new Attrs();
  let p = offset;
  while (p + 4 <= end) {
    const len = buf.readUInt16LE(p);
    const type = buf.readUInt16LE(p + 2) & NLA_TYPE_MASK;
    if (len < 4 || p + len > end) throw new NetlinkProtocolError(`malformed attribute at ${p}: length ${len}`);
    const payload = buf.subarray(p + 4, p + len);
    out.map.set(type, payload);
    out.list.push([type, payload]);
    p += align4(len);
  }
  return out;
}
