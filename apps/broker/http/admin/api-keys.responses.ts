import { z } from 'zod';
import type { ApiKey } from '../../../../libs/identity/index.js';
import { jwkSet, jwkSetView, nullableTime, time } from '../common/responses.js';

export const apiKeyResponse = z.strictObject({
  id: z.string(),
  role: z.enum(['admin', 'reviewer', 'resource_server']),
  audience: z.string().optional().describe('resource_server keys: the tool (token aud) it serves'),
  label: z.string().optional(),
  jwks: jwkSet.optional().describe('public keys for private_key_jwt'),
  created_at: time,
  revoked_at: nullableTime,
});
export const createdApiKeyResponse = apiKeyResponse.extend({
  key: z.string().describe('the key itself: shown this once, stored only as a hash'),
});
export const apiKeyList = z.strictObject({ items: z.array(apiKeyResponse) });

/** An API key without its key material: the key is shown once, at creation, and never stored. */
export function apiKeyView(key: ApiKey): z.infer<typeof apiKeyResponse> {
  return {
    id: key.id,
    role: key.role,
    ...(key.audience === null ? {} : { audience: key.audience }),
    ...(key.label === null ? {} : { label: key.label }),
    ...(key.jwks === null ? {} : { jwks: jwkSetView(key.jwks) }),
    created_at: key.createdAt.toISOString(),
    revoked_at: key.revokedAt?.toISOString() ?? null,
  };
}
