// Off-thread requests: linkDelAsync / requestAsync run the kernel's (RCU-bound, ~20 ms) work on a worker
// thread through a second socket of the same namespace, so the event loop keeps running.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { scratch, uniq, rejectsNetlink } from './helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();
const test = suite('async');

const openFds = (): number => readdirSync('/proc/self/fd').length;

test('linkDelAsync deletes without blocking the event loop', () => scratch(async (s) => {
  const { h } = s.ns();
  const nl = h.netlink;
  const a = uniq('aa');
  nl.linkAdd({ kind: 'veth', name: a, up: true, peer: { name: uniq('ab'), up: true } });
  let immediateRan = false;
  setImmediate(() => { immediateRan = true; });
  // no wall-clock bound here (tests run on loaded machines): the setImmediate below proves the loop ran
  const p = nl.linkDelAsync(a);
  const deleted = await p;
  // a synchronous delete resolved through a promise would resume us before any immediate could run
  assert.ok(immediateRan, 'the event loop ran while the kernel worked');
  assert.is(deleted, true);
  assert.is(nl.linkFind(a), undefined);
  assert.is(await nl.linkDelAsync(a, { ifExists: true }), false);
  await rejectsNetlink(nl.linkDelAsync(a), 'ENODEV', { operation: `RTM_DELLINK ${a}` });
}));

test('concurrent deletes each get a socket; timers keep firing meanwhile; no fd leak', () => scratch(async (s) => {
  const { h } = s.ns();
  const nl = h.netlink;
  const names = Array.from({ length: 8 }, () => uniq('ac'));
  for (const n of names) nl.linkAdd({ kind: 'veth', name: n, up: true, peer: { name: `${n}p`, up: true } });
  await nl.linkDelAsync(uniq('zz'), { ifExists: true }); // warm the idle socket pool
  const fds = openFds();
  let ticks = 0;
  const iv = setInterval(() => { ticks++; }, 1);
  try {
    const results = await Promise.all(names.map((n) => nl.linkDelAsync(n)));
    assert.equal(results, names.map(() => true));
  } finally {
    clearInterval(iv);
  }
  assert.ok(ticks > 0, `timer fired ${ticks} times during the deletes`);
  for (const n of names) assert.is(nl.linkFind(n), undefined);
  assert.ok(openFds() <= fds + 2, `sockets beyond the idle pool are closed (${openFds()} fds, had ${fds})`);
}));

test('off-thread requests act in the handle\'s namespace, not the thread\'s', () => scratch(async (s) => {
  const A = s.ns('ta');
  const B = s.ns('tb');
  const name = uniq('an');
  A.h.netlink.linkAdd({ kind: 'bridge', name });
  B.h.netlink.linkAdd({ kind: 'bridge', name });
  assert.ok(await B.h.netlink.linkDelAsync(name));
  assert.is(B.h.netlink.linkFind(name), undefined);
  assert.ok(A.h.netlink.linkFind(name), 'the same name in the other namespace is untouched');
}));

test('closing the handle while a delete runs: the delete completes, then its socket closes', () => scratch(async (s) => {
  const { h } = s.ns();
  const nl = h.netlink;
  const a = uniq('ad');
  nl.linkAdd({ kind: 'veth', name: a, peer: { name: uniq('ae') } });
  const fds = openFds();
  const p = nl.linkDelAsync(a);
  nl.close();
  assert.is(await p, true);
  assert.ok(openFds() < fds, 'the handle\'s socket and the worker\'s socket are closed');
  const check = h.netlink; // a fresh socket on the same namespace
  assert.is(check.linkFind(a), undefined);
}));

test.run();
