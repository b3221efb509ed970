// Routes and policy-routing rules through lib/netlink on the real kernel, cross-checked with `ip -j route/rule`.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { NetlinkHandle, Route } from '../../lib/netlink/index.js';
import { scratch, uniq, ipJson, throwsNetlink, assertSubset, type Scratch } from './helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();
const test = suite('routes');

interface IpRoute {
  type?: string;
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  table?: string;
  prefsrc?: string;
}

/** A namespace with veth `dev` up, 10.1.0.1/24 and 2001:db8:1::1/64 on it. */
function setup(s: Scratch): { ns: string; nl: NetlinkHandle; dev: string } {
  const { name: ns, h } = s.ns();
  const nl = h.netlink;
  const dev = uniq('rd');
  nl.linkAdd({ kind: 'veth', name: dev, up: true, peer: { name: uniq('rp'), up: true } });
  nl.addrAdd({ dev, address: '10.1.0.1/24' });
  nl.addrAdd({ dev, address: '2001:db8:1::1/64', noDad: true });
  return { ns, nl, dev };
}

const find = (rs: Route[], dst: string, table = 254): Route | undefined => rs.find((r) => r.dst === dst && r.table === table);

test('IPv4: default, via with metric, dev-only (scope link), host route, prefsrc; ip route agrees', () => scratch((s) => {
  const { ns, nl, dev } = setup(s);
  nl.routeAdd({ dst: 'default', via: '10.1.0.254' });
  nl.routeAdd({ dst: '10.2.0.0/16', via: '10.1.0.253', metric: 100 });
  nl.routeAdd({ dst: '10.3.0.0/16', dev });
  nl.routeAdd({ dst: '10.4.0.7', dev, src: '10.1.0.1' });
  const rs = nl.routeList({ family: 4 });
  assertSubset(find(rs, 'default')!, { family: 4, via: '10.1.0.254', dev, type: 'unicast', scope: 'universe', protocol: 3 }, 'default');
  assertSubset(find(rs, '10.2.0.0/16')!, { via: '10.1.0.253', metric: 100, dev }, '10.2/16');
  assertSubset(find(rs, '10.3.0.0/16')!, { scope: 'link', dev }, '10.3/16');
  assert.is(find(rs, '10.3.0.0/16')!.via, undefined);
  assertSubset(find(rs, '10.4.0.7/32')!, { src: '10.1.0.1', scope: 'link' }, 'host route');
  assertSubset(find(rs, '10.1.0.0/24')!, { protocol: 2, scope: 'link', src: '10.1.0.1' }, 'kernel prefix route');

  const o = ipJson<IpRoute[]>(ns, ['-d', '-4', 'route', 'show']);
  assertSubset(o.find((r) => r.dst === 'default')!, { gateway: '10.1.0.254', dev, protocol: 'boot', type: 'unicast' }, 'ip default');
  assertSubset(o.find((r) => r.dst === '10.2.0.0/16')!, { gateway: '10.1.0.253', metric: 100 }, 'ip 10.2/16');
  assertSubset(o.find((r) => r.dst === '10.3.0.0/16')!, { dev, scope: 'link' }, 'ip 10.3/16');
  assertSubset(o.find((r) => r.dst === '10.4.0.7')!, { prefsrc: '10.1.0.1' }, 'ip host route');
  // same set of destinations in the main table
  assert.equal(nl.routeList({ family: 4 }).map((r) => (r.dst.endsWith('/32') ? r.dst.slice(0, -3) : r.dst)).sort(), o.map((r) => r.dst).sort());
}));

test('other tables, blackhole / unreachable / prohibit, table "all"', () => scratch((s) => {
  const { ns, nl, dev } = setup(s);
  nl.routeAdd({ dst: '10.50.0.0/16', via: '10.1.0.254', table: 100 });
  nl.routeAdd({ dst: 'default', dev, table: 100 });
  nl.routeAdd({ dst: '10.51.0.0/16', type: 'blackhole' });
  nl.routeAdd({ dst: '10.52.0.0/16', type: 'unreachable', table: 100 });
  nl.routeAdd({ dst: '10.53.0.0/16', type: 'prohibit', metric: 5 });
  nl.routeAdd({ dst: '2001:db8:99::/48', type: 'blackhole' });
  nl.routeAdd({ dst: '10.54.0.0/16', via: '10.1.0.254', table: 70000 });

  assert.equal(nl.routeList({ table: 100, family: 4 }).map((r) => r.dst).sort(), ['10.50.0.0/16', '10.52.0.0/16', 'default']);
  assert.is(find(nl.routeList(), '10.50.0.0/16'), undefined, 'not in main');
  assertSubset(find(nl.routeList({ table: 100 }), '10.52.0.0/16', 100)!, { type: 'unreachable' }, 'unreachable');
  assertSubset(find(nl.routeList(), '10.51.0.0/16')!, { type: 'blackhole' }, 'blackhole');
  assertSubset(find(nl.routeList(), '10.53.0.0/16')!, { type: 'prohibit', metric: 5 }, 'prohibit');
  assertSubset(find(nl.routeList({ family: 6 }), '2001:db8:99::/48')!, { type: 'blackhole', family: 6 }, 'v6 blackhole');
  assertSubset(find(nl.routeList({ table: 70000 }), '10.54.0.0/16', 70000)!, { via: '10.1.0.254' }, 'table id above 255');
  const all = nl.routeList({ table: 'all', family: 4 });
  assert.ok(find(all, '10.50.0.0/16', 100) && find(all, '10.51.0.0/16') && find(all, '10.54.0.0/16', 70000));
  assert.ok(all.some((r) => r.table === 255 && r.type === 'local'), 'local table included');

  const o = ipJson<IpRoute[]>(ns, ['-4', 'route', 'show', 'table', '100']);
  assert.equal(o.map((r) => r.dst).sort(), ['10.50.0.0/16', '10.52.0.0/16', 'default']);
  assert.is(o.find((r) => r.dst === '10.52.0.0/16')!.type, 'unreachable');
  assert.is(ipJson<IpRoute[]>(ns, ['-4', 'route', 'show', 'table', '70000'])[0].gateway, '10.1.0.254');
  assert.is(ipJson<IpRoute[]>(ns, ['-6', 'route', 'show', '2001:db8:99::/48'])[0].type, 'blackhole');

  // deleting without saying the type matches any type (like ip route del)
  assert.ok(nl.routeDel({ dst: '10.51.0.0/16' }));
  assert.ok(nl.routeDel({ dst: '10.52.0.0/16', table: 100 }));
  assert.ok(nl.routeDel({ dst: '2001:db8:99::/48' }));
  assert.ok(nl.routeDel({ dst: '10.53.0.0/16', type: 'prohibit', metric: 5 }));
  assert.is(find(nl.routeList(), '10.51.0.0/16'), undefined);
  assert.is(ipJson<IpRoute[]>(ns, ['-4', 'route', 'show', 'table', '100']).length, 2);
}));

test('IPv6: default and prefix via a gateway, dev routes, metric', () => scratch((s) => {
  const { ns, nl, dev } = setup(s);
  nl.routeAdd({ dst: 'default', via: '2001:db8:1::fe' });
  nl.routeAdd({ dst: '2001:db8:2::/48', via: '2001:db8:1::fd', metric: 42 });
  nl.routeAdd({ dst: '2001:db8:3::/64', dev, family: 6 });
  nl.routeAdd({ dst: 'default', family: 6, dev, table: 200 });
  const rs = nl.routeList({ family: 6 });
  assertSubset(find(rs, 'default')!, { family: 6, via: '2001:db8:1::fe', dev }, 'v6 default');
  assertSubset(find(rs, '2001:db8:2::/48')!, { via: '2001:db8:1::fd', metric: 42 }, 'v6 via');
  assertSubset(find(rs, '2001:db8:3::/64')!, { dev }, 'v6 dev route');
  assertSubset(find(nl.routeList({ family: 6, table: 200 }), 'default', 200)!, { dev }, 'v6 default table 200');
  const o = ipJson<IpRoute[]>(ns, ['-6', 'route', 'show']);
  assertSubset(o.find((r) => r.dst === 'default')!, { gateway: '2001:db8:1::fe', dev }, 'ip v6 default');
  assertSubset(o.find((r) => r.dst === '2001:db8:2::/48')!, { gateway: '2001:db8:1::fd', metric: 42 }, 'ip v6 via');
  assert.ok(nl.routeDel({ dst: '2001:db8:2::/48', via: '2001:db8:1::fd', metric: 42 }));
  assert.is(find(nl.routeList({ family: 6 }), '2001:db8:2::/48'), undefined);
}));

test('add is exclusive; replace is idempotent and updates; delete-if-present', () => scratch((s) => {
  const { ns, nl, dev } = setup(s);
  nl.routeAdd({ dst: '10.60.0.0/16', via: '10.1.0.254' });
  throwsNetlink(() => nl.routeAdd({ dst: '10.60.0.0/16', via: '10.1.0.254' }), 'EEXIST', { operation: 'RTM_NEWROUTE 10.60.0.0/16 via 10.1.0.254' });
  nl.routeReplace({ dst: '10.60.0.0/16', via: '10.1.0.253' });
  nl.routeReplace({ dst: '10.60.0.0/16', via: '10.1.0.253' });
  const rs = nl.routeList().filter((r) => r.dst === '10.60.0.0/16');
  assert.is(rs.length, 1, 'one route');
  assert.is(rs[0].via, '10.1.0.253', 'replaced');
  assert.is(ipJson<IpRoute[]>(ns, ['route', 'show', '10.60.0.0/16'])[0].gateway, '10.1.0.253');
  nl.routeReplace({ dst: '10.60.0.0/16', dev });
  assert.is(nl.routeList().find((r) => r.dst === '10.60.0.0/16')!.via, undefined, 'replaced by a dev route');
  nl.routeReplace({ dst: '10.61.0.0/16', via: '10.1.0.254', table: 300 });
  assert.ok(find(nl.routeList({ table: 300 }), '10.61.0.0/16', 300), 'replace creates a missing route');

  assert.is(nl.routeDel({ dst: '10.60.0.0/16' }), true);
  assert.is(nl.routeDel({ dst: '10.60.0.0/16' }, { ifExists: true }), false);
  throwsNetlink(() => nl.routeDel({ dst: '10.60.0.0/16' }), 'ESRCH', { operation: 'RTM_DELROUTE 10.60.0.0/16' });
  assert.is(nl.routeDel({ dst: '10.61.0.0/16', table: 300 }), true);
  assert.is(nl.routeDel({ dst: '10.61.0.0/16', table: 300 }, { ifExists: true }), false);
  // a delete that names a gateway only removes the route through it
  nl.routeAdd({ dst: '10.62.0.0/16', via: '10.1.0.254' });
  throwsNetlink(() => nl.routeDel({ dst: '10.62.0.0/16', via: '10.1.0.9' }), 'ESRCH');
  assert.ok(find(nl.routeList(), '10.62.0.0/16'));
}));

test('routeList filters by device', () => scratch((s) => {
  const { nl, dev } = setup(s);
  const other = uniq('rd');
  nl.linkAdd({ kind: 'veth', name: other, up: true, peer: { name: uniq('rp'), up: true } });
  nl.routeAdd({ dst: '10.70.0.0/16', dev: other });
  nl.routeAdd({ dst: '10.71.0.0/16', dev });
  assert.equal(nl.routeList({ dev: other, family: 4 }).map((r) => r.dst), ['10.70.0.0/16']);
  assert.ok(nl.routeList({ dev, family: 4 }).every((r) => r.dev === dev));
}));

interface IpRule {
  priority: number;
  src?: string;
  srclen?: number;
  dst?: string;
  dstlen?: number;
  iif?: string;
  oif?: string;
  fwmark?: string;
  fwmask?: string;
  table: string;
}

test('rules: priority, from, to, iif, oif, fwmark/mask, table; v4 and v6; ip rule agrees', () => scratch((s) => {
  const { ns, nl, dev } = setup(s);
  nl.ruleAdd({ priority: 1000, from: '10.1.0.0/24', table: 100 });
  nl.ruleAdd({ priority: 1001, to: '10.2.0.0/16', table: 101 });
  nl.ruleAdd({ priority: 1002, iif: dev, table: 102 });
  nl.ruleAdd({ priority: 1003, fwmark: 0x10, fwmask: 0xff, table: 103 });
  nl.ruleAdd({ priority: 1004, oif: dev, from: '10.1.0.5', table: 'main' });
  nl.ruleAdd({ priority: 1005, from: '2001:db8::/32', table: 104 });
  const rules = nl.ruleList();
  const by = (p: number) => rules.find((r) => r.priority === p)!;
  assertSubset(by(1000), { family: 4, from: '10.1.0.0/24', table: 100 }, 'rule 1000');
  assertSubset(by(1001), { to: '10.2.0.0/16', table: 101 }, 'rule 1001');
  assertSubset(by(1002), { iif: dev, table: 102 }, 'rule 1002');
  assertSubset(by(1003), { fwmark: 0x10, fwmask: 0xff, table: 103 }, 'rule 1003');
  assertSubset(by(1004), { oif: dev, from: '10.1.0.5/32', table: 254 }, 'rule 1004');
  assertSubset(by(1005), { family: 6, from: '2001:db8::/32', table: 104 }, 'rule 1005');
  assertSubset(rules.find((r) => r.table === 255 && r.family === 4)!, { priority: 0 }, 'the local rule has priority 0');
  assert.equal(nl.ruleList(6).map((r) => r.family), nl.ruleList(6).map(() => 6));

  const o = ipJson<IpRule[]>(ns, ['-4', 'rule', 'show']);
  const ob = (p: number) => o.find((r) => r.priority === p)!;
  assertSubset(ob(1000), { src: '10.1.0.0', srclen: 24, table: '100' }, 'ip rule 1000');
  assertSubset(ob(1001), { dst: '10.2.0.0', dstlen: 16, table: '101' }, 'ip rule 1001');
  assertSubset(ob(1002), { iif: dev, table: '102' }, 'ip rule 1002');
  assertSubset(ob(1003), { fwmark: '0x10', fwmask: '0xff', table: '103' }, 'ip rule 1003');
  assertSubset(ob(1004), { oif: dev, src: '10.1.0.5', table: 'main' }, 'ip rule 1004');
  assert.equal(nl.ruleList(4).map((r) => r.priority).sort((a, b) => a! - b!), o.map((r) => r.priority).sort((a, b) => a - b));
  assert.is(ipJson<IpRule[]>(ns, ['-6', 'rule', 'show']).find((r) => r.priority === 1005)!.src, '2001:db8::');

  throwsNetlink(() => nl.ruleAdd({ priority: 1000, from: '10.1.0.0/24', table: 100 }), 'EEXIST');
  assert.ok(nl.ruleDel({ priority: 1000, from: '10.1.0.0/24', table: 100 }));
  assert.is(nl.ruleDel({ priority: 1000, from: '10.1.0.0/24', table: 100 }, { ifExists: true }), false);
  throwsNetlink(() => nl.ruleDel({ priority: 1000, from: '10.1.0.0/24', table: 100 }), 'ENOENT');
  assert.ok(nl.ruleDel({ priority: 1005, from: '2001:db8::/32', table: 104 }));
  assert.is(nl.ruleList().find((r) => r.priority === 1000 || r.priority === 1005), undefined);
  assert.is(ipJson<IpRule[]>(ns, ['-4', 'rule', 'show']).find((r) => r.priority === 1000), undefined);
}));

test.run();
