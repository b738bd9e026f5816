import { positionAfter, type EventFeed, type FeedBatch, type FeedSubscriber } from './event-feed.js';
import { visibleTo, type RevocationEvent } from '../audit/event-log.js';

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

export interface EventStreamOptions {
  /** A reader that takes nothing for this long while the stream waits to write is dropped. */
  stallTimeoutMs: number;
  /** Events read per replay query, and written before the stream waits for the socket to drain. */
  pageSize?: number;
  keepAliveMs?: number;
}

const DEFAULT_PAGE = 200;
const DEFAULT_KEEP_ALIVE_MS = 15_000;

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
  private readonly pageSize: number;
  private readonly keepAliveMs: number;

  constructor(
    readonly keyId: string,
    /** A resource server's stream is held to its tool's lease events. */
    private readonly audience: string | undefined,
    after: string,
    private readonly out: StreamResponse,
    private readonly feed: Pick<EventFeed, 'head' | 'subscribe'>,
    private readonly log: { after(seq: string, limit?: number, audience?: string): Promise<RevocationEvent[]> },
    private readonly render: (event: RevocationEvent) => string,
    private readonly options: EventStreamOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.position = after;
    this.lastWrite = now();
    this.pageSize = options.pageSize ?? DEFAULT_PAGE;
    this.keepAliveMs = options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS;
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
    this.out.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
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
      if (nowMs - this.waitingSince > this.options.stallTimeoutMs) this.drop();
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
