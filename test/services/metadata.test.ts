/**
 * The metadata daemon on its own: one process listening inside several router namespaces, answering guests
 * (curl/busybox wget from guest namespaces, real packets) from the files of the requesting VM only.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Scratch, nsTry, requireSandbox, waitFor } from '../helpers/topo.js';
import { guestGet, passwordRequest, routerAndGuest, socketCount, writeVmFiles } from '../helpers/metadata.js';
import { addNetns, deleteNetns } from '../../lib/netns/namespaces.js';
import {
  daemonPid, daemonStatus, listenFile, metadataTarget, startDaemon, stopDaemon, syncRouter, vmDir,
} from '../../lib/services/metadata/index.js';

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
    let err: Error | undefined;
    try {
      await syncRouter(stateDir, a.router, { start: true, idleExitMs: -1 });
    } catch (e) {
      err = e as Error;
    }
    assert.ok(err, 'sync failed');
    assert.match(err!.message, /EADDRINUSE|Address already in use/);
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
