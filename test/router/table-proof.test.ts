/**
 * A command that changes nothing (the same rule set sent again) does not compile the router table when our last
 * commit provably left it (lib/router/state/table-proof.ts): the stamp is confirmed instead. Anything that
 * committed nftables since (a hand edit) makes the confirmation fail, and the table is put right as before.
 * Real packets: a port a hand edit opened is closed again by the re-apply; an allowed port stays open.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../../lib/router/command-table.js';
import { RouterEngine } from '../../lib/router/engine.js';
import { inScratch, nsExec, uid, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { isolatedTopo, servers, serversUp, tcpOk } from '../helpers/fw.js';

requireSandbox();

test('re-applying the same rules confirms the table instead of compiling it; a hand edit in between is undone', async () => {
  await inScratch((s) => isolatedTopo(s, String(1000 + (parseInt(uid(4), 16) % 9000))), async (t, procs) => {
    const { engine, net, ns, P2, upNs, vm2, hostNs, stateDir } = t;
    procs.push(...servers(vm2, [22, 2222], []));
    assert.ok(await serversUp(vm2, [22, 2222], []));
    const rules = Array.from({ length: 300 }, (_, i) => ({ id: i, type: 'ingress', protocol: 'tcp', portStart: 10_000 + i, publicIp: P2 }));
    rules.push({ id: 999, type: 'ingress', protocol: 'tcp', portStart: 22, publicIp: P2 });
    const apply = (e: RouterEngine) => runCommand(e, { command: 'apply-fw-rules', ...net, fwRules: { value: { rules }, source: 'test' } });

    await apply(engine);
    assert.ok(existsSync(join(stateDir, 'run', ns, 'table-proof.json')), 'the proof of the commit is recorded');
    // (waitFor: the first connection may wait out a lost first ARP request, see test/helpers/arp.ts ask())
    assert.ok(await waitFor(() => tcpOk(upNs, P2, 22), 5000), 'allowed port open');
    assert.not.ok(tcpOk(upNs, P2, 2222), 'other port closed');

    // the same rules again, from a fresh engine (as a new CLI process: no compiled table in memory)
    const fresh = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    await apply(fresh);
    assert.equal({ mode: fresh.lastNftSync?.mode, operations: fresh.lastNftSync?.operations }, { mode: 'unchanged', operations: 2 }, 'only the stamp swapped');
    assert.ok(tcpOk(upNs, P2, 22), 'still open');

    // a hand edit opens a port: the next re-apply cannot confirm the stamp, compiles and puts the table right
    nsExec(ns, ['nft', 'insert', 'rule', 'inet', 'netns_router', 'fw_in', 'tcp', 'dport', '2222', 'accept']);
    assert.ok(tcpOk(upNs, P2, 2222), 'the hand edit opened 2222');
    await apply(new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } }));
    assert.not.ok(tcpOk(upNs, P2, 2222), 'closed again');
    assert.ok(tcpOk(upNs, P2, 22), 'positive control: the allowed port is open');

    // the table gone (a reboot of nftables, say): rebuilt, not confirmed
    nsExec(ns, ['nft', 'delete', 'table', 'inet', 'netns_router']);
    const e3 = new RouterEngine({ stateDir, hostNetns: hostNs, devices: { guest: 'eth1', public: 'eth1' } });
    await apply(e3);
    assert.is(e3.lastNftSync?.mode, 'replace');
    assert.ok(tcpOk(upNs, P2, 22), 'open again after the rebuild');
    assert.not.ok(tcpOk(upNs, P2, 2222));

    // destroy forgets the proof
    await runCommand(engine, { command: 'destroy-network', ...net });
    assert.not.ok(existsSync(join(stateDir, 'run', ns, 'table-proof.json')), 'gone with the router');
  });
});

test.run();
