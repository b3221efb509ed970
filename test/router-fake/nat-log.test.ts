/**
 * The NAT log of the fast way of NAT commands (lib/router/state/nat-log.ts): every reader sees the model
 * the commands left; a record cut short at any byte (a crash mid-write) leaves the model before it, never a
 * broken one; damage before the last record is refused; a log of an older saved state is ignored; a full
 * save and compaction replace it; and a process killed (SIGKILL) at random points while committing leaves the
 * old or the new model.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RouterEngine } from '../../lib/router/engine.js';
import { runCommand } from '../../lib/router/command-table.js';
import { requestFromValues } from '../../lib/router/contract/plain-values.js';
import type { CommandInputs } from '../../lib/router/contract/inputs.js';
import type { EngineCommand } from '../../lib/router/contract/types.js';
import { FakeKernel } from '../../lib/router/fake-kernel.js';
import { StateStore } from '../../lib/router/state/store.js';
import { natLogLimits, snapshotHash } from '../../lib/router/state/nat-log.js';
import { readJournal, recordIdSeq } from '../../lib/router/state/journal.js';
import { StateError } from '../../lib/util/errors.js';

const NS = 'cs-net-42';
const untagged = { publicVlan: 'untagged', publicGateway: '203.0.113.1', publicCidr: '203.0.113.0/24' } as const;

async function warmRouter(fast = true): Promise<{ dir: string; engine: RouterEngine; run: <C extends EngineCommand>(c: C, input: CommandInputs[C]) => Promise<unknown> }> {
  const dir = mkdtempSync(join(tmpdir(), 'nr-natlog-'));
  const k = new FakeKernel({ devices: ['eth1'] });
  const engine = new RouterEngine({ stateDir: dir, devices: { guest: 'eth1', public: 'eth1' }, kernel: k, fastNat: fast ? { minEntries: 0 } : false });
  const run = <C extends EngineCommand>(c: C, input: CommandInputs[C]) => runCommand(engine, requestFromValues(c, input, { networkDetails: {} }));
  await run('implement-network', { networkId: 42, vlan: 'vxlan://5042', gateway: '10.42.0.1', cidr: '10.42.0.0/24' });
  await run('assign-ip', { networkId: 42, publicIp: '203.0.113.10', sourceNat: true, ...untagged });
  for (let i = 20; i < 30; i++) await run('assign-ip', { networkId: 42, publicIp: `203.0.113.${i}`, ...untagged });
  await run('add-static-nat', { networkId: 42, publicIp: '203.0.113.20', privateIp: '10.42.0.20' });
  return { dir, engine, run };
}

const reader = (dir: string): StateStore => new StateStore(dir);

test('NAT log: readers see the journaled model; a record cut at any byte leaves the model before it', async () => {
  const { dir, engine, run } = await warmRouter();
  try {
    const jpath = engine.store.natLogOf(NS);
    await run('add-static-nat', { networkId: 42, publicIp: '203.0.113.21', privateIp: '10.42.0.21' });
    assert.is(engine.lastReconcile, 'fast');
    const one = reader(dir).read(NS)!;
    const afterOne = readFileSync(jpath);
    await run('delete-static-nat', { networkId: 42, publicIp: '203.0.113.20', privateIp: '10.42.0.20' });
    await run('add-port-forward', { networkId: 42, publicIp: '203.0.113.10', publicPort: 80, privateIp: '10.42.0.9', privatePort: 8080, protocol: 'tcp' });
    assert.is(engine.lastReconcile, 'fast');
    const full = readFileSync(jpath);
    const two = reader(dir).read(NS)!;
    const m = JSON.parse(two);
    assert.equal(m.staticNats.map((s: { publicIp: string }) => s.publicIp), ['203.0.113.21']);
    assert.is(m.portForwards.length, 1);
    assert.is(reader(dir).load(NS)!.staticNats.length, 1, 'load applies the log too');
    // the state file itself is the one before the first record
    assert.is(JSON.parse(readFileSync(join(dir, 'routers', `${NS}.json`), 'utf8')).staticNats.length, 1);
    // the log's records, cut at every byte of the last one: the model before it
    const lastStart = full.lastIndexOf(0x0a, full.length - 2) + 1;
    const three = (() => {
      writeFileSync(jpath, full.subarray(0, lastStart));
      return reader(dir).read(NS)!;
    })();
    assert.is.not(three, two);
    assert.equal(JSON.parse(three).portForwards, [], 'without the last record: no port forward');
    for (let cut = lastStart; cut < full.length; cut++) {
      writeFileSync(jpath, full.subarray(0, cut));
      assert.is(reader(dir).read(NS), three, `cut at byte ${cut}`);
    }
    // cut in the header or the first record: the state file's model, or after the first record
    for (const cut of [0, 5, 20, afterOne.indexOf(0x0a) + 1]) {
      writeFileSync(jpath, full.subarray(0, cut));
      assert.is(JSON.parse(reader(dir).read(NS)!).staticNats.length, 1, `cut at byte ${cut}`);
    }
    writeFileSync(jpath, afterOne);
    assert.is(reader(dir).read(NS), one);
    // damage before the last record is refused, not skipped
    const bad = Buffer.from(full);
    bad[afterOne.indexOf(0x0a) + 10] ^= 0x01;
    writeFileSync(jpath, bad);
    try {
      reader(dir).read(NS);
      assert.unreachable('damage accepted');
    } catch (e) {
      assert.instance(e, StateError);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('NAT log: a full save replaces it; a journal left beside a newer state file is ignored', async () => {
  const { dir, engine, run } = await warmRouter();
  try {
    const jpath = engine.store.natLogOf(NS);
    await run('add-static-nat', { networkId: 42, publicIp: '203.0.113.21', privateIp: '10.42.0.21' });
    assert.ok(existsSync(jpath));
    const stale = join(dir, 'stale.natlog');
    copyFileSync(jpath, stale);
    // another process (the full way) changes the router: it reads the journaled model and saves a new state file
    const other = new RouterEngine({ stateDir: dir, devices: { guest: 'eth1', public: 'eth1' }, kernel: engine.kernel, fastNat: false });
    await runCommand(other, requestFromValues('add-static-nat', { networkId: 42, publicIp: '203.0.113.22', privateIp: '10.42.0.22' }, { networkDetails: {} }));
    assert.not.ok(existsSync(jpath), 'the log went with the full save');
    const saved = reader(dir).read(NS)!;
    assert.equal(JSON.parse(saved).staticNats.map((s: { publicIp: string }) => s.publicIp), ['203.0.113.20', '203.0.113.21', '203.0.113.22']);
    // a crash between the full save and the journal's removal: the old journal names the old state file
    copyFileSync(stale, jpath);
    assert.is(reader(dir).read(NS), saved, 'the stale log is not applied');
    // the warm engine notices the other process's save (and the journal back in place) and takes the full way
    await run('add-static-nat', { networkId: 42, publicIp: '203.0.113.23', privateIp: '10.42.0.23' });
    assert.is.not(engine.lastReconcile, 'fast');
    assert.not.ok(existsSync(jpath), 'the full save removed the stale log');
    assert.is(JSON.parse(reader(dir).read(NS)!).staticNats.length, 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('NAT log: its base is the journal record\'s identity (no hash of the state); a log naming the state by its hash (older builds) still applies', async () => {
  const { dir, engine, run } = await warmRouter();
  try {
    const jpath = engine.store.natLogOf(NS);
    await run('add-static-nat', { networkId: 42, publicIp: '203.0.113.21', privateIp: '10.42.0.21' });
    assert.is(engine.lastReconcile, 'fast');
    const log = readFileSync(jpath, 'utf8');
    const header = log.slice(0, log.indexOf('\n'));
    const rec = readJournal(engine.store.journalOf(NS))!;
    assert.is(header, `netns-router natlog 1 ${rec.id}`);
    assert.match(rec.id, /^J\d+:[A-Za-z0-9+/]{43}=$/);
    const withLog = reader(dir).read(NS)!;
    assert.is(JSON.parse(withLog).staticNats.length, 2, 'the record applies');
    // the same log as an older build wrote it: the base named by the saved text's hash
    writeFileSync(jpath, `netns-router natlog 1 ${snapshotHash(rec.text)}${log.slice(log.indexOf('\n'))}`);
    assert.is(reader(dir).read(NS), withLog, 'an older build\'s log applies');
    // a hash base is never read as a record identity, even one starting with J (base64 has no colon)
    assert.is(recordIdSeq(`J${'x'.repeat(42)}=`), undefined);
    assert.is(recordIdSeq(rec.id), rec.seq);
    // the journal unreadable, the JSON copy read: the identity is checked against the copy's text by its digest
    writeFileSync(jpath, log);
    const journal = readFileSync(engine.store.journalOf(NS));
    writeFileSync(engine.store.journalOf(NS), Buffer.alloc(journal.length));
    assert.is(reader(dir).read(NS), withLog, 'a copy holding that record\'s text: the log applies');
    writeFileSync(engine.store.journalOf(NS), journal);
    // a base of another record (another sequence number or digest) does not
    for (const other of [rec.id.replace(/^J(\d+)/, (_m, n: string) => `J${Number(n) + 1}`), `${rec.id.slice(0, -3)}AA=`]) {
      writeFileSync(jpath, `netns-router natlog 1 ${other}${log.slice(log.indexOf('\n'))}`);
      assert.is(JSON.parse(reader(dir).read(NS)!).staticNats.length, 1, `base ${other}: not this state`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('NAT log: the fast way compacts it into the state file when it grows', async () => {
  const { dir, engine, run } = await warmRouter();
  const saved = { ...natLogLimits };
  natLogLimits.records = 3;
  try {
    const jpath = engine.store.natLogOf(NS);
    const seen: boolean[] = [];
    for (let i = 21; i < 27; i++) {
      await run('add-static-nat', { networkId: 42, publicIp: `203.0.113.${i}`, privateIp: `10.42.0.${i}` });
      assert.is(engine.lastReconcile, 'fast', `static NAT ${i}`);
      seen.push(existsSync(jpath));
    }
    assert.equal(seen, [true, true, false, true, true, false], 'compacted every third command');
    const m = JSON.parse(readFileSync(join(dir, 'routers', `${NS}.json`), 'utf8'));
    assert.is(m.staticNats.length, 7, 'the state file holds every static NAT after a compaction');
    assert.is(reader(dir).read(NS), `${JSON.stringify(m)}\n`);
  } finally {
    Object.assign(natLogLimits, saved);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('NAT log: SIGKILL while committing leaves the old or the new model', async () => {
  const child = join(dirname(fileURLToPath(import.meta.url)), 'nat-log-crash-child.js');
  for (let round = 0; round < 6; round++) {
    const dir = mkdtempSync(join(tmpdir(), 'nr-natlog-kill-'));
    try {
      const p = spawn(process.execPath, [child, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
      const killAfter = 3 + round * 7;
      let committed = -1;
      let buf = '';
      await new Promise<void>((resolve) => {
        p.stdout!.on('data', (d: Buffer) => {
          buf += d.toString();
          const lines = buf.split('\n');
          buf = lines.pop()!;
          for (const l of lines) {
            const n = Number(l.split(' ')[1]);
            if (l.startsWith('committed ')) committed = n;
            if (committed >= killAfter && p.exitCode === null && !p.killed) p.kill('SIGKILL');
          }
        });
        p.on('close', () => resolve());
      });
      assert.ok(committed >= killAfter, `the child committed ${committed} commands`);
      const m = reader(dir).load(NS)!;
      // each command adds one static NAT (or deletes the oldest): the in-flight one may have landed
      const count = m.staticNats.length;
      const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Record<string, number>;
      const ok = [expected[String(committed)], expected[String(committed + 1)]].filter((x) => x !== undefined);
      assert.ok(ok.includes(count), `round ${round}: ${count} static NATs after commit ${committed}, expected one of ${ok.join(', ')}`);
      for (const s of m.staticNats) assert.ok(m.publicIps[s.publicIp], 'every static NAT on an assigned IP');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test.run();
