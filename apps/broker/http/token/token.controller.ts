import { Body, Controller, Header, HttpCode, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import {
  AccessDenied,
  ApprovalPending,
  InvalidClient,
  InvalidRequest,
  InvalidTarget,
  NotFound,
  TokenEndpointError,
} from '../../../../libs/errors/index.js';
import { DpopVerifier } from '../../../../libs/identity/index.js';
import { WorkloadAuthenticator } from '../../../../libs/identity/index.js';
import { proofOfPossession } from '../auth.js';
import { ApiRoute } from '../openapi.js';
import { dpopHeader, parse } from '../common/requests.js';
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE, tokenExchangeForm, toolCallDetails } from './token.requests.js';
import { tokenResponse } from './token.responses.js';
import { CredentialIssuance, type CredentialRequest } from '../../../../libs/leases/index.js';

/**
 * RFC 8693 token exchange with RFC 9396 authorization details: the standards door to the same
 * credential request as POST /v1/tasks/{id}/credentials. The subject token is the workload's
 * assertion; the one tool call rides in authorization_details.
 */
@Controller('oauth2')
export class TokenController {
  constructor(
    private readonly authenticator: WorkloadAuthenticator,
    private readonly issuance: CredentialIssuance,
    private readonly dpop: DpopVerifier,
  ) {}

  @Post('token')
  @HttpCode(200)
  // No client authentication: the subject token (the workload's assertion) is the credential.
  @ApiRoute({
    summary: 'RFC 8693 token exchange for the tool call in authorization_details',
    form: tokenExchangeForm,
    headers: { DPoP: dpopHeader },
    responses: { 200: tokenResponse },
    errors: [401, 429],
    security: [],
  })
  @Header('cache-control', 'no-store')
  @Header('pragma', 'no-cache')
  async token(@Req() httpRequest: FastifyRequest, @Body() body: unknown) {
    const form = (body ?? {}) as Record<string, unknown>;
    if (form.grant_type === undefined) throw new TokenEndpointError('invalid_request', 'grant_type is required', { field: 'grant_type' });
    if (form.grant_type !== TOKEN_EXCHANGE) {
      throw new TokenEndpointError('unsupported_grant_type', `only ${TOKEN_EXCHANGE} is supported`);
    }
    const input = parse(tokenExchangeForm, form);
    const workload = await this.authenticator.authenticate(input.subject_token);
    if (input.client_id !== undefined && input.client_id !== workload.id) {
      throw new InvalidClient('client_id does not name the workload of the subject token');
    }
    const call = parse(toolCallDetails, parseJson(input.authorization_details), 'authorization_details', { decided: [[0, 'params']] })[0]!;
    if (input.scope !== undefined && input.scope !== call.action) {
      throw new TokenEndpointError('invalid_request', 'scope must be the action of the tool call', { field: 'scope' });
    }
    // RFC 8707 `resource` and RFC 8693 `audience` both name the tool (the token's aud); one is enough.
    if (input.resource !== undefined && input.audience !== undefined && input.resource !== input.audience) {
      throw new TokenEndpointError('invalid_request', 'resource and audience must name the same tool', { field: 'resource' });
    }
    const proof = proofOfPossession(this.dpop, httpRequest);
    const confirmation = proof && (await proof);
    const request: CredentialRequest = {
      taskId: call.task_id,
      boundary: call.boundary,
      action: call.action,
      resource: call.resource,
      params: call.params,
      approvalId: call.approval_id,
      audience: input.resource ?? input.audience,
      confirmation,
    };
    try {
      const issued = await this.issuance.request(workload.id, request);
      return {
        access_token: issued.credential.access_token,
        issued_token_type: ACCESS_TOKEN_TYPE,
        token_type: issued.credential.token_type,
        expires_in: issued.expiresIn,
        scope: call.action,
        lease_id: issued.leaseId,
      };
    } catch (error) {
      throw asTokenEndpointError(error, input.resource !== undefined);
    }
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new InvalidRequest('authorization_details: must be a JSON array', { field: 'authorization_details' });
  }
}

/** The /v1 API's answers, as RFC 6749 §5.2 spells them at a token endpoint. */
function asTokenEndpointError(error: unknown, namedResource: boolean): unknown {
  // RFC 8628 §3.5's answer for "not yet": the client polls, then repeats with approval_id.
  if (error instanceof ApprovalPending)
    return new TokenEndpointError('authorization_pending', error.description, { approval_id: error.approvalId });
  if (error instanceof AccessDenied) {
    // RFC 8707 §2: a resource (or audience) that is not the boundary's tool.
    if (error.reasons.includes('audience_mismatch')) {
      const description = namedResource ? "the resource is not the boundary's tool" : error.description;
      return new InvalidTarget(description, error.extra);
    }
    return new TokenEndpointError('access_denied', error.description, error.extra);
  }
  if (error instanceof NotFound) return new TokenEndpointError('invalid_grant', 'no such task for this workload');
  return error;
}
