import { connect as tcpConnect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { admin, connect } from './support/database.js';
import { call } from './support/http.js';
import { readEvents } from './support/sse.js';
import { asAdmin, metric, putBoundary, registerBot, type Bot } from './support/scenario.js';

/**
 * GET /v1/events under abuse (issue 12, finding 4): readers that never read, a history replayed from
 * 0, hundreds of idle streams. The broker runs in this process, so its memory is this process's.
 */

const HISTORY = 50_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes `count` sequenced lease.revoked events straight into the feed (as if revocations had run). */
async function seedHistory(broker: TestBroker, count: number): Promise<void> {
  const client = await connect(broker.db.databaseUrl!);
  try {
    await client.query(
      `INSERT INTO revocation_events (seq, type, lease_id, task_id, workload_id, reason, audience)
       SELECT nextval('revocation_event_seq'), 'lease.revoked', gen_random_uuid(), gen_random_uuid(), 'history-bot', 'task_completed', 'https://crm.acme.test'
         FROM generate_series(1, $1)`,
      [count],
    );
  } finally {
    await client.end();
  }
}

/** Unsequenced events, as revocations write them: the broker's sequencer gives them positions. */
async function writeEvents(broker: TestBroker, count: number): Promise<void> {
  const client = await connect(broker.db.databaseUrl!);
  try {
    await client.query(
      `INSERT INTO revocation_events (type, lease_id, task_id, workload_id, reason, audience)
       SELECT 'lease.revoked', gen_random_uuid(), gen_random_uuid(), 'live-bot', 'task_completed', 'https://crm.acme.test'
         FROM generate_series(1, $1)`,
      [count],
    );
  } finally {
    await client.end();
  }
}

async function allPositions(broker: TestBroker): Promise<string[]> {
  const client = await connect(broker.db.databaseUrl!);
  try {
    const { rows } = await client.query<{ seq: string }>(
      'SELECT seq::text AS seq FROM revocation_events WHERE seq IS NOT NULL ORDER BY revocation_events.seq',
    );
    return rows.map((row) => row.seq);
  } finally {
    await client.end();
  }
}

/** A raw client that sends the request and then never reads a byte: the kernel's buffers fill, then the broker's would. */
async function pausedReader(broker: TestBroker, key: string, query = '?last_event_id=0'): Promise<Socket> {
  const { port } = new URL(broker.url);
  const socket = tcpConnect({ host: '127.0.0.1', port: Number(port) });
  socket.pause();
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => {}); // a reset by the broker is what some tests wait for
  socket.write(`GET /v1/events${query} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${key}\r\n\r\n`);
  return socket;
}

/** A reading client: counts the bytes and parses the events it receives. */
function reader(broker: TestBroker, key: string, query = '') {
  const controller = new AbortController();
  const ids: string[] = [];
  const events: { id: string; event: string; data: Record<string, unknown>; at: number }[] = [];
  let status = 0;
  let ended = false;
  const opened = fetch(`${broker.url}/v1/events${query}`, { headers: { authorization: `Bearer ${key}` }, signal: controller.signal });
  const done = opened
    .then(async (response) => {
      status = response.status;
      if (status !== 200 || !response.body) return;
      await readEvents(response.body, (event) => {
        ids.push(event.id);
        events.push({ ...event, at: Date.now() });
      });
    })
    .catch(() => {})
    .finally(() => (ended = true));
  return {
    ids,
    events,
    status: () => status,
    ended: () => ended,
    opened: opened.then(() => undefined).catch(() => undefined),
    async until(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
      const deadline = Date.now() + timeoutMs;
      while (!predicate() && Date.now() < deadline) await sleep(20);
      return predicate();
    },
    async close() {
      controller.abort();
      await done;
    },
  };
}

async function reviewerKey(broker: TestBroker, label: string): Promise<{ id: string; key: string }> {
  const created = await asAdmin(broker)('POST', '/v1/admin/api-keys', { role: 'reviewer', label });
  expect(created.status).toBe(201);
  return created.body as { id: string; key: string };
}

/** Transactions committed in the broker's database: what a poller per stream multiplies. */
async function commits(broker: TestBroker): Promise<number> {
  return admin(async (client) => {
    const { rows } = await client.query<{ n: string }>('SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = $1', [
      broker.db.name,
    ]);
    return Number(rows[0]!.n);
  });
}

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** What the process holds after a full collection: what the broker keeps, not its garbage. */
const retained = () => {
  gc();
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external;
};
const MB = 1024 * 1024;

describe('GET /v1/events under abuse', () => {
  let broker: TestBroker;
  let bot: Bot;

  beforeAll(async () => {
    broker = await startBroker();
    await putBoundary(broker, 'crm-orders');
    bot = await registerBot(broker);
    await seedHistory(broker, HISTORY);
  });
  afterAll(() => broker?.close());

  it('holds memory bounded while paused readers replay the whole history', async () => {
    const before = retained();
    const rssBefore = process.memoryUsage().rss;
    const sockets: Socket[] = [];
    let most = 0;
    let rssPeak = rssBefore;
    try {
      for (let i = 0; i < 10; i++) sockets.push(await pausedReader(broker, broker.adminKey));
      for (let i = 0; i < 8; i++) {
        await sleep(1000);
        most = Math.max(most, retained() - before);
        rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      }
      expect(await metric(broker, 'tollgate_event_streams')).toBe(10);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
    console.log(
      `10 paused readers over ${HISTORY} events: retained heap+external +${(most / MB).toFixed(1)} MB, rss ${(rssBefore / MB).toFixed(0)} → peak ${(rssPeak / MB).toFixed(0)} MB`,
    );
    // Without backpressure each reader's replay (~12 MB of text) stays in the broker's memory.
    expect(most).toBeLessThan(30 * MB);

    // The broker still streams to a reader that reads.
    const live = reader(broker, broker.adminKey);
    await live.opened;
    await sleep(300);
    const taskId = await bot.openTask();
    await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    expect(await live.until(() => live.events.some((e) => e.event === 'task.ended'), 5000)).toBe(true);
    await live.close();
  });

  it('delivers a revocation to every open stream within a second', async () => {
    const streams = Array.from({ length: 5 }, () => reader(broker, broker.adminKey));
    const slowest: number[] = [];
    try {
      await Promise.all(streams.map((s) => s.opened));
      await sleep(500);
      for (let round = 0; round < 3; round++) {
        const taskId = await bot.openTask();
        const lease = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
        const revokedAt = Date.now();
        const revoked = await asAdmin(broker)('POST', `/v1/admin/leases/${lease.body.lease_id as string}/revoke`);
        expect(revoked.status, JSON.stringify(revoked.body)).toBe(200);
        const arrived = (s: (typeof streams)[number]) => s.events.find((e) => e.data.lease_id === lease.body.lease_id);
        for (const stream of streams) expect(await stream.until(() => arrived(stream) !== undefined, 5000)).toBe(true);
        slowest.push(Math.max(...streams.map((s) => arrived(s)!.at - revokedAt)));
      }
    } finally {
      await Promise.all(streams.map((s) => s.close()));
    }
    slowest.sort((a, b) => a - b);
    console.log(`revocation → event on the slowest of 5 streams (ms): ${slowest.join(', ')}`);
    expect(slowest[1]).toBeLessThan(1000);
  });

  it('serves many idle streams from one poller', async () => {
    const keys = await Promise.all(Array.from({ length: 7 }, (_, i) => reviewerKey(broker, `watcher-${i}`)));
    const streams = Array.from({ length: 120 }, (_, i) => reader(broker, keys[i % keys.length]!.key));
    let perSecond: number;
    try {
      await Promise.all(streams.map((s) => s.opened));
      expect(streams.every((s) => s.status() === 200)).toBe(true);
      expect(await metric(broker, 'tollgate_event_streams')).toBe(120);
      await sleep(1500);
      const from = await commits(broker);
      const started = Date.now();
      await sleep(4000);
      perSecond = ((await commits(broker)) - from) / ((Date.now() - started) / 1000);
    } finally {
      await Promise.all(streams.map((s) => s.close()));
    }
    console.log(`120 idle streams: ${perSecond.toFixed(1)} transactions/s`);
    // One poller: a sequencer transaction and a read per tick, and one key check a second.
    expect(perSecond).toBeLessThan(60);
  });

  it('replays history and joins the live feed without a gap or a duplicate', async () => {
    const stream = reader(broker, broker.adminKey, '?last_event_id=0');
    try {
      // New events keep arriving all through the replay, the join and after it.
      const joinedAt = HISTORY + 100;
      let writes = 0;
      while (stream.ids.length < joinedAt || writes < 5) {
        await writeEvents(broker, 20);
        writes++;
        await sleep(50);
        if (writes > 600) break;
      }
      for (let i = 0; i < 5; i++) {
        await writeEvents(broker, 20);
        await sleep(100);
      }
      await sleep(1000);
      const expected = await allPositions(broker);
      expect(await stream.until(() => stream.ids.length >= expected.length, 20_000)).toBe(true);
      await sleep(500);
      console.log(`replay → live: ${expected.length} events, ${writes + 5} writes of 20 during the stream`);
      expect(stream.ids.length).toBe(expected.length);
      expect(stream.ids).toEqual(expected);
    } finally {
      await stream.close();
    }
  });

  it('closes the streams of a key revoked while they are open', async () => {
    const { id, key } = await reviewerKey(broker, 'soon-revoked');
    const streams = [reader(broker, key), reader(broker, key)];
    await Promise.all(streams.map((s) => s.opened));
    expect(streams.map((s) => s.status())).toEqual([200, 200]);
    expect((await asAdmin(broker)('DELETE', `/v1/admin/api-keys/${id}`)).status).toBe(200);
    for (const stream of streams) expect(await stream.until(() => stream.ended(), 3000)).toBe(true);
    expect((await call(broker.url, 'GET', '/v1/events', { token: key })).status).toBe(401);
  });
});

describe('GET /v1/events limits', () => {
  let broker: TestBroker;

  beforeAll(async () => {
    broker = await startBroker({
      env: { TOLLGATE_EVENTS_MAX_STREAMS: '6', TOLLGATE_EVENTS_MAX_STREAMS_PER_KEY: '3', TOLLGATE_EVENTS_STALL_TIMEOUT_MS: '1000' },
    });
    await seedHistory(broker, HISTORY);
  });
  afterAll(() => broker?.close());

  // A stream ends when one of its reads fails (the client reconnects with Last-Event-ID): on a
  // starved machine a pool wait can do that and free a place. Such a round is tried again; every
  // round closes what it opened, so a retry starts from no streams.
  it('refuses a stream beyond the per-key and the total cap with 429 slow_down and Retry-After', { retry: 2 }, async () => {
    const first = await reviewerKey(broker, 'one');
    const second = await reviewerKey(broker, 'two');
    const opened: Array<ReturnType<typeof reader>> = [];
    try {
      const mine = Array.from({ length: 3 }, () => reader(broker, first.key));
      opened.push(...mine);
      await Promise.all(mine.map((s) => s.opened));
      expect(mine.map((s) => s.status())).toEqual([200, 200, 200]);

      const refused = await fetch(`${broker.url}/v1/events`, { headers: { authorization: `Bearer ${first.key}` } });
      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(((await refused.json()) as { error: string }).error).toBe('slow_down');

      // Another key still may, up to the total.
      const theirs = Array.from({ length: 3 }, () => reader(broker, second.key));
      opened.push(...theirs);
      await Promise.all(theirs.map((s) => s.opened));
      expect(theirs.map((s) => s.status())).toEqual([200, 200, 200]);
      expect(await metric(broker, 'tollgate_event_streams')).toBe(6);
      const full = await fetch(`${broker.url}/v1/events`, { headers: { authorization: `Bearer ${broker.adminKey}` } });
      expect(full.status).toBe(429);
      await full.body?.cancel();

      // A closed stream gives its place back.
      await mine[0]!.close();
      await sleep(200);
      const again = reader(broker, first.key);
      opened.push(again);
      await again.opened;
      expect(again.status()).toBe(200);
    } finally {
      await Promise.all(opened.map((s) => s.close()));
      const deadline = Date.now() + 5000;
      while ((await metric(broker, 'tollgate_event_streams')) !== 0 && Date.now() < deadline) await sleep(50);
    }
  });

  it('drops a stream whose reader stalls longer than TOLLGATE_EVENTS_STALL_TIMEOUT_MS', async () => {
    const socket = await pausedReader(broker, broker.adminKey);
    await sleep(500);
    const text = (await call<string>(broker.url, 'GET', '/metrics')).body;
    expect(text).toMatch(/^tollgate_event_streams 1$/m);
    let closed = false;
    socket.on('close', () => (closed = true));
    // The replay fills the socket's buffers within moments; a second later the broker drops it.
    const deadline = Date.now() + 8000;
    while ((await metric(broker, 'tollgate_event_streams')) !== 0 && Date.now() < deadline) await sleep(100);
    expect(await metric(broker, 'tollgate_event_streams')).toBe(0);
    // Reading now finds the end of the connection, not an endless replay.
    socket.resume();
    const until = Date.now() + 8000;
    while (!closed && Date.now() < until) await sleep(50);
    expect(closed).toBe(true);
  });

  it('answers HEAD without opening a stream', async () => {
    const head = await fetch(`${broker.url}/v1/events`, { method: 'HEAD', headers: { authorization: `Bearer ${broker.adminKey}` } });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(await metric(broker, 'tollgate_event_streams')).toBe(0);
  });
});
