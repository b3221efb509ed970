/**
 * A guest segment and a public segment are never one host bridge (docs/contract.md, "guest and public segments"),
 * on the fake kernel (VLANs included): the same router's guest and public segment on one device (untagged, the
 * same VLAN) refused by the model check; two device names on one bridge, and another router's guest or public
 * veths in the bridge, refused by plumbing before it changes anything. Every refusal: exit 1 naming the
 * argument, state and links as they were, and a positive control beside it. Real packets: test/router/
 * public-isolation.test.ts (untagged, in the sandbox).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterEngine } from '../../lib/router/engine.js';
import { runCommand } from '../../lib/router/command-table.js';
import { requestFromValues } from '../../lib/router/contract/plain-values.js';
import type { CommandInputs } from '../../lib/router/contract/inputs.js';
import type { EngineCommand } from '../../lib/router/contract/types.js';
import { FakeKernel } from '../../lib/router/fake-kernel.js';
import { exitCodeOf, UsageError } from '../../lib/util/errors.js';
import { parseMark } from '../../lib/router/ownership.js';

function setup(devices: { guest: string; public: string } = { guest: 'eth1', public: 'eth1' }) {
  const dir = mkdtempSync(join(tmpdir(), 'nr-fake-seg-'));
  const k = new FakeKernel({ devices: ['eth1'] });
  const engine = new RouterEngine({ stateDir: dir, devices, kernel: k });
  const run = <C extends EngineCommand>(c: C, input: CommandInputs[C]) => runCommand(engine, requestFromValues(c, input, { networkDetails: {} }));
  /** What a refusal must leave as it was: every stored router and every link, host and namespaces. */
  const snapshot = (): string => JSON.stringify({
    state: engine.store.list().map((ns) => engine.store.load(ns)),
    host: k.host().netlink.linkList().map((l) => [l.name, l.masterIndex, l.alias]),
    ns: k.namespaces().map((ns) => k.open(ns).netlink.linkList().map((l) => l.name)),
  });
  return { k, engine, run, snapshot, done: () => rmSync(dir, { recursive: true, force: true }) };
}

const pub = (ip: string, vlan: string) => ({ publicIp: ip, publicVlan: vlan, publicGateway: '203.0.113.1', publicCidr: '203.0.113.0/24', sourceNat: true });

/** `p` fails with exit 1 naming `argument`, and `before` (a snapshot) still holds. */
async function refused(p: Promise<unknown>, argument: string, text: RegExp, before: string, after: () => string): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.is(exitCodeOf(e), 1, String(e));
    assert.is((e as UsageError).argument, argument, String(e));
    assert.match(String((e as Error).message), text);
    assert.not.match(String((e as Error).message), /\n/, 'one line');
    assert.is(after(), before, 'nothing changed');
    return;
  }
  assert.unreachable(`should have been refused (${argument})`);
}

test('one router: a guest segment and a public segment on one device are refused (untagged, one VLAN, either order)', async () => {
  const { k, run, snapshot, done } = setup();
  try {
    await run('implement-network', { networkId: 42, vlan: 'untagged', gateway: '10.42.0.1', cidr: '10.42.0.0/24' });
    let before = snapshot();
    await refused(run('assign-ip', { networkId: 42, ...pub('203.0.113.10', 'untagged') }), 'public_vlan', /untagged on eth1.*guest segment of network 42/, before, snapshot);
    // positive control: a public VLAN on the same device
    await run('assign-ip', { networkId: 42, ...pub('203.0.113.10', 'vlan://200') });
    assert.ok(k.host().netlink.linkFind('breth1-200'), 'the public segment\'s bridge');

    // a VPC: public VLAN 300 first, then a tier on VLAN 300 (the guest segment is the argument), and on 301
    await run('implement-vpc', { vpcId: 7, vpcCidr: '10.70.0.0/16', ...pub('203.0.113.20', 'vlan://300') });
    before = snapshot();
    await refused(run('implement-network', { networkId: 71, vpcId: 7, vlan: 'vlan://300', gateway: '10.70.1.1', cidr: '10.70.1.0/24' }), 'vlan', /vlan:\/\/300 on eth1.*public segment of 203\.0\.113\.20/, before, snapshot);
    await run('implement-network', { networkId: 71, vpcId: 7, vlan: 'vlan://301', gateway: '10.70.1.1', cidr: '10.70.1.0/24' });
    before = snapshot();
    await refused(run('assign-ip', { networkId: 71, vpcId: 7, ...pub('203.0.113.21', 'vlan://301') }), 'public_vlan', /vlan:\/\/301 on eth1/, before, snapshot);
    await run('assign-ip', { networkId: 71, vpcId: 7, ...pub('203.0.113.21', 'vlan://300') });
  } finally {
    done();
  }
});

test('one router: two device names on one host bridge (an untagged eth1 in cloudbr0, and cloudbr0) are refused by plumbing', async () => {
  const { k, run, snapshot, done } = setup({ guest: 'eth1', public: 'cloudbr0' });
  try {
    const hl = k.host().netlink;
    hl.linkAdd({ kind: 'bridge', name: 'cloudbr0', up: true });
    hl.linkSet('eth1', { master: 'cloudbr0' });
    await run('implement-network', { networkId: 42, vlan: 'untagged', gateway: '10.42.0.1', cidr: '10.42.0.0/24' });
    const before = snapshot();
    await refused(run('assign-ip', { networkId: 42, ...pub('203.0.113.10', 'untagged') }), 'public_vlan', /host bridge "cloudbr0" also carries guest 42 untagged eth1 of this router/, before, snapshot);
    await run('assign-ip', { networkId: 42, ...pub('203.0.113.10', 'vlan://200') });
    assert.is(k.open('cs-net-42').netlink.linkList({ kind: 'veth' }).length, 2, 'positive control: a public VLAN on the bridge device');
  } finally {
    done();
  }
});

test('host-wide: a public segment is never an isolated network\'s or VPC tier\'s guest segment of another router; a shared network\'s may be', async () => {
  const { k, run, snapshot, done } = setup();
  try {
    await run('implement-network', { networkId: 42, vlan: 'vlan://300', gateway: '10.42.0.1', cidr: '10.42.0.0/24' });
    await run('implement-network', { networkId: 43, vlan: 'vxlan://5043', gateway: '10.43.0.1', cidr: '10.43.0.0/24' });
    let before = snapshot();
    await refused(run('assign-ip', { networkId: 43, ...pub('203.0.113.43', 'vlan://300') }), 'public_vlan', /host bridge "breth1-300" also carries guest 42 vlan:\/\/300 eth1 of router cs-net-42/, before, snapshot);
    await run('assign-ip', { networkId: 43, ...pub('203.0.113.43', 'vlan://301') });

    // the other way round: an isolated network on router 43's public segment
    before = snapshot();
    await refused(run('implement-network', { networkId: 44, vlan: 'vlan://301', gateway: '10.44.0.1', cidr: '10.44.0.0/24' }), 'vlan', /host bridge "breth1-301" also carries public vlan:\/\/301 eth1 of router cs-net-43/, before, snapshot);
    assert.not.ok(k.netnsExists('cs-net-44'), 'no namespace left');
    await run('implement-network', { networkId: 44, vlan: 'vlan://302', gateway: '10.44.0.1', cidr: '10.44.0.0/24' });

    // a shared network on the provider segment that is router 43's public segment: accepted, both ways
    await run('implement-network', { networkId: 45, guestType: 'shared', vlan: 'vlan://301', gateway: '203.0.113.1', cidr: '203.0.113.0/24', extensionIp: '203.0.113.45' });
    const sharedVeth = k.host().netlink.linkList({ master: 'breth1-301' }).map((l) => parseMark(l.alias)).find((m) => m?.kind === 'router' && m.namespace === 'cs-net-45');
    assert.match(sharedVeth?.kind === 'router' ? sharedVeth.role : '', /^shared 45 /, 'the shared network\'s veth is marked as such');
    await run('assign-ip', { networkId: 44, ...pub('203.0.113.44', 'vlan://301') });
    assert.is(k.host().netlink.linkList({ master: 'breth1-301' }).filter((l) => l.kind === 'veth').length, 3, 'two public veths and the shared network\'s');
  } finally {
    done();
  }
});

test.run();
