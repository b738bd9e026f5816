import { Controller, Get, Query, UseGuards } from '@nestjs/common';
import { LeaseStore } from '../../../libs/leases/lease-store.js';
import { ReviewerGuard } from './auth.js';
import { decisionQuery, encodeCursor, leaseQuery, parse } from './schemas.js';
import { decisionView, leaseView } from './views.js';

/** Lease history and decisions for reviewers, newest first, with cursor pagination. */
@Controller('v1')
@UseGuards(ReviewerGuard)
export class ReviewController {
  constructor(private readonly leases: LeaseStore) {}

  @Get('leases')
  async listLeases(@Query() query: unknown) {
    const filter = parse(leaseQuery, query, 'query');
    const items = await this.leases.list(filter);
    return { items: items.map(leaseView), next_cursor: nextCursor(items, filter.limit) };
  }

  @Get('decisions')
  async listDecisions(@Query() query: unknown) {
    const filter = parse(decisionQuery, query, 'query');
    const items = await this.leases.listDecisions(filter);
    return { items: items.map(decisionView), next_cursor: nextCursor(items, filter.limit) };
  }
}

function nextCursor(items: readonly { id: string }[], limit: number): string | null {
  return items.length === limit ? encodeCursor(items[items.length - 1]!.id) : null;
}
