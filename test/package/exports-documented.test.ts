// Every symbol the package exports (each entry point of package.json "exports") has a doc comment (TSDoc), read
// by the TypeScript compiler from the sources. Pure: no kernel, no sandbox.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, string | { default: string }> };

/** Entry point → its source: "./dist/lib/nft/index.js" → lib/nft/index.ts. */
const entries: Array<[string, string]> = Object.entries(pkg.exports)
  .filter(([, target]) => typeof target === 'object')
  .map(([name, target]) => [name, join(root, (target as { default: string }).default.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts'))]);

/** Exported names of `file` without a doc comment, as "name (file)". */
function undocumented(program: ts.Program, file: string): string[] {
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file);
  assert.ok(source, `${file} is compiled`);
  const missing: string[] = [];
  for (const sym of checker.getExportsOfModule(checker.getSymbolAtLocation(source!)!)) {
    const decl = sym.declarations?.[0];
    // `/** … */ export * as libc from './libc.js'`: the comment is on the export statement
    if (decl && ts.isNamespaceExport(decl) && ts.getJSDocCommentsAndTags(decl.parent).length > 0) continue;
    const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
    if (ts.displayPartsToString(target.getDocumentationComment(checker)).trim() === '') {
      missing.push(`${sym.name} (${target.declarations?.[0]?.getSourceFile().fileName.slice(root.length + 1) ?? '?'})`);
    }
  }
  return missing;
}

test('package.json exports the root and router, netlink, netns, nft, sys', () => {
  assert.equal(entries.map(([name]) => name).sort(), ['.', './netlink', './netns', './nft', './router', './sys']);
});

test('every export of every entry point has a doc comment', () => {
  const program = ts.createProgram(entries.map(([, file]) => file), {
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022,
    strict: true, types: ['node'], typeRoots: [join(root, 'node_modules', '@types')], noEmit: true,
  });
  let total = 0;
  for (const [name, file] of entries) {
    const count = program.getTypeChecker().getExportsOfModule(program.getTypeChecker().getSymbolAtLocation(program.getSourceFile(file)!)!).length;
    assert.ok(count > 0, `${name} exports something`);
    total += count;
    assert.equal(undocumented(program, file), [], `undocumented exports of netns-router${name.slice(1)}`);
  }
  assert.ok(total > 500, `the check saw the exports (${total})`);
});

test('control: an export without a doc comment is reported', () => {
  const file = join(root, 'lib', 'x-control.ts');
  const text = '/** Documented. */\nexport const a = 1;\nexport const b = 2;\n';
  const host = ts.createCompilerHost({});
  const read = host.readFile;
  host.readFile = (f) => (f === file ? text : read(f));
  const exists = host.fileExists;
  host.fileExists = (f) => f === file || exists(f);
  const program = ts.createProgram([file], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, noEmit: true }, host);
  assert.equal(undocumented(program, file), ['b (lib/x-control.ts)']);
});

test.run();
