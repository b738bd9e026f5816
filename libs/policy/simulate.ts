import type { BoundaryStore } from './boundary-store.js';
import type { PolicyRef } from './cedar.js';
import { checkCredentialRequest } from './check.js';
import type { Policies } from './policies.js';
import { findUnstorable } from '../db/index.js';

export interface SimulationInput {
  workloadId: string;
  task: { intent: string; subject: string };
  request: {
    boundary: string;
    action: string;
    resource?: string | undefined;
    params?: Record<string, unknown> | undefined;
    purpose?: string | undefined;
  };
}

export interface Simulation {
  decision: 'permit' | 'deny';
  reasons: string[];
  policies: PolicyRef[];
  errors: string[];
  /** A permit that would wait for a reviewer: the boundary's approval rule or an `@approval("required")` permit. */
  approvalRequired: boolean;
  boundaryVersion: number | null;
}

/**
 * What a credential request would be answered now, decided like the hot path (the core checks,
 * then Cedar on the current policies) for a fresh active task, without writing anything.
 */
export class Simulator {
  constructor(
    private readonly boundaries: BoundaryStore,
    private readonly policies: Policies,
  ) {}

  async simulate({ workloadId, task, request }: SimulationInput): Promise<Simulation> {
    const boundary = await this.boundaries.current(request.boundary);
    const verdict = checkCredentialRequest({
      task: { active: true, intent: task.intent },
      boundary,
      action: request.action,
      paramsUnstorable: request.params !== undefined && findUnstorable(request.params) !== undefined,
      params: request.params,
    });
    if (verdict.outcome === 'deny')
      return {
        decision: 'deny',
        reasons: verdict.reasons,
        policies: [],
        errors: [],
        approvalRequired: false,
        boundaryVersion: boundary?.version ?? null,
      };
    const { key } = await this.policies.activeGlobals();
    const decision = await this.policies.decide(
      {
        workloadId,
        task: { ...task, ageSeconds: 0, denials: 0 },
        boundary: boundary!,
        action: request.action,
        resource: request.resource ?? null,
        params: request.params ?? null,
        purpose: request.purpose ?? null,
        approved: false,
      },
      boundary!,
      key,
    );
    return {
      decision: decision?.decision === 'deny' ? 'deny' : 'permit',
      reasons: decision?.reasons ?? [],
      policies: decision?.determiningPolicies ?? [],
      errors: decision?.errors ?? [],
      approvalRequired: decision?.decision === 'allow' && decision.approvalRequired,
      boundaryVersion: boundary!.version,
    };
  }
}
