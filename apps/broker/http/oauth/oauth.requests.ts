import { z } from 'zod';

/**
 * The client authentication members of an RFC 7662 / 7009 form (RFC 6749 §2.3.1, RFC 7521 §4.2);
 * the endpoint's own members are checked by its schema.
 */
export const clientAuthForm = z.looseObject({
  client_id: z.string().min(1, 'must not be empty').max(256).optional(),
  client_secret: z.string().min(1, 'must not be empty').max(512).optional(),
  client_assertion_type: z.string().max(256).optional(),
  client_assertion: z.string().max(8192).optional(),
});

export const tokenForm = z.looseObject({
  token: z.string().min(1, 'is required').max(16_384),
  token_type_hint: z.string().max(64).optional(),
});
