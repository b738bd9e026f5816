import { Controller, Get, Header, Inject } from '@nestjs/common';
import { OPENAPI } from '../../tokens.js';
import { ApiRoute } from '../openapi.js';

/** GET /openapi.json: the whole HTTP API, generated from the controllers at start. No authentication. */
@Controller()
export class OpenApiController {
  constructor(@Inject(OPENAPI) private readonly document: Record<string, unknown>) {}

  @Get('openapi.json')
  @Header('cache-control', 'public, max-age=300')
  @ApiRoute({
    summary: 'This document (OpenAPI 3.1)',
    responses: { 200: { description: 'OpenAPI 3.1 document', contentType: 'application/json' } },
  })
  openapi() {
    return this.document;
  }
}
