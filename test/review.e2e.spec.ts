import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestBroker } from './support/broker.js';
import { call, type Response } from './support/http.js';
import { asAdmin, putBoundary, startWithBot, type Bot } from './support/scenario.js';

/**
 * The review API: lease and decision filters by subject, tool and action (alone and combined, with
 * cursor pages), a task's timeline in order, and admin revocation of one lease or one task
 * (idempotent, 404 for unknown ids, closed to reviewers).
 */

const REFUNDS_TOOL = 'https://refunds.acme.test';
const CRM_TOOL = 'https://crm.acme.test';

let broker: TestBroker;
let bot: Bot;
let admin: ReturnType<typeof asAdmin>;
let reviewer: { id: string; key: string };
/** customer-42's journey: a read, a refused refund, an intent change, an approved-by-policy refund, completion. */
let story: { taskId: string; readLease: string; deniedDecision: string; refundLease: string };
/** customer-7's journey: two reads, still open. */
let other: { taskId: string; leases: string[] };

const asReviewer = <T = any>(method: string, path: string, json?: unknown) =>
  call<T>(broker.url, method, path, { token: reviewer.key, json });

async function rows<T>(text: string, params: unknown[] = []): Promise<T[]> {
  return (await broker.app.broker.db.query<T>(text, params)).rows;
}

async function page(path: string, query: string): Promise<{ items: any[]; next_cursor: string | null }> {
  const response = await asReviewer('GET', `${path}?${query}`);
  expect(response.status, `${path}?${query}: ${JSON.stringify(response.body)}`).toBe(200);
  return response.body;
}

async function granted(response: Response): Promise<string> {
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body.lease_id;
}

beforeAll(async () => {
  ({ broker, bot } = await startWithBot());
  admin = asAdmin(broker);
  await putBoundary(broker, 'crm-refunds', { tool: REFUNDS_TOOL, actions: ['refund:create'], intents: ['refund_request'] });
  reviewer = (await admin('POST', '/v1/admin/api-keys', { role: 'reviewer', label: 'review e2e' })).body;

  const taskId = await bot.openTask('order_status', { subject: 'customer-42' });
  const readLease = await granted(await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read', resource: 'order/1001' }));
  const denied = await bot.credential(taskId, { boundary: 'crm-refunds', action: 'refund:create', resource: 'order/1001' });
  expect(denied.status).toBe(403);
  expect((await bot.call('POST', `/v1/tasks/${taskId}/intent`, { intent: 'refund_request' })).status).toBe(200);
  const refundLease = await granted(
    await bot.credential(taskId, { boundary: 'crm-refunds', action: 'refund:create', resource: 'order/1001' }),
  );
  expect((await bot.call('POST', `/v1/tasks/${taskId}/complete`)).status).toBe(200);
  story = { taskId, readLease, deniedDecision: denied.body.decision_id, refundLease };

  const otherTask = await bot.openTask('order_status', { subject: 'customer-7' });
  other = {
    taskId: otherTask,
    leases: [
      await granted(await bot.credential(otherTask, { boundary: 'crm-orders', action: 'orders:read', resource: 'order/7' })),
      await granted(await bot.credential(otherTask, { boundary: 'crm-orders', action: 'orders:refund', resource: 'order/7' })),
    ],
  };
});
afterAll(() => broker?.close());

describe('review filters', () => {
  it("filters decisions by subject, tool and action, alone and combined, and shows a permit's lease and its state", async () => {
    const bySubject = await page('/v1/decisions', 'subject=customer-42');
    expect(bySubject.items.map((d) => d.outcome)).toEqual(['permit', 'deny', 'permit']);
    expect(bySubject.items.every((d) => d.task_id === story.taskId)).toBe(true);

    const byTool = await page('/v1/decisions', `tool=${encodeURIComponent(REFUNDS_TOOL)}`);
    expect(byTool.items.map((d) => [d.outcome, d.boundary_id])).toEqual([
      ['permit', 'crm-refunds'],
      ['deny', 'crm-refunds'],
    ]);
    expect(byTool.items[0]).toMatchObject({ lease_id: story.refundLease, lease_state: 'revoked' });
    expect(byTool.items[1]).toMatchObject({
      decision_id: story.deniedDecision,
      reasons: ['intent_mismatch'],
      lease_id: null,
      lease_state: null,
    });

    const byAction = await page('/v1/decisions', 'action=orders:read');
    expect(byAction.items.map((d) => d.task_id).sort()).toEqual([story.taskId, other.taskId].sort());

    // The reviewer's question: who could call the refunds tool for customer 42, and who was refused.
    const refused = await page('/v1/decisions', `subject=customer-42&boundary=crm-refunds&outcome=deny`);
    expect(refused.items.map((d) => d.decision_id)).toEqual([story.deniedDecision]);
    expect((await page('/v1/decisions', `subject=customer-7&tool=${encodeURIComponent(REFUNDS_TOOL)}`)).items).toEqual([]);
    expect(
      (await page('/v1/decisions', `subject=customer-7&tool=${encodeURIComponent(CRM_TOOL)}&action=orders:refund`)).items,
    ).toHaveLength(1);
    expect((await page('/v1/decisions', 'subject=nobody')).items).toEqual([]);
  });

  it('filters leases by subject, tool and action, alone and combined with state', async () => {
    const ids = async (query: string) => (await page('/v1/leases', query)).items.map((lease) => lease.lease_id);
    expect(await ids('subject=customer-42')).toEqual([story.refundLease, story.readLease]);
    expect(await ids(`tool=${encodeURIComponent(REFUNDS_TOOL)}`)).toEqual([story.refundLease]);
    expect(await ids('action=orders:read')).toEqual([other.leases[0], story.readLease]);
    expect(await ids('subject=customer-7&state=active')).toEqual([...other.leases].reverse());
    expect(await ids('subject=customer-42&state=active')).toEqual([]);
    expect(await ids(`subject=customer-7&tool=${encodeURIComponent(CRM_TOOL)}&action=orders:refund`)).toEqual([other.leases[1]]);
  });

  it('pages a filtered list with its cursor: the pages add up to the whole list, in order', async () => {
    const whole = (await page('/v1/decisions', 'subject=customer-42')).items.map((d) => d.decision_id);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const next: { items: any[]; next_cursor: string | null } = await page(
        '/v1/decisions',
        `subject=customer-42&limit=1${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      seen.push(...next.items.map((d) => d.decision_id));
      cursor = next.next_cursor;
      pages++;
    } while (cursor !== null && pages < 10);
    expect(seen).toEqual(whole);
    expect(pages).toBe(4); // three full pages of one, then an empty last page
  });

  it('refuses bad filter values with 400 naming the field, and changes nothing', async () => {
    const before = await rows<{ n: number }>('SELECT (SELECT count(*) FROM audit_events) + (SELECT count(*) FROM decisions) AS n');
    const cases: Array<[string, string]> = [
      ['subject=', 'subject'],
      ['subject=a%00b', 'subject'],
      [`subject=${'x'.repeat(257)}`, 'subject'],
      ['tool=', 'tool'],
      ['action=Refund', 'action'],
      ['action=refund%20all', 'action'],
      ['subjects=customer-42', 'subjects'],
      // A window that ends before (or where) it starts is a mistake, not an empty answer.
      ['since=2026-11-25&until=2026-11-24', 'since'],
      ['since=2026-11-24T00:00:00Z&until=2026-11-24', 'since'],
    ];
    for (const path of ['/v1/leases', '/v1/decisions']) {
      for (const [query, field] of cases) {
        const response = await asReviewer('GET', `${path}?${query}`);
        expect(response.status, `${path}?${query}`).toBe(400);
        expect(response.body).toMatchObject({ error: 'invalid_request', field });
      }
    }
    for (const path of ['/v1/approvals', '/v1/audit']) {
      const response = await asReviewer('GET', `${path}?since=2026-11-25T12:00:00%2B01:00&until=2026-11-25T10:00:00Z`);
      expect(response.status, path).toBe(400);
      expect(response.body).toMatchObject({ error: 'invalid_request', error_description: 'since: must be before until', field: 'since' });
    }
    const after = await rows<{ n: number }>('SELECT (SELECT count(*) FROM audit_events) + (SELECT count(*) FROM decisions) AS n');
    expect(after).toEqual(before);
  });
});

describe('task timeline', () => {
  it("tells a task's story in order: opened, permit, lease, deny with reasons, intent change and the revocation it caused, permit, completion", async () => {
    const response = await asReviewer('GET', `/v1/tasks/${story.taskId}/timeline`);
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    expect(response.body.task).toMatchObject({
      task_id: story.taskId,
      subject: 'customer-42',
      intent: 'refund_request',
      state: 'completed',
    });
    const events: any[] = response.body.events;
    expect(events.map((event) => event.kind)).toEqual([
      'task.opened',
      'decision.permit',
      'lease.issued',
      'decision.deny',
      'task.intent_changed',
      'lease.revoked',
      'decision.permit',
      'lease.issued',
      // The task ends first (its leases read revoked from then on), then their rows are revoked.
      'task.completed',
      'lease.revoked',
    ]);
    const times = events.map((event) => Date.parse(event.at));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(events[0]).toMatchObject({ intent: 'order_status', subject: 'customer-42', workload_id: bot.id });
    expect(events[1]).toMatchObject({
      boundary_id: 'crm-orders',
      action: 'orders:read',
      resource: 'order/1001',
      lease_id: story.readLease,
    });
    expect(events[3]).toMatchObject({ decision_id: story.deniedDecision, boundary_id: 'crm-refunds', reasons: ['intent_mismatch'] });
    expect(events[4]).toMatchObject({ from: 'order_status', intent: 'refund_request' });
    expect(events[5]).toMatchObject({ lease_id: story.readLease, reason: 'journey_changed' });
    expect(events[8]).toMatchObject({ reason: 'task_completed' });
    expect(events[9]).toMatchObject({ lease_id: story.refundLease, reason: 'task_completed' });
  });

  it('answers 404 for an unknown task and for a malformed id', async () => {
    for (const id of ['0190b7d0-0000-7000-8000-000000000000', 'not-a-task']) {
      const response = await asReviewer('GET', `/v1/tasks/${id}/timeline`);
      expect(response.status).toBe(404);
      expect(response.body).toMatchObject({ error: 'not_found' });
    }
  });
});

describe('admin revocation', () => {
  it('a reviewer can read but not revoke (403), and nothing changes', async () => {
    for (const path of [`/v1/admin/leases/${other.leases[0]}/revoke`, `/v1/admin/tasks/${other.taskId}/revoke`]) {
      const response = await asReviewer('POST', path, {});
      expect(response.status, path).toBe(403);
      expect(response.body).toMatchObject({ error: 'insufficient_scope' });
    }
    expect((await page('/v1/leases', `task=${other.taskId}&state=active`)).items).toHaveLength(2);
    expect((await page('/v1/leases', `task=${other.taskId}`)).items).toHaveLength(2);
  });

  it('revokes one lease, once: the second call changes nothing; unknown ids are 404; bad bodies 400', async () => {
    const path = `/v1/admin/leases/${other.leases[0]}/revoke`;
    const first = await admin('POST', path, { reason: 'suspicious refund pattern' });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body).toMatchObject({ lease_id: other.leases[0], state: 'revoked', revoke_reason: 'revoked_by_admin', revoked_now: true });
    const again = await admin('POST', path, {});
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({
      lease_id: other.leases[0],
      state: 'revoked',
      revoked_at: first.body.revoked_at,
      revoked_now: false,
    });
    const audit = await rows<{ actor: string; data: Record<string, unknown> }>(
      `SELECT actor, data FROM audit_events WHERE kind = 'lease.revoked' AND lease_id = $1`,
      [other.leases[0]],
    );
    expect(audit).toEqual([
      {
        actor: expect.stringMatching(/^admin:/),
        data: { reason: 'revoked_by_admin', comment: 'suspicious refund pattern', request_id: expect.any(String) },
      },
    ]);

    expect((await admin('POST', '/v1/admin/leases/0190b7d0-0000-7000-8000-000000000000/revoke', {})).status).toBe(404);
    expect((await admin('POST', '/v1/admin/leases/nope/revoke', {})).status).toBe(404);
    const bad = await admin('POST', `/v1/admin/leases/${other.leases[1]}/revoke`, { reason: 'x', extra: 1 });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: 'invalid_request', field: 'extra' });
    expect((await page('/v1/leases', `task=${other.taskId}&state=active`)).items.map((lease) => lease.lease_id)).toEqual([other.leases[1]]);
  });

  it('revokes a task: its live leases die, it reads revoked, the bot is refused; again changes nothing; 404 unknown', async () => {
    const path = `/v1/admin/tasks/${other.taskId}/revoke`;
    const first = await admin('POST', path, { reason: 'account takeover suspected' });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body).toMatchObject({
      task_id: other.taskId,
      state: 'revoked',
      end_reason: 'revoked_by_admin',
      revoked_leases: [other.leases[1]],
    });
    const again = await admin('POST', path, {});
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ task_id: other.taskId, state: 'revoked', ended_at: first.body.ended_at, revoked_leases: [] });

    const refused = await bot.credential(other.taskId, { boundary: 'crm-orders', action: 'orders:read' });
    expect(refused.status).toBe(403);
    expect(refused.body.reasons).toEqual(['task_not_active']);
    expect((await page('/v1/leases', `task=${other.taskId}`)).items.map((lease) => [lease.state, lease.revoke_reason])).toEqual([
      ['revoked', 'task_revoked'],
      ['revoked', 'revoked_by_admin'],
    ]);
    const audit = await rows<{ actor: string; data: Record<string, unknown> }>(
      `SELECT actor, data FROM audit_events WHERE kind = 'task.revoked' AND task_id = $1`,
      [other.taskId],
    );
    expect(audit).toEqual([
      {
        actor: expect.stringMatching(/^admin:/),
        data: { revoked_leases: 1, comment: 'account takeover suspected', request_id: expect.any(String) },
      },
    ]);

    const timeline: any[] = (await asReviewer('GET', `/v1/tasks/${other.taskId}/timeline`)).body.events;
    // The task ends first (its leases read revoked from then on), then their rows are revoked.
    expect(timeline.slice(-3).map((event) => [event.kind, event.reason ?? event.reasons])).toEqual([
      ['task.revoked', 'revoked_by_admin'],
      ['lease.revoked', 'task_revoked'],
      ['decision.deny', ['task_not_active']],
    ]);

    // A completed task is left as it is.
    const completed = await admin('POST', `/v1/admin/tasks/${story.taskId}/revoke`, {});
    expect(completed.body).toMatchObject({ state: 'completed', revoked_leases: [] });
    expect((await admin('POST', '/v1/admin/tasks/0190b7d0-0000-7000-8000-000000000000/revoke', {})).status).toBe(404);
    expect((await admin('POST', '/v1/admin/tasks/nope/revoke')).status).toBe(404);
  });
});
