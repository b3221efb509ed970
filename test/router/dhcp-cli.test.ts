/**
 * The DHCP/DNS commands through the CLI: a real guest served, and every injection attempt (newline, comma,
 * option or tag smuggling, keyword host names, out-of-subnet addresses, internal options) rejected with
 * exit 1 while the stored state and dnsmasq's files stay exactly as they were.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, readFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { dnsmasqInstance } from '../../lib/router/dhcp/index.js';
import { Scratch, simulatedHost } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { addGuest, udhcpc, dnsmasqPids } from '../helpers/dhcp.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

test('CLI: DHCP/DNS commands serve a guest; injection attempts exit 1 and change nothing', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-dhcp-cli-'));
  chmodSync(dir, 0o755);
  const stateDir = join(dir, 'state');
  const id = String(2000 + Math.floor(Math.random() * 7000));
  const ns = s.track(`cs-net-${id}`);
  const vni = 7000 + (Number(id) % 1000);
  try {
    const { hostNs, h } = simulatedHost(s);
    const g = ['--host-netns', hostNs, '--state-dir', stateDir, '--log-file', join(dir, 'log')];
    const cli = (...a: string[]) => spawnSync(process.execPath, [CLI, ...a, ...g], { encoding: 'utf8', timeout: 30_000 });
    const net = ['--network-id', id];
    const ok = (r: ReturnType<typeof cli>) => assert.is(r.status, 0, r.stderr);

    ok(cli('implement-network', ...net, '--vlan', `vxlan://${vni}`, '--gateway', '10.6.1.1', '--cidr', '10.6.1.0/24'));
    ok(cli('config-dns-subnet', ...net, '--gateway', '10.6.1.1', '--cidr', '10.6.1.0/24', '--dns', '192.0.2.53', '--domain', 'cli.example'));
    ok(cli('add-dhcp-entry', ...net, '--mac', '02:00:5e:33:00:01', '--ip', '10.6.1.10', '--hostname', 'vm-cli', '--nic-id', '71'));
    ok(cli('set-dhcp-options', ...net, '--nic-id', '71', '--options', JSON.stringify({ 17: 'a,b "c" \\d #e', 26: '1400' })));
    const guest = addGuest(s, h, `brvx-${vni}`, '02:00:5e:33:00:01');
    const env = udhcpc(guest.ns, { request: [17, 26] });
    assert.is(env?.ip, '10.6.1.10');
    assert.is(env?.domain, 'cli.example');
    assert.is(env?.rootpath, 'a,b "c" \\d #e', 'a string option arrives exactly as given');
    assert.is(env?.mtu, '1400');

    const inst = dnsmasqInstance(stateDir, ns);
    const snapshot = () => [
      readFileSync(join(stateDir, 'routers', `${ns}.json`), 'utf8'),
      ...[inst.paths.hosts, inst.paths.opts, inst.paths.names, inst.paths.servers].map((p) => readFileSync(p, 'utf8')),
      String(inst.pid()),
    ];
    const before = snapshot();
    const attempts: Array<[string, string[], string]> = [
      ['newline in host name', ['add-dhcp-entry', ...net, '--mac', '02:00:5e:33:00:02', '--ip', '10.6.1.11', '--hostname', 'vm\ndhcp-range=10.6.1.0,10.6.1.200'], 'hostname'],
      ['lease-time host name', ['add-dhcp-entry', ...net, '--mac', '02:00:5e:33:00:02', '--ip', '10.6.1.11', '--hostname', '3600'], 'hostname'],
      ['keyword host name', ['add-dhcp-entry', ...net, '--mac', '02:00:5e:33:00:02', '--ip', '10.6.1.11', '--hostname', 'ignore'], 'hostname'],
      ['tag in MAC', ['add-dhcp-entry', ...net, '--mac', '02:00:5e:33:00:02,set:known', '--ip', '10.6.1.11'], 'mac'],
      ['comma in address', ['add-dhcp-entry', ...net, '--mac', '02:00:5e:33:00:02', '--ip', '10.6.1.11,infinite'], 'ip'],
      ['address outside the subnet', ['add-dhcp-entry', ...net, '--mac', '02:00:5e:33:00:02', '--ip', '10.6.2.11'], 'ip'],
      ['the router\'s own address', ['add-dhcp-entry', ...net, '--mac', '02:00:5e:33:00:02', '--ip', '10.6.1.1'], 'ip'],
      ['newline in an option', ['set-dhcp-options', ...net, '--nic-id', '71', '--options', '{"6":"1.2.3.4\\nserver=203.0.113.66"}'], 'options'],
      ['extra field in an address option', ['set-dhcp-options', ...net, '--nic-id', '71', '--options', '{"6":"1.2.3.4,tag:x"}'], 'options'],
      ['internal option', ['set-dhcp-options', ...net, '--nic-id', '71', '--options', '{"54":"10.6.1.99"}'], 'options'],
      ['option out of range', ['set-dhcp-options', ...net, '--nic-id', '71', '--options', '{"300":"x"}'], 'options'],
      ['unknown option name', ['set-dhcp-options', ...net, '--nic-id', '71', '--options', '{"option:evil":"x"}'], 'options'],
      ['bad integer option', ['set-dhcp-options', ...net, '--nic-id', '71', '--options', '{"26":"1400,3"}'], 'options'],
      ['space in DNS name', ['add-dns-entry', ...net, '--ip', '10.6.1.20', '--hostname', 'a b'], 'hostname'],
      ['newline in domain', ['config-dns-subnet', ...net, '--gateway', '10.6.1.1', '--cidr', '10.6.1.0/24', '--domain', 'x\nport=0'], 'domain'],
      ['foreign subnet', ['config-dhcp-subnet', ...net, '--gateway', '10.9.1.1', '--cidr', '10.9.1.0/24'], 'cidr'],
    ];
    for (const [what, args, mention] of attempts) {
      const r = cli(...args);
      assert.is(r.status, 1, `${what}: exit 1 (got ${r.status}: ${r.stderr})`);
      assert.match(r.stderr, mention, `${what}: the error names ${mention}`);
    }
    assert.equal(snapshot(), before, 'state, dnsmasq files and process untouched');
    assert.is(udhcpc(guest.ns)?.ip, '10.6.1.10', 'still serving');

    ok(cli('remove-dhcp-subnet', ...net));
    assert.equal(dnsmasqPids(stateDir), [], 'remove-dhcp-subnet stops dnsmasq');
    ok(cli('remove-dhcp-entry', '--network-id', String(Number(id) + 1), '--mac', '02:00:5e:33:00:09'));
    assert.is(spawnSync('ls', [join(stateDir, 'routers')], { encoding: 'utf8' }).stdout.includes(`cs-net-${Number(id) + 1}`), false, 'a removal on an unknown router stores nothing');
    ok(cli('destroy-network', ...net));
  } finally {
    for (const p of dnsmasqPids(stateDir)) process.kill(p, 'SIGKILL');
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
