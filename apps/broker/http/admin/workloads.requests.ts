import { z } from 'zod';
import { defaultBurst } from '../../../../libs/config/index.js';
import { RATE_INTERVALS, type WorkloadRateLimit } from '../../../../libs/identity/index.js';
import { cleanText, id, publicJwk } from '../common/requests.js';

/**
 * A workload's own token bucket, as Vault's rate-limit quotas and Envoy's token buckets are written:
 * a refill rate in exactly one unit, and how many requests may come at once. Every bound is the
 * same rate range as TOLLGATE_RATE_LIMIT's at most (100 000 a second).
 */
const rateLimitBody = z
  .strictObject({
    per_second: z.number().min(0.001, 'must be at least 0.001').max(100_000, 'must be at most 100000').optional(),
    per_minute: z.number().int('must be an integer').min(1, 'must be at least 1').max(6_000_000, 'must be at most 6000000').optional(),
    per_hour: z.number().int('must be an integer').min(1, 'must be at least 1').max(360_000_000, 'must be at most 360000000').optional(),
    burst: z.number().int('must be an integer').min(1, 'must be at least 1').max(1_000_000, 'must be at most 1000000').optional(),
  })
  .superRefine((limit, ctx) => {
    const given = (['per_second', 'per_minute', 'per_hour'] as const).filter((unit) => limit[unit] !== undefined);
    if (given.length !== 1)
      ctx.addIssue({
        code: 'custom',
        message: `give exactly one of per_second, per_minute, per_hour${given.length ? ` (got ${given.join(' and ')})` : ''}`,
      });
  })
  .describe("the workload's own limit on credential requests; burst defaults to twice the per-second rate, at least 1");

/** The limit as the domain keeps it; null when the body names none (the service's applies). */
export function toWorkloadRateLimit(limit: z.infer<typeof rateLimitBody> | null | undefined): WorkloadRateLimit | null {
  if (!limit) return null;
  const [requests, per] =
    limit.per_second !== undefined
      ? [limit.per_second, 'second' as const]
      : limit.per_minute !== undefined
        ? [limit.per_minute, 'minute' as const]
        : [limit.per_hour!, 'hour' as const];
  return { requests, per, burst: limit.burst ?? defaultBurst(requests / RATE_INTERVALS[per]) };
}

/** A workload proves itself with registered keys (`jwks`) or through a trusted issuer (`issuer` + `subject`). */
export const workloadBody = z
  .strictObject({
    jwks: z.strictObject({ keys: z.array(publicJwk).min(1, 'must hold at least one key').max(10, 'must hold at most 10 keys') }).optional(),
    issuer: id.optional(),
    subject: cleanText(2048)
      .refine((value) => !/\s/.test(value), 'must not contain spaces')
      .optional(),
    /** Absent: a new workload is enabled, an existing one keeps its state (a kill switch stays on). */
    enabled: z.boolean().optional(),
    /** Absent or null: the service's limit (TOLLGATE_RATE_LIMIT) applies. PUT replaces: absent clears an override. */
    rate_limit: rateLimitBody.nullable().optional(),
  })
  .superRefine((body, ctx) => {
    const bound = body.issuer !== undefined || body.subject !== undefined;
    if (body.jwks !== undefined && bound)
      ctx.addIssue({ code: 'custom', path: ['jwks'], message: 'give either jwks or issuer + subject, not both' });
    else if (body.jwks === undefined && !bound)
      ctx.addIssue({
        code: 'custom',
        path: ['jwks'],
        message: 'is required (or issuer + subject, to authenticate through a trusted issuer)',
      });
    else if (bound && body.issuer === undefined) ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'is required with subject' });
    else if (bound && body.subject === undefined) ctx.addIssue({ code: 'custom', path: ['subject'], message: 'is required with issuer' });
  });
