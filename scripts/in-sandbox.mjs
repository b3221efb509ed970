#!/usr/bin/env node
// Runs a command inside a private network + mount namespace so that nothing it does can touch the
// machine's own interfaces, routes, firewall or /run/netns. Usage: in-sandbox.mjs CMD [ARGS…]
// Inside: loopback up, /run/netns a private tmpfs (shared propagation, as iproute2 expects), and
// NETNS_ROUTER_SANDBOX=1 set so that test helpers can refuse to run outside it.
import { spawnSync } from 'node:child_process';

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
const inner = [
  'set -e',
  'mount --make-rprivate /',
  'mkdir -p /run/netns /run/netns-router /var/lib/netns-router-sandbox',
  'mount -t tmpfs -o mode=755 sandbox-netns /run/netns',
  'mount --make-shared /run/netns',
  'mount -t tmpfs -o mode=755 sandbox-run /run/netns-router',
  // /etc/netns/<ns>/ (per-namespace /etc overrides used by `ip netns exec`) is private to the run too
  'mkdir -p /etc/netns && mount -t tmpfs -o mode=755 sandbox-etc-netns /etc/netns',
  'ip link set lo up',
  'export NETNS_ROUTER_SANDBOX=1',
  'exec "$@"',
].join('\n');
const r = spawnSync('unshare', ['--net', '--mount', '--', 'sh', '-c', inner, 'sandbox', ...argv], { stdio: 'inherit' });
process.exit(r.status ?? 1);
