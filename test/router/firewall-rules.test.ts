/** Rule documents (validation, normalisation, address families) and the compiler (layering keeps first-match
 *  semantics, interval sets disjoint, no interval sets behind drops). No kernel. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseAclDocument, parseFwDocument } from '../../lib/router/firewall/rules.js';
import { expand, matches, type Matcher, type Packet } from '../../lib/router/firewall/matcher.js';
import { compileChain, layers, runs, overlap, type Entry, type VerdictRun } from '../../lib/router/firewall/compile.js';
import { aclMatchersOf, compileAcl, aclAllowed } from '../../lib/router/firewall/state.js';
import { parseRuleCidr, isCidr } from '../../lib/router/firewall/cidr.js';
import { UsageError } from '../../lib/util/errors.js';
import type { NftObject } from '../../lib/nft/objects.js';
import { thrown } from '../helpers/expect.js';


const usage = (f: () => unknown, re: RegExp): UsageError => thrown(f, UsageError, { exitCode: 1, message: re });

test('fw_rules: normalisation (case, numbers as strings, -1 = any, protocol numbers, CIDR canonical form)', () => {
  const d = parseFwDocument({
    default_egress_allow: 'false', cidr: '10.1.1.5/24',
    rules: [
      { id: 1, type: 'INGRESS', protocol: 'TCP', portStart: '22', publicIp: '203.0.113.10', sourceCidrs: '10.1.1.7/24, 2001:DB8::1/32' },
      { type: 'egress', protocol: 17, portStart: 53, portEnd: 53 },
      { type: 'egress', protocol: '1', icmpType: -1, icmpCode: '-1' },
      { type: 'egress', protocol: 'icmp', icmpType: 8, icmpCode: 0, destCidrs: [] },
      { type: 'egress', protocol: 'gre', portStart: 10 },
      { type: 'egress' },
    ],
  });
  assert.is(d.defaultEgressAllow, false);
  assert.is(d.cidr, '10.1.1.0/24');
  assert.equal(d.rules[0], { index: 0, id: '1', type: 'ingress', protocol: 'tcp', ports: [22, 22], publicIp: '203.0.113.10', sourceCidrs: ['10.1.1.0/24', '2001:db8::/32'], destCidrs: [] });
  assert.is(d.rules[1].protocol, 'udp');
  assert.equal(d.rules[1].ports, [53, 53]);
  assert.is(d.rules[2].protocol, 1);
  assert.is(d.rules[2].icmpType, undefined, '-1 = any');
  assert.equal([d.rules[3].icmpType, d.rules[3].icmpCode], [8, 0]);
  assert.is(d.rules[4].protocol, 47);
  assert.is(d.rules[4].ports, undefined, 'ports mean nothing for gre');
  assert.is(d.rules[5].protocol, 'all');
  assert.is(parseFwDocument({}).defaultEgressAllow, true, 'upstream default: allow');
});

test('fw_rules / acl_rules: every bad input is a UsageError naming the rule and the field', () => {
  usage(() => parseFwDocument(undefined), /needs fw_rules/);
  usage(() => parseFwDocument([]), /fw_rules: expected a JSON object/);
  usage(() => parseFwDocument({ rules: {} }), /fw_rules.rules: expected an array/);
  usage(() => parseFwDocument({ default_egress_allow: 'yes' }), /default_egress_allow/);
  usage(() => parseFwDocument({ cidr: '10.0.0.0/40' }), /fw_rules.cidr/);
  usage(() => parseFwDocument({ rules: [{ type: 'egress' }, 'x'] }), /rules\[1\]: rule: expected a JSON object/);
  usage(() => parseFwDocument({ rules: [{ id: 5, type: 'egress', protocol: 'ftp' }] }), /rules\[0\] \(id 5\): protocol: unknown protocol "ftp"/);
  usage(() => parseFwDocument({ rules: [{ type: 'egress', protocol: 256 }] }), /protocol/);
  usage(() => parseFwDocument({ rules: [{ type: 'egress', protocol: 'tcp', portStart: 65536 }] }), /portStart: 65536 is outside 1–65535/);
  usage(() => parseFwDocument({ rules: [{ type: 'egress', protocol: 'tcp', portStart: '2x' }] }), /portStart: "2x" is not an integer/);
  usage(() => parseFwDocument({ rules: [{ type: 'egress', protocol: 'tcp', portEnd: 5 }] }), /portStart: missing while portEnd is 5/);
  usage(() => parseFwDocument({ rules: [{ type: 'egress', protocol: 'tcp', portStart: 5, portEnd: 4 }] }), /portEnd: 4 is below portStart 5/);
  usage(() => parseFwDocument({ rules: [{ type: 'egress', protocol: 'icmp', icmpCode: 256 }] }), /icmpCode/);
  usage(() => parseFwDocument({ rules: [{ type: 'egress', destCidrs: ['10.0.0.0/8', '10.0.0.256'] }] }), /destCidrs\[1\]/);
  usage(() => parseFwDocument({ rules: [{ type: 'ingress', protocol: 'tcp', publicIp: 'host.example' }] }), /publicIp/);
  usage(() => parseAclDocument(undefined), /needs acl_rules/);
  usage(() => parseAclDocument('x'), /expected a JSON array/);
  usage(() => parseAclDocument([{ number: 1, action: 'allow', trafficType: 'sideways' }]), /number 1, index 0\): trafficType/);
  usage(() => parseAclDocument([{ id: 'r9', action: 'allow', trafficType: 'ingress' }]), /index 0, id r9\): number: required/);
  usage(() => parseAclDocument([{ number: 2, action: 'allow', trafficType: 'ingress', protocol: 'tcp', portStart: 1, portEnd: 70000 }]), /number 2, index 0\): portEnd/);
});

test('acl_rules: evaluation order is number, then position; wrapped lists accepted', () => {
  const r = parseAclDocument({ rules: [
    { number: 20, action: 'deny', trafficType: 'egress' },
    { number: 10, action: 'Allow', trafficType: 'Egress', protocol: 'tcp', portStart: 80 },
    { number: 10, action: 'deny', trafficType: 'ingress' },
  ] });
  assert.equal(r.map((x) => [x.number, x.index]), [[10, 1], [10, 2], [20, 0]]);
});

test('address families: an IPv6 CIDR never widens or becomes an IPv4 match', () => {
  const spec = { protocol: 'tcp' as const, ports: [22, 22] as [number, number], sourceCidrs: [], destCidrs: [] };
  const v4v6 = expand(spec, ['10.0.0.0/8', '2001:db8::/32'], []);
  assert.equal(v4v6.map((m) => [m.family, m.src.map((c) => c.text)]), [[4, ['10.0.0.0/8']], [6, ['2001:db8::/32']]]);
  assert.equal(expand(spec, ['2001:db8::/32'], []).map((m) => m.family), [6], 'only v6 CIDRs: no v4 matcher at all');
  assert.equal(expand(spec, ['2001:db8::/32'], [], '203.0.113.1'), [], 'v4 public IP with v6-only sources matches nothing');
  assert.equal(expand(spec, [], []).map((m) => m.family), [4, 6], 'no CIDR: both families');
  assert.equal(expand({ ...spec, protocol: 'icmp', ports: undefined }, [], []).map((m) => [m.family, m.proto]), [[4, 1]], 'icmp without v6 CIDRs: ICMPv4');
  assert.equal(expand({ ...spec, protocol: 'icmp', ports: undefined }, ['::/0'], []).map((m) => [m.family, m.proto]), [[6, 58]]);
  assert.equal(expand({ ...spec, protocol: 1, ports: undefined }, ['::/0'], []), [], 'protocol number 1 is ICMPv4 only');
  const any4 = expand(spec, ['0.0.0.0/0'], []);
  assert.equal(any4.map((m) => [m.family, m.src.length]), [[4, 0]], '0.0.0.0/0: any IPv4 source, no IPv6');
});

// ── randomized: layering keeps first-match semantics ──

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >> 17; x ^= x << 5; x >>>= 0; return x / 2 ** 32; };
}
const CIDRS = ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '10.1.2.3/32', '192.168.0.0/16', '0.0.0.0/0', '2001:db8::/32', '2001:db8:1::/48'];
const ADDRS = ['10.1.2.3', '10.1.9.9', '10.200.0.1', '192.168.5.5', '8.8.8.8', '2001:db8:1::5', '2001:db8:2::1', '2002::1'];

function randomAcl(r: () => number, n: number): Array<Record<string, unknown>> {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  return Array.from({ length: n }, (_, i) => {
    const proto = pick(['tcp', 'udp', 'icmp', 'all', 'tcp', 'udp']);
    const rule: Record<string, unknown> = { number: i + 1, action: r() < 0.5 ? 'allow' : 'deny', trafficType: 'ingress', protocol: proto };
    if (proto === 'tcp' || proto === 'udp') {
      if (r() < 0.8) { const a = 1 + Math.floor(r() * 20); rule.portStart = a; rule.portEnd = a + (r() < 0.4 ? Math.floor(r() * 5) : 0); }
    }
    if (proto === 'icmp') { rule.icmpType = pick([-1, 0, 8]); rule.icmpCode = pick([-1, -1, 0]); }
    if (r() < 0.8) rule.sourceCidrs = Array.from({ length: 1 + Math.floor(r() * 2) }, () => pick(CIDRS));
    if (r() < 0.3) rule.destCidrs = [pick(CIDRS)];
    return rule;
  });
}

function randomPacket(r: () => number): Packet {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const fam = r() < 0.7 ? 4 : 6;
  const pool = ADDRS.filter((a) => a.includes(':') === (fam === 6));
  const val = (a: string): bigint => { const c = parseRuleCidr(a); if (!isCidr(c)) throw new Error(a); return c.lo; };
  const proto = pick([6, 17, fam === 4 ? 1 : 58, 47]);
  const p: Packet = { family: fam, proto, src: val(pick(pool)), dst: val(pick(pool)) };
  if (proto === 6 || proto === 17) p.dport = 1 + Math.floor(r() * 26);
  if (proto === 1 || proto === 58) { p.icmpType = pick([0, 8, 3]); p.icmpCode = pick([0, 1]); }
  return p;
}

const segVerdict = (segs: VerdictRun[], p: Packet): string | undefined => segs.find((s) => s.matchers.some((m) => matches(m, p)))?.verdict;

test('layers(): same verdict as first match for random ACLs and packets; fewer segments than verdict runs', () => {
  let layered = 0;
  let runCount = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const r = rng(seed * 7919);
    const rules = parseAclDocument(randomAcl(r, 5 + Math.floor(r() * 60)));
    const entries: Entry[] = rules.map((x) => ({ verdict: x.action === 'allow' ? 'return' : 'drop', matchers: aclMatchersOf(x) }));
    const segs = layers(entries);
    const c = compileAcl(rules);
    layered += segs.length;
    runCount += runs(entries).length;
    for (let i = 0; i < 400; i++) {
      const p = randomPacket(r);
      const expected = aclAllowed(c, 'ingress', p) ? 'return' : 'drop';
      assert.is(segVerdict(segs, p) ?? 'drop', expected, `seed ${seed}, packet ${JSON.stringify(p, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}`);
    }
  }
  assert.ok(layered < runCount, `layers ${layered} < runs ${runCount}`);
  // with the budget exhausted it falls back to runs, which are correct by construction
  const r = rng(5);
  const entries: Entry[] = parseAclDocument(randomAcl(r, 50)).map((x) => ({ verdict: x.action === 'allow' ? 'return' : 'drop', matchers: aclMatchersOf(x) }));
  assert.equal(layers(entries, 0).length, runs(entries).length);
});

test('overlap(): symmetric and implied by a common matching packet', () => {
  const r = rng(42);
  const ms: Matcher[] = parseAclDocument(randomAcl(r, 80)).flatMap(aclMatchersOf);
  for (let i = 0; i < 2000; i++) {
    const p = randomPacket(r);
    const hit = ms.filter((m) => matches(m, p));
    for (let a = 0; a < hit.length; a++) for (let b = 0; b < hit.length; b++) assert.ok(overlap(hit[a], hit[b]));
  }
  for (const a of ms.slice(0, 40)) for (const b of ms.slice(0, 40)) assert.is(overlap(a, b), overlap(b, a));
});

/** [lo, hi] of one element field. */
function span(v: unknown): [bigint, bigint] {
  if (typeof v === 'number') return [BigInt(v), BigInt(v)];
  if (typeof v === 'object' && v !== null && 'range' in v) {
    const [a, b] = (v as { range: [unknown, unknown] }).range;
    if (typeof a === 'number') return [BigInt(a), BigInt(b as number)];
    return [span(a)[0], span(b)[1]];
  }
  if (typeof v === 'string' && v.includes('-')) { const [a, b] = v.split('-'); return [span(a)[0], span(b)[1]]; }
  const c = parseRuleCidr(v);
  if (!isCidr(c)) throw new Error(`not a value: ${String(v)}`);
  return [c.lo, c.hi];
}

test('compileChain(): interval sets hold pairwise disjoint elements; drop segments use no interval set', () => {
  const r = rng(99);
  const rules = parseAclDocument(randomAcl(r, 400).map((x, i) => ({ ...x, action: i < 200 ? 'allow' : 'deny' })));
  const allow = rules.filter((x) => x.action === 'allow').flatMap(aclMatchersOf);
  const deny = rules.filter((x) => x.action === 'deny').flatMap(aclMatchersOf);
  const objs = compileChain('c', [{ verdict: 'return', matchers: allow }, { verdict: 'drop', matchers: deny }], { tail: 'drop' });
  const sets = objs.filter((o): o is Extract<NftObject, { kind: 'set' }> => o.kind === 'set');
  const ruleObjs = objs.filter((o): o is Extract<NftObject, { kind: 'rule' }> => o.kind === 'rule');
  assert.ok(sets.length > 0);
  for (const s of sets) {
    const user = ruleObjs.find((x) => JSON.stringify(x.expr).includes(`"@${s.name}"`))!;
    const verdict = JSON.stringify(user.expr![user.expr!.length - 1]);
    if (!s.flags?.includes('interval')) continue;
    assert.not.ok(verdict.includes('drop'), `interval set ${s.name} behind a drop`);
    const boxes = (s.elements ?? []).map((e) => (Array.isArray(e.key) ? e.key : [e.key]).map(span));
    for (let a = 0; a < boxes.length; a++) {
      for (let b = a + 1; b < boxes.length; b++) {
        const disjoint = boxes[a].some((x, i) => x[1] < boxes[b][i][0] || boxes[b][i][1] < x[0]);
        assert.ok(disjoint, `set ${s.name}: elements ${a} and ${b} overlap`);
      }
    }
  }
  assert.ok(sets.some((x) => x.flags?.includes('interval')), 'some interval sets were made');
  assert.equal(JSON.stringify(ruleObjs[ruleObjs.length - 1].expr), JSON.stringify([{ drop: null }]));
});

test.run();
