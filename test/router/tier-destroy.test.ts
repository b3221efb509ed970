/**
 * A destroyed VPC tier is forgotten by every module (RouterModule.forgetTier), end to end through the CLI with
 * CloudStack payload files: implement-vpc → two tiers with DHCP, reservations, ACLs and VM data → destroy
 * one → implement it again: none of its old configuration comes back (state, dnsmasq, nft, a real DHCP
 * client), while the other tier keeps all of its own.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { dnsmasqInstance } from '../../lib/router/dhcp/index.js';
import { stopDaemon } from '../../lib/services/metadata/index.js';
import { Scratch, nsExec, simulatedHost } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { addGuest, dnsmasqPids, udhcpc } from '../helpers/dhcp.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

test('destroy-network of a VPC tier: re-implemented, it comes back empty; the other tier keeps its DHCP and ACL', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-tier-'));
  chmodSync(dir, 0o755);
  const stateDir = join(dir, 'state');
  const vpc = String(100 + Math.floor(Math.random() * 800));
  const ns = s.track(`cs-vpc-${vpc}`);
  const [a, b] = [`${vpc}1`, `${vpc}2`];
  const vni = 9000 + Math.floor(Math.random() * 900);
  try {
    const { hostNs, h } = simulatedHost(s);
    const g = ['--host-netns', hostNs, '--state-dir', stateDir, '--log-file', join(dir, 'log')];
    let n = 0;
    const send = (command: string, payload: Record<string, unknown>) => {
      const file = join(dir, `p${n++}.json`);
      writeFileSync(file, JSON.stringify({ 'physical-network-extension-details': { 'guest.network.device': 'eth1' }, 'network-extension-details': {}, payload }));
      const r = spawnSync(process.execPath, [CLI, command, file, '60', ...g], { encoding: 'utf8', timeout: 60_000 });
      assert.is(r.status, 0, `${command}: ${r.stderr}`);
    };
    const tier = (id: string, k: number) => ({
      network_id: id, vpc_id: vpc, vlan: `vxlan://${vni + k}`, zone_id: '1', guest_type: 'isolated', gateway: `10.77.${k}.1`, cidr: `10.77.${k}.0/24`,
    });
    const mac = (k: number) => `02:00:4d:00:0${k}:0a`;
    const acl = (k: number) => [{ number: 1, action: 'allow', trafficType: 'ingress', protocol: 'tcp', portStart: 22, portEnd: 22, sourceCidrs: [`10.77.${k}.0/24`] }];

    send('implement-vpc', { vpc_id: vpc, vpc_cidr: '10.77.0.0/16' });
    for (const [id, k] of [[a, 1], [b, 2]] as const) {
      send('implement-network', tier(id, k));
      send('config-dhcp-subnet', { ...tier(id, k), dns: '192.0.2.53', domain: `t${k}.example` });
      send('add-dhcp-entry', { ...tier(id, k), mac: mac(k), ip: `10.77.${k}.10`, hostname: `vm${k}`, default_nic: 'true' });
      send('apply-network-acl', { ...tier(id, k), acl_rules: acl(k) });
      send('save-vm-data', { ...tier(id, k), ip: `10.77.${k}.10`, vm_data: [{ dir: 'metadata', file: 'local-hostname', content: `vm${k}` }] });
    }
    const guestA = addGuest(s, h, `brvx-${vni + 1}`, mac(1));
    const guestB = addGuest(s, h, `brvx-${vni + 2}`, mac(2));
    assert.is(udhcpc(guestA.ns)?.ip, '10.77.1.10', 'control: tier A serves its reservation before');
    const table = () => nsExec(ns, ['nft', 'list', 'table', 'inet', 'netns_router']);
    assert.match(table(), `acl_in_${a}`, 'control: tier A\'s ACL is in nft before');

    send('destroy-network', tier(a, 1));
    const stored = () => JSON.parse(readFileSync(join(stateDir, 'routers', `${ns}.json`), 'utf8'));
    for (const when of ['after destroy', 'after re-implement']) {
      const m = stored();
      assert.is(m.extra.dhcp.tiers[a], undefined, `${when}: no DHCP state of tier A`);
      assert.is(m.extra.firewall.acl[a], undefined, `${when}: no ACL of tier A`);
      assert.equal(Object.values(m.extra.vmdata.vms).map((v) => (v as { tier: string }).tier), [b], `${when}: VM data of tier B only`);
      assert.ok(m.extra.dhcp.tiers[b]?.hosts[mac(2)], `${when}: tier B's reservation kept`);
      assert.ok(m.extra.firewall.acl[b], `${when}: tier B's ACL kept`);
      if (when === 'after destroy') send('implement-network', tier(a, 1));
    }

    const hosts = readFileSync(dnsmasqInstance(stateDir, ns).paths.hosts, 'utf8');
    assert.not.match(hosts, mac(1), 'no reservation of tier A in dnsmasq\'s configuration');
    assert.match(hosts, mac(2), 'tier B\'s still there');
    const nft = table();
    assert.not.match(nft, `acl_in_${a}`, 'tier A\'s ACL absent from nft');
    assert.match(nft, `acl_in_${b}`, 'tier B\'s ACL present');
    assert.is(udhcpc(guestA.ns, { tries: 2 }), undefined, 'tier A\'s old VM gets no lease from the re-implemented tier');
    assert.is(udhcpc(guestB.ns)?.ip, '10.77.2.10', 'tier B still serves its VM (the client works)');

    send('destroy-vpc', { vpc_id: vpc });
  } finally {
    for (const p of dnsmasqPids(stateDir)) process.kill(p, 'SIGKILL');
    await stopDaemon(stateDir);
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
