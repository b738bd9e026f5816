import type { z } from 'zod';
import { Body, Controller, Header, HttpCode, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { audienceScope, requireAccess } from '../../../../libs/identity/api-key.js';
import { ClientAuthentication, type ClientCredentials } from '../../../../libs/identity/client-authentication.js';
import { Introspection } from '../../../../libs/leases/introspection.js';
import { LeaseRevocation } from '../../../../libs/leases/revocation.js';
import { ApiRoute } from '../openapi.js';
import { parse } from '../common/requests.js';
import { clientAuthForm, tokenForm } from './oauth.requests.js';
import { introspectionResponse, revocationResponse } from './oauth.responses.js';

/**
 * RFC 7662 introspection and RFC 7009 revocation, form-encoded as the RFCs say. The caller
 * authenticates as an OAuth client (client_secret_basic, client_secret_post, private_key_jwt) or
 * with a bearer API key; revocation also takes a workload's own assertion.
 */
@Controller('oauth2')
export class OAuthController {
  constructor(
    private readonly introspection: Introspection,
    private readonly revocation: LeaseRevocation,
    private readonly clients: ClientAuthentication,
  ) {}

  /** A resource server sees only its own tool's tokens: any other answers `{active: false}`. */
  @Post('introspect')
  @HttpCode(200)
  @ApiRoute({ summary: 'RFC 7662 token introspection', form: tokenForm.extend(clientAuthForm.shape), responses: { 200: introspectionResponse }, security: [{ oauthClient: [] }, { clientSecretBasic: [] }], errors: [403] })
  @Header('cache-control', 'no-store')
  async introspect(@Req() request: FastifyRequest, @Body() body: unknown) {
    const client = await this.clients.authenticate(credentialsOf(request, body), '/oauth2/introspect');
    requireAccess(client.key, 'introspect');
    const { token } = parse(tokenForm, body);
    return this.introspection.introspect(token, audienceScope(client.key));
  }

  /**
   * An admin may revoke any token, a resource server its own tool's, a workload its own. As RFC
   * 7009 §2.2 says, any other token (unknown, invalid, someone else's) still answers 200: the caller
   * learns nothing it could probe with.
   */
  @Post('revoke')
  @HttpCode(200)
  @ApiRoute({ summary: 'RFC 7009 token revocation', form: tokenForm.extend(clientAuthForm.shape), responses: { 200: revocationResponse }, security: [{ oauthClient: [] }, { clientSecretBasic: [] }], errors: [403] })
  async revoke(@Req() request: FastifyRequest, @Body() body: unknown): Promise<z.infer<typeof revocationResponse>> {
    const client = await this.clients.authenticateOrWorkload(credentialsOf(request, body), '/oauth2/revoke');
    if (client.kind === 'api_key') requireAccess(client.key, 'revoke');
    const { token } = parse(tokenForm, body);
    if (client.kind === 'workload') {
      const lease = await this.introspection.leaseOf(token);
      if (lease?.workloadId === client.workloadId) await this.revocation.revokeLease(lease.id, 'revoked_by_client', `workload:${client.workloadId}`);
      return {};
    }
    const lease = await this.introspection.leaseOf(token, audienceScope(client.key));
    if (lease) {
      const admin = client.key.role === 'admin';
      await this.revocation.revokeLease(lease.id, admin ? 'revoked_by_admin' : 'revoked_by_client', `${client.key.role}:${client.key.id}`);
    }
    return {};
  }
}

function credentialsOf(request: FastifyRequest, body: unknown): ClientCredentials {
  const form = parse(clientAuthForm, body);
  const header = request.headers.authorization;
  return {
    authorization: typeof header === 'string' ? header : undefined,
    clientId: form.client_id,
    clientSecret: form.client_secret,
    clientAssertion: form.client_assertion,
    clientAssertionType: form.client_assertion_type,
  };
}
