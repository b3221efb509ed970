/**
 * The metadata daemon on its own: one process listening inside several router namespaces, answering guests
 * (curl/busybox wget from guest namespaces, real packets) from the files of the requesting VM only.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Scratch, nsTry, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { guestGet, passwordRequest, routerAndGuest, socketCount, writeVmFiles } from '../helpers/metadata.js';
import { addNetns, deleteNetns } from '../../lib/netns/namespaces.js';
import {
  daemonPid, daemonStatus, listenFile, metadataTarget, startDaemon, stopDaemon, syncRouter, vmDir,
} from '../../lib/services/metadata/index.js';
import { NeighbourView, requesterMatches } from '../../lib/services/metadata/requester.js';
import { NetlinkError } from '../../lib/netlink/errors.js';
import type { NetlinkHandle } from '../../lib/netlink/handle.js';
import { rejected } from '../helpers/expect.js';

requireSandbox();

test('metadataTarget: the VR layout, and nothing outside it', () => {
  assert.equal(metadataTarget('/latest/user-data'), { kind: 'file', rel: 'user-data' });
  assert.equal(metadataTarget('/latest/meta-data/'), { kind: 'list' });
  assert.equal(metadataTarget('/latest/meta-data'), { kind: 'list' });
  assert.equal(metadataTarget('/latest/meta-data/instance-id'), { kind: 'file', rel: 'meta-data/instance-id' });
  assert.equal(metadataTarget('/latest/local-ipv4?x=1'), { kind: 'file', rel: 'meta-data/local-ipv4' });
  assert.equal(metadataTarget('/latest/'), { kind: 'index' });
  assert.equal(metadataTarget('/'), { kind: 'root' });
  for (const bad of ['/latest/meta-data/../user-data', '/latest/meta-data/..%2F..%2Fetc', '/latest/%2e%2e/x', '/etc/passwd',
    '/latest/meta-data/a/b', '/latest/.key', '/latest/meta-data/%00', '/latest/%E0%A4%A']) {
    assert.is(metadataTarget(bad), undefined, bad);
  }
});

test('one daemon serves two routers; each guest gets only its own data; the password is delivered once', async () => {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'md-svc-'));
  try {
    const a = routerAndGuest(s, '10.61.1.1', '10.61.1.10');
    const a2 = routerAndGuest(s, '10.61.2.1', '10.61.2.10', a.router); // a second tier of router A (like a VPC)
    const b = routerAndGuest(s, '10.62.1.1', '10.62.1.10');
    writeVmFiles(stateDir, a.router, ['10.61.1.1', '10.61.2.1'], '10.61.1.10', {
      'user-data': '#cloud-config\nwho: a\n', 'meta-data/instance-id': 'i-a', 'meta-data/local-ipv4': '10.61.1.10', 'password-3': 'pw-A',
    });
    writeVmFiles(stateDir, a.router, ['10.61.1.1', '10.61.2.1'], '10.61.2.10', { 'user-data': 'who: a2', 'meta-data/instance-id': 'i-a2' });
    writeVmFiles(stateDir, b.router, ['10.62.1.1'], '10.62.1.10', { 'user-data': 'who: b', 'meta-data/instance-id': 'i-b', 'meta-data/public-keys': 'ssh-ed25519 AAAAB b@b\n' });

    const pid = await startDaemon(stateDir, { idleExitMs: -1 });
    assert.equal((await syncRouter(stateDir, a.router, { start: false })).listening, ['10.61.1.1:80', '10.61.1.1:8080', '10.61.2.1:80', '10.61.2.1:8080']);
    await syncRouter(stateDir, b.router, { start: false });
    const st = (await daemonStatus(stateDir))!;
    assert.is(st.pid, pid);
    assert.equal(st.routers.map((r) => r.namespace).sort(), [a.router, b.router].sort(), 'both routers from one process');
    const procs = spawnSync('pgrep', ['-f', `metadata.*${stateDir}`], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
    assert.is(procs.length, 1, 'exactly one daemon process');

    assert.equal(guestGet(a.guest, 'http://10.61.1.1/latest/user-data'), { status: 200, body: '#cloud-config\nwho: a\n' });
    assert.equal(guestGet(a2.guest, 'http://10.61.2.1/latest/user-data'), { status: 200, body: 'who: a2' });
    assert.equal(guestGet(b.guest, 'http://10.62.1.1/latest/user-data'), { status: 200, body: 'who: b' });
    assert.equal(guestGet(a.guest, 'http://10.61.1.1/latest/meta-data/'), { status: 200, body: 'instance-id\nlocal-ipv4' });
    assert.equal(guestGet(a2.guest, 'http://10.61.2.1/latest/meta-data/instance-id'), { status: 200, body: 'i-a2' });
    assert.equal(guestGet(a.guest, 'http://10.61.1.1/latest/instance-id'), { status: 200, body: 'i-a' }, 'legacy path');
    assert.equal(guestGet(b.guest, 'http://10.62.1.1/latest/meta-data/public-keys'), { status: 200, body: 'ssh-ed25519 AAAAB b@b\n' });
    assert.is(guestGet(a.guest, 'http://10.61.1.1/latest/meta-data/public-keys').status, 404, 'A has no keys: B\'s are not shown');
    assert.equal(guestGet(a.guest, 'http://10.61.1.1/latest/'), { status: 200, body: 'user-data\nmeta-data/' });
    // traversal over the wire: nothing outside the VM's own directory
    for (const p of ['/latest/meta-data/../../10.61.2.10/user-data', '/latest/meta-data/..%2F..%2F10.61.2.10%2Fuser-data', '/latest/../../../../etc/passwd', '/latest/meta-data/%2e%2e']) {
      const r = guestGet(a.guest, `http://10.61.1.1${p}`);
      assert.is(r.status, 404, p);
      assert.not.match(r.body, 'who');
    }

    // password server: pending password until acknowledged, then saved_password forever
    assert.equal(passwordRequest(a2.guest, '10.61.2.1', 'send_my_password'), { status: 200, body: 'saved_password' }, 'no password for a2');
    assert.equal(passwordRequest(a.guest, '10.61.1.1', 'send_my_password'), { status: 200, body: 'pw-A' });
    assert.equal(passwordRequest(a.guest, '10.61.1.1', 'send_my_password'), { status: 200, body: 'pw-A' }, 'still pending until the ack');
    // the ack exactly as cloud-init/cloud-set-guest-password send it (wget)
    const w = nsTry(a.guest, ['busybox', 'wget', '-q', '-O', '-', '--header', 'DomU_Request: saved_password', '10.61.1.1:8080']);
    assert.is(w.stdout, 'saved_password', w.stderr);
    assert.equal(passwordRequest(a.guest, '10.61.1.1', 'send_my_password'), { status: 200, body: 'saved_password' });
    assert.ok(existsSync(join(vmDir(stateDir, a.router, '10.61.1.10'), 'delivered-3')), 'delivery recorded for the router module');

    // a router whose listen.json went away: its sockets are closed (none left to pin the namespace)
    const listeners = (ns: string) => nsTry(ns, ['ss', '-Hltn']).stdout.trim().split('\n').filter(Boolean).length;
    assert.is(listeners(b.router), 2);
    unlinkSync(listenFile(stateDir, b.router));
    assert.equal((await syncRouter(stateDir, b.router, { start: false })).listening, []);
    assert.is(listeners(b.router), 0, 'both of B\'s listening sockets closed when the sync answers');
    assert.ok(await waitFor(() => socketCount(pid) <= 2 + 4, 3000), 'the daemon holds only A\'s four listeners (+ control)');
    assert.is(guestGet(b.guest, 'http://10.62.1.1/latest/user-data').status, 0, 'B no longer answered');
    assert.is(guestGet(a.guest, 'http://10.61.1.1/latest/user-data').status, 200, 'A unaffected');

    // SIGHUP: a full re-read (B comes back)
    writeFileSync(listenFile(stateDir, b.router), JSON.stringify({ namespace: b.router, addresses: ['10.62.1.1'] }));
    process.kill(pid, 'SIGHUP');
    assert.ok(await waitFor(() => guestGet(b.guest, 'http://10.62.1.1/latest/user-data').status === 200, 5000), 'B served again after SIGHUP');
  } finally {
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('password server: every request form a guest can send gets the virtual router\'s answer (curl, busybox wget)', async () => {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'md-svc-'));
  try {
    const a = routerAndGuest(s, '10.65.1.1', '10.65.1.10');
    const other = routerAndGuest(s, '10.65.2.1', '10.65.2.10', a.router); // a guest without data
    writeVmFiles(stateDir, a.router, ['10.65.1.1', '10.65.2.1'], '10.65.1.10', { 'password-7': 'Pw-seven' });
    await startDaemon(stateDir, { idleExitMs: -1 });
    await syncRouter(stateDir, a.router, { start: false });
    const url = 'http://10.65.1.1:8080/';
    const pending = () => existsSync(join(vmDir(stateDir, a.router, '10.65.1.10'), 'password-7'));
    const ask = (headers: Record<string, string>, opts: Parameters<typeof guestGet>[3] = {}) => guestGet(a.guest, url, headers, opts);

    // GET forms that do not acknowledge anything
    assert.equal(ask({ DomU_Request: 'send_my_password' }), { status: 200, body: 'Pw-seven' });
    assert.equal(ask({ domu_request: 'send_my_password' }), { status: 200, body: 'Pw-seven' }, 'header names are case-insensitive');
    assert.equal(guestGet(a.guest, 'http://10.65.1.1:8080/any/path?x=1', { DomU_Request: 'send_my_password' }), { status: 200, body: 'Pw-seven' }, 'the path is not looked at');
    assert.equal(ask({}, { rawHeaders: ['DomU_Request: send_my_password', 'DomU_Request: saved_password'] }), { status: 200, body: 'Pw-seven' }, 'the first DomU_Request header counts');
    for (const [what, headers, raw] of [
      ['no header', {}, []], ['unknown value', { DomU_Request: 'give_me_everything' }, []], ['value in other case', { DomU_Request: 'SAVED_PASSWORD' }, []],
      ['empty value', {}, ['DomU_Request;']], ['the VR\'s router-local save request', { DomU_Request: 'save_password' }, []],
    ] as const) {
      assert.equal(ask(headers, { rawHeaders: [...raw] }), { status: 200, body: 'bad_request' }, `${what}: 200 bad_request, as the VR answers`);
    }
    // cloud-set-guest-password tells "invalid request" (body bad_request, wget exit 0) from "failed to send" (exit ≠ 0)
    const w = nsTry(a.guest, ['busybox', 'wget', '-q', '-O', '-', '--header', 'DomU_Request: what', '10.65.1.1:8080']);
    assert.equal([w.status, w.stdout], [0, 'bad_request'], w.stderr);
    // other methods: 501 (the VR's HTTP server knows only GET for guests) and never an acknowledgement
    for (const method of ['HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const r = ask({ DomU_Request: 'saved_password' }, { method });
      assert.is(r.status, 501, method);
      assert.not.match(r.body, 'Pw-seven', method);
      assert.ok(pending(), `${method} saved_password acknowledged nothing`);
    }
    assert.equal(ask({ DomU_Request: 'send_my_password' }), { status: 200, body: 'Pw-seven' }, 'still pending after all of the above');
    // a guest without data: no password, its acknowledgement changes nothing
    assert.equal(passwordRequest(other.guest, '10.65.2.1', 'send_my_password'), { status: 200, body: 'saved_password' });
    assert.equal(passwordRequest(other.guest, '10.65.2.1', 'saved_password'), { status: 200, body: 'saved_password' });
    assert.ok(pending(), 'another guest\'s acknowledgement is not this one\'s');
    // the acknowledgement, as the guest scripts send it (wget), then no password any more
    const ack = nsTry(a.guest, ['busybox', 'wget', '-q', '-O', '-', '--header', 'DomU_Request: saved_password', '10.65.1.1:8080']);
    assert.equal([ack.status, ack.stdout], [0, 'saved_password']);
    assert.not.ok(pending());
    assert.equal(ask({ DomU_Request: 'send_my_password' }), { status: 200, body: 'saved_password' });
    assert.equal(ask({ DomU_Request: 'saved_password' }), { status: 200, body: 'saved_password' }, 'a repeated acknowledgement');
    // the two headers the other way round: an acknowledgement (so both were sent, and the first one counts)
    writeVmFiles(stateDir, a.router, ['10.65.1.1', '10.65.2.1'], '10.65.1.10', { 'password-8': 'Pw-eight' });
    assert.equal(ask({ DomU_Request: 'send_my_password' }), { status: 200, body: 'Pw-eight' });
    assert.equal(ask({}, { rawHeaders: ['DomU_Request: saved_password', 'DomU_Request: send_my_password'] }), { status: 200, body: 'saved_password' });
    assert.not.ok(existsSync(join(vmDir(stateDir, a.router, '10.65.1.10'), 'password-8')), 'acknowledged');
  } finally {
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('requester: only a confirmed neighbour entry counts; any other is resolved again by ARP, never read as it is', async () => {
  const s = new Scratch();
  const view = (ns: string) => new NeighbourView(ns, 3500);
  let v: NeighbourView | undefined;
  try {
    const a = routerAndGuest(s, '10.66.1.1', '10.66.1.10');
    const router = s.handle(a.router);
    const dev = router.netlink.addrList({ family: 4 }).find((x) => x.ip === '10.66.1.1')!.dev!;
    const guestMac = s.handle(a.guest).netlink.linkGet('eth0').mac!;
    const OTHER = '02:00:00:66:66:66';
    v = view(a.router);
    const ask = () => v!.requester('10.66.1.1', '10.66.1.10');

    assert.is(router.netlink.neighGet(dev, '10.66.1.10'), undefined, 'no entry yet');
    assert.equal(await ask(), { mac: guestMac, state: 'reachable' }, 'missing: resolved, the guest answered');
    for (const state of ['stale', 'delay', 'probe', 'failed'] as const) {
      // what the table said before the address changed hands: not believed, asked again
      router.netlink.neighReplace({ dev, ip: '10.66.1.10', mac: OTHER, state });
      assert.equal(await ask(), { mac: guestMac, state: 'reachable' }, state);
      assert.is(router.netlink.neighGet(dev, '10.66.1.10')?.mac, guestMac, `${state}: the table now names the guest`);
    }
    // concurrent requests of one guest share one resolution
    router.netlink.neighReplace({ dev, ip: '10.66.1.10', mac: OTHER, state: 'stale' });
    assert.equal(await Promise.all([ask(), ask(), ask()]), [0, 1, 2].map(() => ({ mac: guestMac, state: 'reachable' })));
    // confirmed entries are the kernel's (or an administrator's) word: taken as they are
    router.netlink.neighReplace({ dev, ip: '10.66.1.10', mac: OTHER, state: 'reachable' });
    assert.equal(await ask(), { mac: OTHER, state: 'reachable' });
    router.netlink.neighReplace({ dev, ip: '10.66.1.10', mac: OTHER, state: 'permanent' });
    assert.equal(await ask(), { mac: OTHER, state: 'permanent' });
    assert.not.ok(requesterMatches(guestMac, await ask()));
    router.netlink.neighDel({ dev, ip: '10.66.1.10' });
    // nobody at the address: no MAC after the kernel gave up — refused when a MAC is recorded, never by address
    const t0 = Date.now();
    const none = await v.requester('10.66.1.1', '10.66.1.99');
    assert.is(none.mac, undefined);
    assert.ok(none.state === 'failed' || none.state === 'unresolved', none.state);
    assert.ok(Date.now() - t0 >= 900, 'it did ask (and wait for answers)');
    assert.not.ok(requesterMatches(guestMac, none));
    assert.ok(requesterMatches(undefined, none), 'no MAC recorded: the address alone decides (documented as unprotected)');
    assert.ok(requesterMatches(guestMac.toUpperCase(), { mac: guestMac, state: 'reachable' }));
    assert.equal(await v.requester('10.99.9.9', '10.66.1.10'), { state: 'no-interface' }, 'a local address on no interface');
  } finally {
    v?.close();
    s.cleanup();
  }
});

test('requester: no room in the neighbour table (ENOBUFS) is asked again until the deadline, then "table-full" — refused, never a fault', async () => {
  const s = new Scratch();
  let v: NeighbourView | undefined;
  try {
    const a = routerAndGuest(s, '10.67.1.1', '10.67.1.10');
    const router = s.handle(a.router);
    const dev = router.netlink.addrList({ family: 4 }).find((x) => x.ip === '10.67.1.1')!.dev!;
    const guestMac = s.handle(a.guest).netlink.linkGet('eth0').mac!;
    v = new NeighbourView(a.router, 600);
    // the kernel's answer to NTF_USE while the host's one neighbour table is at gc_thresh3 with recent entries (seen
    // with the table held full), made here: filling that table would cut off every namespace of the machine
    const nl = (v as unknown as { netlink(): NetlinkHandle }).netlink();
    const resolve = nl.neighResolve.bind(nl);
    let refusals = 0;
    let limit = 3;
    nl.neighResolve = (d, ip) => {
      if (refusals < limit) {
        refusals++;
        throw new NetlinkError(osConstants.errno.ENOBUFS, `RTM_NEWNEIGH (use) ${ip}`);
      }
      resolve(d, ip);
    };
    assert.equal(await v.requester('10.67.1.1', '10.67.1.10'), { mac: guestMac, state: 'reachable' }, 'room again: resolved, the guest answered');
    assert.is(refusals, 3);
    router.netlink.neighDel({ dev, ip: '10.67.1.10' });
    refusals = 0;
    limit = Infinity;
    const t0 = Date.now();
    const full = await v.requester('10.67.1.1', '10.67.1.10');
    assert.equal(full, { state: 'table-full' });
    assert.ok(Date.now() - t0 >= 550 && refusals > 3, `asked again until the deadline (${refusals} times)`);
    assert.not.ok(requesterMatches(guestMac, full), 'refused: never served by address');
    assert.is(router.netlink.neighGet(dev, '10.67.1.10'), undefined, 'nothing left in the table');
  } finally {
    v?.close();
    s.cleanup();
  }
});

test('a re-created namespace gets fresh sockets; the daemon exits when idle and a sync can restart it', async () => {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'md-svc-'));
  try {
    const a = routerAndGuest(s, '10.63.1.1', '10.63.1.10');
    writeVmFiles(stateDir, a.router, ['10.63.1.1'], '10.63.1.10', { 'user-data': 'first' });
    await syncRouter(stateDir, a.router, { start: true, idleExitMs: 300 });
    assert.is(guestGet(a.guest, 'http://10.63.1.1/latest/user-data').body, 'first');
    const pid1 = daemonPid(stateDir)!;

    // the router namespace disappears (host reboot, manual delete) and is made again under the same name
    deleteNetns(a.router);
    deleteNetns(a.guest);
    addNetns(a.router);
    const again = routerAndGuest(s, '10.63.1.1', '10.63.1.10', a.router);
    assert.is(guestGet(again.guest, 'http://10.63.1.1/latest/user-data').status, 0, 'old sockets live in the old namespace');
    await syncRouter(stateDir, a.router, { start: true });
    assert.is(guestGet(again.guest, 'http://10.63.1.1/latest/user-data').body, 'first', 'served in the new namespace');
    assert.is(daemonPid(stateDir), pid1, 'same daemon');

    unlinkSync(listenFile(stateDir, a.router));
    await syncRouter(stateDir, a.router, { start: false });
    assert.ok(await waitFor(() => daemonPid(stateDir) === undefined, 3000), 'idle daemon exited');
    assert.not.ok(existsSync(join(stateDir, 'run', 'metadata.sock')));
    writeFileSync(listenFile(stateDir, a.router), JSON.stringify({ namespace: a.router, addresses: ['10.63.1.1'] }));
    await syncRouter(stateDir, a.router, { start: true, idleExitMs: 300 });
    assert.ok(daemonPid(stateDir) !== pid1, 'a new daemon');
    assert.is(guestGet(again.guest, 'http://10.63.1.1/latest/user-data').body, 'first');
  } finally {
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('a socket that cannot be bound fails the sync with the reason (nothing half-served)', async () => {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'md-svc-'));
  let squatter: ReturnType<typeof import('node:child_process').spawn> | undefined;
  try {
    const a = routerAndGuest(s, '10.64.1.1', '10.64.1.10');
    const { spawn } = await import('node:child_process');
    squatter = spawn('ip', ['netns', 'exec', a.router, 'socat', 'TCP-LISTEN:8080,bind=10.64.1.1,fork', 'SYSTEM:echo squatter'], { stdio: 'ignore' });
    await waitFor(() => guestGet(a.guest, 'http://10.64.1.1:8080/').status !== 0 || nsTry(a.router, ['ss', '-ltn']).stdout.includes(':8080'), 3000);
    writeVmFiles(stateDir, a.router, ['10.64.1.1'], '10.64.1.10', { 'user-data': 'x' });
    await rejected(syncRouter(stateDir, a.router, { start: true, idleExitMs: -1 }), Error, { message: /EADDRINUSE|Address already in use/ }, 'sync failed');
    const st = await daemonStatus(stateDir);
    assert.equal(st?.routers ?? [], [], 'the router is not half-served');
  } finally {
    squatter?.kill();
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test.run();
