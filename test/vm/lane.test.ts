// Checks the qemu lane itself (scripts/vm): that suites here really run on the guest kernel with the
// modules the VLAN tests need, in a sandbox namespace, and that the kernel can load modules on demand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { Scratch, uid } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();

function loaded(module: string): boolean {
  return existsSync(`/sys/module/${module}`);
}

test('runs in the VM, on a kernel with 8021q, bridge vlan filtering, veth as modules', () => {
  assert.is(process.env.NRVM_GUEST, '1', 'started by scripts/vm/guest-suites.mjs');
  const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  assert.ok(existsSync(`/lib/modules/${release}/modules.dep`), `modules of the running kernel ${release} are visible`);
  for (const m of ['8021q', 'bridge', 'veth', 'nf_tables']) assert.ok(loaded(m), `module ${m} loaded`);
});

test('the kernel loads a module on demand (rtnl-link-geneve through /init\'s modprobe helper)', () => {
  // geneve is not preloaded by guest-suites.mjs: creating one makes the kernel call modprobe
  const s = new Scratch();
  try {
    const ns = s.ns('gen');
    const name = `gn${uid(6)}`;
    execFileSync('ip', ['-n', ns, 'link', 'add', name, 'type', 'geneve', 'id', '5', 'remote', '192.0.2.1']);
    assert.ok(loaded('geneve'), 'geneve module loaded on demand');
  } finally {
    s.cleanup();
  }
});

test('the host\'s root, every path of it visible, writes kept in the guest (overlay over read-only 9p)', () => {
  assert.ok(existsSync(process.cwd() + '/package.json'), 'the checkout is visible, wherever it lives on the host');
  assert.is(execFileSync('stat', ['-f', '-c', '%T', '/'], { encoding: 'utf8' }).trim(), 'overlayfs');
  // the sandbox's own mount points and the places programs write to are writable (in the guest's RAM)
  for (const d of ['/tmp', '/var/lib', '/var/log', '/var/tmp', '/run', '/run/netns', '/etc/netns']) {
    execFileSync('touch', [`${d}/nrvm-probe-${uid(6)}`]);
  }
});

test.run();
