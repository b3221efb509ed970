// Extension-allocated VLANs for real (qemu lane: the development kernel has no 8021q), through the CLI with
// CloudStack's payload files: with guest.network.isolation.range the extension picks the VLAN, prints it for
// CloudStack and builds it (a VM tagged on it reaches its router); without any isolation detail a bare
// number is a VLAN exactly as before; destroy gives the VLAN back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { Scratch, nsTry } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { cloudstackReads } from '../helpers/cloudstack.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');
const pings = (ns: string, ip: string) => nsTry(ns, ['ping', '-n', '-c', '3', '-W', '2', '-i', '0.3', ip], 20_000).status === 0;

test('VLAN allocation by the extension, and bare VLAN numbers without any isolation detail', () => {
  assert.ok(existsSync('/proc/net/vlan/config'), '8021q present (this lane exists for it)');
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-iso-vlan-'));
  try {
    const hostNs = s.ns('host');
    const trunkNs = s.ns('trunk');
    const h = s.handle(hostNs);
    h.netlink.linkAdd({ kind: 'veth', name: 'eth1', up: true, peer: { name: 'sw0', namespace: { netns: trunkNs }, up: true } });
    const t = s.handle(trunkNs);
    /** A VM tagged on `vlan` (a sub-interface of the trunk's far end in its own namespace). */
    const taggedVm = (vlan: number, ip: string, gw: string): string => {
      const ns = s.ns('vm');
      t.netlink.linkAdd({ kind: 'vlan', name: `v${vlan}`, parent: 'sw0', id: vlan, namespace: { netns: ns } });
      const v = s.handle(ns);
      v.netlink.linkSetUp('lo');
      v.netlink.linkSetUp(`v${vlan}`);
      v.netlink.addrAdd({ dev: `v${vlan}`, address: ip });
      v.netlink.routeReplace({ dst: 'default', via: gw });
      return ns;
    };
    const g = ['--host-netns', hostNs, '--state-dir', join(dir, 'state'), '--log-file', join(dir, 'log')];
    const pool = { 'guest.network.device': 'eth1', 'guest.network.isolation': 'vlan', 'guest.network.isolation.range': '300-301' };
    let n = 0;
    const run = (command: string, payload: object, phys: object = pool) => {
      const f = join(dir, `p${n++}.json`);
      writeFileSync(f, JSON.stringify({ 'physical-network-extension-details': phys, 'network-extension-details': {}, payload }));
      return spawnSync(process.execPath, [CLI, command, f, '60', ...g], { encoding: 'utf8', timeout: 60_000 });
    };
    const uriOf = (r: ReturnType<typeof run>) => {
      const cs = cloudstackReads(r);
      assert.ok(cs.ok, `${r.stderr}${r.stdout}`);
      assert.is(cs.json?.['network.broadcast_domain_type'], 'Vlan');
      return cs.json?.['network.broadcast_uri'];
    };
    for (const id of ['81', '82', '83', '84']) s.track(`cs-net-${id}`);

    let r = run('implement-network', { network_id: '81', vlan: '', gateway: '10.81.0.1', cidr: '10.81.0.0/24' });
    assert.is(uriOf(r), 'vlan://300');
    const sub = h.netlink.linkGet('eth1.300');
    assert.is(sub.kind === 'vlan' && sub.id, 300);
    assert.is(sub.master, 'breth1-300');
    assert.ok(pings(taggedVm(300, '10.81.0.10/24', '10.81.0.1'), '10.81.0.1'), 'a VM tagged 300 reaches the router the VLAN was allocated for');
    r = run('implement-network', { network_id: '82', vlan: '', gateway: '10.82.0.1', cidr: '10.82.0.0/24' });
    assert.is(uriOf(r), 'vlan://301');

    // no isolation detail at all: CloudStack's bare "100" is VLAN 100, nothing printed (as before)
    r = run('implement-network', { network_id: '83', vlan: '100', gateway: '10.83.0.1', cidr: '10.83.0.0/24' }, { 'guest.network.device': 'eth1' });
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout, '');
    assert.is(h.netlink.linkGet('eth1.100').master, 'breth1-100');
    assert.ok(pings(taggedVm(100, '10.83.0.10/24', '10.83.0.1'), '10.83.0.1'), 'a VM tagged 100 reaches its router');

    r = run('destroy-network', { network_id: '81', vlan: '300' });
    assert.is(r.status, 0, r.stderr);
    r = run('implement-network', { network_id: '84', vlan: '', gateway: '10.84.0.1', cidr: '10.84.0.0/24' });
    assert.is(uriOf(r), 'vlan://300', 'the destroyed network\'s VLAN is handed out again');
    for (const [id, vlan] of [['82', '301'], ['83', '100'], ['84', '300']]) {
      r = run('destroy-network', { network_id: id, vlan }, id === '83' ? { 'guest.network.device': 'eth1' } : pool);
      assert.is(r.status, 0, r.stderr);
    }
  } finally {
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
