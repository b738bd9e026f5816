import type { z } from 'zod';
import { Controller, Get, Query, UseGuards } from '@nestjs/common';
import { AuditLog } from '../../../../libs/audit/index.js';
import { ReviewerGuard } from '../auth.js';
import { ApiRoute } from '../openapi.js';
import { emptyBody, parse } from '../common/requests.js';
import { auditQuery, encodeSeqCursor } from './audit.requests.js';
import {
  auditCheckpointResponse,
  auditEventView,
  auditPage,
  auditVerifyResponse,
  chainReportView,
  checkpointView,
} from './audit.responses.js';

/** The audit chain for reviewers: its events, whether it holds, and its head signed. */
@Controller('v1/audit')
@UseGuards(ReviewerGuard)
export class AuditController {
  constructor(private readonly audit: AuditLog) {}

  @Get()
  @ApiRoute({ summary: 'Audit events, newest first', query: auditQuery, responses: { 200: auditPage } })
  async list(@Query() query: unknown): Promise<z.infer<typeof auditPage>> {
    const filter = parse(auditQuery, query, 'query');
    const items = await this.audit.list(filter);
    return {
      items: items.map(auditEventView),
      next_cursor: items.length === filter.limit ? encodeSeqCursor(items[items.length - 1]!.seq) : null,
    };
  }

  @Get('verify')
  @ApiRoute({
    summary: 'Recompute the whole hash chain: whether it holds, how far, and the first broken link',
    query: emptyBody,
    responses: { 200: auditVerifyResponse },
  })
  async verify(@Query() query: unknown): Promise<z.infer<typeof auditVerifyResponse>> {
    parse(emptyBody, query, 'query');
    return chainReportView(await this.audit.verify());
  }

  @Get('checkpoint')
  @ApiRoute({
    summary: "The chain's head, verified, then signed with the current signing key (verify with /.well-known/jwks.json)",
    query: emptyBody,
    responses: { 200: auditCheckpointResponse },
    errors: [409],
  })
  async checkpoint(@Query() query: unknown): Promise<z.infer<typeof auditCheckpointResponse>> {
    parse(emptyBody, query, 'query');
    return checkpointView(await this.audit.checkpoint());
  }
}
