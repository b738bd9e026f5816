import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataSource, MigrationExecutor } from 'typeorm';
import { PGliteDriver } from 'typeorm-pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../migrations/index.js';
import { BACKENDS, backendCovered } from './support/backends.js';
import { freshDatabase, type TestDatabase } from './support/database.js';

/**
 * Every migration run over rows, on PostgreSQL and on PGlite. One database per backend walks the
 * migrations in order; for each one:
 *
 *   before (rows in the tables it changes) → up → after → down → undone → up → after → fill
 *
 * Around each step a generic check holds: every row that existed before `up` is still there after
 * it (on the columns both schemas share), unless the case names the table as one it transforms, and
 * is there again, unchanged, after `down`. `after` checks what the migration promises of the rows
 * (backfills, defaults) and must only read: it runs again after the down/up round trip. `fill`
 * writes the rows the new tables and columns take; they stay, so later migrations run over them.
 *
 * A migration file without a case here fails the guard at the bottom.
 */

type Query = <T = Record<string, unknown>>(text: string, params?: readonly unknown[]) => Promise<T[]>;

interface MigrationCase {
  /** Rows, in tables that exist before the migration, that it should carry over or transform. */
  before?(q: Query): Promise<void>;
  /** What `up` promises of the rows; read-only (runs twice). */
  after?(q: Query): Promise<void>;
  /** What `down` gives back, beyond the generic check. */
  undone?(q: Query): Promise<void>;
  /** Rows in what the migration created, kept for the migrations after it. */
  fill?(q: Query): Promise<void>;
  /** Tables whose existing columns `up` rewrites on purpose (the generic survival check skips them). */
  transforms?: string[];
}

const u = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
const T1 = u(0x11); // active, intent order_status
const T2 = u(0x12); // completed
const T3 = u(0x13); // active, its intent changed and changed back
const T4 = u(0x14); // active, on a boundary disabled later
const T5 = u(0x15); // opened with a context
const D1 = u(0x21);
const DRIFT1 = u(0x2d1); // drift denials counted against T1: DRIFT2 first, then DRIFT1
const DRIFT2 = u(0x2d2);
const DRIFT3 = u(0x2d3);
const L1 = u(0x31);
const L2 = u(0x32);
const L3 = u(0x33);
const E1 = u(0x41);
const E2 = u(0x42);
const E3 = u(0x40);
const AP_KEPT = u(0x51);
const AP_DONE = u(0x52);
const AP_FLIP = u(0x53);
const AP_OFF = u(0x54);
const AP_DENIED = u(0x55);
const AP_EXPIRED = u(0x56);
const KEY_CREATED = '2026-01-02T03:04:05.678Z';
const HASH = (c: string): string => c.repeat(64);

async function ms(q: Query, expression: string, params: readonly unknown[] = []): Promise<number | null> {
  const [row] = await q<{ ms: number | null }>(`SELECT (extract(epoch FROM ${expression}) * 1000)::float8 AS ms`, params);
  return row!.ms === null ? null : Number(row!.ms);
}

async function refused(q: Query, text: string, params: readonly unknown[] = []): Promise<void> {
  await expect(q(text, params)).rejects.toThrow();
}

async function approvalDecision(
  q: Query,
  id: string,
  taskId: string,
  boundary: string,
  version: number,
  requestedTtl: number | null,
): Promise<void> {
  await q(
    `INSERT INTO decisions (id, task_id, workload_id, boundary_id, boundary_version, action, outcome, requested_ttl, at)
     VALUES ($1, $2, 'wl-1', $3, $4, 'refund:create', 'pending', $5, now())`,
    [id, taskId, boundary, version, requestedTtl],
  );
}

const cases: Record<string, MigrationCase> = {
  Identity1764115200000: {
    async fill(q) {
      await q(`INSERT INTO workloads (id, jwks) VALUES ('wl-1', $1::jsonb), ('wl-ünï ☃', '{"keys":[]}')`, [
        JSON.stringify({ keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'ünï' }] }),
      ]);
      await q(
        `INSERT INTO admin_keys (key_hash, role, label, created_at) VALUES ('hash-admin', 'admin', 'ops ☂', $1), ('hash-rev', 'reviewer', '', $1)`,
        [KEY_CREATED],
      );
      const [wl] = await q<{ jwks: string; enabled: boolean; revision: number }>(
        `SELECT jwks::text AS jwks, enabled, revision FROM workloads WHERE id = 'wl-1'`,
      );
      expect(JSON.parse(wl!.jwks)).toEqual({ keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'ünï' }] });
      expect(wl).toMatchObject({ enabled: true, revision: 1 });
      await refused(q, `INSERT INTO admin_keys (key_hash, role, label) VALUES ('hash-x', 'root', 'x')`);
    },
  },
  Boundaries1764115260000: {
    async fill(q) {
      const insert = `INSERT INTO boundaries (id, version, tool, actions, intents, default_ttl, max_ttl, credential, sensitivity, enabled, created_at)
                      VALUES ($1, $2, $3, '["orders:read","refund:create"]', '{"order_status":["orders:read"]}', $4, $5, '{"kind":"jwt"}', 'low', $6, $7)`;
      await q(insert, ['b1', 1, 'crm', 300, 900, true, '2026-01-01T00:00:00Z']);
      await q(insert, ['b1', 2, 'crm', 300, 900, true, '2026-01-01T00:01:00Z']);
      await q(insert, ['b2', 1, 'billing ✓', 60, 60, true, '2026-01-01T00:02:00Z']);
      await q(insert, ['b3', 1, 'pay', 120, 600, true, '2026-01-01T00:03:00Z']);
      await q(insert, ['b3', 2, 'pay', 120, 600, false, '2026-01-01T00:04:00Z']);
      await refused(q, insert, ['b1', 2, 'crm', 300, 900, true, '2026-01-01T00:00:00Z']);
      await refused(q, insert, ['b4', 1, 'x', 900, 300, true, '2026-01-01T00:00:00Z']);
    },
  },
  Tasks1764115320000: {
    async fill(q) {
      const insert = `INSERT INTO tasks (id, workload_id, intent, subject, state, created_at, expires_at, ended_at, end_reason)
                      VALUES ($1, 'wl-1', $2, 'user:ünï', $3, now() - interval '2 hours', now() + interval '1 day', $4, NULL)`;
      await q(insert, [T1, 'order_status', 'active', null]);
      await q(insert, [T2, 'order_status', 'completed', '2026-01-01T00:00:00Z']);
      await q(insert, [T3, 'order_status', 'active', null]);
      await q(insert, [T4, 'order_status', 'active', null]);
      await q(`INSERT INTO task_events (id, task_id, kind, intent) VALUES ($1, $2, 'opened', 'order_status')`, [u(0x61), T1]);
      // T3's intent went to refund_request and back: the event is what tells it apart later.
      await q(`INSERT INTO task_events (id, task_id, kind, intent) VALUES ($1, $2, 'intent_changed', 'order_status')`, [u(0x62), T3]);
      await refused(q, insert, [u(0x1f), 'x', 'paused', null]);
    },
  },
  DecisionsAndLeases1764115380000: {
    async fill(q) {
      await q(
        `INSERT INTO decisions (id, task_id, workload_id, boundary_id, boundary_version, action, outcome, reasons, params, at)
         VALUES ($1, $2, 'wl-1', 'b1', 2, 'orders:read', 'permit', '["ok"]', '{"q":"ünï ☃"}', now())`,
        [D1, T1],
      );
      const lease = `INSERT INTO leases (id, task_id, workload_id, boundary_id, boundary_version, decision_id, action, credential_kind, issued_at, expires_at, state, revoked_at, revoke_reason)
                     VALUES ($1, $2, 'wl-1', 'b1', 2, $3, 'orders:read', 'jwt', now() - interval '1 hour', now() + interval '1 hour', $4, $5, $6)`;
      await q(lease, [L1, T1, D1, 'active', null, null]);
      await q(lease, [L2, T2, D1, 'revoked', '2026-01-01T00:00:00Z', 'task_completed']);
      const [row] = await q<{ params: string }>(`SELECT params::text AS params FROM decisions WHERE id = $1`, [D1]);
      expect(JSON.parse(row!.params)).toEqual({ q: 'ünï ☃' });
      await refused(q, lease, [u(0x3f), T1, D1, 'issuing', null, null]);
    },
  },
  SigningKeys1764115440000: {
    async fill(q) {
      const insert = `INSERT INTO signing_keys (kid, alg, public_jwk, private_key_encrypted, state, created_at, retired_at) VALUES ($1, 'EdDSA', '{"kty":"OKP"}', 'sealed', $2, $3, $4)`;
      await q(insert, ['k-old', 'retired', '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z']);
      await q(insert, ['k-now', 'active', '2026-01-02T00:00:00Z', null]);
      await refused(q, insert, ['k-two', 'active', '2026-01-03T00:00:00Z', null]);
    },
  },
  AuditEvents1764115500000: {
    async fill(q) {
      const insert = `INSERT INTO audit_events (id, at, kind, actor, task_id, data) VALUES ($1, $2, $3, 'workload:wl-1', $4, $5::jsonb)`;
      await q(insert, [E1, '2026-01-01T00:00:01Z', 'credential.issued', T1, JSON.stringify({ lease: L1, note: 'ünï ☃' })]);
      await q(insert, [E2, '2026-01-01T00:00:00Z', 'task.opened', T1, '{}']);
      await q(insert, [E3, '2026-01-01T00:00:01Z', 'task.completed', T2, '{"n":1}']);
      await refused(q, `UPDATE audit_events SET kind = 'x' WHERE id = $1`, [E1]);
      await refused(q, `DELETE FROM audit_events WHERE id = $1`, [E1]);
    },
  },
  BoundarySuperseded1764115560000: {
    async after(q) {
      const rows = await q<{ id: string; version: number; superseded: boolean }>(
        `SELECT id, version, superseded_at = created_at AS superseded FROM boundaries ORDER BY id, version`,
      );
      expect(rows.map((r) => [r.id, r.version, r.superseded ?? null])).toEqual([
        ['b1', 1, true],
        ['b1', 2, null],
        ['b2', 1, null],
        ['b3', 1, true],
        ['b3', 2, null],
      ]);
    },
  },
  RevocationEvents1764115620000: {
    async fill(q) {
      await q(
        `INSERT INTO revocation_events (type, lease_id, task_id, workload_id, reason) VALUES ('lease.revoked', $1, $2, 'wl-1', 'task_completed')`,
        [L2, T2],
      );
      await q(`INSERT INTO revocation_events (type, task_id, workload_id, reason) VALUES ('task.ended', $1, 'wl-1', 'completed')`, [T2]);
      const rows = await q<{ id: string; txid: string | null }>(
        `SELECT id::text AS id, txid::text AS txid FROM revocation_events ORDER BY id`,
      );
      expect(rows).toHaveLength(2);
      expect(rows.every((r) => r.txid !== null)).toBe(true);
      await refused(q, `INSERT INTO revocation_events (type, reason) VALUES ('lease.exploded', 'x')`);
    },
  },
  Issuers1764115680000: {
    async after(q) {
      const rows = await q<{ id: string; issuer_id: string | null; subject: string | null }>(
        `SELECT id, issuer_id, subject FROM workloads ORDER BY id`,
      );
      expect(rows).toEqual([
        { id: 'wl-1', issuer_id: null, subject: null },
        { id: 'wl-ünï ☃', issuer_id: null, subject: null },
      ]);
    },
    async fill(q) {
      await q(
        `INSERT INTO issuers (id, issuer, kind, jwks_uri, audiences) VALUES ('iss-1', 'https://idp.example/☃', 'oidc', 'https://idp.example/jwks', '["tollgate"]')`,
      );
      await q(`INSERT INTO workloads (id, issuer_id, subject) VALUES ('wl-fed', 'iss-1', 'system:serviceaccount:ns:bot')`);
      await refused(q, `INSERT INTO workloads (id, issuer_id, subject) VALUES ('wl-fed-2', 'iss-1', 'system:serviceaccount:ns:bot')`);
      await refused(q, `INSERT INTO workloads (id) VALUES ('wl-neither')`);
      await refused(
        q,
        `INSERT INTO issuers (id, issuer, kind, jwks_uri, audiences) VALUES ('iss-2', 'https://idp.example/☃', 'oidc', 'https://x', '[]')`,
      );
    },
  },
  SigningKeyRotation1764115740000: {
    async after(q) {
      const rows = await q<{ kid: string; same: boolean; publish_until: string | null }>(
        `SELECT kid, activated_at = created_at AS same, publish_until FROM signing_keys ORDER BY kid`,
      );
      expect(rows).toEqual([
        { kid: 'k-now', same: true, publish_until: null },
        { kid: 'k-old', same: true, publish_until: null },
      ]);
    },
    async fill(q) {
      const insert = `INSERT INTO signing_keys (kid, alg, public_jwk, private_key_encrypted, state) VALUES ($1, 'EdDSA', '{}', $2, $3)`;
      await q(insert, ['k-next', 'sealed', 'next']);
      await refused(q, insert, ['k-next-2', 'sealed', 'next']);
      await refused(q, insert, ['k-bare', null, 'active']);
      // A retired key may drop its private half.
      await q(insert, ['k-gone', null, 'retired']);
    },
  },
  DpopProofs1764115750000: {
    async fill(q) {
      await q(`INSERT INTO dpop_proofs (jti_hash, expires_at) VALUES ('jti-1', now() + interval '1 minute')`);
      await refused(q, `INSERT INTO dpop_proofs (jti_hash, expires_at) VALUES ('jti-1', now())`);
    },
  },
  ApiKeys1764115800000: {
    async after(q) {
      const keys = await q<{ key_hash: string; role: string; label: string; audience: string | null; revoked_at: string | null }>(
        `SELECT key_hash, role, label, audience, revoked_at FROM api_keys ORDER BY key_hash`,
      );
      expect(keys).toEqual([
        { key_hash: 'hash-admin', role: 'admin', label: 'ops ☂', audience: null, revoked_at: null },
        { key_hash: 'hash-rev', role: 'reviewer', label: '', audience: null, revoked_at: null },
      ]);
      const created = await q<{ ms: number }>(`SELECT (extract(epoch FROM created_at) * 1000)::float8 AS ms FROM api_keys`);
      expect(created.map((r) => Number(r.ms))).toEqual([Date.parse(KEY_CREATED), Date.parse(KEY_CREATED)]);
      const [gone] = await q<{ present: boolean }>(`SELECT to_regclass('admin_keys') IS NOT NULL AS present`);
      expect(gone!.present).toBe(false);
      const events = await q<{ type: string; audience: string | null }>(`SELECT type, audience FROM revocation_events ORDER BY id`);
      expect(events).toEqual([
        { type: 'lease.revoked', audience: 'crm' },
        { type: 'task.ended', audience: null },
      ]);
    },
    async undone(q) {
      const keys = await q(`SELECT key_hash, role, label FROM admin_keys ORDER BY key_hash`);
      expect(keys).toEqual([
        { key_hash: 'hash-admin', role: 'admin', label: 'ops ☂' },
        { key_hash: 'hash-rev', role: 'reviewer', label: '' },
      ]);
    },
    async fill(q) {
      await q(`INSERT INTO api_keys (id, key_hash, role, audience, label) VALUES ($1, 'hash-rs', 'resource_server', 'crm', 'crm ✓')`, [
        u(0x71),
      ]);
      await refused(q, `INSERT INTO api_keys (id, key_hash, role) VALUES ($1, 'hash-rs-2', 'resource_server')`, [u(0x72)]);
      await refused(q, `INSERT INTO api_keys (id, key_hash, role) VALUES ($1, 'hash-rs', 'admin')`, [u(0x73)]);
      await q(`INSERT INTO client_assertions (client_id, jti, expires_at) VALUES ($1, 'jti-a', now() + interval '1 minute')`, [u(0x71)]);
    },
  },
  CedarPolicies1764115860000: {
    async fill(q) {
      const insert = `INSERT INTO policies (id, version, policy, description, enabled, superseded_at) VALUES ($1, $2, $3, $4, $5, $6)`;
      await q(insert, ['p1', 1, 'forbid (principal, action, resource);', 'old', true, '2026-01-01T00:00:00Z']);
      await q(insert, ['p1', 2, 'permit (principal, action, resource) when { context.note == "ünï" };', 'current ☃', true, null]);
      await q(insert, ['p2', 1, 'forbid (principal, action, resource);', null, false, null]);
      await q(`UPDATE decisions SET intent = 'order_status', policies = '["p1@2"]' WHERE id = $1`, [D1]);
    },
  },
  DriftAndRateLimits1764115920000: {
    async after(q) {
      const tasks = await q<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE drift_denials <> '{}'::uuid[]`);
      expect(tasks[0]!.n).toBe(0);
      const boundaries = await q<{ n: number }>(`SELECT count(*)::int AS n FROM boundaries WHERE drift_threshold IS NOT NULL`);
      expect(boundaries[0]!.n).toBe(0);
    },
    async fill(q) {
      await q(`INSERT INTO rate_buckets (workload_id, tokens, last_granted, refilled_at) VALUES ('wl-1', 5.5, 1, '2026-01-01T00:00:00Z')`);
      await refused(q, `UPDATE boundaries SET drift_threshold = 0 WHERE id = 'b2'`);
      // Two denials counted against T1, in this order (DriftDenialRows moves them to rows).
      await q(`UPDATE tasks SET drift_denials = ARRAY[$2, $3]::uuid[] WHERE id = $1`, [T1, DRIFT2, DRIFT1]);
    },
  },
  Approvals1764115980000: {
    async after(q) {
      const [row] = await q<{ n: number }>(`SELECT count(*)::int AS n FROM boundaries WHERE approval IS NOT NULL`);
      expect(row!.n).toBe(0);
    },
    async fill(q) {
      // One decision per approval; DA1 asked for 60 s, DA5 for more than the boundary allows.
      await approvalDecision(q, u(0xa1), T1, 'b1', 2, 60);
      await approvalDecision(q, u(0xa2), T2, 'b1', 2, null);
      await approvalDecision(q, u(0xa3), T3, 'b1', 2, null);
      await approvalDecision(q, u(0xa4), T4, 'b3', 1, null);
      await approvalDecision(q, u(0xa5), T1, 'b1', 2, 5000);
      await approvalDecision(q, u(0xa6), T2, 'b1', 2, null);
      const insert = `INSERT INTO approvals (id, task_id, workload_id, boundary_id, boundary_version, action, params, params_hash, intent, status,
                                             decision_id, requested_at, expires_at, decided_at, decided_by)
                      VALUES ($1, $2, 'wl-1', $3, $4, 'refund:create', '{"amount":"12,50 €"}', 'h', 'order_status', $5, $6,
                              now() - interval '1 hour' + $7::interval, now() + interval '1 hour' + $7::interval,
                              CASE WHEN $5 = 'pending' THEN NULL ELSE now() - interval '30 minutes' END,
                              CASE WHEN $5 = 'pending' THEN NULL ELSE 'admin:ops' END)`;
      await q(insert, [AP_KEPT, T1, 'b1', 2, 'approved', u(0xa1), '0']);
      await q(insert, [AP_DONE, T2, 'b1', 2, 'approved', u(0xa2), '0']);
      await q(insert, [AP_FLIP, T3, 'b1', 2, 'approved', u(0xa3), '-1 minute']);
      await q(insert, [AP_OFF, T4, 'b3', 1, 'pending', u(0xa4), '0']);
      await q(insert, [AP_DENIED, T1, 'b1', 2, 'denied', u(0xa5), '0']);
      await q(insert, [AP_EXPIRED, T2, 'b1', 2, 'approved', u(0xa6), '-3 hours']);
      await refused(q, insert, [u(0x5f), T1, 'b1', 2, 'revoked', u(0xa1), '0']);
    },
  },
  CredentialOutbox1764116040000: {
    async after(q) {
      const rows = await q(`SELECT id, state, external, revoke_attempts, revoke_next_at, revoke_error FROM leases ORDER BY id`);
      expect(rows).toEqual([
        { id: L1, state: 'active', external: false, revoke_attempts: 0, revoke_next_at: null, revoke_error: null },
        { id: L2, state: 'revoked', external: false, revoke_attempts: 0, revoke_next_at: null, revoke_error: null },
      ]);
    },
    async fill(q) {
      await q(
        `INSERT INTO leases (id, task_id, workload_id, boundary_id, boundary_version, decision_id, action, credential_kind, issued_at, expires_at, state,
                             external, revoke_attempts, revoke_next_at, revoke_error)
         VALUES ($1, $2, 'wl-1', 'b1', 2, $3, 'orders:read', 'vault', now() - interval '1 hour', now() + interval '1 hour', 'revoking', true, 2, now(), 'vault: 503 ✗')`,
        [L3, T1, D1],
      );
      await q(
        `INSERT INTO revocation_events (type, lease_id, task_id, workload_id, reason, audience) VALUES ('lease.revoke_failed', $1, $2, 'wl-1', 'source_unavailable', 'crm')`,
        [L3, T1],
      );
    },
  },
  TaskContext1764116160000: {
    async after(q) {
      const rows = await q<{ context: string }>(`SELECT context::text AS context FROM tasks ORDER BY id`);
      expect(rows.map((r) => JSON.parse(r.context))).toEqual([{}, {}, {}, {}]);
    },
    async fill(q) {
      const context = { ticket: 'ÆØÅ-42 ☃', nested: { n: 1, list: [true, null, 'x'] } };
      await q(
        `INSERT INTO tasks (id, workload_id, intent, subject, state, created_at, expires_at, context)
         VALUES ($1, 'wl-1', 'order_status', 'user:2', 'active', now(), now() + interval '1 hour', $2::jsonb)`,
        [T5, JSON.stringify(context)],
      );
      const [row] = await q<{ context: string }>(`SELECT context::text AS context FROM tasks WHERE id = $1`, [T5]);
      expect(JSON.parse(row!.context)).toEqual(context);
    },
  },
  CedarApprovals1764116220000: {
    async after(q) {
      // Past every policy version written so far (3), and the one current enabled policy (p1@2).
      const rows = await q<{ one: boolean; version: string; enabled: number }>(
        `SELECT one, version::text AS version, enabled FROM policy_set_version`,
      );
      expect(rows).toEqual([{ one: true, version: '4', enabled: 1 }]);
      const [row] = await q<{ n: number }>(`SELECT count(*)::int AS n FROM decisions WHERE approval_id IS NOT NULL`);
      expect(row!.n).toBe(0);
    },
    async fill(q) {
      await refused(q, `INSERT INTO policy_set_version (one, version, enabled) VALUES (true, 9, 0)`);
    },
  },
  WorkloadRateLimits1764116280000: {
    async after(q) {
      const [row] = await q<{ n: number }>(
        `SELECT count(*)::int AS n FROM workloads WHERE rate_limit_requests IS NOT NULL OR rate_limit_per IS NOT NULL OR rate_limit_burst IS NOT NULL`,
      );
      expect(row!.n).toBe(0);
    },
    async fill(q) {
      await q(`UPDATE workloads SET rate_limit_requests = 10, rate_limit_per = 'minute', rate_limit_burst = 20 WHERE id = 'wl-1'`);
      await refused(q, `UPDATE workloads SET rate_limit_requests = 10, rate_limit_per = 'day', rate_limit_burst = 20 WHERE id = 'wl-fed'`);
    },
  },
  AuditChain1764116340000: {
    async after(q) {
      // Numbered in (at, id) order; nothing linked yet; every row carries a writer's xid.
      const rows = await q<{ id: string; seq: string; linked: boolean; has_xid: boolean }>(
        `SELECT id, seq::text AS seq, hash IS NOT NULL AS linked, xid IS NOT NULL AS has_xid FROM audit_events ORDER BY seq`,
      );
      expect(rows).toEqual([
        { id: E2, seq: '1', linked: false, has_xid: true },
        { id: E3, seq: '2', linked: false, has_xid: true },
        { id: E1, seq: '3', linked: false, has_xid: true },
      ]);
    },
    async fill(q) {
      await q(`INSERT INTO audit_events (id, kind, actor, data) VALUES ($1, 'admin.change', 'admin:ops', '{}')`, [u(0x43)]);
      const [next] = await q<{ seq: string }>(`SELECT seq::text AS seq FROM audit_events WHERE id = $1`, [u(0x43)]);
      expect(next!.seq).toBe('4');
      // Linking sets prev_hash and hash once; nothing else about an event may change.
      await q(`UPDATE audit_events SET prev_hash = $2, hash = $3 WHERE id = $1`, [E2, HASH('0'), HASH('a')]);
      await refused(q, `UPDATE audit_events SET prev_hash = $2, hash = $3 WHERE id = $1`, [E2, HASH('0'), HASH('b')]);
      await refused(q, `UPDATE audit_events SET prev_hash = $2, hash = $3, kind = 'x' WHERE id = $1`, [E3, HASH('a'), HASH('c')]);
      await refused(q, `DELETE FROM audit_events WHERE id = $1`, [E1]);
      await refused(q, `DELETE FROM decisions WHERE id = $1`, [D1]);
      await refused(q, `UPDATE decisions SET outcome = 'deny' WHERE id = $1`, [D1]);
    },
  },
  ApprovalEvents1764116460000: {
    async after(q) {
      const [row] = await q<{ n: number }>(
        `SELECT count(*)::int AS n FROM revocation_events WHERE approval_id IS NOT NULL OR boundary_id IS NOT NULL`,
      );
      expect(row!.n).toBe(0);
    },
    async fill(q) {
      await q(
        `INSERT INTO revocation_events (type, approval_id, task_id, workload_id, boundary_id, reason) VALUES ('approval.requested', $1, $2, 'wl-1', 'b1', 'approval_required')`,
        [AP_KEPT, T1],
      );
    },
  },
  ApprovalRevocation1764116520000: {
    transforms: ['approvals'],
    async after(q) {
      const rows = await q<{ id: string; status: string; revoke_reason: string | null; stamped: boolean }>(
        `SELECT id, status, revoke_reason, revoked_at IS NOT NULL AS stamped FROM approvals ORDER BY id`,
      );
      expect(rows).toEqual([
        { id: AP_KEPT, status: 'approved', revoke_reason: null, stamped: false },
        { id: AP_DONE, status: 'revoked', revoke_reason: 'task_completed', stamped: true },
        { id: AP_FLIP, status: 'revoked', revoke_reason: 'intent_changed', stamped: true },
        { id: AP_OFF, status: 'revoked', revoke_reason: 'boundary_disabled', stamped: true },
        { id: AP_DENIED, status: 'denied', revoke_reason: null, stamped: false },
        { id: AP_EXPIRED, status: 'approved', revoke_reason: null, stamped: false },
      ]);
    },
    async undone(q) {
      // Stored revocations go back to what they were decided as (revocation was derived before).
      const rows = await q<{ id: string; status: string }>(`SELECT id, status FROM approvals ORDER BY id`);
      expect(rows.map((r) => r.status)).toEqual(['approved', 'approved', 'approved', 'pending', 'denied', 'approved']);
    },
  },
  ApprovalTtl1764116580000: {
    async after(q) {
      const rows = await q<{ id: string; ttl: number }>(`SELECT id, ttl FROM approvals ORDER BY id`);
      // The requested ttl, else the boundary's default, never past its maximum.
      expect(rows.map((r) => r.ttl)).toEqual([60, 300, 300, 120, 900, 300]);
    },
    async fill(q) {
      await refused(q, `UPDATE approvals SET ttl = 0 WHERE id = $1`, [AP_KEPT]);
    },
  },
  TaskOpenRateLimit1764116640000: {
    async after(q) {
      const rows = await q<{ workload_id: string; bucket: string; tokens: number; last_granted: number }>(
        `SELECT workload_id, bucket, tokens, last_granted FROM rate_buckets`,
      );
      expect(rows).toEqual([{ workload_id: 'wl-1', bucket: 'credential', tokens: 5.5, last_granted: 1 }]);
      expect(await ms(q, `(SELECT refilled_at FROM rate_buckets WHERE workload_id = 'wl-1')`)).toBe(Date.parse('2026-01-01T00:00:00Z'));
    },
    async fill(q) {
      await q(
        `INSERT INTO rate_buckets (workload_id, bucket, tokens, last_granted, refilled_at) VALUES ('wl-1', 'task_open', 3, 0, now())`,
      );
      await refused(
        q,
        `INSERT INTO rate_buckets (workload_id, bucket, tokens, last_granted, refilled_at) VALUES ('wl-1', 'task_open', 3, 0, now())`,
      );
      await refused(
        q,
        `INSERT INTO rate_buckets (workload_id, bucket, tokens, last_granted, refilled_at) VALUES ('wl-1', 'other', 3, 0, now())`,
      );
    },
  },
  ToolCall1764116730000: {
    async after(q) {
      // Leases issued before have no digest (introspection leaves it out); no boundary declares schemas.
      const leases = await q<{ n: number }>(`SELECT count(*)::int AS n FROM leases WHERE params_digest IS NOT NULL`);
      expect(leases[0]!.n).toBe(0);
      const boundaries = await q<{ n: number }>(`SELECT count(*)::int AS n FROM boundaries WHERE params_schemas IS NOT NULL`);
      expect(boundaries[0]!.n).toBe(0);
    },
    async fill(q) {
      await q(
        `INSERT INTO leases (id, task_id, workload_id, boundary_id, boundary_version, decision_id, action, credential_kind, issued_at, expires_at, state, params_digest)
         VALUES ($1, $2, 'wl-1', 'b1', 2, $3, 'orders:read', 'jwt', now(), now() + interval '1 hour', 'active', 'dCNOmK_nSY-12vHzasLXiswzlGT5UHA7jAGYkvmCuQs')`,
        [u(0x34), T1, D1],
      );
      await q(
        `INSERT INTO boundaries (id, version, tool, actions, intents, default_ttl, max_ttl, credential, sensitivity, enabled, params_schemas)
         VALUES ('b5', 1, 'refunds', '["refund:create"]', '["refund"]', 60, 60, '{"kind":"jwt"}', 'low', true, $1)`,
        [JSON.stringify({ 'refund:create': { type: 'object', properties: { amount: { type: 'integer' } }, required: ['amount'] } })],
      );
      const [row] = await q<{ schemas: string }>(`SELECT params_schemas::text AS schemas FROM boundaries WHERE id = 'b5'`);
      expect(JSON.parse(row!.schemas)['refund:create'].required).toEqual(['amount']);
    },
  },
  EventNotify1764116790000: {
    async after(q) {
      // A trigger, no rows: the one it adds is there, and it fires only for statements that wrote.
      const triggers = await q<{ tgname: string }>(
        `SELECT tgname FROM pg_trigger WHERE tgrelid = 'revocation_events'::regclass AND NOT tgisinternal`,
      );
      expect(triggers.map((t) => t.tgname)).toEqual(['revocation_events_notify']);
    },
    async undone(q) {
      const triggers = await q(`SELECT 1 FROM pg_trigger WHERE tgrelid = 'revocation_events'::regclass AND NOT tgisinternal`);
      expect(triggers).toEqual([]);
    },
    async fill(q) {
      // Rows still go in as before (the trigger only notifies).
      await q(`INSERT INTO revocation_events (type, task_id, workload_id, reason) VALUES ('task.ended', $1, 'wl-1', 'completed')`, [T1]);
    },
  },
  ExpiryWithoutRewrites1764116850000: {
    async after(q) {
      // An index, no rows changed: the sweeper finds the leases held at a source through it.
      const indexes = await q<{ def: string }>(`SELECT indexdef AS def FROM pg_indexes WHERE indexname = 'leases_external_due'`);
      expect(indexes).toHaveLength(1);
      expect(indexes[0]!.def).toMatch(/WHERE \(\(state = 'active'::text\) AND external\)/);
    },
    async undone(q) {
      expect(await q(`SELECT 1 FROM pg_indexes WHERE indexname = 'leases_external_due'`)).toEqual([]);
    },
  },
  HistoryPartitions1764116910000: {
    async before(q) {
      // Rows with UUIDv7 ids of this month (next to the earlier fixtures' non-v7 ids): they must
      // land in this month's partitions, their foreign keys whole.
      const [now] = await q<{ ms: string }>(`SELECT (extract(epoch FROM now()) * 1000)::bigint::text AS ms`);
      const v7 = (n: number): string => {
        const hex = BigInt(now!.ms).toString(16).padStart(12, '0');
        return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7000-8000-${n.toString(16).padStart(12, '0')}`;
      };
      await q(
        `INSERT INTO decisions (id, task_id, workload_id, boundary_id, boundary_version, action, outcome, at)
         VALUES ($1, $2, 'wl-1', 'b1', 2, 'orders:read', 'permit', now())`,
        [v7(1), T1],
      );
      await q(
        `INSERT INTO leases (id, task_id, workload_id, boundary_id, boundary_version, decision_id, action, credential_kind, issued_at, expires_at, state)
         VALUES ($1, $2, 'wl-1', 'b1', 2, $3, 'orders:read', 'jwt', now(), now() + interval '1 hour', 'active')`,
        [v7(2), T1, v7(1)],
      );
      await q(`INSERT INTO audit_events (id, kind, actor, task_id, lease_id) VALUES ($1, 'credential.issued', 'workload:wl-1', $2, $3)`, [
        v7(3),
        T1,
        v7(2),
      ]);
    },
    async after(q) {
      const kinds = await q<{ relname: string; relkind: string }>(
        `SELECT relname, relkind::text AS relkind FROM pg_class WHERE relname IN ('decisions', 'leases', 'audit_events') ORDER BY relname`,
      );
      expect(kinds.map((k) => k.relkind)).toEqual(['p', 'p', 'p']);
      // Where each row is: v7 ids in this month's partition, the rest in DEFAULT.
      const month = (await q<{ m: string }>(`SELECT to_char(now() AT TIME ZONE 'UTC', '"y"YYYY"m"MM') AS m`))[0]!.m;
      for (const table of ['decisions', 'leases', 'audit_events']) {
        const placed = await q<{ v7: boolean; part: string }>(
          `SELECT DISTINCT substr(id::text, 15, 1) = '7' AS v7, tableoid::regclass::text AS part FROM ${table} ORDER BY 1`,
        );
        expect(placed).toEqual([
          { v7: false, part: `${table}_default` },
          { v7: true, part: `${table}_${month}` },
        ]);
      }
      const [audit] = await q<{ part: string }>(
        `SELECT tableoid::regclass::text AS part FROM audit_events WHERE kind = 'credential.issued' AND id::text LIKE '%-7000-8000-000000000003'`,
      );
      expect(audit!.part).toBe(`audit_events_${month}`);
      // This month and the next two exist for all three tables.
      const [made] = await q<{ n: number }>(
        `SELECT count(*)::int AS n FROM generate_series(0, 2) i, unnest(ARRAY['decisions', 'leases', 'audit_events']) t
          WHERE to_regclass(t || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + i * interval '1 month', '"_y"YYYY"m"MM')) IS NOT NULL`,
      );
      expect(made!.n).toBe(9);
      // Foreign keys still hold (a lease to a missing task is refused), except leases → decisions,
      // dropped on purpose: its check against the partitioned decisions cost every permit.
      await refused(
        q,
        `INSERT INTO leases (id, task_id, workload_id, boundary_id, boundary_version, decision_id, action, credential_kind, issued_at, expires_at, state)
         VALUES (gen_random_uuid(), gen_random_uuid(), 'wl-1', 'b1', 2, $1, 'orders:read', 'jwt', now(), now() + interval '1 hour', 'active')`,
        [D1],
      );
      const fks = await q<{ name: string }>(
        `SELECT conname AS name FROM pg_constraint WHERE contype = 'f' AND confrelid = 'decisions'::regclass AND conparentid = 0 ORDER BY 1`,
      );
      expect(fks.map((f) => f.name)).toEqual(['approvals_decision_id_fkey']);
      // Still append-only, in every partition.
      await refused(q, `UPDATE decisions SET outcome = 'deny' WHERE id = $1`, [D1]);
      await refused(q, `DELETE FROM audit_events WHERE id = $1`, [E1]);
      await refused(q, `TRUNCATE audit_events`);
      await refused(q, `TRUNCATE decisions_default`);
      await refused(q, `TRUNCATE audit_events_${month}`);
      // seq stays unique within a month; the sequence keeps counting after the copied rows.
      const [seq] = await q<{ ok: boolean }>(`SELECT nextval('audit_events_seq') > (SELECT max(seq) FROM audit_events) AS ok`);
      expect(seq!.ok).toBe(true);
      // Asking again makes nothing: idempotent.
      const [again] = await q<{ n: number }>('SELECT tollgate_ensure_history_partitions(2) AS n');
      expect(again!.n).toBe(0);
    },
    async undone(q) {
      const kinds = await q<{ relkind: string }>(
        `SELECT relkind::text AS relkind FROM pg_class WHERE relname IN ('decisions', 'leases', 'audit_events')`,
      );
      expect(kinds.map((k) => k.relkind)).toEqual(['r', 'r', 'r']);
      expect(await q(`SELECT 1 FROM pg_class WHERE relname LIKE 'leases_y%' OR relname = 'leases_default'`)).toEqual([]);
      const unique = await q<{ name: string }>(
        `SELECT indexname AS name FROM pg_indexes WHERE indexname IN ('audit_events_by_seq', 'audit_events_one_successor') ORDER BY 1`,
      );
      expect(unique.map((u) => u.name)).toEqual(['audit_events_by_seq', 'audit_events_one_successor']);
      const fks = await q<{ name: string }>(`SELECT conname AS name FROM pg_constraint WHERE confrelid = 'decisions'::regclass ORDER BY 1`);
      expect(fks.map((f) => f.name)).toEqual(['approvals_decision_id_fkey', 'leases_decision_id_fkey']);
    },
  },
  AuditChainAnchors1764116970000: {
    async fill(q) {
      const insert = `INSERT INTO audit_chain_anchors (id, before, xid, seq, hash, dropped, actor) VALUES ($1, $2, '5', 7, $3, 3, 'operator')`;
      await q(insert, [u(0x71), '2026-01', HASH('a')]);
      await refused(q, insert, [u(0x72), '2026-13', HASH('b')]);
      await refused(q, insert, [u(0x73), '2026-02', 'not a hash']);
      await refused(q, `UPDATE audit_chain_anchors SET hash = $1`, [HASH('c')]);
      await refused(q, `DELETE FROM audit_chain_anchors`);
    },
  },
  TaskLeasesPending1764117030000: {
    async after(q) {
      // Every existing task, ended or not, has nothing pending: their leases were revoked with them.
      const rows = await q<{ pending: boolean }>(`SELECT DISTINCT leases_pending AS pending FROM tasks`);
      expect(rows).toEqual([{ pending: false }]);
      expect(await q(`SELECT 1 FROM pg_indexes WHERE indexname = 'tasks_leases_pending'`)).toHaveLength(1);
    },
    async undone(q) {
      expect(await q(`SELECT 1 FROM pg_indexes WHERE indexname = 'tasks_leases_pending'`)).toEqual([]);
    },
    async fill(q) {
      await q(`UPDATE tasks SET leases_pending = true WHERE id = $1`, [T2]);
      const pending = await q<{ id: string }>(`SELECT id FROM tasks WHERE leases_pending`);
      expect(pending).toEqual([{ id: T2 }]);
      await refused(q, `UPDATE tasks SET leases_pending = NULL WHERE id = $1`, [T1]);
    },
  },
  AuditLinks1764117090000: {
    async after(q) {
      // The one linked event's link moved to audit_links; the events lost the link columns.
      expect(await q(`SELECT event_id, seq::text AS seq, prev_hash, hash FROM audit_links`)).toEqual([
        { event_id: E2, seq: '1', prev_hash: HASH('0'), hash: HASH('a') },
      ]);
      expect(
        await q(`SELECT 1 FROM information_schema.columns WHERE table_name = 'audit_events' AND column_name IN ('hash', 'prev_hash')`),
      ).toEqual([]);
      // A month of links for every month of events.
      const [months] = await q<{ events: string[]; links: string[] }>(
        `SELECT array(SELECT substr(c.relname, 14) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_events'::regclass ORDER BY 1) AS events,
                array(SELECT substr(c.relname, 13) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_links'::regclass ORDER BY 1) AS links`,
      );
      expect(months!.links).toEqual(months!.events);
      expect(months!.links.length).toBeGreaterThan(1);
      // Events are strictly append-only now, links too.
      await refused(q, `UPDATE audit_events SET kind = kind WHERE id = $1`, [E3]);
      await refused(q, `UPDATE audit_links SET hash = $2 WHERE event_id = $1`, [E2, HASH('b')]);
      await refused(q, `DELETE FROM audit_links WHERE event_id = $1`, [E2]);
      await refused(q, `TRUNCATE audit_links`);
      await refused(q, `TRUNCATE audit_links_default`);
      expect(await q(`SELECT 1 FROM pg_proc WHERE proname = 'audit_events_append_only'`)).toEqual([]);
    },
    async undone(q) {
      expect(await q(`SELECT id, prev_hash, hash FROM audit_events WHERE hash IS NOT NULL`)).toEqual([
        { id: E2, prev_hash: HASH('0'), hash: HASH('a') },
      ]);
      expect(await q(`SELECT to_regclass('audit_links') AS t`)).toEqual([{ t: null }]);
      const [guards] = await q<{ parts: number; guards: number }>(
        `SELECT (SELECT count(*)::int FROM pg_inherits WHERE inhparent = 'audit_events'::regclass) AS parts,
                (SELECT count(*)::int FROM pg_indexes WHERE indexname LIKE 'audit_events%one_successor') AS guards`,
      );
      expect(guards!.guards).toBe(guards!.parts);
      // Linking is again the one UPDATE allowed.
      await refused(q, `UPDATE audit_events SET prev_hash = $2, hash = $3 WHERE id = $1`, [E2, HASH('0'), HASH('b')]);
    },
    async fill(q) {
      const link = `INSERT INTO audit_links (event_id, xid, seq, prev_hash, hash) SELECT id, xid, seq, $2, $3 FROM audit_events WHERE id = $1`;
      await q(link, [E3, HASH('a'), HASH('c')]);
      await refused(q, link, [E3, HASH('c'), HASH('d')]); // a second link of E3
      await refused(q, link, [E1, HASH('a'), HASH('d')]); // a second successor of E2
      await refused(q, link, [E1, HASH('c'), 'not a hash']);
      expect(await q(`SELECT event_id FROM audit_links ORDER BY seq`)).toEqual([{ event_id: E2 }, { event_id: E3 }]);
    },
  },
  DriftDenialRows1764117150000: {
    async after(q) {
      expect(await q(`SELECT task_id, decision_id, n FROM task_drift_denials ORDER BY n`)).toEqual([
        { task_id: T1, decision_id: DRIFT2, n: 1 },
        { task_id: T1, decision_id: DRIFT1, n: 2 },
      ]);
      expect(await q(`SELECT id, drift_count FROM tasks WHERE drift_count <> 0`)).toEqual([{ id: T1, drift_count: 2 }]);
      expect(await q(`SELECT 1 FROM information_schema.columns WHERE table_name = 'tasks' AND column_name = 'drift_denials'`)).toEqual([]);
      // The suspension's list: the counted ones, then the one that trips (passed in, also when already written).
      expect(await q(`SELECT task_drift_denial_ids($1, $2, 3) AS ids`, [T1, DRIFT3])).toEqual([{ ids: [DRIFT2, DRIFT1, DRIFT3] }]);
      expect(await q(`SELECT task_drift_denial_ids($1, $2, 2) AS ids`, [T1, DRIFT1])).toEqual([{ ids: [DRIFT2, DRIFT1] }]);
      await refused(q, `INSERT INTO task_drift_denials (task_id, decision_id, n) VALUES ($1, $2, 3)`, [T1, DRIFT1]);
      await refused(q, `INSERT INTO task_drift_denials (task_id, decision_id, n) VALUES ($1, $2, 0)`, [T1, DRIFT3]);
      await refused(q, `UPDATE tasks SET drift_count = -1 WHERE id = $1`, [T2]);
    },
    async undone(q) {
      expect(await q(`SELECT id, drift_denials FROM tasks WHERE drift_denials <> '{}'::uuid[]`)).toEqual([
        { id: T1, drift_denials: [DRIFT2, DRIFT1] },
      ]);
      expect(await q(`SELECT to_regclass('task_drift_denials') AS t`)).toEqual([{ t: null }]);
      expect(await q(`SELECT 1 FROM pg_proc WHERE proname = 'task_drift_denial_ids'`)).toEqual([]);
    },
  },
};

interface TableState {
  columns: string[];
  rows: Record<string, unknown>[];
}

/** Every table's columns and rows (as to_jsonb sees them, so both backends compare alike). */
async function snapshot(q: Query): Promise<Map<string, TableState>> {
  const columns = await q<{ table_name: string; column_name: string }>(
    `SELECT c.table_name, c.column_name FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND c.table_name <> 'tollgate_migrations'`,
  );
  const tables = new Map<string, TableState>();
  for (const { table_name, column_name } of columns) {
    const table = tables.get(table_name) ?? { columns: [], rows: [] };
    table.columns.push(column_name);
    tables.set(table_name, table);
  }
  for (const [name, table] of tables) {
    const rows = await q<{ row: string }>(`SELECT to_jsonb(t)::text AS row FROM "${name}" t`);
    table.rows = rows.map((r) => JSON.parse(r.row) as Record<string, unknown>);
  }
  return tables;
}

function projected(row: Record<string, unknown>, columns: readonly string[]): string {
  return JSON.stringify(columns.map((column) => [column, row[column]]));
}

/** Rows of `earlier` missing from `later`, on the columns both have, per table both have. */
function missingRows(earlier: Map<string, TableState>, later: Map<string, TableState>, skip: readonly string[]): Record<string, string[]> {
  const missing: Record<string, string[]> = {};
  for (const [name, before] of earlier) {
    const after = later.get(name);
    if (!after || skip.includes(name)) continue;
    const shared = before.columns.filter((column) => after.columns.includes(column)).sort();
    const present = new Map<string, number>();
    for (const row of after.rows) present.set(projected(row, shared), (present.get(projected(row, shared)) ?? 0) + 1);
    for (const row of before.rows) {
      const key = projected(row, shared);
      const left = present.get(key) ?? 0;
      if (left === 0) (missing[name] ??= []).push(key);
      else present.set(key, left - 1);
    }
  }
  return missing;
}

/** The broker's own data source settings (libs/db/typeorm-database.ts), stepped one migration at a time. */
function dataSource(test: TestDatabase): DataSource {
  const common = { migrations, migrationsTableName: 'tollgate_migrations', synchronize: false, logging: false } as const;
  if (test.kind === 'postgres') return new DataSource({ type: 'postgres', url: test.databaseUrl, ...common, extra: { max: 2 } });
  return new DataSource({
    type: 'postgres',
    installExtensions: false,
    uuidExtension: 'pgcrypto',
    driver: new PGliteDriver({ dataDir: join(resolve(test.dataDir, 'db')) }).driver,
    ...common,
  });
}

/** Runs the next pending migration, or undoes the last one, in one transaction as the broker does. */
async function step(source: DataSource, direction: 'up' | 'down'): Promise<string> {
  const runner = source.createQueryRunner();
  await runner.connect();
  try {
    await runner.startTransaction();
    const executor = new MigrationExecutor(source, runner);
    executor.transaction = 'none';
    let name: string;
    if (direction === 'up') {
      const [next] = await executor.getPendingMigrations();
      if (!next) throw new Error('no migration left to run');
      await executor.executeMigration(next);
      name = next.name;
    } else {
      const executed = await executor.getExecutedMigrations();
      name = executed[0]!.name;
      await executor.undoLastMigration();
    }
    await runner.commitTransaction();
    return name;
  } catch (error) {
    if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => {});
    throw error;
  } finally {
    await runner.release();
  }
}

for (const kind of BACKENDS) {
  describe.skipIf(!backendCovered(kind))(`migrations over existing rows [${kind}]`, () => {
    let test: TestDatabase;
    let source: DataSource;
    let q: Query;
    beforeAll(async () => {
      test = await freshDatabase(kind);
      source = dataSource(test);
      await source.initialize();
      q = (text, params) => source.query(text, params ? [...params] : undefined);
    });
    afterAll(async () => {
      if (source?.isInitialized) await source.destroy();
      await test?.drop();
    });

    for (const migration of migrations) {
      const name = migration.name;
      it(`${name}: up, down and up again keep the rows`, async () => {
        const spec = cases[name];
        if (!spec) throw new Error(`no data case for ${name}`);
        await spec.before?.(q);
        const start = await snapshot(q);

        expect(await step(source, 'up')).toBe(name);
        expect(missingRows(start, await snapshot(q), spec.transforms ?? [])).toEqual({});
        await spec.after?.(q);
        const migrated = await snapshot(q);

        expect(await step(source, 'down')).toBe(name);
        expect(missingRows(start, await snapshot(q), [])).toEqual({});
        await spec.undone?.(q);

        expect(await step(source, 'up')).toBe(name);
        expect(missingRows(start, await snapshot(q), spec.transforms ?? [])).toEqual({});
        await spec.after?.(q);
        // Run again over the same rows, up gives the same schema.
        const again = await snapshot(q);
        expect([...again.entries()].map(([table, state]) => [table, [...state.columns].sort()]).sort()).toEqual(
          [...migrated.entries()].map(([table, state]) => [table, [...state.columns].sort()]).sort(),
        );
        await spec.fill?.(q);
      });
    }

    it('leaves the schema the broker opens: nothing pending', async () => {
      const executor = new MigrationExecutor(source);
      expect(await executor.getPendingMigrations()).toEqual([]);
    });
  });
}

describe('every migration has a data case', () => {
  it('lists each migration file in migrations/index.ts and gives it a case here', () => {
    const folder = resolve(import.meta.dirname, '../migrations');
    const files = readdirSync(folder).filter((file) => /^\d+-.+\.ts$/.test(file) && !file.endsWith('.spec.ts'));
    const stamps = files.map((file) => file.split('-')[0]!).sort();
    const names = migrations.map((migration) => migration.name);
    expect(names.map((n) => n.match(/(\d+)$/)?.[1]).sort()).toEqual(stamps);
    expect(names.filter((n) => !(n in cases))).toEqual([]);
    expect(Object.keys(cases).filter((n) => !names.includes(n))).toEqual([]);
  });
});
