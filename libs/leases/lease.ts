/** One issued credential. Its row, not the token, decides whether the credential is still good. */
export interface Lease {
  id: string;
  taskId: string;
  workloadId: string;
  boundaryId: string;
  boundaryVersion: number;
  action: string;
  resource: string | null;
  credentialKind: string;
  /** As of the database clock: a lease past expires_at reads `expired` whether or not it was swept. */
  state: LeaseState;
  issuedAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
  revokeReason: string | null;
  /** The call's params digest as the credential carries it; null for leases issued before it was kept. */
  paramsDigest: string | null;
}

/**
 * `issuing`, `revoking` and `revoke_failed` belong to credentials that live at a source (the durable
 * outbox, libs/leases/outbox.ts); JWT leases only ever read active, revoked or expired.
 */
export const LEASE_STATES = ['issuing', 'active', 'revoking', 'revoked', 'revoke_failed', 'expired'] as const;
export type LeaseState = (typeof LEASE_STATES)[number];

export type RevokeReason =
  | 'journey_changed'
  | 'task_completed'
  | 'task_expired'
  | 'task_revoked'
  | 'workload_revoked'
  | 'boundary_disabled'
  | 'revoked_by_admin'
  | 'revoked_by_client'
  | 'mint_failed'
  | 'drift_detected'
  /** Past its expiry: the source is told, then the lease reads `expired`. */
  | 'lease_expired'
  /** Left `issuing` by a broker that stopped between the source call and the commit. */
  | 'issue_abandoned';

export interface Decision {
  id: string;
  taskId: string | null;
  workloadId: string;
  boundaryId: string | null;
  boundaryVersion: number | null;
  action: string | null;
  resource: string | null;
  outcome: 'permit' | 'deny' | 'pending';
  reasons: string[];
  /** Counted by the drift guard (`suspended_task`: the denial that suspended the task); null otherwise. */
  drift: 'counted' | 'suspended_task' | null;
  /** The Cedar policy sets (id, version) that decided, when policies applied. */
  policies: { id: string; version: number }[] | null;
  /** A permit's lease and its state now (null for denials, pending requests and dropped issuances). */
  leaseId: string | null;
  leaseState: LeaseState | null;
  at: Date;
}

/** What a review listing of leases (and of decisions, but for the state) is narrowed by. */
export interface LeaseFilter {
  task?: string | undefined;
  workload?: string | undefined;
  boundary?: string | undefined;
  /** The task's end-user subject. */
  subject?: string | undefined;
  /** The boundary's tool (token audience), as of the boundary version decided under. */
  tool?: string | undefined;
  action?: string | undefined;
  state?: LeaseState | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  cursor?: string | undefined;
  limit: number;
}
