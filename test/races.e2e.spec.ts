import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { asAdmin, putBoundary, registerBot, type Bot } from './support/scenario.js';
import { assertion } from './support/workload.js';

/**
 * Revocation racing issuance: whatever the interleaving, once a complete, a boundary DELETE or the
 * kill switch has answered, no lease it covers may still be active. PostgreSQL only: the embedded
 * database runs one statement at a time, so nothing there can race.
 */
let broker: TestBroker;

beforeAll(async () => {
  broker = await startBroker();
});
afterAll(() => broker?.close());

async function activeLeases(column: 'task_id' | 'boundary_id' | 'workload_id', value: string): Promise<number> {
  const { rows } = await broker.app.broker.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM leases WHERE ${column} = $1 AND state = 'active' AND expires_at > now()`,
    [value],
  );
  return rows[0]!.n;
}

/** Fires `count` credential requests, `concurrency` at a time, and runs `revoke` once partway through. */
async function storm(bot: Bot, tasks: string[], boundary: string, revoke: () => Promise<unknown>): Promise<number[]> {
  const statuses: number[] = [];
  let next = 0;
  let revoked: Promise<unknown> | undefined;
  const worker = async () => {
    while (next < 240) {
      const i = next++;
      if (i === 80) revoked = revoke();
      const response = await bot.credential(tasks[i % tasks.length]!, { boundary, action: 'orders:read' });
      statuses.push(response.status);
    }
  };
  await Promise.all(Array.from({ length: 24 }, worker));
  await revoked;
  return statuses;
}

describe('revocation racing issuance', () => {
  it('the kill switch leaves no active lease of the workload', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    await putBoundary(broker, 'kill-b');
    const bot = await registerBot(broker, 'kill-bot');
    const tasks = await Promise.all(Array.from({ length: 6 }, () => bot.openTask()));
    const statuses = await storm(bot, tasks, 'kill-b', () => asAdmin(broker)('POST', '/v1/admin/workloads/kill-bot/revoke'));
    expect(statuses).toContain(201);
    expect(statuses.every((s) => [201, 401, 403].includes(s))).toBe(true);
    expect(await activeLeases('workload_id', 'kill-bot')).toBe(0);
  });

  it('a boundary DELETE leaves no active lease under it', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    await putBoundary(broker, 'delete-b');
    const bot = await registerBot(broker, 'delete-bot');
    const tasks = await Promise.all(Array.from({ length: 6 }, () => bot.openTask()));
    const statuses = await storm(bot, tasks, 'delete-b', () => asAdmin(broker)('DELETE', '/v1/admin/boundaries/delete-b'));
    expect(statuses).toContain(201);
    expect(statuses).toContain(403);
    expect(statuses.every((s) => [201, 403].includes(s))).toBe(true);
    expect(await activeLeases('boundary_id', 'delete-b')).toBe(0);
  });

  it('completing a task leaves none of its leases active', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    await putBoundary(broker, 'complete-b');
    const bot = await registerBot(broker, 'complete-bot');
    const taskId = await bot.openTask();
    const statuses = await storm(bot, [taskId], 'complete-b', () => bot.call('POST', `/v1/tasks/${taskId}/complete`));
    expect(statuses).toContain(201);
    expect(statuses).toContain(403);
    expect(await activeLeases('task_id', taskId)).toBe(0);
  });
});

describe('a replica that remembers a task and a boundary', () => {
  it('never permits or refuses on what another replica has changed', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    await putBoundary(broker, 'replica-orders');
    await putBoundary(broker, 'replica-refunds', { actions: ['refund:create'], intents: ['refund_request'] });
    const bot = await registerBot(broker, 'replica-bot');
    const other = await startBroker({ db: broker.db, env: { TOLLGATE_ADMIN_KEY: broker.adminKey, TOLLGATE_KEK: broker.kek } });
    try {
      const taskId = await bot.openTask();
      // This replica now remembers the task (intent order_status) and both boundaries.
      expect((await bot.credential(taskId, { boundary: 'replica-orders', action: 'orders:read' })).status).toBe(201);
      expect((await bot.credential(taskId, { boundary: 'replica-refunds', action: 'refund:create' })).status).toBe(403);

      // The journey changes through the other replica.
      const changed = await fetch(`${other.url}/v1/tasks/${taskId}/intent`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await assertion('replica-bot', bot.key, other.url)}`, 'content-type': 'application/json' },
        body: JSON.stringify({ intent: 'refund_request' }),
      });
      expect(changed.status).toBe(200);

      // Remembered: intent order_status. Truth: refund_request. Both answers follow the truth.
      const old = await bot.credential(taskId, { boundary: 'replica-orders', action: 'orders:read' });
      expect(old.status).toBe(403);
      expect(old.body.reasons).toEqual(['intent_mismatch']);
      expect((await bot.credential(taskId, { boundary: 'replica-refunds', action: 'refund:create' })).status).toBe(201);

      // A boundary disabled through the other replica.
      await fetch(`${other.url}/v1/admin/boundaries/replica-refunds`, { method: 'DELETE', headers: { authorization: `Bearer ${broker.adminKey}` } });
      const disabled = await bot.credential(taskId, { boundary: 'replica-refunds', action: 'refund:create' });
      expect(disabled.status).toBe(403);
      expect(disabled.body.reasons).toEqual(['boundary_disabled']);
      expect(await activeLeases('boundary_id', 'replica-refunds')).toBe(0);
    } finally {
      await other.stop();
    }
  });
});
