import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { paramsDigest } from '../libs/audit/index.js';
import { MAX_TOKEN_PARAMS_BYTES } from '../libs/credentials/jwt/jwt-provider.js';
import type { TestBroker } from './support/broker.js';
import { asAdmin, introspect, putBoundary, startWithBot, type Bot } from './support/scenario.js';

/**
 * The credential names the exact call (issue 14, part 1): the JWT's tool_call detail carries the
 * tool, action, params (when small) and always their digest, the one an approval binds;
 * introspection answers the same; a boundary's params schemas refuse params that do not match
 * (invalid_params, recorded) and give its policy a Cedar params type to read declared arguments.
 */

const PAY = 'https://pay.acme.test';
const REFUND_SCHEMA = {
  type: 'object',
  properties: {
    amount: { type: 'integer', minimum: 1 },
    region: { type: 'string', enum: ['eu', 'us'] },
    note: { type: 'string' },
  },
  required: ['amount'],
  additionalProperties: false,
};
// Cedar over declared arguments: `region` is not one of the seven global names.
const REGION_POLICY = `permit(principal, action == Action::"refund:create", resource) when { context.params.amount <= 100 };
forbid(principal, action == Action::"refund:create", resource) when { context.params has region && context.params.region == "us" };`;

let broker: TestBroker;
let bot: Bot;
let admin: ReturnType<typeof asAdmin>;

beforeAll(async () => {
  ({ broker, bot } = await startWithBot());
  admin = asAdmin(broker);
  await putBoundary(broker, 'payments', {
    tool: PAY,
    actions: ['refund:create', 'refund:preview'],
    intents: ['order_status'],
    params_schemas: { 'refund:create': REFUND_SCHEMA },
    policy: REGION_POLICY,
    approval: { when: 'context.params.amount > 50' },
  });
  // The seven global names, without a schema.
  await putBoundary(broker, 'crm-owner', {
    tool: 'https://crm-owner.acme.test',
    policy: `permit(principal, action, resource) when { context.params has owner && context.params.owner == "user-42" };`,
  });
});
afterAll(() => broker?.close());

function toolCallOf(token: string): Record<string, unknown> {
  return (decodeJwt(token).authorization_details as Record<string, unknown>[])[0]!;
}

async function rows<T>(text: string, params: unknown[] = []): Promise<T[]> {
  return (await broker.app.broker.db.query<T>(text, params)).rows;
}

describe('the credential names the exact call', () => {
  it('carries tool, action, resource, params and their digest; introspection answers the same', async () => {
    const taskId = await bot.openTask();
    const params = { region: 'eu', amount: 40 };
    const issued = await bot.credential(taskId, { boundary: 'payments', action: 'refund:create', resource: 'order/1', params });
    expect(issued.status, JSON.stringify(issued.body)).toBe(201);
    const detail = toolCallOf(issued.body.credential.access_token);
    expect(detail).toEqual({
      type: 'tool_call',
      tool: PAY,
      boundary: 'payments',
      action: 'refund:create',
      resource: 'order/1',
      params,
      params_digest: paramsDigest({ amount: 40, region: 'eu' }),
    });
    const answer = await introspect(broker, issued.body.credential.access_token);
    expect(answer.authorization_details).toEqual([detail]);
    const [lease] = await rows<{ params_digest: string }>('SELECT params_digest FROM leases WHERE id = $1', [issued.body.lease_id]);
    expect(lease!.params_digest).toBe(detail.params_digest);
  });

  it('large params travel as their digest only; no params digest as null', async () => {
    const taskId = await bot.openTask();
    const note = 'n'.repeat(MAX_TOKEN_PARAMS_BYTES);
    const big = await bot.credential(taskId, { boundary: 'payments', action: 'refund:create', params: { amount: 10, note } });
    expect(big.status, JSON.stringify(big.body)).toBe(201);
    const detail = toolCallOf(big.body.credential.access_token);
    expect(detail).not.toHaveProperty('params');
    expect(detail.params_digest).toBe(paramsDigest({ amount: 10, note }));
    expect((await introspect(broker, big.body.credential.access_token)).authorization_details).toEqual([detail]);

    const none = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    expect(none.status).toBe(201);
    expect(toolCallOf(none.body.credential.access_token)).toMatchObject({
      tool: 'https://crm.acme.test',
      params_digest: paramsDigest(null),
    });
  });

  it("the digest of an approved request's credential is the approval's binding", async () => {
    const reviewer = (await admin('POST', '/v1/admin/api-keys', { role: 'reviewer', label: 'on-call' })).body;
    const taskId = await bot.openTask();
    const request = { boundary: 'payments', action: 'refund:create', params: { amount: 80, region: 'eu' } };
    const pending = await bot.credential(taskId, request);
    expect(pending.status, JSON.stringify(pending.body)).toBe(202);
    const approvalId = pending.body.approval_id as string;
    const approved = await fetch(`${broker.url}/v1/approvals/${approvalId}/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${reviewer.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'checked' }),
    });
    expect(approved.status).toBe(200);
    const issued = await bot.credential(taskId, { ...request, approval_id: approvalId });
    expect(issued.status, JSON.stringify(issued.body)).toBe(201);
    const [approval] = await rows<{ params_hash: string }>('SELECT params_hash FROM approvals WHERE id = $1', [approvalId]);
    expect(toolCallOf(issued.body.credential.access_token).params_digest).toBe(approval!.params_hash);
  });
});

describe('params schemas', () => {
  it('a bad schema is a 400 naming the field; an action the boundary lacks too', async () => {
    const put = (body: Record<string, unknown>) =>
      admin('PUT', '/v1/admin/boundaries/schema-bad', {
        tool: 'https://x.acme.test',
        actions: ['a'],
        intents: ['order_status'],
        default_ttl: 60,
        max_ttl: 60,
        credential: { kind: 'jwt' },
        ...body,
      });
    const unknownKeyword = await put({ params_schemas: { a: { type: 'object', maxAmount: 5 } } });
    expect(unknownKeyword.status).toBe(400);
    expect(JSON.stringify(unknownKeyword.body)).toContain('params_schemas.a');
    expect(JSON.stringify(unknownKeyword.body)).toMatch(/unknown keyword/);
    const notAnAction = await put({ params_schemas: { b: { type: 'object' } } });
    expect(notAnAction.status).toBe(400);
    expect(JSON.stringify(notAnAction.body)).toContain('params_schemas.b');
    const tooDeep = await put({
      params_schemas: { a: JSON.parse('{"type":"object","properties":{"a":'.repeat(20) + '{}' + '}}'.repeat(20)) },
    });
    expect(tooDeep.status).toBe(400);
    // A policy naming an argument no schema declares is refused (the payments boundary above, whose
    // policy reads the declared `region`, was accepted: its Cedar schema was generated from its schemas).
    const undeclared = await put({
      params_schemas: { a: { type: 'object', properties: { region: { type: 'string' } } } },
      policy: 'permit(principal, action, resource) when { context.params.zone == "x" };',
    });
    expect(undeclared.status).toBe(400);
    expect((await admin('GET', '/v1/admin/boundaries/schema-bad')).status).toBe(404);
  });

  it('is shown on the boundary and in /openapi.json', async () => {
    const shown = await admin('GET', '/v1/admin/boundaries/payments');
    expect(shown.body.params_schemas).toEqual({ 'refund:create': REFUND_SCHEMA });
    const openapi = await (await fetch(`${broker.url}/openapi.json`)).text();
    expect(openapi).toContain('params_schemas');
  });

  it('params that do not match are refused invalid_params, naming the argument, with a decision row', async () => {
    const taskId = await bot.openTask();
    const wrong = await bot.credential(taskId, { boundary: 'payments', action: 'refund:create', params: { amount: 'lots-of-money' } });
    expect(wrong.status).toBe(403);
    expect(wrong.body).toMatchObject({ error: 'access_denied', reasons: ['invalid_params'], decision_id: expect.any(String) });
    expect(wrong.body.error_description).toContain('params/amount');
    expect(JSON.stringify(wrong.body)).not.toContain('lots-of-money');
    const extra = await bot.credential(taskId, { boundary: 'payments', action: 'refund:create', params: { amount: 5, sneaky: 1 } });
    expect(extra.body.error_description).toContain('params/sneaky');
    const decisions = await rows<{ outcome: string; reasons: string[] }>('SELECT outcome, reasons FROM decisions WHERE id = $1', [
      wrong.body.decision_id,
    ]);
    expect(decisions).toEqual([{ outcome: 'deny', reasons: ['invalid_params'] }]);
    // An action without a schema takes any params.
    const preview = await bot.credential(taskId, { boundary: 'payments', action: 'refund:preview', params: { anything: [1] } });
    expect(preview.status).toBe(403); // the boundary policy permits only refund:create
    expect(preview.body.reasons).toEqual(['policy_no_permit']);
  });

  it('Cedar over a declared argument permits and forbids', async () => {
    const taskId = await bot.openTask();
    const eu = await bot.credential(taskId, { boundary: 'payments', action: 'refund:create', params: { amount: 30, region: 'eu' } });
    expect(eu.status).toBe(201);
    const us = await bot.credential(taskId, { boundary: 'payments', action: 'refund:create', params: { amount: 30, region: 'us' } });
    expect(us.status).toBe(403);
    expect(us.body.reasons).toEqual(['policy_forbid']);
  });

  it('simulation checks the schema, and a what-if on the boundary may read its declared arguments', async () => {
    const simulated = await admin('POST', '/v1/admin/simulate', {
      workload: bot.id,
      task: { intent: 'order_status', subject: 'u' },
      request: { boundary: 'payments', action: 'refund:create', params: { amount: 'x' } },
    });
    expect(simulated.status, JSON.stringify(simulated.body)).toBe(200);
    expect(simulated.body).toMatchObject({ decision: 'deny', reasons: ['invalid_params'] });
    const now = new Date();
    const whatIf = await admin('POST', '/v1/admin/boundaries/payments/what-if', {
      policy:
        'permit(principal, action == Action::"refund:create", resource) when { context.params has region && context.params.region == "eu" };',
      since: new Date(now.getTime() - 3_600_000).toISOString(),
      until: now.toISOString(),
    });
    expect(whatIf.status, JSON.stringify(whatIf.body)).toBe(200);
  });

  it('the seven global names still work where no schema is declared', async () => {
    const taskId = await bot.openTask();
    const mine = await bot.credential(taskId, { boundary: 'crm-owner', action: 'orders:read', params: { owner: 'user-42' } });
    expect(mine.status).toBe(201);
    const theirs = await bot.credential(taskId, { boundary: 'crm-owner', action: 'orders:read', params: { owner: 'user-7' } });
    expect(theirs.status).toBe(403);
  });
});
