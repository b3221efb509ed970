/**
 * Guest isolation from the physical-network details, through the CLI with CloudStack's payload files:
 * `guest.network.isolation=vxlan` makes the bare numbers CloudStack sends VNIs (a real VXLAN segment that a
 * VM on its bridge uses); `guest.network.isolation.range` makes implement-network allocate the segment and
 * print it the way CloudStack reads it back; allocations are unique under parallel implements, survive
 * restarts and shutdown, and are released by destroy. (VLAN allocation: test/vm/isolation-vlan.test.ts.)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, spawnSync } from 'node:child_process';
import { netnsExists, deleteNetns } from '../../lib/netns/namespaces.js';
import { parseInvocation } from '../../lib/router/contract/parse.js';
import { BadValue, parseSegment, parseSegmentRanges } from '../../lib/router/contract/values.js';
import { UsageError } from '../../lib/util/errors.js';
import type { EngineInvocation } from '../../lib/router/contract/types.js';
import { Scratch, addVm, ping, simulatedHost, uid } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { cloudstackReads } from '../helpers/cloudstack.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

const isBad = (e: Error) => e instanceof BadValue;

test('values: a bare number is a VLAN unless the isolation is vxlan; ranges', () => {
  assert.equal(parseSegment('5001', 'vxlan'), { kind: 'vxlan', vni: 5001 });
  assert.equal(parseSegment('100', 'vxlan'), { kind: 'vxlan', vni: 100 });
  assert.equal(parseSegment('vlan://100', 'vxlan'), { kind: 'vlan', id: 100 }, 'an explicit scheme wins');
  assert.equal(parseSegment('untagged', 'vxlan'), { kind: 'untagged' });
  assert.equal(parseSegment('100'), { kind: 'vlan', id: 100 });
  assert.throws(() => parseSegment('5001'), (e: Error) => e instanceof BadValue && /guest\.network\.isolation=vxlan/.test(e.message) && /vxlan:\/\/5001/.test(e.message));
  assert.throws(() => parseSegment('0', 'vxlan'), isBad);
  assert.throws(() => parseSegment('16777216', 'vxlan'), isBad);
  assert.equal(parseSegmentRanges('5000-5999', 'vxlan'), [[5000, 5999]]);
  assert.equal(parseSegmentRanges(' 100-199; 300,400-401 ', 'vlan'), [[100, 199], [300, 300], [400, 401]]);
  for (const [text, kind] of [['5-1', 'vlan'], ['0-10', 'vlan'], ['4095', 'vlan'], ['a-b', 'vxlan'], ['1-2-3', 'vxlan'], [',', 'vlan'], ['16777216', 'vxlan']] as const) {
    assert.throws(() => parseSegmentRanges(text, kind), isBad, `${text} (${kind})`);
  }
  assert.throws(() => parseSegmentRanges(Array.from({ length: 65 }, (_, i) => String(i + 1)).join(','), 'vlan'), isBad, 'at most 64 items');
});

test('contract: the details reach every command; bad details exit 1 naming the detail', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-iso-contract-'));
  try {
    const parse = (command: string, payload: object, phys: object) => {
      const f = join(dir, `${command}.json`);
      writeFileSync(f, JSON.stringify({ 'physical-network-extension-details': phys, 'network-extension-details': {}, payload }));
      return parseInvocation([command, f, '60'], { env: {} }) as EngineInvocation;
    };
    const vx = { 'guest.network.isolation': 'VXLAN', 'guest.network.isolation.range': '7000-7009' };
    for (const command of ['implement-network', 'shutdown-network', 'destroy-network', 'assign-ip', 'prepare-nic', 'apply-fw-rules']) {
      const inv = parse(command, { network_id: '5', vlan: '7001', public_ip: '203.0.113.9', public_vlan: 'vlan://300' }, vx);
      assert.equal((inv.request as { segment?: unknown }).segment, { kind: 'vxlan', vni: 7001 }, command);
      if (command === 'assign-ip') assert.equal((inv.request as { publicIp: { segment: unknown } }).publicIp.segment, { kind: 'vlan', id: 300 }, 'public_vlan keeps its scheme');
    }
    assert.equal(parse('implement-network', { network_id: '5' }, vx).isolation, { kind: 'vxlan', range: { ranges: [[7000, 7009]], text: '7000-7009' } });
    assert.equal(parse('implement-network', { network_id: '5' }, {}).isolation, { kind: 'vlan' });
    const bad: Array<[object, object, string]> = [
      [{ 'guest.network.isolation': 'gre' }, { network_id: '5' }, 'physical-network-extension-details.guest.network.isolation: "gre" is not an isolation method (vlan or vxlan)'],
      [{ 'guest.network.isolation.range': '100-5000' }, { network_id: '5' }, 'physical-network-extension-details.guest.network.isolation.range: "5000" is not a VLAN id (1-4094)'],
      [{ 'guest.network.isolation': 'vxlan', 'guest.network.isolation.range': '9-1' }, { network_id: '5' }, 'physical-network-extension-details.guest.network.isolation.range: "9-1" is not a range (start must not exceed end)'],
      [{ 'guest.network.isolation': { x: 1 } }, { network_id: '5' }, 'physical-network-extension-details.guest.network.isolation: expected a string'],
      [{}, { network_id: '5', vlan: '5001' }, 'payload.vlan: "5001" is not a VLAN id (1-4094); a VXLAN network needs vxlan://5001 or the physical-network detail guest.network.isolation=vxlan'],
    ];
    for (const [phys, payload, message] of bad) {
      assert.throws(() => parse('implement-network', payload, phys), (e: Error) => e instanceof UsageError && e.message === message, message);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A simulated host and the CLI run the way CloudStack runs it (payload files). */
function lab(s: Scratch, dir: string, phys: Record<string, string>) {
  const { hostNs, h } = simulatedHost(s);
  const state = join(dir, 'state');
  const g = ['--host-netns', hostNs, '--state-dir', state, '--log-file', join(dir, 'log')];
  let n = 0;
  const file = (command: string, payload: object, p = phys) => {
    const f = join(dir, `${command}-${n++}.json`);
    writeFileSync(f, JSON.stringify({ 'physical-network-extension-details': { 'guest.network.device': 'eth1', ...p }, 'network-extension-details': {}, payload }));
    return f;
  };
  const run = (command: string, payload: object, p = phys) =>
    spawnSync(process.execPath, [CLI, command, file(command, payload, p), '60', ...g], { encoding: 'utf8', timeout: 60_000 });
  const runAsync = (command: string, payload: object) => new Promise<{ status: number | null; stdout: string; stderr: string }>((res) => {
    const p = spawn(process.execPath, [CLI, command, file(command, payload), '60', ...g]);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    p.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    p.on('close', (status) => res({ status, stdout, stderr }));
  });
  const pool = (): Record<string, { kind: string; id: number }> => {
    const f = join(state, 'segment-pool.json');
    return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as { networks: Record<string, { kind: string; id: number }> }).networks : {};
  };
  return { hostNs, h, state, run, runAsync, pool };
}

/** implement-network's stdout as CloudStack takes it: exit 0, status success, the two keys. */
function broadcastOf(r: { status: number | null; stdout: string; stderr: string }): { uri: string; type: string } {
  const cs = cloudstackReads(r);
  assert.ok(cs.ok, `${r.stderr}${r.stdout}`);
  assert.is(r.stderr, '');
  const uri = cs.json?.['network.broadcast_uri'];
  const type = cs.json?.['network.broadcast_domain_type'];
  assert.type(uri, 'string', cs.details);
  assert.type(type, 'string', cs.details);
  return { uri: uri as string, type: type as string };
}

test('guest.network.isolation=vxlan: CloudStack\'s bare "VNI" builds a VXLAN segment a VM uses; without the detail it is refused', () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-iso-vx-'));
  const id = String(2000 + (parseInt(uid(4), 16) % 7000));
  const vni = 20000 + Number(id);
  const ns = s.track(`cs-net-${id}`);
  try {
    const L = lab(s, dir, { 'guest.network.isolation': 'vxlan' });
    const net = { network_id: id, vlan: String(vni), gateway: '10.31.0.1', cidr: '10.31.0.0/24', guest_type: 'isolated' };
    let r = L.run('implement-network', net);
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout, '', 'no range: nothing allocated, nothing printed');
    const dev = L.h.netlink.linkGet(`vxlan${vni}`);
    assert.is(dev.kind === 'vxlan' && dev.vni, vni, 'a VXLAN device with that VNI');
    assert.is(dev.master, `brvx-${vni}`);
    const vm = addVm(s, L.h, `brvx-${vni}`, '10.31.0.10/24', '10.31.0.1');
    assert.ok(ping(vm.ns, '10.31.0.1'), 'a VM on the VXLAN bridge reaches its router');
    // later commands carry the same bare number
    r = L.run('assign-ip', { ...net, public_ip: '203.0.113.61', public_vlan: 'untagged', public_gateway: '203.0.113.1', public_cidr: '203.0.113.0/24', source_nat: 'true' });
    assert.is(r.status, 0, r.stderr);
    r = L.run('implement-network', net);
    assert.is(r.status, 0, r.stderr);
    assert.ok(ping(vm.ns, '10.31.0.1'), 'still there after a re-implement');

    // the same payload without the detail: a VLAN id over 4094 → exit 1 naming the argument, nothing made
    const other = String(Number(id) + 1);
    const otherNs = s.track(`cs-net-${other}`);
    r = L.run('implement-network', { ...net, network_id: other, vlan: '5001' }, {});
    assert.is(r.status, 1);
    assert.is(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /payload\.vlan: "5001" is not a VLAN id \(1-4094\)/);
    assert.not.ok(netnsExists(otherNs));
    assert.not.ok(existsSync(join(L.state, 'routers', `${otherNs}.json`)));

    r = L.run('destroy-network', net);
    assert.is(r.status, 0, r.stderr);
    assert.not.ok(netnsExists(ns));
  } finally {
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('allocation: printed for CloudStack, used, distinct, kept over shutdown and restarts, released by destroy; exhaustion exits 2; conflicts exit 1', () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-iso-pool-'));
  const base = 2000 + (parseInt(uid(4), 16) % 7000);
  const ids = ['a', 'b', 'c', 'd', 'e'].map((_, i) => String(base + i));
  const [A, B, C, D, E] = ids;
  for (const id of ids) s.track(`cs-net-${id}`);
  const lo = 30000 + base * 3;
  const range = `${lo}-${lo + 2}`;
  try {
    const L = lab(s, dir, { 'guest.network.isolation': 'vxlan', 'guest.network.isolation.range': range });
    // CloudStack with network.isolation.method=NetworkExtension: no broadcast URI yet, so vlan is ""
    const net = (id: string, i: number, vlan = '') => ({ network_id: id, vlan, gateway: `10.4${i}.0.1`, cidr: `10.4${i}.0.0/24`, guest_type: 'isolated' });

    let r = L.run('implement-network', net(A, 0));
    assert.equal(broadcastOf(r), { uri: `vxlan://${lo}`, type: 'Vxlan' });
    assert.is(L.h.netlink.linkGet(`vxlan${lo}`).master, `brvx-${lo}`, 'the allocated VNI is the one built');
    const vm = addVm(s, L.h, `brvx-${lo}`, '10.40.0.10/24', '10.40.0.1');
    assert.ok(ping(vm.ns, '10.40.0.1'));
    assert.equal(L.pool()[A], { kind: 'vxlan', id: lo });

    // CloudStack stored vxlan://lo and now sends the bare VNI: accepted, the same segment, printed again
    r = L.run('implement-network', net(A, 0, String(lo)));
    assert.equal(broadcastOf(r), { uri: `vxlan://${lo}`, type: 'Vxlan' });
    r = L.run('implement-network', net(A, 0));
    assert.equal(broadcastOf(r), { uri: `vxlan://${lo}`, type: 'Vxlan' }, 'idempotent without a value too');

    r = L.run('implement-network', net(B, 1));
    assert.equal(broadcastOf(r), { uri: `vxlan://${lo + 1}`, type: 'Vxlan' }, 'a second network gets another VNI');
    // a failed implement puts its fresh allocation back (no gateway → exit 1, after the claim)
    const twoHeld = readFileSync(join(L.state, 'segment-pool.json'), 'utf8');
    r = L.run('implement-network', { network_id: E, vlan: '' });
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, 'gateway');
    assert.is(readFileSync(join(L.state, 'segment-pool.json'), 'utf8'), twoHeld, 'nothing kept by a failed implement');

    // shutdown keeps A's VNI: the next network gets the last free one, A gets its own back
    r = L.run('shutdown-network', net(A, 0, String(lo)));
    assert.is(r.status, 0, r.stderr);
    assert.equal(L.pool()[A], { kind: 'vxlan', id: lo });
    r = L.run('implement-network', net(C, 2));
    assert.equal(broadcastOf(r).uri, `vxlan://${lo + 2}`);

    // exhausted: exit 2 (the request is valid; it succeeds once a network is destroyed), nothing made
    const before = readFileSync(join(L.state, 'segment-pool.json'), 'utf8');
    r = L.run('implement-network', net(D, 3));
    assert.is(r.status, 2, r.stderr);
    assert.is(r.stdout, '');
    assert.match(r.stderr, `no free VXLAN VNI left in physical-network-extension-details.guest.network.isolation.range "${range}"`);
    assert.not.ok(netnsExists(`cs-net-${D}`));
    assert.is(readFileSync(join(L.state, 'segment-pool.json'), 'utf8'), before, 'pool unchanged');

    // a VNI another network holds: exit 1 naming vlan, nothing made
    r = L.run('implement-network', net(E, 4, String(lo + 1)));
    assert.is(r.status, 1);
    assert.match(r.stderr, `vlan: vxlan://${lo + 1} is allocated to network ${B}`);
    assert.not.ok(netnsExists(`cs-net-${E}`));

    // a restart (host reboot: namespaces gone, state directory kept; a crashed writer's temp file left over)
    for (const id of [A, B, C]) if (netnsExists(`cs-net-${id}`)) deleteNetns(`cs-net-${id}`);
    writeFileSync(join(L.state, 'segment-pool.json.tmp-999-dead'), '{"half');
    r = L.run('implement-network', net(A, 0));
    assert.equal(broadcastOf(r).uri, `vxlan://${lo}`, 'after the restart A keeps its VNI');
    assert.ok(ping(vm.ns, '10.40.0.1'), 'and its VM its router');

    // destroy releases: D gets A's VNI now
    r = L.run('destroy-network', net(A, 0, String(lo)));
    assert.is(r.status, 0, r.stderr);
    assert.is(L.pool()[A], undefined);
    r = L.run('implement-network', net(D, 3));
    assert.equal(broadcastOf(r).uri, `vxlan://${lo}`, 'the released VNI is handed out again');
    for (const [id, i] of [[B, 1], [C, 2], [D, 3]] as const) {
      r = L.run('destroy-network', net(id, i));
      assert.is(r.status, 0, r.stderr);
    }
    assert.equal(L.pool(), {}, 'every destroy released its VNI');
    // a corrupt pool file is a fault (exit 2), never a silent re-allocation
    writeFileSync(join(L.state, 'segment-pool.json'), '{"version":1,"networks":');
    r = L.run('implement-network', net(E, 4));
    assert.is(r.status, 2);
    assert.match(r.stderr, 'segment-pool.json: not valid JSON');
    assert.not.ok(netnsExists(`cs-net-${E}`));
  } finally {
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('allocation: parallel implements (separate processes) never get the same VNI; VPC tiers too, destroy-vpc releases them', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-iso-par-'));
  const base = 2000 + (parseInt(uid(4), 16) % 7000);
  const lo = 40000 + base * 3;
  try {
    const L = lab(s, dir, { 'guest.network.isolation': 'vxlan', 'guest.network.isolation.range': `${lo}-${lo + 9}` });
    const ids = Array.from({ length: 6 }, (_, i) => String(base * 10 + i));
    for (const id of ids) s.track(`cs-net-${id}`);
    const results = await Promise.all(ids.map((id, i) => L.runAsync('implement-network', { network_id: id, vlan: '', gateway: `10.5${i}.0.1`, cidr: `10.5${i}.0.0/24` })));
    const uris = results.map((r) => broadcastOf(r).uri);
    assert.is(new Set(uris).size, ids.length, `all different: ${uris.join(' ')}`);
    const pool = L.pool();
    ids.forEach((id, i) => {
      assert.is(`vxlan://${pool[id].id}`, uris[i], 'printed = recorded');
      assert.is(L.h.netlink.linkGet(`vxlan${pool[id].id}`).master, `brvx-${pool[id].id}`, 'and built');
    });

    // two tiers of one VPC, implemented in parallel; destroy-vpc gives both back
    const vpc = `v${base}`;
    const vns = s.track(`cs-vpc-${vpc}`);
    let r = L.run('implement-vpc', { vpc_id: vpc, vpc_cidr: '10.60.0.0/16' });
    assert.is(r.status, 0, r.stderr);
    const tiers = [String(base * 10 + 7), String(base * 10 + 8)];
    const tr = await Promise.all(tiers.map((id, i) => L.runAsync('implement-network', { network_id: id, vpc_id: vpc, vlan: '', gateway: `10.60.${i}.1`, cidr: `10.60.${i}.0/24` })));
    const tierUris = tr.map((x) => broadcastOf(x).uri);
    assert.is(new Set([...uris, ...tierUris]).size, ids.length + 2, 'tiers get their own VNIs');
    r = L.run('destroy-vpc', { vpc_id: vpc });
    assert.is(r.status, 0, r.stderr);
    assert.not.ok(netnsExists(vns));
    for (const t of tiers) assert.is(L.pool()[t], undefined, 'destroy-vpc released its tiers\' VNIs');

    const destroyed = await Promise.all(ids.map((id) => L.runAsync('destroy-network', { network_id: id })));
    for (const d of destroyed) assert.is(d.status, 0, d.stderr);
    assert.equal(L.pool(), {});
  } finally {
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
