// Real traffic: namespaces wired only through the library (links, addresses, routes, sysctls) ping each other
// (iputils ping run inside them with `ip netns exec`).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { NetnsHandle } from '../../lib/netns/index.js';
import { scratch, uniq, nsRun, type Scratch } from '../netlink/helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();
const test = suite('traffic');

function ping(ns: string, ip: string, tries = 3): boolean {
  for (let i = 0; i < tries; i++) {
    if (nsRun(ns, ['ping', '-n', '-c1', '-W1', ip]).status === 0) return true;
  }
  return false;
}

/** A client namespace plugged into `router`: its veth end `eth0` in the client, the other end in the router. */
function client(s: Scratch, router: NetnsHandle, opts: { master?: string; v4: string; v6?: string; gw?: string }): { name: string; h: NetnsHandle; port: string } {
  const c = s.ns('tc');
  const port = uniq('tp');
  router.netlink.linkAdd({
    kind: 'veth', name: port, up: true, ...(opts.master ? { master: opts.master } : {}),
    peer: { name: 'eth0', namespace: { netns: c.name }, up: true },
  });
  c.h.netlink.addrAdd({ dev: 'eth0', address: opts.v4 });
  if (opts.v6) c.h.netlink.addrAdd({ dev: 'eth0', address: opts.v6, noDad: true });
  if (opts.gw) c.h.netlink.routeAdd({ dst: 'default', via: opts.gw });
  return { name: c.name, h: c.h, port };
}

test('two namespaces on one bridge ping each other over IPv4 and IPv6', () => scratch((s) => {
  const R = s.ns('tr');
  const br = uniq('br');
  R.h.netlink.linkAdd({ kind: 'bridge', name: br, up: true, stp: false, forwardDelay: 0 });
  const c1 = client(s, R.h, { master: br, v4: '10.77.0.11/24', v6: '2001:db8:77::11/64' });
  const c2 = client(s, R.h, { master: br, v4: '10.77.0.12/24', v6: '2001:db8:77::12/64' });
  assert.is(R.h.netlink.linkGet(c1.port).master, br);
  assert.ok(ping(c1.name, '10.77.0.12'), 'c1 → c2 over IPv4');
  assert.ok(ping(c2.name, '10.77.0.11'), 'c2 → c1 over IPv4');
  assert.ok(ping(c1.name, '2001:db8:77::12'), 'c1 → c2 over IPv6');
  // the neighbour learned from the traffic is visible through the library
  const n = c1.h.netlink.neighList({ dev: 'eth0', family: 4 }).find((x) => x.ip === '10.77.0.12');
  assert.ok(n?.mac, 'c2\'s MAC learned by c1');
  assert.is(n!.mac, c2.h.netlink.linkGet('eth0').mac);
  // unplugging c2's port from the bridge cuts it off
  R.h.netlink.linkSetMaster(c2.port, null);
  assert.not.ok(ping(c1.name, '10.77.0.12', 1), 'no path once the port left the bridge');
}));

test('routed between two subnets through a router namespace, only once ip_forward is on', () => scratch((s) => {
  const R = s.ns('tr');
  const br = uniq('br');
  R.h.netlink.linkAdd({ kind: 'bridge', name: br, up: true });
  R.h.netlink.addrAdd({ dev: br, address: '10.77.0.1/24' });
  const c1 = client(s, R.h, { master: br, v4: '10.77.0.11/24', gw: '10.77.0.1' });
  const c3 = client(s, R.h, { v4: '10.78.0.13/24', gw: '10.78.0.1' });
  R.h.netlink.addrAdd({ dev: c3.port, address: '10.78.0.1/24' });
  assert.ok(ping(c1.name, '10.77.0.1'), 'c1 reaches its gateway');
  assert.ok(ping(c3.name, '10.78.0.1'), 'c3 reaches its gateway');
  R.h.sysctlSet('net.ipv4.ip_forward', 0);
  assert.not.ok(ping(c1.name, '10.78.0.13', 1), 'no forwarding yet');
  R.h.sysctlSet('net.ipv4.ip_forward', 1);
  assert.ok(ping(c1.name, '10.78.0.13'), 'c1 → c3 routed');
  // a blackhole route in the router drops it again
  R.h.netlink.routeAdd({ dst: '10.78.0.13/32', type: 'blackhole' });
  assert.not.ok(ping(c1.name, '10.78.0.13', 1), 'blackholed');
  assert.ok(R.h.netlink.routeDel({ dst: '10.78.0.13/32' }));
  assert.ok(ping(c1.name, '10.78.0.13'), 'reachable again');
}));

test.run();
