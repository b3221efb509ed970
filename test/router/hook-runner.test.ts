/**
 * Operator hooks as processes (lib/router/hook-runner.ts): at its time limit a hook dies with everything it started
 * (a child holding its output no longer keeps the router locked), and what a command killed with -9 left running of
 * its hook is killed by the router's next command before it runs; processes that are not a hook run's (no mark, or
 * a daemon the hook detached on purpose) are left alone.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRouter } from '../../lib/router/create-router.js';
import { HOOK_RUN_ENV, hookRunPath, reapHookRun } from '../../lib/router/hook-runner.js';
import { procAlive } from '../../lib/sys/proc.js';
import { TimeoutError } from '../../lib/util/errors.js';
import { waitFor } from '../helpers/topo.js';
import { CLI } from '../helpers/router-cli.js';
import { pidsWhere } from '../helpers/procs.js';
import { rejected } from '../helpers/expect.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();

const NET42 = { kind: 'network', networkId: '42' } as const;

function hooks(stateDir: string, scripts: Record<string, string>): void {
  mkdirSync(join(stateDir, 'hooks'), { recursive: true });
  for (const [name, body] of Object.entries(scripts)) {
    const f = join(stateDir, 'hooks', `custom-action-${name}.sh`);
    writeFileSync(f, `#!/bin/sh\n${body}\n`);
    chmodSync(f, 0o755);
  }
}

/** Live processes with `arg` in their command line (each test's sleeps carry their own odd duration). */
const withArg = (arg: string) => pidsWhere((p) => p.argv.includes(arg));
const killAll = (pids: number[]) => { for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } } };

test('a hook at its time limit dies with its children: the next command of the router runs at once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-hook-limit-'));
  const stateDir = join(dir, 'state');
  // the child keeps the hook's stdout open for 300 s: before process groups, the command waited for it (lock held)
  hooks(stateDir, { stuck: 'echo started\nsleep 300.51\necho late', quick: 'echo quick' });
  const router = createRouter({ stateDir });
  try {
    await rejected(router.customAction({ networkId: 42, action: 'stuck' }, { timeoutSeconds: 1 }), TimeoutError, { code: 'E_TIMEOUT' });
    // the same router's next command gets its lock well within its own limit (it would wait 300 s for the child)
    const out = await router.customAction({ networkId: 42, action: 'quick' }, { timeoutSeconds: 30 });
    assert.equal(JSON.parse(out!), { status: 'success', printmessage: 'true', message: 'quick' }, 'the next command ran');
    assert.equal(withArg('300.51'), [], 'the hook\'s child was killed with it');
    assert.not.ok(existsSync(hookRunPath(stateDir, NET42)), 'no record is left of a run that ended');
  } finally {
    killAll(withArg('300.51'));
    await router.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a command killed (-9) in the middle of its hook: the router\'s next command kills what the hook left, not a detached daemon', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-hook-crash-'));
  const stateDir = join(dir, 'state');
  const log = join(dir, 'cli.log');
  hooks(stateDir, {
    // a daemon detached on purpose (its own session, its output elsewhere), then a long child in the hook's group
    stuck: `setsid sleep 300.62 </dev/null >/dev/null 2>&1 &\necho $$ > ${dir}/hook.pid\nsleep 300.61\necho late > ${dir}/late`,
    quick: 'echo quick',
  });
  const cli = (args: string[]) => spawn(process.execPath, [CLI, 'custom-action', ...args, '--state-dir', stateDir, '--log-file', log], {
    env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: 'off' }, stdio: 'ignore',
  });
  try {
    const first = cli(['--network-id', '42', '--action', 'stuck']);
    assert.ok(await waitFor(() => withArg('300.61').length === 1 && withArg('300.62').length === 1, 20_000), 'the hook runs');
    const hookPid = Number(readFileSync(join(dir, 'hook.pid'), 'utf8'));
    first.kill('SIGKILL');
    await new Promise((r) => first.once('close', r));
    // control: the scenario is real — the dead command's hook and its child go on running
    assert.ok(procAlive(hookPid), 'the hook outlived its command');
    assert.is(withArg('300.61').length, 1, 'its child too');
    assert.ok(existsSync(hookRunPath(stateDir, NET42)), 'the run is recorded');

    // another router's command does not touch it
    const other = spawnSync(process.execPath, [CLI, 'custom-action', '--network-id', '43', '--action', 'quick', '--state-dir', stateDir, '--log-file', log], {
      env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: 'off' }, encoding: 'utf8',
    });
    assert.is(other.status, 0, other.stderr);
    assert.ok(procAlive(hookPid) && withArg('300.61').length === 1, 'network 43\'s command left network 42\'s hook alone');

    const next = spawnSync(process.execPath, [CLI, 'custom-action', '--network-id', '42', '--action', 'quick', '--state-dir', stateDir, '--log-file', log], {
      env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: 'off' }, encoding: 'utf8',
    });
    assert.is(next.status, 0, next.stderr);
    assert.equal(JSON.parse(next.stdout), { status: 'success', printmessage: 'true', message: 'quick' });
    assert.ok(await waitFor(() => !procAlive(hookPid), 5000), 'the hook was killed');
    assert.equal(withArg('300.61'), [], 'its child too');
    assert.not.ok(existsSync(join(dir, 'late')), 'the hook never went on');
    assert.is(withArg('300.62').length, 1, 'the daemon it detached (its own session) is left alone');
    assert.not.ok(existsSync(hookRunPath(stateDir, NET42)), 'the record is gone');
    assert.match(readFileSync(log, 'utf8'), /killed the processes of a hook whose command died before it ended/);
  } finally {
    killAll([...withArg('300.61'), ...withArg('300.62')]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('reapHookRun kills only processes that carry the run\'s mark; a stale or foreign record kills nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-hook-reap-'));
  const run = 'a'.repeat(32);
  const start = async (arg: string, env: Record<string, string>) => {
    const p = spawn('sleep', [arg], { detached: true, stdio: 'ignore', env: { PATH: process.env.PATH!, ...env } });
    p.unref();
    assert.ok(await waitFor(() => withArg(arg).length === 1, 5000), `sleep ${arg} runs`);
    return p.pid!;
  };
  const record = (pgid: number, r = run) => {
    mkdirSync(join(dir, 'hook-runs'), { recursive: true });
    writeFileSync(hookRunPath(dir, NET42), JSON.stringify({ pgid, run: r }));
  };
  const pids: number[] = [];
  try {
    // a process group that is not a hook's (no mark): left alone, the record forgotten
    const foreign = await start('300.71', {});
    pids.push(foreign);
    record(foreign);
    assert.is(reapHookRun(dir, NET42), 0);
    assert.ok(procAlive(foreign), 'an unmarked group is not killed');
    assert.not.ok(existsSync(hookRunPath(dir, NET42)), 'the stale record is gone');
    // marked by another run: left alone
    const otherRun = await start('300.72', { [HOOK_RUN_ENV]: 'b'.repeat(32) });
    pids.push(otherRun);
    record(otherRun);
    assert.is(reapHookRun(dir, NET42), 0);
    assert.ok(procAlive(otherRun), 'another run\'s process is not killed');
    // a torn record: nothing to reap by, removed
    mkdirSync(join(dir, 'hook-runs'), { recursive: true });
    writeFileSync(hookRunPath(dir, NET42), '{"pgid": 1');
    assert.is(reapHookRun(dir, NET42), 0);
    assert.not.ok(existsSync(hookRunPath(dir, NET42)));
    // no record at all
    assert.is(reapHookRun(dir, NET42), 0);
    // control: the run's own mark — killed
    const ours = await start('300.73', { [HOOK_RUN_ENV]: run });
    pids.push(ours);
    record(ours);
    assert.is(reapHookRun(dir, NET42), 1);
    assert.ok(await waitFor(() => !procAlive(ours), 5000), 'the marked process is killed');
    assert.ok(procAlive(foreign) && procAlive(otherRun), 'the others still are not');
  } finally {
    killAll(pids);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
