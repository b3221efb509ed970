/** Proxy building blocks without SSH: POSIX cksum vs /usr/bin/cksum, host lists vs bash, quoting vs sh, payload shaping, parsing. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { posixCksum, preferredHostIndex } from '../../lib/proxy/cksum.js';
import { credentialsOf, forwardHostOf, hostListOf, isValidHost, normalizePrivateKey, probeOrder, splitHostList } from '../../lib/proxy/hosts.js';
import { parseProxyInvocation, type ProxyInvocation } from '../../lib/proxy/invocation.js';
import { uploadDocument } from '../../lib/proxy/payload.js';
import { installProxy, parseInstallProxy, proxyPathFor, PROXY_SHIM_MARKER } from '../../lib/proxy/install-proxy.js';
import { shQuote } from '../../lib/router/contract/install-wrapper.js';
import { UsageError } from '../../lib/util/errors.js';
import { ProxyConfigError, RemoteCommandError } from '../../lib/proxy/errors.js';
import { runProxy } from '../../lib/proxy/run.js';
import { redact } from '../../lib/router/log.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { thrown } from '../helpers/expect.js';

requireSandbox();

function cksumOf(data: Buffer): number {
  const out = execFileSync('/usr/bin/cksum', { input: data, encoding: 'utf8' });
  return Number(out.trim().split(/\s+/)[0]);
}

test('posixCksum: bit-compatible with /usr/bin/cksum (empty, ids, UUIDs, binary, lengths across byte boundaries)', () => {
  const samples: Buffer[] = [Buffer.alloc(0), Buffer.from('a'), Buffer.from('42'), Buffer.from('123456789')];
  for (let i = 0; i < 60; i++) samples.push(Buffer.from(String(i * 7919)));
  for (let i = 0; i < 20; i++) samples.push(Buffer.from(crypto.randomUUID()));
  for (const n of [1, 2, 3, 255, 256, 257, 1000, 65535, 65536, 65537, 200_000]) samples.push(randomBytes(n));
  samples.push(Buffer.from('vpc-ü-€-𝄞'));
  for (const s of samples) assert.is(posixCksum(s), cksumOf(s), `length ${s.length}`);
  // `printf 123456789 | cksum` (CRC-32/CKSUM's catalogue check value 0x765E7680 is without the length bytes)
  assert.is(posixCksum('123456789'), 930766865);
  // and not zlib's crc32 (0xCBF43926)
  assert.is.not(posixCksum('123456789'), 0xcbf43926);
});

test('preferredHostIndex: cksum modulo the host count, like `printf %s KEY | cksum | awk {print $1 % n}`', () => {
  for (const key of ['1', '42', '207', 'b4c1e7a0-vpc', '9999']) {
    for (const n of [1, 2, 3, 5, 7]) {
      const sh = execFileSync('sh', ['-c', 'printf %s "$1" | cksum | awk -v n="$2" \'{print ($1 % n)}\'', 'sh', key, String(n)], { encoding: 'utf8' });
      assert.is(preferredHostIndex(key, n), Number(sh.trim()), `${key} % ${n}`);
    }
  }
  assert.throws(() => preferredHostIndex('1', 0));
});

test('splitHostList: same fields as bash `IFS=, read -ra` + `${h// /}`', () => {
  const cases = ['a,b', 'a,b,', 'a,b,,', ',a', 'a,,b', ' a , b ', 'a', '', ',', ',,', 'a\nb,c', '  ,a', '10.0.0.1, 10.0.0.2 ,10.0.0.3', 'h1\t,h2'];
  for (const c of cases) {
    const r = spawnSync('bash', ['-c', 'IFS="," read -ra L <<< "$1"; for h in "${L[@]}"; do printf "%s\\0" "${h// /}"; done', 'bash', c], { encoding: 'utf8' });
    const expected = r.stdout === '' ? [] : r.stdout.slice(0, -1).split('\0');
    assert.equal(splitHostList(c), expected, JSON.stringify(c));
  }
});

test('probeOrder wraps from the preferred index and skips empty entries', () => {
  assert.equal(probeOrder(['a', 'b', 'c'], 1).map((p) => p.host), ['b', 'c', 'a']);
  assert.equal(probeOrder(['a', '', 'c'], 1).map((p) => p.index), [2, 0]);
});

test('hosts and credentials from physical-network details', () => {
  assert.ok(isValidHost('10.0.0.1') && isValidHost('kvm-1.example.org') && isValidHost('fd00::5'));
  for (const bad of ['-oProxyCommand=x', 'a b', 'a;b', 'host:22', '', 'a..b', '$(id)']) assert.not.ok(isValidHost(bad), bad);
  assert.equal(hostListOf({ hosts: '10.0.0.1, 10.0.0.2' }), ['10.0.0.1', '10.0.0.2']);
  assert.equal(hostListOf({ host: '10.0.0.9' }), ['10.0.0.9']);
  assert.equal(hostListOf({}), []);
  assert.throws(() => hostListOf({ hosts: '10.0.0.1,-oProxyCommand=touch' }), (e: unknown) => e instanceof ProxyConfigError && e.exitCode === 1);

  const key = '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----';
  assert.equal(credentialsOf({ sshkey: key, password: 'pw' }), { user: 'root', port: 22, auth: { kind: 'key', key: `${key}\n` } });
  assert.equal(credentialsOf({ password: 'pw', username: 'cloud', port: 2222 }), { user: 'cloud', port: 2222, auth: { kind: 'password', password: 'pw' } });
  assert.equal(credentialsOf({ port: '2200' }).port, 2200);
  assert.equal(credentialsOf({}).auth, { kind: 'default' });
  assert.is(normalizePrivateKey(key.replace(/\n/g, '\\n')), `${key}\n`, 'literal \\n sequences');
  assert.is(normalizePrivateKey(key.replace(/\n/g, '\r\n')), `${key}\n`, 'CRLF');
  for (const bad of [{ port: '0' }, { port: '70000' }, { port: '22; rm' }, { username: '-oX' }, { username: 'a b' }]) {
    assert.throws(() => credentialsOf(bad), (e: unknown) => e instanceof ProxyConfigError, JSON.stringify(bad));
  }
  let msg = '';
  try { credentialsOf({ sshkey: 'hunter2-not-a-key' }); } catch (e) { msg = (e as Error).message; }
  assert.match(msg, 'sshkey');
  assert.not.match(msg, 'hunter2', 'a bad key is never quoted');

  assert.is(forwardHostOf({ hosts: 'a,b', host: 'c' }, { host: 'b' }), 'b', 'remembered host first');
  assert.is(forwardHostOf({ hosts: 'a,b', host: 'c' }, {}), 'c', 'then the single host');
  assert.is(forwardHostOf({ hosts: ' a ,b' }, {}), 'a', 'then the first of the list');
  assert.is(forwardHostOf({}, {}), undefined);
});

test('shQuote: any argument survives the remote shell intact', () => {
  const nasty = ["it's", 'a "b" c', '$(touch /tmp/pwned-nrp)', '`id`', 'line1\nline2', '\\back\\slash', ' lead', 'trail ', '*', '~root', '-n', "'", "''", '$HOME ${IFS}', ';|&<>'];
  for (const s of nasty) {
    const r = spawnSync('sh', ['-c', `printf %s ${shQuote(s)}`], { encoding: 'utf8' });
    assert.is(r.stdout, s, JSON.stringify(s));
  }
});

function inv(argv: string[], env: Record<string, string | undefined> = {}): ProxyInvocation {
  const r = parseProxyInvocation(argv, { NETNS_ROUTER_LOG_FILE: '/dev/null', HOME: '/root', ...env });
  if (r.kind !== 'call') throw new Error('expected a call');
  return r;
}

test('parseProxyInvocation: both forms, validation by the wrapper parser, proxy options, ensure-network-device', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nrp-unit-'));
  try {
    const phys = { hosts: '10.0.0.1,10.0.0.2', sshkey: '-----BEGIN OPENSSH PRIVATE KEY-----\nK\n-----END OPENSSH PRIVATE KEY-----', password: 'pw' };
    const file = join(dir, 'p.json');
    writeFileSync(file, JSON.stringify({ 'physical-network-extension-details': phys, 'network-extension-details': JSON.stringify({ host: '10.0.0.2' }), payload: { network_id: '42', vlan: '100', current_details: { host: '10.0.0.1' } } }));

    let i = inv(['implement-network', file, '30']);
    assert.is(i.form, 'payload-file');
    assert.is(i.networkId, '42');
    assert.is(i.settings.timeoutSeconds, 30);
    assert.is(i.details.network.host, '10.0.0.2');
    assert.is(i.proxy.remoteWrapper, '/etc/cloudstack/extensions/network-namespace/network-namespace-wrapper.sh');
    assert.is(i.proxy.knownHostsFile, '/root/.ssh/netns-router_known_hosts');
    assert.is(i.proxy.connectTimeoutSec, 5);

    i = inv(['implement-network', file, '--extension', 'extnet', '--vlan', '200', '--known-hosts', '/x/kh', '--host-netns', 'hn', '--connect-timeout', '3'], { CS_NET_SCRIPT_PATH: undefined });
    assert.is(i.proxy.remoteWrapper, '/etc/cloudstack/extensions/extnet/extnet-wrapper.sh');
    assert.is(i.proxy.knownHostsFile, '/x/kh');
    assert.is(i.proxy.connectTimeoutSec, 3);
    assert.equal(i.forwardOptions, ['--host-netns', 'hn']);
    assert.equal(i.overrides.map((o) => [o.key, o.value]), [['vlan', '200']]);
    assert.is(inv(['status', file], { CS_NET_SCRIPT_PATH: '/opt/w.sh' }).proxy.remoteWrapper, '/opt/w.sh');

    // the upload: option applied, details resolved, SSH secrets gone
    const doc = uploadDocument(i);
    assert.is((doc.payload as Record<string, unknown>).vlan, '200');
    assert.is((doc.payload as Record<string, unknown>).network_id, '42');
    assert.equal(doc['physical-network-extension-details'], { hosts: '10.0.0.1,10.0.0.2' });
    assert.equal(doc['network-extension-details'], { host: '10.0.0.2' });

    // options form → payload form, document files read locally
    const fw = join(dir, 'fw.json');
    writeFileSync(fw, '{"default_egress_allow":true,"rules":[]}');
    i = inv(['apply-fw-rules', '--network-id', '7', '--fw-rules-file', fw, '--physical-network-extension-details', JSON.stringify(phys)]);
    assert.is(i.form, 'options');
    const d2 = uploadDocument(i);
    assert.equal(d2.payload, { network_id: '7', fw_rules: '{"default_egress_allow":true,"rules":[]}' });
    assert.equal(d2['physical-network-extension-details'], { hosts: '10.0.0.1,10.0.0.2' });

    // custom-action stays flat
    i = inv(['custom-action', '--network-id', '7', '--action', 'dump-config', '--action-params', '{"a":"b"}']);
    const d3 = uploadDocument(i);
    assert.is(d3.network_id, '7');
    assert.is(d3.action, 'dump-config');
    assert.is(d3['action-params'], '{"a":"b"}');
    assert.is(d3.payload, undefined);

    // ensure-network-device: ids and current details in both forms
    i = inv(['ensure-network-device', file]);
    assert.is(i.command, 'ensure-network-device');
    assert.equal(i.currentDetails, { host: '10.0.0.1' });
    i = inv(['ensure-network-device', '--vpc-id', '9', '--current-details', '{"host":"10.0.0.2"}']);
    assert.is(i.vpcId, '9');
    assert.equal(i.currentDetails, { host: '10.0.0.2' });

    // the wrapper's validation, before any SSH
    const usage = (argv: string[], needle: string): UsageError =>
      thrown(() => parseProxyInvocation(argv, { NETNS_ROUTER_LOG_FILE: '/dev/null' }), UsageError, { message: new RegExp(needle.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) }, `accepted ${argv.join(' ')}`);
    usage(['implement-network', '--vlan', '100'], 'network');
    usage(['add-port-forward', '--network-id', '1', '--public-ip', '203.0.113.5', '--private-ip', '10.0.0.5', '--public-port', '99999', '--private-port', '80'], '--public-port');
    usage(['frobnicate', '--network-id', '1'], 'unknown command');
    usage(['install-wrapper', '--extension', 'x'], 'not a router command');
    usage(['ensure-network-device', '--network-id', 'a b'], '--network-id');
    usage(['implement-network', '--network-id', '1', '--connect-timeout', '0'], '--connect-timeout');
    usage(['implement-network', '--network-id', '1', '--known-hosts', 'relative/kh'], 'known_hosts');
    assert.is(parseProxyInvocation(['--help'], {}).kind, 'help');
    assert.is(parseProxyInvocation([], {}).kind, 'help');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('install-proxy: shim under --root, baked options, refuses a foreign file without --force', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nrp-inst-'));
  try {
    const script = join(dir, 'main.js');
    writeFileSync(script, '');
    const req = parseInstallProxy(['--extension', 'extnet', '--root', dir, '--script', script, '--node', '/usr/bin/node', '--known-hosts', '/var/lib/kh', '--connect-timeout', '3'], {});
    if ('help' in req) throw new Error('help?');
    const r = installProxy(req);
    assert.is(r.path, proxyPathFor('extnet', dir));
    assert.is(r.path, join(dir, 'usr/share/cloudstack-management/extensions/extnet/extnet.sh'));
    const text = readFileSync(r.path, 'utf8');
    assert.ok(text.includes(PROXY_SHIM_MARKER));
    assert.ok(text.includes(`exec '/usr/bin/node' '${script}' 'proxy' '--extension' 'extnet' '--known-hosts' '/var/lib/kh' '--connect-timeout' '3' "$@"`), text);
    assert.is(statSync(r.path).mode & 0o777, 0o755);
    assert.is(installProxy(req).replaced, true, 'our own shim is replaced');
    writeFileSync(r.path, '#!/bin/bash\n# upstream network-namespace.sh\n');
    assert.throws(() => installProxy(req), /--force/);
    assert.is(installProxy({ ...req, force: true }).replaced, true);
    // re-installing without the baked options keeps them (and says so); --reset drops them
    const again = parseInstallProxy(['--extension', 'extnet', '--root', dir, '--script', script, '--node', '/usr/bin/node', '--force'], {});
    if ('help' in again) throw new Error('help?');
    const kept = installProxy(again);
    assert.equal(kept.changes.kept.map((k) => k.option), ['--known-hosts', '--connect-timeout']);
    assert.ok(readFileSync(r.path, 'utf8').includes(`'proxy' '--extension' 'extnet' '--known-hosts' '/var/lib/kh' '--connect-timeout' '3' "$@"`));
    const reset = installProxy({ ...again, reset: true });
    assert.equal(reset.changes.dropped.map((k) => k.option), ['--known-hosts', '--connect-timeout']);
    assert.ok(readFileSync(r.path, 'utf8').includes(`'proxy' '--extension' 'extnet' "$@"`));
    assert.throws(() => parseInstallProxy(['--root', dir, '--script', script], {}), /--extension/);
    assert.throws(() => parseInstallProxy(['--extension', 'x', '--bogus', '1', '--script', script], {}), /--bogus/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('proxy log: a usage error is not logged (the call closes at info), a configuration problem is a warning without a stack', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nrp-log-'));
  try {
    const log = join(dir, 'proxy.log');
    const env = { NETNS_ROUTER_LOG_FILE: log, HOME: dir, NETNS_ROUTER_PROXY_KNOWN_HOSTS: join(dir, 'kh') };
    let stderr = '';
    const quiet = { env, stdout: () => {}, stderr: (t: string) => { stderr += t; } };
    // parse time: nothing at all
    assert.is(await runProxy(['implement-network', '--network-id', 'x y'], quiet), 1);
    assert.is(await runProxy(['frobnicate'], quiet), 1);
    assert.match(stderr, /unknown command 'frobnicate'/);
    assert.not.ok(readFileSync(log, { flag: 'a+' }).length, 'nothing logged at parse time');
    // run time: no host configured → configuration problem (exit 1, upstream's code), a warning
    assert.is(await runProxy(['ensure-network-device', '--network-id', '5'], quiet), 1);
    const records = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const failed = records.find((r) => r.msg === 'proxy failed');
    assert.ok(failed, JSON.stringify(records));
    assert.is(failed.level, 40);
    assert.is(failed.err.type, 'ProxyConfigError');
    assert.is(failed.err.stack, undefined, 'an expected outcome: no stack trace');
    // the same for the remote wrapper's failure (what most proxy warnings carry)
    const e = redact(new RemoteCommandError('remote wrapper exited 2', 2, null)) as Record<string, unknown>;
    assert.is(e.message, 'remote wrapper exited 2');
    assert.is(e.stack, undefined);
    assert.ok((redact(new Error('a defect')) as Record<string, unknown>).stack, 'a defect keeps its stack');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
