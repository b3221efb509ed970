/**
 * Secrets do not outlive the command (issue #20.5): CloudStack hands the extension details to the CLI in its
 * environment (CS_NETWORK_EXTENSION_DETAILS / CS_PHYSICAL_NETWORK_EXTENSION_DETAILS, which may hold passwords
 * and SSH keys). Every child — dnsmasq, haproxy, the metadata daemon, a custom-action
 * hook — gets the minimal child environment instead, read back from /proc/<pid>/environ. Positive control:
 * the same secret is in the environment of the CLI process itself while it runs (seen by the hook, its child).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Scratch, nsTry } from '../helpers/topo.js';
import { openLibnftables } from '../../lib/nft/libnftables.js';
import { requireSandbox } from '../helpers/sandbox.js';
import {
  addDhcpAndMetadata, addLb, addLeasedVm, addNat, bareRouter, daemonsOf, environOf, killDaemons, ok, probeUntil, type Vm,
} from '../helpers/router-cli.js';

requireSandbox();

const SECRET_NET = 'S3cret-network-passw0rd';
const SECRET_PHYS = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISECRETKEY operator@mgmt';
/** The base keys every child gets, and what a hook gets on top (docs/contract.md, hooks). */
const BASE = ['LC_ALL', 'PATH'];
const HOOK = [...BASE, 'NETNS_ROUTER_ACTION', 'NETNS_ROUTER_HOOK_RUN', 'NETNS_ROUTER_NAMESPACE', 'NETNS_ROUTER_NETWORK_ID', 'NETNS_ROUTER_STATE_DIR', 'NETNS_ROUTER_VPC_ID'].sort();

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

/** Inodes of the NETLINK_NETFILTER sockets (nftables') open in namespace `ns` (undefined: this process's), by anyone. */
function nftSockets(ns?: string): Set<string> {
  const text = ns === undefined ? readFileSync('/proc/self/net/netlink', 'utf8') : nsTry(ns, ['cat', '/proc/net/netlink']).stdout;
  // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode; Eth 12 = NETLINK_NETFILTER
  return new Set(text.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f[1] === '12').map((f) => f[9]));
}

/** fd → what it is (socket:[inode], a path …) of process `pid`, with whether the fd is close-on-exec. */
function fdsOf(pid: number | 'self'): Array<{ fd: number; target: string; cloexec: boolean }> {
  const out: Array<{ fd: number; target: string; cloexec: boolean }> = [];
  for (const d of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${d}`);
      const flags = /flags:\s*([0-7]+)/.exec(readFileSync(`/proc/${pid}/fdinfo/${d}`, 'utf8'))![1];
      out.push({ fd: Number(d), target, cloexec: (parseInt(flags, 8) & 0o2000000) !== 0 });
    } catch { /* closed meanwhile (the directory's own fd) */ }
  }
  return out;
}

test('no daemon of netns-router inherits a descriptor of the CLI: no nftables socket of the router, nothing that is not close-on-exec in the metadata daemon', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-fds-'));
  chmodSync(dir, 0o755);
  let router: ReturnType<typeof bareRouter> | undefined;
  try {
    const r = router = bareRouter(s, dir, '4102');
    addNat(r);
    addDhcpAndMetadata(r);
    addLb(r);
    const d = daemonsOf(r);
    assert.is(d.dnsmasq.length, 1, 'one dnsmasq');
    assert.ok(d.haproxy.length >= 1, 'haproxy');
    assert.is(d.metadata.length, 1, 'the metadata daemon');

    // positive control: the probe sees an nftables socket held in the router's namespace (this process's own)
    const ex = openLibnftables({ netns: r.ns });
    try {
      await ex.list({ family: 'inet', name: 'netns_router' });
      const ours = new Set(fdsOf('self').map((f) => f.target));
      assert.ok([...nftSockets(r.ns)].some((ino) => ours.has(`socket:[${ino}]`)), 'the probe finds this process\'s own nftables socket in the router');
    } finally {
      await ex.close();
    }

    const held = new Set([...nftSockets(r.ns), ...nftSockets(r.hostNs), ...nftSockets()].map((ino) => `socket:[${ino}]`));
    for (const [what, pids] of Object.entries(d)) {
      for (const pid of pids) {
        const fds = fdsOf(pid);
        assert.ok(fds.length >= 3, `${what} ${pid}: its descriptors are read`);
        const nftFds = fds.filter((f) => held.has(f.target));
        assert.equal(nftFds, [], `${what} ${pid}: holds no nftables socket (inherited from the CLI, it would keep the namespace alive)`);
      }
    }
    // the metadata daemon (Node) makes every descriptor of its own close-on-exec: one that is not came from its parent
    // — the CLI, or before it whatever started this test (those this process holds as well are that)
    const ambient = new Set(fdsOf('self').filter((f) => !f.cloexec).map((f) => `${f.fd} ${f.target}`));
    const [md] = d.metadata;
    const inherited = fdsOf(md).filter((f) => f.fd > 2 && !f.cloexec && !ambient.has(`${f.fd} ${f.target}`));
    assert.equal(inherited, [], `metadata daemon ${md}: every descriptor past stdio is its own (close-on-exec)`);
    ok(r.cli(['destroy-network', ...r.net]));
  } finally {
    if (router) killDaemons(router);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
