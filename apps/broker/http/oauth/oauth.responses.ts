import { z } from 'zod';
import { uuid } from '../common/responses.js';

/** RFC 7662 §2.2: an inactive token says nothing else. */
export const introspectionResponse = z.union([
  z.strictObject({ active: z.literal(false) }),
  z.strictObject({
    active: z.literal(true),
    iss: z.string(),
    sub: z.string(),
    aud: z.union([z.string(), z.array(z.string())]),
    exp: z.int(),
    iat: z.int(),
    nbf: z.int(),
    jti: uuid,
    client_id: z.string(),
    scope: z.string(),
    token_type: z.enum(['Bearer', 'DPoP']),
    cnf: z.strictObject({ jkt: z.string() }).optional().describe('DPoP-bound: the RFC 7638 thumbprint of the proof key'),
    act: z.looseObject({ sub: z.string() }),
    task_id: uuid,
    lease_state: z.literal('active'),
    authorization_details: z
      .array(
        z.strictObject({
          type: z.literal('tool_call'),
          tool: z.union([z.string(), z.array(z.string())]),
          boundary: z.string(),
          action: z.string(),
          resource: z.string().optional(),
          params: z
            .record(z.string(), z.unknown())
            .optional()
            .describe("the call's params, when the token carries them (at most 1 KiB as canonical JSON)"),
          params_digest: z
            .string()
            .optional()
            .describe(
              'base64url SHA-256 of the canonical JSON (RFC 8785) of the params; absent for a lease issued before digests were kept',
            ),
        }),
      )
      .describe('the exact call the credential is for, as its lease states it'),
  }),
]);

export const revocationResponse = z.strictObject({}).describe('RFC 7009: 200 whether or not the token was known');
