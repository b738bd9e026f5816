import { Controller, Get, Query, Req, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { InvalidRequest } from '../../../../libs/errors/index.js';
import { audienceScope } from '../../../../libs/identity/index.js';
import { EventFeed } from '../../../../libs/leases/index.js';
import { EVENT_STREAM_HEADERS, openEventStream } from '../../../../libs/leases/index.js';
import { RevocationEventLog } from '../../../../libs/audit/index.js';
import { apiKeyOf, EventsGuard } from '../auth.js';
import { ApiRoute } from '../openapi.js';
import { parse } from '../common/requests.js';
import { eventsQuery, position } from './events.requests.js';
import { EVENT_STREAM } from './events.responses.js';

/**
 * GET /v1/events: Server-Sent Events of revocations (lease.revoked, task.ended, workload.revoked),
 * for resource servers that want to drop a credential the moment it dies, and of approval steps
 * (approval.requested, approval.approved, approval.denied) for reviewers. Resumable: a client that
 * reconnects with Last-Event-ID (or ?last_event_id=) gets every event after it; without one it
 * gets the events from now on. A resource server's key sees only the lease.revoked events of its
 * own tool's leases (never an approval); admins and reviewers see everything. Every stream of the
 * replica is fed by one poller (EventFeed), writes only as fast as its reader reads (EventStream),
 * and is counted against TOLLGATE_EVENTS_MAX_STREAMS and TOLLGATE_EVENTS_MAX_STREAMS_PER_KEY (429).
 * All of that is libs/leases/event-stream.ts; this controller only checks the request and hands
 * the socket over.
 */
@Controller('v1')
@UseGuards(EventsGuard)
export class EventsController {
  constructor(
    private readonly events: RevocationEventLog,
    private readonly feed: EventFeed,
  ) {}

  @Get('events')
  @ApiRoute({
    summary: 'Revocation and approval events (Server-Sent Events), resumable with Last-Event-ID',
    query: eventsQuery,
    headers: { 'Last-Event-ID': position },
    responses: { 200: EVENT_STREAM },
    errors: [429],
  })
  async stream(@Req() request: FastifyRequest, @Res() reply: FastifyReply, @Query() query: unknown): Promise<void> {
    const { last_event_id } = parse(eventsQuery, query, 'query');
    const header = request.headers['last-event-id'];
    if (header !== undefined && (typeof header !== 'string' || !position.safeParse(header).success)) {
      throw new InvalidRequest('Last-Event-ID: must be an event id this stream sent', { field: 'Last-Event-ID' });
    }
    const key = apiKeyOf(request);
    if (request.method === 'HEAD') {
      // Fastify answers HEAD with the GET handler: headers only, never an endless stream.
      await reply.status(200).headers(EVENT_STREAM_HEADERS).send();
      return;
    }
    await openEventStream({
      keyId: key.id,
      audience: audienceScope(key),
      lastEventId: header ?? last_event_id,
      out: reply.raw,
      takeOver: () => reply.hijack(),
      feed: this.feed,
      log: this.events,
    });
  }
}
