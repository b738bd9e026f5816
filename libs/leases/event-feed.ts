import { TemporarilyUnavailable, TooManyStreams } from '../errors/index.js';
import type { RevocationEvent, Sequenced } from '../audit/index.js';

/** What the feed reads: RevocationEventLog's positions (narrowed so the feed can be tested alone). */
export interface EventSource {
  sequence(): Promise<Sequenced>;
  after(seq: string, limit?: number, audience?: string): Promise<RevocationEvent[]>;
  head(): Promise<string>;
}

/** Events after position `from` up to `to` (every audience: a subscriber filters its own). */
export interface FeedBatch {
  from: string;
  to: string;
  events: readonly RevocationEvent[];
}

/** One open stream, as the feed sees it. */
export interface FeedSubscriber {
  /** The API key the stream was opened with: its streams end when it is revoked. */
  readonly keyId: string;
  deliver(batch: FeedBatch): void;
  /** Every tick: a subscriber sends its keep-alives and drops itself when its reader stalls. */
  tick(nowMs: number): void;
  /** The key was revoked: end the stream (the client's reconnect then gets its 401). */
  end(): void;
}

export interface EventFeedLimits {
  /** Open streams on this replica, all keys together. */
  maxStreams: number;
  /** Open streams of one API key: one key cannot take every place. */
  maxStreamsPerKey: number;
  /** A stream whose reader takes nothing for this long is dropped (event-stream.ts). */
  stallTimeoutMs: number;
}

/**
 * How often the feed reads new events when nothing wakes it. Revocations do wake it (the
 * notification on `EVENT_CHANNEL`, libs/audit/event-log.ts), so this bounds only a replica whose
 * listening connection is down.
 */
export const EVENT_POLL_MS = 250;
/**
 * When written events still wait for a position (a transaction older than them runs on), the feed
 * reads again after this rather than at its next poll: short transactions end within milliseconds.
 */
const WAITING_RETRY_MS = 10;
/** How often the keys of open streams are checked: a revoked key's streams end within about this. */
export const KEY_CHECK_MS = 1000;
/** Events read per query; a tick reads a few pages at most, the rest next tick. */
const PAGE = 500;
const MAX_PAGES_PER_TICK = 8;

/**
 * The one poller of GET /v1/events on a replica. Every stream used to poll the database itself
 * (a sequencer transaction, a read and a key lookup, four times a second each: 200 streams cost
 * most of a core here and a third of one in PostgreSQL); now the app ticks this feed, which reads
 * new events once and hands the same batch to every stream, and checks the keys of all open
 * streams in one query a second. Streams that fell behind (a replay, a slow reader) read their own
 * pages from the log until they catch up with the feed's position (event-stream.ts).
 */
export class EventFeed {
  private readonly subscribers = new Set<FeedSubscriber>();
  private readonly perKey = new Map<string, number>();
  /** Every event up to here has been read and handed out; undefined while nobody listens. */
  private position: string | undefined;
  private lastKeyCheck = Number.NEGATIVE_INFINITY;
  /** The tick in flight; a poll asked for meanwhile runs once it ends. */
  private ticking: Promise<void> | undefined;
  private again = false;
  private retry: NodeJS.Timeout | undefined;
  /** The replica is shutting down: its streams were ended, and no new one opens here. */
  private closed = false;

  constructor(
    private readonly source: EventSource,
    /** The ids among these whose keys are still live (one query for all). */
    private readonly liveKeyIds: (ids: readonly string[]) => Promise<ReadonlySet<string>>,
    readonly limits: EventFeedLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** The position the feed has handed out up to (undefined before its first read). */
  get head(): string | undefined {
    return this.position;
  }

  get size(): number {
    return this.subscribers.size;
  }

  /** Adds a stream, or refuses it with 429 when this replica or its key has no place left. */
  subscribe(subscriber: FeedSubscriber): () => void {
    if (this.closed) throw new TemporarilyUnavailable('this server is shutting down: open the stream on another replica');
    const mine = this.perKey.get(subscriber.keyId) ?? 0;
    if (this.subscribers.size >= this.limits.maxStreams)
      throw new TooManyStreams('too many event streams are open on this server', RETRY_AFTER_SECONDS);
    if (mine >= this.limits.maxStreamsPerKey)
      throw new TooManyStreams('too many event streams are open with this API key', RETRY_AFTER_SECONDS);
    this.subscribers.add(subscriber);
    this.perKey.set(subscriber.keyId, mine + 1);
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      this.subscribers.delete(subscriber);
      const left = (this.perKey.get(subscriber.keyId) ?? 1) - 1;
      if (left > 0) this.perKey.set(subscriber.keyId, left);
      else this.perKey.delete(subscriber.keyId);
      // Nobody listens: stop reading, and start again from the head when someone does.
      if (this.subscribers.size === 0) this.position = undefined;
    };
  }

  /**
   * Reads now: on the poll timer, and when a notification says events were written. One tick at a
   * time: a poll that comes while one runs is folded into one more tick after it (the events it was
   * woken for may have committed after the running tick read). Errors go to `onError`.
   */
  poll(onError: (error: unknown) => void): void {
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = this.tick()
      .then((waiting) => {
        // Written, not yet positioned: ask again soon, not a full poll period later.
        if (waiting && this.retry === undefined) {
          this.retry = setTimeout(() => {
            this.retry = undefined;
            this.poll(onError);
          }, WAITING_RETRY_MS);
          this.retry.unref();
        }
      })
      .catch(onError)
      .finally(() => {
        this.ticking = undefined;
        if (this.again) {
          this.again = false;
          this.poll(onError);
        }
      });
  }

  /** Stops a pending retry (the app is closing). */
  stop(): void {
    clearTimeout(this.retry);
    this.retry = undefined;
  }

  /**
   * The replica is leaving: ends every open stream (each after the last event it wrote, so its
   * client resumes on another replica with Last-Event-ID and misses nothing) and refuses new ones
   * with 503. A stream never ends by itself: left open, it would hold the shutdown until its timeout.
   * Returns how many streams were ended.
   */
  close(): number {
    this.closed = true;
    const open = [...this.subscribers];
    for (const subscriber of open) subscriber.end();
    return open.length;
  }

  /**
   * One pass: give finished events their positions, read what is new, hand it out, check keys.
   * Returns whether written events still wait for a position.
   */
  async tick(): Promise<boolean> {
    if (this.subscribers.size === 0) return false;
    const { waiting } = await this.source.sequence();
    if (this.position === undefined) {
      this.position = await this.source.head();
    } else {
      for (let page = 0; page < MAX_PAGES_PER_TICK; page++) {
        const from = this.position;
        const events = await this.source.after(from, PAGE);
        if (events.length === 0 || this.position !== from) break;
        const batch: FeedBatch = { from, to: events.at(-1)!.seq, events };
        this.position = batch.to;
        for (const subscriber of [...this.subscribers]) subscriber.deliver(batch);
        if (events.length < PAGE) break;
      }
    }
    const now = this.now();
    for (const subscriber of [...this.subscribers]) subscriber.tick(now);
    if (now - this.lastKeyCheck >= KEY_CHECK_MS) {
      this.lastKeyCheck = now;
      await this.endRevokedKeys();
    }
    return waiting;
  }

  private async endRevokedKeys(): Promise<void> {
    if (this.subscribers.size === 0) return;
    const live = await this.liveKeyIds([...this.perKey.keys()]);
    for (const subscriber of [...this.subscribers]) {
      if (!live.has(subscriber.keyId)) subscriber.end();
    }
  }
}

/** A place frees when any stream ends; a few seconds is a fair wait before asking again. */
const RETRY_AFTER_SECONDS = 5;

/** Positions are bigints as text: compare them as numbers, never as text ("10" < "8"). */
export function positionAfter(a: string, b: string): boolean {
  return BigInt(a) > BigInt(b);
}
