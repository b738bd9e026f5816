import 'reflect-metadata';
import { Controller, Get, HttpCode, Injectable, Post, Put, UseGuards, type CanActivate } from '@nestjs/common';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { WorkloadGuard } from './auth.js';
import { ApiRoute, buildOpenApi } from './openapi.js';
import { taskResponse } from './tasks/tasks.responses.js';

const thing = z.strictObject({ name: z.string().min(1), size: z.int().optional() });

@Injectable()
class HomemadeGuard implements CanActivate {
  canActivate(): boolean {
    return true;
  }
}

@Controller('v1/things')
@UseGuards(WorkloadGuard)
class ThingsController {
  @Put(':id/parts/:part')
  @ApiRoute({ summary: 'Put a part', body: thing, responses: { 200: taskResponse }, errors: [404] })
  put() {}

  @Get()
  list() {}

  @Post()
  @ApiRoute({ summary: 'Make a thing', responses: { 201: taskResponse } })
  make() {}

  @Post('wrong-status')
  @HttpCode(200)
  @ApiRoute({ summary: 'Answers 200, documents 201', body: thing, responses: { 201: taskResponse } })
  wrongStatus() {}

  @Get('guarded')
  @UseGuards(HomemadeGuard)
  @ApiRoute({ summary: 'A guard the document does not know', responses: { 200: taskResponse } })
  guarded() {}
}

describe('buildOpenApi', () => {
  const { document, problems } = buildOpenApi([ThingsController], { issuer: 'https://tollgate.test' }) as {
    document: Record<string, any>;
    problems: string[];
  };

  it('takes paths, methods, parameters and security from the route metadata and the body from the zod schema', () => {
    const put = document.paths['/v1/things/{id}/parts/{part}'].put;
    expect(put.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`)).toEqual(['path:id', 'path:part']);
    expect(put.security).toEqual([{ workloadAssertion: [] }]);
    expect(put.requestBody).toEqual({
      required: true,
      content: {
        'application/json': {
          schema: {
            type: 'object',
            properties: {
              name: { type: 'string', minLength: 1 },
              size: { type: 'integer', minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER },
            },
            required: ['name'],
            additionalProperties: false,
          },
        },
      },
    });
    expect(put.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Task' });
    expect(Object.keys(put.responses)).toEqual(['200', '400', '401', '404', '413', '414', '415', '503']);
    expect(document.servers).toEqual([{ url: 'https://tollgate.test' }]);
  });

  it('names every route whose documentation is missing or wrong, and still lists it', () => {
    expect(problems).toEqual([
      'GET /v1/things (ThingsController.list): has no @ApiRoute({...}) (apps/broker/http/openapi.ts)',
      'POST /v1/things (ThingsController.make): has no request body schema: add body: <the zod schema its handler parses> (emptyBody if it takes none) to its @ApiRoute',
      'POST /v1/things/wrong-status (ThingsController.wrongStatus): answers 200 but documents only 201',
      'GET /v1/things/guarded (ThingsController.guarded): guard HomemadeGuard is not in GUARD_SECURITY (apps/broker/http/openapi.ts)',
    ]);
    expect(document.paths['/v1/things'].get.summary).toBe('undocumented');
  });
});
