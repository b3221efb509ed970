/**
 * Ingress to public IPs by role, as CloudStack's virtual router does it, driven through the CLI with payload
 * files in CloudStack's envelope: on an isolated network every public IP — source NAT, static NAT, port
 * forwards, load balancer — is closed from the moment the role is added, opens when an apply-fw-rules allows
 * it and closes again when the rule is removed (CloudStack re-sends the whole rule set). On a VPC, static NAT
 * and port forwards follow the tier's ACL and load-balancer listeners are open (docs/firewall.md, table).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { Scratch, addVm, simulatedHost, uid, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { servers, serversUp, tcpOk, pingOk } from '../helpers/fw.js';
import { killDaemons } from '../helpers/router-cli.js';

requireSandbox();
/** An "open" probe may be retried (a busy machine can lose a first try); "closed" probes are single tries,
 *  each beside one that succeeds. */
const opens = (probe: () => boolean): Promise<boolean> => waitFor(probe, 5000);
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

/** Runs `netns-router <command> <payload-file> <timeout>` the way the extension does. */
function cloudstack(dir: string, hostNs: string) {
  let n = 0;
  return (command: string, payload: Record<string, unknown>, details: Record<string, unknown> = {}): void => {
    const file = join(dir, `p${n++}.json`);
    writeFileSync(file, JSON.stringify({
      'physical-network-extension-details': { 'public.network.device': 'eth1', 'guest.network.device': 'eth1' },
      'network-extension-details': details,
      payload,
    }));
    const r = spawnSync(process.execPath, [CLI, command, file, '30', '--host-netns', hostNs, '--state-dir', join(dir, 'state'), '--log-file', join(dir, 'log')], { encoding: 'utf8', timeout: 40_000 });
    assert.is(r.status, 0, `${command}: ${r.stderr}`);
  };
}

const ingress = (publicIp: string, protocol: string, port?: number) =>
  ({ id: `${publicIp}-${protocol}-${port ?? 'any'}`, type: 'ingress', protocol, publicIp, sourceCidrs: ['0.0.0.0/0'], ...(port ? { portStart: port, portEnd: port } : {}) });

test('isolated network: source NAT, static NAT, port forward and load balancer IPs are closed until a firewall rule opens them, and close again', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-deny-'));
  const id = String(2000 + (parseInt(uid(4), 16) % 7000));
  const vni = 4000 + (Number(id) % 1000);
  const ns = s.track(`cs-net-${id}`);
  const procs: ChildProcess[] = [];
  try {
    const { hostNs, upNs, h } = simulatedHost(s);
    const cs = cloudstack(dir, hostNs);
    const [SNAT, STATIC, LB] = ['203.0.113.50', '203.0.113.51', '203.0.113.52'];
    const net = { network_id: id, vlan: String(vni), gateway: '10.5.5.1', cidr: '10.5.5.0/24', guest_type: 'isolated' };
    // CloudStack's physical-network detail for bare numbers: here the segment is given as vxlan:// to stay on this kernel
    cs('implement-network', { ...net, vlan: `vxlan://${vni}` });
    const pub = (ip: string, sourceNat: boolean) => ({ network_id: id, public_ip: ip, public_vlan: 'untagged', public_gateway: '203.0.113.1', public_cidr: '203.0.113.0/24', source_nat: String(sourceNat) });
    cs('assign-ip', pub(SNAT, true));
    const vm1 = addVm(s, h, `brvx-${vni}`, '10.5.5.10/24', '10.5.5.1').ns;
    const vm2 = addVm(s, h, `brvx-${vni}`, '10.5.5.11/24', '10.5.5.1').ns;
    procs.push(...servers(vm1, [8080], []), ...servers(vm2, [22], []), ...servers(upNs, [9000], []));
    assert.ok(await serversUp(vm1, [8080], []) && await serversUp(vm2, [22], []) && await serversUp(upNs, [9000], []));
    assert.ok(await opens(() => tcpOk(vm1, '203.0.113.1', 9000)), 'positive control: source NAT egress and its replies');

    // each role, closed from the moment it is added
    assert.not.ok(pingOk(upNs, SNAT), 'source NAT IP: closed before any rule');
    cs('add-port-forward', { network_id: id, public_ip: SNAT, public_port: '80', private_ip: '10.5.5.10', private_port: '8080', protocol: 'tcp' });
    assert.not.ok(tcpOk(upNs, SNAT, 80), 'port forward: closed before a rule');
    cs('assign-ip', pub(STATIC, false));
    cs('add-static-nat', { network_id: id, public_ip: STATIC, private_ip: '10.5.5.11' });
    assert.not.ok(tcpOk(upNs, STATIC, 22), 'static NAT: closed before a rule');
    assert.not.ok(pingOk(upNs, STATIC), 'static NAT: ping closed before a rule');
    cs('assign-ip', pub(LB, false));
    cs('apply-lb-rules', { network_id: id, lb_rules: [{ id: 1, name: 'web', publicIp: LB, publicPort: 80, privatePort: 8080, protocol: 'tcp', algorithm: 'roundrobin', revoke: false, backends: [{ ip: '10.5.5.10', port: 8080, revoked: false }] }] });
    // haproxy is up (it answers from inside the router namespace): the closed port is the firewall, not a missing listener
    assert.ok(await waitFor(() => tcpOk(`cs-net-${id}`, LB, 80), 5000), 'positive control: the LB listener answers inside the router');
    assert.not.ok(tcpOk(upNs, LB, 80), 'load balancer: closed before a rule');

    // CloudStack sends the whole rule set, one rule per opened role
    const all = [ingress(SNAT, 'icmp'), ingress(SNAT, 'tcp', 80), ingress(STATIC, 'tcp', 22), ingress(STATIC, 'icmp'), ingress(LB, 'tcp', 80)];
    cs('apply-fw-rules', { network_id: id, fw_rules: { default_egress_allow: true, cidr: '10.5.5.0/24', rules: all } });
    assert.ok(await opens(() => pingOk(upNs, SNAT)), 'source NAT IP: open after an ICMP rule');
    assert.ok(await opens(() => tcpOk(upNs, SNAT, 80)), 'port forward: open after its rule');
    assert.ok(await opens(() => tcpOk(upNs, STATIC, 22)), 'static NAT: open after its rule');
    assert.ok(await opens(() => pingOk(upNs, STATIC)), 'static NAT: ping open after its rule');
    assert.ok(await opens(() => tcpOk(upNs, LB, 80)), 'load balancer: open after its rule');

    // each rule removed in turn (the rest still open = positive control for each probe)
    for (let i = 0; i < all.length; i++) {
      const kept = all.filter((_, j) => j > i);
      cs('apply-fw-rules', { network_id: id, fw_rules: { default_egress_allow: true, cidr: '10.5.5.0/24', rules: kept } });
    }
    assert.not.ok(pingOk(upNs, SNAT), 'source NAT IP: closed again');
    assert.not.ok(tcpOk(upNs, SNAT, 80), 'port forward: closed again');
    assert.not.ok(tcpOk(upNs, STATIC, 22), 'static NAT: closed again');
    assert.not.ok(tcpOk(upNs, LB, 80), 'load balancer: closed again');
    assert.ok(await opens(() => tcpOk(vm1, '203.0.113.1', 9000)), 'positive control: egress unaffected');
    cs('apply-fw-rules', { network_id: id, fw_rules: { default_egress_allow: true, rules: [ingress(LB, 'tcp', 80)] } });
    assert.ok(await opens(() => tcpOk(upNs, LB, 80)), 'positive control after the closures: the LB rule opens again');
    cs('destroy-network', { network_id: id });
  } finally {
    for (const p of procs) p.kill();
    killDaemons({ ns, stateDir: join(dir, 'state') }); // haproxy, when the test failed before its destroy
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('VPC: static NAT and port forwards follow the tier ACL; LB listeners are open; the source NAT IP answers nothing new', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-deny-'));
  const vpcId = String(100 + (parseInt(uid(4), 16) % 800));
  const tier = String(3000 + (parseInt(uid(4), 16) % 6000));
  const vni = 5000 + (Number(tier) % 1000);
  const ns = s.track(`cs-vpc-${vpcId}`);
  const procs: ChildProcess[] = [];
  try {
    const { hostNs, upNs, h } = simulatedHost(s);
    const cs = cloudstack(dir, hostNs);
    const [SNAT, STATIC, PF, LB] = ['203.0.113.70', '203.0.113.71', '203.0.113.72', '203.0.113.73'];
    cs('implement-vpc', { vpc_id: vpcId, vpc_cidr: '10.30.0.0/16', public_ip: SNAT, public_vlan: 'untagged', public_gateway: '203.0.113.1', public_cidr: '203.0.113.0/24', source_nat: 'true' });
    cs('implement-network', { network_id: tier, vpc_id: vpcId, vlan: `vxlan://${vni}`, gateway: '10.30.1.1', cidr: '10.30.1.0/24' });
    const pub = (ip: string) => ({ network_id: tier, vpc_id: vpcId, public_ip: ip, public_vlan: 'untagged', public_gateway: '203.0.113.1', public_cidr: '203.0.113.0/24', source_nat: 'false' });
    const vm = addVm(s, h, `brvx-${vni}`, '10.30.1.10/24', '10.30.1.1').ns;
    procs.push(...servers(vm, [22, 8080], []));
    assert.ok(await serversUp(vm, [22, 8080], []));
    cs('apply-network-acl', { network_id: tier, vpc_id: vpcId, acl_rules: [{ number: 1, action: 'Allow', trafficType: 'Ingress', protocol: 'tcp', portStart: 22, portEnd: 22, sourceCidrs: ['0.0.0.0/0'] }] });
    cs('assign-ip', pub(STATIC));
    cs('add-static-nat', { network_id: tier, vpc_id: vpcId, public_ip: STATIC, private_ip: '10.30.1.10' });
    cs('assign-ip', pub(PF));
    cs('add-port-forward', { network_id: tier, vpc_id: vpcId, public_ip: PF, public_port: '2222', private_ip: '10.30.1.10', private_port: '22', protocol: 'tcp' });
    cs('add-port-forward', { network_id: tier, vpc_id: vpcId, public_ip: PF, public_port: '80', private_ip: '10.30.1.10', private_port: '8080', protocol: 'tcp' });
    assert.ok(await opens(() => tcpOk(upNs, STATIC, 22)), 'static NAT: port allowed by the tier ACL');
    assert.not.ok(tcpOk(upNs, STATIC, 8080), 'static NAT: port the ACL does not allow');
    assert.ok(await opens(() => tcpOk(upNs, PF, 2222)), 'port forward to an ACL-allowed port');
    assert.not.ok(tcpOk(upNs, PF, 80), 'port forward to a port the ACL does not allow');
    cs('apply-network-acl', { network_id: tier, vpc_id: vpcId, acl_rules: [{ number: 1, action: 'Allow', trafficType: 'Ingress', protocol: 'tcp', portStart: 8080, portEnd: 8080, sourceCidrs: ['0.0.0.0/0'] }] });
    assert.ok(await opens(() => tcpOk(upNs, PF, 80)), 'the ACL now allows 8080: the port forward opens');
    assert.not.ok(tcpOk(upNs, PF, 2222), 'and 22 closes');
    assert.not.ok(pingOk(upNs, SNAT), 'the VPC source NAT IP answers nothing new');
    assert.ok(await opens(() => pingOk(ns, '203.0.113.1')), 'positive control: the router reaches the public gateway');

    cs('assign-ip', pub(LB));
    cs('apply-lb-rules', { network_id: tier, vpc_id: vpcId, lb_rules: [{ id: 2, name: 'web', publicIp: LB, publicPort: 80, privatePort: 8080, protocol: 'tcp', algorithm: 'roundrobin', revoke: false, backends: [{ ip: '10.30.1.10', port: 8080, revoked: false }] }] });
    assert.ok(await waitFor(() => tcpOk(upNs, LB, 80), 5000), 'VPC load balancer listener: open');
    cs('destroy-vpc', { vpc_id: vpcId });
  } finally {
    for (const p of procs) p.kill();
    killDaemons({ ns, stateDir: join(dir, 'state') }); // haproxy, when the test failed before its destroy
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
