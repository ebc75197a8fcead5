/**
 * A small least-recently-used map for the decision cache: bounded, so a stream of strangers cannot
 * grow the thing's memory or its state file.
 * References: XEP-0324 §3.1 (cache decisions; evict by least recent use).
 */
export class LruMap<V> {
  private readonly map = new Map<string, V>();

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError("an LRU map needs a capacity of at least 1");
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    const value = this.map.get(key);
    if (value === undefined) return undefined;
    // Map keeps insertion order: re-inserting makes this the most recently used entry.
    this.map.delete(key);
    this.map.set(key, value);
    return value;
  }

  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
  }

  delete(key: string): boolean {
    return this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  /** Least recently used first (the order `load` restores). */
  entries(): [string, V][] {
    return [...this.map];
  }

  load(entries: Iterable<readonly [string, V]>): void {
    for (const [key, value] of entries) this.set(key, value);
  }
}
