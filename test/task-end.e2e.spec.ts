import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { asAdmin, introspect, putBoundary, registerBot, type Bot } from './support/scenario.js';

/**
 * Ending a task (issue 15, complete_1000): the task's end commits first, and from that commit every
 * live lease of the task reads revoked, however many there are; the lease rows are revoked right
 * after, in a transaction of their own. These cases stop in between, as a replica that died there
 * would: the leases must already be dead to introspection and review, a retried complete or the
 * sweeper must finish the rows exactly once, and nothing may be revoked twice.
 */
let broker: TestBroker;
let bot: Bot;

beforeAll(async () => {
  broker = await startBroker({ sweep: false });
  await putBoundary(broker, 'crm-orders', { default_ttl: 600, max_ttl: 600 });
  bot = await registerBot(broker);
});
afterAll(() => broker?.close());

const db = () => broker.app.broker.db;

async function taskWithLeases(n: number): Promise<{ taskId: string; leases: string[]; tokens: string[] }> {
  const taskId = await bot.openTask();
  const leases: string[] = [];
  const tokens: string[] = [];
  for (let i = 0; i < n; i++) {
    const issued = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read', resource: `order/${i}` });
    expect(issued.status, JSON.stringify(issued.body)).toBe(201);
    leases.push(issued.body.lease_id);
    tokens.push(issued.body.credential.access_token);
  }
  return { taskId, leases, tokens };
}

/** What a replica that died after ending the task leaves: the task ended, its leases pending, their rows live. */
async function endWithoutRevoking(taskId: string, state: 'completed' | 'revoked', endedSecondsAgo = 0): Promise<void> {
  await db().query(
    `UPDATE tasks SET state = $2, end_reason = $3, ended_at = now() - make_interval(secs => $4), leases_pending = true WHERE id = $1`,
    [taskId, state, state === 'completed' ? 'task_completed' : 'revoked_by_admin', endedSecondsAgo],
  );
}

async function rawLeases(taskId: string): Promise<{ state: string; reason: string | null }[]> {
  const { rows } = await db().query<{ state: string; reason: string | null }>(
    'SELECT state, revoke_reason AS reason FROM leases WHERE task_id = $1 ORDER BY id',
    [taskId],
  );
  return rows;
}

async function pending(taskId: string): Promise<boolean> {
  const { rows } = await db().query<{ p: boolean }>('SELECT leases_pending AS p FROM tasks WHERE id = $1', [taskId]);
  return rows[0]!.p;
}

async function revocationEvents(leases: string[]): Promise<number> {
  const { rows } = await db().query<{ n: number }>(
    `SELECT count(*)::int AS n FROM revocation_events WHERE type = 'lease.revoked' AND lease_id = ANY($1::uuid[])`,
    [leases],
  );
  return rows[0]!.n;
}

describe('ending a task', () => {
  it('complete: the answer lists the revoked leases, their rows are revoked, nothing is left pending, and the audit says so in order', async () => {
    const { taskId, leases, tokens } = await taskWithLeases(3);
    const done = await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    expect(done.status).toBe(200);
    expect([...done.body.revoked_leases].sort()).toEqual([...leases].sort());
    expect(await rawLeases(taskId)).toEqual(leases.map(() => ({ state: 'revoked', reason: 'task_completed' })));
    expect(await pending(taskId)).toBe(false);
    for (const token of tokens) expect(await introspect(broker, token)).toEqual({ active: false });
    expect(await revocationEvents(leases)).toBe(3);
    const { rows } = await db().query<{ kind: string; actor: string; data: Record<string, unknown> }>(
      `SELECT kind, actor, data FROM audit_events WHERE task_id = $1 AND kind IN ('task.completed', 'leases.revoked') ORDER BY seq`,
      [taskId],
    );
    expect(rows.map((row) => [row.kind, row.actor])).toEqual([
      ['task.completed', `workload:${bot.id}`],
      ['leases.revoked', `workload:${bot.id}`],
    ]);
    expect(rows[0]!.data).toMatchObject({ revoked_leases: 3 });
    expect(rows[1]!.data).toMatchObject({ reason: 'task_completed', lease_ids: expect.arrayContaining(leases) });
    // Again: nothing more to revoke.
    expect((await bot.call('POST', `/v1/tasks/${taskId}/complete`)).body.revoked_leases).toEqual([]);
  });

  it('between the end and the rows: every lease already introspects inactive and lists revoked, while its row still says active', async () => {
    const { taskId, leases, tokens } = await taskWithLeases(4);
    await endWithoutRevoking(taskId, 'completed');
    // Concurrently, so the batched read (= ANY) answers some of them.
    const answers = await Promise.all(tokens.map((token) => introspect(broker, token)));
    expect(answers).toEqual(tokens.map(() => ({ active: false })));
    const listed = await asAdmin(broker)('GET', `/v1/leases?task=${taskId}`);
    expect(listed.body.items.map((lease: { state: string }) => lease.state)).toEqual(leases.map(() => 'revoked'));
    expect((await asAdmin(broker)('GET', `/v1/leases?task=${taskId}&state=active`)).body.items).toEqual([]);
    expect(await rawLeases(taskId)).toEqual(leases.map(() => ({ state: 'active', reason: null })));
    // A credential for the ended task is refused.
    expect((await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' })).status).toBe(403);

    // The sweeper leaves a fresh end to the request that made it...
    await broker.app.broker.sweeper.sweepOnce();
    expect(await pending(taskId)).toBe(true);
    expect(await rawLeases(taskId)).toEqual(leases.map(() => ({ state: 'active', reason: null })));
  });

  it('a retried complete revokes the rows a dead replica left, once', async () => {
    const { taskId, leases } = await taskWithLeases(2);
    await endWithoutRevoking(taskId, 'completed');
    const retried = await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ state: 'completed' });
    expect([...retried.body.revoked_leases].sort()).toEqual([...leases].sort());
    expect(await rawLeases(taskId)).toEqual(leases.map(() => ({ state: 'revoked', reason: 'task_completed' })));
    expect(await pending(taskId)).toBe(false);
    expect((await bot.call('POST', `/v1/tasks/${taskId}/complete`)).body.revoked_leases).toEqual([]);
    expect(await revocationEvents(leases)).toBe(2);
  });

  it('the sweeper revokes the rows of a task left pending past the grace, with the reason of its end; racing a retry, each row once', async () => {
    const swept = await taskWithLeases(2);
    await endWithoutRevoking(swept.taskId, 'revoked', 30);
    const raced = await taskWithLeases(3);
    await endWithoutRevoking(raced.taskId, 'completed', 30);

    const [, retried] = await Promise.all([broker.app.broker.sweeper.sweepOnce(), bot.call('POST', `/v1/tasks/${raced.taskId}/complete`)]);
    expect(retried.status).toBe(200);
    expect(await rawLeases(swept.taskId)).toEqual(swept.leases.map(() => ({ state: 'revoked', reason: 'task_revoked' })));
    expect(await rawLeases(raced.taskId)).toEqual(raced.leases.map(() => ({ state: 'revoked', reason: 'task_completed' })));
    expect([await pending(swept.taskId), await pending(raced.taskId)]).toEqual([false, false]);
    // Whoever took it, each lease was revoked once: one event each.
    expect(await revocationEvents([...swept.leases, ...raced.leases])).toBe(5);
    const { rows } = await db().query<{ actor: string }>(`SELECT actor FROM audit_events WHERE task_id = $1 AND kind = 'leases.revoked'`, [
      swept.taskId,
    ]);
    expect(rows).toEqual([{ actor: 'system:sweeper' }]);
  });

  it('an admin revoking a task: the same two steps, its leases revoked with reason task_revoked', async () => {
    const { taskId, leases, tokens } = await taskWithLeases(2);
    const revoked = await asAdmin(broker)('POST', `/v1/admin/tasks/${taskId}/revoke`, { reason: 'suspicious' });
    expect(revoked.status).toBe(200);
    expect([...revoked.body.revoked_leases].sort()).toEqual([...leases].sort());
    expect(await rawLeases(taskId)).toEqual(leases.map(() => ({ state: 'revoked', reason: 'task_revoked' })));
    expect(await pending(taskId)).toBe(false);
    for (const token of tokens) expect(await introspect(broker, token)).toEqual({ active: false });
  });
});
