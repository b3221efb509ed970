// Errors from the kernel arrive as NetlinkError values: errno, symbolic code, the operation we asked and the
// kernel's extended-ACK text and attribute offset when it gave them.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  NetlinkError, NetlinkHandle, NetlinkProtocolError, isExists, isNetlinkError, isNotFound, RTM_GETLINK, RTM_GETROUTE,
} from '../../lib/netlink/index.js';
import { encodeLinkGet } from '../../lib/netlink/link-codec.js';
import { scratch, uniq, throwsNetlink } from './helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { thrown } from '../helpers/expect.js';
import { ValidationError } from '../../lib/util/errors.js';

requireSandbox();
const test = suite('errors');

test('invalid MTU: EINVAL with the kernel\'s text, both bounds', () => scratch((s) => {
  const { h } = s.ns();
  const nl = h.netlink;
  const a = uniq('ea');
  nl.linkAdd({ kind: 'veth', name: a, peer: { name: uniq('eb') } });
  const e = throwsNetlink(() => nl.linkSet(a, { mtu: 70000 }), 'EINVAL', {
    extAck: 'mtu greater than device maximum', operation: `RTM_NEWLINK (set) ${a}`,
  });
  assert.is(e.errno, 22);
  assert.is(e.name, 'NetlinkError');
  assert.match(e.message, /mtu greater than device maximum/);
  assert.match(e.message, /EINVAL/);
  throwsNetlink(() => nl.linkSet(a, { mtu: 10 }), 'EINVAL', { extAck: 'mtu less than device minimum' });
  // at creation, too
  throwsNetlink(() => nl.linkAdd({ kind: 'bridge', name: uniq('eb'), mtu: 70000 }), 'EINVAL', { extAck: /mtu/ });
  assert.is(nl.linkGet(a).mtu, 1500, 'nothing changed');
}));

test('EEXIST and ENODEV carry errno, code and operation; helper predicates', () => scratch((s) => {
  const { h } = s.ns();
  const nl = h.netlink;
  const a = uniq('ea');
  const b = uniq('eb');
  nl.linkAdd({ kind: 'veth', name: a, peer: { name: b } });
  const dup = throwsNetlink(() => nl.linkAdd({ kind: 'bridge', name: a }), 'EEXIST', { operation: `RTM_NEWLINK ${a} (bridge)` });
  assert.is(dup.errno, 17);
  assert.ok(isExists(dup) && isNetlinkError(dup, 'EEXIST') && !isNotFound(dup));
  const missing = uniq('en');
  const nodev = throwsNetlink(() => nl.linkSet(missing, { up: true }), 'ENODEV', { operation: missing });
  assert.is(nodev.errno, 19);
  assert.ok(isNotFound(nodev) && !isExists(nodev));
  throwsNetlink(() => nl.linkAdd({ kind: 'veth', name: uniq('ec'), master: missing, peer: { name: uniq('ed') } }), 'ENODEV', { operation: `master ${missing}` });
  throwsNetlink(() => nl.addrAdd({ dev: missing, address: '10.0.0.1/24' }), 'ENODEV');
  throwsNetlink(() => nl.routeAdd({ dst: '10.0.0.0/8', dev: missing }), 'ENODEV');
}));

test('route via an unreachable gateway: ENETUNREACH "Nexthop has invalid gateway"', () => scratch((s) => {
  const { h } = s.ns();
  const nl = h.netlink;
  const e = throwsNetlink(() => nl.routeAdd({ dst: '10.9.0.0/16', via: '10.2.0.1' }), 'ENETUNREACH', {
    extAck: 'Nexthop has invalid gateway', operation: 'RTM_NEWROUTE 10.9.0.0/16 via 10.2.0.1',
  });
  assert.is(e.errno, 101);
  // v6: the v6 stack answers EHOSTUNREACH, without a text
  const e6 = throwsNetlink(() => nl.routeAdd({ dst: '2001:db8:9::/48', via: '2001:db8:2::1' }), 'EHOSTUNREACH');
  assert.is(e6.errno, 113);
}));

test('a policy violation reports the offending attribute offset', () => scratch((s) => {
  const { h } = s.ns();
  // bypass the handle's name check: a 20-byte IFLA_IFNAME fails the kernel's policy (IFNAMSIZ)
  const e = throwsNetlink(() => h.netlink.socket.request({
    type: RTM_GETLINK, body: encodeLinkGet('x'.repeat(20)), operation: 'RTM_GETLINK long name',
  }), 'ERANGE', { extAck: 'Attribute failed policy validation' });
  assert.is(e.attrOffset, 16 + 16, 'offset of IFLA_IFNAME in our message (nlmsghdr + ifinfomsg)');
}));

test('a dump the kernel refuses (strict checking) throws with its text', () => scratch((s) => {
  const { h } = s.ns();
  const body = Buffer.alloc(12);
  body.writeUInt8(2, 0); // AF_INET
  body.writeUInt8(24, 1); // rtm_dst_len is not allowed in a dump request
  const e = throwsNetlink(() => h.netlink.socket.dump({ type: RTM_GETROUTE, body, operation: 'RTM_GETROUTE bad dump' }), 'EINVAL', {
    operation: 'RTM_GETROUTE bad dump',
  });
  assert.match(e.extAck ?? '', /header|dump/i);
}));

test('invalid names are refused before anything is sent; a closed socket refuses requests', () => scratch((s) => {
  const { h } = s.ns();
  const nl = h.netlink;
  // our own refusal, not an answer of the kernel: a ValidationError naming the input
  for (const bad of ['', 'a'.repeat(16), 'has space', 'sl/ash', 'co:lon', '.', '..']) {
    const e = thrown(() => nl.linkAdd({ kind: 'bridge', name: bad }), ValidationError, { code: 'E_INVALID_NAME', field: 'link', value: bad });
    assert.not.instance(e, NetlinkError);
  }
  thrown(() => nl.linkAdd({ kind: 'veth', name: uniq('ea'), peer: { name: 'x'.repeat(16) } }), ValidationError, { code: 'E_INVALID_NAME', field: 'veth peer' });
  // control: a valid name is accepted by the same call
  nl.linkAdd({ kind: 'bridge', name: uniq('eb') });
  const own = NetlinkHandle.open();
  own.close();
  thrown(() => own.linkList(), NetlinkProtocolError, { code: 'EBADF' });
  assert.is(new NetlinkProtocolError('x').code, 'E_NETLINK_PROTOCOL');
  assert.not.instance(new NetlinkProtocolError('x'), NetlinkError);
}));

test.run();
