/** Interface and namespace names: upstream's rules, never longer than 15 bytes. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import {
  IFNAME_MAX, bashInteger, fitVethName, guestLinkNames, guestVethHost, guestVethNs, hostBridge, isValidIfName,
  publicLinkNames, publicVethHost, publicVethNs, routerId, routerNamespace, segmentDevice, segmentLabel, shortenId,
} from '../../lib/router/names.js';
import type { Segment } from '../../lib/router/contract/types.js';
import { requireSandbox } from '../cli/helpers.js';

requireSandbox();

const vlan = (id: number): Segment => ({ kind: 'vlan', id });
const vxlan = (vni: number): Segment => ({ kind: 'vxlan', vni });
const untagged: Segment = { kind: 'untagged' };
const md5 = (s: string) => createHash('md5').update(s).digest('hex').slice(0, 6);

test('namespaces: cs-net-<networkId>, cs-vpc-<vpcId> (VPC wins)', () => {
  assert.is(routerNamespace({ networkId: '209' }), 'cs-net-209');
  assert.is(routerNamespace({ vpcId: '5' }), 'cs-vpc-5');
  assert.is(routerNamespace({ networkId: '42', vpcId: '5' }), 'cs-vpc-5');
  assert.is(routerNamespace({ networkId: 'f47ac10b-58cc-4372-a567-0e02b2c3d479' }), 'cs-net-f47ac10b-58cc-4372-a567-0e02b2c3d479');
  assert.is(routerId({ networkId: '42', vpcId: '5' }), '5');
  assert.is(routerId({ networkId: '42' }), '42');
});

test('shorten_id: bash printf semantics (decimal, octal, hex, overflow) else md5 prefix', () => {
  assert.is(shortenId('209'), 'd1');
  assert.is(shortenId('42'), '2a');
  assert.is(shortenId('123456789'), '75bcd15');
  assert.is(shortenId('4294967295'), 'ffffffff');
  assert.is(shortenId('010'), '8', 'leading 0 is octal to bash');
  assert.is(shortenId('0x1f'), '1f');
  assert.is(shortenId('0'), '0');
  assert.is(shortenId('08'), md5('08'), 'invalid octal → md5');
  assert.is(shortenId('9223372036854775808'), '8000000000000000', 'strtoumax, as bash %x');
  assert.is(shortenId('99999999999999999999999'), 'ffffffffffffffff', 'clamped like strtoumax');
  assert.is(shortenId('abcdefghij'), 'a92557');
  assert.is(shortenId('f47ac10b-58cc-4372-a567-0e02b2c3d479'), '83236d');
  assert.is(shortenId(''), '');
  assert.is(bashInteger('1e3'), undefined);
  assert.is(bashInteger('12a'), undefined);
});

test('guest veths: vh-/vn-<vlan>-<id>, shortened only when over 15', () => {
  // upstream README: network 209, VLAN 1910 (the script keeps the id when it fits)
  assert.is(guestVethHost(vlan(1910), '209'), 'vh-1910-209');
  assert.is(guestVethNs(vlan(1910), '209'), 'vn-1910-209');
  assert.is(guestVethHost(vlan(100), '42'), 'vh-100-42');
  // exactly 15 stays
  assert.is(guestVethHost(vlan(4094), '1234567'), 'vh-4094-1234567');
  // 16 → hex
  assert.is(guestVethHost(vlan(4094), '12345678'), 'vh-4094-bc614e');
  assert.is(guestVethHost(vlan(4094), '123456789'), 'vh-4094-75bcd15');
  // hex still too long → cut at 15
  assert.is(guestVethHost(vlan(4094), '4294967295'), 'vh-4094-fffffff');
  // non-numeric → md5 prefix
  assert.is(guestVethNs(vlan(100), 'abcdefghij'), 'vn-100-a92557');
  assert.is(guestVethHost(vlan(4094), 'f47ac10b-58cc-4372-a567-0e02b2c3d479'), 'vh-4094-83236d');
  assert.is(fitVethName('vh', '7', 'x'), 'vh-7-x');
});

test('public veths: vph-/vpn-<pvlan>-<id>, same shortening when over 15', () => {
  assert.is(publicVethHost(vlan(101), '209'), 'vph-101-209');
  assert.is(publicVethNs(vlan(101), '209'), 'vpn-101-209');
  assert.is(publicVethHost(vlan(4094), '1234567'), 'vph-4094-12d687');
  assert.is(publicVethNs(vlan(4094), 'abcdefghij'), 'vpn-4094-a92557');
  assert.is(publicVethHost(untagged, '42'), 'vph-u-42');
});

test('segment labels and devices: vlan, untagged, vxlan', () => {
  assert.is(segmentLabel(vlan(100)), '100');
  assert.is(segmentLabel(untagged), 'u');
  assert.is(segmentLabel(vxlan(5000)), 'x5000');
  assert.is(guestVethHost(vxlan(5000), '42'), 'vh-x5000-42');
  assert.is(guestVethHost(vxlan(16777215), '42'), 'vh-x16777215-42');
  assert.is(guestVethNs(vxlan(16777215), '123'), 'vn-x16777215-7b');
  assert.is(guestVethNs(vxlan(16777215), 'abcdefghij'), 'vn-x16777215-a9');
  assert.is(segmentDevice('eth1', vlan(100)), 'eth1.100');
  assert.is(segmentDevice('eth1', vxlan(5000)), 'vxlan5000');
  assert.is(segmentDevice('eth1', untagged), null);
  assert.is(hostBridge('eth1', vlan(1910)), 'breth1-1910');
  assert.is(hostBridge('bond0', vlan(4094)), 'brbond0-4094');
  assert.is(hostBridge('eth1', vxlan(5000)), 'brvx-5000');
  assert.is(hostBridge('cloudbr1', untagged), 'cloudbr1');
});

test('over-long host devices are replaced by their md5 prefix in device/bridge names', () => {
  assert.is(segmentDevice('enp129s0f0', vlan(4094)), 'enp129s0f0.4094');
  assert.is(segmentDevice('enp129s0f0np0', vlan(4094)), '5c3e1c.4094');
  assert.is(segmentDevice('enp129s0f0np0', vlan(10)), '5c3e1c.10');
  assert.is(segmentDevice('enp129s0f0np0', vlan(1)), 'enp129s0f0np0.1');
  assert.is(hostBridge('enp129s0f0', vlan(100)), `br${md5('enp129s0f0')}-100`);
  assert.is(hostBridge('enp1s0', vlan(4094)), 'brenp1s0-4094');
  assert.is(hostBridge('enp1s0f0', vlan(4094)), 'brenp1s0f0-4094');
  assert.is(hostBridge('enp1s0f0n', vlan(4094)), `br${md5('enp1s0f0n')}-4094`);
});

test('link name sets for a network, a VPC tier and a public attachment', () => {
  assert.equal(guestLinkNames({ networkId: '42' }, vlan(100), 'eth1'), {
    segmentDevice: 'eth1.100', bridge: 'breth1-100', vethHost: 'vh-100-42', vethNs: 'vn-100-42',
  });
  assert.equal(guestLinkNames({ networkId: '42', vpcId: '5' }, vlan(200), 'eth2'), {
    segmentDevice: 'eth2.200', bridge: 'breth2-200', vethHost: 'vh-200-5', vethNs: 'vn-200-5',
  });
  assert.equal(publicLinkNames({ vpcId: '5' }, untagged, 'cloudbr0'), {
    segmentDevice: null, bridge: 'cloudbr0', vethHost: 'vph-u-5', vethNs: 'vpn-u-5',
  });
});

test('no generated name ever exceeds 15 bytes, all are valid interface names', () => {
  const ids = ['1', '42', '209', '1234567', '12345678', '4294967295', '18446744073709551615', '99999999999999999999999',
    '010', '08', '0x1f', 'abc', 'abcdefghij', 'f47ac10b-58cc-4372-a567-0e02b2c3d479', 'a'.repeat(64)];
  const segs: Segment[] = [vlan(1), vlan(99), vlan(4094), untagged, vxlan(1), vxlan(4096), vxlan(16777215)];
  const devs = ['eth1', 'bond0.100', 'enp129s0f0', 'enp129s0f0np0', 'cloudbr1', 'x'.repeat(15)];
  let n = 0;
  for (const id of ids) {
    for (const s of segs) {
      for (const name of [guestVethHost(s, id), guestVethNs(s, id), publicVethHost(s, id), publicVethNs(s, id)]) {
        assert.ok(name.length <= IFNAME_MAX && isValidIfName(name), `${name} (${id})`);
        n++;
      }
      for (const d of devs) {
        const b = hostBridge(d, s);
        const sd = segmentDevice(d, s);
        assert.ok(isValidIfName(b), b);
        if (sd !== null) assert.ok(isValidIfName(sd), sd);
        n++;
      }
    }
  }
  assert.ok(n > 500);
});

test('host and namespace ends differ; different segments of one router differ', () => {
  for (const id of ['42', '4294967295', 'abcdefghij']) {
    assert.is.not(guestVethHost(vlan(100), id), guestVethNs(vlan(100), id));
    assert.is.not(guestVethHost(vlan(100), id), guestVethHost(vlan(101), id));
    assert.is.not(guestVethHost(vlan(100), id), guestVethHost(vxlan(100), id));
    assert.is.not(publicVethHost(vlan(100), id), guestVethHost(vlan(100), id));
  }
});

test.run();
