/**
 * Long-lived handles inside named namespaces (the shared libnftables contexts and generation readers a
 * resident engine keeps): when another process deletes a namespace and makes a new one of the same name, the
 * next use must act on the new namespace, never through the old handle on the old one.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as N from '../../lib/nft/index.js';
import { nftGeneration } from '../../lib/nft/generation.js';
import { netnsIdentity } from '../../lib/netns/namespaces.js';
import { addNs, delNs, nsSh, nsTables, requireSandbox, sh } from './helpers.js';

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

test.run();
