import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestBroker } from './support/broker.js';
import { call, type Response } from './support/http.js';
import { startWithBot, type Bot } from './support/scenario.js';

let broker: TestBroker;
let bot: Bot;
let taskId: string;

beforeAll(async () => {
  ({ broker, bot } = await startWithBot());
  taskId = await bot.openTask();
});
afterAll(() => broker?.close());

/** Row counts of every table a request could change. */
async function snapshot(): Promise<Record<string, number>> {
  const tables = ['workloads', 'boundaries', 'tasks', 'task_events', 'decisions', 'leases', 'audit_events', 'api_keys', 'signing_keys'];
  const counts: Record<string, number> = {};
  for (const table of tables) {
    const { rows } = await broker.app.broker.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
    counts[table] = rows[0]!.n;
  }
  return counts;
}

function expectCleanError(response: Response, status: number, code: string): void {
  expect(response.status).toBe(status);
  expect(response.body).toMatchObject({ error: code, error_description: expect.any(String) });
  expect(JSON.stringify(response.body)).not.toMatch(/\bat .*\.(ts|js):\d+|stack|QueryFailedError|node_modules/);
}

async function raw(method: string, path: string, body: string, contentType = 'application/json', token?: string): Promise<Response> {
  return call(broker.url, method, path, { token: token ?? (await bot.token()), raw: body, contentType });
}

describe('bad input gets a clear 4xx and changes nothing', () => {
  it('malformed JSON, a JSON array, an empty body, a wrong content type', async () => {
    const before = await snapshot();
    expectCleanError(await raw('POST', '/v1/tasks', '{"intent": "order_status", '), 400, 'invalid_request');
    expectCleanError(await raw('POST', '/v1/tasks', '[1,2,3]'), 400, 'invalid_request');
    expectCleanError(await raw('POST', '/v1/tasks', ''), 400, 'invalid_request');
    expectCleanError(await raw('POST', '/v1/tasks', 'intent=order_status', 'text/plain'), 415, 'invalid_request');
    expectCleanError(await raw('POST', `/v1/tasks/${taskId}/credentials`, '{"boundary":'), 400, 'invalid_request');
    expectCleanError(await raw('PUT', '/v1/admin/boundaries/x', '{nope', 'application/json', broker.adminKey), 400, 'invalid_request');
    expect(await snapshot()).toEqual(before);
  });

  it('a body over 1 MiB is a 413', async () => {
    const before = await snapshot();
    const huge = JSON.stringify({ intent: 'order_status', subject: 'x'.repeat(1024 * 1024 + 10) });
    expectCleanError(await raw('POST', '/v1/tasks', huge), 413, 'invalid_request');
    const params = JSON.stringify({ boundary: 'crm-orders', action: 'orders:read', params: { blob: 'y'.repeat(1_100_000) } });
    expectCleanError(await raw('POST', `/v1/tasks/${taskId}/credentials`, params), 413, 'invalid_request');
    expect(await snapshot()).toEqual(before);
  });

  it('unknown fields and schema violations name the field', async () => {
    const before = await snapshot();
    const cases: Array<[string, string, unknown, string]> = [
      ['POST', '/v1/tasks', { intent: 'order_status', subject: 'u', admin: true }, 'admin'],
      ['POST', '/v1/tasks', { intent: 'order_status' }, 'subject'],
      ['POST', '/v1/tasks', { intent: 'Order Status!', subject: 'u' }, 'intent'],
      ['POST', '/v1/tasks', { intent: 'order_status', subject: 'u', ttl: 86_401 }, 'ttl'],
      ['POST', '/v1/tasks', { intent: 'order_status', subject: 'u', ttl: '60' }, 'ttl'],
      ['POST', '/v1/tasks', { intent: 'order_status', subject: 'u', ttl: 1e308 }, 'ttl'],
      ['POST', '/v1/tasks', { intent: 'order_status', subject: 'u', context: ['not', 'an', 'object'] }, 'context'],
      ['POST', '/v1/tasks', { intent: 'order_status', subject: 'u', context: { notes: 'x'.repeat(5000) } }, 'context'],
      ['POST', `/v1/tasks/${taskId}/credentials`, { boundary: 'crm-orders', action: 'orders:read', scope: 'all' }, 'scope'],
      ['POST', `/v1/tasks/${taskId}/credentials`, { boundary: 'crm-orders', action: 'orders:read', ttl: 0 }, 'ttl'],
      ['POST', `/v1/tasks/${taskId}/credentials`, { boundary: 'crm-orders', action: 'orders:read', ttl: 1.5 }, 'ttl'],
      ['POST', `/v1/tasks/${taskId}/credentials`, { boundary: '../etc', action: 'orders:read' }, 'boundary'],
      ['POST', `/v1/tasks/${taskId}/credentials`, { boundary: 'crm-orders' }, 'action'],
      ['POST', `/v1/tasks/${taskId}/credentials`, { boundary: 'crm-orders', action: 'orders:read', params: [1, 2] }, 'params'],
      ['POST', `/v1/tasks/${taskId}/intent`, { intent: 'refund', why: 'x' }, 'why'],
      ['POST', `/v1/tasks/${taskId}/complete`, { force: true }, 'force'],
    ];
    for (const [method, path, body, field] of cases) {
      const response = await bot.call(method, path, body);
      expectCleanError(response, 400, 'invalid_request');
      expect(response.body.error_description, `${path} ${JSON.stringify(body)}`).toContain(field);
      expect(response.body.field).toContain(field);
    }
    expect(await snapshot()).toEqual(before);
  });

  it('odd unicode: control characters, lone surrogates and bidi overrides are refused', async () => {
    const before = await snapshot();
    for (const subject of ['user\u0000', 'line\nbreak', '\ud800lonely', 'user\u202Egnp.exe', '\u2066isolate\u2069', '']) {
      const response = await bot.call('POST', '/v1/tasks', { intent: 'order_status', subject });
      expectCleanError(response, 400, 'invalid_request');
      expect(response.body.field).toBe('subject');
    }
    const resource = await bot.call('POST', `/v1/tasks/${taskId}/credentials`, {
      boundary: 'crm-orders',
      action: 'orders:read',
      resource: 'order/\u0007',
    });
    expectCleanError(resource, 400, 'invalid_request');
    // Ordinary non-ASCII text is fine.
    const ok = await bot.call('POST', '/v1/tasks', { intent: 'order_status', subject: 'Zoë Ångström 山田' });
    expect(ok.status).toBe(201);
    expect(ok.body.subject).toBe('Zoë Ångström 山田');
    const after = await snapshot();
    expect(after.tasks).toBe(before.tasks! + 1);
  });

  it('unknown routes and methods are 404 in the documented shape', async () => {
    expectCleanError(await call(broker.url, 'GET', '/v2/tasks'), 404, 'not_found');
    expectCleanError(await call(broker.url, 'DELETE', '/v1/tasks'), 404, 'not_found');
    expectCleanError(await call(broker.url, 'GET', '/v1/tasks/%00', { token: await bot.token() }), 404, 'not_found');
    expectCleanError(await call(broker.url, 'GET', '/v1/tasks/%00'), 401, 'invalid_client');
  });

  it('review filters are validated, unknown ones refused', async () => {
    for (const query of ['limit=0', 'limit=1001', 'limit=abc', 'state=gone', 'since=yesterday', 'task=123', 'cursor=%%%', 'colour=blue']) {
      const response = await call(broker.url, 'GET', `/v1/leases?${query}`, { token: broker.adminKey });
      expectCleanError(response, 400, 'invalid_request');
    }
  });

  it('no input yields a 5xx: random bodies against every write route', async () => {
    const before = await snapshot();
    const routes = [
      ['POST', '/v1/tasks'],
      ['POST', `/v1/tasks/${taskId}/credentials`],
      ['POST', `/v1/tasks/${taskId}/intent`],
      ['PUT', '/v1/admin/boundaries/fuzz'],
      ['PUT', '/v1/admin/workloads/fuzz'],
    ] as const;
    const values: unknown[] = [
      null,
      true,
      0,
      -1,
      2 ** 53,
      1e308,
      '',
      'x',
      '\u0000',
      '\ud800',
      [],
      {},
      [null],
      { a: { b: { c: [] } } },
      'a'.repeat(5000),
    ];
    const keys = [
      'intent',
      'subject',
      'ttl',
      'boundary',
      'action',
      'resource',
      'params',
      'purpose',
      'tool',
      'actions',
      'intents',
      'default_ttl',
      'max_ttl',
      'credential',
      'jwks',
      '__proto__',
      'constructor',
    ];
    let seed = 42;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 150; i++) {
      const [method, path] = routes[random(routes.length)]!;
      const body: Record<string, unknown> = {};
      for (let k = random(4); k >= 0; k--) body[keys[random(keys.length)]!] = values[random(values.length)];
      const token = path.startsWith('/v1/admin') ? broker.adminKey : await bot.token();
      const response = await call(broker.url, method, path, { token, raw: JSON.stringify(body) });
      expect(response.status, `${method} ${path} ${JSON.stringify(body)}`).toBeLessThan(500);
      expect(response.status, `${method} ${path} ${JSON.stringify(body)}`).toBeGreaterThanOrEqual(400);
    }
    expect(await snapshot()).toEqual(before);
  });
});
