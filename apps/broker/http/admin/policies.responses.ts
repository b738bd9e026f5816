import { z } from 'zod';
import type { GlobalPolicy } from '../../../../libs/policy/index.js';
import type { Simulation } from '../../../../libs/policy/index.js';
import type { WhatIfResult } from '../../../../libs/policy/index.js';
import { time, uuid } from '../common/responses.js';

const policyRef = z.strictObject({ id: z.string(), version: z.int() });

export const policyResponse = z.strictObject({
  id: z.string(),
  version: z.int(),
  policy: z.string().describe('Cedar text'),
  description: z.string().nullable(),
  enabled: z.boolean(),
  created_at: time,
});
export const policyList = z.strictObject({ items: z.array(policyResponse) });

export const simulationResponse = z.strictObject({
  decision: z.enum(['permit', 'deny']),
  reasons: z.array(z.string()),
  policies: z.array(policyRef).describe('the policy sets that decided'),
  errors: z.array(z.string()).describe('policies that failed to evaluate'),
  approval_required: z
    .boolean()
    .describe('a permit that would wait for a reviewer (202 pending): the boundary\'s approval rule or an @approval("required") permit'),
  boundary_version: z.int().nullable(),
});

const flips = z.strictObject({ count: z.int(), examples: z.array(uuid).describe('a few decision ids') });
export const whatIfResponse = z.strictObject({
  since: time,
  until: time,
  replayed: z.int().describe('recorded decisions replayed against the proposal'),
  truncated: z.boolean().describe('the window held more decisions than the limit'),
  permits_now_denied: flips,
  denials_now_permitted: flips,
  elapsed_ms: z.number(),
  decisions_per_second: z.int(),
});

export function policyView(policy: GlobalPolicy): z.infer<typeof policyResponse> {
  return {
    id: policy.id,
    version: policy.version,
    policy: policy.policy,
    description: policy.description,
    enabled: policy.enabled,
    created_at: policy.createdAt.toISOString(),
  };
}

export function simulationView(simulation: Simulation): z.infer<typeof simulationResponse> {
  return {
    decision: simulation.decision,
    reasons: simulation.reasons,
    policies: simulation.policies,
    errors: simulation.errors,
    approval_required: simulation.approvalRequired,
    boundary_version: simulation.boundaryVersion,
  };
}

export function whatIfView(result: WhatIfResult): z.infer<typeof whatIfResponse> {
  return {
    since: result.since.toISOString(),
    until: result.until.toISOString(),
    replayed: result.replayed,
    truncated: result.truncated,
    permits_now_denied: result.permitsNowDenied,
    denials_now_permitted: result.denialsNowPermitted,
    elapsed_ms: Math.round(result.elapsedMs * 10) / 10,
    decisions_per_second: result.decisionsPerSecond,
  };
}
