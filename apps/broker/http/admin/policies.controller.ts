import type { z } from 'zod';
import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Req, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { InvalidRequest } from '../../../../libs/errors/index.js';
import { Policies } from '../../../../libs/policy/index.js';
import { Simulator } from '../../../../libs/policy/index.js';
import { WhatIf, type WhatIfInput } from '../../../../libs/policy/index.js';
import { actorOf, AdminGuard } from '../auth.js';
import { ApiRoute, created } from '../openapi.js';
import { emptyBody, ID, parse } from '../common/requests.js';
import { policyBody, simulateBody, whatIfBody } from './policies.requests.js';
import {
  policyList,
  policyResponse,
  policyView,
  simulationResponse,
  simulationView,
  whatIfResponse,
  whatIfView,
} from './policies.responses.js';

/** Global Cedar policy sets, simulation of a request, and what-if replays of a proposed policy. */
@Controller('v1/admin')
@UseGuards(AdminGuard)
export class PoliciesController {
  constructor(
    private readonly policies: Policies,
    private readonly simulator: Simulator,
    private readonly whatIf: WhatIf,
  ) {}

  @Put('policies/:id')
  @ApiRoute({
    summary: 'Create or change a global Cedar policy set (a new version)',
    body: policyBody,
    responses: { 200: policyResponse, 201: created(policyResponse) },
  })
  async putPolicy(
    @Req() request: FastifyRequest,
    @Param('id') id: string,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<z.infer<typeof policyResponse>> {
    const { policy, description } = parse(policyBody, body);
    const result = await this.policies.put(policyId(id), policy, description, actorOf(request));
    reply.status(result.created ? 201 : 200);
    return policyView(result.policy);
  }

  @Get('policies')
  @ApiRoute({ summary: 'Every global policy set, at its current version', responses: { 200: policyList } })
  async listPolicies(): Promise<z.infer<typeof policyList>> {
    return { items: (await this.policies.list()).map(policyView) };
  }

  @Get('policies/:id')
  @ApiRoute({ summary: 'One global policy set', responses: { 200: policyResponse }, errors: [404] })
  async getPolicy(@Param('id') id: string): Promise<z.infer<typeof policyResponse>> {
    return policyView(await this.policies.get(policyId(id)));
  }

  @Delete('policies/:id')
  @ApiRoute({ summary: 'Disable a global policy set (a new version)', body: emptyBody, responses: { 200: policyResponse }, errors: [404] })
  async deletePolicy(
    @Req() request: FastifyRequest,
    @Param('id') id: string,
    @Body() body: unknown,
  ): Promise<z.infer<typeof policyResponse>> {
    parse(emptyBody, body ?? {});
    return policyView(await this.policies.disable(policyId(id), actorOf(request)));
  }

  @Post('simulate')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Decide a credential request as it would be now, writing nothing',
    body: simulateBody,
    responses: { 200: simulationResponse },
  })
  async simulate(@Body() body: unknown): Promise<z.infer<typeof simulationResponse>> {
    const { workload, task, request } = parse(simulateBody, body);
    return simulationView(await this.simulator.simulate({ workloadId: workload, task, request }));
  }

  @Post('policies/:id/what-if')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Replay recorded decisions against a proposed global policy set',
    body: whatIfBody,
    responses: { 200: whatIfResponse },
  })
  async whatIfPolicy(@Param('id') id: string, @Body() body: unknown): Promise<z.infer<typeof whatIfResponse>> {
    return whatIfView(await this.whatIf.run(whatIfInput({ kind: 'global', id: policyId(id) }, body)));
  }

  @Post('boundaries/:id/what-if')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Replay recorded decisions against a proposed policy of a boundary',
    body: whatIfBody,
    responses: { 200: whatIfResponse },
    errors: [404],
  })
  async whatIfBoundary(@Param('id') id: string, @Body() body: unknown): Promise<z.infer<typeof whatIfResponse>> {
    return whatIfView(await this.whatIf.run(whatIfInput({ kind: 'boundary', id: policyId(id) }, body)));
  }
}

function whatIfInput(target: WhatIfInput['target'], body: unknown): WhatIfInput {
  const { policy, since, until, limit } = parse(whatIfBody, body);
  return { target, policy, since: since ? new Date(since) : undefined, until: until ? new Date(until) : undefined, limit };
}

function policyId(id: string): string {
  if (!ID.test(id)) throw new InvalidRequest('id: must match [a-z0-9][a-z0-9._-]{0,62}', { field: 'id' });
  return id;
}
