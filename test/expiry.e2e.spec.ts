import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { asAdmin, introspect, putBoundary, registerBot, type Bot } from './support/scenario.js';

let broker: TestBroker;
let bot: Bot;

beforeAll(async () => {
  broker = await startBroker({ sweep: false });
  await putBoundary(broker, 'crm-orders', { default_ttl: 1, max_ttl: 600 });
  bot = await registerBot(broker);
});
afterAll(() => broker?.close());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function rawState(table: 'leases' | 'tasks', id: string): Promise<{ state: string; reason: string | null }> {
  const column = table === 'leases' ? 'revoke_reason' : 'end_reason';
  const { rows } = await broker.app.broker.db.query<{ state: string; reason: string | null }>(
    `SELECT state, ${column} AS reason FROM ${table} WHERE id = $1`,
    [id],
  );
  return rows[0]!;
}

describe('expiry', () => {
  it('a lease past expires_at reads expired at once, and its row is never rewritten for it', async () => {
    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    expect(issued.body.expires_in).toBe(1);
    expect((await introspect(broker, issued.body.credential.access_token)).active).toBe(true);
    await sleep(1200);

    expect(await introspect(broker, issued.body.credential.access_token)).toEqual({ active: false });
    const listed = await asAdmin(broker)('GET', `/v1/leases?task=${taskId}`);
    expect(listed.body.items[0].state).toBe('expired');
    expect((await asAdmin(broker)('GET', `/v1/leases?task=${taskId}&state=active`)).body.items).toEqual([]);
    expect(await rawState('leases', issued.body.lease_id)).toEqual({ state: 'active', reason: null });

    // A JWT lease has nothing to revoke at a source: the sweeper leaves its row as it is (the same
    // row version, xmin), and it keeps reading expired.
    const version = async () =>
      (await broker.app.broker.db.query<{ v: string }>('SELECT xmin::text AS v FROM leases WHERE id = $1', [issued.body.lease_id])).rows[0]!
        .v;
    const before = await version();
    const swept = await broker.app.broker.sweeper.sweepOnce();
    expect(swept.leases).toBe(0);
    expect(await version()).toBe(before);
    expect(await rawState('leases', issued.body.lease_id)).toEqual({ state: 'active', reason: null });
    expect(
      (await asAdmin(broker)('GET', `/v1/leases?task=${taskId}&state=expired`)).body.items.map((l: { lease_id: string }) => l.lease_id),
    ).toEqual([issued.body.lease_id]);
    expect(await introspect(broker, issued.body.credential.access_token)).toEqual({ active: false });
    // Completing the task later does not turn it into a revoked lease: it had expired.
    expect((await bot.call('POST', `/v1/tasks/${taskId}/complete`)).body.revoked_leases).toEqual([]);
    expect(await rawState('leases', issued.body.lease_id)).toEqual({ state: 'active', reason: null });
  });

  it('a task past its time refuses credentials at once and is swept to expired with reason task_expired', async () => {
    const taskId = await bot.openTask('order_status', { ttl: 1 });
    await sleep(1200);
    const refused = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    expect(refused.status).toBe(403);
    expect(refused.body.reasons).toEqual(['task_not_active']);
    expect((await bot.call('GET', `/v1/tasks/${taskId}`)).body.state).toBe('expired');
    expect((await bot.call('POST', `/v1/tasks/${taskId}/complete`)).status).toBe(409);

    const swept = await broker.app.broker.sweeper.sweepOnce();
    expect(swept.tasks).toBeGreaterThanOrEqual(1);
    expect(await rawState('tasks', taskId)).toEqual({ state: 'expired', reason: 'task_expired' });
    const shown = await bot.call('GET', `/v1/tasks/${taskId}`);
    expect(shown.body.events.map((e: { kind: string }) => e.kind)).toEqual(['opened', 'expired']);
  });

  it('replicas sweeping side by side hand every expired lease held at a source to the outbox exactly once, and leave the others', async () => {
    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    const db = broker.app.broker.db;
    const decision = await db.query<{ decision_id: string }>('SELECT decision_id FROM leases WHERE id = $1', [issued.body.lease_id]);
    // 3,000 leases past their time held at a source (external), and 2,000 JWT ones beside them.
    await db.query(
      `INSERT INTO leases (id, task_id, workload_id, boundary_id, boundary_version, decision_id, action, credential_kind,
                           issued_at, expires_at, state, external)
       SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'))::uuid, $1, 'chatbot', 'crm-orders', 1, $2,
              'orders:read', 'jwt', now() - interval '1 hour', now() - interval '59 minutes', 'active', n <= 3000
         FROM generate_series(1, 5000) AS n`,
      [taskId, decision.rows[0]!.decision_id],
    );
    const due = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM leases WHERE state = 'active' AND external AND expires_at <= now()`,
    );
    expect(due.rows[0]!.n).toBe(3000);
    const sweeper = broker.app.broker.sweeper;
    const results = await Promise.all([sweeper.sweepOnce(250), sweeper.sweepOnce(250), sweeper.sweepOnce(250)]);
    // Every due lease handed over, none twice: the passes' counts add up to exactly what was due.
    expect(results.reduce((sum, r) => sum + r.leases, 0)).toBe(3000);
    const states = await db.query<{ external: boolean; state: string; reason: string | null; n: number }>(
      `SELECT external, state, revoke_reason AS reason, count(*)::int AS n FROM leases
        WHERE task_id = $1 AND id <> $2 GROUP BY 1, 2, 3 ORDER BY 1`,
      [taskId, issued.body.lease_id],
    );
    expect(states.rows).toEqual([
      { external: false, state: 'active', reason: null, n: 2000 },
      { external: true, state: 'revoking', reason: 'lease_expired', n: 3000 },
    ]);
    expect((await sweeper.sweepOnce()).leases).toBe(0);
  });
});

describe('the background sweeper', () => {
  it('runs by itself on the configured interval', async (context) => {
    // PGlite is one in-process database: a second replica on it is not a thing users can run.
    if (broker.db.kind === 'pglite') context.skip();
    // A second replica on the same database, this one sweeping every 100 ms.
    const sweeping = await startBroker({
      db: broker.db,
      sweep: true,
      env: { TOLLGATE_ADMIN_KEY: broker.adminKey, TOLLGATE_KEK: broker.kek, TOLLGATE_SWEEP_INTERVAL_MS: '100' },
    });
    try {
      const taskId = await bot.openTask();
      const issued = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
      // Made a lease held at a source, as a Vault or STS lease is: the sweeper hands it over.
      await broker.app.broker.db.query('UPDATE leases SET external = true WHERE id = $1', [issued.body.lease_id]);
      await sleep(1600);
      expect((await rawState('leases', issued.body.lease_id)).reason).toBe('lease_expired');
      expect((await rawState('leases', issued.body.lease_id)).state).not.toBe('active');
    } finally {
      await sweeping.stop();
    }
  });
});
