import { Controller, Get, Query, Req, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { InvalidRequest } from '../../../../libs/errors/errors.js';
import { audienceScope } from '../../../../libs/identity/api-key.js';
import { EventFeed } from '../../../../libs/leases/event-feed.js';
import { EventStream } from '../../../../libs/leases/event-stream.js';
import { APPROVAL_EVENT_TYPES, RevocationEventLog, type ApprovalEventType, type RevocationEvent } from '../../../../libs/leases/revocation-events.js';
import { apiKeyOf, EventsGuard } from '../auth.js';
import { ApiRoute } from '../openapi.js';
import { parse } from '../common/requests.js';

const position = z.string().regex(/^\d{1,18}$/, 'must be an event id this stream sent');
const eventsQuery = z.strictObject({ last_event_id: position.optional() });
const EVENT_STREAM = {
  contentType: 'text/event-stream',
  description:
    'One event per revocation or approval step: `id` (the position to resume after), `event` and `data`, a JSON object. Revocations (lease.revoked, task.ended, workload.revoked, or lease.revoke_failed: a credential at its source (Vault) that could not be revoked there after every retry): {type, lease_id, jti, task_id, workload_id, reason, at}. Approvals, to admin and reviewer keys only (approval.requested: a credential request now waits for a reviewer; approval.approved, approval.denied): {type, approval_id, task_id, workload_id, boundary_id, at}; the rest is at GET /v1/approvals/{id}. Approvals that expire or whose task ends send no event. Comment lines keep the connection alive. A server holds a limited number of streams, in all and per API key: beyond them, 429 slow_down with Retry-After; a reader that takes nothing for 30 s (TOLLGATE_EVENTS_STALL_TIMEOUT_MS) is disconnected and resumes with Last-Event-ID.',
};

/**
 * GET /v1/events: Server-Sent Events of revocations (lease.revoked, task.ended, workload.revoked),
 * for resource servers that want to drop a credential the moment it dies, and of approval steps
 * (approval.requested, approval.approved, approval.denied) for reviewers. Resumable: a client that
 * reconnects with Last-Event-ID (or ?last_event_id=) gets every event after it; without one it
 * gets the events from now on. A resource server's key sees only the lease.revoked events of its
 * own tool's leases (never an approval); admins and reviewers see everything. Every stream of the
 * replica is fed by one poller (EventFeed), writes only as fast as its reader reads (EventStream),
 * and is counted against TOLLGATE_EVENTS_MAX_STREAMS and TOLLGATE_EVENTS_MAX_STREAMS_PER_KEY (429).
 */
@Controller('v1')
@UseGuards(EventsGuard)
export class EventsController {
  constructor(
    private readonly events: RevocationEventLog,
    private readonly feed: EventFeed,
  ) {}

  @Get('events')
  @ApiRoute({ summary: 'Revocation and approval events (Server-Sent Events), resumable with Last-Event-ID', query: eventsQuery, headers: { 'Last-Event-ID': position }, responses: { 200: EVENT_STREAM }, errors: [429] })
  async stream(@Req() request: FastifyRequest, @Res() reply: FastifyReply, @Query() query: unknown): Promise<void> {
    const { last_event_id } = parse(eventsQuery, query, 'query');
    const header = request.headers['last-event-id'];
    if (header !== undefined && (typeof header !== 'string' || !position.safeParse(header).success)) {
      throw new InvalidRequest('Last-Event-ID: must be an event id this stream sent', { field: 'Last-Event-ID' });
    }
    const key = apiKeyOf(request);
    if (request.method === 'HEAD') {
      // Fastify answers HEAD with the GET handler: headers only, never an endless stream.
      await reply.status(200).header('content-type', 'text/event-stream; charset=utf-8').header('cache-control', 'no-store').send();
      return;
    }
    const after = header ?? last_event_id ?? (await this.events.head());
    const stream = new EventStream(key.id, audienceScope(key), after, reply.raw, this.feed, this.events, renderEvent, { stallTimeoutMs: this.feed.limits.stallTimeoutMs });
    stream.subscribe(); // 429 here when this replica or this key has no place left
    reply.hijack();
    stream.start();
  }
}

/** The feed hands one batch to every stream: each event is turned into text once, not once per stream. */
const rendered = new WeakMap<RevocationEvent, string>();

function renderEvent(event: RevocationEvent): string {
  let text = rendered.get(event);
  if (text === undefined) {
    text = `id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(eventView(event))}\n\n`;
    rendered.set(event, text);
  }
  return text;
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
