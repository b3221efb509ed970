/**
 * The DHCP/DNS module's supervision logic on the in-memory kernel (FakeKernel, FakeDnsmasq): when dnsmasq is
 * started, reloaded, restarted and stopped, one dnsmasq per router, its files, the DNS guard in the router table,
 * and a dnsmasq that dies with its namespace coming back with restore-all. No root, no dnsmasq binary. What guests
 * get on the wire stays with test/router/dhcp-engine.test.ts.
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
import { FakeKernel, type FakeDnsmasq } from '../../lib/router/fake-kernel.js';
import { dnsmasqDir } from '../../lib/router/dhcp/module.js';
import { ROUTER_TABLE } from '../../lib/router/router-table.js';

function setup() {
  const stateDir = mkdtempSync(join(tmpdir(), 'nr-fake-dhcp-'));
  const k = new FakeKernel({ devices: ['eth1'] });
  const engine = new RouterEngine({ stateDir, devices: { guest: 'eth1', public: 'eth1' }, kernel: k });
  const run = <C extends EngineCommand>(c: C, input: CommandInputs[C]) => runCommand(engine, requestFromValues(c, input, { networkDetails: {} }));
  const dnsmasq = (ns: string) => k.dnsmasq(ns, dnsmasqDir(stateDir, ns)) as FakeDnsmasq;
  return { k, engine, run, dnsmasq, done: () => rmSync(stateDir, { recursive: true, force: true }) };
}

const mac = (n: number) => `02:00:5e:00:01:${n.toString(16).padStart(2, '0')}`;
const fileWith = (d: FakeDnsmasq, text: string): boolean => [...d.files.values()].some((c) => c.includes(text));

test('isolated network: started, reloaded for a reservation, restarted for a command-line change, stopped with DHCP', async () => {
  const { run, dnsmasq, done } = setup();
  try {
    const net = { networkId: 51 };
    await run('implement-network', { ...net, vlan: 'vxlan://5051', gateway: '10.51.0.1', cidr: '10.51.0.0/24' });
    const d = dnsmasq('cs-net-51');
    assert.not.ok(d.present(), 'no dnsmasq without DHCP');
    await run('config-dhcp-subnet', { ...net, gateway: '10.51.0.1', cidr: '10.51.0.0/24' });
    assert.equal(d.actions, ['start']);
    const pid = d.pid();
    assert.ok(pid);
    assert.ok(fileWith(d, 'tag:tier-51,3,10.51.0.1'), 'the router option: the gateway');

    await run('add-dhcp-entry', { ...net, mac: mac(1), ip: '10.51.0.10', hostname: 'vm-one', defaultNic: true });
    assert.equal(d.actions, ['start', 'reload'], 'a reservation is a file: a reload');
    assert.is(d.pid(), pid, 'same process');
    assert.ok(fileWith(d, mac(1)) && fileWith(d, '10.51.0.10'), 'the reservation is in its files');

    await run('add-dhcp-entry', { ...net, mac: mac(1), ip: '10.51.0.10', hostname: 'vm-one', defaultNic: true });
    assert.equal(d.actions, ['start', 'reload'], 'the same reservation again changes nothing');

    await run('config-dns-subnet', { ...net, gateway: '10.51.0.1', cidr: '10.51.0.0/24', domain: 'guests.example' });
    assert.equal(d.actions, ['start', 'reload', 'restart'], 'DNS on: another command line, a restart');
    assert.ok(d.pid() !== pid, 'a new process');

    await run('remove-dhcp-entry', { ...net, mac: mac(1) });
    assert.not.ok(fileWith(d, mac(1)), 'the reservation is gone from its files');

    await run('remove-dhcp-subnet', { ...net });
    assert.is(d.actions.at(-1), 'stop', 'no DHCP left: stopped');
    assert.not.ok(d.present(), 'and its files gone');
    await run('destroy-network', net);
  } finally {
    done();
  }
});

test('VPC: one dnsmasq for the router; DNS closed (nft guard) to the DHCP-only tier, open once both serve DNS', async () => {
  const { k, run, dnsmasq, done } = setup();
  try {
    const a = { networkId: 611, vpcId: 61 };
    const b = { networkId: 612, vpcId: 61 };
    await run('implement-vpc', { vpcId: 61, vpcCidr: '10.61.0.0/16' });
    await run('implement-network', { ...a, vlan: 'vxlan://5611', gateway: '10.61.1.1', cidr: '10.61.1.0/24' });
    await run('implement-network', { ...b, vlan: 'vxlan://5612', gateway: '10.61.2.1', cidr: '10.61.2.0/24' });
    await run('config-dns-subnet', { ...a, gateway: '10.61.1.1', cidr: '10.61.1.0/24' });
    await run('config-dhcp-subnet', { ...b, gateway: '10.61.2.1', cidr: '10.61.2.0/24' });
    const d = dnsmasq('cs-vpc-61');
    assert.ok(d.pid(), 'one dnsmasq serves the VPC');
    assert.is(d.actions.filter((x) => x === 'start').length, 1, 'started once');
    const guard = async () => (await k.nftOf('cs-vpc-61').list(ROUTER_TABLE)).rules.filter((r) => r.chain === 'dhcp_dns_guard');
    const rules = await guard();
    assert.is(rules.length, 1, 'port 53 closed to the DHCP-only tier');
    const tierB = k.open('cs-vpc-61').netlink.addrList().find((x) => x.address === '10.61.2.1/24')!.dev!;
    assert.match(JSON.stringify(rules[0].expr), tierB, 'on tier B\'s interface');
    assert.not.match(JSON.stringify(rules[0].expr), k.open('cs-vpc-61').netlink.addrList().find((x) => x.address === '10.61.1.1/24')!.dev!);

    await run('config-dns-subnet', { ...b, gateway: '10.61.2.1', cidr: '10.61.2.0/24' });
    assert.equal(await guard(), [], 'DNS on both tiers: no guard');

    // a reboot: the namespace and dnsmasq are gone, the state is kept; restore-all brings both back
    k.deleteNetns('cs-vpc-61');
    assert.is(d.pid(), undefined, 'dnsmasq died with its namespace');
    await run('restore-all', {});
    assert.ok(k.netnsExists('cs-vpc-61'));
    assert.ok(d.pid(), 'dnsmasq runs again');
    await run('destroy-network', a);
    await run('destroy-network', b);
    assert.not.ok(d.present(), 'the last tier gone: stopped');
    await run('destroy-vpc', { vpcId: 61 });
    assert.equal(k.namespaces(), []);
  } finally {
    done();
  }
});

test('a dnsmasq cannot start in a namespace that does not exist (as the real one cannot)', async () => {
  const k = new FakeKernel();
  const d = k.dnsmasq('cs-net-1', '/nonexistent/dnsmasq') as FakeDnsmasq;
  let failed: unknown;
  try { await d.apply({ argv: ['--x'], files: {}, dnsPort: 0 }); } catch (e) { failed = e; }
  assert.is((failed as { code?: string } | undefined)?.code, 'E_DNSMASQ_START');
  assert.match(String(failed), 'does not exist');
  assert.is(d.pid(), undefined);
  k.addNetns('cs-net-1');
  await d.apply({ argv: ['--x'], files: {}, dnsPort: 0 });
  assert.ok(d.pid(), 'positive control: in an existing namespace it starts');
});

test.run();
