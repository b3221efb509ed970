// Addresses through lib/netlink on the real kernel, cross-checked with `ip -j addr`.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { NetlinkHandle } from '../../lib/netlink/index.js';
import { IFA_F_NODAD } from '../../lib/netlink/address.js';
import { scratch, uniq, ipJson, throwsNetlink, assertSubset, type Scratch } from './helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();
const test = suite('addresses');

interface IpAddrInfo {
  family: string;
  local: string;
  address?: string;
  prefixlen: number;
  broadcast?: string;
  scope: string;
  label?: string;
  nodad?: boolean;
  tentative?: boolean;
  noprefixroute?: boolean;
}

function ipAddrs(ns: string, dev: string): IpAddrInfo[] {
  const [l] = ipJson<Array<{ addr_info: IpAddrInfo[] }>>(ns, ['addr', 'show', 'dev', dev]);
  return l.addr_info;
}

/** A namespace with one veth end `dev` (up, peer up too). */
function setup(s: Scratch): { ns: string; nl: NetlinkHandle; dev: string } {
  const { name: ns, h } = s.ns();
  const dev = uniq('ad');
  h.netlink.linkAdd({ kind: 'veth', name: dev, up: true, peer: { name: uniq('ap'), up: true } });
  return { ns, nl: h.netlink, dev };
}

test('IPv4 with computed broadcast and a label; ip addr agrees', () => scratch((s) => {
  const { ns, nl, dev } = setup(s);
  nl.addrAdd({ dev, address: '10.1.2.3/24', broadcast: true, label: `${dev}:a` });
  const [a] = nl.addrList({ dev, family: 4 });
  assertSubset(a, {
    address: '10.1.2.3/24', ip: '10.1.2.3', prefixLen: 24, family: 4, broadcast: '10.1.2.255', label: `${dev}:a`,
    scope: 'universe', dev, ifindex: nl.indexOf(dev),
  }, 'address');
  assert.is(a.peer, undefined);
  const [o] = ipAddrs(ns, dev).filter((x) => x.family === 'inet');
  assertSubset(o, { local: '10.1.2.3', prefixlen: 24, broadcast: '10.1.2.255', label: `${dev}:a`, scope: 'global' }, 'ip');
  // an explicit broadcast, an odd prefix, a host scope
  nl.addrAdd({ dev, address: '10.7.0.9/13', broadcast: '10.7.255.254', scope: 'host' });
  const b = nl.addrList({ dev }).find((x) => x.ip === '10.7.0.9')!;
  assertSubset(b, { prefixLen: 13, broadcast: '10.7.255.254', scope: 'host' }, 'second address');
  assertSubset(ipAddrs(ns, dev).find((x) => x.local === '10.7.0.9')!, { prefixlen: 13, broadcast: '10.7.255.254', scope: 'host' }, 'ip');
  // /31 and /32 broadcast computation
  nl.addrAdd({ dev, address: '10.8.0.0/31', broadcast: true });
  assert.is(nl.addrList({ dev }).find((x) => x.ip === '10.8.0.0')!.broadcast, '10.8.0.1');
}));

test('IPv4 point-to-point peer (with and without a peer prefix); delete needs the peer', () => scratch((s) => {
  const { ns, nl, dev } = setup(s);
  nl.addrAdd({ dev, address: '10.9.9.1/32', peer: '10.9.9.2' });
  const a = nl.addrList({ dev, family: 4 }).find((x) => x.ip === '10.9.9.1')!;
  assertSubset(a, { peer: '10.9.9.2', prefixLen: 32 }, 'address');
  const o = ipAddrs(ns, dev).find((x) => x.local === '10.9.9.1')!;
  assertSubset(o, { address: '10.9.9.2', prefixlen: 32 }, 'ip');
  // the peer's prefix length is the address's, as with ip
  nl.addrAdd({ dev, address: '10.9.8.1', peer: '10.9.8.0/30' });
  assertSubset(nl.addrList({ dev }).find((x) => x.ip === '10.9.8.1')!, { peer: '10.9.8.0', prefixLen: 30 }, 'peer /30');
  assert.is(ipAddrs(ns, dev).find((x) => x.local === '10.9.8.1')!.prefixlen, 30);
  throwsNetlink(() => nl.addrDel({ dev, address: '10.9.9.1/32' }), 'EADDRNOTAVAIL');
  assert.ok(nl.addrDel({ dev, address: '10.9.9.1/32', peer: '10.9.9.2' }));
  assert.is(nl.addrList({ dev }).find((x) => x.ip === '10.9.9.1'), undefined);
}));

test('IPv6 with nodad is usable at once (not tentative); ip agrees', () => scratch((s) => {
  const { ns, nl, dev } = setup(s);
  nl.addrAdd({ dev, address: '2001:DB8:1::0001/64', noDad: true });
  const a = nl.addrList({ dev, family: 6 }).find((x) => x.ip === '2001:db8:1::1')!;
  assertSubset(a, { address: '2001:db8:1::1/64', prefixLen: 64, family: 6, scope: 'universe' }, 'address');
  assert.ok(a.flags & IFA_F_NODAD, 'nodad flag read back');
  const o = ipAddrs(ns, dev).find((x) => x.local === '2001:db8:1::1')!;
  assert.is(o.prefixlen, 64);
  assert.is(o.nodad, true, 'ip shows nodad');
  assert.not.ok(o.tentative, 'not tentative');
  // without nodad the kernel runs DAD: the flags say so
  nl.addrAdd({ dev, address: '2001:db8:2::1/64' });
  assert.ok(ipAddrs(ns, dev).find((x) => x.local === '2001:db8:2::1'), 'second v6 address present');
  // family filter: only v6, including the kernel's link-local one
  const v6 = nl.addrList({ dev, family: 6 });
  assert.ok(v6.every((x) => x.family === 6));
  assert.ok(v6.some((x) => x.scope === 'link' && x.ip.startsWith('fe80:')), 'link-local address listed with link scope');
}));

test('noPrefixRoute: the address comes without its subnet route', () => scratch((s) => {
  const { nl, dev } = setup(s);
  nl.addrAdd({ dev, address: '10.20.0.1/24', noPrefixRoute: true });
  nl.addrAdd({ dev, address: '10.21.0.1/24' });
  const routes = nl.routeList({ family: 4 });
  assert.is(routes.find((r) => r.dst === '10.20.0.0/24'), undefined);
  assert.ok(routes.find((r) => r.dst === '10.21.0.0/24' && r.dev === dev), 'the other one has its prefix route');
}));

test('add is exclusive (EEXIST); replace is idempotent and updates; delete-if-present', () => scratch((s) => {
  const { ns, nl, dev } = setup(s);
  const spec = { dev, address: '192.168.50.1/24', broadcast: true as const };
  nl.addrAdd(spec);
  throwsNetlink(() => nl.addrAdd(spec), 'EEXIST', { operation: `RTM_NEWADDR 192.168.50.1/24 dev ${dev}` });
  nl.addrReplace(spec);
  nl.addrReplace(spec);
  assert.is(nl.addrList({ dev, family: 4 }).length, 1, 'still one address');
  // the kernel keeps broadcast and label of an existing IPv4 address on replace (as `ip addr replace` shows)
  nl.addrReplace({ ...spec, broadcast: '192.168.50.200', label: `${dev}:x` });
  assertSubset(nl.addrList({ dev, family: 4 })[0], { broadcast: '192.168.50.255', label: dev }, 'after replace');
  // ensureAddress converges them
  assert.is(nl.ensureAddress({ ...spec, broadcast: '192.168.50.200', label: `${dev}:x` }), 'recreated');
  assertSubset(nl.addrList({ dev, family: 4 })[0], { broadcast: '192.168.50.200', label: `${dev}:x` }, 'ensured');
  assertSubset(ipAddrs(ns, dev).find((x) => x.family === 'inet')!, { broadcast: '192.168.50.200', label: `${dev}:x` }, 'ip');
  assert.is(nl.ensureAddress({ ...spec, broadcast: '192.168.50.200', label: `${dev}:x` }), 'unchanged');
  assert.is(nl.ensureAddress({ dev, address: '192.168.51.1/24' }), 'created');
  assert.is(nl.ensureAddress({ dev, address: '192.168.51.1/24' }), 'unchanged');
  assert.ok(nl.addrDel({ dev, address: '192.168.51.1/24' }));
  // replace of a missing address creates it
  nl.addrReplace({ dev, address: '2001:db8:5::1/64', noDad: true });
  nl.addrReplace({ dev, address: '2001:db8:5::1/64', noDad: true });
  assert.is(nl.addrList({ dev, family: 6 }).filter((x) => x.ip === '2001:db8:5::1').length, 1);

  assert.is(nl.addrDel({ dev, address: '192.168.50.1/24' }), true);
  assert.is(nl.addrDel({ dev, address: '192.168.50.1/24' }, { ifExists: true }), false);
  throwsNetlink(() => nl.addrDel({ dev, address: '192.168.50.1/24' }), 'EADDRNOTAVAIL', { operation: 'RTM_DELADDR' });
  assert.is(nl.addrDel({ dev, address: '2001:db8:5::1/64' }), true);
  assert.is(nl.addrDel({ dev, address: '2001:db8:5::1/64' }, { ifExists: true }), false);
  assert.is(ipAddrs(ns, dev).filter((x) => x.scope === 'global').length, 0);
}));

test('addrList: per device, per family, all devices; same set as `ip addr`', () => scratch((s) => {
  const { ns, nl, dev } = setup(s);
  const other = uniq('ad');
  nl.linkAdd({ kind: 'veth', name: other, peer: { name: uniq('ap') } });
  nl.addrAdd({ dev, address: '10.30.0.1/24' });
  nl.addrAdd({ dev: other, address: '10.31.0.1/24' });
  nl.addrAdd({ dev: other, address: '2001:db8:31::1/64', noDad: true });
  assert.equal(nl.addrList({ dev: other, family: 4 }).map((a) => a.address), ['10.31.0.1/24']);
  assert.equal(nl.addrList({ dev: nl.indexOf(dev), family: 4 }).map((a) => a.address), ['10.30.0.1/24']);
  const all = nl.addrList().map((a) => `${a.dev} ${a.address}`).sort();
  const o = ipJson<Array<{ ifname: string; addr_info: IpAddrInfo[] }>>(ns, ['addr', 'show'])
    .flatMap((l) => l.addr_info.map((x) => `${l.ifname} ${x.local}/${x.prefixlen}`)).sort();
  assert.equal(all, o);
  assert.ok(all.includes('lo 127.0.0.1/8'));
}));

test('invalid input is refused before anything is sent', () => scratch((s) => {
  const { nl, dev } = setup(s);
  assert.throws(() => nl.addrAdd({ dev, address: '10.0.0.300/24' }), /not an IP address/);
  assert.throws(() => nl.addrAdd({ dev, address: '10.0.0.1/33' }), /bad prefix length/);
  assert.throws(() => nl.addrAdd({ dev, address: '2001:db8::1/64', peer: '2001:db8::2' }), /IPv4/);
  throwsNetlink(() => nl.addrAdd({ dev: uniq('no'), address: '10.0.0.1/24' }), 'ENODEV');
}));

test.run();
