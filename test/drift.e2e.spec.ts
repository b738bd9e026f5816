import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigurationError } from '../libs/errors/errors.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { call } from './support/http.js';
import { asAdmin, introspect, metric, putBoundary, registerBot, startWithBot, type Bot } from './support/scenario.js';
import { assertion } from './support/workload.js';

let broker: TestBroker;
let bot: Bot;

beforeAll(async () => {
  ({ broker, bot } = await startWithBot());
  await putBoundary(broker, 'payments', { tool: 'https://pay.acme.test', actions: ['refund:create'], intents: ['refund_request'] });
});
afterAll(() => broker?.close());

/** Reads the revocation event stream from its start until `want` holds, as a resource server would. */
async function eventsUntil(want: (events: Record<string, unknown>[]) => boolean, timeoutMs = 5000): Promise<Record<string, unknown>[]> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const events: Record<string, unknown>[] = [];
  try {
    const response = await fetch(`${broker.url}/v1/events?last_event_id=0`, {
      headers: { authorization: `Bearer ${broker.adminKey}` },
      signal: controller.signal,
    });
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const data = buffer
          .slice(0, end)
          .split('\n')
          .find((line) => line.startsWith('data: '));
        buffer = buffer.slice(end + 2);
        if (data) events.push(JSON.parse(data.slice(6)));
      }
      if (want(events)) break;
    }
  } catch {
    // timed out: the caller's expectation says what is missing
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return events;
}

const SUSPENSIONS = 'tollgate_drift_suspensions_total';

const refund = { boundary: 'payments', action: 'refund:create', resource: 'order/1' };
const deleteOrder = { boundary: 'crm-orders', action: 'orders:delete', resource: 'order/1' };

describe('the drift guard', () => {
  it('suspends a task on its third drift denial: task revoked, live lease revoked, task.ended event, the denials linked', async () => {
    const taskId = await bot.openTask();
    const permit = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    expect(permit.status).toBe(201);
    const token = permit.body.credential.access_token as string;
    const suspensions = await metric(broker, SUSPENSIONS);

    const first = await bot.credential(taskId, refund);
    const second = await bot.credential(taskId, deleteOrder);
    expect([first.status, first.body.reasons, second.status, second.body.reasons]).toEqual([
      403,
      ['intent_mismatch'],
      403,
      ['action_not_allowed'],
    ]);
    expect((await introspect(broker, token)).active).toBe(true);
    expect(await metric(broker, SUSPENSIONS)).toBe(suspensions);
    const third = await bot.credential(taskId, refund);
    expect(third.status).toBe(403);
    expect(third.body).toMatchObject({ error: 'access_denied', reasons: ['intent_mismatch'] });
    expect(third.body.error_description).toContain('drift_detected');

    // The live lease died with the task, before the bot heard the refusal.
    expect(await introspect(broker, token)).toEqual({ active: false });
    const view = await bot.call('GET', `/v1/tasks/${taskId}`);
    expect(view.body).toMatchObject({ state: 'revoked', end_reason: 'drift_detected' });
    expect(view.body.leases).toEqual([
      expect.objectContaining({ lease_id: permit.body.lease_id, state: 'revoked', revoke_reason: 'drift_detected' }),
    ]);
    expect(view.body.events.at(-1)).toMatchObject({ kind: 'revoked', reason: 'drift_detected' });

    // As for any ended task: no credential, no change.
    const after = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    expect([after.status, after.body.reasons]).toEqual([403, ['task_not_active']]);
    // Counted once, on the denial that suspended it; the refusals after it are not suspensions.
    expect(await metric(broker, SUSPENSIONS)).toBe(suspensions + 1);
    expect((await bot.call('POST', `/v1/tasks/${taskId}/intent`, { intent: 'refund_request' })).status).toBe(409);
    expect((await bot.call('POST', `/v1/tasks/${taskId}/complete`)).status).toBe(409);

    // The decision history links the denials that suspended it; later refusals are not counted.
    const decisions = await asAdmin(broker)('GET', `/v1/decisions?task=${taskId}`);
    expect(decisions.body.items.map((d: Record<string, unknown>) => [d.outcome, d.reasons, d.drift])).toEqual([
      ['deny', ['task_not_active'], null],
      ['deny', ['intent_mismatch'], 'suspended_task'],
      ['deny', ['action_not_allowed'], 'counted'],
      ['deny', ['intent_mismatch'], 'counted'],
      ['permit', [], null],
    ]);
    expect(decisions.body.items[1].decision_id).toBe(third.body.decision_id);

    // The audit trail names them too, in the same chain as everything else.
    const { rows } = await broker.app.broker.db.query<{ data: Record<string, unknown>; actor: string }>(
      `SELECT data, actor FROM audit_events WHERE task_id = $1 AND kind = 'task.drift_suspended'`,
      [taskId],
    );
    expect(rows).toEqual([
      {
        actor: 'system:drift_guard',
        data: {
          threshold: 3,
          tripped_by: third.body.decision_id,
          decision_ids: [first.body.decision_id, second.body.decision_id, third.body.decision_id],
          revoked_leases: [permit.body.lease_id],
          request_id: expect.any(String),
        },
      },
    ]);

    const events = await eventsUntil((seen) => seen.filter((e) => e.task_id === taskId).length >= 2);
    const mine = events.filter((e) => e.task_id === taskId).map((e) => [e.type, e.reason, e.lease_id ?? null]);
    expect(mine).toEqual(
      expect.arrayContaining([
        ['task.ended', 'drift_detected', null],
        ['lease.revoked', 'drift_detected', permit.body.lease_id],
      ]),
    );
    expect(mine).toHaveLength(2);
  });

  it('counts only refusals that say the bot went off its task', async () => {
    const suspensions = await metric(broker, SUSPENSIONS);
    const taskId = await bot.openTask();
    for (let i = 0; i < 3; i++) {
      expect((await bot.credential(taskId, { boundary: 'no-such-boundary', action: 'orders:read' })).body.reasons).toEqual([
        'unknown_boundary',
      ]);
    }
    expect((await bot.credential(taskId, refund)).body.reasons).toEqual(['intent_mismatch']);
    expect((await bot.credential(taskId, deleteOrder)).body.reasons).toEqual(['action_not_allowed']);
    expect((await bot.call('GET', `/v1/tasks/${taskId}`)).body.state).toBe('active');
    expect((await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' })).status).toBe(201);
    expect(await metric(broker, SUSPENSIONS)).toBe(suspensions);
  });

  it("uses the refusing boundary's drift_threshold: 1 suspends on the first refusal there, a higher one waits", async () => {
    const strict = await putBoundary(broker, 'vault', {
      tool: 'https://vault.acme.test',
      actions: ['secret:read'],
      intents: ['ops'],
      drift_threshold: 1,
    });
    expect(strict.body.drift_threshold).toBe(1);
    expect((await asAdmin(broker)('GET', '/v1/admin/boundaries/crm-orders')).body).not.toHaveProperty('drift_threshold');
    const taskId = await bot.openTask();
    const refused = await bot.credential(taskId, { boundary: 'vault', action: 'secret:read' });
    expect(refused.body.reasons).toEqual(['intent_mismatch']);
    expect((await bot.call('GET', `/v1/tasks/${taskId}`)).body).toMatchObject({ state: 'revoked', end_reason: 'drift_detected' });

    await putBoundary(broker, 'lenient', { tool: 'https://lenient.acme.test', actions: ['x:read'], intents: ['ops'], drift_threshold: 5 });
    const patient = await bot.openTask();
    for (let i = 1; i <= 5; i++) {
      await bot.credential(patient, { boundary: 'lenient', action: 'x:read' });
      expect((await bot.call('GET', `/v1/tasks/${patient}`)).body.state).toBe(i < 5 ? 'active' : 'revoked');
    }

    // Bad values are refused and change nothing.
    for (const bad of [0, 1001, 2.5, '3']) {
      const response = await asAdmin(broker)('PUT', '/v1/admin/boundaries/vault', {
        tool: 'https://vault.acme.test',
        actions: ['secret:read'],
        intents: ['ops'],
        default_ttl: 60,
        max_ttl: 60,
        credential: { kind: 'jwt' },
        drift_threshold: bad,
      });
      expect([response.status, response.body.error, response.body.field]).toEqual([400, 'invalid_request', 'drift_threshold']);
    }
    expect((await asAdmin(broker)('GET', '/v1/admin/boundaries/vault')).body).toMatchObject({ version: 1, drift_threshold: 1 });
  });

  it('suspends exactly once when denials race on two replicas', async (context) => {
    // Two replicas need a database server: the embedded one opens in one process at a time.
    if (broker.db.databaseUrl === undefined) context.skip();
    const second = await broker.restart();
    const suspensions = await metric(broker, SUSPENSIONS);
    try {
      const token = await assertion(bot.id, bot.key, second.url);
      const twin: Bot = { ...bot, call: (method, path, json) => call(second.url, method, path, { token, json }) };
      twin.credential = (taskId, body) => twin.call('POST', `/v1/tasks/${taskId}/credentials`, body);
      for (let round = 0; round < 3; round++) {
        const taskId = await bot.openTask();
        // Permits race the denials too: whichever commits first, no lease outlives the suspension.
        const read = { boundary: 'crm-orders', action: 'orders:read' };
        const answers = await Promise.all(
          Array.from({ length: 16 }, (_, i) => (i % 2 ? bot : twin).credential(taskId, i % 4 === 3 ? read : i % 3 ? refund : deleteOrder)),
        );
        expect(answers.filter((a) => a.status !== 403 && a.status !== 201).map((a) => [a.status, a.body])).toEqual([]);
        const live = await broker.app.broker.db.query(`SELECT id FROM leases WHERE task_id = $1 AND state = 'active'`, [taskId]);
        expect(live.rows).toEqual([]);
        const { rows } = await broker.app.broker.db.query<{ kind: string; n: number }>(
          `SELECT 'audit' AS kind, count(*)::int AS n FROM audit_events WHERE task_id = $1 AND kind = 'task.drift_suspended'
           UNION ALL SELECT 'event', count(*)::int FROM revocation_events WHERE task_id = $1 AND type = 'task.ended'
           UNION ALL SELECT 'counted', drift_count FROM tasks WHERE id = $1
           UNION ALL SELECT 'rows', count(*)::int FROM task_drift_denials WHERE task_id = $1`,
          [taskId],
        );
        expect(Object.fromEntries(rows.map((r) => [r.kind, r.n]))).toEqual({ audit: 1, event: 1, counted: 3, rows: 3 });
        const decisions = await asAdmin(broker)('GET', `/v1/decisions?task=${taskId}`);
        const counted = decisions.body.items.filter((d: Record<string, unknown>) => d.drift !== null) as {
          decision_id: string;
          drift: string;
        }[];
        expect(counted).toHaveLength(3);
        // The suspension lists all three, the ones counted by the replica it waited for too.
        const audit = await broker.app.broker.db.query<{ data: { decision_ids: string[]; tripped_by: string } }>(
          `SELECT data FROM audit_events WHERE task_id = $1 AND kind = 'task.drift_suspended'`,
          [taskId],
        );
        expect([...audit.rows[0]!.data.decision_ids].sort()).toEqual(counted.map((d) => d.decision_id).sort());
        expect(audit.rows[0]!.data.decision_ids.at(-1)).toBe(audit.rows[0]!.data.tripped_by);
        expect(counted.filter((d) => d.drift === 'suspended_task').map((d) => d.decision_id)).toEqual([audit.rows[0]!.data.tripped_by]);
      }
      // Each replica counts the suspensions it decided: together, one per task.
      expect((await metric(broker, SUSPENSIONS)) - suspensions + (await metric(second, SUSPENSIONS))).toBe(3);
    } finally {
      await second.stop();
    }
  });

  it('refuses to start on a bad TOLLGATE_DRIFT_THRESHOLD, naming it', async () => {
    const error = await startBroker({ db: broker.db, env: { TOLLGATE_DRIFT_THRESHOLD: '0' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).problems).toEqual(['TOLLGATE_DRIFT_THRESHOLD: must be an integer from 1 to 1000']);
  });

  it('a workload with another task is not affected', async () => {
    const other = await registerBot(broker, 'other-bot');
    const taskId = await other.openTask();
    expect((await other.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' })).status).toBe(201);
  });
});
