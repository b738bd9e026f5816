import { z } from 'zod';
import type { Decision } from '../../../../libs/leases/index.js';
import { TIMELINE_KINDS, type TimelineEvent } from '../../../../libs/review/index.js';
import { page, time, uuid } from '../common/responses.js';
import { taskResponse } from '../tasks/tasks.responses.js';
import { leaseResponse } from './leases.responses.js';

export const decisionResponse = z.strictObject({
  decision_id: uuid,
  task_id: uuid.nullable(),
  workload_id: z.string(),
  boundary_id: z.string().nullable(),
  boundary_version: z.int().nullable(),
  action: z.string().nullable(),
  resource: z.string().nullable(),
  outcome: z.enum(['permit', 'deny', 'pending']),
  reasons: z.array(z.string()),
  drift: z
    .enum(['counted', 'suspended_task'])
    .nullable()
    .describe(
      "counted: a denial the drift guard counted towards its task's suspension; suspended_task: the one that reached the threshold",
    ),
  policies: z
    .array(z.strictObject({ id: z.string(), version: z.int() }))
    .nullable()
    .describe('the Cedar policy sets that decided, when policies applied'),
  lease_id: uuid.nullable().describe("a permit's lease (null for denials and pending requests)"),
  lease_state: leaseResponse.shape.state.nullable().describe("that lease's state now"),
  at: time,
});

export const timelineResponse = z.strictObject({
  task: taskResponse,
  events: z.array(
    z
      .looseObject({
        at: time,
        kind: z.enum(TIMELINE_KINDS),
      })
      .describe(
        'decision.*: decision_id, boundary_id, action, resource, reasons, lease_id?, approval_id?; lease.*: lease_id (and reason when revoked); task.*: intent/reason; approval.*: approval_id, decided_by, reason',
      ),
  ),
});

export const decisionPage = page(decisionResponse);

export function decisionView(decision: Decision): z.infer<typeof decisionResponse> {
  return {
    decision_id: decision.id,
    task_id: decision.taskId,
    workload_id: decision.workloadId,
    boundary_id: decision.boundaryId,
    boundary_version: decision.boundaryVersion,
    action: decision.action,
    resource: decision.resource,
    outcome: decision.outcome,
    reasons: decision.reasons,
    drift: decision.drift,
    policies: decision.policies,
    lease_id: decision.leaseId,
    lease_state: decision.leaseState,
    at: decision.at.toISOString(),
  };
}

/** A timeline event: when, what, and what the rows say about it. */
export function timelineEventView(event: TimelineEvent): z.infer<typeof timelineResponse>['events'][number] {
  return { at: event.at.toISOString(), kind: event.kind, ...event.detail };
}
