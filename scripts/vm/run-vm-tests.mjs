#!/usr/bin/env node
// The qemu lane of `npm test`: boots ONE VM with Debian's stock kernel (802.1Q, bridge vlan_filtering
// available as modules), runs every compiled suite dist/test/vm/**/*.test.js in it (see
// guest-suites.mjs) and prints "VM RESULT <p> passed, <f> failed, <s> skipped".
// Exit 0 only when every test passed. A VM that does not boot, a suite that crashes or prints no uvu
// summary, no compiled suite at all, or a timeout: each counts as a failure, never as a pass.
// Usage: run-vm-tests.mjs [PATH-SUBSTRING…]   (expects `npx tsc` to have built dist/)
// Environment: NRVM_LANE_TIMEOUT_S (default 900), NRVM_VERBOSE=1 (guest console to stderr).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { explainFailure, repoRoot, runScriptInVm, shQuote } from './run-in-vm.mjs';

const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const verbose = process.env.NRVM_VERBOSE === '1';
const t0 = Date.now();

function finish(passed, failed, skipped, note) {
  if (note) process.stdout.write(`!! qemu lane: ${note}\n`);
  if (note && failed === 0) failed = 1; // whatever went wrong is counted, so the lane never passes silently
  process.stdout.write(`qemu lane: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  process.stdout.write(`VM RESULT ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  process.exit(failed === 0 ? 0 : 1);
}

if (!existsSync(join(repoRoot, 'dist', 'test', 'vm'))) {
  finish(0, 1, 0, 'no compiled VM suites in dist/test/vm (run npx tsc -p tsconfig.json first)');
}

// Our stdout carries the suites' output; hold back the guest driver's machine-readable last line.
// The serial line delivers a few bytes at a time: decode across chunk borders (multi-byte UTF-8).
const decoder = new StringDecoder('utf8');
let pending = '';
let summaryLine = null;
const onStdout = (b) => {
  pending += decoder.write(b);
  let nl;
  while ((nl = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, nl + 1);
    pending = pending.slice(nl + 1);
    if (line.startsWith('NRVM-SUITES ')) summaryLine = line.slice('NRVM-SUITES '.length);
    else process.stdout.write(line);
  }
};

let r;
try {
  r = await runScriptInVm({
    script: `exec node scripts/vm/guest-suites.mjs ${filters.map(shQuote).join(' ')}`,
    cwd: repoRoot,
    timeoutMs: Number(process.env.NRVM_LANE_TIMEOUT_S || 900) * 1000,
    onStdout,
    onStderr: (b) => process.stderr.write(b),
    onConsole: verbose ? (b) => process.stderr.write(b) : undefined,
  });
} catch (e) {
  // a missing tool or kernel: say what to install (scripts/setup-debian.sh installs everything the tests need)
  finish(0, 1, 0, `cannot run the VM: ${e.code ?? ''} ${e.message}; scripts/setup-debian.sh installs what the lane needs, \`npm test -- --no-vm\` runs the rest without it`);
}
pending += decoder.end();
if (pending) process.stdout.write(pending);

const why = explainFailure(r);
if (why || r.code !== 0 || summaryLine === null) {
  if (!verbose) process.stderr.write(`--- guest console ---\n${r.console}\n--- qemu ---\n${r.qemuOutput}\n`);
}
if (summaryLine === null) finish(0, 1, 0, why ?? `guest driver exited ${r.code} without a summary`);

const summary = JSON.parse(summaryLine);
let passed = 0, failed = 0, skipped = 0;
for (const s of summary.suites) { passed += s.passed; failed += s.failed; skipped += s.skipped; }
const bad = summary.suites.filter((s) => s.failed > 0).map((s) => s.file);
if (bad.length) process.stdout.write(`\n!! failed in the VM: ${bad.join(', ')}\n`);
const timing = summary.suites.map((s) => `${s.file.replace(/^dist\/test\/vm\//, '')} ${(s.ms / 1000).toFixed(1)} s`);
process.stdout.write(`\nVM kernel ${summary.kernel}; suites: ${timing.join(', ') || 'none'}\n`);
if (summary.suites.length === 0) {
  finish(passed, failed + 1, skipped, filters.length ? `no VM suite matches ${filters.join(' ')}` : 'no VM suite found');
}
finish(passed, failed, skipped, r.code !== 0 ? `guest driver exited ${r.code}` : undefined);
