/**
 * The executor interface shared by libnftables (FFI), the nft CLI and the in-memory fake, and the
 * JSON executor that drives a low-level runner (libnftables context or nft process): apply, dry-run
 * check, list, error location. All calls of one executor are serialised through one queue.
 */
import { NftError, cleanErrorText, codeFromText, type NftErrorCode } from './errors.js';
import type { TableRef } from './json.js';
import { parseListing, toListedSet, toListedTable, type ListedSet, type ListedTable } from './listing.js';
import { locateFailure } from './locate.js';
import type { Transaction } from './transaction.js';
import { checkFamily, checkName } from './validate.js';

/** Options of a listing: terse (no elements). */
export interface ListOptions {
  /** Omit set/map elements from the listing (nft -t), for large tables. */
  terse?: boolean;
}

/** Options of apply: whether to locate a failing command. */
export interface ApplyOptions {
  /** On failure, locate the failing command by dry-run bisection (default true; costs extra runs). */
  locate?: boolean;
}

/**
 * What runs transactions and listings, whichever executor it is: libnftables (`openLibnftables`), the nft CLI
 * (`openNftCli`) or the in-memory fake (`openFake`).
 */
export interface NftExecutor {
  /** "libnftables", "nft-cli" or "fake". */
  readonly name: string;
  /** Apply the transaction atomically; throws NftError naming the failing command. */
  apply(tx: Transaction, opts?: ApplyOptions): Promise<void>;
  /** Dry run (nft -c): the kernel checks the whole batch and commits nothing. */
  check(tx: Transaction): Promise<void>;
  /** List one table (never the whole ruleset). */
  list(table: TableRef, opts?: ListOptions): Promise<ListedTable>;
  /** List one set's or map's elements. `kind` saves a lookup when known. */
  listSet(table: TableRef, name: string, kind?: 'set' | 'map'): Promise<ListedSet>;
  /** Release the executor (frees the libnftables context: do it before deleting its namespace). */
  close(): Promise<void>;
}

/** Options of one runner call: dry run (`nft -c`), terse. */
export interface RunOptions {
  dryRun?: boolean;
  terse?: boolean;
}

/** What a runner call gave: success, output, error text, and whether the executor itself failed. */
export interface RunResult {
  ok: boolean;
  /** Standard output (listings). */
  output: string;
  /** Error text. */
  error: string;
  /** The executor itself failed (binary missing, context closed), not the commands. */
  executorFailed?: boolean;
}

/** Runs one libnftables input document (JSON). Not required to be re-entrant: JsonExecutor serialises. */
export interface NftRunner {
  readonly name: string;
  run(input: string, opts: RunOptions): Promise<RunResult>;
  close(): Promise<void>;
}

/** Options of a JsonExecutor: whether to locate failing commands (default true). */
export interface JsonExecutorOptions {
  /** Locate the failing command by dry-run bisection (default true). */
  locate?: boolean;
}

/**
 * An NftExecutor over a runner (a libnftables context or nft processes): renders transactions to one JSON
 * document, serialises calls, turns failures into NftError with the failing command located.
 */
export class JsonExecutor implements NftExecutor {
  readonly name: string;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly locate: boolean;

  constructor(private readonly runner: NftRunner, opts: JsonExecutorOptions = {}) {
    this.name = runner.name;
    this.locate = opts.locate ?? true;
  }

  /** Run `fn` after every earlier call of this executor has settled. */
  private serial<T>(fn: () => Promise<T>, whenClosed: 'throw' | 'run' = 'throw'): Promise<T> {
    const p = this.queue.then(() => {
      if (this.closed && whenClosed === 'throw') {
        throw new NftError({ code: 'E_NFT_EXECUTOR', stderr: 'executor is closed', executor: this.name, operation: 'call' });
      }
      return fn();
    });
    this.queue = p.catch(() => undefined);
    return p;
  }

  private fail(operation: string, error: string, extra: { index?: number; command?: unknown; code?: NftErrorCode } = {}): NftError {
    const stderr = cleanErrorText(error);
    const d: ConstructorParameters<typeof NftError>[0] = {
      code: extra.code ?? codeFromText(error), stderr, executor: this.name, operation,
    };
    if (extra.index !== undefined) { d.index = extra.index; d.command = extra.command; }
    return new NftError(d);
  }

  private async applyOrCheck(tx: Transaction, dryRun: boolean, locate = this.locate): Promise<void> {
    if (tx.length === 0) return;
    const operation = dryRun ? 'check' : 'apply';
    const r = await this.runner.run(tx.render(), { dryRun });
    if (r.ok) return;
    if (r.executorFailed) throw this.fail(operation, r.error, { code: 'E_NFT_EXECUTOR' });
    const where = locate
      ? await locateFailure(tx, r.error, async (from, to) => (await this.runner.run(tx.render(from, to), { dryRun: true })))
      : undefined;
    if (!where) throw this.fail(operation, r.error);
    // the located command's own error text when the batch's text is generic
    throw this.fail(operation, r.error || where.error, { index: where.index, command: tx.operations[where.index].command });
  }

  apply(tx: Transaction, opts: ApplyOptions = {}): Promise<void> {
    return this.serial(() => this.applyOrCheck(tx, false, opts.locate ?? this.locate));
  }

  check(tx: Transaction): Promise<void> {
    return this.serial(() => this.applyOrCheck(tx, true));
  }

  list(table: TableRef, opts: ListOptions = {}): Promise<ListedTable> {
    const ref = { family: checkFamily(table.family), name: checkName('table name', table.name) };
    const operation = `list table ${ref.family} ${ref.name}`;
    return this.serial(async () => {
      const doc = JSON.stringify({ nftables: [{ list: { table: ref } }] });
      const r = await this.runner.run(doc, { terse: Boolean(opts.terse) });
      if (!r.ok) throw this.fail(operation, r.error, r.executorFailed ? { code: 'E_NFT_EXECUTOR' } : {});
      return toListedTable(parseListing(r.output, this.name, operation), ref, this.name);
    });
  }

  listSet(table: TableRef, name: string, kind?: 'set' | 'map'): Promise<ListedSet> {
    const ref = { family: checkFamily(table.family), table: checkName('table name', table.name), name: checkName('set name', name) };
    return this.serial(async () => {
      let lastError = '';
      // `list set` does not find maps and vice versa: try the hinted kind, else set then map
      for (const k of kind ? [kind] : (['set', 'map'] as const)) {
        const operation = `list ${k} ${ref.family} ${ref.table} ${ref.name}`;
        const r = await this.runner.run(JSON.stringify({ nftables: [{ list: { [k]: ref } }] }), {});
        if (r.ok) return toListedSet(parseListing(r.output, this.name, operation), name, this.name, operation);
        lastError = r.error;
        if (r.executorFailed) throw this.fail(operation, r.error, { code: 'E_NFT_EXECUTOR' });
        if (codeFromText(r.error) !== 'ENOENT') throw this.fail(operation, r.error);
      }
      throw this.fail(`list ${kind ?? 'set/map'} ${ref.family} ${ref.table} ${ref.name}`, lastError);
    });
  }

  /** Release the runner after the calls already queued; idempotent. */
  close(): Promise<void> {
    return this.serial(async () => {
      if (this.closed) return;
      this.closed = true;
      await this.runner.close();
    }, 'run');
  }
}
