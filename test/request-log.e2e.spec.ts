import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { call } from './support/http.js';
import { putBoundary, registerBot, type Bot } from './support/scenario.js';
import { captureOutput } from './support/output.js';

/**
 * Request ids and the access log: `x-request-id` accepted (when it is a plain token) or generated,
 * echoed, written on the request's JSON access line at info and into every audit event the request
 * causes; tokens, DPoP proofs and credentials never reach a log line.
 */

let broker: TestBroker;
let bot: Bot;
let output: ReturnType<typeof captureOutput>;

beforeAll(async () => {
  broker = await startBroker({ env: { TOLLGATE_LOG_LEVEL: 'info' } });
  await putBoundary(broker, 'crm-orders', { drift_threshold: 1 });
  bot = await registerBot(broker);
  // Everything the broker logs from here on (the logger writes to the process's stdout and stderr).
  output = captureOutput();
});
afterEach(() => output.clear());
afterAll(async () => {
  output.restore();
  await broker.close();
});

function accessLines(): Array<Record<string, unknown>> {
  return output.lines
    .map((line) => JSON.parse(line) as { message?: Record<string, unknown> })
    .map((entry) => entry.message ?? {})
    .filter((message) => message.msg === 'request');
}

async function auditOf(requestId: string): Promise<Array<{ kind: string }>> {
  const { rows } = await broker.app.broker.db.query<{ kind: string }>(
    `SELECT kind FROM audit_events WHERE data->>'request_id' = $1 ORDER BY seq`,
    [requestId],
  );
  return rows;
}

describe('request ids and the access log', () => {
  it("takes the caller's x-request-id, echoes it, logs one access line with it and stamps the request's audit events", async () => {
    const taskId = await bot.openTask();
    const token = await bot.token();
    const granted = await call(broker.url, 'POST', `/v1/tasks/${taskId}/credentials`, {
      token,
      json: { boundary: 'crm-orders', action: 'orders:read' },
      headers: { 'x-request-id': 'bot-7f3a.call-42' },
    });
    expect(granted.status).toBe(201);
    expect(granted.headers.get('x-request-id')).toBe('bot-7f3a.call-42');
    const access = accessLines().filter((line) => line.request_id === 'bot-7f3a.call-42');
    expect(access).toEqual([
      {
        msg: 'request',
        request_id: 'bot-7f3a.call-42',
        method: 'POST',
        route: '/v1/tasks/:id/credentials',
        status: 201,
        ms: expect.any(Number),
      },
    ]);
    expect((await auditOf('bot-7f3a.call-42')).map((event) => event.kind)).toEqual(['credential.permit']);

    // Secrets never reach a line: the workload assertion, the credential, the admin key.
    const logged = output.lines.join('\n');
    expect(logged).not.toContain(token);
    expect(logged).not.toContain(granted.body.credential.access_token);
    expect(logged).not.toContain(broker.adminKey);

    // A refusal that trips the drift guard: the denial and the suspension carry the same id.
    const refused = await call(broker.url, 'POST', `/v1/tasks/${taskId}/credentials`, {
      token,
      json: { boundary: 'crm-orders', action: 'orders:delete' },
      headers: { 'x-request-id': 'bot-7f3a.call-43' },
    });
    expect(refused.status).toBe(403);
    expect((await auditOf('bot-7f3a.call-43')).map((event) => event.kind)).toEqual(['credential.deny', 'task.drift_suspended']);
  });

  it('generates an id when none or an unusable one is given, and never logs what the client sent', async () => {
    const hostile = ['has space', 'x'.repeat(129), '<script>', 'a\tb'];
    for (const given of [undefined, ...hostile]) {
      const response = await call(broker.url, 'GET', '/healthz', { headers: given === undefined ? {} : { 'x-request-id': given } });
      const id = response.headers.get('x-request-id');
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(accessLines().some((line) => line.request_id === id && line.route === '/healthz' && line.status === 200)).toBe(true);
    }
    for (const given of hostile) expect(output.lines.join('\n')).not.toContain(given);
    // Also on answers no handler gives: a 404 and a malformed body.
    const missing = await call(broker.url, 'GET', '/nowhere', { headers: { 'x-request-id': 'probe-1' } });
    expect([missing.status, missing.headers.get('x-request-id')]).toEqual([404, 'probe-1']);
    const malformed = await call(broker.url, 'POST', '/v1/tasks', { raw: '{', headers: { 'x-request-id': 'probe-2' } });
    expect([malformed.status, malformed.headers.get('x-request-id')]).toEqual([400, 'probe-2']);
  });
});
