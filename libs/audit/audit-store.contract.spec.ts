import { randomUUID } from 'node:crypto';
import { beforeAll, expect, it } from 'vitest';
import { describeOnBothBackends } from '../../test/support/backends.js';
import { appendAudit } from './audit.js';
import { AuditChainer } from './chainer.js';
import { GENESIS_HASH, verifyChain, type LinkedEvent } from './chain.js';
import { AuditStore, type ChainPosition } from './audit-store.js';

describeOnBothBackends('AuditStore contract', ({ db, kind }) => {
  let store: AuditStore;
  let chainer: AuditChainer;
  const taskA = randomUUID();
  const taskB = randomUUID();
  beforeAll(async () => {
    store = new AuditStore(db());
    chainer = new AuditChainer(db(), store, () => {}, 3);
    await db().query(`INSERT INTO workloads (id, jwks) VALUES ('bot-b', '{"keys":[]}')`);
    await db().query(
      `INSERT INTO tasks (id, workload_id, intent, subject, state, created_at, expires_at) VALUES ($1, 'bot-b', 'order_status', 'user:1', 'active', now(), now() + interval '1 hour')`,
      [taskB],
    );
  });

  /**
   * Runs chainer passes until nothing is left unlinked. On a shared PostgreSQL server another
   * database's transaction still in flight holds xmin back for a moment (xids are cluster-wide), so
   * one pass may link nothing yet: the broker's chainer simply runs again a second later.
   */
  async function chainAll(): Promise<number> {
    let linked = 0;
    for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
      const pass = await chainer.runOnce();
      expect(pass.leader).toBe(true);
      linked += pass.linked;
      if (pass.unlinked === 0) return linked;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('audit events stayed unlinked for 20 s');
  }

  /** Every linked event, read page by page as the verifier does. */
  async function wholeChain(pageSize = 2): Promise<LinkedEvent[]> {
    const events: LinkedEvent[] = [];
    let after: ChainPosition | undefined;
    for (;;) {
      const page = await store.chainPage(after, pageSize);
      events.push(...page);
      if (page.length < pageSize) return events;
      after = page.at(-1);
    }
  }

  it('reads events back newest first with their JSON data (unicode, nesting) intact and unlinked', async () => {
    await appendAudit(db(), {
      kind: 'task.opened',
      actor: 'workload:bot-a',
      taskId: taskA,
      data: { intent: 'remboursement_é', note: '☃ ünï \u2028', n: [1, { x: null }] },
    });
    await appendAudit(
      db(),
      { kind: 'credential.permit', actor: 'workload:bot-a', taskId: taskA, data: { boundary: 'crm' } },
      { kind: 'task.opened', actor: 'workload:bot-b', taskId: taskB },
    );
    await appendAudit(db(), { kind: 'boundary.put', actor: 'admin', data: { id: 'crm' } });
    const listed = await store.list({ limit: 10 });
    expect(listed.map((e) => e.kind)).toEqual(['boundary.put', 'task.opened', 'credential.permit', 'task.opened']);
    expect(listed.map((e) => Number(e.seq))).toEqual([...listed.map((e) => Number(e.seq))].sort((a, b) => b - a));
    expect(listed[3]!.data).toEqual({ intent: 'remboursement_é', note: '☃ ünï \u2028', n: [1, { x: null }] });
    expect(listed.every((e) => e.hash === null && e.prevHash === null)).toBe(true);
    expect(listed[0]!.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(await store.countUnlinked()).toBe(4);
  });

  it('filters by task, kind, workload (actor or task owner), time and cursor', async () => {
    expect((await store.list({ task: taskA, limit: 10 })).map((e) => e.kind)).toEqual(['credential.permit', 'task.opened']);
    expect((await store.list({ kind: 'task.opened', limit: 10 })).map((e) => e.taskId)).toEqual([taskB, taskA]);
    expect((await store.list({ workload: 'bot-b', limit: 10 })).map((e) => e.taskId)).toEqual([taskB]);
    expect((await store.list({ workload: 'bot-a', limit: 10 })).map((e) => e.kind)).toEqual(['credential.permit', 'task.opened']);
    expect(await store.list({ since: new Date(Date.now() + 60_000), limit: 10 })).toEqual([]);
    expect(await store.list({ until: new Date(Date.now() - 3_600_000), limit: 10 })).toHaveLength(0);
    const [newest] = await store.list({ limit: 1 });
    expect((await store.list({ cursor: newest!.seq, limit: 10 })).map((e) => e.kind)).toEqual([
      'task.opened',
      'credential.permit',
      'task.opened',
    ]);
    expect((await store.ofTask(taskA, ['task.opened', 'credential.permit'], 10)).map((e) => e.kind)).toEqual([
      'task.opened',
      'credential.permit',
    ]);
    expect(await store.ofTask(taskA, ['task.completed'], 10)).toEqual([]);
  });

  it('links every committed event into one chain from genesis, in batches, that verifies', async () => {
    expect(await chainAll()).toBe(4);
    const chain = await wholeChain();
    expect(chain).toHaveLength(4);
    expect(chain[0]!.prevHash).toBe(GENESIS_HASH);
    expect(verifyChain(chain)).toMatchObject({ ok: true, verified: 4, head: { hash: chain[3]!.hash } });
    expect(await store.hashExists(chain[2]!.hash)).toBe(true);
    expect(await store.hashExists('f'.repeat(64))).toBe(false);
    const head = await db().transaction((tx) => store.head(tx));
    expect(head).toMatchObject({ hash: chain[3]!.hash, seq: chain[3]!.seq });
  });

  it('links an event once: a second link or a second successor is refused whole, and both tables refuse edits', async () => {
    const [first, second] = (await wholeChain()) as (LinkedEvent & ChainPosition)[];
    const again = { id: first!.id, xid: first!.xid, seq: first!.seq, prevHash: GENESIS_HASH, hash: 'e'.repeat(64) };
    await expect(db().transaction((tx) => store.link(tx, [again]))).rejects.toThrow();
    // A fork: an event not linked yet, named as a second successor of the first.
    await appendAudit(db(), { kind: 'boundary.put', actor: 'admin', data: { id: 'fork' } });
    const [fresh] = await store.list({ kind: 'boundary.put', limit: 1 });
    const fork = { id: fresh!.id, xid: '1', seq: '1', prevHash: first!.hash, hash: 'e'.repeat(64) };
    await expect(db().transaction((tx) => store.link(tx, [fork]))).rejects.toThrow();
    expect(await db().transaction((tx) => store.link(tx, []))).toBe(0);
    expect(await store.countUnlinked()).toBe(1);
    for (const statement of [
      `UPDATE audit_events SET actor = 'someone else' WHERE id = $1`,
      `DELETE FROM audit_events WHERE id = $1`,
      `UPDATE audit_links SET hash = repeat('f', 64) WHERE event_id = $1`,
      `DELETE FROM audit_links WHERE event_id = $1`,
    ]) {
      await expect(db().query(statement, [second!.id]), statement).rejects.toThrow(/append-only/);
    }
    await expect(db().query('TRUNCATE audit_links')).rejects.toThrow(/append-only/);
    expect(verifyChain(await wholeChain()).ok).toBe(true);
    expect(await chainAll()).toBe(1);
  });

  it('extends the chain from its head, and concurrent passes never fork it', async () => {
    for (let i = 0; i < 7; i++) await appendAudit(db(), { kind: 'credential.deny', actor: 'workload:bot-a', taskId: taskA, data: { i } });
    const passes = await Promise.all([chainer.runOnce(), chainer.runOnce(), chainer.runOnce()]);
    expect((await chainAll()) + passes.reduce((sum, p) => sum + p.linked, 0)).toBe(7);
    const chain = await wholeChain(5);
    expect(chain).toHaveLength(12);
    expect(verifyChain(chain)).toMatchObject({ ok: true, verified: 12 });
    expect(await store.countUnlinked()).toBe(0);
  });

  it.runIf(kind === 'postgres')('elects one chainer: a second transaction does not get the lock while the first holds it', async () => {
    // PGlite is one session: its transactions never overlap, so there is never a second chainer.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked: boolean | undefined;
    const holder = db().transaction(async (tx) => {
      locked = await store.lockChain(tx);
      await held;
    });
    while (locked === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
    const other = await db().transaction((tx) => store.lockChain(tx));
    release();
    await holder;
    expect([locked, other]).toEqual([true, false]);
    expect(await db().transaction((tx) => store.lockChain(tx))).toBe(true);
  });

  it.runIf(kind === 'postgres')('holds back events behind a writer still in flight, then links them in xid order', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let written = false;
    const slow = db().transaction(async (tx) => {
      await appendAudit(tx, { kind: 'task.completed', actor: 'workload:bot-a', taskId: taskA, data: { slow: true } });
      written = true;
      await held;
    });
    while (!written) await new Promise((resolve) => setTimeout(resolve, 5));
    await appendAudit(db(), { kind: 'task.completed', actor: 'workload:bot-b', taskId: taskB, data: { fast: true } });
    expect((await chainer.runOnce()).linked).toBe(0);
    release();
    await slow;
    expect(await chainAll()).toBe(2);
    const chain = await wholeChain(20);
    expect(chain.slice(-2).map((e) => (e as LinkedEvent & { data: Record<string, unknown> }).data)).toEqual([
      { slow: true },
      { fast: true },
    ]);
    expect(verifyChain(chain).ok).toBe(true);
  });
});
