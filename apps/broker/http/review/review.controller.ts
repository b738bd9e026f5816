import type { z } from 'zod';
import { Body, Controller, Get, HttpCode, Param, Post, Query, Req, UseGuards } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { NotFound } from '../../../../libs/errors/index.js';
import { isUuid } from '../../../../libs/ids/index.js';
import { DecisionLedger } from '../../../../libs/leases/index.js';
import { LeaseStore } from '../../../../libs/leases/index.js';
import { LeaseRevocation } from '../../../../libs/leases/index.js';
import { TaskHistory } from '../../../../libs/review/index.js';
import { Tasks } from '../../../../libs/tasks/index.js';
import type { Lease } from '../../../../libs/leases/index.js';
import { actorOf, AdminGuard, ReviewerGuard } from '../auth.js';
import { encodeCursor, parse } from '../common/requests.js';
import { ApiRoute } from '../openapi.js';
import { taskChangeResponse, taskView } from '../tasks/tasks.responses.js';
import { leasePage, leaseRevokedResponse, leaseView } from './leases.responses.js';
import { decisionQuery, leaseQuery, revokeBody } from './review.requests.js';
import { decisionPage, decisionView, timelineEventView, timelineResponse } from './review.responses.js';

/** Lease history, decisions and task timelines for reviewers, newest first, with cursor pagination. */
@Controller('v1')
@UseGuards(ReviewerGuard)
export class ReviewController {
  constructor(
    private readonly leases: LeaseStore,
    private readonly decisions: DecisionLedger,
    private readonly history: TaskHistory,
  ) {}

  @Get('leases')
  @ApiRoute({ summary: 'Lease history, newest first', query: leaseQuery, responses: { 200: leasePage } })
  async listLeases(@Query() query: unknown): Promise<z.infer<typeof leasePage>> {
    const filter = parse(leaseQuery, query, 'query');
    const items = await this.leases.list(filter);
    return { items: items.map(leaseView), next_cursor: nextCursor(items, filter.limit) };
  }

  @Get('decisions')
  @ApiRoute({
    summary: 'Decisions (permit, deny, pending), newest first: denials are the drift signal',
    query: decisionQuery,
    responses: { 200: decisionPage },
  })
  async listDecisions(@Query() query: unknown): Promise<z.infer<typeof decisionPage>> {
    const filter = parse(decisionQuery, query, 'query');
    const items = await this.decisions.listDecisions(filter);
    return { items: items.map(decisionView), next_cursor: nextCursor(items, filter.limit) };
  }

  @Get('tasks/:id/timeline')
  @ApiRoute({
    summary: "A task's story in time order: opened, intent changes, decisions with their reasons, leases, approvals, revocations, its end",
    responses: { 200: timelineResponse },
    errors: [404],
  })
  async timeline(@Param('id') id: string): Promise<z.infer<typeof timelineResponse>> {
    const { task, events } = await this.history.timeline(uuidOf(id, 'task'));
    return { task: taskView(task), events: events.map(timelineEventView) };
  }
}

/** Admin revocation of one lease or one task (the workload kill switch is in AdminController). */
@Controller('v1/admin')
@UseGuards(AdminGuard)
export class RevocationController {
  constructor(
    private readonly leases: LeaseStore,
    private readonly revocation: LeaseRevocation,
    private readonly tasks: Tasks<Lease>,
  ) {}

  @Post('leases/:id/revoke')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Revoke one lease (revoked_by_admin); revoking it again changes nothing',
    body: revokeBody,
    responses: { 200: leaseRevokedResponse },
    errors: [404],
  })
  async revokeLease(
    @Req() request: FastifyRequest,
    @Param('id') id: string,
    @Body() body: unknown,
  ): Promise<z.infer<typeof leaseRevokedResponse>> {
    const { reason } = parse(revokeBody, body ?? {});
    const leaseId = uuidOf(id, 'lease');
    if (!(await this.leases.find(leaseId))) throw new NotFound('no such lease');
    const revokedNow = await this.revocation.revokeLease(leaseId, 'revoked_by_admin', actorOf(request), reason);
    return { ...leaseView((await this.leases.find(leaseId))!), revoked_now: revokedNow };
  }

  @Post('tasks/:id/revoke')
  @HttpCode(200)
  @ApiRoute({
    summary: 'End a task and revoke its live leases (task_revoked); an ended task is left as it is',
    body: revokeBody,
    responses: { 200: taskChangeResponse },
    errors: [404],
  })
  async revokeTask(
    @Req() request: FastifyRequest,
    @Param('id') id: string,
    @Body() body: unknown,
  ): Promise<z.infer<typeof taskChangeResponse>> {
    const { reason } = parse(revokeBody, body ?? {});
    const { task, revokedLeases } = await this.tasks.revoke(uuidOf(id, 'task'), actorOf(request), reason);
    return { ...taskView(task), revoked_leases: revokedLeases };
  }
}

/** Lease and task ids are UUIDs; anything else cannot name one. */
function uuidOf(id: string, what: 'lease' | 'task'): string {
  if (!isUuid(id)) throw new NotFound(`no such ${what}`);
  return id;
}

function nextCursor(items: readonly { id: string }[], limit: number): string | null {
  return items.length === limit ? encodeCursor(items[items.length - 1]!.id) : null;
}
