import type { Clock } from '../clock/index.js';
import type { RateLimit } from '../config/index.js';
import { RateLimited } from '../errors/index.js';
import type { Claimed, RateBucket } from './rate-bucket-store.js';

export type RateBuckets = { claim(workloadId: string, want: number, limit: RateLimit, bucket: RateBucket): Promise<Claimed> };

/** A workload's own limit, when it has one (read through the workload cache authentication just filled). */
export type WorkloadLimits = (workloadId: string) => Promise<RateLimit | undefined>;

/** Which limit refused a request: the workload's own, or the service's default. */
export type LimitSource = 'workload' | 'default';

/** How long a replica may keep tokens it claimed; unused ones are dropped, never given back. */
export const HOLD_MS = 100;
const MAX_BATCH = 64;
const WHAT: Record<RateBucket, string> = { credential: 'credential requests', task_open: 'tasks opened' };

export interface RateLimiterOptions {
  buckets: RateBuckets;
  /** TOLLGATE_RATE_LIMIT; undefined when off. */
  defaultLimit: RateLimit | undefined;
  clock: Clock;
  /** A workload's own limit, when it has one. */
  limitOf?: WorkloadLimits | undefined;
  /** Told about every refusal, for metrics. */
  refused?: ((source: LimitSource) => void) | undefined;
}

/**
 * Per-workload rate limit on credential requests, and on opening tasks (each writes a task row and
 * an audit event): one token bucket per workload and kind of request in PostgreSQL, shared by every
 * replica; both kinds run on the same limit, in buckets of their own. The bucket runs on the workload's own limit when it has one, else on
 * the service's default; with neither there is nothing to take. A replica does not ask the database per request: it claims a batch of
 * tokens (about HOLD_MS worth of the rate) and spends them locally for at most HOLD_MS, then
 * drops what is left. Every token spent was taken from the shared bucket, so replicas together
 * stay within the limit, give or take one hold period's worth (rate × HOLD_MS) at the edges of a
 * window; the extra round trip is paid once per batch, and at low rates (batch of 1) there are too
 * few requests for it to matter.
 */
export class RateLimiter {
  private readonly held = new Map<string, { tokens: number; until: number }>();
  private readonly claims = new Map<string, Promise<number | undefined>>();

  private readonly buckets: RateBuckets;
  private readonly defaultLimit: RateLimit | undefined;
  private readonly clock: Clock;
  private readonly limitOf: WorkloadLimits;
  private readonly refused: (source: LimitSource) => void;

  constructor(options: RateLimiterOptions) {
    this.buckets = options.buckets;
    this.defaultLimit = options.defaultLimit;
    this.clock = options.clock;
    this.limitOf = options.limitOf ?? (async () => undefined);
    this.refused = options.refused ?? (() => {});
  }

  /** Spends one of the workload's tokens of `bucket`, or throws RateLimited with the seconds until the next. */
  async take(workloadId: string, bucket: RateBucket = 'credential'): Promise<void> {
    const own = await this.limitOf(workloadId);
    const limit = own ?? this.defaultLimit;
    if (!limit) return;
    try {
      await this.spendOrClaim(workloadId, bucket, limit);
    } catch (error) {
      if (error instanceof RateLimited) this.refused(own ? 'workload' : 'default');
      throw error;
    }
  }

  private async spendOrClaim(workloadId: string, bucket: RateBucket, limit: RateLimit): Promise<void> {
    // The bucket kind is one of a closed set without ':', so the key is unambiguous.
    const key = `${bucket}:${workloadId}`;
    const what = WHAT[bucket];
    for (let attempt = 0; attempt < 3; attempt++) {
      if (this.spend(key)) return;
      // One claim per workload and bucket in flight on this replica: the others wait for its batch.
      const inFlight = this.claims.get(key);
      if (inFlight) {
        await inFlight.catch(() => undefined);
        continue;
      }
      const claim = this.claim(key, workloadId, bucket, limit);
      this.claims.set(key, claim);
      let retryAfterMs: number | undefined;
      try {
        retryAfterMs = await claim;
      } finally {
        this.claims.delete(key);
      }
      if (retryAfterMs !== undefined) throw new RateLimited(Math.max(1, Math.ceil(retryAfterMs / 1000)), what);
    }
    if (this.spend(key)) return;
    // Waiters spent every token of three batches in a row: the bucket is being drained.
    throw new RateLimited(1, what);
  }

  private spend(key: string): boolean {
    const held = this.held.get(key);
    if (!held) return false;
    if (held.until <= this.clock.now()) {
      this.held.delete(key);
      return false;
    }
    if (held.tokens <= 0) return false;
    held.tokens -= 1;
    return true;
  }

  /**
   * Claims a batch (about HOLD_MS worth of the rate); undefined when tokens were granted, else the
   * time until one will be there.
   */
  private async claim(key: string, workloadId: string, bucket: RateBucket, limit: RateLimit): Promise<number | undefined> {
    const batch = Math.max(1, Math.min(MAX_BATCH, limit.burst, Math.floor((limit.perSecond * HOLD_MS) / 1000)));
    const { granted, tokens } = await this.buckets.claim(workloadId, batch, limit, bucket);
    if (granted === 0) return ((1 - tokens) / limit.perSecond) * 1000;
    this.held.set(key, { tokens: granted, until: this.clock.now() + HOLD_MS });
    return undefined;
  }
}
