/**
 * A bounded map whose entries stop counting at a given time: what the hot path's caches (verified
 * assertions and tokens, workload rows, tasks, boundaries) all need. When full it evicts the least
 * recently used entry (after any expired ones among the oldest few), one at a time: a flood of new
 * keys never drops the whole working set at once, as clearing everything did (50k verified tokens
 * going cold together). A JS Map keeps insertion order, so a read re-inserts its entry at the end
 * and the first entry is always the least recently used.
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
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  set(key: K, value: V, until: number, now: number): void {
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) this.evict(now);
    this.entries.set(key, { value, until });
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Makes room for one: the expired among the oldest few, else the least recently used. */
  private evict(now: number): void {
    let looked = 0;
    let freed = false;
    for (const [key, entry] of this.entries) {
      if (looked++ >= EVICTION_SCAN) break;
      if (entry.until <= now) {
        this.entries.delete(key);
        freed = true;
      }
    }
    if (!freed) this.entries.delete(this.entries.keys().next().value as K);
  }
}

/** How many of the oldest entries a full map looks at for expired ones: constant work per set. */
const EVICTION_SCAN = 8;
