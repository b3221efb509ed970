#!/usr/bin/env node
// Runs INSIDE the qemu test VM (started by run-vm-tests.mjs): loads the kernel modules the VM suites
// need, then runs every compiled suite dist/test/vm/**/*.test.js as its own process through
// scripts/in-sandbox.mjs (fresh network + mount namespace per suite, like the host lane), streams their
// output and ends with one line "NRVM-SUITES <json>" that the host parses.
// Usage (in the guest): guest-suites.mjs [PATH-SUBSTRING…]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SUITE_TIMEOUT_MS = Number(process.env.NRVM_SUITE_TIMEOUT_S || 300) * 1000;

// 8021q is what this lane exists for; the rest are what the router uses (the kernel would also
// autoload most of them on demand through /init's modprobe helper).
const MODULES = [
  '8021q', 'bridge', 'veth', 'vxlan', 'macvlan', 'dummy', 'ipvlan', 'tun',
  'nf_tables', 'nfnetlink', 'nf_conntrack', 'nf_conntrack_netlink', 'nf_nat',
  'nft_ct', 'nft_nat', 'nft_masq', 'nft_redir', 'nft_chain_nat',
  'nft_reject', 'nft_reject_inet', 'nft_reject_ipv4', 'nft_reject_ipv6',
  'nft_fib', 'nft_fib_inet', 'nft_fib_ipv4', 'nft_fib_ipv6',
  'nft_limit', 'nft_log', 'nft_quota', 'nft_hash', 'nft_numgen', 'nft_objref', 'nft_compat',
];

function loadModules() {
  const all = spawnSync('modprobe', ['-a', ...MODULES], { encoding: 'utf8' });
  if (all.status === 0) return [];
  const missing = [];
  for (const m of MODULES) {
    const r = spawnSync('modprobe', [m], { encoding: 'utf8' });
    if (r.status !== 0) missing.push(`${m} (${(r.stderr || '').trim()})`);
  }
  return missing;
}

function walk(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

function runSuite(file) {
  return new Promise((resolveRun) => {
    const env = { ...process.env, NRVM_GUEST: '1' };
    delete env.NETNS_ROUTER_SANDBOX; // in-sandbox.mjs sets it once the namespaces exist
    const child = spawn(process.execPath, [join(root, 'scripts', 'in-sandbox.mjs'), process.execPath, file], {
      cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text) => { out += text; process.stdout.write(text); });
    let timedOut = false;
    const t = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, SUITE_TIMEOUT_MS);
    child.on('close', (code, signal) => { clearTimeout(t); resolveRun({ out, code, signal, timedOut }); });
  });
}

/** Counts from uvu's closing summary; a suite that exits non-zero or prints none counts one failure. */
function tally(out, code) {
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const total = /Total:\s+(\d+)/.exec(plain);
  const passed = /Passed:\s+(\d+)/.exec(plain);
  const skipped = /Skipped:\s+(\d+)/.exec(plain);
  if (!total || !passed) return { passed: 0, failed: 1, skipped: 0, crashed: true };
  const p = Number(passed[1]), s = skipped ? Number(skipped[1]) : 0;
  let f = Number(total[1]) - p - s;
  if (code !== 0 && f <= 0) f = 1; // exited non-zero although uvu counted no failure
  return { passed: p, failed: f, skipped: s, crashed: false };
}

const filters = process.argv.slice(2);
const kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
const uptime = () => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
const up0 = uptime();
const missing = loadModules();
process.stdout.write(`guest kernel ${kernel}: driver started ${up0.toFixed(1)} s after boot, modules loaded in ${(uptime() - up0).toFixed(1)} s\n`);
if (missing.length) process.stdout.write(`!! modules that did not load: ${missing.join(', ')}\n`);

const testDir = join(root, 'dist', 'test', 'vm');
let files = walk(testDir);
if (filters.length) files = files.filter((f) => filters.some((x) => relative(testDir, f).includes(x)));
const result = { kernel, missingModules: missing, suites: [] };
for (const f of files) {
  const rel = relative(root, f);
  process.stdout.write(`\n── [vm] ${rel}\n`);
  const t0 = Date.now();
  const r = await runSuite(f);
  const counts = tally(r.out, r.code);
  if (r.timedOut) process.stdout.write(`!! ${rel}: killed after ${SUITE_TIMEOUT_MS / 1000} s\n`);
  else if (counts.crashed) process.stdout.write(`!! ${rel}: no uvu summary (exit ${r.code ?? r.signal}): counted as a failure\n`);
  result.suites.push({ file: rel, exit: r.code, ms: Date.now() - t0, ...counts });
}
process.stdout.write(`\nNRVM-SUITES ${JSON.stringify(result)}\n`);
