import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestBroker } from './support/broker.js';
import { admin } from './support/database.js';
import { call } from './support/http.js';
import { startWithBot, type Bot } from './support/scenario.js';

let broker: TestBroker;
let bot: Bot;

beforeAll(async () => ({ broker, bot } = await startWithBot()));
afterAll(() => broker?.close());

/** Takes the broker's database away as an outage would: no new connections, existing ones killed. */
async function databaseDown(name: string): Promise<void> {
  await admin(async (client) => {
    await client.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
    await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [name]);
  });
}

async function databaseUp(name: string): Promise<void> {
  await admin((client) => client.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`));
}

describe('fail closed', () => {
  it('answers 503 and never a credential while the database is down, and recovers by itself', async (context) => {
    if (broker.db.kind !== 'postgres') context.skip();
    const taskId = await bot.openTask();
    expect((await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' })).status).toBe(201);

    await databaseDown(broker.db.name);
    try {
      const refused = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
      expect(refused.status).toBe(503);
      expect(refused.body).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
      expect(JSON.stringify(refused.body)).not.toMatch(/ALLOW_CONNECTIONS|terminat|pg_|stack|at /i);
      expect((await bot.call('POST', '/v1/tasks', { intent: 'order_status', subject: 'u' })).status).toBe(503);
      expect((await call(broker.url, 'GET', '/readyz')).status).toBe(503);
      expect((await call(broker.url, 'GET', '/healthz')).status).toBe(200);
      const introspection = await call(broker.url, 'POST', '/oauth2/introspect', { token: broker.adminKey, form: { token: 'x.y.z' } });
      expect(introspection.body.active ?? false).toBe(false);
    } finally {
      await databaseUp(broker.db.name);
    }

    let ready = 0;
    for (let i = 0; i < 50 && ready !== 200; i++) {
      ready = (await call(broker.url, 'GET', '/readyz')).status;
      if (ready !== 200) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(ready).toBe(200);
    const again = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    expect(again.status).toBe(201);
  });
});
