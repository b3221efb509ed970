// Neighbour (ARP/NDP) entries through lib/netlink on the real kernel, cross-checked with `ip -j neigh`.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { NetlinkHandle } from '../../lib/netlink/index.js';
import { scratch, uniq, ipJson, throwsNetlink, assertSubset, type Scratch } from './helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();
const test = suite('neigh');

interface IpNeigh {
  dst: string;
  dev?: string;
  lladdr?: string;
  state?: string[];
  proxy?: null;
}

function setup(s: Scratch): { ns: string; nl: NetlinkHandle; dev: string } {
  const { name: ns, h } = s.ns();
  const dev = uniq('nd');
  h.netlink.linkAdd({ kind: 'veth', name: dev, up: true, peer: { name: uniq('np'), up: true } });
  h.netlink.addrAdd({ dev, address: '10.1.0.1/24' });
  return { ns, nl: h.netlink, dev };
}

test('permanent entries, v4 and v6; listed per device and family; ip neigh agrees', () => scratch((s) => {
  const { ns, nl, dev } = setup(s);
  nl.neighAdd({ dev, ip: '10.1.0.5', mac: '02:00:00:00:00:05' });
  nl.neighAdd({ dev, ip: '2001:db8:1::5', mac: '02:00:00:00:00:06' });
  nl.neighAdd({ dev, ip: '10.1.0.6', mac: '02:00:00:00:00:07', state: 'stale' });
  const v4 = nl.neighList({ dev, family: 4 });
  assertSubset(v4.find((n) => n.ip === '10.1.0.5')!, { family: 4, mac: '02:00:00:00:00:05', state: 'permanent', proxy: false, dev }, '10.1.0.5');
  assertSubset(v4.find((n) => n.ip === '10.1.0.6')!, { state: 'stale' }, '10.1.0.6');
  assert.ok(v4.every((n) => n.family === 4));
  const v6 = nl.neighList({ dev, family: 6 }).find((n) => n.ip === '2001:db8:1::5')!;
  assertSubset(v6, { family: 6, mac: '02:00:00:00:00:06', state: 'permanent' }, 'v6');
  const o = ipJson<IpNeigh[]>(ns, ['neigh', 'show', 'dev', dev]);
  assertSubset(o.find((n) => n.dst === '10.1.0.5')!, { lladdr: '02:00:00:00:00:05', state: ['PERMANENT'] }, 'ip 10.1.0.5');
  assertSubset(o.find((n) => n.dst === '10.1.0.6')!, { state: ['STALE'] }, 'ip 10.1.0.6');
  assertSubset(o.find((n) => n.dst === '2001:db8:1::5')!, { lladdr: '02:00:00:00:00:06' }, 'ip v6');
  // the device filter is applied by the kernel and by us: another device's entries stay out
  const other = uniq('nd');
  nl.linkAdd({ kind: 'veth', name: other, up: true, peer: { name: uniq('np') } });
  nl.neighAdd({ dev: other, ip: '10.9.0.5', mac: '02:00:00:00:00:09' });
  assert.is(nl.neighList({ dev }).find((n) => n.ip === '10.9.0.5'), undefined);
  assert.equal(nl.neighList({ dev: other, family: 4 }).map((n) => n.ip), ['10.9.0.5']);
  assert.ok(nl.neighList().some((n) => n.ip === '10.9.0.5') && nl.neighList().some((n) => n.ip === '10.1.0.5'));
}));

test('add is exclusive; replace updates and is idempotent; delete-if-present', () => scratch((s) => {
  const { ns, nl, dev } = setup(s);
  nl.neighAdd({ dev, ip: '10.1.0.5', mac: '02:00:00:00:00:05' });
  throwsNetlink(() => nl.neighAdd({ dev, ip: '10.1.0.5', mac: '02:00:00:00:00:05' }), 'EEXIST', { operation: `RTM_NEWNEIGH 10.1.0.5 dev ${dev}` });
  nl.neighReplace({ dev, ip: '10.1.0.5', mac: '02:00:00:00:00:aa' });
  nl.neighReplace({ dev, ip: '10.1.0.5', mac: '02:00:00:00:00:aa' });
  nl.neighReplace({ dev, ip: '10.1.0.8', mac: '02:00:00:00:00:08' });
  const l = nl.neighList({ dev, family: 4 });
  assert.is(l.filter((n) => n.ip === '10.1.0.5').length, 1);
  assert.is(l.find((n) => n.ip === '10.1.0.5')!.mac, '02:00:00:00:00:aa');
  assert.ok(l.find((n) => n.ip === '10.1.0.8'), 'replace creates');
  assert.is(ipJson<IpNeigh[]>(ns, ['neigh', 'show', 'dev', dev]).find((n) => n.dst === '10.1.0.5')!.lladdr, '02:00:00:00:00:aa');
  assert.is(nl.neighDel({ dev, ip: '10.1.0.5' }), true);
  assert.is(nl.neighDel({ dev, ip: '10.1.0.5' }, { ifExists: true }), false);
  throwsNetlink(() => nl.neighDel({ dev, ip: '10.1.0.5' }), 'ENOENT', { operation: 'RTM_DELNEIGH 10.1.0.5' });
  assert.is(ipJson<IpNeigh[]>(ns, ['neigh', 'show', 'dev', dev]).find((n) => n.dst === '10.1.0.5'), undefined);
}));

test('proxy entries (v4 and v6): added, listed apart, deleted; ip neigh show proxy agrees', () => scratch((s) => {
  const { ns, nl, dev } = setup(s);
  nl.neighAdd({ dev, ip: '10.1.0.9', proxy: true });
  nl.neighAdd({ dev, ip: '2001:db8::9', proxy: true });
  const p = nl.neighList({ proxy: true });
  assert.equal(p.map((n) => `${n.dev} ${n.ip} ${n.proxy}`).sort(), [`${dev} 10.1.0.9 true`, `${dev} 2001:db8::9 true`]);
  assert.is(nl.neighList({ dev }).find((n) => n.ip === '10.1.0.9'), undefined, 'not among ordinary entries');
  assert.equal(nl.neighList({ proxy: true, family: 6 }).map((n) => n.ip), ['2001:db8::9']);
  const o = ipJson<IpNeigh[]>(ns, ['neigh', 'show', 'proxy']);
  assert.equal(o.map((n) => `${n.dev} ${n.dst}`).sort(), [`${dev} 10.1.0.9`, `${dev} 2001:db8::9`]);
  assert.ok(nl.neighDel({ dev, ip: '10.1.0.9', proxy: true }));
  assert.is(nl.neighDel({ dev, ip: '10.1.0.9', proxy: true }, { ifExists: true }), false);
  assert.equal(ipJson<IpNeigh[]>(ns, ['neigh', 'show', 'proxy']).map((n) => n.dst), ['2001:db8::9']);
}));

test('invalid input: bad MAC, bad address, missing device', () => scratch((s) => {
  const { nl, dev } = setup(s);
  assert.throws(() => nl.neighAdd({ dev, ip: '10.1.0.5', mac: '02:00:00:00:00' }), /not a MAC address/);
  assert.throws(() => nl.neighAdd({ dev, ip: '10.1.0', mac: '02:00:00:00:00:05' }), /not an IP address/);
  throwsNetlink(() => nl.neighAdd({ dev: uniq('no'), ip: '10.1.0.5', mac: '02:00:00:00:00:05' }), 'ENODEV');
}));

test('get one entry (v4 and v6); resolve an address now: a probe goes out and the answer is recorded', () => scratch((s) => {
  const { ns, nl, dev } = setup(s);
  nl.neighAdd({ dev, ip: '10.1.0.5', mac: '02:00:00:00:00:05', state: 'stale' });
  nl.neighAdd({ dev, ip: '2001:db8:1::5', mac: '02:00:00:00:00:06' });
  assertSubset(nl.neighGet(dev, '10.1.0.5')!, { family: 4, ip: '10.1.0.5', mac: '02:00:00:00:00:05', state: 'stale' }, 'v4');
  assertSubset(nl.neighGet(dev, '2001:db8:1::5')!, { family: 6, mac: '02:00:00:00:00:06', state: 'permanent' }, 'v6');
  assert.is(nl.neighGet(dev, '10.1.0.77'), undefined, 'no entry');
  throwsNetlink(() => nl.neighGet(uniq('nx'), '10.1.0.5'), 'ENODEV');
  // a peer in another namespace answers ARP: the entry resolved on request is REACHABLE with its MAC
  const { name: peerNs, h: ph } = s.ns();
  const a = uniq('nd');
  const b = uniq('np');
  nl.linkAdd({ kind: 'veth', name: a, up: true, peer: { name: b, namespace: { netns: peerNs }, up: true } });
  nl.addrAdd({ dev: a, address: '10.2.0.1/24' });
  ph.netlink.addrAdd({ dev: b, address: '10.2.0.9/24' });
  const peerMac = ph.netlink.linkGet(b).mac!;
  nl.neighResolve(a, '10.2.0.9');
  const deadline = Date.now() + 3000;
  let n = nl.neighGet(a, '10.2.0.9');
  while (n?.state !== 'reachable' && Date.now() < deadline) n = nl.neighGet(a, '10.2.0.9');
  assertSubset(n!, { mac: peerMac, state: 'reachable' }, 'resolved');
  const o = ipJson<IpNeigh[]>(ns, ['neigh', 'show', 'dev', a]);
  assertSubset(o.find((x) => x.dst === '10.2.0.9')!, { lladdr: peerMac, state: ['REACHABLE'] }, 'ip neigh agrees');
  // nobody at the address: the kernel keeps the entry INCOMPLETE while it probes
  nl.neighResolve(a, '10.2.0.99');
  assertSubset(nl.neighGet(a, '10.2.0.99')!, { state: 'incomplete' }, 'probing');
  assert.is(nl.neighGet(a, '10.2.0.99')!.mac, undefined);
}));

test.run();
