// lib/sys/ffi.ts: koffi loaded on first use, its prebuilt addon found by path (no kernel, no sandbox needed).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const sysDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'lib', 'sys');

/** Runs an ES module in a fresh node: whether koffi's addon is mapped before and after a libc call. */
function probe(body: string): { status: number | null; stdout: string; stderr: string } {
  const script = [
    `import { readFileSync } from 'node:fs';`,
    `const mapped = () => readFileSync('/proc/self/maps', 'latin1').includes('koffi.node');`,
    `const sys = await import(${JSON.stringify(join(sysDir, 'index.js'))});`,
    `const before = mapped();`,
    body,
    `console.log(JSON.stringify({ before, after: mapped() }));`,
  ].join('\n');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('importing lib/sys loads no native code; the first libc call does', () => {
  const r = probe(`if (sys.libc.getpid() !== process.pid) throw new Error('getpid');`);
  assert.is(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), { before: false, after: true });
});

test('a call that fails still reports its errno through the lazily loaded koffi', () => {
  const r = probe(`try { sys.libc.close(987654); throw new Error('closed?'); } catch (e) { if (!(e instanceof sys.SysError) || e.errno !== 9) throw e; }`);
  assert.is(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), { before: false, after: true });
});

test('the addon found by path is the one koffi exports, at the version of the koffi package', async () => {
  const { koffi } = await import('../../lib/sys/ffi.js');
  const addon = koffi() as unknown as { version: string; load: unknown };
  const require = createRequire(join(sysDir, 'ffi.js'));
  // koffi's main script sits at its package root (its exports do not list package.json)
  const pkg = JSON.parse(readFileSync(join(dirname(require.resolve('koffi')), 'package.json'), 'utf8')) as { version: string };
  assert.is(addon.version, pkg.version);
  // koffi's own loader, run afterwards, finds the same addon in Node's module cache (one instance per process)
  const viaPackage = require('koffi') as { default: unknown; version: string };
  assert.is(viaPackage.default, addon, 'the same addon object');
  assert.ok(Object.keys(require.cache).some((f) => f.endsWith('koffi.node')), 'the addon is in the module cache');
});

/** Script lines: a datagram socket pair of the child's own (abstract AF_UNIX name `tag`<pid>): `rx` bound at `addr`, `tx`. */
const dgramPair = (tag: string): string => `const addr = Buffer.alloc(2 + 1 + 12);
addr.writeUInt16LE(1, 0); // AF_UNIX, abstract name
addr.write('${tag}' + process.pid, 3, 'latin1');
const rx = libc.socket(1, 2, 0); // AF_UNIX, SOCK_DGRAM
libc.bind(rx, addr);
const tx = libc.socket(1, 2, 0);`;

// koffi hands a typed array to C as a bare pointer and keeps no reference to it: an asynchronous call queued behind
// a busy worker pool must still send the bytes it was given after the garbage collector has run
const HELD_SCRIPT = `
const [{ libc }, { pbkdf2 }] = await Promise.all([import(process.env.SYS + '/index.js'), import('node:crypto')]);
${dgramPair('nr-held-')}
const busy = new Promise((r) => pbkdf2('x', 'y', 400000, 64, 'sha512', r)); // the one pool thread
const SIZE = 65000;
let sent = libc.sendtoAsync(tx, Buffer.alloc(SIZE, 0x5a), Buffer.from(addr));
for (let i = 0; i < 8; i++) { globalThis.gc(); const junk = []; for (let j = 0; j < 64; j++) junk.push(Buffer.alloc(SIZE, 0xee)); }
await busy;
const n = await sent;
const got = Buffer.alloc(SIZE + 1);
const len = libc.recv(rx, got);
console.log(JSON.stringify({ n, len, intact: got.subarray(0, len).every((b) => b === 0x5a) }));
`;

test('an asynchronous call keeps its buffers alive until the worker has run (sendtoAsync behind a busy pool, gc meanwhile)', () => {
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', HELD_SCRIPT], {
    encoding: 'utf8', timeout: 120_000, env: { ...process.env, UV_THREADPOOL_SIZE: '1', SYS: sysDir },
  });
  assert.is(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), { n: 65000, len: 65000, intact: true });
});

// fills the descriptor table (a low limit set by prlimit), then asks libnftables for a context
const FULL_SCRIPT = `
import { openSync, closeSync } from 'node:fs';
const nft = await import(process.env.SYS + '/libnftables.js');
// koffi and libnftables loaded first (their loading opens files too)
const first = nft.ctxNew();
nft.ctxFree(first.ctx);
const held = [];
try { for (;;) held.push(openSync('/dev/null', 'r')); } catch { /* the table is full */ }
let refused;
try { nft.ctxNew(); refused = 'no error'; } catch (e) { refused = e.message; }
closeSync(held.pop());
const made = nft.ctxNew();
const ok = made !== null && made.ctx !== null;
if (ok) nft.ctxFree(made.ctx);
console.log(JSON.stringify({ refused, ok }));
`;

test('no descriptor left: nft_ctx_new would end the process; ctxNew throws instead, and works once one is free', () => {
  // libnftables 1.0.x calls exit(1) when it cannot open its netlink socket; this process must live on
  const r = spawnSync('prlimit', ['--nofile=64:64', process.execPath, '--input-type=module', '-e', FULL_SCRIPT], {
    encoding: 'utf8', timeout: 60_000, env: { ...process.env, SYS: sysDir },
  });
  assert.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { refused: string; ok: boolean };
  assert.match(out.refused, /^socket \(an nftables socket: NETLINK_NETFILTER\): .*\(EMFILE\)$/, 'an error naming the socket, not an exit');
  assert.ok(out.ok, 'control: with one descriptor free the context is made');
});

// closes left on koffi's worker pool take its slots (256 at most, freed only when a completion runs on the event
// loop): a synchronous stretch of closes must leave slots for a call awaited in the same stretch, and close every
// descriptor (those past libc.CLOSES_MAX on the calling thread)
const CLOSES_SCRIPT = `
const { libc } = await import(process.env.SYS + '/index.js');
const { fstatSync } = await import('node:fs');
${dgramPair('nr-slots-')}
const fds = [];
for (let i = 0; i < 300; i++) fds.push(libc.open('/dev/null', libc.O_RDONLY));
for (const fd of fds) void libc.closeAsync(fd);
const waiting = libc.closesWaiting();
const sent = libc.sendtoAsync(tx, Buffer.from('after the closes'), addr);
const n = await sent;
while (libc.closesWaiting() > 0) await new Promise((r) => setImmediate(r));
const open = fds.filter((fd) => { try { fstatSync(fd); return true; } catch { return false; } }).length;
console.log(JSON.stringify({ waiting, max: libc.CLOSES_MAX, n, open }));
`;

test('a stretch of 300 closes left on the worker pool keeps slots for an awaited call and closes every descriptor', () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', CLOSES_SCRIPT], {
    encoding: 'utf8', timeout: 60_000, env: { ...process.env, SYS: sysDir },
  });
  assert.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { waiting: number; max: number; n: number; open: number };
  assert.ok(out.waiting > 0 && out.waiting <= out.max, `${out.waiting} closes left on the pool (at most ${out.max})`);
  assert.is(out.n, 16, 'the awaited sendto ran');
  assert.is(out.open, 0, 'no descriptor left open');
});

test.run();
