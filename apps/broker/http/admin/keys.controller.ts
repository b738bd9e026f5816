import type { z } from 'zod';
import { Body, Controller, Get, HttpCode, Post, Req, UseGuards } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { SigningKeyRing } from '../../../../libs/keys/index.js';
import { actorOf, AdminGuard } from '../auth.js';
import { ApiRoute } from '../openapi.js';
import { emptyBody, parse } from '../common/requests.js';
import { keyView, signingKeyList, signingKeyRotation } from './keys.responses.js';

/** Tollgate's own signing keys: see what is published, rotate now. */
@Controller('v1/admin/keys')
@UseGuards(AdminGuard)
export class KeysController {
  constructor(private readonly keys: SigningKeyRing) {}

  @Get()
  @ApiRoute({ summary: 'The published signing keys (next, active, retired)', responses: { 200: signingKeyList } })
  list(): z.infer<typeof signingKeyList> {
    return { active_kid: this.keys.active.kid, keys: this.keys.published.map(keyView) };
  }

  /**
   * Promotes the pre-published next key at once (audited); the old key stays in the JWKS until
   * everything it signed has expired.
   */
  @Post('rotate')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Rotate now: the pre-published next key signs from now on',
    body: emptyBody,
    responses: { 200: signingKeyRotation },
  })
  async rotate(@Req() request: FastifyRequest, @Body() body: unknown): Promise<z.infer<typeof signingKeyRotation>> {
    parse(emptyBody, body ?? {});
    const rotated = (await this.keys.rotate(actorOf(request)))!;
    return {
      active_kid: rotated.activeKid,
      retired_kid: rotated.retiredKid ?? null,
      next_kid: rotated.nextKid,
      keys: this.keys.published.map(keyView),
    };
  }
}
