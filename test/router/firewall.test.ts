/** apply-fw-rules through the engine, with real traffic: ingress per public IP (before DNAT), egress policy,
 *  conntrack cleanup when a rule is tightened. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RouterEngine } from '../../lib/router/engine.js';
import { inScratch, uid } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { isolatedTopo, servers, serversUp, tcpOk, udpOk, pingOk, installCounters, readCounters, udpFlood, UP_A, UP_B } from '../helpers/fw.js';
import { runCommand } from '../../lib/router/command-table.js';
import { listConntrack } from '../../lib/nft/ctnetlink.js';
import { ENDED_FLOW_BIT } from '../../lib/router/router-table.js';

requireSandbox();

type Rule = Record<string, unknown>;
const apply = (engine: RouterEngine, net: { networkId: string; namespace: string }, doc: { default_egress_allow?: boolean; rules: Rule[] }) =>
  runCommand(engine, { command: 'apply-fw-rules', ...net, fwRules: { value: doc, source: 'test' } });
const randomId = () => String(1000 + (parseInt(uid(4), 16) % 9000));

test('ingress: closed until a rule opens it; then allow, default deny, port range, ICMP type, source CIDR; an omitted IP stays closed', async () => {
  await inScratch((s) => isolatedTopo(s, randomId()), async (t, procs) => {
    const { engine, net, P, P2, upNs, vm1, vm2 } = t;
    procs.push(...servers(vm1, [8080, 2203, 2208], [5353]), ...servers(vm2, [22, 23], []), ...servers(upNs, [9000], []));
    assert.ok(await serversUp(vm1, [8080, 2203, 2208], [5353]));
    assert.ok(await serversUp(vm2, [22, 23], []));
    assert.ok(await serversUp(upNs, [9000], []));

    // an isolated network's public IPs are closed until a rule opens them (CloudStack's virtual router)
    assert.not.ok(tcpOk(upNs, P, 80), 'no firewall yet: port forward closed');
    assert.not.ok(tcpOk(upNs, P2, 23), 'no firewall yet: static NAT closed');
    assert.not.ok(pingOk(upNs, P2), 'no firewall yet: static NAT closed to ping');
    assert.ok(tcpOk(vm1, UP_A, 9000), 'positive control: egress via source NAT works, replies come back');

    await apply(engine, net, {
      rules: [
        { id: 1, type: 'ingress', protocol: 'tcp', portStart: 80, portEnd: 80, publicIp: P, sourceCidrs: ['0.0.0.0/0'] },
        { id: 2, type: 'ingress', protocol: 'udp', portStart: 5353, portEnd: 5353, publicIp: P, sourceCidrs: ['198.51.100.0/24'] },
        { id: 3, type: 'ingress', protocol: 'tcp', portStart: 2200, portEnd: 2205, publicIp: P, sourceCidrs: ['0.0.0.0/0'] },
        { id: 4, type: 'ingress', protocol: 'icmp', icmpType: 8, icmpCode: -1, publicIp: P2, sourceCidrs: ['0.0.0.0/0'] },
        { id: 5, type: 'ingress', protocol: 'TCP', portStart: '22', publicIp: P2, sourceCidrs: ['203.0.113.0/24', '2001:db8::/32'] },
      ],
    });
    assert.ok(tcpOk(upNs, P, 80), 'allow: tcp 80');
    assert.ok(tcpOk(upNs, P, 2203), 'port range: 2203 in 2200-2205');
    assert.not.ok(tcpOk(upNs, P, 2208), 'port range: 2208 forwarded but outside the allowed range');
    assert.ok(udpOk(upNs, P, 5353, UP_B), 'source CIDR: udp from 198.51.100.0/24');
    assert.not.ok(udpOk(upNs, P, 5353, UP_A), 'source CIDR: udp from 203.0.113.1 blocked');
    assert.ok(pingOk(upNs, P2), 'ICMP type 8 allowed');
    assert.not.ok(pingOk(upNs, P), 'no ICMP rule on P: ping blocked');
    assert.ok(tcpOk(upNs, P2, 22, UP_A), 'tcp 22 from 203.0.113.0/24');
    assert.not.ok(tcpOk(upNs, P2, 22, UP_B), 'tcp 22 from 198.51.100.1 blocked (the v6 CIDR does not widen the v4 rule)');
    assert.not.ok(tcpOk(upNs, P2, 23), 'default: drop');
    assert.ok(tcpOk(vm1, UP_A, 9000), 'egress via source NAT: replies to the filtered public IP are established');

    await apply(engine, net, {
      rules: [
        { type: 'ingress', protocol: 'tcp', portStart: 80, publicIp: P },
        { type: 'ingress', protocol: 'icmp', icmpType: 13, icmpCode: -1, publicIp: P2 },
      ],
    });
    assert.not.ok(pingOk(upNs, P2), 'ICMP type 13 only: echo request blocked');
    assert.not.ok(tcpOk(upNs, P2, 22, UP_A), 'rule removed: tcp 22 closed');
    assert.not.ok(tcpOk(upNs, P, 2203), 'rule removed: 2203 closed');

    await apply(engine, net, { rules: [{ type: 'ingress', protocol: 'tcp', portStart: 80, publicIp: P }] });
    assert.not.ok(pingOk(upNs, P2), 'P2 omitted from the payload: stays filtered, closed');
    assert.not.ok(tcpOk(upNs, P2, 23));
    assert.ok(tcpOk(upNs, P, 80));
    const st = engine.store.load(net.namespace)!.extra!.firewall as { fw: Record<string, { filteredIps: string[] }> };
    assert.equal(st.fw[net.networkId].filteredIps, [P, P2]);

    // release P2: it is no longer filtered after the next apply-fw-rules
    await runCommand(engine, { command: 'release-ip', ...net, publicIp: { ip: P2, sourceNat: false } });
    await apply(engine, net, { rules: [{ type: 'ingress', protocol: 'tcp', portStart: 80, publicIp: P }] });
    const st2 = engine.store.load(net.namespace)!.extra!.firewall as { fw: Record<string, { filteredIps: string[] }> };
    assert.equal(st2.fw[net.networkId].filteredIps, [P]);
  });
});

test('egress: default allow with deny rules, default deny with allow rules; port range, ICMP type, source/destination CIDR', async () => {
  await inScratch((s) => isolatedTopo(s, randomId()), async (t, procs) => {
    const { engine, net, upNs, vm1, vm2 } = t;
    procs.push(...servers(upNs, [9000, 9003, 9010], [9001]));
    assert.ok(await serversUp(upNs, [9000, 9003, 9010], [9001]));

    await apply(engine, net, { default_egress_allow: true, rules: [
      { type: 'egress', protocol: 'tcp', portStart: 9000, portEnd: 9005, destCidrs: ['203.0.113.1/32'] },
      { type: 'egress', protocol: 'udp', portStart: 9001, sourceCidrs: ['10.1.1.11/32'] },
    ] });
    assert.not.ok(tcpOk(vm1, UP_A, 9000), 'deny rule, port range, destination CIDR match');
    assert.not.ok(tcpOk(vm1, UP_A, 9003), 'deny rule: 9003 in 9000-9005');
    assert.ok(tcpOk(vm1, UP_A, 9010), 'default allow: 9010 outside the range');
    assert.ok(tcpOk(vm1, UP_B, 9000), 'default allow: other destination');
    assert.ok(udpOk(vm1, UP_A, 9001), 'source CIDR: vm1 is not 10.1.1.11');
    assert.not.ok(udpOk(vm2, UP_A, 9001), 'source CIDR: vm2 denied');
    assert.ok(pingOk(vm1, UP_A), 'default allow: ping');

    await apply(engine, net, { default_egress_allow: false, rules: [
      { type: 'egress', protocol: 'tcp', portStart: 9000, portEnd: 9005, destCidrs: ['198.51.100.0/24'] },
      { type: 'egress', protocol: 'udp', portStart: 9001 },
      { type: 'egress', protocol: 'icmp', icmpType: 8, icmpCode: 0 },
    ] });
    assert.ok(tcpOk(vm1, UP_B, 9003), 'allow rule, port range, destination CIDR');
    assert.not.ok(tcpOk(vm1, UP_A, 9003), 'default deny: destination outside the CIDR');
    assert.not.ok(tcpOk(vm1, UP_B, 9010), 'default deny: port outside the range');
    assert.ok(udpOk(vm2, UP_A, 9001), 'allow udp');
    assert.ok(pingOk(vm1, UP_A), 'ICMP type 8 code 0 allowed');

    await apply(engine, net, { default_egress_allow: false, rules: [{ type: 'egress', protocol: 'icmp', icmpType: 0, icmpCode: -1 }] });
    assert.not.ok(pingOk(vm1, UP_A), 'ICMP type 0 only: echo request blocked');
    assert.not.ok(udpOk(vm2, UP_A, 9001), 'default deny');
    await apply(engine, net, { default_egress_allow: false, rules: [{ type: 'egress', protocol: 'all', sourceCidrs: ['10.1.1.10/32'] }] });
    assert.ok(tcpOk(vm1, UP_A, 9000), 'protocol all from vm1');
    assert.not.ok(tcpOk(vm2, UP_A, 9000), 'vm2 not in the source CIDR');
    assert.ok(tcpOk(upNs, t.P2, 23) === false, 'ingress untouched by egress rules (no server on vm2:23 here)');
  });
});

/**
 * Two long-lived UDP flows (fixed source ports) to 7001 and 7002 through the port forwards; after 0.8 s the rules
 * tighten to 7002 only, then 1.6 s more. The VM answers every datagram (only then is a UDP flow "established"; an
 * unanswered one is re-checked packet by packet), `lateMs` late. Returns the conntrack entries of 7001 left.
 */
async function tightenUnderFlood(lateMs: number, after?: (t: Awaited<ReturnType<typeof isolatedTopo>>) => Promise<void>) {
  await inScratch((s) => isolatedTopo(s, randomId()), async (t, procs) => {
    const { engine, net, P, upNs, vm1 } = t;
    installCounters(vm1, [7001, 7002]);
    procs.push(...servers(vm1, [], [7001, 7002], { udpLateMs: lateMs }));
    assert.ok(await serversUp(vm1, [], [7001, 7002]));
    await apply(engine, net, { rules: [{ type: 'ingress', protocol: 'udp', portStart: 7001, portEnd: 7002, publicIp: P }] });
    const flood = udpFlood(upNs, P, [7001, 7002], { fixed: true });
    try {
      await flood.started;
      await new Promise((r) => setTimeout(r, 800));
      const before = readCounters(vm1);
      assert.ok(before[7001] > 10 && before[7002] > 10, `both flows arrive (${JSON.stringify(before)})`);
      await apply(engine, net, { rules: [{ type: 'ingress', protocol: 'udp', portStart: 7002, publicIp: P }] });
      const atApply = readCounters(vm1);
      const applied = Date.now();
      await new Promise((r) => setTimeout(r, 1600));
      const now = readCounters(vm1);
      // on failure, say which conntrack entries carry port 7001 (the flow itself, or a guest-started mirror of it)
      const flows = () => ct7001(net.namespace).map((e) => `${e.orig.src}:${e.orig.srcPort}->${e.orig.dst}:${e.orig.dstPort} mark ${e.mark ?? 0}`).join(', ');
      assert.ok(now[7001] - atApply[7001] <= 1, `7001 stops after tightening (${atApply[7001]} → ${now[7001]}; entries now: ${now[7001] - atApply[7001] <= 1 ? '' : flows()})`);
      assert.ok(now[7002] - atApply[7002] > 10, `7002 keeps flowing (${atApply[7002]} → ${now[7002]})`);
      assert.ok(Date.now() - applied >= 1500, 'the flood ran over the whole stretch judged');
      await after?.(t);
    } finally {
      const { lastAt } = await flood.stop();
      assert.ok(lastAt >= Date.now() - 1000, 'control: the flows were still sending at the end');
    }
  });
}

const ct7001 = (ns: string) => listConntrack({ proto: 'udp' }, { netns: ns }).filter((e) => e.orig.dstPort === 7001 || e.orig.srcPort === 7001);

test('tightening a rule ends the flows it now forbids (conntrack); flows still allowed keep going', async () => {
  await tightenUnderFlood(0);
});

test('a guest answering late cannot restart an ended flow; opening the port again resumes it', async () => {
  // 300 ms: past any pause after a deletion (the first version deleted entries and swept their mirrors for 75 ms)
  await tightenUnderFlood(300, async ({ engine, net, P, vm1 }) => {
    const ended = ct7001(net.namespace);
    assert.ok(ended.length === 1 && ((ended[0].mark ?? 0) & ENDED_FLOW_BIT) !== 0, `the flow's entry is kept, ended: ${JSON.stringify(ended)}`);
    const atOpen = readCounters(vm1);
    await apply(engine, net, { rules: [{ type: 'ingress', protocol: 'udp', portStart: 7001, portEnd: 7002, publicIp: P }] });
    await new Promise((r) => setTimeout(r, 800));
    assert.ok(readCounters(vm1)[7001] - atOpen[7001] > 10, 'opened again: 7001 arrives');
    const resumed = ct7001(net.namespace);
    assert.ok(resumed.length === 1 && resumed[0].id === ended[0].id && ((resumed[0].mark ?? 0) & ENDED_FLOW_BIT) === 0,
      `the same entry carries the flow on (its translation kept), the bit cleared: ${JSON.stringify(resumed)}`);
  });
});

test.run();
