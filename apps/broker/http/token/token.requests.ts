import { z } from 'zod';
import { cleanText } from '../common/requests.js';
import { credentialBody } from '../tasks/tasks.requests.js';

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** RFC 8693 parameters. Unrecognised parameters are ignored, as RFC 6749 §3.2 requires. */
export const tokenExchangeForm = z.looseObject({
  grant_type: z.literal(TOKEN_EXCHANGE),
  subject_token: z.string().min(1, 'is required').max(8192),
  subject_token_type: z.literal(JWT_TOKEN_TYPE, `must be ${JWT_TOKEN_TYPE}`),
  audience: cleanText(512).optional(),
  resource: cleanText(512)
    .refine((value) => URL.canParse(value) && !value.includes('#'), 'must be an absolute URI without a fragment')
    .optional()
    .describe(
      "RFC 8707 resource indicator: the tool the credential is for (it becomes the token's aud). It must be the boundary's tool, else 400 invalid_target. Given once; with audience, both must name the same tool.",
    ),
  scope: z.string().max(256).optional(),
  authorization_details: z.string().min(1, 'is required').max(20_000),
  requested_token_type: z.enum([ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE]).optional(),
  client_id: z.string().max(2048).optional(),
});

/** RFC 9396 authorization details: exactly one tool call. */
export const toolCallDetails = z
  .array(
    credentialBody.omit({ ttl: true, purpose: true }).extend({
      type: z.literal('tool_call', 'must be "tool_call"'),
      task_id: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a UUID'),
    }),
  )
  .length(1, 'must hold exactly one tool_call');
