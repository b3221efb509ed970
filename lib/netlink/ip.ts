/** What the rtnetlink codecs add to lib/util/ip.ts: address families as AF_* numbers, and MAC addresses. */
import { AF_INET, AF_INET6 } from '../sys/libc.js';
import { AddressError, type IpFamily } from '../util/ip.js';

/** The AF_* number of an IP family (4 → AF_INET, 6 → AF_INET6). */
export const afOf = (f: IpFamily): number => (f === 4 ? AF_INET : AF_INET6);
/** The IP family of an AF_* number (AF_INET → 4, else 6). */
export const familyOfAf = (af: number): IpFamily => (af === AF_INET ? 4 : 6);

/** MAC text "aa:bb:…" ↔ bytes. */
export function macToBytes(mac: string): Buffer {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(mac)) throw new AddressError(mac, `not a MAC address: ${JSON.stringify(mac)}`, 'mac');
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

/** Six bytes → MAC text "aa:bb:cc:dd:ee:ff". */
export function bytesToMac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}
