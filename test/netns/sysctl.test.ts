// Network sysctls through NetnsHandle: they land in the handle's namespace and nowhere else (the sandbox's own
// values, read directly by this thread, stay put), per-interface keys work with dots in interface names.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { NetnsError, SysctlError } from '../../lib/netns/index.js';
import { scratch, uniq, nsRun } from '../netlink/helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { thrown } from '../helpers/expect.js';

requireSandbox();
const test = suite('sysctl');

/** The value in the namespace this test process runs in (the sandbox's). */
const own = (path: string): string => readFileSync(`/proc/sys/${path}`, 'utf8').trim();
/** The value as a process inside `ns` sees it. */
const inside = (ns: string, path: string): string => {
  const r = nsRun(ns, ['cat', `/proc/sys/${path}`]);
  assert.is(r.status, 0, r.stderr);
  return r.stdout.trim();
};

const throwsCode = (fn: () => unknown, cls: typeof SysctlError | typeof NetnsError, code: string): Error => thrown<Error & { code: string }>(fn, cls as never, { code });

test('ip_forward: set in the namespace, read back, seen inside, not in the sandbox', () => scratch((s) => {
  const { name, h } = s.ns();
  const before = own('net/ipv4/ip_forward');
  const want = before === '1' ? '0' : '1';
  h.sysctlSet('net.ipv4.ip_forward', want);
  assert.is(h.sysctlGet('net.ipv4.ip_forward'), want);
  assert.is(inside(name, 'net/ipv4/ip_forward'), want);
  assert.is(own('net/ipv4/ip_forward'), before, 'the sandbox\'s own value is untouched');
  h.sysctlSet('net.ipv6.conf.all.forwarding', 1);
  assert.is(inside(name, 'net/ipv6/conf/all/forwarding'), '1');
}));

test('per-interface disable_ipv6 / rp_filter / proxy_arp with a dot in the interface name', () => scratch((s) => {
  const { name, h } = s.ns();
  const dev = `${uniq('sy')}.5`;
  h.netlink.linkAdd({ kind: 'veth', name: dev, peer: { name: uniq('sz') } });
  const ownRp = own('net/ipv4/conf/all/rp_filter');
  h.setConf('ipv6', dev, 'disable_ipv6', 1);
  h.setConf('ipv4', dev, 'rp_filter', 2);
  h.setConf('ipv4', dev, 'proxy_arp', 1);
  h.sysctlSet(`net.ipv4.conf.${dev.replace('.', '/')}.arp_ignore`, 1);
  assert.is(h.getConf('ipv6', dev, 'disable_ipv6'), '1');
  assert.is(h.getConf('ipv4', dev, 'rp_filter'), '2');
  assert.is(h.getConf('ipv4', dev, 'proxy_arp'), '1');
  assert.is(inside(name, `net/ipv6/conf/${dev}/disable_ipv6`), '1');
  assert.is(inside(name, `net/ipv4/conf/${dev}/rp_filter`), '2');
  assert.is(inside(name, `net/ipv4/conf/${dev}/proxy_arp`), '1');
  assert.is(inside(name, `net/ipv4/conf/${dev}/arp_ignore`), '1');
  // disable_ipv6 took effect: no link-local address appears when the link comes up
  h.netlink.linkSetUp(dev);
  assert.is(h.netlink.addrList({ dev, family: 6 }).length, 0);
  h.setConf('ipv4', 'all', 'rp_filter', ownRp === '2' ? 1 : 2);
  assert.is(own('net/ipv4/conf/all/rp_filter'), ownRp, 'the sandbox\'s own value is untouched');
}));

test('two namespaces keep their own values', () => scratch((s) => {
  const A = s.ns('sa');
  const B = s.ns('sb');
  A.h.sysctlSet('net.ipv4.ip_forward', 1);
  B.h.sysctlSet('net.ipv4.ip_forward', 0);
  assert.is(A.h.sysctlGet('net.ipv4.ip_forward'), '1');
  assert.is(B.h.sysctlGet('net.ipv4.ip_forward'), '0');
}));

test('errors: missing key (ENOENT), invalid key (EINVAL), refused value, closed handle (EBADF)', () => scratch((s) => {
  const { h } = s.ns();
  throwsCode(() => h.sysctlGet('net.ipv4.no_such_thing'), SysctlError, 'ENOENT');
  throwsCode(() => h.getConf('ipv4', uniq('no'), 'rp_filter'), SysctlError, 'ENOENT');
  throwsCode(() => h.sysctlGet('kernel.hostname'), SysctlError, 'EINVAL');
  throwsCode(() => h.sysctlSet('net.//.//.//.etc.passwd', 'x'), SysctlError, 'EINVAL');
  throwsCode(() => h.sysctlSet('net.ipv4.ip_forward', 'abc'), SysctlError, 'EINVAL');
  h.close();
  throwsCode(() => h.sysctlGet('net.ipv4.ip_forward'), NetnsError, 'EBADF');
}));

test.run();
