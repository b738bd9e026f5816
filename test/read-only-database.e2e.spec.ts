import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { admin, postgresReachable } from './support/database.js';
import { call } from './support/http.js';
import { putBoundary, registerBot, type Bot } from './support/scenario.js';

/**
 * Issue 16, fault 1: during a Patroni failover the load balancer may hand the broker a connection
 * to a node that cannot write yet (Patroni reports the new primary a moment before its promotion
 * ends) or any more (an old primary demoted). Writes there fail with SQLSTATE 25006
 * (read_only_sql_transaction), which was answered 500. It must be 503 temporarily_unavailable, like
 * any database that is away; /readyz must say not ready; and the broker must drop such connections,
 * so it recovers by itself once writes are possible again. A database set read-only stands in for
 * the standby here (the same error, the same `transaction_read_only`); test/ha/failover.e2e.spec.ts
 * meets the real one.
 */
let reachable = false;
let broker: TestBroker;
let bot: Bot;

beforeAll(async () => {
  reachable = await postgresReachable();
  if (!reachable) return;
  broker = await startBroker({ kind: 'postgres' });
  await putBoundary(broker, 'crm-orders');
  bot = await registerBot(broker);
});
afterAll(async () => {
  if (!reachable) return;
  await admin((client) => client.query(`ALTER DATABASE ${broker.db.name} RESET default_transaction_read_only`)).catch(() => {});
  await broker.close();
});

async function until(probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('a database that does not accept writes (a standby)', () => {
  it('answers 503, reports not ready, and recovers by itself once writes are possible again', async (context) => {
    if (!reachable) context.skip();
    const taskId = await bot.openTask();
    expect((await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' })).status).toBe(201);

    // Every new session is read-only; the pool's current ones are ended so that it opens new ones.
    await admin(async (client) => {
      await client.query(`ALTER DATABASE ${broker.db.name} SET default_transaction_read_only = on`);
      await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [
        broker.db.name,
      ]);
    });
    const statuses: number[] = [];
    const errors = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const answers = await Promise.all([
        bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' }),
        bot.call('POST', '/v1/tasks', { intent: 'order_status', subject: 'user-42' }),
        bot.call('POST', `/v1/tasks/${taskId}/complete`),
      ]);
      for (const answer of answers) {
        statuses.push(answer.status);
        errors.add(answer.body.error as string);
      }
    }
    expect(new Set(statuses)).toEqual(new Set([503]));
    expect(errors).toEqual(new Set(['temporarily_unavailable']));
    const ready = await call(broker.url, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ status: 'unavailable' });

    // Writable again, without ending any session: the broker's read-only connections were dropped.
    await admin((client) => client.query(`ALTER DATABASE ${broker.db.name} RESET default_transaction_read_only`));
    await until(async () => (await call(broker.url, 'GET', '/readyz')).status === 200, 5_000);
    await until(async () => (await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' })).status === 201, 5_000);
  }, 60_000);
});
