import { beforeAll, expect, it } from 'vitest';
import { describeOnBothBackends } from '../../test/support/backends.js';
import { WorkloadStore } from '../identity/workload-store.js';
import { uuidv7 } from '../ids/ids.js';
import { exampleBoundary } from '../policy/boundary.fixture.js';
import { BoundaryStore } from '../policy/boundary-store.js';
import { TaskStore } from '../tasks/task-store.js';
import { ApprovalStore } from '../approvals/approval-store.js';
import { DecisionLedger } from './decision-ledger.js';

// Here, not in libs/approvals: a pending approval is written by the decision ledger (leases), with
// its pending decision, and ApprovalStore reads and decides it.
type PendingDecision = Parameters<DecisionLedger['recordPending']>[0];

describeOnBothBackends('ApprovalStore contract', ({ db }) => {
  let store: ApprovalStore;
  let ledger: DecisionLedger;
  let tasks: TaskStore;
  beforeAll(async () => {
    store = new ApprovalStore(db());
    ledger = new DecisionLedger(db());
    tasks = new TaskStore(db());
    await new WorkloadStore(db()).put('bot', { jwks: { keys: [] } }, undefined, null);
    const { id: _id, version: _version, createdAt: _createdAt, ...definition } = exampleBoundary();
    await db().transaction((tx) => new BoundaryStore(db()).put('pay', { ...definition, actions: ['refund:create'] }, tx));
  });

  async function openTask(): Promise<string> {
    const task = await db().transaction((tx) =>
      tasks.insert(tx, { workloadId: 'bot', intent: 'refund_request', subject: 'user:1', context: {}, ttl: 600 }),
    );
    return task!.id;
  }

  /** Asks for an approval the way the permit path does; returns its id. */
  async function ask(
    taskId: string,
    options: { at?: number; expiresAt?: number; params?: unknown; resource?: string | null } = {},
  ): Promise<string> {
    const at = options.at ?? Date.now();
    // Of the request's time: ids made within one millisecond are not ordered among themselves.
    const approvalId = uuidv7(at);
    const decision: PendingDecision = {
      id: uuidv7(),
      taskId,
      workloadId: 'bot',
      boundaryId: 'pay',
      boundaryVersion: 1,
      action: 'refund:create',
      resource: options.resource ?? null,
      params: options.params ?? { amount: '12,50 €' },
      purpose: 'refund ☃',
      requestedTtl: 60,
      at,
    };
    await ledger.recordPending(decision, approvalId, {
      id: approvalId,
      paramsHash: 'hash-1',
      intent: 'refund_request',
      expiresAt: options.expiresAt ?? at + 600_000,
      ttl: 60,
    });
    return approvalId;
  }

  it('records a pending approval with its decision and events, and reads it back (JSON params, epoch ms times)', async () => {
    const taskId = await openTask();
    const at = Date.now() - 5;
    const id = await ask(taskId, { at, params: { amount: '12,50 €', items: [{ sku: 'ü-1', n: 2 }] } });
    const approval = await store.find(id);
    expect(approval).toMatchObject({
      id,
      taskId,
      workloadId: 'bot',
      boundaryId: 'pay',
      boundaryVersion: 1,
      action: 'refund:create',
      resource: null,
      params: { amount: '12,50 €', items: [{ sku: 'ü-1', n: 2 }] },
      paramsHash: 'hash-1',
      purpose: 'refund ☃',
      ttl: 60,
      intent: 'refund_request',
      status: 'pending',
      decidedAt: null,
      revokedAt: null,
    });
    expect(approval!.requestedAt.getTime()).toBe(at);
    expect(approval!.expiresAt.getTime()).toBe(at + 600_000);
    const { rows: events } = await db().query(`SELECT type FROM revocation_events WHERE approval_id = $1`, [id]);
    expect(events).toEqual([{ type: 'approval.requested' }]);
    const { rows: audit } = await db().query<{ kind: string; data: string }>(
      `SELECT kind, data::text AS data FROM audit_events WHERE task_id = $1`,
      [taskId],
    );
    expect(audit.map((a) => a.kind)).toEqual(['credential.pending']);
    expect(JSON.parse(audit[0]!.data)).toMatchObject({ approval_id: id, approval_created: true });
  });

  it('finds the pending approval for exactly the same request, and records a repeat without a second one', async () => {
    const taskId = await openTask();
    const id = await ask(taskId);
    const binding = {
      taskId,
      workloadId: 'bot',
      boundaryId: 'pay',
      action: 'refund:create',
      resource: null,
      paramsHash: 'hash-1',
      purpose: 'refund ☃',
    };
    expect((await store.pendingFor(binding))?.id).toBe(id);
    expect(await store.pendingFor({ ...binding, paramsHash: 'hash-2' })).toBeUndefined();
    expect(await store.pendingFor({ ...binding, resource: 'order-1' })).toBeUndefined();
    expect(await store.pendingFor({ ...binding, purpose: null })).toBeUndefined();
    const decision: PendingDecision = {
      id: uuidv7(),
      taskId,
      workloadId: 'bot',
      boundaryId: 'pay',
      boundaryVersion: 1,
      action: 'refund:create',
      resource: null,
      params: null,
      purpose: null,
      requestedTtl: null,
      at: Date.now(),
    };
    await ledger.recordPending(decision, id, undefined);
    const { rows } = await db().query<{ n: number }>(`SELECT count(*)::int AS n FROM approvals WHERE task_id = $1`, [taskId]);
    expect(rows[0]!.n).toBe(1);
    const { rows: decisions } = await db().query<{ n: number }>(
      `SELECT count(*)::int AS n FROM decisions WHERE task_id = $1 AND outcome = 'pending'`,
      [taskId],
    );
    expect(decisions[0]!.n).toBe(2);
  });

  it('settles reviewers deciding at once on one verdict, announced once', async () => {
    const id = await ask(await openTask());
    const verdicts = await Promise.all(
      (['approved', 'denied', 'approved', 'denied'] as const).map((verdict, n) =>
        db().transaction((tx) => store.decide(tx, id, verdict, `reviewer:${n}`, 'ok ✓')),
      ),
    );
    const winners = verdicts.filter((v) => v !== undefined);
    expect(winners).toHaveLength(1);
    const stored = await store.find(id);
    expect(stored).toMatchObject({ status: winners[0]!.status, decidedBy: winners[0]!.decidedBy, reason: 'ok ✓' });
    expect(stored!.decidedAt).toBeInstanceOf(Date);
    const { rows } = await db().query<{ type: string }>(
      `SELECT type FROM revocation_events WHERE approval_id = $1 AND type <> 'approval.requested'`,
      [id],
    );
    expect(rows.map((r) => r.type)).toEqual([`approval.${winners[0]!.status}`]);
  });

  it('reads an open approval past its time as expired, and refuses to decide it', async () => {
    const at = Date.now() - 2_000;
    const id = await ask(await openTask(), { at, expiresAt: at + 1_000 });
    expect((await store.find(id))?.status).toBe('expired');
    expect(await db().transaction((tx) => store.decide(tx, id, 'approved', 'reviewer:1', 'late'))).toBeUndefined();
  });

  it('stores the revocation when its task changes intent or ends; changing intent back does not revive it', async () => {
    const flipped = await openTask();
    const flippedId = await ask(flipped);
    await db().transaction((tx) => store.decide(tx, flippedId, 'approved', 'reviewer:1', 'ok'));
    await db().transaction((tx) => tasks.setIntent(tx, flipped, 'order_status'));
    await db().transaction((tx) => tasks.setIntent(tx, flipped, 'refund_request'));
    expect(await store.find(flippedId)).toMatchObject({ status: 'revoked', revokeReason: 'intent_changed' });

    const ended = await openTask();
    const endedId = await ask(ended);
    await db().transaction((tx) => tasks.end(tx, ended, 'completed', 'task_completed'));
    const revoked = await store.find(endedId);
    expect(revoked).toMatchObject({ status: 'revoked', revokeReason: 'task_completed' });
    expect(revoked!.revokedAt).toBeInstanceOf(Date);
    expect(await db().transaction((tx) => store.decide(tx, endedId, 'approved', 'reviewer:1', 'ok'))).toBeUndefined();
  });

  it('lists newest first, filtered by status and task, paging by cursor', async () => {
    const taskId = await openTask();
    const base = Date.now();
    const ids = [await ask(taskId, { at: base }), await ask(taskId, { at: base + 1 }), await ask(taskId, { at: base + 2 })];
    await db().transaction((tx) => store.decide(tx, ids[1]!, 'denied', 'reviewer:1', 'no'));
    const all = await store.list({ task: taskId, limit: 10 });
    expect(all.map((a) => a.id)).toEqual([...ids].reverse());
    expect((await store.list({ task: taskId, status: 'denied', limit: 10 })).map((a) => a.id)).toEqual([ids[1]]);
    expect((await store.list({ task: taskId, status: 'pending', limit: 10 })).map((a) => a.id)).toEqual([ids[2], ids[0]]);
    const page = await store.list({ task: taskId, limit: 1 });
    expect((await store.list({ task: taskId, cursor: page[0]!.id, limit: 10 })).map((a) => a.id)).toEqual([ids[1], ids[0]]);
    expect((await store.list({ status: 'expired', limit: 100 })).every((a) => a.status === 'expired')).toBe(true);
  });
});
