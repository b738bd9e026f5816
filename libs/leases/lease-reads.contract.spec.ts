import { beforeAll, expect, it } from 'vitest';
import { counted, describeOnBothBackends } from '../../test/support/backends.js';
import { WorkloadStore } from '../identity/workload-store.js';
import { uuidv7 } from '../ids/ids.js';
import { exampleBoundary } from '../policy/boundary.fixture.js';
import { BoundaryStore } from '../policy/boundary-store.js';
import { TaskStore } from '../tasks/task-store.js';
import { DecisionLedger, type DecisionRecord } from './decision-ledger.js';
import { BatchedLeaseReads } from './lease-reads.js';
import { LeaseStore } from './lease-store.js';

/**
 * Batched lease reads (BatchedLeaseReads + LeaseStore.findMany) on PostgreSQL and on PGlite:
 * reads that arrive while one is in flight share one `= ANY($1)` statement, and each answers
 * exactly what the single-row find answers: the lease's effective state as of the database clock.
 */
const WORKLOAD = 'spiffe://acme.test/batched-reads';
const READ = exampleBoundary({ id: 'batched-read' });

describeOnBothBackends('batched lease reads (contract)', ({ db }) => {
  let taskId: string;
  const ids = { active: '', revoked: '', expired: '', unknown: uuidv7() };

  beforeAll(async () => {
    await new WorkloadStore(db()).put(WORKLOAD, { jwks: { keys: [] } }, true, null);
    const { id, version, createdAt, ...definition } = READ;
    void version;
    void createdAt;
    await db().transaction((tx) => new BoundaryStore(db()).put(id, definition, tx));
    const task = await db().transaction((tx) =>
      new TaskStore(db()).insert(tx, { workloadId: WORKLOAD, intent: 'order_status', subject: 'user-1', context: {}, ttl: 600 }),
    );
    taskId = task!.id;
    const ledger = new DecisionLedger(db(), false);
    const now = Date.now();
    for (const [name, ttl] of [
      ['active', 60_000],
      ['revoked', 60_000],
      ['expired', 1_000],
    ] as const) {
      const decision: DecisionRecord = {
        id: uuidv7(now),
        taskId,
        workloadId: WORKLOAD,
        boundaryId: READ.id,
        boundaryVersion: 1,
        action: 'orders:read',
        resource: `order/${name}`,
        outcome: 'permit',
        reasons: [],
        params: null,
        purpose: null,
        requestedTtl: null,
        at: now,
        intent: 'order_status',
        subject: 'user-1',
        taskAgeS: 0,
        denialsInTask: 0,
      };
      const lease = { id: uuidv7(now), credentialKind: 'jwt', issuedAt: now, expiresAt: now + ttl };
      expect(await ledger.recordPermit(decision, lease, 'order_status', {})).toBe(true);
      ids[name] = lease.id;
    }
    await db().transaction((tx) => new LeaseStore(db()).revokeWhere(tx, 'lease', ids.revoked, 'revoked_by_admin'));
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // the 'expired' lease falls due by the clock
  });

  it('findMany answers the rows find answers, by id, and leaves unknown ids out', async () => {
    const store = new LeaseStore(db());
    const all = [ids.active, ids.revoked, ids.expired, ids.unknown];
    const many = await store.findMany(all);
    for (const id of all) expect(many.get(id)).toEqual(await store.find(id));
    expect([...many.keys()].sort()).toEqual([ids.active, ids.revoked, ids.expired].sort());
    expect(many.get(ids.expired)?.state).toBe('expired');
    expect(many.get(ids.revoked)?.state).toBe('revoked');
    expect((await store.findMany([])).size).toBe(0);
  });

  it('concurrent reads share one statement after the first, each caller answered its own lease', async () => {
    const { sql, sent } = counted(db());
    const reads = new BatchedLeaseReads(new LeaseStore(sql));
    const asked = [ids.active, ids.revoked, ids.expired, ids.unknown, ids.active, ids.revoked];
    const answers = await Promise.all(asked.map((id) => reads.find(id)));
    expect(answers.map((lease) => lease?.state)).toEqual(['active', 'revoked', 'expired', undefined, 'active', 'revoked']);
    expect(answers.map((lease) => lease?.id)).toEqual([ids.active, ids.revoked, ids.expired, undefined, ids.active, ids.revoked]);
    expect(sent).toEqual(['tollgate_lease_find', 'tollgate_lease_find_many']);
  });

  it('a task that ended reads its live leases revoked at once, by find and by findMany, before their rows are rewritten', async () => {
    const store = new LeaseStore(db());
    const tasks = new TaskStore(db());
    // The leases' own rows are left as they are: the window between the task's end and their revocation.
    await db().transaction((tx) => tasks.end(tx, taskId, 'completed', 'task_completed', true));
    const all = [ids.active, ids.revoked, ids.expired];
    const many = await store.findMany(all);
    expect(all.map((id) => many.get(id)?.state)).toEqual(['revoked', 'revoked', 'expired']);
    expect((await store.find(ids.active))?.state).toBe('revoked');
    const raw = await db().query<{ state: string }>('SELECT state FROM leases WHERE id = $1', [ids.active]);
    expect(raw.rows[0]!.state).toBe('active');
    // The pending revocation is taken once: a second taker (the sweeper on another replica) gets nothing.
    const taken = await db().transaction(async (tx) => [
      await tasks.takePendingLeases(tx, taskId),
      await tasks.takePendingLeases(tx, taskId),
    ]);
    expect(taken).toEqual(['completed', undefined]);
    // Taken without revoking the rows (never done: the taker revokes in the same transaction), the
    // lease still reads revoked: its task is not active, whatever the flag says.
    expect((await store.find(ids.active))?.state).toBe('revoked');
    await db().query(`UPDATE tasks SET state = 'active', ended_at = NULL, end_reason = NULL WHERE id = $1`, [taskId]);
    expect((await store.find(ids.active))?.state).toBe('active');
  });

  it('a revocation committed before a read is asked is what that read sees', async () => {
    const store = new LeaseStore(db());
    const reads = new BatchedLeaseReads(store);
    const before = await Promise.all([reads.find(ids.active), reads.find(ids.active)]);
    expect(before.map((lease) => lease?.state)).toEqual(['active', 'active']);
    await db().transaction((tx) => store.revokeWhere(tx, 'task', taskId, 'task_completed'));
    const after = await Promise.all([reads.find(ids.active), reads.find(ids.revoked), reads.find(ids.active)]);
    expect(after.map((lease) => lease?.state)).toEqual(['revoked', 'revoked', 'revoked']);
  });
});
