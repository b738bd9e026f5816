import { StatementCoalescer, type CoalescerOptions } from './statement-coalescer.js';
import type { LeaseStore } from './lease-store.js';
import type { Lease } from './lease.js';

/** What introspection reads a lease with: the row as it is now, by id. */
export interface LeaseLookup {
  find(id: string): Promise<Lease | undefined>;
}

/**
 * Batched reads need more room than commits: a read holds no lock and a batch of 128 primary-key
 * probes is still one short statement. One lane, as for commits: see docs/performance.md.
 */
export const DEFAULT_READ_BATCHING: CoalescerOptions = { max: 128, lanes: 1 };

/**
 * Concurrent lease reads (introspection's) joined into one `= ANY($1)` statement, the way
 * StatementCoalescer joins commits: no timer, a read that finds the lane free goes at once alone (the
 * single-row `find`), reads that arrive while a statement is in flight go together in the next.
 * Nothing is remembered between statements: each caller gets the row as the statement that carried
 * its id read it, a statement sent after the caller asked, so a revocation committed before an
 * introspection began is always seen (the lease row still decides, on every replica at once).
 */
export class BatchedLeaseReads implements LeaseLookup {
  private readonly reads: StatementCoalescer<string, Lease | undefined>;

  /** `batching` false: every read is its own statement, in parallel (as before batching). */
  constructor(store: Pick<LeaseStore, 'find' | 'findMany'>, batching: CoalescerOptions | false = DEFAULT_READ_BATCHING) {
    this.reads = new StatementCoalescer<string, Lease | undefined>(
      {
        many: async (ids) => {
          const found = await store.findMany(ids);
          return ids.map((id) => found.get(id));
        },
        one: (id) => store.find(id),
      },
      batching === false ? { max: 1, lanes: Number.MAX_SAFE_INTEGER } : batching,
    );
  }

  find(id: string): Promise<Lease | undefined> {
    return this.reads.submit(id);
  }
}
