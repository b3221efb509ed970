/**
 * apply-fw-rules recognises a text it already applied by its digest (lib/router/firewall/payload-digest.ts):
 * the same bytes again skip the parse and validation, nothing else — the kernel is still reconciled, so a rule
 * or a table someone deleted is restored (real packets, through the CLI). A text that differs in one byte is
 * parsed and validated whole: applied when good, exit 1 naming the argument and nothing changed when bad.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { runCommand } from '../../lib/router/command-table.js';
import { emptyModel } from '../../lib/router/model.js';
import { StateStore } from '../../lib/router/state/store.js';
import { parseFwDocument } from '../../lib/router/firewall/rules.js';
import { firewallState, putFwDocument, storedFwDocument } from '../../lib/router/firewall/state.js';
import { payloadDigest } from '../../lib/router/firewall/payload-digest.js';
import type { OpaqueJson } from '../../lib/router/contract/types.js';
import { inScratch, nsExec, uid, waitFor } from '../helpers/topo.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { isolatedTopo, servers, serversUp, tcpOk, routerTable } from '../helpers/fw.js';

requireSandbox();
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

/** A document given as text whose value counts its reads (as the CLI's reader gives it: decoded when read). */
function counted(text: string): { doc: OpaqueJson; reads: () => number } {
  let n = 0;
  const doc = { source: '--fw-rules-file' } as OpaqueJson;
  Object.defineProperty(doc, 'value', { enumerable: true, get: () => { n++; return JSON.parse(text); } });
  Object.defineProperty(doc, 'raw', { value: text });
  return { doc, reads: () => n };
}

test('pure: the stored document re-put gives the model a parse would, also after a filtered address was released', () => {
  const doc = { rules: [
    { id: 1, type: 'ingress', protocol: 'tcp', portStart: 22, publicIp: '203.0.113.5' },
    { id: 2, type: 'egress', protocol: 'udp', portStart: 53, destCidrs: ['10.0.0.0/8'] },
  ] };
  const text = JSON.stringify(doc);
  const d = payloadDigest('fw_rules', text);
  const m = emptyModel('cs-net-7', 'network', '7');
  (m.publicIps as Record<string, unknown>)['203.0.113.5'] = {};
  (m.publicIps as Record<string, unknown>)['203.0.113.6'] = {};
  putFwDocument(m, '7', parseFwDocument({ rules: [{ type: 'ingress', protocol: 'tcp', portStart: 80, publicIp: '203.0.113.6' }] }));
  assert.is(putFwDocument(m, '7', parseFwDocument(doc), d), undefined, 'a new document changes the model');
  assert.equal(firewallState(m).fw['7'].filteredIps, ['203.0.113.5', '203.0.113.6'], 'sticky: the address an earlier document named stays filtered');
  assert.is(storedFwDocument(m, '7', payloadDigest('fw_rules', `${text} `)), undefined, 'one byte more: another digest, nothing stored for it');
  assert.is.not(payloadDigest('fw_rules', '"\ud800"'), payloadDigest('fw_rules', '"\ufffd"'), 'a lone surrogate is not U+FFFD (UTF-8 would merge them)');
  assert.is.not(payloadDigest('fw_rules', Buffer.from(text)), d, 'a file\'s bytes and a text are told apart');
  assert.is(storedFwDocument(m, '8', d), undefined, 'another network holds nothing for it');
  const again = storedFwDocument(m, '7', d)!;
  assert.is(putFwDocument(m, '7', again, d), 'unchanged', 'the same text on the same model: untouched');

  // the address released: a re-put of the stored document changes filteredIps exactly like a parse would
  for (const fresh of [false, true]) {
    const x = new StateStore('/nonexistent').parse('cs-net-7', StateStore.serialize(m));
    delete (x.publicIps as Record<string, unknown>)['203.0.113.6'];
    const y = structuredClone(x);
    const v = putFwDocument(x, '7', fresh ? parseFwDocument(doc) : storedFwDocument(x, '7', d)!, d);
    putFwDocument(y, '7', parseFwDocument(doc), d);
    assert.is(v, undefined, 'not unchanged: the released address is forgotten');
    assert.is(StateStore.serialize(x), StateStore.serialize(y), 'the same model as a full parse');
    assert.equal(firewallState(x).fw['7'].filteredIps, ['203.0.113.5']);
  }
});

test('library: the same text is not decoded again, one byte more is; a bad text is refused and changes nothing', async () => {
  await inScratch((s) => isolatedTopo(s, String(1000 + (parseInt(uid(4), 16) % 9000))), async (t) => {
    const { engine, net, ns, P2 } = t;
    const text = JSON.stringify({ rules: [{ id: 1, type: 'ingress', protocol: 'tcp', portStart: 22, publicIp: P2 }] });
    const apply = (doc: OpaqueJson) => runCommand(engine, { command: 'apply-fw-rules', ...net, fwRules: doc });
    const first = counted(text);
    await apply(first.doc);
    assert.ok(first.reads() > 0, 'first apply: decoded and parsed');
    const state = engine.store.read(ns);
    const again = counted(text);
    await apply(again.doc);
    assert.is(again.reads(), 0, 'the same text again: not decoded');
    assert.is(engine.store.read(ns), state, 'nothing to save');
    assert.is(engine.lastNftSync?.mode, 'unchanged', 'the table confirmed');
    const oneMore = counted(`${text}\n`);
    await apply(oneMore.doc);
    assert.ok(oneMore.reads() > 0, 'one byte more: decoded and parsed');
    const saved = engine.store.read(ns)!;
    assert.is.not(saved, state, 'its digest stored');
    const bad = counted(text.replace('"tcp"', '"tcq"'));
    try {
      await apply(bad.doc);
      assert.unreachable('a bad rule is refused');
    } catch (e) {
      assert.is((e as { exitCode?: number }).exitCode, 1, String(e));
      assert.match((e as Error).message, /fw_rules\.rules\[0\].*protocol/);
    }
    assert.is(engine.store.read(ns), saved, 'state unchanged');
  });
});

test('CLI: the same rules file again repairs a deleted rule and a deleted table; one byte changed is parsed whole (applied, or exit 1 naming it)', async () => {
  await inScratch((s) => isolatedTopo(s, String(1000 + (parseInt(uid(4), 16) % 9000))), async (t, procs) => {
    const { net, ns, P2, upNs, vm2, hostNs, stateDir } = t;
    procs.push(...servers(vm2, [22, 23, 2222], []));
    assert.ok(await serversUp(vm2, [22, 23, 2222], []));
    const g = ['--host-netns', hostNs, '--state-dir', stateDir, '--log-file', join(stateDir, 'cli.log')];
    const file = join(stateDir, 'fw.json');
    const cli = (path = file) => spawnSync(process.execPath, [CLI, 'apply-fw-rules', '--network-id', net.networkId, '--fw-rules-file', path, ...g], { encoding: 'utf8', timeout: 60_000 });
    const rules: object[] = Array.from({ length: 300 }, (_, i) => ({ id: i, type: 'ingress', protocol: 'tcp', portStart: 10_000 + i, publicIp: P2 }));
    rules.push({ id: 999, type: 'ingress', protocol: 'tcp', publicIp: P2, portStart: 22 });
    const text = JSON.stringify({ default_egress_allow: true, rules });
    const oneByte = (to: string): string => {
      const x = text.replace('"portStart":22}', `"portStart":${to}}`);
      assert.is.not(x, text);
      assert.is(x.length, text.length);
      return x;
    };
    writeFileSync(file, text);
    const statePath = join(stateDir, 'routers', `${ns}.json`);

    let r = cli();
    assert.is(r.status, 0, r.stderr);
    assert.ok(await waitFor(() => tcpOk(upNs, P2, 22), 5000), 'allowed port open');
    assert.not.ok(tcpOk(upNs, P2, 2222), 'other port closed');
    const digest = (JSON.parse(readFileSync(statePath, 'utf8')) as { extra: { firewall: { fw: Record<string, { digest?: string }> } } }).extra.firewall.fw[net.networkId].digest;
    assert.type(digest, 'string', 'the digest of the text is stored with the rules');

    // the same file again: nothing to save (the state file is not rewritten)
    const before = statSync(statePath);
    r = cli();
    assert.is(r.status, 0, r.stderr);
    assert.is(statSync(statePath).ino, before.ino, 'state file not replaced');

    // someone deletes our allow rules (the drop at the end of fw_in stays): 22 is closed
    const listing = nsExec(ns, ['nft', '-a', 'list', 'chain', 'inet', 'netns_router', 'fw_in']);
    const handles = [...listing.matchAll(/^\s*(.*) # handle (\d+)$/gm)].filter((x) => !/\bdrop\b|^chain\b|\{$/.test(x[1])).map((x) => x[2]);
    assert.ok(handles.length > 0, listing);
    for (const h of handles) nsExec(ns, ['nft', 'delete', 'rule', 'inet', 'netns_router', 'fw_in', 'handle', h]);
    assert.not.ok(tcpOk(upNs, P2, 22), 'the deletion closed 22');
    r = cli();
    assert.is(r.status, 0, r.stderr);
    assert.ok(await waitFor(() => tcpOk(upNs, P2, 22), 5000), 'the identical file restored the rule: 22 open again');
    assert.not.ok(tcpOk(upNs, P2, 2222), 'and 2222 still closed');

    // someone deletes the whole table (P2 is a static NAT: unfiltered and un-NATed without it)
    nsExec(ns, ['nft', 'delete', 'table', 'inet', 'netns_router']);
    r = cli();
    assert.is(r.status, 0, r.stderr);
    assert.ok(await waitFor(() => tcpOk(upNs, P2, 22), 5000), 'the identical file rebuilt the table: 22 open');
    assert.not.ok(tcpOk(upNs, P2, 2222), 'and 2222 closed again');

    // one byte changed (22 → 23): another digest, parsed and applied
    const changed = join(stateDir, 'fw-23.json');
    writeFileSync(changed, oneByte('23'));
    r = cli(changed);
    assert.is(r.status, 0, r.stderr);
    assert.ok(await waitFor(() => tcpOk(upNs, P2, 23), 5000), '23 open');
    assert.not.ok(tcpOk(upNs, P2, 22), '22 closed');

    // back to the first file (its digest is no longer the stored one): applied again
    r = cli();
    assert.is(r.status, 0, r.stderr);
    assert.ok(await waitFor(() => tcpOk(upNs, P2, 22), 5000), '22 open again');
    assert.not.ok(tcpOk(upNs, P2, 23), '23 closed again');

    // one byte changed to bad input — in the JSON, in a rule's field: exit 1 naming the argument, nothing changed
    const state = readFileSync(statePath, 'utf8');
    const table = routerTable(ns);
    for (const [bad, name] of [[oneByte('2x'), /--fw-rules-file/], [oneByte('-2'), /fw_rules\.rules\[300\]/]] as const) {
      const path = join(stateDir, 'fw-bad.json');
      writeFileSync(path, bad);
      r = cli(path);
      assert.is(r.status, 1, `${r.stdout}${r.stderr}`);
      assert.match(r.stderr, name);
      assert.is(r.stderr.trim().split('\n').length, 1, 'one line');
      assert.is(readFileSync(statePath, 'utf8'), state, 'state unchanged');
      assert.is(routerTable(ns), table, 'table unchanged');
    }
    assert.ok(tcpOk(upNs, P2, 22), 'positive control: 22 open');
    assert.not.ok(tcpOk(upNs, P2, 2222), '2222 closed');
  });
});

test.run();
