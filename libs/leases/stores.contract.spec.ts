import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeOnBothBackends } from '../../test/support/backends.js';
import { RevocationEventLog } from '../audit/event-log.js';
import type { Database } from '../db/database.js';
import { WorkloadStore } from '../identity/workload-store.js';
import { uuidv7 } from '../ids/ids.js';
import { exampleBoundary } from '../policy/boundary.fixture.js';
import { BoundaryStore } from '../policy/boundary-store.js';
import { TaskStore } from '../tasks/task-store.js';
import { DecisionLedger, type DecisionRecord } from './decision-ledger.js';
import { LeaseStore, type LeaseRecord } from './lease-store.js';
import { OutboxStore } from './outbox-store.js';
import { RequestContextReader } from './request-context.js';

/**
 * Contract tests of the stores that own decisions, leases, the outbox and the event log, run on
 * PostgreSQL and on PGlite (describeOnBothBackends), through the broker's own opening code.
 */
const WORKLOAD = 'spiffe://acme.test/contract';
const BOUNDARY = exampleBoundary();

async function count(db: Database, table: string, where = 'true', params: unknown[] = []): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`, params);
  return rows[0]!.n;
}

describeOnBothBackends('lease stores (contract)', ({ db }) => {
  let ledger: DecisionLedger;
  let leases: LeaseStore;
  let outbox: OutboxStore;
  let context: RequestContextReader;
  let events: RevocationEventLog;
  let tasks: TaskStore;

  beforeAll(async () => {
    ledger = new DecisionLedger(db());
    leases = new LeaseStore(db());
    outbox = new OutboxStore(db());
    context = new RequestContextReader(db());
    events = new RevocationEventLog(db());
    tasks = new TaskStore(db());
    await new WorkloadStore(db()).put(WORKLOAD, { jwks: { keys: [] } }, true, null);
    const { id, version, createdAt, ...definition } = BOUNDARY;
    void version;
    void createdAt;
    await db().transaction((tx) => new BoundaryStore(db()).put(id, definition, tx));
  });

  async function openTask(): Promise<string> {
    const task = await db().transaction((tx) =>
      tasks.insert(tx, { workloadId: WORKLOAD, intent: 'order_status', subject: 'user-1', context: {}, ttl: 600 }),
    );
    return task!.id;
  }

  async function decisionFor(taskId: string, overrides: Partial<DecisionRecord> = {}): Promise<DecisionRecord> {
    const { now } = await context.requestContext(taskId, BOUNDARY.id);
    return {
      id: uuidv7(now),
      taskId,
      workloadId: WORKLOAD,
      boundaryId: BOUNDARY.id,
      boundaryVersion: 1,
      action: 'orders:read',
      resource: null,
      outcome: 'permit',
      reasons: [],
      params: null,
      purpose: null,
      requestedTtl: null,
      at: now,
      intent: 'order_status',
      subject: 'user-1',
      ...overrides,
    };
  }

  function leaseAt(decision: DecisionRecord, overrides: Partial<LeaseRecord> = {}): LeaseRecord {
    return { id: uuidv7(decision.at), credentialKind: 'jwt', issuedAt: decision.at, expiresAt: decision.at + 60_000, ...overrides };
  }

  async function permit(taskId: string, overrides: Partial<LeaseRecord> = {}): Promise<LeaseRecord> {
    const decision = await decisionFor(taskId);
    const lease = leaseAt(decision, overrides);
    expect(await ledger.recordPermit(decision, lease, 'order_status', { decision_id: decision.id })).toBe(true);
    return lease;
  }

  it('the request context reads the task, the boundary and the database clock', async () => {
    const taskId = await openTask();
    const read = await context.requestContext(taskId, BOUNDARY.id);
    expect(read.task).toMatchObject({ id: taskId, workloadId: WORKLOAD, intent: 'order_status', state: 'active', denials: 0 });
    expect(read.boundary).toMatchObject({ id: BOUNDARY.id, version: 1 });
    expect(Math.abs(read.now - Date.now())).toBeLessThan(60_000);
  });

  it('a permit commits its decision, its lease and its audit event together', async () => {
    const taskId = await openTask();
    const lease = await permit(taskId);
    expect(await count(db(), 'decisions', `task_id = $1 AND outcome = 'permit'`, [taskId])).toBe(1);
    expect(await leases.find(lease.id)).toMatchObject({ id: lease.id, taskId, state: 'active' });
    expect(await count(db(), 'audit_events', `kind = 'credential.permit' AND lease_id = $1`, [lease.id])).toBe(1);
    const [listed] = await ledger.listDecisions({ task: taskId, limit: 10 });
    expect(listed).toMatchObject({ outcome: 'permit', leaseId: lease.id, leaseState: 'active' });
  });

  it('a failed permit leaves no decision, lease or audit row (one statement, one transaction)', async () => {
    const taskId = await openTask();
    const first = await permit(taskId);
    const auditBefore = await count(db(), 'audit_events');
    // The lease insert fails (its id is taken) after the decision's insert: nothing may stay.
    const decision = await decisionFor(taskId);
    await expect(ledger.recordPermit(decision, leaseAt(decision, { id: first.id }), 'order_status', {})).rejects.toThrow();
    expect(await count(db(), 'decisions', 'id = $1', [decision.id])).toBe(0);
    expect(await count(db(), 'audit_events')).toBe(auditBefore);
    // A permit whose task has ended writes nothing at all, and says so.
    await db().transaction((tx) => tasks.end(tx, taskId, 'completed', 'task_completed'));
    const late = await decisionFor(taskId);
    expect(await ledger.recordPermit(late, leaseAt(late), 'order_status', {})).toBe(false);
    expect(await count(db(), 'decisions', 'id = $1', [late.id])).toBe(0);
    expect(await count(db(), 'leases', 'task_id = $1', [taskId])).toBe(1);
    expect(await count(db(), 'audit_events')).toBe(auditBefore);
  });

  it('a denial reaching the drift threshold ends the task and revokes its leases, with their events, in its statement', async () => {
    const taskId = await openTask();
    const lease = await permit(taskId);
    const denial = await decisionFor(taskId, { outcome: 'deny', reasons: ['action_not_allowed'] });
    expect(await ledger.recordDenial(denial, undefined, 1)).toEqual({ written: true, suspended: true });
    expect(await leases.find(lease.id)).toMatchObject({ state: 'revoked', revokeReason: 'drift_detected' });
    expect((await tasks.find(taskId))!.state).toBe('revoked');
    const { rows } = await db().query<{ type: string; lease_id: string | null }>(
      'SELECT type, lease_id FROM revocation_events WHERE task_id = $1 ORDER BY type DESC',
      [taskId],
    );
    // One statement writes both: no order between them.
    expect(rows).toEqual([
      { type: 'task.ended', lease_id: null },
      { type: 'lease.revoked', lease_id: lease.id },
    ]);
  });

  it('a pending decision writes its approval and the approval.requested event with it', async () => {
    const taskId = await openTask();
    const decision = await decisionFor(taskId);
    const approvalId = uuidv7();
    await ledger.recordPending(decision, approvalId, {
      id: approvalId,
      paramsHash: 'hash',
      intent: 'order_status',
      expiresAt: decision.at + 600_000,
      ttl: 60,
    });
    expect(await count(db(), 'decisions', `id = $1 AND outcome = 'pending'`, [decision.id])).toBe(1);
    expect(await count(db(), 'approvals', `id = $1 AND status = 'pending' AND decision_id = $2`, [approvalId, decision.id])).toBe(1);
    expect(await count(db(), 'revocation_events', `type = 'approval.requested' AND approval_id = $1`, [approvalId])).toBe(1);
  });

  it('the outbox: each due lease is claimed by one claimer only, then confirmed', async () => {
    const taskId = await openTask();
    const held: string[] = [];
    for (let i = 0; i < 6; i++) held.push((await permit(taskId, { credentialKind: 'vault', external: true })).id);
    // Committed `issuing`, sent to the outbox by a revocation.
    const revoked = await db().transaction((tx) => leases.revokeWhere(tx, 'task', taskId, 'task_completed'));
    expect(revoked.sort()).toEqual([...held].sort());
    const [a, b] = await Promise.all([outbox.claimRevocations(4, 60_000), outbox.claimRevocations(4, 60_000)]);
    const claimed = [...a, ...b].map((claim) => claim.id).filter((id) => held.includes(id));
    expect(new Set(claimed).size).toBe(claimed.length);
    expect(claimed.sort()).toEqual([...held].sort());
    // Held: nobody claims them again until the hold runs out.
    expect((await outbox.claimRevocations(10, 60_000)).filter((claim) => held.includes(claim.id))).toEqual([]);
    const claim = [...a, ...b].find((c) => c.id === held[0])!;
    expect(await outbox.confirmRevoked(claim, 'system:outbox')).toBe(true);
    expect(await leases.find(held[0]!)).toMatchObject({ state: 'revoked' });
    expect(await outbox.confirmRevoked(claim, 'system:outbox')).toBe(false);
  });

  it('the event log gives positions in the order events were written, once each', async () => {
    const taskId = await openTask();
    const first = await permit(taskId);
    const second = await permit(taskId);
    const head = await events.head();
    await db().transaction((tx) => leases.revokeWhere(tx, 'lease', first.id, 'revoked_by_admin'));
    await db().transaction((tx) => leases.revokeWhere(tx, 'lease', second.id, 'revoked_by_admin'));
    await db().transaction((tx) => tasks.end(tx, taskId, 'completed', 'task_completed'));
    // Positions go to committed events, one sequencer at a time (another replica's pass may hold
    // the lock a moment): sequence until all three have one.
    const deadline = Date.now() + 10_000;
    let after: Awaited<ReturnType<RevocationEventLog['after']>> = [];
    while (after.length < 3 && Date.now() < deadline) {
      await events.sequence();
      after = (await events.after(head, 500)).filter((event) => event.taskId === taskId);
      if (after.length < 3) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(after.map((event) => [event.type, event.leaseId])).toEqual([
      ['lease.revoked', first.id],
      ['lease.revoked', second.id],
      ['task.ended', null],
    ]);
    const seqs = after.map((event) => BigInt(event.seq));
    expect(seqs).toEqual([...seqs].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
    expect(after.every((event) => event.audience === null || event.audience === BOUNDARY.tool)).toBe(true);
    expect(after[0]!.audience).toBe(BOUNDARY.tool);
    // Sequenced once: later passes give none of them a new position.
    await events.sequence();
    expect((await events.after(head, 500)).filter((event) => event.taskId === taskId).map((event) => event.seq)).toEqual(
      after.map((event) => event.seq),
    );
  });
});

/**
 * One owner per table: only the owner's file writes it. The statements that must write several
 * tables at once take the owner's fragment (appendEvents, insertLeases, insertApprovals…), so
 * the text that writes a table lives in one place.
 */
describe('table owners', () => {
  const root = join(import.meta.dirname, '..', '..');
  const sources = ['libs', 'apps']
    .flatMap((dir) => walk(join(root, dir)))
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.spec.ts'));
  const writers = (pattern: RegExp) =>
    sources
      .filter((file) => pattern.test(readFileSync(file, 'utf8')))
      .map((file) => relative(root, file))
      .sort();

  it('revocation_events: the event log', () => {
    // Every statement that records an event (the kill switch, task ends, revocations, approvals)
    // takes the event log's fragment, appendEvents: no file but the log names the table in a write.
    expect(writers(/INSERT INTO revocation_events\s*\(/i)).toEqual([]);
    expect(writers(/insertSelect[^(]*\(\s*'revocation_events'/)).toEqual(['libs/audit/event-log.ts']);
    expect(writers(/UPDATE revocation_events/i)).toEqual(['libs/audit/event-log.ts']);
  });

  it('decisions: the decision ledger', () => {
    expect(writers(/(INSERT INTO|UPDATE|DELETE FROM) decisions\b/i)).toEqual(['libs/leases/decision-ledger.ts']);
  });

  it('leases: the lease store, and the outbox store for the outbox steps', () => {
    expect(writers(/(INSERT INTO|UPDATE|DELETE FROM) leases\b/i)).toEqual(['libs/leases/lease-store.ts', 'libs/leases/outbox-store.ts']);
  });

  it('tasks and task_events: the task store', () => {
    expect(writers(/(INSERT INTO|UPDATE|DELETE FROM) tasks\b/i)).toEqual(['libs/tasks/task-store.ts']);
    expect(writers(/(INSERT INTO|UPDATE|DELETE FROM) task_events\b/i)).toEqual(['libs/tasks/task-store.ts']);
  });

  it('audit_events: the audit log (appendAudit, appendAuditFrom; the chainer links)', () => {
    expect(writers(/INSERT INTO audit_events\b/i)).toEqual(['libs/audit/audit.ts']);
  });

  it('approvals: the approval store', () => {
    expect(writers(/(INSERT INTO|UPDATE|DELETE FROM) approvals\b/i)).toEqual(['libs/approvals/approval-store.ts']);
  });
});

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (name === 'node_modules' || name === 'dist') return [];
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}
