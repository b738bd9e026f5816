import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { asAdmin, putBoundary, registerBot, type Bot } from './support/scenario.js';

/**
 * Issue 12, finding 1: a what-if (or a simulate) must never change what the hot path decides.
 * Cedar-WASM keeps prepared policy sets in one namespace per process; a replay that prepared its
 * sets under the hot path's names used to replace the live ones until restart.
 */
let broker: TestBroker;
let bot: Bot;
let admin: ReturnType<typeof asAdmin>;

const ALICE_ONLY = 'permit(principal, action, resource) when { context.params has owner && context.params.owner == "alice" };';
const NO_REFUNDS = 'forbid(principal, action == Action::"orders:refund", resource);';
const PERMIT_ALL = 'permit(principal, action, resource);';

beforeAll(async () => {
  broker = await startBroker();
  admin = asAdmin(broker);
  await putBoundary(broker, 'crm-orders', { policy: ALICE_ONLY });
  await putBoundary(broker, 'payments', {
    tool: 'https://pay.acme.test',
    actions: ['refund:create'],
    intents: ['refund_request'],
    approval: { when: 'context.params.amount > 100' },
  });
  const put = await admin('PUT', '/v1/admin/policies/no-refunds', { policy: NO_REFUNDS });
  expect(put.status).toBeLessThan(300);
  bot = await registerBot(broker);
});
afterAll(() => broker?.close());

/** The live answers, each on a fresh task (so denials never add up to a drift suspension). */
async function live() {
  const ask = async (intent: string, body: Record<string, unknown>) => (await bot.credential(await bot.openTask(intent), body)).status;
  return {
    alice: await ask('order_status', { boundary: 'crm-orders', action: 'orders:read', params: { owner: 'alice' } }),
    bob: await ask('order_status', { boundary: 'crm-orders', action: 'orders:read', params: { owner: 'bob' } }),
    refund: await ask('order_status', { boundary: 'crm-orders', action: 'orders:refund', params: { owner: 'alice' } }),
    bigRefund: await ask('refund_request', { boundary: 'payments', action: 'refund:create', params: { amount: 5000 } }),
    smallRefund: await ask('refund_request', { boundary: 'payments', action: 'refund:create', params: { amount: 50 } }),
  };
}

const EXPECTED = { alice: 201, bob: 403, refund: 403, bigRefund: 202, smallRefund: 201 };

describe('what-if and simulate leave live decisions alone', () => {
  it('decides as configured before any dry run', async () => {
    expect(await live()).toEqual(EXPECTED);
  });

  it('a what-if of a permit-all boundary policy, global policy and approval boundary changes nothing live', async () => {
    for (const path of [
      '/v1/admin/boundaries/crm-orders/what-if',
      '/v1/admin/policies/no-refunds/what-if',
      '/v1/admin/boundaries/payments/what-if',
      '/v1/admin/policies/fresh/what-if',
    ]) {
      const response = await admin('POST', path, { policy: PERMIT_ALL });
      expect(response.status, path).toBe(200);
      expect(response.body.replayed, path).toBeGreaterThan(0);
    }
    expect(await live()).toEqual(EXPECTED);
  });

  it('a simulate between two live decisions changes nothing live', async () => {
    const simulated = await admin('POST', '/v1/admin/simulate', {
      workload: 'chatbot',
      task: { intent: 'order_status', subject: 'u' },
      request: { boundary: 'crm-orders', action: 'orders:read', params: { owner: 'bob' } },
    });
    expect(simulated.status).toBe(200);
    expect(simulated.body.decision).toBe('deny');
    expect(await live()).toEqual(EXPECTED);
  });

  it('what-if, simulate and live decisions interleaved many times stay correct', async () => {
    for (let round = 0; round < 3; round++) {
      await admin('POST', '/v1/admin/boundaries/crm-orders/what-if', { policy: PERMIT_ALL });
      await admin('POST', '/v1/admin/simulate', {
        workload: 'chatbot',
        task: { intent: 'refund_request', subject: 'u' },
        request: { boundary: 'payments', action: 'refund:create', params: { amount: 5000 } },
      });
      await admin('POST', '/v1/admin/policies/no-refunds/what-if', { policy: PERMIT_ALL });
      expect(await live()).toEqual(EXPECTED);
    }
  });
});

/** Issue 12, finding 2: Cedar text that would overflow Cedar's WASM stack is refused at every door. */
describe('deeply nested or long Cedar is refused before Cedar sees it', () => {
  const PARENS = `permit(principal, action, resource) when { ${'('.repeat(160)}true${')'.repeat(160)} };`;
  const CHAIN = `permit(principal, action, resource) when { ${Array(3000).fill('context.approved').join(' && ')} };`;
  const DEEP_CONDITION = `${'('.repeat(160)}context.params.amount > 100${')'.repeat(160)}`;
  const LONG_CONDITION = Array(300).fill('true').join('&&');

  it('answers 400 naming the field and where, at every door', async () => {
    for (const [name, text] of [
      ['parens', PARENS],
      ['chain', CHAIN],
    ] as const) {
      const doors = [
        await admin('PUT', '/v1/admin/policies/deep', { policy: text }),
        await admin('PUT', '/v1/admin/boundaries/deep', {
          tool: 'https://deep.acme.test',
          actions: ['orders:read'],
          intents: ['order_status'],
          default_ttl: 60,
          max_ttl: 60,
          credential: { kind: 'jwt' },
          policy: text,
        }),
        await admin('POST', '/v1/admin/boundaries/crm-orders/what-if', { policy: text }),
        await admin('POST', '/v1/admin/policies/no-refunds/what-if', { policy: text }),
      ];
      for (const response of doors) {
        expect(response.status, name).toBe(400);
        expect(response.body.error).toBe('invalid_request');
        expect(response.body.error_description).toMatch(
          /^policy: .*(nests brackets deeper than 32|more than 128 operators).* at line 1, column \d+/,
        );
      }
    }
    for (const when of [DEEP_CONDITION, LONG_CONDITION]) {
      const response = await admin('PUT', '/v1/admin/boundaries/deep', {
        tool: 'https://deep.acme.test',
        actions: ['orders:read'],
        intents: ['order_status'],
        default_ttl: 60,
        max_ttl: 60,
        credential: { kind: 'jwt' },
        approval: { when },
      });
      expect(response.status).toBe(400);
      expect(response.body.error_description).toMatch(
        /approval\.when.*(nests brackets deeper than 32|more than 128 operators).* at line 1, column \d+/,
      );
    }
    const deepParams = JSON.parse(`${'{"a":'.repeat(150)}1${'}'.repeat(150)}`);
    const simulated = await admin('POST', '/v1/admin/simulate', {
      workload: 'chatbot',
      task: { intent: 'order_status', subject: 'u' },
      request: { boundary: 'crm-orders', action: 'orders:read', params: deepParams },
    });
    expect(simulated.status).toBeLessThan(500);
    const deepAsked = await bot.credential(await bot.openTask(), { boundary: 'crm-orders', action: 'orders:read', params: deepParams });
    expect(deepAsked.status).toBeLessThan(500);
  });

  it('still decides correctly afterwards', async () => {
    expect(await live()).toEqual(EXPECTED);
  });
});
