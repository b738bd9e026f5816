import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_CHANNEL } from '../libs/audit/index.js';
import { BACKENDS, backendCovered } from './support/backends.js';
import { admin } from './support/database.js';
import { readEvents, type SseEvent } from './support/sse.js';
import { startWithBot, type Bot } from './support/scenario.js';
import type { TestBroker } from './support/broker.js';

/**
 * A revocation reaches open event streams when its statement commits, not at the feed's next poll:
 * the statement notifies `tollgate_events` and the feed, listening, reads at once. The brokers here
 * poll once in ten minutes, so an event that arrives within seconds was brought by the notification.
 * On PostgreSQL the listening connection is also killed: it is opened again and nothing is missed.
 */
const NEVER_MS = 600_000;

for (const kind of BACKENDS) {
  describe.skipIf(!backendCovered(kind))(`revocations wake the event feed [${kind}]`, () => {
    let broker: TestBroker;
    let bot: Bot;

    beforeAll(async () => ({ broker, bot } = await startWithBot({ kind, eventPollMs: NEVER_MS })));
    afterAll(() => broker?.close());

    it('a completed task reaches an open stream without waiting for a poll', async () => {
      const stream = open(broker);
      try {
        await stream.ready;
        const taskId = await bot.openTask();
        const lease = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
        expect(lease.status).toBe(201);
        const sent = Date.now();
        expect((await bot.call('POST', `/v1/tasks/${taskId}/complete`)).status).toBe(200);
        const events = await stream.until((seen) => seen.some((e) => e.event === 'lease.revoked' && e.data.task_id === taskId));
        // The task's end commits first (its leases are dead from then on), then its leases' rows.
        expect(events.filter((e) => e.data.task_id === taskId).map((e) => e.event)).toEqual(['task.ended', 'lease.revoked']);
        expect(Date.now() - sent).toBeLessThan(5_000);
      } finally {
        await stream.close();
      }
    });

    it.skipIf(kind !== 'postgres')('listens again after its connection is killed, and reads what was written meanwhile', async () => {
      const stream = open(broker);
      try {
        await stream.ready;
        const killed = await admin((client) =>
          client.query(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = $1 AND application_name = 'tollgate-listen' AND query ILIKE $2`,
            [broker.db.name, `%LISTEN%${EVENT_CHANNEL}%`],
          ),
        );
        expect(killed.rows).toHaveLength(1);
        // Written while nobody listens: the reopened listener wakes the feed once it is back.
        const taskId = await bot.openTask();
        await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
        expect((await bot.call('POST', `/v1/tasks/${taskId}/complete`)).status).toBe(200);
        await stream.until((seen) => seen.some((e) => e.event === 'task.ended' && e.data.task_id === taskId));
        // And listening again: the next one comes by notification too.
        const next = await bot.openTask();
        await bot.credential(next, { boundary: 'crm-orders', action: 'orders:read' });
        expect((await bot.call('POST', `/v1/tasks/${next}/complete`)).status).toBe(200);
        await stream.until((seen) => seen.some((e) => e.event === 'task.ended' && e.data.task_id === next));
      } finally {
        await stream.close();
      }
    });
  });
}

/** An admin's stream; `ready` once the broker has answered with the stream's head. */
function open(broker: TestBroker) {
  const controller = new AbortController();
  const seen: SseEvent[] = [];
  const response = fetch(`${broker.url}/v1/events`, { headers: { authorization: `Bearer ${broker.adminKey}` }, signal: controller.signal });
  const done = response.then((r) => (r.body ? readEvents(r.body, (event) => seen.push(event)).catch(() => {}) : undefined));
  return {
    ready: response.then((r) => expect(r.status).toBe(200)),
    async until(found: (events: SseEvent[]) => boolean, timeoutMs = 10_000): Promise<SseEvent[]> {
      const deadline = Date.now() + timeoutMs;
      while (!found(seen)) {
        if (Date.now() > deadline) throw new Error(`not on the stream within ${timeoutMs} ms: ${JSON.stringify(seen.map((e) => e.event))}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return seen;
    },
    async close() {
      controller.abort();
      await done;
    },
  };
}
