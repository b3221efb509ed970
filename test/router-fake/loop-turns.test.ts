/**
 * The engine gives the event loop a turn before a command or a restored router when closes left on koffi's worker
 * pool wait for one (libc.closesWaiting): their completions run only there. A process driving commands or a
 * restore back to back never turned the loop — past libc.CLOSES_MAX every close of a kept socket pushed out of
 * its cache then waited in the kernel on the main thread (the networks benchmark's restore of 1,000 routers
 * ~11 ms per router slower). With nothing waiting there is no turn (a cold CLI's one command is not delayed).
 * On the in-memory kernel nothing else of a command waits for the event loop, so a turn counted here is the
 * engine's; the closes stand for the kept sockets of routers pushed out of their caches.
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
import * as libc from '../../lib/sys/libc.js';

/** Counts event-loop turns (a setImmediate that schedules itself again) until stopped. */
function turnCounter(): { turns: () => number; stop: () => void } {
  let turns = 0;
  let on = true;
  const tick = (): void => {
    if (!on) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  return { turns: () => turns, stop: () => { on = false; } };
}

/** Closes left on the worker pool, in this synchronous stretch (half of what the pool takes). */
function leaveCloses(): void {
  for (let i = 0; i < libc.CLOSES_MAX / 2; i++) void libc.closeAsync(libc.open('/dev/null', libc.O_RDONLY));
}

async function drained(): Promise<void> {
  while (libc.closesWaiting() > 0) await new Promise((r) => setImmediate(r));
}

const pub = { publicVlan: 'untagged', publicGateway: '203.0.113.1', publicCidr: '203.0.113.0/24' } as const;

test('commands and restoreAll back to back turn the event loop when closes wait for it, and only then', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nr-turns-'));
  const k = new FakeKernel({ devices: ['eth1'] });
  const engine = new RouterEngine({ stateDir: dir, devices: { guest: 'eth1', public: 'eth1' }, kernel: k });
  const run = <C extends EngineCommand>(c: C, input: CommandInputs[C]) => runCommand(engine, requestFromValues(c, input, { networkDetails: {} }));
  const implement = async (i: number): Promise<void> => {
    await run('implement-network', { networkId: 40 + i, vlan: `vxlan://${5040 + i}`, gateway: `10.${40 + i}.0.1`, cidr: `10.${40 + i}.0.0/24` });
    await run('assign-ip', { networkId: 40 + i, publicIp: `203.0.113.${10 + i}`, sourceNat: true, ...pub });
  };
  try {
    await drained();
    // nothing waiting: the commands run without a turn (the counter's own first tick has not come either)
    let c = turnCounter();
    await implement(1);
    c.stop();
    assert.is(c.turns(), 0, 'no turn while no close waits');

    leaveCloses();
    assert.ok(libc.closesWaiting() >= libc.CLOSES_MAX / 4, `${libc.closesWaiting()} closes waiting`);
    c = turnCounter();
    for (let i = 2; i <= 4; i++) await implement(i);
    c.stop();
    assert.ok(c.turns() >= 1, 'the commands let the event loop turn');

    await drained();
    leaveCloses();
    c = turnCounter();
    const restored = await engine.restoreAll();
    c.stop();
    assert.is(restored.length, 4, 'every router restored');
    assert.ok(c.turns() >= 1, 'the restore let the event loop turn');
  } finally {
    await drained();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
