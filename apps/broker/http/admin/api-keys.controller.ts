import type { z } from 'zod';
import { Body, Controller, Delete, Get, Header, HttpCode, Param, Post, Req, UseGuards } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { JWK } from 'jose';
import { ApiKeys } from '../../../../libs/identity/index.js';
import { actorOf, AdminGuard } from '../auth.js';
import { ApiRoute } from '../openapi.js';
import { emptyBody, parse } from '../common/requests.js';
import { apiKeyBody } from './api-keys.requests.js';
import { apiKeyList, apiKeyResponse, apiKeyView, createdApiKeyResponse } from './api-keys.responses.js';

/** API keys: admins create and revoke them, reviewers list them; the key is shown once. */
@Controller('v1/admin/api-keys')
@UseGuards(AdminGuard)
export class ApiKeysController {
  constructor(private readonly keys: ApiKeys) {}

  @Post()
  @HttpCode(201)
  @Header('cache-control', 'no-store')
  @ApiRoute({ summary: 'Create an API key (shown once)', body: apiKeyBody, responses: { 201: createdApiKeyResponse } })
  async create(@Req() request: FastifyRequest, @Body() body: unknown): Promise<z.infer<typeof createdApiKeyResponse>> {
    const input = parse(apiKeyBody, body);
    const { apiKey, secret } = await this.keys.create(
      { role: input.role, audience: input.audience, label: input.label, jwks: input.jwks && { keys: input.jwks.keys as JWK[] } },
      actorOf(request),
    );
    return { ...apiKeyView(apiKey), key: secret };
  }

  @Get()
  @ApiRoute({ summary: 'Every API key, without key material', responses: { 200: apiKeyList } })
  async list(): Promise<z.infer<typeof apiKeyList>> {
    return { items: (await this.keys.list()).map(apiKeyView) };
  }

  @Delete(':id')
  @ApiRoute({ summary: 'Revoke an API key', body: emptyBody, responses: { 200: apiKeyResponse }, errors: [404] })
  async revoke(@Req() request: FastifyRequest, @Param('id') id: string, @Body() body: unknown): Promise<z.infer<typeof apiKeyResponse>> {
    parse(emptyBody, body ?? {});
    return apiKeyView(await this.keys.revoke(id, actorOf(request)));
  }
}
