/**
 * Secrets do not outlive the command (issue #20.5): CloudStack hands the extension details to the CLI in its
 * environment (CS_NETWORK_EXTENSION_DETAILS / CS_PHYSICAL_NETWORK_EXTENSION_DETAILS, which may hold passwords
 * and SSH keys). Every child — dnsmasq, haproxy, the metadata daemon, a custom-action
 * hook — gets the minimal child environment instead, read back from /proc/<pid>/environ. Positive control:
 * the same secret is in the environment of the CLI process itself while it runs (seen by the hook, its child).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Scratch } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import {
  addDhcpAndMetadata, addLb, addLeasedVm, addNat, bareRouter, daemonsOf, environOf, killDaemons, ok, probeUntil, type Vm,
} from '../helpers/router-cli.js';

requireSandbox();

const SECRET_NET = 'S3cret-network-passw0rd';
const SECRET_PHYS = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISECRETKEY operator@mgmt';
/** The base keys every child gets, and what a hook gets on top (docs/contract.md, hooks). */
const BASE = ['LC_ALL', 'PATH'];
const HOOK = [...BASE, 'NETNS_ROUTER_ACTION', 'NETNS_ROUTER_NAMESPACE', 'NETNS_ROUTER_NETWORK_ID', 'NETNS_ROUTER_STATE_DIR', 'NETNS_ROUTER_VPC_ID'].sort();

test('no child of netns-router carries the caller\'s environment: dnsmasq, haproxy, the metadata daemon and hooks get only the allowed keys', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-env-'));
  chmodSync(dir, 0o755);
  let vm: Vm | undefined;
  let router: ReturnType<typeof bareRouter> | undefined;
  const env = {
    ...process.env,
    NETNS_ROUTER_ENGINE_SOCKET: 'off',
    CS_NETWORK_EXTENSION_DETAILS: JSON.stringify({ password: SECRET_NET }),
    CS_PHYSICAL_NETWORK_EXTENSION_DETAILS: JSON.stringify({ 'guest.network.device': 'eth1', 'public.network.device': 'eth1', 'ssh-key': SECRET_PHYS }),
  };
  try {
    const r = router = bareRouter(s, dir, '4101', { env });
    addNat(r, { env });
    addDhcpAndMetadata(r, { env });
    addLb(r, { env });
    vm = await addLeasedVm(s, r);
    assert.equal(await probeUntil(r, vm, ['dhcp', 'metadata', 'lb']), { dhcp: true, metadata: true, lb: true }, 'every daemon serves');

    const d = daemonsOf(r);
    assert.is(d.dnsmasq.length, 1, 'one dnsmasq');
    assert.ok(d.haproxy.length >= 1, 'haproxy');
    assert.is(d.metadata.length, 1, 'the metadata daemon');
    for (const [what, pids] of Object.entries(d)) {
      for (const pid of pids) {
        const e = environOf(pid);
        const text = readFileSync(`/proc/${pid}/environ`, 'utf8');
        assert.not.ok(text.includes(SECRET_NET) || text.includes(SECRET_PHYS), `${what} ${pid}: no secret in its environment`);
        assert.not.ok([...e.keys()].some((k) => k.startsWith('CS_')), `${what} ${pid}: no CS_* variable`);
        // haproxy exports its own HAPROXY_* variables to itself
        const own = [...e.keys()].filter((k) => !(what === 'haproxy' && k.startsWith('HAPROXY_'))).sort();
        assert.equal(own, BASE, `${what} ${pid}: only the allowed keys (got ${own.join(' ')})`);
        assert.is(e.get('PATH'), process.env.PATH, `${what}: the caller's PATH`);
      }
    }

    // a hook: its own environment, and — the positive control — its parent's, the CLI process holding the secret
    mkdirSync(join(r.stateDir, 'hooks'), { recursive: true });
    const hook = join(r.stateDir, 'hooks', 'custom-action-envdump.sh');
    const out = join(dir, 'hook-env');
    writeFileSync(hook, `#!/bin/sh\ntr '\\0' '\\n' < /proc/$PPID/environ > ${out}.parent\nenv > ${out}.self\n`, { mode: 0o755 });
    ok(r.cli(['custom-action', ...r.net, '--action', 'envdump'], { env }), 'custom-action envdump');
    const parent = readFileSync(`${out}.parent`, 'utf8');
    assert.ok(parent.includes(SECRET_NET) && parent.includes(SECRET_PHYS), 'positive control: the CLI process itself holds both secrets');
    const self = readFileSync(`${out}.self`, 'utf8');
    assert.not.ok(self.includes(SECRET_NET) || self.includes(SECRET_PHYS), 'the hook does not');
    // sh adds PWD (and SHLVL, _) to what it exports itself
    const keys = self.trim().split('\n').map((l) => l.slice(0, l.indexOf('='))).filter((k) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(k)).sort();
    assert.equal(keys, HOOK, `the hook gets exactly the documented keys (got ${keys.join(' ')})`);
    assert.match(self, `NETNS_ROUTER_NAMESPACE=${r.ns}\n`);
    assert.match(self, 'NETNS_ROUTER_ACTION=envdump\n');
    ok(r.cli(['destroy-network', ...r.net], { env }));
  } finally {
    for (const p of vm?.procs ?? []) p.kill();
    if (router) killDaemons(router);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
