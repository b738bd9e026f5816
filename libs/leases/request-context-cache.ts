import type { Clock } from '../clock/index.js';
import { ExpiringMap } from '../clock/index.js';
import type { RequestContext } from './request-context.js';

/**
 * Active tasks, current boundaries and the global policies' key, remembered for a second, so a credential request can go
 * straight to the one committing statement. Nothing here is trusted to permit: the permit statement
 * re-checks the task (still active, same intent, not past its time), its workload (enabled) and the
 * boundary version (still current and enabled), and a cached decision that fails there, or that
 * would deny, is decided again from fresh rows. Changes made through this replica are forgotten at
 * once. The database clock is estimated from the last fresh read.
 */
export class RequestContextCache {
  private readonly tasks: ExpiringMap<string, RememberedTask>;
  private readonly boundaries: ExpiringMap<string, NonNullable<RequestContext['boundary']>>;
  /** Database clock minus local clock, in milliseconds, as of the last fresh read. */
  private offset = 0;
  /** The global policies' key as of the last fresh read, and until when it may be used. */
  private policies = { key: '', until: -Infinity };

  constructor(
    private readonly clock: Clock,
    private readonly ttlMs = 1000,
    maxEntries = 50_000,
  ) {
    this.tasks = new ExpiringMap(maxEntries);
    this.boundaries = new ExpiringMap(maxEntries);
  }

  get(taskId: string, boundaryId: string): RequestContext | undefined {
    const local = this.clock.now();
    const remembered = this.tasks.get(taskId, local);
    const boundary = this.boundaries.get(boundaryId, local);
    if (!remembered || !boundary || this.policies.until <= local) return undefined;
    // A task read under a boundary that did not count its denials (0) is no answer for one whose
    // policies or approval rule read them: that request reads them fresh.
    if (!remembered.denialsCounted && denialsRead(boundary, this.policies.key)) return undefined;
    return { now: local + this.offset, task: remembered.task, boundary, policiesKey: this.policies.key };
  }

  /** Learns from a fresh read: the clock offset, an active task, an existing boundary. */
  remember(context: RequestContext): void {
    const local = this.clock.now();
    this.offset = context.now - local;
    const until = local + this.ttlMs;
    this.policies = { key: context.policiesKey, until };
    if (context.task?.state === 'active') {
      const denialsCounted = context.boundary !== undefined && denialsRead(context.boundary, context.policiesKey);
      this.tasks.set(context.task.id, { task: context.task, denialsCounted, until }, until, local);
    }
    if (context.boundary) this.boundaries.set(context.boundary.id, context.boundary, until, local);
  }

  /**
   * This replica wrote a deny decision of the task: its denial count is one more, and nothing else
   * the cache holds of it changed (a denial that ended the task is forgotten through forgetTask).
   * A counted entry is kept, one higher: exactly what a fresh read would answer, so the next
   * request on the task needs no read (a refusal used to cost its task's next request a second
   * statement). An entry that did not count its denials stays as it is: it is never used where
   * they are read (see get).
   */
  denied(id: string): void {
    const local = this.clock.now();
    const remembered = this.tasks.get(id, local);
    if (!remembered?.denialsCounted) return;
    // A new entry, not a change to the old one: a request already deciding on it keeps what it read.
    const task = { ...remembered.task, denials: remembered.task.denials + 1 };
    this.tasks.set(id, { ...remembered, task }, remembered.until, local);
  }

  forgetTask(id: string): void {
    this.tasks.delete(id);
  }

  forgetBoundary(id: string): void {
    this.boundaries.delete(id);
  }

  /** A global policy changed on this replica: the next request reads the new key. */
  forgetPolicies(): void {
    this.policies = { key: '', until: -Infinity };
  }
}

interface RememberedTask {
  task: NonNullable<RequestContext['task']>;
  /** Whether `task.denials` was counted by the read (else it is 0: see RequestContextReader). */
  denialsCounted: boolean;
  /** Until when the entry may be used: a change to it keeps the read's time. */
  until: number;
}

/**
 * Whether a request under this boundary may read the task's denial count (Cedar's
 * `context.task.denials`): the boundary has a policy or an approval rule, or global policies are
 * enabled. The same condition as the context read's, which counts them only then.
 */
function denialsRead(boundary: NonNullable<RequestContext['boundary']>, policiesKey: string): boolean {
  return boundary.policy != null || policiesKey !== '' || boundary.approval != null;
}
