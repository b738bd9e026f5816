import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { asAdmin, BOUNDARY, putBoundary, registerBot, type Bot } from './support/scenario.js';
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
      await fetch(`${other.url}/v1/admin/boundaries/replica-refunds`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${broker.adminKey}` },
      });
      const disabled = await bot.credential(taskId, { boundary: 'replica-refunds', action: 'refund:create' });
      expect(disabled.status).toBe(403);
      expect(disabled.body.reasons).toEqual(['boundary_disabled']);
      expect(await activeLeases('boundary_id', 'replica-refunds')).toBe(0);
    } finally {
      await other.stop();
    }
  });
});

/**
 * Concurrent writers of one new id (issue 12, finding 8): the first writer's version row did not
 * exist to be locked, so every PUT read "no version yet", claimed version 1, and all but one
 * failed on the primary key with a 500. Writers of one id now queue on an advisory lock.
 */
describe('concurrent PUTs of one new id', () => {
  const N = 20;
  const admin = () => asAdmin(broker);

  async function versions(table: 'boundaries' | 'policies', id: string): Promise<number[]> {
    const { rows } = await broker.app.broker.db.query<{ version: number }>(`SELECT version FROM ${table} WHERE id = $1 ORDER BY version`, [
      id,
    ]);
    return rows.map((row) => row.version);
  }

  it('a boundary: one 201, the rest 200, one version chain', async () => {
    const statuses = await Promise.all(
      Array.from(
        { length: N },
        async (_, i) => (await admin()('PUT', '/v1/admin/boundaries/race-b', { ...BOUNDARY, default_ttl: 60 + i })).status,
      ),
    );
    expect(
      statuses.filter((s) => s === 201),
      JSON.stringify(statuses),
    ).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(N - 1);
    expect(await versions('boundaries', 'race-b')).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    const { rows } = await broker.app.broker.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM boundaries WHERE id = $1 AND superseded_at IS NULL',
      ['race-b'],
    );
    expect(rows[0]!.n).toBe(1);
    // A DELETE among PUTs queues too.
    const mixed = await Promise.all([
      ...Array.from({ length: 5 }, (_, i) => admin()('PUT', '/v1/admin/boundaries/race-b', { ...BOUNDARY, default_ttl: 200 + i })),
      admin()('DELETE', '/v1/admin/boundaries/race-b'),
    ]);
    expect(mixed.map((r) => r.status).every((s) => s === 200)).toBe(true);
  });

  it('a global policy: one 201, the rest 200, one version chain', async () => {
    const statuses = await Promise.all(
      Array.from(
        { length: N },
        async (_, i) =>
          (
            await admin()('PUT', '/v1/admin/policies/race-p', {
              policy: 'forbid(principal, action, resource) when { false };',
              description: `writer ${i}`,
            })
          ).status,
      ),
    );
    expect(
      statuses.filter((s) => s === 201),
      JSON.stringify(statuses),
    ).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(N - 1);
    expect(await versions('policies', 'race-p')).toEqual(Array.from({ length: N }, (_, i) => i + 1));
  });

  it('a workload and an issuer: one 201, the rest 200, never 500', async () => {
    const key = (await registerBot(broker, 'race-key-source')).key;
    const workloads = await Promise.all(
      Array.from({ length: N }, () => admin()('PUT', '/v1/admin/workloads/race-w', { jwks: { keys: [key.publicJwk] } })),
    );
    expect(workloads.map((r) => r.status).sort()).toEqual([...Array(N - 1).fill(200), 201].sort());
    const issuers = await Promise.all(
      Array.from({ length: N }, () =>
        admin()('PUT', '/v1/admin/issuers/race-i', {
          issuer: 'https://race.acme.test',
          kind: 'oidc',
          jwks_uri: 'http://127.0.0.1:9/jwks.json',
        }),
      ),
    );
    expect(issuers.map((r) => r.status).sort(), JSON.stringify(issuers.map((r) => r.body))).toEqual(
      [...Array(N - 1).fill(200), 201].sort(),
    );
  });
});
