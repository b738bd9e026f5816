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
  private readonly tasks: ExpiringMap<string, NonNullable<RequestContext['task']>>;
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
    const task = this.tasks.get(taskId, local);
    const boundary = this.boundaries.get(boundaryId, local);
    if (!task || !boundary || this.policies.until <= local) return undefined;
    return { now: local + this.offset, task, boundary, policiesKey: this.policies.key };
  }

  /** Learns from a fresh read: the clock offset, an active task, an existing boundary. */
  remember(context: RequestContext): void {
    const local = this.clock.now();
    this.offset = context.now - local;
    const until = local + this.ttlMs;
    this.policies = { key: context.policiesKey, until };
    if (context.task?.state === 'active') this.tasks.set(context.task.id, context.task, until, local);
    if (context.boundary) this.boundaries.set(context.boundary.id, context.boundary, until, local);
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
