import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessDenied, ApprovalPending, TollgateClient } from '../libs/sdk/index.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { call, type Response } from './support/http.js';
import { asAdmin, putBoundary, startWithBot, type Bot } from './support/scenario.js';

/**
 * Human approval (step-up): a boundary's Cedar condition sends a request to a reviewer (202 and a
 * pending decision); the bot repeats it with the approval id once approved and gets exactly one
 * credential; anything else about the approval (a different request, denied, expired, used, its
 * task gone) is refused, and every step is in the decisions and the audit trail.
 */

const PAY = 'https://pay.acme.test';
const REFUND = { boundary: 'payments', action: 'refund:create', resource: 'order/1001' };

let broker: TestBroker;
let bot: Bot;
let admin: ReturnType<typeof asAdmin>;
let reviewer: { id: string; key: string };
let resourceServer: { id: string; key: string };

beforeAll(async () => {
  ({ broker, bot } = await startWithBot());
  admin = asAdmin(broker);
  await putBoundary(broker, 'payments', {
    tool: PAY,
    actions: ['refund:create', 'refund:preview'],
    intents: ['order_status', 'refund_request'],
    approval: { when: 'context.params.amount > 100' },
  });
  reviewer = (await admin('POST', '/v1/admin/api-keys', { role: 'reviewer', label: 'on-call' })).body;
  resourceServer = (await admin('POST', '/v1/admin/api-keys', { role: 'resource_server', audience: PAY })).body;
});
afterAll(() => broker?.close());

function asKey(key: string) {
  return <T = any>(method: string, path: string, json?: unknown) => call<T>(broker.url, method, path, { token: key, json });
}
const asReviewer = () => asKey(reviewer.key);

async function rows<T>(text: string, params: unknown[] = []): Promise<T[]> {
  return (await broker.app.broker.db.query<T>(text, params)).rows;
}

async function audit(kind: string, field: string, value: string): Promise<{ actor: string; data: Record<string, unknown> }[]> {
  return rows(`SELECT actor, data FROM audit_events WHERE kind = $1 AND data->>$2 = $3 ORDER BY id`, [kind, field, value]);
}

/** Asks for a refund that needs approval; returns the task and the pending answer. */
async function pendingRefund(
  amount = 150,
  extra: Record<string, unknown> = {},
): Promise<{ taskId: string; approvalId: string; pending: Response }> {
  const taskId = await bot.openTask();
  const pending = await bot.credential(taskId, { ...REFUND, params: { amount }, ...extra });
  expect(pending.status, JSON.stringify(pending.body)).toBe(202);
  return { taskId, approvalId: pending.body.approval_id, pending };
}

async function approve(approvalId: string, reason = 'customer verified by phone'): Promise<Response> {
  const answer = await asReviewer()('POST', `/v1/approvals/${approvalId}/approve`, { reason });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer;
}

describe('human approval (step-up)', () => {
  it('a request the condition does not hold for is permitted as usual, without an approval', async () => {
    const taskId = await bot.openTask();
    const small = await bot.credential(taskId, { ...REFUND, params: { amount: 50 } });
    expect(small.status).toBe(201);
    expect(await rows('SELECT id FROM approvals WHERE task_id = $1', [taskId])).toEqual([]);
  });

  it('a request the condition holds for answers 202 with a pending decision, an audit event and no lease', async () => {
    const { taskId, approvalId, pending } = await pendingRefund(150);
    expect(pending.body).toEqual({ approval_id: approvalId, status: 'pending', expires_at: expect.any(String) });
    const ttl = Date.parse(pending.body.expires_at) - Date.now();
    expect(ttl).toBeGreaterThan(590_000);
    expect(ttl).toBeLessThanOrEqual(600_000);

    const decisions = (await admin('GET', `/v1/decisions?task=${taskId}&outcome=pending`)).body.items;
    expect(decisions).toHaveLength(1);
    expect(decisions[0]).toMatchObject({
      outcome: 'pending',
      reasons: ['approval_required'],
      boundary_id: 'payments',
      action: 'refund:create',
    });
    expect((await admin('GET', `/v1/leases?task=${taskId}`)).body.items).toEqual([]);
    const events = await audit('credential.pending', 'approval_id', approvalId);
    expect(events).toEqual([
      { actor: 'workload:chatbot', data: expect.objectContaining({ decision_id: decisions[0].decision_id, approval_created: true }) },
    ]);

    const shown = await asReviewer()('GET', `/v1/approvals/${approvalId}`);
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({
      approval_id: approvalId,
      status: 'pending',
      task_id: taskId,
      workload_id: 'chatbot',
      boundary_id: 'payments',
      action: 'refund:create',
      resource: 'order/1001',
      params: { amount: 150 },
      intent: 'order_status',
      decision_id: decisions[0].decision_id,
      decided_by: null,
      lease_id: null,
    });
  });

  it('repeating while pending answers 202 with the same approval, with or without its id', async () => {
    const { taskId, approvalId } = await pendingRefund(150, { params: { amount: 150, currency: 'EUR' } });
    const withId = await bot.credential(taskId, { ...REFUND, params: { amount: 150, currency: 'EUR' }, approval_id: approvalId });
    expect(withId.status).toBe(202);
    expect(withId.body.approval_id).toBe(approvalId);
    // Key order in params does not matter: the hash is of canonical JSON.
    const again = await bot.credential(taskId, { ...REFUND, params: { currency: 'EUR', amount: 150 } });
    expect(again.body.approval_id).toBe(approvalId);
    expect(await rows('SELECT id FROM approvals WHERE task_id = $1', [taskId])).toHaveLength(1);
    expect((await admin('GET', `/v1/decisions?task=${taskId}&outcome=pending`)).body.items).toHaveLength(3);
  });

  it('approved by a reviewer, the repeat gets one credential and uses the approval up', async () => {
    const { taskId, approvalId } = await pendingRefund(150);
    const approved = await approve(approvalId);
    expect(approved.body).toMatchObject({
      status: 'approved',
      decided_by: `reviewer:${reviewer.id}`,
      reason: 'customer verified by phone',
    });
    expect(await audit('approval.approved', 'approval_id', approvalId)).toEqual([
      { actor: `reviewer:${reviewer.id}`, data: expect.objectContaining({ reason: 'customer verified by phone' }) },
    ]);

    const issued = await bot.credential(taskId, { ...REFUND, params: { amount: 150 }, approval_id: approvalId });
    expect(issued.status, JSON.stringify(issued.body)).toBe(201);
    const used = (await asReviewer()('GET', `/v1/approvals/${approvalId}`)).body;
    expect(used).toMatchObject({ status: 'used', lease_id: issued.body.lease_id, used_at: expect.any(String) });
    const permits = await audit('credential.permit', 'approval_id', approvalId);
    expect(permits).toHaveLength(1);

    const twice = await bot.credential(taskId, { ...REFUND, params: { amount: 150 }, approval_id: approvalId });
    expect(twice.status).toBe(403);
    expect(twice.body).toMatchObject({ error: 'access_denied', reasons: ['approval_used'], decision_id: expect.any(String) });
    expect(await audit('credential.deny', 'decision_id', twice.body.decision_id)).toEqual([
      { actor: 'workload:chatbot', data: expect.objectContaining({ reasons: ['approval_used'] }) },
    ]);
    // A decided approval cannot be decided again.
    const late = await asReviewer()('POST', `/v1/approvals/${approvalId}/deny`, { reason: 'too late' });
    expect(late.status).toBe(409);
    expect(late.body.reasons).toEqual(['approval_used']);
  });

  it('is bound to the exact request: another amount, resource, action or task is refused and leaves it usable', async () => {
    const { taskId, approvalId } = await pendingRefund(200);
    await approve(approvalId);
    const otherTask = await bot.openTask();
    for (const [taskOf, body] of [
      [taskId, { ...REFUND, params: { amount: 201 } }],
      [taskId, { ...REFUND, params: { amount: 200, note: 'x' } }],
      [taskId, { ...REFUND, resource: 'order/9999', params: { amount: 200 } }],
      [taskId, { ...REFUND, action: 'refund:preview', params: { amount: 200 } }],
      [taskId, { ...REFUND }],
      [otherTask, { ...REFUND, params: { amount: 200 } }],
    ] as const) {
      const refused = await bot.credential(taskOf, { ...body, approval_id: approvalId });
      expect(refused.status, JSON.stringify(body)).toBe(403);
      expect(refused.body.reasons).toEqual(['approval_mismatch']);
    }
    const unknown = await bot.credential(taskId, {
      ...REFUND,
      params: { amount: 200 },
      approval_id: '01900000-0000-7000-8000-000000000000',
    });
    expect(unknown.body.reasons).toEqual(['unknown_approval']);
    expect((await asReviewer()('GET', `/v1/approvals/${approvalId}`)).body.status).toBe('approved');
    const exact = await bot.credential(taskId, { ...REFUND, params: { amount: 200 }, approval_id: approvalId });
    expect(exact.status).toBe(201);
  });

  it('binds the ttl and purpose the reviewer saw (issue 12, finding 9)', async () => {
    const { taskId, approvalId, pending } = await pendingRefund(150, { ttl: 60, purpose: 'refund for a broken parcel' });
    expect(pending.status).toBe(202);
    const shown = (await asReviewer()('GET', `/v1/approvals/${approvalId}`)).body;
    expect(shown).toMatchObject({ ttl: 60, purpose: 'refund for a broken parcel' });
    await approve(approvalId);
    // Another purpose is another request.
    for (const purpose of ['something else', undefined]) {
      const refused = await bot.credential(taskId, { ...REFUND, params: { amount: 150 }, purpose, approval_id: approvalId });
      expect(refused.status, String(purpose)).toBe(403);
      expect(refused.body.reasons).toEqual(['approval_mismatch']);
    }
    // Asking for the boundary's maximum gets at most what the reviewer approved.
    const issued = await bot.credential(taskId, {
      ...REFUND,
      params: { amount: 150 },
      purpose: 'refund for a broken parcel',
      ttl: 600,
      approval_id: approvalId,
    });
    expect(issued.status, JSON.stringify(issued.body)).toBe(201);
    expect(issued.body.expires_in).toBeLessThanOrEqual(60);
    expect(Date.parse(issued.body.expires_at) - Date.now()).toBeLessThanOrEqual(61_000);
    const lease = await rows<{ ttl: number }>('SELECT extract(epoch FROM expires_at - issued_at)::int AS ttl FROM leases WHERE id = $1', [
      issued.body.lease_id,
    ]);
    expect(lease[0]!.ttl).toBeLessThanOrEqual(60);
  });

  it('a denied approval refuses the repeat with approval_denied', async () => {
    const { taskId, approvalId } = await pendingRefund(300);
    const denied = await asReviewer()('POST', `/v1/approvals/${approvalId}/deny`, { reason: 'amount above policy' });
    expect(denied.status).toBe(200);
    expect(denied.body).toMatchObject({ status: 'denied', decided_by: `reviewer:${reviewer.id}`, reason: 'amount above policy' });
    expect(await audit('approval.denied', 'approval_id', approvalId)).toHaveLength(1);
    const refused = await bot.credential(taskId, { ...REFUND, params: { amount: 300 }, approval_id: approvalId });
    expect(refused.status).toBe(403);
    expect(refused.body.reasons).toEqual(['approval_denied']);
    expect((await asReviewer()('POST', `/v1/approvals/${approvalId}/approve`, { reason: 'changed my mind' })).status).toBe(409);
    // Asking again without the id is a new request for a reviewer, not the denied one.
    const anew = await bot.credential(taskId, { ...REFUND, params: { amount: 300 } });
    expect(anew.status).toBe(202);
    expect(anew.body.approval_id).not.toBe(approvalId);
  });

  it('an approval expires: the repeat is refused with approval_expired and it can no longer be decided', async () => {
    await putBoundary(broker, 'payments-fast', {
      tool: PAY,
      actions: ['refund:create'],
      intents: ['order_status'],
      approval: { when: 'true', ttl: 1 },
    });
    const taskId = await bot.openTask();
    const body = { boundary: 'payments-fast', action: 'refund:create', params: { amount: 1 } };
    const pending = await bot.credential(taskId, body);
    expect(pending.status).toBe(202);
    const approvalId = pending.body.approval_id;
    await approve(approvalId);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const refused = await bot.credential(taskId, { ...body, approval_id: approvalId });
    expect(refused.status).toBe(403);
    expect(refused.body.reasons).toEqual(['approval_expired']);
    expect((await asReviewer()('GET', `/v1/approvals/${approvalId}`)).body.status).toBe('expired');
    expect((await asReviewer()('GET', `/v1/approvals?status=expired&task=${taskId}`)).body.items).toHaveLength(1);

    const second = await bot.credential(taskId, { ...body, params: { amount: 2 } });
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const late = await asReviewer()('POST', `/v1/approvals/${second.body.approval_id}/approve`, { reason: 'ok' });
    expect(late.status).toBe(409);
    expect(late.body.reasons).toEqual(['approval_expired']);
  });

  it('dies with its task: completed, or the intent changed', async () => {
    const done = await pendingRefund(150);
    await approve(done.approvalId);
    expect((await bot.call('POST', `/v1/tasks/${done.taskId}/complete`)).status).toBe(200);
    const afterComplete = await bot.credential(done.taskId, { ...REFUND, params: { amount: 150 }, approval_id: done.approvalId });
    expect(afterComplete.status).toBe(403);
    expect(afterComplete.body.reasons).toEqual(['task_not_active']);
    expect((await asReviewer()('GET', `/v1/approvals/${done.approvalId}`)).body).toMatchObject({
      status: 'revoked',
      revoke_reason: 'task_completed',
    });

    // Decided in one journey, an approval does not carry over to another, even on a boundary serving both.
    const moved = await pendingRefund(150);
    await approve(moved.approvalId);
    expect((await bot.call('POST', `/v1/tasks/${moved.taskId}/intent`, { intent: 'refund_request' })).status).toBe(200);
    const afterIntent = await bot.credential(moved.taskId, { ...REFUND, params: { amount: 150 }, approval_id: moved.approvalId });
    expect(afterIntent.status).toBe(403);
    expect(afterIntent.body.reasons).toEqual(['approval_revoked']);

    const pendingThenCompleted = await pendingRefund(150);
    await bot.call('POST', `/v1/tasks/${pendingThenCompleted.taskId}/complete`);
    const tooLate = await asReviewer()('POST', `/v1/approvals/${pendingThenCompleted.approvalId}/approve`, { reason: 'ok' });
    expect(tooLate.status).toBe(409);
    expect(tooLate.body.reasons).toEqual(['approval_revoked']);
  });

  it('a revocation is stored: changing the intent back does not revive the approval (issue 12, finding 7)', async () => {
    const { taskId, approvalId } = await pendingRefund(150);
    await approve(approvalId);
    expect((await bot.call('POST', `/v1/tasks/${taskId}/intent`, { intent: 'refund_request' })).status).toBe(200);
    expect((await asReviewer()('GET', `/v1/approvals/${approvalId}`)).body.status).toBe('revoked');
    expect((await bot.call('POST', `/v1/tasks/${taskId}/intent`, { intent: 'order_status' })).status).toBe(200);
    expect((await asReviewer()('GET', `/v1/approvals/${approvalId}`)).body.status).toBe('revoked');
    expect((await asReviewer()('GET', `/v1/approvals?status=approved&task=${taskId}`)).body.items).toEqual([]);
    const redeemed = await bot.credential(taskId, { ...REFUND, params: { amount: 150 }, approval_id: approvalId });
    expect(redeemed.status).toBe(403);
    expect(redeemed.body.reasons).toEqual(['approval_revoked']);
    expect(await rows('SELECT id FROM leases WHERE task_id = $1', [taskId])).toEqual([]);
    expect(await rows('SELECT status, revoke_reason FROM approvals WHERE id = $1', [approvalId])).toEqual([
      { status: 'revoked', revoke_reason: 'intent_changed' },
    ]);

    // A pending one too: it can no longer be decided once the intent is back.
    const pending = await pendingRefund(150);
    await bot.call('POST', `/v1/tasks/${pending.taskId}/intent`, { intent: 'refund_request' });
    await bot.call('POST', `/v1/tasks/${pending.taskId}/intent`, { intent: 'order_status' });
    const late = await asReviewer()('POST', `/v1/approvals/${pending.approvalId}/approve`, { reason: 'ok' });
    expect(late.status).toBe(409);
    expect(late.body.reasons).toEqual(['approval_revoked']);
  });

  it('disabling the boundary revokes its open approvals for good', async () => {
    await putBoundary(broker, 'payments-off', {
      tool: PAY,
      actions: ['refund:create'],
      intents: ['order_status'],
      approval: { when: 'true' },
    });
    const taskId = await bot.openTask();
    const body = { boundary: 'payments-off', action: 'refund:create', params: { amount: 1 } };
    const pending = await bot.credential(taskId, body);
    expect(pending.status).toBe(202);
    const approvalId = pending.body.approval_id;
    await approve(approvalId);
    expect((await admin('DELETE', '/v1/admin/boundaries/payments-off')).status).toBe(200);
    await putBoundary(broker, 'payments-off', {
      tool: PAY,
      actions: ['refund:create'],
      intents: ['order_status'],
      approval: { when: 'true' },
    });
    expect((await asReviewer()('GET', `/v1/approvals/${approvalId}`)).body.status).toBe('revoked');
    const redeemed = await bot.credential(taskId, { ...body, approval_id: approvalId });
    expect(redeemed.status).toBe(403);
    expect(redeemed.body.reasons).toEqual(['approval_revoked']);
    expect(await rows('SELECT revoke_reason FROM approvals WHERE id = $1', [approvalId])).toEqual([{ revoke_reason: 'boundary_disabled' }]);
  });

  it('concurrent repeats of one approval yield exactly one credential', async () => {
    // Two replicas on one database: the gate's read of the approval cannot see what the other
    // replica is doing, so only the permit statement's guard on the approval row keeps it single-use.
    const replica = await startBroker({
      db: broker.db,
      env: { TOLLGATE_ADMIN_KEY: broker.adminKey, TOLLGATE_KEK: broker.kek, TOLLGATE_ISSUER: broker.url },
    });
    try {
      const token = await bot.token();
      for (let round = 0; round < 3; round++) {
        const { taskId, approvalId } = await pendingRefund(150);
        await approve(approvalId);
        const body = { ...REFUND, params: { amount: 150 }, approval_id: approvalId };
        const answers = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            call(i % 2 === 0 ? broker.url : replica.url, 'POST', `/v1/tasks/${taskId}/credentials`, { token, json: body }),
          ),
        );
        const statuses = answers.map((answer) => answer.status).sort();
        expect(statuses, JSON.stringify(answers.map((answer) => answer.body.reasons ?? answer.body.lease_id))).toEqual([
          201, 403, 403, 403, 403, 403, 403, 403,
        ]);
        for (const answer of answers.filter((a) => a.status === 403)) expect(answer.body.reasons).toEqual(['approval_used']);
        expect(await rows('SELECT id FROM leases WHERE task_id = $1', [taskId])).toHaveLength(1);
      }
    } finally {
      await replica.stop();
    }
  });

  it('the token endpoint answers authorization_pending, then a token once approved', async () => {
    const taskId = await bot.openTask();
    const form = async (approvalId?: string) => ({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await bot.token(),
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      audience: PAY,
      authorization_details: JSON.stringify([
        { type: 'tool_call', task_id: taskId, ...REFUND, params: { amount: 500 }, ...(approvalId ? { approval_id: approvalId } : {}) },
      ]),
    });
    const pending = await call(broker.url, 'POST', '/oauth2/token', { form: await form() });
    expect(pending.status).toBe(400);
    expect(pending.body).toMatchObject({ error: 'authorization_pending', approval_id: expect.any(String) });
    const approvalId = pending.body.approval_id;
    const polled = await call(broker.url, 'POST', '/oauth2/token', { form: await form(approvalId) });
    expect(polled.body).toMatchObject({ error: 'authorization_pending', approval_id: approvalId });
    await approve(approvalId);
    const token = await call(broker.url, 'POST', '/oauth2/token', { form: await form(approvalId) });
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    expect(token.body.access_token).toEqual(expect.any(String));
    const used = await call(broker.url, 'POST', '/oauth2/token', { form: await form(approvalId) });
    expect(used.body).toMatchObject({ error: 'access_denied', reasons: ['approval_used'] });
  });

  it('reviewers and admins list and decide; a resource server may not; reviewers still make no other write', async () => {
    const { approvalId } = await pendingRefund(150);
    const asRs = asKey(resourceServer.key);
    for (const [method, path, body] of [
      ['GET', '/v1/approvals?status=pending', undefined],
      ['GET', `/v1/approvals/${approvalId}`, undefined],
      ['POST', `/v1/approvals/${approvalId}/approve`, { reason: 'ok' }],
      ['POST', `/v1/approvals/${approvalId}/deny`, { reason: 'no' }],
    ] as const) {
      const refused = await asRs(method, path, body);
      expect(refused.status).toBe(403);
      expect(refused.body.error).toBe('insufficient_scope');
    }
    expect((await call(broker.url, 'GET', '/v1/approvals')).status).toBe(401);
    expect(
      (
        await asReviewer()('PUT', '/v1/admin/boundaries/payments', {
          tool: PAY,
          actions: ['refund:create'],
          intents: ['order_status'],
          default_ttl: 60,
          max_ttl: 60,
          credential: { kind: 'jwt' },
        })
      ).status,
    ).toBe(403);
    expect((await asReviewer()('GET', `/v1/approvals/${approvalId}`)).body.status).toBe('pending');

    const byAdmin = await admin('POST', `/v1/approvals/${approvalId}/approve`, { reason: 'admin says yes' });
    expect(byAdmin.status).toBe(200);
    expect(byAdmin.body.decided_by).toBe('admin:bootstrap');
  });

  it('lists with filters and cursor pagination, newest first', async () => {
    const taskId = await bot.openTask();
    const ids: string[] = [];
    for (const amount of [101, 102, 103]) ids.push((await bot.credential(taskId, { ...REFUND, params: { amount } })).body.approval_id);
    const first = await asReviewer()('GET', `/v1/approvals?status=pending&task=${taskId}&limit=2`);
    expect(first.status).toBe(200);
    expect(first.body.items.map((item: { approval_id: string }) => item.approval_id)).toEqual([ids[2], ids[1]]);
    const second = await asReviewer()('GET', `/v1/approvals?status=pending&task=${taskId}&limit=2&cursor=${first.body.next_cursor}`);
    expect(second.body.items.map((item: { approval_id: string }) => item.approval_id)).toEqual([ids[0]]);
    expect(second.body.next_cursor).toBeNull();
    expect((await asReviewer()('GET', `/v1/approvals?status=approved&task=${taskId}`)).body.items).toEqual([]);
    expect((await asReviewer()('GET', `/v1/approvals?boundary=payments&workload=chatbot&limit=1`)).body.items).toHaveLength(1);
  });

  it('bad input answers 400 and changes nothing', async () => {
    const { taskId, approvalId } = await pendingRefund(150);
    const count = async () =>
      (
        await rows<{ n: number }>(
          `SELECT (SELECT count(*) FROM approvals) + (SELECT count(*) FROM audit_events) + (SELECT count(*) FROM decisions) + (SELECT count(*) FROM boundaries) AS n`,
        )
      )[0]!.n;
    const before = await count();
    for (const body of [{}, { reason: '' }, { reason: 'ok', extra: 1 }, { reason: 'bad\u0000' }, { reason: 42 }]) {
      const refused = await asReviewer()('POST', `/v1/approvals/${approvalId}/approve`, body);
      expect(refused.status, JSON.stringify(body)).toBe(400);
      expect(refused.body.error).toBe('invalid_request');
    }
    expect((await asReviewer()('POST', '/v1/approvals/not-a-uuid/approve', { reason: 'ok' })).status).toBe(404);
    expect((await asReviewer()('POST', '/v1/approvals/01900000-0000-7000-8000-000000000000/approve', { reason: 'ok' })).status).toBe(404);
    expect((await asReviewer()('GET', '/v1/approvals?status=maybe')).status).toBe(400);
    expect((await asReviewer()('GET', '/v1/approvals?cursor=zzz')).status).toBe(400);
    const badId = await bot.credential(taskId, { ...REFUND, params: { amount: 150 }, approval_id: 'nope' });
    expect(badId.status).toBe(400);
    expect(badId.body.field).toBe('approval_id');

    for (const [approval, fragment] of [
      [{ when: 'context.params.amount >' }, 'unexpected token'],
      [{ when: 'true }; permit(principal, action, resource) when { true' }, 'one Cedar condition'],
      [{ when: '' }, 'must not be empty'],
      [{ when: 'true', ttl: 0 }, 'at least 1'],
      [{ when: 'true', colour: 'red' }, 'colour'],
    ] as const) {
      const refused = await admin('PUT', '/v1/admin/boundaries/payments', {
        tool: PAY,
        actions: ['refund:create'],
        intents: ['order_status'],
        default_ttl: 60,
        max_ttl: 60,
        credential: { kind: 'jwt' },
        approval,
      });
      expect(refused.status, JSON.stringify(approval)).toBe(400);
      expect(refused.body.error_description).toContain(fragment);
    }
    expect(await count()).toBe(before);
    expect((await asReviewer()('GET', `/v1/approvals/${approvalId}`)).body.status).toBe('pending');
    expect((await admin('GET', '/v1/admin/boundaries/payments')).body.approval).toEqual({ when: 'context.params.amount > 100', ttl: 600 });
  });
});

describe('through the SDK', () => {
  it('ApprovalPending, then the same request with { approvalId } once approved', async () => {
    const client = new TollgateClient({
      url: broker.url,
      tokenSource: { workloadId: bot.id, privateKey: bot.key.privateKey, kid: bot.key.kid, alg: bot.key.alg },
    });
    const task = await client.openTask({ intent: 'order_status', subject: 'user-42' });
    const request = { ...REFUND, params: { amount: 250 } };

    const pending = await task.credential(request).catch((error: unknown) => error);
    expect(pending).toBeInstanceOf(ApprovalPending);
    const { approvalId, expiresAt } = pending as ApprovalPending;
    expect(expiresAt!.getTime()).toBeGreaterThan(Date.now());
    // Too early: the same approval, still pending.
    await expect(task.credential(request, { approvalId })).rejects.toMatchObject({ constructor: ApprovalPending, approvalId });

    await approve(approvalId);
    const called = await task.withCredential(
      request,
      async (credential) => {
        expect(credential.kind).toBe('jwt');
        return credential.leaseId;
      },
      { approvalId },
    );
    expect((await asReviewer()('GET', `/v1/approvals/${approvalId}`)).body).toMatchObject({ status: 'used', lease_id: called });
    await expect(task.credential(request, { approvalId })).rejects.toMatchObject({ constructor: AccessDenied, reasons: ['approval_used'] });
  });
});
