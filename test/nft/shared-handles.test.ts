/**
 * Long-lived handles inside named namespaces (the shared libnftables contexts, generation readers and
 * gratuitous-ARP sockets a resident engine keeps, lib/netns/namespace-cache.ts): when another process deletes a
 * namespace and makes a new one of the same name, the next use must act on the new namespace, never through the
 * old handle on the old one.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as N from '../../lib/nft/index.js';
import { nftGeneration } from '../../lib/nft/generation.js';
import { netnsIdentity } from '../../lib/netns/namespaces.js';
import { NetnsHandle } from '../../lib/netns/handle.js';
import { sendGratuitousArp } from '../../lib/router/garp.js';
import { addNs, delNs, nsSh, nsTables, sh } from './helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();

test('a namespace replaced behind our back: the shared context and the generation reader follow the new one', async () => {
  const ns = addNs('swap-');
  try {
    const first = netnsIdentity(ns);
    assert.ok(first);
    const tx = (name: string) => new N.Transaction({ family: 'inet', name }).add(N.table({ family: 'inet', name }));
    await N.sharedLibnftables(ns).apply(tx('before_swap'));
    const g1 = nftGeneration(ns);
    assert.equal(nsTables(ns), ['inet before_swap']);

    // another process (iproute2) deletes it and makes a new one of the same name: our hooks do not run
    sh('ip', ['netns', 'del', ns]);
    sh('ip', ['netns', 'add', ns]);
    assert.is.not(netnsIdentity(ns), first, 'a different namespace now');
    // a fresh namespace starts its own generation count; commits elsewhere move it
    nsSh(ns, 'nft', ['add', 'table', 'inet', 'marker']);
    nsSh(ns, 'nft', ['add', 'table', 'inet', 'marker2']);
    const g2 = nftGeneration(ns);
    nsSh(ns, 'nft', ['delete', 'table', 'inet', 'marker2']);
    assert.is(nftGeneration(ns), g2 + 1, 'the reader reads the new namespace (a commit there moved it by one)');
    assert.ok(g1 >= 1);

    await N.sharedLibnftables(ns).apply(tx('after_swap'));
    assert.equal(nsTables(ns).sort(), ['inet after_swap', 'inet marker'], 'applied in the new namespace');
  } finally {
    delNs(ns);
  }
});

test('a kept context pushed out of the cache while a command holds it: the command keeps it until its release', async () => {
  const names = Array.from({ length: N.MAX_SHARED + 1 }, () => addNs('lru-'));
  const missing = { family: 'inet' as const, name: 'no_such_table' };
  const code = async (ex: N.NftExecutor): Promise<string> => {
    try {
      await ex.list(missing);
      return 'listed';
    } catch (e) {
      return (e as N.NftError).code;
    }
  };
  try {
    // a command's executor (what namespaceExecutor hands the engine), and a plain kept one of another namespace
    const held = N.namespaceExecutor(names[0]);
    const plain = N.sharedLibnftables(names[1]);
    assert.is(await code(held.ex), 'ENOENT', 'the kernel\'s answer: no such table');
    assert.is(await code(plain), 'ENOENT');
    // MAX_SHARED other namespaces used meanwhile push both out of the cache
    for (const ns of names.slice(2)) await code(N.sharedLibnftables(ns));
    await code(N.sharedLibnftables());
    assert.is(await code(plain), 'E_NFT_EXECUTOR', 'positive control: the plain kept context was pushed out (freed)');
    assert.is(await code(held.ex), 'ENOENT', 'the held one still answers from the kernel');
    await held.release();
    assert.is(await code(held.ex), 'E_NFT_EXECUTOR', 'freed at its release');
    assert.is(await code(N.sharedLibnftables(names[0])), 'ENOENT', 'the next user gets a new context');
  } finally {
    for (const ns of names) delNs(ns);
    await N.sharedLibnftables().close();
  }
});

test('a namespace replaced behind our back: gratuitous ARP goes out of the new namespace', () => {
  const ns = addNs('garp-');
  const txPackets = (): number => {
    const [l] = JSON.parse(nsSh(ns, 'ip', ['-s', '-j', 'link', 'show', 'dev', 'ga0']).stdout) as Array<{ stats64: { tx: { packets: number } } }>;
    return l.stats64.tx.packets;
  };
  const withLink = (fn: (h: NetnsHandle) => void): void => {
    // no IPv6: nothing else may leave the link (router solicitations, MLD) while packets are counted
    nsSh(ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    const h = NetnsHandle.open(ns);
    try {
      h.netlink.linkAdd({ kind: 'veth', name: 'ga0', up: true, peer: { name: 'ga1', up: true } });
      fn(h);
    } finally {
      h.close();
    }
  };
  try {
    withLink((h) => {
      const t0 = txPackets();
      sendGratuitousArp(h, 'ga0', '192.0.2.1');
      assert.is(txPackets(), t0 + 1, 'sent in the first namespace');
    });
    sh('ip', ['netns', 'del', ns]);
    sh('ip', ['netns', 'add', ns]);
    withLink((h) => {
      const t0 = txPackets();
      sendGratuitousArp(h, 'ga0', '192.0.2.1');
      assert.is(txPackets(), t0 + 1, 'sent in the new namespace (not through the old one\'s socket)');
    });
  } finally {
    delNs(ns);
  }
});

test.run();
