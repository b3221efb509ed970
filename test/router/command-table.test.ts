// The command table (lib/router/command-table.ts): every command and built-in custom action is declared once.
// Pure: no kernel, no sandbox needed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { API_METHOD } from '../../lib/router/contract/router-api.js';
import { BUILTIN_CUSTOM_ACTIONS } from '../../lib/router/contract/build.js';
import { actionTable, commandTable } from '../../lib/router/command-table.js';
import { defaultModules } from '../../lib/router/default-modules.js';
import type { RouterModule } from '../../lib/router/router-module.js';

test('every engine command has exactly one entry in the table of the default modules', () => {
  const table = commandTable(defaultModules());
  assert.equal(Object.keys(table).sort(), Object.keys(API_METHOD).sort());
  for (const [name, entry] of Object.entries(table)) assert.ok(entry.change || entry.run, `${name}: neither change nor run`);
});

test('every built-in custom action has exactly one entry, with a change or a run', () => {
  const actions = actionTable(defaultModules());
  assert.equal(Object.keys(actions).sort(), [...BUILTIN_CUSTOM_ACTIONS].sort());
  for (const [name, a] of Object.entries(actions)) assert.ok(a.change || a.run, `${name}: neither change nor run`);
});

test('a command declared twice (by the core or by two modules) is refused when the table is built', () => {
  const twice: RouterModule = { name: 'twice', commands: { 'assign-ip': { change: () => () => {} } } };
  assert.throws(() => commandTable([twice]), /assign-ip is declared by both core and twice/);
  const a: RouterModule = { name: 'a', commands: { 'apply-lb-rules': { change: () => () => {} } } };
  const b: RouterModule = { name: 'b', commands: { 'apply-lb-rules': { change: () => () => {} } } };
  assert.throws(() => commandTable([a, b]), /apply-lb-rules is declared by both a and b/);
  const act: RouterModule = { name: 'act', actions: { 'dump-config': { run: async () => '' } } };
  assert.throws(() => actionTable([act]), /dump-config is declared by both core and act/);
  // control: distinct declarations merge
  assert.ok(commandTable([a])['apply-lb-rules']);
});

test.run();
