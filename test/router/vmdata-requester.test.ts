/**
 * Who gets a VM's data: the metadata and password services answer a requester only when the router sees it
 * (neighbour entry of the source address) with the MAC recorded for that address. Real guests on the
 * simulated host's bridge: a VM that takes another one's address keeping its own MAC gets nothing (and cannot
 * acknowledge the other's password); one that also copies the MAC is, at this layer, the VM (guest-segment
 * anti-spoofing is what stops that). cloud-init's own CloudStack datasource reads everything back.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as T from '../../lib/router/contract/types.js';
import * as vd from '../../lib/router/vmdata/index.js';
import { vmDir } from '../../lib/services/metadata/index.js';
import { inScratch, nsExec, nsTry } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { guestGet, metadataNetwork, passwordRequest } from '../helpers/metadata.js';
import { killRouterDaemons } from '../helpers/daemons.js';
import { runCommand } from '../../lib/router/command-table.js';

requireSandbox();
vd.vmdataSettings.daemonIdleExitMs = 500;

const MAC1 = '02:00:00:0e:01:0a';
const MAC2 = '02:00:00:0e:01:0b';
const MAC3 = '02:00:00:0e:01:0c';

function rows(name: string, extra: Array<{ dir: string; file: string; content: string }> = []) {
  return [
    { dir: 'userdata', file: 'user-data', content: `#cloud-config\nsecret_of: ${name}\n` },
    { dir: 'metadata', file: 'instance-id', content: `i-${name}` },
    { dir: 'metadata', file: 'local-hostname', content: name },
    { dir: 'metadata', file: 'public-keys', content: `ssh-ed25519 AAAAkey${name} ${name}@x` },
    ...extra,
  ];
}

/** A guest (namespace) taking over `ip` as an extra address; its next packets make it ask for the router's MAC. */
function takeAddress(ns: string, ip: string, mac?: string): void {
  if (mac) nsExec(ns, ['ip', 'link', 'set', 'eth0', 'address', mac]);
  nsExec(ns, ['ip', 'addr', 'add', ip, 'dev', 'eth0']);
  nsExec(ns, ['ip', 'neigh', 'flush', 'all']);
}

function dropAddress(ns: string, ip: string, mac?: string): void {
  nsExec(ns, ['ip', 'addr', 'del', ip, 'dev', 'eth0']);
  if (mac) nsExec(ns, ['ip', 'link', 'set', 'eth0', 'address', mac]);
  nsExec(ns, ['ip', 'neigh', 'flush', 'all']);
}

test('a VM that takes another VM\'s address gets none of its data; with its MAC too it does (this layer cannot tell)', async () => {
  // this layer alone: the guest-segment filter (lib/router/vmfilter, off by default) would drop the spoofed frames
  // before they reach the router, which test/router/vm-filter*.test.ts prove
  await inScratch((s) => metadataNetwork(s, '10.14.1', [MAC1, MAC2, MAC3]), async (t) => {
    const { engine, net, ns, stateDir, h, vms: [vm1, vm2, vm3] } = t;
    const save = (ip: string, value: unknown) => runCommand(engine, { command: 'save-vm-data', ...net, ip, vmData: { value, source: 'payload.vm_data' } } as T.SaveVmDataRequest);
    // vm1's MAC comes from its DHCP reservation (add-dhcp-entry), vm2's from prepare-nic after its data;
    // vm3's address has no MAC anywhere: served by address alone (documented as unprotected)
    await runCommand(engine, { command: 'add-dhcp-entry', ...net, mac: MAC1, ip: '10.14.1.10', defaultNic: true });
    await save('10.14.1.10', rows('vm1', [{ dir: 'password', file: 'vm_password', content: 'Pw-of-vm1' }]));
    await save('10.14.1.11', rows('vm2'));
    await runCommand(engine, { command: 'prepare-nic', ...net, ip: '10.14.1.11', mac: MAC2, defaultNic: true });
    await save('10.14.1.12', rows('vm3'));
    const vm1Dir = vmDir(stateDir, ns, '10.14.1.10');
    assert.is(readFileSync(join(vm1Dir, 'mac'), 'utf8').trim(), MAC1);
    assert.is(readFileSync(join(vmDir(stateDir, ns, '10.14.1.11'), 'mac'), 'utf8').trim(), MAC2);
    assert.not.ok(existsSync(join(vmDir(stateDir, ns, '10.14.1.12'), 'mac')));

    // positive controls: each VM reads its own data
    assert.equal(guestGet(vm1.ns, 'http://10.14.1.1/latest/user-data'), { status: 200, body: '#cloud-config\nsecret_of: vm1\n' });
    assert.equal(guestGet(vm2.ns, 'http://10.14.1.1/latest/user-data'), { status: 200, body: '#cloud-config\nsecret_of: vm2\n' });
    assert.is(guestGet(vm3.ns, 'http://10.14.1.1/latest/meta-data/instance-id').body, 'i-vm3');

    // vm1 goes down (its port leaves the bridge); vm2 adds vm1's address, keeping its own MAC
    h.netlink.linkSetDown(vm1.hostEnd);
    takeAddress(vm2.ns, '10.14.1.10/24');
    const spoof = { from: '10.14.1.10' };
    for (const path of ['/latest/user-data', '/latest/meta-data/instance-id', '/latest/local-hostname', '/latest/meta-data/public-keys', '/latest/meta-data/', '/latest/']) {
      const r = guestGet(vm2.ns, `http://10.14.1.1${path}`, {}, spoof);
      assert.is(r.status, 404, `${path}: answered as for an address without data`);
      assert.not.match(r.body, 'vm1', path);
    }
    assert.equal(passwordRequest(vm2.ns, '10.14.1.1', 'send_my_password', spoof), { status: 200, body: 'saved_password' }, 'no password');
    assert.equal(passwordRequest(vm2.ns, '10.14.1.1', 'saved_password', spoof), { status: 200, body: 'saved_password' }, 'the ack is answered…');
    assert.ok(existsSync(join(vm1Dir, 'password-1')) && !existsSync(join(vm1Dir, 'delivered-1')), '…and changes nothing: still pending for vm1');
    // the same guest under its own address, in the same breath: served
    assert.is(guestGet(vm2.ns, 'http://10.14.1.1/latest/meta-data/instance-id').body, 'i-vm2', 'positive control');
    // the refusal is logged, without any of the data
    const log = readFileSync(join(stateDir, 'run', 'metadata.log'), 'utf8');
    const refusal = log.split('\n').find((l) => l.includes('requester refused') && l.includes('10.14.1.10'));
    assert.ok(refusal, log);
    const ev = JSON.parse(refusal!) as Record<string, unknown>;
    assert.is(ev.recordedMac, MAC1);
    assert.is(ev.seenMac, MAC2);
    for (const secret of ['Pw-of-vm1', 'secret_of', 'AAAAkey']) assert.not.match(log, secret, `no ${secret} in the daemon log`);

    // an address without a recorded MAC is served by address alone: vm2 gets vm3's data (unprotected)
    takeAddress(vm2.ns, '10.14.1.12/24');
    assert.is(guestGet(vm2.ns, 'http://10.14.1.1/latest/meta-data/instance-id', {}, { from: '10.14.1.12' }).body, 'i-vm3', 'no MAC known: by address');
    dropAddress(vm2.ns, '10.14.1.12/24');

    // vm1 back: its password was never given away
    dropAddress(vm2.ns, '10.14.1.10/24');
    h.netlink.linkSetUp(vm1.hostEnd);
    nsExec(vm1.ns, ['ip', 'neigh', 'flush', 'all']);
    assert.equal(passwordRequest(vm1.ns, '10.14.1.1', 'send_my_password'), { status: 200, body: 'Pw-of-vm1' }, 'vm1 gets its pending password');

    // IP + MAC: vm1 down again, vm2 takes its address AND its MAC — the router cannot tell it from vm1
    h.netlink.linkSetDown(vm1.hostEnd);
    takeAddress(vm2.ns, '10.14.1.10/24', MAC1);
    assert.equal(guestGet(vm2.ns, 'http://10.14.1.1/latest/user-data', {}, spoof), { status: 200, body: '#cloud-config\nsecret_of: vm1\n' },
      'served: stopping a MAC copier is the guest segment\'s anti-spoofing, not this layer');
    dropAddress(vm2.ns, '10.14.1.10/24', MAC2);
    assert.is(guestGet(vm2.ns, 'http://10.14.1.1/latest/meta-data/instance-id').body, 'i-vm2', 'vm2 as itself again');

    // a new VM gets vm1's address (prepare-nic, other MAC; no release-nic seen): vm1's data — their MAC known
    // from the DHCP reservation only — are dropped, not handed over (the metadata step runs before the DHCP one)
    assert.ok(vd.servedFiles(stateDir, ns, '10.14.1.10').length > 0, 'positive control: vm1\'s data are there');
    const nic: T.PrepareNicRequest = { command: 'prepare-nic', ...net, ip: '10.14.1.10', mac: '02:00:00:0e:01:99', defaultNic: true };
    await runCommand(engine, nic);
    assert.equal(vd.servedFiles(stateDir, ns, '10.14.1.10'), []);
  }, { stop: killRouterDaemons });
});

test('cloud-init\'s CloudStack datasource reads user data, meta-data and the password once', async () => {
  await inScratch((s) => metadataNetwork(s, '10.16.1', [MAC1]), async (t) => {
    const { engine, net, ns, stateDir, vms: [vm] } = t;
    await runCommand(engine, { command: 'add-dhcp-entry', ...net, mac: MAC1, ip: '10.16.1.10', defaultNic: true });
    await runCommand(engine, {
      command: 'save-vm-data', ...net, ip: '10.16.1.10', vmData: { value: rows('civm', [{ dir: 'password', file: 'vm_password', content: 'Pw-for-cloud-init' }]), source: 'x' },
    } as T.SaveVmDataRequest);
    // the guest finds its virtual router as cloud-init does first: the name data-server (here from its /etc/hosts)
    mkdirSync(join('/etc/netns', vm.ns), { recursive: true });
    writeFileSync(join('/etc/netns', vm.ns, 'hosts'), '127.0.0.1 localhost\n10.16.1.1 data-server\n');
    const script = [
      'import json, tempfile',
      'from cloudinit import helpers',
      'from cloudinit.sources.DataSourceCloudStack import DataSourceCloudStack',
      'd = tempfile.mkdtemp()',
      "ds = DataSourceCloudStack({'datasource': {'CloudStack': {'max_wait': 10, 'timeout': 5}}}, None, helpers.Paths({'cloud_dir': d, 'run_dir': d}))",
      'ok = ds._get_data()',
      "ud = ds.userdata_raw.decode() if isinstance(ds.userdata_raw, bytes) else ds.userdata_raw",
      "print(json.dumps({'ok': ok, 'vr': ds.vr_addr, 'userdata': ud, 'metadata': ds.metadata, 'password': ds.cfg.get('password')}))",
    ].join('\n');
    const run = () => {
      const r = nsTry(vm.ns, ['/usr/bin/python3', '-c', script], 60_000);
      assert.is(r.status, 0, r.stderr);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as { ok: boolean; vr: string; userdata: string; metadata: Record<string, unknown>; password: string | null };
    };
    const first = run();
    assert.ok(first.ok);
    assert.is(first.vr, '10.16.1.1');
    assert.is(first.userdata, '#cloud-config\nsecret_of: civm\n');
    assert.is(first.metadata['instance-id'], 'i-civm');
    assert.is(first.metadata['local-hostname'], 'civm');
    assert.ok(JSON.stringify(first.metadata['public-keys']).includes('AAAAkeycivm'), JSON.stringify(first.metadata));
    assert.is(first.password, 'Pw-for-cloud-init');
    // cloud-init acknowledged it (its second wget): a second boot gets no password
    assert.ok(existsSync(join(vmDir(stateDir, ns, '10.16.1.10'), 'delivered-1')));
    const second = run();
    assert.ok(second.ok);
    assert.is(second.password, null);
    assert.is(second.metadata['instance-id'], 'i-civm');
  }, { stop: killRouterDaemons });
});

test.run();
