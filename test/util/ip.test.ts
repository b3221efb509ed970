// lib/util/ip.ts, the one IP module (pure: no kernel, no sandbox needed).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import {
  AddressError, bigIntToIp, bytesToIp, canonicalIp, canonicalIpv4, canonicalIpv6, cidrBounds, cidrContains, familyOf, ipToBigInt,
  ipToBytes, isIpv4, netmask, networkAddress, networkText, parseCidr, toCidr,
} from '../../lib/util/ip.js';
import { ValidationError } from '../../lib/util/errors.js';
import { thrown } from '../helpers/expect.js';

/** What the WHATWG URL parser makes of an IPv6 literal: RFC 5952 text. */
const viaUrl = (s: string): string => new URL(`http://[${s}]/`).hostname.slice(1, -1);

test('IPv6: canonical text agrees with the URL parser on random addresses, round trips through bytes and bigint', () => {
  for (let i = 0; i < 3000; i++) {
    const b = randomBytes(16);
    const start = b[0] % 8;
    for (let w = start; w < Math.min(8, start + (b[1] % 6)); w++) b.writeUInt16BE(0, w * 2);
    if (b[2] % 3 === 0) b.writeUInt16BE(0, (b[3] % 8) * 2);
    const text = bytesToIp(b);
    assert.is(text, viaUrl(text));
    assert.ok(ipToBytes(text).equals(b));
    assert.is(bigIntToIp(ipToBigInt(text), 6), text);
    // an uncompressed upper-case spelling comes back canonical
    const long = Array.from({ length: 8 }, (_, k) => b.readUInt16BE(k * 2).toString(16).toUpperCase().padStart(4, '0')).join(':');
    assert.is(canonicalIpv6(long), text, long);
  }
  assert.is(canonicalIpv6('::ffff:10.1.2.3'), '::ffff:a01:203');
  assert.is(canonicalIpv6('::1.2.3.4'), '::102:304');
  assert.is(canonicalIpv6('1:2:3:4:5:6:7::'), '1:2:3:4:5:6:7:0');
});

test('literals: the strict forms, the same verdict as node:net on well-formed and malformed text', () => {
  const good = ['0.0.0.0', '255.255.255.255', '10.1.2.3', '::', '::1', '1::', 'fe80::1:2:3:4', '2001:DB8::A', '::ffff:1.2.3.4', '1:2:3:4:5:6:7:8'];
  const bad = ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.04', ' 1.2.3.4', '1.2.3.4 ', 'a.b.c.d', ':', ':::', '1::2::3',
    '1:2:3:4:5:6:7:8:9', '12345::', 'g::', 'fe80::1%eth0', '::ffff:01.2.3.4', '::1.2.3', '1:2:3:4:5:6:7:8::', 'localhost', '1.2.3.4/24'];
  for (const s of good) assert.ok(canonicalIp(s), s);
  for (const s of bad) assert.is(canonicalIp(s), undefined, s);
  // random short strings of address characters: we accept exactly what node:net accepts (minus zone ids)
  const alphabet = '0123456789abcdef:.';
  for (let i = 0; i < 20000; i++) {
    const n = 1 + (randomBytes(1)[0] % 20);
    const s = Array.from(randomBytes(n), (x) => alphabet[x % alphabet.length]).join('');
    assert.is(canonicalIp(s) !== undefined, isIP(s) !== 0, s);
  }
  assert.is(canonicalIpv4('10.0.0.1'), '10.0.0.1');
  assert.ok(isIpv4('10.0.0.1'));
  assert.not.ok(isIpv4('::1'));
  assert.not.ok(isIpv4(7));
  assert.is(familyOf('10.0.0.1'), 4);
  assert.is(familyOf('::1'), 6);
  assert.instance(thrown(() => familyOf('nope'), AddressError, { code: 'E_INVALID_ADDRESS' }), ValidationError);
});

test('prefixes: strict parse, host prefixes, network address, containment, bounds, netmask', () => {
  assert.equal(parseCidr('10.1.1.7/24'), { family: 4, address: '10.1.1.7', prefix: 24 });
  assert.equal(parseCidr('2001:DB8::1/64'), { family: 6, address: '2001:db8::1', prefix: 64 });
  for (const bad of ['10.1.1.0', '10.1.1.0/33', '10.1.1.0/024', '10.1.1.0/', '/24', '::/129', 'x/1']) assert.is(parseCidr(bad), undefined, bad);
  assert.equal(toCidr('10.1.1.7'), { family: 4, address: '10.1.1.7', prefix: 32 });
  assert.throws(() => toCidr('10.1.1.7/33', 'route destination'), /route destination: bad prefix length/);
  assert.throws(() => toCidr('x', 'peer'), /peer: not an IP address or CIDR/);
  assert.is(networkAddress(toCidr('10.1.2.3/20')), '10.1.0.0');
  assert.is(networkAddress(toCidr('10.1.2.3/0')), '0.0.0.0');
  assert.is(networkAddress(toCidr('2001:db8:abcd:1234::1/50')), '2001:db8:abcd::');
  assert.is(networkText(toCidr('10.1.1.7/24')), '10.1.1.0/24');
  assert.ok(cidrContains(toCidr('10.1.0.0/16'), '10.1.255.1'));
  assert.not.ok(cidrContains(toCidr('10.1.0.0/16'), '10.2.0.1'));
  assert.not.ok(cidrContains(toCidr('10.1.0.0/16'), '::1'));
  assert.not.ok(cidrContains(toCidr('10.1.0.0/16'), '010.1.0.1'));
  assert.ok(cidrContains(toCidr('::/0'), '2001:db8::1'));
  assert.equal(cidrBounds(toCidr('10.1.1.9/30')), { lo: ipToBigInt('10.1.1.8'), hi: ipToBigInt('10.1.1.11') });
  assert.is(netmask(24), '255.255.255.0');
  assert.is(netmask(0), '0.0.0.0');
  assert.is(netmask(32), '255.255.255.255');
});

test.run();
