/** runCli: exit codes, output, time limit, router lock, secret-free logs, install-wrapper. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { SystemError, UsageError } from '../../lib/util/errors.js';
import { tryAcquireRouterLock } from '../../lib/router/state/lock.js';
import { SHIM_MARKER } from '../../lib/router/contract/install-wrapper.js';
import { packageVersion, runCli } from '../../cli/run.js';
import { TempDir, cli } from './helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();

const MAIN = new URL('../../cli/main.js', import.meta.url).pathname;

test('version, help, help <command>', async () => {
  const dir = new TempDir('run');
  try {
    const v = await cli(['version'], dir);
    assert.is(v.code, 0);
    assert.is(v.stdout, `netns-router ${packageVersion()}\n`);
    assert.match(packageVersion(), /^\d+\.\d+\.\d+/);
    const h = await cli(['help'], dir);
    assert.is(h.code, 0);
    assert.match(h.stdout, /Commands:[\s\S]*implement-network[\s\S]*install-wrapper/);
    const hc = await cli(['help', 'add-port-forward'], dir);
    assert.is(hc.code, 0);
    assert.match(hc.stdout, /--public-port <value>/);
    assert.not.match(hc.stdout, /--vm-data/, 'unrelated options are hidden');
    const hh = await cli(['add-port-forward', '--help'], dir);
    assert.is(hh.code, 0);
    assert.match(hh.stdout, /--private-port/);
    const bad = await cli(['help', 'nope'], dir);
    assert.is(bad.code, 1);
    assert.match(bad.stderr, /unknown command 'nope'/);
  } finally {
    dir.cleanup();
  }
});

test('exit codes: engine missing 2, UsageError 1, SystemError 2, other errors 2; stdout passed through', async () => {
  const dir = new TempDir('run');
  try {
    let stderr = '';
    const code = await runCli(['implement-network', '--network-id', '1'], {
      env: { NETNS_ROUTER_STATE_DIR: dir.join('s'), NETNS_ROUTER_LOG_FILE: dir.join('l') }, stderr: (s) => { stderr += s; },
    });
    assert.is(code, 2);
    assert.is(stderr, 'netns-router: implement-network: no router engine given (runCli without an api)\n');

    const u = await cli(['add-static-nat', '--network-id', '1', '--public-ip', '1.2.3.4', '--private-ip', '10.0.0.1'], dir, {
      behaviour: () => { throw new UsageError('public IP 1.2.3.4 is not assigned to network 1', '--public-ip'); },
    });
    assert.is(u.code, 1);
    assert.is(u.stderr, 'netns-router: add-static-nat: public IP 1.2.3.4 is not assigned to network 1\n');

    const s = await cli(['implement-network', '--network-id', '1'], dir, {
      behaviour: () => { throw new SystemError('creating veth vh-100-1: File exists (EEXIST)', { kernelText: 'File exists', errnoCode: 'EEXIST' }); },
    });
    assert.is(s.code, 2);
    assert.match(s.stderr, /File exists \(EEXIST\)/);

    const x = await cli(['implement-network', '--network-id', '1'], dir, { behaviour: () => { throw new TypeError('oops'); } });
    assert.is(x.code, 2);
    assert.is(x.stderr, 'netns-router: implement-network: internal error: oops\n');

    const o = await cli(['custom-action', '--network-id', '1', '--action', 'pbr-list-tables'], dir, {
      behaviour: () => ({ stdout: '{"status":"success","printmessage":"true","message":[]}' }),
    });
    assert.is(o.code, 0);
    assert.is(o.stdout, '{"status":"success","printmessage":"true","message":[]}\n');
  } finally {
    dir.cleanup();
  }
});

test('the context carries settings, devices, details and the deadline', async () => {
  const dir = new TempDir('run');
  try {
    const t0 = Date.now();
    const r = await cli(['implement-network', '--network-id', '1', '--timeout', '20', '--host-netns', 'hostns',
      '--physical-network-extension-details', '{"public.network.device":"bond1","password":"x"}'], dir);
    assert.is(r.code, 0);
    const ctx = r.calls[0].ctx;
    assert.equal(ctx.settings, { extension: 'network-namespace', stateDir: dir.join('state'), logFile: dir.join('router.log'), hostNetns: 'hostns', logLevel: 'info', timeoutSeconds: 20 });
    assert.equal(ctx.devices, { guest: 'eth1', public: 'bond1' });
    assert.equal(ctx.details, { physicalNetwork: { 'public.network.device': 'bond1', password: 'x' }, network: {} });
    assert.ok(ctx.deadline >= t0 + 20_000 && ctx.deadline <= Date.now() + 20_000);
    assert.not.ok(ctx.signal.aborted);
  } finally {
    dir.cleanup();
  }
});

test('the time limit: a slow engine is cut off with exit 2 and a clear message', async () => {
  const dir = new TempDir('run');
  try {
    let sawAbort = false;
    const t0 = Date.now();
    const r = await cli(['implement-network', '--network-id', '1', '--timeout', '0.3'], dir, {
      behaviour: (_m, _r, ctx) => new Promise((resolve) => {
        ctx.signal.addEventListener('abort', () => { sawAbort = true; resolve(); });
      }),
    });
    const took = Date.now() - t0;
    assert.is(r.code, 2);
    assert.is(r.stderr, 'netns-router: implement-network: timed out after 0.3 s\n');
    assert.ok(sawAbort, 'the engine is told through ctx.signal');
    assert.ok(took >= 280 && took < 3000, `took ${took} ms`);
    // payload-file form: the third argument is the limit
    const p = dir.file('p.json', { payload: { network_id: '1' } });
    const r2 = await cli(['shutdown-network', p, '0.2'], dir, {
      behaviour: (_m, _r, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve())),
    });
    assert.is(r2.code, 2);
    assert.match(r2.stderr, /timed out after 0\.2 s/);
  } finally {
    dir.cleanup();
  }
});

test('the router lock is held during the call (per network, per VPC), and a busy router times out', async () => {
  const dir = new TempDir('run');
  const state = dir.join('state');
  try {
    let heldNet: boolean | undefined;
    const r = await cli(['assign-ip', '--network-id', '42', '--public-ip', '203.0.113.5', '--public-vlan', '101'], dir, {
      behaviour: () => {
        const probe = tryAcquireRouterLock(state, { kind: 'network', networkId: '42' });
        heldNet = probe === undefined;
        probe?.release();
      },
    });
    assert.is(r.code, 0);
    assert.ok(heldNet, 'lock-network-42 held during assignIp');

    let heldVpc: boolean | undefined;
    let netFree: boolean | undefined;
    await cli(['implement-network', '--network-id', '42', '--vpc-id', '7'], dir, {
      behaviour: () => {
        const v = tryAcquireRouterLock(state, { kind: 'vpc', vpcId: '7' });
        heldVpc = v === undefined;
        v?.release();
        const n = tryAcquireRouterLock(state, { kind: 'network', networkId: '42' });
        netFree = n !== undefined;
        n?.release();
      },
    });
    assert.ok(heldVpc, 'a VPC tier locks its VPC');
    assert.ok(netFree, '… not the tier network');

    const busy = tryAcquireRouterLock(state, { kind: 'network', networkId: '42' })!;
    try {
      const b = await cli(['release-ip', '--network-id', '42', '--public-ip', '203.0.113.5', '--timeout', '0.3'], dir);
      assert.is(b.code, 2);
      assert.match(b.stderr, /release-ip: timed out after 0\.\d s waiting for the lock of network 42/);
      assert.is(b.calls.length, 0, 'the engine is not called without the lock');
      const other = await cli(['release-ip', '--network-id', '43', '--public-ip', '203.0.113.5', '--timeout', '0.3'], dir);
      assert.is(other.code, 0, 'another network is not blocked');
      const st = await cli(['status'], dir);
      assert.is(st.code, 0, 'status without ids takes no lock');
    } finally {
      busy.release();
    }
  } finally {
    dir.cleanup();
  }
});

test('logs: JSON lines, directories created, secrets never written (success and failure paths)', async () => {
  const dir = new TempDir('run');
  try {
    const log = dir.join('deep', 'er', 'netns.log');
    const env = { NETNS_ROUTER_LOG_FILE: log, CS_PHYSICAL_NETWORK_EXTENSION_DETAILS: '{"sshkey":"-----BEGIN OPENSSH PRIVATE KEY-----SECRET-A","password":"SECRET-B","auth_token":"SECRET-K","guest.network.device":"eth1"}',
      CS_NETWORK_EXTENSION_DETAILS: '{"credentials":{"user":"u","pass":"SECRET-L"},"vm-filter":"false"}' };
    const secrets = ['SECRET-A', 'SECRET-B', 'SECRET-C', 'SECRET-D', 'SECRET-E', 'SECRET-F', 'SECRET-G', 'SECRET-H', 'SECRET-I', 'SECRET-J', 'SECRET-K', 'SECRET-L'];
    const runs: string[][] = [
      ['save-password', '--network-id', '1', '--ip', '10.0.0.5', '--password', 'SECRET-C'],
      ['save-userdata', '--network-id', '1', '--ip', '10.0.0.5', '--userdata', '#cloud-config\npassword: SECRET-D'],
      ['save-sshkey', '--network-id', '1', '--ip', '10.0.0.5', '--sshkey', 'ssh-rsa SECRET-E'],
      ['save-vm-data', '--network-id', '1', '--ip', '10.0.0.5', '--vm-data', JSON.stringify([{ dir: 'password', file: 'vm_password', content: 'SECRET-F' }])],
      ['restore-network', '--network-id', '1', '--restore-data', Buffer.from(JSON.stringify({ vms: [{ ip: '10.0.0.5', vm_data: [{ content: 'SECRET-G' }] }] })).toString('base64')],
      ['custom-action', '--network-id', '1', '--action', 'x', '--action-params', '{"nested":{"password":"SECRET-H"}}'],
      // failing after parse, with secrets in the request
      ['save-password', '--network-id', '1', '--ip', '10.0.0.5', '--password', 'SECRET-I'],
      // failing in parse, with a secret on the command line
      ['save-password', '--network-id', '1', '--ip', '10.0.0.300', '--password', 'SECRET-J'],
    ];
    for (const [i, argv] of runs.entries()) {
      const fail = i === 6;
      const r = await cli(argv, dir, { env, behaviour: fail ? () => { throw new SystemError('engine failed'); } : undefined });
      assert.is(r.code, i === 7 ? 1 : fail ? 2 : 0, `${argv[0]}: ${r.stderr}`);
      for (const s of secrets) assert.not.ok(r.stderr.includes(s), `stderr leaks ${s}`);
    }
    const text = readFileSync(log, 'utf8');
    for (const s of secrets) assert.not.ok(text.includes(s), `log leaks ${s}`);
    const records = text.trim().split('\n').map((l) => JSON.parse(l));
    const starts = records.filter((r) => r.msg === 'command start');
    assert.is(starts.length, 7);
    assert.is(starts[0].request.password, '[redacted]');
    assert.is(starts[0].request.ip, '10.0.0.5', 'non-secret fields stay');
    // the extension details: their names only, whatever their values (an operator's keys are not ours to know)
    assert.equal(starts[0].detailKeys, { physicalNetwork: ['sshkey', 'password', 'auth_token', 'guest.network.device'], network: ['credentials', 'vm-filter'] });
    assert.is(starts[0].details, undefined);
    assert.is(starts[3].request.vmData, '[redacted]');
    assert.is(starts[5].request.actionParams.nested.password, '[redacted]');
    assert.ok(records.some((r) => r.msg === 'command done' && typeof r.durationMs === 'number'));
    assert.ok(records.some((r) => r.msg === 'command failed' && r.err.message === 'engine failed' && r.exitCode === 2));
    assert.is(records.length, 7 + 7, 'start and end of each command that ran; the one that did not parse left no record');
    assert.is(statSync(log).mode & 0o777, 0o640, 'the log file is not world-readable');
  } finally {
    dir.cleanup();
  }
});

test('usage errors go to stderr only (parse time and run time alike); faults are logged as errors, without stacks for ours', async () => {
  const dir = new TempDir('run');
  try {
    // parse time: a typo, a bad value, a missing argument, help: nothing written, not even the log's directory
    const log = dir.join('logs', 'router.log');
    for (const argv of [['frobnicate'], ['implement-network', '--network-id', '1', '--vlan', '99999'], ['add-port-forward', '--network-id', '1'], ['--help'], []]) {
      const r = await cli(argv, dir, { env: { NETNS_ROUTER_LOG_FILE: log } });
      assert.ok(r.code <= 1, argv.join(' '));
      assert.not.ok(existsSync(dir.join('logs')), `${argv.join(' ') || '(nothing)'}: no log written`);
    }
    // positive control: a command that runs is logged at that very path
    const ok = await cli(['status'], dir, { env: { NETNS_ROUTER_LOG_FILE: log } });
    assert.is(ok.code, 0);
    assert.ok(existsSync(log));
    // run time: the engine refuses (usage) or fails (fault); the usage error's text is not logged, its end is, at
    // the level of a command that ended as it should (info); the fault at error level, our error without a stack
    const rejected = await cli(['add-static-nat', '--network-id', '1', '--public-ip', '1.2.3.4', '--private-ip', '10.0.0.1'], dir, {
      env: { NETNS_ROUTER_LOG_FILE: log }, behaviour: () => { throw new UsageError('public IP 1.2.3.4 is not assigned to network 1', '--public-ip'); },
    });
    assert.is(rejected.code, 1);
    assert.match(rejected.stderr, /is not assigned/);
    const failed = await cli(['implement-network', '--network-id', '1'], dir, {
      env: { NETNS_ROUTER_LOG_FILE: log }, behaviour: () => { throw new SystemError('creating veth: File exists (EEXIST)'); },
    });
    assert.is(failed.code, 2);
    const defect = await cli(['implement-network', '--network-id', '1'], dir, {
      env: { NETNS_ROUTER_LOG_FILE: log }, behaviour: () => { throw new TypeError('oops'); },
    });
    assert.is(defect.code, 2);
    const text = readFileSync(log, 'utf8');
    assert.not.ok(text.includes('is not assigned'), 'the usage error\'s text is not logged');
    const records = text.trim().split('\n').map((l) => JSON.parse(l));
    const ends = records.filter((r) => r.msg !== 'command start');
    assert.equal(ends.map((r) => [r.msg, r.level, r.exitCode]), [
      ['command done', 30, 0], ['command rejected', 30, 1], ['command failed', 50, 2], ['command failed', 50, 2],
    ]);
    assert.is(ends[1].err, undefined);
    assert.is(ends[2].err.message, 'creating veth: File exists (EEXIST)');
    assert.is(ends[2].err.stack, undefined, 'our own error: the message says it all');
    assert.match(ends[3].err.stack, /TypeError: oops/, 'a defect keeps its stack');
  } finally {
    dir.cleanup();
  }
});

test('an unwritable log file does not fail the command', async () => {
  const dir = new TempDir('run');
  try {
    const blocker = dir.file('blocker', 'x');
    const r = await cli(['implement-network', '--network-id', '1', '--log-file', `${blocker}/sub/log`], dir);
    assert.is(r.code, 0);
    assert.match(r.stderr, /warning: cannot write log file/);
    assert.is(r.calls.length, 1);
  } finally {
    dir.cleanup();
  }
});

test('install-wrapper writes an executable shim that runs netns-router with --extension', async () => {
  const dir = new TempDir('run');
  try {
    const root = dir.join('root');
    const r = await cli(['install-wrapper', '--extension', 'extnet-a', '--root', root, '--script', MAIN, '--state-dir', '/srv/extnet-a'], dir);
    assert.is(r.code, 0, r.stderr);
    const path = `${root}/etc/cloudstack/extensions/extnet-a/extnet-a-wrapper.sh`;
    assert.is(r.stdout, `installed ${path}\n`);
    assert.is(statSync(path).mode & 0o777, 0o755);
    const text = readFileSync(path, 'utf8');
    assert.match(text, /^#!\/bin\/bash\n/);
    assert.ok(text.includes(SHIM_MARKER));
    assert.ok(text.includes(`nr_node='${process.execPath}'\nnr_script='${MAIN}'\nset -- '--extension' 'extnet-a' '--state-dir' '/srv/extnet-a' "$@"`), text);
    assert.ok(text.includes('exec "$nr_node" "$nr_script" "$@"'), text);
    const run = spawnSync(path, ['version'], { encoding: 'utf8' });
    assert.is(run.status, 0, run.stderr);
    assert.is(run.stdout, `netns-router ${packageVersion()}\n`);
    // the shim passes the extension: state and log default under it
    const run2 = spawnSync(path, ['implement-network', '--network-id', '1', '--vlan', '99999', '--log-file', dir.join('shim.log')], { encoding: 'utf8' });
    assert.is(run2.status, 1);
    assert.match(run2.stderr, /--vlan: "99999" is not a VLAN id/);
    // reinstalling over our own shim is fine; a foreign wrapper needs --force
    assert.is((await cli(['install-wrapper', '--extension', 'extnet-a', '--root', root, '--script', MAIN], dir)).code, 0);
    writeFileSync(path, '#!/bin/bash\n# upstream network-namespace-wrapper.sh\n');
    const refused = await cli(['install-wrapper', '--extension', 'extnet-a', '--root', root, '--script', MAIN], dir);
    assert.is(refused.code, 1);
    assert.match(refused.stderr, /was not installed by netns-router .*--force/);
    const forced = await cli(['install-wrapper', '--extension', 'extnet-a', '--root', root, '--script', MAIN, '--force'], dir);
    assert.is(forced.code, 0);
    assert.is(forced.stdout, `replaced ${path}\n`);
    assert.ok(readFileSync(path, 'utf8').includes(SHIM_MARKER));
    const missing = await cli(['install-wrapper', '--extension', 'x', '--root', root, '--script', dir.join('nope.js')], dir);
    assert.is(missing.code, 1);
    assert.not.ok(existsSync(`${root}/etc/cloudstack/extensions/x`));
  } finally {
    dir.cleanup();
  }
});

test('install-wrapper again: options of the existing shim are kept unless given again (and it says so); --reset drops them', async () => {
  const dir = new TempDir('run');
  try {
    const root = dir.join('root');
    const path = `${root}/etc/cloudstack/extensions/extnet-k/extnet-k-wrapper.sh`;
    const install = (...more: string[]) => cli(['install-wrapper', '--extension', 'extnet-k', '--root', root, '--script', MAIN, ...more], dir);
    const baked = () => /^set -- (.*) "\$@"$/m.exec(readFileSync(path, 'utf8'))![1];
    assert.is((await install('--state-dir', '/srv/k', '--log-file', '/var/log/k.log')).code, 0);
    assert.is(baked(), "'--extension' 'extnet-k' '--state-dir' '/srv/k' '--log-file' '/var/log/k.log'");
    // re-run without them: kept, and listed
    const again = await install();
    assert.is(again.code, 0, again.stderr);
    assert.is(again.stdout, [
      `replaced ${path}`,
      "  kept     --state-dir '/srv/k' (from the previous shim; --reset drops what is not given again)",
      "  kept     --log-file '/var/log/k.log' (from the previous shim; --reset drops what is not given again)", ''].join('\n'));
    assert.is(baked(), "'--extension' 'extnet-k' '--state-dir' '/srv/k' '--log-file' '/var/log/k.log'");
    // one given again with another value: replaced, the other kept
    const changed = await install('--log-file', "/var/log/it's.log");
    assert.match(changed.stdout, /changed {2}--log-file '\/var\/log\/k\.log' -> '\/var\/log\/it'\\''s\.log'/);
    assert.match(changed.stdout, /kept {5}--state-dir '\/srv\/k'/);
    assert.is(baked(), "'--extension' 'extnet-k' '--log-file' '/var/log/it'\\''s.log' '--state-dir' '/srv/k'");
    // --reset: only what is given now
    const reset = await install('--reset', '--host-netns', 'hostns');
    assert.match(reset.stdout, /dropped {2}--log-file[\s\S]*dropped {2}--state-dir/);
    assert.is(baked(), "'--extension' 'extnet-k' '--host-netns' 'hostns'");
    // the shim still works with what it carries
    const run = spawnSync(path, ['version'], { encoding: 'utf8' });
    assert.is(run.status, 0, run.stderr);
    // a shim of ours edited by hand: its options cannot be read, so nothing is guessed
    writeFileSync(path, readFileSync(path, 'utf8').replace(/^set -- .*$/m, 'set -- --extension extnet-k "$@"'));
    const unreadable = await install();
    assert.is(unreadable.code, 1);
    assert.match(unreadable.stderr, /cannot read the options baked into .*--reset/);
    assert.is((await install('--reset')).code, 0);
  } finally {
    dir.cleanup();
  }
});

test('install-wrapper --root confines everything it writes, its log included', () => {
  const dir = new TempDir('run');
  try {
    const root = dir.join('root');
    const ext = `extnet-r${process.pid}`;
    // a private /var/log (so that a regression cannot write to the machine's) in which nothing may appear
    const script = [
      'set -e', 'mount --make-rprivate /', 'mount -t tmpfs private-var-log /var/log',
      `env -u NETNS_ROUTER_LOG_FILE -u NETNS_ROUTER_STATE_DIR "$NODE" "$MAIN" install-wrapper --extension ${ext} --root "$ROOT" --script "$MAIN"`,
      'echo "written outside: $(find /var/log -type f | wc -l)"',
    ].join('\n');
    const r = spawnSync('unshare', ['--mount', '--', 'sh', '-c', script], { encoding: 'utf8', env: { ...process.env, NODE: process.execPath, MAIN, ROOT: root } });
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /written outside: 0\n/);
    assert.ok(existsSync(`${root}/etc/cloudstack/extensions/${ext}/${ext}-wrapper.sh`));
    const log = `${root}/var/log/cloudstack/extensions/${ext}/${ext}.log`;
    assert.match(readFileSync(log, 'utf8'), /"msg":"installed wrapper shim"/, 'the record of the install is under --root');
    assert.not.ok(existsSync(`/etc/cloudstack/extensions/${ext}`));
  } finally {
    dir.cleanup();
  }
});

test('the bin entry: exit code and messages of a real process', () => {
  const dir = new TempDir('run');
  try {
    const r = spawnSync(process.execPath, [MAIN, 'nope'], { encoding: 'utf8', env: { ...process.env, NETNS_ROUTER_LOG_FILE: dir.join('l') } });
    assert.is(r.status, 1);
    assert.match(r.stderr, /^netns-router: unknown command 'nope'/);
    const v = spawnSync(process.execPath, [MAIN, '--version'], { encoding: 'utf8' });
    assert.is(v.status, 0);
    assert.is(v.stdout, `netns-router ${packageVersion()}\n`);
    const ok = spawnSync(process.execPath, [MAIN, 'version'], { encoding: 'utf8' });
    assert.is(ok.status, 0);
  } finally {
    dir.cleanup();
  }
});

test.run();
