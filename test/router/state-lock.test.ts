/** Router locks: exclusive across processes, independent per router, waiting bounded by a deadline. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { acquireRouterLock, lockPath, tryAcquireRouterLock, withRouterLock, type RouterKey } from '../../lib/router/state/index.js';
import { TimeoutError } from '../../lib/util/errors.js';
import { TempDir } from '../cli/helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { rejected } from '../helpers/expect.js';

requireSandbox();

const LOCK_URL = new URL('../../lib/router/state/lock.js', import.meta.url).href;
const net = (id: string): RouterKey => ({ kind: 'network', networkId: id });

/** A node process holding the lock of `key` until its stdin closes (or for `holdMs`). */
async function holder(dir: TempDir, key: RouterKey, holdMs?: number): Promise<{ child: ChildProcessWithoutNullStreams; exited: Promise<number | null> }> {
  const script = dir.file(`holder-${Math.random().toString(36).slice(2)}.mjs`, `
    import { acquireRouterLock } from ${JSON.stringify(LOCK_URL)};
    const key = JSON.parse(process.argv[3]);
    const hold = Number(process.argv[4]);
    const h = await acquireRouterLock(process.argv[2], key, {});
    process.stdout.write('locked\\n');
    const done = () => { h.release(); process.stdout.write('released\\n'); process.exit(0); };
    if (hold > 0) setTimeout(done, hold); else { process.stdin.resume(); process.stdin.on('end', done); }
  `);
  const child = spawn(process.execPath, [script, dir.join('state'), JSON.stringify(key), String(holdMs ?? 0)], { stdio: 'pipe' });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  await new Promise<void>((res, rej) => {
    let buf = '';
    const t = setTimeout(() => rej(new Error('holder did not lock in 10 s')), 10_000);
    child.stdout.on('data', (d) => {
      buf += d;
      if (buf.includes('locked')) { clearTimeout(t); res(); }
    });
    child.on('exit', (code) => { clearTimeout(t); rej(new Error(`holder exited ${code}`)); });
  });
  return { child, exited };
}

test('lock files use upstream names and are kept after release', () => {
  const dir = new TempDir('lock');
  try {
    assert.is(lockPath('/s', net('42')), '/s/lock-network-42');
    assert.is(lockPath('/s', { kind: 'vpc', vpcId: '7' }), '/s/lock-vpc-7');
    const h = tryAcquireRouterLock(dir.path, net('42'))!;
    assert.ok(h);
    h.release();
    h.release(); // idempotent
    assert.ok(existsSync(dir.join('lock-network-42')));
  } finally {
    dir.cleanup();
  }
});

test('in one process: the same router excludes, different routers are independent', () => {
  const dir = new TempDir('lock');
  const held = [];
  try {
    const a = tryAcquireRouterLock(dir.path, net('42'))!;
    held.push(a);
    assert.is(tryAcquireRouterLock(dir.path, net('42')), undefined);
    const b = tryAcquireRouterLock(dir.path, net('43'))!;
    held.push(b);
    assert.ok(b);
    const v = tryAcquireRouterLock(dir.path, { kind: 'vpc', vpcId: '42' })!;
    held.push(v);
    assert.ok(v, 'vpc 42 is not network 42');
    a.release();
    const again = tryAcquireRouterLock(dir.path, net('42'))!;
    held.push(again);
    assert.ok(again);
  } finally {
    for (const h of held) h.release();
    dir.cleanup();
  }
});

test('across processes: a held lock makes the waiter time out; another router is free', async () => {
  const dir = new TempDir('lock');
  const h = await holder(dir, net('42'));
  try {
    const t0 = Date.now();
    await rejected(acquireRouterLock(dir.join('state'), net('42'), { deadline: Date.now() + 300 }), TimeoutError,
      { code: 'E_LOCK_TIMEOUT', exitCode: 2, message: /waiting for the lock of network 42/ }, 'lock should be busy');
    const waited = Date.now() - t0;
    assert.ok(waited >= 290 && waited < 2000, `waited ${waited} ms`);
    const other = await acquireRouterLock(dir.join('state'), net('43'), { deadline: Date.now() + 300 });
    other.release();
  } finally {
    h.child.stdin.end();
    assert.is(await h.exited, 0);
    dir.cleanup();
  }
});

test('across processes: a waiter gets the lock as soon as the holder releases it', async () => {
  const dir = new TempDir('lock');
  const h = await holder(dir, net('42'), 400);
  try {
    const t0 = Date.now();
    const got = await acquireRouterLock(dir.join('state'), net('42'), { deadline: Date.now() + 10_000 });
    const waited = Date.now() - t0;
    got.release();
    assert.ok(waited >= 200 && waited < 5000, `waited ${waited} ms`);
    assert.is(await h.exited, 0);
  } finally {
    h.child.kill();
    dir.cleanup();
  }
});

test('a killed holder releases its lock (the kernel drops it with the descriptor)', async () => {
  const dir = new TempDir('lock');
  const h = await holder(dir, { kind: 'vpc', vpcId: '9' });
  try {
    assert.is(tryAcquireRouterLock(dir.join('state'), { kind: 'vpc', vpcId: '9' }), undefined);
    h.child.kill('SIGKILL');
    await h.exited;
    const got = await acquireRouterLock(dir.join('state'), { kind: 'vpc', vpcId: '9' }, { deadline: Date.now() + 5000 });
    got.release();
  } finally {
    dir.cleanup();
  }
});

test('an abort signal stops waiting; withRouterLock releases on error', async () => {
  const dir = new TempDir('lock');
  const h = await holder(dir, net('5'));
  try {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const t0 = Date.now();
    await rejected(acquireRouterLock(dir.join('state'), net('5'), { signal: ac.signal }), TimeoutError);
    assert.ok(Date.now() - t0 < 2000);
    await rejected(withRouterLock(dir.join('state'), net('6'), {}, async () => { throw new Error('boom'); }), Error, { message: 'boom' });
    const free = tryAcquireRouterLock(dir.join('state'), net('6'));
    assert.ok(free, 'released after the error');
    free!.release();
  } finally {
    h.child.stdin.end();
    await h.exited;
    dir.cleanup();
  }
});

test.run();
