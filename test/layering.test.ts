// The layering of lib/ and cli/ (README "Layout", docs/layout.md): every import, static, dynamic or type-only,
// goes to the same layer or a lower one. Pure: reads the sources, no kernel, no sandbox needed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Lowest first. A layer may import its own and lower layers only. */
export const LAYERS = ['lib/util', 'lib/sys', 'lib/netlink', 'lib/netns', 'lib/nft', 'lib/services', 'lib/router', 'lib/proxy', 'cli'] as const;

function layerOf(file: string): number {
  const rel = relative(root, file).split('\\').join('/');
  return LAYERS.findIndex((l) => rel === l || rel.startsWith(`${l}/`));
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (/\.(c|m)?ts$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Module specifiers of `text`, in order: `import … from`, `export … from`, `import '…'`, `import('…')`. */
export function importsOf(text: string): string[] {
  // comment lines are not code (a doc comment may mention import('…'))
  const code = text.split('\n').filter((l) => !/^\s*(\/\/|\/?\*)/.test(l)).join('\n');
  const out: Array<[number, string]> = [];
  const add = (re: RegExp) => { for (const m of code.matchAll(re)) out.push([m.index ?? 0, m[2]]); };
  add(/^[ \t]*(?:import|export)\s[^'"]*?\bfrom\s*(['"])([^'"]+)\1/gm); // static, type-only and re-exports
  add(/^[ \t]*import\s*(['"])([^'"]+)\1/gm); // side effects only
  add(/\bimport\(\s*(['"])([^'"]+)\1\s*\)/g); // dynamic
  return out.sort((a, b) => a[0] - b[0]).map((x) => x[1]);
}

/** The edges from a lower layer to a higher one, as "from → to" lines. */
export function violations(files: Array<{ file: string; text: string }>): string[] {
  const bad: string[] = [];
  for (const { file, text } of files) {
    const from = layerOf(file);
    for (const spec of importsOf(text)) {
      if (!spec.startsWith('.')) continue; // node:, packages
      const target = resolve(dirname(file), spec);
      const to = layerOf(target);
      const where = `${relative(root, file)} → ${relative(root, target)}`;
      if (to < 0) bad.push(`${where} (outside lib/ and cli/)`);
      else if (to > from) bad.push(`${where} (${LAYERS[from]} imports ${LAYERS[to]})`);
    }
  }
  return bad;
}

const all = [...sources(join(root, 'lib')), ...sources(join(root, 'cli'))].map((file) => ({ file, text: readFileSync(file, 'utf8') }));

test('every file of lib/ and cli/ belongs to a layer', () => {
  const orphans = all.filter((f) => layerOf(f.file) < 0).map((f) => relative(root, f.file));
  assert.equal(orphans, []);
});

test('no import runs from a lower layer to a higher one', () => {
  assert.equal(violations(all), []);
});

test('control: the scan sees imports of every form, and an upward one is reported', () => {
  const text = [
    "import { a } from '../router/engine.js';",
    "import type { B } from '../router/model.js';",
    "export { c } from '../proxy/run.js';",
    "const d = await import('../../cli/run.js');",
    "import '../services/dnsmasq/index.js';",
    "// import { x } from '../router/commented.js';",
    "/* import { y } from '../router/blocked.js'; */",
    "import { z } from 'node:fs';",
  ].join('\n');
  assert.equal(importsOf(text), ['../router/engine.js', '../router/model.js', '../proxy/run.js', '../../cli/run.js', '../services/dnsmasq/index.js', 'node:fs']);
  const bad = violations([{ file: join(root, 'lib/netlink/fabricated.ts'), text }]);
  assert.is(bad.length, 5, bad.join('\n'));
  // and the real tree is scanned: the engine's imports of lower layers are seen
  const engine = all.find((f) => f.file.endsWith(join('lib', 'router', 'engine.ts')));
  assert.ok(engine && importsOf(engine.text).some((s) => s.includes('/nft/')), 'engine.ts imports lib/nft');
  assert.ok(all.length > 150, `${all.length} source files`);
});

test.run();
