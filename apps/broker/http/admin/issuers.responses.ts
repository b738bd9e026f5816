import { z } from 'zod';
import type { Issuer } from '../../../../libs/identity/index.js';
import { jwkSet, jwkSetView, time } from '../common/responses.js';

export const issuerResponse = z.strictObject({
  id: z.string(),
  issuer: z.string().describe('the exact iss of its tokens'),
  kind: z.enum(['spiffe', 'kubernetes', 'oidc']),
  trust_domain: z.string().optional(),
  jwks_uri: z.string().optional(),
  jwks: jwkSet.optional(),
  audiences: z.array(z.string()),
  enabled: z.boolean(),
  revision: z.int(),
  created_at: time,
  updated_at: time,
});
export const issuerList = z.strictObject({ items: z.array(issuerResponse) });
export const issuerWithdrawnResponse = issuerResponse.extend({
  revoked_workloads: z.array(z.string()).describe('the workloads bound to it, now disabled'),
  revoked_tasks: z.int(),
  revoked_leases: z.int(),
});

export function issuerView(issuer: Issuer): z.infer<typeof issuerResponse> {
  return {
    id: issuer.id,
    issuer: issuer.issuer,
    kind: issuer.kind,
    ...(issuer.trustDomain === null ? {} : { trust_domain: issuer.trustDomain }),
    // Exactly one of jwks_uri and jwks is set (issuerBody requires it).
    ...(issuer.jwksUri === null ? { jwks: jwkSetView(issuer.jwks!) } : { jwks_uri: issuer.jwksUri }),
    audiences: issuer.audiences,
    enabled: issuer.enabled,
    revision: issuer.revision,
    created_at: issuer.createdAt.toISOString(),
    updated_at: issuer.updatedAt.toISOString(),
  };
}
