// The wire codec without the kernel: addresses, attributes, message framing, extended ACKs, bridge VLAN
// messages, sysctl keys. Pure: touches nothing, needs no sandbox.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import {
  NlWriter, parseAttrs, parseMessages, decodeError, NetlinkProtocolError, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_ERROR,
  ipToBytes, bytesToIp, toCidr, networkAddress, cidrContains, macToBytes, bytesToMac, validIfName, canonicalCidr,
} from '../../lib/netlink/index.js';
import { encodeBridgeVlan, encodeBridgeVlanDump, decodeBridgeVlans, BRIDGE_VLAN_INFO } from '../../lib/netlink/bridge-vlan.js';
import { decodeLink } from '../../lib/netlink/link-codec.js';
import { sysctlPath, confKey, SysctlError } from '../../lib/netns/sysctl.js';

const test = suite('codec');

test('IPv6 text ↔ bytes: canonical form (RFC 5952) agrees with the WHATWG URL parser on random addresses', () => {
  const samples = ['::', '::1', '1::', '2001:db8::1', '2001:db8:0:0:1:0:0:1', 'fe80::1:2:3:4', '::ffff:10.1.2.3', '2001:DB8::A'];
  for (let i = 0; i < 2000; i++) {
    const b = randomBytes(16);
    // random zero runs so that "::" placement is exercised
    const start = b[0] % 8;
    const len = b[1] % 6;
    for (let w = start; w < Math.min(8, start + len); w++) b.writeUInt16BE(0, w * 2);
    if (b[2] % 3 === 0) b.writeUInt16BE(0, (b[3] % 8) * 2);
    samples.push(bytesToIp(b));
    const viaUrl = new URL(`http://[${bytesToIp(b)}]/`).hostname.slice(1, -1);
    assert.is(bytesToIp(b), viaUrl, `canonical form of ${b.toString('hex')}`);
    assert.ok(ipToBytes(bytesToIp(b)).equals(b), 'round trip');
  }
  for (const s of samples) {
    const canon = new URL(`http://[${s}]/`).hostname.slice(1, -1);
    if (!s.includes('.')) assert.is(bytesToIp(ipToBytes(s)), canon, s);
  }
  assert.is(bytesToIp(ipToBytes('::ffff:10.1.2.3')), '::ffff:a01:203');
  assert.is(bytesToIp(ipToBytes('10.1.2.3')), '10.1.2.3');
  assert.throws(() => ipToBytes('10.1.2'), /not an IP address/);
});

test('prefixes: parsing, canonical text, network, containment; MACs; interface names', () => {
  assert.equal(toCidr('10.1.2.3/24'), { address: '10.1.2.3', prefix: 24, family: 4 });
  assert.equal(toCidr('2001:DB8::1'), { address: '2001:db8::1', prefix: 128, family: 6 });
  assert.is(canonicalCidr('2001:0db8:0000::/48'), '2001:db8::/48');
  for (const bad of ['10.0.0.1/33', '10.0.0.1/', '10.0.0.1/-1', '10.0.0.1/08x', 'x/24', '2001:db8::/129']) {
    assert.throws(() => toCidr(bad), /address/, bad);
  }
  assert.is(networkAddress(toCidr('10.1.2.3/20')), '10.1.0.0');
  assert.is(networkAddress(toCidr('10.1.2.3/0')), '0.0.0.0');
  assert.is(networkAddress(toCidr('2001:db8:abcd:1234::1/50')), '2001:db8:abcd::');
  assert.ok(cidrContains(toCidr('10.1.0.0/16'), '10.1.255.1'));
  assert.not.ok(cidrContains(toCidr('10.1.0.0/16'), '10.2.0.1'));
  assert.not.ok(cidrContains(toCidr('10.1.0.0/16'), '::1'));
  assert.is(bytesToMac(macToBytes('02:AB:cd:00:00:ff')), '02:ab:cd:00:00:ff');
  assert.throws(() => macToBytes('02:ab:cd:00:00'), /MAC/);
  for (const ok of ['eth0', 'vh-100-2a', 'a.b', 'x'.repeat(15)]) assert.ok(validIfName(ok), ok);
  for (const bad of ['', 'x'.repeat(16), 'a b', 'a/b', 'a:b', '.', '..', 'tab\t']) assert.not.ok(validIfName(bad), JSON.stringify(bad));
});

test('attributes: nesting, padding, typed reads; malformed input is refused', () => {
  const w = new NlWriter(4); // grows
  w.attrU8(1, 7).attrU16(2, 0x1234).attrBe16(3, 4789).attrU32(4, 0xdeadbeef).attrString(5, 'abc');
  w.nest(6, () => { w.attrU32(1, 42); w.nest(2, () => w.attrFlag(9)); });
  w.attrU64(7, 2n ** 40n);
  const buf = w.finish();
  assert.is(buf.length % 4, 0, 'padded to 4');
  const a = parseAttrs(buf);
  assert.is(a.u8(1), 7);
  assert.is(a.u16(2), 0x1234);
  assert.is(a.be16(3), 4789);
  assert.is(a.u32(4), 0xdeadbeef);
  assert.is(a.string(5), 'abc');
  assert.is(a.nested(6)!.u32(1), 42);
  assert.ok(a.nested(6)!.nested(2)!.has(9));
  assert.is(a.u64(7), 2n ** 40n);
  assert.is(buf.readUInt16LE(buf.indexOf(Buffer.from([0x06, 0x80])) - 2) > 4, true, 'nest length patched');
  assert.is(a.list.length, 7);
  const bad = Buffer.from([8, 0, 1, 0, 0, 0]); // says 8 bytes, has 6
  assert.throws(() => parseAttrs(bad), (e: unknown) => e instanceof NetlinkProtocolError && e.code === 'E_NETLINK_PROTOCOL');
  assert.throws(() => new NlWriter().endNest(), (e: unknown) => e instanceof NetlinkProtocolError);
});

test('message framing and extended ACK decoding (capped ACK with text and offset)', () => {
  // NLMSG_ERROR, capped: errno + original header + TLVs (MSG "boom", OFFS 36)
  const tlv = new NlWriter().attrString(1, 'boom').attrU32(2, 36).finish();
  const payload = Buffer.concat([Buffer.alloc(4), Buffer.alloc(16), tlv]);
  payload.writeInt32LE(-22, 0);
  payload.writeUInt32LE(40, 4); // original message length
  const msg = Buffer.alloc(16 + payload.length);
  msg.writeUInt32LE(msg.length, 0);
  msg.writeUInt16LE(NLMSG_ERROR, 4);
  msg.writeUInt16LE(NLM_F_CAPPED | NLM_F_ACK_TLVS, 6);
  msg.writeUInt32LE(77, 8);
  payload.copy(msg, 16);
  const two = Buffer.concat([msg, msg]);
  const ms = parseMessages(two, two.length);
  assert.is(ms.length, 2);
  assert.is(ms[0].seq, 77);
  assert.equal(decodeError(ms[0]), { errno: 22, extAck: 'boom', offset: 36 });
  // a plain ACK
  const ack = { ...ms[0], flags: 0, payload: Buffer.alloc(20) };
  assert.equal(decodeError(ack), { errno: 0 });
  assert.throws(() => parseMessages(two, two.length - 3), (e: unknown) => e instanceof NetlinkProtocolError);
});

test('bridge VLAN messages: exact layout of add/range/self, dump request, decoding of ranges', () => {
  const one = encodeBridgeVlan({ dev: 'x', vid: 10, pvid: true, untagged: true }, 5);
  // ifinfomsg: family AF_BRIDGE (7), index 5
  assert.is(one.readUInt8(0), 7);
  assert.is(one.readInt32LE(4), 5);
  const spec = parseAttrs(one, 16).nested(26)!; // IFLA_AF_SPEC
  assert.is(spec.list.length, 1);
  const [type, info] = spec.list[0];
  assert.is(type, 2); // IFLA_BRIDGE_VLAN_INFO
  assert.is(info.readUInt16LE(0), BRIDGE_VLAN_INFO.PVID | BRIDGE_VLAN_INFO.UNTAGGED);
  assert.is(info.readUInt16LE(2), 10);

  const range = parseAttrs(encodeBridgeVlan({ dev: 1, vid: 20, vidEnd: 30, self: true }, 9), 16).nested(26)!;
  assert.equal(range.list.map(([t, b]) => [t, b.length === 2 ? b.readUInt16LE(0) : [b.readUInt16LE(0), b.readUInt16LE(2)]]), [
    [0, 2], // IFLA_BRIDGE_FLAGS = BRIDGE_FLAGS_SELF
    [2, [BRIDGE_VLAN_INFO.RANGE_BEGIN, 20]],
    [2, [BRIDGE_VLAN_INFO.RANGE_END, 30]],
  ]);
  const dump = encodeBridgeVlanDump();
  assert.is(dump.readUInt8(0), 7);
  assert.is(parseAttrs(dump, 16).u32(29), 4, 'IFLA_EXT_MASK = RTEXT_FILTER_BRVLAN_COMPRESSED');

  // decode what the kernel sends for a port with pvid 1 untagged and 100-200
  const w = new NlWriter();
  w.u8(7).u8(0).u16(0).i32(12).u32(0).u32(0);
  w.attrString(3, 'p1');
  w.nest(26, () => {
    const vi = (f: number, v: number) => { const b = Buffer.alloc(4); b.writeUInt16LE(f, 0); b.writeUInt16LE(v, 2); return b; };
    w.attr(2, vi(BRIDGE_VLAN_INFO.PVID | BRIDGE_VLAN_INFO.UNTAGGED, 1));
    w.attr(2, vi(BRIDGE_VLAN_INFO.RANGE_BEGIN, 100));
    w.attr(2, vi(BRIDGE_VLAN_INFO.RANGE_END, 200));
  });
  assert.equal(decodeBridgeVlans(w.finish()), [
    { ifindex: 12, vid: 1, pvid: true, untagged: true, flags: BRIDGE_VLAN_INFO.PVID | BRIDGE_VLAN_INFO.UNTAGGED },
    { ifindex: 12, vid: 100, vidEnd: 200, pvid: false, untagged: false, flags: 0 },
  ]);
});

test('decodeLink: a peer in another namespace with the same ifindex is still reported', () => {
  const w = new NlWriter();
  w.u8(0).u8(0).u16(0).i32(4).u32(0).u32(0);
  w.attrString(3, 'v0');
  w.attrU32(5, 4); // IFLA_LINK: the peer's index over there is 4 too
  w.attrI32(37, 0); // IFLA_LINK_NETNSID
  w.nest(18, () => w.attrString(1, 'veth'));
  const { link } = decodeLink(w.finish());
  assert.is(link.linkIndex, 4);
  assert.equal((link as { peer: unknown }).peer, { index: 4, netnsId: 0 });
});

test('sysctl keys: "/" stands for a dot in a name; nothing can climb out of /proc/sys/net', () => {
  assert.is(sysctlPath('net.ipv4.ip_forward'), '/proc/sys/net/ipv4/ip_forward');
  assert.is(sysctlPath('net.ipv4.conf.vn-1/5.rp_filter'), '/proc/sys/net/ipv4/conf/vn-1.5/rp_filter');
  assert.is(confKey('ipv6', 'br.100', 'disable_ipv6'), 'net.ipv6.conf.br/100.disable_ipv6');
  for (const bad of ['net.//.//.//.etc.passwd', 'net.ipv4.conf.//.x', 'net..ipv4', 'kernel.hostname', 'net.ipv4.conf.a b.x', 'net.', 'net.ipv4/../x']) {
    assert.throws(() => sysctlPath(bad), (e: unknown) => e instanceof SysctlError && e.code === 'EINVAL', bad);
  }
  assert.throws(() => confKey('ipv4', 'a/b', 'rp_filter'), (e: unknown) => e instanceof SysctlError);
  assert.throws(() => confKey('ipv4', 'eth0', '../x'), (e: unknown) => e instanceof SysctlError);
  assert.is(confKey('ipv4', 'all', 'forwarding'), 'net.ipv4.conf.all.forwarding');
});

test.run();
