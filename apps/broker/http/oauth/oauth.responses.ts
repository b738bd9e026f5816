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
  }),
]);

export const revocationResponse = z.strictObject({}).describe('RFC 7009: 200 whether or not the token was known');
