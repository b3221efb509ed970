/**
 * Issue 20, items 2 and 3 on the real kernel, through the CLI: no router takes over another's link (names
 * that used to collide, names upstream itself gives twice, links made by hand), no namespace netns-router did
 * not make is changed or deleted (unless adopted), and routers of a version without marks keep working.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, spawnSync } from 'node:child_process';
import { addNetns, netnsExists } from '../../lib/netns/namespaces.js';
import type { NetnsHandle } from '../../lib/netns/handle.js';
import { RouterEngine } from '../../lib/router/engine.js';
import { vethNames, routerNamespace } from '../../lib/router/names.js';
import { namespaceMark } from '../../lib/router/ownership.js';
import { openIngress } from '../helpers/fw.js';
import { Scratch, addVm, ping, simulatedHost, cidr, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { runCommand } from '../../lib/router/command-table.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

interface Env {
  s: Scratch;
  dir: string;
  hostNs: string;
  upNs: string;
  h: NetnsHandle;
  cli: (...a: string[]) => { status: number | null; stdout: string; stderr: string };
}

async function withHost(fn: (e: Env) => Promise<void> | void): Promise<void> {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-own-'));
  try {
    const { hostNs, upNs, h } = simulatedHost(s);
    const g = ['--host-netns', hostNs, '--state-dir', join(dir, 'state'), '--log-file', join(dir, 'log')];
    const cli = (...a: string[]) => spawnSync(process.execPath, [CLI, ...a, ...g], { encoding: 'utf8', timeout: 30_000 });
    await fn({ s, dir, hostNs, upNs, h, cli });
  } finally {
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** implement-network + assign-ip of a public IP on `publicVlan` (a router with its public veth). */
function publicRouter(e: Env, id: string, guestVni: number, publicIp: string, publicVlan: string): void {
  e.s.track(`cs-net-${id}`);
  let r = e.cli('implement-network', '--network-id', id, '--vlan', `vxlan://${guestVni}`, '--gateway', '10.9.0.1', '--cidr', '10.9.0.0/24');
  assert.is(r.status, 0, r.stderr);
  r = e.cli('assign-ip', '--network-id', id, '--public-ip', publicIp, '--public-vlan', publicVlan, '--public-gateway', '198.51.100.1',
    '--public-cidr', '198.51.100.0/24', '--source-nat', 'true');
  assert.is(r.status, 0, `assign-ip ${id}: ${r.stderr}`);
  openIcmp(e, id, publicIp);
}

/** Public IPs of an isolated network are closed until a firewall rule opens them: let pings in. */
function openIcmp(e: Env, id: string, publicIp: string): void {
  const r = e.cli('apply-fw-rules', '--network-id', id, '--fw-rules', JSON.stringify({ rules: [{ type: 'ingress', protocol: 'icmp', publicIp }] }));
  assert.is(r.status, 0, `apply-fw-rules ${id}: ${r.stderr}`);
}

const addressesOf = (ns: string): string =>
  spawnSync('ip', ['netns', 'exec', ns, 'ip', '-o', '-4', 'addr', 'show'], { encoding: 'utf8' }).stdout;

test('VXLAN public segments: networks 4096/4097 (vxlan://100000) and 300/301 (vxlan://16777215) keep their own public veths', () => withHost((e) => {
  for (const [a, b, vni] of [['4096', '4097', 100000], ['300', '301', 16777215]] as const) {
    publicRouter(e, a, 5000 + Number(a) % 1000, `198.51.100.${Number(a) % 200 + 10}`, `vxlan://${vni}`);
    // the upstream side of the public segment: a peer in the segment's bridge
    const peer = addVm(e.s, e.h, `brvx-${vni}`, '198.51.100.1/24');
    publicRouter(e, b, 5500 + Number(b) % 1000, `198.51.100.${Number(b) % 200 + 10}`, `vxlan://${vni}`);
    for (const id of [a, b]) {
      const ip = `198.51.100.${Number(id) % 200 + 10}`;
      const ns = `cs-net-${id}`;
      const names = vethNames({ role: 'public', namespace: ns, routerId: id, segment: { kind: 'vxlan', vni }, device: 'eth1' });
      const hostEnd = e.h.netlink.linkGet(names.host);
      assert.match(hostEnd.alias ?? '', `netns-router:router ${ns} public vxlan://${vni} eth1`, `${names.host} is marked for ${ns}`);
      assert.match(addressesOf(ns), `${ip}/24`, `${ns} keeps its public address`);
      assert.ok(ping(peer.ns, ip), `the public segment reaches ${ns} (${ip})`);
    }
  }
}));

test('parallel commands of six routers on one fresh public segment: all succeed, each keeps its own veth', async () => withHost(async (e) => {
  const g = ['--host-netns', e.hostNs, '--state-dir', join(e.dir, 'state'), '--log-file', join(e.dir, 'log')];
  const run = (...a: string[]) => new Promise<{ status: number | null; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, [CLI, ...a, ...g], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    c.on('close', (status) => resolve({ status, stderr }));
  });
  const ids = ['601', '602', '603', '604', '605', '606'];
  for (const id of ids) e.s.track(`cs-net-${id}`);
  let rs = await Promise.all(ids.map((id) => run('implement-network', '--network-id', id, '--vlan', `vxlan://${id}`, '--gateway', '10.9.0.1', '--cidr', '10.9.0.0/24')));
  for (const r of rs) assert.is(r.status, 0, r.stderr);
  rs = await Promise.all(ids.map((id) => run('assign-ip', '--network-id', id, '--public-ip', `198.51.100.${Number(id) - 580}`, '--public-vlan', 'vxlan://66',
    '--public-gateway', '198.51.100.1', '--public-cidr', '198.51.100.0/24', '--source-nat', 'true')));
  for (const r of rs) assert.is(r.status, 0, r.stderr);
  for (const id of ids) openIcmp(e, id, `198.51.100.${Number(id) - 580}`);
  const peer = addVm(e.s, e.h, 'brvx-66', '198.51.100.1/24');
  for (const id of ids) {
    assert.ok(ping(peer.ns, `198.51.100.${Number(id) - 580}`), `network ${id} answers`);
    assert.match(e.h.netlink.linkGet(`vph-x66-${id}`).alias ?? '', `netns-router:router cs-net-${id} `);
  }
  assert.is(e.h.netlink.linkList({ kind: 'vxlan' }).filter((l) => (l as { vni: number }).vni === 66).length, 1, 'one VXLAN device for the segment');
}));

test('names upstream gives twice (network 8 and VPC 8 on vxlan://5 → vph-x5-8): the second is refused, the first keeps working', () => withHost((e) => {
  publicRouter(e, '8', 5008, '198.51.100.8', 'vxlan://5');
  const peer = addVm(e.s, e.h, 'brvx-5', '198.51.100.1/24');
  assert.ok(ping(peer.ns, '198.51.100.8'), 'network 8 answers on its public IP');
  e.s.track('cs-vpc-8');
  const r = e.cli('implement-vpc', '--vpc-id', '8', '--vpc-cidr', '10.80.0.0/16', '--public-ip', '198.51.100.88', '--public-vlan', 'vxlan://5',
    '--public-gateway', '198.51.100.1', '--public-cidr', '198.51.100.0/24', '--source-nat', 'true');
  assert.is(r.status, 2, `refused with exit 2: ${r.stderr}`);
  assert.match(r.stderr, 'host link "vph-x5-8"');
  assert.match(r.stderr, 'belongs to router cs-net-8 (public vxlan://5 eth1)');
  assert.is(e.h.netlink.linkGet('vph-x5-8').alias, 'netns-router:router cs-net-8 public vxlan://5 eth1', 'the link is untouched');
  assert.match(addressesOf('cs-net-8'), '198.51.100.8/24');
  assert.ok(ping(peer.ns, '198.51.100.8'), 'network 8 still answers');
  assert.not.ok(ping(peer.ns, '198.51.100.88'), 'the refused VPC has no public address');
}));

test('untagged tiers of one VPC on two host devices get their own veths; both gateways answer', () => withHost((e) => {
  for (const dev of ['eth2', 'eth3']) e.h.netlink.linkAdd({ kind: 'veth', name: dev, up: true, peer: { name: `${dev}p`, up: true } });
  e.s.track('cs-vpc-8');
  let r = e.cli('implement-vpc', '--vpc-id', '8', '--vpc-cidr', '10.8.0.0/16');
  assert.is(r.status, 0, r.stderr);
  const tier = (id: string, dev: string, n: number) => e.cli('implement-network', '--network-id', id, '--vpc-id', '8', '--vlan', 'untagged',
    '--gateway', `10.8.${n}.1`, '--cidr', `10.8.${n}.0/24`, '--physical-network-extension-details', JSON.stringify({ 'guest.network.device': dev }));
  r = tier('201', 'eth2', 1);
  assert.is(r.status, 0, r.stderr);
  r = tier('202', 'eth3', 2);
  assert.is(r.status, 0, r.stderr);
  const vm1 = addVm(e.s, e.h, 'breth2-u', '10.8.1.10/24', '10.8.1.1');
  const vm2 = addVm(e.s, e.h, 'breth3-u', '10.8.2.10/24', '10.8.2.1');
  assert.ok(ping(vm1.ns, '10.8.1.1'), 'tier 201 gateway');
  assert.ok(ping(vm2.ns, '10.8.2.1'), 'tier 202 gateway');
  assert.ok(ping(vm1.ns, '10.8.2.10'), 'tier 201 reaches tier 202 through the router');
  const addrs = addressesOf('cs-vpc-8');
  assert.match(addrs, '10.8.1.1/24');
  assert.match(addrs, '10.8.2.1/24');
  // a later command on the first tier works on its own veth (upstream-style naming failed here with EEXIST)
  r = e.cli('apply-network-acl', '--network-id', '201', '--vpc-id', '8', '--acl-rules',
    JSON.stringify([{ number: 1, action: 'allow', trafficType: 'ingress', protocol: 'all', sourceCidrs: ['0.0.0.0/0'] }]));
  assert.is(r.status, 0, r.stderr);
  assert.ok(ping(vm2.ns, '10.8.1.10'), 'tier 202 reaches tier 201 (ACL allows)');
}));

test('a link made by hand with a router\'s name is refused and left alone; another router is unaffected', () => withHost((e) => {
  publicRouter(e, '41', 5041, '198.51.100.41', 'vxlan://77');
  const peer = addVm(e.s, e.h, 'brvx-77', '198.51.100.1/24');
  const want = vethNames({ role: 'public', namespace: 'cs-net-42', routerId: '42', segment: { kind: 'vxlan', vni: 77 }, device: 'eth1' }).host;
  e.h.netlink.linkAdd({ kind: 'veth', name: want, up: true, peer: { name: 'handmade0', up: true } });
  e.h.netlink.addrAdd({ dev: want, address: '192.0.2.1/24' });
  e.s.track('cs-net-42');
  let r = e.cli('implement-network', '--network-id', '42', '--vlan', 'vxlan://5042', '--gateway', '10.9.0.1', '--cidr', '10.9.0.0/24');
  assert.is(r.status, 0, r.stderr);
  r = e.cli('assign-ip', '--network-id', '42', '--public-ip', '198.51.100.42', '--public-vlan', 'vxlan://77', '--public-gateway', '198.51.100.1',
    '--public-cidr', '198.51.100.0/24');
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, `host link "${want}"`);
  assert.match(r.stderr, 'no netns-router mark');
  const still = e.h.netlink.linkGet(want);
  assert.is(still.alias, undefined, 'no mark was put on it');
  assert.is(e.h.netlink.linkGet('handmade0').kind, 'veth', 'its peer is still there');
  assert.ok(e.h.netlink.addrList({ dev: want }).some((x) => x.ip === '192.0.2.1'), 'its address is still there');
  assert.ok(ping(peer.ns, '198.51.100.41'), 'the other router still answers');
  // a link carrying another router's mark is refused the same way, naming that router
  e.h.netlink.linkDel(want);
  e.h.netlink.linkAdd({ kind: 'veth', name: want, alias: 'netns-router:router cs-net-300 public vxlan://77 eth1', peer: { name: 'handmade1' } });
  r = e.cli('assign-ip', '--network-id', '42', '--public-ip', '198.51.100.42', '--public-vlan', 'vxlan://77', '--public-gateway', '198.51.100.1',
    '--public-cidr', '198.51.100.0/24');
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, `host link "${want}" (needed by cs-net-42 for public vxlan://77 eth1) belongs to router cs-net-300`);
  assert.ok(e.h.netlink.linkFind('handmade1'));
  // the owner removes it: the command goes through
  e.h.netlink.linkDel(want);
  r = e.cli('assign-ip', '--network-id', '42', '--public-ip', '198.51.100.42', '--public-vlan', 'vxlan://77', '--public-gateway', '198.51.100.1',
    '--public-cidr', '198.51.100.0/24');
  assert.is(r.status, 0, r.stderr);
  openIcmp(e, '42', '198.51.100.42');
  assert.ok(ping(peer.ns, '198.51.100.42'));
}));

test('shared host objects: a foreign VXLAN device of the VNI and its bridge are used as they are; a foreign link named like ours is refused', () => withHost((e) => {
  // the "agent" made the segment under its own names: vxagent (VNI 7777, port 8472) in bridge cloudvx
  e.h.netlink.linkAdd({ kind: 'bridge', name: 'cloudvx', up: true });
  e.h.netlink.linkAdd({ kind: 'vxlan', name: 'vxagent', vni: 7777, dev: 'eth1', dstPort: 8472, learning: false, master: 'cloudvx', up: true });
  const before = e.h.netlink.linkGet('vxagent');
  e.s.track('cs-net-77');
  let r = e.cli('implement-network', '--network-id', '77', '--vlan', 'vxlan://7777', '--gateway', '10.77.0.1', '--cidr', '10.77.0.0/24');
  // a VXLAN device of another UDP port is another overlay: ours is made beside it
  assert.is(r.status, 0, r.stderr);
  assert.ok(e.h.netlink.linkFind('vxlan7777'));
  const after = e.h.netlink.linkGet('vxagent');
  assert.equal([after.kind, after.master, (after as { dstPort?: number }).dstPort, after.alias], [before.kind, 'cloudvx', 8472, undefined], 'the agent\'s device is unchanged');
  // same port: the kernel allows one device per VNI, so the agent's device and bridge are the segment
  e.h.netlink.linkAdd({ kind: 'bridge', name: 'cloudvx2', up: true });
  e.h.netlink.linkAdd({ kind: 'vxlan', name: 'vxagent2', vni: 7778, dev: 'eth1', dstPort: 4789, learning: true, master: 'cloudvx2', up: true });
  e.s.track('cs-net-78');
  r = e.cli('implement-network', '--network-id', '78', '--vlan', 'vxlan://7778', '--gateway', '10.78.0.1', '--cidr', '10.78.0.0/24');
  assert.is(r.status, 0, r.stderr);
  assert.is(e.h.netlink.linkFind('vxlan7778'), undefined, 'no second device for the VNI');
  const vm = addVm(e.s, e.h, 'cloudvx2', '10.78.0.10/24', '10.78.0.1');
  assert.ok(ping(vm.ns, '10.78.0.1'), 'the router sits in the agent\'s bridge');
  assert.is(e.h.netlink.linkGet('vxagent2').alias, undefined, 'and did not mark it');
  // a link named like the VNI's device that does not carry it is refused, and left alone
  e.h.netlink.linkAdd({ kind: 'bridge', name: 'vxlan7779', up: false });
  e.s.track('cs-net-79');
  r = e.cli('implement-network', '--network-id', '79', '--vlan', 'vxlan://7779', '--gateway', '10.79.0.1', '--cidr', '10.79.0.0/24');
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, 'host link "vxlan7779" is a bridge, not the vxlan://7779 device on eth1 netns-router needs');
  assert.is(e.h.netlink.linkGet('vxlan7779').up, false, 'untouched');
}));

test('upstream untagged on a device that is already a bridge port: the router joins that bridge, the device is not moved', () => withHost((e) => {
  e.h.netlink.linkAdd({ kind: 'bridge', name: 'cloudbr0', up: true });
  e.h.netlink.linkAdd({ kind: 'veth', name: 'eth2', master: 'cloudbr0', up: true, peer: { name: 'eth2p', up: true } });
  e.s.track('cs-net-90');
  const r = e.cli('implement-network', '--network-id', '90', '--vlan', 'untagged', '--gateway', '10.90.0.1', '--cidr', '10.90.0.0/24',
    '--physical-network-extension-details', JSON.stringify({ 'guest.network.device': 'eth2' }));
  assert.is(r.status, 0, r.stderr);
  assert.is(e.h.netlink.linkGet('eth2').master, 'cloudbr0', 'eth2 stays in cloudbr0');
  assert.is(e.h.netlink.linkFind('breth2-u'), undefined, 'no bridge of ours beside it');
  const vm = addVm(e.s, e.h, 'cloudbr0', '10.90.0.10/24', '10.90.0.1');
  assert.ok(ping(vm.ns, '10.90.0.1'));
}));

test('a namespace netns-router did not create is refused (implement and destroy), untouched; adopt-namespace takes it over', () => withHost((e) => {
  addNetns('tenant-x');
  e.s.track('tenant-x');
  const tx = e.s.handle('tenant-x');
  tx.netlink.linkAdd({ kind: 'veth', name: 'tx0', up: true, peer: { name: 'tx1', up: true } });
  const details = (extra: Record<string, string> = {}) => ['--network-extension-details', JSON.stringify({ namespace: 'tenant-x', ...extra })];
  const implement = (id: string, ...more: string[]) => e.cli('implement-network', '--network-id', id, '--vlan', 'vxlan://6100', '--gateway', '10.61.0.1', '--cidr', '10.61.0.0/24', ...more);
  const stateFile = join(e.dir, 'state', 'routers', 'tenant-x.json');

  let r = implement('61', ...details());
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, 'network namespace "tenant-x" was not created by netns-router');
  assert.match(r.stderr, 'adopt-namespace');
  r = e.cli('destroy-network', '--network-id', '61', ...details());
  assert.is(r.status, 2, r.stderr);
  assert.ok(netnsExists('tenant-x'), 'tenant-x is still there');
  assert.ok(tx.netlink.linkFind('tx0') && tx.netlink.linkFind('tx1'), 'with its links');
  assert.is(tx.netlink.linkGet('lo').alias, undefined, 'and unmarked');
  assert.not.ok(existsSync(stateFile), 'no state was stored');
  assert.equal(e.h.netlink.linkList().filter((l) => l.name.startsWith('vh-')), [], 'no host veth was made');

  // positive control: our own router in the same host, made and destroyed
  e.s.track('cs-net-62');
  r = e.cli('implement-network', '--network-id', '62', '--vlan', 'vxlan://6200', '--gateway', '10.62.0.1', '--cidr', '10.62.0.0/24');
  assert.is(r.status, 0, r.stderr);
  const vm = addVm(e.s, e.h, 'brvx-6200', '10.62.0.10/24', '10.62.0.1');
  assert.ok(ping(vm.ns, '10.62.0.1'));
  const lo = e.s.handle('cs-net-62').netlink.linkGet('lo');
  assert.is(lo.alias, namespaceMark('cs-net-62'), 'our namespace carries its mark');
  r = e.cli('destroy-network', '--network-id', '62');
  assert.is(r.status, 0, r.stderr);
  assert.not.ok(netnsExists('cs-net-62'));

  r = implement('61', ...details({ 'adopt-namespace': 'maybe' }));
  assert.is(r.status, 1, r.stderr);
  assert.match(r.stderr, 'network-extension-details.adopt-namespace');
  r = implement('61', ...details({ 'adopt-namespace': 'true' }));
  assert.is(r.status, 0, r.stderr);
  assert.is(tx.netlink.linkGet('lo').alias, namespaceMark('tenant-x'), 'adopted: marked');
  assert.ok(tx.netlink.linkFind('tx0'), 'its own links are not ours to remove');
  const vm2 = addVm(e.s, e.h, 'brvx-6100', '10.61.0.10/24', '10.61.0.1');
  assert.ok(ping(vm2.ns, '10.61.0.1'), 'the adopted namespace routes');
  r = e.cli('destroy-network', '--network-id', '61', ...details());
  assert.is(r.status, 0, r.stderr);
  assert.not.ok(netnsExists('tenant-x'), 'an adopted namespace is destroyed like our own');
}));

test('routers of a version without marks keep working (marks added), restore after a reboot, unmarked + no state refused', async () => withHost(async (e) => {
  const stateDir = join(e.dir, 'state');
  const engine = new RouterEngine({ stateDir, hostNetns: e.hostNs, devices: { guest: 'eth1', public: 'eth1' } });
  const ns = e.s.track(routerNamespace({ networkId: '55' }));
  const net = { networkId: '55', namespace: ns };
  await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni: 5055 }, gateway: '10.55.0.1', cidr: cidr('10.55.0.0/24') });
  await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.55', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: true } });
  await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.56', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: false } });
  const vm = addVm(e.s, e.h, 'brvx-5055', '10.55.0.10/24', '10.55.0.1');
  assert.ok(ping(vm.ns, '203.0.113.1'), 'source NAT to the upstream');
  // strip every mark, as a router made by the previous version has none
  const nsh = e.s.handle(ns);
  const ours = (l: { alias?: string }) => l.alias?.startsWith('netns-router:router') ?? false;
  const hostEnds = e.h.netlink.linkList().filter(ours);
  const nsEnds = nsh.netlink.linkList().filter(ours);
  assert.is(hostEnds.length, 2);
  for (const l of hostEnds) e.h.netlink.linkSet(l.index, { alias: '' });
  for (const l of nsEnds) nsh.netlink.linkSet(l.index, { alias: '' });
  nsh.netlink.linkSet('lo', { alias: '' });
  assert.is(nsh.netlink.linkGet('lo').alias, undefined);

  await runCommand(engine, { command: 'add-static-nat', ...net, publicIp: { ip: '203.0.113.56', sourceNat: false }, privateIp: '10.55.0.10' });
  assert.is(nsh.netlink.linkGet('lo').alias, namespaceMark(ns), 'the stored router\'s namespace is marked');
  for (const l of hostEnds) assert.ok(ours(e.h.netlink.linkGet(l.index)), `${l.name} adopted and marked`);
  await openIngress(engine, net, [{ ip: '203.0.113.56', protocol: 'icmp' }]);
  assert.ok(ping(e.upNs, '203.0.113.56'), 'static NAT reaches the VM');
  assert.ok(ping(vm.ns, '203.0.113.1'));

  // a reboot: namespace and its links gone, state kept
  nsh.close();
  spawnSync('ip', ['netns', 'del', ns]);
  assert.not.ok(netnsExists(ns));
  assert.equal(await engine.restoreAll(), [ns]);
  assert.is(e.s.handle(ns).netlink.linkGet('lo').alias, namespaceMark(ns), 're-made, marked');
  assert.ok(await waitFor(() => ping(vm.ns, '203.0.113.1'), 10_000), 'traffic after restore');

  // the same namespace unmarked and without state is someone else's
  const other = new RouterEngine({ stateDir: join(e.dir, 'other-state'), hostNetns: e.hostNs, devices: { guest: 'eth1', public: 'eth1' } });
  e.s.handle(ns).netlink.linkSet('lo', { alias: '' });
  let failed: unknown;
  try {
    await runCommand(other, { command: 'destroy-network', ...net });
  } catch (err) {
    failed = err;
  }
  assert.match(String(failed), `network namespace "${ns}" was not created by netns-router`);
  assert.ok(netnsExists(ns), 'left alone');
}));

test.run();
