/**
 * The installed command (dist/cli/netns-router.cjs) loads the CLI from its one-file bundle with a V8 code cache
 * (cli/bundle.cts): the cache is written after a router command and again after each router command it does
 * not cover yet, a cache V8 refuses or one made from another bundle is replaced, and without the bundle the command runs from the ES modules. Nothing here times anything.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();
const CLI_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli');
const CJS = join(CLI_DIR, 'netns-router.cjs');
const BUNDLE = join(CLI_DIR, 'netns-router.bundle.cjs');
const CACHE = `${BUNDLE}.cache`;

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CJS, ...args], { encoding: 'utf8', env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: 'off' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const header = (): string => {
  const raw = readFileSync(CACHE);
  return raw.subarray(0, raw.indexOf(10)).toString('latin1');
};
const bundleId = (): string => { const st = statSync(BUNDLE); return `${st.ino}:${st.size}:${Math.floor(st.mtimeMs)}`; };

test('a router command leaves a code cache for this bundle; a refused or foreign cache is replaced; the command works throughout', () => {
  assert.ok(existsSync(BUNDLE), 'npm run build made the bundle');
  const dir = mkdtempSync(join(tmpdir(), 'nr-bundle-'));
  const status = ['status', '--state-dir', join(dir, 's'), '--log-file', join(dir, 'log')];
  try {
    rmSync(CACHE, { force: true });
    const v = run(['--version']);
    assert.is(v.status, 0, v.stderr);
    assert.match(v.stdout, /^netns-router \d/);
    assert.is(header().split('\t')[2], '', 'a run without the engine leaves a cache that covers no router command');
    const s = run(status);
    assert.is(s.status, 0, s.stderr);
    assert.equal(JSON.parse(s.stdout), { routers: [] });
    const [magic, of, kind] = header().split('\t');
    assert.is(magic, 'netns-router-code-cache 2');
    assert.is(of, bundleId(), 'made from this bundle');
    assert.is(kind, 'status', 'a router command replaced the smaller cache');
    const size = statSync(CACHE).size;
    assert.ok(size > 10_000, `V8 data written (${size} bytes)`);
    // the same command again: covered, the cache stays as it is
    const before = statSync(CACHE);
    assert.is(run(status).status, 0);
    assert.is(statSync(CACHE).ino, before.ino, 'not rewritten for a command it covers');
    // another router command (on a router that does not exist: nothing to delete) adds what it compiled — given
    // after global options, as the wrapper shim runs it
    const d = run([...status.slice(1), 'delete-static-nat', '--network-id', '4242', '--public-ip', '203.0.113.9']);
    assert.is(d.status, 0, d.stderr);
    assert.is(header().split('\t')[2], 'status,delete-static-nat', 'the second command is covered too');
    assert.ok(statSync(CACHE).size >= size, 'what the first run compiled is still there');
    // neither help nor a bad command line adds anything
    assert.is(run(['help', 'assign-ip']).status, 0);
    assert.is(run(['add-static-nat', '--bogus']).status, 1);
    assert.is(header().split('\t')[2], 'status,delete-static-nat');

    // V8 refuses garbage: the command still runs, and the cache is made again
    writeFileSync(CACHE, `netns-router-code-cache 2\t${bundleId()}\tstatus\n${'x'.repeat(5000)}`);
    const g = run(status);
    assert.is(g.status, 0, g.stderr);
    assert.ok(statSync(CACHE).size > 10_000, 'rewritten after V8 refused it');

    // a cache made from another bundle is not even offered to V8
    const real = readFileSync(CACHE);
    writeFileSync(CACHE, Buffer.concat([Buffer.from(`netns-router-code-cache 2\t1:2:3\tstatus\n`), real.subarray(real.indexOf(10) + 1)]));
    const f = run(status);
    assert.is(f.status, 0, f.stderr);
    assert.is(header().split('\t')[1], bundleId(), 'replaced by one of this bundle');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without the bundle the installed command runs from the ES modules', () => {
  const away = `${BUNDLE}.away-${process.pid}`;
  renameSync(BUNDLE, away);
  try {
    const v = run(['--version']);
    assert.is(v.status, 0, v.stderr);
    assert.match(v.stdout, /^netns-router \d/);
    const h = run(['help', 'assign-ip']);
    assert.is(h.status, 0, h.stderr);
    assert.match(h.stdout, /--public-ip/);
  } finally {
    renameSync(away, BUNDLE);
  }
  const h = run(['help', 'assign-ip']);
  assert.is(h.status, 0, h.stderr);
  assert.match(h.stdout, /--public-ip/, 'the same help from the bundle');
});

test.run();
