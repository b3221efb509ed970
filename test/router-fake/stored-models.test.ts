/**
 * A large router's stored model is kept frozen by the command that saved it (warm-cache.ts StoredModels): the
 * next command changes a draft of it (draftOf: the large parts it leaves alone shared) and takes it as the model
 * before the change, instead of parsing the state twice — and nothing in a command writes into it. On the fake kernel: the parses counted, against an engine that keeps
 * nothing (fastNat false, the cold CLI's setting), with the same tables and stored state either way.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RouterEngine } from '../../lib/router/engine.js';
import { runCommand } from '../../lib/router/command-table.js';
import { requestFromValues } from '../../lib/router/contract/plain-values.js';
import type { CommandInputs } from '../../lib/router/contract/inputs.js';
import type { EngineCommand } from '../../lib/router/contract/types.js';
import { FakeKernel } from '../../lib/router/fake-kernel.js';
import { ROUTER_TABLE } from '../../lib/router/router-table.js';
import { StateStore } from '../../lib/router/state/store.js';

const NS = 'cs-net-42';
const untagged = { publicVlan: 'untagged', publicGateway: '203.0.113.1', publicCidr: '203.0.113.0/24' } as const;

function side(dir: string, keeps: boolean) {
  const k = new FakeKernel({ devices: ['eth1'] });
  const d = mkdtempSync(join(dir, keeps ? 'keeps-' : 'none-'));
  const engine = new RouterEngine({ stateDir: d, devices: { guest: 'eth1', public: 'eth1' }, kernel: k, ...(keeps ? {} : { fastNat: false as const }) });
  let parses = 0;
  const parse = engine.store.parse.bind(engine.store);
  engine.store.parse = (ns, text) => { parses++; return parse(ns, text); };
  const run = <C extends EngineCommand>(c: C, input: CommandInputs[C]) => runCommand(engine, requestFromValues(c, input, { networkDetails: {} }));
  return { k, engine, dir: d, run, parses: () => { const n = parses; parses = 0; return n; } };
}

const RULES = Array.from({ length: 800 }, (_, i) => ({ type: 'ingress' as const, protocol: 'tcp' as const, portStart: 1000 + i, publicIp: '203.0.113.10' }));

/** Network 42 with source NAT and 800 firewall rules: a large router (a saved state of ≥ 64 Ki characters). */
async function largeRouter(s: ReturnType<typeof side>): Promise<void> {
  await s.run('implement-network', { networkId: 42, vlan: 'vxlan://5042', gateway: '10.42.0.1', cidr: '10.42.0.0/24' });
  await s.run('assign-ip', { networkId: 42, publicIp: '203.0.113.10', sourceNat: true, ...untagged });
  await s.run('apply-fw-rules', { networkId: 42, fwRules: { rules: RULES } });
  assert.ok(s.engine.store.read(NS)!.length >= 65_536, 'a large router');
}

test('a large router: the next full command parses its state once (the model before it kept frozen); the same outcome as without', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-stored-'));
  try {
    const keeps = side(dir, true);
    const none = side(dir, false);
    for (const s of [keeps, none]) {
      await largeRouter(s);
      s.parses();
      // full-way commands that change the router (public IPs, DHCP entries, the firewall again)
      await s.run('assign-ip', { networkId: 42, publicIp: '203.0.113.11', ...untagged });
      await s.run('add-dhcp-entry', { networkId: 42, mac: '02:00:00:00:00:05', ip: '10.42.0.5', hostname: 'vm5' });
      await s.run('release-ip', { networkId: 42, publicIp: '203.0.113.11', ...untagged });
      await s.run('apply-fw-rules', { networkId: 42, fwRules: { rules: RULES.slice(1) } });
    }
    assert.is(keeps.parses(), 0, 'keeps: no parse (each command changes a draft of the kept model)');
    assert.is(none.parses(), 8, 'control: two per command (the model before it parsed again)');
    const tables = await Promise.all([keeps, none].map((s) => s.k.nftOf(NS).list(ROUTER_TABLE)));
    const strip = (x: unknown): string => JSON.stringify(x, (key, v) => (key === 'handle' ? undefined : v));
    assert.is(strip(tables[0]), strip(tables[1]), 'the same router table');
    assert.is(new StateStore(keeps.dir).read(NS), new StateStore(none.dir).read(NS), 'the same stored state');
    // the model a command returns on a large router is the one kept: frozen, as from the fast way
    const m = keeps.engine.store.load(NS)!;
    const returned = await keeps.engine.change(NS, () => m, (x) => { x.extra = { ...x.extra }; });
    assert.ok(returned && Object.isFrozen(returned) && Object.isFrozen(returned.publicIps), 'returned frozen');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a router of many public IPs and static NATs: assign-ip and release-ip change a draft (the shared map copied, not the state parsed); the same outcome as without', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-stored-'));
  try {
    const keeps = side(dir, true);
    const none = side(dir, false);
    for (const s of [keeps, none]) {
      await s.run('implement-network', { networkId: 42, vlan: 'vxlan://5042', gateway: '10.42.0.1', cidr: '10.42.0.0/16' });
      await s.run('assign-ip', { networkId: 42, publicIp: '203.0.113.10', sourceNat: true, ...untagged });
      // 600 static NATs, each with its public IP: the map of public IPs is a large part, shared frozen by drafts
      await s.engine.change(NS, s.engine.initFor({ namespace: NS, networkId: '42' }), (m) => {
        const pub0 = m.publicIps['203.0.113.10'];
        for (let i = 0; i < 600; i++) {
          const ip = `198.18.${i >> 7}.${(i & 127) + 1}`;
          m.publicIps[ip] = { ...pub0, ip, prefixLen: 32, sourceNat: false };
          m.staticNats.push({ publicIp: ip, privateIp: `10.42.${2 + (i >> 7)}.${(i & 127) + 1}` });
        }
      });
      await s.run('assign-ip', { networkId: 42, publicIp: '203.0.113.11', ...untagged }); // (the model kept from here)
      s.parses();
      await s.run('assign-ip', { networkId: 42, publicIp: '203.0.113.12', ...untagged });
      await s.run('release-ip', { networkId: 42, publicIp: '203.0.113.11', ...untagged });
      await s.run('release-ip', { networkId: 42, publicIp: '198.18.0.7', publicVlan: 'untagged' }); // with its static NAT
    }
    assert.is(keeps.parses(), 0, 'keeps: no parse');
    assert.is(none.parses(), 6, 'control: two per command');
    const tables = await Promise.all([keeps, none].map((s) => s.k.nftOf(NS).list(ROUTER_TABLE)));
    const strip = (x: unknown): string => JSON.stringify(x, (key, v) => (key === 'handle' ? undefined : v));
    assert.is(strip(tables[0]), strip(tables[1]), 'the same router table');
    assert.is(new StateStore(keeps.dir).read(NS), new StateStore(none.dir).read(NS), 'the same stored state');
    const m = new StateStore(keeps.dir).load(NS)!;
    assert.is(Object.keys(m.publicIps).length, 601, 'source NAT + 600 + 2 assigned − 2 released');
    assert.is(m.staticNats.length, 599);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a draft shares what the command leaves alone; a mutation that writes into a shared part runs again on the parsed state, same outcome', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-stored-'));
  try {
    const keeps = side(dir, true);
    const none = side(dir, false);
    for (const s of [keeps, none]) await largeRouter(s);
    const fwBefore = keeps.engine.storedModel(NS)!.extra!.firewall;
    assert.ok(Object.isFrozen(fwBefore), 'the kept model is frozen');
    for (const s of [keeps, none]) await s.run('add-dhcp-entry', { networkId: 42, mac: '02:00:00:00:00:05', ip: '10.42.0.5', hostname: 'vm5' });
    assert.is(keeps.engine.lastReconcile, 'scoped', 'a DHCP entry: the VM records\' scope');
    const after = keeps.engine.storedModel(NS)!;
    assert.ok(after.extra!.firewall === fwBefore, 'the firewall slot is the very object of the model before (shared, not copied)');
    // a change that writes into the shared (frozen) firewall slot: TypeError on the draft, then the parsed state
    keeps.parses();
    for (const s of [keeps, none]) {
      await s.engine.change(NS, () => { throw new Error('exists'); }, (m) => {
        (m.extra!.firewall as { fw: Record<string, { rules: unknown[] }> }).fw['42'].rules.pop();
      });
    }
    assert.is(keeps.parses(), 1, 'the write into the shared slot: the mutation again, on the parsed state');
    const text = new StateStore(keeps.dir).read(NS)!;
    assert.is(text, new StateStore(none.dir).read(NS), 'the same stored state as the control');
    assert.is(text, `${JSON.stringify(JSON.parse(text))}\n`, 'the text is compact JSON of itself');
    assert.is(JSON.parse(text).extra.firewall.fw['42'].rules.length, 799, 'the change is in it');
    const tables = await Promise.all([keeps, none].map((s) => s.k.nftOf(NS).list(ROUTER_TABLE)));
    const strip = (x: unknown): string => JSON.stringify(x, (key, v) => (key === 'handle' ? undefined : v));
    assert.is(strip(tables[0]), strip(tables[1]), 'the same router table');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
