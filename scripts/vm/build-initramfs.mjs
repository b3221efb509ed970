#!/usr/bin/env node
// Builds the initramfs of the qemu test VM: static busybox (with its applet links), init.sh as /init,
// and the modules needed to mount the host's root over virtio-9p (decompressed, since busybox insmod
// may not read .ko.xz/.ko.zst), with /modules/order giving a valid insmod order.
// Cached in $NRVM_CACHE_DIR (default .cache/vm/ in the checkout, ignored by git; `rm -rf .cache` removes
// it), keyed by kernel version and a hash of everything that goes in, so it is rebuilt only when the kernel,
// busybox or init.sh change; older images of the same kernel are removed when a new one is built.
// Usage: build-initramfs.mjs [--force]   (prints the initramfs path)
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync, readdirSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { CpioWriter } from './cpio.mjs';
import { VmError } from './errors.mjs';
import { findKernel, loadOrder } from './kernel.mjs';

const here = dirname(fileURLToPath(import.meta.url));

/** Modules the init needs for the 9p root and the overlay on it (dependencies are added from modules.dep). */
const BOOT_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay'];

/** Where built initramfs images are kept: NRVM_CACHE_DIR, else .cache/vm/ in the checkout. */
export function cacheDir() {
  return process.env.NRVM_CACHE_DIR || join(here, '..', '..', '.cache', 'vm');
}

function findBusybox() {
  for (const p of ['/bin/busybox', '/usr/bin/busybox']) {
    // It must be static: /init runs before any shared library is reachable.
    if (existsSync(p) && isStaticElf(readFileSync(p))) return p;
  }
  throw new VmError('NO_BUSYBOX', 'no static busybox found (install busybox-static)');
}

/** True for an ELF64 little-endian executable without a PT_INTERP program header. */
function isStaticElf(buf) {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) return false;
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36), phnum = buf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    if (buf.readUInt32LE(phoff + i * phentsize) === 3 /* PT_INTERP */) return false;
  }
  return true;
}

/** Module file contents, decompressed if needed. */
function readModule(path) {
  const tool = path.endsWith('.xz') ? ['xz', '-dc'] : path.endsWith('.zst') ? ['zstd', '-dcq']
    : path.endsWith('.gz') ? ['gzip', '-dc'] : null;
  if (!tool) return readFileSync(path);
  const r = spawnSync(tool[0], [...tool.slice(1), path], { maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new VmError('BAD_MODULE', `${tool[0]} failed on ${path}: ${r.stderr}`);
  return r.stdout;
}

/**
 * @param {{ force?: boolean }} [opts]
 * @returns {{ initramfs: string, kernel: ReturnType<typeof findKernel>, built: boolean }}
 */
export function ensureInitramfs(opts = {}) {
  const kernel = findKernel();
  const busyboxPath = findBusybox();
  const busybox = readFileSync(busyboxPath);
  const init = readFileSync(join(here, 'init.sh'));
  const order = loadOrder(kernel.modulesDir, BOOT_MODULES);
  const modules = order.map((rel) => ({ rel, data: readModule(join(kernel.modulesDir, rel)) }));

  const hash = createHash('sha256');
  hash.update(busybox).update(init).update(readFileSync(join(here, 'cpio.mjs')));
  for (const m of modules) hash.update(m.rel).update(m.data);
  const key = hash.digest('hex').slice(0, 16);
  const dir = cacheDir();
  const out = join(dir, `initramfs-${kernel.version}-${key}.cpio.gz`);
  if (existsSync(out) && !opts.force) return { initramfs: out, kernel, built: false };

  const applets = spawnSync(busyboxPath, ['--list'], { encoding: 'utf8' });
  if (applets.status !== 0) throw new VmError('NO_BUSYBOX', `${busyboxPath} --list failed`);

  const cpio = new CpioWriter();
  for (const d of ['bin', 'dev', 'proc', 'sys', 'newroot', 'modules', 'tmp']) cpio.dir(d);
  // The kernel opens /dev/console for PID 1 before anything mounts devtmpfs.
  cpio.charDevice('dev/console', 5, 1);
  cpio.file('bin/busybox', busybox, 0o755);
  for (const a of applets.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
    if (a !== 'busybox' && !a.includes('/')) cpio.symlink(`bin/${a}`, 'busybox');
  }
  cpio.file('init', init, 0o755);
  const names = [];
  for (const m of modules) {
    const name = m.rel.replace(/^.*\//, '').replace(/\.(xz|zst|gz)$/, '');
    cpio.file(`modules/${name}`, m.data);
    names.push(name);
  }
  cpio.file('modules/order', names.join('\n') + '\n');

  mkdirSync(dir, { recursive: true });
  // Drop older images of this kernel; keep other kernels' images.
  for (const n of readdirSync(dir)) {
    if (n.startsWith(`initramfs-${kernel.version}-`) && n !== out.replace(/^.*\//, '')) unlinkSync(join(dir, n));
  }
  const tmp = `${out}.${process.pid}.tmp`;
  writeFileSync(tmp, gzipSync(cpio.finish(), { level: 6 }));
  renameSync(tmp, out);
  return { initramfs: out, kernel, built: true };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const r = ensureInitramfs({ force: process.argv.includes('--force') });
    process.stderr.write(`${r.built ? 'built' : 'cached'} initramfs for kernel ${r.kernel.version}\n`);
    process.stdout.write(`${r.initramfs}\n`);
  } catch (e) {
    process.stderr.write(`build-initramfs: ${e.code ?? ''} ${e.message}\n`);
    process.exit(1);
  }
}
