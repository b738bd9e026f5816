// PostgreSQL for the bench: a fresh database made on the server (DATABASE_URL's, else the local
// one) and dropped at the end, and the SQL that seeds large lease tables directly.
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { onCleanup } from './procs.mjs';

export const DEFAULT_SERVER = 'postgres://postgres@127.0.0.1:5432/postgres';

/** Creates `tollgate_bench_<random>` on the server and registers its drop; returns its URL. */
export async function freshDatabase(server = process.env.DATABASE_URL || DEFAULT_SERVER) {
  const name = `tollgate_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server, connectionTimeoutMillis: 5000 });
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(
      `cannot reach PostgreSQL at ${redact(server)} (set DATABASE_URL to a server the bench may create databases on): ${error.message}`,
      { cause: error },
    );
  }
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } catch (error) {
    throw new Error(`cannot create a database on ${redact(server)} (the bench needs CREATEDB there): ${error.message}`, { cause: error });
  } finally {
    await admin.end().catch(() => {});
  }
  onCleanup(async () => {
    const client = new pg.Client({ connectionString: server, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await client.end().catch(() => {});
    }
  });
  const url = new URL(server);
  url.pathname = `/${name}`;
  return { url: url.toString(), name };
}

export function redact(connectionString) {
  try {
    const url = new URL(connectionString);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}

export async function connect(url) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  // Seeding a million rows is slow but must stay bounded.
  await client.query(`SET statement_timeout = '300s'`);
  return client;
}

/**
 * Seeds faster by skipping foreign-key triggers in this session alone (the seeded rows are
 * consistent by construction, and checked afterwards by checkSeed). Needs a superuser; without one
 * the triggers simply run. Returns whether they are skipped.
 */
export async function skipTriggers(client) {
  try {
    await client.query('SET session_replication_role = replica');
    return true;
  } catch {
    return false;
  }
}

/** Every lease points at an existing decision, task and boundary version (what the FKs say). */
export async function checkSeed(client) {
  const { rows } = await client.query(
    `SELECT count(*)::int AS n FROM leases l
      WHERE NOT EXISTS (SELECT 1 FROM decisions d WHERE d.id = l.decision_id AND d.task_id = l.task_id)
         OR NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = l.task_id)
         OR NOT EXISTS (SELECT 1 FROM boundaries b WHERE b.id = l.boundary_id AND b.version = l.boundary_version)`,
  );
  if (rows[0].n > 0) throw new Error(`seeding left ${rows[0].n} leases without their decision, task or boundary`);
}

/** Seed tasks that the seeded leases hang off: `tag`-derived ids, active for a day. */
export async function seedTasks(client, { tag, workloadId, count }) {
  await client.query(
    `INSERT INTO tasks (id, workload_id, intent, subject, state, created_at, expires_at)
     SELECT md5($1 || '-task-' || i)::uuid, $2, 'order_status', 'seed-user-' || i, 'active', now() - interval '2 hours', now() + interval '1 day'
       FROM generate_series(0, $3 - 1) AS i
     ON CONFLICT (id) DO NOTHING`,
    [tag, workloadId, count],
  );
}

/**
 * Inserts `count` decisions and their leases (`INSERT ... SELECT generate_series`), spread over the
 * seed tasks of `tag`. Ids are time-ordered (UUIDv7 layout, as the service makes them), so the
 * primary-key indexes grow at their right edge as they do in service. `mode`:
 *   'mixed'   — 40% active (expiring in an hour), 30% revoked, 30% expired: a lived-in table;
 *   'expired' — all state='active' with expires_at in the past (with `external`, work for the sweeper);
 *   'expiring' — all state='active', every one expiring at the instant `expiresAt` (a Date).
 * Run both statements in one transaction when they must appear together.
 */
export async function seedLeases(
  client,
  { tag, taskCount, workloadId, boundaryId, boundaryVersion, count, mode, external = false, taskTag = tag, expiresAt },
) {
  // UUIDv7 layout: 48-bit milliseconds (two hours ago, 64 rows per millisecond), version 7,
  // 12 bits naming the seed, then the variant nibble (8 for decisions, 9 for leases) and the row.
  const base = Date.now() - 2 * 3600 * 1000;
  const seedBits = createHash('sha256').update(tag).digest('hex').slice(0, 3);
  const id = (variant) =>
    `(lpad(to_hex($1::bigint + i / 64), 12, '0') || '7' || $2::text || '${variant}' || lpad(to_hex(i), 15, '0'))::uuid`;
  const task = `md5($3 || '-task-' || (i % $4))::uuid`;
  await client.query(
    `INSERT INTO decisions (id, task_id, workload_id, boundary_id, boundary_version, action, resource, outcome, reasons, at)
     SELECT ${id(8)}, ${task}, $5, $6, $7, 'orders:read', 'order/' || i, 'permit', '[]'::jsonb, to_timestamp(($1::bigint + i / 64) / 1000.0)
       FROM generate_series(1, $8::bigint) AS i`,
    [base, seedBits, taskTag, taskCount, workloadId, boundaryId, boundaryVersion, count],
  );
  const state = leaseState(mode, expiresAt);
  await client.query(
    `INSERT INTO leases (id, task_id, workload_id, boundary_id, boundary_version, decision_id, action, resource, credential_kind,
                         issued_at, state, expires_at, revoked_at, revoke_reason, external)
     SELECT ${id(9)}, ${task}, $5, $6, $7, ${id(8)}, 'orders:read', 'order/' || i, 'jwt',
            to_timestamp(($1::bigint + i / 64) / 1000.0), ${state}, $9::boolean
       FROM generate_series(1, $8::bigint) AS i`,
    [base, seedBits, taskTag, taskCount, workloadId, boundaryId, boundaryVersion, count, external],
  );
}

/** Leases the sweeper has still to hand over: expired and held at a source (JWT leases need nothing). */
export async function countDue(client) {
  const { rows } = await client.query(`SELECT count(*)::int AS n FROM leases WHERE state = 'active' AND external AND expires_at <= now()`);
  return rows[0].n;
}

/** The seeded leases' state, expires_at, revoked_at and revoke_reason, as SQL over `i` (see seedLeases). */
function leaseState(mode, expiresAt) {
  if (mode === 'expired') return `'active', now() - interval '1 minute', NULL::timestamptz, NULL::text`;
  if (mode === 'expiring') {
    if (!(expiresAt instanceof Date)) throw new Error("seedLeases: mode 'expiring' needs expiresAt");
    return `'active', to_timestamp(${expiresAt.getTime()} / 1000.0), NULL::timestamptz, NULL::text`;
  }
  return `CASE WHEN i % 10 < 4 THEN 'active' WHEN i % 10 < 7 THEN 'revoked' ELSE 'expired' END,
          CASE WHEN i % 10 < 7 THEN now() + interval '1 hour' ELSE now() - interval '1 hour' END,
          CASE WHEN i % 10 BETWEEN 4 AND 6 THEN now() - interval '30 minutes' END,
          CASE WHEN i % 10 BETWEEN 4 AND 6 THEN 'task_completed' END`;
}
