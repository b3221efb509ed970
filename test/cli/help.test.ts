/**
 * The CLI explains itself: every command of the table in `--help` (serve and proxy included), `help <command>`
 * for each, required arguments marked (and true to the builders), global options shown, text wrapped to the
 * width, unknown commands and options answered with the closest names on one stderr line (exit 1), nothing
 * logged for them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { COMMANDS, type CommandSpec } from '../../lib/router/contract/command-specs.js';
import { FIELD_BY_KEY } from '../../lib/router/contract/fields.js';
import { editDistance, renderHelp, suggest } from '../../lib/router/contract/help.js';
import { parseInvocation } from '../../lib/router/contract/parse.js';
import { UsageError } from '../../lib/util/errors.js';
import { installProxyHelp } from '../../lib/proxy/install-proxy.js';
import { proxyHelp } from '../../lib/proxy/invocation.js';
import { terminalWidth } from '../../cli/help.js';
import { serveHelp } from '../../cli/serve-args.js';
import { TempDir, cli } from './helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';
import { thrown } from '../helpers/expect.js';

requireSandbox();

const MAIN = new URL('../../cli/main.js', import.meta.url).pathname;
const FRONT_ENDS: Record<string, () => ReturnType<typeof serveHelp>> = { serve: serveHelp, proxy: proxyHelp, 'install-proxy': installProxyHelp };

/** A real `netns-router` process (stdout not a terminal), with its log pointed into `dir`. */
function run(args: string[], dir: TempDir) {
  return spawnSync(process.execPath, [MAIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, NETNS_ROUTER_LOG_FILE: dir.join('log', 'router.log'), NETNS_ROUTER_STATE_DIR: dir.join('state'), NETNS_ROUTER_ENGINE_SOCKET: 'off' },
  });
}

/** Lines longer than `width` that could have been broken (a single long word, or an option with its value
 *  placeholder, may stand alone). */
function overlong(text: string, width: number): string[] {
  return text.split('\n').filter((l) => l.length > width && /\S\s+\S/.test(l.trim().replace(/(--\S+) (<[^>]+>)/g, '$1_$2')));
}

const optionOf = (key: string) => `--${FIELD_BY_KEY.get(key)?.option ?? key}`;

test('--help and help list every command of the table, serve, proxy and install-proxy included; stdout only, exit 0', () => {
  const dir = new TempDir('help');
  try {
    for (const args of [['--help'], ['help'], ['-h']]) {
      const r = run(args, dir);
      assert.is(r.status, 0, r.stderr);
      assert.is(r.stderr, '');
      const listed = r.stdout.slice(r.stdout.indexOf('\nCommands:\n'), r.stdout.indexOf('\nGlobal options:\n'));
      for (const c of COMMANDS) assert.match(listed, new RegExp(`\\n  ${c.name} `), `${args[0]}: ${c.name}`);
      for (const name of ['serve', 'proxy', 'install-proxy']) assert.ok(listed.includes(`\n  ${name} `), name);
      assert.match(r.stdout, /--state-dir <dir>/);
      assert.equal(overlong(r.stdout, 80), [], 'not a terminal: 80 columns');
    }
    const none = run([], dir);
    assert.is(none.status, 1, 'no command: usage on stderr, exit 1');
    assert.is(none.stdout, '');
    assert.match(none.stderr, /^Usage: netns-router <command>/);
    assert.not.ok(existsSync(dir.join('log')), 'help writes no log');
  } finally {
    dir.cleanup();
  }
});

test('help serve / proxy / install-proxy: the same text as their own --help', () => {
  const dir = new TempDir('help');
  try {
    for (const name of Object.keys(FRONT_ENDS)) {
      const viaHelp = run(['help', name], dir);
      assert.is(viaHelp.status, 0, `${name}: ${viaHelp.stderr}`);
      assert.is(viaHelp.stdout, renderHelp(FRONT_ENDS[name](), 80));
      assert.match(viaHelp.stdout, new RegExp(`^Usage: netns-router ${name} `));
      const own = run([name, '--help'], dir);
      assert.is(own.status, 0, `${name} --help: ${own.stderr}`);
      assert.is(own.stdout, viaHelp.stdout, `${name}: help <cmd> and <cmd> --help agree`);
    }
    assert.match(run(['help', 'serve'], dir).stdout, /--socket <path>[\s\S]*--no-shim-port/);
    assert.match(run(['help', 'proxy'], dir).stdout, /--known-hosts <file>[\s\S]*--connect-timeout <seconds>/);
  } finally {
    dir.cleanup();
  }
});

test('a router command\'s help: usage with its required options, each marked (required), and the global options', async () => {
  const dir = new TempDir('help');
  try {
    for (const spec of COMMANDS.filter((c) => !c.frontEnd && !['help', 'version', 'install-wrapper'].includes(c.name))) {
      const r = await cli(['help', spec.name], dir);
      assert.is(r.code, 0, `${spec.name}: ${r.stderr}`);
      const [usage, rest] = [r.stdout.slice(0, r.stdout.indexOf('\n\n')), r.stdout.slice(r.stdout.indexOf('\n\n'))];
      const options = rest.slice(rest.indexOf('\nOptions:\n'), rest.indexOf('\nGlobal options:\n'));
      const required = new Set((spec.required ?? []).flat());
      for (const key of spec.fields) {
        const opt = optionOf(key);
        const row = new RegExp(`\\n  ${opt} <value>\\s+[^\\n]*(\\n {20,}[^\\n]*)*`).exec(options)?.[0] ?? '';
        assert.ok(row, `${spec.name}: ${opt} listed`);
        assert.is(/\(required/.test(row), required.has(key), `${spec.name}: ${opt} ${required.has(key) ? 'is' : 'is not'} marked required`);
        if (required.has(key)) assert.ok(usage.includes(`${opt} <value>`), `${spec.name}: ${opt} in the usage`);
      }
      assert.match(rest, /\nGlobal options:\n[\s\S]*--state-dir <dir>[\s\S]*--log-file <file>[\s\S]*-h, --help/, spec.name);
      assert.match(usage, new RegExp(`^Usage: netns-router ${spec.name} <payload-file>`));
    }
    const ca = await cli(['help', 'custom-action'], dir);
    assert.match(ca.stdout, /\(--network-id <value> \| --vpc-id <value>\)/, 'one of two: shown as alternatives');
    assert.match(ca.stdout, /--network-id <value>\s+CloudStack network id \(required, or --vpc-id\)/);
    const sv = await cli(['help', 'save-vm-data'], dir);
    assert.match(sv.stdout.replace(/\s+/g, ' '), /--vm-data <value> VM metadata document \(JSON or base64\) \(required, or --vm-data-file\)/);
    const iw = await cli(['install-wrapper', '--help'], dir);
    assert.is(iw.code, 0);
    assert.match(iw.stdout, /--root <dir>[\s\S]*--reset[\s\S]*Global options:/);
  } finally {
    dir.cleanup();
  }
});

/** A valid value for every field a command may require. */
const SAMPLE: Record<string, string> = {
  network_id: '42', vpc_id: '7', public_ip: '203.0.113.10', public_vlan: '100', public_port: '80', private_ip: '10.1.1.10',
  private_port: '8080', gateway: '10.1.1.1', cidr: '10.1.1.0/24', mac: '02:00:00:00:00:01', ip: '10.1.1.10', hostname: 'vm1',
  nic_id: '3', options: '{"42":"x"}', vm_data: '[]', restore_data: '{}', action: 'dump-config',
};

function parseWith(spec: CommandSpec, keys: readonly string[]) {
  const argv = [spec.name, ...keys.flatMap((k) => [optionOf(k), SAMPLE[k]])];
  return parseInvocation(argv, { env: {} });
}

test('what help calls required is what the parser requires (every command, both ways)', () => {
  for (const spec of COMMANDS.filter((c) => !c.frontEnd && !['help', 'version', 'install-wrapper'].includes(c.name))) {
    const req = spec.required ?? [];
    const pick = req.map((r) => (typeof r === 'string' ? r : r[0]));
    for (const k of pick) assert.ok(SAMPLE[k], `test needs a sample value for ${k}`);
    for (const r of req) for (const k of typeof r === 'string' ? [r] : r) assert.ok(spec.fields.includes(k), `${spec.name}: required ${k} is shown in its help`);
    // the required ones alone are enough …
    assert.is(parseWith(spec, pick).kind, 'engine', spec.name);
    // … and each of them is needed (named in the message), or every member of a one-of group
    for (const r of req) {
      const group = typeof r === 'string' ? [r] : r;
      const without = pick.filter((k) => !group.includes(k));
      const e = thrown(() => parseWith(spec, without), UsageError, {}, `${spec.name} without ${group.join('/')}`);
      assert.ok(group.some((k) => e.message.includes(optionOf(k))), `${spec.name}: ${e.message}`);
      for (const alt of group.slice(1)) assert.is(parseWith(spec, [...without, alt]).kind, 'engine', `${spec.name} with ${alt}`);
    }
  }
});

test('help wraps to the width asked for; a terminal\'s width is its columns, 80 otherwise', async () => {
  const dir = new TempDir('help');
  try {
    for (const width of [40, 60, 100, 132]) {
      for (const args of [['--help'], ['help', 'add-port-forward'], ['help', 'custom-action'], ['help', 'proxy'], ['help', 'serve']]) {
        const r = await cli(args, dir, { deps: { helpWidth: width } });
        assert.is(r.code, 0);
        assert.equal(overlong(r.stdout, width), [], `${args.join(' ')} at ${width}`);
      }
    }
    const wide = await cli(['--help'], dir, { deps: { helpWidth: 132 } });
    assert.ok(wide.stdout.split('\n').some((l) => l.length > 80), 'a wide terminal is used');
    assert.is(terminalWidth({ isTTY: true, columns: 117 } as NodeJS.WriteStream), 117);
    assert.is(terminalWidth({ isTTY: false, columns: 117 } as unknown as NodeJS.WriteStream), 80);
    // a real terminal: script(1) gives the process a pty of 100 columns
    const pty = spawnSync('script', ['-qec', `stty cols 100; ${process.execPath} ${MAIN} help add-port-forward`, '/dev/null'], {
      encoding: 'utf8', env: { ...process.env, NETNS_ROUTER_LOG_FILE: dir.join('pty.log'), NETNS_ROUTER_ENGINE_SOCKET: 'off' },
    });
    assert.is(pty.status, 0, pty.stderr);
    const lines = pty.stdout.replace(/\r/g, '').split('\n');
    assert.ok(lines.some((l) => l.length > 80), 'uses the terminal\'s 100 columns');
    assert.equal(overlong(pty.stdout.replace(/\r/g, ''), 100), []);
  } finally {
    dir.cleanup();
  }
});

test('unknown command: one stderr line with the closest names, exit 1, nothing on stdout, nothing logged', () => {
  const dir = new TempDir('help');
  try {
    const cases: [string[], RegExp][] = [
      [['implment-network'], /^netns-router: unknown command 'implment-network' \(did you mean 'implement-network'\?\); 'netns-router help' lists the commands\n$/],
      [['stauts'], /\(did you mean 'status'\?\)/],
      [['implement'], /\(did you mean 'implement-network' or 'implement-vpc'\?\)/],
      [['serv'], /\(did you mean 'serve'\?\)/],
      [['frobnicate'], /^netns-router: unknown command 'frobnicate'; 'netns-router help' lists the commands\n$/],
      [['help', 'add-port-froward'], /unknown command 'add-port-froward' \(did you mean 'add-port-forward'\?\)/],
      [['add-port-forward', '--netwrk-id', '4'], /^netns-router: unknown option '--netwrk-id' \(did you mean '--network-id'\?\)\n$/],
      [['--stat-dir', '/x', 'status'], /unknown option '--stat-dir' \(did you mean '--state-dir'\?\)/],
    ];
    for (const [args, want] of cases) {
      const r = run(args, dir);
      assert.is(r.status, 1, args.join(' '));
      assert.is(r.stdout, '', args.join(' '));
      assert.match(r.stderr, want, args.join(' '));
      assert.is(r.stderr.split('\n').length, 2, 'one line');
    }
    assert.not.ok(existsSync(dir.join('log')), 'no log file, no log directory');
  } finally {
    dir.cleanup();
  }
});

test('serve/proxy reaching the router parser (a shim or resident engine handed them) are refused in one line', async () => {
  const dir = new TempDir('help');
  try {
    const r = await cli(['serve', '--socket', '/x'], dir);
    assert.is(r.code, 1);
    assert.match(r.stderr, /^netns-router: 'serve' runs as a process of its own/);
    assert.is(r.calls.length, 0);
  } finally {
    dir.cleanup();
  }
});

test('suggestions: edit distance with swapped neighbours, a third of the word at most, prefixes', () => {
  assert.is(editDistance('status', 'stauts'), 1);
  assert.is(editDistance('kitten', 'sitting'), 3);
  assert.equal(suggest('stauts', ['status', 'serve']), ['status']);
  assert.equal(suggest('xyz', ['status', 'serve']), []);
  assert.equal(suggest('add-dns', ['add-dns-entry', 'add-dhcp-entry', 'remove-dns-entry']), ['add-dns-entry']);
});

test.run();
