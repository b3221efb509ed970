/**
 * The daemon's OpenStack/EC2 answers on their own (hand-made routers and files, real guests with curl):
 * [fe80::a9fe:a9fe%if] listeners that tell IPv6 requesters by their MAC, hostile requests on the new paths,
 * the password POST's limits, and listen.json's link-local part validated.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Scratch, nsExec, nsTry, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { guestGet, routerAndGuest, writeVmFiles } from '../helpers/metadata.js';
import { listenFile, startDaemon, stopDaemon, syncRouter } from '../../lib/services/metadata/index.js';

requireSandbox();

const META = JSON.stringify({ uuid: 'u-a', hostname: 'a' });
const NET = JSON.stringify({ links: [], networks: [], services: [] });

/** Router/guest pair with IPv6 on the link: the router holds fe80::a9fe:a9fe, the guest fe80::10 (no DAD). */
function v6Pair(s: Scratch, routerIp: string, guestIp: string) {
  const p = routerAndGuest(s, routerIp, guestIp);
  const rIf = nsExec(p.router, ['ip', '-o', 'link', 'show']).split('\n').map((l) => /^\d+: ([^@:]+)/.exec(l)?.[1]).find((n) => n && n !== 'lo')!;
  nsExec(p.router, ['ip', '-6', 'addr', 'add', 'fe80::a9fe:a9fe/64', 'dev', rIf, 'nodad', 'noprefixroute']);
  nsExec(p.guest, ['ip', '-6', 'addr', 'add', 'fe80::10/64', 'dev', 'eth0', 'nodad']);
  const mac = nsExec(p.guest, ['cat', '/sys/class/net/eth0/address']).trim();
  return { ...p, rIf, mac };
}

const get6 = (ns: string, path: string, extra: string[] = []) => {
  const r = nsTry(ns, ['curl', '-s', '-g', '-m', '5', '-w', '\n%{http_code}', ...extra, `http://[fe80::a9fe:a9fe%eth0]${path}`], 10_000);
  const i = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(i + 1)) || 0, body: i >= 0 ? r.stdout.slice(0, i) : '' };
};

test('link-local listener: an IPv6 requester is served the data of the address recorded with its MAC, nothing otherwise', async () => {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'md-ag-'));
  try {
    const a = v6Pair(s, '10.71.1.1', '10.71.1.10');
    writeVmFiles(stateDir, a.router, ['10.71.1.1'], '10.71.1.10', {
      'user-data': 'who: a', mac: `${a.mac}\n`, 'openstack/meta_data.json': META, 'openstack/network_data.json': NET, 'ec2.json': JSON.stringify({ 'instance-id': 'i-a' }),
    });
    const spec = (macs: Record<string, string>) => writeFileSync(listenFile(stateDir, a.router), JSON.stringify({ namespace: a.router, addresses: ['10.71.1.1'], linkLocal: [{ ifname: a.rIf, macs }] }));
    spec({ [a.mac]: '10.71.1.10' });
    await startDaemon(stateDir, { idleExitMs: -1 });
    const st = await syncRouter(stateDir, a.router, { start: false });
    assert.ok(st.listening.some((l) => l.startsWith(`[fe80::a9fe:a9fe%${a.rIf}#`)), st.listening.join(','));
    assert.equal(get6(a.guest, '/openstack/latest/meta_data.json'), { status: 200, body: META });
    assert.equal(get6(a.guest, '/openstack/latest/user_data'), { status: 200, body: 'who: a' });
    assert.equal(get6(a.guest, '/2009-04-04/meta-data/instance-id'), { status: 200, body: 'i-a' });
    // the same over IPv4 (the guest's own address): the same data
    assert.equal(guestGet(a.guest, 'http://10.71.1.1/openstack/latest/meta_data.json'), { status: 200, body: META });

    // the MAC not recorded for any address of this interface: nothing (the positive control above, same guest)
    spec({ '02:00:00:00:99:99': '10.71.1.10' });
    await syncRouter(stateDir, a.router, { start: false });
    assert.is(get6(a.guest, '/openstack/latest/meta_data.json').status, 404);
    // mapped to an address whose directory records another MAC: nothing either
    writeVmFiles(stateDir, a.router, ['10.71.1.1'], '10.71.1.10', { mac: '02:00:00:00:99:99\n' });
    spec({ [a.mac]: '10.71.1.10' });
    await syncRouter(stateDir, a.router, { start: false });
    assert.is(get6(a.guest, '/openstack/latest/meta_data.json').status, 404);
    writeVmFiles(stateDir, a.router, ['10.71.1.1'], '10.71.1.10', { mac: `${a.mac}\n` });
    spec({ [a.mac]: '10.71.1.10' });
    assert.is(get6(a.guest, '/openstack/latest/meta_data.json').status, 200, 'and back (the files are read per request)');
    // without linkLocal in listen.json the IPv6 listener goes
    writeVmFiles(stateDir, a.router, ['10.71.1.1'], '10.71.1.10', {});
    await syncRouter(stateDir, a.router, { start: false });
    assert.is(get6(a.guest, '/openstack/latest/meta_data.json').status, 0, 'no listener');
    assert.is(guestGet(a.guest, 'http://10.71.1.1/openstack/latest/meta_data.json').status, 200, 'IPv4 still served');
  } finally {
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('hostile requests on the new paths: traversal, prototype keys, methods, oversized and repeated password posts', async () => {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'md-ag-'));
  try {
    const a = routerAndGuest(s, '10.72.1.1', '10.72.1.10');
    const b = routerAndGuest(s, '10.72.2.1', '10.72.2.10', a.router);
    writeVmFiles(stateDir, a.router, ['10.72.1.1', '10.72.2.1'], '10.72.1.10', {
      'user-data': 'who: a', 'openstack/meta_data.json': META, 'openstack/network_data.json': NET,
      'ec2.json': JSON.stringify({ 'instance-id': 'i-a', placement: { 'availability-zone': 'z' }, 'public-keys': { '0=k': { 'openssh-key': 'ssh-ed25519 K k' } } }),
    });
    writeVmFiles(stateDir, a.router, ['10.72.1.1', '10.72.2.1'], '10.72.2.10', { 'user-data': 'who: b', 'meta-data/instance-id': 'i-b' });
    await startDaemon(stateDir, { idleExitMs: -1 });
    await syncRouter(stateDir, a.router, { start: false });
    const A = 'http://10.72.1.1';
    assert.equal(guestGet(a.guest, `${A}/2009-04-04/meta-data/public-keys/`), { status: 200, body: '0=k' });
    assert.equal(guestGet(a.guest, `${A}/2009-04-04/meta-data/public-keys/0/openssh-key`), { status: 200, body: 'ssh-ed25519 K k' });
    assert.equal(guestGet(a.guest, `${A}/2009-04-04/`), { status: 200, body: 'meta-data/\nuser-data' });
    for (const p of ['/openstack/latest/../../10.72.2.10/user-data', '/openstack/latest/..%2F..%2F10.72.2.10%2Fuser-data', '/openstack/latest/%2e%2e/user_data',
      '/2009-04-04/meta-data/__proto__', '/2009-04-04/meta-data/constructor', '/2009-04-04/meta-data/placement/availability-zone/x',
      '/openstack/latest/meta_data.json%00', '/openstack/latest/mac', '/openstack/latest/owner', '/2009-04-04/meta-data/../../../etc/passwd']) {
      const r = guestGet(a.guest, `${A}${p}`);
      assert.is(r.status, 404, p);
      assert.not.match(r.body, 'who', p);
    }
    // b has CloudStack data but no identity: no OpenStack/EC2 documents, its CloudStack layout as always
    assert.is(guestGet(b.guest, 'http://10.72.2.1/openstack/latest/meta_data.json').status, 404);
    assert.is(guestGet(b.guest, 'http://10.72.2.1/openstack/latest/password').status, 404);
    assert.is(guestGet(b.guest, 'http://10.72.2.1/2009-04-04/meta-data/instance-id').status, 404);
    assert.equal(guestGet(b.guest, 'http://10.72.2.1/latest/meta-data/instance-id'), { status: 200, body: 'i-b' });
    assert.equal(guestGet(b.guest, 'http://10.72.2.1/openstack'), { status: 200, body: guestGet(a.guest, `${A}/openstack`).body }, 'the version list: to anyone');

    // methods: POST only on the password; HEAD answers without a body
    for (const [m, p] of [['POST', '/openstack/latest/meta_data.json'], ['PUT', '/openstack/latest/password'], ['DELETE', '/openstack/latest/password'], ['POST', '/latest/user-data'], ['POST', '/2009-04-04/user-data']] as const) {
      assert.is(guestGet(a.guest, `${A}${p}`, {}, { method: m }).status, 405, `${m} ${p}`);
    }
    assert.equal(guestGet(a.guest, `${A}/openstack/latest/meta_data.json`, {}, { method: 'HEAD' }).status, 200);
    const post = (body: string, extra: string[] = []) => {
      const r = nsTry(a.guest, ['curl', '-s', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}', ...extra, '--data-binary', body, `${A}/openstack/latest/password`], 10_000);
      return Number(r.stdout);
    };
    assert.is(post('x'.repeat(300), ['-H', 'Transfer-Encoding: chunked']), 400, 'chunked, more than 256 bytes');
    assert.is(post('x'.repeat(100_000)), 400, 'Content-Length above the limit: refused unread');
    assert.equal(guestGet(a.guest, `${A}/openstack/latest/password`), { status: 200, body: '' }, 'nothing stored by the refused posts');
    assert.is(post(''), 200, 'an empty value (Nova: not a set password)');
    assert.is(post('enc-1'), 200);
    assert.is(post('enc-2'), 409);
    assert.equal(guestGet(a.guest, `${A}/openstack/latest/password`), { status: 200, body: 'enc-1' });
    // concurrent first posts from the same VM: exactly one wins
    writeVmFiles(stateDir, a.router, ['10.72.1.1', '10.72.2.1'], '10.72.1.10', {});
    rmSync(join(stateDir, 'vmdata', a.router, 'vms', '10.72.1.10', 'os-password'));
    const r = nsTry(a.guest, ['sh', '-c', `for x in 0 1 2 3 4 5 6 7; do curl -s -o /dev/null -w '%{http_code}\\n' -d p$x ${A}/openstack/latest/password & done; wait`], 20_000);
    const codes = r.stdout.trim().split('\n').sort();
    assert.equal(codes.filter((c) => c === '200').length, 1, codes.join(','));
    assert.equal(codes.filter((c) => c === '409').length, 7, codes.join(','));
    assert.match(guestGet(a.guest, `${A}/openstack/latest/password`).body, /^p[0-7]$/);
    assert.is(guestGet(b.guest, 'http://10.72.2.1/latest/user-data').body, 'who: b', 'b unaffected throughout');
  } finally {
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('listen.json\'s link-local part is checked: a bad interface name, MAC or address fails the sync', async () => {
  const s = new Scratch();
  const stateDir = mkdtempSync(join(tmpdir(), 'md-ag-'));
  try {
    const a = routerAndGuest(s, '10.73.1.1', '10.73.1.10');
    writeVmFiles(stateDir, a.router, ['10.73.1.1'], '10.73.1.10', { 'user-data': 'x' });
    await startDaemon(stateDir, { idleExitMs: -1 });
    for (const linkLocal of [[{ ifname: '../x', macs: {} }], [{ ifname: 'eth0', macs: { '02:00:00:00:00:0A': '10.73.1.10' } }], [{ ifname: 'eth0', macs: { '02:00:00:00:00:0a': '10.73.1.1/24' } }],
      [{ ifname: 'eth0', macs: [] }], [{ ifname: 'a-very-long-interface-name', macs: {} }], { ifname: 'eth0' }]) {
      writeFileSync(listenFile(stateDir, a.router), JSON.stringify({ namespace: a.router, addresses: ['10.73.1.1'], linkLocal }));
      let failed = false;
      try {
        await syncRouter(stateDir, a.router, { start: false });
      } catch (e) {
        failed = /not a listen specification/.test((e as Error).message);
      }
      assert.ok(failed, JSON.stringify(linkLocal));
    }
    writeFileSync(listenFile(stateDir, a.router), JSON.stringify({ namespace: a.router, addresses: ['10.73.1.1'], linkLocal: [{ ifname: 'nosuchif0', macs: {} }] }));
    const st = await syncRouter(stateDir, a.router, { start: false });
    assert.equal(st.listening, ['10.73.1.1:80', '10.73.1.1:8080'], 'an interface not there is simply not listened on');
    assert.ok(await waitFor(() => guestGet(a.guest, 'http://10.73.1.1/latest/user-data').body === 'x'), 'positive control');
  } finally {
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test.run();
