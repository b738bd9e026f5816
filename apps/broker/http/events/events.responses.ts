import type { ResponseSpec } from '../openapi.js';

/** Not JSON: the frames are written by libs/leases/event-stream.ts (renderEvent); this documents them. */
export const EVENT_STREAM: ResponseSpec = {
  contentType: 'text/event-stream',
  description:
    'One event per revocation or approval step: `id` (the position to resume after), `event` and `data`, a JSON object. Revocations (lease.revoked, task.ended, workload.revoked, or lease.revoke_failed: a credential at its source (Vault) that could not be revoked there after every retry): {type, lease_id, jti, task_id, workload_id, reason, at}. Approvals, to admin and reviewer keys only (approval.requested: a credential request now waits for a reviewer; approval.approved, approval.denied): {type, approval_id, task_id, workload_id, boundary_id, at}; the rest is at GET /v1/approvals/{id}. Approvals that expire or whose task ends send no event. Comment lines keep the connection alive. A server holds a limited number of streams, in all and per API key: beyond them, 429 slow_down with Retry-After; a reader that takes nothing for 30 s (TOLLGATE_EVENTS_STALL_TIMEOUT_MS) is disconnected and resumes with Last-Event-ID.',
};
