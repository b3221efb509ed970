/**
 * The fast way of NAT commands (lib/router/fast-change.ts, docs/delta-nat.md) against the full way, on the fake
 * kernel: random sequences of static NAT and port forward commands — with public IPs assigned and released, the
 * firewall changed, refusals — run through an engine that keeps the router warm (fast way) and one that never
 * does (full way). After every command both routers must hold the same nft tables (contents, stamp included),
 * the same stored model, the same kernel changes besides nft (addresses, conntrack, daemons) and the same answer;
 * and the fast way must actually have been taken for the commands it covers — also right after a VM's DHCP entry
 * changed (a scoped command on a warm router keeps it warm, starts from its model, NAT log and all, and logs the
 * parts it changed instead of saving the whole router).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterEngine } from '../../lib/router/engine.js';
import { runCommand } from '../../lib/router/command-table.js';
import { requestFromValues } from '../../lib/router/contract/plain-values.js';
import type { CommandInputs } from '../../lib/router/contract/inputs.js';
import type { EngineCommand } from '../../lib/router/contract/types.js';
import { FakeKernel } from '../../lib/router/fake-kernel.js';
import { ROUTER_TABLE } from '../../lib/router/router-table.js';
import { ARP_TABLE } from '../../lib/router/arp-responder.js';
import { exitCodeOf } from '../../lib/util/errors.js';
import type { TableRef } from '../../lib/nft/json.js';
import type { RouterModel } from '../../lib/router/model.js';
import { StateStore } from '../../lib/router/state/store.js';
import { readNatLog } from '../../lib/router/state/nat-log.js';
import { prng } from '../helpers/prng.js';

const NS = 'cs-net-42';

interface Side {
  k: FakeKernel;
  engine: RouterEngine;
  dir: string;
  run: <C extends EngineCommand>(c: C, input: CommandInputs[C]) => Promise<unknown>;
}

function side(fast: boolean): Side {
  const dir = mkdtempSync(join(tmpdir(), `nr-delta-${fast ? 'fast' : 'full'}-`));
  const k = new FakeKernel({ devices: ['eth1'] });
  const engine = new RouterEngine({ stateDir: dir, devices: { guest: 'eth1', public: 'eth1' }, kernel: k, fastNat: fast ? { minEntries: 0 } : false });
  const run = <C extends EngineCommand>(c: C, input: CommandInputs[C]) => runCommand(engine, requestFromValues(c, input, { networkDetails: {} }));
  return { k, engine, dir, run };
}

/** A listing without what differs by history only (handles), sets' elements in one order. */
function normal(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(normal);
  if (!x || typeof x !== 'object') return x;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(x)) {
    if (key === 'handle') continue;
    // the stamp's generation counts every commit in the namespace (a hand edit too): its fingerprint is compared
    if (key === 'elem' && (x as { name?: string }).name === 'contents_stamp') {
      out[key] = (v as Array<{ concat?: unknown[] }>).map((e) => e.concat?.[0]);
      continue;
    }
    out[key] = key === 'elem' && Array.isArray(v) ? v.map(normal).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)) : normal(v);
  }
  return out;
}

async function tableOf(s: Side, t: TableRef): Promise<unknown> {
  if (!s.k.netnsExists(NS)) return null;
  try {
    const l = await s.k.nftOf(NS).list(t);
    const byName = (a: { name?: string }, b: { name?: string }) => ((a.name ?? '') < (b.name ?? '') ? -1 : 1);
    return normal({ ...l, sets: [...l.sets].sort(byName), maps: [...l.maps].sort(byName), chains: [...l.chains].sort(byName) });
  } catch {
    return null;
  }
}

/** The stored model as another process reads it (state file and journal). */
const stored = (s: Side): string | undefined => new StateStore(s.dir).read(NS);

const untagged = { publicVlan: 'untagged', publicGateway: '203.0.113.1', publicCidr: '203.0.113.0/24' } as const;
const vlan100 = { publicVlan: 'vlan://100', publicGateway: '198.51.100.1', publicCidr: '198.51.100.0/24' } as const;
/** Public IPs: 12 on the untagged segment, 6 on VLAN 100. */
const PUBLIC = [
  ...Array.from({ length: 12 }, (_, i) => ({ ip: `203.0.113.${20 + i}`, seg: untagged })),
  ...Array.from({ length: 6 }, (_, i) => ({ ip: `198.51.100.${20 + i}`, seg: vlan100 })),
];

/** Network 42 with its source NAT on the untagged segment and the first `publics` of PUBLIC assigned. */
async function baseRouter(s: Side, publics: number): Promise<void> {
  await s.run('implement-network', { networkId: 42, vlan: 'vxlan://5042', gateway: '10.42.0.1', cidr: '10.42.0.0/24' });
  await s.run('assign-ip', { networkId: 42, publicIp: '203.0.113.10', sourceNat: true, ...untagged });
  for (const p of PUBLIC.slice(0, publics)) await s.run('assign-ip', { networkId: 42, publicIp: p.ip, ...p.seg });
}

type Step = { [C in EngineCommand]: { c: C; input: CommandInputs[C] } }[EngineCommand];

/** A random command; deletions mostly of what the router holds (`m`, its stored model). */
function randomStep(r: () => number, m: RouterModel | undefined): Step {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const p = pick(PUBLIC);
  const priv = `10.42.0.${10 + Math.floor(r() * 12)}`;
  const roll = r();
  if (roll < 0.3) return { c: 'add-static-nat', input: { networkId: 42, publicIp: p.ip, privateIp: priv } };
  if (roll < 0.42) {
    const held = m?.staticNats.length && r() < 0.8 ? pick(m.staticNats) : { publicIp: p.ip, privateIp: priv };
    return { c: 'delete-static-nat', input: { networkId: 42, publicIp: held.publicIp, privateIp: held.privateIp } };
  }
  if (roll < 0.62) {
    const port = 1000 + Math.floor(r() * 8) * 10;
    const shape = r();
    const [pub, pvt] = shape < 0.6 ? [port, port + 5000] : shape < 0.9 ? [`${port}-${port + 3}`, `${port}-${port + 3}`] : [`${port}-${port + 3}`, `${port + 100}-${port + 103}`];
    return { c: 'add-port-forward', input: { networkId: 42, publicIp: p.ip, publicPort: pub, privateIp: priv, privatePort: pvt, protocol: r() < 0.7 ? 'tcp' : 'udp' } };
  }
  if (roll < 0.72 && m?.portForwards.length && r() < 0.8) {
    const f = pick(m.portForwards);
    const ports = (x: [number, number]) => (x[0] === x[1] ? x[0] : `${x[0]}-${x[1]}`);
    return { c: 'delete-port-forward', input: { networkId: 42, publicIp: f.publicIp, publicPort: ports(f.publicPorts), privateIp: f.privateIp, privatePort: ports(f.privatePorts), protocol: f.protocol } };
  }
  if (roll < 0.72) {
    const port = 1000 + Math.floor(r() * 8) * 10;
    const pub = r() < 0.6 ? port : `${port}-${port + 3}`;
    return { c: 'delete-port-forward', input: { networkId: 42, publicIp: p.ip, publicPort: pub, privateIp: priv, privatePort: pub, protocol: 'tcp' } };
  }
  if (roll < 0.82) return { c: 'assign-ip', input: { networkId: 42, publicIp: p.ip, ...p.seg } };
  if (roll < 0.88) return { c: 'release-ip', input: { networkId: 42, publicIp: p.ip, ...p.seg } };
  if (roll < 0.94) return { c: 'add-static-nat', input: { networkId: 42, publicIp: p.ip, privateIp: priv } };
  const rules = Array.from({ length: Math.floor(r() * 3) }, () => ({ type: 'ingress' as const, protocol: 'tcp' as const, portStart: 22 + Math.floor(r() * 4), publicIp: pick(PUBLIC).ip }));
  return { c: 'apply-fw-rules', input: { networkId: 42, fwRules: { rules } } };
}

/** randomStep, or (one in six) a VM's start or stop: the VM records' scope, after which a warm router stays warm. */
function randomStepOrVm(r: () => number, m: RouterModel | undefined): Step {
  if (r() >= 1 / 6) return randomStep(r, m);
  {
    const vm = Math.floor(r() * 6);
    const mac = `02:00:00:00:42:${(16 + vm).toString(16)}`;
    return r() < 0.6 ? { c: 'add-dhcp-entry', input: { networkId: 42, mac, ip: `10.42.0.${100 + vm}`, hostname: `vm${vm}` } }
      : { c: 'remove-dhcp-entry', input: { networkId: 42, mac } };
  }
}

async function outcome(s: Side, st: Step): Promise<string> {
  try {
    await s.run(st.c, st.input as never);
    return 'ok';
  } catch (e) {
    return `exit ${exitCodeOf(e)}: ${(e as Error).message.replaceAll(s.dir, '<dir>')}`;
  }
}

async function same(fast: Side, full: Side, what: string): Promise<void> {
  assert.equal(await tableOf(fast, ROUTER_TABLE), await tableOf(full, ROUTER_TABLE), `${what}: router table`);
  assert.equal(await tableOf(fast, ARP_TABLE), await tableOf(full, ARP_TABLE), `${what}: ARP responder table`);
  assert.is(stored(fast), stored(full), `${what}: stored model`);
}

const FAST_COMMANDS = new Set(['add-static-nat', 'delete-static-nat', 'add-port-forward', 'delete-port-forward']);

for (const seed of [1, 2, 3, 4]) {
  test(`fast and full way agree over a random NAT sequence (seed ${seed})`, async () => {
    const fast = side(true);
    const full = side(false);
    try {
      for (const s of [fast, full]) {
        await s.run('implement-network', { networkId: 42, vlan: 'vxlan://5042', gateway: '10.42.0.1', cidr: '10.42.0.0/24' });
        await s.run('assign-ip', { networkId: 42, publicIp: '203.0.113.10', sourceNat: true, ...untagged });
        await s.run('assign-ip', { networkId: 42, publicIp: '198.51.100.10', ...vlan100 });
        for (const p of PUBLIC.slice(0, 14)) await s.run('assign-ip', { networkId: 42, publicIp: p.ip, ...p.seg });
        // both segments keep an own address besides the static NAT ones
        for (const i of [0, 1, 2, 3, 12]) await s.run('add-static-nat', { networkId: 42, publicIp: PUBLIC[i].ip, privateIp: `10.42.1.${i + 1}` });
        await s.run('config-dhcp-subnet', { networkId: 42, gateway: '10.42.0.1', cidr: '10.42.0.0/24' });
      }
      await same(fast, full, 'set-up');
      const r = prng(seed);
      let fastTaken = 0;
      let fullTaken = 0;
      let scoped = 0;
      let loggedParts = 0;
      let fastAfterScoped = 0;
      let previous: string | undefined;
      for (let i = 0; i < 80; i++) {
        const st = randomStepOrVm(r, full.engine.store.load(NS));
        const what = `step ${i} ${st.c} ${JSON.stringify(st.input)}`;
        const marks = [fast.k.changes.length, full.k.changes.length];
        const a = await outcome(fast, st);
        const b = await outcome(full, st);
        assert.is(a, b, `${what}: answer`);
        if (a === 'ok' && fast.engine.lastReconcile === 'scoped') {
          scoped++;
          // on a warm router: one record of the parts it changed (the DHCP slot), not a save of the whole router
          if (readNatLog(fast.engine.store.natLogOf(NS))?.records.at(-1)?.parts) {
            loggedParts++;
            // the readable copy is the whole new state (the journal and the log decide; the copy is for people)
            assert.is(readFileSync(fast.engine.store.pathOf(NS), 'utf8'), stored(fast), `${what}: the readable copy`);
          }
        }
        if (a === 'ok' && fast.engine.lastReconcile === 'fast' && previous === 'scoped') fastAfterScoped++;
        previous = a === 'ok' ? fast.engine.lastReconcile : previous;
        if (a === 'ok' && fast.engine.lastReconcile === 'fast') {
          fastTaken++;
          assert.ok(existsSync(fast.engine.store.natLogOf(NS)), `${what}: logged`);
        }
        const others = (s: Side, from: number) => JSON.parse(JSON.stringify(s.k.changes.slice(from).filter((c) => c.kind !== 'nft')).replaceAll(s.dir, '<dir>'));
        assert.equal(others(fast, marks[0]), others(full, marks[1]), `${what}: kernel changes besides nft`);
        await same(fast, full, what);
        // the model a listing or a precondition reads (the warm one, when kept) is the one every reader sees
        const read = stored(fast);
        if (read !== undefined) assert.is(`${JSON.stringify(fast.engine.storedModel(NS))}\n`, read, `${what}: storedModel`);
        if (a === 'ok' && FAST_COMMANDS.has(st.c) && fast.engine.lastReconcile !== 'fast') fullTaken++;
      }
      assert.ok(fastTaken >= 15, `the fast way was taken ${fastTaken} times (the full way ${fullTaken} times for NAT commands)`);
      assert.ok(scoped >= 1 && fastAfterScoped >= 1, `DHCP entries scoped ${scoped} times, a NAT command right after one took the fast way ${fastAfterScoped} times`);
      assert.ok(loggedParts >= 1, `DHCP entries logged as changed parts ${loggedParts} times`);
    } finally {
      rmSync(fast.dir, { recursive: true, force: true });
      rmSync(full.dir, { recursive: true, force: true });
    }
  });
}

test('the fast way: the tables changed behind its back (an element deleted by hand) → the full way repairs them', async () => {
  const fast = side(true);
  const full = side(false);
  try {
    for (const s of [fast, full]) {
      await baseRouter(s, 3);
      await s.run('add-static-nat', { networkId: 42, publicIp: PUBLIC[0].ip, privateIp: '10.42.0.50' });
    }
    await fast.run('add-static-nat', { networkId: 42, publicIp: PUBLIC[1].ip, privateIp: '10.42.0.51' });
    assert.is(fast.engine.lastReconcile, 'fast');
    // someone deletes a map element by hand: a commit that is not ours
    const { ex } = fast.k.nft(NS);
    const { Transaction } = await import('../../lib/nft/transaction.js');
    const { elements } = await import('../../lib/nft/objects.js');
    await ex.apply(new Transaction(ROUTER_TABLE).delete(elements('static_dnat', [{ key: PUBLIC[0].ip }])));
    await fast.run('add-static-nat', { networkId: 42, publicIp: PUBLIC[2].ip, privateIp: '10.42.0.52' });
    assert.is.not(fast.engine.lastReconcile, 'fast', 'the generation moved: not the fast way');
    assert.is(fast.engine.lastNftSync?.mode, 'replace', 'the full way replaced the tables');
    for (const [ip, pvt] of [[PUBLIC[1].ip, '10.42.0.51'], [PUBLIC[2].ip, '10.42.0.52']] as const) {
      await full.run('add-static-nat', { networkId: 42, publicIp: ip, privateIp: pvt });
    }
    await same(fast, full, 'after the repair');
    // and warm again for the next one
    await fast.run('delete-static-nat', { networkId: 42, publicIp: PUBLIC[2].ip, privateIp: '10.42.0.52' });
    assert.is(fast.engine.lastReconcile, 'fast');
    await full.run('delete-static-nat', { networkId: 42, publicIp: PUBLIC[2].ip, privateIp: '10.42.0.52' });
    await same(fast, full, 'fast again');
  } finally {
    rmSync(fast.dir, { recursive: true, force: true });
    rmSync(full.dir, { recursive: true, force: true });
  }
});

test('the fast way: another process saved the router (its state file replaced) → the stored model is used', async () => {
  const a = side(true);
  try {
    await baseRouter(a, 3);
    // a second engine (another process) on the same state and kernel changes the router
    const other = new RouterEngine({ stateDir: a.dir, devices: { guest: 'eth1', public: 'eth1' }, kernel: a.k, fastNat: false });
    await runCommand(other, requestFromValues('add-static-nat', { networkId: 42, publicIp: PUBLIC[0].ip, privateIp: '10.42.0.60' }, { networkDetails: {} }));
    await a.run('add-static-nat', { networkId: 42, publicIp: PUBLIC[1].ip, privateIp: '10.42.0.61' });
    assert.is.not(a.engine.lastReconcile, 'fast', 'the warm model is stale: the full way');
    const m = a.engine.store.load(NS)!;
    assert.equal(m.staticNats.map((s) => s.publicIp), [PUBLIC[0].ip, PUBLIC[1].ip], 'both static NATs kept');
    await a.run('add-static-nat', { networkId: 42, publicIp: PUBLIC[2].ip, privateIp: '10.42.0.62' });
    assert.is(a.engine.lastReconcile, 'fast', 'warm again');
    assert.equal(a.engine.store.load(NS)!.staticNats.map((s) => s.publicIp), [PUBLIC[0].ip, PUBLIC[1].ip, PUBLIC[2].ip]);
  } finally {
    rmSync(a.dir, { recursive: true, force: true });
  }
});

test('a router made large by its firewall (few NATs) is kept warm by default: its NAT commands take the fast way', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-delta-size-'));
  try {
    // default thresholds (256 NAT entries, a saved state of 64 Ki characters) against thresholds above this router
    const make = (fastNat?: { minStateLength: number }) => {
      const k = new FakeKernel({ devices: ['eth1'] });
      const d = mkdtempSync(join(dir, 'side-'));
      const engine = new RouterEngine({ stateDir: d, devices: { guest: 'eth1', public: 'eth1' }, kernel: k, ...(fastNat ? { fastNat } : {}) });
      const run = <C extends EngineCommand>(c: C, input: CommandInputs[C]) => runCommand(engine, requestFromValues(c, input, { networkDetails: {} }));
      return { k, engine, dir: d, run } satisfies Side;
    };
    const big = make();
    const control = make({ minStateLength: 10_000_000 });
    const rules = Array.from({ length: 800 }, (_, i) => ({ type: 'ingress' as const, protocol: 'tcp' as const, portStart: 1000 + i, publicIp: PUBLIC[i % 3].ip }));
    for (const s of [big, control]) {
      await baseRouter(s, 3);
      await s.run('apply-fw-rules', { networkId: 42, fwRules: { rules } });
      assert.ok(s.engine.store.read(NS)!.length >= 65_536, 'the firewall makes the state large');
      await s.run('add-static-nat', { networkId: 42, publicIp: PUBLIC[0].ip, privateIp: '10.42.0.50' });
      assert.is(s.engine.lastReconcile, 'full', 'the first NAT command: the full way (it keeps the router warm)');
      await s.run('add-static-nat', { networkId: 42, publicIp: PUBLIC[1].ip, privateIp: '10.42.0.51' });
    }
    assert.is(big.engine.lastReconcile, 'fast', '2 NAT entries, a large firewall: the fast way');
    assert.is(control.engine.lastReconcile, 'full', 'control: below both thresholds, the full way');
    assert.equal(await tableOf(big, ROUTER_TABLE), await tableOf(control, ROUTER_TABLE), 'the same table either way');
    assert.is(stored(big), stored(control), 'the same stored model either way');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
