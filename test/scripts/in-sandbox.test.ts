/**
 * scripts/in-sandbox.mjs leaves nothing behind on the host: the mount points it had to create are removed by
 * the last sandbox to end, those that existed stay as they were, and a sandbox that ends while another one
 * runs does not pull the directories from under it. Each case runs in a mount namespace of its own whose
 * /run is a fresh tmpfs and whose /etc is an overlay without /etc/netns: a stand-in for a host that has
 * never run netns-router.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TempDir } from '../cli/helpers.js';
import { requireSandbox } from '../helpers/sandbox.js';

requireSandbox();

const SANDBOX = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'scripts', 'in-sandbox.mjs');
const MARKER = '.made-by-netns-router-sandbox';

/** Runs `body` (sh) in a fresh mount namespace set up as a host without any of the sandbox's mount points.
 *  $SANDBOX runs in-sandbox.mjs as from a clean shell; $T is a scratch directory. Returns stdout. */
function onFreshHost(dir: TempDir, body: string): string {
  const script = [
    'set -e',
    'mount --make-rprivate /',
    'mount -t tmpfs fresh-run /run',
    'mkdir "$T/ov" && mount -t tmpfs ov "$T/ov" && mkdir "$T/ov/up" "$T/ov/work"',
    'mount -t overlay -o lowerdir=/etc,upperdir="$T/ov/up",workdir="$T/ov/work" fresh-etc /etc',
    'rm -rf /etc/netns',
    'sandbox() { env -u NETNS_ROUTER_SANDBOX "$NODE" "$SANDBOX_JS" "$@"; }',
    body,
  ].join('\n');
  const r = spawnSync('unshare', ['--mount', '--', 'sh', '-c', script], {
    encoding: 'utf8', env: { ...process.env, T: dir.path, NODE: process.execPath, SANDBOX_JS: SANDBOX },
  });
  assert.is(r.status, 0, `exit ${r.status}: ${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

test('the mount points a sandbox had to make are gone when it ends; inside it they were private tmpfs', () => {
  const dir = new TempDir('sandbox');
  try {
    const out = onFreshHost(dir, [
      'for d in /run/netns /run/netns-router /etc/netns; do [ -e "$d" ] && echo "before: $d"; done',
      `sandbox sh -c 'for d in /run/netns /run/netns-router /etc/netns; do echo "inside: $d $(stat -f -c %T $d)"; touch $d/probe; done; [ "$NETNS_ROUTER_SANDBOX" = 1 ] && echo "inside: flagged"'`,
      'for d in /run/netns /run/netns-router /etc/netns; do [ -e "$d" ] && echo "after: $d $(ls -A $d)"; done',
      'echo done',
    ].join('\n'));
    assert.not.match(out, /before:/, 'the stand-in host starts without them');
    for (const d of ['/run/netns', '/run/netns-router', '/etc/netns']) assert.ok(out.includes(`inside: ${d} tmpfs`), out);
    assert.ok(out.includes('inside: flagged'));
    assert.not.match(out, /after:/, 'nothing left behind');
    assert.match(out, /done\n$/);
  } finally {
    dir.cleanup();
  }
});

test('directories that existed before are kept as they were (with their contents), the rest removed', () => {
  const dir = new TempDir('sandbox');
  try {
    const out = onFreshHost(dir, [
      'mkdir /run/netns-router && echo theirs > /run/netns-router/engine.tcp',
      `sandbox sh -c 'ls -A /run/netns-router | sed "s/^/inside: /"'`,
      'echo "after: $(ls -A /run/netns-router)"',
      '[ -e /run/netns ] && echo "left: /run/netns"; [ -e /etc/netns ] && echo "left: /etc/netns"; echo done',
    ].join('\n'));
    assert.not.match(out, /inside: engine.tcp/, 'the host\'s files are hidden inside');
    assert.match(out, /after: engine.tcp\n/, 'kept, with exactly its own contents (no marker)');
    assert.not.match(out, /left:/);
  } finally {
    dir.cleanup();
  }
});

test('a sandbox that ends while another runs leaves the directories to the last one', () => {
  const dir = new TempDir('sandbox');
  try {
    const out = onFreshHost(dir, [
      // A: writes into its private /run/netns-router, waits for "go", then shows it still has its file
      `sandbox sh -c 'touch /run/netns-router/a; touch "$T/ready"; while [ ! -e "$T/go" ]; do sleep 0.05; done; echo "A sees: $(ls -A /run/netns-router)"' &`,
      'a=$!',
      'while [ ! -e "$T/ready" ]; do sleep 0.05; done',
      `sandbox sh -c 'echo "B inside: $(stat -f -c %T /run/netns-router)"'`,
      `echo "after B: $(ls -A /run/netns-router)"`,
      'touch "$T/go"; wait $a',
      'for d in /run/netns /run/netns-router /etc/netns; do [ -e "$d" ] && echo "left: $d"; done; echo done',
    ].join('\n'));
    assert.match(out, /B inside: tmpfs\n/);
    assert.match(out, new RegExp(`after B: ${MARKER.replace(/\./g, '\\.')}\n`), 'still there (marked) while A runs');
    assert.match(out, /A sees: a\n/, 'A\'s private mount was not pulled from under it');
    assert.not.match(out, /left:/, 'A, ending last, removed them');
  } finally {
    dir.cleanup();
  }
});

test.run();
