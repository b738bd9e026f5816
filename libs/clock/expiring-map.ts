/**
 * A bounded map whose entries stop counting at a given time: what the hot path's caches (verified
 * assertions and tokens, workload rows, tasks, boundaries) all need. When full, expired entries go
 * first; if it is still full, everything goes (memory stays bounded, the cost is one cold read each).
 */
export class ExpiringMap<K, V> {
  private readonly entries = new Map<K, { value: V; until: number }>();

  constructor(private readonly maxEntries: number) {}

  /** The value, if it was set with an `until` still after `now`. */
  get(key: K, now: number): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.until <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: K, value: V, until: number, now: number): void {
    if (this.entries.size >= this.maxEntries) {
      for (const [k, entry] of this.entries) if (entry.until <= now) this.entries.delete(k);
      if (this.entries.size >= this.maxEntries) this.entries.clear();
    }
    this.entries.set(key, { value, until });
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
