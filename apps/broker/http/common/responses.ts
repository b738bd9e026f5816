import type { JWK } from 'jose';
import { z } from 'zod';
import { ERROR_CODES } from '../../../../libs/errors/index.js';

/**
 * What every resource's response schemas share: times, ids, the Error body, pages and JWK sets.
 *
 * Each resource's `<resource>.responses.ts` holds its bodies' schemas (strict, as GET /openapi.json
 * documents them) next to the views that shape them, and each view returns `z.infer<typeof
 * itsSchema>` of the very schema the document is built from. So drift fails `tsc`, not a test: a
 * view that drops a field fails (tried: taskView without end_reason, TS2741), and so does one that
 * names a field the schema lacks (leaseView with an extra member, TS2353). Handlers that build a
 * body inline declare the same return type.
 */

export const time = z.iso.datetime({ offset: true });
export const nullableTime = time.nullable();
export const uuid = z.uuid();

/** What the error filter sends for every 4xx and 5xx (apps/broker/http/error-filter.ts). */
export const errorResponse = z
  .strictObject({
    error: z.enum(ERROR_CODES),
    error_description: z.string(),
    reasons: z
      .array(z.string())
      .optional()
      .describe('machine-readable reasons of a denial (intent_mismatch, policy_forbid, task_not_active, ...)'),
    decision_id: uuid.optional().describe('the decision row this refusal left'),
    field: z.string().optional().describe('the input field (dotted path) at fault'),
    approval_id: uuid.optional().describe('authorization_pending at /oauth2/token: the approval to wait for, then repeat with'),
    policies: z
      .array(z.strictObject({ id: z.string(), version: z.int() }))
      .optional()
      .describe('the Cedar policy sets (id and version) that decided a policy denial'),
    problems: z
      .array(z.strictObject({ message: z.string(), line: z.int().optional(), column: z.int().optional() }))
      .optional()
      .describe("Cedar's own messages for a policy that does not parse or validate, with line and column"),
  })
  .describe('Every error: an RFC 6749-style code and a description safe to show; denials add reasons.');

export const page = <T extends z.ZodType>(item: T) =>
  z.strictObject({
    items: z.array(item),
    next_cursor: z.string().nullable().describe('pass as ?cursor= for the next page; null on the last'),
  });

export const jwk = z.looseObject({ kty: z.string(), kid: z.string().optional() });
export const jwkSet = z.strictObject({ keys: z.array(jwk) });

/**
 * A registered key set as published. Every key was checked on its way in (kty among what the
 * request schemas require), which jose's JWK type, where every member is optional, cannot know.
 */
export function jwkSetView(set: { keys: JWK[] }): z.infer<typeof jwkSet> {
  return set as z.infer<typeof jwkSet>;
}
