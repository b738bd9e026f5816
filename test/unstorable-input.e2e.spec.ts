import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestBroker } from './support/broker.js';
import { call, type Response } from './support/http.js';
import { asAdmin, putBoundary, startWithBot, type Bot } from './support/scenario.js';
import { assertion, workloadKey } from './support/workload.js';

/**
 * Issue 12 finding 6: NUL, lone surrogates and very deep JSON in bot-controlled data answered 500
 * and recorded no decision, which hid a probe from the drift guard. Every such input gets a 4xx
 * naming the field, or (a credential request's params) a decision that is recorded.
 */
let broker: TestBroker;
let bot: Bot;

beforeAll(async () => {
  ({ broker, bot } = await startWithBot());
  await putBoundary(broker, 'payments', { tool: 'https://pay.acme.test', actions: ['refund:create'], intents: ['refund_request'] });
});
afterAll(() => broker?.close());

/** A JSON text with `levels` nested arrays (built as text: JSON.stringify would overflow). */
function deepArray(levels: number): string {
  return `${'['.repeat(levels)}${']'.repeat(levels)}`;
}

async function rawAsBot(method: string, path: string, body: string): Promise<Response> {
  return call(broker.url, method, path, { token: await bot.token(), raw: body });
}

function expectRefused(response: Response, field: string): void {
  expect(response.status, JSON.stringify(response.body)).toBe(400);
  expect(response.body).toMatchObject({ error: 'invalid_request', field });
  expect(response.body.error_description).toMatch(/NUL|unicode|deeper/);
}

/** The task's decision rows, newest first, with the params as stored. */
async function decisionsOf(taskId: string): Promise<Array<{ reasons: string[]; params: unknown }>> {
  const { rows } = await broker.app.broker.db.query<{ reasons: string[]; params: unknown }>(
    'SELECT reasons, params FROM decisions WHERE task_id = $1 ORDER BY id DESC',
    [taskId],
  );
  return rows;
}

describe('values PostgreSQL cannot store', () => {
  it('task context with NUL, a lone surrogate (value or key) or 200,000 levels of nesting is a 400 naming the field', async () => {
    const open = (context: string) => rawAsBot('POST', '/v1/tasks', `{"intent":"order_status","subject":"user-42","context":${context}}`);
    expectRefused(await open('{"note":"a\\u0000b"}'), 'context.note');
    expectRefused(await open('{"note":"\\ud800"}'), 'context.note');
    expectRefused(await open('{"\\u0000":"x"}'), 'context');
    expectRefused(await open('{"a":{"\\udc00x":1}}'), 'context.a');
    expectRefused(await open(`{"deep":${deepArray(200_000)}}`), expect.stringMatching(/^context\.deep(\.0)*$/) as unknown as string);
    expectRefused(await rawAsBot('POST', '/v1/tasks', '{"intent":"order_status","subject":"user\\u0000"}'), 'subject');
    // Nothing of it was written.
    expect((await asAdmin(broker)('GET', '/v1/audit?kind=task.opened')).body.items).toHaveLength(0);
  });

  it('reviewer filters with %00 are a 400', async () => {
    for (const path of ['/v1/leases', '/v1/decisions', '/v1/approvals', '/v1/audit']) {
      expectRefused(await asAdmin(broker)('GET', `${path}?workload=%00`), 'workload');
      expectRefused(await asAdmin(broker)('GET', `${path}?workload=chat%00bot&limit=5`), 'workload');
    }
  });

  it("an issuer's x5c with a NUL, a boundary's approval.when or a simulation's params with a lone surrogate are a 400", async () => {
    const issuer =
      '{"issuer":"https://issuer.test","kind":"oidc","jwks":{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","x5c":["\\u0000"]}]}}';
    expectRefused(await call(broker.url, 'PUT', '/v1/admin/issuers/probe', { token: broker.adminKey, raw: issuer }), 'jwks.keys.0.x5c.0');

    const boundary = JSON.stringify({
      tool: 'https://t.test',
      actions: ['a'],
      intents: ['order_status'],
      default_ttl: 60,
      max_ttl: 60,
      credential: { kind: 'jwt' },
      approval: { when: 'context.params.x == "@"' },
    }).replace('@', '\\ud800');
    expectRefused(await call(broker.url, 'PUT', '/v1/admin/boundaries/probe', { token: broker.adminKey, raw: boundary }), 'approval.when');

    const simulate =
      '{"workload":"chatbot","task":{"intent":"order_status","subject":"u"},"request":{"boundary":"crm-orders","action":"orders:read","params":{"x":"\\ud800"}}}';
    expectRefused(await call(broker.url, 'POST', '/v1/admin/simulate', { token: broker.adminKey, raw: simulate }), 'request.params.x');
  });
});

describe('credential request params that cannot be stored are decided and recorded', () => {
  it('five intent-mismatch requests with params {"reason":"x\\u0000"}: decisions recorded, task suspended at the third', async () => {
    const taskId = await bot.openTask();
    const statuses: Array<[number, unknown]> = [];
    for (let attempt = 0; attempt < 5; attempt++) {
      const response = await rawAsBot(
        'POST',
        `/v1/tasks/${taskId}/credentials`,
        '{"boundary":"payments","action":"refund:create","params":{"reason":"x\\u0000"}}',
      );
      statuses.push([response.status, response.body.reasons]);
    }
    expect(statuses).toEqual([
      [403, ['intent_mismatch']],
      [403, ['intent_mismatch']],
      [403, ['intent_mismatch']],
      [403, ['task_not_active']],
      [403, ['task_not_active']],
    ]);
    expect((await bot.call('GET', `/v1/tasks/${taskId}`)).body).toMatchObject({ state: 'revoked', end_reason: 'drift_detected' });

    const decisions = await decisionsOf(taskId);
    expect(decisions.map((decision) => decision.reasons[0])).toEqual([
      'task_not_active',
      'task_not_active',
      'intent_mismatch',
      'intent_mismatch',
      'intent_mismatch',
    ]);
    for (const decision of decisions) {
      // Kept as the bot sent it, as escaped JSON text.
      expect(decision.params).toEqual({ $unstorable: 'nul', json: '{"reason":"x\\u0000"}' });
    }
  });

  it('a request the boundary serves, with unstorable params, is refused invalid_params and counts as drift', async () => {
    const taskId = await bot.openTask();
    const ask = (params: string) =>
      rawAsBot('POST', `/v1/tasks/${taskId}/credentials`, `{"boundary":"crm-orders","action":"orders:read","params":${params}}`);
    const nul = await ask('{"reason":"x\\u0000"}');
    expect(nul.status).toBe(403);
    expect(nul.body).toMatchObject({ error: 'access_denied', reasons: ['invalid_params'], decision_id: expect.any(String) });
    const surrogate = await ask('{"\\ud800":1}');
    expect(surrogate.body.reasons).toEqual(['invalid_params']);
    const deep = await ask(`{"x":${deepArray(40)}}`);
    expect(deep.body).toMatchObject({ reasons: ['invalid_params'] });
    expect(deep.body.error_description).toContain('drift_detected');

    const recorded = (await decisionsOf(taskId)).map((decision) => decision.params);
    expect(recorded).toEqual(
      expect.arrayContaining([
        { $unstorable: 'nul', json: '{"reason":"x\\u0000"}' },
        { $unstorable: 'lone_surrogate', json: '{"\\ud800":1}' },
        { $unstorable: 'too_deep', json: `{"x":${deepArray(40)}}` },
      ]),
    );
    // Very deep params are over the size limit before anything else: a 400, like any malformed body.
    const huge = await rawAsBot(
      'POST',
      `/v1/tasks/${await bot.openTask()}/credentials`,
      `{"boundary":"crm-orders","action":"orders:read","params":{"x":${deepArray(200_000)}}}`,
    );
    expect(huge.status).toBe(400);
  });

  it('params holding a number JSON cannot carry (1e400) are refused invalid_params, also when an approval is named', async () => {
    // 1e400 parses to Infinity, which no JSON (nor the approval's params digest) can carry. Named
    // with an approval, it once reached the digest and answered 500 (found by the fuzz test).
    const taskId = await bot.openTask();
    const infinite = await rawAsBot(
      'POST',
      `/v1/tasks/${taskId}/credentials`,
      `{"boundary":"crm-orders","action":"orders:read","params":{"x":[1e400]},"approval_id":"0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"}`,
    );
    expect(infinite.status).toBe(403);
    expect(infinite.body).toMatchObject({ error: 'access_denied', reasons: ['invalid_params'] });
    expect((await decisionsOf(taskId)).map((decision) => decision.params)).toEqual([{ $unstorable: 'not_finite', json: '{"x":[null]}' }]);
  });

  it('the token endpoint decides the same way', async () => {
    const taskId = await bot.openTask();
    const details = `[{"type":"tool_call","task_id":"${taskId}","boundary":"crm-orders","action":"orders:read","params":{"reason":"x\\u0000"}}]`;
    const response = await call(broker.url, 'POST', '/oauth2/token', {
      form: {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: await bot.token(),
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        authorization_details: details,
      },
    });
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ error: 'access_denied', reasons: ['invalid_params'] });
    expect((await decisionsOf(taskId)).map((decision) => decision.reasons)).toEqual([['invalid_params']]);
  });
});

describe('JWT claims that cannot be stored', () => {
  it('a workload assertion naming "chat\\u0000bot" (or a federated issuer with a NUL) is a 401', async () => {
    for (const claims of [
      { iss: 'chat\u0000bot', sub: 'chat\u0000bot' },
      { iss: 'https://issuer.test/\u0000', sub: 'x' },
      { iss: 'chatbot', sub: 'chatbot', note: '\ud800' },
    ]) {
      const token = await new SignJWT(claims)
        .setProtectedHeader({ alg: bot.key.alg, kid: bot.key.kid })
        .setAudience(broker.url)
        .setIssuedAt()
        .setExpirationTime('2m')
        .sign(bot.key.privateKey);
      const response = await call(broker.url, 'POST', '/v1/tasks', { token, json: { intent: 'order_status', subject: 'u' } });
      expect(response.status, JSON.stringify(response.body)).toBe(401);
      expect(response.body).toMatchObject({ error: 'invalid_client' });
    }
  });

  it("a resource server's client assertion whose jti holds a NUL (or iss and sub) is a 401", async () => {
    const key = await workloadKey('EdDSA');
    const created = await asAdmin(broker)('POST', '/v1/admin/api-keys', {
      role: 'resource_server',
      audience: 'https://crm.acme.test',
      jwks: { keys: [key.publicJwk] },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const clientId = created.body.id as string;
    for (const [client, jti] of [
      [clientId, 'a\u0000b'],
      [clientId, '\udfff'],
      [`${clientId}\u0000`, randomUUID()],
    ]) {
      const clientAssertion = await new SignJWT({ jti })
        .setProtectedHeader({ alg: key.alg, kid: key.kid })
        .setIssuer(client!)
        .setSubject(client!)
        .setAudience(broker.url)
        .setIssuedAt()
        .setExpirationTime('1m')
        .sign(key.privateKey);
      const response = await call(broker.url, 'POST', '/oauth2/introspect', {
        form: {
          token: 'x',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: clientAssertion,
        },
      });
      expect(response.status, JSON.stringify(response.body)).toBe(401);
      expect(response.body).toMatchObject({ error: 'invalid_client' });
    }
  });

  it('a DPoP proof whose jti holds a NUL is a 400 invalid_dpop_proof, and nothing is decided', async () => {
    const taskId = await bot.openTask();
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const proof = await new SignJWT({
      htm: 'POST',
      htu: `${broker.url}/v1/tasks/${taskId}/credentials`,
      iat: Math.floor(Date.now() / 1000),
      jti: 'a\u0000b',
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(publicKey) })
      .sign(privateKey);
    const response = await call(broker.url, 'POST', `/v1/tasks/${taskId}/credentials`, {
      token: await assertion(bot.id, bot.key, broker.url),
      json: { boundary: 'crm-orders', action: 'orders:read' },
      headers: { DPoP: proof },
    });
    expect(response.status, JSON.stringify(response.body)).toBe(400);
    expect(response.body).toMatchObject({ error: 'invalid_dpop_proof' });
    expect(await decisionsOf(taskId)).toEqual([]);
  });
});
