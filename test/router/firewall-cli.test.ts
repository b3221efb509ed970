/** apply-fw-rules / apply-network-acl / list-firewall-rules through the CLI: both invocation forms, real
 *  traffic, and bad documents that must exit 1 without changing the state file or the nft table. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { Scratch, addVm, simulatedHost, uid } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { servers, serversUp, tcpOk, routerTable } from '../helpers/fw.js';
import { dumpSection, envelopeMessage, tableRows } from '../helpers/cloudstack.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');
const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64');

test('CLI: apply-fw-rules (option and payload forms), apply-network-acl, listings; bad documents exit 1 and change nothing', async () => {
  const s = new Scratch();
  const dir = mkdtempSync(join(tmpdir(), 'nr-fwcli-'));
  const id = String(2000 + (parseInt(uid(4), 16) % 7000));
  const vpcId = String(100 + (parseInt(uid(4), 16) % 800));
  const ns = s.track(`cs-net-${id}`);
  const vns = s.track(`cs-vpc-${vpcId}`);
  const procs: ChildProcess[] = [];
  try {
    const { hostNs, upNs, h } = simulatedHost(s);
    const g = ['--host-netns', hostNs, '--state-dir', join(dir, 'state'), '--log-file', join(dir, 'log')];
    const cli = (...a: string[]) => spawnSync(process.execPath, [CLI, ...a, ...g], { encoding: 'utf8', timeout: 30_000 });
    const ok = (r: ReturnType<typeof cli>) => assert.is(r.status, 0, r.stderr);

    ok(cli('implement-network', '--network-id', id, '--vlan', `vxlan://${4000 + (Number(id) % 1000)}`, '--gateway', '10.4.3.1', '--cidr', '10.4.3.0/24'));
    ok(cli('assign-ip', '--network-id', id, '--public-ip', '203.0.113.43', '--public-vlan', 'untagged', '--public-gateway', '203.0.113.1', '--public-cidr', '203.0.113.0/24', '--source-nat', 'true'));
    const vm = addVm(s, h, `brvx-${4000 + (Number(id) % 1000)}`, '10.4.3.10/24', '10.4.3.1');
    procs.push(...servers(vm.ns, [8080, 8081], []));
    assert.ok(await serversUp(vm.ns, [8080, 8081], []));
    for (const [pub, priv] of [['80', '8080'], ['81', '8081']]) {
      ok(cli('add-port-forward', '--network-id', id, '--public-ip', '203.0.113.43', '--public-port', pub, '--private-ip', '10.4.3.10', '--private-port', priv, '--protocol', 'tcp'));
    }
    assert.not.ok(tcpOk(upNs, '203.0.113.43', 81), 'closed before any firewall rule');
    assert.ok(tcpOk(vm.ns, '127.0.0.1', 8081), 'positive control: the server answers');

    // option form, base64 document
    const fw = { default_egress_allow: true, cidr: '10.4.3.0/24', rules: [{ id: 7, type: 'ingress', protocol: 'tcp', portStart: 80, portEnd: 80, publicIp: '203.0.113.43', sourceCidrs: ['0.0.0.0/0'] }] };
    ok(cli('apply-fw-rules', '--network-id', id, '--fw-rules', b64(fw)));
    assert.ok(tcpOk(upNs, '203.0.113.43', 80), 'allowed port');
    assert.not.ok(tcpOk(upNs, '203.0.113.43', 81), 'other forwarded port now filtered');

    // payload-file form (the CloudStack way), JSON object inside the payload
    const payload = join(dir, 'fw.json');
    writeFileSync(payload, JSON.stringify({
      'physical-network-extension-details': { 'public.network.device': 'eth1', 'guest.network.device': 'eth1' },
      'network-extension-details': {},
      payload: { network_id: id, fw_rules: { ...fw, rules: [...fw.rules, { id: 8, type: 'ingress', protocol: 'tcp', portStart: 81, publicIp: '203.0.113.43' }] } },
    }));
    let r = spawnSync(process.execPath, [CLI, 'apply-fw-rules', payload, '30', ...g], { encoding: 'utf8', timeout: 30_000 });
    ok(r);
    assert.ok(tcpOk(upNs, '203.0.113.43', 81), 'payload form opened 81');

    r = cli('custom-action', '--network-id', id, '--action', 'list-firewall-rules');
    ok(r);
    // upstream's shape: [{table, rules}], the rules one newline-separated text
    const listed = tableRows(envelopeMessage(r));
    const ing = listed.find((t) => t.table === 'firewall ingress 203.0.113.43');
    assert.ok(ing, r.stdout);
    const lines = ing!.rules.split('\n');
    assert.ok(lines.some((l) => l.includes('tcp dport 81') && l.includes('accept')), ing!.rules);
    assert.is(lines[lines.length - 1], 'default: drop');
    r = cli('custom-action', '--network-id', id, '--action', 'dump-config');
    ok(r);
    const dump = envelopeMessage(r);
    assert.is(dumpSection(dump, 'state').extra.firewall.fw[id].rules.length, 2, 'dump-config shows the stored rules');
    assert.ok(JSON.stringify(dumpSection(dump, 'nftables')).includes('fw_ingress'), 'and the live chains');

    // bad documents: exit 1, the message names the rule and the field, nothing changes
    const stateFile = join(dir, 'state', 'routers', `${ns}.json`);
    const stateBefore = readFileSync(stateFile, 'utf8');
    const tableBefore = routerTable(ns);
    const bad: Array<[string, string[], RegExp]> = [
      ['not JSON nor base64', ['--fw-rules', '{"rules": [}'], /fw-rules|fw_rules/],
      ['invalid base64', ['--fw-rules', 'ab$cd'], /fw-rules|fw_rules/],
      ['unknown protocol', ['--fw-rules', b64({ rules: [fw.rules[0], { id: 9, type: 'ingress', protocol: 'tcpx', publicIp: '203.0.113.43' }] })], /rules\[1\] \(id 9\): protocol/],
      ['port above 65535', ['--fw-rules', b64({ rules: [{ type: 'ingress', protocol: 'tcp', portStart: 70000, publicIp: '203.0.113.43' }] })], /rules\[0\]: portStart: 70000/],
      ['port 0', ['--fw-rules', b64({ rules: [{ type: 'ingress', protocol: 'udp', portStart: 0, publicIp: '203.0.113.43' }] })], /rules\[0\]: portStart/],
      ['start above end', ['--fw-rules', b64({ rules: [{ type: 'ingress', protocol: 'tcp', portStart: 90, portEnd: 80, publicIp: '203.0.113.43' }] })], /rules\[0\]: portEnd/],
      ['malformed CIDR', ['--fw-rules', b64({ rules: [{ type: 'ingress', protocol: 'tcp', portStart: 22, publicIp: '203.0.113.43', sourceCidrs: ['10.0.0.0/33'] }] })], /sourceCidrs\[0\]/],
      ['hostname as CIDR', ['--fw-rules', b64({ rules: [{ type: 'egress', protocol: 'all', destCidrs: ['example.com'] }] })], /destCidrs\[0\]/],
      ['bad ICMP type', ['--fw-rules', b64({ rules: [{ type: 'ingress', protocol: 'icmp', icmpType: 300, publicIp: '203.0.113.43' }] })], /icmpType/],
      ['ingress without publicIp', ['--fw-rules', b64({ rules: [{ type: 'ingress', protocol: 'tcp', portStart: 22 }] })], /publicIp/],
      ['unknown type', ['--fw-rules', b64({ rules: [{ type: 'sideways', protocol: 'tcp' }] })], /type/],
    ];
    for (const [what, args, re] of bad) {
      const x = cli('apply-fw-rules', '--network-id', id, ...args);
      assert.is(x.status, 1, `${what}: exit 1 (${x.stderr})`);
      assert.match(x.stderr, re, what);
    }
    assert.is(readFileSync(stateFile, 'utf8'), stateBefore, 'state file unchanged');
    assert.is(routerTable(ns), tableBefore, 'nft table unchanged');
    assert.ok(tcpOk(upNs, '203.0.113.43', 81), 'rules still in force');

    // VPC tier ACL through the CLI
    ok(cli('implement-vpc', '--vpc-id', vpcId, '--vpc-cidr', '10.20.0.0/16'));
    const tierId = String(Number(id) + 1);
    ok(cli('implement-network', '--network-id', tierId, '--vpc-id', vpcId, '--vlan', `vxlan://${5000 + (Number(id) % 1000)}`, '--gateway', '10.20.1.1', '--cidr', '10.20.1.0/24'));
    const aclFile = join(dir, 'acl.json');
    writeFileSync(aclFile, b64([{ id: 'a', number: 1, action: 'Allow', trafficType: 'Ingress', protocol: 'tcp', portStart: 22, sourceCidrs: ['10.0.0.0/8'] }]));
    ok(cli('apply-network-acl', '--network-id', tierId, '--vpc-id', vpcId, '--acl-rules-file', aclFile));
    const vState = join(dir, 'state', 'routers', `${vns}.json`);
    const vBefore = readFileSync(vState, 'utf8');
    const vTable = routerTable(vns);
    const badAcl: Array<[string, unknown, RegExp]> = [
      ['unknown action', [{ number: 3, action: 'maybe', trafficType: 'ingress', protocol: 'tcp' }], /number 3.*action/],
      ['missing number', [{ id: 'x', action: 'allow', trafficType: 'ingress', protocol: 'tcp' }], /id x.*number/],
      ['bad CIDR', [{ number: 4, action: 'allow', trafficType: 'egress', protocol: 'all', sourceCidrs: ['1.2.3'] }], /number 4.*sourceCidrs\[0\]/],
      ['bad protocol number', [{ number: 5, action: 'deny', trafficType: 'egress', protocol: 300 }], /number 5.*protocol/],
      ['not an array', { rules: 'x' }, /acl_rules/],
    ];
    for (const [what, doc, re] of badAcl) {
      const x = cli('apply-network-acl', '--network-id', tierId, '--vpc-id', vpcId, '--acl-rules', b64(doc));
      assert.is(x.status, 1, `${what}: exit 1 (${x.stderr})`);
      assert.match(x.stderr, re, what);
    }
    assert.is(readFileSync(vState, 'utf8'), vBefore, 'VPC state file unchanged');
    assert.is(routerTable(vns), vTable, 'VPC nft table unchanged');
    r = cli('custom-action', '--vpc-id', vpcId, '--network-id', tierId, '--action', 'list-firewall-rules');
    ok(r);
    assert.ok(r.stdout.includes('number 1 id a: tcp dport 22 from 10.0.0.0/8 to any: allow'), r.stdout);

    ok(cli('destroy-vpc', '--vpc-id', vpcId));
    ok(cli('destroy-network', '--network-id', id));
  } finally {
    for (const p of procs) p.kill();
    s.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
