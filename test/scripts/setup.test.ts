/**
 * The README's set-up command and .ci/run install the same Debian packages: both are read here as shell
 * text, every `apt-get install` and every run of scripts/setup-debian.sh (which installs
 * scripts/debian-packages.txt) counted, and the two sets compared. Pure: no kernel, no apt.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const read = (rel: string) => readFileSync(join(ROOT, rel), 'utf8');

/** Names in debian-packages.txt ('#' comments, any number a line). */
function packageList(): string[] {
  return read('scripts/debian-packages.txt').split('\n').flatMap((l) => l.replace(/#.*/, '').trim().split(/\s+/)).filter(Boolean);
}

interface Installs {
  /** package names installed literally or through setup-debian.sh */
  packages: Set<string>;
  /** words of an `apt-get install` that are not literal names (a variable): what they install is unknowable here */
  dynamic: string[];
  setupRuns: number;
}

/** Simple commands of a shell text: split at ; && || | and new lines, quotes removed (enough for these files). */
function simpleCommands(text: string): string[][] {
  const body = text.split('\n').filter((l) => !/^\s*#/.test(l)).map((l) => l.replace(/\s#.*$/, '')).join('\n');
  return body.split(/&&|\|\||[;|\n]/).map((c) => (c.match(/"[^"]*"|'[^']*'|\S+/g) ?? []).map((w) => w.replace(/^["']|["']$/g, '')))
    .filter((w) => w.length > 0);
}

function installsOf(text: string): Installs {
  const out: Installs = { packages: new Set(), dynamic: [], setupRuns: 0 };
  for (let words of simpleCommands(text)) {
    while (words.length && (/^[A-Z_]+=/.test(words[0]) || words[0] === 'sudo' || words[0] === 'exec')) words = words.slice(1);
    const [cmd, ...args] = words;
    if (cmd === undefined) continue;
    if (/(^|\/)setup-debian\.sh$/.test(cmd)) {
      out.setupRuns++;
      for (const p of packageList()) out.packages.add(p);
    } else if (/(^|\/)apt(-get)?$/.test(cmd) && args.filter((a) => !a.startsWith('-'))[0] === 'install') {
      for (const a of args.filter((x) => !x.startsWith('-')).slice(1)) {
        if (a.includes('$')) out.dynamic.push(a);
        else out.packages.add(a);
      }
    }
  }
  return out;
}

/** The README's two set-up commands: the lines of the first sh block under "## Set-up". */
function readmeCommands(): string[] {
  const readme = read('README.md');
  const section = readme.slice(readme.indexOf('\n## Set-up'));
  const block = /```sh\n([\s\S]*?)```/.exec(section);
  assert.ok(block, 'README has a ```sh block in its Set-up section');
  return block![1].split('\n').filter((l) => l.trim() !== '');
}

const sorted = (s: Set<string>) => [...s].sort();

test('the README has two commands: set-up and demo, then npm test', () => {
  const lines = readmeCommands();
  assert.is(lines.length, 2, lines.join('\n'));
  assert.match(lines[0], /npm ci/);
  assert.match(lines[0], /npm run demo$/);
  assert.is(lines[1].trim(), 'npm test');
});

test('README set-up command and .ci/run install the same packages: the list in scripts/debian-packages.txt', () => {
  const readme = installsOf(readmeCommands()[0]);
  const ci = installsOf(read('.ci/run'));
  assert.equal(readme.dynamic, [], 'README installs only what can be read');
  assert.equal(ci.dynamic, [], '.ci/run installs only what can be read');
  assert.ok(readme.packages.size > 0 && ci.packages.size > 0);
  assert.equal(sorted(readme.packages), sorted(ci.packages));
  assert.equal(sorted(ci.packages), [...new Set(packageList())].sort());
  assert.is(readme.setupRuns, 1);
  assert.is(ci.setupRuns, 1);
});

test('setup-debian.sh installs exactly the list (nothing hard-coded), after apt-get update', () => {
  const text = read('scripts/setup-debian.sh');
  const own = installsOf(text.replace(/setup-debian\.sh/g, 'this-script'));
  assert.equal(sorted(own.packages), [], 'no literal package names');
  assert.equal(own.dynamic, ['$missing']);
  assert.match(text, /debian-packages\.txt/);
  assert.ok(text.indexOf('apt-get update') >= 0 && text.indexOf('apt-get update') < text.indexOf('apt-get install'));
});

test('the list holds what the tests run (a spot check of each group) and only well-formed names', () => {
  const list = packageList();
  for (const p of list) assert.match(p, /^[a-z0-9][a-z0-9.+-]+$/);
  assert.is(new Set(list).size, list.length, 'no name twice');
  for (const p of ['iproute2', 'nftables', 'libnftables1', 'dnsmasq-base', 'haproxy', 'udhcpc', 'iptables', 'openssl', 'xz-utils',
    'kmod', 'linux-image-amd64', 'qemu-system-x86', 'busybox-static', 'openssh-server', 'sshpass', 'procps']) {
    assert.ok(list.includes(p), p);
  }
});

test('the comparison is not blind: an extra install in either place is seen', () => {
  const base = installsOf(readmeCommands()[0]);
  const edited = installsOf(`apt-get install -y foo && ${readmeCommands()[0]}`);
  assert.ok(edited.packages.has('foo') && !base.packages.has('foo'));
  const ciEdited = installsOf(read('.ci/run').replace(/^scripts\/setup-debian\.sh$/m, 'apt-get install -y iproute2'));
  assert.not.equal(sorted(ciEdited.packages), sorted(base.packages));
  assert.equal(installsOf('apt-get install -y "${missing[@]}"').dynamic, ['${missing[@]}']);
});

test.run();
