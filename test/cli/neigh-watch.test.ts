/**
 * serve's neighbour-table watch (cli/neigh-watch.ts) on injected counters, and the /proc/net/stat parser on the
 * kernel's own format and on this machine's tables (lib/sys/neigh-stats.ts). No table is filled here: that
 * would starve every other test's first packets (docs/metadata.md "Neighbour table").
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NeighbourWatch } from '../../cli/neigh-watch.js';
import { neighbourLimit, neighbourOverflows, statColumn } from '../../lib/sys/neigh-stats.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ARP = `entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls
00000007  0000003a 00000033 00000000 00000000 00000000 00000000 00000000 00000000 0000016b 00000000 00000000 00000005
00000007  00000010 00000012 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 0000000b
`;

test('statColumn: the column summed over CPUs (hex); a missing column or a bad value is undefined', () => {
  assert.is(statColumn(ARP, 'table_fulls'), 0x5 + 0xb);
  assert.is(statColumn(ARP, 'allocs'), 0x3a + 0x10);
  assert.is(statColumn(ARP, 'no_such'), undefined);
  assert.is(statColumn(ARP.replace('0000000b\n', 'zz\n'), 'table_fulls'), undefined);
  assert.is(statColumn('', 'table_fulls'), undefined);
});

test('this machine: the counters and the limit read (numbers), a missing /proc root is undefined', () => {
  const n = neighbourOverflows();
  assert.ok(typeof n === 'number' && n >= 0, String(n));
  // the limit is listed in the initial namespace only (serve's), not in this sandbox's (which may not enter it)
  assert.is(neighbourLimit(), undefined, 'not listed in another namespace');
  const root = mkdtempSync(join(tmpdir(), 'nr-neigh-'));
  try {
    mkdirSync(join(root, 'sys/net/ipv4/neigh/default'), { recursive: true });
    writeFileSync(join(root, 'sys/net/ipv4/neigh/default/gc_thresh3'), '1024\n');
    assert.is(neighbourLimit(root), 1024, 'as the initial namespace lists it');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  assert.is(neighbourOverflows('/nonexistent'), undefined);
  assert.is(neighbourLimit('/nonexistent'), undefined);
});

test('watch: silent while the count stands; says the overflows once, then not again within the quiet time; counts what it held back', () => {
  let count = 40;
  const w = new NeighbourWatch(0, () => count, () => 1024, 600_000);
  assert.is(w.check(10_000), undefined, 'no overflow since start: nothing to say');
  count = 43;
  const first = w.check(20_000);
  assert.ok(first?.includes('no room 3 time(s)') && first.includes('gc_thresh3 = 1024') && first.includes('gc_thresh1/2/3'), first);
  count = 50;
  assert.is(w.check(30_000), undefined, 'within the quiet time: held back');
  const again = w.check(620_000);
  assert.ok(again?.includes('no room 7 time(s)'), again);
  assert.is(w.check(630_000), undefined, 'nothing new');
});

test('watch: what was held back is said after the quiet time, with the minutes it covers; an unreadable counter says nothing', () => {
  let count: number | undefined = 0;
  const w = new NeighbourWatch(0, () => count, () => undefined, 600_000);
  count = 2;
  assert.ok(w.check(60_000)?.includes('no room 2 time(s) in the last 1 min'));
  count = 9;
  assert.is(w.check(120_000), undefined);
  const later = w.check(660_000);
  assert.ok(later?.includes('no room 7 time(s) in the last 10 min') && !later.includes('gc_thresh3 ='), later);
  count = undefined;
  assert.is(w.check(2_000_000), undefined, 'unreadable: nothing');
  count = 20;
  assert.is(w.check(2_100_000), undefined, 'readable again: a new start, not the difference across the gap');
});

test.run();
