/** Which conntrack entries a NAT change deletes, and which reverses it guards (pure: no kernel). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { conntrackFilters, guardable } from '../../lib/router/nat-flow-cleanup.js';
import type { NatPlan, PortForward } from '../../lib/router/router-table.js';
import type { ConntrackEntry } from '../../lib/nft/ctnetlink.js';

const plan = (staticNat: NatPlan['staticNat'], portForwards: PortForward[]): NatPlan => ({ publicIfs: ['eth1'], sourceNat: [{ cidr: '10.1.1.0/24', publicIp: '203.0.113.1' }], staticNat, portForwards });
const pf = (ip: string, proto: 'tcp' | 'udp', port: number, to: string): PortForward => ({ publicIp: ip, protocol: proto, publicPorts: [port, port], privateIp: to, privatePorts: [port, port] });

test('nothing changed: no filter', () => {
  const p = plan([{ publicIp: '203.0.113.5', privateIp: '10.1.1.5' }], [pf('203.0.113.1', 'udp', 51820, '10.1.1.10')]);
  assert.equal(conntrackFilters(p, p), []);
});

test('a removed forward: its flows, whatever their translation; an added one: the untranslated flows to it', () => {
  const was = plan([], [pf('203.0.113.1', 'udp', 51820, '10.1.1.10')]);
  const now = plan([], [pf('203.0.113.1', 'tcp', 22, '10.1.1.10')]);
  assert.equal(conntrackFilters(was, now), [
    { family: 'ipv4', proto: 'udp', origDst: '203.0.113.1', origDstPorts: [51820, 51820] },
    { family: 'ipv4', proto: 'tcp', origDst: '203.0.113.1', origDstPorts: [22, 22], replySrc: '203.0.113.1' },
  ]);
});

test('a re-pointed forward: every flow to it (translated to the old VM, or to the router itself)', () => {
  const was = plan([], [pf('203.0.113.1', 'udp', 51820, '10.1.1.10')]);
  const now = plan([], [pf('203.0.113.1', 'udp', 51820, '10.1.1.11')]);
  const f = conntrackFilters(was, now);
  assert.ok(f.some((x) => x.origDst === '203.0.113.1' && x.replySrc === undefined && x.proto === 'udp'));
});

test('static NAT: removed → inbound and outbound flows; added → untranslated flows to the address; re-pointed → all of them', () => {
  const none = plan([], []);
  const a = plan([{ publicIp: '203.0.113.5', privateIp: '10.1.1.5' }], []);
  const b = plan([{ publicIp: '203.0.113.5', privateIp: '10.1.1.6' }], []);
  assert.equal(conntrackFilters(a, none), [
    { family: 'ipv4', origDst: '203.0.113.5' },
    { family: 'ipv4', origSrc: '10.1.1.5', replyDst: '203.0.113.5' },
  ]);
  assert.equal(conntrackFilters(none, a), [{ family: 'ipv4', origDst: '203.0.113.5', replySrc: '203.0.113.5' }]);
  assert.equal(conntrackFilters(a, b), [
    { family: 'ipv4', origDst: '203.0.113.5' },
    { family: 'ipv4', origSrc: '10.1.1.5', replyDst: '203.0.113.5' },
  ]);
});

test('guarded: TCP/UDP flows translated to a guest; not the router\'s own, a guest\'s outbound, ICMP or IPv6', () => {
  const entry = (proto: number, orig: [string, string], reply: [string, string], family: 'ipv4' | 'ipv6' = 'ipv4'): ConntrackEntry => ({
    family, orig: { src: orig[0], dst: orig[1], proto, srcPort: 40000, dstPort: 22 }, reply: { src: reply[0], dst: reply[1], proto, srcPort: 22, dstPort: 40000 },
  });
  assert.ok(guardable(entry(6, ['198.51.100.7', '203.0.113.1'], ['10.1.1.10', '198.51.100.7'])), 'a forwarded TCP flow');
  assert.ok(guardable(entry(17, ['198.51.100.7', '203.0.113.5'], ['10.1.1.5', '198.51.100.7'])), 'a static NAT UDP flow');
  assert.not.ok(guardable(entry(17, ['198.51.100.7', '203.0.113.1'], ['203.0.113.1', '198.51.100.7'])), 'to the router itself');
  assert.not.ok(guardable(entry(6, ['10.1.1.5', '198.51.100.7'], ['198.51.100.7', '203.0.113.5'])), 'a guest\'s outbound flow');
  assert.not.ok(guardable({ family: 'ipv4', orig: { src: '198.51.100.7', dst: '203.0.113.5', proto: 1, icmpId: 1 }, reply: { src: '10.1.1.5', dst: '198.51.100.7', proto: 1, icmpId: 1 } }), 'ICMP');
  assert.not.ok(guardable(entry(6, ['2001:db8::7', '2001:db8:1::1'], ['2001:db8:1::10', '2001:db8::7'], 'ipv6')), 'IPv6 (no NAT)');
});

test.run();
