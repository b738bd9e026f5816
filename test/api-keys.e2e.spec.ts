import { SignJWT, type JWTPayload } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApiKeys1764115800000 } from '../migrations/1764115800000-api-keys.js';
import type { QueryRunner } from 'typeorm';
import type { TestBroker } from './support/broker.js';
import { call, type Response } from './support/http.js';
import { asAdmin, putBoundary, startWithBot, type Bot } from './support/scenario.js';
import { workloadKey, type WorkloadKey } from './support/workload.js';

/**
 * API keys with roles, and resource servers as OAuth clients: key management, what each role may
 * do, audience scoping on introspection, revocation and the event stream, and standard client
 * authentication (client_secret_basic, client_secret_post, private_key_jwt) as oauth4webapi does it.
 */

const CRM = 'https://crm.acme.test';
const BILLING = 'https://billing.acme.test';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

let broker: TestBroker;
/** A second replica on the same database (PostgreSQL only: PGlite is one process's database). */
let replica: TestBroker | undefined;
let bot: Bot;
let admin: ReturnType<typeof asAdmin>;
const output: string[] = [];

beforeAll(async () => {
  // Everything the broker writes (at debug level, one line per request) is kept, to search for keys.
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, 'write').mockImplementation((chunk: unknown) => (output.push(String(chunk)), true));
  }
  ({ broker, bot } = await startWithBot({ env: { TOLLGATE_LOG_LEVEL: 'debug' } }));
  // Behind one load balancer, both replicas answer to the same issuer.
  if (broker.db.kind === 'postgres') replica = await broker.restart({ TOLLGATE_LOG_LEVEL: 'debug', TOLLGATE_ISSUER: broker.url });
  admin = asAdmin(broker);
  await putBoundary(broker, 'billing', { tool: BILLING, actions: ['invoices:read'] });
});
afterAll(async () => {
  await replica?.stop().catch(() => {});
  await broker?.close();
  vi.restoreAllMocks();
});

interface CreatedKey {
  id: string;
  key: string;
  role: string;
  audience?: string;
}

async function createKey(body: Record<string, unknown>): Promise<CreatedKey> {
  const response = await call(broker.url, 'POST', '/v1/admin/api-keys', { token: broker.adminKey, json: body });
  if (response.status !== 201) throw new Error(`create key: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body;
}

async function counts(): Promise<Record<string, number>> {
  const result: Record<string, number> = {};
  for (const table of ['api_keys', 'audit_events', 'client_assertions', 'boundaries', 'workloads', 'leases']) {
    const { rows } = await broker.app.broker.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
    result[table] = rows[0]!.n;
  }
  return result;
}

/** A fresh access token for `boundary` (crm-orders: aud CRM; billing: aud BILLING). */
async function accessToken(
  boundary: 'crm-orders' | 'billing' = 'crm-orders',
  taskId?: string,
): Promise<{ token: string; leaseId: string; taskId: string }> {
  const task = taskId ?? (await bot.openTask());
  const response = await bot.credential(task, { boundary, action: boundary === 'billing' ? 'invoices:read' : 'orders:read' });
  if (response.status !== 201) throw new Error(`credential: ${response.status} ${JSON.stringify(response.body)}`);
  return { token: response.body.credential.access_token, leaseId: response.body.lease_id, taskId: task };
}

async function adminIntrospect(token: string): Promise<Record<string, unknown>> {
  return (await call(broker.url, 'POST', '/oauth2/introspect', { token: broker.adminKey, form: { token } })).body;
}

async function raw(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: { json?: unknown; form?: Record<string, string> },
  on = broker,
): Promise<Response> {
  let payload: string | undefined;
  if (body?.json !== undefined) {
    headers = { ...headers, 'content-type': 'application/json' };
    payload = JSON.stringify(body.json);
  } else if (body?.form) {
    headers = { ...headers, 'content-type': 'application/x-www-form-urlencoded' };
    payload = new URLSearchParams(body.form).toString();
  }
  const response = await fetch(`${on.url}${path}`, { method, headers, body: payload });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
}

function basic(id: string, secret: string): string {
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(id)}:${encode(secret)}`).toString('base64')}`;
}

async function clientAssertion(clientId: string, key: WorkloadKey, overrides: JWTPayload & { omit?: string[] } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const { omit = [], ...claims } = overrides;
  const payload: JWTPayload = {
    iss: clientId,
    sub: clientId,
    aud: broker.url,
    iat: now,
    exp: now + 60,
    jti: crypto.randomUUID(),
    ...claims,
  };
  for (const name of omit) delete payload[name];
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(key.privateKey);
}

const insecure = { [oauth.allowInsecureRequests]: true } as const;

async function discovered(): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(broker.url);
  return oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
}

describe('managing API keys', () => {
  it('creates keys of each role (shown once, with a prefix per role), lists them without key material, revokes them (audited)', async () => {
    const before = await counts();
    const adminKey = await createKey({ role: 'admin', label: 'ops' });
    const reviewer = await createKey({ role: 'reviewer' });
    const rs = await createKey({ role: 'resource_server', audience: CRM, label: 'crm api' });
    expect(adminKey).toMatchObject({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), role: 'admin', label: 'ops', revoked_at: null });
    expect(adminKey.key).toMatch(/^tgadm_[A-Za-z0-9_-]{43}$/);
    expect(reviewer.key).toMatch(/^tgrev_[A-Za-z0-9_-]{43}$/);
    expect(rs.key).toMatch(/^tgrs_[A-Za-z0-9_-]{43}$/);
    expect(rs.audience).toBe(CRM);
    expect(adminKey).not.toHaveProperty('audience');
    expect((await counts()).api_keys).toBe(before.api_keys + 3);

    // Each works, as its role.
    expect((await call(broker.url, 'POST', '/v1/admin/api-keys', { token: adminKey.key, json: { role: 'reviewer' } })).status).toBe(201);
    expect((await call(broker.url, 'GET', '/v1/leases', { token: reviewer.key })).status).toBe(200);
    expect((await call(broker.url, 'POST', '/oauth2/introspect', { token: rs.key, form: { token: 'x' } })).body).toEqual({ active: false });

    const list = await admin('GET', '/v1/admin/api-keys');
    expect(list.status).toBe(200);
    const listed = list.body.items.find((item: { id: string }) => item.id === rs.id);
    expect(listed).toEqual({
      id: rs.id,
      role: 'resource_server',
      audience: CRM,
      label: 'crm api',
      created_at: expect.any(String),
      revoked_at: null,
    });
    for (const item of list.body.items) expect(Object.keys(item)).not.toContain('key');

    const revoked = await admin('DELETE', `/v1/admin/api-keys/${reviewer.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ id: reviewer.id, role: 'reviewer', revoked_at: expect.any(String) });
    expect(revoked.body).not.toHaveProperty('key');
    // Once only: a second DELETE changes nothing; an unknown id is a 404.
    const audits = (await counts()).audit_events;
    expect((await admin('DELETE', `/v1/admin/api-keys/${reviewer.id}`)).body.revoked_at).toBe(revoked.body.revoked_at);
    expect((await counts()).audit_events).toBe(audits);
    expect((await admin('DELETE', `/v1/admin/api-keys/${crypto.randomUUID()}`)).status).toBe(404);
    expect((await admin('DELETE', '/v1/admin/api-keys/not-a-uuid')).status).toBe(404);
    expect((await admin('DELETE', '/v1/admin/api-keys/bootstrap')).status).toBe(404);

    const { rows } = await broker.app.broker.db.query<{ kind: string; actor: string; data: Record<string, unknown> }>(
      `SELECT kind, actor, data FROM audit_events WHERE kind LIKE 'api_key.%' ORDER BY id`,
    );
    expect(rows.filter((row) => row.kind === 'api_key.created').map((row) => row.data.api_key_id)).toEqual(
      expect.arrayContaining([adminKey.id, reviewer.id, rs.id]),
    );
    expect(rows.filter((row) => row.kind === 'api_key.revoked')).toEqual([
      { kind: 'api_key.revoked', actor: 'admin:bootstrap', data: expect.objectContaining({ api_key_id: reviewer.id }) },
    ]);

    // The keys appear nowhere but in the one answer that created them: not in the list, the audit
    // log, the stored rows (only hashes) or the logs.
    const stored = await broker.app.broker.db.query<{ key_hash: string }>('SELECT key_hash FROM api_keys');
    const everything = JSON.stringify([list.body, rows, stored.rows]) + output.join('');
    expect(output.join('')).toContain('/v1/admin/api-keys'); // the logs were captured
    for (const key of [adminKey, reviewer, rs]) {
      expect(everything).not.toContain(key.key);
      expect(everything).not.toContain(key.key.slice(6, 30));
    }
    expect(JSON.stringify(rows)).not.toMatch(/[0-9a-f]{64}/); // nor the hashes in the audit log
  });

  it('a revoked key answers 401 at once on the replica that revoked it, and within a second on another', async () => {
    const key = await createKey({ role: 'reviewer' });
    const others = replica ? [replica] : [];
    // Each replica has looked the key up, and remembers it.
    for (const on of [broker, ...others]) expect((await call(on.url, 'GET', '/v1/leases', { token: key.key })).status).toBe(200);

    expect((await admin('DELETE', `/v1/admin/api-keys/${key.id}`)).status).toBe(200);
    const revokedAt = Date.now();
    const here = await call(broker.url, 'GET', '/v1/leases', { token: key.key });
    expect(here.status).toBe(401);
    expect(here.body.error).toBe('invalid_client');
    for (const on of others) {
      let status = 200;
      while (status !== 401 && Date.now() - revokedAt < 3000) {
        status = (await call(on.url, 'GET', '/v1/leases', { token: key.key })).status;
        if (status !== 401) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(status).toBe(401);
      expect(Date.now() - revokedAt).toBeLessThan(1500);
    }
  });

  it('refuses bad input with 400 naming the field, storing nothing', async () => {
    const { publicJwk } = await workloadKey();
    const privateJwk = { ...publicJwk, d: 'nBpBRE3S2MPTm_CDW8rxW7aCmkMzuMg6Kwhq6Efr5Sk' };
    const cases: Array<[unknown, string]> = [
      [{ role: 'superuser' }, 'role'],
      [{}, 'role'],
      [{ role: 'admin', audience: CRM }, 'audience'],
      [{ role: 'reviewer', audience: CRM }, 'audience'],
      [{ role: 'resource_server' }, 'audience'],
      [{ role: 'resource_server', audience: 'has spaces in it' }, 'audience'],
      [{ role: 'resource_server', audience: '' }, 'audience'],
      [{ role: 'admin', jwks: { keys: [publicJwk] } }, 'jwks'],
      [{ role: 'resource_server', audience: CRM, jwks: { keys: [privateJwk] } }, 'jwks.keys.0'],
      [{ role: 'resource_server', audience: CRM, jwks: { keys: [] } }, 'jwks.keys'],
      [{ role: 'resource_server', audience: CRM, jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } }, 'jwks.keys.0.kty'],
      [{ role: 'admin', colour: 'red' }, 'colour'],
      [{ role: 'admin', label: '' }, 'label'],
      [{ role: 'admin', label: 'a\u202eb' }, 'label'],
      [{ role: 'admin', key: 'tgadm_choose-my-own' }, 'key'],
    ];
    const before = await counts();
    for (const [body, field] of cases) {
      const response = await admin('POST', '/v1/admin/api-keys', body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body, JSON.stringify(body)).toMatchObject({ error: 'invalid_request', field });
    }
    expect(
      (await raw('POST', '/v1/admin/api-keys', { authorization: `Bearer ${broker.adminKey}`, 'content-type': 'application/json' })).status,
    ).toBe(400);
    expect((await call(broker.url, 'POST', '/v1/admin/api-keys', { token: broker.adminKey, raw: '{"role":' })).status).toBe(400);
    expect((await admin('DELETE', `/v1/admin/api-keys/${crypto.randomUUID()}`, { reason: 'x' })).status).toBe(400);
    expect(await counts()).toEqual(before);
  });

  it('the migration carries admin_keys rows into api_keys, and back down', async () => {
    const db = broker.app.broker.db;
    const runner = { query: (text: string) => db.query(text) } as unknown as QueryRunner;
    const migration = new ApiKeys1764115800000();
    const reviewer = await createKey({ role: 'reviewer' });
    await migration.down(runner);
    try {
      const { rows } = await db.query<{ role: string }>('SELECT role FROM admin_keys');
      expect(rows.map((row) => row.role)).toContain('reviewer');
      await db.query(
        `INSERT INTO admin_keys (key_hash, role, label) VALUES (encode(sha256('an-old-admin-key-of-more-than-32-chars'), 'hex'), 'admin', 'old')`,
      );
    } finally {
      await migration.up(runner);
    }
    const stored = await db.query<{ role: string; label: string }>(`SELECT role, label FROM api_keys WHERE label = 'old'`);
    expect(stored.rows).toEqual([{ role: 'admin', label: 'old' }]);
    const on = replica ?? broker;
    expect((await call(on.url, 'GET', '/v1/admin/boundaries', { token: 'an-old-admin-key-of-more-than-32-chars' })).status).toBe(200);
    expect((await call(on.url, 'GET', '/v1/leases', { token: reviewer.key })).status).toBe(200);
  });
});

describe('roles', () => {
  it('a reviewer reads everything an admin reads, and gets 403 insufficient_scope on every write, changing nothing', async () => {
    const reviewer = await createKey({ role: 'reviewer' });
    const victim = await createKey({ role: 'reviewer' });
    const { token } = await accessToken();
    const { publicJwk } = await workloadKey();
    for (const path of [
      '/v1/admin/boundaries',
      '/v1/admin/boundaries/crm-orders',
      '/v1/admin/workloads',
      '/v1/admin/workloads/chatbot',
      '/v1/admin/api-keys',
      '/v1/leases',
      '/v1/decisions',
    ]) {
      expect((await call(broker.url, 'GET', path, { token: reviewer.key })).status, path).toBe(200);
    }
    expect((await call(broker.url, 'POST', '/oauth2/introspect', { token: reviewer.key, form: { token } })).body).toMatchObject({
      active: true,
    });

    const writes: Array<[string, string, { json?: unknown; form?: Record<string, string> } | undefined]> = [
      [
        'PUT',
        '/v1/admin/boundaries/reviewer-probe',
        { json: { tool: CRM, actions: ['a'], intents: ['order_status'], default_ttl: 60, max_ttl: 60, credential: { kind: 'jwt' } } },
      ],
      [
        'PUT',
        '/v1/admin/boundaries/crm-orders',
        {
          json: {
            tool: CRM,
            actions: ['a'],
            intents: ['order_status'],
            default_ttl: 60,
            max_ttl: 60,
            credential: { kind: 'jwt' },
            enabled: false,
          },
        },
      ],
      ['DELETE', '/v1/admin/boundaries/crm-orders', undefined],
      ['PUT', '/v1/admin/workloads/reviewer-probe', { json: { jwks: { keys: [publicJwk] } } }],
      ['PUT', '/v1/admin/workloads/chatbot', { json: { jwks: { keys: [publicJwk] } } }],
      ['DELETE', '/v1/admin/workloads/chatbot', undefined],
      ['POST', '/v1/admin/workloads/chatbot/revoke', undefined],
      ['POST', '/v1/admin/api-keys', { json: { role: 'admin' } }],
      ['DELETE', `/v1/admin/api-keys/${victim.id}`, undefined],
      ['DELETE', `/v1/admin/api-keys/${reviewer.id}`, undefined],
      ['POST', '/oauth2/revoke', { form: { token } }],
    ];
    const before = await counts();
    for (const [method, path, body] of writes) {
      const response = await raw(method, path, { authorization: `Bearer ${reviewer.key}` }, body);
      expect(response.status, `${method} ${path}: ${JSON.stringify(response.body)}`).toBe(403);
      expect(response.body).toMatchObject({ error: 'insufficient_scope', error_description: expect.stringContaining('reviewer') });
      expect(response.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope"');
    }
    // Through client authentication too.
    const viaBasic = await raw('POST', '/oauth2/revoke', { authorization: basic(reviewer.id, reviewer.key) }, { form: { token } });
    expect(viaBasic.status).toBe(403);
    expect(await counts()).toEqual(before);
    expect(await adminIntrospect(token)).toMatchObject({ active: true });
    expect((await admin('GET', '/v1/admin/boundaries/crm-orders')).body).toMatchObject({ enabled: true });
    expect((await admin('GET', '/v1/admin/workloads/chatbot')).body).toMatchObject({ enabled: true });
    expect((await call(broker.url, 'GET', '/v1/leases', { token: victim.key })).status).toBe(200);
  });

  it('a resource server key gets 403 on the admin and review API, reads or writes', async () => {
    const rs = await createKey({ role: 'resource_server', audience: CRM });
    for (const [method, path] of [
      ['GET', '/v1/admin/boundaries'],
      ['GET', '/v1/admin/api-keys'],
      ['GET', '/v1/leases'],
      ['GET', '/v1/decisions'],
      ['POST', '/v1/admin/api-keys'],
      ['DELETE', '/v1/admin/boundaries/crm-orders'],
      ['POST', '/v1/admin/workloads/chatbot/revoke'],
    ] as const) {
      const response = await raw(
        method,
        path,
        { authorization: `Bearer ${rs.key}` },
        method === 'POST' && path.endsWith('api-keys') ? { json: { role: 'admin' } } : undefined,
      );
      expect(response.status, `${method} ${path}`).toBe(403);
      expect(response.body.error).toBe('insufficient_scope');
    }
    expect((await admin('GET', '/v1/admin/boundaries/crm-orders')).body).toMatchObject({ enabled: true });
  });
});

describe('resource servers as OAuth clients', () => {
  let rs: CreatedKey;
  let signingKey: WorkloadKey;

  beforeAll(async () => {
    signingKey = await workloadKey();
    rs = await createKey({ role: 'resource_server', audience: CRM, jwks: { keys: [signingKey.publicJwk] } });
  });

  it('advertises the client authentication methods in the metadata', async () => {
    const as = await discovered();
    for (const member of ['introspection_endpoint_auth_methods_supported', 'revocation_endpoint_auth_methods_supported'] as const) {
      expect(as[member]).toEqual(expect.arrayContaining(['client_secret_basic', 'client_secret_post', 'private_key_jwt']));
    }
    expect(as.introspection_endpoint_auth_signing_alg_values_supported).toEqual(expect.arrayContaining(['EdDSA', 'ES256']));
    expect(as.revocation_endpoint_auth_signing_alg_values_supported).toEqual(expect.arrayContaining(['EdDSA', 'ES256']));
  });

  it("introspects with oauth4webapi (ClientSecretBasic, ClientSecretPost, PrivateKeyJwt): its own tool's tokens with claims, any other tool's as inactive", async () => {
    const as = await discovered();
    const client: oauth.Client = { client_id: rs.id };
    const own = await accessToken('crm-orders');
    const other = await accessToken('billing');
    expect(await adminIntrospect(other.token)).toMatchObject({ active: true, aud: BILLING });
    const methods: Array<[string, () => oauth.ClientAuth]> = [
      ['ClientSecretBasic', () => oauth.ClientSecretBasic(rs.key)],
      ['ClientSecretPost', () => oauth.ClientSecretPost(rs.key)],
      ['PrivateKeyJwt', () => oauth.PrivateKeyJwt({ key: signingKey.privateKey, kid: signingKey.kid })],
    ];
    for (const [name, auth] of methods) {
      const mine = await oauth.processIntrospectionResponse(
        as,
        client,
        await oauth.introspectionRequest(as, client, auth(), own.token, insecure),
      );
      expect(mine, name).toMatchObject({
        active: true,
        aud: CRM,
        jti: own.leaseId,
        scope: 'orders:read',
        sub: 'user-42',
        task_id: own.taskId,
      });
      const theirs = await oauth.processIntrospectionResponse(
        as,
        client,
        await oauth.introspectionRequest(as, client, auth(), other.token, insecure),
      );
      expect(theirs, name).toEqual({ active: false });
    }
    // The bearer door still works for a resource server key, held to its audience all the same.
    expect((await call(broker.url, 'POST', '/oauth2/introspect', { token: rs.key, form: { token: own.token } })).body).toMatchObject({
      active: true,
    });
    expect((await call(broker.url, 'POST', '/oauth2/introspect', { token: rs.key, form: { token: other.token } })).body).toEqual({
      active: false,
    });
    // And an admin still sees every tool.
    expect(await adminIntrospect(other.token)).toMatchObject({ active: true });
  });

  it("revokes with oauth4webapi: its own tool's token is revoked (audited), another tool's is a 200 no-op", async () => {
    const as = await discovered();
    const client: oauth.Client = { client_id: rs.id };
    for (const auth of [
      () => oauth.ClientSecretBasic(rs.key),
      () => oauth.ClientSecretPost(rs.key),
      () => oauth.PrivateKeyJwt({ key: signingKey.privateKey, kid: signingKey.kid }),
    ]) {
      const own = await accessToken('crm-orders');
      const other = await accessToken('billing');
      await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth(), other.token, insecure));
      expect(await adminIntrospect(other.token)).toMatchObject({ active: true });
      await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth(), own.token, insecure));
      expect(await adminIntrospect(own.token)).toEqual({ active: false });
      const { rows } = await broker.app.broker.db.query<{ actor: string; data: { reason: string } }>(
        `SELECT actor, data FROM audit_events WHERE kind = 'lease.revoked' AND lease_id = $1`,
        [own.leaseId],
      );
      expect(rows).toEqual([{ actor: `resource_server:${rs.id}`, data: { reason: 'revoked_by_client', request_id: expect.any(String) } }]);
    }
    // A workload still revokes its own tokens with its assertion; an admin any.
    const mine = await accessToken('billing');
    expect((await call(broker.url, 'POST', '/oauth2/revoke', { token: await bot.token(), form: { token: mine.token } })).status).toBe(200);
    expect(await adminIntrospect(mine.token)).toEqual({ active: false });
    const any = await accessToken('billing');
    expect((await call(broker.url, 'POST', '/oauth2/revoke', { token: broker.adminKey, form: { token: any.token } })).status).toBe(200);
    expect(await adminIntrospect(any.token)).toEqual({ active: false });
  });

  it('accepts an assertion whose aud is the endpoint URL, and each assertion once, on any replica', async () => {
    const { token } = await accessToken('crm-orders');
    const assertion = await clientAssertion(rs.id, signingKey, { aud: `${broker.url}/oauth2/introspect` });
    const form = { token, client_id: rs.id, client_assertion_type: ASSERTION_TYPE, client_assertion: assertion };
    const first = await raw('POST', '/oauth2/introspect', {}, { form });
    expect(first.body).toMatchObject({ active: true });
    for (const on of replica ? [broker, replica] : [broker]) {
      const again = await raw('POST', '/oauth2/introspect', {}, { form }, on);
      expect(again.status).toBe(401);
      expect(again.body).toMatchObject({ error: 'invalid_client', error_description: expect.stringContaining('already used') });
    }
  });

  it('refuses bad client authentication: 401 invalid_client (Basic challenge for Basic), 400 invalid_request for two methods', async () => {
    const other = await createKey({ role: 'resource_server', audience: BILLING });
    const revoked = await createKey({ role: 'resource_server', audience: CRM });
    await admin('DELETE', `/v1/admin/api-keys/${revoked.id}`);
    const stranger = await workloadKey();
    const { token } = await accessToken('crm-orders');
    const now = Math.floor(Date.now() / 1000);
    const assertionForm = async (claims: JWTPayload & { omit?: string[] } = {}, key = signingKey) => ({
      token,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: await clientAssertion(rs.id, key, claims),
    });

    const cases: Array<[string, Record<string, string>, Record<string, string>, number, string, string?]> = [
      ['Basic with a wrong secret', { authorization: basic(rs.id, `${rs.key}x`) }, { token }, 401, 'invalid_client', 'Basic'],
      ["Basic with another client's secret", { authorization: basic(rs.id, other.key) }, { token }, 401, 'invalid_client', 'Basic'],
      ['Basic with an unknown client id', { authorization: basic(crypto.randomUUID(), rs.key) }, { token }, 401, 'invalid_client', 'Basic'],
      ['Basic with a revoked key', { authorization: basic(revoked.id, revoked.key) }, { token }, 401, 'invalid_client', 'Basic'],
      ['malformed Basic', { authorization: 'Basic !!!' }, { token }, 401, 'invalid_client', 'Basic'],
      [
        'Basic with no colon',
        { authorization: `Basic ${Buffer.from(rs.key).toString('base64')}` },
        { token },
        401,
        'invalid_client',
        'Basic',
      ],
      [
        'Basic with a client_id field naming another client',
        { authorization: basic(rs.id, rs.key) },
        { token, client_id: other.id },
        401,
        'invalid_client',
        'Basic',
      ],
      ['post with a wrong secret', {}, { token, client_id: rs.id, client_secret: 'tgrs_wrong' }, 401, 'invalid_client'],
      ["post with another client's id", {}, { token, client_id: other.id, client_secret: rs.key }, 401, 'invalid_client'],
      ['post without client_id', {}, { token, client_secret: rs.key }, 400, 'invalid_request'],
      [
        'Basic and client_secret',
        { authorization: basic(rs.id, rs.key) },
        { token, client_id: rs.id, client_secret: rs.key },
        400,
        'invalid_request',
      ],
      [
        'Bearer and client_secret',
        { authorization: `Bearer ${rs.key}` },
        { token, client_id: rs.id, client_secret: rs.key },
        400,
        'invalid_request',
      ],
      ['Bearer and client_assertion', { authorization: `Bearer ${rs.key}` }, await assertionForm(), 400, 'invalid_request'],
      [
        'client_secret and client_assertion',
        {},
        { ...(await assertionForm()), client_id: rs.id, client_secret: rs.key },
        400,
        'invalid_request',
      ],
      ['no client authentication', {}, { token }, 401, 'invalid_client'],
      ['an unsupported scheme', { authorization: `Digest ${rs.key}` }, { token }, 401, 'invalid_client'],
      ['an expired assertion', {}, await assertionForm({ iat: now - 400, exp: now - 200 }), 401, 'invalid_client'],
      ['an assertion living too long', {}, await assertionForm({ exp: now + 3600 }), 401, 'invalid_client'],
      ['an assertion without exp', {}, await assertionForm({ omit: ['exp'] }), 401, 'invalid_client'],
      ['an assertion without jti', {}, await assertionForm({ omit: ['jti'] }), 401, 'invalid_client'],
      ['an assertion for another audience', {}, await assertionForm({ aud: 'https://elsewhere.test' }), 401, 'invalid_client'],
      ['an assertion for the token endpoint', {}, await assertionForm({ aud: `${broker.url}/oauth2/token` }), 401, 'invalid_client'],
      ['an assertion with sub not the client', {}, await assertionForm({ sub: other.id }), 401, 'invalid_client'],
      [
        'an assertion from a client with no keys',
        {},
        { token, client_assertion_type: ASSERTION_TYPE, client_assertion: await clientAssertion(other.id, signingKey) },
        401,
        'invalid_client',
      ],
      ['an assertion signed by an unregistered key', {}, await assertionForm({}, stranger), 401, 'invalid_client'],
      [
        'an assertion with a wrong assertion type',
        {},
        { ...(await assertionForm()), client_assertion_type: 'urn:example:saml' },
        400,
        'invalid_request',
      ],
      ['an assertion type without an assertion', {}, { token, client_assertion_type: ASSERTION_TYPE }, 400, 'invalid_request'],
      ['a malformed assertion', {}, { token, client_assertion_type: ASSERTION_TYPE, client_assertion: 'not.a.jwt' }, 401, 'invalid_client'],
    ];
    const before = await counts();
    for (const path of ['/oauth2/introspect', '/oauth2/revoke']) {
      for (const [label, headers, form, status, error, challenge] of cases) {
        const response = await raw('POST', path, headers, { form });
        expect(response.status, `${path} ${label}: ${JSON.stringify(response.body)}`).toBe(status);
        expect(response.body.error, `${path} ${label}`).toBe(error);
        if (challenge) expect(response.headers.get('www-authenticate'), label).toMatch(/^Basic realm=/);
        expect(JSON.stringify(response.body)).not.toContain(rs.key);
      }
    }
    expect(await adminIntrospect(token)).toMatchObject({ active: true });
    // Refused assertions leave no jti behind, and nothing else changed.
    expect(await counts()).toEqual(before);
  });
});

describe('the OAuth endpoints under odd input', () => {
  it('answer 4xx (or 200 for a well-authenticated request), never 5xx, and store nothing', async () => {
    const rs = await createKey({ role: 'resource_server', audience: CRM });
    const { token } = await accessToken('crm-orders');
    const values = ['', 'x', '\u0000', 'é', '%', '%zz', '+', ':', rs.id, rs.key, ASSERTION_TYPE, 'a.b.c', 'a'.repeat(9000), token];
    const fields = ['token', 'token_type_hint', 'client_id', 'client_secret', 'client_assertion', 'client_assertion_type'];
    const headers = [
      undefined,
      `Bearer ${rs.key}`,
      basic(rs.id, rs.key),
      'Basic',
      'Basic ====',
      'Bearer',
      `Basic ${Buffer.from('\u00ff:\u00ff', 'latin1').toString('base64')}`,
    ];
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const before = await counts();
    for (let i = 0; i < 120; i++) {
      const form: Record<string, string> = {};
      for (let k = random(4); k >= 0; k--) form[fields[random(fields.length)]!] = values[random(values.length)]!;
      const authorization = headers[random(headers.length)];
      const path = random(2) === 0 ? '/oauth2/introspect' : '/oauth2/revoke';
      const response = await raw('POST', path, authorization === undefined ? {} : { authorization }, { form });
      expect(response.status, `${path} ${authorization} ${JSON.stringify(form).slice(0, 200)}`).toBeLessThan(500);
    }
    // Only the token itself may have been revoked (by its own resource server); nothing else changed.
    const after = await counts();
    expect({ ...after, audit_events: before.audit_events }).toEqual(before);
  });
});

describe('GET /v1/events for a resource server', () => {
  function subscribe(key: string) {
    const controller = new AbortController();
    const received: Array<{ event: string; data: Record<string, unknown> }> = [];
    let status = 0;
    const opened = fetch(`${broker.url}/v1/events`, { headers: { authorization: `Bearer ${key}` }, signal: controller.signal }).then(
      (response) => {
        status = response.status;
        return response;
      },
    );
    const done = opened.then(async (response) => {
      let buffer = '';
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += Buffer.from(chunk).toString('utf8');
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (event && data) received.push({ event, data: JSON.parse(data) });
          }
        }
      } catch {
        // aborted
      }
    });
    return {
      received,
      opened,
      status: () => status,
      done,
      async close() {
        controller.abort();
        await done;
      },
    };
  }

  it("streams only the lease.revoked events of its own tool's leases; an admin sees everything", async () => {
    const rs = await createKey({ role: 'resource_server', audience: CRM });
    // Events of the earlier tests get their positions now, so neither stream starts before them.
    await broker.app.broker.events.sequence();
    const adminStream = subscribe(broker.adminKey);
    const rsStream = subscribe(rs.key);
    await Promise.all([adminStream.opened, rsStream.opened]);
    expect(rsStream.status()).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 300));

    const crm = await accessToken('crm-orders');
    const billing = await accessToken('billing', crm.taskId);
    await bot.call('POST', `/v1/tasks/${crm.taskId}/complete`);

    const deadline = Date.now() + 5000;
    while (adminStream.received.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(adminStream.received.map((e) => e.event).sort()).toEqual(['lease.revoked', 'lease.revoked', 'task.ended']);
    await new Promise((resolve) => setTimeout(resolve, 600)); // the other stream has had its chance
    expect(rsStream.received).toEqual([
      { event: 'lease.revoked', data: expect.objectContaining({ lease_id: crm.leaseId, task_id: crm.taskId }) },
    ]);
    expect(JSON.stringify(rsStream.received)).not.toContain(billing.leaseId);
    await Promise.all([adminStream.close(), rsStream.close()]);
  });

  it('ends the stream of a key revoked while it is open; a reviewer may follow events', async () => {
    const rs = await createKey({ role: 'resource_server', audience: CRM });
    const stream = subscribe(rs.key);
    await stream.opened;
    expect(stream.status()).toBe(200);
    await admin('DELETE', `/v1/admin/api-keys/${rs.id}`);
    const ended = await Promise.race([stream.done.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 3000))]);
    expect(ended).toBe(true);
    expect((await raw('GET', '/v1/events', { authorization: `Bearer ${rs.key}` })).status).toBe(401);

    const reviewer = await createKey({ role: 'reviewer' });
    const reviewing = subscribe(reviewer.key);
    await reviewing.opened;
    expect(reviewing.status()).toBe(200);
    await reviewing.close();
  });
});
