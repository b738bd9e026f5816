import { z } from 'zod';
import type { Task, TaskEvent } from '../../../../libs/tasks/index.js';
import { nullableTime, time, uuid } from '../common/responses.js';
import { leaseResponse } from '../review/leases.responses.js';

export const taskResponse = z.strictObject({
  task_id: uuid,
  workload_id: z.string(),
  intent: z.string(),
  subject: z.string(),
  context: z.record(z.string(), z.unknown()).describe('what the bot said about the journey when it opened the task'),
  state: z.enum(['active', 'completed', 'revoked', 'expired']),
  created_at: time,
  expires_at: time,
  ended_at: nullableTime,
  end_reason: z.string().nullable(),
});

export const taskDetailResponse = taskResponse.extend({
  events: z.array(
    z.strictObject({
      event_id: z.string(),
      kind: z.enum(['opened', 'intent_changed', 'completed', 'revoked', 'expired']),
      intent: z.string().nullable(),
      reason: z.string().nullable(),
      at: time,
    }),
  ),
  leases: z.array(leaseResponse),
});

export const taskChangeResponse = taskResponse.extend({
  revoked_leases: z.array(uuid).describe('the leases this change revoked'),
});

export const credentialResponse = z.strictObject({
  lease_id: uuid,
  expires_at: time,
  expires_in: z.int().describe('seconds'),
  credential: z
    .looseObject({ kind: z.string(), access_token: z.string().optional(), token_type: z.string().optional() })
    .describe(
      'kind plus the provider\'s own fields; kind "jwt" carries an RFC 9068 access token; kind "vault" the secret\'s data (or a wrapping_token with wrap_ttl) and lease_duration',
    ),
});

export function taskView(task: Task): z.infer<typeof taskResponse> {
  return {
    task_id: task.id,
    workload_id: task.workloadId,
    intent: task.intent,
    subject: task.subject,
    context: task.context,
    state: task.state,
    created_at: task.createdAt.toISOString(),
    expires_at: task.expiresAt.toISOString(),
    ended_at: task.endedAt?.toISOString() ?? null,
    end_reason: task.endReason,
  };
}

export function taskEventView(event: TaskEvent): z.infer<typeof taskDetailResponse>['events'][number] {
  return { event_id: event.id, kind: event.kind, intent: event.intent, reason: event.reason, at: event.at.toISOString() };
}
