import type { Clock } from '../clock/index.js';
import { ExpiringMap } from '../clock/index.js';
import type { BoundWorkloadLookup, Workload, WorkloadLookup } from './workload.js';

/**
 * Workload rows, remembered for a second. Authentication reads the workload on every request; the
 * cache saves that round trip. Changes made through this replica are forgotten at once; changes made
 * on another replica reach this one within `ttlMs`. That bound is safe because nothing that issues a
 * credential trusts it alone: the permit statement and task opening re-check the workload row.
 */
export class CachedWorkloads implements WorkloadLookup, BoundWorkloadLookup {
  /** `null` remembers that the workload does not exist. */
  private readonly entries: ExpiringMap<string, Workload | null>;
  /** (issuer, subject) → workload id, or `null` for "nobody is bound". */
  private readonly bindings: ExpiringMap<string, string | null>;

  constructor(
    private readonly source: WorkloadLookup & BoundWorkloadLookup,
    private readonly clock: Clock,
    private readonly ttlMs = 1000,
    maxEntries = 10_000,
  ) {
    this.entries = new ExpiringMap(maxEntries);
    this.bindings = new ExpiringMap(maxEntries);
  }

  async find(id: string): Promise<Workload | undefined> {
    const now = this.clock.now();
    const hit = this.entries.get(id, now);
    if (hit !== undefined) return hit ?? undefined;
    const workload = await this.source.find(id);
    this.entries.set(id, workload ?? null, now + this.ttlMs, now);
    return workload;
  }

  /**
   * The binding is remembered as a workload id, and the row is then read through `find`, so a kill
   * switch on this replica is seen at once. A binding that moved is caught by re-checking the row.
   */
  async findBound(issuerId: string, subject: string): Promise<Workload | undefined> {
    const now = this.clock.now();
    const key = `${issuerId}\u0000${subject}`;
    const id = this.bindings.get(key, now);
    if (id === null) return undefined;
    if (id !== undefined) {
      const workload = await this.find(id);
      if (workload?.issuerId === issuerId && workload.subject === subject) return workload;
    }
    const workload = await this.source.findBound(issuerId, subject);
    this.bindings.set(key, workload?.id ?? null, now + this.ttlMs, now);
    if (workload) this.entries.set(workload.id, workload, now + this.ttlMs, now);
    return workload;
  }

  forget(id: string): void {
    this.entries.delete(id);
    // A change may have moved a binding; bindings are few and cheap to read again.
    this.bindings.clear();
  }
}
