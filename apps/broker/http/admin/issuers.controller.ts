import type { z } from 'zod';
import { Body, Controller, Delete, Get, Inject, Param, Put, Req, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { InvalidRequest } from '../../../../libs/errors/index.js';
import { Issuers } from '../../../../libs/identity/index.js';
import type { Broker } from '../../broker.js';
import { BROKER } from '../../tokens.js';
import { actorOf, AdminGuard } from '../auth.js';
import { ApiRoute, created } from '../openapi.js';
import { emptyBody, ID, parse } from '../common/requests.js';
import { issuerBody, toIssuerDefinition } from './issuers.requests.js';
import { issuerList, issuerResponse, issuerView, issuerWithdrawnResponse } from './issuers.responses.js';

/** The admin API for trusted issuers: whose tokens authenticate the workloads bound to them. */
@Controller('v1/admin/issuers')
@UseGuards(AdminGuard)
export class IssuersController {
  constructor(
    private readonly issuers: Issuers,
    @Inject(BROKER) private readonly broker: Pick<Broker, 'config'>,
  ) {}

  @Put(':id')
  @ApiRoute({
    summary: 'Trust an issuer (SPIRE, Kubernetes, OIDC) or change it',
    body: issuerBody,
    responses: { 200: issuerResponse, 201: created(issuerResponse) },
    errors: [409],
  })
  async put(
    @Req() request: FastifyRequest,
    @Param('id') id: string,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<z.infer<typeof issuerResponse>> {
    const { enabled, ...definition } = parse(issuerBody, body);
    const { issuer, created } = await this.issuers.put(
      issuerId(id),
      toIssuerDefinition(definition, this.broker.config.issuer),
      enabled,
      actorOf(request),
    );
    reply.status(created ? 201 : 200);
    return issuerView(issuer);
  }

  @Get()
  @ApiRoute({ summary: 'Every trusted issuer', responses: { 200: issuerList } })
  async list(): Promise<z.infer<typeof issuerList>> {
    return { items: (await this.issuers.list()).map(issuerView) };
  }

  @Get(':id')
  @ApiRoute({ summary: 'One trusted issuer', responses: { 200: issuerResponse }, errors: [404] })
  async get(@Param('id') id: string): Promise<z.infer<typeof issuerResponse>> {
    return issuerView(await this.issuers.get(issuerId(id)));
  }

  /** Withdraws trust: the issuer is disabled and every workload bound to it gets the kill switch. */
  @Delete(':id')
  @ApiRoute({
    summary: 'Withdraw trust: disable the issuer and kill every workload bound to it',
    body: emptyBody,
    responses: { 200: issuerWithdrawnResponse },
    errors: [404],
  })
  async delete(
    @Req() request: FastifyRequest,
    @Param('id') id: string,
    @Body() body: unknown,
  ): Promise<z.infer<typeof issuerWithdrawnResponse>> {
    parse(emptyBody, body ?? {});
    const { issuer, workloads, tasks, leases } = await this.issuers.withdraw(issuerId(id), actorOf(request));
    return { ...issuerView(issuer), revoked_workloads: workloads, revoked_tasks: tasks, revoked_leases: leases };
  }
}

function issuerId(id: string): string {
  if (!ID.test(id)) throw new InvalidRequest('id: must match [a-z0-9][a-z0-9._-]{0,62}', { field: 'id' });
  return id;
}
