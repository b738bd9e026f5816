import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { connect } from './support/database.js';
import { call, type Response } from './support/http.js';
import { asAdmin, BOUNDARY, introspect, putBoundary, registerBot, type Bot } from './support/scenario.js';
import { assertion, workloadKey } from './support/workload.js';

/**
 * The admin API and the review API through the real HTTP app: authentication, versioned tool
 * boundaries, workload registration, the kill switch, and lease/decision history with filters and
 * cursor pagination.
 */

let broker: TestBroker;
let pgClient: pg.Client | undefined;
let admin: ReturnType<typeof asAdmin>;

beforeAll(async () => {
  broker = await startBroker();
  admin = asAdmin(broker);
  if (broker.db.databaseUrl) pgClient = await connect(broker.db.databaseUrl);
});
afterAll(async () => {
  await pgClient?.end().catch(() => {});
  await broker?.close();
});

/** Reads rows straight from the database: an independent connection on PostgreSQL, the broker's own on PGlite. */
async function rows<T>(text: string, params: unknown[] = []): Promise<T[]> {
  if (pgClient) return (await pgClient.query(text, params)).rows as T[];
  return (await broker.app.broker.db.query<T>(text, params)).rows;
}

async function raw(
  method: string,
  path: string,
  authorization: string | undefined,
  body?: { json?: unknown; form?: Record<string, string> },
): Promise<Response> {
  const headers: Record<string, string> = {};
  if (authorization !== undefined) headers.authorization = authorization;
  let payload: string | undefined;
  if (body?.json !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body.json);
  } else if (body?.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    payload = new URLSearchParams(body.form).toString();
  }
  const response = await fetch(`${broker.url}${path}`, { method, headers, body: payload });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
}

function expectInvalid(response: Response, field: string, label = field): void {
  expect(response.status, `${label}: ${JSON.stringify(response.body)}`).toBe(400);
  expect(response.body, label).toMatchObject({ error: 'invalid_request', field });
  expect(response.body.error_description, label).toContain(field);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function leases(query: string): Promise<any[]> {
  const response = await admin('GET', `/v1/leases?${query}`);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.items;
}

async function issue(
  bot: Bot,
  taskId: string,
  boundary: string,
  action = 'orders:read',
): Promise<{ lease_id: string; token: string; expires_in: number }> {
  const response = await bot.credential(taskId, { boundary, action });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return { lease_id: response.body.lease_id, token: response.body.credential.access_token, expires_in: response.body.expires_in };
}

describe('admin authentication', () => {
  it('answers 401 invalid_client without a key or with a wrong one, on every admin and review route, and changes nothing', async () => {
    await putBoundary(broker, 'authz-existing');
    const bot = await registerBot(broker, 'authz-bot');
    const key = await workloadKey();
    const routes: Array<[string, string, { json?: unknown; form?: Record<string, string> } | undefined]> = [
      ['PUT', '/v1/admin/boundaries/authz-probe', { json: BOUNDARY }],
      ['PUT', '/v1/admin/boundaries/authz-existing', { json: { ...BOUNDARY, enabled: false } }],
      ['GET', '/v1/admin/boundaries/authz-existing', undefined],
      ['GET', '/v1/admin/boundaries', undefined],
      ['DELETE', '/v1/admin/boundaries/authz-existing', undefined],
      ['DELETE', '/v1/admin/boundaries/no-such-boundary', undefined],
      ['PUT', '/v1/admin/workloads/authz-probe', { json: { jwks: { keys: [key.publicJwk] } } }],
      ['PUT', '/v1/admin/workloads/authz-bot', { json: { jwks: { keys: [key.publicJwk] } } }],
      ['GET', '/v1/admin/workloads/authz-bot', undefined],
      ['GET', '/v1/admin/workloads', undefined],
      ['DELETE', '/v1/admin/workloads/authz-bot', undefined],
      ['POST', '/v1/admin/workloads/authz-bot/revoke', undefined],
      ['GET', '/v1/leases', undefined],
      ['GET', '/v1/leases?workload=authz-bot', undefined],
      ['GET', '/v1/decisions', undefined],
      ['POST', '/oauth2/introspect', { form: { token: 'anything' } }],
    ];
    const workloadToken = await bot.token();
    const credentials: Array<[string, string | undefined]> = [
      ['no Authorization header', undefined],
      ['a wrong key', 'Bearer wrong-key-wrong-key-wrong-key-wrong-key'],
      ['the admin key with a character more', `Bearer ${broker.adminKey}x`],
      ['the admin key with a character less', `Bearer ${broker.adminKey.slice(0, -1)}`],
      ['the admin key upper-cased', `Bearer ${broker.adminKey.toUpperCase()}`],
      ['the admin key under Basic', `Basic ${broker.adminKey}`],
      ['the admin key with no scheme', broker.adminKey],
      ['an empty Bearer', 'Bearer '],
      ['a valid workload assertion', `Bearer ${workloadToken}`],
    ];
    for (const [method, path, body] of routes) {
      for (const [label, authorization] of credentials) {
        const response = await raw(method, path, authorization, body);
        expect(response.status, `${method} ${path} with ${label}: ${JSON.stringify(response.body)}`).toBe(401);
        expect(response.body.error, `${method} ${path} with ${label}`).toBe('invalid_client');
        expect(response.body.error_description).toBeTypeOf('string');
        expect(JSON.stringify(response.body)).not.toContain(broker.adminKey);
      }
    }
    // Nothing changed.
    expect((await admin('GET', '/v1/admin/boundaries/authz-probe')).status).toBe(404);
    expect((await admin('GET', '/v1/admin/boundaries/authz-existing')).body).toMatchObject({ version: 1, enabled: true });
    expect((await admin('GET', '/v1/admin/workloads/authz-probe')).status).toBe(404);
    expect((await admin('GET', '/v1/admin/workloads/authz-bot')).body).toMatchObject({ enabled: true, revision: 1 });
    expect((await bot.call('POST', '/v1/tasks', { intent: 'order_status', subject: 'u' })).status).toBe(201);
    // And the right key works on every read route.
    for (const path of ['/v1/admin/boundaries', '/v1/admin/workloads', '/v1/leases', '/v1/decisions']) {
      expect((await admin('GET', path)).status, path).toBe(200);
    }
  });
});

describe('tool boundaries', () => {
  it('creates with 201, updates with 200, versions every change and only a change', async () => {
    const created = await admin('PUT', '/v1/admin/boundaries/crm-versions', BOUNDARY);
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: 'crm-versions',
      version: 1,
      tool: 'https://crm.acme.test',
      actions: ['orders:read', 'orders:refund'],
      intents: ['order_status'],
      default_ttl: 120,
      max_ttl: 600,
      credential: { kind: 'jwt' },
      sensitivity: 'low',
      enabled: true,
      created_at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
      revoked_leases: 0,
    });

    const same = await admin('PUT', '/v1/admin/boundaries/crm-versions', BOUNDARY);
    expect(same.status).toBe(200);
    expect(same.body).toMatchObject({ version: 1, created_at: created.body.created_at });
    // Spelling out the defaults is the same definition too.
    const defaults = await admin('PUT', '/v1/admin/boundaries/crm-versions', { ...BOUNDARY, sensitivity: 'low', enabled: true });
    expect(defaults.status).toBe(200);
    expect(defaults.body.version).toBe(1);

    const changed = await admin('PUT', '/v1/admin/boundaries/crm-versions', { ...BOUNDARY, default_ttl: 60 });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ version: 2, default_ttl: 60 });
    const again = await admin('PUT', '/v1/admin/boundaries/crm-versions', { ...BOUNDARY, default_ttl: 60 });
    expect(again.body.version).toBe(2);
    const sensitive = await admin('PUT', '/v1/admin/boundaries/crm-versions', { ...BOUNDARY, default_ttl: 60, sensitivity: 'high' });
    expect(sensitive.body).toMatchObject({ version: 3, sensitivity: 'high' });

    const history = await rows<{ version: number; default_ttl: number; sensitivity: string }>(
      'SELECT version, default_ttl, sensitivity FROM boundaries WHERE id = $1 ORDER BY version',
      ['crm-versions'],
    );
    expect(history).toEqual([
      { version: 1, default_ttl: 120, sensitivity: 'low' },
      { version: 2, default_ttl: 60, sensitivity: 'low' },
      { version: 3, default_ttl: 60, sensitivity: 'high' },
    ]);

    const got = await admin('GET', '/v1/admin/boundaries/crm-versions');
    expect(got.status).toBe(200);
    const { revoked_leases: _ignored, ...view } = sensitive.body;
    expect(got.body).toEqual(view);
  });

  it('records on each lease the boundary version it was issued under', async () => {
    await putBoundary(broker, 'crm-leased');
    const bot = await registerBot(broker, 'version-bot');
    const taskId = await bot.openTask();
    const first = await issue(bot, taskId, 'crm-leased');
    expect(first.expires_in).toBe(120);

    const changed = await admin('PUT', '/v1/admin/boundaries/crm-leased', { ...BOUNDARY, default_ttl: 45 });
    expect(changed.body).toMatchObject({ version: 2, revoked_leases: 0 });
    const second = await issue(bot, taskId, 'crm-leased');
    expect(second.expires_in).toBe(45);

    const items = await leases('boundary=crm-leased');
    expect(items.map((lease) => [lease.lease_id, lease.boundary_version, lease.state])).toEqual([
      [second.lease_id, 2, 'active'],
      [first.lease_id, 1, 'active'],
    ]);
    // A change that keeps the boundary enabled does not end the leases issued under the old version.
    expect((await introspect(broker, first.token)).active).toBe(true);
    const decisions = await admin('GET', `/v1/decisions?task=${taskId}&outcome=permit`);
    expect(decisions.body.items.map((d: { boundary_version: number }) => d.boundary_version)).toEqual([2, 1]);
  });

  it('refuses invalid definitions with 400 invalid_request naming the field, and stores nothing', async () => {
    await putBoundary(broker, 'crm-valid');
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['default_ttl > max_ttl', { default_ttl: 700, max_ttl: 600 }, 'default_ttl'],
      ['max_ttl > 3600', { max_ttl: 3601 }, 'max_ttl'],
      ['both over 3600', { default_ttl: 4000, max_ttl: 4000 }, 'default_ttl'],
      ['default_ttl 0', { default_ttl: 0 }, 'default_ttl'],
      ['max_ttl 0', { max_ttl: 0 }, 'max_ttl'],
      ['negative ttl', { default_ttl: -5 }, 'default_ttl'],
      ['non-integer ttl', { default_ttl: 1.5 }, 'default_ttl'],
      ['ttl as a string', { default_ttl: '120' }, 'default_ttl'],
      ['ttl null', { max_ttl: null }, 'max_ttl'],
      ['empty actions', { actions: [] }, 'actions'],
      ['actions as a string', { actions: 'orders:read' }, 'actions'],
      ['an action of the wrong type', { actions: [5] }, 'actions.0'],
      ['an empty action', { actions: ['orders:read', ''] }, 'actions.1'],
      ['a repeated action', { actions: ['orders:read', 'orders:read'] }, 'actions'],
      ['empty intents', { intents: [] }, 'intents'],
      ['a bad intent', { intents: ['Order Status'] }, 'intents.0'],
      ['tool as a number', { tool: 5 }, 'tool'],
      ['empty tool', { tool: '' }, 'tool'],
      ['tool with a space', { tool: 'https://crm.acme.test/a b' }, 'tool'],
      ['missing tool', { tool: undefined }, 'tool'],
      ['missing credential', { credential: undefined }, 'credential'],
      ['credential kind vault without a path', { credential: { kind: 'vault' } }, 'credential.path'],
      ['a vault path under sys/', { credential: { kind: 'vault', path: 'sys/leases/revoke' } }, 'credential.path'],
      ['an unknown vault setting', { credential: { kind: 'vault', path: 'database/creds/ro', token: 'x' } }, 'credential.token'],
      [
        'credential kind aws-sts without a role',
        { credential: { kind: 'aws-sts', region: 'us-east-1', session_policy: { Statement: [] } } },
        'credential.role_arn',
      ],
      ['credential kind aws_sts', { credential: { kind: 'aws_sts' } }, 'credential.kind'],
      ['credential as a string', { credential: 'jwt' }, 'credential'],
      ['an unknown credential setting', { credential: { kind: 'jwt', audience: 'x' } }, 'credential.audience'],
      ['an unknown field', { approver: 'alice' }, 'approver'],
      ['enabled as a string', { enabled: 'yes' }, 'enabled'],
      ['an unknown sensitivity', { sensitivity: 'extreme' }, 'sensitivity'],
      ['version set by the client', { version: 7 }, 'version'],
    ];
    for (const [label, override, field] of cases) {
      const body = { ...BOUNDARY, ...override };
      for (const key of Object.keys(body))
        if ((body as Record<string, unknown>)[key] === undefined) delete (body as Record<string, unknown>)[key];
      expectInvalid(await admin('PUT', '/v1/admin/boundaries/crm-fresh', body), field, `new boundary, ${label}`);
      expectInvalid(await admin('PUT', '/v1/admin/boundaries/crm-valid', body), field, `existing boundary, ${label}`);
    }
    // Bodies that are not an object at all.
    for (const json of [[], 'boundary', 42, null]) {
      const response = await admin('PUT', '/v1/admin/boundaries/crm-fresh', json);
      expect(response.status, JSON.stringify(json)).toBe(400);
      expect(response.body.error).toBe('invalid_request');
    }
    expect((await admin('GET', '/v1/admin/boundaries/crm-fresh')).status).toBe(404);
    expect((await admin('GET', '/v1/admin/boundaries/crm-valid')).body).toMatchObject({ version: 1, default_ttl: 120, max_ttl: 600 });
    expect(await rows('SELECT version FROM boundaries WHERE id = $1', ['crm-valid'])).toHaveLength(1);
    expect(await rows('SELECT version FROM boundaries WHERE id = $1', ['crm-fresh'])).toHaveLength(0);
  });

  it('accepts the edges of the TTL range', async () => {
    const edges = await admin('PUT', '/v1/admin/boundaries/crm-edges', { ...BOUNDARY, default_ttl: 3600, max_ttl: 3600 });
    expect(edges.status).toBe(201);
    const one = await admin('PUT', '/v1/admin/boundaries/crm-edges', { ...BOUNDARY, default_ttl: 1, max_ttl: 1 });
    expect(one.body).toMatchObject({ version: 2, default_ttl: 1, max_ttl: 1 });
  });

  it('refuses bad boundary ids on every route with 400 naming the id', async () => {
    const bad = ['CRM', 'Crm-orders', 'a'.repeat(64), '..%2Fx', '%2E%2E%2Fx', '-leading', '.hidden', 'has%20space', 'caf%C3%A9', 'a%00b'];
    for (const id of bad) {
      expectInvalid(await admin('PUT', `/v1/admin/boundaries/${id}`, BOUNDARY), 'id', `PUT ${id}`);
      expectInvalid(await admin('GET', `/v1/admin/boundaries/${id}`), 'id', `GET ${id}`);
      expectInvalid(await admin('DELETE', `/v1/admin/boundaries/${id}`), 'id', `DELETE ${id}`);
    }
    // 63 characters is the longest id.
    expect((await admin('PUT', `/v1/admin/boundaries/${'a'.repeat(63)}`, BOUNDARY)).status).toBe(201);
    const stored = await rows<{ id: string }>('SELECT DISTINCT id FROM boundaries');
    expect(stored.every(({ id }) => /^[a-z0-9][a-z0-9._-]{0,62}$/.test(id))).toBe(true);
  });

  it('gets one (404 for an unknown id) and lists each boundary once at its latest version', async () => {
    await putBoundary(broker, 'list-a');
    await putBoundary(broker, 'list-b', { tool: 'https://b.acme.test' });
    await putBoundary(broker, 'list-b', { tool: 'https://b2.acme.test' });
    const missing = await admin('GET', '/v1/admin/boundaries/no-such-boundary');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error: 'not_found' });

    const list = await admin('GET', '/v1/admin/boundaries');
    expect(list.status).toBe(200);
    const ids = list.body.items.map((b: { id: string }) => b.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(list.body.items.find((b: { id: string }) => b.id === 'list-a')).toMatchObject({ version: 1, tool: 'https://crm.acme.test' });
    expect(list.body.items.find((b: { id: string }) => b.id === 'list-b')).toMatchObject({ version: 2, tool: 'https://b2.acme.test' });
    const one = await admin('GET', '/v1/admin/boundaries/list-b');
    expect(list.body.items.find((b: { id: string }) => b.id === 'list-b')).toEqual(one.body);
  });

  it('DELETE disables the boundary as a new version and revokes its active leases; later requests get boundary_disabled', async () => {
    await putBoundary(broker, 'doomed');
    await putBoundary(broker, 'survivor', { tool: 'https://survivor.acme.test' });
    const bot = await registerBot(broker, 'doomed-bot');
    const taskA = await bot.openTask();
    const taskB = await bot.openTask();
    const a1 = await issue(bot, taskA, 'doomed');
    const a2 = await issue(bot, taskA, 'doomed', 'orders:refund');
    const b1 = await issue(bot, taskB, 'doomed');
    const kept = await issue(bot, taskA, 'survivor');
    // One already revoked by the bot itself keeps its own reason.
    const early = await issue(bot, taskB, 'doomed');
    expect((await call(broker.url, 'POST', '/oauth2/revoke', { token: await bot.token(), form: { token: early.token } })).status).toBe(200);

    const deleted = await admin('DELETE', '/v1/admin/boundaries/doomed');
    expect(deleted.status).toBe(200);
    expect(deleted.body).toMatchObject({ id: 'doomed', version: 2, enabled: false, revoked_leases: 3 });

    for (const lease of [a1, a2, b1]) expect(await introspect(broker, lease.token)).toEqual({ active: false });
    expect((await introspect(broker, kept.token)).active).toBe(true);
    const items = await leases('boundary=doomed');
    const byId = new Map(items.map((lease) => [lease.lease_id, lease]));
    for (const lease of [a1, a2, b1]) {
      expect(byId.get(lease.lease_id)).toMatchObject({ state: 'revoked', revoke_reason: 'boundary_disabled', boundary_version: 1 });
      expect(byId.get(lease.lease_id).revoked_at).toMatch(/Z$/);
    }
    expect(byId.get(early.lease_id)).toMatchObject({ state: 'revoked', revoke_reason: 'revoked_by_client' });
    expect((await leases('boundary=survivor'))[0]).toMatchObject({ lease_id: kept.lease_id, state: 'active', revoke_reason: null });

    const got = await admin('GET', '/v1/admin/boundaries/doomed');
    expect(got.body).toMatchObject({ version: 2, enabled: false });
    const refused = await bot.credential(taskA, { boundary: 'doomed', action: 'orders:read' });
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ error: 'access_denied', reasons: ['boundary_disabled'] });
    const decision = await admin('GET', `/v1/decisions?task=${taskA}&outcome=deny`);
    expect(decision.body.items[0]).toMatchObject({
      decision_id: refused.body.decision_id,
      reasons: ['boundary_disabled'],
      boundary_version: 2,
    });

    // Deleting again changes nothing; an unknown boundary is 404.
    const again = await admin('DELETE', '/v1/admin/boundaries/doomed');
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ version: 2, enabled: false, revoked_leases: 0 });
    const unknown = await admin('DELETE', '/v1/admin/boundaries/never-was');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toBe('not_found');
    expect(await rows('SELECT 1 FROM boundaries WHERE id = $1', ['never-was'])).toHaveLength(0);

    // Re-enabling is another version; the revoked leases stay revoked.
    const revived = await admin('PUT', '/v1/admin/boundaries/doomed', BOUNDARY);
    expect(revived.body).toMatchObject({ version: 3, enabled: true });
    const fresh = await issue(bot, taskA, 'doomed');
    expect((await leases('boundary=doomed&state=active')).map((lease) => [lease.lease_id, lease.boundary_version])).toEqual([
      [fresh.lease_id, 3],
    ]);
    expect(await introspect(broker, a1.token)).toEqual({ active: false });
  });

  it('a PUT with enabled:false disables and revokes just as DELETE does', async () => {
    await putBoundary(broker, 'switched-off');
    const bot = await registerBot(broker, 'switch-bot');
    const taskId = await bot.openTask();
    const lease = await issue(bot, taskId, 'switched-off');
    const off = await admin('PUT', '/v1/admin/boundaries/switched-off', { ...BOUNDARY, enabled: false });
    expect(off.status).toBe(200);
    expect(off.body).toMatchObject({ version: 2, enabled: false, revoked_leases: 1 });
    expect(await introspect(broker, lease.token)).toEqual({ active: false });
    expect((await leases(`task=${taskId}`))[0]).toMatchObject({ revoke_reason: 'boundary_disabled' });
    expect((await bot.credential(taskId, { boundary: 'switched-off', action: 'orders:read' })).body.reasons).toEqual(['boundary_disabled']);
  });
});

describe('workloads', () => {
  it('registers public keys, gets, lists, re-keys and deletes', async () => {
    const key = await workloadKey('EdDSA');
    const ecKey = await workloadKey('ES256');
    const put = await admin('PUT', '/v1/admin/workloads/crm-bot', { jwks: { keys: [key.publicJwk, ecKey.publicJwk] } });
    expect(put.status).toBe(201);
    expect(put.body).toEqual({
      id: 'crm-bot',
      jwks: { keys: [key.publicJwk, ecKey.publicJwk] },
      enabled: true,
      revision: 1,
      created_at: expect.stringMatching(/Z$/),
      updated_at: expect.stringMatching(/Z$/),
    });
    const got = await admin('GET', '/v1/admin/workloads/crm-bot');
    expect(got.status).toBe(200);
    expect(got.body).toEqual(put.body);
    const list = await admin('GET', '/v1/admin/workloads');
    expect(list.body.items.filter((w: { id: string }) => w.id === 'crm-bot')).toEqual([put.body]);

    const rekeyed = await admin('PUT', '/v1/admin/workloads/crm-bot', { jwks: { keys: [ecKey.publicJwk] } });
    expect(rekeyed.status).toBe(200);
    expect(rekeyed.body).toMatchObject({ revision: 2, jwks: { keys: [ecKey.publicJwk] }, created_at: put.body.created_at });

    const deleted = await admin('DELETE', '/v1/admin/workloads/crm-bot');
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ workload_id: 'crm-bot', enabled: false, revoked_tasks: 0, revoked_leases: 0 });
    expect((await admin('GET', '/v1/admin/workloads/crm-bot')).body).toMatchObject({ enabled: false });
    expect(
      (
        await call(broker.url, 'POST', '/v1/tasks', {
          token: await assertion('crm-bot', ecKey, broker.url),
          json: { intent: 'order_status', subject: 'u' },
        })
      ).status,
    ).toBe(401);

    for (const [method, path] of [
      ['GET', '/v1/admin/workloads/no-such-bot'],
      ['DELETE', '/v1/admin/workloads/no-such-bot'],
      ['POST', '/v1/admin/workloads/no-such-bot/revoke'],
    ] as const) {
      const response = await admin(method, path);
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(response.body.error).toBe('not_found');
    }
    expect(await rows('SELECT 1 FROM workloads WHERE id = $1', ['no-such-bot'])).toHaveLength(0);
  });

  it('refuses private key material, foreign key types and malformed key sets with 400, storing nothing', async () => {
    const { exportJWK, generateKeyPair, generateSecret } = await import('jose');
    const ed = await generateKeyPair('EdDSA', { extractable: true });
    const ec = await generateKeyPair('ES256', { extractable: true });
    const rsa = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
    const ed448 = await generateKeyPair('EdDSA', { extractable: true, crv: 'Ed448' } as never).catch(() => undefined);
    const p384 = await generateKeyPair('ES384', { extractable: true });
    const edPrivate = await exportJWK(ed.privateKey);
    const ecPrivate = await exportJWK(ec.privateKey);
    const edPublic = await exportJWK(ed.publicKey);
    const hmac = await exportJWK((await generateSecret('HS256', { extractable: true })) as import('jose').CryptoKey);
    const existingKey = await workloadKey();
    await admin('PUT', '/v1/admin/workloads/keyed-bot', { jwks: { keys: [existingKey.publicJwk] } });

    const secrets = [edPrivate.d!, ecPrivate.d!, hmac.k!];
    const cases: Array<[string, unknown, string]> = [
      ['an Ed25519 private JWK (d)', { keys: [edPrivate] }, 'jwks.keys.0'],
      ['a P-256 private JWK (d)', { keys: [ecPrivate] }, 'jwks.keys.0'],
      ['a private key after a public one', { keys: [edPublic, edPrivate] }, 'jwks.keys.1'],
      ['a public key with a stray d', { keys: [{ ...edPublic, d: 'AAAA' }] }, 'jwks.keys.0'],
      ['an RSA public key', { keys: [await exportJWK(rsa.publicKey)] }, 'jwks.keys.0.kty'],
      ['an RSA private key', { keys: [await exportJWK(rsa.privateKey)] }, 'jwks.keys.0.kty'],
      ['an oct (HMAC) key', { keys: [hmac] }, 'jwks.keys.0.kty'],
      ['a P-384 key', { keys: [await exportJWK(p384.publicKey)] }, 'jwks.keys.0'],
      ['an Ed25519 key claiming ES256', { keys: [{ ...edPublic, alg: 'ES256' }] }, 'jwks.keys.0'],
      ['an Ed25519 key for encryption', { keys: [{ ...edPublic, use: 'enc' }] }, 'jwks.keys.0.use'],
      ['an EC key without y', { keys: [{ ...(await exportJWK(ec.publicKey)), y: undefined }] }, 'jwks.keys.0'],
      ['an x5c member', { keys: [{ ...edPublic, x5c: ['AAAA'] }] }, 'jwks.keys.0'],
      ['x not base64url', { keys: [{ ...edPublic, x: 'not base64!' }] }, 'jwks.keys.0.x'],
      ['an Ed25519 x of 3 bytes', { keys: [{ ...edPublic, x: 'AAAA' }] }, 'jwks.keys.0'],
      ['an Ed25519 x of 31 bytes', { keys: [{ ...edPublic, x: Buffer.alloc(31, 7).toString('base64url') }] }, 'jwks.keys.0'],
      [
        'a P-256 point off the curve',
        { keys: [{ ...(await exportJWK(ec.publicKey)), y: (await exportJWK(ec.publicKey)).x }] },
        'jwks.keys.0',
      ],
      ['key_ops for encryption', { keys: [{ ...edPublic, key_ops: ['encrypt'] }] }, 'jwks.keys.0.key_ops.0'],
      ['key_ops with sign', { keys: [{ ...edPublic, key_ops: ['verify', 'sign'] }] }, 'jwks.keys.0.key_ops'],
      ['no keys', { keys: [] }, 'jwks.keys'],
      ['keys not an array', { keys: edPublic }, 'jwks.keys'],
      ['an unknown jwks member', { keys: [edPublic], extra: true }, 'jwks.extra'],
    ];
    if (ed448) cases.push(['an Ed448 key', { keys: [await exportJWK(ed448.publicKey)] }, 'jwks.keys.0']);
    for (const [label, jwks, field] of cases) {
      for (const id of ['fresh-bot', 'keyed-bot']) {
        const response = await admin('PUT', `/v1/admin/workloads/${id}`, { jwks });
        expectInvalid(response, field, `${id}: ${label}`);
        for (const secret of secrets) expect(JSON.stringify(response.body), `${label} echoes key material`).not.toContain(secret);
      }
    }
    expectInvalid(await admin('PUT', '/v1/admin/workloads/fresh-bot', {}), 'jwks', 'no jwks');
    expectInvalid(
      await admin('PUT', '/v1/admin/workloads/fresh-bot', { jwks: { keys: [edPublic] }, enable: true }),
      'enable',
      'unknown top-level field',
    );
    expectInvalid(
      await admin('PUT', '/v1/admin/workloads/fresh-bot', { jwks: { keys: [edPublic] }, enabled: 'yes' }),
      'enabled',
      'enabled not a boolean',
    );

    expect((await admin('GET', '/v1/admin/workloads/fresh-bot')).status).toBe(404);
    expect(await rows('SELECT 1 FROM workloads WHERE id = $1', ['fresh-bot'])).toHaveLength(0);
    expect((await admin('GET', '/v1/admin/workloads/keyed-bot')).body).toMatchObject({
      revision: 1,
      jwks: { keys: [existingKey.publicJwk] },
    });
    // key_ops, when given, says verify.
    const verifyOnly = await admin('PUT', '/v1/admin/workloads/verify-bot', { jwks: { keys: [{ ...edPublic, key_ops: ['verify'] }] } });
    expect(verifyOnly.status, JSON.stringify(verifyOnly.body)).toBe(201);
    const stored = JSON.stringify(await rows('SELECT jwks FROM workloads'));
    for (const secret of secrets) expect(stored).not.toContain(secret);
  });

  it('refuses bad workload ids and accepts SPIFFE IDs', async () => {
    const key = await workloadKey();
    const spiffe = (id: string) => encodeURIComponent(id);
    const bad = [
      'Chatbot',
      'a'.repeat(64),
      '..%2Fx',
      'https%3A%2F%2Facme.test%2Fbot',
      spiffe('spiffe://'),
      spiffe('spiffe://acme.test'),
      spiffe('spiffe://acme.test/'),
      spiffe('spiffe://ACME.test/bot'),
      spiffe('spiffe://acme.test/ns//bot'),
      spiffe('spiffe://acme.test/bot/'),
      // The SPIFFE-ID spec: no "." or ".." segments, and only [A-Za-z0-9._-] in a segment.
      spiffe('spiffe://acme.test/.'),
      spiffe('spiffe://acme.test/..'),
      spiffe('spiffe://acme.test/ns/../admin'),
      spiffe('spiffe://acme.test/ns/./bot'),
      spiffe('spiffe://acme.test/bot@evil'),
      spiffe('spiffe://acme.test/bot:1'),
      spiffe('spiffe://acme.test/b%2Fot'),
      spiffe('spiffe://user@acme.test/bot'),
      spiffe('spiffe://acme.test:8443/bot'),
    ];
    for (const id of bad) {
      expectInvalid(await admin('PUT', `/v1/admin/workloads/${id}`, { jwks: { keys: [key.publicJwk] } }), 'id', `PUT ${id}`);
      expectInvalid(await admin('GET', `/v1/admin/workloads/${id}`), 'id', `GET ${id}`);
      expectInvalid(await admin('DELETE', `/v1/admin/workloads/${id}`), 'id', `DELETE ${id}`);
      expectInvalid(await admin('POST', `/v1/admin/workloads/${id}/revoke`), 'id', `revoke ${id}`);
    }
    for (const id of ['spiffe://acme.test/ns/prod/sa/chatbot', 'spiffe://acme_corp.test/Bot-1.v2_x', 'spiffe://acme.test/...']) {
      const response = await admin('PUT', `/v1/admin/workloads/${spiffe(id)}`, { jwks: { keys: [key.publicJwk] } });
      expect(response.status, `${id}: ${JSON.stringify(response.body)}`).toBe(201);
      expect(response.body.id).toBe(id);
    }
  });

  // Fastify's router refuses path parameters over 100 characters by default; SPIFFE IDs are longer.
  it('registers a valid SPIFFE ID longer than 100 characters', async () => {
    const key = await workloadKey();
    const id = 'spiffe://prod.cluster.acme.test/ns/customer-support/sa/order-status-chatbot-frontend-deployment-eu-west1';
    expect(id.length).toBeGreaterThan(100);
    const response = await admin('PUT', `/v1/admin/workloads/${encodeURIComponent(id)}`, { jwks: { keys: [key.publicJwk] } });
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    expect(response.body.id).toBe(id);
    const tooLong = await admin('GET', `/v1/admin/workloads/${'a'.repeat(2200)}`);
    expect(tooLong.status).toBe(414);
    expect(tooLong.body).toEqual({ error: 'invalid_request', error_description: 'a path parameter is too long' });
  });

  it('the kill switch revokes every active lease and task of the workload and disables it', async () => {
    await putBoundary(broker, 'kill-crm');
    const bot = await registerBot(broker, 'kill-bot');
    const bystander = await registerBot(broker, 'bystander-bot');
    const taskA = await bot.openTask();
    const taskB = await bot.openTask();
    const done = await bot.openTask();
    const leasesA = [await issue(bot, taskA, 'kill-crm'), await issue(bot, taskA, 'kill-crm', 'orders:refund')];
    const leaseB = await issue(bot, taskB, 'kill-crm');
    const finished = await issue(bot, done, 'kill-crm');
    expect((await bot.call('POST', `/v1/tasks/${done}/complete`)).status).toBe(200);
    const otherTask = await bystander.openTask();
    const otherLease = await issue(bystander, otherTask, 'kill-crm');

    const killed = await admin('POST', '/v1/admin/workloads/kill-bot/revoke');
    expect(killed.status).toBe(200);
    expect(killed.body).toEqual({ workload_id: 'kill-bot', enabled: false, revoked_tasks: 2, revoked_leases: 3 });

    for (const lease of [...leasesA, leaseB, finished]) expect(await introspect(broker, lease.token)).toEqual({ active: false });
    expect((await introspect(broker, otherLease.token)).active).toBe(true);
    const items = await leases('workload=kill-bot');
    expect(items).toHaveLength(4);
    for (const item of items) {
      expect(item.state).toBe('revoked');
      expect(item.revoke_reason).toBe(item.lease_id === finished.lease_id ? 'task_completed' : 'workload_revoked');
    }
    expect(await leases('workload=kill-bot&state=active')).toEqual([]);

    const tasks = await rows<{ id: string; state: string; end_reason: string | null }>(
      'SELECT id, state, end_reason FROM tasks WHERE workload_id = $1 ORDER BY id',
      ['kill-bot'],
    );
    const byId = new Map(tasks.map((task) => [task.id, task]));
    expect(byId.get(taskA)).toMatchObject({ state: 'revoked', end_reason: 'workload_revoked' });
    expect(byId.get(taskB)).toMatchObject({ state: 'revoked', end_reason: 'workload_revoked' });
    expect(byId.get(done)).toMatchObject({ state: 'completed', end_reason: 'task_completed' });
    expect((await rows<{ state: string }>('SELECT state FROM tasks WHERE id = $1', [otherTask]))[0]!.state).toBe('active');

    // The workload can no longer authenticate, cached assertion or fresh.
    const cached = await bot.call('GET', `/v1/tasks/${taskA}`);
    expect(cached.status).toBe(401);
    expect(cached.body.error).toBe('invalid_client');
    const fresh = await call(broker.url, 'GET', `/v1/tasks/${taskA}`, { token: await assertion('kill-bot', bot.key, broker.url) });
    expect(fresh.status).toBe(401);
    expect((await admin('GET', '/v1/admin/workloads/kill-bot')).body).toMatchObject({ enabled: false });
    expect((await bystander.credential(otherTask, { boundary: 'kill-crm', action: 'orders:read' })).status).toBe(201);

    // Re-applying the same configuration does not undo the kill switch...
    const reapplied = await admin('PUT', '/v1/admin/workloads/kill-bot', { jwks: { keys: [bot.key.publicJwk] } });
    expect(reapplied.status).toBe(200);
    expect(reapplied.body.enabled).toBe(false);
    expect((await call(broker.url, 'GET', `/v1/tasks/${taskA}`, { token: await assertion('kill-bot', bot.key, broker.url) })).status).toBe(
      401,
    );
    // ...only an explicit enabled: true does; even then the revoked tasks stay revoked.
    expect((await admin('PUT', '/v1/admin/workloads/kill-bot', { jwks: { keys: [bot.key.publicJwk] }, enabled: true })).body.enabled).toBe(
      true,
    );
    const token = await assertion('kill-bot', bot.key, broker.url);
    const shown = await call(broker.url, 'GET', `/v1/tasks/${taskA}`, { token });
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ state: 'revoked', end_reason: 'workload_revoked' });
    const refused = await call(broker.url, 'POST', `/v1/tasks/${taskB}/credentials`, {
      token,
      json: { boundary: 'kill-crm', action: 'orders:read' },
    });
    expect(refused.status).toBe(403);
    expect(refused.body.reasons).toEqual(['task_not_active']);
    for (const lease of leasesA) expect(await introspect(broker, lease.token)).toEqual({ active: false });

    // A second kill finds nothing left to revoke.
    const again = await admin('POST', '/v1/admin/workloads/kill-bot/revoke');
    expect(again.body).toEqual({ workload_id: 'kill-bot', enabled: false, revoked_tasks: 0, revoked_leases: 0 });
  });

  it('refuses a body on DELETE and on the kill switch, changing nothing', async () => {
    await putBoundary(broker, 'body-crm');
    await registerBot(broker, 'body-bot');
    for (const [method, path] of [
      ['DELETE', '/v1/admin/boundaries/body-crm'],
      ['DELETE', '/v1/admin/workloads/body-bot'],
      ['POST', '/v1/admin/workloads/body-bot/revoke'],
    ] as const) {
      expectInvalid(await admin(method, path, { reason: 'oops' }), 'reason', `${method} ${path}`);
    }
    expect((await admin('GET', '/v1/admin/boundaries/body-crm')).body).toMatchObject({ version: 1, enabled: true });
    expect((await admin('GET', '/v1/admin/workloads/body-bot')).body).toMatchObject({ revision: 1, enabled: true });
    // An empty object is no input at all.
    expect((await admin('POST', '/v1/admin/workloads/body-bot/revoke', {})).status).toBe(200);
  });

  it('DELETE of a workload also ends its tasks and leases', async () => {
    await putBoundary(broker, 'del-crm');
    const bot = await registerBot(broker, 'deleted-bot');
    const taskId = await bot.openTask();
    const lease = await issue(bot, taskId, 'del-crm');
    const deleted = await admin('DELETE', '/v1/admin/workloads/deleted-bot');
    expect(deleted.body).toEqual({ workload_id: 'deleted-bot', enabled: false, revoked_tasks: 1, revoked_leases: 1 });
    expect(await introspect(broker, lease.token)).toEqual({ active: false });
    expect((await leases(`task=${taskId}`))[0]).toMatchObject({ state: 'revoked', revoke_reason: 'workload_revoked' });
    expect((await rows<{ state: string }>('SELECT state FROM tasks WHERE id = $1', [taskId]))[0]!.state).toBe('revoked');
  });
});

describe('review API', () => {
  let bot: Bot;
  let taskA: string;
  let taskB: string;
  let mark: string;
  const batchA: string[] = [];
  const batchB: string[] = [];
  const denials: string[] = [];

  beforeAll(async () => {
    await putBoundary(broker, 'review-crm');
    await putBoundary(broker, 'review-pay', { tool: 'https://pay.acme.test' });
    bot = await registerBot(broker, 'review-bot');
    taskA = await bot.openTask();
    taskB = await bot.openTask();
    for (let i = 0; i < 3; i++) batchA.push((await issue(bot, taskA, 'review-crm')).lease_id);
    await sleep(60);
    mark = new Date().toISOString();
    await sleep(60);
    for (let i = 0; i < 3; i++) batchB.push((await issue(bot, taskB, 'review-crm')).lease_id);
    batchB.push((await issue(bot, taskB, 'review-pay')).lease_id);
    for (const action of ['orders:delete', 'orders:drop']) {
      const denied = await bot.credential(taskB, { boundary: 'review-crm', action });
      expect(denied.status).toBe(403);
      denials.push(denied.body.decision_id);
    }
  });

  it('lists leases newest first with every documented member', async () => {
    const items = await leases('workload=review-bot');
    expect(items.map((lease) => lease.lease_id)).toEqual([...batchB].reverse().concat([...batchA].reverse()));
    expect(Object.keys(items[0]).sort()).toEqual(
      [
        'action',
        'boundary_id',
        'boundary_version',
        'credential_kind',
        'expires_at',
        'issued_at',
        'lease_id',
        'resource',
        'revoke_reason',
        'revoked_at',
        'state',
        'task_id',
        'workload_id',
      ].sort(),
    );
    expect(items[0]).toMatchObject({
      workload_id: 'review-bot',
      boundary_id: 'review-pay',
      boundary_version: 1,
      task_id: taskB,
      action: 'orders:read',
      state: 'active',
      revoked_at: null,
      revoke_reason: null,
    });
    const response = await admin('GET', '/v1/leases?workload=review-bot');
    expect(response.body.next_cursor).toBeNull();
  });

  it('pages leases with limit and cursor: every lease once, in order, ending with a null cursor', async () => {
    const all = (await leases('workload=review-bot')).map((lease) => lease.lease_id);
    expect(all).toHaveLength(7);
    const seen: string[] = [];
    const sizes: number[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const response: Response = await admin(
        'GET',
        `/v1/leases?workload=review-bot&limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      expect(response.status).toBe(200);
      sizes.push(response.body.items.length);
      seen.push(...response.body.items.map((lease: { lease_id: string }) => lease.lease_id));
      cursor = response.body.next_cursor;
      if (cursor === null) break;
      expect(cursor).toBeTypeOf('string');
    }
    expect(sizes).toEqual([3, 3, 1]);
    expect(cursor).toBeNull();
    expect(seen).toEqual(all);
    expect(new Set(seen).size).toBe(7);
    // The cursor carries the filter's position, not the filter: combined with another filter it still narrows.
    const first = await admin('GET', '/v1/leases?workload=review-bot&limit=3');
    const narrowed = await admin(
      'GET',
      `/v1/leases?workload=review-bot&boundary=review-crm&limit=3&cursor=${encodeURIComponent(first.body.next_cursor)}`,
    );
    expect(narrowed.body.items.map((lease: { lease_id: string }) => lease.lease_id)).toEqual(
      all
        .slice(3)
        .filter((id) => id !== batchB[3])
        .slice(0, 3),
    );
  });

  it('filters leases by task, workload, boundary, state, since and until', async () => {
    const ids = async (query: string) => (await leases(query)).map((lease) => lease.lease_id).sort();
    expect(await ids(`task=${taskA}`)).toEqual([...batchA].sort());
    expect(await ids(`task=${taskB}`)).toEqual([...batchB].sort());
    expect(await ids('workload=review-bot&boundary=review-pay')).toEqual([batchB[3]]);
    expect(await ids('workload=review-bot&boundary=review-crm')).toEqual([...batchA, ...batchB.slice(0, 3)].sort());
    expect(await ids('workload=nobody')).toEqual([]);
    expect(await ids(`workload=review-bot&since=${encodeURIComponent(mark)}`)).toEqual([...batchB].sort());
    expect(await ids(`workload=review-bot&until=${encodeURIComponent(mark)}`)).toEqual([...batchA].sort());
    expect(
      await ids(
        `workload=review-bot&since=${encodeURIComponent(mark)}&until=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`,
      ),
    ).toEqual([...batchB].sort());
    expect(await ids(`workload=review-bot&until=2000-01-01T00:00:00Z`)).toEqual([]);
    // Offsets and plain dates are RFC 3339 too.
    const markAt = new Date(mark);
    const plus2 = new Date(markAt.getTime() + 2 * 3600_000).toISOString().replace('Z', '+02:00');
    expect(await ids(`workload=review-bot&since=${encodeURIComponent(plus2)}`)).toEqual([...batchB].sort());
    expect(await ids(`workload=review-bot&since=2000-01-01`)).toHaveLength(7);

    // State: complete task A (its leases revoked), and let a 1-second lease expire on a task of its own.
    expect((await bot.call('POST', `/v1/tasks/${taskA}/complete`)).status).toBe(200);
    const shortTask = await bot.openTask();
    const short = await bot.credential(shortTask, { boundary: 'review-crm', action: 'orders:read', ttl: 1 });
    expect(short.status).toBe(201);
    await sleep(1300);
    expect(await ids('workload=review-bot&state=revoked')).toEqual([...batchA].sort());
    expect(await ids('workload=review-bot&state=expired')).toEqual([short.body.lease_id]);
    expect(await ids('workload=review-bot&state=active')).toEqual([...batchB].sort());
    expect((await leases(`task=${taskA}`)).every((lease) => lease.revoke_reason === 'task_completed')).toBe(true);
  });

  it('lists, filters and pages decisions', async () => {
    const get = async (query: string) => {
      const response = await admin('GET', `/v1/decisions?${query}`);
      expect(response.status, JSON.stringify(response.body)).toBe(200);
      return response.body as { items: any[]; next_cursor: string | null };
    };
    const denied = await get(`task=${taskB}&outcome=deny`);
    expect(denied.items.map((d) => d.decision_id)).toEqual([...denials].reverse());
    expect(denied.items[0]).toMatchObject({
      task_id: taskB,
      workload_id: 'review-bot',
      boundary_id: 'review-crm',
      action: 'orders:drop',
      outcome: 'deny',
      reasons: ['action_not_allowed'],
    });
    expect(Object.keys(denied.items[0]).sort()).toEqual(
      [
        'action',
        'at',
        'boundary_id',
        'boundary_version',
        'decision_id',
        'drift',
        'lease_id',
        'lease_state',
        'outcome',
        'policies',
        'reasons',
        'resource',
        'task_id',
        'workload_id',
      ].sort(),
    );
    const permitted = await get(`task=${taskB}&outcome=permit`);
    expect(permitted.items).toHaveLength(4);
    expect(permitted.items.every((d) => d.outcome === 'permit' && d.reasons.length === 0)).toBe(true);
    expect((await get(`task=${taskB}&outcome=pending`)).items).toEqual([]);
    expect((await get(`task=${taskA}`)).items).toHaveLength(3);
    expect((await get('workload=review-bot&boundary=review-pay')).items).toHaveLength(1);
    expect((await get(`workload=review-bot&until=${encodeURIComponent(mark)}`)).items.map((d) => d.task_id)).toEqual([taskA, taskA, taskA]);
    const since = await get(`task=${taskB}&since=${encodeURIComponent(mark)}`);
    expect(since.items).toHaveLength(6);

    // Pagination over the six decisions of task B, two at a time.
    const all = (await get(`task=${taskB}`)).items.map((d) => d.decision_id);
    expect(all).toHaveLength(6);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { items: any[]; next_cursor: string | null } = await get(
        `task=${taskB}&limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      seen.push(...page.items.map((d) => d.decision_id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor !== null && pages < 10);
    expect(pages).toBe(2);
    expect(seen).toEqual(all);
  });

  it('accepts the documented limits and defaults to 100', async () => {
    expect((await admin('GET', '/v1/leases?limit=1')).body.items).toHaveLength(1);
    expect((await admin('GET', '/v1/leases?limit=1000')).status).toBe(200);
    expect((await admin('GET', '/v1/decisions?limit=1000')).status).toBe(200);
  });

  it('refuses bad filter values and unknown parameters with 400 naming the field', async () => {
    const cases: Array<[string, string]> = [
      ['limit=0', 'limit'],
      ['limit=1001', 'limit'],
      ['limit=-1', 'limit'],
      ['limit=abc', 'limit'],
      ['limit=2.5', 'limit'],
      ['limit=', 'limit'],
      ['limit=1&limit=2', 'limit'],
      ['task=not-a-uuid', 'task'],
      ['task=', 'task'],
      ['boundary=NOT_AN_ID', 'boundary'],
      ['since=yesterday', 'since'],
      ['since=2024-13-45T00:00:00Z', 'since'],
      ['since=2024-02-30T00:00:00Z', 'since'],
      ['since=2023-02-29', 'since'],
      ['since=2024-01-01T24:00:00Z', 'since'],
      ['since=2024-01-01T00:00:00', 'since'],
      ['since=2024-01-01 00:00:00Z', 'since'],
      ['since=2024-01-01T00:00:00Zjunk', 'since'],
      ['until=Mon, 01 Jan 2024 00:00:00 GMT', 'until'],
      ['until=12345', 'until'],
      ['cursor=not-a-cursor', 'cursor'],
      [`cursor=${'A'.repeat(100)}`, 'cursor'],
      ['foo=1', 'foo'],
      ['Task=0190b7d0-0000-7000-8000-000000000000', 'Task'],
    ];
    for (const [query, field] of cases) {
      for (const path of ['/v1/leases', '/v1/decisions']) {
        expectInvalid(await admin('GET', `${path}?${query}`), field, `${path}?${query}`);
      }
    }
    expectInvalid(await admin('GET', '/v1/leases?state=pending'), 'state');
    expectInvalid(await admin('GET', '/v1/leases?state=ACTIVE'), 'state');
    expectInvalid(await admin('GET', '/v1/leases?outcome=permit'), 'outcome');
    expectInvalid(await admin('GET', '/v1/decisions?outcome=allow'), 'outcome');
    expectInvalid(await admin('GET', '/v1/decisions?state=active'), 'state');
  });
});

/**
 * Issue 12, finding 10: every admin configuration change was audited as actor `admin`, so with
 * several admin keys the chain could not say who changed what. Each is now `<role>:<key id>`, the
 * bootstrap key (TOLLGATE_ADMIN_KEY) `admin:bootstrap`.
 */
describe('who changed what', () => {
  it('audits each admin change under the key that made it', async () => {
    const alice = (await admin('POST', '/v1/admin/api-keys', { role: 'admin', label: 'alice' })).body as { id: string; key: string };
    const bob = (await admin('POST', '/v1/admin/api-keys', { role: 'admin', label: 'bob' })).body as { id: string; key: string };
    const as = (key: string) => (method: string, path: string, json?: unknown) => call(broker.url, method, path, { token: key, json });
    const byAlice = as(alice.key);
    const byBob = as(bob.key);
    const since = (await rows<{ seq: string }>('SELECT coalesce(max(seq), 0)::text AS seq FROM audit_events'))[0]!.seq;

    expect((await byAlice('PUT', '/v1/admin/boundaries/actor-b', BOUNDARY)).status).toBe(201);
    expect((await byBob('DELETE', '/v1/admin/boundaries/actor-b')).status).toBe(200);
    expect(
      (await byAlice('PUT', '/v1/admin/policies/actor-p', { policy: 'forbid(principal, action, resource) when { false };' })).status,
    ).toBe(201);
    expect((await byBob('DELETE', '/v1/admin/policies/actor-p')).status).toBe(200);
    const key = await workloadKey();
    expect((await byAlice('PUT', '/v1/admin/workloads/actor-w', { jwks: { keys: [key.publicJwk] } })).status).toBe(201);
    expect((await byBob('POST', '/v1/admin/workloads/actor-w/revoke')).status).toBe(200);
    expect(
      (
        await byAlice('PUT', '/v1/admin/issuers/actor-i', {
          issuer: 'https://actor.acme.test',
          kind: 'oidc',
          jwks_uri: 'http://127.0.0.1:9/jwks.json',
        })
      ).status,
    ).toBe(201);
    expect((await byBob('DELETE', '/v1/admin/issuers/actor-i')).status).toBe(200);
    expect((await byBob('POST', '/v1/admin/keys/rotate')).status).toBe(200);
    expect((await admin('PUT', '/v1/admin/boundaries/actor-boot', BOUNDARY)).status).toBe(201);

    const audited = await rows<{ kind: string; actor: string }>(
      `SELECT kind, actor FROM audit_events WHERE seq > $1 AND kind NOT LIKE 'api_key.%' ORDER BY seq`,
      [since],
    );
    expect(audited).toEqual([
      { kind: 'boundary.put', actor: `admin:${alice.id}` },
      { kind: 'boundary.disabled', actor: `admin:${bob.id}` },
      { kind: 'policy.put', actor: `admin:${alice.id}` },
      { kind: 'policy.disabled', actor: `admin:${bob.id}` },
      { kind: 'workload.put', actor: `admin:${alice.id}` },
      { kind: 'workload.revoked', actor: `admin:${bob.id}` },
      { kind: 'issuer.put', actor: `admin:${alice.id}` },
      { kind: 'issuer.withdrawn', actor: `admin:${bob.id}` },
      { kind: 'signing_key.rotated', actor: `admin:${bob.id}` },
      { kind: 'boundary.put', actor: 'admin:bootstrap' },
    ]);
  });
});
