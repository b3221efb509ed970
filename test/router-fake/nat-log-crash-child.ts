/**
 * Child of nat-log.test.ts: a router on the fake kernel in the state directory argv[2], warm for the fast
 * way, then NAT commands one after the other — three static NATs added, the oldest deleted, again — each
 * reported (`committed <n>`) when it returned, until the parent kills it. expected.json: the number of static
 * NATs after each command.
 */
import { writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { RouterEngine } from '../../lib/router/engine.js';
import { runCommand } from '../../lib/router/command-table.js';
import { requestFromValues } from '../../lib/router/contract/plain-values.js';
import type { CommandInputs } from '../../lib/router/contract/inputs.js';
import type { EngineCommand } from '../../lib/router/contract/types.js';
import { FakeKernel } from '../../lib/router/fake-kernel.js';

const dir = process.argv[2];
const k = new FakeKernel({ devices: ['eth1'] });
const engine = new RouterEngine({ stateDir: dir, devices: { guest: 'eth1', public: 'eth1' }, kernel: k, fastNat: { minEntries: 0 } });
const run = <C extends EngineCommand>(c: C, input: CommandInputs[C]) => runCommand(engine, requestFromValues(c, input, { networkDetails: {} }));
const pub = { publicVlan: 'untagged', publicGateway: '203.0.113.1', publicCidr: '203.0.113.0/24' } as const;
const ip = (i: number): string => `203.0.${113 + (i >> 8)}.${i & 255}`;
const N = 60;

await run('implement-network', { networkId: 42, vlan: 'vxlan://5042', gateway: '10.42.0.1', cidr: '10.42.0.0/16' });
await run('assign-ip', { networkId: 42, publicIp: '203.0.113.10', sourceNat: true, ...pub });
for (let i = 20; i < 20 + N; i++) await run('assign-ip', { networkId: 42, publicIp: ip(i), ...pub });
await run('add-static-nat', { networkId: 42, publicIp: ip(20), privateIp: '10.42.1.0' });
const expected: Record<string, number> = { 0: 1 };
let next = 21;
let oldest = 20;
let count = 1;
const plan: Array<() => Promise<unknown>> = [];
for (let n = 1; n < N; n++) {
  if (n % 4 === 0) {
    const o = oldest++;
    plan.push(() => run('delete-static-nat', { networkId: 42, publicIp: ip(o), privateIp: `10.42.${1 + (o >> 8)}.${o & 255}` }));
    count--;
  } else {
    const i = next++;
    plan.push(() => run('add-static-nat', { networkId: 42, publicIp: ip(i), privateIp: `10.42.${1 + (i >> 8)}.${i & 255}` }));
    count++;
  }
  expected[n] = count;
}
writeFileSync(join(dir, 'expected.json'), JSON.stringify(expected));
writeSync(1, 'committed 0\n');
for (let n = 1; n < N; n++) {
  await plan[n - 1]();
  if (engine.lastReconcile !== 'fast') process.stderr.write(`command ${n} took the full way\n`);
  writeSync(1, `committed ${n}\n`);
}
