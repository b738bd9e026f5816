import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { call } from './support/http.js';
import { asAdmin, introspect, putBoundary, registerBot, type Bot } from './support/scenario.js';

let broker: TestBroker;
let bot: Bot;

beforeAll(async () => {
  broker = await startBroker();
  await putBoundary(broker, 'crm-orders');
  await putBoundary(broker, 'payments', {
    tool: 'https://pay.acme.test',
    actions: ['refund:create'],
    intents: ['refund_request'],
    default_ttl: 60,
    max_ttl: 300,
  });
  bot = await registerBot(broker);
});
afterAll(() => broker?.close());

describe('the core loop', () => {
  it('issues an RFC 9068 JWT for a permitted tool call, verifiable offline with the JWKS', async () => {
    const taskId = await bot.openTask();
    const response = await bot.credential(taskId, {
      boundary: 'crm-orders',
      action: 'orders:read',
      resource: 'order/1001',
      purpose: 'look up status',
    });
    expect(response.status).toBe(201);
    const { lease_id, credential, expires_in, expires_at } = response.body;
    expect(credential).toMatchObject({ kind: 'jwt', token_type: 'Bearer' });
    expect(expires_in).toBe(120);

    const jwks = createRemoteJWKSet(new URL(`${broker.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(credential.access_token, jwks, {
      issuer: broker.url,
      audience: 'https://crm.acme.test',
      typ: 'at+jwt',
    });
    expect(protectedHeader.alg).toBe('EdDSA');
    expect(protectedHeader.kid).toBeTruthy();
    expect(payload).toMatchObject({
      sub: 'user-42',
      jti: lease_id,
      client_id: 'chatbot',
      act: { sub: 'chatbot' },
      scope: 'orders:read',
      task_id: taskId,
      intent: 'order_status',
      authorization_details: [{ type: 'tool_call', boundary: 'crm-orders', action: 'orders:read', resource: 'order/1001' }],
    });
    expect(payload.exp! - payload.iat!).toBe(120);
    expect(payload.nbf).toBe(payload.iat);
    expect(Math.abs(Date.parse(expires_at) / 1000 - payload.exp!)).toBeLessThan(1);

    const active = await introspect(broker, credential.access_token);
    expect(active).toMatchObject({
      active: true,
      sub: 'user-42',
      aud: 'https://crm.acme.test',
      jti: lease_id,
      client_id: 'chatbot',
      scope: 'orders:read',
      task_id: taskId,
    });
  });

  it('caps the TTL at the boundary maximum and at the time left on the task', async () => {
    const taskId = await bot.openTask();
    const capped = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read', ttl: 3600 });
    expect(capped.status).toBe(201);
    expect(capped.body.expires_in).toBe(600);

    const shortTask = await bot.openTask('order_status', { ttl: 30 });
    const byTask = await bot.credential(shortTask, { boundary: 'crm-orders', action: 'orders:read', ttl: 500 });
    expect(byTask.status).toBe(201);
    expect(byTask.body.expires_in).toBeLessThanOrEqual(30);
    expect(byTask.body.expires_in).toBeGreaterThanOrEqual(28);

    const asked = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read', ttl: 7 });
    expect(asked.body.expires_in).toBe(7);
  });

  it('denies with a machine-readable reason and records the decision', async () => {
    const taskId = await bot.openTask();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ boundary: 'nope', action: 'orders:read' }, 'unknown_boundary'],
      [{ boundary: 'payments', action: 'refund:create' }, 'intent_mismatch'],
      [{ boundary: 'crm-orders', action: 'orders:delete' }, 'action_not_allowed'],
    ];
    for (const [body, reason] of cases) {
      const response = await bot.credential(taskId, body);
      expect(response.status, reason).toBe(403);
      expect(response.body).toMatchObject({ error: 'access_denied', reasons: [reason] });
      expect(response.body.decision_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(response.body.error_description).toBeTypeOf('string');
    }
    const decisions = await asAdmin(broker)('GET', `/v1/decisions?task=${taskId}`);
    expect(decisions.body.items.map((d: { reasons: string[] }) => d.reasons[0]).sort()).toEqual([
      'action_not_allowed',
      'intent_mismatch',
      'unknown_boundary',
    ]);
    expect(decisions.body.items.every((d: { outcome: string }) => d.outcome === 'deny')).toBe(true);
    const leases = await asAdmin(broker)('GET', `/v1/leases?task=${taskId}`);
    expect(leases.body.items).toEqual([]);
  });

  it('revokes every active lease when the journey changes, then checks against the new intent', async () => {
    const taskId = await bot.openTask();
    const first = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    const second = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:refund' });
    expect((await introspect(broker, first.body.credential.access_token)).active).toBe(true);

    const changed = await bot.call('POST', `/v1/tasks/${taskId}/intent`, { intent: 'refund_request' });
    expect(changed.status).toBe(200);
    expect(changed.body.intent).toBe('refund_request');
    expect(changed.body.revoked_leases.sort()).toEqual([first.body.lease_id, second.body.lease_id].sort());

    for (const issued of [first, second]) {
      expect(await introspect(broker, issued.body.credential.access_token)).toEqual({ active: false });
    }
    const old = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    expect(old.body.reasons).toEqual(['intent_mismatch']);
    const fresh = await bot.credential(taskId, { boundary: 'payments', action: 'refund:create' });
    expect(fresh.status).toBe(201);

    const leases = await asAdmin(broker)('GET', `/v1/leases?task=${taskId}&state=revoked`);
    expect(leases.body.items).toHaveLength(2);
    expect(leases.body.items[0]).toMatchObject({
      state: 'revoked',
      revoke_reason: 'journey_changed',
      boundary_id: 'crm-orders',
      boundary_version: 1,
    });
  });

  it('revokes every active lease when the task completes, and refuses credentials afterwards', async () => {
    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    const done = await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ state: 'completed', revoked_leases: [issued.body.lease_id] });
    expect((await introspect(broker, issued.body.credential.access_token)).active).toBe(false);

    const after = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    expect(after.status).toBe(403);
    expect(after.body.reasons).toEqual(['task_not_active']);

    const again = await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    expect(again.status).toBe(200);
    const intent = await bot.call('POST', `/v1/tasks/${taskId}/intent`, { intent: 'order_status2' });
    expect(intent.status).toBe(409);
    expect(intent.body).toMatchObject({ error: 'invalid_request', reasons: ['task_not_active'] });
  });

  it('shows the owning workload its task with intent history and leases; any other gets 404', async () => {
    const taskId = await bot.openTask();
    await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    await bot.call('POST', `/v1/tasks/${taskId}/intent`, { intent: 'refund_request' });
    const shown = await bot.call('GET', `/v1/tasks/${taskId}`);
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ task_id: taskId, intent: 'refund_request', subject: 'user-42', state: 'active' });
    expect(shown.body.events.map((e: { kind: string; intent: string }) => [e.kind, e.intent])).toEqual([
      ['opened', 'order_status'],
      ['intent_changed', 'refund_request'],
    ]);
    expect(shown.body.leases).toHaveLength(1);
    expect(shown.body.leases[0]).toMatchObject({ state: 'revoked', revoke_reason: 'journey_changed' });

    const other = await registerBot(broker, 'other-bot');
    for (const [method, path, body] of [
      ['GET', `/v1/tasks/${taskId}`, undefined],
      ['POST', `/v1/tasks/${taskId}/credentials`, { boundary: 'payments', action: 'refund:create' }],
      ['POST', `/v1/tasks/${taskId}/intent`, { intent: 'order_status' }],
      ['POST', `/v1/tasks/${taskId}/complete`, undefined],
      ['GET', '/v1/tasks/not-a-uuid', undefined],
    ] as const) {
      const response = await other.call(method, path, body);
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(response.body.error).toBe('not_found');
    }
    expect((await bot.call('GET', `/v1/tasks/${taskId}`)).body.state).toBe('active');
  });

  it('keeps the context a task was opened with, for reviewers, and audits only its keys', async () => {
    const context = { channel: 'web-chat', conversation: 'c-8812', customer_email: 'zoe@example.test' };
    const opened = await bot.call('POST', '/v1/tasks', { intent: 'order_status', subject: 'user-42', context });
    expect(opened.status).toBe(201);
    expect(opened.body.context).toEqual(context);
    expect((await bot.call('GET', `/v1/tasks/${opened.body.task_id}`)).body.context).toEqual(context);
    expect((await bot.call('GET', `/v1/tasks/${await bot.openTask()}`)).body.context).toEqual({});
    const { rows } = await broker.app.broker.db.query<{ data: Record<string, unknown> }>(
      `SELECT data FROM audit_events WHERE kind = 'task.opened' AND task_id = $1`,
      [opened.body.task_id],
    );
    expect(rows[0]!.data.context_keys).toEqual(['channel', 'conversation', 'customer_email']);
    expect(JSON.stringify(rows[0]!.data)).not.toContain('zoe@example.test');
  });

  it('revokes a token through RFC 7009, for its own workload only', async () => {
    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    const token = issued.body.credential.access_token as string;
    const other = await registerBot(broker, 'intruder');
    const foreign = await call(broker.url, 'POST', '/oauth2/revoke', { token: await other.token(), form: { token } });
    expect(foreign.status).toBe(200);
    expect((await introspect(broker, token)).active).toBe(true);
    const own = await call(broker.url, 'POST', '/oauth2/revoke', { token: await bot.token(), form: { token } });
    expect(own.status).toBe(200);
    expect((await introspect(broker, token)).active).toBe(false);
    const lease = await asAdmin(broker)('GET', `/v1/leases?task=${taskId}`);
    expect(lease.body.items[0]).toMatchObject({ state: 'revoked', revoke_reason: 'revoked_by_client' });
    const garbage = await call(broker.url, 'POST', '/oauth2/revoke', { token: broker.adminKey, form: { token: 'not-a-token' } });
    expect(garbage.status).toBe(200);
  });

  it('introspects unknown, tampered and foreign tokens as inactive', async () => {
    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    const token = issued.body.credential.access_token as string;
    const [h, p, s] = token.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, scope: 'orders:refund' })).toString('base64url')}.${s}`;
    for (const candidate of ['garbage', forged, await bot.token(), `${h}.${p}.`]) {
      expect(await introspect(broker, candidate)).toEqual({ active: false });
    }
    const unauthenticated = await call(broker.url, 'POST', '/oauth2/introspect', { form: { token } });
    expect(unauthenticated.status).toBe(401);
    expect(decodeProtectedHeader(token).typ).toBe('at+jwt');
  });

  it('serves RFC 8414 metadata, health and Prometheus metrics', async () => {
    const metadata = await call(broker.url, 'GET', '/.well-known/oauth-authorization-server');
    expect(metadata.body).toMatchObject({
      issuer: broker.url,
      jwks_uri: `${broker.url}/.well-known/jwks.json`,
      introspection_endpoint: `${broker.url}/oauth2/introspect`,
      revocation_endpoint: `${broker.url}/oauth2/revoke`,
      token_endpoint: `${broker.url}/oauth2/token`,
    });
    expect((await call(broker.url, 'GET', '/healthz')).status).toBe(200);
    expect((await call(broker.url, 'GET', '/readyz')).body.status).toBe('ready');
    const metrics = await call<string>(broker.url, 'GET', '/metrics');
    expect(metrics.body).toMatch(/tollgate_credential_requests_total\{outcome="permit",reason="none"\} \d+/);
    expect(metrics.body).toMatch(/tollgate_credential_requests_total\{outcome="deny",reason="intent_mismatch"\} \d+/);
    expect(metrics.body).toMatch(/tollgate_active_leases \d+/);
    expect(metrics.body).toMatch(/tollgate_http_request_duration_seconds_bucket\{.*route="\/v1\/tasks\/:id\/credentials"/);
    const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    expect(metrics.body).toContain(`tollgate_build_info{version="${version}",node="${process.version}"} 1`);
    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_p99_seconds',
      'nodejs_heap_size_used_bytes',
    ]) {
      expect(metrics.body).toMatch(new RegExp(`^${name} [0-9.e+-]+$`, 'm'));
    }
  });
});
