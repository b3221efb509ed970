// Named network namespaces made like iproute2 makes them, entering them synchronously, and handles on them.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readlinkSync, statSync } from 'node:fs';
import {
  NetnsError, NetnsHandle, addNetns, deleteNetns, listNetns, netnsExists, openNetnsFd, runInNetns, runInNetnsFd,
  openCurrentNetns, netnsPath,
} from '../../lib/netns/index.js';
import { NetlinkHandle } from '../../lib/netlink/index.js';
import { libc } from '../../lib/sys/index.js';
import { scratch, uniq, run } from '../netlink/helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { thrown } from '../helpers/expect.js';

requireSandbox();
const test = suite('namespaces');

const threadNs = (): string => readlinkSync('/proc/thread-self/ns/net');
const nsInode = (name: string): number => statSync(netnsPath(name)).ino;
const inodeOf = (link: string): number => Number(/\[(\d+)\]/.exec(link)![1]);

const throwsNetns = (fn: () => unknown, code: string): NetnsError => thrown(fn, NetnsError, { code: code as NetnsError['code'] });

/** Wait until `cond` holds (kernel namespace teardown is asynchronous). */
async function eventually(cond: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

test('add / exists / list / delete; EEXIST and ENOENT as typed errors; ifMissing / ifExists', () => scratch((s) => {
  const name = uniq('ns');
  s.track(name);
  assert.not.ok(netnsExists(name));
  addNetns(name);
  assert.ok(netnsExists(name));
  assert.ok(listNetns().includes(name));
  const e = throwsNetns(() => addNetns(name), 'EEXIST');
  assert.is(e.netns, name);
  addNetns(name, { ifMissing: true });
  deleteNetns(name);
  assert.not.ok(netnsExists(name));
  assert.not.ok(listNetns().includes(name));
  throwsNetns(() => deleteNetns(name), 'ENOENT');
  deleteNetns(name, { ifExists: true });
  throwsNetns(() => openNetnsFd(name), 'ENOENT');
  throwsNetns(() => NetnsHandle.open(name), 'ENOENT');
}));

test('iproute2 sees ours, we see theirs, and either side can delete the other\'s', () => scratch((s) => {
  const ours = uniq('no');
  const theirs = uniq('nt');
  s.track(ours);
  s.track(theirs);
  addNetns(ours);
  const listed = () => (JSON.parse(run('ip', ['-j', 'netns', 'list']).stdout.trim() || '[]') as Array<{ name: string }>).map((n) => n.name);
  assert.ok(listed().includes(ours), '`ip netns list` shows ours');
  assert.is(run('ip', ['netns', 'exec', ours, 'true']).status, 0, '`ip netns exec` enters ours');
  assert.is(run('ip', ['netns', 'add', theirs]).status, 0);
  assert.ok(netnsExists(theirs) && listNetns().includes(theirs), 'we see theirs');
  // a link made by us in theirs is seen by ip there
  const h = NetnsHandle.open(theirs);
  try {
    h.netlink.linkAdd({ kind: 'bridge', name: 'brx' });
  } finally {
    h.close();
  }
  assert.match(run('ip', ['-n', theirs, 'link', 'show', 'brx']).stdout, /brx/);
  deleteNetns(theirs);
  assert.not.ok(listed().includes(theirs), 'ip sees our delete');
  assert.is(run('ip', ['netns', 'del', ours]).status, 0);
  assert.not.ok(netnsExists(ours), 'we see theirs');
}));

test('runInNetns runs inside (another inode), comes back, also after a throw', () => scratch((s) => {
  const { name } = s.ns();
  const outside = threadNs();
  const inside = runInNetns(name, () => threadNs());
  assert.is.not(inside, outside);
  assert.is(inodeOf(inside), nsInode(name), 'the inode of /run/netns/NAME');
  assert.is(threadNs(), outside, 'back');
  assert.throws(() => runInNetns(name, () => { throw new Error('inside'); }), /inside/);
  assert.is(threadNs(), outside, 'back after a throw');
  // sockets opened inside stay there
  const nl = runInNetns(name, () => NetlinkHandle.open());
  try {
    const fd = nl.socket.netnsFd();
    try {
      assert.is(inodeOf(readlinkSync(`/proc/self/fd/${fd}`)), nsInode(name), 'socket bound to the namespace');
    } finally {
      libc.close(fd);
    }
    assert.ok(nl.linkList().every((l) => l.name === 'lo'), 'its links are the namespace\'s');
  } finally {
    nl.close();
  }
  // by fd
  const fd = openNetnsFd(name);
  try {
    assert.is(inodeOf(runInNetnsFd(fd, threadNs)), nsInode(name));
  } finally {
    libc.close(fd);
  }
  const cur = openCurrentNetns();
  try {
    assert.is(runInNetnsFd(cur, threadNs), outside);
  } finally {
    libc.close(cur);
  }
}));

test('a callback returning a Promise or an async function does not type-check and is refused; the thread is back', () => scratch((s) => {
  const { name } = s.ns();
  const outside = threadNs();
  let ran = false;
  // each @ts-expect-error fails the build if the types stop refusing the async callback
  // @ts-expect-error the callback must be synchronous
  const e1 = throwsNetns(() => runInNetns(name, async () => { ran = true; }), 'EINVAL');
  assert.match(e1.message, /synchronous/);
  assert.not.ok(ran, 'an async function is refused before it runs');
  // @ts-expect-error the callback must be synchronous
  throwsNetns(() => runInNetns(name, () => Promise.reject(new Error('late'))), 'EINVAL');
  // @ts-expect-error the callback must be synchronous
  throwsNetns(() => runInNetns(name, () => new Promise((r) => setTimeout(r, 1))), 'EINVAL');
  assert.is(threadNs(), outside);
}));

test('invalid names are refused everywhere', () => {
  for (const bad of ['', '.', '..', 'a/b', '../etc', '-x', '.hidden', 'a b', 'x'.repeat(65), 'tab\t']) {
    throwsNetns(() => addNetns(bad), 'EINVAL');
    throwsNetns(() => deleteNetns(bad), 'EINVAL');
    throwsNetns(() => netnsExists(bad), 'EINVAL');
    throwsNetns(() => NetnsHandle.open(bad), 'EINVAL');
    throwsNetns(() => runInNetns(bad, () => 1), 'EINVAL');
  }
  for (const ok of ['a', 'A_b-c.d', 'x'.repeat(64), '0vr-100']) assert.not.throws(() => netnsExists(ok), ok);
});

test('deleteNetns closes open handles, so the namespace really goes (its veth end disappears here)', () => scratch(async (s) => {
  const { name: host, h: hostH } = s.ns('th');
  const name = uniq('nd');
  s.track(name);
  addNetns(name);
  const h = NetnsHandle.open(name);
  const nl = h.netlink;
  const a = uniq('da');
  hostH.netlink.linkAdd({ kind: 'veth', name: a, peer: { name: uniq('db'), namespace: { netns: name } } });
  const sock = h.socket();
  deleteNetns(name);
  assert.ok(nl.socket.isClosed, 'the handle\'s netlink socket is closed');
  assert.ok(sock.isClosed, 'sockets it opened are closed');
  throwsNetns(() => h.netlink, 'EBADF');
  throwsNetns(() => h.run(() => 1), 'EBADF');
  assert.ok(await eventually(() => hostH.netlink.linkFind(a) === undefined), 'the namespace was destroyed: the veth pair is gone');
  assert.ok(host);
}));

test('an fd held elsewhere keeps a deleted namespace alive until it is closed', () => scratch(async (s) => {
  const { h: hostH } = s.ns('th');
  const name = uniq('nk');
  s.track(name);
  addNetns(name);
  const a = uniq('ka');
  hostH.netlink.linkAdd({ kind: 'veth', name: a, peer: { name: uniq('kb'), namespace: { netns: name } } });
  const fd = openNetnsFd(name);
  deleteNetns(name);
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(hostH.netlink.linkFind(a), 'still alive while the fd is open');
  libc.close(fd);
  assert.ok(await eventually(() => hostH.netlink.linkFind(a) === undefined), 'gone once closed');
}));

test('NetnsHandle: run, sockets of the namespace, current(), close is idempotent', () => scratch((s) => {
  const { name, h } = s.ns();
  assert.is(inodeOf(h.run(threadNs)), nsInode(name));
  assert.is(h.name, name);
  const sock = h.socket();
  const fd = sock.netnsFd();
  try {
    assert.is(inodeOf(readlinkSync(`/proc/self/fd/${fd}`)), nsInode(name));
  } finally {
    libc.close(fd);
  }
  sock.close();
  assert.is(h.netlink, h.netlink, 'one shared netlink handle');
  let closed = 0;
  h.onClose(() => { closed++; });
  const cur = NetnsHandle.current();
  try {
    assert.is(cur.name, null);
    assert.is(cur.run(threadNs), threadNs());
  } finally {
    cur.close();
    cur.close();
  }
  h.close();
  h.close();
  assert.is(closed, 1, 'onClose hooks run once');
}));

test.run();
