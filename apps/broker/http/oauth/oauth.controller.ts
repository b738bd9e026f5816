import type { z } from 'zod';
import { Body, Controller, Header, HttpCode, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { audienceScope, requireAccess } from '../../../../libs/identity/index.js';
import { ClientAuthentication, type ClientCredentials } from '../../../../libs/identity/index.js';
import { Introspection } from '../../../../libs/leases/index.js';
import { TokenRevocation } from '../../../../libs/leases/index.js';
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
    private readonly revocation: TokenRevocation,
    private readonly clients: ClientAuthentication,
  ) {}

  /** A resource server sees only its own tool's tokens: any other answers `{active: false}`. */
  @Post('introspect')
  @HttpCode(200)
  @ApiRoute({
    summary: 'RFC 7662 token introspection',
    form: tokenForm.extend(clientAuthForm.shape),
    responses: { 200: introspectionResponse },
    security: [{ oauthClient: [] }, { clientSecretBasic: [] }],
    errors: [403],
  })
  @Header('cache-control', 'no-store')
  async introspect(@Req() request: FastifyRequest, @Body() body: unknown) {
    const client = await this.clients.authenticate(credentialsOf(request, body), '/oauth2/introspect');
    requireAccess(client.key, 'introspect');
    const { token } = parse(tokenForm, body);
    return this.introspection.introspect(token, audienceScope(client.key));
  }

  /** Who may revoke which token, and why any other token still answers 200: TokenRevocation. */
  @Post('revoke')
  @HttpCode(200)
  @ApiRoute({
    summary: 'RFC 7009 token revocation',
    form: tokenForm.extend(clientAuthForm.shape),
    responses: { 200: revocationResponse },
    security: [{ oauthClient: [] }, { clientSecretBasic: [] }],
    errors: [403],
  })
  async revoke(@Req() request: FastifyRequest, @Body() body: unknown): Promise<z.infer<typeof revocationResponse>> {
    const client = await this.clients.authenticateOrWorkload(credentialsOf(request, body), '/oauth2/revoke');
    this.revocation.admit(client);
    const { token } = parse(tokenForm, body);
    await this.revocation.revoke(client, token);
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
