import type { Clock } from '../clock/clock.js';
import { ExpiringMap } from '../clock/expiring-map.js';
import type { Workload } from './workload.js';
import type { WorkloadLookup } from './workload-authenticator.js';

/**
 * Workload rows, remembered for a second. Authentication reads the workload on every request; the
 * cache saves that round trip. Changes made through this replica are forgotten at once; changes made
 * on another replica reach this one within `ttlMs`. That bound is safe because nothing that issues a
 * credential trusts it alone: the permit statement and task opening re-check the workload row.
 */
export class CachedWorkloads implements WorkloadLookup {
  /** `null` remembers that the workload does not exist. */
  private readonly entries: ExpiringMap<string, Workload | null>;

  constructor(
    private readonly source: WorkloadLookup,
    private readonly clock: Clock,
    private readonly ttlMs = 1000,
    maxEntries = 10_000,
  ) {
    this.entries = new ExpiringMap(maxEntries);
  }

  async find(id: string): Promise<Workload | undefined> {
    const now = this.clock.now();
    const hit = this.entries.get(id, now);
    if (hit !== undefined) return hit ?? undefined;
    const workload = await this.source.find(id);
    this.entries.set(id, workload ?? null, now + this.ttlMs, now);
    return workload;
  }

  forget(id: string): void {
    this.entries.delete(id);
  }
}
