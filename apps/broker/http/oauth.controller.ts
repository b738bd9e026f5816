import { Body, Controller, Header, HttpCode, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { InvalidClient } from '../../../libs/errors/errors.js';
import { AdminKeys } from '../../../libs/identity/admin-keys.js';
import { WorkloadAuthenticator } from '../../../libs/identity/workload-authenticator.js';
import { Introspection } from '../../../libs/leases/introspection.js';
import { LeaseRevocation } from '../../../libs/leases/revocation.js';
import { bearer } from './auth.js';
import { ApiRoute } from './openapi.js';
import { introspectionResponse, revocationResponse } from './responses.js';
import { parse, tokenForm } from './schemas.js';

/** RFC 7662 introspection and RFC 7009 revocation, form-encoded as the RFCs say. */
@Controller('oauth2')
export class OAuthController {
  constructor(
    private readonly introspection: Introspection,
    private readonly revocation: LeaseRevocation,
    private readonly adminKeys: AdminKeys,
    private readonly authenticator: WorkloadAuthenticator,
  ) {}

  /** Resource servers authenticate with an admin (or reviewer) key for now. */
  @Post('introspect')
  @HttpCode(200)
  @ApiRoute({ summary: 'RFC 7662 token introspection', form: tokenForm, responses: { 200: introspectionResponse }, security: [{ oauthClient: [] }] })
  @Header('cache-control', 'no-store')
  async introspect(@Req() request: FastifyRequest, @Body() body: unknown) {
    this.adminKeys.authenticate(bearer(request));
    const { token } = parse(tokenForm, body);
    return this.introspection.introspect(token);
  }

  /**
   * An admin may revoke any token; a workload only its own. As RFC 7009 §2.2 says, an unknown or
   * invalid token still answers 200: the caller learns nothing it could probe with.
   */
  @Post('revoke')
  @HttpCode(200)
  @ApiRoute({ summary: 'RFC 7009 token revocation', form: tokenForm, responses: { 200: revocationResponse }, security: [{ oauthClient: [] }] })
  async revoke(@Req() request: FastifyRequest, @Body() body: unknown) {
    const credential = bearer(request);
    if (!credential) throw new InvalidClient('an admin key or a workload assertion is required');
    const caller = await this.identify(credential);
    const { token } = parse(tokenForm, body);
    const lease = await this.introspection.leaseOf(token);
    if (lease && (caller.admin || lease.workloadId === caller.workloadId)) {
      await this.revocation.revokeLease(lease.id, caller.admin ? 'revoked_by_admin' : 'revoked_by_client', caller.admin ? 'admin' : `workload:${caller.workloadId}`);
    }
    return {};
  }

  private async identify(credential: string): Promise<{ admin: boolean; workloadId?: string }> {
    if (credential.split('.').length === 3) return { admin: false, workloadId: (await this.authenticator.authenticate(credential)).id };
    return { admin: this.adminKeys.authenticate(credential) === 'admin' };
  }
}
