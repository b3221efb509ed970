// Large dumps (many datagrams, NLM_F_MULTI … NLMSG_DONE) and batches (many requests per datagram, several
// datagrams, one ACK each) on the real kernel.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { NlRequest } from '../../lib/netlink/index.js';
import { RTM_GETLINK } from '../../lib/netlink/index.js';
import { encodeLinkDump } from '../../lib/netlink/link-codec.js';
import { scratch, uniq, ipJson, throwsNetlink } from './helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();
const test = suite('dump');

test('300 veth pairs made in one batch: a multi-part link dump lists all 600, as ip does', () => scratch((s) => {
  const { name: ns, h } = s.ns();
  const nl = h.netlink;
  const p = uniq('d');
  const reqs: NlRequest[] = [];
  for (let i = 0; i < 300; i++) reqs.push(nl.linkAddRequest({ kind: 'veth', name: `${p}a${i}`, mtu: 1000 + i, peer: { name: `${p}b${i}` } }));
  const res = nl.batch(reqs);
  assert.is(res.length, 300);
  assert.ok(res.every((r) => !r.error), 'every create succeeded');

  // the raw dump spans many datagrams: count messages and check they are all link messages
  const raw = nl.socket.dump({ type: RTM_GETLINK, body: encodeLinkDump(), operation: 'dump' });
  assert.is(raw.length, 601);
  const links = nl.linkList();
  assert.is(links.length, 601, 'lo + 600');
  for (let i = 0; i < 300; i++) {
    const a = links.find((l) => l.name === `${p}a${i}`);
    assert.ok(a, `${p}a${i} listed`);
    assert.is(a!.mtu, 1000 + i);
    assert.is((a as { peer: { name?: string } }).peer.name, `${p}b${i}`, 'peer names resolved from the dump itself');
  }
  const o = ipJson<Array<{ ifname: string; mtu: number }>>(ns, ['link', 'show']);
  assert.equal(links.map((l) => `${l.name}/${l.mtu}`).sort(), o.map((l) => `${l.ifname}/${l.mtu}`).sort());

  // 300 addresses in one batch; the address dump returns them all
  const addrs = Array.from({ length: 300 }, (_, i) => nl.addrRequest('add', { dev: `${p}a${i}`, address: `10.${i >> 8}.${i & 255}.1/32` }));
  assert.ok(nl.batch(addrs).every((r) => !r.error));
  assert.is(nl.addrList({ family: 4 }).filter((a) => a.dev?.startsWith(`${p}a`)).length, 300);

  // deleting some in one batch (each delete waits ~20 ms for RCU in the kernel; the namespace takes the rest)
  const dels = Array.from({ length: 30 }, (_, i) => nl.linkDelRequest(`${p}a${i}`));
  assert.ok(nl.batch(dels).every((r) => !r.error));
  assert.is(nl.linkList().length, 601 - 60);
  assert.is(nl.linkFind(`${p}b0`), undefined);
}));

test('2000 routes: batch across datagrams, dump of all of them', () => scratch((s) => {
  const { name: ns, h } = s.ns();
  const nl = h.netlink;
  const dev = uniq('dr');
  nl.linkAdd({ kind: 'veth', name: dev, up: true, peer: { name: uniq('dp'), up: true } });
  nl.addrAdd({ dev, address: '10.255.0.1/24' });
  const reqs = Array.from({ length: 2000 }, (_, i) => nl.routeRequest('add', { dst: `172.${16 + (i >> 8)}.${i & 255}.0/24`, via: '10.255.0.254', table: 500 }));
  const res = nl.batch(reqs);
  assert.ok(res.every((r) => !r.error));
  const listed = nl.routeList({ table: 500 });
  assert.is(listed.length, 2000);
  assert.is(ipJson<unknown[]>(ns, ['route', 'show', 'table', '500']).length, 2000);
}));

test('a batch reports each request\'s own error, in order, across datagrams; stopOnError throws the first', () => scratch((s) => {
  const { h } = s.ns();
  const nl = h.netlink;
  const p = uniq('e');
  nl.linkAdd({ kind: 'bridge', name: `${p}x` });
  const reqs: NlRequest[] = [];
  for (let i = 0; i < 600; i++) {
    if (i % 100 === 50) reqs.push(nl.linkAddRequest({ kind: 'bridge', name: `${p}x` })); // EEXIST
    else if (i % 100 === 70) reqs.push(nl.linkDelRequest(`${p}nope`)); // ENODEV
    else reqs.push(nl.linkAddRequest({ kind: 'bridge', name: `${p}${i}` }));
  }
  const res = nl.batch(reqs);
  assert.is(res.length, 600);
  res.forEach((r, i) => {
    if (i % 100 === 50) assert.is(r.error?.code, 'EEXIST', `request ${i}`);
    else if (i % 100 === 70) assert.is(r.error?.code, 'ENODEV', `request ${i}`);
    else assert.is(r.error, undefined, `request ${i}`);
  });
  assert.is(res[50].error!.operation, `RTM_NEWLINK ${p}x (bridge)`);
  assert.is(nl.linkList().filter((l) => l.name.startsWith(p)).length, 1 + 588, 'the others were applied');

  // stopOnError: everything is still sent and answered; the first failure is thrown
  const again = [nl.linkDelRequest(`${p}1`), nl.linkDelRequest(`${p}nope`), nl.linkDelRequest(`${p}2`)];
  throwsNetlink(() => nl.batch(again, { stopOnError: true }), 'ENODEV', { operation: `RTM_DELLINK ${p}nope` });
  assert.is(nl.linkFind(`${p}2`), undefined, 'the request after the failure was applied');
  assert.equal(nl.batch([]), []);
}));

test.run();
