import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { call } from './support/http.js';
import { asAdmin, introspect, putBoundary, registerBot, type Bot } from './support/scenario.js';

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

let broker: TestBroker;
let bot: Bot;
let as: oauth.AuthorizationServer;
const client: oauth.Client = { client_id: 'chatbot' };
const insecure = { [oauth.allowInsecureRequests]: true };

beforeAll(async () => {
  // One task collects six refusals here, each asked twice: more than the drift guard's default allows.
  broker = await startBroker({ env: { TOLLGATE_DRIFT_THRESHOLD: '100' } });
  await putBoundary(broker, 'crm-orders');
  await putBoundary(broker, 'payments', { tool: 'https://pay.acme.test', actions: ['refund:create'], intents: ['refund_request'] });
  bot = await registerBot(broker);
  const issuer = new URL(broker.url);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
});
afterAll(() => broker?.close());

function exchange(parameters: Record<string, string>): Promise<Response> {
  return oauth.genericTokenEndpointRequest(as, client, oauth.None(), GRANT, parameters, insecure);
}

async function details(taskId: string, call: Record<string, unknown> = {}): Promise<Record<string, string>> {
  return {
    subject_token: await bot.token(),
    subject_token_type: JWT_TYPE,
    audience: 'https://crm.acme.test',
    scope: 'orders:read',
    authorization_details: JSON.stringify([
      { type: 'tool_call', task_id: taskId, boundary: 'crm-orders', action: 'orders:read', resource: 'order/7', ...call },
    ]),
  };
}

describe('RFC 8693 token exchange', () => {
  it('is advertised in the metadata', () => {
    expect(as.token_endpoint).toBe(`${broker.url}/oauth2/token`);
    expect(as.grant_types_supported).toContain(GRANT);
  });

  it('issues the same credential as the /v1 door, verifiable by a resource server with the JWKS', async () => {
    const taskId = await bot.openTask();
    const response = await oauth.processGenericTokenEndpointResponse(
      as,
      client,
      await exchange({ ...(await details(taskId)), unknown_extension: 'ignored' }),
    );
    expect(response).toMatchObject({
      token_type: 'bearer',
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      expires_in: 120,
      scope: 'orders:read',
    });
    const leaseId = (response as unknown as { lease_id: string }).lease_id;
    const jwks = createRemoteJWKSet(new URL(as.jwks_uri!));
    const { payload } = await jwtVerify(response.access_token, jwks, {
      issuer: as.issuer,
      audience: 'https://crm.acme.test',
      typ: 'at+jwt',
    });
    expect(payload).toMatchObject({
      jti: leaseId,
      sub: 'user-42',
      client_id: 'chatbot',
      act: { sub: 'chatbot' },
      scope: 'orders:read',
      task_id: taskId,
      authorization_details: [{ type: 'tool_call', boundary: 'crm-orders', action: 'orders:read', resource: 'order/7' }],
    });
    expect((await introspect(broker, response.access_token)).active).toBe(true);
    const leases = await asAdmin(broker)('GET', `/v1/leases?task=${taskId}`);
    expect(leases.body.items.map((l: { lease_id: string }) => l.lease_id)).toEqual([leaseId]);
    // Completing the task revokes it like any other lease.
    await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    expect((await introspect(broker, response.access_token)).active).toBe(false);
  });

  it('refuses with RFC 6749 §5.2 errors carrying reasons, and records every decision', async () => {
    const taskId = await bot.openTask();
    const attempts: Array<[Record<string, string>, number, string, string[] | undefined]> = [
      [
        { ...(await details(taskId, { boundary: 'payments', action: 'refund:create' })), scope: 'refund:create' },
        400,
        'invalid_target',
        ['audience_mismatch'],
      ],
      [
        {
          ...(await details(taskId, { boundary: 'payments', action: 'refund:create' })),
          audience: 'https://pay.acme.test',
          scope: 'refund:create',
        },
        400,
        'access_denied',
        ['intent_mismatch'],
      ],
      [{ ...(await details(taskId, { action: 'orders:delete' })), scope: 'orders:delete' }, 400, 'access_denied', ['action_not_allowed']],
      [await details('00000000-0000-7000-8000-000000000000'), 400, 'invalid_grant', undefined],
    ];
    for (const [parameters, status, error, reasons] of attempts) {
      const response = await exchange(parameters);
      const body = (await response.json()) as { error: string; reasons?: string[] };
      expect(response.status, JSON.stringify(body)).toBe(status);
      expect(body.error).toBe(error);
      expect(body.reasons).toEqual(reasons);
      await expect(oauth.processGenericTokenEndpointResponse(as, client, await exchange(parameters))).rejects.toBeInstanceOf(
        oauth.ResponseBodyError,
      );
    }
    const decisions = await asAdmin(broker)('GET', `/v1/decisions?task=${taskId}&outcome=deny`);
    expect(decisions.body.items.length).toBe(6);
  });

  it('answers bad requests with invalid_request, bad subject tokens with invalid_client, other grants with unsupported_grant_type', async () => {
    const taskId = await bot.openTask();
    const good = await details(taskId);
    const form = (overrides: Record<string, string | undefined>) => {
      const parameters: Record<string, string> = { grant_type: GRANT, ...good };
      for (const [key, value] of Object.entries(overrides)) {
        if (value === undefined) delete parameters[key];
        else parameters[key] = value;
      }
      return call(broker.url, 'POST', '/oauth2/token', { form: parameters });
    };
    const cases: Array<[Record<string, string | undefined>, number, string]> = [
      [{ grant_type: 'client_credentials' }, 400, 'unsupported_grant_type'],
      [{ grant_type: undefined }, 400, 'invalid_request'],
      [{ subject_token: undefined }, 400, 'invalid_request'],
      [{ subject_token_type: 'urn:ietf:params:oauth:token-type:id_token' }, 400, 'invalid_request'],
      [{ authorization_details: 'not json' }, 400, 'invalid_request'],
      [{ authorization_details: '[]' }, 400, 'invalid_request'],
      [
        { authorization_details: JSON.stringify([{ type: 'payment', task_id: taskId, boundary: 'crm-orders', action: 'orders:read' }]) },
        400,
        'invalid_request',
      ],
      [{ scope: 'orders:refund' }, 400, 'invalid_request'],
      [{ subject_token: 'garbage' }, 401, 'invalid_client'],
      [{ client_id: 'someone-else' }, 401, 'invalid_client'],
    ];
    for (const [overrides, status, error] of cases) {
      const response = await form(overrides);
      expect(response.status, JSON.stringify(overrides)).toBe(status);
      expect(response.body.error, JSON.stringify(overrides)).toBe(error);
    }
    const repeated = await fetch(`${broker.url}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `grant_type=${encodeURIComponent(GRANT)}&scope=a&scope=b`,
    });
    expect(repeated.status).toBe(400);
    expect(((await repeated.json()) as { error: string }).error).toBe('invalid_request');
    // The right client_id is fine.
    expect((await form({ client_id: 'chatbot' })).status).toBe(200);
  });
});

describe('RFC 8707 resource indicators at the token endpoint', () => {
  it('RFC 8414 metadata, read with oauth4webapi discovery, advertises what an MCP client looks for', () => {
    expect(as).toMatchObject({
      issuer: broker.url,
      token_endpoint: `${broker.url}/oauth2/token`,
      jwks_uri: `${broker.url}/.well-known/jwks.json`,
      introspection_endpoint: `${broker.url}/oauth2/introspect`,
      revocation_endpoint: `${broker.url}/oauth2/revoke`,
      grant_types_supported: [GRANT],
      token_endpoint_auth_methods_supported: ['none'],
      authorization_details_types_supported: ['tool_call'],
      resource_indicators_supported: true,
    });
    expect(as.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'EdDSA']));
  });

  it('is in /openapi.json', async () => {
    const document = (await call(broker.url, 'GET', '/openapi.json')).body;
    const form = document.paths['/oauth2/token'].post.requestBody.content['application/x-www-form-urlencoded'].schema;
    expect(form.properties.resource).toMatchObject({ type: 'string' });
    expect(form.properties.resource.description).toMatch(/RFC 8707/);
    expect(document.paths['/.well-known/oauth-authorization-server'].get.responses['200']).toBeDefined();
  });

  const withResource = async (taskId: string, resource: string, call: Record<string, unknown> = {}) => {
    const { audience: _audience, ...parameters } = await details(taskId, call);
    return { ...parameters, resource };
  };

  it("takes the boundary's tool as resource and makes it the token's aud", async () => {
    const taskId = await bot.openTask();
    const response = await oauth.processGenericTokenEndpointResponse(
      as,
      client,
      await exchange(await withResource(taskId, 'https://crm.acme.test')),
    );
    const { payload } = await jwtVerify(response.access_token, createRemoteJWKSet(new URL(as.jwks_uri!)), {
      issuer: as.issuer,
      audience: 'https://crm.acme.test',
      typ: 'at+jwt',
    });
    expect(payload.aud).toBe('https://crm.acme.test');
    // With audience too, both naming the tool.
    const both = await exchange({ ...(await withResource(taskId, 'https://crm.acme.test')), audience: 'https://crm.acme.test' });
    expect(both.status).toBe(200);
  });

  it("refuses a resource no boundary serves, or another boundary's tool, with invalid_target, a decision and an audit event", async () => {
    const taskId = await bot.openTask();
    for (const resource of ['https://nobody.acme.test/mcp', 'https://pay.acme.test']) {
      const response = await exchange(await withResource(taskId, resource));
      const body = (await response.json()) as { error: string; reasons?: string[]; decision_id?: string };
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(body).toMatchObject({
        error: 'invalid_target',
        error_description: "the resource is not the boundary's tool",
        reasons: ['audience_mismatch'],
      });
      const events = await broker.app.broker.db.query<{ kind: string }>(`SELECT kind FROM audit_events WHERE data->>'decision_id' = $1`, [
        body.decision_id,
      ]);
      expect(events.rows.map((row) => row.kind)).toEqual(['credential.deny']);
    }
    const decisions = await asAdmin(broker)('GET', `/v1/decisions?task=${taskId}&outcome=deny`);
    expect(decisions.body.items.map((d: { reasons: string[] }) => d.reasons)).toEqual([['audience_mismatch'], ['audience_mismatch']]);
  });

  it('refuses a resource that is not an absolute URI, has a fragment, is repeated, or contradicts audience with invalid_request', async () => {
    const taskId = await bot.openTask();
    const good = { grant_type: GRANT, ...(await withResource(taskId, 'https://crm.acme.test')) };
    for (const resource of ['crm.acme.test', '/mcp', 'https://crm.acme.test#tools', '']) {
      const response = await call(broker.url, 'POST', '/oauth2/token', { form: { ...good, resource } });
      expect(response.status, resource).toBe(400);
      expect(response.body.error, resource).toBe('invalid_request');
    }
    const contradicting = await call(broker.url, 'POST', '/oauth2/token', { form: { ...good, audience: 'https://pay.acme.test' } });
    expect(contradicting.body.error).toBe('invalid_request');
    const repeated = await fetch(`${broker.url}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `${new URLSearchParams(good).toString()}&resource=${encodeURIComponent('https://pay.acme.test')}`,
    });
    expect(repeated.status).toBe(400);
    expect(await repeated.json()).toMatchObject({ error: 'invalid_request', field: 'resource' });
  });
});
