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
