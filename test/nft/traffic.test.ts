/**
 * Real packets through a router namespace: a DNAT map sends UDP to the mapped backend, and a flow
 * keeps its old backend after the map is re-pointed until its conntrack entry is deleted
 * (in-process ctnetlink, and the conntrack(8) fallback).
 *
 *   client ns  c0 10.0.1.2 ──── r0 10.0.1.1  router ns  r1 10.0.2.1 ──── b0 10.0.2.10, 10.0.2.11  backend ns
 *   public service address 203.0.113.1:5353/udp (DNAT in the router via maps)
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as N from '../../lib/nft/index.js';
import { deleteConntrackCli, conntrackArgs } from '../../lib/nft/conntrack-cli.js';
import { addNs, delNs, nsSh, rnd, sh } from './helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { thrown } from '../helpers/expect.js';

requireSandbox();

const PEER = fileURLToPath(new URL('./udp-peer.js', import.meta.url));
const T: N.TableRef = { family: 'inet', name: 'nftt_dnat' };
const KEY: N.ValueInput = ['203.0.113.1', N.symbol('udp'), 5353];

/** A child process in a namespace, read line by line. */
class Peer {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;
  private stderr = '';

  constructor(ns: string, args: string[]) {
    this.child = spawn('nsenter', [`--net=/run/netns/${ns}`, process.execPath, PEER, ...args]);
    createInterface({ input: this.child.stdout }).on('line', (l) => { this.lines.push(l); this.waiter?.(); });
    this.child.stderr.on('data', (b: Buffer) => { this.stderr += b.toString(); });
  }

  async next(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (Date.now() > deadline) throw new Error(`no output from udp-peer (stderr: ${this.stderr})`);
      await new Promise<void>((r) => { this.waiter = r; setTimeout(r, 50); });
    }
    return this.lines.shift()!;
  }

  /** Send one datagram (client) and return the answer: the backend's "addr:port" or "timeout". */
  async ask(msg = 'ping'): Promise<string> {
    this.child.stdin.write(`${msg}\n`);
    return this.next();
  }

  stop(): void {
    this.child.stdin.end();
    this.child.kill();
  }
}

interface Topo { router: string; client: string; backend: string; veths: string[] }

function topology(): Topo {
  const t: Topo = { router: addNs('r'), client: addNs('c'), backend: addNs('b'), veths: [] };
  const id = rnd().slice(0, 4);
  const [c0, r0, r1, b0] = [`c0${id}`, `r0${id}`, `r1${id}`, `b0${id}`];
  sh('ip', ['-n', t.client, 'link', 'add', c0, 'type', 'veth', 'peer', 'name', r0, 'netns', t.router]);
  sh('ip', ['-n', t.router, 'link', 'add', r1, 'type', 'veth', 'peer', 'name', b0, 'netns', t.backend]);
  const ip = (ns: string, ...a: string[]): void => { sh('ip', ['-n', ns, ...a]); };
  for (const ns of [t.client, t.router, t.backend]) ip(ns, 'link', 'set', 'lo', 'up');
  ip(t.client, 'addr', 'add', '10.0.1.2/24', 'dev', c0);
  ip(t.client, 'link', 'set', c0, 'up');
  ip(t.client, 'route', 'add', 'default', 'via', '10.0.1.1');
  ip(t.router, 'addr', 'add', '10.0.1.1/24', 'dev', r0);
  ip(t.router, 'addr', 'add', '10.0.2.1/24', 'dev', r1);
  ip(t.router, 'link', 'set', r0, 'up');
  ip(t.router, 'link', 'set', r1, 'up');
  ip(t.backend, 'addr', 'add', '10.0.2.10/24', 'dev', b0);
  ip(t.backend, 'addr', 'add', '10.0.2.11/24', 'dev', b0);
  ip(t.backend, 'link', 'set', b0, 'up');
  ip(t.backend, 'route', 'add', 'default', 'via', '10.0.2.1');
  nsSh(t.router, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  return t;
}

function teardown(t: Topo): void {
  for (const ns of [t.client, t.router, t.backend]) delNs(ns);
}

function natTable(backend: string, port: number): N.Transaction {
  const k = (): N.Expr => N.concatKey(N.F.ipDaddr, N.F.l4proto, N.F.thDport);
  return N.replaceTable(T, [
    N.map('fwd_addr', ['ipv4_addr', 'inet_proto', 'inet_service'], 'ipv4_addr', { elements: [{ key: KEY, value: backend }] }),
    N.map('fwd_port', ['ipv4_addr', 'inet_proto', 'inet_service'], 'inet_service', { elements: [{ key: KEY, value: port }] }),
    N.baseChain('nat_pre', { type: 'nat', hook: 'prerouting', priority: N.ROUTER_PRIORITIES.dstnat }),
    N.rule('nat_pre', [N.meta.l4proto(['tcp', 'udp']), N.dnat({ addr: N.mapLookup(k(), 'fwd_addr'), port: N.mapLookup(k(), 'fwd_port') })], { comment: 'port forwards' }),
  ]);
}

function repoint(backend: string, port: number): N.Transaction {
  return N.updateElements(T, 'fwd_addr', { delete: [KEY], add: [{ key: KEY, value: backend }] })
    .append(N.updateElements(T, 'fwd_port', { delete: [KEY], add: [{ key: KEY, value: port }] }));
}

test('a DNAT map forwards UDP to the mapped backend', async () => {
  const t = topology();
  const nft = N.openLibnftables({ netns: t.router });
  const server = new Peer(t.backend, ['server', '10.0.2.10:7000', '10.0.2.11:7001']);
  let client: Peer | undefined;
  try {
    assert.is(await server.next(), 'ready');
    client = new Peer(t.client, ['client', '10.0.1.2:40001', '203.0.113.1:5353']);
    assert.is(await client.next(), 'ready');
    assert.is(await client.ask(), 'timeout', 'without the NAT table nothing answers on the public address');
    await nft.apply(natTable('10.0.2.10', 7000));
    // a fresh source port: the first attempt left an (unNATed) conntrack entry for 40001
    client.stop();
    client = new Peer(t.client, ['client', '10.0.1.2:40002', '203.0.113.1:5353']);
    assert.is(await client.next(), 'ready');
    assert.is(await client.ask(), '10.0.2.10:7000');
    assert.is(await client.ask(), '10.0.2.10:7000');
    const entries = N.listConntrack({ proto: 'udp', origDst: '203.0.113.1', origDstPort: 5353 }, { netns: t.router });
    assert.is(entries.length, 1);
    assert.equal(entries[0].orig, { src: '10.0.1.2', dst: '203.0.113.1', proto: 17, srcPort: 40002, dstPort: 5353 });
    assert.equal(entries[0].reply, { src: '10.0.2.10', dst: '10.0.1.2', proto: 17, srcPort: 7000, dstPort: 40002 });
    assert.is(entries[0].family, 'ipv4');
    assert.ok(entries[0].id !== undefined);
  } finally {
    client?.stop();
    server.stop();
    await nft.close();
    teardown(t);
  }
});

test('re-pointing a map moves a flow only after its conntrack entry is deleted', async () => {
  const t = topology();
  const nft = N.openLibnftables({ netns: t.router });
  const server = new Peer(t.backend, ['server', '10.0.2.10:7000', '10.0.2.11:7001']);
  let client: Peer | undefined;
  try {
    assert.is(await server.next(), 'ready');
    await nft.apply(natTable('10.0.2.10', 7000));
    client = new Peer(t.client, ['client', '10.0.1.2:40003', '203.0.113.1:5353']);
    assert.is(await client.next(), 'ready');
    assert.is(await client.ask(), '10.0.2.10:7000');

    await nft.apply(repoint('10.0.2.11', 7001));
    assert.equal((await nft.listSet(T, 'fwd_addr', 'map')).elements, [[{ concat: ['203.0.113.1', 'udp', 5353] }, '10.0.2.11']]);
    assert.is(await client.ask(), '10.0.2.10:7000', 'the established flow keeps its old mapping');
    assert.is(await client.ask(), '10.0.2.10:7000');

    // filters that match nothing delete nothing (success, 0)
    assert.is(N.deleteConntrack({ proto: 'udp', origDst: '203.0.113.1', origDstPort: 5354 }, { netns: t.router }), 0);
    assert.is(N.deleteConntrack({ proto: 'tcp', origDst: '203.0.113.1' }, { netns: t.router }), 0);
    assert.is(N.deleteConntrack({ family: 'ipv6', origDst: '2001:db8::1' }, { netns: t.router }), 0);
    assert.is(N.deleteConntrack({ origDst: '198.51.100.0/24' }, { netns: t.router }), 0);
    assert.is(await client.ask(), '10.0.2.10:7000', 'still the old backend');

    const deleted = N.deleteConntrack({ family: 'ipv4', proto: 'udp', origDst: '203.0.113.1', origDstPort: 5353 }, { netns: t.router });
    assert.is(deleted, 1);
    assert.is(await client.ask(), '10.0.2.11:7001', 'the next packet takes the new mapping');
    assert.is(await client.ask(), '10.0.2.11:7001');

    // the same through the conntrack(8) fallback, matching the backend side this time
    await nft.apply(repoint('10.0.2.10', 7000));
    assert.is(await client.ask(), '10.0.2.11:7001');
    assert.is(await deleteConntrackCli({ family: 'ipv4', proto: 'udp', replySrc: '10.0.2.11', replySrcPort: 7001 }, { netns: t.router }), 1);
    assert.is(await deleteConntrackCli({ family: 'ipv4', proto: 'udp', replySrc: '10.0.2.11', replySrcPort: 7001 }, { netns: t.router }), 0, 'exit 1 = nothing matched = 0');
    assert.is(await client.ask(), '10.0.2.10:7000');

    // a prefix filter on the client side
    await nft.apply(repoint('10.0.2.11', 7001));
    assert.is(N.deleteConntrack({ origSrc: '10.0.1.0/24', proto: 'udp' }, { netns: t.router }), 1);
    assert.is(await client.ask(), '10.0.2.11:7001');

    // many filters, one dump: port ranges that miss, then one that covers 5353
    await nft.apply(repoint('10.0.2.10', 7000));
    const miss: N.ConntrackFilter[] = [
      { proto: 'udp', origDst: '203.0.113.1', origDstPorts: [5354, 6000] },
      { proto: 'udp', origDst: '203.0.113.1', origDstPorts: [1, 5352] },
      { proto: 'tcp', origDst: '203.0.113.1', origDstPorts: [1, 65535] },
      { proto: 'udp', origDst: '203.0.113.2', origDstPorts: [1, 65535] },
    ];
    assert.is(N.deleteConntrackAny(miss, { netns: t.router }), 0);
    assert.is(await client.ask(), '10.0.2.11:7001', 'nothing deleted: still the old backend');
    assert.is(N.deleteConntrackAny([...miss, { family: 'ipv4', proto: 'udp', origDst: '203.0.113.1', origDstPorts: [5300, 5400] }], { netns: t.router }), 1);
    assert.is(await client.ask(), '10.0.2.10:7000');
    assert.throws(() => N.deleteConntrackAny([{}], { netns: t.router }), /empty filter/);
    assert.throws(() => N.deleteConntrackAny([{ origDstPorts: [9, 8] }], { netns: t.router }), /first port above last/);
  } finally {
    client?.stop();
    server.stop();
    await nft.close();
    teardown(t);
  }
});

test('deleteFlows: a flow restarted the other way round just after its deletion (its mirror) is deleted too', async () => {
  const ns = addNs('mirror-');
  try {
    const ins = (src: string, dst: string, sp: number, dp: number) =>
      nsSh(ns, 'conntrack', ['-I', '-p', 'udp', '-s', src, '-d', dst, '--sport', String(sp), '--dport', String(dp), '-t', '60', '-u', 'SEEN_REPLY']);
    const listed = () => nsSh(ns, 'conntrack', ['-L', '-p', 'udp'], { allowFail: true }).stdout;
    ins('198.51.100.7', '192.0.2.10', 40000, 7001); // the forbidden flow, inbound
    ins('198.51.100.7', '192.0.2.10', 40001, 7002); // another flow: stays
    const sock = N.ConntrackSocket.open({ netns: ns });
    try {
      const victims = sock.list({ proto: 'udp', origDstPort: 7001 });
      assert.is(victims.length, 1);
      const done = sock.deleteFlows(victims, [5, 30, 60]);
      // the guest's answer arrives right after the deletion: a new entry the other way round
      ins('192.0.2.10', '198.51.100.7', 7001, 40000);
      assert.match(listed(), /src=192\.0\.2\.10 dst=198\.51\.100\.7 sport=7001 dport=40000/);
      assert.is(await done, 1);
      const left = listed();
      assert.not.match(left, /sport=7001|dport=7001/, `the mirror is gone too:\n${left}`);
      assert.match(left, /dport=7002/, 'other flows stay');
    } finally {
      sock.close();
    }
  } finally {
    delNs(ns);
  }
});

test('markEntries sets and clears bits of the entries\' marks, keeps their other bits, and never creates an entry', () => {
  const ns = addNs('mark-');
  try {
    const ins = (sp: number, mark: number) =>
      nsSh(ns, 'conntrack', ['-I', '-p', 'udp', '-s', '198.51.100.7', '-d', '192.0.2.10', '--sport', String(sp), '--dport', '7001', '-t', '60', '-u', 'SEEN_REPLY', '-m', String(mark)]);
    ins(40000, 0x4c000003); // a kernel load balancer's flow (top byte and slot)
    ins(40001, 0);
    ins(40002, 0); // not marked: stays as it is
    const sock = N.ConntrackSocket.open({ netns: ns });
    try {
      const marks = () => new Map(sock.list({ proto: 'udp' }).map((e) => [e.orig.srcPort, e.mark ?? 0]));
      const two = sock.list({ proto: 'udp' }).filter((e) => e.orig.srcPort !== 40002);
      assert.is(sock.markEntries(two, 0x00800000), 2);
      assert.equal([...marks()].sort(), [[40000, 0x4c800003], [40001, 0x00800000], [40002, 0]]);
      // clearing the bit restores the rest exactly
      assert.is(sock.markEntries(two, 0x00800000, false), 2);
      assert.equal([...marks()].sort(), [[40000, 0x4c000003], [40001, 0], [40002, 0]]);
      // an entry gone meanwhile: not counted, not an error, and not created again
      nsSh(ns, 'conntrack', ['-D', '-p', 'udp', '--sport', '40001']);
      assert.is(sock.markEntries(two, 0x00800000), 1);
      assert.equal([...marks().keys()].sort(), [40000, 40002]);
    } finally {
      sock.close();
    }
  } finally {
    delNs(ns);
  }
});

test('conntrack filters are validated; an empty delete needs all: true', () => {
  const bad = (fn: () => unknown, code: N.NftValidationCode): N.NftValidationError => thrown(fn, N.NftValidationError, { code });
  bad(() => N.deleteConntrack({}), 'E_INVALID_VALUE');
  bad(() => N.deleteConntrack({ family: 'ipv4' }), 'E_INVALID_VALUE');
  bad(() => N.deleteConntrack({ origDst: 'router.local' }), 'E_INVALID_ADDRESS');
  bad(() => N.deleteConntrack({ origDst: '10.0.0.1', replySrc: '2001:db8::1' }), 'E_INVALID_ADDRESS');
  bad(() => N.deleteConntrack({ family: 'ipv6', origDst: '10.0.0.1' }), 'E_INVALID_ADDRESS');
  bad(() => N.deleteConntrack({ origDstPort: 70000 }), 'E_INVALID_PORT');
  bad(() => N.deleteConntrack({ proto: 'bogus' as 'tcp' }), 'E_INVALID_VALUE');
  assert.equal(conntrackArgs({ family: 'ipv4', proto: 'udp', origDst: '203.0.113.1', origDstPort: 5353, replySrc: '10.0.0.0/8' }),
    ['-f', 'ipv4', '-p', '17', '--orig-dst', '203.0.113.1', '--reply-src', '10.0.0.0/8', '--orig-port-dst', '5353']);
  // all: true on an empty namespace table deletes nothing and succeeds
  assert.is(N.deleteConntrack({}, { all: true }), 0);
});

test('ctnetlink codec: a delete request carries the full original tuple, id and zone', () => {
  const body = N.encodeDelete({
    family: 'ipv4', id: 0x01020304, zone: 7,
    orig: { src: '10.0.1.2', dst: '203.0.113.1', proto: 17, srcPort: 40000, dstPort: 5353 },
    reply: { src: '10.0.2.10', dst: '10.0.1.2', proto: 17, srcPort: 7000, dstPort: 40000 },
  });
  assert.is(body[0], 2, 'nfgenmsg family AF_INET');
  const hex = body.toString('hex');
  assert.ok(hex.includes('0a000102'), 'src address bytes');
  assert.ok(hex.includes('cb007101'), 'dst address bytes');
  assert.ok(hex.includes('9c40'), 'src port big-endian');
  assert.ok(hex.includes('14e9'), 'dst port big-endian');
  assert.ok(hex.includes('01020304'), 'id big-endian');
  assert.ok(hex.includes('0007'), 'zone big-endian');
});

test.run();
