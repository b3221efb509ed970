/**
 * Supervision of a real dnsmasq in a namespace: start, reload without restart, restart on a command-line
 * change, a dead or stale-pid instance, start failures reported with dnsmasq's message, lease release (by
 * DHCPRELEASE and the hard way), stop and destroy leaving nothing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync, chmodSync, statSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DnsmasqInstance, DnsmasqProcessError, dnsmasqUserFor, parseSubnet4, renderDnsmasq, type TierSpec,
} from '../../lib/services/dnsmasq/index.js';
import { Scratch, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { udhcpc, dnsmasqPids, leaseFile } from '../helpers/dhcp.js';
import { rejected } from '../helpers/expect.js';

requireSandbox();

/** A router namespace with `vr` (10.5.5.1/24) wired to a guest namespace's eth0. */
function lab(s: Scratch, guestMac: string) {
  const router = s.ns('r');
  const guest = s.ns('g');
  const rh = s.handle(router);
  rh.netlink.linkSetUp('lo');
  rh.netlink.linkAdd({ kind: 'veth', name: 'vr', up: true, peer: { name: 'eth0', namespace: { netns: guest }, up: true, mac: guestMac } });
  rh.netlink.addrAdd({ dev: 'vr', address: '10.5.5.1/24' });
  s.handle(guest).netlink.linkSetUp('lo');
  return { router, guest };
}

const tier = (over: Partial<TierSpec> = {}): TierSpec => ({
  tag: 'tier-t', ifname: 'vr', subnet: parseSubnet4('10.5.5.0/24'), router: '10.5.5.1', dnsServers: [], dns: false, hosts: [], names: [], ...over,
});

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'nr-dnsmasq-'));
  chmodSync(d, 0o755);
  return join(d, 'run', 'dnsmasq');
}

test('start, reload (same pid), restart on a command-line change, revive after death, destroy', async () => {
  const s = new Scratch();
  const d = dir();
  const mac = '02:00:5e:10:00:01';
  try {
    const { router, guest } = lab(s, mac);
    const inst = new DnsmasqInstance(router, d);
    const render = (t: Partial<TierSpec>) => renderDnsmasq({ paths: inst.paths, user: dnsmasqUserFor(d), tiers: [tier(t)], upstream: [] });
    const r1 = await inst.apply(render({}));
    assert.is(r1.action, 'started');
    assert.is(inst.pid(), r1.pid);
    assert.is(readFileSync(`/proc/${r1.pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)![1] !== '0', true, 'runs as the dnsmasq user (directory reachable)');
    assert.is(statSync(inst.paths.hosts).mode & 0o777, 0o644);
    assert.is(readlinkSync(`/proc/${r1.pid}/ns/net`), `net:[${statSync(`/run/netns/${router}`).ino}]`, 'dnsmasq lives in the router namespace');
    assert.not.equal(readlinkSync(`/proc/${r1.pid}/ns/net`), readlinkSync('/proc/self/ns/net'));
    assert.is(udhcpc(guest), undefined, 'no reservation, no address (static only)');

    assert.is((await inst.apply(render({}))).action, 'unchanged');
    const r2 = await inst.apply(render({ hosts: [{ mac, ip: '10.5.5.20', hostname: 'g1' }] }));
    assert.equal([r2.action, r2.pid], ['reloaded', r1.pid]);
    const env = udhcpc(guest);
    assert.is(env?.ip, '10.5.5.20', 'the reloaded reservation is served');
    assert.is(env?.router, '10.5.5.1');

    const r3 = await inst.apply(render({ hosts: [{ mac, ip: '10.5.5.20', hostname: 'g1' }], dns: true }));
    assert.is(r3.action, 'restarted');
    assert.ok(r3.pid !== r1.pid);
    assert.equal(dnsmasqPids(d), [r3.pid], 'the old process is gone');
    assert.is(leaseFile(inst.paths.leases).get(mac), '10.5.5.20', 'leases survive the restart');

    process.kill(r3.pid, 'SIGKILL');
    await waitFor(() => inst.pid() === undefined);
    const r4 = await inst.apply(render({ hosts: [{ mac, ip: '10.5.5.20', hostname: 'g1' }], dns: true }));
    assert.is(r4.action, 'started', 'a dead dnsmasq is started again');

    // lease release: by DHCPRELEASE when the interface is served
    await inst.releaseLeases([{ ifname: 'vr', serverIp: '10.5.5.1', leases: inst.leases() }], render({ dns: true }).argv);
    assert.is(inst.pid(), r4.pid, 'released without a restart');
    assert.not.ok(leaseFile(inst.paths.leases).has(mac));

    await inst.destroy();
    assert.equal(dnsmasqPids(d), []);
    assert.not.ok(existsSync(d));
  } finally {
    for (const p of dnsmasqPids(d)) process.kill(p, 'SIGKILL');
    s.cleanup();
    rmSync(join(d, '..', '..'), { recursive: true, force: true });
  }
});

test('a stale pid file is never signalled; start failures carry dnsmasq\'s message; the hard lease release', async () => {
  const s = new Scratch();
  const d = dir();
  const mac = '02:00:5e:10:00:02';
  const bystander = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const { router, guest } = lab(s, mac);
    const inst = new DnsmasqInstance(router, d);
    const rendered = renderDnsmasq({ paths: inst.paths, user: 'root', tiers: [tier({ hosts: [{ mac, ip: '10.5.5.30' }] })], upstream: [] });
    await inst.apply(rendered);
    const pid = inst.pid()!;
    assert.is(udhcpc(guest)?.ip, '10.5.5.30');
    await inst.stop();
    writeFileSync(inst.paths.pid, `${bystander.pid}\n`);
    assert.is(inst.pid(), undefined, 'a pid file naming another process is not ours');
    assert.is((await inst.apply(rendered)).action, 'started');
    assert.ok(!bystander.killed && bystander.exitCode === null, 'the bystander was not signalled');
    assert.ok(inst.pid() !== pid);

    // a lease no served interface can release: removed with dnsmasq stopped, then started again
    const before = inst.pid();
    const stuck = await inst.releaseLeases([{ ifname: '', serverIp: '', leases: inst.leases() }], rendered.argv);
    assert.equal(stuck, [mac]);
    assert.not.ok(leaseFile(inst.paths.leases).has(mac));
    assert.ok(inst.pid() && inst.pid() !== before, 'restarted for the hard way');

    await inst.stop();
    const bad = { ...rendered, argv: [...rendered.argv, '--dhcp-range=set:x,10.99.0.0,static,255.255.255.0,nonsense'] };
    await rejected(inst.apply(bad), DnsmasqProcessError, { code: 'E_DNSMASQ_START', detail: /dnsmasq:/ }, 'started with a bad range');
    assert.equal(dnsmasqPids(d), []);
    await rejected(new DnsmasqInstance('nr-no-such-ns', join(d, 'other')).apply(rendered), DnsmasqProcessError, { code: 'E_DNSMASQ_START', message: /nr-no-such-ns/ }, 'started without a namespace');
    assert.is(dnsmasqUserFor(join(tmpdir(), 'nonexistent-dir', 'x')), existsSync('/etc/passwd') && readFileSync('/etc/passwd', 'utf8').includes('\ndnsmasq:') ? 'dnsmasq' : 'root');
    const closed = mkdtempSync(join(tmpdir(), 'nr-closed-'));
    assert.is(dnsmasqUserFor(join(closed, 'run')), 'root', 'a directory others cannot reach keeps dnsmasq root');
    rmSync(closed, { recursive: true, force: true });
  } finally {
    bystander.kill();
    for (const p of dnsmasqPids(d)) process.kill(p, 'SIGKILL');
    s.cleanup();
    rmSync(join(d, '..', '..'), { recursive: true, force: true });
  }
});

test.run();
