/**
 * A command acts only on its own router: network-extension-details naming another router's namespace (network 42
 * told to use cs-net-41, or a VPC's namespace) is refused with exit 1 before anything changes — it would merge
 * into that router, and a destroy would delete it. The other router keeps working (positive control each time).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { netnsExists } from '../../lib/netns/namespaces.js';
import { Scratch, addVm, ping, simulatedHost } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

test('network-extension-details naming another router\'s namespace: implement, assign-ip and destroy exit 1, the other router untouched', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-other-'));
  try {
    const { hostNs, h } = simulatedHost(s);
    const g = ['--host-netns', hostNs, '--state-dir', join(dir, 'state'), '--log-file', join(dir, 'log')];
    const cli = (...a: string[]) => spawnSync(process.execPath, [CLI, ...a, ...g], { encoding: 'utf8', timeout: 30_000 });
    const ns41 = s.track('cs-net-41');
    const vpcNs = s.track('cs-vpc-7');
    let r = cli('implement-network', '--network-id', '41', '--vlan', 'vxlan://5141', '--gateway', '10.41.0.1', '--cidr', '10.41.0.0/24');
    assert.is(r.status, 0, r.stderr);
    r = cli('implement-vpc', '--vpc-id', '7', '--vpc-cidr', '10.70.0.0/16');
    assert.is(r.status, 0, r.stderr);
    const vm = addVm(s, h, 'brvx-5141', '10.41.0.10/24', '10.41.0.1');
    assert.ok(ping(vm.ns, '10.41.0.1'), 'positive control: network 41 routes');
    const state41 = readFileSync(join(dir, 'state', 'routers', `${ns41}.json`), 'utf8');
    const other = (ns: string) => ['--network-extension-details', JSON.stringify({ namespace: ns })];

    const attempts: Array<[string, string[]]> = [
      ['implement-network into network 41\'s namespace', ['implement-network', '--network-id', '42', '--vlan', 'vxlan://5142', '--gateway', '10.42.0.1', '--cidr', '10.42.0.0/24', ...other(ns41)]],
      ['assign-ip into network 41\'s namespace', ['assign-ip', '--network-id', '42', '--public-ip', '203.0.113.42', '--public-vlan', 'untagged', '--public-gateway', '203.0.113.1', '--public-cidr', '203.0.113.0/24', ...other(ns41)]],
      ['destroy-network of 42 in network 41\'s namespace', ['destroy-network', '--network-id', '42', ...other(ns41)]],
      ['a network into a VPC\'s namespace', ['implement-network', '--network-id', '43', '--vlan', 'vxlan://5143', '--gateway', '10.43.0.1', '--cidr', '10.43.0.0/24', ...other(vpcNs)]],
      ['destroy-network into a VPC\'s namespace', ['destroy-network', '--network-id', '43', ...other(vpcNs)]],
    ];
    for (const [what, args] of attempts) {
      r = cli(...args);
      assert.is(r.status, 1, `${what}: exit 1 (${r.stderr})`);
      assert.match(r.stderr, 'network-extension-details.namespace', `${what}: names the argument`);
      assert.match(r.stderr, /holds the router of (network 41|VPC 7)/, `${what}: says whose router it is`);
      assert.is(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
    }
    assert.ok(netnsExists(ns41) && netnsExists(vpcNs), 'both namespaces are still there');
    assert.is(readFileSync(join(dir, 'state', 'routers', `${ns41}.json`), 'utf8'), state41, 'network 41\'s state unchanged');
    assert.ok(ping(vm.ns, '10.41.0.1'), 'network 41 still routes');
    // its own destroy still works
    r = cli('destroy-network', '--network-id', '41');
    assert.is(r.status, 0, r.stderr);
    assert.not.ok(netnsExists(ns41));
  } finally {
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
