import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { call } from './support/http.js';
import { readEvents } from './support/sse.js';
import { asAdmin, putBoundary, registerBot, startWithBot, type Bot } from './support/scenario.js';

interface Received {
  id: string;
  event: string;
  data: Record<string, unknown>;
}

/** A Server-Sent Events client over fetch, as a resource server would run one. */
function subscribe(broker: TestBroker, headers: Record<string, string> = {}, query = '') {
  const controller = new AbortController();
  const received: Received[] = [];
  let status = 0;
  const opened = (async () => {
    const response = await fetch(`${broker.url}/v1/events${query}`, {
      headers: { authorization: `Bearer ${broker.adminKey}`, ...headers },
      signal: controller.signal,
    });
    status = response.status;
    return response;
  })();
  const done = opened.then(async (response) => {
    if (!response.body) return;
    await readEvents(response.body, (event) => received.push(event)).catch(() => {
      // the stream ended badly: the test's own expectations say what was missed
    });
  });
  return {
    received,
    status: () => status,
    opened,
    async until(count: number, timeoutMs = 5000): Promise<Received[]> {
      const deadline = Date.now() + timeoutMs;
      while (received.length < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      return received;
    },
    async close() {
      controller.abort();
      await done;
    },
  };
}

let broker: TestBroker;
let bot: Bot;

beforeAll(async () => ({ broker, bot } = await startWithBot()));
afterAll(() => broker?.close());

describe('GET /v1/events', () => {
  it('streams lease and task revocations as they happen, and resumes from Last-Event-ID without a gap', async () => {
    const stream = subscribe(broker);
    await stream.opened;
    expect(stream.status()).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the stream starts from "now"

    const taskId = await bot.openTask();
    const first = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    const second = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:refund' });
    await bot.call('POST', `/v1/tasks/${taskId}/complete`);

    const events = await stream.until(3);
    expect(events.map((e) => e.event).sort()).toEqual(['lease.revoked', 'lease.revoked', 'task.ended']);
    const leases = events.filter((e) => e.event === 'lease.revoked');
    expect(leases.map((e) => e.data.lease_id).sort()).toEqual([first.body.lease_id, second.body.lease_id].sort());
    expect(leases[0]!.data).toMatchObject({ type: 'lease.revoked', task_id: taskId, workload_id: 'chatbot', reason: 'task_completed' });
    expect(leases[0]!.data.jti).toBe(leases[0]!.data.lease_id);
    expect(events.find((e) => e.event === 'task.ended')!.data).toMatchObject({ task_id: taskId, reason: 'task_completed' });
    const lastSeen = events.at(-1)!.id;
    expect(events.map((e) => Number(e.id))).toEqual([...events.map((e) => Number(e.id))].sort((a, b) => a - b));
    await stream.close();

    // While nobody listens: an intent change revokes a lease, and a workload is killed.
    const later = await bot.openTask();
    const third = await bot.credential(later, { boundary: 'crm-orders', action: 'orders:read' });
    await bot.call('POST', `/v1/tasks/${later}/intent`, { intent: 'refund_request' });
    const victim = await registerBot(broker, 'victim-bot');
    await victim.openTask();
    await asAdmin(broker)('POST', '/v1/admin/workloads/victim-bot/revoke');

    const resumed = subscribe(broker, { 'last-event-id': lastSeen });
    const missed = await resumed.until(3);
    await resumed.close();
    expect(missed.map((e) => [e.event, e.data.reason])).toEqual([
      ['lease.revoked', 'journey_changed'],
      ['workload.revoked', 'workload_revoked'],
      ['task.ended', 'workload_revoked'],
    ]);
    expect(missed[0]!.data.lease_id).toBe(third.body.lease_id);
    expect(Number(missed[0]!.id)).toBeGreaterThan(Number(lastSeen));

    // The query parameter does the same for clients that cannot set headers.
    const replay = subscribe(broker, {}, `?last_event_id=${lastSeen}`);
    expect((await replay.until(3)).map((e) => e.id)).toEqual(missed.map((e) => e.id));
    await replay.close();
  });

  it('needs an admin or reviewer key, and refuses a malformed position', async () => {
    expect((await call(broker.url, 'GET', '/v1/events')).status).toBe(401);
    const bad = await fetch(`${broker.url}/v1/events`, { headers: { authorization: `Bearer ${broker.adminKey}`, 'last-event-id': 'abc' } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toBe('invalid_request');
    expect((await call(broker.url, 'GET', '/v1/events?last_event_id=-1', { token: broker.adminKey })).status).toBe(400);
    expect((await call(broker.url, 'GET', '/v1/events?from=1', { token: broker.adminKey })).status).toBe(400);
  });
});

describe('approval events', () => {
  const PAY = 'https://pay.acme.test';
  const REFUND = { boundary: 'payments', action: 'refund:create', resource: 'order/1001' };

  it('reach reviewers as a request waits and is decided, in order and resumable, and never a resource server', async () => {
    const admin = asAdmin(broker);
    await putBoundary(broker, 'payments', {
      tool: PAY,
      actions: ['refund:create'],
      intents: ['order_status', 'refund_request'],
      approval: { when: 'context.params.amount > 100' },
    });
    const reviewer = (await admin('POST', '/v1/admin/api-keys', { role: 'reviewer', label: 'on-call' })).body as { key: string };
    const rsKey = (await admin('POST', '/v1/admin/api-keys', { role: 'resource_server', audience: PAY })).body as { key: string };
    const asReviewer = { authorization: `Bearer ${reviewer.key}` };
    const watching = subscribe(broker, asReviewer);
    const resourceServer = subscribe(broker, { authorization: `Bearer ${rsKey.key}` });
    await Promise.all([watching.opened, resourceServer.opened]);
    expect([watching.status(), resourceServer.status()]).toEqual([200, 200]);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the streams start from "now"

    const taskId = await bot.openTask();
    const pending = await bot.credential(taskId, { ...REFUND, params: { amount: 150, note: 'card ending 4242' } });
    expect(pending.status, JSON.stringify(pending.body)).toBe(202);
    const approvalId = pending.body.approval_id as string;

    const [requested] = await watching.until(1);
    expect(requested!.event).toBe('approval.requested');
    // Exactly these fields: nothing of the params (user data) rides on the stream.
    expect(requested!.data).toEqual({
      type: 'approval.requested',
      approval_id: approvalId,
      task_id: taskId,
      workload_id: 'chatbot',
      boundary_id: 'payments',
      at: expect.any(String),
    });
    expect(Number.isNaN(Date.parse(requested!.data.at as string))).toBe(false);
    await watching.close();

    // Repeating the request while it waits asks no second approval, so announces nothing.
    expect((await bot.credential(taskId, { ...REFUND, params: { amount: 150, note: 'card ending 4242' } })).status).toBe(202);
    const approved = await call(broker.url, 'POST', `/v1/approvals/${approvalId}/approve`, {
      token: reviewer.key,
      json: { reason: 'called the customer at +1 555 0100' },
    });
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    const granted = await bot.credential(taskId, { ...REFUND, params: { amount: 150, note: 'card ending 4242' }, approval_id: approvalId });
    expect(granted.status, JSON.stringify(granted.body)).toBe(201);

    const other = await bot.openTask();
    const second = await bot.credential(other, { ...REFUND, params: { amount: 500 } });
    expect(second.status).toBe(202);
    expect(
      (
        await call(broker.url, 'POST', `/v1/approvals/${second.body.approval_id}/deny`, {
          token: reviewer.key,
          json: { reason: 'too much' },
        })
      ).status,
    ).toBe(200);
    await bot.call('POST', `/v1/tasks/${taskId}/complete`);

    // Resumed after approval.requested: the decision comes next, then the rest, in order.
    const resumed = subscribe(broker, { ...asReviewer, 'last-event-id': requested!.id });
    const missed = await resumed.until(5);
    await resumed.close();
    expect(missed.map((e) => [e.event, e.data.approval_id ?? e.data.lease_id])).toEqual([
      ['approval.approved', approvalId],
      ['approval.requested', second.body.approval_id],
      ['approval.denied', second.body.approval_id],
      // The task's end first (its leases are dead from then on), then its leases' rows.
      ['task.ended', null],
      ['lease.revoked', granted.body.lease_id],
    ]);
    expect(Number(missed[0]!.id)).toBeGreaterThan(Number(requested!.id));
    expect(missed.map((e) => Number(e.id))).toEqual([...missed.map((e) => Number(e.id))].sort((a, b) => a - b));
    // The reviewer's reason is free text: it stays at GET /v1/approvals/{id}.
    expect(missed[0]!.data).toEqual({
      type: 'approval.approved',
      approval_id: approvalId,
      task_id: taskId,
      workload_id: 'chatbot',
      boundary_id: 'payments',
      at: expect.any(String),
    });
    expect(JSON.stringify(missed)).not.toContain('555 0100'); // the reason's phone number (bare '555' turns up in UUIDs)
    expect(JSON.stringify(missed)).not.toContain('ending 4242');

    // The resource server heard only its own lease's revocation: its stream is alive, and no approval is on it.
    const heard = await resourceServer.until(1);
    await new Promise((resolve) => setTimeout(resolve, 600));
    await resourceServer.close();
    expect(heard.map((e) => [e.event, e.data.lease_id])).toEqual([['lease.revoked', granted.body.lease_id]]);
  });
});

describe('shutdown', () => {
  it('ends open event streams instead of waiting for them', async () => {
    const own = await startBroker();
    const stream = subscribe(own);
    await stream.opened;
    const started = Date.now();
    await own.close();
    expect(Date.now() - started).toBeLessThan(5000);
    await stream.close();
  });
});
