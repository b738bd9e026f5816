import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, freshDatabase, type TestDatabase } from '../support/database.js';
import { readEvents, type SseEvent } from '../support/sse.js';
import { failed, IssuanceLoad, quantile, send, setUpIssuance, sleep, type FrontBot, type Outcome } from './support/load.js';
import { startReplicaSet, type ReplicaSet } from './support/replicas.js';

/**
 * Fault 3 of issue 16: a rolling restart of the three replicas under load. Each in turn gets
 * SIGTERM, drains (readiness 503, HAProxy takes it out, requests in flight finish, event streams
 * end), exits 0 and is started again; the next goes once HAProxy sees it UP. No request through the
 * front may fail, and an event stream through the front resumes with Last-Event-ID on another
 * replica each time its own leaves, missing no event.
 */
describe('fault 3: rolling restart under load', () => {
  let db: TestDatabase;
  let set: ReplicaSet;

  beforeAll(async () => {
    db = await freshDatabase('postgres');
    set = await startReplicaSet({ databaseUrl: db.databaseUrl! });
  });
  afterAll(async () => {
    await set?.stop();
    await db?.drop();
  });

  it('fails no request and loses no event while every replica is restarted in turn', async () => {
    const front = { url: set.lbUrl, adminKey: set.adminKey };
    const { bot, taskIds } = await setUpIssuance(front);
    const head = await logHead(db.databaseUrl!);

    const stream = new ResumingStream(set.lbUrl, set.adminKey, head);
    stream.start();
    const producer = new RevocationProducer(set.lbUrl, bot);
    producer.start();
    const load = new IssuanceLoad(set.lbUrl, bot, taskIds);
    load.start();
    await sleep(3_000);
    const baselineEnd = performance.now();

    const restarts: Array<{ replica: number; exitCode: number | null; drainMs: number; startMs: number }> = [];
    for (const replica of set.replicas) {
      const signalled = performance.now();
      const exitCode = await replica.kill('SIGTERM');
      const exited = performance.now();
      await replica.start();
      restarts.push({
        replica: replica.index,
        exitCode,
        drainMs: Math.round(exited - signalled),
        startMs: Math.round(performance.now() - exited),
      });
    }
    await sleep(2_000);
    await load.stop();
    await producer.stop();
    const last = await logHead(db.databaseUrl!);
    await stream.until(last, 15_000);
    await stream.stop();

    const all: Outcome[] = [...load.outcomes, ...producer.outcomes];
    const failures = all.filter((outcome) => failed(outcome, outcome.kind === 'complete' ? 200 : 201));
    const baseline = load.outcomes.filter((outcome) => outcome.end <= baselineEnd);
    const during = load.outcomes.filter((outcome) => outcome.start > baselineEnd);
    const expected = await eventIdsAfter(db.databaseUrl!, head);
    const summary = {
      fault: 'rolling_restart',
      replicas: set.replicas.length,
      requests: all.length,
      failed: failures.length,
      p99_baseline_ms: quantile(baseline, 0.99),
      p99_during_ms: quantile(during, 0.99),
      restarts,
      events_produced: expected.length,
      events_received: stream.ids.length,
      duplicates: stream.ids.length - new Set(stream.ids).size,
      stream_resumes: stream.resumes,
      stream_refusals: stream.refusals,
      served_by: countBy(load.outcomes.map((outcome) => outcome.replica ?? 'none')),
    };
    console.log(JSON.stringify(summary));

    expect(failures.slice(0, 5)).toEqual([]);
    expect(restarts.map((restart) => restart.exitCode)).toEqual([0, 0, 0]);
    expect(expected.length).toBeGreaterThan(10);
    // Every event of the log, in order, once: the stream resumed after each replica it was on left.
    expect(stream.ids).toEqual(expected);
    expect(stream.resumes).toBeGreaterThanOrEqual(1);
  });
});

/** GET /v1/events through the front; when a stream ends, opens another with Last-Event-ID. */
class ResumingStream {
  readonly ids: string[] = [];
  resumes = 0;
  /** Attempts answered other than 200 (a replica refusing streams while it leaves). */
  refusals = 0;
  private running = false;
  private controller = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(
    private readonly lbUrl: string,
    private readonly adminKey: string,
    private lastId: string,
  ) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    let opened = 0;
    while (this.running) {
      try {
        const response = await fetch(`${this.lbUrl}/v1/events`, {
          headers: { authorization: `Bearer ${this.adminKey}`, 'last-event-id': this.lastId },
          signal: this.controller.signal,
        });
        if (response.status !== 200) {
          this.refusals++;
          await response.arrayBuffer();
          await sleep(100);
          continue;
        }
        if (opened++ > 0) this.resumes++;
        await readEvents(response.body!, (event: SseEvent) => {
          this.ids.push(event.id);
          this.lastId = event.id;
        });
      } catch {
        if (!this.running) return;
        this.refusals++;
        await sleep(100);
      }
    }
  }

  async until(id: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (BigInt(this.lastId) < BigInt(id) && Date.now() < deadline) await sleep(50);
  }

  async stop(): Promise<void> {
    this.running = false;
    this.controller.abort();
    await this.loop;
  }
}

/** Makes revocation events all along: a task opened, a credential issued, the task completed. */
class RevocationProducer {
  readonly outcomes: Outcome[] = [];
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly agent = new http.Agent({ keepAlive: true });

  constructor(
    private readonly lbUrl: string,
    private readonly bot: FrontBot,
  ) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    for (let i = 0; this.running; i++) {
      const token = await this.bot.token();
      const opened = await send(this.agent, this.lbUrl, 'open', 'POST', '/v1/tasks', {
        token,
        json: { intent: 'order_status', subject: `stream-${i}`, ttl: 600 },
      });
      this.outcomes.push(withoutBody(opened));
      if (opened.status !== 201) continue;
      const task = (JSON.parse(opened.body) as { task_id: string }).task_id;
      this.outcomes.push(
        withoutBody(
          await send(this.agent, this.lbUrl, 'credential', 'POST', `/v1/tasks/${task}/credentials`, {
            token,
            json: { boundary: 'crm-orders', action: 'orders:read' },
          }),
        ),
      );
      this.outcomes.push(withoutBody(await send(this.agent, this.lbUrl, 'complete', 'POST', `/v1/tasks/${task}/complete`, { token })));
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    this.agent.destroy();
  }
}

function withoutBody(outcome: Outcome & { body: string }): Outcome {
  const { body, ...kept } = outcome;
  if (outcome.status >= 300 || outcome.status === 0) kept.error ??= body.slice(0, 200);
  return kept;
}

async function logHead(databaseUrl: string): Promise<string> {
  const client = await connect(databaseUrl);
  try {
    const { rows } = await client.query<{ seq: string | null }>('SELECT max(seq)::text AS seq FROM revocation_events');
    return rows[0]?.seq ?? '0';
  } finally {
    await client.end();
  }
}

async function eventIdsAfter(databaseUrl: string, after: string): Promise<string[]> {
  const client = await connect(databaseUrl);
  try {
    const { rows } = await client.query<{ seq: string }>(
      'SELECT e.seq::text AS seq FROM revocation_events e WHERE e.seq > $1 ORDER BY e.seq',
      [after],
    );
    return rows.map((row) => row.seq);
  } finally {
    await client.end();
  }
}

function countBy(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}
