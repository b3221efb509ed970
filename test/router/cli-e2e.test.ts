/** The CLI end to end, in both invocation forms, against a simulated host; real packets. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { netnsExists } from '../../lib/netns/namespaces.js';
import { Scratch, addVm, ping, whoamiServer, tcpAsk, waitFor, simulatedHost } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { dumpSection, envelopeMessage } from '../helpers/cloudstack.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

test('CLI: option and payload-file forms, bad input changes nothing, destroy leaves nothing', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-cli-'));
  const id = String(2000 + Math.floor(Math.random() * 7000));
  const ns = s.track(`cs-net-${id}`);
  const procs: Array<{ kill: () => void }> = [];
  try {
    const { hostNs, upNs, h } = simulatedHost(s);
    const g = ['--host-netns', hostNs, '--state-dir', join(dir, 'state'), '--log-file', join(dir, 'log')];
    const cli = (...a: string[]) => spawnSync(process.execPath, [CLI, ...a, ...g], { encoding: 'utf8', timeout: 30_000 });

    let r = cli('implement-network', '--network-id', id, '--vlan', 'vxlan://4321', '--gateway', '10.4.3.1', '--cidr', '10.4.3.0/24');
    assert.is(r.status, 0, r.stderr);
    const payload = join(dir, 'assign.json');
    writeFileSync(payload, JSON.stringify({
      'physical-network-extension-details': { 'public.network.device': 'eth1', 'guest.network.device': 'eth1' },
      'network-extension-details': {},
      payload: { network_id: id, public_ip: '203.0.113.43', public_vlan: 'untagged', public_gateway: '203.0.113.1', public_cidr: '203.0.113.0/24', source_nat: 'true' },
    }));
    r = spawnSync(process.execPath, [CLI, 'assign-ip', payload, '30', ...g], { encoding: 'utf8', timeout: 30_000 });
    assert.is(r.status, 0, r.stderr);

    const vm = addVm(s, h, 'brvx-4321', '10.4.3.10/24', '10.4.3.1');
    procs.push(whoamiServer(upNs, 9000), whoamiServer(vm.ns, 8080));
    await waitFor(() => tcpAsk(upNs, '127.0.0.1', 9000) !== '' && tcpAsk(vm.ns, '127.0.0.1', 8080) !== '');
    assert.is(tcpAsk(vm.ns, '203.0.113.1', 9000), '203.0.113.43', 'source NAT through the CLI');

    r = cli('add-port-forward', '--network-id', id, '--public-ip', '203.0.113.43', '--public-port', '80', '--private-ip', '10.4.3.10', '--private-port', '8080', '--protocol', 'tcp');
    assert.is(r.status, 0, r.stderr);
    assert.is(tcpAsk(upNs, '203.0.113.43', 80), '', 'closed until a firewall rule opens it');
    r = cli('apply-fw-rules', '--network-id', id, '--fw-rules', JSON.stringify({ rules: [{ type: 'ingress', protocol: 'tcp', portStart: 80, publicIp: '203.0.113.43' }] }));
    assert.is(r.status, 0, r.stderr);
    assert.is(tcpAsk(upNs, '203.0.113.43', 80), '203.0.113.1');

    const stateFile = join(dir, 'state', 'routers', `${ns}.json`);
    const before = readFileSync(stateFile, 'utf8');
    r = cli('add-port-forward', '--network-id', id, '--public-ip', '203.0.113.43', '--public-port', '70000', '--private-ip', '10.4.3.10', '--private-port', '8080', '--protocol', 'tcp');
    assert.is(r.status, 1, 'bad port → exit 1');
    assert.match(r.stderr, '--public-port');
    r = cli('add-static-nat', '--network-id', id, '--public-ip', '198.51.100.9', '--private-ip', '10.4.3.10');
    assert.is(r.status, 1, 'unknown public IP → exit 1');
    // a system failure half-way (the public device of a new public VLAN does not exist on the host):
    // exit 2 naming the device, previous state re-applied, stored state untouched
    r = spawnSync(process.execPath, [CLI, 'assign-ip', '--network-id', id, '--public-ip', '198.51.100.7', '--public-vlan', 'vxlan://999',
      '--public-gateway', '198.51.100.1', '--public-cidr', '198.51.100.0/24', '--physical-network-extension-details', JSON.stringify({ 'public.network.device': 'nosuch0' }), ...g],
    { encoding: 'utf8', timeout: 30_000 });
    assert.is(r.status, 2, `missing host device → exit 2 (${r.stderr})`);
    assert.match(r.stderr, 'nosuch0');
    assert.is(readFileSync(stateFile, 'utf8'), before, 'state unchanged by failed commands');
    assert.is(tcpAsk(upNs, '203.0.113.43', 80), '203.0.113.1', 'forward still works');

    r = cli('custom-action', '--network-id', id, '--action', 'dump-config');
    assert.is(r.status, 0, r.stderr);
    assert.is(dumpSection(envelopeMessage(r), 'state').portForwards.length, 1);

    // positive control of the ping below: the public IP answers while the network exists (ICMP opened)
    r = cli('apply-fw-rules', '--network-id', id, '--fw-rules', JSON.stringify({ rules: [{ type: 'ingress', protocol: 'tcp', portStart: 80, publicIp: '203.0.113.43' }, { type: 'ingress', protocol: 'icmp', publicIp: '203.0.113.43' }] }));
    assert.is(r.status, 0, r.stderr);
    assert.ok(ping(upNs, '203.0.113.43'), 'the public IP answers ping before the destroy');

    r = cli('destroy-network', '--network-id', id);
    assert.is(r.status, 0, r.stderr);
    assert.not.ok(netnsExists(ns));
    assert.not.ok(existsSync(stateFile));
    assert.not.ok(ping(upNs, '203.0.113.43'), 'public IP gone');
  } finally {
    for (const p of procs) p.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
