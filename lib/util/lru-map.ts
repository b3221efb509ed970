/**
 * A map that keeps at most `max` entries, dropping the least recently used one (`get` and `set` count as
 * use). `onEvict` sees what the bound drops — e.g. to close a descriptor — but not what `delete` removes.
 */
export class LruMap<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(readonly max: number, private readonly onEvict?: (value: V, key: K) => void) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: K): V | undefined {
    const v = this.entries.get(key);
    if (v !== undefined) {
      this.entries.delete(key); // most recently used last
      this.entries.set(key, v);
    }
    return v;
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    while (this.entries.size > this.max) {
      const [k, v] = this.entries.entries().next().value as [K, V];
      this.entries.delete(k);
      this.onEvict?.(v, k);
    }
  }

  /** Every key, least recently used first. */
  keys(): K[] {
    return [...this.entries.keys()];
  }

  /** Removes the entry (onEvict is not called); returns its value. */
  delete(key: K): V | undefined {
    const v = this.entries.get(key);
    this.entries.delete(key);
    return v;
  }
}
