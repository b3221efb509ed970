/**
 * No set of the router table lands on the kernel's bitmap backend (a plain set keyed by ≤ 16 bits: its updates
 * are quadratic, lib/nft/set-backend.ts): the compiled objects for every rule shape, and what the kernel holds
 * after applying them; and the shapes that used to produce such sets (ports, ICMP types or protocols as the
 * only varying field) still pass and drop the same packets.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCommand } from '../../lib/router/command-table.js';
import { parseAclDocument, parseFwDocument } from '../../lib/router/firewall/rules.js';
import { putAcl, putFwDocument } from '../../lib/router/firewall/state.js';
import { emptyModel, type RouterModel } from '../../lib/router/model.js';
import { natPlan } from '../../lib/router/topology.js';
import { routerObjects } from '../../lib/router/router-table.js';
import { defaultModules } from '../../lib/router/default-modules.js';
import type { PublicService } from '../../lib/router/router-module.js';
import { landsOnBitmap, type KeyType, type NftObject, type SetFlag } from '../../lib/nft/index.js';
import type { RouterEngine } from '../../lib/router/engine.js';
import { inScratch, nsExec, uid, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { isolatedTopo, vpcTopo, servers, serversUp, tcpOk, udpOk, pingOk, UP_A } from '../helpers/fw.js';

requireSandbox();

type Rule = Record<string, unknown>;

/** Named sets of a table that would get the bitmap backend, and anonymous sets that grow with the input. */
function offenders(objs: NftObject[]): string[] {
  const out: string[] = [];
  for (const o of objs) {
    if ((o.kind === 'set' && landsOnBitmap(o.type, o.flags)) || (o.kind === 'map' && landsOnBitmap(o.key, o.flags, true))) {
      out.push(`${o.kind} ${o.name}: ${JSON.stringify(o.kind === 'set' ? o.type : o.key)} flags ${JSON.stringify(o.flags ?? [])}`);
    }
    if (o.kind === 'rule') {
      // anonymous sets are created once with their rule and never updated; they must stay small and fixed
      const text = JSON.stringify(o.expr);
      for (const m of text.matchAll(/"set":\[([^\]]*)\]/g)) {
        if (m[1].split(',').length > 3 && !/"(iifname|oifname)"/.test(text)) out.push(`rule in ${o.chain}: anonymous set of ${m[1].split(',').length}`);
      }
    }
  }
  return out;
}

const tier = (networkId: string, third: number) => ({
  networkId, segment: { kind: 'vxlan' as const, vni: 5000 + third }, hostDev: 'eth1', gateway: `10.9.${third}.1`, cidr: `10.9.${third}.0/24`,
  extensionIp: `10.9.${third}.1`, guestType: 'isolated' as const, implemented: true,
});

/** The whole router table of a model, as the engine compiles it (NAT, public guard, every module's objects). */
function tableOf(m: RouterModel): NftObject[] {
  const mods = defaultModules();
  const filtered: string[] = [];
  const services: PublicService[] = [];
  for (const mod of mods) {
    const x = mod.publicIngress?.(m);
    filtered.push(...(x?.filtered ?? []));
    services.push(...(x?.services ?? []));
  }
  return routerObjects(natPlan(m), mods.flatMap((mod) => mod.nftObjects?.(m) ?? []), { filtered, services });
}

function networkWith(rules: Rule[], defaultEgressAllow = true): RouterModel {
  const m = emptyModel('cs-net-9', 'network', '9');
  m.tiers['9'] = tier('9', 1);
  for (const ip of new Set(rules.map((r) => r.publicIp).filter((x): x is string => typeof x === 'string'))) {
    m.publicIps[ip] = { ip, prefixLen: 24, segment: { kind: 'untagged' }, hostDev: 'eth1', sourceNat: false, owner: '9' };
  }
  putFwDocument(m, '9', parseFwDocument({ default_egress_allow: defaultEgressAllow, rules }));
  return m;
}

function vpcWith(rules: Rule[]): RouterModel {
  const m = emptyModel('cs-vpc-9', 'vpc', '9');
  m.vpc = { id: '9', cidr: '10.9.0.0/16', implemented: true };
  m.tiers['11'] = tier('11', 1);
  putAcl(m, '11', parseAclDocument(rules));
  return m;
}

const ipOf = (j: number): string => `198.18.${(j >> 8) & 255}.${j & 255}`;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

test('no named set of any rule shape is keyed by ≤ 16 bits without flags (compiled objects)', () => {
  const shapes: Record<string, RouterModel> = {
    'ports on one IP (tcp and udp)': networkWith(range(200).map((i) => ({ type: 'ingress', protocol: i % 2 ? 'udp' : 'tcp', portStart: 1000 + i, publicIp: '203.0.113.10' }))),
    'port ranges on one IP': networkWith(range(50).map((i) => ({ type: 'ingress', protocol: 'tcp', portStart: 1000 + i * 10, portEnd: 1005 + i * 10, publicIp: '203.0.113.10' }))),
    'ICMP types on one IP': networkWith(range(12).map((i) => ({ type: 'ingress', protocol: 'icmp', icmpType: i, icmpCode: -1, publicIp: '203.0.113.10' }))),
    'IPs × one port': networkWith(range(300).map((i) => ({ type: 'ingress', protocol: 'tcp', portStart: 443, publicIp: ipOf(i) }))),
    'CIDRs × one port': networkWith(range(300).map((i) => ({ type: 'ingress', protocol: 'tcp', portStart: 22, publicIp: '203.0.113.10', sourceCidrs: [`10.${i >> 8}.${i & 255}.0/24`] }))),
    'egress deny ports, no destination': networkWith(range(40).map((i) => ({ type: 'egress', protocol: 'tcp', portStart: 3000 + i }))),
    'egress allow ports, no destination': networkWith(range(40).map((i) => ({ type: 'egress', protocol: 'udp', portStart: 3000 + i })), false),
    'protocols × IPs': networkWith([47, 50, 51, 132].flatMap((p) => range(5).map((i) => ({ type: 'ingress', protocol: p, publicIp: ipOf(i) })))),
    'egress ICMP types and protocols': networkWith([...range(6).map((i) => ({ type: 'egress', protocol: 'icmp', icmpType: i, icmpCode: -1 })), ...[47, 50, 51, 132].map((p) => ({ type: 'egress', protocol: p }))]),
    'ACL: protocols only': vpcWith([1, 47, 50, 51, 132].map((p, i) => ({ number: i + 1, action: 'Allow', trafficType: 'Ingress', protocol: p }))),
    'ACL: ports only, interleaved verdicts': vpcWith(range(100).map((i) => ({ number: i + 1, action: i % 10 === 9 ? 'Deny' : 'Allow', trafficType: i % 2 ? 'Egress' : 'Ingress', protocol: 'tcp', portStart: 100 + i }))),
    'ACL: ICMP types': vpcWith(range(8).map((i) => ({ number: i + 1, action: 'Allow', trafficType: 'Ingress', protocol: 'icmp', icmpType: i, icmpCode: -1 }))),
  };
  for (const [name, m] of Object.entries(shapes)) {
    const objs = tableOf(m);
    assert.ok(objs.some((o) => o.kind === 'set' && /^(fw|fwe|acl)_/.test(o.name)), `${name}: the shape makes sets at all`);
    assert.equal(offenders(objs), [], name);
  }
  // random documents: whatever mix the compiler meets
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  for (let k = 0; k < 60; k++) {
    const rules: Rule[] = range(20 + rnd(200)).map(() => {
      const proto = ['tcp', 'udp', 'icmp', 'all', 47][rnd(5)];
      const r: Rule = { type: rnd(3) ? 'ingress' : 'egress', protocol: proto, publicIp: ipOf(rnd(3)) };
      if (proto === 'tcp' || proto === 'udp') { const p = 1 + rnd(2000); r.portStart = p; r.portEnd = p + (rnd(4) ? 0 : rnd(20)); }
      if (proto === 'icmp' && rnd(2)) { r.icmpType = rnd(20); r.icmpCode = rnd(3) ? -1 : rnd(4); }
      if (rnd(2)) r.sourceCidrs = [rnd(2) ? '0.0.0.0/0' : `10.${rnd(4)}.${rnd(4)}.0/24`];
      if (r.type === 'egress' && rnd(2)) r.destCidrs = [`172.16.${rnd(8)}.0/24`];
      return r;
    });
    assert.equal(offenders(tableOf(networkWith(rules, rnd(2) === 0))), [], `random fw document ${k}`);
    const acl = rules.map((r, i) => ({ ...r, type: undefined, publicIp: undefined, number: i + 1, action: rnd(8) ? 'Allow' : 'Deny', trafficType: rnd(2) ? 'Ingress' : 'Egress' }));
    assert.equal(offenders(tableOf(vpcWith(acl))), [], `random ACL ${k}`);
  }
});

/** Named sets the kernel holds in the router table (type and flags as nft lists them) that land on bitmap. */
function kernelOffenders(ns: string): string[] {
  const doc = JSON.parse(nsExec(ns, ['nft', '-j', 'list', 'table', 'inet', 'netns_router'])) as { nftables: Array<{ set?: { name: string; type: KeyType | KeyType[]; flags?: SetFlag[] }; map?: { name: string; type: KeyType | KeyType[]; flags?: SetFlag[] } }> };
  const out: string[] = [];
  let sets = 0;
  for (const o of doc.nftables) {
    if (o.set) sets++;
    if (o.set && landsOnBitmap(o.set.type, o.set.flags)) out.push(`set ${o.set.name} ${JSON.stringify(o.set.type)}`);
    if (o.map && landsOnBitmap(o.map.type, o.map.flags, true)) out.push(`map ${o.map.name}`);
  }
  assert.ok(sets > 0, 'the table has sets');
  return out;
}

const randomId = () => String(1000 + (parseInt(uid(4), 16) % 9000));
const fw = (engine: RouterEngine, net: { networkId: string; namespace: string }, rules: Rule[], defaultEgressAllow = true) =>
  runCommand(engine, { command: 'apply-fw-rules', ...net, fwRules: { value: { default_egress_allow: defaultEgressAllow, rules }, source: 'test' } });

test('packets: a port set and an ICMP-type set on one public IP, an egress port set; the kernel holds no bitmap set', async () => {
  await inScratch((s) => isolatedTopo(s, randomId()), async (t, procs) => {
    const { engine, net, P2, upNs, vm1, vm2, ns } = t;
    procs.push(...servers(vm2, [22, 23, 24], []), ...servers(upNs, [9000, 9010], [9001]));
    assert.ok(await serversUp(vm2, [22, 23, 24], []));
    assert.ok(await serversUp(upNs, [9000, 9010], [9001]));

    const ports = (list: number[]) => list.map((p) => ({ type: 'ingress', protocol: 'tcp', portStart: p, publicIp: P2, sourceCidrs: ['0.0.0.0/0'] }));
    const icmp = (types: number[]) => types.map((x) => ({ type: 'ingress', protocol: 'icmp', icmpType: x, icmpCode: -1, publicIp: P2 }));
    const egress = [9000, 9002, 9004, 9006, 9008].map((p) => ({ type: 'egress', protocol: 'tcp', portStart: p }));
    await fw(engine, net, [...ports([22, 24, 25, 26, 27]), ...icmp([0, 3, 8, 11]), ...egress]);
    assert.equal(kernelOffenders(ns), []);
    const listing = nsExec(ns, ['nft', 'list', 'table', 'inet', 'netns_router']);
    assert.match(listing, /meta l4proto \. (th|tcp) dport @fw_in_\d+ accept/, 'the port set is keyed by protocol . port');
    // (waitFor: the first connection may wait out a lost first ARP request, see test/helpers/arp.ts ask())
    assert.ok(await waitFor(() => tcpOk(upNs, P2, 22), 5000), 'port in the set: open');
    assert.ok(tcpOk(upNs, P2, 24), 'port in the set: open');
    assert.not.ok(tcpOk(upNs, P2, 23), 'port not in the set: closed');
    assert.ok(pingOk(upNs, P2), 'ICMP type 8 in the set');
    assert.ok(await waitFor(() => tcpOk(vm1, UP_A, 9010), 5000), 'egress: 9010 not in the deny set');
    assert.not.ok(tcpOk(vm1, UP_A, 9000), 'egress deny set: 9000 dropped');
    assert.ok(udpOk(vm1, UP_A, 9001), 'egress: udp 9001 (the set is tcp)');

    // the sets change element by element: 22 leaves, 23 joins; echo request leaves the ICMP set
    await fw(engine, net, [...ports([23, 24, 25, 26, 27]), ...icmp([0, 3, 11, 13]), ...egress.slice(1), { type: 'egress', protocol: 'tcp', portStart: 9010 }]);
    assert.equal(kernelOffenders(ns), []);
    assert.ok(tcpOk(upNs, P2, 23), '23 joined the set');
    assert.ok(tcpOk(upNs, P2, 24), '24 still in the set');
    assert.not.ok(tcpOk(upNs, P2, 22), '22 left the set');
    assert.not.ok(pingOk(upNs, P2), 'echo request left the ICMP set');
    assert.ok(tcpOk(vm1, UP_A, 9000), 'egress: 9000 left the deny set');
    assert.not.ok(tcpOk(vm1, UP_A, 9010), 'egress: 9010 joined the deny set');
    void vm2;
  });
});

test('packets: an ACL whose rules differ only in protocol (a protocol set)', async () => {
  await inScratch((s) => vpcTopo(s, String(100 + (parseInt(uid(4), 16) % 800))), async (t, procs) => {
    const { engine, ns, vpcId, a, b, A } = t;
    procs.push(...servers(a, [7000], [5000]));
    assert.ok(await serversUp(a, [7000], [5000]));
    const acl = (protos: Array<string | number>) => runCommand(engine, {
      command: 'apply-network-acl', networkId: '11', vpcId, namespace: ns,
      aclRules: { value: protos.map((p, i) => ({ number: i + 1, action: 'Allow', trafficType: 'Ingress', protocol: p })), source: 'test' },
    });
    await acl(['icmp', 'gre', 'esp', 'ah', 'sctp']);
    assert.equal(kernelOffenders(ns), []);
    assert.match(nsExec(ns, ['nft', 'list', 'table', 'inet', 'netns_router']), /meta nfproto \. meta l4proto @acl_in_11_\d+/, 'keyed by family . protocol');
    assert.ok(await waitFor(() => pingOk(b, A), 5000), 'icmp in the protocol set');
    assert.not.ok(udpOk(b, A, 5000), 'udp not in the set: implicit deny');
    assert.not.ok(tcpOk(b, A, 7000), 'tcp not in the set: implicit deny');
    await acl(['udp', 'gre', 'esp', 'ah', 'sctp']);
    assert.equal(kernelOffenders(ns), []);
    assert.ok(udpOk(b, A, 5000), 'udp joined the set');
    assert.not.ok(pingOk(b, A), 'icmp left the set');
    assert.not.ok(tcpOk(b, A, 7000), 'tcp still denied');
  });
});

test.run();
