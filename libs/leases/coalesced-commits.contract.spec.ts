import { beforeAll, expect, it } from 'vitest';
import { counted, describeOnBothBackends } from '../../test/support/backends.js';
import type { Sql } from '../db/database.js';
import { WorkloadStore } from '../identity/workload-store.js';
import { uuidv7 } from '../ids/ids.js';
import { exampleBoundary } from '../policy/boundary.fixture.js';
import { BoundaryStore } from '../policy/boundary-store.js';
import type { ToolBoundary } from '../policy/boundary.js';
import { TaskStore } from '../tasks/task-store.js';
import { DecisionLedger, type DecisionRecord } from './decision-ledger.js';
import { LeaseStore, type LeaseRecord } from './lease-store.js';
import { RequestContextReader } from './request-context.js';

/**
 * Coalesced commits (DecisionLedger + StatementCoalescer) on PostgreSQL and on PGlite: permits (and
 * denials) that arrive while a statement is in flight share the next statement, each row is
 * checked on its own conditions, and each caller learns whether its own rows were written.
 */
const WORKLOAD = 'spiffe://acme.test/coalesced';
const READ = exampleBoundary({ id: 'coalesced-read' });
const CHANGING = exampleBoundary({ id: 'coalesced-changing' });

async function count(db: Sql, table: string, where = 'true', params: unknown[] = []): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`, params);
  return rows[0]!.n;
}

describeOnBothBackends('coalesced commits (contract)', ({ db, kind }) => {
  let tasks: TaskStore;
  let context: RequestContextReader;
  let leases: LeaseStore;
  let boundaries: BoundaryStore;

  beforeAll(async () => {
    tasks = new TaskStore(db());
    context = new RequestContextReader(db());
    leases = new LeaseStore(db());
    boundaries = new BoundaryStore(db());
    await new WorkloadStore(db()).put(WORKLOAD, { jwks: { keys: [] } }, true, null);
    for (const boundary of [READ, CHANGING]) await putBoundary(boundary);
  });

  async function putBoundary(boundary: ToolBoundary): Promise<void> {
    const { id, version, createdAt, ...definition } = boundary;
    void version;
    void createdAt;
    await db().transaction((tx) => boundaries.put(id, definition, tx));
  }

  async function openTask(ttl = 600): Promise<string> {
    const task = await db().transaction((tx) =>
      tasks.insert(tx, { workloadId: WORKLOAD, intent: 'order_status', subject: 'user-1', context: {}, ttl }),
    );
    return task!.id;
  }

  /** A permit decided now on `taskId` (version 1 of `boundary`), with the lease it would write. */
  async function decided(
    taskId: string,
    boundary = READ,
    overrides: Partial<LeaseRecord> = {},
  ): Promise<{ decision: DecisionRecord; lease: LeaseRecord }> {
    const { now } = await context.requestContext(taskId, boundary.id);
    const decision: DecisionRecord = {
      id: uuidv7(now),
      taskId,
      workloadId: WORKLOAD,
      boundaryId: boundary.id,
      boundaryVersion: 1,
      action: 'orders:read',
      resource: 'order/42',
      outcome: 'permit',
      reasons: [],
      params: { order: 42 },
      purpose: 'answer the customer',
      requestedTtl: null,
      at: now,
      intent: 'order_status',
      subject: 'user-1',
      taskAgeS: 0,
      denialsInTask: 0,
    };
    const lease = { id: uuidv7(now), credentialKind: 'jwt', issuedAt: now, expiresAt: now + 60_000, paramsDigest: 'digest', ...overrides };
    return { decision, lease };
  }

  function permit(ledger: DecisionLedger, { decision, lease }: { decision: DecisionRecord; lease: LeaseRecord }, policiesKey = '') {
    return ledger.recordPermit(decision, lease, 'order_status', { decision_id: decision.id }, policiesKey);
  }

  it('permits that arrive while one is in flight share the next statement; a row whose conditions fail writes nothing', async () => {
    const { sql, sent } = counted(db());
    const ledger = new DecisionLedger(sql);
    const [first, kept, completed, superseded, stale, outlives, alsoKept, expired] = await Promise.all([
      openTask().then((id) => decided(id)),
      openTask().then((id) => decided(id)),
      openTask().then((id) => decided(id)),
      openTask().then((id) => decided(id, CHANGING)),
      openTask().then((id) => decided(id)),
      // The task ends in 60 s; this lease would outlive it.
      openTask(60).then((id) => decided(id, READ, { expiresAt: Date.now() + 600_000 })),
      openTask().then((id) => decided(id)),
      // Its task's time runs out before the statement (the sweeper has not ended it yet); the lease
      // would not outlive it, so only the task's own expiry can refuse it.
      openTask().then((id) => decided(id, READ, { expiresAt: Date.now() - 60_000 })),
    ]);
    // Between the decisions and their statement: a task completes, a boundary gets a new version,
    // a task's time runs out.
    await db().transaction((tx) => tasks.end(tx, completed!.decision.taskId!, 'completed', 'task_completed'));
    await db().query(`UPDATE tasks SET expires_at = now() - interval '1 second' WHERE id = $1`, [expired!.decision.taskId]);
    await putBoundary({ ...CHANGING, defaultTtl: 30 });

    const written = await Promise.all([
      permit(ledger, first!),
      permit(ledger, kept!),
      permit(ledger, completed!),
      permit(ledger, superseded!),
      // Decided under global policies that are no longer the enabled ones.
      permit(ledger, stale!, 'policies-v0'),
      permit(ledger, outlives!),
      permit(ledger, alsoKept!),
      permit(ledger, expired!),
    ]);

    expect(written).toEqual([true, true, false, false, false, false, true, false]);
    // The first went alone, at once; the seven that came while it ran went together.
    expect(sent).toEqual(['tollgate_record_permit', 'tollgate_record_permits']);
    for (const [request, ok] of [
      [kept!, true],
      [alsoKept!, true],
      [completed!, false],
      [superseded!, false],
      [stale!, false],
      [outlives!, false],
      [expired!, false],
    ] as const) {
      const n = ok ? 1 : 0;
      expect(await count(db(), 'decisions', `id = $1 AND outcome = 'permit'`, [request.decision.id])).toBe(n);
      expect(
        await count(db(), 'leases', `id = $1 AND decision_id = $2 AND state = 'active'`, [request.lease.id, request.decision.id]),
      ).toBe(n);
      expect(await count(db(), 'audit_events', `kind = 'credential.permit' AND lease_id = $1`, [request.lease.id])).toBe(n);
    }
  });

  it('a row written in a batch is the row the single statement writes', async () => {
    const { sql, sent } = counted(db());
    const ledger = new DecisionLedger(sql);
    const [alone, batched, withNulls] = await Promise.all([
      openTask().then((id) => decided(id)),
      openTask().then((id) => decided(id)),
      openTask().then((id) => decided(id)),
    ]);
    withNulls!.decision = { ...withNulls!.decision, params: null, resource: null, purpose: null, policies: [{ id: 'p1', version: 2 }] };
    expect(await Promise.all([permit(ledger, alone!), permit(ledger, batched!), permit(ledger, withNulls!)])).toEqual([true, true, true]);
    expect(sent).toEqual(['tollgate_record_permit', 'tollgate_record_permits']);

    const rowOf = async ({ decision, lease }: { decision: DecisionRecord; lease: LeaseRecord }) => {
      const { rows } = await db().query<Record<string, unknown>>(
        `SELECT d.workload_id, d.boundary_id, d.boundary_version, d.action, d.resource, d.outcome, d.reasons, d.params,
                jsonb_typeof(d.params) AS params_type, d.purpose, d.requested_ttl, extract(epoch FROM d.at) * 1000 AS at, d.policies,
                d.intent, d.subject, d.task_age_s, d.denials_in_task, d.approval_id,
                l.task_id = d.task_id AS same_task, l.credential_kind, l.state, l.external, l.params_digest,
                extract(epoch FROM l.issued_at) * 1000 AS issued_at, extract(epoch FROM l.expires_at) * 1000 AS expires_at,
                a.actor, a.task_id = d.task_id AS audit_task, a.data
           FROM decisions d JOIN leases l ON l.decision_id = d.id JOIN audit_events a ON a.lease_id = l.id AND a.kind = 'credential.permit'
          WHERE d.id = $1`,
        [decision.id],
      );
      expect(rows).toHaveLength(1);
      const row = rows[0]!;
      expect(Number(row.at)).toBe(decision.at);
      expect(Number(row.issued_at)).toBe(lease.issuedAt);
      expect(Number(row.expires_at)).toBe(lease.expiresAt);
      expect(row.data).toEqual({ decision_id: decision.id });
      return { ...row, at: undefined, issued_at: undefined, expires_at: undefined, data: undefined };
    };
    expect(await rowOf(batched!)).toEqual(await rowOf(alone!));
    expect(await rowOf(withNulls!)).toMatchObject({
      params: null,
      params_type: 'null',
      resource: null,
      purpose: null,
      policies: [{ id: 'p1', version: 2 }],
    });
  });

  it('a row that breaks a constraint fails its own request only: the batch is written again row by row', async () => {
    const { sql, sent } = counted(db());
    const ledger = new DecisionLedger(sql);
    const taken = await decided(await openTask());
    expect(await permit(ledger, taken)).toBe(true);
    sent.length = 0;
    const [first, before, guilty, after] = await Promise.all([
      openTask().then((id) => decided(id)),
      openTask().then((id) => decided(id)),
      // Its lease id is taken: the lease insert fails, and with it the whole statement.
      openTask().then((id) => decided(id, READ, { id: taken.lease.id })),
      openTask().then((id) => decided(id)),
    ]);
    const outcomes = await Promise.allSettled([
      permit(ledger, first!),
      permit(ledger, before!),
      permit(ledger, guilty!),
      permit(ledger, after!),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled').map((outcome) => outcome.value)).toEqual([true, true, true]);
    expect(sent).toEqual([
      'tollgate_record_permit',
      'tollgate_record_permits',
      'tollgate_record_permit',
      'tollgate_record_permit',
      'tollgate_record_permit',
    ]);
    for (const request of [before!, after!]) {
      expect(await count(db(), 'decisions', 'id = $1', [request.decision.id])).toBe(1);
      expect(await count(db(), 'leases', 'decision_id = $1', [request.decision.id])).toBe(1);
    }
    expect(await count(db(), 'decisions', 'id = $1', [guilty!.decision.id])).toBe(0);
  });

  it('a task completed while batches of its permits commit keeps no active lease', async () => {
    const ledger = new DecisionLedger(db());
    const taskId = await openTask();
    const requests = await Promise.all(Array.from({ length: 60 }, () => decided(taskId)));
    // One lease the completion must revoke, whoever wins the races below.
    expect(await permit(ledger, await decided(taskId))).toBe(true);
    const outcomes: Promise<boolean>[] = [];
    let completion: Promise<unknown> | undefined;
    for (const [i, request] of requests.slice(0, 30).entries()) {
      outcomes.push(permit(ledger, request));
      if (i === 20) {
        completion = db().transaction(async (tx) => {
          await tasks.lock(tx, taskId);
          await tasks.end(tx, taskId, 'completed', 'task_completed');
          await leases.revokeWhere(tx, 'task', taskId, 'task_completed');
        });
      }
      // Spread over several statements, some racing the completion.
      if (i % 5 === 4) await new Promise((resolve) => setImmediate(resolve));
    }
    await completion;
    // Sent after the completion committed: none of these may write.
    const late = await Promise.all(requests.slice(30).map((request) => permit(ledger, request)));
    expect(late.every((ok) => !ok)).toBe(true);
    const written = await Promise.all(outcomes);
    expect(await count(db(), 'leases', `task_id = $1 AND state = 'active'`, [taskId])).toBe(0);
    expect(await count(db(), 'leases', 'task_id = $1', [taskId])).toBe(1 + written.filter(Boolean).length);
  });

  it('denials share a statement too: each row written or not on its own conditions, drift counted once per task and statement', async () => {
    const { sql, sent } = counted(db());
    const ledger = new DecisionLedger(sql);
    const refusal = async (taskId: string) => {
      const { decision } = await decided(taskId);
      return { ...decision, outcome: 'deny' as const, reasons: ['action_not_allowed'] };
    };
    const [alone, stands, moved, drifting, tripping, expiring] = await Promise.all([
      openTask(),
      openTask(),
      openTask(),
      openTask(),
      openTask(),
      openTask(),
    ]);
    const held = { drifting: await decided(drifting!), tripping: await decided(tripping!) };
    expect(await permit(ledger, held.drifting)).toBe(true);
    expect(await permit(ledger, held.tripping)).toBe(true);
    const [first, standing, stale, driftOne, driftTwo, trips, late] = await Promise.all([
      refusal(alone!),
      refusal(stands!),
      refusal(moved!),
      refusal(drifting!),
      refusal(drifting!),
      refusal(tripping!),
      refusal(expiring!),
    ]);
    // Its task's time runs out before the statement (not swept yet): the refusal is recorded, not counted.
    await db().query(`UPDATE tasks SET expires_at = now() - interval '1 second' WHERE id = $1`, [expiring]);
    sent.length = 0;

    const outcomes = await Promise.all([
      ledger.recordDenial(first!),
      // Decided from remembered rows: written only if the task still has the intent it was decided on.
      ledger.recordDenial(standing!, { intent: 'order_status' }),
      ledger.recordDenial(stale!, { intent: 'refunds' }),
      // Two counted denials of one task: the second one's threshold is reached.
      ledger.recordDenial(driftOne!, undefined, 2),
      ledger.recordDenial(driftTwo!, undefined, 2),
      ledger.recordDenial(trips!, undefined, 1),
      ledger.recordDenial(late!, undefined, 1),
    ]);

    expect(outcomes).toEqual([
      { written: true, suspended: false },
      { written: true, suspended: false },
      { written: false, suspended: false },
      { written: true, suspended: false },
      { written: true, suspended: true },
      { written: true, suspended: true },
      { written: true, suspended: false },
    ]);
    // The lone one at once; then all but the task's second counted denial; then that one.
    expect(sent).toEqual(['tollgate_record_denial', 'tollgate_record_denials', 'tollgate_record_denial']);
    for (const [decision, n] of [
      [standing!, 1],
      [stale!, 0],
      [driftOne!, 1],
      [trips!, 1],
      [late!, 1],
    ] as const) {
      expect(await count(db(), 'decisions', `id = $1 AND outcome = 'deny'`, [decision.id])).toBe(n);
      expect(await count(db(), 'audit_events', `kind = 'credential.deny' AND data ->> 'decision_id' = $1`, [decision.id])).toBe(n);
    }
    for (const [taskId, denials, lease, trippedBy] of [
      [drifting!, [driftOne!.id, driftTwo!.id], held.drifting.lease.id, driftTwo!.id],
      [tripping!, [trips!.id], held.tripping.lease.id, trips!.id],
    ] as const) {
      const { rows } = await db().query<{ state: string; end_reason: string; drift_count: number; counted: string[] }>(
        `SELECT state, end_reason, drift_count,
                ARRAY(SELECT decision_id FROM task_drift_denials d WHERE d.task_id = t.id ORDER BY d.n) AS counted
           FROM tasks t WHERE id = $1`,
        [taskId],
      );
      expect(rows[0]).toEqual({ state: 'revoked', end_reason: 'drift_detected', drift_count: denials.length, counted: denials });
      expect(await leases.find(lease)).toMatchObject({ state: 'revoked', revokeReason: 'drift_detected' });
      expect(await count(db(), 'task_events', `task_id = $1 AND kind = 'revoked' AND reason = 'drift_detected'`, [taskId])).toBe(1);
      expect(await count(db(), 'revocation_events', `task_id = $1 AND type = 'task.ended'`, [taskId])).toBe(1);
      expect(await count(db(), 'revocation_events', `lease_id = $1 AND type = 'lease.revoked'`, [lease])).toBe(1);
      const { rows: audits } = await db().query<{ data: Record<string, unknown> }>(
        `SELECT data FROM audit_events WHERE kind = 'task.drift_suspended' AND task_id = $1`,
        [taskId],
      );
      expect(audits).toEqual([
        { data: { threshold: denials.length, decision_ids: denials, tripped_by: trippedBy, revoked_leases: [lease] } },
      ]);
    }
    expect((await db().query('SELECT state, drift_count FROM tasks WHERE id = $1', [expiring])).rows[0]).toEqual({
      state: 'active',
      drift_count: 0,
    });
    expect(await count(db(), 'task_drift_denials', 'task_id = $1', [expiring])).toBe(0);
  });

  it('a suspension that waited for its task lists the denials counted by the transactions it waited for, alone or in a batch', async (ctx) => {
    // One session on PGlite: nothing there waits for a lock.
    if (kind !== 'postgres') ctx.skip();
    const ledger = new DecisionLedger(db());
    const [alone, batched, other] = await Promise.all([openTask(), openTask(), openTask()]);
    const refusal = async (taskId: string) => ({
      ...(await decided(taskId)).decision,
      outcome: 'deny' as const,
      reasons: ['intent_mismatch'],
    });
    const [aloneDenial, batchedDenial, otherDenial] = await Promise.all([refusal(alone), refusal(batched), refusal(other)]);

    // Another replica's counted denial of each task, holding the task's row until released, as
    // countDriftDenial does; committed after the ledger's statements took their snapshots.
    const elsewhere = { [alone]: uuidv7(), [batched]: uuidv7() };
    const holders = [alone, batched].map((taskId) => {
      let held!: () => void;
      let release!: () => void;
      const holding = new Promise<void>((resolve) => (held = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      const done = db().transaction(async (tx) => {
        await tx.query(`UPDATE tasks SET drift_count = drift_count + 1 WHERE id = $1`, [taskId]);
        await tx.query(`INSERT INTO task_drift_denials (task_id, decision_id, n) VALUES ($1, $2, 1)`, [taskId, elsewhere[taskId]]);
        held();
        await released;
      });
      return { holding, release, done };
    });
    await Promise.all(holders.map((h) => h.holding));
    const waiting = async (n: number) => {
      for (let i = 0; i < 200; i++) {
        const { rows } = await db().query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'WITH %'`,
        );
        if (rows[0]!.n === n) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      throw new Error(`never saw ${n} statement(s) waiting for a task`);
    };

    // The first goes alone (writeDenial) and waits; the other two wait for it, then share a statement.
    const first = ledger.recordDenial(aloneDenial, undefined, 2);
    const rest = Promise.all([ledger.recordDenial(batchedDenial, undefined, 2), ledger.recordDenial(otherDenial)]);
    try {
      await waiting(1);
      holders[0]!.release();
      await first;
      await waiting(1); // now the batch, for the second task
    } finally {
      for (const holder of holders) holder.release();
      await Promise.all(holders.map((h) => h.done));
    }
    const outcomes = Promise.all([first, rest]).then(([one, two]) => [one, ...two]);
    expect(await outcomes).toEqual([
      { written: true, suspended: true },
      { written: true, suspended: true },
      { written: true, suspended: false },
    ]);
    for (const [taskId, denial] of [
      [alone, aloneDenial],
      [batched, batchedDenial],
    ] as const) {
      const { rows } = await db().query<{ data: { decision_ids: string[]; tripped_by: string } }>(
        `SELECT data FROM audit_events WHERE kind = 'task.drift_suspended' AND task_id = $1`,
        [taskId],
      );
      expect(rows.map((row) => [row.data.decision_ids, row.data.tripped_by])).toEqual([[[elsewhere[taskId], denial.id], denial.id]]);
      expect((await db().query(`SELECT drift_count, state FROM tasks WHERE id = $1`, [taskId])).rows).toEqual([
        { drift_count: 2, state: 'revoked' },
      ]);
    }
  });

  it('the kill switch locks its tasks in id order, the order a batch share-locks them in: the two never deadlock', async (ctx) => {
    // One session on PGlite: nothing there runs concurrently.
    if (kind !== 'postgres') ctx.skip();
    // The higher id written first: an UPDATE that takes rows as it finds them (by table or index
    // order) locks the higher task before the lower one.
    const [lower, higher] = [uuidv7(), uuidv7()].sort() as [string, string];
    for (const id of [higher, lower]) {
      await db().query(
        `INSERT INTO tasks (id, workload_id, intent, subject, context, state, created_at, expires_at)
         VALUES ($1, $2, 'order_status', 'user-1', '{}', 'active', now(), now() + interval '10 minutes')`,
        [id, WORKLOAD],
      );
    }

    let holdingLower!: () => void;
    const lowerHeld = new Promise<void>((resolve) => (holdingLower = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // A batch that holds the lower task and goes on to the higher one.
    const batch = db().transaction(async (tx) => {
      await tx.query(`SET LOCAL lock_timeout = '3s'`);
      await tx.query('SELECT 1 FROM tasks WHERE id = $1 FOR SHARE', [lower]);
      holdingLower();
      await released;
      await tx.query('SELECT 1 FROM tasks WHERE id = $1 FOR SHARE', [higher]);
    });
    await lowerHeld;
    const killSwitch = db().transaction((tx) => tasks.revokeForWorkload(tx, WORKLOAD));
    killSwitch.catch(() => {}); // awaited below; a failed batch must not leave it unheard
    // Let the kill switch take what it can and start waiting.
    await new Promise((resolve) => setTimeout(resolve, 300));
    release();
    await expect(batch).resolves.toBeUndefined();
    const ended = await killSwitch;
    expect(ended).toEqual(expect.arrayContaining([lower, higher]));
  });
});
