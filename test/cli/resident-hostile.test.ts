/**
 * The resident engine and the wrapper shim against a hostile local user and a faulty environment: an engine that
 * stops answering (SIGSTOP), unprivileged clients on the shim's loopback port, a socket directory another user
 * controls, clients that disconnect mid-command, an engine killed mid-command, concurrent commands while a slow
 * hook runs. Each command is a real one (custom-action hooks that leave marks, a real router's NAT table).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { connect, createServer, type Server } from 'node:net';
import { RESIDENT_PROTOCOL, buildId, namespacesId } from '../../cli/resident.cjs';
import { requireSandbox } from '../helpers/sandbox.js';
import { Scratch, simulatedHost, uid } from '../helpers/topo.js';
import { pidsWhere } from '../helpers/procs.js';
import { CJS, installShim, lastRunner, run, serve, type Served } from '../helpers/resident.js';
import { LOCK_EX, tryFlock } from '../../lib/sys/libc.js';

requireSandbox();

const NOBODY = ['--reuid', '65534', '--regid', '65534', '--clear-groups'];

/** A state directory with hooks: `mark` appends its params to <dir>/marks; `slow` notes its start, waits, marks. */
function hookedState(dir: string): string {
  const state = join(dir, 'state');
  mkdirSync(join(state, 'hooks'), { recursive: true });
  // upstream's hook arguments: --network-id <id> --action <name> --action-params <json>
  writeFileSync(join(state, 'hooks', 'custom-action-mark.sh'), `#!/bin/sh\necho "$6" >> ${join(dir, 'marks')}\n`, { mode: 0o755 });
  writeFileSync(join(state, 'hooks', 'custom-action-slow.sh'),
    `#!/bin/sh\necho "begin $2 $6" >> ${join(dir, 'order')}\necho "$6" > ${join(dir, 'slow-started')}\nsleep "\${SLOW:-1}"\necho "end $2 $6" >> ${join(dir, 'order')}\necho "$6" >> ${join(dir, 'marks')}\n`,
    { mode: 0o755 });
  return state;
}

const marks = (dir: string): string[] => (existsSync(join(dir, 'marks')) ? readFileSync(join(dir, 'marks'), 'utf8').trim().split('\n').sort() : []);
const params = (m: string): string => JSON.stringify({ m });

async function until(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('an engine that does not answer (stopped): both clients fall back and run the command once; the engine never runs it late', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-hostile-stop-'));
  let srv: Served | undefined;
  try {
    srv = await serve(dir);
    const g = ['--state-dir', hookedState(dir), '--log-file', join(dir, 'log')];
    const env = { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: srv.socket };
    const shim = installShim(join(dir, 'root'), 'hostileext', g, env);
    const mark = (m: string) => ['custom-action', '--network-id', '5', '--action', 'mark', '--action-params', params(m)];
    process.kill(srv.pid, 'SIGSTOP');
    let viaCli;
    let viaShim;
    try {
      [viaCli, viaShim] = await Promise.all([
        run(process.execPath, [CJS, ...mark('cli'), ...g], { env, killAfterMs: 40_000 }),
        run(shim, mark('shim'), { env, killAfterMs: 40_000 }),
      ]);
    } finally {
      process.kill(srv.pid, 'SIGCONT');
    }
    assert.is(viaCli.code, 0, viaCli.stderr);
    assert.is(viaShim.code, 0, `the shim gave up on the stopped engine and ran the command itself (${viaShim.signal ?? ''}) ${viaShim.stderr}`);
    assert.equal(marks(dir), [params('cli'), params('shim')].sort());
    // the engine runs again: a new command goes through it; what it had received while stopped it must not run
    const after = await run(process.execPath, [CJS, ...mark('after'), ...g], { env });
    assert.is(after.code, 0, after.stderr);
    assert.is(lastRunner(join(dir, 'log')), srv.pid, 'the engine serves again');
    assert.is(await srv.stop(), 0, srv.stderr());
    assert.equal(marks(dir), [params('after'), params('cli'), params('shim')].sort(), 'each command ran exactly once');
  } finally {
    if (srv && srv.proc.exitCode === null) { process.kill(srv.pid, 'SIGCONT'); await srv.stop(); }
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the unix socket: malformed, oversized, silent, no go — each refused or dropped, nothing run; the same request with its go runs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-hostile-json-'));
  let srv: Served | undefined;
  try {
    srv = await serve(dir, { args: ['--no-shim-port'] });
    const g = ['--state-dir', hookedState(dir), '--log-file', join(dir, 'log')];
    const request = (m: string) => `${JSON.stringify({
      proto: RESIDENT_PROTOCOL, build: buildId(), namespaces: namespacesId(), cwd: dir, env: {}, nodePath: process.execPath,
      argv: ['custom-action', '--network-id', '5', '--action', 'mark', '--action-params', params(m), ...g],
    })}\n`;
    /** Sends `parts` (each after the previous answer line, when `stepwise`), collects the answer until the engine closes. */
    const talk = (parts: string[], opts: { closeAfterFirstLine?: boolean } = {}) => new Promise<string>((res) => {
      const c = connect(srv!.socket);
      let got = '';
      c.on('error', () => {});
      c.on('connect', () => { c.write(parts.shift() ?? ''); });
      c.on('data', (d: Buffer) => {
        got += d.toString();
        if (!got.endsWith('\n')) return;
        if (opts.closeAfterFirstLine) c.destroy();
        else if (parts.length) c.write(parts.shift()!);
      });
      c.on('close', () => res(got));
    });
    assert.equal(JSON.parse(await talk(['{"argv": 1}\n'])), { error: 'malformed request' });
    assert.equal(JSON.parse(await talk(['not json\n'])), { error: 'malformed request' });
    assert.equal(JSON.parse(await talk(['x'.repeat(5 << 20)])), { error: 'request too large' });
    assert.is(await talk([]), '', 'a silent connection is closed (after 10 s)');
    assert.equal(JSON.parse(await talk([request('gave-up')], { closeAfterFirstLine: true })), { ready: true });
    assert.equal(JSON.parse(await talk([request('no-go'), '{"go":false}\n'])), { ready: true });
    const ran = (await talk([request('go'), '{"go":true}\n'])).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(ran[0], { ready: true });
    assert.is(ran.at(-1)!.exit, 0, JSON.stringify(ran));
    assert.is(await srv.stop(), 0);
    assert.equal(marks(dir), [params('go')], 'only the request with its go ran');
  } finally {
    if (srv) await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Runs `script` (node, CommonJS) as user nobody with `args`; its stdout parsed as JSON. */
function asNobody(script: string, args: string[], timeoutMs = 60_000): Record<string, unknown> {
  const r = spawnSync('setpriv', [...NOBODY, process.execPath, '-e', script, ...args], { encoding: 'utf8', timeout: timeoutMs, cwd: '/' });
  assert.is(r.status, 0, `as nobody: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

test('an unprivileged user on the shim port: refused at the token, cannot feed it megabytes or park connections; root still served', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-hostile-port-'));
  let srv: Served | undefined;
  try {
    // where the production engine listens (in the sandbox a private tmpfs of mode 755, like systemd's RuntimeDirectory)
    srv = await serve(dir, { socket: '/run/netns-router/engine.sock' });
    const g = ['--state-dir', hookedState(dir), '--log-file', join(dir, 'log')];
    const env = { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: srv.socket };
    const shim = installShim(join(dir, 'root'), 'hostileext', g, env);
    const port = readFileSync(join(dirname(srv.socket), 'engine.tcp'), 'utf8').split(' ')[0];
    // the token file and the socket are out of reach
    const reach = asNobody(`
      const fs = require('fs'), net = require('net');
      const out = {};
      try { fs.readFileSync(process.argv[1]); out.tcpFile = 'read'; } catch (e) { out.tcpFile = e.code; }
      const s = net.connect(process.argv[2]);
      s.on('connect', () => { out.socket = 'connected'; s.destroy(); console.log(JSON.stringify(out)); });
      s.on('error', (e) => { out.socket = e.code; console.log(JSON.stringify(out)); });
    `, [join(dirname(srv.socket), 'engine.tcp'), srv.socket]);
    assert.equal(reach, { tcpFile: 'EACCES', socket: 'EACCES' });

    // one connection each: a wrong token followed by nothing; a megabyte without a field end; nothing at all
    const probes = asNobody(`
      const net = require('net');
      const port = Number(process.argv[1]);
      const probe = (send) => new Promise((res) => {
        const s = net.connect(port, '127.0.0.1');
        let got = '';
        const t = setTimeout(() => { s.destroy(); res({ got, closed: false }); }, 40000);
        s.on('data', (c) => { got += c; });
        s.on('error', () => {});
        s.on('close', () => { clearTimeout(t); res({ got, closed: true }); });
        s.on('connect', () => { if (send) s.write(send); });
      });
      Promise.all([
        probe('netns-router-shim-1\\0' + 'f'.repeat(48) + '\\0'),
        probe('netns-router-shim-1\\0' + 'x'.repeat(1 << 20)),
        probe(''),
      ]).then(([token, flood, idle]) => console.log(JSON.stringify({ token, flood, idle })));
    `, [port]);
    assert.equal(probes.token, { got: 'stale bad token\n', closed: true }, 'refused at the token, without waiting for the rest');
    assert.match((probes.flood as { got: string }).got, /^stale malformed request/, 'no megabytes buffered before the token');
    assert.equal(probes.idle, { got: '', closed: true }, 'a connection that sends nothing is closed');

    // a thousand parked connections: the engine keeps a bounded number (256, serve.ts MAX_PENDING) and closes the
    // rest at once
    const flood = asNobody(`
      const net = require('net');
      const port = Number(process.argv[1]);
      let closed = 0, done = false;
      const socks = [];
      const finish = () => { if (done) return; done = true; console.log(JSON.stringify({ closed })); for (const s of socks) s.destroy(); };
      for (let i = 0; i < 1000; i++) {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => {});
        s.on('close', () => { if (++closed >= 1000 - 256) finish(); });
        socks.push(s);
      }
      setTimeout(finish, 8000);
    `, [port]);
    assert.ok((flood.closed as number) >= 1000 - 256, `parked connections closed by the engine: ${flood.closed}`);
    const r = await run(shim, ['custom-action', '--network-id', '5', '--action', 'mark', '--action-params', params('root')], { env });
    assert.is(r.code, 0, r.stderr);
    assert.is(lastRunner(join(dir, 'log')), srv.pid, 'root\'s shim is served by the engine');
    assert.equal(marks(dir), [params('root')]);
  } finally {
    if (srv) await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a socket directory another user controls: the engine refuses it; the shim and the command never talk to what is there', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-hostile-dir-'));
  // nobody's directory, where nobody runs a fake engine: a unix socket and a port file naming its own live process
  const evil = mkdtempSync(join(tmpdir(), 'nr-evil-'));
  let fakePid = 0;
  chmodSync(evil, 0o755);
  spawnSync('chown', ['65534:65534', evil]);
  const fake = run('setpriv', [...NOBODY, process.execPath, '-e', `
    const fs = require('fs'), net = require('net'), path = require('path');
    const dir = process.argv[1];
    const start = fs.readFileSync('/proc/self/stat', 'utf8'); const f = start.slice(start.lastIndexOf(')') + 2).split(' ');
    const got = (c) => fs.appendFileSync(path.join(dir, 'got'), c);
    const tcp = net.createServer((c) => { c.once('data', (d) => { got(d); c.end('ok\\n0 0 0\\n'); }); });
    const unix = net.createServer((c) => { c.once('data', (d) => { got(d); c.end(JSON.stringify({ accepted: true }) + '\\n' + JSON.stringify({ exit: 0, stdout: '', stderr: '' }) + '\\n'); }); });
    unix.listen(path.join(dir, 'engine.sock'), () => {
      tcp.listen(0, '127.0.0.1', () => {
        fs.writeFileSync(path.join(dir, 'engine.tcp'), tcp.address().port + ' ' + 'a'.repeat(48) + ' ' + process.pid + ' ' + f[19] + '\\n');
        fs.chmodSync(path.join(dir, 'engine.sock'), 0o777);
        fs.writeFileSync(path.join(dir, 'ready'), '');
      });
    });
    setTimeout(() => process.exit(0), 60000);
  `, evil], { killAfterMs: 90_000, started: (p) => { fakePid = p.pid!; } });
  const world = join(dir, 'world');
  mkdirSync(world, { mode: 0o777 });
  chmodSync(world, 0o1777);
  let stray: Served | undefined;
  try {
    await until('the fake engine', () => existsSync(join(evil, 'ready')));
    const g = ['--state-dir', hookedState(dir), '--log-file', join(dir, 'log')];
    const env = { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: join(evil, 'engine.sock') };
    const shim = installShim(join(dir, 'root'), 'hostileext', g, env);
    const viaShim = await run(shim, ['custom-action', '--network-id', '5', '--action', 'mark', '--action-params', params('shim')], { env });
    assert.is(viaShim.code, 0, viaShim.stderr);
    const viaCli = await run(process.execPath, [CJS, 'custom-action', '--network-id', '5', '--action', 'mark', '--action-params', params('cli'), ...g], { env });
    assert.is(viaCli.code, 0, viaCli.stderr);
    assert.equal(marks(dir), [params('cli'), params('shim')].sort(), 'both commands really ran');
    assert.not.ok(existsSync(join(evil, 'got')), 'the other user\'s listener received no command line');

    // the engine itself refuses a directory of another user and a root-owned one that anyone may write
    for (const sockDir of [join(evil, 'sub'), world]) {
      if (sockDir !== world) spawnSync('setpriv', [...NOBODY, 'mkdir', '-m', '700', sockDir]);
      const r = await run(process.execPath, [CJS, 'serve', '--socket', join(sockDir, 'engine.sock'), '--no-watchdog'], {
        killAfterMs: 40_000,
        started: (p) => { p.stderr!.on('data', (c: Buffer) => { if (/listening on/.test(c.toString())) p.kill('SIGTERM'); }); },
      });
      assert.is(r.code, 2, `serve in ${sockDir}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${sockDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*(owned by|writable by)`));
    }
    // (a positive control: the same start in a directory of root's own)
    stray = await serve(dir, { args: ['--no-watchdog'] });
  } finally {
    if (stray) await stray.stop();
    if (fakePid) { try { process.kill(fakePid, 'SIGKILL'); } catch { /* ended */ } }
    await fake;
    rmSync(dir, { recursive: true, force: true });
    rmSync(evil, { recursive: true, force: true });
  }
});

/** The elements of the router's static NAT map (public → private) that map to `priv`. */
const dnatTo = (ns: string, priv: string): string[] => spawnSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'map', 'inet', 'netns_router', 'static_dnat'], { encoding: 'utf8' })
  .stdout.split(/[\n,{}]/).filter((l) => l.includes(` : ${priv}`)).map((l) => l.trim());

test('through the shim on real routers: parallel commands while a slow hook holds one router; a client killed mid-command; the engine killed mid-command, then restarted', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-hostile-crash-'));
  let srv: Served | undefined;
  let srv2: Served | undefined;
  try {
    const { hostNs } = simulatedHost(s);
    srv = await serve(dir);
    const state = hookedState(dir);
    // the slow hook notes whether router A's static NAT (to 10.4.5.11) is in its rule set when it starts and ends:
    // a command of router A that ran while it held the lock would show as a difference
    writeFileSync(join(state, 'hooks', 'custom-action-slow.sh'), [
      '#!/bin/sh',
      `nat() { ip netns exec "$NETNS_ROUTER_NAMESPACE" nft list map inet netns_router static_dnat | grep -c ': 10\\.4\\.5\\.11'; }`,
      'before=$(nat)',
      `echo "$6" > ${join(dir, 'slow-started')}`,
      // s3's hook outlives its engine: long enough that only a kill ends it before the test does
      'case "$6" in *s3*) sleep 30.3 ;; *) sleep 2 ;; esac',
      `echo "$6 $before $(nat)" >> ${join(dir, 'order')}`,
      `echo "$6" >> ${join(dir, 'marks')}`,
      '',
    ].join('\n'), { mode: 0o755 });
    const log = join(dir, 'log');
    const g = ['--host-netns', hostNs, '--state-dir', state, '--log-file', log];
    const env = { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: srv.socket };
    const shim = installShim(join(dir, 'root'), 'hostileext', g, env);
    const viaShim = (...a: string[]) => run(shim, a, { env });
    const ok = (r: { code: number | null; stderr: string }, what: string) => assert.is(r.code, 0, `${what}: ${r.stderr}`);
    const a = String(2000 + (parseInt(uid(4), 16) % 3000));
    const b = String(Number(a) + 3000);
    const nsA = s.track(`cs-net-${a}`);
    const nsB = s.track(`cs-net-${b}`);
    for (const [id, vni, net, pub] of [[a, 4100, '10.4.5', ['203.0.113.45', '203.0.113.47']], [b, 4101, '10.4.6', ['203.0.113.46', '203.0.113.48']]] as const) {
      ok(await viaShim('implement-network', '--network-id', id, '--vlan', `vxlan://${vni}`, '--gateway', `${net}.1`, '--cidr', `${net}.0/24`), 'implement');
      for (const [i, ip] of pub.entries()) {
        ok(await viaShim('assign-ip', '--network-id', id, '--public-ip', ip, '--public-vlan', 'untagged', '--public-gateway', '203.0.113.1', '--public-cidr', '203.0.113.0/24', '--source-nat', String(i === 0)), 'assign-ip');
      }
    }
    assert.is(lastRunner(log), srv.pid, 'the shim hands its commands to the engine');
    const slowStarted = () => existsSync(join(dir, 'slow-started'));
    const slow = async (m: string) => {
      rmSync(join(dir, 'slow-started'), { force: true });
      let pid = 0;
      const done = run(shim, ['custom-action', '--network-id', a, '--action', 'slow', '--action-params', params(m)], { env, started: (p) => { pid = p.pid!; } });
      await until('the slow hook', slowStarted);
      return { done, pid };
    };
    const natA = ['--network-id', a, '--public-ip', '203.0.113.47', '--private-ip', '10.4.5.11'];
    const natB = ['--network-id', b, '--public-ip', '203.0.113.48', '--private-ip', '10.4.6.11'];
    const mark = (id: string, m: string) => ['custom-action', '--network-id', id, '--action', 'mark', '--action-params', params(m)];

    // 1. parallel: router A's hook runs; commands for A (queued behind it) and B (not) all answered, none lost
    const s1 = await slow('s1');
    const parallel = await Promise.all([
      viaShim('add-static-nat', ...natA), viaShim('add-static-nat', ...natB),
      ...[1, 2, 3].flatMap((i) => [viaShim(...mark(a, `a${i}`)), viaShim(...mark(b, `b${i}`))]),
    ]);
    for (const r of [...parallel, await s1.done]) ok(r, 'parallel');
    assert.equal([dnatTo(nsA, '10.4.5.11'), dnatTo(nsB, '10.4.6.11')], [['203.0.113.47 : 10.4.5.11'], ['203.0.113.48 : 10.4.6.11']], 'both static NATs in their routers\' tables');
    assert.equal(marks(dir), [params('s1'), ...[1, 2, 3].flatMap((i) => [params(`a${i}`), params(`b${i}`)])].sort());

    // 2. a client killed mid-command: the command still completes, its lock is released, the next one runs after it
    const s2 = await slow('s2');
    process.kill(s2.pid, 'SIGKILL');
    assert.is((await s2.done).signal, 'SIGKILL');
    ok(await viaShim('delete-static-nat', ...natA), 'after the killed client');
    assert.equal(dnatTo(nsA, '10.4.5.11'), [], 'static NAT deleted');
    assert.ok(marks(dir).includes(params('s2')), 'the killed client\'s command completed');

    // 3. the engine killed mid-command: its client is told (exit 2, never a second run); the next command runs
    // without it (the shim's fallback), then a restarted engine serves
    const s3 = await slow('s3');
    process.kill(srv.pid, 'SIGKILL');
    const lostOne = await s3.done;
    assert.is(lostOne.code, 2, lostOne.stderr);
    assert.match(lostOne.stderr, /may or may not have been applied/);
    assert.is(pidsWhere((p) => p.argv.includes('30.3')).length, 1, 'the dead engine\'s hook goes on running (the case is real)');
    ok(await viaShim('add-static-nat', ...natA), 'without an engine');
    assert.equal(pidsWhere((p) => p.argv.includes('30.3')), [], 'the next command of router A killed what the dead engine\'s hook left');
    assert.is.not(lastRunner(log), srv.pid);
    assert.equal(dnatTo(nsA, '10.4.5.11'), ['203.0.113.47 : 10.4.5.11']);
    srv2 = await serve(dir);
    ok(await viaShim('delete-static-nat', ...natA), 'restarted engine');
    assert.is(lastRunner(log), srv2.pid, 'the restarted engine serves (stale socket and port file replaced)');
    assert.equal(dnatTo(nsA, '10.4.5.11'), []);
    // a second engine for the same socket refuses; the first one goes on serving
    const twin = await run(process.execPath, [CJS, 'serve', '--socket', srv2.socket, '--no-watchdog'], { killAfterMs: 60_000 });
    assert.is(twin.code, 2, twin.stderr);
    assert.match(twin.stderr, /another resident engine is starting or serving on /);
    ok(await viaShim(...mark(b, 'last')), 'after the twin');
    assert.is(lastRunner(log), srv2.pid);

    // no command of router A ran while a slow hook held it (its NAT looked the same at the hook's start and end);
    // s3's hook never got to its end: the next command of router A killed it (hook-runner.ts)
    const order = readFileSync(join(dir, 'order'), 'utf8').trim().split('\n');
    assert.equal(order.map((l) => l.split(' ')[0]), [params('s1'), params('s2')]);
    for (const l of order) assert.match(l, /^\S+ (\d+) \1$/, `a command of router A overlapped the hook: ${l}`);
    for (const r of [...[1, 2, 3].map((i) => viaShim(...mark(a, `x${i}`)))]) ok(await r, 'after');
    ok(await viaShim('destroy-network', '--network-id', a), 'destroy A');
    ok(await viaShim('destroy-network', '--network-id', b), 'destroy B');
  } finally {
    if (srv && srv.proc.exitCode === null && srv.proc.signalCode === null) await srv.stop();
    if (srv2) await srv2.stop();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A shim whose engine is `engine` (a fake listening on loopback): the port file names it as a live engine would
 * (this process's pid and start time), the shim's hooks are hookedState's.
 */
function shimTo(dir: string, engine: Server): { shim: string; env: NodeJS.ProcessEnv } {
  const run0 = join(dir, 'run');
  mkdirSync(run0, { mode: 0o700 });
  const stat = readFileSync('/proc/self/stat', 'utf8');
  writeFileSync(join(run0, 'engine.tcp'), `${(engine.address() as { port: number }).port} ${'a'.repeat(48)} ${process.pid} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}\n`);
  const g = ['--state-dir', hookedState(dir), '--log-file', join(dir, 'log')];
  const env = { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: join(run0, 'engine.sock') };
  return { shim: installShim(join(dir, 'root'), 'hostileext', g, { ...env, NETNS_ROUTER_ENGINE_SOCKET: 'off' }), env };
}

test('a faulty engine: an answer cut short is exit 2 from the shim, never the exit code of half an answer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-hostile-cut-'));
  // an engine that says "done, 100 bytes of output" and closes after 10 (killed while it wrote its answer)
  const cut = createServer((c) => {
    let got = '';
    c.on('error', () => {});
    c.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      const v2 = /^netns-router-shim-[23]\0/.test(got);
      if (!got.includes('ok-sent') && got.includes('\0')) { got += 'ok-sent'; c.write('ok\n'); if (!v2) c.end('0 100 0\n0123456789'); }
      if (v2 && got.endsWith('go\n')) c.end('0 100 0\n0123456789');
    });
  });
  await new Promise<void>((res) => cut.listen(0, '127.0.0.1', () => res()));
  try {
    const { shim, env } = shimTo(dir, cut);
    const r = await run(shim, ['custom-action', '--network-id', '5', '--action', 'mark', '--action-params', params('x')], { env });
    assert.is(r.code, 2, `${r.stdout} ${r.stderr}`);
    assert.match(r.stderr, /may or may not have been applied/);
    assert.equal(marks(dir), [], 'the shim did not run it itself (the engine had taken it)');
  } finally {
    cut.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a hung engine: the shim gives up 10 s after the time limit the engine announced (exit 2, never a local run); one that answers in time is heard', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-hostile-hung-'));
  // a fake engine: takes the command ("run 1": one second left of its time limit), then answers — or never does
  let answer = true;
  const fake = createServer((c) => {
    let got = '';
    c.on('error', () => {});
    c.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (!got.includes('ok-sent') && got.includes('\0') && got.endsWith('\0') && /^netns-router-shim-3\0/.test(got)) { got += 'ok-sent'; c.write('ok\n'); }
      if (got.endsWith('go\n')) {
        c.write('run 1\n');
        if (answer) c.end('0 6 0\nhello\n');
      }
    });
  });
  await new Promise<void>((res) => fake.listen(0, '127.0.0.1', () => res()));
  try {
    const { shim, env } = shimTo(dir, fake);
    const args = ['custom-action', '--network-id', '5', '--action', 'mark', '--action-params', params('x')];
    // control: an engine that answers within its time limit is heard (the shim waits for the answer after "run")
    const heard = await run(shim, args, { env });
    assert.is(heard.code, 0, heard.stderr);
    assert.is(heard.stdout, 'hello\n');
    answer = false;
    const r = await run(shim, args, { env, killAfterMs: 60_000 });
    assert.is(r.code, 2, `${r.stdout} ${r.stderr}`);
    assert.match(r.stderr, /the resident engine did not answer within 11 s; the command may or may not have been applied/);
    assert.equal(marks(dir), [], 'the shim did not run it itself (the engine had taken it)');
  } finally {
    fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('peer credentials: with the socket opened up by hand, another user is refused before anything is read; root is served', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-hostile-peer-'));
  let srv: Served | undefined;
  try {
    srv = await serve(dir, { args: ['--no-watchdog'] });
    // the mistake this guards against: the socket made reachable for everyone (the engine checks its directory at start)
    chmodSync(dir, 0o711);
    chmodSync(dirname(srv.socket), 0o711);
    chmodSync(srv.socket, 0o666);
    // a client that sends a malformed request and prints whatever comes back before the engine closes
    const client = `const s = require('net').connect(${JSON.stringify(srv.socket)}); let got = '';
      s.on('data', (d) => { got += d; }); s.on('error', (e) => { got += 'ERR ' + e.code; });
      s.on('close', () => { process.stdout.write(JSON.stringify(got)); }); s.write('{}\\n');`;
    const asRoot = spawnSync(process.execPath, ['-e', client], { encoding: 'utf8', timeout: 20_000 });
    assert.match(JSON.parse(asRoot.stdout), /malformed request/, 'control: root is answered');
    const asNobody = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', client], { encoding: 'utf8', timeout: 20_000 });
    assert.is(asNobody.status, 0, asNobody.stderr);
    // it connects (the mode allows it: no EACCES) and gets no answer, only the connection closed or reset
    assert.match(JSON.parse(asNobody.stdout), /^(|ERR ECONNRESET|ERR EPIPE)$/, 'another user gets nothing');
    const said = () => /refused a connection from uid 65534 /.test(srv!.stderr());
    for (let i = 0; i < 100 && !said(); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(said(), `the engine says whom it refused: ${srv.stderr()}`);
  } finally {
    if (srv) await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two engines started at the same moment: the socket\'s lock admits one; it goes with the process', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-twin-'));
  let srv: Served | undefined;
  let fd: number | undefined;
  try {
    const socket = join(dir, 'run', 'engine.sock');
    mkdirSync(dirname(socket), { mode: 0o700 });
    // the lock held as an engine starting holds it (before it listens): a second one refuses, whatever it finds
    fd = openSync(`${socket}.lock`, 'a', 0o600);
    assert.ok(tryFlock(fd, LOCK_EX));
    const refused = await run(process.execPath, [CJS, 'serve', '--socket', socket, '--no-watchdog'], { killAfterMs: 60_000 });
    assert.is(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /another resident engine is starting or serving on /);
    assert.not.ok(existsSync(socket), 'it did not listen');
    closeSync(fd);
    fd = undefined;
    // positive control: the same start once the lock is free
    srv = await serve(dir, { socket, args: ['--no-watchdog'] });
    // an engine killed -9 leaves the lock file, not the lock
    srv.proc.kill('SIGKILL');
    await srv.stop();
    srv = await serve(dir, { socket, args: ['--no-watchdog'] });
    assert.ok(existsSync(socket));
  } finally {
    if (fd !== undefined) closeSync(fd);
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
