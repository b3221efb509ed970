/** apply-lb-rules validation and merge (pure model changes + `haproxy -c`; no namespaces). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseLbDocument, applyLbRules, activeLbRules, lbState, renderLbConfig } from '../../lib/router/lb/index.js';
import { emptyModel, type RouterModel } from '../../lib/router/model.js';
import { UsageError } from '../../lib/util/errors.js';
import { thrown } from '../helpers/expect.js';
import { realKernel } from '../../lib/router/kernel.js';

/** The real haproxy's `haproxy -c` (no daemon is started: only check() is used). */
const haproxy = realKernel().haproxy('cs-net-5', '/nonexistent/netns-router-lb-rules/haproxy');


const doc = (value: unknown, source = 'payload.lb_rules') => ({ value, source });
const rule = (over: Record<string, unknown> = {}) => ({
  id: 11, name: 'web', publicIp: '203.0.113.10', publicPort: 80, privatePort: 8080, protocol: 'tcp', algorithm: 'roundrobin',
  revoke: false, backends: [{ ip: '10.1.1.10', port: 8080, revoked: false }, { ip: '10.1.1.11', port: 8080, revoked: false }],
  ...over,
});

function model(): RouterModel {
  const m = emptyModel('cs-net-5', 'network', '5');
  m.tiers['5'] = { networkId: '5', segment: { kind: 'vxlan', vni: 5 }, hostDev: 'eth1', gateway: '10.1.1.1', cidr: '10.1.1.0/24', extensionIp: '10.1.1.1', guestType: 'isolated', implemented: true };
  for (const ip of ['203.0.113.10', '203.0.113.11']) {
    m.publicIps[ip] = { ip, prefixLen: 24, segment: { kind: 'untagged' }, hostDev: 'eth1', sourceNat: ip.endsWith('10'), owner: '5' };
  }
  return m;
}

function rejects(fn: () => unknown, ...parts: string[]): UsageError {
  const e = thrown(fn, UsageError, { exitCode: 1 });
  for (const p of parts) assert.match(e.message, p);
  return e;
}

test('upstream rule shape → typed rule; revoked backends dropped; privatePort fills missing backend ports', () => {
  const d = parseLbDocument(doc([rule({ backends: [{ ip: '10.1.1.10', port: 8080 }, { ip: '10.1.1.11', revoked: true, port: 1 }, { ip: '10.1.1.12' }] })]));
  assert.equal(d.revokes, []);
  assert.equal(d.upserts, [{
    id: '11', name: 'web', publicIp: '203.0.113.10', publicPort: 80, protocol: 'tcp', algorithm: 'roundrobin',
    backends: [{ ip: '10.1.1.10', port: 8080 }, { ip: '10.1.1.12', port: 8080 }],
  }]);
});

test('extensions: protocol http, weight, maxconn, healthcheck and stickiness with CloudStack parameter names', () => {
  const d = parseLbDocument(doc([rule({
    protocol: 'HTTP', algorithm: 'LeastConn', maxconn: '300', unknownField: { anything: 1 },
    backends: [{ ip: '10.1.1.10', port: '8080', weight: 5 }],
    healthCheckPolicy: { pingpath: '/ping', intervaltime: 0.5, responsetimeout: '0.25', healthythreshold: 2, unhealthythreshold: 3 },
    stickinessPolicy: { methodname: 'LbCookie', param: [{ name: 'cookie-name', value: 'SRVID' }, { name: 'nocache', value: '' }, { name: 'indirect', value: 'true' }] },
  })]));
  const r = d.upserts[0];
  assert.is(r.protocol, 'http');
  assert.is(r.algorithm, 'leastconn');
  assert.is(r.maxconn, 300);
  assert.equal(r.backends, [{ ip: '10.1.1.10', port: 8080, weight: 5 }]);
  assert.equal(r.healthcheck, { enabled: true, path: '/ping', intervalMs: 500, timeoutMs: 250, rise: 2, fall: 3 });
  assert.equal(r.stickiness, { method: 'LbCookie', mode: 'insert', cookieName: 'SRVID', nocache: true, indirect: true, postonly: false });
  const s2 = parseLbDocument(doc([rule({ stickiness: { method: 'SourceBased', params: { tablesize: '100k', expire: '30m' } } })])).upserts[0].stickiness;
  assert.equal(s2, { method: 'SourceBased', tableSize: '100k', expire: '30m' });
  const s3 = parseLbDocument(doc([rule({ stickiness: { method: 'AppCookie', params: [['cookie-name', 'JSESSIONID'], ['holdtime', '2h'], ['request-learn', 'true'], ['mode', 'query-string']] } })])).upserts[0].stickiness;
  assert.equal(s3, { method: 'AppCookie', cookieName: 'JSESSIONID', length: 52, holdtime: '2h', requestLearn: true, mode: 'query-string' });
  assert.equal(parseLbDocument(doc([rule({ healthcheck: false })])).upserts[0].healthcheck, { enabled: false });
});

test('revoke needs only the id; duplicate ids in one document are refused', () => {
  assert.equal(parseLbDocument(doc([{ id: 'x-1', revoke: true, algorithm: 'bogus' }])).revokes, ['x-1']);
  rejects(() => parseLbDocument(doc([rule(), rule()])), 'rule 11', 'listed twice');
});

test('wrong values are refused naming the document, the rule and the field', () => {
  const cases: Array<[Record<string, unknown>, string[]]> = [
    [{ algorithm: 'random' }, ['payload.lb_rules', 'rule 11', 'algorithm', 'random']],
    [{ publicPort: 70000 }, ['rule 11', 'publicPort', '70000']],
    [{ publicPort: 'eighty' }, ['rule 11', 'publicPort']],
    [{ publicIp: '203.0.113.300' }, ['rule 11', 'publicIp']],
    [{ publicIp: '2001:db8::1' }, ['rule 11', 'publicIp', 'IPv6']],
    [{ protocol: 'udp' }, ['rule 11', 'protocol', 'udp load balancing is not supported']],
    [{ protocol: 'ssl' }, ['rule 11', 'protocol', 'tcp, http']],
    [{ backends: [{ ip: '10.1.1.300', port: 80 }] }, ['rule 11', 'backends[0].ip']],
    [{ backends: [{ ip: '10.1.1.3', port: 0 }] }, ['rule 11', 'backends[0].port']],
    [{ backends: [{ ip: '10.1.1.3', port: 80, weight: 300 }] }, ['rule 11', 'backends[0].weight']],
    [{ backends: [{ ip: '10.1.1.3', port: 80 }, { ip: '10.1.1.3', port: 80 }] }, ['rule 11', 'backends[1]', 'twice']],
    [{ backends: [{ ip: '10.1.1.3' }], privatePort: undefined }, ['rule 11', 'backends[0].port', 'missing']],
    [{ maxconn: 0 }, ['rule 11', 'maxconn']],
    [{ healthcheck: { path: 'no-slash' } }, ['rule 11', 'healthcheck.path']],
    [{ healthcheck: { path: '/a#b' } }, ['rule 11', 'healthcheck.path']],
    [{ healthcheck: { interval: -1 } }, ['rule 11', 'healthcheck.interval']],
    [{ healthcheck: { rise: 0 } }, ['rule 11', 'healthcheck.rise']],
    [{ stickiness: { method: 'Magic' } }, ['rule 11', 'stickiness.method']],
    [{ stickiness: { method: 'LbCookie', params: { 'cookie-name': 'a b' } } }, ['rule 11', 'stickiness.params.cookie-name']],
    [{ stickiness: { method: 'LbCookie', params: { mode: 'rewrite', nocache: true } } }, ['rule 11', 'stickiness.params.mode']],
    [{ stickiness: { method: 'LbCookie', params: { colour: 'red' } } }, ['rule 11', 'unknown parameter']],
    [{ stickiness: { method: 'AppCookie', params: {} } }, ['rule 11', 'cookie-name']],
    [{ stickiness: { method: 'AppCookie', params: { 'cookie-name': 'J', prefix: true } } }, ['rule 11', 'prefix']],
    [{ stickiness: { method: 'SourceBased', params: { expire: '20h30m' } } }, ['rule 11', 'stickiness.params.expire']],
    [{ stickiness: { method: 'SourceBased', params: { tablesize: 'huge' } } }, ['rule 11', 'stickiness.params.tablesize']],
    [{ stickiness: { method: 'SourceBased', params: { tablesize: '4g' } } }, ['rule 11', 'stickiness.params.tablesize', '4294967295 entries']],
    [{ stickiness: { method: 'SourceBased', params: { tablesize: '4096m' } } }, ['rule 11', 'stickiness.params.tablesize', '4294967295 entries']],
    [{ stickiness: { method: 'SourceBased', params: { tablesize: '4194304k' } } }, ['rule 11', 'stickiness.params.tablesize', '4294967295 entries']],
    [{ stickiness: { method: 'SourceBased', params: { tablesize: '4294967296' } } }, ['rule 11', 'stickiness.params.tablesize', '4294967295 entries']],
    [{ stickiness: { method: 'SourceBased', params: { tablesize: '0k' } } }, ['rule 11', 'stickiness.params.tablesize', '4294967295 entries']],
    [{ id: 'bad id!' }, ['rule #0', 'id']],
  ];
  for (const [over, parts] of cases) rejects(() => parseLbDocument(doc([rule(over)])), ...parts);
  rejects(() => parseLbDocument(doc({ not: 'a list' })), 'payload.lb_rules', 'array');
  rejects(() => parseLbDocument(doc(['x'])), 'rule #0');
});

test('applyLbRules: merge by id per network, revoke deletes, state cleared when empty', () => {
  const m = model();
  applyLbRules(m, { networkId: '5', lbRules: doc([rule(), rule({ id: 12, publicPort: 81 })]) }, haproxy);
  assert.equal(Object.keys(lbState(m).networks['5']).sort(), ['11', '12']);
  assert.is(activeLbRules(m).length, 2);
  applyLbRules(m, { networkId: '5', lbRules: doc([rule({ algorithm: 'source' })]) }, haproxy);
  assert.is(lbState(m).networks['5']['11'].algorithm, 'source', 'replaced by id');
  assert.is(activeLbRules(m).length, 2, 'other rules kept');
  applyLbRules(m, { networkId: '5', lbRules: doc([]) }, haproxy);
  assert.is(activeLbRules(m).length, 2, 'empty list changes nothing');
  applyLbRules(m, { networkId: '5' }, haproxy);
  assert.is(activeLbRules(m).length, 2, 'absent document changes nothing');
  applyLbRules(m, { networkId: '5', lbRules: doc([{ id: 11, revoke: true }, { id: 12, revoke: 'true' }]) }, haproxy);
  assert.is(m.extra?.lb, undefined, 'no rule left → no state');
  assert.ok(renderLbConfig(m).text.includes('global'));
});

test('applyLbRules refuses what cannot be served, and leaves the model untouched', () => {
  const m = model();
  applyLbRules(m, { networkId: '5', lbRules: doc([rule()]) }, haproxy);
  const before = JSON.stringify(m);
  const attempt = (value: unknown) => { const c = structuredClone(m); applyLbRules(c, { networkId: '5', lbRules: doc(value) }, haproxy); };
  rejects(() => attempt([rule({ id: 12 })]), 'rule 12', '203.0.113.10:80', 'already used by rule 11');
  rejects(() => attempt([rule({ id: 12, publicIp: '198.51.100.7' })]), 'rule 12', 'publicIp', 'not assigned', 'assign-ip');
  m.portForwards.push({ publicIp: '203.0.113.11', protocol: 'tcp', publicPorts: [8000, 8100], privateIp: '10.1.1.20', privatePorts: [8000, 8100] });
  rejects(() => { const c = structuredClone(m); applyLbRules(c, { networkId: '5', lbRules: doc([rule({ id: 13, publicIp: '203.0.113.11', publicPort: 8050 })]) }, haproxy); }, 'rule 13', 'port-forwarded');
  m.portForwards = [];
  m.staticNats.push({ publicIp: '203.0.113.11', privateIp: '10.1.1.30' });
  rejects(() => { const c = structuredClone(m); applyLbRules(c, { networkId: '5', lbRules: doc([rule({ id: 13, publicIp: '203.0.113.11' })]) }, haproxy); }, 'rule 13', 'static NAT');
  m.staticNats = [];
  // a valid document haproxy refuses (haproxy 2.6: timers up to 2^31-1 ms): the rule named
  const sticky = (params: Record<string, string>) => ({ methodname: 'SourceBased', param: Object.entries(params).map(([name, value]) => ({ name, value })) });
  rejects(() => attempt([rule({ id: 14, publicPort: 82, stickiness: sticky({ expire: '30d' }) })]), 'rule 14', 'haproxy refused the configuration', 'timer overflow');
  attempt([rule({ id: 14, publicPort: 82, stickiness: sticky({ expire: '24d', tablesize: '4m' }) })]); // positive control
  // the largest table sizes haproxy reads into its 32 bits (4g, 4096m are refused by the parser, see above)
  for (const tablesize of ['3g', '4095m', '4194303k', '4294967295']) attempt([rule({ id: 14, publicPort: 82, stickiness: sticky({ tablesize }) })]);
  assert.is(JSON.stringify(m), before);
});

test('VPC: rules per tier; one listener per address across tiers; a destroyed tier takes its rules along', () => {
  const m = emptyModel('cs-vpc-3', 'vpc', '3');
  m.vpc = { id: '3', implemented: true };
  for (const [id, n] of [['21', 1], ['22', 2]] as const) {
    m.tiers[id] = { networkId: id, segment: { kind: 'vxlan', vni: n }, hostDev: 'eth1', gateway: `10.10.${n}.1`, cidr: `10.10.${n}.0/24`, extensionIp: `10.10.${n}.1`, guestType: 'isolated', implemented: true };
  }
  m.publicIps['203.0.113.20'] = { ip: '203.0.113.20', prefixLen: 24, segment: { kind: 'untagged' }, hostDev: 'eth1', sourceNat: true, owner: '3' };
  applyLbRules(m, { networkId: '21', lbRules: doc([rule({ id: 1, publicIp: '203.0.113.20', backends: [{ ip: '10.10.1.5', port: 80 }] })]) }, haproxy);
  applyLbRules(m, { networkId: '22', lbRules: doc([rule({ id: 2, publicIp: '203.0.113.20', publicPort: 81, backends: [{ ip: '10.10.2.5', port: 80 }] })]) }, haproxy);
  assert.equal(activeLbRules(m).map((r) => `${r.networkId}/${r.id}`), ['21/1', '22/2']);
  rejects(() => applyLbRules(structuredClone(m), { networkId: '22', lbRules: doc([rule({ id: 3, publicIp: '203.0.113.20', publicPort: 80 })]) }, haproxy), 'rule 3', 'already used by rule 1');
  rejects(() => applyLbRules(structuredClone(m), { networkId: '22', lbRules: doc([rule({ id: 1, publicIp: '203.0.113.20', publicPort: 90 })]) }, haproxy), 'rule 1', 'network 21');
  m.tiers['22'].implemented = false;
  assert.equal(activeLbRules(m).map((r) => r.id), ['1'], 'a shut-down tier serves nothing');
  delete m.tiers['22'];
  applyLbRules(m, { networkId: '21', lbRules: doc([]) }, haproxy);
  assert.equal(Object.keys(lbState(m).networks), ['21'], 'rules of the destroyed tier pruned');
});

test.run();
