/**
 * HaproxySupervisor when the command running it is killed (kill -9) while its new haproxy is not yet recorded
 * in the pid file — right after posix_spawn, before or after haproxy.spawned names it, at a start and at a
 * reload: the next command leaves exactly one serving haproxy (the orphan adopted, not a second one started
 * beside it), and stop() leaves none.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { HaproxySupervisor, HaproxyError, renderConfig, type ProxySpec } from '../../lib/services/haproxy/index.js';
import { procState } from '../../lib/sys/proc.js';
import { pidsWhere } from '../helpers/procs.js';
import { Scratch, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { httpGet, httpNameServer, keepAliveClient } from '../helpers/lb.js';
import { rejected } from '../helpers/expect.js';

requireSandbox();

const VIP = '10.77.0.1';
const SUPERVISOR = new URL('../../lib/services/haproxy/supervisor.js', import.meta.url).href;
const proxy = (over: Partial<ProxySpec> = {}): ProxySpec => ({
  id: '1', bindIp: VIP, bindPort: 80, mode: 'tcp', algorithm: 'roundrobin',
  servers: [{ ip: '127.0.0.1', port: 8081 }], healthcheck: { enabled: true, intervalMs: 200, rise: 1, fall: 2 }, ...over,
});
const cfg = (...p: ProxySpec[]) => renderConfig(p).text;
const ONE = cfg(proxy());
const TWO = cfg(proxy({ servers: [{ ip: '127.0.0.1', port: 8082 }] }));

/** Live (not zombie) processes whose command line holds `file` — read here from /proc, not by the supervisor's code. */
const processesNaming = (file: string): number[] => pidsWhere(({ argv }) => argv.includes(file));

/**
 * Another process runs `apply(text)` and is SIGKILLed by its supervisor's test hook right after posix_spawn
 * (`at` 'unrecorded': before haproxy.spawned names the pid; 'recorded': just after) — before the new haproxy
 * answers. Resolves with that haproxy's pid.
 */
function applyKilled(ns: string, runDir: string, text: string, at: 'recorded' | 'unrecorded'): Promise<number> {
  const file = join(runDir, '..', `text-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, text);
  const script = `
    const { readFileSync } = await import('node:fs');
    const { HaproxySupervisor } = await import(process.argv[1]);
    const [ns, runDir, file, at] = process.argv.slice(2);
    const sup = new HaproxySupervisor({ netns: ns, runDir, onSpawn: (pid, recorded) => {
      if (recorded !== (at === 'recorded')) return;
      process.stdout.write(pid + '\\n');
      process.kill(process.pid, 'SIGKILL');
    } });
    await sup.apply(readFileSync(file, 'utf8'));
    process.stdout.write('finished\\n');`;
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', script, SUPERVISOR, ns, runDir, file, at], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('close', (code, signal) => {
      rmSync(file, { force: true });
      const pid = Number(out.trim());
      if (signal === 'SIGKILL' && Number.isInteger(pid) && pid > 1) resolve(pid);
      else reject(new Error(`the command was not killed at its spawn (${code ?? signal}): ${out} ${err}`));
    });
  });
}

/** A namespace with VIP on lo and backends answering 'one' (8081) and 'two' (8082); `body` runs with a fresh supervisor. */
async function withRouter(body: (ns: string, sup: HaproxySupervisor) => Promise<void>): Promise<void> {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-hxc-'));
  const procs: ChildProcess[] = [];
  const ns = s.ns('hxc');
  const sup = new HaproxySupervisor({ netns: ns, runDir: join(dir, 'run') });
  try {
    const h = s.handle(ns);
    h.netlink.linkSetUp('lo');
    h.netlink.addrAdd({ dev: 'lo', address: `${VIP}/32` });
    procs.push(await httpNameServer(ns, 8081, 'one'), await httpNameServer(ns, 8082, 'two'));
    await body(ns, sup);
  } finally {
    await sup.stop({ purge: true }).catch(() => undefined);
    for (const p of processesNaming(sup.paths.config)) process.kill(p, 'SIGKILL');
    for (const p of procs) p.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const at of ['recorded', 'unrecorded'] as const) {
  test(`start killed right after posix_spawn (${at}): the next apply adopts its haproxy, one process serves; stop leaves none`, async () => {
    await withRouter(async (ns, sup) => {
      const orphan = await applyKilled(ns, sup.opts.runDir, ONE, at);
      assert.not.ok(existsSync(sup.paths.pid), 'killed before its haproxy answered: no pid file names it');
      assert.equal(sup.status().running, false);
      assert.equal(processesNaming(sup.paths.config), [orphan], 'the orphan runs');
      assert.is(readFileSync(sup.paths.spawned, 'utf8').trim(), at === 'recorded' ? String(orphan) : 'spawning');

      assert.is(await sup.apply(ONE), 'unchanged', 'adopted: no second haproxy started');
      assert.is(sup.status().pid, orphan);
      assert.equal(processesNaming(sup.paths.config), [orphan], 'exactly one haproxy');
      assert.is(httpGet(ns, `http://${VIP}/`), 'one', 'and it serves');
      assert.not.ok(existsSync(sup.paths.spawned), 'the record is cleared');

      // the adopted process is handled as any: a change reloads it
      assert.is(await sup.apply(TWO), 'reloaded');
      assert.ok(await waitFor(() => processesNaming(sup.paths.config).length === 1, 10_000), `one process after the reload: ${processesNaming(sup.paths.config)}`);
      assert.is(httpGet(ns, `http://${VIP}/`), 'two');
      const current = sup.status().pid!;
      assert.equal(processesNaming(sup.paths.config), [current]);
      assert.is(await sup.stop({ purge: true }), true);
      assert.equal(processesNaming(sup.paths.config), [], 'stop leaves none');
    });
  });

  test(`reload killed right after posix_spawn (${at}): the next apply adopts the new process, the old one drains; stop leaves none`, async () => {
    await withRouter(async (ns, sup) => {
      assert.is(await sup.apply(ONE), 'started');
      const old = sup.status().pid!;
      const ka = keepAliveClient(ns, VIP, 80);
      try {
        assert.match(await ka.ask(), /^answer one \d+$/);
        const orphan = await applyKilled(ns, sup.opts.runDir, TWO, at);
        assert.is(readFileSync(sup.paths.pid, 'utf8').trim(), String(old), 'killed before its haproxy answered: the pid file names the old one');
        assert.equal(processesNaming(sup.paths.config), [old, orphan].sort((a, b) => a - b));

        assert.is(await sup.apply(TWO), 'unchanged', 'adopted: no third haproxy');
        const st = sup.status();
        assert.is(st.pid, orphan);
        assert.equal(st.workers, [orphan, old], 'the old process finishes its connection (draining)');
        assert.is(httpGet(ns, `http://${VIP}/`), 'two', 'new connections reach the new configuration');
        assert.match(await ka.ask(), /^answer one \d+$/, 'the established connection still answers');
      } finally {
        ka.close();
      }
      assert.ok(await waitFor(() => processesNaming(sup.paths.config).length === 1, 10_000), 'the old process exits once its connection closed');
      assert.equal(processesNaming(sup.paths.config), [sup.status().pid!]);
      assert.is(await sup.apply(ONE), 'reloaded');
      assert.is(httpGet(ns, `http://${VIP}/`), 'one');
      assert.ok(await waitFor(() => processesNaming(sup.paths.config).length === 1, 10_000));
      await sup.stop({ purge: true });
      assert.equal(processesNaming(sup.paths.config), [], 'stop leaves none');
    });
  });

  test(`stop (destroy) right after a killed start and a killed reload (${at}) stops every process by pid`, async () => {
    await withRouter(async (ns, sup) => {
      const first = await applyKilled(ns, sup.opts.runDir, ONE, at);
      assert.is(await sup.stop(), true, 'a process was stopped (not the current one: there is none)');
      assert.not.ok(procState(first) !== undefined && procState(first) !== 'Z', 'the orphan of the start is gone');
      assert.equal(processesNaming(sup.paths.config), []);

      assert.is(await sup.apply(ONE), 'started');
      assert.is(httpGet(ns, `http://${VIP}/`), 'one', 'positive control: it served');
      const old = sup.status().pid!;
      const orphan = await applyKilled(ns, sup.opts.runDir, TWO, at);
      assert.ok(await waitFor(() => httpGet(ns, `http://${VIP}/`) === 'two', 10_000), 'the orphan took over');
      assert.is(await sup.stop({ purge: true }), true);
      assert.equal(processesNaming(sup.paths.config), [], `none left (old ${old}, orphan ${orphan})`);
      assert.is(httpGet(ns, `http://${VIP}/`), '', 'nothing listens');
    });
  });
}

test('reload killed and its process fails to load: the old one keeps serving, the next apply does not take the file for what runs', async () => {
  await withRouter(async (ns, sup) => {
    assert.is(await sup.apply(ONE), 'started');
    const old = sup.status().pid!;
    // valid for haproxy -c, but 8081 is taken by a backend: the new process exits, the old one resumes
    const bad = cfg(proxy(), proxy({ id: '2', bindIp: '127.0.0.1', bindPort: 8081 }));
    const failed = await applyKilled(ns, sup.opts.runDir, bad, 'recorded');
    assert.ok(await waitFor(() => procState(failed) === undefined || procState(failed) === 'Z', 10_000), 'the new process gave up');
    assert.is(readFileSync(sup.paths.config, 'utf8'), bad, 'the killed command had written the new text');
    // without recovery the same text would be taken for the running one ('unchanged') while the old text runs
    const e = await rejected(sup.apply(bad), HaproxyError, { code: 'E_HAPROXY_RELOAD' });
    assert.match(e.message, /bind|address/i, e.message);
    assert.is(sup.status().pid, old);
    assert.is(httpGet(ns, `http://${VIP}/`), 'one', 'the old configuration still serves');
    assert.is(await sup.apply(TWO), 'reloaded', 'and a good change applies');
    assert.is(httpGet(ns, `http://${VIP}/`), 'two');
  });
});

test.run();
