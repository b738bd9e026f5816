import { SourceError, type CredentialProviders } from '../credentials/index.js';
import type { OutboxClaim, OutboxStore } from './outbox-store.js';

export interface OutboxTimings {
  /** First retry after a failed source call (before jitter); doubles per attempt. */
  firstRetryMs: number;
  /** The longest wait between two retries. */
  maxRetryMs: number;
  /** Attempts before a lease is `revoke_failed`. */
  maxAttempts: number;
  /** How often a `revoke_failed` lease is tried again (as Vault retries irrevocable leases). */
  failedRetryMs: number;
  /** How long a claim holds a lease against other replicas: longer than any source call. */
  holdMs: number;
  /** An `issuing` lease older than this was left by a broker that stopped mid-issuance. */
  issuingGraceMs: number;
  /** Leases per claim, and source calls in flight at once. */
  batch: number;
  concurrency: number;
}

export const DEFAULT_OUTBOX_TIMINGS: OutboxTimings = {
  firstRetryMs: 4_000,
  maxRetryMs: 300_000,
  maxAttempts: 10,
  failedRetryMs: 86_400_000,
  holdMs: 60_000,
  issuingGraceMs: 60_000,
  batch: 200,
  concurrency: 16,
};

/** Told about every source revocation's outcome (metrics). */
export type OutboxObserver = (kind: string, outcome: 'revoked' | 'retry' | 'revoke_failed') => void;

const ACTOR = 'system:outbox';

/**
 * The durable outbox's worker: revokes at their source the credentials of leases that ended
 * (`revoking`), retrying failures with exponential backoff and jitter, and sends leases left
 * `issuing` by a stopped broker there too. Every step is a row in `leases`, so a restart loses
 * nothing; claims use FOR UPDATE SKIP LOCKED, so replicas share the work without doubling it.
 * Providers only make the source call: when and how often is decided here.
 */
export interface OutboxOptions {
  store: OutboxStore;
  providers: CredentialProviders;
  timings?: Partial<OutboxTimings> | undefined;
  observe?: OutboxObserver | undefined;
  /** The jitter's source (tests pin it). */
  random?: (() => number) | undefined;
}

export class CredentialOutbox {
  readonly timings: OutboxTimings;
  private readonly store: OutboxStore;
  private readonly providers: CredentialProviders;
  private readonly observe: OutboxObserver;
  private readonly random: () => number;

  constructor(options: OutboxOptions) {
    this.store = options.store;
    this.providers = options.providers;
    this.timings = { ...DEFAULT_OUTBOX_TIMINGS, ...options.timings };
    this.observe = options.observe ?? (() => {});
    this.random = options.random ?? Math.random;
  }

  /** One pass: abandoned issuances, then every due revocation (in batches). Returns how many were confirmed. */
  async runOnce(maxBatches = 50): Promise<{ revoked: number; failed: number }> {
    await this.store.abandonIssuing(this.timings.issuingGraceMs, 1000);
    let revoked = 0;
    let failed = 0;
    for (let i = 0; i < maxBatches; i++) {
      const claims = await this.store.claimRevocations(this.timings.batch, this.timings.holdMs);
      if (claims.length === 0) break;
      let next = 0;
      const worker = async () => {
        while (next < claims.length) {
          const claim = claims[next++]!;
          if (await this.revoke(claim)) revoked++;
          else failed++;
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.timings.concurrency, claims.length) }, worker));
      if (claims.length < this.timings.batch) break;
    }
    return { revoked, failed };
  }

  /** The delay before retry number `attempt` (1-based): doubling from firstRetryMs, capped, with jitter. */
  retryDelay(attempt: number): number {
    const base = Math.min(this.timings.maxRetryMs, this.timings.firstRetryMs * 2 ** Math.max(0, attempt - 1));
    // "Equal jitter": at least half the delay, so retries spread out without ever coming too soon.
    return Math.round(base / 2 + (base / 2) * this.random());
  }

  private async revoke(claim: OutboxClaim): Promise<boolean> {
    // An issuance that may still be answering will record its handle: wait for it rather than
    // confirm a revocation that found nothing.
    if (claim.externalHandle === null && claim.reason !== 'issue_abandoned' && claim.ageMs < this.timings.issuingGraceMs) {
      await this.store.releaseClaim(claim.id, Math.min(this.timings.firstRetryMs, this.timings.issuingGraceMs - claim.ageMs));
      return false;
    }
    try {
      await this.providers.get(claim.credentialKind).revoke({ leaseId: claim.id, externalHandle: claim.externalHandle });
    } catch (error) {
      const code = error instanceof SourceError ? error.code : 'error';
      const state = await this.store.failRevocation(claim, code, {
        retryMs: this.retryDelay(claim.attempts + 1),
        maxAttempts: this.timings.maxAttempts,
        failedRetryMs: this.timings.failedRetryMs,
      });
      this.observe(claim.credentialKind, state === 'revoke_failed' ? 'revoke_failed' : 'retry');
      return false;
    }
    const confirmed = await this.store.confirmRevoked(claim, ACTOR);
    if (confirmed) this.observe(claim.credentialKind, 'revoked');
    else await this.store.releaseClaim(claim.id, 0);
    return confirmed;
  }
}
