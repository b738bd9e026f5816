import { randomUUID } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventHash } from '../libs/audit/chain.js';
import { CHECKPOINT_TYP } from '../libs/audit/checkpoint.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { DataSource } from 'typeorm';
import { migrations } from '../migrations/index.js';
import { AuditChain1764116340000 } from '../migrations/1764116340000-audit-chain.js';
import { connect, freshDatabase } from './support/database.js';
import { call } from './support/http.js';
import { linkAuditChain, putBoundary, registerBot, type Bot } from './support/scenario.js';
import { assertion } from './support/workload.js';

/**
 * The audit chain on a real PostgreSQL (two brokers share it): activity from concurrent requests
 * ends up in one unbroken chain; the database refuses changes; tampering done as a superuser who
 * switches the trigger off is found; checkpoints verify with the published keys.
 */
let broker: TestBroker;
let bot: Bot;
let reviewerKey: string;
let resourceServerKey: string;
/** A superuser's own connection: to look at rows, and to tamper as an attacker with database access would. */
let su: pg.Client;

beforeAll(async () => {
  broker = await startBroker();
  if (broker.db.kind !== 'postgres') return;
  await putBoundary(broker, 'crm-orders');
  bot = await registerBot(broker);
  const key = async (body: Record<string, unknown>) =>
    (await call(broker.url, 'POST', '/v1/admin/api-keys', { token: broker.adminKey, json: body })).body.key as string;
  reviewerKey = await key({ role: 'reviewer' });
  resourceServerKey = await key({ role: 'resource_server', audience: 'https://crm.acme.test' });
  su = await connect(broker.db.databaseUrl!);
});
afterAll(async () => {
  await su?.end();
  await broker?.close();
});

const read = <T = any>(path: string, token = reviewerKey) => call<T>(broker.url, 'GET', path, { token });
const chainAll = () => linkAuditChain(broker);
/** One pass, whatever is in flight. */
const onePass = () => broker.app.broker.auditChainer.runOnce();

async function verify() {
  const response = await read('/v1/audit/verify');
  expect(response.status).toBe(200);
  return response.body;
}

/** Every event in chain order, as stored, with its link (audit_links) when it has one. */
async function chainRows(): Promise<{ id: string; seq: string; prev_hash: string | null; hash: string | null }[]> {
  const { rows } = await su.query(
    `SELECT a.id, a.seq::text AS seq, l.prev_hash, l.hash FROM audit_events a LEFT JOIN audit_links l ON l.event_id = a.id ORDER BY a.xid, a.seq`,
  );
  return rows;
}

/** Runs statements as a superuser who turned the append-only triggers of events and links off. */
async function asAttacker(...statements: [string, unknown[]][]): Promise<void> {
  await su.query('BEGIN');
  try {
    await su.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
    await su.query('ALTER TABLE audit_links DISABLE TRIGGER audit_links_append_only');
    for (const [statement, params] of statements) {
      // Each statement gets the parameters it names ($1..$n).
      const used = Math.max(0, ...[...statement.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
      await su.query(statement, params.slice(0, used));
    }
    await su.query('ALTER TABLE audit_links ENABLE TRIGGER audit_links_append_only');
    await su.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
    await su.query('COMMIT');
  } catch (error) {
    await su.query('ROLLBACK');
    throw error;
  }
}

/** Some of everything: tasks opened, permits, denials, completions, from `parallel` requests at once. */
async function activity(url: string, parallel: number, rounds: number): Promise<number[]> {
  const statuses: number[] = [];
  // The workload's assertion is addressed to the broker it calls.
  const headers = { token: await assertion(bot.id, bot.key, url) };
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let i = 0; i < rounds; i++) {
        const task = await call(url, 'POST', '/v1/tasks', { ...headers, json: { intent: 'order_status', subject: 'user-42' } });
        statuses.push(task.status);
        const taskId = task.body.task_id as string;
        for (const action of ['orders:read', 'orders:nope', 'orders:read']) {
          statuses.push(
            (await call(url, 'POST', `/v1/tasks/${taskId}/credentials`, { ...headers, json: { boundary: 'crm-orders', action } })).status,
          );
        }
        statuses.push((await call(url, 'POST', `/v1/tasks/${taskId}/complete`, headers)).status);
      }
    }),
  );
  return statuses;
}

describe('the audit chain', () => {
  it('links concurrent activity on two brokers sharing the database into one unbroken chain', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    const other = await broker.restart();
    try {
      let running = true;
      // Both brokers' chainers run flat out during the activity: the advisory lock lets one link at a time.
      const chainers = [broker, other].map(async (b) => {
        const passes = { leader: 0, skipped: 0 };
        while (running) {
          const pass = await b.app.broker.auditChainer.runOnce();
          passes[pass.leader ? 'leader' : 'skipped']++;
        }
        return passes;
      });
      const statuses = (await Promise.all([activity(broker.url, 6, 4), activity(other.url, 6, 4)])).flat();
      running = false;
      await Promise.all(chainers);
      expect(statuses.filter((s) => s === 201)).toHaveLength(2 * 6 * 4 * 3);
      expect(statuses.filter((s) => s === 403)).toHaveLength(2 * 6 * 4);
      expect(statuses.filter((s) => s === 200)).toHaveLength(2 * 6 * 4);
    } finally {
      await other.stop();
    }
    await chainAll();
    const rows = await chainRows();
    expect(rows.length).toBeGreaterThan(2 * 6 * 4 * 5);
    expect(rows.every((row) => row.hash !== null)).toBe(true);
    // One chain, in (xid, seq) order: each event links to the one before it.
    expect(rows.map((row) => row.prev_hash)).toEqual(['0'.repeat(64), ...rows.slice(0, -1).map((row) => row.hash)]);
    const report = await verify();
    expect(report).toEqual({ ok: true, verified: rows.length, head: { seq: rows.at(-1)!.seq, hash: rows.at(-1)!.hash }, unchained: 0 });
    const metrics = await call<string>(broker.url, 'GET', '/metrics');
    expect(metrics.body).toMatch(/^tollgate_audit_unchained_events 0$/m);
    expect(metrics.body).toMatch(/^tollgate_audit_chained_events_total [1-9]\d*$/m);
  });

  it('leaves events behind a transaction still in flight unlinked, and links them in commit-safe order once it ends', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    await chainAll();
    // A writer that took its xid (and a seq) and has not committed yet.
    const writer = await connect(broker.db.databaseUrl!);
    const slowId = randomUUID();
    try {
      await writer.query('BEGIN');
      // It takes its transaction id first, writes its event last: its xid is older, its seq newer.
      await writer.query('SELECT pg_current_xact_id()');
      // Issuance goes on meanwhile: nothing waits for the chain.
      const taskId = await bot.openTask();
      expect((await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' })).status).toBe(201);
      await writer.query(`INSERT INTO audit_events (id, kind, actor) VALUES ($1, 'task.opened', 'system:test')`, [slowId]);
      const before = await verify();
      expect(await onePass()).toMatchObject({ leader: true, linked: 0 });
      const during = await verify();
      expect(during).toMatchObject({ ok: true, verified: before.verified, head: before.head });
      expect(during.unchained).toBeGreaterThanOrEqual(2);
      await writer.query('COMMIT');
    } finally {
      await writer.end();
    }
    await chainAll();
    const after = await verify();
    expect(after).toMatchObject({ ok: true, unchained: 0 });
    const rows = await chainRows();
    expect(after.verified).toBe(rows.length);
    // The slow event has the newest seq, but its transaction began before the requests made while
    // it was open: it goes before them in the chain, which no event linked earlier had to make room for.
    const { rows: opened } = await su.query(`SELECT id FROM audit_events WHERE kind = 'task.opened' ORDER BY seq DESC LIMIT 2`);
    const order = rows.map((row) => row.id);
    expect(opened[0].id).toBe(slowId);
    expect(order.indexOf(slowId)).toBeLessThan(order.indexOf(opened[1].id));
  });
});

describe('the chainer', () => {
  it('links a backlog in batches, continuing each from the head the last one left', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    await chainAll();
    // 2,500 events in three writer transactions: batches of 1,000 cut across them, and seqs grow a digit.
    for (let i = 0; i < 3; i++) {
      await su.query(
        `INSERT INTO audit_events (id, kind, actor, data) SELECT gen_random_uuid(), 'task.opened', 'system:test', jsonb_build_object('n', g) FROM generate_series(1, $1::int) g`,
        [i < 2 ? 1000 : 500],
      );
    }
    expect(await chainAll()).toBe(2500);
    const rows = await chainRows();
    expect(rows.map((row) => row.prev_hash)).toEqual(['0'.repeat(64), ...rows.slice(0, -1).map((row) => row.hash)]);
    expect(await verify()).toEqual({
      ok: true,
      verified: rows.length,
      head: { seq: rows.at(-1)!.seq, hash: rows.at(-1)!.hash },
      unchained: 0,
    });
  });
});

describe('GET /v1/audit', () => {
  it('lists events newest first, filtered, a page at a time, each hash recomputable from what it shows', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    const taskId = await bot.openTask();
    await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:nope' });
    await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    await chainAll();

    const all = await read(`/v1/audit?task=${taskId}`);
    expect(all.status).toBe(200);
    // Newest first: the task's end commits before its leases' rows are revoked (Tasks.complete).
    expect(all.body.items.map((e: { kind: string }) => e.kind)).toEqual([
      'leases.revoked',
      'task.completed',
      'credential.deny',
      'credential.permit',
      'task.opened',
    ]);
    expect(all.body.next_cursor).toBeNull();
    const seqs = all.body.items.map((e: { seq: string }) => BigInt(e.seq));
    expect([...seqs].sort((a, b) => (a < b ? 1 : -1))).toEqual(seqs);
    for (const event of all.body.items) {
      expect(event).toEqual({
        id: expect.any(String),
        seq: expect.stringMatching(/^\d+$/),
        at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/),
        kind: expect.any(String),
        actor: expect.any(String),
        task_id: taskId,
        lease_id: event.kind === 'credential.permit' ? expect.stringMatching(/^[0-9a-f-]{36}$/) : null,
        data: expect.any(Object),
        prev_hash: expect.stringMatching(/^[0-9a-f]{64}$/),
        hash: expect.stringMatching(/^[0-9a-f]{64}$/),
      });
      // An outside party needs nothing but the API's own output to check an event's hash.
      const { task_id, lease_id, prev_hash, ...rest } = event;
      expect(eventHash(prev_hash, { ...rest, taskId: task_id, leaseId: lease_id })).toBe(event.hash);
    }

    // Pages of two, following next_cursor, give the same events.
    const paged: unknown[] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const page: any = await read(`/v1/audit?task=${taskId}&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      paged.push(...page.body.items);
      cursor = page.body.next_cursor;
    }
    expect(paged).toEqual(all.body.items);

    const denials = await read(`/v1/audit?task=${taskId}&kind=credential.deny`);
    expect(denials.body.items).toHaveLength(1);
    expect(denials.body.items[0].data).toMatchObject({ reasons: ['action_not_allowed'] });

    const byWorkload = await read(`/v1/audit?workload=${bot.id}&limit=1000`);
    expect(byWorkload.body.items.map((e: { id: string }) => e.id)).toEqual(
      expect.arrayContaining(all.body.items.map((e: { id: string }) => e.id)),
    );
    expect((await read(`/v1/audit?workload=nobody`)).body.items).toEqual([]);

    // The completion's events share its transaction's time; the window splits the task's story there.
    const at = all.body.items[0].at as string;
    const ids = (items: { id: string; at: string }[], keep: (e: { at: string }) => boolean = () => true) =>
      items.filter(keep).map((e) => e.id);
    const since = await read(`/v1/audit?task=${taskId}&since=${encodeURIComponent(at)}`);
    expect(ids(since.body.items)).toEqual(ids(all.body.items, (e) => e.at >= at));
    const until = await read(`/v1/audit?task=${taskId}&until=${encodeURIComponent(at)}`);
    expect(ids(until.body.items)).toEqual(ids(all.body.items, (e) => e.at < at));
    expect(since.body.items.length).toBeGreaterThan(0);
    expect(until.body.items.length).toBeGreaterThan(0);
  });

  it('refuses a bad query with a 400 naming the field', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    const cases: [string, string][] = [
      ['limit=0', 'limit'],
      ['limit=1001', 'limit'],
      ['cursor=not-a-cursor', 'cursor'],
      [`cursor=${Buffer.from('00000000-0000-4000-8000-000000000000').toString('base64url')}`, 'cursor'],
      ['kind=task.exploded', 'kind'],
      ['task=42', 'task'],
      ['since=yesterday', 'since'],
      ['boundary=crm-orders', 'boundary'],
    ];
    for (const [query, field] of cases) {
      const response = await read(`/v1/audit?${query}`);
      expect(response.status, query).toBe(400);
      expect(response.body).toMatchObject({ error: 'invalid_request', field });
    }
    for (const path of ['/v1/audit/verify?full=1', '/v1/audit/checkpoint?seq=1']) {
      expect((await read(path)).body).toMatchObject({ error: 'invalid_request' });
    }
  });

  it('is for reviewers and admins: a workload or a resource server may not read it', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    for (const path of ['/v1/audit', '/v1/audit/verify', '/v1/audit/checkpoint']) {
      expect((await read(path)).status, path).toBe(200);
      expect((await read(path, broker.adminKey)).status, path).toBe(200);
      expect((await read(path, await bot.token())).status, path).toBe(401);
      expect((await read(path, resourceServerKey)).status, path).toBe(403);
      expect((await call(broker.url, 'GET', path)).status, path).toBe(401);
    }
  });
});

describe('GET /v1/audit/checkpoint', () => {
  it('signs the verified head with the current signing key, verifiable with the published JWKS', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    await chainAll();
    const head = (await verify()).head;
    const response = await read('/v1/audit/checkpoint');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ checkpoint: expect.any(String), seq: head.seq, hash: head.hash, issued_at: expect.any(String) });
    const jwks = createRemoteJWKSet(new URL(`${broker.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(response.body.checkpoint, jwks, { issuer: broker.url, typ: CHECKPOINT_TYP });
    expect(payload).toEqual({ iss: broker.url, seq: head.seq, hash: head.hash, iat: Date.parse(response.body.issued_at) / 1000 });
    expect(protectedHeader.kid).toBe(broker.app.broker.keys.active.kid);
    // Not an access token: a verifier that expects one refuses it.
    await expect(jwtVerify(response.body.checkpoint, jwks, { typ: 'at+jwt' })).rejects.toThrow();
  });
});

describe('the database', () => {
  it('refuses UPDATE, DELETE and TRUNCATE of audit events, their links and decisions, and a second link', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    await bot.credential(await bot.openTask(), { boundary: 'crm-orders', action: 'orders:nope' });
    await chainAll();
    const linked = (await chainRows()).at(-1)!;
    const refused = async (statement: string, params: unknown[] = []) => {
      await expect(su.query(statement, params), statement).rejects.toThrow(/append-only/);
    };
    await refused(`UPDATE audit_events SET data = '{}' WHERE id = $1`, [linked.id]);
    await refused(`UPDATE audit_links SET hash = $2 WHERE event_id = $1`, [linked.id, 'f'.repeat(64)]);
    await refused(`DELETE FROM audit_links WHERE event_id = $1`, [linked.id]);
    await refused(`DELETE FROM audit_events WHERE id = $1`, [linked.id]);
    await refused('TRUNCATE audit_events');
    await refused('TRUNCATE audit_links');
    await refused(`UPDATE decisions SET outcome = 'permit' WHERE outcome = 'deny'`);
    await refused('DELETE FROM decisions');
    await refused('TRUNCATE decisions CASCADE');

    // An event not linked yet cannot change either; linking it writes a row of audit_links, once.
    const id = randomUUID();
    await su.query(`INSERT INTO audit_events (id, kind, actor) VALUES ($1, 'task.opened', 'system:test')`, [id]);
    await refused(`UPDATE audit_events SET actor = 'admin' WHERE id = $1`, [id]);
    await refused(`UPDATE audit_events SET seq = seq + 1000000 WHERE id = $1`, [id]);
    await refused(`UPDATE audit_events SET data = '{"x": 1}' WHERE id = $1`, [id]);
    await chainAll();
    const { rows } = await su.query(
      `SELECT a.actor, a.seq::text AS seq, l.hash FROM audit_events a JOIN audit_links l ON l.event_id = a.id WHERE a.id = $1`,
      [id],
    );
    expect(rows[0]).toMatchObject({ actor: 'system:test', hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    await expect(
      su.query(`INSERT INTO audit_links SELECT event_id, xid, seq, repeat('a', 64), repeat('b', 64) FROM audit_links WHERE event_id = $1`, [
        id,
      ]),
    ).rejects.toThrow(/duplicate key/);
    expect(await verify()).toMatchObject({ ok: true, head: { seq: rows[0].seq }, unchained: 0 });
  });
});

describe('tampering', () => {
  /** Runs `change` as an attacker (asAttacker), checks, then `undo` the same way. */
  async function tamper(change: string, undo: string, params: unknown[]): Promise<any> {
    await asAttacker([change, params]);
    const report = await verify();
    const checkpoint = await read('/v1/audit/checkpoint');
    await asAttacker([undo, params]);
    const restored = await verify();
    expect(restored.ok).toBe(true);
    expect(restored).not.toHaveProperty('first_broken');
    return { report, checkpoint };
  }

  async function middle() {
    await chainAll();
    const rows = await chainRows();
    expect(rows.length).toBeGreaterThan(10);
    const i = Math.floor(rows.length / 2);
    return { rows, i, row: rows[i]!, next: rows[i + 1]! };
  }

  it('an altered event is found, and no checkpoint is signed over it', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    const { row, i } = await middle();
    const { rows: before } = await su.query(`SELECT data::text AS data FROM audit_events WHERE id = $1`, [row.id]);
    const { report, checkpoint } = await tamper(
      `UPDATE audit_events SET data = data || '{"reasons": []}' WHERE id = $1`,
      `UPDATE audit_events SET data = $2::jsonb WHERE id = $1`,
      [row.id, before[0].data],
    );
    expect(report).toMatchObject({ ok: false, verified: i, first_broken: { seq: row.seq, id: row.id, reason: 'altered' } });
    expect(checkpoint.status).toBe(409);
    expect(checkpoint.body).toMatchObject({ error: 'invalid_request', error_description: expect.stringContaining(`seq ${row.seq}`) });
  });

  it('an altered time or seq is found', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    const { row } = await middle();
    const seq = await tamper(`UPDATE audit_events SET seq = -seq WHERE id = $1`, `UPDATE audit_events SET seq = -seq WHERE id = $1`, [
      row.id,
    ]);
    // A new seq moves the event in chain order, which is what the verifier finds.
    expect(seq.report.first_broken).toEqual({ seq: `-${row.seq}`, id: row.id, reason: 'reordered' });
    const at = await tamper(
      `UPDATE audit_events SET at = at + interval '1 microsecond' WHERE id = $1`,
      `UPDATE audit_events SET at = at - interval '1 microsecond' WHERE id = $1`,
      [row.id],
    );
    expect(at.report.first_broken).toEqual({ seq: row.seq, id: row.id, reason: 'altered' });
  });

  it('a deleted event is found at the event after it', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    const { row, next, i } = await middle();
    await su.query('CREATE TEMP TABLE deleted AS SELECT * FROM audit_events WHERE id = $1', [row.id]);
    const { report } = await tamper(
      `DELETE FROM audit_events WHERE id = $1`,
      `INSERT INTO audit_events SELECT * FROM deleted WHERE id = $1`,
      [row.id],
    );
    expect(report).toMatchObject({ ok: false, verified: i, first_broken: { seq: next.seq, id: next.id, reason: 'missing' } });
  });

  it('an event that sorts before the head but was never linked is found (reordered), and the chainer leaves it', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    const { row } = await middle();
    // What a server whose transaction ids went back writes (restored without pg_resetwal -e): a new
    // event with an old transaction id. The chainer links only what follows the head, so only the
    // verifier can tell; it must not pass over the event in silence.
    const id = `${row.id.slice(0, 24)}fffffffffff0`;
    const copy = `INSERT INTO audit_events (id, at, kind, actor, task_id, lease_id, data, xid)
                    SELECT $2, at, kind, actor, task_id, lease_id, data, xid FROM audit_events WHERE id = $1`;
    await asAttacker([copy, [row.id, id]]);
    try {
      await chainAll();
      const { rows } = await su.query<{ seq: string; linked: boolean }>(
        `SELECT a.seq::text AS seq, EXISTS (SELECT 1 FROM audit_links l WHERE l.event_id = a.id) AS linked FROM audit_events a WHERE a.id = $1`,
        [id],
      );
      expect(rows[0]).toMatchObject({ linked: false });
      const report = await verify();
      expect(report).toMatchObject({ ok: false, first_broken: { seq: rows[0]!.seq, id, reason: 'reordered' } });
      expect((await read('/v1/audit/checkpoint')).status).toBe(409);
    } finally {
      await asAttacker([`DELETE FROM audit_events WHERE id = $1`, [id]]);
    }
    expect(await verify()).toMatchObject({ ok: true, unchained: 0 });
  });

  it('swapped links (events moved) and swapped hashes are found', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    const { row, next, i } = await middle();
    // Moves row's links to next and next's to row (one successor per event: the guards go first).
    const swapLinks = `
      WITH pair AS (SELECT (SELECT prev_hash FROM audit_links WHERE event_id = $1) AS p1, (SELECT hash FROM audit_links WHERE event_id = $1) AS h1,
                           (SELECT prev_hash FROM audit_links WHERE event_id = $2) AS p2, (SELECT hash FROM audit_links WHERE event_id = $2) AS h2)
      UPDATE audit_links l SET prev_hash = CASE WHEN l.event_id = $1 THEN pair.p2 ELSE pair.p1 END, hash = CASE WHEN l.event_id = $1 THEN pair.h2 ELSE pair.h1 END
        FROM pair WHERE l.event_id IN ($1, $2)`;
    // The fork guard is one unique index per month partition of links (history retention): drop them all.
    const guards = (
      await su.query<{ name: string; definition: string }>(
        `SELECT indexname AS name, indexdef AS definition FROM pg_indexes WHERE indexname LIKE 'audit_links%one_successor'`,
      )
    ).rows;
    expect(guards.length).toBeGreaterThan(0);
    for (const guard of guards) await su.query(`DROP INDEX ${guard.name}`);
    try {
      const moved = await tamper(swapLinks, swapLinks, [row.id, next.id]);
      expect(moved.report).toMatchObject({ ok: false, verified: i, first_broken: { seq: row.seq, id: row.id, reason: 'reordered' } });
      const swapHashes = `
        UPDATE audit_links l SET hash = CASE WHEN l.event_id = $1 THEN (SELECT hash FROM audit_links WHERE event_id = $2) ELSE (SELECT hash FROM audit_links WHERE event_id = $1) END
         WHERE l.event_id IN ($1, $2)`;
      const swapped = await tamper(swapHashes, swapHashes, [row.id, next.id]);
      expect(swapped.report).toMatchObject({ ok: false, verified: i, first_broken: { seq: row.seq, id: row.id, reason: 'altered' } });
    } finally {
      for (const guard of guards) await su.query(guard.definition);
    }
  });

  it('a rewritten tail is found against a checkpoint taken before it', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    const { row } = await middle();
    const before = (await read('/v1/audit/checkpoint')).body;
    // The attacker rewrites an event and recomputes every hash after it: the chain verifies again,
    // but no longer reaches the head the checkpoint signed.
    await asAttacker(
      [`UPDATE audit_events SET data = data || '{"forged": true}' WHERE id = $1`, [row.id]],
      [`DELETE FROM audit_links WHERE (xid, seq) >= (SELECT xid, seq FROM audit_events WHERE id = $1)`, [row.id]],
    );
    await chainAll();
    const after = await verify();
    expect(after.ok).toBe(true);
    expect(after.head.seq).toBe(before.seq);
    expect(after.head.hash).not.toBe(before.hash);
  });
});

describe('the migration', () => {
  it('gives events written before it seqs in time order, and the chainer links them like new ones', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    const db = await freshDatabase('postgres');
    let upgraded: TestBroker | undefined;
    try {
      // The database as it was before the audit chain, with three events written in another order than their times.
      const earlier = migrations.slice(0, migrations.indexOf(AuditChain1764116340000));
      const old = new DataSource({
        type: 'postgres',
        url: db.databaseUrl,
        migrations: earlier,
        migrationsTableName: 'tollgate_migrations',
        logging: false,
      });
      await old.initialize();
      await old.runMigrations({ transaction: 'each' });
      const ids = [randomUUID(), randomUUID(), randomUUID()];
      for (const i of [2, 0, 1]) {
        await old.query(
          `INSERT INTO audit_events (id, at, kind, actor) VALUES ($1, '2026-11-01T00:00:00Z'::timestamptz + $2 * interval '1 minute', 'task.opened', 'system:test')`,
          [ids[i], i],
        );
      }
      await old.destroy();

      upgraded = await startBroker({ db });
      await putBoundary(upgraded, 'crm-orders');
      await linkAuditChain(upgraded);
      const report = (await call(upgraded.url, 'GET', '/v1/audit/verify', { token: upgraded.adminKey })).body;
      const client = await connect(db.databaseUrl!);
      try {
        const { rows } = await client.query(`SELECT a.id, a.seq::text AS seq, a.kind FROM audit_events a ORDER BY a.xid, a.seq`);
        expect(rows).toEqual([
          ...ids.map((id, i) => ({ id, seq: String(i + 1), kind: 'task.opened' })),
          { id: expect.any(String), seq: '4', kind: 'boundary.put' },
        ]);
        expect(report).toMatchObject({ ok: true, verified: 4, head: { seq: '4' }, unchained: 0 });
      } finally {
        await client.end();
      }
    } finally {
      await (upgraded ? upgraded.close() : db.drop());
    }
  });
});
