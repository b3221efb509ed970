/**
 * A table change known element by element (a static NAT added: one element in each of two maps), applied and
 * fingerprinted at the cost of the change, not of the table: the contents after it are the contents before it
 * with those elements changed (their fingerprint from the per-set element digests, table-sync.ts), and the
 * transaction is table-sync's stamped in-place change with only those element commands in it. The stamp guard
 * is the same as syncTable's: the transaction starts by deleting the stamp of the contents assumed and the
 * namespace's generation read just now, so if the kernel holds anything else or anything committed nftables
 * there since our last commit, nothing is applied and the caller takes the full way (syncTable, which replaces).
 */
import { elements, type ElementItem, type NftMap, type NftObject, type NftSet } from './objects.js';
import type { TableRef } from './json.js';
import { NftError } from './errors.js';
import { Transaction } from './transaction.js';
import type { NftExecutor } from './executor.js';
import {
  FINGERPRINT_SET, adoptContents, contentsFingerprint, elementHash, stamped, type Contents, type SetState, type SyncResult,
} from './table-sync.js';

/** One set's change: elements that go (deleted by key), elements that come, and the set object after it. */
export interface ElementChange {
  /** The set or map after the change (its definition unchanged; `elements` the items after). */
  obj: NftSet | NftMap;
  del: ElementItem[];
  add: ElementItem[];
}

/**
 * `from` with the sets' elements changed, as the contents of `objs` (registered, so that tableContents(objs)
 * returns them without indexing). Undefined when a change does not fit (an unknown set, another definition, a
 * count that does not add up): the caller indexes the table instead.
 */
export function contentsWithElements(from: Contents, objs: readonly NftObject[], changes: readonly ElementChange[]): Contents | undefined {
  const sets = new Map(from.sets);
  for (const ch of changes) {
    const old = sets.get(ch.obj.name);
    const items = ch.obj.elements ?? [];
    if (!old || old.obj.kind !== ch.obj.kind || old.count - ch.del.length + ch.add.length !== items.length) return undefined;
    let sum = old.sum;
    for (const it of ch.del) sum = (sum - elementHash(it)) >>> 0;
    for (const it of ch.add) sum = (sum + elementHash(it)) >>> 0;
    const next: SetState = { obj: ch.obj, def: old.def, items, count: items.length, sum };
    sets.set(ch.obj.name, next);
  }
  const c: Contents = { ...from, sets, fingerprint: contentsFingerprint(from.structure, sets) };
  adoptContents(objs, c);
  return c;
}

/** Deletions before additions (a changed value: its key deleted, then the new element added), per table. */
function elementCommands(tableRef: TableRef, changes: readonly ElementChange[]): Transaction {
  const tx = new Transaction(tableRef);
  for (const ch of changes) if (ch.del.length) tx.delete(elements(ch.obj.name, ch.del.map((e) => ({ key: e.key }))));
  for (const ch of changes) if (ch.add.length) tx.add(elements(ch.obj.name, ch.add));
  return tx;
}

/**
 * Apply element changes to `tableRef` (and to companion tables, same transaction) guarded by the stamp
 * `fromFp . generation()` and leaving `toFp . generation+1` (see table-sync.ts). Undefined when the guard (or
 * the kernel) refused: nothing was applied.
 */
export async function applyElementChanges(
  ex: NftExecutor, tableRef: TableRef, fromFp: number, toFp: number, generation: () => number,
  parts: ReadonlyArray<{ table: TableRef; changes: readonly ElementChange[] }>,
): Promise<SyncResult | undefined> {
  const gen = generation();
  const next = (gen + 1) >>> 0;
  const tx = stamped(tableRef, FINGERPRINT_SET, fromFp, gen, toFp, next, (t) => {
    for (const p of parts) t.append(elementCommands(p.table, p.changes));
  });
  try {
    await ex.apply(tx, { locate: false });
  } catch (err) {
    if (err instanceof NftError) return undefined;
    throw err;
  }
  return { mode: tx.length > 2 ? 'diff' : 'unchanged', fingerprint: toFp, generation: next, operations: tx.length };
}
