import { z } from 'zod';
import type { ToolBoundary } from '../../../../libs/policy/index.js';
import { time } from '../common/responses.js';

export const boundaryResponse = z.strictObject({
  id: z.string(),
  version: z.int(),
  tool: z.string(),
  actions: z.array(z.string()),
  intents: z.array(z.string()),
  default_ttl: z.int(),
  max_ttl: z.int(),
  credential: z.looseObject({ kind: z.string() }),
  sensitivity: z.enum(['low', 'medium', 'high']),
  drift_threshold: z
    .int()
    .optional()
    .describe(
      'drift denials a task may have collected (this one included) when this boundary denies it, before it is suspended; absent: TOLLGATE_DRIFT_THRESHOLD',
    ),
  enabled: z.boolean(),
  approval: z
    .strictObject({ when: z.string(), ttl: z.int() })
    .optional()
    .describe('human approval: requests the Cedar condition holds for wait for a reviewer'),
  policy: z.string().optional().describe("the boundary's own Cedar policy set (absent when it has none)"),
  params_schemas: z
    .record(z.string(), z.record(z.string(), z.unknown()))
    .optional()
    .describe("per action, the JSON Schema of the tool's arguments (absent when no action declares one)"),
  created_at: time,
});
export const boundaryChangeResponse = boundaryResponse.extend({ revoked_leases: z.int().describe('how many leases this change revoked') });
export const boundaryList = z.strictObject({ items: z.array(boundaryResponse) });

export function boundaryView(boundary: ToolBoundary): z.infer<typeof boundaryResponse> {
  return {
    id: boundary.id,
    version: boundary.version,
    tool: boundary.tool,
    actions: boundary.actions,
    intents: boundary.intents,
    default_ttl: boundary.defaultTtl,
    max_ttl: boundary.maxTtl,
    credential: boundary.credential,
    sensitivity: boundary.sensitivity,
    // Shown only when set, so a boundary that leaves it to the global setting reads as before.
    ...(boundary.driftThreshold === null ? {} : { drift_threshold: boundary.driftThreshold }),
    enabled: boundary.enabled,
    ...(boundary.approval ? { approval: { when: boundary.approval.when, ttl: boundary.approval.ttl } } : {}),
    ...(boundary.policy !== null ? { policy: boundary.policy } : {}),
    ...(boundary.paramsSchemas !== null ? { params_schemas: boundary.paramsSchemas } : {}),
    created_at: boundary.createdAt.toISOString(),
  };
}
