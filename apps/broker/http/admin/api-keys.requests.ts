import { z } from 'zod';
import { cleanText, publicJwk } from '../common/requests.js';

/**
 * POST /v1/admin/api-keys. A resource server names its tool (`audience`, the boundary `tool` and
 * token `aud`) and may register public keys for private_key_jwt; the other roles take neither.
 */
export const apiKeyBody = z
  .strictObject({
    role: z.enum(['admin', 'reviewer', 'resource_server'], 'must be "admin", "reviewer" or "resource_server"'),
    audience: cleanText(512)
      .refine((value) => !/\s/.test(value), 'must not contain spaces')
      .optional(),
    label: cleanText(128).optional(),
    jwks: z.strictObject({ keys: z.array(publicJwk).min(1, 'must hold at least one key').max(10, 'must hold at most 10 keys') }).optional(),
  })
  .superRefine((body, ctx) => {
    if (body.role === 'resource_server' && body.audience === undefined) {
      ctx.addIssue({ code: 'custom', message: 'is required for a resource_server key (the tool it serves)', path: ['audience'] });
    }
    if (body.role !== 'resource_server' && body.audience !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `is only for resource_server keys; a ${body.role} key is not held to one tool`,
        path: ['audience'],
      });
    }
    if (body.role !== 'resource_server' && body.jwks !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'is only for resource_server keys (private_key_jwt client authentication)', path: ['jwks'] });
    }
  });
