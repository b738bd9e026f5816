import { z } from 'zod';
import { credentialSettings } from '../../../../libs/credentials/index.js';
import { approvalConditionBounds, paramsSchemaProblem } from '../../../../libs/policy/index.js';
import { DEFAULT_APPROVAL_TTL_S, type BoundaryDefinition } from '../../../../libs/policy/index.js';
import { action, cleanText, intent, policyText, ttl } from '../common/requests.js';

export const boundaryBody = z
  .strictObject({
    tool: cleanText(512).refine((value) => !/\s/.test(value), 'must not contain spaces'),
    actions: z.array(action).min(1, 'must list at least one action').max(64, 'must list at most 64 actions'),
    intents: z.array(intent).min(1, 'must list at least one intent').max(64, 'must list at most 64 intents'),
    default_ttl: ttl(3600),
    max_ttl: ttl(3600),
    credential: credentialSettings,
    sensitivity: z.enum(['low', 'medium', 'high']).default('low'),
    drift_threshold: z
      .number()
      .int('must be an integer')
      .min(1, 'must be at least 1')
      .max(1000, 'must be at most 1000')
      .nullable()
      .default(null),
    enabled: z.boolean().default(true),
    /** Human approval (step-up): `when` is a Cedar condition, bounded here and parsed by Cedar (in its own process) on write. */
    approval: z
      .strictObject({
        when: z
          .string()
          .min(1, 'must not be empty')
          .superRefine((value, ctx) => {
            const [problem] = approvalConditionBounds(value);
            if (!problem) return;
            const where = problem.line !== undefined ? ` at line ${problem.line}, column ${problem.column}` : '';
            ctx.addIssue({ code: 'custom', message: `is not a valid Cedar condition: ${problem.message}${where}` });
          }),
        ttl: ttl(86_400).default(DEFAULT_APPROVAL_TTL_S),
      })
      .optional(),
    policy: policyText.nullable().default(null).describe("the boundary's own Cedar policy set, versioned with it"),
    params_schemas: z
      .record(
        action,
        z.record(z.string(), z.unknown()).superRefine((schema, ctx) => {
          const problem = paramsSchemaProblem(schema);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        }),
      )
      .nullable()
      .default(null)
      .describe(
        "per action, the JSON Schema of the tool's arguments: params that do not match are refused (invalid_params), and the action's Cedar context.params type is generated from it",
      ),
  })
  .refine((body) => body.default_ttl <= body.max_ttl, { message: 'must not exceed max_ttl', path: ['default_ttl'] })
  .refine((body) => new Set(body.actions).size === body.actions.length, { message: 'must not repeat an action', path: ['actions'] })
  .refine((body) => new Set(body.intents).size === body.intents.length, { message: 'must not repeat an intent', path: ['intents'] })
  .superRefine((body, ctx) => {
    for (const name of Object.keys(body.params_schemas ?? {})) {
      if (!body.actions.includes(name))
        ctx.addIssue({ code: 'custom', message: 'is not an action of the boundary', path: ['params_schemas', name] });
    }
  });

export function toBoundaryDefinition(body: z.infer<typeof boundaryBody>): BoundaryDefinition {
  return {
    tool: body.tool,
    actions: body.actions,
    intents: body.intents,
    defaultTtl: body.default_ttl,
    maxTtl: body.max_ttl,
    credential: body.credential,
    sensitivity: body.sensitivity,
    driftThreshold: body.drift_threshold,
    enabled: body.enabled,
    approval: body.approval ?? null,
    policy: body.policy,
    paramsSchemas: body.params_schemas && Object.keys(body.params_schemas).length > 0 ? body.params_schemas : null,
  };
}
