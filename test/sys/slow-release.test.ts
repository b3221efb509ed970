/**
 * lib/sys/slow-release.ts on the real kernel: a namespace's NETLINK_NETFILTER sockets (a libnftables context, an
 * nftables generation reader) found by namespace; deleting the namespace after a commit that deleted something
 * (whose release then waits for nf_tables' clean-up) closes every one of them — the last references on worker
 * threads — and leaves another namespace's alone.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fstatSync, readdirSync, statSync } from 'node:fs';
import * as N from '../../lib/nft/index.js';
import { sharedLibnftables } from '../../lib/nft/libnftables.js';
import { nftGeneration } from '../../lib/nft/generation.js';
import { addNetns, deleteNetns } from '../../lib/netns/namespaces.js';
import { netnsPath } from '../../lib/sys/setns.js';
import { netfilterSockets } from '../../lib/sys/slow-release.js';
import * as libc from '../../lib/sys/libc.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { waitFor } from '../helpers/topo.js';

requireSandbox();

const T: N.TableRef = { family: 'inet', name: 'slr' };

const fdCount = (): number => readdirSync('/proc/self/fd').length;

/** The process's netfilter sockets that belong to the namespace of inode `ino`. */
function socketsOf(ino: number): number[] {
  return netfilterSockets().filter((fd) => {
    let ns: number | undefined;
    try {
      ns = libc.socketNetns(fd);
      return fstatSync(ns).ino === ino;
    } catch {
      return false; // closed meanwhile
    } finally {
      if (ns !== undefined) libc.close(ns);
    }
  });
}

test('a deleted namespace\'s netfilter sockets all close (off the event loop), another namespace\'s stay and work', async () => {
  const a = `slr-a-${process.pid}`;
  const b = `slr-b-${process.pid}`;
  const fds0 = fdCount();
  addNetns(a);
  addNetns(b);
  try {
    const ino = (ns: string): number => statSync(netnsPath(ns)).ino;
    const [ia, ib] = [ino(a), ino(b)];
    for (const ns of [a, b]) {
      const ex = sharedLibnftables(ns);
      // a commit that deletes something: the release of this namespace's sockets now waits in the kernel
      await ex.apply(N.replaceTable(T, [N.set('s', 'ipv4_addr', { elements: [{ key: '10.0.0.1' }] })]));
      await ex.apply(new N.Transaction(T).delete(N.elements('s', [{ key: '10.0.0.1' }])));
      nftGeneration(ns);
    }
    assert.is(socketsOf(ia).length, 2, 'namespace a: its libnftables context and its generation reader');
    assert.is(socketsOf(ib).length, 2, 'namespace b: the same');
    assert.ok(socketsOf(ia).every((fd) => !socketsOf(ib).includes(fd)), 'told apart by namespace');
    assert.ok(netfilterSockets().length >= 4, 'all of the process\'s');

    deleteNetns(a);
    assert.ok(await waitFor(() => socketsOf(ia).length === 0, 10_000), 'namespace a\'s netfilter sockets closed');
    assert.is(socketsOf(ib).length, 2, 'namespace b\'s untouched');
    const gen = nftGeneration(b);
    assert.ok(Number.isInteger(gen) && gen > 0, 'b\'s reader still answers');
    // positive control of the wait above: b's are found the same way, and go the same way
    deleteNetns(b);
    assert.ok(await waitFor(() => socketsOf(ib).length === 0, 10_000), 'namespace b\'s netfilter sockets closed');
    assert.ok(await waitFor(() => fdCount() <= fds0 + 2, 5_000), `no descriptor left behind, duplicates included (${fdCount()} open, ${fds0} before)`);
  } finally {
    deleteNetns(a, { ifExists: true });
    deleteNetns(b, { ifExists: true });
  }
});

test.run();
