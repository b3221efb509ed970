/**
 * The router's lifecycle driven the way CloudStack drives it, end to end over SSH: the management
 * server entry installed by `install-proxy` runs ensure-network-device and then each command with a
 * payload file; on the "KVM host" (a namespace with a real sshd) the wrapper is netns-router itself,
 * installed by `install-wrapper` (with --host-netns, so host plumbing stays in the test namespace).
 * Real packets check the result: source NAT out, a port forward in, nothing left after destroy.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netnsExists } from '../../lib/netns/namespaces.js';
import { preferredHostIndex } from '../../lib/proxy/cksum.js';
import { Scratch, addVm, ping, simulatedHost, tcpAsk, waitFor, whoamiServer } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { SshLab } from '../helpers/sshd.js';
import { dumpSection } from '../helpers/cloudstack.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

function run(argv: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
    p.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    const guard = setTimeout(() => p.kill('SIGKILL'), 120_000);
    p.on('close', (status) => { clearTimeout(guard); resolve({ status, stdout, stderr }); });
  });
}

test('lifecycle through the proxy: ensure-network-device, implement-network, assign-ip, add-port-forward, custom-action, destroy-network', async () => {
  const s = new Scratch();
  const lab = new SshLab(s);
  // an id whose preferred host (cksum modulo 2) is the first one, which is down
  let id = String(3000 + Math.floor(Math.random() * 6000));
  while (preferredHostIndex(id, 2) !== 0) id = String(Number(id) + 1);
  const ns = s.track(`cs-net-${id}`);
  const procs: Array<{ kill: () => void }> = [];
  try {
    const { hostNs, upNs, h } = simulatedHost(s);
    const key = lab.keyPair();
    lab.authorize(key);
    const kvm = await lab.addHost({ name: 'kvm', ns: hostNs });
    // the hash prefers this host, but its sshd is down: the choice must skip it
    const down = await lab.addHost({ name: 'down' });
    await down.stop();

    const root = join(lab.dir, 'root');
    const ext = 'nrtest';
    // KVM host side: netns-router as the extension's wrapper
    const iw = execFileSync(process.execPath, [CLI, 'install-wrapper', '--extension', ext, '--root', root, '--script', CLI,
      '--host-netns', hostNs, '--state-dir', join(lab.dir, 'state'), '--log-file', join(lab.dir, 'wrapper.log')], { encoding: 'utf8' });
    const wrapper = join(root, `etc/cloudstack/extensions/${ext}/${ext}-wrapper.sh`);
    assert.match(iw, wrapper);
    // management server side: the proxy entry CloudStack runs
    const ip = execFileSync(process.execPath, [CLI, 'install-proxy', '--extension', ext, '--root', root, '--script', CLI,
      '--known-hosts', lab.knownHosts, '--remote-wrapper', wrapper, '--log-file', join(lab.dir, 'proxy.log'), '--connect-timeout', '3'], { encoding: 'utf8' });
    const entry = join(root, `usr/share/cloudstack-management/extensions/${ext}/${ext}.sh`);
    assert.match(ip, entry);
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: lab.dir };
    delete env.CS_NET_SCRIPT_PATH;

    const physical = {
      hosts: `${down.address},${kvm.address}`, sshkey: key.privateKey, username: 'root', port: '22',
      'guest.network.device': 'eth1', 'public.network.device': 'eth1',
    };
    let networkDetails: Record<string, unknown> = {};
    let n = 0;
    // like CloudStack: <entry> <command> <payload-file> <timeout>
    const cs = async (command: string, payload: Record<string, unknown>, flat = false) => {
      const file = join(lab.dir, `payload-${n++}.json`);
      const doc = flat
        ? { ...payload, 'physical-network-extension-details': physical, 'network-extension-details': networkDetails }
        : { 'physical-network-extension-details': physical, 'network-extension-details': networkDetails, payload };
      writeFileSync(file, JSON.stringify(doc));
      return run([entry, command, file, '60'], env);
    };

    let r = await cs('ensure-network-device', { network_id: id });
    assert.is(r.status, 0, r.stderr);
    networkDetails = JSON.parse(r.stdout);
    assert.equal(networkDetails, { host: kvm.address, namespace: ns }, 'the preferred host is down: the next one is chosen');

    r = await cs('implement-network', { network_id: id, vlan: 'vxlan://4711', gateway: '10.47.1.1', cidr: '10.47.1.0/24', guest_type: 'isolated' });
    assert.is(r.status, 0, r.stderr);
    assert.ok(netnsExists(ns), 'router namespace created on the host');
    r = await cs('assign-ip', { network_id: id, public_ip: '203.0.113.47', public_vlan: 'untagged', public_gateway: '203.0.113.1', public_cidr: '203.0.113.0/24', source_nat: 'true' });
    assert.is(r.status, 0, r.stderr);

    const vm = addVm(s, h, 'brvx-4711', '10.47.1.10/24', '10.47.1.1');
    procs.push(whoamiServer(upNs, 9000), whoamiServer(vm.ns, 8080));
    await waitFor(() => tcpAsk(upNs, '127.0.0.1', 9000) !== '' && tcpAsk(vm.ns, '127.0.0.1', 8080) !== '');
    assert.is(tcpAsk(vm.ns, '203.0.113.1', 9000), '203.0.113.47', 'source NAT');

    r = await cs('add-port-forward', { network_id: id, public_ip: '203.0.113.47', public_port: '80', private_ip: '10.47.1.10', private_port: '8080', protocol: 'tcp' });
    assert.is(r.status, 0, r.stderr);
    assert.is(tcpAsk(upNs, '203.0.113.47', 80), '', 'closed until a firewall rule opens it');
    r = await cs('apply-fw-rules', { network_id: id, fw_rules: { default_egress_allow: true, rules: [{ id: 1, type: 'ingress', protocol: 'tcp', portStart: 80, publicIp: '203.0.113.47', sourceCidrs: ['0.0.0.0/0'] }] } });
    assert.is(r.status, 0, r.stderr);
    assert.is(tcpAsk(upNs, '203.0.113.47', 80), '203.0.113.1', 'port forward');

    // a bad request fails on the management side (1) and changes nothing on the host
    r = await cs('add-port-forward', { network_id: id, public_ip: '203.0.113.47', public_port: '70000', private_ip: '10.47.1.10', private_port: '8080' });
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, 'payload.public_port');
    // a request the host's router refuses: 3, with the wrapper's message
    r = await cs('add-static-nat', { network_id: id, public_ip: '198.51.100.9', private_ip: '10.47.1.10' });
    assert.is(r.status, 3, r.stderr);
    assert.match(r.stderr, 'netns-router');

    r = await cs('custom-action', { network_id: id, action: 'dump-config' }, true);
    assert.is(r.status, 0, r.stderr);
    assert.is(dumpSection(JSON.parse(r.stdout).message, 'state').portForwards.length, 1, 'custom-action output comes back');

    // positive control of the ping below: the public IP answers while the network exists (ICMP opened)
    r = await cs('apply-fw-rules', { network_id: id, fw_rules: { default_egress_allow: true, rules: [{ id: 1, type: 'ingress', protocol: 'tcp', portStart: 80, publicIp: '203.0.113.47', sourceCidrs: ['0.0.0.0/0'] }, { id: 2, type: 'ingress', protocol: 'icmp', publicIp: '203.0.113.47', sourceCidrs: ['0.0.0.0/0'] }] } });
    assert.is(r.status, 0, r.stderr);
    assert.ok(ping(upNs, '203.0.113.47'), 'the public IP answers ping before the destroy');

    r = await cs('destroy-network', { network_id: id });
    assert.is(r.status, 0, r.stderr);
    assert.not.ok(netnsExists(ns), 'namespace gone');
    assert.not.ok(ping(upNs, '203.0.113.47'), 'public IP gone');

    // both logs exist and hold no key material
    const keyLine = key.privateKey.split('\n')[1];
    for (const f of ['proxy.log', 'wrapper.log']) {
      const text = readFileSync(join(lab.dir, f), 'utf8');
      assert.ok(text.length > 0, f);
      assert.not.ok(text.includes(keyLine), `${f} has no key material`);
    }
    assert.ok(readFileSync(join(lab.dir, 'proxy.log'), 'utf8').includes('"command":"implement-network"'));
    assert.equal(readdirSync(kvm.tmp), [], 'no payload left on the host');
  } finally {
    for (const p of procs) p.kill();
    await lab.cleanup();
    s.cleanup();
  }
});

test.run();
