/**
 * POSIX `cksum` CRC (what the upstream proxy calls "CRC32" when it picks a host with
 * `printf '%s' "$key" | cksum`). It is NOT zlib's crc32: polynomial 0x04C11DB7 processed MSB
 * first (unreflected), initial value 0, the data followed by its length in bytes (least
 * significant byte first, only as many bytes as the length needs), result complemented.
 * Bit-compatible with coreutils so existing deployments keep their host choices.
 */

const POLY = 0x04c11db7;

const TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ POLY : c << 1;
    t[i] = c >>> 0;
  }
  return t;
})();

function step(crc: number, byte: number): number {
  return ((crc << 8) ^ TABLE[((crc >>> 24) ^ byte) & 0xff]) >>> 0;
}

/** The first number `cksum` prints for `data` (a string is taken as its UTF-8 bytes). */
export function posixCksum(data: Uint8Array | string): number {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let crc = 0;
  for (const b of bytes) crc = step(crc, b);
  for (let n = bytes.length; n > 0; n = Math.floor(n / 256)) crc = step(crc, n % 256);
  return ~crc >>> 0;
}

/** Upstream's preferred host index: cksum of the routing key modulo the number of hosts. */
export function preferredHostIndex(routingKey: string, hostCount: number): number {
  if (!Number.isInteger(hostCount) || hostCount <= 0) throw new RangeError(`host count ${hostCount}`);
  return posixCksum(routingKey) % hostCount;
}
