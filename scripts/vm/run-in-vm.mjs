#!/usr/bin/env node
// Boots the qemu test VM (Debian stock kernel under TCG, host root shared read-only over virtio-9p with a
// RAM overlay on top, no network device) and runs one command in it; streams its stdout/stderr and exits
// with its code. The job script and the channel sockets live in a private directory under $TMPDIR (or /tmp),
// removed when the run ends.
// Usage: run-in-vm.mjs [--timeout SECONDS] [--cwd DIR] [--verbose] CMD [ARGS…]
//   default cwd: the repository root; default timeout 600 s (then qemu is killed, exit code 124).
//   --verbose (or NRVM_VERBOSE=1) copies the guest console (kernel messages) to stderr.
// Environment: NRVM_CPUS (1), NRVM_MEMORY_MB (1536), NRVM_APPEND (extra kernel command line, e.g.
//   "loglevel=7" to see boot messages with --verbose), NRVM_QEMU (qemu binary), NRVM_TIMING=1.
// Channels: ttyS0 = console (kernel noise, "VMEXIT <nonce> <code>" from /init), ttyS1 = the command's
// stdout, ttyS2 = its stderr. Each is a unix socket qemu connects to; the VM itself has no network.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureInitramfs } from './build-initramfs.mjs';
import { VmError } from './errors.mjs';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const GUEST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
// qboot (shipped with Debian's qemu) boots a -kernel guest ~1 s sooner than SeaBIOS under TCG.
const QBOOT = '/usr/share/qemu/qboot.rom';
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/** Single-quotes a word for sh. */
export function shQuote(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs a shell script in a fresh VM. The script runs as root, chrooted in the host's root seen through an
 * overlay (every host path readable, writes kept in the guest's RAM), PATH set, HOME=/tmp, cwd = opts.cwd.
 * @param {object} opts
 * @param {string} opts.script shell text (run by the host root's /bin/sh)
 * @param {string} [opts.cwd]
 * @param {Record<string,string>} [opts.env] extra environment
 * @param {number} [opts.timeoutMs]
 * @param {(b: Buffer) => void} [opts.onStdout]
 * @param {(b: Buffer) => void} [opts.onStderr]
 * @param {(b: Buffer) => void} [opts.onConsole]
 * @param {number} [opts.memoryMb]
 * @param {number} [opts.cpus]
 * @returns {Promise<{ code: number, timedOut: boolean, console: string, qemuOutput: string, ms: number, cwd: string }>}
 *   code: the script's exit status; 124 on timeout; 253 if it could not enter cwd; 255 if the VM died
 *   without reporting one.
 */
export async function runScriptInVm(opts) {
  const t0 = Date.now();
  const { initramfs, kernel } = ensureInitramfs();
  removeStaleRunDirs();
  const nonce = randomBytes(8).toString('hex');
  const runDir = mkdtempSync(join(runBase(), RUN_PREFIX));
  const env = {
    PATH: GUEST_PATH, HOME: '/tmp', TERM: 'dumb', NO_COLOR: '1', LANG: 'C.UTF-8', TMPDIR: '/tmp',
    ...(opts.env ?? {}),
  };
  const job = [
    ...Object.entries(env).map(([k, v]) => `export ${k}=${shQuote(v)}`),
    `cd ${shQuote(opts.cwd ?? repoRoot)} || exit ${EXIT_NO_CWD}`,
    opts.script,
    '',
  ].join('\n');
  writeFileSync(join(runDir, 'job.sh'), job);

  const consoleChunks = [];
  const qemuOut = [];
  const servers = [];
  const open = new Set();
  let closedAll;
  const allClosed = new Promise((r) => { closedAll = r; });
  const channel = (name, sink) => new Promise((resolveListen, rejectListen) => {
    const path = join(runDir, `${name}.sock`);
    const server = createServer((sock) => {
      open.add(sock);
      sock.on('data', (b) => sink(b));
      sock.on('error', () => {});
      sock.on('close', () => { open.delete(sock); if (open.size === 0) closedAll(); });
    });
    server.on('error', rejectListen);
    server.listen(path, () => resolveListen(path));
    servers.push(server);
  });
  const conPath = await channel('console', (b) => { consoleChunks.push(b); opts.onConsole?.(b); });
  const outPath = await channel('stdout', (b) => opts.onStdout?.(b));
  const errPath = await channel('stderr', (b) => opts.onStderr?.(b));

  const args = [
    '-accel', 'tcg', '-cpu', 'max', '-machine', 'pc',
    '-m', String(opts.memoryMb ?? Number(process.env.NRVM_MEMORY_MB || 1536)), '-smp', String(opts.cpus ?? Number(process.env.NRVM_CPUS || 1)),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-nic', 'none',
    ...(existsSync(QBOOT) ? ['-bios', QBOOT] : []),
    '-kernel', kernel.image, '-initrd', initramfs,
    '-append', [
      'console=ttyS0', 'quiet', 'loglevel=1', 'panic=-1', 'rdinit=/init',
      `nrvm.job=${join(runDir, 'job.sh')}`, `nrvm.nonce=${nonce}`, process.env.NRVM_APPEND ?? '',
    ].join(' ').trim(),
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap',
    '-chardev', `socket,id=con,path=${conPath}`, '-serial', 'chardev:con',
    '-chardev', `socket,id=out,path=${outPath}`, '-serial', 'chardev:out',
    '-chardev', `socket,id=err,path=${errPath}`, '-serial', 'chardev:err',
  ];
  // setpriv --pdeathsig: qemu dies with us even if we are SIGKILLed (signal handlers below cover the rest).
  const qemuBin = process.env.NRVM_QEMU || 'qemu-system-x86_64';
  const [cmd, cmdArgs] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'SIGKILL', '--', qemuBin, ...args]] : [qemuBin, args];
  const qemu = spawn(cmd, cmdArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  qemu.stdout.on('data', (b) => qemuOut.push(b));
  qemu.stderr.on('data', (b) => qemuOut.push(b));

  const kill = () => { if (qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGKILL'); };
  const onSignal = (sig) => { kill(); cleanup(); process.kill(process.pid, sig); };
  const cleanup = () => {
    for (const s of servers) s.close();
    for (const s of open) s.destroy();
    rmSync(runDir, { recursive: true, force: true });
    process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); process.off('SIGHUP', onSignal);
  };
  process.once('SIGINT', onSignal); process.once('SIGTERM', onSignal); process.once('SIGHUP', onSignal);

  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; kill(); }, opts.timeoutMs ?? 600_000);
  const exited = await new Promise((res) => {
    qemu.on('error', (e) => res({ error: e }));
    qemu.on('exit', (code, signal) => res({ code, signal }));
  });
  clearTimeout(timer);
  // Let the channels drain (qemu closed its ends when it exited).
  if (open.size > 0) await Promise.race([allClosed, new Promise((r) => setTimeout(r, 2000))]);
  cleanup();

  const consoleText = Buffer.concat(consoleChunks).toString('utf8').replace(/\r/g, '');
  const qemuOutput = Buffer.concat(qemuOut).toString('utf8');
  if (exited.error || (exited.code === 127 && SETPRIV && consoleChunks.length === 0)) {
    const why = exited.error?.message ?? qemuOutput.trim();
    throw new VmError('NO_QEMU', `cannot start ${qemuBin}: ${why} (install qemu-system-x86)`);
  }
  const m = new RegExp(`^VMEXIT ${nonce} (\\d+)$`, 'm').exec(consoleText);
  const code = timedOut ? 124 : m ? Number(m[1]) : 255;
  return { code, timedOut, console: consoleText, qemuOutput, ms: Date.now() - t0, cwd: opts.cwd ?? repoRoot };
}

const RUN_PREFIX = 'nrvm-run-';
/** The job's exit code when it cannot enter its working directory in the guest. */
const EXIT_NO_CWD = 253;

/** Directory for a run's job script and sockets: short (a unix socket path has at most 107 bytes) and without
 *  white space (the job path travels on the kernel command line). */
function runBase() {
  const t = tmpdir();
  return /\s/.test(t) || t.length > 60 ? '/tmp' : t;
}

/** Run directories of runs killed without a chance to clean up (SIGKILL): gone after 2 hours. */
function removeStaleRunDirs() {
  const dir = runBase();
  for (const n of readdirSync(dir)) {
    if (!n.startsWith(RUN_PREFIX)) continue;
    const p = join(dir, n);
    try {
      if (Date.now() - statSync(p).mtimeMs > 2 * 3600_000) rmSync(p, { recursive: true, force: true });
    } catch { /* raced with another run's cleanup */ }
  }
}

/** Runs argv (no shell interpretation) in a fresh VM; see runScriptInVm. */
export function runInVm(argv, opts = {}) {
  return runScriptInVm({ ...opts, script: `exec ${argv.map(shQuote).join(' ')}` });
}

/** Human-readable reason when a VM run did not report a normal exit. */
export function explainFailure(r) {
  if (r.timedOut) return 'timeout: qemu killed';
  if (/^NRVM-INIT-ERROR (.*)$/m.test(r.console)) return `guest init failed: ${/^NRVM-INIT-ERROR (.*)$/m.exec(r.console)[1]}`;
  if (r.code === 255) return 'VM stopped without reporting an exit code (boot failure or kernel panic)';
  if (r.code === EXIT_NO_CWD) return `the guest cannot enter ${r.cwd}: the host's root is shared read-only over 9p, so a path qemu cannot read (another mount namespace, a FUSE mount) is not visible there; run from a checkout on a local disk`;
  return null;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  let timeoutS = Number(process.env.NRVM_TIMEOUT_S || 600);
  let cwd = repoRoot;
  let verbose = process.env.NRVM_VERBOSE === '1';
  while (argv[0]?.startsWith('--')) {
    const a = argv.shift();
    if (a === '--timeout') timeoutS = Number(argv.shift());
    else if (a === '--cwd') cwd = resolve(argv.shift());
    else if (a === '--verbose') verbose = true;
    else if (a === '--') break;
    else { process.stderr.write(`run-in-vm: unknown option ${a}\n`); process.exit(2); }
  }
  if (argv.length === 0 || !(timeoutS > 0)) {
    process.stderr.write('usage: run-in-vm.mjs [--timeout SECONDS] [--cwd DIR] [--verbose] CMD [ARGS...]\n');
    process.exit(2);
  }
  try {
    const r = await runInVm(argv, {
      cwd, timeoutMs: timeoutS * 1000,
      onStdout: (b) => process.stdout.write(b),
      onStderr: (b) => process.stderr.write(b),
      onConsole: verbose ? (b) => process.stderr.write(b) : undefined,
    });
    const why = explainFailure(r);
    if (why) {
      process.stderr.write(`run-in-vm: ${why}\n`);
      if (!verbose) process.stderr.write(`--- guest console ---\n${r.console}\n--- qemu ---\n${r.qemuOutput}\n`);
    }
    if (process.env.NRVM_TIMING === '1') process.stderr.write(`run-in-vm: ${r.ms} ms\n`);
    process.exit(r.code);
  } catch (e) {
    process.stderr.write(`run-in-vm: ${e.code ?? ''} ${e.message}\n`);
    process.exit(255);
  }
}
