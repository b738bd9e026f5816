import type { Clock } from '../clock/clock.js';
import type { RequestContext } from './lease-store.js';

/**
 * Active tasks and current boundaries, remembered for a second, so a credential request can go
 * straight to the one committing statement. Nothing here is trusted to permit: the permit statement
 * re-checks the task (still active, same intent, not past its time), its workload (enabled) and the
 * boundary version (still current and enabled), and a cached decision that fails there, or that
 * would deny, is decided again from fresh rows. Changes made through this replica are forgotten at
 * once. The database clock is estimated from the last fresh read.
 */
export class RequestContextCache {
  private readonly tasks = new Map<string, { task: NonNullable<RequestContext['task']>; until: number }>();
  private readonly boundaries = new Map<string, { boundary: NonNullable<RequestContext['boundary']>; until: number }>();
  /** Database clock minus local clock, in milliseconds, as of the last fresh read. */
  private offset = 0;

  constructor(
    private readonly clock: Clock,
    private readonly ttlMs = 1000,
    private readonly maxEntries = 50_000,
  ) {}

  get(taskId: string, boundaryId: string): RequestContext | undefined {
    const local = this.clock.now();
    const task = this.tasks.get(taskId);
    const boundary = this.boundaries.get(boundaryId);
    if (!task || !boundary || task.until <= local || boundary.until <= local) return undefined;
    return { now: local + this.offset, task: task.task, boundary: boundary.boundary };
  }

  /** Learns from a fresh read: the clock offset, an active task, an existing boundary. */
  remember(context: RequestContext): void {
    const local = this.clock.now();
    this.offset = context.now - local;
    const until = local + this.ttlMs;
    if (context.task?.state === 'active') bounded(this.tasks, this.maxEntries).set(context.task.id, { task: context.task, until });
    if (context.boundary) bounded(this.boundaries, this.maxEntries).set(context.boundary.id, { boundary: context.boundary, until });
  }

  forgetTask(id: string): void {
    this.tasks.delete(id);
  }

  forgetBoundary(id: string): void {
    this.boundaries.delete(id);
  }
}

function bounded<K, V>(map: Map<K, V>, max: number): Map<K, V> {
  if (map.size >= max) map.clear();
  return map;
}
