/**
 * Helpers of the rtnetlink / namespace suites: unique names, a scratch
 * namespace per test (always removed), iproute2 as an independent oracle, and error assertions.
 */
import { spawnSync } from 'node:child_process';
import * as assert from 'uvu/assert';
import { addNetns, deleteNetns, netnsExists } from '../../lib/netns/namespaces.js';
import { NetnsHandle } from '../../lib/netns/handle.js';
import { NetlinkError } from '../../lib/netlink/errors.js';
import { rejected, thrown } from '../helpers/expect.js';

let counter = 0;
const tag = (process.pid % 46656).toString(36);

/** A name unique in this process: prefix + pid tag + counter; keep prefixes ≤ 6 chars for interface names. */
export function uniq(prefix: string): string {
  const n = `${prefix}${tag}${(counter++).toString(36)}`;
  if (Buffer.byteLength(n) > 15) throw new Error(`test name ${n} too long for an interface`);
  return n;
}

/** Namespaces made by one test and removed (with their links) in `cleanup()`, which the test calls in finally. */
export class Scratch {
  private readonly names: string[] = [];
  private readonly handles: NetnsHandle[] = [];

  /** A new named namespace with loopback up, and a handle on it. */
  ns(prefix = 'tn'): { name: string; h: NetnsHandle } {
    const name = uniq(prefix);
    addNetns(name);
    this.names.push(name);
    const h = NetnsHandle.open(name);
    this.handles.push(h);
    h.netlink.linkSetUp('lo');
    return { name, h };
  }

  /** Remove a namespace made elsewhere (e.g. by `ip netns add`) too. */
  track(name: string): void {
    this.names.push(name);
  }

  cleanup(): void {
    for (const h of this.handles.splice(0)) h.close();
    for (const n of this.names.splice(0).reverse()) {
      if (netnsExists(n)) deleteNetns(n);
    }
  }
}

/** Run `body` with a Scratch that is cleaned up whatever happens. */
export async function scratch<T>(body: (s: Scratch) => T | Promise<T>): Promise<T> {
  const s = new Scratch();
  try {
    return await body(s);
  } finally {
    s.cleanup();
  }
}

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

/** Run a program, never throwing. */
export function run(cmd: string, args: string[], timeout = 15_000): Run {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** `ip -n NS ARGS…`, throwing with iproute2's stderr on failure. */
export function ip(ns: string, args: string[]): string {
  const r = run('ip', ['-n', ns, ...args]);
  if (r.status !== 0) throw new Error(`ip -n ${ns} ${args.join(' ')}: exit ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** `ip -n NS -j ARGS…` parsed. */
export function ipJson<T = Record<string, unknown>[]>(ns: string, args: string[]): T {
  const out = ip(ns, ['-j', ...args]).trim();
  return JSON.parse(out === '' ? '[]' : out) as T;
}

/** `ip -n NS -j -d link show dev NAME`: iproute2's view of one link. */
export interface IpLink {
  ifindex: number;
  ifname: string;
  link?: string | null;
  link_netnsid?: number;
  master?: string;
  flags: string[];
  mtu: number;
  address?: string;
  ifalias?: string;
  txqlen?: number;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

export function ipLink(ns: string, dev: string): IpLink {
  const [l] = ipJson<IpLink[]>(ns, ['-d', 'link', 'show', 'dev', dev]);
  return l;
}

/** Run inside a namespace (`ip netns exec NS …`). */
export function nsRun(ns: string, args: string[], timeout = 15_000): Run {
  return run('ip', ['netns', 'exec', ns, ...args], timeout);
}

type NetlinkExpect = { extAck?: string | RegExp; operation?: string | RegExp };
const literal = (s: string): RegExp => new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
const expected = (code: string, opts: NetlinkExpect) => ({
  code,
  ...(opts.extAck !== undefined ? { extAck: opts.extAck } : {}),
  ...(opts.operation !== undefined ? { operation: typeof opts.operation === 'string' ? literal(opts.operation) : opts.operation } : {}),
});

/** The NetlinkError `fn` throws, with this code (and ext-ACK text / an operation mentioning `operation`). */
export function throwsNetlink(fn: () => unknown, code: string, opts: NetlinkExpect = {}): NetlinkError {
  const e = thrown(fn, NetlinkError, expected(code, opts));
  assert.ok(e.errno > 0, 'positive errno');
  return e;
}

export async function rejectsNetlink(p: Promise<unknown>, code: string, opts: NetlinkExpect = {}): Promise<NetlinkError> {
  const e = await rejected(p, NetlinkError, expected(code, opts));
  assert.ok(e.errno > 0, 'positive errno');
  return e;
}

/** Assert that every key of `want` has the same value in `got` (deep), naming the key on failure. */
export function assertSubset(got: object, want: object, what = 'object'): void {
  for (const [k, v] of Object.entries(want)) {
    assert.equal((got as Record<string, unknown>)[k], v, `${what}.${k}`);
  }
}
