import { Controller, Get, Query, UseGuards } from '@nestjs/common';
import { LeaseStore } from '../../../libs/leases/lease-store.js';
import { ReviewerGuard } from './auth.js';
import { decisionQuery, encodeCursor, leaseQuery, parse } from './schemas.js';
import { ApiRoute } from './openapi.js';
import { decisionPage, leasePage } from './responses.js';
import { decisionView, leaseView } from './views.js';

/** Lease history and decisions for reviewers, newest first, with cursor pagination. */
@Controller('v1')
@UseGuards(ReviewerGuard)
export class ReviewController {
  constructor(private readonly leases: LeaseStore) {}

  @Get('leases')
  @ApiRoute({ summary: 'Lease history, newest first', query: leaseQuery, responses: { 200: leasePage } })
  async listLeases(@Query() query: unknown) {
    const filter = parse(leaseQuery, query, 'query');
    const items = await this.leases.list(filter);
    return { items: items.map(leaseView), next_cursor: nextCursor(items, filter.limit) };
  }

  @Get('decisions')
  @ApiRoute({ summary: 'Decisions (permit, deny, pending), newest first: denials are the drift signal', query: decisionQuery, responses: { 200: decisionPage } })
  async listDecisions(@Query() query: unknown) {
    const filter = parse(decisionQuery, query, 'query');
    const items = await this.leases.listDecisions(filter);
    return { items: items.map(decisionView), next_cursor: nextCursor(items, filter.limit) };
  }
}

function nextCursor(items: readonly { id: string }[], limit: number): string | null {
  return items.length === limit ? encodeCursor(items[items.length - 1]!.id) : null;
}
