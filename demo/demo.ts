/**
 * `npm run demo`: builds a real router in network namespaces on this machine (inside a private sandbox
 * namespace, so the machine's own network is never touched) and shows it working with real packets:
 * a simulated KVM host with its public uplink `eth1` to an upstream network, an isolated guest network on
 * VXLAN 5001 with two VMs, a public IP with source NAT, a static NAT and a port forward; then a firewall
 * applied the way CloudStack does it: the extension's wrapper shim, handed to a resident engine.
 * Timings say what they measure: "in-library" is one RouterEngine call inside this process (no CLI process, no
 * node start-up); the shim's is a whole process, from its start to its exit.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { RouterEngine } from '../lib/router/engine.js';
import { addNetns, deleteNetns, netnsExists } from '../lib/netns/namespaces.js';
import { NetnsHandle } from '../lib/netns/handle.js';
import { runCommand } from '../lib/router/command-table.js';

if (process.env.NETNS_ROUTER_SANDBOX !== '1') {
  console.error('run the demo with: npm run demo  (it runs inside a private network namespace)');
  process.exit(1);
}

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'netns-router.cjs');
const created: string[] = [];
const procs: Array<{ kill: () => void }> = [];
const cidr = (s: string) => { const [address, p] = s.split('/'); return { family: 4 as const, address, prefix: Number(p) }; };
const ms = (t0: number) => `${(performance.now() - t0).toFixed(1)} ms`;
const inLibrary = (t0: number) => `${ms(t0)} in-library`;
const nsRun = (ns: string, cmd: string[]) => spawnSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', timeout: 5000 });
const ask = (ns: string, ip: string, port: number) => (nsRun(ns, ['socat', '-T2', '-', `TCP:${ip}:${port},connect-timeout=2`]).stdout ?? '').trim() || '(no answer)';
const ok = (b: boolean) => (b ? 'yes' : 'NO');

function mkns(name: string): NetnsHandle {
  addNetns(name);
  created.push(name);
  return NetnsHandle.open(name);
}

async function main(): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), 'netns-router-demo-'));
  try {
    console.log('netns-router demo — building a simulated KVM host, an upstream network and two guest VMs\n');
    const host = mkns('demo-host');
    const up = mkns('demo-upstream');
    host.netlink.linkAdd({ kind: 'veth', name: 'eth1', up: true, peer: { name: 'wan0', namespace: { netns: 'demo-upstream' }, up: true } });
    up.netlink.linkSetUp('lo');
    up.netlink.addrAdd({ dev: 'wan0', address: '203.0.113.1/24' });
    procs.push(spawn('ip', ['netns', 'exec', 'demo-upstream', 'socat', 'TCP-LISTEN:9000,fork,reuseaddr', 'SYSTEM:echo $SOCAT_PEERADDR'], { stdio: 'ignore' }));

    const engine = new RouterEngine({ stateDir, hostNetns: 'demo-host', devices: { guest: 'eth1', public: 'eth1' } });
    const net = { networkId: '42', namespace: 'cs-net-42' };
    created.push('cs-net-42');
    console.log('the commands, timed "in-library": one RouterEngine call inside this process, without a CLI process or a');
    console.log('node start-up (the production path, the wrapper shim and a resident engine, is timed at the end):');
    let t0 = performance.now();
    await runCommand(engine, { command: 'implement-network', ...net, segment: { kind: 'vxlan', vni: 5001 }, gateway: '10.1.1.1', cidr: cidr('10.1.1.0/24') });
    console.log(`  implement-network 42 (vxlan://5001, 10.1.1.0/24) ........ ${inLibrary(t0)}`);
    t0 = performance.now();
    await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.10', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: true } });
    console.log(`  assign-ip 203.0.113.10 (source NAT) ..................... ${inLibrary(t0)}`);
    t0 = performance.now();
    await runCommand(engine, { command: 'assign-ip', ...net, publicIp: { ip: '203.0.113.11', segment: { kind: 'untagged' }, gateway: '203.0.113.1', cidr: cidr('203.0.113.0/24'), sourceNat: false } });
    await runCommand(engine, { command: 'add-static-nat', ...net, publicIp: { ip: '203.0.113.11', sourceNat: false }, privateIp: '10.1.1.11' });
    console.log(`  assign-ip 203.0.113.11 + add-static-nat → 10.1.1.11 ...... ${inLibrary(t0)} (two calls)`);
    t0 = performance.now();
    await runCommand(engine, { command: 'add-port-forward', ...net, publicIp: { ip: '203.0.113.10', sourceNat: true }, publicPorts: { start: 80, end: 80 }, privateIp: '10.1.1.10', privatePorts: { start: 8080, end: 8080 }, protocol: 'tcp' });
    console.log(`  add-port-forward 203.0.113.10:80 → 10.1.1.10:8080 ....... ${inLibrary(t0)}`);
    // public IPs of an isolated network are closed until a firewall rule opens them (CloudStack's virtual router;
    // CloudStack sends these rules itself for a port forward or static NAT created with openfirewall=true)
    t0 = performance.now();
    await runCommand(engine, { command: 'apply-fw-rules', ...net, fwRules: { source: 'demo', value: { default_egress_allow: true, rules: [
      { id: 1, type: 'ingress', protocol: 'tcp', portStart: 80, portEnd: 80, publicIp: '203.0.113.10', sourceCidrs: ['0.0.0.0/0'] },
      { id: 2, type: 'ingress', protocol: 'icmp', publicIp: '203.0.113.10', sourceCidrs: ['0.0.0.0/0'] },
      { id: 3, type: 'ingress', protocol: 'icmp', publicIp: '203.0.113.11', sourceCidrs: ['0.0.0.0/0'] },
    ] } } });
    console.log(`  apply-fw-rules: open tcp/80 + ICMP ...................... ${inLibrary(t0)}\n`);

    const vms: Array<[string, string]> = [['demo-vm1', '10.1.1.10/24'], ['demo-vm2', '10.1.1.11/24']];
    for (const [name, ip] of vms) {
      const vm = mkns(name);
      host.netlink.linkAdd({ kind: 'veth', name: `t${name.slice(-3)}`, master: 'brvx-5001', up: true, peer: { name: 'eth0', namespace: { netns: name }, up: true } });
      vm.netlink.linkSetUp('lo');
      vm.netlink.addrAdd({ dev: 'eth0', address: ip });
      vm.netlink.routeReplace({ dst: 'default', via: '10.1.1.1' });
      vm.close();
    }
    procs.push(spawn('ip', ['netns', 'exec', 'demo-vm1', 'socat', 'TCP-LISTEN:8080,fork,reuseaddr', 'SYSTEM:echo hello from vm1 - you are $SOCAT_PEERADDR'], { stdio: 'ignore' }));
    await new Promise((r) => setTimeout(r, 300));

    console.log('what the network does (real packets):');
    console.log(`  vm1 pings its gateway 10.1.1.1 ............... ${ok(nsRun('demo-vm1', ['ping', '-c1', '-W1', '10.1.1.1']).status === 0)}`);
    console.log(`  vm1 → internet peer sees source address ....... ${ask('demo-vm1', '203.0.113.1', 9000)}   (source NAT)`);
    console.log(`  vm2 → internet peer sees source address ....... ${ask('demo-vm2', '203.0.113.1', 9000)}   (static NAT)`);
    console.log(`  internet → 203.0.113.10:80 answers ............ ${ask('demo-upstream', '203.0.113.10', 80)}`);
    console.log(`  internet pings 203.0.113.11 (vm2) ............. ${ok(nsRun('demo-upstream', ['ping', '-c1', '-W1', '203.0.113.11']).status === 0)}`);

    console.log('\nrouter namespace cs-net-42:');
    console.log(execFileSync('ip', ['-n', 'cs-net-42', '-br', 'addr'], { encoding: 'utf8' }).replace(/^/gm, '  '));
    console.log(execFileSync('ip', ['-n', 'cs-net-42', 'route'], { encoding: 'utf8' }).replace(/^/gm, '  '));
    // the router's nftables table exactly as nft prints it (nft run inside the namespace)
    console.log('nftables in cs-net-42 (nft list table inet netns_router):');
    const listing = execFileSync('ip', ['netns', 'exec', 'cs-net-42', 'nft', 'list', 'table', 'inet', 'netns_router'], { encoding: 'utf8' });
    console.log(listing.trimEnd().replace(/^/gm, '  '));
    console.log('  (per-IP data live in the maps, so the rules do not grow with addresses or forwards; nat_out applies the');
    console.log('   same DNAT to connections the router itself opens; contents_stamp guards in-place updates: lib/nft/table-sync.ts)');

    // the production path: CloudStack runs the extension's wrapper shim; with the resident engine running, the
    // shim hands the command line over without starting node (docs/resident.md)
    console.log('\nas CloudStack runs it: the wrapper shim, with a resident engine (netns-router serve):');
    const runDir = join(stateDir, 'run');
    const serve = spawn(process.execPath, [CLI, 'serve', '--socket', join(runDir, 'engine.sock')], { stdio: ['ignore', 'ignore', 'pipe'] });
    procs.push(serve);
    let said = '';
    serve.stderr!.on('data', (c: Buffer) => { said += c.toString(); });
    for (let i = 0; i < 300 && !said.includes('listening'); i++) await new Promise((r) => setTimeout(r, 20));
    const inst = spawnSync(process.execPath, [CLI, 'install-wrapper', '--extension', 'demo', '--root', join(stateDir, 'root'), '--script', CLI,
      '--host-netns', 'demo-host', '--state-dir', stateDir, '--log-file', join(stateDir, 'demo.log')], { encoding: 'utf8', env: { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: 'off' } });
    if (inst.status !== 0) throw new Error(`install-wrapper: ${inst.stderr}`);
    const shim = join(stateDir, 'root', 'etc', 'cloudstack', 'extensions', 'demo', 'demo-wrapper.sh');
    const payload = join(stateDir, 'fw.json');
    writeFileSync(payload, JSON.stringify({ payload: { network_id: '42', fw_rules: { default_egress_allow: true, rules: [
      { id: 1, type: 'ingress', protocol: 'tcp', portStart: 80, portEnd: 80, publicIp: '203.0.113.10', sourceCidrs: ['0.0.0.0/0'] },
    ] } } }));
    const env = { ...process.env, NETNS_ROUTER_ENGINE_SOCKET: join(runDir, 'engine.sock') };
    console.log(`  internet pings 203.0.113.10 (before) ......... ${ok(nsRun('demo-upstream', ['ping', '-c1', '-W1', '203.0.113.10']).status === 0)}`);
    t0 = performance.now();
    const fw = spawnSync(shim, ['apply-fw-rules', payload, '30'], { encoding: 'utf8', env });
    if (fw.status !== 0) throw new Error(`apply-fw-rules via the shim: ${fw.stderr}`);
    console.log(`  demo-wrapper.sh apply-fw-rules (tcp/80 only) .. ${ms(t0)}: the shim process, start to exit (bash hands the\n    command line to the resident engine; no node start-up)`);
    console.log(`  internet → 203.0.113.10:80 answers ............ ${ask('demo-upstream', '203.0.113.10', 80)}`);
    console.log(`  internet pings 203.0.113.10 (now filtered) .... ${nsRun('demo-upstream', ['ping', '-c1', '-W1', '203.0.113.10']).status === 0 ? 'answered (WRONG)' : 'no answer (dropped)'}`);
    serve.kill('SIGTERM');

    t0 = performance.now();
    await runCommand(engine, { command: 'destroy-network', ...net });
    console.log(`\ndestroy-network 42 ........................... ${inLibrary(t0)} (namespace gone: ${ok(!netnsExists('cs-net-42'))})`);
    host.close();
    up.close();
  } finally {
    for (const p of procs) p.kill();
    for (const n of created.reverse()) if (netnsExists(n)) deleteNetns(n, { ifExists: true });
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(2);
});
