/**
 * Work a command started but its reply need not wait for (a destroyed router's links, deleted after its
 * namespace is gone by name): whoever owns the process waits for it before exiting (`settled`). Failures are
 * reported to `onError` (a log line), never to the command, which has already answered.
 */
export class Background {
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly onError: (err: unknown) => void = () => {}) {}

  /** Track `work` until it settles. */
  add(work: Promise<void>): void {
    const p: Promise<void> = work.catch((e: unknown) => this.onError(e)).finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Work still running. */
  get size(): number {
    return this.pending.size;
  }

  /** Resolves once nothing is running (including work added meanwhile). */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }
}
