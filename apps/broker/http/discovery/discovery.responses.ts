import { z } from 'zod';
import { jwkSet } from '../common/responses.js';

export const jwksResponse = jwkSet;

/** RFC 8414. */
export const metadataResponse = z.strictObject({
  issuer: z.url(),
  jwks_uri: z.url(),
  token_endpoint: z.url(),
  introspection_endpoint: z.url(),
  revocation_endpoint: z.url(),
  token_endpoint_auth_methods_supported: z.array(z.string()),
  introspection_endpoint_auth_methods_supported: z.array(z.string()),
  introspection_endpoint_auth_signing_alg_values_supported: z.array(z.string()),
  revocation_endpoint_auth_methods_supported: z.array(z.string()),
  revocation_endpoint_auth_signing_alg_values_supported: z.array(z.string()),
  grant_types_supported: z.array(z.string()),
  response_types_supported: z.array(z.string()),
  scopes_supported: z.array(z.string()),
  access_token_signing_alg_values_supported: z.array(z.string()),
  dpop_signing_alg_values_supported: z.array(z.string()),
  authorization_details_types_supported: z.array(z.string()),
  resource_indicators_supported: z.boolean().describe('the token endpoint takes an RFC 8707 resource (the tool, e.g. an MCP server URL)'),
});

export const healthResponse = z.strictObject({ status: z.literal('ok') });
export const readinessResponse = z.strictObject({
  status: z.enum(['ready', 'unavailable']),
  database: z.string(),
  reason: z
    .enum(['draining', 'database_unavailable'])
    .optional()
    .describe('why not ready: the replica is shutting down (draining), or the database does not answer'),
});
