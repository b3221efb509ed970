/** apply-network-acl through the engine, with real traffic between two VPC tiers and the outside. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RouterEngine } from '../../lib/router/engine.js';
import { inScratch, uid } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { vpcTopo, servers, serversUp, tcpOk, udpOk, pingOk, UP_A, UP_B } from '../helpers/fw.js';
import { runCommand } from '../../lib/router/command-table.js';

requireSandbox();

const acl = (engine: RouterEngine, ns: string, vpcId: string, networkId: string, rules: Array<Record<string, unknown>>) =>
  runCommand(engine, { command: 'apply-network-acl', networkId, vpcId, namespace: ns, aclRules: { value: rules, source: 'test' } });

test('ACL: number order, first match wins, implicit deny; allow/deny, port range, ICMP type, source CIDR; two tiers independent', async () => {
  await inScratch((s) => vpcTopo(s, String(100 + (parseInt(uid(4), 16) % 800))), async (t, procs) => {
    const { engine, ns, vpcId, a, b, A, B, S, upNs } = t;
    procs.push(...servers(a, [8080, 8081, 7000], [5000]), ...servers(b, [8080, 7000], []), ...servers(upNs, [9000], [9001]));
    assert.ok(await serversUp(a, [8080, 8081, 7000], [5000]));
    assert.ok(await serversUp(b, [8080, 7000], []));
    assert.ok(await serversUp(upNs, [9000], [9001]));

    assert.ok(tcpOk(b, A, 8081), 'no ACL yet: tiers reach each other');
    assert.ok(pingOk(upNs, S), 'no ACL yet: static NAT open');

    // deliberately out of order in the array: `number` decides
    await acl(engine, ns, vpcId, '11', [
      { id: 'e2', number: 11, action: 'allow', trafficType: 'egress', protocol: 'tcp', portStart: 9000, portEnd: 9000, sourceCidrs: ['198.51.100.0/24'] },
      { id: 'i3', number: 3, action: 'Allow', trafficType: 'Ingress', protocol: 'tcp', portStart: 8000, portEnd: 8100, sourceCidrs: ['0.0.0.0/0'] },
      { id: 'i1', number: 1, action: 'ALLOW', trafficType: 'INGRESS', protocol: 'TCP', portStart: '8080', portEnd: '8080', sourceCidrs: ['10.10.2.0/24'] },
      { id: 'i2', number: 2, action: 'Deny', trafficType: 'Ingress', protocol: 'tcp', portStart: 8000, portEnd: 8100, sourceCidrs: ['0.0.0.0/0'] },
      { id: 'i4', number: 4, action: 'Allow', trafficType: 'Ingress', protocol: 'icmp', icmpType: 8, icmpCode: -1, sourceCidrs: ['10.10.2.0/24'] },
      { id: 'i5', number: 5, action: 'Allow', trafficType: 'Ingress', protocol: 17, portStart: 5000, sourceCidrs: ['203.0.113.0/24'] },
      { id: 'e1', number: 10, action: 'Allow', trafficType: 'Egress', protocol: 'udp', portStart: 9001, destCidrs: ['203.0.113.0/24'] },
    ]);
    assert.ok(tcpOk(b, A, 8080), 'rule 1: tcp 8080 from tier B');
    assert.not.ok(tcpOk(b, A, 8081), 'rule 2 (deny 8000-8100) wins over rule 3 (allow)');
    assert.not.ok(tcpOk(upNs, S, 8080), 'rule 2: 8080 from outside is not in 10.10.2.0/24 → denied');
    assert.ok(pingOk(b, A), 'rule 4: ICMP echo from tier B');
    assert.not.ok(pingOk(upNs, S), 'ICMP from outside: implicit deny');
    assert.ok(udpOk(upNs, S, 5000, UP_A), 'rule 5 (protocol number 17): udp from 203.0.113.0/24');
    assert.not.ok(udpOk(upNs, S, 5000, UP_B), 'rule 5: source CIDR excludes 198.51.100.1');
    assert.not.ok(tcpOk(b, A, 7000), 'ingress 7000: implicit deny');
    assert.ok(udpOk(a, UP_A, 9001), 'egress rule 10: udp to 203.0.113.0/24');
    assert.ok(tcpOk(a, UP_B, 9000), 'egress rule 11: destination given in sourceCidrs (older senders)');
    assert.not.ok(tcpOk(a, UP_A, 9000), 'egress: destination outside rule 11 → implicit deny');
    assert.not.ok(pingOk(a, UP_A), 'egress ICMP: implicit deny');
    assert.not.ok(tcpOk(a, B, 7000), 'egress to tier B: implicit deny');
    assert.ok(tcpOk(b, UP_A, 9000), 'tier B has no ACL: unaffected by tier A\'s');
    assert.ok(pingOk(b, UP_A));

    // tier B gets its own ACL; A opens egress to B
    await acl(engine, ns, vpcId, '12', [
      { number: 1, action: 'allow', trafficType: 'ingress', protocol: 'tcp', portStart: 7000, sourceCidrs: ['10.10.1.0/24'] },
      { number: 2, action: 'deny', trafficType: 'egress', protocol: 'all', sourceCidrs: ['0.0.0.0/0'] },
    ]);
    await acl(engine, ns, vpcId, '11', [
      { number: 1, action: 'allow', trafficType: 'ingress', protocol: 'udp', portStart: 5000, sourceCidrs: ['203.0.113.0/24'] },
      { number: 2, action: 'allow', trafficType: 'egress', protocol: 'tcp', portStart: 6990, portEnd: 7010, destCidrs: ['10.10.2.0/24'] },
      { number: 3, action: 'allow', trafficType: 'egress', protocol: 'tcp', portStart: 9000, destCidrs: ['198.51.100.0/24'] },
    ]);
    assert.ok(tcpOk(a, B, 7000), 'A egress allows, B ingress allows: a → b:7000 (replies are established)');
    assert.not.ok(tcpOk(a, B, 8080), 'B ingress: implicit deny');
    assert.not.ok(tcpOk(b, UP_A, 9000), 'B egress: deny all');
    assert.not.ok(tcpOk(b, A, 7000), 'B egress deny applies to traffic towards tier A too');
    assert.ok(udpOk(upNs, S, 5000, UP_A), 'A ingress unchanged by B\'s ACL');
    assert.ok(tcpOk(a, UP_B, 9000), 'A egress unchanged by B\'s ACL');

    // an empty ACL is an implicit deny of everything new for that tier (established flows aside)
    await acl(engine, ns, vpcId, '11', []);
    assert.not.ok(udpOk(upNs, S, 5000, UP_A));
    assert.not.ok(tcpOk(a, UP_B, 9000));
  });
});

test('ACL: many rules (sets) with interleaved Allow/Deny keep first-match order; IPv6 CIDRs never become IPv4 matches', async () => {
  await inScratch((s) => vpcTopo(s, String(100 + (parseInt(uid(4), 16) % 800))), async (t, procs) => {
    const { engine, ns, vpcId, a, b, A } = t;
    procs.push(...servers(a, [7100, 7150, 7151, 7300], []));
    assert.ok(await serversUp(a, [7100, 7150, 7151, 7300], []));
    const rules: Array<Record<string, unknown>> = [];
    let n = 1;
    // 100 allows of single ports 7000-7099 from B, a deny of 7150 from everywhere, 100 allows 7100-7199 from B,
    // a deny of 7300 from ::/0 only (IPv6), then an allow of 7300 from B
    for (let p = 7000; p < 7100; p++) rules.push({ number: n++, action: 'allow', trafficType: 'ingress', protocol: 'tcp', portStart: p, sourceCidrs: ['10.10.2.0/24'] });
    rules.push({ number: n++, action: 'deny', trafficType: 'ingress', protocol: 'tcp', portStart: 7150, sourceCidrs: ['0.0.0.0/0'] });
    for (let p = 7100; p < 7200; p++) rules.push({ number: n++, action: 'allow', trafficType: 'ingress', protocol: 'tcp', portStart: p, sourceCidrs: ['10.10.2.0/24', '2001:db8::/32'] });
    rules.push({ number: n++, action: 'deny', trafficType: 'ingress', protocol: 'tcp', portStart: 7300, sourceCidrs: ['::/0'] });
    rules.push({ number: n++, action: 'allow', trafficType: 'ingress', protocol: 'tcp', portStart: 7300, sourceCidrs: ['10.10.2.0/24'] });
    await acl(engine, ns, vpcId, '11', rules);
    assert.ok(tcpOk(b, A, 7100), 'allow from the second run');
    assert.ok(tcpOk(b, A, 7151), 'allow next to the denied port');
    assert.not.ok(tcpOk(b, A, 7150), 'the earlier deny wins over the later allow');
    assert.ok(tcpOk(b, A, 7300), 'an IPv6-only deny does not touch IPv4 traffic');
  });
});

test.run();
