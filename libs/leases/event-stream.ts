import { positionAfter, type EventFeed, type EventSource, type FeedBatch, type FeedSubscriber } from './event-feed.js';
import { APPROVAL_EVENT_TYPES, visibleTo, type ApprovalEventType, type RevocationEvent } from '../audit/index.js';

/** What a stream needs of its HTTP response (node's ServerResponse). */
export interface StreamResponse {
  writeHead(status: number, headers: Record<string, string>): unknown;
  /** False when the socket's buffer is full: write no more until 'drain'. */
  write(chunk: string): boolean;
  end(): unknown;
  destroy(): unknown;
  readonly destroyed: boolean;
  on(event: 'close', listener: () => void): unknown;
  once(event: 'drain', listener: () => void): unknown;
}

/** The headers of an event stream (a HEAD request gets these and nothing else). */
export const EVENT_STREAM_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' } as const;

export interface EventStreamOptions {
  /** The API key the stream was opened with: counted against its streams, ended when it is revoked. */
  keyId: string;
  /** A resource server's stream is held to its tool's lease events. */
  audience: string | undefined;
  /** Every event after this position is written, none before. */
  after: string;
  out: StreamResponse;
  feed: Pick<EventFeed, 'head' | 'subscribe'>;
  log: Pick<EventSource, 'after'>;
  /** An event as written on the wire: renderEvent (tests may write less). */
  render?: (event: RevocationEvent) => string;
  /** A reader that takes nothing for this long while the stream waits to write is dropped. */
  stallTimeoutMs: number;
  /** Events read per replay query, and written before the stream waits for the socket to drain. */
  pageSize?: number;
  keepAliveMs?: number;
  now?: () => number;
}

const DEFAULT_PAGE = 200;
const DEFAULT_KEEP_ALIVE_MS = 15_000;

/**
 * Opens one GET /v1/events stream: after `lastEventId` (Last-Event-ID), or without one from the
 * log's head (the events from now on). It takes its place in the feed first, so a replica or key
 * with no place left answers TooManyStreams (429) while nothing is sent; then `takeOver` hands the
 * socket from the HTTP framework to the stream, which writes from then on.
 */
export async function openEventStream(request: {
  keyId: string;
  audience: string | undefined;
  lastEventId: string | undefined;
  out: StreamResponse;
  takeOver: () => void;
  feed: Pick<EventFeed, 'head' | 'subscribe' | 'limits'>;
  log: Pick<EventSource, 'after' | 'head'>;
}): Promise<EventStream> {
  const { keyId, audience, out, feed, log } = request;
  const after = request.lastEventId ?? (await log.head());
  const stream = new EventStream({ keyId, audience, after, out, feed, log, stallTimeoutMs: feed.limits.stallTimeoutMs });
  stream.subscribe();
  request.takeOver();
  stream.start();
  return stream;
}

/**
 * One GET /v1/events connection. It writes only while its socket takes data: when `write()` says
 * the socket is full it waits for 'drain', and events that come meanwhile are not kept in memory:
 * the stream remembers its position and reads them from the log, a page at a time, once the
 * reader has taken what it had. So what one connection holds is at most about a page beyond the
 * socket's own buffer, however large the history or slow the reader; a reader that takes nothing
 * for `stallTimeoutMs` is dropped (it reconnects with Last-Event-ID when it is ready).
 *
 * Replay (a position from the past, or having fallen behind) reads its own pages; once a page comes
 * back short it has everything the feed had handed out before the query began, and it takes the
 * feed's batches from then on. A batch that starts after the stream's position would leave a gap:
 * the stream replays instead. Only events after its position are written, so none twice.
 */
export class EventStream implements FeedSubscriber {
  /** Every event up to this position has been written (or was not for this stream's audience). */
  private position: string;
  private live = false;
  private reading = false;
  /** Since when the stream waits for the socket to drain; undefined while the socket takes data. */
  private waitingSince: number | undefined;
  private lastWrite: number;
  private closed = false;
  private unsubscribe: (() => void) | undefined;
  readonly keyId: string;
  private readonly audience: string | undefined;
  private readonly out: StreamResponse;
  private readonly feed: Pick<EventFeed, 'head' | 'subscribe'>;
  private readonly log: Pick<EventSource, 'after'>;
  private readonly render: (event: RevocationEvent) => string;
  private readonly stallTimeoutMs: number;
  private readonly pageSize: number;
  private readonly keepAliveMs: number;
  private readonly now: () => number;

  constructor(options: EventStreamOptions) {
    this.keyId = options.keyId;
    this.audience = options.audience;
    this.out = options.out;
    this.feed = options.feed;
    this.log = options.log;
    this.render = options.render ?? renderEvent;
    this.stallTimeoutMs = options.stallTimeoutMs;
    this.pageSize = options.pageSize ?? DEFAULT_PAGE;
    this.keepAliveMs = options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS;
    this.now = options.now ?? Date.now;
    this.position = options.after;
    this.lastWrite = this.now();
  }

  /** Takes a place in the feed: throws TooManyStreams (429) before anything is sent. */
  subscribe(): void {
    this.unsubscribe = this.feed.subscribe(this);
  }

  /** Sends the headers and starts with the replay from the position asked for. */
  start(): void {
    this.out.on('close', () => this.close());
    // The client left while the request was being read: its 'close' has passed already.
    if (this.out.destroyed) {
      this.close();
      return;
    }
    this.out.writeHead(200, { ...EVENT_STREAM_HEADERS, connection: 'keep-alive' });
    this.write('retry: 1000\n\n');
    void this.replay();
  }

  deliver(batch: FeedBatch): void {
    if (this.closed || !this.live) return; // a replay in progress reads these itself
    if (this.waitingSince !== undefined || positionAfter(batch.from, this.position)) {
      // The socket is full, or events between our position and this batch were never ours: read
      // them from the log (after the drain) rather than hold them here.
      this.live = false;
      void this.replay();
      return;
    }
    const text = batch.events
      .filter((event) => positionAfter(event.seq, this.position) && visibleTo(event, this.audience))
      .map(this.render)
      .join('');
    if (positionAfter(batch.to, this.position)) this.position = batch.to;
    if (text !== '') this.write(text);
  }

  tick(nowMs: number): void {
    if (this.closed) return;
    if (this.waitingSince !== undefined) {
      if (nowMs - this.waitingSince > this.stallTimeoutMs) this.drop();
      return;
    }
    // A live stream is at the feed's head after every batch; behind it, it missed some (the feed
    // started from the head, or moved while the stream was joining): read them from the log.
    const head = this.feed.head;
    if (this.live && head !== undefined && positionAfter(head, this.position)) {
      this.live = false;
      void this.replay();
      return;
    }
    if (nowMs - this.lastWrite >= this.keepAliveMs) this.write(': keep-alive\n\n');
  }

  end(): void {
    if (this.closed) return;
    this.out.end();
    this.close();
  }

  /** Reads pages from the log after the position, one page per drain, until one comes back short. */
  private async replay(): Promise<void> {
    if (this.closed || this.reading || this.waitingSince !== undefined) return;
    this.reading = true;
    try {
      for (;;) {
        // Everything the feed handed out up to here was committed before this query starts.
        const feedHead = this.feed.head;
        const page = await this.log.after(this.position, this.pageSize, this.audience);
        if (this.closed) return;
        if (page.length > 0) this.position = page.at(-1)!.seq;
        const full = page.length === this.pageSize;
        if (!full && feedHead !== undefined && positionAfter(feedHead, this.position)) this.position = feedHead;
        const written = page.length === 0 || this.write(page.map(this.render).join(''));
        if (!full) {
          // Caught up: the feed's next batch starts at or before the position (else it replays again).
          this.live = true;
          return;
        }
        if (!written) return; // the 'drain' resumes the replay
      }
    } catch {
      // The database is away: end the stream; the client reconnects with its Last-Event-ID.
      this.end();
    } finally {
      this.reading = false;
    }
  }

  /** Writes, and when the socket's buffer is full waits for it to drain before anything more. */
  private write(text: string): boolean {
    if (this.closed) return false;
    this.lastWrite = this.now();
    if (this.out.write(text)) return true;
    this.waitingSince = this.lastWrite;
    this.out.once('drain', () => {
      this.waitingSince = undefined;
      if (!this.live) void this.replay();
    });
    return false;
  }

  /** A reader that stopped taking data: destroy the connection, and with it what it buffered. */
  private drop(): void {
    this.out.destroy();
    this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
  }
}

/** The feed hands one batch to every stream: each event is turned into text once, not once per stream. */
const rendered = new WeakMap<RevocationEvent, string>();

/** One event as Server-Sent Events frame it: its position (to resume after), its type, and its data. */
export function renderEvent(event: RevocationEvent): string {
  let text = rendered.get(event);
  if (text === undefined) {
    text = `id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(eventData(event))}\n\n`;
    rendered.set(event, text);
  }
  return text;
}

/** Approval events name the approval and nothing of its params or the reviewer's reason. */
function eventData(event: RevocationEvent) {
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
