/**
 * A hostile guest against the metadata daemon itself (hand-made routers and files, real guests): connection
 * floods and slow clients that would starve other guests, malformed and oversized HTTP, traversal in the
 * CloudStack layout, pipelining. Every refusal has its control in the same test: the other guest (or the same
 * one, legitimately) is served.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Scratch, nsExec, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { SLOW_CLIENT, guestGet, passwordRequest, rawHttp, routerAndGuest, writeVmFiles } from '../helpers/metadata.js';
import { daemonPid, daemonStatus, startDaemon, stopDaemon, syncRouter } from '../../lib/services/metadata/index.js';
import { MAX_CONNECTIONS_PER_SOURCE } from '../../lib/services/metadata/listeners.js';

requireSandbox();

/** One router, two guests on two interfaces (10.73.1.10 → 10.73.1.1, 10.73.2.10 → 10.73.2.1), each with its data. */
async function twoGuests(s: Scratch, stateDir: string) {
  const a = routerAndGuest(s, '10.73.1.1', '10.73.1.10');
  const b = routerAndGuest(s, '10.73.2.1', '10.73.2.10', a.router);
  const addrs = ['10.73.1.1', '10.73.2.1'];
  writeVmFiles(stateDir, a.router, addrs, '10.73.1.10', { 'user-data': 'who: a', 'meta-data/instance-id': 'i-a', 'password-1': 'pw-a' });
  writeVmFiles(stateDir, a.router, addrs, '10.73.2.10', { 'user-data': 'who: b', 'meta-data/instance-id': 'i-b', 'password-1': 'pw-b' });
  // a can reach b's router address too (through the router, as a guest of one VPC tier reaches another's)
  nsExec(a.guest, ['ip', 'route', 'add', '10.73.2.0/24', 'via', '10.73.1.1']);
  await startDaemon(stateDir, { idleExitMs: -1 });
  await syncRouter(stateDir, a.router, { start: false });
  return { router: a.router, a: a.guest, b: b.guest };
}

test('a guest holding hundreds of slow connections (its listener and another tier\'s) starves no other guest; it holds 16 at most', async () => {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'md-hostile-'));
  let slow: ReturnType<typeof spawn> | undefined;
  try {
    const t = await twoGuests(s, stateDir);
    assert.equal(guestGet(t.b, 'http://10.73.2.1/latest/user-data'), { status: 200, body: 'who: b' }, 'before: b is served');
    assert.equal(guestGet(t.a, 'http://10.73.1.1/latest/user-data'), { status: 200, body: 'who: a' }, 'before: a is served');
    // 300 connections to each listener: more than a listener's 256
    slow = spawn('ip', ['netns', 'exec', t.a, process.execPath, '-e', SLOW_CLIENT, '300', '10.73.2.1:80', '10.73.2.1:8080', '10.73.1.1:80'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let made = 0;
    slow.stdout!.on('data', (d: Buffer) => { const n = Number(d.toString().trim().split('\n').pop()); if (n) made = n; });
    assert.ok(await waitFor(() => made >= 900, 30_000), `the slow client opened its connections (${made})`);
    for (let i = 0; i < 5; i++) {
      assert.equal(guestGet(t.b, 'http://10.73.2.1/latest/user-data'), { status: 200, body: 'who: b' }, `b is served during the flood (${i})`);
      assert.equal(passwordRequest(t.b, '10.73.2.1', 'send_my_password'), { status: 200, body: 'pw-b' }, `b's password server answers (${i})`);
    }
    const held = (await daemonStatus(stateDir))!.routers.find((r) => r.namespace === t.router)!.connections;
    assert.ok(held <= MAX_CONNECTIONS_PER_SOURCE + 1, `a holds ${held} connections`);
    assert.ok(made > 900, 'the server kept closing the excess (the client kept reconnecting)');
    // control: once it stops, a is served like anyone
    slow.kill('SIGKILL');
    assert.ok(await waitFor(() => guestGet(t.a, 'http://10.73.1.1/latest/user-data').body === 'who: a', 10_000), 'a is served again');
  } finally {
    if (slow?.pid) { try { process.kill(slow.pid, 'SIGKILL'); } catch { /* gone */ } }
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('malformed, oversized, traversing and pipelined requests: nothing of another VM, the daemon keeps serving both guests', async () => {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'md-hostile-'));
  try {
    const t = await twoGuests(s, stateDir);
    const pid = daemonPid(stateDir);
    const A = '10.73.1.1';
    const status = (raw: string) => /^HTTP\/1\.[01] (\d{3})/.exec(raw)?.[1] ?? (raw === '' ? 'closed' : `? ${raw.slice(0, 40)}`);
    const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: ${A}\r\n${extra}\r\n`;
    // control first: the raw client gets a's data
    assert.match(rawHttp(t.a, A, 80, get('/latest/user-data', 'Connection: close\r\n')), /\r\n\r\nwho: a$/);
    const hostile: Array<[string, string | Buffer, RegExp]> = [
      ['HTTP/0.9 request line (Node answers it as HTTP/1.0: a\'s own data)', 'GET /latest/user-data\r\n\r\n', /^(200|400|closed)$/],
      ['NUL in the path', Buffer.from(get('/latest/user-data\0/../../10.73.2.10/user-data'), 'latin1'), /^(400|404|closed)$/],
      ['64 KiB header', get('/latest/user-data', `X-Big: ${'a'.repeat(65536)}\r\n`), /^(431|400|closed)$/],
      ['100 KiB URL', get(`/latest/meta-data/${'a'.repeat(100_000)}`), /^(431|414|400|closed)$/],
      ['200 headers', get('/latest/user-data', 'X-h: v\r\n'.repeat(200)), /^(431|400|200|closed)$/],
      ['absolute-form URL of b\'s address', get('http://10.73.2.1/latest/user-data', 'Connection: close\r\n'), /^(404|400|200)$/],
      ['dot segments', get('/latest/meta-data/../../10.73.2.10/user-data', 'Connection: close\r\n'), /^(404|400)$/],
      ['encoded dot segments', get('/latest/meta-data/%2e%2e/%2e%2e/10.73.2.10/user-data', 'Connection: close\r\n'), /^(404|400)$/],
      ['encoded slashes', get('/latest/meta-data/..%2f..%2f10.73.2.10%2fuser-data', 'Connection: close\r\n'), /^(404|400)$/],
      ['backslashes', get('/latest\\..\\..\\10.73.2.10\\user-data', 'Connection: close\r\n'), /^(404|400)$/],
      ['double-encoded', get('/latest/meta-data/%252e%252e/%252e%252e/10.73.2.10/user-data', 'Connection: close\r\n'), /^(404|400)$/],
      ['Content-Length and chunked together', get('/latest/user-data', 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n'), /^(400|closed)$/],
      ['a body on GET smuggling a second request', `GET /latest/user-data HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n${get('/latest/meta-data/instance-id', 'Connection: close\r\n')}`, /^(200|400)$/],
    ];
    for (const [what, payload, want] of hostile) {
      const raw = rawHttp(t.a, A, 80, payload);
      assert.match(status(raw), want, `${what}: ${status(raw)}`);
      assert.not.match(raw, /who: b|i-b|pw-b/, `${what}: nothing of b`);
    }
    // the password server: pipelined (a's own: fine), a request line without a version, an unknown method
    assert.match(rawHttp(t.a, A, 8080, 'GET /\r\nDomU_Request: send_my_password\r\n\r\n'), /^(HTTP\/1\.[01] 200[\s\S]*pw-a|HTTP\/1\.[01] 400[\s\S]*)?$/, 'HTTP/0.9: a\'s own password or nothing');
    assert.match(status(rawHttp(t.a, A, 8080, 'BREW / HTTP/1.1\r\nHost: x\r\nDomU_Request: saved_password\r\n\r\n')), /^(400|501|closed)$/);
    assert.equal(passwordRequest(t.a, A, 'send_my_password'), { status: 200, body: 'pw-a' }, 'nothing acknowledged by them');
    // pipelining: every answer in order, each a's
    const piped = rawHttp(t.a, A, 80, get('/latest/user-data') + get('/latest/meta-data/instance-id') + get('/latest/user-data', 'Connection: close\r\n'));
    assert.is(piped.match(/HTTP\/1\.1 200/g)?.length, 3, piped);
    assert.match(piped, /who: a[\s\S]*i-a[\s\S]*who: a$/);
    // the same daemon still serves both guests
    assert.is(daemonPid(stateDir), pid, 'the daemon did not restart');
    assert.equal(guestGet(t.a, `http://${A}/latest/user-data`), { status: 200, body: 'who: a' });
    assert.equal(guestGet(t.b, 'http://10.73.2.1/latest/user-data'), { status: 200, body: 'who: b' });
    assert.equal(passwordRequest(t.b, '10.73.2.1', 'send_my_password'), { status: 200, body: 'pw-b' });
  } finally {
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test.run();
