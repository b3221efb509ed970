/** haproxy configuration rendering and `haproxy -c` checking (the real haproxy binary, no network). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { renderConfig, checkConfig, ConfigValidator, splitConfig, parseCheckOutput, serverCookie, globalMaxconn, type ProxySpec } from '../../lib/services/haproxy/index.js';


const base: ProxySpec = {
  id: '7', bindIp: '203.0.113.10', bindPort: 80, mode: 'tcp', algorithm: 'roundrobin',
  servers: [{ ip: '10.1.1.10', port: 8080 }, { ip: '10.1.1.11', port: 8080, weight: 3 }],
};

const section = (text: string, id: string): string[] => {
  const lines = text.split('\n');
  const start = lines.indexOf(`listen lb_${id}`);
  assert.ok(start >= 0, `section lb_${id} present`);
  const out: string[] = [];
  for (let i = start + 1; i < lines.length && lines[i].startsWith('    '); i++) out.push(lines[i].trim());
  return out;
};

test('plain TCP round-robin rule: bind, mode, balance, servers with default check and weights', () => {
  const r = renderConfig([base]);
  const s = section(r.text, '7');
  assert.equal(s, [
    'bind 203.0.113.10:80', 'mode tcp', 'balance roundrobin', 'maxconn 2000',
    'server 10.1.1.10:8080 10.1.1.10:8080 check', 'server 10.1.1.11:8080 10.1.1.11:8080 weight 3 check',
  ]);
  assert.ok(checkConfig(r.text).ok, 'haproxy -c accepts it');
});

test('every feature renders to a configuration haproxy accepts', () => {
  const proxies: ProxySpec[] = [
    { ...base, id: 'a', bindPort: 81, algorithm: 'leastconn', maxconn: 50, healthcheck: { enabled: true, path: '/health?x=1', intervalMs: 200, timeoutMs: 150, rise: 1, fall: 2 } },
    { ...base, id: 'b', bindPort: 82, algorithm: 'source', healthcheck: { enabled: false }, stickiness: { method: 'SourceBased', tableSize: '100k', expire: '30m' } },
    { ...base, id: 'c', bindPort: 83, mode: 'http', algorithm: 'static-rr', stickiness: { method: 'LbCookie', cookieName: 'SRV', mode: 'insert', nocache: true, indirect: true, postonly: false, domain: '.example.org' } },
    { ...base, id: 'd', bindPort: 84, mode: 'http', stickiness: { method: 'AppCookie', cookieName: 'JSESSIONID', length: 64, holdtime: '2h', requestLearn: true, mode: 'query-string' } },
    { ...base, id: 'e', bindPort: 85, mode: 'http', stickiness: { method: 'AppCookie', cookieName: 'PHPSESSID', length: 52, holdtime: '3h', requestLearn: false, mode: 'path-parameters' } },
    { ...base, id: 'f', bindPort: 86, servers: [] },
  ];
  const r = renderConfig(proxies, { title: 'test' });
  const check = checkConfig(r.text);
  assert.ok(check.ok, check.output);
  assert.ok(section(r.text, 'a').includes('option httpchk GET /health?x=1'));
  assert.ok(section(r.text, 'a').includes('default-server inter 200ms rise 1 fall 2'));
  assert.ok(section(r.text, 'a').includes('timeout check 150ms'));
  assert.ok(section(r.text, 'a').includes('maxconn 50'));
  assert.ok(section(r.text, 'b').includes('stick on src'));
  assert.ok(section(r.text, 'b').includes('server 10.1.1.10:8080 10.1.1.10:8080'), 'no check when disabled');
  assert.ok(section(r.text, 'c').includes('cookie SRV insert nocache indirect domain .example.org'));
  assert.ok(section(r.text, 'c').includes('option forwardfor'));
  assert.ok(section(r.text, 'c').includes(`server 10.1.1.10:8080 10.1.1.10:8080 check cookie ${serverCookie({ ip: '10.1.1.10', port: 8080 })}`));
  assert.ok(section(r.text, 'd').includes('stick store-request req.cook(JSESSIONID)'), 'request-learn');
  assert.ok(section(r.text, 'd').includes('stick match urlp(JSESSIONID)'));
  assert.ok(section(r.text, 'e').includes('stick match urlp(PHPSESSID,;)'));
  assert.not.ok(section(r.text, 'e').some((l) => l.startsWith('stick store-request')));
  assert.ok(/^global\n {4}maxconn 10066$/m.test(r.text.split('\n').slice(1, 3).join('\n')), 'global maxconn = sum of the proxies + the stats socket reserve');
  // owners: every line of a section names its rule
  const lines = r.text.split('\n');
  lines.forEach((l, i) => { if (l.startsWith('    server ')) assert.ok(r.owners[i] !== undefined); });
  assert.is(r.owners[lines.indexOf('listen lb_c')], 'c');
  assert.is(r.owners[1], undefined, 'global is nobody\'s');
});

test('rendering is deterministic and comments cannot break lines', () => {
  const a = renderConfig([{ ...base, comment: 'network 5, evil\nlisten x' }]).text;
  const b = renderConfig([{ ...base, comment: 'network 5, evil\nlisten x' }]).text;
  assert.is(a, b);
  assert.not.ok(/^listen x/m.test(a));
  assert.ok(checkConfig(a).ok);
});

test('checkConfig reports haproxy\'s problems with their line numbers', () => {
  const r = renderConfig([{ ...base, algorithm: 'nope' as never }, { ...base, id: 'w', bindPort: 81, servers: [{ ip: '10.1.1.10', port: 80, weight: 999 }] }]);
  const c = checkConfig(r.text);
  assert.not.ok(c.ok);
  assert.ok(c.problems.length >= 2, c.output);
  const balanceLine = r.text.split('\n').indexOf('    balance nope') + 1;
  assert.is(c.problems[0].line, balanceLine);
  assert.is(r.owners[c.problems[0].line! - 1], '7');
  assert.is(r.owners[c.problems[1].line! - 1], 'w');
  assert.match(c.problems[1].message, 'weight');
});

test('ConfigValidator: only the head and the sections not accepted before are checked; problems keep their lines', () => {
  const p = (id: string, port: number) => ({ id, bindIp: '10.0.0.1', bindPort: port, mode: 'tcp' as const, algorithm: 'roundrobin' as const, servers: [{ ip: '10.0.1.1', port: 80 }] });
  const v = new ConfigValidator();
  const many = Array.from({ length: 40 }, (_, i) => p(String(i), 1000 + i));
  const a = renderConfig(many).text;
  const parts = splitConfig(a);
  assert.is(parts.sections.length, 40);
  assert.match(parts.defaults, /^defaults\n/);
  assert.ok(parts.head.some((l) => l.startsWith('global')));
  assert.not.ok(v.known(a));
  const first = v.check(a);
  assert.ok(first.ok);
  assert.is(first.checkedLines, a.split('\n').length - 1, 'the whole text the first time');
  assert.ok(v.known(a));
  assert.is(v.check(a).checkedLines, 0, 'known: no haproxy run');
  // one rule changed: the head and that section only
  const b = renderConfig([...many.slice(0, 39), { ...p('39', 1039), algorithm: 'leastconn' as const }]).text;
  const second = v.check(b);
  assert.ok(second.ok);
  assert.ok(second.checkedLines > 0 && second.checkedLines < 30, `checked ${second.checkedLines} lines`);
  // rules removed: a new head (global maxconn) over known sections is checked with one of them (haproxy -c
  // alone refuses a head without a listener); positive control above: the full text was accepted
  const fewer = renderConfig(many.slice(0, 20)).text;
  assert.not.ok(v.known(fewer), 'the head changed');
  const third = v.check(fewer);
  assert.ok(third.ok, JSON.stringify(third.problems));
  assert.ok(third.checkedLines > 0 && third.checkedLines < 30, `checked ${third.checkedLines} lines`);
  // a bad new section among known ones: refused, located in the full text
  const bad = renderConfig([...many, p('40', 1040)]).text.replace(/(listen lb_40[\s\S]*?)balance roundrobin/, '$1balance nonsense');
  const r = v.check(bad);
  assert.not.ok(r.ok);
  const line = r.problems.find((x) => x.line !== undefined)?.line;
  assert.ok(line !== undefined && bad.split('\n')[line - 1].includes('balance nonsense'), `problem at line ${line}`);
  assert.not.ok(v.known(bad));
  // a configuration recorded as accepted by another haproxy binary vouches for nothing
  const w = new ConfigValidator();
  w.accepted(a, 'some-other-haproxy:1:2:3');
  assert.not.ok(w.known(a));
  w.accepted(a, w.identity());
  assert.ok(w.known(a));
});

test('parseCheckOutput: ALERT lines with and without a position; summary lines dropped', () => {
  const out = [
    '[NOTICE]   (1) : haproxy version is 2.6.12',
    '[ALERT]    (1) : config : parsing [/tmp/x/haproxy.cfg:10] : unknown keyword \'foo\' in \'listen\' section',
    '[ALERT]    (1) : config : [/tmp/x/haproxy.cfg:12] : \'server lb_1/a\' : invalid address',
    '[ALERT]    (1) : config : Proxy \'lb_1\': no bind',
    // haproxy 2.6 writes some positions with a capital P (a proxy named twice)
    '[ALERT]    (1) : config : Parsing [/tmp/x/haproxy.cfg:19]: proxy \'lb_1\' has the same name as proxy \'lb_1\' declared at /tmp/x/haproxy.cfg:8.',
    '[ALERT]    (1) : config : Error(s) found in configuration file : /tmp/x/haproxy.cfg',
    '[ALERT]    (1) : config : Fatal errors found in configuration.',
  ].join('\n');
  assert.equal(parseCheckOutput(out), [
    { line: 10, message: 'unknown keyword \'foo\' in \'listen\' section' },
    { line: 12, message: '\'server lb_1/a\' : invalid address' },
    { message: 'Proxy \'lb_1\': no bind' },
    { line: 19, message: 'proxy \'lb_1\' has the same name as proxy \'lb_1\' declared at /tmp/x/haproxy.cfg:8.' },
  ]);
});

test('global maxconn: sum of the proxies plus the stats socket\'s reserve, within the descriptor limit', () => {
  const many = Array.from({ length: 10 }, (_, i) => ({ ...base, id: String(i), bindPort: 80 + i }));
  assert.is(globalMaxconn([base]), 2016);
  assert.is(globalMaxconn(many), 20_016);
  assert.is(globalMaxconn(many, 20_000), 9872, '(20000 - 256) / 2');
  assert.is(globalMaxconn([base], 1024), 384);
  assert.match(renderConfig(many, { fdHardLimit: 20_000 }).text, /^ {4}maxconn 9872$/m);
});

test('workers run as an unprivileged account when asked', () => {
  const t = renderConfig([base], { runAs: { user: 'haproxy', group: 'haproxy' } }).text;
  assert.match(t, /^global\n {4}maxconn \d+\n {4}nbthread 1\n {4}httpclient\.ssl\.verify none\n {4}user haproxy\n {4}group haproxy$/m);
  assert.ok(checkConfig(t).ok);
  assert.not.match(renderConfig([base]).text, 'user ');
});

test.run();
