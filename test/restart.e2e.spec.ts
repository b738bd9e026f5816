import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../apps/broker/app.js';
import { loadBrokerConfig } from '../apps/broker/config.js';
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
    const more = await call(second.url, 'POST', `/v1/tasks/${taskId}/credentials`, {
      token,
      json: { boundary: 'crm-orders', action: 'orders:read' },
    });
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

  it('rotates the KEK: a previous KEK opens the stored keys once, which start re-seals under the new one', async () => {
    const broker = await startBroker();
    brokers.push(broker);
    await putBoundary(broker, 'crm-orders');
    const bot = await registerBot(broker);
    const taskId = await bot.openTask();
    const before = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    const sealed = async (b: TestBroker) =>
      (
        await b.app.broker.db.query<{ kid: string; s: string }>(
          'SELECT kid, private_key_encrypted AS s FROM signing_keys WHERE private_key_encrypted IS NOT NULL ORDER BY kid',
        )
      ).rows;
    const sealedBefore = await sealed(broker);
    await broker.stop();

    // The new KEK comes from a mounted secret file, as on Kubernetes; the old one is still given.
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-kek-'));
    const fresh = randomBytes(32).toString('base64');
    writeFileSync(join(dir, 'kek'), `${fresh}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'admin-key'), `${broker.adminKey}\n`, { mode: 0o600 });
    const rotated = await broker.restart({
      TOLLGATE_KEK: '',
      TOLLGATE_KEK_FILE: join(dir, 'kek'),
      TOLLGATE_KEK_PREVIOUS: broker.kek,
      TOLLGATE_ADMIN_KEY: '',
      TOLLGATE_ADMIN_KEY_FILE: join(dir, 'admin-key'),
    });
    brokers.push(rotated);
    const sealedAfter = await sealed(rotated);
    expect(sealedAfter.map((row) => row.kid)).toEqual(sealedBefore.map((row) => row.kid));
    for (const [i, row] of sealedAfter.entries()) expect(row.s).not.toBe(sealedBefore[i]!.s);
    const audit = await rotated.app.broker.db.query<{ kid: string }>(
      `SELECT data->>'kid' AS kid FROM audit_events WHERE kind = 'signing_key.resealed' ORDER BY 1`,
    );
    expect(audit.rows.map((row) => row.kid)).toEqual(sealedBefore.map((row) => row.kid));
    // Same keys: the token issued before still verifies against the JWKS; new ones are signed.
    const jwks = createLocalJWKSet((await call(rotated.url, 'GET', '/.well-known/jwks.json')).body);
    await expect(jwtVerify(before.body.credential.access_token, jwks)).resolves.toBeTruthy();
    expect((await rotated.app.broker.leases.find(before.body.lease_id))?.state).toBe('active');
    const token = await assertion('chatbot', bot.key, rotated.url);
    const after = await call(rotated.url, 'POST', `/v1/tasks/${taskId}/credentials`, {
      token,
      json: { boundary: 'crm-orders', action: 'orders:read' },
    });
    expect(after.status).toBe(201);
    await rotated.stop();

    // Once re-sealed, the new KEK alone opens them and the old one alone no longer does.
    const alone = await broker.restart({ TOLLGATE_KEK: fresh });
    brokers.push(alone);
    expect((await sealed(alone)).map((row) => row.s)).toEqual(sealedAfter.map((row) => row.s));
    await alone.stop();
    const error = await broker.restart({ TOLLGATE_KEK: broker.kek }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).problems[0]).toMatch(/TOLLGATE_KEK_PREVIOUS/);
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
    const first = await createApp(loadBrokerConfig(env), { sweep: false });
    const key = first.broker.generatedAdminKey;
    expect(key).toMatch(/^tgadm_[A-Za-z0-9_-]{43}$/);
    const stored = await first.broker.db.query<{ key_hash: string }>('SELECT key_hash FROM api_keys');
    expect(stored.rows).toHaveLength(1);
    expect(stored.rows[0]!.key_hash).not.toContain(key!);
    const kid = first.broker.keys.active.kid;
    await first.close();

    const second = await createApp(loadBrokerConfig(env), { sweep: false });
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
    const env = {
      TOLLGATE_ADMIN_KEY: `replica-admin-${randomBytes(16).toString('hex')}`,
      TOLLGATE_KEK: randomBytes(32).toString('base64'),
    };
    const replicas = await Promise.all([startBroker({ db, env }), startBroker({ db, env }), startBroker({ db, env })]);
    brokers.push(...replicas.slice(1), replicas[0]!); // the first one drops the database, last
    const sql = replicas[0]!.app.broker.db;
    const migrations = await sql.query<{ name: string; n: number }>(
      'SELECT name, count(*)::int AS n FROM tollgate_migrations GROUP BY name',
    );
    expect(migrations.rows.length).toBeGreaterThanOrEqual(6);
    expect(migrations.rows.every((row) => row.n === 1)).toBe(true);
    const keys = await sql.query<{ state: string }>('SELECT state FROM signing_keys ORDER BY state');
    expect(keys.rows.map((row) => row.state)).toEqual(['active', 'next']);
    const kids = replicas.map((replica) => replica.app.broker.keys.active.kid);
    expect(new Set(kids).size).toBe(1);
  });
});
