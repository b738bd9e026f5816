import { Controller, Get, Query, Req, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { InvalidRequest } from '../../../libs/errors/errors.js';
import { audienceScope } from '../../../libs/identity/api-key.js';
import { ApiKeys } from '../../../libs/identity/api-keys.js';
import { APPROVAL_EVENT_TYPES, RevocationEventLog, type ApprovalEventType, type RevocationEvent } from '../../../libs/leases/revocation-events.js';
import { apiKeyOf, bearer, EventsGuard } from './auth.js';
import { ApiRoute } from './openapi.js';
import { parse } from './schemas.js';

const POLL_MS = 250;
const KEEP_ALIVE_MS = 15_000;
const position = z.string().regex(/^\d{1,18}$/, 'must be an event id this stream sent');
const eventsQuery = z.strictObject({ last_event_id: position.optional() });
const EVENT_STREAM = {
  contentType: 'text/event-stream',
  description:
    'One event per revocation or approval step: `id` (the position to resume after), `event` and `data`, a JSON object. Revocations (lease.revoked, task.ended, workload.revoked, or lease.revoke_failed: a credential at its source (Vault) that could not be revoked there after every retry): {type, lease_id, jti, task_id, workload_id, reason, at}. Approvals, to admin and reviewer keys only (approval.requested: a credential request now waits for a reviewer; approval.approved, approval.denied): {type, approval_id, task_id, workload_id, boundary_id, at}; the rest is at GET /v1/approvals/{id}. Approvals that expire or whose task ends send no event. Comment lines keep the connection alive.',
};

/**
 * GET /v1/events: Server-Sent Events of revocations (lease.revoked, task.ended, workload.revoked),
 * for resource servers that want to drop a credential the moment it dies, and of approval steps
 * (approval.requested, approval.approved, approval.denied) for reviewers. Resumable: a client that
 * reconnects with Last-Event-ID (or ?last_event_id=) gets every event after it; without one it
 * gets the events from now on. A resource server's key sees only the lease.revoked events of its
 * own tool's leases (never an approval); admins and reviewers see everything.
 */
@Controller('v1')
@UseGuards(EventsGuard)
export class EventsController {
  constructor(
    private readonly events: RevocationEventLog,
    private readonly keys: ApiKeys,
  ) {}

  @Get('events')
  @ApiRoute({ summary: 'Revocation and approval events (Server-Sent Events), resumable with Last-Event-ID', query: eventsQuery, headers: { 'Last-Event-ID': position }, responses: { 200: EVENT_STREAM } })
  async stream(@Req() request: FastifyRequest, @Res() reply: FastifyReply, @Query() query: unknown): Promise<void> {
    const { last_event_id } = parse(eventsQuery, query, 'query');
    const header = request.headers['last-event-id'];
    if (header !== undefined && (typeof header !== 'string' || !position.safeParse(header).success)) {
      throw new InvalidRequest('Last-Event-ID: must be an event id this stream sent', { field: 'Last-Event-ID' });
    }
    const audience = audienceScope(apiKeyOf(request));
    let after = header ?? last_event_id ?? (await this.events.head());

    reply.hijack();
    const out = reply.raw;
    out.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
    out.write('retry: 1000\n\n');
    let open = true;
    request.raw.on('close', () => (open = false));
    let quiet = 0;
    while (open) {
      try {
        // A key revoked while its stream is open ends the stream (within the key cache's second).
        await this.keys.authenticate(bearer(request));
        await this.events.sequence();
        const batch = await this.events.after(after, 500, audience);
        for (const event of batch) {
          out.write(`id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(eventView(event))}\n\n`);
          after = event.seq;
        }
        if (batch.length > 0) {
          quiet = 0;
          continue;
        }
      } catch {
        // The key was revoked, or the database is away: end the stream; the client reconnects with
        // its Last-Event-ID (and a revoked key then gets its 401).
        out.end();
        return;
      }
      quiet += POLL_MS;
      if (quiet >= KEEP_ALIVE_MS) {
        out.write(': keep-alive\n\n');
        quiet = 0;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    out.end();
  }
}

/** Approval events name the approval and nothing of its params or the reviewer's reason. */
function eventView(event: RevocationEvent) {
  if (isApprovalEvent(event.type)) {
    return {
      type: event.type,
      approval_id: event.approvalId,
      task_id: event.taskId,
      workload_id: event.workloadId,
      boundary_id: event.boundaryId,
      at: event.at.toISOString(),
    };
  }
  return {
    type: event.type,
    lease_id: event.leaseId,
    jti: event.leaseId,
    task_id: event.taskId,
    workload_id: event.workloadId,
    reason: event.reason,
    at: event.at.toISOString(),
  };
}

function isApprovalEvent(type: RevocationEvent['type']): type is ApprovalEventType {
  return (APPROVAL_EVENT_TYPES as readonly string[]).includes(type);
}
