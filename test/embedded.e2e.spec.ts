import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { asAdmin, introspect, putBoundary, registerBot, type Bot } from './support/scenario.js';

/** The embedded default (PGlite) always, whatever server is reachable: same migrations, same flow. */
let broker: TestBroker;
let bot: Bot;

beforeAll(async () => {
  broker = await startBroker({ kind: 'pglite' });
  await putBoundary(broker, 'crm-orders');
  bot = await registerBot(broker);
});
afterAll(() => broker?.close());

describe('the embedded database', () => {
  it('runs every migration and serves the core loop', async () => {
    expect(broker.app.broker.db.kind).toBe('pglite');
    const applied = await broker.app.broker.db.query<{ name: string }>('SELECT name FROM tollgate_migrations ORDER BY id');
    expect(applied.rows.length).toBeGreaterThanOrEqual(6);

    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    expect(issued.status).toBe(201);
    expect((await introspect(broker, issued.body.credential.access_token)).active).toBe(true);
    expect((await bot.call('POST', `/v1/tasks/${taskId}/complete`)).body.revoked_leases).toEqual([issued.body.lease_id]);
    expect((await introspect(broker, issued.body.credential.access_token)).active).toBe(false);
  });

  it("keeps transactions apart on its single session: a rollback never takes another request's rows", async () => {
    const db = broker.app.broker.db;
    await db.query('CREATE TABLE scratch (n integer NOT NULL)');
    const work = Array.from({ length: 60 }, (_, n) =>
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO scratch (n) VALUES ($1)', [n]);
        await new Promise((resolve) => setTimeout(resolve, n % 3)); // let other work try to interleave
        await tx.query('INSERT INTO scratch (n) VALUES ($1)', [n + 1000]);
        if (n % 2 === 1) throw new Error('roll me back');
      }),
    );
    const outcomes = await Promise.allSettled(work);
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(30);
    const { rows } = await db.query<{ n: number }>('SELECT n FROM scratch ORDER BY n');
    const even = Array.from({ length: 30 }, (_, i) => i * 2);
    expect(rows.map((r) => r.n)).toEqual([...even, ...even.map((n) => n + 1000)]);
  });

  it('stays consistent under concurrent permits, denials, completions and refused intent changes', async () => {
    const tasks = await Promise.all(Array.from({ length: 6 }, () => bot.openTask()));
    const done = tasks.slice(0, 2);
    for (const taskId of done) await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    const live = tasks.slice(2);

    const requests = Array.from({ length: 80 }, (_, i) => {
      const taskId = live[i % live.length]!;
      switch (i % 4) {
        case 0:
          return bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
        case 1:
          return bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:delete' });
        case 2:
          return bot.call('POST', `/v1/tasks/${done[i % 2]}/intent`, { intent: 'refund_request' }); // 409: rolled back
        default:
          return bot.credential(done[i % 2]!, { boundary: 'crm-orders', action: 'orders:read' });
      }
    });
    const responses = await Promise.all(requests);
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(20);
    expect(statuses.filter((s) => s === 403)).toHaveLength(40);
    expect(statuses.filter((s) => s === 409)).toHaveLength(20);

    const db = broker.app.broker.db;
    for (const response of responses.filter((r) => r.status === 201)) {
      const lease = await db.query('SELECT 1 FROM leases l JOIN decisions d ON d.id = l.decision_id WHERE l.id = $1', [
        response.body.lease_id,
      ]);
      expect(lease.count).toBe(1);
      expect((await introspect(broker, response.body.credential.access_token)).active).toBe(true);
    }
    for (const response of responses.filter((r) => r.status === 403)) {
      const decision = await db.query(`SELECT 1 FROM decisions WHERE id = $1 AND outcome = 'deny'`, [response.body.decision_id]);
      expect(decision.count).toBe(1);
    }
    const audit = await db.query<{ kind: string; n: number }>(
      `SELECT kind, count(*)::int AS n FROM audit_events WHERE kind IN ('credential.permit', 'credential.deny') AND task_id = ANY($1::uuid[]) GROUP BY kind ORDER BY kind`,
      [tasks],
    );
    expect(audit.rows).toEqual([
      { kind: 'credential.deny', n: 40 },
      { kind: 'credential.permit', n: 20 },
    ]);
    for (const taskId of done) {
      const task = await db.query<{ intent: string; state: string }>('SELECT intent, state FROM tasks WHERE id = $1', [taskId]);
      expect(task.rows[0]).toEqual({ intent: 'order_status', state: 'completed' });
    }
    const listed = await asAdmin(broker)('GET', '/v1/leases?state=active&limit=1000');
    expect(listed.body.items).toHaveLength(20);
  });

  it('chains its audit events and refuses to change them, as on PostgreSQL', async () => {
    const db = broker.app.broker.db;
    const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events');
    const pass = await broker.app.broker.auditChainer.runOnce();
    expect(pass).toEqual({ leader: true, linked: rows[0]!.n, unlinked: 0 });
    const verified = await asAdmin(broker)('GET', '/v1/audit/verify');
    expect(verified.body).toEqual({
      ok: true,
      verified: rows[0]!.n,
      head: { seq: expect.any(String), hash: expect.stringMatching(/^[0-9a-f]{64}$/) },
      unchained: 0,
    });
    await expect(db.query(`UPDATE audit_events SET actor = 'admin'`)).rejects.toThrow(/append-only/);
    await expect(db.query(`DELETE FROM decisions`)).rejects.toThrow(/append-only/);
    await expect(db.query(`TRUNCATE audit_events`)).rejects.toThrow(/append-only/);
    const checkpoint = await asAdmin(broker)('GET', '/v1/audit/checkpoint');
    expect(checkpoint.body).toMatchObject({ seq: verified.body.head.seq, hash: verified.body.head.hash });
  });
});
