import { createHmac, generateKeyPairSync } from 'node:crypto';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { call, type Response } from './support/http.js';
import { issuerKey, startJwksServer, type JwksServer } from './support/jwks-server.js';
import { asAdmin, introspect, putBoundary } from './support/scenario.js';
import { assertion, workloadKey } from './support/workload.js';

/**
 * Federated workload identity through the real HTTP app: workloads bound to a trusted issuer (SPIRE,
 * Kubernetes, OIDC) authenticate with that issuer's tokens, verified against a real JWKS endpoint on
 * loopback. Every token that should not get in gets 401 invalid_client and changes nothing.
 */

const COOLDOWN_MS = 1500;
const SPIFFE_ID = 'spiffe://acme.test/ns/bots/sa/chatbot';
const K8S_SA = 'system:serviceaccount:bots:chatbot';

let broker: TestBroker;
let admin: ReturnType<typeof asAdmin>;
let spire: JwksServer;
let kube: JwksServer;
let other: JwksServer;

beforeAll(async () => {
  broker = await startBroker({ env: { TOLLGATE_JWKS_COOLDOWN_MS: String(COOLDOWN_MS) } });
  admin = asAdmin(broker);
  await putBoundary(broker, 'crm-orders');
  spire = await startJwksServer('https://oidc.spire.acme.test', 'ES256');
  kube = await startJwksServer('https://kubernetes.default.svc.cluster.local', 'RS256');
  other = await startJwksServer('https://accounts.other.test', 'ES256');
  await putIssuer('spire', { issuer: spire.issuer, jwks_uri: spire.jwksUri, kind: 'spiffe', trust_domain: 'acme.test' }, 201);
  await putIssuer('kube', { issuer: kube.issuer, jwks_uri: kube.jwksUri, kind: 'kubernetes', audiences: ['tollgate'] }, 201);
  await putIssuer('other', { issuer: other.issuer, jwks_uri: other.jwksUri, kind: 'oidc' }, 201);
  await bind('svid-bot', 'spire', SPIFFE_ID);
  await bind('k8s-bot', 'kube', K8S_SA);
  await bind('oidc-bot', 'other', 'robot-7');
});
afterAll(async () => {
  await broker?.close();
  for (const server of [spire, kube, other]) await server?.stop();
});

async function putIssuer(id: string, body: Record<string, unknown>, status = 200): Promise<Response> {
  const response = await admin('PUT', `/v1/admin/issuers/${id}`, body);
  expect(response.status, JSON.stringify(response.body)).toBe(status);
  return response;
}

async function bind(id: string, issuer: string, subject: string): Promise<Response> {
  const response = await admin('PUT', `/v1/admin/workloads/${id}`, { issuer, subject });
  expect(response.status, JSON.stringify(response.body)).toBeLessThan(300);
  return response;
}

async function count(table: string): Promise<number> {
  return (await broker.app.broker.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
}

/** Rows that a refused token or a refused admin call must leave as they were. */
async function snapshot(): Promise<Record<string, number>> {
  const tables = ['tasks', 'leases', 'decisions', 'audit_events', 'issuers', 'workloads'];
  return Object.fromEntries(await Promise.all(tables.map(async (table) => [table, await count(table)] as const)));
}

function openTask(token: string): Promise<Response> {
  return call(broker.url, 'POST', '/v1/tasks', { token, json: { intent: 'order_status', subject: 'user-42' } });
}

async function expectAccepted(token: string, workloadId: string, label: string): Promise<string> {
  const response = await openTask(token);
  expect(response.status, `${label}: ${JSON.stringify(response.body)}`).toBe(201);
  expect(response.body.workload_id, label).toBe(workloadId);
  return response.body.task_id as string;
}

async function expectRefused(token: string, label: string): Promise<Response> {
  const before = await snapshot();
  const response = await openTask(token);
  expect(response.status, `${label}: ${JSON.stringify(response.body)}`).toBe(401);
  expect(response.body.error, label).toBe('invalid_client');
  expect(response.body.error_description, label).not.toContain(token.slice(0, 20));
  expect(await snapshot(), label).toEqual(before);
  return response;
}

function svid(claims: Record<string, unknown> = {}, options: Parameters<JwksServer['sign']>[1] = {}): Promise<string> {
  return spire.sign({ sub: SPIFFE_ID, aud: [broker.url], ...claims }, options);
}

function k8sClaims(namespace = 'bots', name = 'chatbot'): Record<string, unknown> {
  return {
    'kubernetes.io': {
      namespace,
      serviceaccount: { name, uid: '4b1e3c2a-0000-4000-8000-000000000001' },
      pod: { name: 'chatbot-7d9f8-abcde', uid: '4b1e3c2a-0000-4000-8000-000000000002' },
    },
  };
}

function saToken(claims: Record<string, unknown> = {}, options: Parameters<JwksServer['sign']>[1] = {}): Promise<string> {
  return kube.sign(
    { sub: K8S_SA, aud: ['tollgate'], nbf: Math.floor(Date.now() / 1000), ...k8sClaims(), ...claims },
    { lifetime: 3600, ...options },
  );
}

describe('federated workloads: end to end', () => {
  it('a SPIFFE JWT-SVID workload opens a task and gets a credential, on both doors', async () => {
    const token = await svid();
    const taskId = await expectAccepted(token, 'svid-bot', 'JWT-SVID');
    const credential = await call(broker.url, 'POST', `/v1/tasks/${taskId}/credentials`, {
      token,
      json: { boundary: 'crm-orders', action: 'orders:read', resource: 'order/1' },
    });
    expect(credential.status, JSON.stringify(credential.body)).toBe(201);
    const claims = decodeJwt(credential.body.credential.access_token);
    expect(claims).toMatchObject({ client_id: 'svid-bot', act: { sub: 'svid-bot' }, task_id: taskId });
    expect((await introspect(broker, credential.body.credential.access_token)).active).toBe(true);

    const exchanged = await call(broker.url, 'POST', '/oauth2/token', {
      form: {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: await svid(),
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        audience: 'https://crm.acme.test',
        scope: 'orders:read',
        authorization_details: JSON.stringify([{ type: 'tool_call', task_id: taskId, boundary: 'crm-orders', action: 'orders:read' }]),
      },
    });
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    expect(decodeJwt(exchanged.body.access_token).client_id).toBe('svid-bot');
  });

  it('a Kubernetes service-account token (RS256, custom audience, 1 h) opens a task and gets a credential', async () => {
    const token = await saToken();
    const taskId = await expectAccepted(token, 'k8s-bot', 'SA token');
    const credential = await call(broker.url, 'POST', `/v1/tasks/${taskId}/credentials`, {
      token,
      json: { boundary: 'crm-orders', action: 'orders:read' },
    });
    expect(credential.status, JSON.stringify(credential.body)).toBe(201);
    expect(decodeJwt(credential.body.credential.access_token).client_id).toBe('k8s-bot');
  });

  it('an OIDC workload token may carry profile claims such as email (a Google service account does)', async () => {
    await expectAccepted(
      await other.sign({ sub: 'robot-7', aud: broker.url, email: 'robot-7@acme.iam.test', email_verified: true }),
      'oidc-bot',
      'oidc',
    );
  });

  it('workload views show the binding; the binding is unique per (issuer, subject)', async () => {
    const shown = await admin('GET', '/v1/admin/workloads/svid-bot');
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ id: 'svid-bot', issuer: 'spire', subject: SPIFFE_ID, enabled: true });
    expect(shown.body.jwks).toBeUndefined();
    const listed = await admin('GET', '/v1/admin/workloads');
    expect(listed.body.items.find((item: { id: string }) => item.id === 'k8s-bot')).toMatchObject({ issuer: 'kube', subject: K8S_SA });

    const before = await snapshot();
    const taken = await admin('PUT', '/v1/admin/workloads/copycat', { issuer: 'spire', subject: SPIFFE_ID });
    expect(taken.status, JSON.stringify(taken.body)).toBe(409);
    expect(taken.body).toMatchObject({ error: 'invalid_request', field: 'subject' });
    expect(await snapshot()).toEqual(before);
  });

  it('reuses a verified token from memory: no fetch, and the same answer', async () => {
    const token = await svid();
    await expectAccepted(token, 'svid-bot', 'first use');
    const fetches = spire.fetches;
    await expectAccepted(token, 'svid-bot', 'reuse');
    expect(spire.fetches).toBe(fetches);
  });
});

describe('federated workloads: refused with 401 invalid_client, nothing changes', () => {
  it('refuses SVIDs that break the JWT-SVID rules', async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectRefused(await svid({ sub: 'spiffe://evil.test/ns/bots/sa/chatbot' }), 'wrong trust domain');
    await expectRefused(await svid({ sub: 'spiffe://acme.test.evil.test/ns/bots/sa/chatbot' }), 'trust domain as a prefix');
    await expectRefused(await svid({ sub: 'spiffe://acme.test/ns/bots/sa/other' }), 'an SVID nobody is bound to');
    await expectRefused(await svid({ aud: undefined }), 'no aud');
    await expectRefused(await svid({ aud: ['https://elsewhere.test'] }), 'wrong aud');
    await expectRefused(await svid({ aud: [`${broker.url}/`] }), 'aud with a trailing slash');
    await expectRefused(await svid({ exp: undefined }), 'no exp');
    await expectRefused(await svid({ iat: now - 40, exp: now - 35 }), 'expired');
    await expectRefused(await svid({ iat: now, exp: now + 86_401 }), 'lives longer than a day');
    await expectRefused(await svid({ iat: now + 120, exp: now + 300 }), 'issued in the future');
    await expectRefused(await svid({ iss: 'https://oidc.spire.acme.test/' }), 'iss with a trailing slash (unknown issuer)');
  });

  it("refuses Kubernetes tokens whose kubernetes.io claim disagrees with sub, or whose aud is not the issuer's", async () => {
    await expectRefused(await saToken({ 'kubernetes.io': undefined }), 'no kubernetes.io claim');
    await expectRefused(await saToken(k8sClaims('default', 'chatbot')), 'namespace disagrees');
    await expectRefused(await saToken(k8sClaims('bots', 'admin')), 'service account disagrees');
    await expectRefused(
      await saToken({ 'kubernetes.io': { namespace: 'bots', serviceaccount: 'chatbot' } }),
      'serviceaccount not an object',
    );
    await expectRefused(await saToken({ aud: [broker.url] }), "Tollgate's URL is not this issuer's audience");
    await expectRefused(await saToken({ sub: 'system:serviceaccount:bots' }), 'sub not a service account');
    await expectRefused(await saToken({}, { lifetime: 365 * 86_400 }), 'a one-year extended token');
  });

  it('refuses human ID tokens', async () => {
    await expectRefused(await svid({ nonce: 'n-0S6_WzA2Mj' }), 'nonce on a bound SPIFFE subject');
    await expectRefused(await svid({ email: 'alice@acme.test' }), 'email from a SPIFFE issuer');
    await expectRefused(await saToken({ preferred_username: 'alice' }), 'preferred_username from Kubernetes');
    await expectRefused(
      await other.sign({ sub: 'robot-7', aud: broker.url, nonce: 'abc', auth_time: 1 }),
      'login claims from an OIDC issuer, bound subject',
    );
    await expectRefused(
      await other.sign({ sub: 'alice-uid-123', aud: broker.url, email: 'alice@acme.test', name: 'Alice' }),
      'a human OIDC token',
    );
  });

  it("refuses tokens signed by another issuer's key, by an unknown issuer, or with a self-chosen key", async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectRefused(await svid({}, { key: other.current }), "another issuer's key and kid");
    await expectRefused(
      await svid({}, { key: { ...other.current, kid: spire.current.kid } }),
      "another issuer's key under this issuer's kid",
    );
    await expectRefused(await other.sign({ sub: 'robot-7', aud: broker.url, iss: 'https://unknown.test' }), 'unknown iss');
    await expectRefused(await other.sign({ sub: 'robot-7', aud: broker.url, iss: undefined }), 'no iss');
    const attacker = await issuerKey('ES256', spire.current.kid);
    for (const [name, value] of [
      ['jwk', attacker.publicJwk],
      ['jku', 'https://attacker.test/jwks'],
      ['x5u', 'https://attacker.test/cert.pem'],
      ['x5c', ['MIIB']],
    ] as const) {
      await expectRefused(await svid({}, { key: attacker, header: { [name]: value } }), `${name} header`);
    }
    const header = Buffer.from(JSON.stringify({ alg: 'HS256', kid: spire.current.kid })).toString('base64url');
    const payload = Buffer.from(JSON.stringify({ iss: spire.issuer, sub: SPIFFE_ID, aud: broker.url, iat: now, exp: now + 60 })).toString(
      'base64url',
    );
    const mac = createHmac('sha256', JSON.stringify(spire.current.publicJwk)).update(`${header}.${payload}`).digest('base64url');
    await expectRefused(`${header}.${payload}.${mac}`, 'HS256 keyed with the public key');
    await expectRefused(`${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${payload}.`, 'alg none');
  });

  it('refuses a registered-key assertion for a workload bound to an issuer', async () => {
    const key = await workloadKey('EdDSA');
    await expectRefused(await assertion('svid-bot', key, broker.url), 'iss = sub = the bound workload');
  });
});

describe('federated workloads: the issuer keys', () => {
  it('picks up a rotated key with one refetch; a flood of unknown kids fetches at most once per cooldown', async () => {
    await expectAccepted(await svid(), 'svid-bot', 'warm');
    const before = spire.fetches;
    const started = Date.now();
    const flood = await Promise.all(Array.from({ length: 40 }, (_, i) => svid({}, { header: { kid: `unknown-${i}` } }).then(openTask)));
    for (const response of flood) expect(response.status).toBe(401);
    // At most one refetch per cooldown (one in all, unless this slow machine took longer than one).
    expect(spire.fetches - before).toBeLessThanOrEqual(1 + Math.floor((Date.now() - started) / COOLDOWN_MS));
    expect(spire.fetches - before).toBeLessThan(5);

    // The issuer rotates; the new kid is unknown to the broker until the cooldown allows one refetch.
    await new Promise((resolve) => setTimeout(resolve, COOLDOWN_MS + 100));
    const fetchesBefore = spire.fetches;
    await spire.rotate();
    await expectAccepted(await svid(), 'svid-bot', 'new kid after rotation');
    expect(spire.fetches - fetchesBefore).toBe(1);
    await expectAccepted(await svid(), 'svid-bot', 'new kid again');
    expect(spire.fetches - fetchesBefore).toBe(1);
  });

  it('fails closed with 503 when the JWKS cannot be fetched, and recovers when it can', async () => {
    const down = await startJwksServer('https://down.acme.test', 'ES256');
    try {
      await putIssuer('down', { issuer: down.issuer, jwks_uri: down.jwksUri, kind: 'oidc' }, 201);
      await bind('down-bot', 'down', 'robot-down');
      await down.stop();
      const token = await down.sign({ sub: 'robot-down', aud: broker.url });
      const before = await snapshot();
      const response = await openTask(token);
      expect(response.status, JSON.stringify(response.body)).toBe(503);
      expect(response.body.error).toBe('temporarily_unavailable');
      // Within the cooldown after a failed fetch, the next request fails at once, without a fetch.
      expect((await openTask(token)).status).toBe(503);
      expect(await snapshot()).toEqual(before);
      await down.start();
      expect(down.fetches).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, COOLDOWN_MS + 100));
      await expectAccepted(token, 'down-bot', 'issuer back');
      expect(down.fetches).toBe(1);
    } finally {
      await down.stop();
    }
  });

  it('verifies against a static jwks too, and a changed issuer row drops cached verifications', async () => {
    const key = await issuerKey('EdDSA');
    await putIssuer(
      'static',
      { issuer: 'https://static.acme.test', jwks: { keys: [key.publicJwk] }, kind: 'oidc', audiences: ['urn:tollgate'] },
      201,
    );
    await bind('static-bot', 'static', 'robot-static');
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ sub: 'robot-static', aud: 'urn:tollgate', iss: 'https://static.acme.test', iat: now, exp: now + 600 })
      .setProtectedHeader({ alg: 'EdDSA', kid: key.kid })
      .sign(key.privateKey);
    await expectAccepted(token, 'static-bot', 'static jwks');
    // A new key set (revision bump): the cached verification made under the old one is dropped.
    const replacement = await issuerKey('EdDSA');
    await putIssuer('static', {
      issuer: 'https://static.acme.test',
      jwks: { keys: [replacement.publicJwk] },
      kind: 'oidc',
      audiences: ['urn:tollgate'],
    });
    await expectRefused(token, 'old key after the issuer changed');
  });
});

describe('withdrawing an issuer (DELETE)', () => {
  it('disables the issuer and kill-switches every workload it vouched for, in one go', async () => {
    const gone = await startJwksServer('https://gone.acme.test', 'ES256');
    try {
      await putIssuer('gone', { issuer: gone.issuer, jwks_uri: gone.jwksUri, kind: 'spiffe', trust_domain: 'gone.test' }, 201);
      await bind('gone-a', 'gone', 'spiffe://gone.test/a');
      await bind('gone-b', 'gone', 'spiffe://gone.test/b');
      const tokenA = await gone.sign({ sub: 'spiffe://gone.test/a', aud: broker.url });
      const taskId = await expectAccepted(tokenA, 'gone-a', 'before');
      const credential = await call(broker.url, 'POST', `/v1/tasks/${taskId}/credentials`, {
        token: tokenA,
        json: { boundary: 'crm-orders', action: 'orders:read' },
      });
      expect(credential.status).toBe(201);

      const deleted = await admin('DELETE', '/v1/admin/issuers/gone');
      expect(deleted.status, JSON.stringify(deleted.body)).toBe(200);
      expect(deleted.body).toMatchObject({
        id: 'gone',
        enabled: false,
        revoked_workloads: ['gone-a', 'gone-b'],
        revoked_tasks: 1,
        revoked_leases: 1,
      });
      expect((await introspect(broker, credential.body.credential.access_token)).active).toBe(false);
      await expectRefused(tokenA, 'cached token after DELETE');
      expect((await admin('GET', '/v1/admin/workloads/gone-a')).body.enabled).toBe(false);
      expect((await admin('GET', '/v1/admin/issuers/gone')).body).toMatchObject({ enabled: false, revision: 2 });
      const audit = await broker.app.broker.db.query<{ kind: string }>(`SELECT kind FROM audit_events WHERE data->>'issuer_id' = 'gone'`);
      expect(audit.rows.map((row) => row.kind).sort()).toEqual([
        'issuer.put',
        'issuer.withdrawn',
        'workload.put',
        'workload.put',
        'workload.revoked',
        'workload.revoked',
      ]);

      // No new binding to a withdrawn issuer; re-applying its definition does not restore trust.
      expect((await admin('PUT', '/v1/admin/workloads/gone-c', { issuer: 'gone', subject: 'spiffe://gone.test/c' })).status).toBe(400);
      await putIssuer('gone', { issuer: gone.issuer, jwks_uri: gone.jwksUri, kind: 'spiffe', trust_domain: 'gone.test' });
      await expectRefused(await gone.sign({ sub: 'spiffe://gone.test/a', aud: broker.url }), 'issuer re-applied, still withdrawn');
      // Saying so restores the issuer, but each workload keeps its kill switch until it is lifted too.
      await putIssuer('gone', { issuer: gone.issuer, jwks_uri: gone.jwksUri, kind: 'spiffe', trust_domain: 'gone.test', enabled: true });
      await expectRefused(await gone.sign({ sub: 'spiffe://gone.test/a', aud: broker.url }), 'issuer re-enabled, workload still killed');
      await admin('PUT', '/v1/admin/workloads/gone-a', { issuer: 'gone', subject: 'spiffe://gone.test/a', enabled: true });
      await expectAccepted(await gone.sign({ sub: 'spiffe://gone.test/a', aud: broker.url }), 'gone-a', 'both re-enabled');
      expect((await admin('DELETE', '/v1/admin/issuers/nope')).status).toBe(404);
    } finally {
      await gone.stop();
    }
  });
});

describe('a change through one replica reaches the others', () => {
  it('the kill switch on a federated workload refuses its cached token at once', async () => {
    await bind('kill-bot', 'other', 'robot-kill');
    const token = await other.sign({ sub: 'robot-kill', aud: broker.url });
    await expectAccepted(token, 'kill-bot', 'before the kill switch');
    expect((await admin('POST', '/v1/admin/workloads/kill-bot/revoke')).status).toBe(200);
    await expectRefused(token, 'cached token after the kill switch');
  });

  it.skipIf(process.env.TOLLGATE_TEST_DB === 'pglite')(
    'a second replica on the same database stops accepting a withdrawn issuer within its 1 s cache',
    async () => {
      if (broker.db.kind !== 'postgres') return; // PGlite is one process: there is no second replica
      const shared = await startJwksServer('https://shared.acme.test', 'RS256');
      const replica = await broker.restart({ TOLLGATE_JWKS_COOLDOWN_MS: String(COOLDOWN_MS) });
      try {
        await putIssuer('shared', { issuer: shared.issuer, jwks_uri: shared.jwksUri, kind: 'oidc', audiences: ['urn:tollgate'] }, 201);
        await bind('shared-bot', 'shared', 'robot-shared');
        const token = await shared.sign({ sub: 'robot-shared', aud: 'urn:tollgate' });
        const onReplica = () => call(replica.url, 'POST', '/v1/tasks', { token, json: { intent: 'order_status', subject: 'user-42' } });
        expect((await onReplica()).status).toBe(201); // verified and remembered by the replica
        expect((await admin('DELETE', '/v1/admin/issuers/shared')).status).toBe(200);
        await new Promise((resolve) => setTimeout(resolve, 1100));
        const refused = await onReplica();
        expect(refused.status, JSON.stringify(refused.body)).toBe(401);
        expect(refused.body.error).toBe('invalid_client');
      } finally {
        await replica.stop();
        await shared.stop();
      }
    },
  );
});

describe('the issuers admin API', () => {
  it('lists, shows and survives a restart', async () => {
    const listed = await admin('GET', '/v1/admin/issuers');
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((item: { id: string }) => item.id)).toEqual(expect.arrayContaining(['kube', 'spire']));
    const shown = await admin('GET', '/v1/admin/issuers/spire');
    expect(shown.body).toMatchObject({
      id: 'spire',
      issuer: spire.issuer,
      kind: 'spiffe',
      trust_domain: 'acme.test',
      jwks_uri: spire.jwksUri,
      audiences: [broker.url],
      enabled: true,
    });
    expect((await admin('GET', '/v1/admin/issuers/kube')).body).toMatchObject({ kind: 'kubernetes', audiences: ['tollgate'] });
    expect((await admin('GET', '/v1/admin/issuers/nope')).status).toBe(404);
    expect((await call(broker.url, 'GET', '/v1/admin/issuers')).status).toBe(401);
    expect((await call(broker.url, 'PUT', '/v1/admin/issuers/x', { token: await svid(), json: {} })).status).toBe(401);

    await broker.stop();
    broker = await broker.restart({ TOLLGATE_JWKS_COOLDOWN_MS: String(COOLDOWN_MS) });
    admin = asAdmin(broker);
    expect((await admin('GET', '/v1/admin/issuers/spire')).body).toMatchObject({ id: 'spire', revision: shown.body.revision });
    // The restarted broker has a new issuer URL (a new port), so the SVID's audience follows it.
    await putIssuer('spire', { issuer: spire.issuer, jwks_uri: spire.jwksUri, kind: 'spiffe', trust_domain: 'acme.test' });
    await expectAccepted(await svid(), 'svid-bot', 'after restart');
    await expectAccepted(await saToken(), 'k8s-bot', 'kubernetes after restart');
  });

  it('refuses bad definitions with 400 naming the field, and stores nothing', async () => {
    const base = { issuer: 'https://new.acme.test', jwks_uri: 'https://new.acme.test/jwks', kind: 'oidc' };
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    const smallRsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    const cases: Array<[string, unknown, string]> = [
      ['unknown field', { ...base, colour: 'red' }, 'colour'],
      ['both jwks and jwks_uri', { ...base, jwks: { keys: [spire.current.publicJwk] } }, 'jwks_uri'],
      ['neither jwks nor jwks_uri', { issuer: base.issuer, kind: 'oidc' }, 'jwks_uri'],
      ['private key in jwks', { issuer: base.issuer, kind: 'oidc', jwks: { keys: [privateJwk] } }, 'jwks.keys.0'],
      ['symmetric key in jwks', { issuer: base.issuer, kind: 'oidc', jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } }, 'jwks.keys.0.kty'],
      ['1024-bit RSA key', { issuer: base.issuer, kind: 'oidc', jwks: { keys: [smallRsa] } }, 'jwks.keys.0'],
      [
        'an EC key off the curve',
        { issuer: base.issuer, kind: 'oidc', jwks: { keys: [{ ...spire.current.publicJwk, y: spire.current.publicJwk.x }] } },
        'jwks.keys.0',
      ],
      [
        'unknown JWK member',
        { issuer: base.issuer, kind: 'oidc', jwks: { keys: [{ ...spire.current.publicJwk, x5u: 'https://a.test' }] } },
        'jwks.keys.0',
      ],
      ['bad trust domain', { ...base, kind: 'spiffe', trust_domain: 'Acme Test' }, 'trust_domain'],
      ['spiffe without a trust domain', { ...base, kind: 'spiffe' }, 'trust_domain'],
      ['trust domain for kubernetes', { ...base, kind: 'kubernetes', trust_domain: 'acme.test' }, 'trust_domain'],
      ['unknown kind', { ...base, kind: 'saml' }, 'kind'],
      ['http jwks_uri on a non-loopback host', { ...base, jwks_uri: 'http://new.acme.test/jwks' }, 'jwks_uri'],
      ['http jwks_uri on a host that only starts like loopback', { ...base, jwks_uri: 'http://127.0.0.1.nip.io/jwks' }, 'jwks_uri'],
      ['jwks_uri with credentials', { ...base, jwks_uri: 'https://user:secret@new.acme.test/jwks' }, 'jwks_uri'],
      ['jwks_uri of another scheme', { ...base, jwks_uri: 'file:///etc/passwd' }, 'jwks_uri'],
      ['issuer not a URL', { ...base, issuer: 'not a url' }, 'issuer'],
      ['empty audiences', { ...base, audiences: [] }, 'audiences'],
      ['audiences not strings', { ...base, audiences: [1] }, 'audiences.0'],
      ['not an object', [base], 'body'],
    ];
    for (const [label, body, field] of cases) {
      const before = await snapshot();
      const response = await admin('PUT', '/v1/admin/issuers/new', body);
      expect(response.status, `${label}: ${JSON.stringify(response.body)}`).toBe(400);
      expect(response.body, label).toMatchObject({ error: 'invalid_request', field });
      expect(JSON.stringify(response.body), label).not.toContain('secret');
      expect(await snapshot(), label).toEqual(before);
    }
    expect((await admin('GET', '/v1/admin/issuers/new')).status).toBe(404);
    expect((await admin('PUT', '/v1/admin/issuers/Bad_Id', base)).status).toBe(400);

    // One iss, one issuer.
    const before = await snapshot();
    const duplicate = await admin('PUT', '/v1/admin/issuers/spire-copy', { ...base, issuer: spire.issuer });
    expect(duplicate.status, JSON.stringify(duplicate.body)).toBe(409);
    expect(await snapshot()).toEqual(before);
    // A change that would lock out bound workloads is refused rather than silently applied.
    const changes: Array<[Record<string, unknown>, string]> = [
      [{ kind: 'spiffe', trust_domain: 'other.test' }, 'trust_domain'],
      [{ kind: 'kubernetes' }, 'kind'],
    ];
    for (const [change, field] of changes) {
      const locked = await admin('PUT', '/v1/admin/issuers/spire', { issuer: spire.issuer, jwks_uri: spire.jwksUri, ...change });
      expect(locked.status, JSON.stringify(locked.body)).toBe(409);
      expect(locked.body).toMatchObject({ error: 'invalid_request', field });
      expect(locked.body.error_description).toContain('svid-bot');
      expect(await snapshot()).toEqual(before);
    }
    expect((await admin('GET', '/v1/admin/issuers/spire')).body).toMatchObject({ kind: 'spiffe', trust_domain: 'acme.test' });
    // Loopback http is fine for development, and https anywhere (the key set is fetched only when used).
    for (const [id, uri] of [
      ['dev-v4', 'http://127.0.0.1:9/jwks'],
      ['dev-v6', 'http://[::1]:9/jwks'],
      ['dev-name', 'http://localhost:9/jwks'],
      ['prod', 'https://new.acme.test/jwks'],
    ]) {
      await putIssuer(id!, { issuer: `https://${id}.acme.test`, jwks_uri: uri, kind: 'oidc' }, 201);
    }
  });

  it('refuses bad workload bindings with 400 naming the field, and stores nothing', async () => {
    const key = await workloadKey('EdDSA');
    const cases: Array<[string, unknown, string]> = [
      ['both jwks and issuer', { jwks: { keys: [key.publicJwk] }, issuer: 'spire', subject: 'spiffe://acme.test/x' }, 'jwks'],
      ['neither', {}, 'jwks'],
      ['issuer without subject', { issuer: 'spire' }, 'subject'],
      ['subject without issuer', { subject: 'spiffe://acme.test/x' }, 'issuer'],
      ['unknown issuer', { issuer: 'nope', subject: 'spiffe://acme.test/x' }, 'issuer'],
      ['SPIFFE ID of another trust domain', { issuer: 'spire', subject: 'spiffe://evil.test/x' }, 'subject'],
      ['not a SPIFFE ID', { issuer: 'spire', subject: 'chatbot' }, 'subject'],
      ['SPIFFE ID with a dot-dot segment', { issuer: 'spire', subject: 'spiffe://acme.test/../x' }, 'subject'],
      ['not a service account', { issuer: 'kube', subject: 'system:serviceaccount:bots' }, 'subject'],
      ['service account with a bad namespace', { issuer: 'kube', subject: 'system:serviceaccount:Bots:chatbot' }, 'subject'],
      ['subject with a control character', { issuer: 'other', subject: 'robot\u0000' }, 'subject'],
      ['unknown field', { issuer: 'other', subject: 'robot-9', trust_domain: 'x' }, 'trust_domain'],
    ];
    for (const [label, body, field] of cases) {
      const before = await snapshot();
      const response = await admin('PUT', '/v1/admin/workloads/new-bot', body);
      expect(response.status, `${label}: ${JSON.stringify(response.body)}`).toBe(400);
      expect(response.body, label).toMatchObject({ error: 'invalid_request', field });
      expect(await snapshot(), label).toEqual(before);
    }
    expect((await admin('GET', '/v1/admin/workloads/new-bot')).status).toBe(404);
  });
});
