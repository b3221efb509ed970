// The orderings that replace localeCompare (no ICU collator in a cold command): stable, total, natural where asked.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compareNatural, compareText } from '../../lib/util/compare.js';

test('compareText: code-unit order, total and antisymmetric', () => {
  const xs = ['10.0.0.9', '10.0.0.10', '02:aa:00:00:00:01', '02:AA:00:00:00:01', 'b', 'a', '', 'a'];
  const sorted = [...xs].sort(compareText);
  assert.equal(sorted, ['', '02:AA:00:00:00:01', '02:aa:00:00:00:01', '10.0.0.10', '10.0.0.9', 'a', 'a', 'b']);
  for (const a of xs) for (const b of xs) assert.is(Math.sign(compareText(a, b)), -Math.sign(compareText(b, a)));
});

test('compareNatural: digit runs as numbers, equal numbers then by their text, the rest as text', () => {
  const xs = ['lb-10', 'lb-9', 'lb-09', '100', '20', '3', 'x', 'lb-9a', 'lb-9b', ''];
  assert.equal([...xs].sort(compareNatural), ['', '3', '20', '100', 'lb-09', 'lb-9', 'lb-9a', 'lb-9b', 'lb-10', 'x']);
  assert.ok(compareNatural('12345678901234567890', '9') > 0, 'beyond 2^53 still by length');
  assert.is(compareNatural('7', '7'), 0);
});

test.run();
