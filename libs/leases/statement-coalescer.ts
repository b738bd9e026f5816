import { TemporarilyUnavailable } from '../errors/index.js';

/** The two statements a coalescer sends: many items in one statement, or one item alone. */
export interface CoalescedStatements<I, O> {
  /** One statement, one transaction for every item; answers each item's own outcome, in order. */
  many(items: readonly I[]): Promise<O[]>;
  /** The single-row statement: a batch of one, and each item of a batch that failed as a whole. */
  one(item: I): Promise<O>;
}

export interface CoalescerOptions {
  /** The most items one statement carries. */
  max: number;
  /** Statements in flight at once; the next batch forms while they run. */
  lanes: number;
}

export const DEFAULT_COALESCING: CoalescerOptions = { max: 64, lanes: 1 };

interface Waiting<I, O> {
  item: I;
  resolve: (outcome: O) => void;
  reject: (error: unknown) => void;
}

/**
 * Concurrent callers share one statement instead of each paying its own round trip (and, for
 * writes, its own transaction and WAL flush): the decision ledger's permits and denials (group
 * commit) and introspection's lease reads (BatchedLeaseReads, one `= ANY($1)` statement). There is
 * no timer: a caller that
 * finds a lane free goes at once, alone; callers that arrive while every lane is busy wait for the
 * first lane to come back and then go together (up to `max`). So a lone request waits for nothing,
 * and under load the batch grows by itself to what arrived during one statement.
 *
 * Each caller gets its own item's outcome only after the statement that carried it committed. A
 * statement that fails as a whole (one row breaks a constraint, a deadlock) must not fail the other
 * callers: each item is written again on its own, and only the guilty one sees the error. A
 * database that is not there fails them all at once (retrying would only knock on it harder).
 *
 * For a read, "committed" is "answered": its outcome is its row as read by a statement sent after
 * it was submitted.
 */
export class StatementCoalescer<I, O> {
  private waiting: Waiting<I, O>[] = [];
  private inFlight = 0;

  /**
   * `apart` names items that must not share a statement: of several waiting items with the same
   * key, one goes in the next statement and the others wait for a later one, in their order.
   */
  constructor(
    private readonly statements: CoalescedStatements<I, O>,
    private readonly options: CoalescerOptions = DEFAULT_COALESCING,
    private readonly apart: (item: I) => string | undefined = () => undefined,
  ) {
    if (!(Number.isInteger(options.max) && options.max >= 1)) throw new RangeError('coalescing: max must be an integer ≥ 1');
    if (!(Number.isInteger(options.lanes) && options.lanes >= 1)) throw new RangeError('coalescing: lanes must be an integer ≥ 1');
  }

  /** Sends `item` in the next statement (at once, alone, when a lane is free); resolves with its own outcome. */
  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      // Synchronously: with a lane free, the statement is sent before this call returns.
      this.drain();
    });
  }

  private drain(): void {
    while (this.inFlight < this.options.lanes && this.waiting.length > 0) {
      const batch = this.nextBatch();
      this.inFlight++;
      void this.send(batch).finally(() => {
        this.inFlight--;
        this.drain();
      });
    }
  }

  private nextBatch(): Waiting<I, O>[] {
    const batch: Waiting<I, O>[] = [];
    const later: Waiting<I, O>[] = [];
    const keys = new Set<string>();
    for (const waiting of this.waiting) {
      const key = this.apart(waiting.item);
      if (batch.length < this.options.max && (key === undefined || !keys.has(key))) {
        batch.push(waiting);
        if (key !== undefined) keys.add(key);
      } else {
        later.push(waiting);
      }
    }
    this.waiting = later;
    return batch;
  }

  private async send(batch: Waiting<I, O>[]): Promise<void> {
    if (batch.length === 1) return settle(batch[0]!, this.statements.one(batch[0]!.item));
    let outcomes: O[];
    try {
      outcomes = await this.statements.many(batch.map((waiting) => waiting.item));
    } catch (error) {
      if (error instanceof TemporarilyUnavailable) {
        for (const waiting of batch) waiting.reject(error);
        return;
      }
      await Promise.all(batch.map((waiting) => settle(waiting, this.statements.one(waiting.item))));
      return;
    }
    batch.forEach((waiting, i) => waiting.resolve(outcomes[i]!));
  }
}

async function settle<I, O>(waiting: Waiting<I, O>, outcome: Promise<O>): Promise<void> {
  try {
    waiting.resolve(await outcome);
  } catch (error) {
    waiting.reject(error);
  }
}
