import type { z } from 'zod';
import { Body, Controller, Get, HttpCode, Param, Post, Req, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApprovalPending, NotFound } from '../../../../libs/errors/index.js';
import { isUuid } from '../../../../libs/ids/index.js';
import { CredentialIssuance } from '../../../../libs/leases/index.js';
import { Tasks } from '../../../../libs/tasks/index.js';
import type { Lease } from '../../../../libs/leases/index.js';
import { DpopVerifier } from '../../../../libs/identity/index.js';
import { callerOf, proofOfPossession, WorkloadGuard } from '../auth.js';
import { dpopHeader, emptyBody, parse } from '../common/requests.js';
import { ApiRoute } from '../openapi.js';
import { approvalPendingResponse } from '../approvals/approvals.responses.js';
import { leaseView } from '../review/leases.responses.js';
import { credentialBody, intentBody, openTaskBody } from './tasks.requests.js';
import { credentialResponse, taskChangeResponse, taskDetailResponse, taskEventView, taskResponse, taskView } from './tasks.responses.js';

/** The bot's API: open a task, ask for a credential before each tool call, report the journey. */
@Controller('v1/tasks')
@UseGuards(WorkloadGuard)
export class TasksController {
  constructor(
    private readonly tasks: Tasks<Lease>,
    private readonly issuance: CredentialIssuance,
    private readonly dpop: DpopVerifier,
  ) {}

  @Post()
  @HttpCode(201)
  @ApiRoute({
    summary: 'Open a task: one user journey with its intent',
    body: openTaskBody,
    responses: { 201: taskResponse },
    errors: [429],
  })
  async open(@Req() request: FastifyRequest, @Body() body: unknown): Promise<z.infer<typeof taskResponse>> {
    const input = parse(openTaskBody, body);
    const task = await this.tasks.open(workloadOf(request), input);
    return taskView(task);
  }

  @Get(':id')
  @ApiRoute({ summary: 'The task with its events and leases', responses: { 200: taskDetailResponse }, errors: [404] })
  async show(@Req() request: FastifyRequest, @Param('id') id: string): Promise<z.infer<typeof taskDetailResponse>> {
    const { task, events, leases } = await this.tasks.view(workloadOf(request), taskId(id));
    return { ...taskView(task), events: events.map(taskEventView), leases: leases.map(leaseView) };
  }

  @Post(':id/credentials')
  @HttpCode(201)
  @ApiRoute({
    summary: 'A credential for one tool call, checked against the task and the boundary',
    body: credentialBody,
    headers: { DPoP: dpopHeader },
    responses: { 201: credentialResponse, 202: approvalPendingResponse },
    errors: [403, 404, 409, 429],
  })
  async credential(
    @Req() request: FastifyRequest,
    @Param('id') id: string,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<z.infer<typeof credentialResponse> | z.infer<typeof approvalPendingResponse>> {
    const { approval_id: approvalId, ...input } = parse(credentialBody, body, 'body', { decided: [['params']] });
    const task = taskId(id);
    const proof = proofOfPossession(this.dpop, request);
    const confirmation = proof && (await proof);
    let issued;
    try {
      issued = await this.issuance.request(workloadOf(request), { taskId: task, ...input, confirmation, approvalId });
    } catch (error) {
      if (!(error instanceof ApprovalPending)) throw error;
      reply.status(202);
      return { approval_id: error.approvalId, status: 'pending', expires_at: error.expiresAt.toISOString() };
    }
    return {
      lease_id: issued.leaseId,
      expires_at: issued.expiresAt.toISOString(),
      expires_in: issued.expiresIn,
      credential: issued.credential,
    };
  }

  @Post(':id/intent')
  @HttpCode(200)
  @ApiRoute({
    summary: "Report an intent change: revokes the task's active leases",
    body: intentBody,
    responses: { 200: taskChangeResponse },
    errors: [404, 409],
  })
  async intent(
    @Req() request: FastifyRequest,
    @Param('id') id: string,
    @Body() body: unknown,
  ): Promise<z.infer<typeof taskChangeResponse>> {
    const { intent } = parse(intentBody, body);
    const { task, revokedLeases } = await this.tasks.changeIntent(workloadOf(request), taskId(id), intent);
    return { ...taskView(task), revoked_leases: revokedLeases };
  }

  @Post(':id/complete')
  @HttpCode(200)
  @ApiRoute({
    summary: "Complete the task: revokes the task's active leases",
    body: emptyBody,
    responses: { 200: taskChangeResponse },
    errors: [404, 409],
  })
  async complete(
    @Req() request: FastifyRequest,
    @Param('id') id: string,
    @Body() body: unknown,
  ): Promise<z.infer<typeof taskChangeResponse>> {
    parse(emptyBody, body ?? {});
    const { task, revokedLeases } = await this.tasks.complete(workloadOf(request), taskId(id));
    return { ...taskView(task), revoked_leases: revokedLeases };
  }
}

function workloadOf(request: FastifyRequest): string {
  return callerOf(request).workloadId!;
}

/** Task ids are UUIDs; anything else cannot name a task, so it is simply not found. */
function taskId(id: string): string {
  if (!isUuid(id)) throw new NotFound('no such task');
  return id;
}
