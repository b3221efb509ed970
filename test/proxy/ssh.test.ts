/**
 * The proxy against real OpenSSH servers (test/helpers/sshd.ts) in namespaces acting as KVM hosts,
 * with a recording stub as the remote wrapper: host choice, payload transport, exit codes, secrets,
 * signals and time limits. The proxy runs as the real CLI (`netns-router proxy …`) in a child process.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Scratch, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { SshLab, allCommandLines, privateRootPassword, type KeyPair, type SshdHost } from '../helpers/sshd.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

interface Run {
  status: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** `netns-router proxy ARGS` with the lab's known_hosts, log, stub wrapper and a private TMPDIR. */
function proxy(lab: SshLab, args: string[], opts: { env?: Record<string, string>; onSpawn?: (pid: number) => void } = {}): Promise<Run> {
  const ptmp = join(lab.dir, 'ptmp');
  mkdirSync(ptmp, { recursive: true });
  const env = {
    ...process.env,
    TMPDIR: ptmp,
    NETNS_ROUTER_PROXY_KNOWN_HOSTS: lab.knownHosts,
    NETNS_ROUTER_LOG_FILE: join(lab.dir, 'proxy.log'),
    CS_NET_SCRIPT_PATH: lab.stub.path,
    ...(opts.env ?? {}),
  };
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, 'proxy', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
    p.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    opts.onSpawn?.(p.pid!);
    // a hung call must fail the test, not the whole run
    const guard = setTimeout(() => p.kill('SIGKILL'), 120_000);
    p.on('close', (status, signal) => { clearTimeout(guard); resolve({ status, signal, stdout, stderr }); });
  });
}

/** The details JSON an ensure-network-device call printed (fails the test with its stderr otherwise). */
function detailsOf(r: Run): { host: string; namespace: string; vpc_id?: string } {
  assert.is(r.status, 0, `ensure-network-device failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const cksumIndex = (key: string, n: number): number =>
  Number(execFileSync('cksum', { input: key, encoding: 'utf8' }).trim().split(/\s+/)[0]) % n;

function payloadFile(lab: SshLab, name: string, doc: object): string {
  const p = join(lab.dir, name);
  writeFileSync(p, JSON.stringify(doc));
  return p;
}

const keyDetails = (hosts: SshdHost[], key: KeyPair, extra: object = {}) => ({
  hosts: hosts.map((h) => h.address).join(','), sshkey: key.privateKey, ...extra,
});

/** Nothing of a call left behind: proxy temp dir empty, host temp dirs empty, no ssh of ours running. */
function assertNoLeftovers(lab: SshLab, what: string): void {
  const ptmp = join(lab.dir, 'ptmp');
  assert.equal(existsSync(ptmp) ? readdirSync(ptmp) : [], [], `${what}: proxy temp dir empty`);
  for (const h of lab.hosts) assert.equal(readdirSync(h.tmp), [], `${what}: remote temp dir of ${h.name} empty`);
  const ours = allCommandLines().filter((p) => p.cmdline.includes(ptmp));
  assert.equal(ours, [], `${what}: no ssh/scp/sshpass of ours still running`);
}

test('ensure-network-device: cksum choice stable across calls and forms, VPC tiers together, failover past a down sshd, current host kept', async () => {
  const s = new Scratch();
  const lab = new SshLab(s);
  try {
    const key = lab.keyPair();
    lab.authorize(key);
    const hosts = await Promise.all([0, 1, 2].map((i) => lab.addHost({ name: `h${i}` })));
    const phys = keyDetails(hosts, key);
    const ensure = (id: { network?: string; vpc?: string }, extra: string[] = []) => proxy(lab, [
      'ensure-network-device', ...(id.network ? ['--network-id', id.network] : []), ...(id.vpc ? ['--vpc-id', id.vpc] : []),
      '--physical-network-extension-details', JSON.stringify(phys), ...extra,
    ]);

    // ids spread over the three hosts, each chosen by POSIX cksum modulo 3 (computed with /usr/bin/cksum)
    const ids = ['101', '102', '103', '104', '105', '106', '2024'];
    const first = await Promise.all(ids.map((id) => ensure({ network: id })));
    const again = await Promise.all(ids.map((id) => ensure({ network: id })));
    const seen = new Set<number>();
    ids.forEach((id, i) => {
      assert.is(first[i].status, 0, first[i].stderr);
      const want = hosts[cksumIndex(id, 3)].address;
      seen.add(cksumIndex(id, 3));
      assert.is(first[i].stdout, `{"host":"${want}","namespace":"cs-net-${id}"}\n`, `network ${id}`);
      assert.is(again[i].stdout, first[i].stdout, 'same choice on the next call');
    });
    assert.is(seen.size, 3, 'the sample ids cover every host');

    // payload-file form, like CloudStack: same answer
    const pf = payloadFile(lab, 'ensure.json', { 'physical-network-extension-details': phys, 'network-extension-details': {}, payload: { network_id: '104' } });
    const viaFile = await proxy(lab, ['ensure-network-device', pf, '60']);
    assert.is(viaFile.status, 0, viaFile.stderr);
    assert.is(viaFile.stdout, first[ids.indexOf('104')].stdout);

    // VPC tiers: routed by the VPC id, all on one host
    const vpc = '77';
    const tiers = await Promise.all(['501', '502', '503'].map((n) => ensure({ network: n, vpc })));
    for (const t of tiers) {
      assert.is(t.status, 0, t.stderr);
      assert.is(t.stdout, `{"host":"${hosts[cksumIndex(vpc, 3)].address}","namespace":"cs-vpc-${vpc}","vpc_id":"${vpc}"}\n`);
    }

    // the preferred host's sshd goes down: the next one in order takes over
    const id = '2024';
    const pref = cksumIndex(id, 3);
    await hosts[pref].stop();
    let r = await ensure({ network: id });
    assert.is(r.status, 0, r.stderr);
    assert.is(detailsOf(r).host, hosts[(pref + 1) % 3].address, 'failover to the next host');
    // the remembered (current) host is kept while it is up and listed, even if it is not the hash choice
    const current = hosts[(pref + 2) % 3].address;
    r = await ensure({ network: id }, ['--current-details', JSON.stringify({ host: current })]);
    assert.is(detailsOf(r).host, current, 'current host kept');
    // ... also when it comes from network-extension-details
    r = await ensure({ network: id }, ['--network-extension-details', JSON.stringify({ host: current, namespace: `cs-net-${id}` })]);
    assert.is(detailsOf(r).host, current, 'remembered host kept');
    // the current host being down → hash order again (skipping the down preferred host)
    r = await ensure({ network: id }, ['--current-details', JSON.stringify({ host: hosts[pref].address })]);
    assert.is(detailsOf(r).host, hosts[(pref + 1) % 3].address);
    // a current host no longer in the list is not kept
    r = await ensure({ network: id }, ['--current-details', JSON.stringify({ host: '172.30.254.254' })]);
    assert.is(detailsOf(r).host, hosts[(pref + 1) % 3].address);
    await hosts[pref].start();
    r = await ensure({ network: id });
    assert.is(detailsOf(r).host, hosts[pref].address, 'back to the preferred host once it is up');

    // every host down → exit 1 naming each host and port
    for (const h of hosts) await h.stop();
    r = await ensure({ network: id });
    assert.is(r.status, 1, r.stderr);
    assert.is(r.stdout, '');
    for (const h of hosts) assert.match(r.stderr, `${h.address} port 22`);
    assert.match(r.stderr, 'no reachable host');
    // no hosts configured / no id → exit 1
    r = await proxy(lab, ['ensure-network-device', '--network-id', '5', '--physical-network-extension-details', '{}']);
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, 'no hosts configured');
    r = await proxy(lab, ['ensure-network-device', '--physical-network-extension-details', JSON.stringify(phys)]);
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, '--network-id or --vpc-id');
    assertNoLeftovers(lab, 'ensure');
  } finally {
    await lab.cleanup();
    s.cleanup();
  }
});

const NASTY = `it's a "test" with spaces, $(touch /tmp/nrp-pwned) and \`id\`\nsecond line\t$HOME \\ 'quoted' ;|&<> ü€`;

test('forwarding: payload and option values arrive intact (quotes, $(), backticks, newlines), mode 600, removed after; wrapper path and args quoted; stdout passed through; custom port', async () => {
  const s = new Scratch();
  const lab = new SshLab(s);
  try {
    const key = lab.keyPair();
    lab.authorize(key);
    const h = await lab.addHost({ name: 'k0', port: 2222 });
    // a wrapper path that needs quoting itself
    const odd = join(lab.dir, "wrap dir $(x) it's");
    mkdirSync(odd);
    const wrapper = join(odd, 'stub wrapper.sh');
    copyFileSync(lab.stub.path, wrapper);
    execFileSync('chmod', ['755', wrapper]);
    const phys = { host: h.address, port: '2222', sshkey: key.privateKey, 'guest.network.device': 'eth1' };

    // payload-file form
    const doc = {
      'physical-network-extension-details': phys,
      'network-extension-details': JSON.stringify({ host: h.address, namespace: 'cs-net-31' }),
      payload: { network_id: '31', ip: '10.1.1.5', userdata: NASTY, extra_key: { kept: [1, 2, 3] } },
    };
    let r = await proxy(lab, ['save-userdata', payloadFile(lab, 'ud.json', doc), '60'], { env: { CS_NET_SCRIPT_PATH: wrapper } });
    assert.is(r.status, 0, r.stderr);
    assert.is(r.stdout, 'stub ran save-userdata on k0\n', 'wrapper stdout passed through');
    let calls = lab.stub.calls();
    assert.is(calls.length, 1);
    let c = calls[0];
    assert.is(c.host, 'k0');
    assert.is(c.args.length, 3);
    assert.is(c.args[0], 'save-userdata');
    assert.match(c.args[1], new RegExp(`^${h.tmp}/cs-extnet-payload-[A-Za-z0-9]{10}$`));
    assert.ok(Number(c.args[2]) >= 50 && Number(c.args[2]) <= 60, `remote timeout ${c.args[2]}`);
    assert.is(c.payloadMode, '600 root');
    const got = JSON.parse(c.payload!);
    assert.is(got.payload.userdata, NASTY, 'payload value intact');
    assert.equal(got.payload.extra_key, { kept: [1, 2, 3] }, 'unknown keys kept');
    assert.equal(got['network-extension-details'], { host: h.address, namespace: 'cs-net-31' });
    assert.equal(got['physical-network-extension-details'], { host: h.address, port: '2222', 'guest.network.device': 'eth1' }, 'SSH credentials not sent to the host');
    assert.not.ok(existsSync(c.args[1]), 'remote payload removed');
    assert.not.ok(existsSync('/tmp/nrp-pwned'), 'nothing was executed');

    // options form: values (and a --x-file document) reach the wrapper in the payload file; wrapper options passed on
    lab.stub.clear();
    const acl = join(lab.dir, 'acl.json');
    writeFileSync(acl, JSON.stringify([{ number: 1, action: 'allow', trafficType: 'Ingress', protocol: 'tcp', portStart: 22, portEnd: 22, sourceCidrs: ['0.0.0.0/0'] }]));
    r = await proxy(lab, [
      'save-password', '--network-id', '32', '--ip', '10.1.1.6', '--password', NASTY, '--host-netns', 'hostns-1', '--timeout', '40',
      '--physical-network-extension-details', JSON.stringify(phys), '--network-extension-details', JSON.stringify({ host: h.address }),
    ]);
    assert.is(r.status, 0, r.stderr);
    c = lab.stub.calls()[0];
    assert.is(c.args[0], 'save-password');
    assert.ok(Number(c.args[2]) <= 40, 'the call\'s own time limit bounds the remote one');
    assert.equal(c.args.slice(3), ['--host-netns', 'hostns-1']);
    assert.is(JSON.parse(c.payload!).payload.password, NASTY);
    assert.is(JSON.parse(c.payload!).payload.network_id, '32');
    lab.stub.clear();
    r = await proxy(lab, ['apply-network-acl', '--network-id', '33', '--vpc-id', '9', '--acl-rules-file', acl,
      '--physical-network-extension-details', JSON.stringify(phys)]);
    assert.is(r.status, 0, r.stderr);
    c = lab.stub.calls()[0];
    assert.equal(JSON.parse(JSON.parse(c.payload!).payload.acl_rules), JSON.parse(readFileSync(acl, 'utf8')), 'file option read locally, content sent');

    // custom-action: flat payload, stdout is the API's answer
    lab.stub.clear();
    r = await proxy(lab, ['custom-action', payloadFile(lab, 'ca.json', {
      network_id: '31', action: 'dump-config', 'action-params': { note: NASTY }, 'physical-network-extension-details': phys,
    }), '60']);
    assert.is(r.status, 0, r.stderr);
    c = lab.stub.calls()[0];
    assert.equal(JSON.parse(c.payload!)['action-params'], { note: NASTY });
    assert.is(r.stdout, 'stub ran custom-action on k0\n');
    assertNoLeftovers(lab, 'forwarding');
  } finally {
    await lab.cleanup();
    s.cleanup();
  }
});

test('exit codes: 1 usage/no host, 2 SSH failures naming host and port (down, wrong key, changed host key), 3 wrapper failure with its stderr', async () => {
  const s = new Scratch();
  const lab = new SshLab(s);
  try {
    const key = lab.keyPair();
    const stranger = lab.keyPair();
    lab.authorize(key);
    const h = await lab.addHost({ name: 'e0' });
    const phys = (k: KeyPair) => ({ host: h.address, sshkey: k.privateKey });
    const call = (k: KeyPair, extra: string[] = []) => proxy(lab, ['implement-network', '--network-id', '41', '--vlan', '100',
      '--physical-network-extension-details', JSON.stringify(phys(k)), ...extra]);

    let r = await call(key);
    assert.is(r.status, 0, r.stderr);
    // usage errors never connect
    lab.stub.clear();
    r = await proxy(lab, ['add-port-forward', '--network-id', '41', '--public-ip', '203.0.113.5', '--public-port', '99999',
      '--private-ip', '10.0.0.5', '--private-port', '80', '--physical-network-extension-details', JSON.stringify(phys(key))]);
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, '--public-port');
    r = await proxy(lab, ['implement-network', '--vlan', '100', '--physical-network-extension-details', JSON.stringify(phys(key))]);
    assert.is(r.status, 1, r.stderr);
    r = await proxy(lab, ['implement-network', '--network-id', '41', '--physical-network-extension-details', '{}']);
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, 'ensure-network-device first');
    r = await proxy(lab, ['implement-network', '--network-id', '41', '--physical-network-extension-details', JSON.stringify({ host: h.address, port: 'x' })]);
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, 'port');
    assert.is(lab.stub.calls().length, 0, 'nothing ran remotely');

    // 3: the wrapper fails; its stderr and code are reported
    for (const code of [1, 7, 255]) {
      lab.stub.setFail(code);
      r = await call(key);
      assert.is(r.status, 3, `wrapper exit ${code}: ${r.stderr}`);
      assert.match(r.stderr, `stub: failing with ${code}`);
      assert.match(r.stderr, `exited with ${code}`);
    }
    lab.stub.setFail(undefined);
    // a wrapper that does not exist is a remote failure too
    r = await call(key, ['--remote-wrapper', '/nonexistent/wrapper.sh']);
    assert.is(r.status, 3, r.stderr);

    // 2: wrong key
    r = await call(stranger);
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, `root@${h.address} port 22`);
    assert.match(r.stderr, 'authentication failed');
    // 2: wrong port / sshd down
    r = await proxy(lab, ['implement-network', '--network-id', '41', '--physical-network-extension-details', JSON.stringify({ ...phys(key), port: 2200 })]);
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, `root@${h.address} port 2200`);
    assert.match(r.stderr, /refused/i);
    // 2: the host key changed (host reinstalled): refused, with the fix in the message
    await h.stop();
    h.regenerateHostKey();
    await h.start();
    r = await call(key);
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, 'host key differs');
    assert.match(r.stderr, 'ssh-keygen');
    assert.match(r.stderr, `port 22`);
    execFileSync('ssh-keygen', ['-q', '-f', lab.knownHosts, '-R', h.address], { stdio: 'ignore' });
    r = await call(key);
    assert.is(r.status, 0, `after removing the old key: ${r.stderr}`);
    assertNoLeftovers(lab, 'exit codes');
  } finally {
    await lab.cleanup();
    s.cleanup();
  }
});

test('password logins (sshpass) and secrets: never in process command lines, logs or leftovers, during and after a call', async () => {
  const s = new Scratch();
  const lab = new SshLab(s);
  const password = `pw-${Math.random().toString(36).slice(2)}-'"$x`;
  const undo = privateRootPassword(password, lab.dir);
  try {
    const key = lab.keyPair();
    lab.authorize(key);
    const hosts = [await lab.addHost({ name: 'p0', password: true }), await lab.addHost({ name: 'p1', password: true })];
    const physPw = { hosts: hosts.map((h) => h.address).join(','), password };
    const physKey = { hosts: hosts.map((h) => h.address).join(','), sshkey: key.privateKey };
    const keyLines = key.privateKey.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'));

    let r = await proxy(lab, ['ensure-network-device', '--network-id', '61', '--physical-network-extension-details', JSON.stringify(physPw)]);
    assert.is(r.status, 0, r.stderr);
    const chosen = detailsOf(r).host;
    assert.is(chosen, hosts[cksumIndex('61', 2)].address);

    // wrong password: 2, naming host and port
    r = await proxy(lab, ['implement-network', '--network-id', '61', '--physical-network-extension-details', JSON.stringify({ host: chosen, password: 'wrong' })]);
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, `root@${chosen} port 22`);
    assert.match(r.stderr, 'authentication failed');
    // wrong password while probing: that host is "unreachable"
    r = await proxy(lab, ['ensure-network-device', '--network-id', '61', '--physical-network-extension-details', JSON.stringify({ ...physPw, password: 'wrong' })]);
    assert.is(r.status, 1, r.stderr);

    // scan every process while calls hold in the remote wrapper (password and key logins)
    for (const [label, phys] of [['password', physPw], ['key', physKey]] as const) {
      lab.stub.clear();
      lab.stub.setHold(true);
      const pf = payloadFile(lab, `pw-${label}.json`, { 'physical-network-extension-details': phys, 'network-extension-details': { host: chosen }, payload: { network_id: '61', ip: '10.0.0.9', password: 'vm-secret-in-payload' } });
      const running = proxy(lab, ['save-password', pf, '60', '--log-level', 'debug']);
      assert.ok(await waitFor(() => lab.stub.calls().some((c) => c.holding), 15_000), `${label}: the call reached the wrapper`);
      const lines = allCommandLines();
      for (const p of lines) {
        assert.not.ok(p.cmdline.includes(password), `${label}: password in the command line of pid ${p.pid}: ${p.cmdline}`);
        for (const kl of keyLines) assert.not.ok(p.cmdline.includes(kl), `${label}: key material in the command line of pid ${p.pid}`);
        assert.not.ok(p.cmdline.includes('vm-secret-in-payload'), `${label}: payload secret in pid ${p.pid}`);
        // sshpass -e scrubs SSHPASS: the password is not even in an environment block
        assert.not.ok(p.environ.includes(password), `${label}: password in the environment of pid ${p.pid}: ${p.cmdline}`);
      }
      assert.ok(lines.some((p) => p.cmdline.includes(`${lab.dir}/ptmp`) && p.cmdline.startsWith(label === 'password' ? 'sshpass' : 'ssh')), `${label}: the scan saw our ssh processes`);
      // while the wrapper runs, the key file is already gone (it only exists until the master authenticated)
      const files = readdirSync(join(lab.dir, 'ptmp')).flatMap((d) => readdirSync(join(lab.dir, 'ptmp', d)));
      assert.not.ok(files.some((f) => /^k[0-9]+$/.test(f)), `${label}: no key file while the wrapper runs (${files})`);
      lab.stub.setHold(false);
      r = await running;
      assert.is(r.status, 0, r.stderr);
      const c = lab.stub.calls()[0];
      assert.is(JSON.parse(c.payload!).payload.password, 'vm-secret-in-payload', 'VM password still delivered');
      assert.not.ok(c.payload!.includes(password), 'SSH password not sent to the host');
      assert.not.ok(c.payload!.includes(keyLines[0]), 'SSH key not sent to the host');
    }
    const log = readFileSync(join(lab.dir, 'proxy.log'), 'utf8');
    assert.ok(log.includes('"msg":"forwarding"'), 'the log has records');
    assert.not.ok(log.includes(password), 'no password in the log');
    for (const kl of keyLines) assert.not.ok(log.includes(kl), 'no key in the log');
    assertNoLeftovers(lab, 'secrets');
  } finally {
    undo();
    await lab.cleanup();
    s.cleanup();
  }
  assert.not.ok(readFileSync('/etc/shadow', 'utf8').includes(password.slice(0, 6)), 'shadow restored');
});

test('SIGTERM and time limit: exit 2, children gone, temp files and the remote payload removed', async () => {
  const s = new Scratch();
  const lab = new SshLab(s);
  try {
    const key = lab.keyPair();
    lab.authorize(key);
    const h = await lab.addHost({ name: 's0' });
    const pf = payloadFile(lab, 'sig.json', { 'physical-network-extension-details': { host: h.address, sshkey: key.privateKey }, payload: { network_id: '71' } });

    lab.stub.setHold(true);
    let pid = 0;
    const running = proxy(lab, ['implement-network', pf, '60'], { onSpawn: (p) => { pid = p; } });
    assert.ok(await waitFor(() => lab.stub.calls().some((c) => c.holding), 15_000));
    process.kill(pid, 'SIGTERM');
    let r = await running;
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, 'SIGTERM');
    assert.match(r.stderr, 'interrupted');
    assert.equal(readdirSync(h.tmp), [], 'remote payload removed after the interrupt');
    lab.stub.setHold(false);
    await waitFor(() => lab.stub.calls().every((c) => c.done), 5000);
    assertNoLeftovers(lab, 'SIGTERM');

    // the call's time limit
    lab.stub.clear();
    lab.stub.setHold(true);
    const t0 = Date.now();
    r = await proxy(lab, ['implement-network', pf, '4']);
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, 'timed out');
    assert.ok(Date.now() - t0 < 9000, 'ends near the limit');
    assert.equal(readdirSync(h.tmp), []);
    lab.stub.setHold(false);
    await waitFor(() => lab.stub.calls().every((c) => c.done), 5000);
    assertNoLeftovers(lab, 'timeout');
  } finally {
    lab.stub.setHold(false);
    await lab.cleanup();
    s.cleanup();
  }
});

test.run();
