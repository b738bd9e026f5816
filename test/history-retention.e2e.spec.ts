import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureHistoryPartitions } from '../libs/db/index.js';
import type { Database } from '../libs/db/index.js';
import { Conflict, InvalidRequest } from '../libs/errors/index.js';
import { uuidv7 } from '../libs/ids/index.js';
import { BACKENDS, backendCovered } from './support/backends.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { call } from './support/http.js';
import { linkAuditChain, putBoundary, registerBot, type Bot } from './support/scenario.js';

/**
 * History retention (issue 15): leases, decisions and audit events in monthly partitions; a prune
 * drops whole months, refuses while something in them is alive or still needed, and leaves the
 * audit chain verifiable from an anchor; review queries return the kept history. On both backends.
 *
 * "Old" history is written straight into a past month's partition (ids are UUIDv7 of that month).
 * Its audit events get a low writer xid, as events written back then would have: the chain's order
 * is (xid, seq), and history from a past month comes before anything the broker wrote today.
 */
const SEPTEMBER = Date.UTC(2026, 8, 15, 12);
const OCTOBER = Date.UTC(2026, 9, 15, 12);

for (const kind of BACKENDS) {
  describe.skipIf(!backendCovered(kind))(`history retention [${kind}]`, () => {
    let broker: TestBroker;
    let bot: Bot;
    let db: Database;
    let reviewerKey: string;
    let taskId: string;
    let oldDecision: string;
    let oldLease: string;
    let oldApproval: string;
    const oldEvents: string[] = [];
    const prune = (before: string) => broker.app.broker.retention.prune(before, 'test');
    const read = (path: string) => call(broker.url, 'GET', path, { token: reviewerKey });
    const partitions = async (): Promise<string[]> =>
      (
        await db.query<{ name: string }>(
          `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent IN ('leases'::regclass, 'decisions'::regclass, 'audit_events'::regclass, 'audit_links'::regclass) ORDER BY 1`,
        )
      ).rows.map((r) => r.name);
    const counts = async () =>
      (
        await db.query<{ leases: number; decisions: number; events: number; approvals: number; anchors: number }>(
          `SELECT (SELECT count(*) FROM leases)::int AS leases, (SELECT count(*) FROM decisions)::int AS decisions,
                  (SELECT count(*) FROM audit_events)::int AS events, (SELECT count(*) FROM approvals)::int AS approvals,
                  (SELECT count(*) FROM audit_chain_anchors)::int AS anchors`,
        )
      ).rows[0]!;
    const oldLeaseRow = (id: string, decisionId: string, state: string, expiresIn: string) =>
      db.query(
        `INSERT INTO leases (id, task_id, workload_id, boundary_id, boundary_version, decision_id, action, credential_kind, issued_at, expires_at, state)
         VALUES ($1, $2, 'chatbot', 'crm-orders', 1, $3, 'orders:read', 'jwt', now() - interval '2 hours', now() + $4::interval, $5)`,
        [id, taskId, decisionId, expiresIn, state],
      );

    beforeAll(async () => {
      broker = await startBroker({ kind });
      db = broker.app.broker.db;
      await putBoundary(broker, 'crm-orders');
      bot = await registerBot(broker);
      reviewerKey = (await call(broker.url, 'POST', '/v1/admin/api-keys', { token: broker.adminKey, json: { role: 'reviewer' } })).body
        .key as string;
      taskId = await bot.openTask();

      // September's history: a permit and its (revoked) lease, a pending decision and its closed
      // approval, three audit events; October's partition exists too, empty for now.
      await db.query(`SELECT tollgate_history_partition('2026-09-01'), tollgate_history_partition('2026-10-01')`);
      oldDecision = uuidv7(SEPTEMBER);
      oldLease = uuidv7(SEPTEMBER + 1);
      const pending = uuidv7(SEPTEMBER + 2);
      oldApproval = uuidv7(SEPTEMBER + 3);
      const decision = `INSERT INTO decisions (id, task_id, workload_id, boundary_id, boundary_version, action, outcome, at)
                        VALUES ($1, $2, 'chatbot', 'crm-orders', 1, 'orders:read', $3, now())`;
      await db.query(decision, [oldDecision, taskId, 'permit']);
      await db.query(decision, [pending, taskId, 'pending']);
      await oldLeaseRow(oldLease, oldDecision, 'revoked', '1 hour');
      await db.query(
        `INSERT INTO approvals (id, task_id, workload_id, boundary_id, boundary_version, action, params_hash, intent, status, decision_id, requested_at, expires_at, decided_at, decided_by, ttl)
         VALUES ($1, $2, 'chatbot', 'crm-orders', 1, 'orders:read', 'h', 'order_status', 'denied', $3, now() - interval '1 hour', now() + interval '1 hour', now(), 'admin', 60)`,
        [oldApproval, taskId, pending],
      );
      for (let i = 0; i < 3; i++) oldEvents.push(uuidv7(SEPTEMBER + 10 + i));
      await db.query(
        `INSERT INTO audit_events (id, kind, actor, task_id, xid) SELECT id, 'task.opened', 'system:test', $2, '3'::xid8 FROM unnest($1::uuid[]) id`,
        [oldEvents, taskId],
      );
      // Today's history, through the broker.
      for (let i = 0; i < 2; i++)
        expect((await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' })).status).toBe(201);
      await linkAuditChain(broker);
      const verified = await read('/v1/audit/verify');
      expect(verified.body).toMatchObject({ ok: true, unchained: 0 });
    });
    afterAll(async () => {
      await broker?.close();
    });

    it('refuses bad input and a month not over yet, naming the flag, and changes nothing', async () => {
      const [parts, before] = [await partitions(), await counts()];
      const thisMonth = (await db.query<{ m: string }>(`SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM') AS m`)).rows[0]!.m;
      const next = (await db.query<{ m: string }>(`SELECT to_char(now() AT TIME ZONE 'UTC' + interval '1 month', 'YYYY-MM') AS m`)).rows[0]!
        .m;
      for (const hostile of [
        '2026-13',
        '2026-00',
        '2026-9',
        '26-09',
        ' 2026-09',
        '2026-09\n',
        '2026-09\0',
        '２０２６-０９',
        '2026-09-01',
        "2026-09'; DROP TABLE leases; --",
        '',
        '\ud800',
        next,
      ]) {
        const refused = await prune(hostile).catch((error: unknown) => error);
        expect(refused, JSON.stringify(hostile)).toBeInstanceOf(InvalidRequest);
        expect((refused as InvalidRequest).description).toMatch(/--before/);
      }
      expect(await partitions()).toEqual(parts);
      expect(await counts()).toEqual(before);
      expect(parts).toContain(`leases_y${thisMonth.replace('-', 'm')}`);
    });

    it('refuses while a lease of the month is alive, or waits on its source, and changes nothing', async () => {
      const [parts, before] = [await partitions(), await counts()];
      const live = uuidv7(SEPTEMBER + 100);
      await oldLeaseRow(live, oldDecision, 'active', '1 hour');
      await expect(prune('2026-10')).rejects.toThrow(/1 lease\(s\) of 2026-09 are not over/);
      await db.query(`UPDATE leases SET state = 'revoke_failed' WHERE id = $1`, [live]);
      await expect(prune('2026-10')).rejects.toBeInstanceOf(Conflict);
      // An expired JWT lease is over (expiry without rewrites): it does not hold its month back.
      await db.query(`UPDATE leases SET state = 'active', expires_at = now() - interval '1 minute' WHERE id = $1`, [live]);
      expect(await partitions()).toEqual(parts);
      expect(await counts()).toEqual({ ...before, leases: before.leases + 1 });
    });

    it('refuses while a kept lease refers to a decision of the month, or an approval of it is open', async () => {
      const [parts, before] = [await partitions(), await counts()];
      const kept = uuidv7();
      await oldLeaseRow(kept, oldDecision, 'revoked', '1 hour');
      await expect(prune('2026-10')).rejects.toThrow(/a kept lease still refers to a decision of 2026-09/);
      await db.query('DELETE FROM leases WHERE id = $1', [kept]);
      const open = uuidv7(SEPTEMBER + 200);
      const pending = uuidv7(SEPTEMBER + 201);
      await db.query(
        `INSERT INTO decisions (id, task_id, workload_id, boundary_id, boundary_version, action, outcome, at)
         VALUES ($1, $2, 'chatbot', 'crm-orders', 1, 'orders:read', 'pending', now())`,
        [pending, taskId],
      );
      await db.query(
        `INSERT INTO approvals (id, task_id, workload_id, boundary_id, boundary_version, action, params_hash, intent, status, decision_id, requested_at, expires_at, ttl)
         VALUES ($1, $2, 'chatbot', 'crm-orders', 1, 'orders:read', 'h', 'order_status', 'pending', $3, now(), now() + interval '1 hour', 60)`,
        [open, taskId, pending],
      );
      await expect(prune('2026-10')).rejects.toThrow(/1 approval\(s\) asked for in 2026-09 are still open/);
      await db.query(`UPDATE approvals SET status = 'denied', decided_at = now(), decided_by = 'admin' WHERE id = $1`, [open]);
      expect(await partitions()).toEqual(parts);
      expect(await counts()).toEqual({ ...before, decisions: before.decisions + 1, approvals: before.approvals + 1 });
    });

    it('refuses a month whose audit events are not linked yet, or sit after kept ones in the chain', async () => {
      const [parts, before] = [await partitions(), await counts()];
      // Written today with an October id: unlinked at first, then linked after today's events.
      await db.query(`INSERT INTO audit_events (id, kind, actor) VALUES ($1, 'task.opened', 'system:test')`, [uuidv7(OCTOBER)]);
      await expect(prune('2026-11')).rejects.toThrow(/audit events of 2026-10 are not linked into the chain yet/);
      await linkAuditChain(broker);
      await expect(prune('2026-11')).rejects.toThrow(/a kept audit event comes before the last event of the months to drop/);
      expect(await partitions()).toEqual(parts);
      expect(await counts()).toEqual({ ...before, events: before.events + 1 });
    });

    it('drops only the months before the cutoff; the chain verifies from its anchor; review queries return the kept history', async () => {
      const before = await counts();
      const chainBefore = (await read('/v1/audit/verify')).body as { verified: number; ok: boolean };
      expect(chainBefore.ok).toBe(true);
      const lastOld = (
        await db.query<{ seq: string; hash: string }>(
          `SELECT seq::text AS seq, hash FROM audit_links WHERE event_id = ANY($1::uuid[]) ORDER BY xid DESC, seq DESC LIMIT 1`,
          [oldEvents],
        )
      ).rows[0]!;

      const report = await prune('2026-10');
      expect(report.partitions).toEqual(['leases_y2026m09', 'decisions_y2026m09', 'audit_events_y2026m09', 'audit_links_y2026m09']);
      expect(report).toMatchObject({ before: '2026-10', leases: 2, decisions: 3, auditEvents: 3, approvals: 2 });
      expect(report.anchor).toMatchObject(lastOld);
      const parts = await partitions();
      expect(parts.filter((p) => p.includes('2026m09'))).toEqual([]);
      expect(parts).toEqual(expect.arrayContaining(['leases_y2026m10', 'leases_default', 'audit_events_y2026m10', 'audit_links_y2026m10']));
      expect(await counts()).toEqual({
        leases: before.leases - 2,
        decisions: before.decisions - 3,
        events: before.events - 3 + 1, // the history.pruned event
        approvals: before.approvals - 2,
        anchors: 1,
      });

      await linkAuditChain(broker);
      const verified = (await read('/v1/audit/verify')).body as Record<string, unknown>;
      expect(verified).toMatchObject({ ok: true, unchained: 0, anchor: lastOld, verified: chainBefore.verified - 3 + 1 });

      // Review queries across the partitions that are left.
      const leases = (await read(`/v1/leases?task=${taskId}&limit=100`)).body as { items: { lease_id?: string; id?: string }[] };
      const leaseIds = leases.items.map((l) => l.lease_id ?? l.id);
      expect(leaseIds).toHaveLength(2);
      expect(leaseIds).not.toContain(oldLease);
      const decisions = (await read(`/v1/decisions?task=${taskId}&limit=100`)).body as { items: { decision_id?: string; id?: string }[] };
      expect(decisions.items.map((d) => d.decision_id ?? d.id)).not.toContain(oldDecision);
      expect(decisions.items.length).toBeGreaterThanOrEqual(2);
      const pruned = (await read('/v1/audit?kind=history.pruned')).body as { items: { actor: string; data: Record<string, unknown> }[] };
      expect(pruned.items).toHaveLength(1);
      expect(pruned.items[0]!.data).toMatchObject({ before: '2026-10', anchor: lastOld, audit_events: 3 });
      expect((await read(`/v1/tasks/${taskId}`)).status).toBeLessThan(500);

      // The chain goes on: new events link after the kept ones and verify.
      expect((await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' })).status).toBe(201);
      await linkAuditChain(broker);
      expect((await read('/v1/audit/verify')).body).toMatchObject({ ok: true, anchor: lastOld });
      // Nothing left before October: a second prune with the same cutoff drops nothing.
      expect((await prune('2026-10')).partitions).toEqual([]);
    });

    it('makes next months partitions from several replicas at once: no error, each once', async () => {
      const madeAhead = async (): Promise<string[]> =>
        (
          await db.query<{ name: string }>(
            `SELECT t || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + i * interval '1 month', '"_y"YYYY"m"MM') AS name
               FROM generate_series(3, 6) i, unnest(ARRAY['leases', 'audit_events', 'audit_links', 'decisions']) t`,
          )
        ).rows.map((r) => r.name);
      const missing = async () =>
        (
          await db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM generate_series(0, 6) i, unnest(ARRAY['decisions', 'leases', 'audit_events', 'audit_links']) t
              WHERE to_regclass(t || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + i * interval '1 month', '"_y"YYYY"m"MM')) IS NULL`,
          )
        ).rows[0]!.n;
      expect(await missing()).toBe(16);
      // A second broker on the same PostgreSQL database is a second replica; PGlite has one
      // session per process, so there the calls queue on it.
      const other = kind === 'postgres' ? await broker.restart() : undefined;
      const second = other?.app.broker.db ?? db;
      try {
        // Several rounds: a session that waited for the lock must see what its holder made.
        for (let round = 0; round < 4; round++) {
          if (round > 0) {
            for (const made of await madeAhead()) {
              if (made.startsWith('decisions')) await db.query(`ALTER TABLE decisions DETACH PARTITION ${made}`);
              await db.query(`DROP TABLE ${made}`);
            }
            expect(await missing()).toBe(16);
          }
          const made = await Promise.all([db, second, db, second, db].map((each) => ensureHistoryPartitions(each, 6)));
          expect(made.reduce((a, b) => a + b, 0)).toBe(16);
          expect(await missing()).toBe(0);
        }
        // The app's own duty asks too: nothing left to make.
        expect(await broker.app.broker.retention.ensurePartitions()).toBe(0);
      } finally {
        await other?.stop();
      }
    });

    const cli = resolve(import.meta.dirname, '../dist/apps/broker/main.js');
    it.skipIf(kind !== 'postgres' || !existsSync(cli))(
      'tollgate-broker history prune: usage and refusals exit non-zero, a prune prints what went',
      () => {
        const env = { ...process.env, DATABASE_URL: broker.db.databaseUrl!, TOLLGATE_KEK: broker.kek, TOLLGATE_LOG_LEVEL: 'error' };
        const run = (...args: string[]) =>
          spawnSync(process.execPath, [cli, 'history', ...args], { env, encoding: 'utf8', timeout: 60_000 });
        const usage = run('prune');
        expect(usage.status, usage.stderr).toBe(2);
        expect(usage.stderr).toMatch(/prune --before YYYY-MM/);
        const bad = run('prune', '--before', '2026-13');
        expect(bad.status, bad.stderr).toBe(2);
        expect(bad.stderr).toMatch(/refused: --before must be a month/);
        const refused = run('prune', '--before', '2026-11');
        expect(refused.status, refused.stderr).toBe(1);
        expect(refused.stderr).toMatch(/refused: a kept audit event comes before/);
        const nothing = run('prune', '--before', '2026-10');
        expect(nothing.stderr).toBe('');
        expect(nothing.status).toBe(0);
        expect(nothing.stdout).toMatch(/nothing before 2026-10/);
      },
      180_000,
    );
  });
}
