import type { Clock } from '../clock/clock.js';
import type { Workload } from './workload.js';
import type { WorkloadLookup } from './workload-authenticator.js';

/**
 * Workload rows, remembered for a second. Authentication reads the workload on every request; the
 * cache saves that round trip. Changes made through this replica are forgotten at once; changes made
 * on another replica reach this one within `ttlMs`. That bound is safe because nothing that issues a
 * credential trusts it alone: the permit statement and task opening re-check the workload row.
 */
export class CachedWorkloads implements WorkloadLookup {
  private readonly entries = new Map<string, { workload: Workload | undefined; until: number }>();

  constructor(
    private readonly source: WorkloadLookup,
    private readonly clock: Clock,
    private readonly ttlMs = 1000,
    private readonly maxEntries = 10_000,
  ) {}

  async find(id: string): Promise<Workload | undefined> {
    const now = this.clock.now();
    const hit = this.entries.get(id);
    if (hit && hit.until > now) return hit.workload;
    const workload = await this.source.find(id);
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(id, { workload, until: now + this.ttlMs });
    return workload;
  }

  forget(id: string): void {
    this.entries.delete(id);
  }
}
