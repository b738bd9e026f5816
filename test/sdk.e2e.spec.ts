import { calculateJwkThumbprint, createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessDenied, InvalidClient, NotFound, TaskNotActive, TollgateClient, InvalidRequest } from '../libs/sdk/index.js';
import { generateDpopKey } from '../libs/sdk/dpop.js';
import type { TestBroker } from './support/broker.js';
import { call } from './support/http.js';
import { introspect, putBoundary, startWithBot, type Bot } from './support/scenario.js';

let broker: TestBroker;
let bot: Bot;
let client: TollgateClient;

beforeAll(async () => {
  ({ broker, bot } = await startWithBot());
  await putBoundary(broker, 'payments', {
    tool: 'https://pay.acme.test',
    actions: ['refund:create'],
    intents: ['refund_request'],
    default_ttl: 60,
    max_ttl: 300,
  });
  client = new TollgateClient({
    url: broker.url,
    tokenSource: { workloadId: bot.id, privateKey: bot.key.privateKey, kid: bot.key.kid, alg: bot.key.alg },
  });
});
afterAll(() => broker?.close());

describe('the SDK against the real broker', () => {
  it('with dpop, gets DPoP-bound credentials (cnf.jkt of its key) that introspect with cnf', async () => {
    const dpop = await generateDpopKey('ES256');
    const bound = new TollgateClient({
      url: broker.url,
      dpop,
      tokenSource: { workloadId: bot.id, privateKey: bot.key.privateKey, kid: bot.key.kid, alg: bot.key.alg },
    });
    const task = await bound.openTask({ intent: 'order_status', subject: 'user-42' });
    const credential = await task.credential({ boundary: 'crm-orders', action: 'orders:read' });
    expect(credential.tokenType).toBe('DPoP');
    const jkt = await calculateJwkThumbprint(dpop.publicJwk);
    expect(decodeJwt(credential.accessToken!).cnf).toEqual({ jkt });
    expect(await introspect(broker, credential.accessToken!)).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt } });
    // What the tool receives: the token under the DPoP scheme, with a proof bound to it (ath).
    const headers = await credential.headers('GET', 'https://crm.acme.test/orders/1001?x=1');
    expect(headers.authorization).toBe(`DPoP ${credential.accessToken}`);
    expect(decodeJwt(headers.dpop!)).toMatchObject({ htm: 'GET', htu: 'https://crm.acme.test/orders/1001', ath: expect.any(String) });
    // Each request carries a fresh proof: a second credential is not refused as a replay.
    expect((await task.credential({ boundary: 'crm-orders', action: 'orders:read' })).tokenType).toBe('DPoP');
  });

  it('opens a task and hands withCredential a JWT the tool verifies with the JWKS; revokeAfter makes it inactive', async () => {
    const task = await client.openTask({ intent: 'order_status', subject: 'user-42', context: { channel: 'web-chat' } });
    expect(task.snapshot).toMatchObject({
      workloadId: 'chatbot',
      intent: 'order_status',
      subject: 'user-42',
      state: 'active',
      context: { channel: 'web-chat' },
    });

    const jwks = createRemoteJWKSet(new URL(`${broker.url}/.well-known/jwks.json`));
    let token = '';
    const claims = await task.withCredential(
      { boundary: 'crm-orders', action: 'orders:read', resource: 'order/1001', purpose: 'look up the order' },
      async (credential) => {
        expect(credential).toMatchObject({ kind: 'jwt', tokenType: 'Bearer', expiresIn: 120 });
        token = credential.accessToken!;
        expect(await introspect(broker, token)).toMatchObject({ active: true });
        const { payload } = await jwtVerify(token, jwks, { issuer: broker.url, audience: 'https://crm.acme.test', typ: 'at+jwt' });
        expect(payload.jti).toBe(credential.leaseId);
        expect(Math.abs(credential.expiresAt.getTime() / 1000 - payload.exp!)).toBeLessThan(1);
        return payload;
      },
    );
    expect(claims).toMatchObject({ sub: 'user-42', scope: 'orders:read', task_id: task.id, act: { sub: 'chatbot' } });
    expect(await introspect(broker, token)).toEqual({ active: false });

    const details = await task.get();
    expect(details.leases).toEqual([
      expect.objectContaining({ leaseId: claims.jti, state: 'revoked', revokeReason: 'revoked_by_client', action: 'orders:read' }),
    ]);
  });

  it('revokes even when the callback throws, and keeps the credential with revokeAfter: false', async () => {
    const task = await client.openTask({ intent: 'order_status', subject: 'user-42' });
    let thrownWith = '';
    await expect(
      task.withCredential({ boundary: 'crm-orders', action: 'orders:read' }, (credential) => {
        thrownWith = credential.accessToken!;
        throw new Error('the CRM is down');
      }),
    ).rejects.toThrow('the CRM is down');
    expect(await introspect(broker, thrownWith)).toEqual({ active: false });

    const kept = await task.withCredential({ boundary: 'crm-orders', action: 'orders:read' }, (credential) => credential.accessToken!, {
      revokeAfter: false,
    });
    expect(await introspect(broker, kept)).toMatchObject({ active: true });
  });

  it('refuses a call outside the intent with AccessDenied (intent_mismatch), then permits it after changeIntent', async () => {
    const task = await client.openTask({ intent: 'order_status', subject: 'user-42' });
    const held = await task.credential({ boundary: 'crm-orders', action: 'orders:read' });
    let called = false;
    const refused = await task
      .withCredential({ boundary: 'payments', action: 'refund:create', resource: 'order/1001' }, () => {
        called = true;
      })
      .catch((error: unknown) => error);
    expect(called).toBe(false);
    expect(refused).toBeInstanceOf(AccessDenied);
    const denial = refused as AccessDenied;
    expect(denial).toMatchObject({ code: 'access_denied', status: 403, reasons: ['intent_mismatch'] });
    const decisions = await call(broker.url, 'GET', `/v1/decisions?task=${task.id}`, { token: broker.adminKey });
    expect(decisions.body.items).toContainEqual(
      expect.objectContaining({ decision_id: denial.decisionId, outcome: 'deny', reasons: ['intent_mismatch'] }),
    );

    const changed = await task.changeIntent('refund_request');
    expect(changed).toMatchObject({ intent: 'refund_request', state: 'active', revokedLeases: [held.leaseId] });
    expect(task.intent).toBe('refund_request');
    expect(await introspect(broker, held.accessToken!)).toEqual({ active: false });
    const refund = await task.credential({ boundary: 'payments', action: 'refund:create', resource: 'order/1001' });
    expect(await introspect(broker, refund.accessToken!)).toMatchObject({
      active: true,
      scope: 'refund:create',
      aud: 'https://pay.acme.test',
    });

    const details = await task.get();
    expect(details.events.map((event) => event.intent)).toEqual(['order_status', 'refund_request']);
  });

  it('complete revokes the held credential; afterwards the task is not active, as TaskNotActive', async () => {
    const task = await client.openTask({ intent: 'order_status', subject: 'user-42' });
    const held = await task.credential({ boundary: 'crm-orders', action: 'orders:read' });
    const completed = await task.complete();
    expect(completed).toMatchObject({ state: 'completed', endReason: 'task_completed', revokedLeases: [held.leaseId] });
    expect(await introspect(broker, held.accessToken!)).toEqual({ active: false });

    const credential = await task.credential({ boundary: 'crm-orders', action: 'orders:read' }).catch((error: unknown) => error);
    expect(credential).toBeInstanceOf(TaskNotActive);
    expect(credential).toMatchObject({ status: 403, reasons: ['task_not_active'] });
    expect((credential as TaskNotActive).decisionId).toMatch(/^[0-9a-f-]{36}$/);
    await expect(task.changeIntent('refund_request')).rejects.toMatchObject({ constructor: TaskNotActive, status: 409 });
    // Completing twice is harmless (so the SDK may replay it after a broken connection).
    await expect(task.complete()).resolves.toMatchObject({ state: 'completed', revokedLeases: [] });
  });

  it('maps the other refusals to their classes', async () => {
    await expect(client.task('01a21a2c-79f2-7468-bbff-85c14407e3d4').get()).rejects.toBeInstanceOf(NotFound);
    await expect(client.openTask({ intent: 'Order Status!', subject: 'user-42' })).rejects.toMatchObject({
      constructor: InvalidRequest,
      status: 400,
      field: 'intent',
    });
    const stranger = new TollgateClient({
      url: broker.url,
      tokenSource: { workloadId: 'stranger', privateKey: bot.key.privateKey, kid: bot.key.kid, alg: bot.key.alg },
    });
    await expect(stranger.openTask({ intent: 'order_status', subject: 'user-42' })).rejects.toMatchObject({
      constructor: InvalidClient,
      status: 401,
    });
    const borrowed = new TollgateClient({ url: broker.url, tokenSource: () => bot.token() });
    await expect(borrowed.openTask({ intent: 'order_status', subject: 'user-7' })).resolves.toMatchObject({
      snapshot: { subject: 'user-7' },
    });
  });
});
