import { beforeAll, expect, it } from 'vitest';
import { describeOnBothBackends } from '../../test/support/backends.js';
import { WorkloadStore } from '../identity/workload-store.js';
import { TaskStore } from './task-store.js';

describeOnBothBackends('TaskStore contract', ({ db, kind }) => {
  let store: TaskStore;
  beforeAll(async () => {
    store = new TaskStore(db());
    const workloads = new WorkloadStore(db());
    await workloads.put('bot', { jwks: { keys: [] } }, undefined, null);
    await workloads.put('bot-off', { jwks: { keys: [] } }, false, null);
    await workloads.put('bot-kill', { jwks: { keys: [] } }, undefined, null);
  });
  const open = (workloadId = 'bot', ttl = 600, context: Record<string, unknown> = {}) =>
    db().transaction((tx) => store.insert(tx, { workloadId, intent: 'order_status', subject: 'user:ünï', context, ttl }));

  it('opens a task and reads it back: unicode subject, JSON context, expiry exactly ttl after creation', async () => {
    const context = { ticket: 'ÆØÅ-42 ☃', nested: { n: 1.5, list: [true, null, 'x'] } };
    const task = await open('bot', 600, context);
    expect(task).toMatchObject({
      workloadId: 'bot',
      intent: 'order_status',
      subject: 'user:ünï',
      context,
      state: 'active',
      endedAt: null,
      endReason: null,
    });
    expect(task!.expiresAt.getTime() - task!.createdAt.getTime()).toBe(600_000);
    expect(await store.find(task!.id)).toEqual(task);
    expect((await store.events(task!.id)).map((e) => [e.kind, e.intent, e.reason])).toEqual([['opened', 'order_status', null]]);
  });

  it('opens nothing for a disabled or unknown workload', async () => {
    expect(await open('bot-off')).toBeUndefined();
    expect(await open('bot-nobody')).toBeUndefined();
  });

  it('changes intent and ends a task, with its events in order and a task.ended revocation event', async () => {
    const task = (await open())!;
    const changed = await db().transaction((tx) => store.setIntent(tx, task.id, 'remboursement_é'));
    expect(changed.intent).toBe('remboursement_é');
    const ended = await db().transaction((tx) => store.end(tx, task.id, 'completed', 'task_completed'));
    expect(ended).toMatchObject({ state: 'completed', endReason: 'task_completed' });
    expect(ended.endedAt).toBeInstanceOf(Date);
    expect((await store.events(task.id)).map((e) => [e.kind, e.intent, e.reason])).toEqual([
      ['opened', 'order_status', null],
      ['intent_changed', 'remboursement_é', 'journey_changed'],
      ['completed', null, 'task_completed'],
    ]);
    const { rows } = await db().query(`SELECT type, workload_id, reason FROM revocation_events WHERE task_id = $1`, [task.id]);
    expect(rows).toEqual([{ type: 'task.ended', workload_id: 'bot', reason: 'task_completed' }]);
  });

  it('reads an active task past its time as expired, and lets the sweeper claim it', async () => {
    const task = (await open('bot', 0))!;
    expect((await store.find(task.id))?.state).toBe('expired');
    const claimed = await db().transaction((tx) => store.claimExpired(tx, 100));
    expect(claimed).toContain(task.id);
    const { rows } = await db().query<{ state: string }>('SELECT state FROM tasks WHERE id = $1', [task.id]);
    expect(rows[0]!.state).toBe('active');
    await db().transaction((tx) => store.end(tx, task.id, 'expired', 'task_expired'));
    expect(await db().transaction((tx) => store.claimExpired(tx, 100))).not.toContain(task.id);
  });

  it('queues concurrent changes of one task behind its row lock: no change is lost', async () => {
    const task = (await open())!;
    await Promise.all(
      Array.from({ length: 6 }, () =>
        db().transaction(async (tx) => {
          const locked = await store.lock(tx, task.id);
          await new Promise((resolve) => setTimeout(resolve, 2));
          await store.setIntent(tx, task.id, `${locked!.intent}+`);
        }),
      ),
    );
    expect((await store.find(task.id))?.intent).toBe('order_status++++++');
    expect((await store.events(task.id)).filter((e) => e.kind === 'intent_changed')).toHaveLength(6);
  });

  it("revokes every still-active task of a workload (the kill switch), and no one else's", async () => {
    const a = (await open('bot-kill'))!;
    const b = (await open('bot-kill'))!;
    const done = (await open('bot-kill'))!;
    await db().transaction((tx) => store.end(tx, done.id, 'completed', 'task_completed'));
    const other = (await open('bot'))!;
    const revoked = await db().transaction((tx) => store.revokeForWorkload(tx, 'bot-kill'));
    expect(revoked.sort()).toEqual([a.id, b.id].sort());
    expect(await store.find(a.id)).toMatchObject({ state: 'revoked', endReason: 'workload_revoked' });
    expect((await store.find(done.id))?.state).toBe('completed');
    expect((await store.find(other.id))?.state).toBe('active');
    expect((await store.events(b.id)).map((e) => e.kind)).toEqual(['opened', 'revoked']);
  });

  it.runIf(kind === 'postgres')(
    'lets replicas sweep side by side: a claimed task is skipped by the other claimer (SKIP LOCKED)',
    async () => {
      // PGlite is one session, so its transactions never overlap: this case has nothing to show there.
      const tasks = [(await open('bot', 0))!, (await open('bot', 0))!];
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let first: string[] = [];
      const holder = db().transaction(async (tx) => {
        first = await store.claimExpired(tx, 1);
        await held;
      });
      while (first.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      const second = await db().transaction((tx) => store.claimExpired(tx, 100));
      release();
      await holder;
      expect(first).toHaveLength(1);
      expect(second).not.toContain(first[0]);
      expect([...first, ...second]).toEqual(expect.arrayContaining(tasks.map((t) => t.id)));
    },
  );
});
