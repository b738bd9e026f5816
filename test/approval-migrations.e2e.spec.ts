import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../migrations/index.js';
import type { TestBroker } from './support/broker.js';
import { asAdmin, putBoundary, startWithBot, type Bot } from './support/scenario.js';

/**
 * The issue 12 migrations over existing rows (findings 7 and 9): undone, the approvals read as
 * before (revocation derived, no ttl); run again, approvals killed by an intent change that was
 * changed back, by their task's end or by their boundary's disabling are stored as revoked, the
 * others are left alone, and every approval gets the ttl its request would have had.
 * PostgreSQL only: it runs the migrations beside a live broker on a second connection.
 */
let broker: TestBroker;
let bot: Bot;

beforeAll(async () => {
  ({ broker, bot } = await startWithBot());
  await putBoundary(broker, 'pay', { actions: ['refund:create'], approval: { when: 'true' } });
  await putBoundary(broker, 'pay-off', { actions: ['refund:create'], approval: { when: 'true' } });
});
afterAll(() => broker?.close());

// Undone down to approval-revocation (issue 12's first), with every migration after it: counted
// from the list, so that a new migration does not leave the approvals half undone.
const OURS = migrations.length - migrations.findIndex((migration) => migration.name === 'ApprovalRevocation1764116520000');

async function approved(boundary: string, ttl?: number): Promise<{ taskId: string; approvalId: string }> {
  const taskId = await bot.openTask();
  const pending = await bot.credential(taskId, { boundary, action: 'refund:create', params: { n: 1 }, ...(ttl ? { ttl } : {}) });
  expect(pending.status).toBe(202);
  const approvalId = pending.body.approval_id as string;
  expect((await asAdmin(broker)('POST', `/v1/approvals/${approvalId}/approve`, { reason: 'ok' })).status).toBe(200);
  return { taskId, approvalId };
}

describe('issue 12 approval migrations over existing rows', () => {
  it('backfill the stored revocation and the approved ttl', async (context) => {
    if (!broker.db.databaseUrl) context.skip();
    const flipped = await approved('pay', 60);
    await bot.call('POST', `/v1/tasks/${flipped.taskId}/intent`, { intent: 'refund_request' });
    await bot.call('POST', `/v1/tasks/${flipped.taskId}/intent`, { intent: 'order_status' });
    const kept = await approved('pay');
    const completed = await approved('pay');
    await bot.call('POST', `/v1/tasks/${completed.taskId}/complete`);
    const disabled = await approved('pay-off');
    await asAdmin(broker)('DELETE', '/v1/admin/boundaries/pay-off');

    const source = new DataSource({ type: 'postgres', url: broker.db.databaseUrl, migrations, migrationsTableName: 'tollgate_migrations' });
    await source.initialize();
    try {
      for (let i = 0; i < OURS; i++) await source.undoLastMigration({ transaction: 'each' });
      const before = await source.query(`SELECT id, status FROM approvals ORDER BY id`);
      // Undone, the stored revocations are gone: the flipped approval reads approved again.
      expect(before.find((row: { id: string }) => row.id === flipped.approvalId).status).toBe('approved');
      await source.runMigrations({ transaction: 'each' });
      const after = await source.query(`SELECT id, status, revoke_reason, ttl FROM approvals`);
      const byId = new Map(after.map((row: { id: string }) => [row.id, row]));
      expect(byId.get(flipped.approvalId)).toMatchObject({ status: 'revoked', revoke_reason: 'intent_changed', ttl: 60 });
      expect(byId.get(kept.approvalId)).toMatchObject({ status: 'approved', revoke_reason: null, ttl: 120 });
      expect(byId.get(completed.approvalId)).toMatchObject({ status: 'revoked', revoke_reason: 'task_completed' });
      expect(byId.get(disabled.approvalId)).toMatchObject({ status: 'revoked', revoke_reason: 'boundary_disabled' });
    } finally {
      await source.destroy();
    }
    const redeemed = await bot.credential(flipped.taskId, {
      boundary: 'pay',
      action: 'refund:create',
      params: { n: 1 },
      approval_id: flipped.approvalId,
    });
    expect(redeemed.body.reasons).toEqual(['approval_revoked']);
  });
});
