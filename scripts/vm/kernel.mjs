// Locates the guest kernel for the qemu test lane (Debian's stock kernel from linux-image-amd64, whose
// 8021q/bridge/… are modules, unlike the development machine's own kernel) and resolves module
// dependencies from its modules.dep, so the initramfs can insmod them in a valid order.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VmError } from './errors.mjs';

/**
 * @returns {{ version: string, image: string, modulesDir: string }}
 * NRVM_KERNEL=/boot/vmlinuz-X picks one explicitly; otherwise the newest /boot/vmlinuz-* that has a
 * matching /lib/modules/<version>/modules.dep.
 */
export function findKernel() {
  const explicit = process.env.NRVM_KERNEL;
  const candidates = explicit
    ? [explicit]
    : readdirSync('/boot').filter((n) => n.startsWith('vmlinuz-')).map((n) => join('/boot', n));
  const usable = [];
  for (const image of candidates) {
    const version = image.replace(/^.*\/vmlinuz-/, '');
    const modulesDir = join('/lib/modules', version);
    if (existsSync(image) && existsSync(join(modulesDir, 'modules.dep'))) usable.push({ version, image, modulesDir });
  }
  if (usable.length === 0) {
    throw new VmError('NO_KERNEL', explicit
      ? `NRVM_KERNEL=${explicit}: image or /lib/modules/<version>/modules.dep missing`
      : 'no /boot/vmlinuz-* with matching /lib/modules/<version>/modules.dep (install linux-image-amd64)');
  }
  usable.sort((a, b) => compareVersions(a.version, b.version));
  return usable[usable.length - 1];
}

function compareVersions(a, b) {
  const pa = a.split(/[.-]/), pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '', y = pb[i] ?? '';
    const nx = Number(x), ny = Number(y);
    const c = Number.isFinite(nx) && Number.isFinite(ny) ? nx - ny : x.localeCompare(y);
    if (c !== 0) return c;
  }
  return 0;
}

/** Module name as the kernel and modprobe see it: basename without .ko[.xz|.zst|.gz], '-' → '_'. */
export function moduleName(path) {
  return path.replace(/^.*\//, '').replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

/** @returns {Map<string, { path: string, deps: string[] }>} name → module file (relative) and deps */
export function readModulesDep(modulesDir) {
  const map = new Map();
  for (const line of readFileSync(join(modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    map.set(moduleName(m[1]), { path: m[1], deps: m[2].split(/\s+/).filter(Boolean) });
  }
  return map;
}

/**
 * Load order (dependencies first, each module once) for the given module names. modules.dep lists
 * a module's full dependency closure, ordered so that loading it reversed is valid (what modprobe does).
 * @returns {string[]} relative module paths
 */
export function loadOrder(modulesDir, names) {
  const dep = readModulesDep(modulesDir);
  const builtin = readBuiltin(modulesDir);
  const order = [];
  for (const name of names) {
    if (builtin.has(name)) continue;
    const entry = dep.get(name);
    if (!entry) throw new VmError('NO_MODULE', `module ${name} not in ${modulesDir}/modules.dep `);
    for (const p of [...entry.deps].reverse().concat(entry.path)) if (!order.includes(p)) order.push(p);
  }
  return order;
}

function readBuiltin(modulesDir) {
  const file = join(modulesDir, 'modules.builtin');
  if (!existsSync(file)) return new Set();
  return new Set(readFileSync(file, 'utf8').split('\n').filter(Boolean).map(moduleName));
}
