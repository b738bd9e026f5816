import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { TemporarilyUnavailable, TooManyStreams } from '../errors/errors.js';
import { EventFeed, type EventSource, type FeedBatch, type FeedSubscriber } from './event-feed.js';
import { EventStream, type StreamResponse } from './event-stream.js';
import type { RevocationEvent, Sequenced } from '../audit/event-log.js';

/** The log in memory: positions 1.., and a count of the reads the feed and the streams make. */
class MemoryLog implements EventSource {
  readonly events: RevocationEvent[] = [];
  reads = 0;
  sequences = 0;

  add(count: number, audience: string | null = 'https://crm.acme.test'): void {
    for (let i = 0; i < count; i++) {
      const seq = String(this.events.length + 1);
      this.events.push({
        seq,
        type: 'lease.revoked',
        leaseId: `lease-${seq}`,
        approvalId: null,
        boundaryId: null,
        taskId: null,
        workloadId: 'bot',
        reason: 'task_completed',
        at: new Date(0),
        audience,
      });
    }
  }

  /** Events that `sequence` says still wait for a position (the feed then asks again soon). */
  waiting = 0;

  async sequence(): Promise<Sequenced> {
    this.sequences++;
    if (this.waiting > 0) this.waiting--;
    return { sequenced: 0, waiting: this.waiting > 0 };
  }

  async after(seq: string, limit = 500, audience?: string): Promise<RevocationEvent[]> {
    this.reads++;
    return this.events.filter((e) => BigInt(e.seq) > BigInt(seq) && (audience === undefined || e.audience === audience)).slice(0, limit);
  }

  async head(): Promise<string> {
    return this.events.at(-1)?.seq ?? '0';
  }
}

class Recorder implements FeedSubscriber {
  readonly batches: FeedBatch[] = [];
  ended = false;
  constructor(readonly keyId: string) {}
  deliver(batch: FeedBatch): void {
    this.batches.push(batch);
  }
  tick(): void {}
  end(): void {
    this.ended = true;
  }
}

/** A response whose reader takes data only when told: `write` says false past `capacity` bytes. */
class SlowResponse extends EventEmitter implements StreamResponse {
  buffered = 0;
  received = '';
  ended = false;
  destroyed = false;
  constructor(private readonly capacity: number) {
    super();
  }
  writeHead(): this {
    return this;
  }
  write(chunk: string): boolean {
    this.received += chunk;
    this.buffered += chunk.length;
    return this.buffered < this.capacity;
  }
  /** The reader takes everything buffered. */
  read(): void {
    const full = this.buffered >= this.capacity;
    this.buffered = 0;
    if (full) this.emit('drain');
  }
  end(): this {
    this.ended = true;
    return this;
  }
  destroy(): this {
    this.destroyed = true;
    this.emit('close');
    return this;
  }
  ids(): string[] {
    return [...this.received.matchAll(/^id: (\d+)$/gm)].map((m) => m[1]!);
  }
}

const LIMITS = { maxStreams: 100, maxStreamsPerKey: 50, stallTimeoutMs: 1000 };
const settle = () => new Promise((resolve) => setTimeout(resolve, 5));
const render = (event: RevocationEvent) => `id: ${event.seq}\nevent: ${event.type}\ndata: {}\n\n`;

function feedOn(
  log: MemoryLog,
  live: (ids: readonly string[]) => Promise<ReadonlySet<string>> = async (ids) => new Set(ids),
  clock = { now: 0 },
) {
  return new EventFeed(log, live, LIMITS, () => clock.now);
}

describe('EventFeed', () => {
  it('polls one tick at a time: polls that come while one runs fold into one more tick after it', async () => {
    const log = new MemoryLog();
    const feed = feedOn(log);
    feed.subscribe(new Recorder('key'));
    const errors: unknown[] = [];
    for (let i = 0; i < 5; i++) feed.poll((error) => errors.push(error));
    await settle();
    await settle();
    expect(log.sequences).toBe(2);
    expect(errors).toEqual([]);
    feed.stop();
  });

  it('asks again within milliseconds, not a poll period, while written events wait for a position', async () => {
    const log = new MemoryLog();
    const feed = feedOn(log);
    feed.subscribe(new Recorder('key'));
    log.waiting = 3; // two passes still find events waiting, the third gives them positions
    feed.poll(() => {});
    const deadline = Date.now() + 1_000;
    while (log.sequences < 3 && Date.now() < deadline) await settle();
    expect(log.sequences).toBe(3);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(log.sequences).toBe(3); // nothing waits now: no more passes until the next poll
    feed.stop();
  });

  it('hands a failed tick to the error callback and polls again afterwards', async () => {
    const log = new MemoryLog();
    const feed = feedOn(log);
    feed.subscribe(new Recorder('key'));
    const failing = log.sequence.bind(log);
    let fail = true;
    log.sequence = async () => {
      if (fail) throw new Error('database away');
      return failing();
    };
    const errors: unknown[] = [];
    feed.poll((error) => errors.push(error));
    await settle();
    expect(errors.map((e) => (e as Error).message)).toEqual(['database away']);
    fail = false;
    feed.poll((error) => errors.push(error));
    await settle();
    expect(errors).toHaveLength(1);
    feed.stop();
  });

  it('reads new events once per tick for every subscriber, and nothing while nobody listens', async () => {
    const log = new MemoryLog();
    const feed = feedOn(log);
    await feed.tick();
    expect([log.sequences, log.reads]).toEqual([0, 0]);

    const subscribers = Array.from({ length: 40 }, (_, i) => new Recorder(`key-${i % 4}`));
    for (const s of subscribers) feed.subscribe(s);
    await feed.tick(); // starts from the head
    log.add(3);
    const before = log.reads;
    await feed.tick();
    expect(log.reads - before).toBe(1);
    for (const s of subscribers) expect(s.batches).toEqual([{ from: '0', to: '3', events: log.events }]);
    expect(feed.head).toBe('3');
  });

  it('refuses a subscriber past the total or the per-key cap, and gives the place back when it leaves', () => {
    const feed = new EventFeed(new MemoryLog(), async (ids) => new Set(ids), { maxStreams: 3, maxStreamsPerKey: 2, stallTimeoutMs: 1000 });
    const leave = feed.subscribe(new Recorder('a'));
    feed.subscribe(new Recorder('a'));
    expect(() => feed.subscribe(new Recorder('a'))).toThrow(TooManyStreams);
    feed.subscribe(new Recorder('b'));
    expect(() => feed.subscribe(new Recorder('c'))).toThrow(TooManyStreams);
    leave();
    leave(); // twice frees one place only
    expect(feed.size).toBe(2);
    feed.subscribe(new Recorder('a'));
    expect(() => feed.subscribe(new Recorder('c'))).toThrow(TooManyStreams);
  });

  it('checks the keys of all open streams in one lookup a second, and ends the streams of revoked keys', async () => {
    const log = new MemoryLog();
    const asked: string[][] = [];
    const revoked = new Set<string>();
    const clock = { now: 0 };
    const feed = feedOn(log, async (ids) => (asked.push([...ids]), new Set(ids.filter((id) => !revoked.has(id)))), clock);
    const streams = ['a', 'a', 'b', 'c'].map((key) => new Recorder(key));
    for (const s of streams) feed.subscribe(s);
    await feed.tick();
    expect(asked).toEqual([['a', 'b', 'c']]);
    revoked.add('a');
    clock.now = 500;
    await feed.tick();
    expect(asked).toHaveLength(1);
    clock.now = 1000;
    await feed.tick();
    expect(asked).toHaveLength(2);
    expect(streams.map((s) => s.ended)).toEqual([true, true, false, false]);
  });
});

describe('EventFeed.close (the replica is shutting down)', () => {
  it('ends every open stream after the last event it wrote and refuses new streams with 503', async () => {
    const log = new MemoryLog();
    const feed = feedOn(log);
    const outs = [new SlowResponse(1_000_000), new SlowResponse(1_000_000)];
    for (const out of outs) {
      const stream = new EventStream({
        keyId: 'key',
        audience: undefined,
        after: '0',
        out,
        feed,
        log,
        render,
        stallTimeoutMs: 1000,
        now: () => 0,
      });
      stream.subscribe();
      stream.start();
    }
    await settle();
    log.add(3);
    await feed.tick();
    await settle();
    expect(feed.close()).toBe(2);
    expect(outs.map((out) => out.ended)).toEqual([true, true]);
    // Ended, not destroyed: what was written reaches the client, whose Last-Event-ID is then 3.
    expect(outs.map((out) => out.destroyed)).toEqual([false, false]);
    expect(outs.map((out) => out.ids())).toEqual([
      ['1', '2', '3'],
      ['1', '2', '3'],
    ]);
    expect(feed.size).toBe(0);
    expect(() => feed.subscribe(new Recorder('key'))).toThrow(TemporarilyUnavailable);
  });
});

describe('EventStream', () => {
  function open(log: MemoryLog, feed: EventFeed, out: SlowResponse, after: string, audience?: string) {
    const stream = new EventStream({
      keyId: 'key',
      audience,
      after,
      out,
      feed,
      log,
      render,
      stallTimeoutMs: 1000,
      pageSize: 10,
      now: () => 0,
    });
    stream.subscribe();
    stream.start();
    return stream;
  }

  it('replays a page per drain, holds nothing while the reader does not read, and joins the feed without a gap or a duplicate', async () => {
    const log = new MemoryLog();
    log.add(35);
    const feed = feedOn(log);
    const out = new SlowResponse(20); // the retry line fits, every page fills it
    open(log, feed, out, '0');
    await settle();
    expect(out.ids()).toHaveLength(10);

    // The reader does not read: ticks and new events add nothing to what the stream wrote.
    await feed.tick();
    log.add(5);
    await feed.tick();
    await settle();
    expect(out.ids()).toHaveLength(10);

    // It reads: the rest comes, a page per drain, then the feed's batches.
    for (let i = 0; i < 10; i++) {
      out.read();
      await settle();
      log.add(2);
      await feed.tick();
      await settle();
    }
    out.read();
    await feed.tick();
    await settle();
    expect(out.ids()).toEqual(log.events.map((e) => e.seq));
  });

  it('reads from the log what the feed passed over while the stream joined', async () => {
    const log = new MemoryLog();
    log.add(3);
    const feed = feedOn(log);
    const out = new SlowResponse(1_000_000);
    open(log, feed, out, '3'); // caught up at once, before the feed's first read
    await settle();
    log.add(2);
    await feed.tick(); // the feed starts from the head, 5: events 4 and 5 are no batch of its
    await feed.tick();
    await settle();
    log.add(1);
    await feed.tick();
    await settle();
    expect(out.ids()).toEqual(['4', '5', '6']);
  });

  it('keeps a resource server to its own tool', async () => {
    const log = new MemoryLog();
    log.add(4);
    log.add(4, 'https://other.test');
    const feed = feedOn(log);
    const out = new SlowResponse(1_000_000);
    open(log, feed, out, '0', 'https://crm.acme.test');
    await settle();
    await feed.tick();
    log.add(2, 'https://other.test');
    log.add(2);
    await feed.tick();
    await settle();
    expect(out.ids()).toEqual(['1', '2', '3', '4', '11', '12']);
  });

  it('gives its place back at once when the client left before the stream started', () => {
    const log = new MemoryLog();
    const feed = feedOn(log);
    const out = new SlowResponse(1_000_000);
    out.destroyed = true;
    open(log, feed, out, '0');
    expect(feed.size).toBe(0);
  });

  it('drops a stream whose reader stalls past the timeout', async () => {
    const log = new MemoryLog();
    log.add(30);
    const clock = { now: 0 };
    const feed = feedOn(log, undefined, clock);
    const out = new SlowResponse(20);
    const stream = new EventStream({
      keyId: 'key',
      audience: undefined,
      after: '0',
      out,
      feed,
      log,
      render,
      stallTimeoutMs: 1000,
      pageSize: 10,
      now: () => clock.now,
    });
    stream.subscribe();
    stream.start();
    await settle();
    clock.now = 900;
    await feed.tick();
    expect(out.destroyed).toBe(false);
    clock.now = 1100;
    await feed.tick();
    expect(out.destroyed).toBe(true);
    expect(feed.size).toBe(0);
  });
});
