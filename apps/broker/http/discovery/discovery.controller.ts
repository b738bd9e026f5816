import type { z } from 'zod';
import { Controller, Get, Header, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { CLIENT_ASSERTION_ALGORITHMS, CLIENT_AUTH_METHODS } from '../../../../libs/identity/index.js';
import type { Broker } from '../../broker.js';
import { BROKER, SERVING_STATE } from '../../tokens.js';
import type { ServingState } from '../../shutdown.js';
import { DPOP_ALGORITHMS } from '../../../../libs/identity/index.js';
import { jwkSetView } from '../common/responses.js';
import { ApiRoute } from '../openapi.js';
import { healthResponse, jwksResponse, metadataResponse, readinessResponse } from './discovery.responses.js';
import { Inject } from '@nestjs/common';

/** Discovery (JWKS, RFC 8414 metadata), health and metrics: no authentication. */
@Controller()
export class DiscoveryController {
  constructor(
    @Inject(BROKER) private readonly broker: Pick<Broker, 'config' | 'keys' | 'db' | 'metrics'>,
    @Inject(SERVING_STATE) private readonly serving: Pick<ServingState, 'draining'>,
  ) {}

  @Get('.well-known/jwks.json')
  @ApiRoute({ summary: 'Public signing keys (current and previous during rotation)', responses: { 200: jwksResponse } })
  @Header('cache-control', 'public, max-age=60')
  jwks(): z.infer<typeof jwksResponse> {
    return jwkSetView({ keys: this.broker.keys.publicJwks });
  }

  @Get('.well-known/oauth-authorization-server')
  @ApiRoute({ summary: 'RFC 8414 authorization server metadata', responses: { 200: metadataResponse } })
  @Header('cache-control', 'public, max-age=300')
  metadata(): z.infer<typeof metadataResponse> {
    const issuer = this.broker.config.issuer;
    return {
      issuer,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      token_endpoint: `${issuer}/oauth2/token`,
      introspection_endpoint: `${issuer}/oauth2/introspect`,
      revocation_endpoint: `${issuer}/oauth2/revoke`,
      // The workload proves itself with its subject token, so the token endpoint takes no client secret.
      token_endpoint_auth_methods_supported: ['none'],
      // Resource servers are OAuth clients (RFC 6749 §2.3, RFC 7523); "bearer" is an API key as a Bearer token.
      introspection_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS],
      introspection_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_ALGORITHMS],
      revocation_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS],
      revocation_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_ALGORITHMS],
      grant_types_supported: ['urn:ietf:params:oauth:grant-type:token-exchange'],
      response_types_supported: [],
      scopes_supported: [],
      // The algs of the keys in the JWKS: during a change of alg, both.
      access_token_signing_alg_values_supported: this.broker.keys.algorithms,
      dpop_signing_alg_values_supported: [...DPOP_ALGORITHMS],
      authorization_details_types_supported: ['tool_call'],
      // RFC 8707 `resource` at the token endpoint (the tool: an MCP server's URL). RFC 8414 registers
      // no member for it; this is the name the resource-indicators drafts used, and it is harmless to others.
      resource_indicators_supported: true,
    };
  }

  @Get('healthz')
  @ApiRoute({ summary: 'Liveness', responses: { 200: healthResponse } })
  healthz(): z.infer<typeof healthResponse> {
    return { status: 'ok' };
  }

  /**
   * Ready only when the database answers and the replica is not shutting down: a load balancer must
   * not send credential requests here otherwise. Draining wins without asking the database: the
   * answer must turn 503 the moment SIGTERM arrives, whatever the database does.
   */
  @Get('readyz')
  @ApiRoute({
    summary: 'Readiness: ready only when the database answers and the replica is not shutting down',
    responses: {
      200: readinessResponse,
      503: { description: 'The replica is draining (shutting down), or the database does not answer', schema: readinessResponse },
    },
  })
  async readyz(@Res({ passthrough: true }) reply: FastifyReply): Promise<z.infer<typeof readinessResponse>> {
    if (this.serving.draining) {
      reply.status(503);
      return { status: 'unavailable', database: this.broker.db.kind, reason: 'draining' };
    }
    try {
      await this.broker.db.ping();
      return { status: 'ready', database: this.broker.db.kind };
    } catch {
      reply.status(503);
      return { status: 'unavailable', database: this.broker.db.kind, reason: 'database_unavailable' };
    }
  }

  @Get('metrics')
  @ApiRoute({
    summary: 'Prometheus metrics',
    responses: { 200: { description: 'Prometheus text exposition format', contentType: 'text/plain' } },
  })
  async metrics(@Res({ passthrough: true }) reply: FastifyReply) {
    reply.header('content-type', this.broker.metrics.registry.contentType);
    return this.broker.metrics.registry.metrics();
  }
}
