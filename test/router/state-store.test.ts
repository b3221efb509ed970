/** State store: missing = undefined, round trip, validation, crash-safe writes, engine lock. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { StateStore, routerKeyOf } from '../../lib/router/state/index.js';
import { emptyModel, MODEL_VERSION, type RouterModel } from '../../lib/router/model.js';
import { StateError, SystemError, TimeoutError } from '../../lib/util/errors.js';
import { TempDir } from '../cli/helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { rejected, thrown } from '../helpers/expect.js';

requireSandbox();

const STORE_URL = new URL('../../lib/router/state/store.js', import.meta.url).href;

function sample(marker: string): RouterModel {
  const m = emptyModel('cs-net-42', 'network', '42');
  m.tiers['42'] = { networkId: '42', segment: { kind: 'vlan', id: 100 }, hostDev: 'eth1', gateway: '10.0.1.1', cidr: '10.0.1.0/24', extensionIp: '10.0.1.1', guestType: 'isolated', implemented: true };
  m.publicIps['203.0.113.10'] = { ip: '203.0.113.10', prefixLen: 24, segment: { kind: 'untagged' }, hostDev: 'eth1', gateway: marker, sourceNat: true, owner: '42' };
  m.staticNats.push({ publicIp: '203.0.113.10', privateIp: '10.0.1.5' });
  m.portForwards.push({ publicIp: '203.0.113.10', protocol: 'tcp', publicPorts: [80, 80], privateIp: '10.0.1.5', privatePorts: [8080, 8080] });
  return m;
}

const gateway = (store: StateStore): string | undefined => store.load('cs-net-42')?.publicIps['203.0.113.10'].gateway;

test('a missing state loads as undefined; save → load round trip; private mode; list; remove', () => {
  const dir = new TempDir('store');
  try {
    const store = new StateStore(dir.join('state'));
    assert.is(store.load('cs-net-42'), undefined);
    assert.equal(store.list(), []);
    const m = sample('203.0.113.1');
    store.save(m);
    const v = emptyModel('cs-vpc-7', 'vpc', '7');
    v.vpc = { id: '7', cidr: '10.10.0.0/16', implemented: true };
    store.save(v);
    const path = store.pathOf('cs-net-42');
    assert.is(path, dir.join('state', 'routers', 'cs-net-42.json'));
    assert.is(statSync(path).mode & 0o777, 0o600);
    assert.equal(store.load('cs-net-42'), m);
    assert.equal(store.load('cs-vpc-7'), v);
    assert.equal(store.list(), ['cs-net-42', 'cs-vpc-7']);
    store.remove('cs-net-42');
    store.remove('cs-net-42'); // missing is fine
    assert.not.ok(existsSync(path));
    assert.throws(() => store.pathOf('../etc/passwd'), (e: unknown) => e instanceof StateError);
  } finally {
    dir.cleanup();
  }
});

test('unreadable states are StateErrors (exit 2): corrupt JSON, newer version, other router, bad shape', () => {
  const dir = new TempDir('store');
  try {
    const store = new StateStore(dir.path);
    mkdirSync(store.dir, { recursive: true });
    const path = store.pathOf('cs-net-42');
    const expectStateError = (content: string, pattern: RegExp) => {
      writeFileSync(path, content);
      thrown(() => store.load('cs-net-42'), StateError, { exitCode: 2, message: pattern }, 'load should fail');
    };
    expectStateError('{"version": 1,', /not valid JSON/);
    expectStateError(JSON.stringify({ ...sample('x'), version: MODEL_VERSION + 1 }), /is newer/);
    expectStateError(JSON.stringify({ ...sample('x'), namespace: 'cs-net-43' }), /holds router cs-net-43, expected cs-net-42/);
    expectStateError(JSON.stringify({ ...sample('x'), portForwards: {} }), /not lists/);
    expectStateError('[]', /not a JSON object/);
  } finally {
    dir.cleanup();
  }
});

test('a failure of the JSON copy after the journal record puts the old state back (journal and copy); a first save that fails leaves nothing', () => {
  const dir = new TempDir('store');
  try {
    new StateStore(dir.path).save(sample('old'));
    const failing = new StateStore(dir.path, { beforeCopy: () => { throw new Error('disk on fire'); } });
    assert.throws(() => failing.save(sample('new')), (e: unknown) => e instanceof SystemError && /disk on fire/.test((e as Error).message));
    assert.is(new StateStore(dir.path).load('cs-net-42')!.publicIps['203.0.113.10'].gateway, 'old');
    assert.match(readFileSync(new StateStore(dir.path).pathOf('cs-net-42'), 'utf8'), /"gateway":"old"/, 'the copy too');
    assert.equal(readdirSync(dir.join('routers')).sort(), ['cs-net-42.journal', 'cs-net-42.json'], 'no temp file');
    const fresh = new StateStore(dir.join('fresh'), { beforeCopy: () => { throw new Error('disk on fire'); } });
    assert.throws(() => fresh.save(sample('first')), (e: unknown) => e instanceof SystemError);
    assert.equal(readdirSync(fresh.dir), [], 'no state at all');
  } finally {
    dir.cleanup();
  }
});

test('a process killed after the journal record, before the JSON copy: the new state is read (save was durable); the copy follows with the retry that saves nothing, or the next save', () => {
  const dir = new TempDir('store');
  try {
    const sd = dir.join('state');
    new StateStore(sd).save(sample('old'));
    const child = dir.file('crash.mjs', `
      import { StateStore } from ${JSON.stringify(STORE_URL)};
      const store = new StateStore(process.argv[2], { beforeCopy: () => process.kill(process.pid, 'SIGKILL') });
      store.save(JSON.parse(process.argv[3]));
      console.log('not reached');
    `);
    const r = spawnSync(process.execPath, [child, sd, JSON.stringify(sample('new'))], { encoding: 'utf8', timeout: 20_000 });
    assert.is(r.signal, 'SIGKILL', r.stderr);
    assert.not.match(r.stdout, /not reached/);
    const store = new StateStore(sd);
    assert.match(readFileSync(store.pathOf('cs-net-42'), 'utf8'), /"gateway":"old"/, 'the copy was not written');
    assert.is(store.load('cs-net-42')!.publicIps['203.0.113.10'].gateway, 'new', 'the journal decides');
    // the retry finds the state in place and saves nothing (engine: refreshCopy): the copy catches up
    store.refreshCopy('cs-net-42');
    assert.match(readFileSync(store.pathOf('cs-net-42'), 'utf8'), /"gateway":"new"/, 'the copy caught up with the journal');
    // a copy that is up to date is left alone (control: its mtime does not move)
    const m0 = statSync(store.pathOf('cs-net-42'), { bigint: true }).mtimeNs;
    store.read('cs-net-42');
    store.refreshCopy('cs-net-42');
    assert.is(statSync(store.pathOf('cs-net-42'), { bigint: true }).mtimeNs, m0, 'an up-to-date copy is not rewritten');
    store.save(sample('newer'));
    assert.match(readFileSync(store.pathOf('cs-net-42'), 'utf8'), /"gateway":"newer"/);
    assert.equal(readdirSync(dir.join('state', 'routers')).sort(), ['cs-net-42.journal', 'cs-net-42.json']);
  } finally {
    dir.cleanup();
  }
});

test('durable before save returns: a writer killed (SIGKILL) at random moments of a stream of saves leaves the last state it saved, or the one it was saving', () => {
  const dir = new TempDir('store');
  try {
    const sd = dir.join('state');
    // each "saved N" is written (synchronously) once save returned — what the engine answers after
    const child = dir.file('writer.mjs', `
      import { writeSync } from 'node:fs';
      import { StateStore } from ${JSON.stringify(STORE_URL)};
      const [sd, template] = process.argv.slice(2);
      const store = new StateStore(sd);
      for (let n = 1; ; n++) {
        const m = JSON.parse(template);
        m.publicIps['203.0.113.10'].gateway = String(n);
        // every tenth state is large (past a 16 KiB slot): the journal is made anew now and then, too
        if (n % 10 === 0) m.portForwards = Array.from({ length: 400 }, (_, i) => ({ ...m.portForwards[0], publicPorts: [i + 1, i + 1] }));
        store.save(m);
        writeSync(1, 'saved ' + n + '\\n');
      }
    `);
    let answered = 0;
    for (const killAfterMs of [15, 40, 90, 160, 250, 400]) {
      rmSync(sd, { recursive: true, force: true });
      const r = spawnSync(process.execPath, [child, sd, JSON.stringify(sample('0'))], { encoding: 'utf8', timeout: killAfterMs + 150, killSignal: 'SIGKILL' });
      assert.is(r.signal, 'SIGKILL', r.stderr);
      const saved = [...r.stdout.matchAll(/saved (\d+)/g)].map((x) => Number(x[1]));
      const last = saved.length ? saved[saved.length - 1] : 0;
      answered = Math.max(answered, last);
      const store = new StateStore(sd);
      const got = gateway(store);
      if (last === 0) {
        assert.ok(got === undefined || got === '1', `killed before the first save returned: nothing or state 1, got ${got}`);
      } else {
        assert.ok(got === String(last) || got === String(last + 1), `last answered save ${last}: read ${got}`);
      }
      // and it goes on from there
      store.save(sample('after'));
      assert.is(gateway(new StateStore(sd)), 'after');
    }
    assert.ok(answered > 10, `the writer was killed in mid-stream, not only before its first save (${answered} saves answered at most)`);
  } finally {
    dir.cleanup();
  }
});

test('power loss mid-save (a torn journal record) falls back to the state saved before; the JSON copy is not what decides', () => {
  const dir = new TempDir('store');
  try {
    const store = new StateStore(dir.path);
    store.save(sample('s1')); // record 1, slot 1
    store.save(sample('s2')); // record 2, slot 0
    const journal = store.journalOf('cs-net-42');
    const slot = statSync(journal).size / 2;
    // the write of record 2 reached the disk in part: a byte of its text is not what was written
    const bytes = readFileSync(journal);
    bytes[56 + 40] ^= 0xff;
    writeFileSync(journal, bytes);
    assert.is(gateway(new StateStore(dir.path)), 's1', 'the torn record fails its checksum; the other slot holds the state before');
    // the next save goes into the torn slot (record 2 again), never over the good one
    const again = new StateStore(dir.path);
    again.save(sample('s3'));
    assert.is(gateway(new StateStore(dir.path)), 's3');
    assert.is(readFileSync(journal).subarray(slot).includes(Buffer.from('"gateway":"s1"')), true, 'slot 1 still holds s1');
    // a JSON copy that the last rename did not leave on disk (a crash before the filesystem's own commit)
    writeFileSync(store.pathOf('cs-net-42'), JSON.stringify(sample('stale')));
    assert.is(gateway(new StateStore(dir.path)), 's3', 'the journal decides');
  } finally {
    dir.cleanup();
  }
});

test('the JSON copy: one JSON document after every save, shorter states leave no tail; a router saved without a journal is read from its JSON file', () => {
  const dir = new TempDir('store');
  try {
    const store = new StateStore(dir.path);
    const big = sample('big');
    big.portForwards = Array.from({ length: 50 }, (_, i) => ({ ...big.portForwards[0], publicPorts: [i + 1, i + 1] as [number, number] }));
    store.save(big);
    store.save(sample('small'));
    const copy = readFileSync(store.pathOf('cs-net-42'), 'utf8');
    assert.is(copy, `${JSON.stringify(sample('small'))}\n`, 'exactly the small state');
    assert.is(statSync(store.pathOf('cs-net-42')).mode & 0o777, 0o600);
    // a state directory of a build without the journal: the JSON file is the state
    const legacy = new StateStore(dir.join('legacy'));
    mkdirSync(legacy.dir, { recursive: true });
    writeFileSync(legacy.pathOf('cs-net-42'), JSON.stringify(sample('legacy')));
    assert.is(gateway(legacy), 'legacy');
    assert.equal(legacy.list(), ['cs-net-42']);
    legacy.save(sample('journalled'));
    assert.ok(existsSync(legacy.journalOf('cs-net-42')));
    assert.is(gateway(new StateStore(dir.join('legacy'))), 'journalled');
    legacy.remove('cs-net-42');
    assert.equal(readdirSync(legacy.dir), [], 'remove: JSON copy and journal gone');
    assert.is(gateway(new StateStore(dir.join('legacy'))), undefined);
  } finally {
    dir.cleanup();
  }
});

test('the engine lock excludes a second holder and times out with E_LOCK_TIMEOUT', async () => {
  const dir = new TempDir('store');
  try {
    const store = new StateStore(dir.path);
    const release = await store.lock('cs-net-42', 1000);
    await rejected(store.lock('cs-net-42', 100), TimeoutError, { code: 'E_LOCK_TIMEOUT' }, 'second lock should time out');
    const other = await store.lock('cs-net-43', 100); // another router is independent
    other();
    release();
    const again = await store.lock('cs-net-42', 100);
    again();
  } finally {
    dir.cleanup();
  }
});

test('routerKeyOf: VPC tiers and VPC commands share the VPC router', () => {
  assert.equal(routerKeyOf({ networkId: '42' }), { kind: 'network', networkId: '42' });
  assert.equal(routerKeyOf({ networkId: '42', vpcId: '7' }), { kind: 'vpc', vpcId: '7' });
  assert.equal(routerKeyOf({ vpcId: '7' }), { kind: 'vpc', vpcId: '7' });
});

test.run();
