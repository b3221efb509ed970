/** HaproxySupervisor against a real haproxy in a namespace: start, unchanged, reload, refused configs, death, stop. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { HaproxySupervisor, HaproxyError, renderConfig, procAlive, type ProxySpec } from '../../lib/services/haproxy/index.js';
import { netnsPath } from '../../lib/sys/setns.js';
import { openFilesHardLimit, procChildren, procCmdline, procState } from '../../lib/sys/proc.js';
import { Scratch, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { httpGet, httpNameServer, keepAliveClient } from '../helpers/lb.js';
import { rejected } from '../helpers/expect.js';

requireSandbox();

const VIP = '10.77.0.1';
const proxy = (over: Partial<ProxySpec> = {}): ProxySpec => ({
  id: '1', bindIp: VIP, bindPort: 80, mode: 'tcp', algorithm: 'roundrobin',
  servers: [{ ip: '127.0.0.1', port: 8081 }], healthcheck: { enabled: true, intervalMs: 200, rise: 1, fall: 2 }, ...over,
});
const cfg = (...p: ProxySpec[]) => renderConfig(p).text;

const expectFailure = (p: Promise<unknown>, code: HaproxyError['code']): Promise<HaproxyError> => rejected(p, HaproxyError, { code });

test('lifecycle: start in the namespace, unchanged, reload keeps connections, refused configs change nothing, stop', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-hx-'));
  const procs: ChildProcess[] = [];
  let sup: HaproxySupervisor | undefined;
  try {
    const ns = s.ns('hx');
    const h = s.handle(ns);
    h.netlink.linkSetUp('lo');
    h.netlink.addrAdd({ dev: 'lo', address: `${VIP}/32` });
    procs.push(await httpNameServer(ns, 8081, 'one'), await httpNameServer(ns, 8082, 'two'));
    sup = new HaproxySupervisor({ netns: ns, runDir: join(dir, 'run') });
    assert.equal(sup.status(), { running: false, workers: [], reason: 'no-pid-file' });

    assert.is(await sup.apply(cfg(proxy())), 'started');
    const st1 = sup.status();
    assert.ok(st1.running && st1.pid !== undefined && st1.workers.length === 1, JSON.stringify(st1));
    assert.is(statSync(`/proc/${st1.pid}/ns/net`).ino, statSync(netnsPath(ns)).ino, 'haproxy lives in the namespace');
    const stat1 = readFileSync(`/proc/${st1.pid}/stat`, 'utf8').slice(readFileSync(`/proc/${st1.pid}/stat`, 'utf8').lastIndexOf(')') + 2).split(' ');
    assert.is(Number(stat1[1]), process.pid, 'spawned directly by this process (no `ip netns exec` in between)');
    assert.is(Number(stat1[3]), st1.pid, 'a session of its own');
    assert.is(readFileSync(sup.paths.pid, 'utf8').trim(), String(st1.pid));
    assert.equal(st1.workers, [st1.pid], 'one process, no master');
    assert.is(statSync(sup.paths.statsSocket).mode & 0o777, 0o600, 'stats socket (hands the listeners over at reload): root only');
    assert.is(httpGet(ns, `http://${VIP}/`), 'one');

    assert.is(await sup.apply(cfg(proxy())), 'unchanged');
    assert.equal(sup.status().workers, st1.workers, 'same process: nothing reloaded');

    const ka = keepAliveClient(ns, VIP, 80);
    assert.match(await ka.ask(), /^answer one \d+$/);
    assert.is(await sup.apply(cfg(proxy({ servers: [{ ip: '127.0.0.1', port: 8082 }] }))), 'reloaded');
    const st2 = sup.status();
    assert.not.equal(st2.pid, st1.pid, `a new process: ${JSON.stringify(st2)}`);
    assert.equal(st2.workers, [st2.pid, st1.pid], 'the old process still runs: it holds an established connection');
    assert.is(Number(readFileSync(sup.paths.pid, 'utf8')), st2.pid, 'pid file names the new process');
    // positive control: a new connection reaches the new configuration, so a reload did happen
    assert.is(httpGet(ns, `http://${VIP}/`), 'two', 'new connections use the new configuration');
    const again = await ka.ask();
    assert.match(again, /^answer one \d+$/, 'the established connection survived the reload (the old process still serves it)');
    ka.close();
    // no leak: its last connection closed, the old process exits (and is reaped: this process's child)
    assert.ok(await waitFor(() => !procAlive(st1.pid!), 10_000), `old process ${st1.pid} gone: ${procState(st1.pid!)}`);
    assert.equal(sup.status().workers, [st2.pid], 'only the new process is left');
    assert.is(procState(st1.pid!), undefined, 'the old process was reaped, not left a zombie');

    // refused by haproxy -c: nothing started, nothing reloaded, file unchanged
    const good = readFileSync(sup.paths.config, 'utf8');
    const workers = sup.status().workers;
    const bad = cfg(proxy()).replace('balance roundrobin', 'balance nonsense');
    const e = await expectFailure(sup.apply(bad), 'E_HAPROXY_CONFIG');
    assert.ok(e.problems.some((p) => p.line !== undefined), 'problem located');
    assert.is(readFileSync(sup.paths.config, 'utf8'), good);
    assert.equal(sup.status().workers.filter((w) => !workers.includes(w)), [], 'no new process');

    // valid text the master cannot load (its port is taken by another listener; haproxy binds absent
    // addresses with IP_FREEBIND, so a missing address is no failure): the old process keeps serving
    await waitFor(() => sup!.status().workers.length === 1, 5000);
    const e2 = await expectFailure(sup.apply(cfg(proxy(), proxy({ id: '2', bindPort: 8081 }))), 'E_HAPROXY_RELOAD');
    assert.match(e2.message, /bind|address/i, e2.message);
    assert.is(readFileSync(sup.paths.config, 'utf8'), good, 'file restored to what runs');
    assert.is(httpGet(ns, `http://${VIP}/`), 'two', 'still serving the old configuration');

    // a master that died is noticed and the next apply starts a new one
    const st3 = sup.status();
    for (const p of st3.workers) process.kill(p, 'SIGKILL');
    await waitFor(() => !procAlive(st3.pid!));
    assert.is(sup.status().running, false);
    assert.is(procState(st3.pid!), undefined, 'the dead haproxy (this process\'s child) was reaped, not left a zombie');
    assert.is(await sup.apply(good), 'started');
    assert.not.equal(sup.status().pid, st3.pid);
    assert.is(httpGet(ns, `http://${VIP}/`), 'two');

    const pid = sup.status().pid!;
    assert.is(await sup.stop({ purge: true }), true);
    assert.not.ok(procAlive(pid));
    assert.is(procState(pid), undefined, 'stopped haproxy reaped');
    assert.not.ok(existsSync(sup.opts.runDir), 'run dir removed');
    assert.is(httpGet(ns, `http://${VIP}/`), '', 'nothing listens any more');
    assert.is(await sup.stop(), false, 'stop is idempotent');
  } finally {
    await sup?.stop({ purge: true }).catch(() => undefined);
    for (const p of procs) p.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a master-worker haproxy left by an earlier version is replaced at the next change, its established connection kept', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-hx-'));
  const procs: ChildProcess[] = [];
  const sup = new HaproxySupervisor({ netns: s.ns('hx'), runDir: join(dir, 'run') });
  const ns = sup.opts.netns!;
  let master: number | undefined;
  try {
    const h = s.handle(ns);
    h.netlink.linkSetUp('lo');
    h.netlink.addrAdd({ dev: 'lo', address: `${VIP}/32` });
    procs.push(await httpNameServer(ns, 8081, 'one'), await httpNameServer(ns, 8082, 'two'));
    // what the previous supervisor ran: `haproxy -W -p haproxy.pid -S master.sock -f haproxy.cfg`
    mkdirSync(sup.opts.runDir, { recursive: true, mode: 0o700 });
    writeFileSync(sup.paths.config, cfg(proxy()));
    const mw = spawn('ip', ['netns', 'exec', ns, 'haproxy', '-W', '-p', sup.paths.pid, '-S', `${join(sup.opts.runDir, 'master.sock')},mode,600`, '-f', sup.paths.config], { stdio: 'ignore' });
    procs.push(mw);
    master = mw.pid!;
    assert.ok(await waitFor(() => procChildren(master!).length === 1 && httpGet(ns, `http://${VIP}/`) === 'one', 5000), 'the master-worker haproxy serves');
    const worker = procChildren(master)[0];
    assert.equal(sup.status().workers, [master], 'taken for ours (our configuration, our namespace)');

    const ka = keepAliveClient(ns, VIP, 80);
    assert.match(await ka.ask(), /^answer one \d+$/);
    assert.is(await sup.apply(cfg(proxy({ servers: [{ ip: '127.0.0.1', port: 8082 }] }))), 'reloaded');
    const st = sup.status();
    assert.not.equal(st.pid, master);
    assert.not.ok(procCmdline(st.pid!).includes('-W'), 'now one process, no master');
    assert.is(httpGet(ns, `http://${VIP}/`), 'two', 'new connections reach the new process');
    assert.match(await ka.ask(), /^answer one \d+$/, 'the connection the old worker held still answers');
    ka.close();
    assert.ok(await waitFor(() => !procAlive(master!) && !procAlive(worker), 10_000), 'the old master and worker exit');
    assert.equal(sup.status().workers, [st.pid]);
    assert.is(await sup.apply(cfg(proxy())), 'reloaded', 'and the next change is a hand-over reload');
    assert.is(httpGet(ns, `http://${VIP}/`), 'one');
  } finally {
    await sup.stop({ purge: true }).catch(() => undefined);
    if (master !== undefined && procAlive(master)) process.kill(master, 'SIGKILL');
    for (const p of procs) p.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a start that cannot bind fails with haproxy\'s reason and leaves nothing running', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-hx-'));
  const ns = s.ns('hx');
  const sup = new HaproxySupervisor({ netns: ns, runDir: join(dir, 'run') });
  let taken: ChildProcess | undefined;
  try {
    s.handle(ns).netlink.linkSetUp('lo');
    taken = await httpNameServer(ns, 8090, 'squatter');
    const e = await expectFailure(sup.apply(cfg(proxy({ bindIp: '127.0.0.1', bindPort: 8090 }))), 'E_HAPROXY_START');
    assert.match(e.message, /bind/i);
    assert.is(sup.status().running, false);
  } finally {
    await sup.stop({ purge: true }).catch(() => undefined);
    taken?.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a haproxy left in a replaced namespace is not taken for ours: it is stopped and a new one started', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-hx-'));
  const name = s.ns('hx');
  const sup = new HaproxySupervisor({ netns: name, runDir: join(dir, 'run') });
  try {
    const setup = () => { const h = s.handle(name); h.netlink.linkSetUp('lo'); h.netlink.addrAdd({ dev: 'lo', address: `${VIP}/32` }); };
    setup();
    assert.is(await sup.apply(cfg(proxy())), 'started');
    const old = sup.status().pid!;
    // the namespace is deleted and re-created under the same name while haproxy keeps the old one alive
    const { deleteNetns, addNetns } = await import('../../lib/netns/namespaces.js');
    s.cleanup();
    deleteNetns(name, { ifExists: true });
    addNetns(name);
    s.track(name);
    setup();
    assert.equal(sup.status().reason, 'other-namespace');
    assert.is(await sup.apply(cfg(proxy())), 'started');
    assert.not.ok(procAlive(old), 'the stale haproxy is gone');
    assert.is(statSync(`/proc/${sup.status().pid}/ns/net`).ino, statSync(netnsPath(name)).ino);
  } finally {
    await sup.stop({ purge: true }).catch(() => undefined);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('many rules: the global maxconn fits this process\'s descriptor limit, so haproxy starts', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-hx-'));
  const sup = new HaproxySupervisor({ netns: s.ns('hx'), runDir: join(dir, 'run') });
  try {
    const many = Array.from({ length: 50 }, (_, i) => proxy({ id: String(i), bindPort: 1000 + i, maxconn: 5000 }));
    const limit = openFilesHardLimit();
    assert.ok(limit !== undefined);
    assert.is(await sup.apply(renderConfig(many, { fdHardLimit: limit }).text), 'started');
    const st = sup.status();
    assert.ok(st.running, JSON.stringify(st));
  } finally {
    await sup.stop({ purge: true }).catch(() => undefined);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
