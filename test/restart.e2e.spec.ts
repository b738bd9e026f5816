import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../apps/broker/app.js';
import { loadConfig } from '../libs/config/config.js';
import { ConfigurationError } from '../libs/errors/errors.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { freshDatabase } from './support/database.js';
import { call } from './support/http.js';
import { asAdmin, introspect, putBoundary, registerBot } from './support/scenario.js';
import { assertion } from './support/workload.js';

// Closed after each test: on PGlite only one embedded database may be open in a process.
const brokers: TestBroker[] = [];
afterEach(async () => {
  for (const broker of brokers.splice(0).reverse()) await broker.close().catch(() => {});
});

describe('restart', () => {
  it('keeps signing keys, leases and decisions; a revoked lease stays inactive', async () => {
    const first = await startBroker();
    brokers.push(first);
    await putBoundary(first, 'crm-orders');
    const bot = await registerBot(first);
    const taskId = await bot.openTask();
    const kept = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    const revoked = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:refund' });
    await call(first.url, 'POST', '/oauth2/revoke', { token: first.adminKey, form: { token: revoked.body.credential.access_token } });
    const denied = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:delete' });
    expect(denied.status).toBe(403);
    const jwksBefore = (await call(first.url, 'GET', '/.well-known/jwks.json')).body;
    await first.stop();

    const second = await first.restart();
    brokers.push(second);
    expect((await call(second.url, 'GET', '/.well-known/jwks.json')).body).toEqual(jwksBefore);
    // Tokens carry the first instance's issuer URL; the lease rows decide, and they survived.
    expect(second.app.broker.keys.active.kid).toBe(jwksBefore.keys[0].kid);
    const leases = await asAdmin(second)('GET', `/v1/leases?task=${taskId}`);
    const byId = Object.fromEntries(leases.body.items.map((l: { lease_id: string; state: string }) => [l.lease_id, l.state]));
    expect(byId).toEqual({ [kept.body.lease_id]: 'active', [revoked.body.lease_id]: 'revoked' });
    const decisions = await asAdmin(second)('GET', `/v1/decisions?task=${taskId}`);
    expect(decisions.body.items.map((d: { outcome: string }) => d.outcome).sort()).toEqual(['deny', 'permit', 'permit']);

    const lease = await second.app.broker.leases.find(revoked.body.lease_id);
    expect(lease?.state).toBe('revoked');
    // The task and its workload still work against the new instance.
    const token = await assertion('chatbot', bot.key, second.url);
    const more = await call(second.url, 'POST', `/v1/tasks/${taskId}/credentials`, { token, json: { boundary: 'crm-orders', action: 'orders:read' } });
    expect(more.status).toBe(201);
    expect(await introspect(second, more.body.credential.access_token)).toMatchObject({ active: true });
  });

  it('refuses to start with a KEK that does not open the stored signing keys', async () => {
    const broker = await startBroker();
    brokers.push(broker);
    await broker.stop();
    const wrong = randomBytes(32).toString('base64');
    const error = await broker.restart({ TOLLGATE_KEK: wrong }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).problems[0]).toMatch(/^TOLLGATE_KEK: does not decrypt the stored signing keys/);
    expect(String((error as Error).message)).not.toContain(wrong);
  });

  it('stores private signing keys only sealed under the KEK', async () => {
    const broker = await startBroker();
    brokers.push(broker);
    const { rows } = await broker.app.broker.db.query<{ private_key_encrypted: string; public_jwk: Record<string, unknown> }>(
      'SELECT private_key_encrypted, public_jwk FROM signing_keys',
    );
    // The active key and the pre-published next one.
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      expect(row.private_key_encrypted).toMatch(/^v1\./);
      expect(row.public_jwk).not.toHaveProperty('d');
    }
    for (const key of (await call(broker.url, 'GET', '/.well-known/jwks.json')).body.keys) expect(key).not.toHaveProperty('d');
  });

  it('on the embedded default, generates the admin key and KEK once, storing only the key hash', async () => {
    const db = await freshDatabase('pglite');
    const env = { TOLLGATE_DATA_DIR: db.dataDir, TOLLGATE_LOG_LEVEL: 'error' };
    const first = await createApp(loadConfig(env), { sweep: false });
    const key = first.broker.generatedAdminKey;
    expect(key).toMatch(/^tgadm_[A-Za-z0-9_-]{43}$/);
    const stored = await first.broker.db.query<{ key_hash: string }>('SELECT key_hash FROM api_keys');
    expect(stored.rows).toHaveLength(1);
    expect(stored.rows[0]!.key_hash).not.toContain(key!);
    const kid = first.broker.keys.active.kid;
    await first.close();

    const second = await createApp(loadConfig(env), { sweep: false });
    try {
      expect(second.broker.generatedAdminKey).toBeUndefined();
      expect((await second.broker.apiKeys.authenticate(key)).role).toBe('admin');
      expect(second.broker.keys.active.kid).toBe(kid);
    } finally {
      await second.close();
      await db.drop();
    }
  }, 90_000); // two cold PGlite starts: ~15 s alone, over 30 s on a loaded machine
});

describe('replicas starting together', () => {
  it('migrate and bootstrap once under the advisory lock', async (context) => {
    const db = await freshDatabase();
    if (db.kind !== 'postgres') {
      await db.drop();
      context.skip();
    }
    const env = { TOLLGATE_ADMIN_KEY: `replica-admin-${randomBytes(16).toString('hex')}`, TOLLGATE_KEK: randomBytes(32).toString('base64') };
    const replicas = await Promise.all([startBroker({ db, env }), startBroker({ db, env }), startBroker({ db, env })]);
    brokers.push(...replicas.slice(1), replicas[0]!); // the first one drops the database, last
    const sql = replicas[0]!.app.broker.db;
    const migrations = await sql.query<{ name: string; n: number }>('SELECT name, count(*)::int AS n FROM tollgate_migrations GROUP BY name');
    expect(migrations.rows.length).toBeGreaterThanOrEqual(6);
    expect(migrations.rows.every((row) => row.n === 1)).toBe(true);
    const keys = await sql.query<{ state: string }>('SELECT state FROM signing_keys ORDER BY state');
    expect(keys.rows.map((row) => row.state)).toEqual(['active', 'next']);
    const kids = replicas.map((replica) => replica.app.broker.keys.active.kid);
    expect(new Set(kids).size).toBe(1);
  });
});
