import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { postgresReachable } from './support/database.js';
import { call } from './support/http.js';
import { asAdmin, BOUNDARY, introspect, putBoundary, registerBot, type Bot } from './support/scenario.js';

// Closed after each test: on PGlite only one embedded database may be open in a process.
const brokers: TestBroker[] = [];
afterEach(async () => {
  for (const broker of brokers.splice(0).reverse()) await broker.close().catch(() => {});
});

async function start(options: Parameters<typeof startBroker>[0] = {}): Promise<{ broker: TestBroker; bot: Bot }> {
  const broker = await startBroker(options);
  brokers.push(broker);
  await putBoundary(broker, 'crm-orders');
  return { broker, bot: await registerBot(broker) };
}

async function issue(bot: Bot, taskId: string, body: Record<string, unknown> = {}): Promise<string> {
  const response = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read', ...body });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body.credential.access_token as string;
}

async function jwks(broker: TestBroker): Promise<string[]> {
  return (await call(broker.url, 'GET', '/.well-known/jwks.json')).body.keys.map((key: { kid: string }) => key.kid);
}

/** A resource server's view: the remote JWKS with jose's default caching, and jwtVerify. */
async function resourceServerVerifies(
  broker: TestBroker,
  token: string,
  keySet = createRemoteJWKSet(new URL(`${broker.url}/.well-known/jwks.json`)),
) {
  const { payload, protectedHeader } = await jwtVerify(token, keySet, { issuer: broker.url, audience: BOUNDARY.tool, typ: 'at+jwt' });
  return { payload, protectedHeader };
}

async function rotations(broker: TestBroker): Promise<Array<{ actor: string; data: Record<string, unknown> }>> {
  const { rows } = await broker.app.broker.db.query<{ actor: string; data: Record<string, unknown> }>(
    `SELECT actor, data FROM audit_events WHERE kind = 'signing_key.rotated' ORDER BY id`,
  );
  return rows;
}

// Each test starts its own broker: slow on PGlite, slower on a busy machine.
describe('signing-key rotation', { timeout: 120_000 }, () => {
  it('rotates on demand: old, new and next keys published; new tokens carry the new kid; old ones still verify and introspect', async () => {
    const { broker, bot } = await start();
    const admin = asAdmin(broker);
    const before = await admin('GET', '/v1/admin/keys');
    expect(before.status).toBe(200);
    expect(before.body.keys.map((key: { state: string }) => key.state)).toEqual(['active', 'next']);
    const [oldKid, nextKid] = before.body.keys.map((key: { kid: string }) => key.kid);
    // The next key is published before it signs anything.
    expect(await jwks(broker)).toEqual([oldKid, nextKid]);

    const taskId = await bot.openTask();
    const oldToken = await issue(bot, taskId);
    expect(decodeProtectedHeader(oldToken).kid).toBe(oldKid);
    // A resource server that fetched the JWKS before the rotation and keeps it cached.
    const cached = createRemoteJWKSet(new URL(`${broker.url}/.well-known/jwks.json`));
    await resourceServerVerifies(broker, oldToken, cached);

    // Refused without an admin key, or with a body, and then nothing rotates.
    expect((await call(broker.url, 'POST', '/v1/admin/keys/rotate', { token: await bot.token() })).status).toBe(401);
    expect((await admin('POST', '/v1/admin/keys/rotate', { now: true })).status).toBe(400);
    expect(await rotations(broker)).toEqual([]);

    const rotated = await admin('POST', '/v1/admin/keys/rotate');
    expect(rotated.status).toBe(200);
    expect(rotated.body).toMatchObject({ active_kid: nextKid, retired_kid: oldKid });
    const newNext = rotated.body.next_kid as string;
    expect(rotated.body.keys.map((key: { kid: string; state: string }) => [key.kid, key.state])).toEqual([
      [nextKid, 'active'],
      [newNext, 'next'],
      [oldKid, 'retired'],
    ]);
    expect(await jwks(broker)).toEqual([nextKid, newNext, oldKid]);
    expect(await rotations(broker)).toEqual([
      { actor: 'admin:bootstrap', data: expect.objectContaining({ active_kid: nextKid, retired_kid: oldKid, next_kid: newNext }) },
    ]);

    const newToken = await issue(bot, taskId);
    expect(decodeProtectedHeader(newToken).kid).toBe(nextKid);
    // The cached resource server already had the new key (it was published as next): no refetch needed.
    expect((await resourceServerVerifies(broker, newToken, cached)).protectedHeader.kid).toBe(nextKid);
    expect((await resourceServerVerifies(broker, oldToken, cached)).protectedHeader.kid).toBe(oldKid);
    expect((await resourceServerVerifies(broker, oldToken)).protectedHeader.kid).toBe(oldKid);
    expect(await introspect(broker, oldToken)).toMatchObject({ active: true });
    expect(await introspect(broker, newToken)).toMatchObject({ active: true });

    // The retired key's private half is destroyed; the others stay sealed under the KEK.
    const { rows } = await broker.app.broker.db.query<{ kid: string; private_key_encrypted: string | null }>(
      'SELECT kid, private_key_encrypted FROM signing_keys',
    );
    const sealed = Object.fromEntries(rows.map((row) => [row.kid, row.private_key_encrypted]));
    expect(sealed[oldKid]).toBeNull();
    expect(sealed[nextKid]).toMatch(/^v1\./);
    expect(sealed[newNext]).toMatch(/^v1\./);
  });

  it('a retired key leaves the JWKS once everything it signed has expired, not before', async () => {
    const { broker, bot } = await start({ keyTimings: { pollMs: 100, staleMs: 400, signingGraceMs: 800 } });
    await putBoundary(broker, 'crm-orders', { default_ttl: 4 });
    const taskId = await bot.openTask();
    const token = await issue(bot, taskId);
    const { payload } = await resourceServerVerifies(broker, token);
    const oldKid = decodeProtectedHeader(token).kid!;
    const rotated = await asAdmin(broker)('POST', '/v1/admin/keys/rotate');
    expect(rotated.body.retired_kid).toBe(oldKid);

    // Past the signing grace the retired key is given the token's expiry, and stays published until then.
    let publishUntil: string | null = null;
    for (let i = 0; i < 50 && publishUntil === null; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const keys = await asAdmin(broker)('GET', '/v1/admin/keys');
      publishUntil = keys.body.keys.find((key: { kid: string }) => key.kid === oldKid)?.publish_until ?? null;
    }
    expect(publishUntil).not.toBeNull();
    expect(Date.parse(publishUntil!)).toBeGreaterThanOrEqual(payload.exp! * 1000);
    expect(Date.now()).toBeLessThan(payload.exp! * 1000);
    expect(await jwks(broker)).toContain(oldKid);
    expect((await resourceServerVerifies(broker, token)).payload.jti).toBe(payload.jti);

    let gone = false;
    for (let i = 0; i < 80 && !gone; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      gone = !(await jwks(broker)).includes(oldKid);
      if (!gone) expect(Date.now()).toBeLessThan(Date.parse(publishUntil!) + 2_000);
    }
    expect(gone).toBe(true);
    expect(Date.now()).toBeGreaterThanOrEqual(payload.exp! * 1000);
    expect(await jwks(broker)).toEqual([rotated.body.active_kid, rotated.body.next_kid]);
    const audit = await broker.app.broker.db.query<{ data: { kid: string } }>(
      `SELECT data FROM audit_events WHERE kind = 'signing_key.publish_until'`,
    );
    expect(audit.rows.map((row) => row.data.kid)).toEqual([oldKid]);
  });

  it('restart keeps the rotated keys, sealed; tokens of every published key still verify', async () => {
    const { broker, bot } = await start();
    const taskId = await bot.openTask();
    const oldToken = await issue(bot, taskId);
    await asAdmin(broker)('POST', '/v1/admin/keys/rotate');
    const newToken = await issue(bot, taskId);
    const published = await jwks(broker);
    const active = broker.app.broker.keys.active.kid;
    await broker.stop();

    const second = await broker.restart();
    brokers.push(second);
    expect(await jwks(second)).toEqual(published);
    expect(second.app.broker.keys.active.kid).toBe(active);
    // Tokens carry the first instance's issuer; introspection on the same issuer is what matters here.
    const keySet = createRemoteJWKSet(new URL(`${second.url}/.well-known/jwks.json`));
    for (const token of [oldToken, newToken]) {
      await jwtVerify(token, keySet, { issuer: broker.url, audience: BOUNDARY.tool, typ: 'at+jwt' });
    }
  });

  it('rotates automatically, but never onto a next key published for less than the lead (here the period)', async () => {
    // The first start's active key is due after 30 s; the restart (with a new alg) replaces the
    // next key 10 s later, so that key may sign only 30 s after the restart.
    const { broker } = await start({ keyTimings: { pollMs: 250 } });
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    await broker.stop();
    const second = await broker.restart({ TOLLGATE_SIGNING_ALG: 'ES256', TOLLGATE_KEY_ROTATION: '30s' });
    brokers.push(second);
    const before = (await asAdmin(second)('GET', '/v1/admin/keys')).body.keys as Array<{
      kid: string;
      state: string;
      alg: string;
      created_at: string;
      activated_at: string;
    }>;
    const [old, next] = before;
    expect([old!.state, next!.state, next!.alg]).toEqual(['active', 'next', 'ES256']);
    let rotated: typeof before | undefined;
    for (let i = 0; i < 240 && !rotated; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const keys = (await asAdmin(second)('GET', '/v1/admin/keys')).body.keys as typeof before;
      if (keys[0]!.kid !== old!.kid) rotated = keys;
    }
    expect(rotated?.[0]).toMatchObject({ kid: next!.kid, state: 'active', alg: 'ES256' });
    const active = rotated![0]!;
    expect(Date.parse(active.activated_at) - Date.parse(active.created_at)).toBeGreaterThanOrEqual(30_000);
    expect(Date.parse(active.activated_at) - Date.parse(old!.activated_at)).toBeGreaterThanOrEqual(38_000);
    const { rows } = await second.app.broker.db.query<{ actor: string }>(
      `SELECT actor FROM audit_events WHERE kind = 'signing_key.rotated'`,
    );
    expect(rows).toEqual([{ actor: 'system:key-rotation' }]);
  });

  it('a replica that has not read the rotation yet picks the new key up when it meets its kid', async (context) => {
    // Two brokers on one database need PostgreSQL: PGlite is one process's database.
    if (process.env.TOLLGATE_TEST_DB === 'pglite' || !(await postgresReachable())) context.skip();
    const { broker: first, bot } = await start();
    // Same database and public issuer, as two replicas behind one load balancer; this one reads
    // the keys only when it must.
    const second = await startBroker({
      db: first.db,
      env: { TOLLGATE_ADMIN_KEY: first.adminKey, TOLLGATE_KEK: first.kek, TOLLGATE_ISSUER: first.url },
      keyTimings: { pollMs: 600_000, staleMs: 600_000 },
    });
    brokers.push(second);
    const taskId = await bot.openTask();
    // Two rotations in a row: the second replica has never seen the key that now signs.
    await asAdmin(first)('POST', '/v1/admin/keys/rotate');
    const rotated = await asAdmin(first)('POST', '/v1/admin/keys/rotate');
    const token = await issue(bot, taskId);
    expect(decodeProtectedHeader(token).kid).toBe(rotated.body.active_kid);
    expect(await jwks(second)).not.toContain(rotated.body.active_kid);
    expect(await introspect(second, token)).toMatchObject({ active: true });
    expect(await jwks(second)).toContain(rotated.body.active_kid);
    expect(second.app.broker.keys.active.kid).toBe(rotated.body.active_kid);
    // A forged kid costs the replica nothing more than a rate-limited read.
    const [, body, signature] = token.split('.');
    const header = Buffer.from(JSON.stringify({ ...decodeProtectedHeader(token), kid: 'no-such-kid' })).toString('base64url');
    expect(await introspect(second, `${header}.${body}.${signature}`)).toEqual({ active: false });
  });
});

describe('ES256', { timeout: 120_000 }, () => {
  it('signs with ES256 when configured, end to end', async () => {
    const { broker, bot } = await start({ env: { TOLLGATE_SIGNING_ALG: 'ES256' } });
    const metadata = await call(broker.url, 'GET', '/.well-known/oauth-authorization-server');
    expect(metadata.body.access_token_signing_alg_values_supported).toEqual(['ES256']);
    const keys = (await call(broker.url, 'GET', '/.well-known/jwks.json')).body.keys;
    expect(keys.map((key: { kty: string; crv: string; alg: string }) => [key.kty, key.crv, key.alg])).toEqual([
      ['EC', 'P-256', 'ES256'],
      ['EC', 'P-256', 'ES256'],
    ]);
    for (const key of keys) expect(key).not.toHaveProperty('d');
    const taskId = await bot.openTask();
    const token = await issue(bot, taskId);
    const { protectedHeader, payload } = await resourceServerVerifies(broker, token);
    expect(protectedHeader).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    expect(payload.task_id).toBe(taskId);
    expect(await introspect(broker, token)).toMatchObject({ active: true, jti: payload.jti });
  });

  it('moves from EdDSA to ES256 at the next rotation; EdDSA tokens keep verifying', async () => {
    const { broker, bot } = await start();
    const taskId = await bot.openTask();
    const edToken = await issue(bot, taskId);
    expect(decodeProtectedHeader(edToken).alg).toBe('EdDSA');
    await broker.stop();

    const second = await broker.restart({ TOLLGATE_SIGNING_ALG: 'ES256', TOLLGATE_ISSUER: broker.url });
    brokers.push(second);
    // The active key still signs EdDSA; the next key, published now, is ES256.
    const keys = (await asAdmin(second)('GET', '/v1/admin/keys')).body.keys;
    expect(keys.map((key: { state: string; alg: string }) => [key.state, key.alg])).toEqual([
      ['active', 'EdDSA'],
      ['next', 'ES256'],
    ]);
    const metadata = await call(second.url, 'GET', '/.well-known/oauth-authorization-server');
    expect(metadata.body.access_token_signing_alg_values_supported.sort()).toEqual(['ES256', 'EdDSA']);

    expect((await asAdmin(second)('POST', '/v1/admin/keys/rotate')).status).toBe(200);
    const esResponse = await call(second.url, 'POST', `/v1/tasks/${taskId}/credentials`, {
      token: await bot.token(),
      json: { boundary: 'crm-orders', action: 'orders:read' },
    });
    expect(esResponse.status, JSON.stringify(esResponse.body)).toBe(201);
    const esToken = esResponse.body.credential.access_token as string;
    expect(decodeProtectedHeader(esToken).alg).toBe('ES256');
    const keySet = createRemoteJWKSet(new URL(`${second.url}/.well-known/jwks.json`));
    for (const token of [edToken, esToken]) {
      await jwtVerify(token, keySet, { issuer: broker.url, audience: BOUNDARY.tool, typ: 'at+jwt' });
      expect(await introspect(second, token)).toMatchObject({ active: true });
    }
  });
});
