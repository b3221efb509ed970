#!/usr/bin/env node
// Runs a command inside a private network + mount namespace so that nothing it does can touch the
// machine's own interfaces, routes, firewall or /run/netns. Usage: in-sandbox.mjs CMD [ARGS…]
// Inside: loopback up; /run/netns (shared propagation, as iproute2 expects), /run/netns-router (the resident
// engine's socket) and /etc/netns (per-namespace /etc of `ip netns exec`) are private tmpfs; and
// NETNS_ROUTER_SANDBOX=1 set so that test helpers can refuse to run outside it.
//
// Leaves nothing behind: a mount point the host lacks has to be made on the host's file system (the mounts
// are private, the directories are not). The sandbox marks such a directory with MARKER, and whichever
// sandbox ends last removes the marker and the directory if it is then empty. "Last" is decided with a lock
// on /run: every sandbox holds it shared while it runs, the clean-up takes it exclusively without waiting
// (if another sandbox still runs, that one cleans up when it ends).
import { spawnSync } from 'node:child_process';

const MOUNT_POINTS = ['/run/netns', '/run/netns-router', '/etc/netns'];
const MARKER = '.made-by-netns-router-sandbox';
const LOCK = '/run';

const argv = process.argv.slice(2);
if (argv.length === 0) {
  console.error('usage: in-sandbox.mjs COMMAND [ARGS...]');
  process.exit(1);
}
if (process.getuid && process.getuid() !== 0) {
  console.error('in-sandbox: must run as root (network namespaces, nftables)');
  process.exit(1);
}
if (process.env.NETNS_ROUTER_SANDBOX === '1') {
  const r = spawnSync(argv[0], argv.slice(1), { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;
const inner = [
  'set -e',
  'mount --make-rprivate /',
  `for d in ${MOUNT_POINTS.map(q).join(' ')}; do`,
  `  if mkdir "$d" 2>/dev/null; then : > "$d/${MARKER}"; fi`,
  '  mount -t tmpfs -o mode=755 netns-router-sandbox "$d"',
  'done',
  'mount --make-shared /run/netns',
  'ip link set lo up',
  'export NETNS_ROUTER_SANDBOX=1',
  'exec "$@"',
].join('\n');
// flock --close: the lock is held by flock itself, not inherited by the command (a daemon a test leaks must
// not keep the clean-up from ever running)
const r = spawnSync('flock', ['--shared', '--close', LOCK, 'unshare', '--net', '--mount', '--', 'sh', '-c', inner, 'sandbox', ...argv], { stdio: 'inherit' });
if (r.error) console.error(`in-sandbox: ${r.error.message} (flock and unshare come with util-linux)`);
const cleanup = [
  'for d; do',
  `  [ -f "$d/${MARKER}" ] || continue`,
  `  rm -f "$d/${MARKER}"`,
  '  rmdir "$d" 2>/dev/null || true  # not empty: someone else uses it now',
  'done',
].join('\n');
spawnSync('flock', ['--exclusive', '--nonblock', LOCK, 'sh', '-c', cleanup, 'cleanup', ...MOUNT_POINTS], { stdio: 'ignore' });
process.exit(r.status ?? 1);
