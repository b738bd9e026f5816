import type { z } from 'zod';
import { Body, Controller, Get, HttpCode, Param, Post, Query, Req, UseGuards } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { Approvals } from '../../../../libs/approvals/index.js';
import { NotFound } from '../../../../libs/errors/index.js';
import { isUuid } from '../../../../libs/ids/index.js';
import { actorOf, ApproverGuard } from '../auth.js';
import { ApiRoute } from '../openapi.js';
import { encodeCursor, parse } from '../common/requests.js';
import { approvalDecisionBody, approvalQuery } from './approvals.requests.js';
import { approvalPage, approvalResponse, approvalView } from './approvals.responses.js';

/** Human approval (step-up): reviewers and admins list, approve and deny waiting credential requests. */
@Controller('v1/approvals')
@UseGuards(ApproverGuard)
export class ApprovalsController {
  constructor(private readonly approvals: Approvals) {}

  @Get()
  @ApiRoute({ summary: 'Approvals, newest first (status=pending: the queue)', query: approvalQuery, responses: { 200: approvalPage } })
  async list(@Query() query: unknown): Promise<z.infer<typeof approvalPage>> {
    const filter = parse(approvalQuery, query, 'query');
    const items = await this.approvals.list(filter);
    return {
      items: items.map(approvalView),
      next_cursor: items.length === filter.limit ? encodeCursor(items[items.length - 1]!.id) : null,
    };
  }

  @Get(':id')
  @ApiRoute({
    summary: 'One approval: the exact request it is bound to, and who decided it',
    responses: { 200: approvalResponse },
    errors: [404],
  })
  async show(@Param('id') id: string): Promise<z.infer<typeof approvalResponse>> {
    return approvalView(await this.approvals.get(approvalId(id)));
  }

  @Post(':id/approve')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Approve a pending credential request: the bot may repeat it once',
    body: approvalDecisionBody,
    responses: { 200: approvalResponse },
    errors: [404, 409],
  })
  async approve(@Req() request: FastifyRequest, @Param('id') id: string, @Body() body: unknown): Promise<z.infer<typeof approvalResponse>> {
    return this.decide(request, id, body, 'approved');
  }

  @Post(':id/deny')
  @HttpCode(200)
  @ApiRoute({
    summary: 'Deny a pending credential request',
    body: approvalDecisionBody,
    responses: { 200: approvalResponse },
    errors: [404, 409],
  })
  async deny(@Req() request: FastifyRequest, @Param('id') id: string, @Body() body: unknown): Promise<z.infer<typeof approvalResponse>> {
    return this.decide(request, id, body, 'denied');
  }

  private async decide(
    request: FastifyRequest,
    id: string,
    body: unknown,
    verdict: 'approved' | 'denied',
  ): Promise<z.infer<typeof approvalResponse>> {
    const { reason } = parse(approvalDecisionBody, body);
    const approval = await this.approvals.decide(approvalId(id), verdict, actorOf(request), reason);
    return approvalView(approval);
  }
}

/** Approval ids are UUIDs; anything else cannot name one. */
function approvalId(id: string): string {
  if (!isUuid(id)) throw new NotFound('no such approval');
  return id;
}
