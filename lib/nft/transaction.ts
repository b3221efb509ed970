/**
 * A Transaction is an ordered list of (verb, object) applied as ONE kernel transaction: either every
 * command takes effect or none does. Objects are validated and rendered when added, so mistakes throw
 * at the call site. The whole transaction renders to one libnftables JSON document.
 */
import { checkFamily, checkName } from './validate.js';
import { JSON_SCHEMA_VERSION, type JsonCommand, type NftDocument, type TableRef, type Verb } from './json.js';
import { elements, renderCommand, table, type ElementItem, type NftObject } from './objects.js';
import type { ValueInput } from './values.js';

/** One operation of a transaction: its verb, its object and the rendered libnftables command. */
export interface TxOperation {
  verb: Verb;
  object: NftObject;
  /** The rendered libnftables command. */
  command: JsonCommand;
}

/**
 * An ordered list of (verb, object) applied as ONE kernel transaction: all or nothing. Objects are validated
 * and rendered when added (`add`, `create`, `insert`, `replace`, `flush`, `delete`), so a mistake throws at the call site.
 */
export class Transaction {
  /** The table objects belong to unless they name another. */
  readonly table: TableRef;
  private readonly ops: TxOperation[] = [];

  constructor(tableRef: TableRef) {
    this.table = { family: checkFamily(tableRef.family), name: checkName('table name', tableRef.name) };
  }

  private push(verb: Verb, objs: NftObject[]): this {
    for (const object of objs) this.ops.push({ verb, object, command: renderCommand(verb, object, this.table) });
    return this;
  }

  /** `add`: create if missing, no error if it exists (rules: append). */
  add(...objs: NftObject[]): this { return this.push('add', objs); }
  /** `create`: like add, but fails with EEXIST if the object exists. */
  create(...objs: NftObject[]): this { return this.push('create', objs); }
  /** `insert` a rule (prepend, or before the rule given by handle/index). */
  insert(...objs: NftObject[]): this { return this.push('insert', objs); }
  /** `replace` a rule by handle. */
  replace(...objs: NftObject[]): this { return this.push('replace', objs); }
  /** `flush` a table (all rules), chain (its rules), set or map (its elements). */
  flush(...objs: NftObject[]): this { return this.push('flush', objs); }
  /** `delete` an object (rules by handle; elements by key). Fails with ENOENT if missing. */
  delete(...objs: NftObject[]): this { return this.push('delete', objs); }

  /** Append all operations of another transaction (rendered against its own default table). */
  append(other: Transaction): this {
    this.ops.push(...other.ops);
    return this;
  }

  get length(): number {
    return this.ops.length;
  }

  get operations(): readonly TxOperation[] {
    return this.ops;
  }

  /** Rendered commands in [from, to). */
  commands(from = 0, to = this.ops.length): JsonCommand[] {
    return this.ops.slice(from, to).map((o) => o.command);
  }

  /** The libnftables JSON document of commands [from, to). */
  toDocument(from = 0, to = this.ops.length): NftDocument {
    return { nftables: [{ metainfo: { json_schema_version: JSON_SCHEMA_VERSION } }, ...this.commands(from, to)] };
  }

  /** The document as JSON text (what executors send). */
  render(from = 0, to = this.ops.length): string {
    return JSON.stringify(this.toDocument(from, to));
  }
}

/**
 * Whole-table replacement in one transaction: `add table` (so the delete cannot fail when the table
 * does not exist yet), `delete table`, `add table`, then every object. Applying it twice gives the
 * same ruleset; there is never a moment without the table.
 */
export function replaceTable(tableRef: TableRef, contents: NftObject[], opts: { comment?: string } = {}): Transaction {
  const tx = new Transaction(tableRef);
  tx.add(table()).delete(table()).add(table(opts.comment !== undefined ? { comment: opts.comment } : {}));
  tx.add(...contents);
  return tx;
}

/**
 * Element-level update of one set or map: deletions first, then additions, in one transaction. To
 * re-point a map entry, list its key in both (a plain add of an existing key with another value
 * fails with EEXIST).
 */
export function updateElements(
  tableRef: TableRef,
  setName: string,
  change: { add?: ElementItem[]; delete?: ValueInput[] },
): Transaction {
  const tx = new Transaction(tableRef);
  if (change.delete?.length) tx.delete(elements(setName, change.delete.map((key) => ({ key }))));
  if (change.add?.length) tx.add(elements(setName, change.add));
  return tx;
}
