import type { z } from 'zod';
import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Req, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { JWK } from 'jose';
import { InvalidRequest } from '../../../../libs/errors/index.js';
import { WORKLOAD_ID } from '../../../../libs/identity/index.js';
import { Workloads } from '../../../../libs/identity/index.js';
import { Boundaries } from '../../../../libs/policy/index.js';
import { actorOf, AdminGuard } from '../auth.js';
import { emptyBody, ID, parse } from '../common/requests.js';
import { ApiRoute, created } from '../openapi.js';
import { boundaryBody, toBoundaryDefinition } from './boundaries.requests.js';
import { boundaryChangeResponse, boundaryList, boundaryResponse, boundaryView } from './boundaries.responses.js';
import { toWorkloadRateLimit, workloadBody } from './workloads.requests.js';
import { workloadList, workloadResponse, workloadRevokedResponse, workloadView } from './workloads.responses.js';

/** The admin API: tool boundaries, workloads, and the kill switch. */
@Controller('v1/admin')
@UseGuards(AdminGuard)
export class AdminController {
  constructor(
    private readonly boundaries: Boundaries,
    private readonly workloads: Workloads,
  ) {}

  @Put('boundaries/:id')
  @ApiRoute({
    summary: 'Create or change a tool boundary',
    body: boundaryBody,
    responses: { 200: boundaryChangeResponse, 201: created(boundaryChangeResponse) },
  })
  async putBoundary(
    @Req() request: FastifyRequest,
    @Param('id') id: string,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<z.infer<typeof boundaryChangeResponse>> {
    const definition = toBoundaryDefinition(parse(boundaryBody, body));
    const { boundary, created, revokedLeases } = await this.boundaries.put(boundaryId(id), definition, actorOf(request));
    reply.status(created ? 201 : 200);
    return { ...boundaryView(boundary), revoked_leases: revokedLeases.length };
  }

  @Get('boundaries')
  @ApiRoute({ summary: 'Every tool boundary', responses: { 200: boundaryList } })
  async listBoundaries(): Promise<z.infer<typeof boundaryList>> {
    return { items: (await this.boundaries.list()).map(boundaryView) };
  }

  @Get('boundaries/:id')
  @ApiRoute({ summary: 'One tool boundary', responses: { 200: boundaryResponse }, errors: [404] })
  async getBoundary(@Param('id') id: string): Promise<z.infer<typeof boundaryResponse>> {
    return boundaryView(await this.boundaries.get(boundaryId(id)));
  }

  @Delete('boundaries/:id')
  @ApiRoute({
    summary: 'Disable a tool boundary and revoke its leases',
    body: emptyBody,
    responses: { 200: boundaryChangeResponse },
    errors: [404],
  })
  async deleteBoundary(
    @Req() request: FastifyRequest,
    @Param('id') id: string,
    @Body() body: unknown,
  ): Promise<z.infer<typeof boundaryChangeResponse>> {
    parse(emptyBody, body ?? {});
    const { boundary, revokedLeases } = await this.boundaries.disable(boundaryId(id), actorOf(request));
    return { ...boundaryView(boundary), revoked_leases: revokedLeases.length };
  }

  @Put('workloads/:id')
  @ApiRoute({
    summary: "Register a workload with its keys, or bind it to a trusted issuer's subject",
    body: workloadBody,
    responses: { 200: workloadResponse, 201: created(workloadResponse) },
    errors: [409],
  })
  async putWorkload(
    @Req() request: FastifyRequest,
    @Param('id') id: string,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<z.infer<typeof workloadResponse>> {
    const { jwks, issuer, subject, enabled, rate_limit } = parse(workloadBody, body);
    const credentials = jwks ? { jwks: { keys: jwks.keys as JWK[] } } : { issuerId: issuer!, subject: subject! };
    const { workload, created } = await this.workloads.put(
      workloadId(id),
      credentials,
      enabled,
      toWorkloadRateLimit(rate_limit),
      actorOf(request),
    );
    reply.status(created ? 201 : 200);
    return workloadView(workload);
  }

  @Get('workloads')
  @ApiRoute({ summary: 'Every workload', responses: { 200: workloadList } })
  async listWorkloads(): Promise<z.infer<typeof workloadList>> {
    return { items: (await this.workloads.list()).map(workloadView) };
  }

  @Get('workloads/:id')
  @ApiRoute({ summary: 'One workload', responses: { 200: workloadResponse }, errors: [404] })
  async getWorkload(@Param('id') id: string): Promise<z.infer<typeof workloadResponse>> {
    return workloadView(await this.workloads.get(workloadId(id)));
  }

  @Delete('workloads/:id')
  @ApiRoute({
    summary: 'Disable a workload, revoking its tasks and leases',
    body: emptyBody,
    responses: { 200: workloadRevokedResponse },
    errors: [404],
  })
  async deleteWorkload(
    @Req() request: FastifyRequest,
    @Param('id') id: string,
    @Body() body: unknown,
  ): Promise<z.infer<typeof workloadRevokedResponse>> {
    parse(emptyBody, body ?? {});
    const { tasks, leases } = await this.workloads.revoke(workloadId(id), actorOf(request), 'workload.deleted');
    return { workload_id: id, enabled: false, revoked_tasks: tasks.length, revoked_leases: leases.length };
  }

  @Post('workloads/:id/revoke')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Kill switch: disable a workload and revoke its tasks and leases',
    body: emptyBody,
    responses: { 200: workloadRevokedResponse },
    errors: [404],
  })
  async revokeWorkload(
    @Req() request: FastifyRequest,
    @Param('id') id: string,
    @Body() body: unknown,
  ): Promise<z.infer<typeof workloadRevokedResponse>> {
    parse(emptyBody, body ?? {});
    const { tasks, leases } = await this.workloads.revoke(workloadId(id), actorOf(request));
    return { workload_id: id, enabled: false, revoked_tasks: tasks.length, revoked_leases: leases.length };
  }
}

function boundaryId(id: string): string {
  if (!ID.test(id)) throw new InvalidRequest('id: must match [a-z0-9][a-z0-9._-]{0,62}', { field: 'id' });
  return id;
}

function workloadId(id: string): string {
  if (!WORKLOAD_ID.test(id)) throw new InvalidRequest('id: must be a slug [a-z0-9][a-z0-9._-]{0,62} or a SPIFFE ID', { field: 'id' });
  return id;
}
