/**
 * The resident engine (`netns-router serve`) and its two clients: the netns-router command (unix socket) and
 * the extension's wrapper shim (bash, loopback port). Real kernel, real traffic: what the resident engine
 * applies must work exactly as when the CLI runs the command itself, and every case where it must not be used
 * (no server, wrong token, another network namespace) must fall back to running the command locally.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Scratch, addVm, simulatedHost, uid } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { servers, serversUp, tcpOk } from '../helpers/fw.js';
import { ShimRequestReader, shimReply, shimRunning, SHIM_MAGIC, SHIM_MAGIC_V1, SHIM_MAGIC_V2 } from '../../cli/shim-wire.js';
import { CJS, installShim, lastRunner, serve, type Served } from '../helpers/resident.js';

requireSandbox();

test('resident engine: commands through the netns-router command and the wrapper shim apply for real; bad input exit 1; fallbacks run locally', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-resident-'));
  const id = String(2000 + (parseInt(uid(4), 16) % 7000));
  const ns = s.track(`cs-net-${id}`);
  const procs: ChildProcess[] = [];
  let srv: Served | undefined;
  try {
    const { hostNs, upNs, h } = simulatedHost(s);
    srv = await serve(dir);
    const log = join(dir, 'log');
    const g = ['--host-netns', hostNs, '--state-dir', join(dir, 'state'), '--log-file', log];
    const env = { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: srv.socket };
    const cli = (...a: string[]) => spawnSync(process.execPath, [CJS, ...a, ...g], { encoding: 'utf8', timeout: 30_000, env });
    const ok = (r: ReturnType<typeof cli>) => assert.is(r.status, 0, r.stderr);

    // through the netns-router command (unix socket)
    const vni = 4000 + (Number(id) % 1000);
    ok(cli('implement-network', '--network-id', id, '--vlan', `vxlan://${vni}`, '--gateway', '10.4.5.1', '--cidr', '10.4.5.0/24'));
    assert.is(lastRunner(log), srv.pid, 'implement-network ran in the resident engine');
    ok(cli('assign-ip', '--network-id', id, '--public-ip', '203.0.113.45', '--public-vlan', 'untagged', '--public-gateway', '203.0.113.1', '--public-cidr', '203.0.113.0/24', '--source-nat', 'true'));
    const vm = addVm(s, h, `brvx-${vni}`, '10.4.5.10/24', '10.4.5.1');
    procs.push(...servers(vm.ns, [8080, 8081], []));
    assert.ok(await serversUp(vm.ns, [8080, 8081], []));
    for (const [pub, priv] of [['80', '8080'], ['81', '8081']]) {
      ok(cli('add-port-forward', '--network-id', id, '--public-ip', '203.0.113.45', '--public-port', pub, '--private-ip', '10.4.5.10', '--private-port', priv, '--protocol', 'tcp'));
    }
    assert.ok(!tcpOk(upNs, '203.0.113.45', 80) && !tcpOk(upNs, '203.0.113.45', 81), 'closed until a firewall rule opens them');
    const both = { default_egress_allow: true, rules: [80, 81].map((p) => ({ id: p, type: 'ingress', protocol: 'tcp', portStart: p, publicIp: '203.0.113.45' })) };
    ok(cli('apply-fw-rules', '--network-id', id, '--fw-rules', Buffer.from(JSON.stringify(both)).toString('base64')));
    assert.ok(tcpOk(upNs, '203.0.113.45', 80) && tcpOk(upNs, '203.0.113.45', 81), 'port forwards work');

    // through the wrapper shim (bash → loopback port), payload-file form with a relative path
    const root = join(dir, 'root');
    const inst = spawnSync(process.execPath, [CJS, 'install-wrapper', '--extension', 'residentext', '--root', root, '--script', CJS, ...g], { encoding: 'utf8', env });
    assert.is(inst.status, 0, inst.stderr);
    const shim = join(root, 'etc/cloudstack/extensions/residentext/residentext-wrapper.sh');
    writeFileSync(join(dir, 'fw.json'), JSON.stringify({
      'physical-network-extension-details': { 'public.network.device': 'eth1', 'guest.network.device': 'eth1' },
      payload: { network_id: id, fw_rules: { default_egress_allow: true, rules: [{ id: 1, type: 'ingress', protocol: 'tcp', portStart: 80, portEnd: 80, publicIp: '203.0.113.45', sourceCidrs: ['0.0.0.0/0'] }] } },
    }));
    const viaShim = (...a: string[]) => spawnSync(shim, a, { encoding: 'utf8', timeout: 30_000, env, cwd: dir });
    let r = viaShim('apply-fw-rules', 'fw.json', '30');
    assert.is(r.status, 0, r.stderr);
    assert.is(lastRunner(log), srv.pid, 'the shim handed the command to the resident engine');
    assert.ok(tcpOk(upNs, '203.0.113.45', 80), 'allowed port');
    assert.not.ok(tcpOk(upNs, '203.0.113.45', 81), 'filtered port (rules applied by the resident engine)');

    // output and exit codes come back as the CLI would give them
    r = viaShim('custom-action', '--network-id', id, '--action', 'list-firewall-rules');
    assert.is(r.status, 0, r.stderr);
    assert.is((JSON.parse(r.stdout) as { status: string }).status, 'success');
    const stateFile = join(dir, 'state', 'routers', `${ns}.json`);
    const before = readFileSync(stateFile, 'utf8');
    r = viaShim('apply-fw-rules', '--network-id', id, '--fw-rules', Buffer.from(JSON.stringify({ rules: [{ type: 'ingress', protocol: 'tcp', portStart: 70000, publicIp: '203.0.113.45' }] })).toString('base64'));
    assert.is(r.status, 1, 'bad port: usage error');
    assert.match(r.stderr, /portStart/);
    assert.is(r.stdout, '');
    r = cli('apply-fw-rules', '--network-id', id, '--fw-rules', '%%%');
    assert.is(r.status, 1, 'bad base64 through the unix socket: usage error');
    assert.is(readFileSync(stateFile, 'utf8'), before, 'nothing changed');
    assert.not.ok(tcpOk(upNs, '203.0.113.45', 81), 'still filtered');

    // fallbacks: a wrong token, another network namespace, no engine — each runs the command itself
    // (the port file of a socket path that has no engine behind it: the shim's own fallback, node, finds no
    // socket there either and runs the command in its process)
    const tcpFile = join(dirname(srv.socket), 'engine.tcp');
    const good = readFileSync(tcpFile, 'utf8');
    const elsewhere = join(dir, 'other-run');
    mkdirSync(elsewhere);
    const [port, , enginePid, engineStart] = good.trim().split(' ');
    assert.is(enginePid, String(srv.pid), 'engine.tcp names the engine process');
    writeFileSync(join(elsewhere, 'engine.tcp'), `${port} ${'0'.repeat(48)} ${enginePid} ${engineStart}\n`);
    const elsewhereEnv = { ...env, NETNS_ROUTER_ENGINE_SOCKET: join(elsewhere, 'engine.sock') };
    r = spawnSync(shim, ['custom-action', '--network-id', id, '--action', 'list-firewall-rules'], { encoding: 'utf8', env: elsewhereEnv });
    assert.is(r.status, 0, r.stderr);
    assert.is.not(lastRunner(log), srv.pid, 'wrong token: the shim ran netns-router itself');
    // the port file of a dead engine: whatever listens on that port now never hears from the shim
    const squatter = createServer((c) => { squatted++; c.destroy(); });
    let squatted = 0;
    await new Promise<void>((res) => squatter.listen(0, '127.0.0.1', () => res()));
    try {
      const gone = spawnSync('true');
      const squatPort = (squatter.address() as { port: number }).port;
      for (const [pid, start] of [[String(gone.pid), engineStart], [enginePid, String(Number(engineStart) + 1)]]) {
        writeFileSync(join(elsewhere, 'engine.tcp'), `${squatPort} ${good.trim().split(' ')[1]} ${pid} ${start}\n`);
        // (asynchronously: the squatter lives in this process and must be able to answer)
        const code = await new Promise<number | null>((res) => {
          const p = spawn(shim, ['custom-action', '--network-id', id, '--action', 'list-firewall-rules'], { env: elsewhereEnv, stdio: 'ignore' });
          const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
          p.on('exit', (c) => { clearTimeout(t); res(c); });
        });
        assert.is(code, 0);
        assert.is.not(lastRunner(log), srv.pid);
      }
      assert.is(squatted, 0, 'no connection to a port whose engine is not alive');
    } finally {
      squatter.close();
    }
    r = spawnSync('ip', ['netns', 'exec', upNs, process.execPath, CJS, 'custom-action', '--network-id', id, '--action', 'list-firewall-rules', ...g], { encoding: 'utf8', env });
    assert.is(r.status, 0, r.stderr);
    assert.is.not(lastRunner(log), srv.pid, 'a client in another network namespace runs the command itself');
    r = cli('custom-action', '--network-id', id, '--action', 'list-firewall-rules');
    assert.is(lastRunner(log), srv.pid, 'and the engine serves again');

    // commands of one router serialise on its lock, also inside one engine: ten concurrent applies all land
    const docs = Array.from({ length: 10 }, (_, i) => ({ default_egress_allow: true, rules: [{ id: i, type: 'ingress', protocol: 'tcp', portStart: 80 + (i % 2), portEnd: 80 + (i % 2), publicIp: '203.0.113.45' }] }));
    const runs = docs.map((d) => new Promise<number | null>((res) => {
      const p = spawn(process.execPath, [CJS, 'apply-fw-rules', '--network-id', id, '--fw-rules', Buffer.from(JSON.stringify(d)).toString('base64'), ...g], { env, stdio: 'ignore' });
      p.on('exit', (c) => res(c));
    }));
    assert.equal(await Promise.all(runs), docs.map(() => 0));
    r = cli('apply-fw-rules', '--network-id', id, '--fw-rules', Buffer.from(JSON.stringify(docs[1])).toString('base64'));
    assert.is(r.status, 0, r.stderr);
    assert.ok(tcpOk(upNs, '203.0.113.45', 81) && !tcpOk(upNs, '203.0.113.45', 80), 'the last document rules');

    // a long-lived process must not leak: descriptors stay flat over many commands (log files, netlink and
    // nftables handles are closed or reused)
    const fds = () => readdirSync(`/proc/${srv!.pid}/fd`).length;
    const fdsBefore = fds();
    for (let i = 0; i < 15; i++) {
      r = viaShim('apply-fw-rules', '--network-id', id, '--fw-rules', Buffer.from(JSON.stringify(docs[i % 2])).toString('base64'));
      assert.is(r.status, 0, r.stderr);
    }
    assert.ok(fds() <= fdsBefore + 2, `descriptors ${fdsBefore} → ${fds()}`);

    // SIGTERM: finishes, removes its socket and port file; the clients then run commands themselves
    assert.is(await srv.stop(), 0, srv.stderr());
    assert.not.ok(existsSync(srv.socket) || existsSync(tcpFile), 'socket and port file removed');
    r = viaShim('custom-action', '--network-id', id, '--action', 'list-firewall-rules');
    assert.is(r.status, 0, r.stderr);
    r = cli('destroy-network', '--network-id', id);
    assert.is(r.status, 0, r.stderr);
    assert.is.not(lastRunner(log), srv.pid);
  } finally {
    for (const p of procs) p.kill();
    if (srv) await srv.stop();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('resident engine: custom-action hooks run without blocking other commands; a hook past the deadline is killed (exit 2)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-resident-hooks-'));
  let srv: Served | undefined;
  try {
    srv = await serve(dir);
    const state = join(dir, 'state');
    mkdirSync(join(state, 'hooks'), { recursive: true });
    // upstream's hook arguments: --network-id <id> --action <name> --action-params <json>
    writeFileSync(join(state, 'hooks', 'custom-action-hello.sh'), '#!/bin/sh\necho "hello $2 $4 $NETNS_ROUTER_NAMESPACE $6"\n', { mode: 0o755 });
    writeFileSync(join(state, 'hooks', 'custom-action-slow.sh'), `#!/bin/sh\nsleep 5\necho late > ${join(dir, 'late')}\n`, { mode: 0o755 });
    const g = ['--state-dir', state, '--log-file', join(dir, 'log')];
    const env = { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: srv.socket };
    const run = (...a: string[]) => new Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>((res) => {
      const t0 = Date.now();
      const p = spawn(process.execPath, [CJS, ...a, ...g], { env });
      let stdout = '';
      let stderr = '';
      p.stdout!.on('data', (c: Buffer) => { stdout += c.toString(); });
      p.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
      p.on('exit', (code) => res({ code, stdout, stderr, ms: Date.now() - t0 }));
    });
    const hello = await run('custom-action', '--network-id', '7', '--action', 'hello', '--action-params', '{"a":1}');
    assert.is(hello.code, 0, hello.stderr);
    assert.is(hello.stdout, `${JSON.stringify({ status: 'success', printmessage: 'true', message: 'hello 7 hello cs-net-7 {"a":1}' })}\n`);
    assert.is(lastRunner(join(dir, 'log')), srv.pid);

    const slow = run('custom-action', '--network-id', '8', '--action', 'slow', '--timeout', '1');
    await new Promise((r) => setTimeout(r, 300));
    const other = await run('custom-action', '--network-id', '9', '--action', 'hello');
    assert.is(other.code, 0, other.stderr);
    assert.ok(other.ms < 900, `another router's command was not held up by the running hook (${other.ms} ms)`);
    const s = await slow;
    assert.is(s.code, 2, s.stderr);
    assert.match(s.stderr, /timed out/);
    await new Promise((r) => setTimeout(r, 5500));
    assert.not.ok(existsSync(join(dir, 'late')), 'the hook was killed at the deadline');
  } finally {
    if (srv) await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('shim wire: requests split anywhere parse the same; malformed ones are refused; replies count bytes', () => {
  const fields = [SHIM_MAGIC, 'tok', '/x/netns-router.cjs', '/tmp/dir', '/etc/w.sh', '3', 'apply-fw-rules', 'päyload.json', '', '2', 'CS_A={"x": "y=z"}', 'NETNS_ROUTER_LOG_LEVEL=debug'];
  const buf = Buffer.from(fields.map((f) => `${f}\0`).join(''));
  for (const cut of [1, 7, 20, buf.length - 1]) {
    const rd = new ShimRequestReader(1 << 20);
    assert.is(rd.push(buf.subarray(0, cut)), undefined);
    const req = rd.push(buf.subarray(cut));
    assert.equal(req, { token: 'tok', script: '/x/netns-router.cjs', cwd: '/tmp/dir', invokedAs: '/etc/w.sh', argv: ['apply-fw-rules', 'päyload.json', ''], env: { CS_A: '{"x": "y=z"}', NETNS_ROUTER_LOG_LEVEL: 'debug' }, handshake: true, announce: true });
  }
  // the older shims: v2 shakes hands but reads no "run" line; v1 does neither
  for (const [magic, handshake, announce] of [[SHIM_MAGIC_V2, true, false], [SHIM_MAGIC_V1, false, false]] as const) {
    const req = new ShimRequestReader(1 << 20).push(Buffer.from([magic, ...fields.slice(1)].map((f) => `${f}\0`).join('')));
    assert.equal([req?.handshake, req?.announce], [handshake, announce], magic);
  }
  assert.is(shimRunning(10_500, 1_000), 'run 10\n', 'the seconds left, rounded up');
  assert.is(shimRunning(500, 1_000), 'run 0\n', 'never negative');
  assert.throws(() => new ShimRequestReader(1 << 20).push(Buffer.from('GET / HTTP/1.1\r\n\0')), /not a shim request/);
  assert.throws(() => new ShimRequestReader(1 << 20).push(Buffer.from(`${SHIM_MAGIC}\0t\0s\0c\0i\0x\0`)), /bad argc/);
  assert.throws(() => new ShimRequestReader(1 << 20).push(Buffer.from(`${SHIM_MAGIC}\0t\0s\0c\0i\x000\x001\0NOEQUALS\0`)), /environment/);
  assert.throws(() => new ShimRequestReader(16).push(buf), /too large/);
  assert.equal(shimReply(1, 'ü\n', ''), Buffer.from('1 3 0\nü\n'));
});

test('resident engine: a wrapper shim of an older build is served, and the engine says once per wrapper to install it again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-oldshim-'));
  let srv: Served | undefined;
  try {
    srv = await serve(dir);
    const env = { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: srv.socket };
    const g = ['--state-dir', join(dir, 'state'), '--log-file', join(dir, 'log')];
    const current = installShim(join(dir, 'root'), 'newext', g, env);
    const old = installShim(join(dir, 'root'), 'oldext', g, env);
    // what install-wrapper of the previous build wrote: protocol 2 (the answer read without a "run" line first)
    writeFileSync(old, readFileSync(old, 'utf8').replace(SHIM_MAGIC, SHIM_MAGIC_V2));
    const bad = ['apply-fw-rules', '--network-id', '7', '--fw-rules', '%%%'];
    for (const shim of [old, old, current]) {
      const r = spawnSync(shim, bad, { encoding: 'utf8', timeout: 30_000, env });
      assert.is(r.status, 1, `${shim}: bad input, exit 1 (${r.stderr})`);
      assert.match(r.stderr, /--fw-rules/);
      assert.is(lastRunner(join(dir, 'log')), srv.pid, 'run by the resident engine');
    }
    // all the engine said: its standard error read to the end (spawnSync kept this process's loop from reading it)
    await srv.stop();
    const stream = srv.proc.stderr!;
    if (!stream.readableEnded) await new Promise((res) => { stream.once('end', res); });
    const told = srv.stderr().split('\n').filter((l) => l.includes('is of an older build'));
    assert.is(told.length, 1, `said once: ${srv.stderr()}`);
    assert.ok(told[0].includes(old) && told[0].includes('no time limit of its own') && told[0].includes('install-wrapper'), told[0]);
    assert.not.ok(srv.stderr().includes(current), 'nothing said of the current shim');
  } finally {
    if (srv) await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
