import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { call } from './support/http.js';
import { introspect, linkAuditChain, putBoundary, registerBot } from './support/scenario.js';

/** Everything the broker writes to stdout and stderr while the test runs. */
const output: string[] = [];
const originals = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
let broker: TestBroker;

beforeAll(async () => {
  const capture = (chunk: unknown) => {
    output.push(String(chunk));
    return true;
  };
  process.stdout.write = capture as typeof process.stdout.write;
  process.stderr.write = capture as typeof process.stderr.write;
  broker = await startBroker({ env: { TOLLGATE_LOG_LEVEL: 'debug' } });
});
afterAll(async () => {
  process.stdout.write = originals.out;
  process.stderr.write = originals.err;
  await broker?.close();
});

describe('secrets', () => {
  it('never reach logs or audit rows; logs are JSON lines', async () => {
    await putBoundary(broker, 'crm-orders');
    const bot = await registerBot(broker);
    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    const accessToken = issued.body.credential.access_token as string;
    await introspect(broker, accessToken);
    await call(broker.url, 'POST', '/oauth2/revoke', { token: await bot.token(), form: { token: accessToken } });
    await call(broker.url, 'GET', '/v1/leases', { token: 'wrong-admin-key-that-is-long-enough-to-matter' });
    await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:nope' });
    await bot.call('POST', `/v1/tasks/${taskId}/complete`);

    const secrets = [broker.adminKey, broker.kek, accessToken, await bot.token(), 'wrong-admin-key-that-is-long-enough-to-matter'];
    // Linked, so the chain's columns are looked at too: they hold hashes of the events, nothing else.
    await linkAuditChain(broker);
    const { rows } = await broker.app.broker.db.query<{ row: string }>(
      `SELECT row_to_json(e)::text AS row FROM (SELECT a.*, l.prev_hash, l.hash FROM audit_events a LEFT JOIN audit_links l ON l.event_id = a.id) e`,
    );
    for (const { row } of rows)
      expect(JSON.parse(row)).toMatchObject({
        prev_hash: expect.stringMatching(/^[0-9a-f]{64}$/),
        hash: expect.stringMatching(/^[0-9a-f]{64}$/),
      });
    expect(rows.length).toBeGreaterThan(5);
    const logs = output.join('');
    expect(logs).toContain('"msg":"request"');
    for (const secret of secrets) {
      expect(logs).not.toContain(secret);
      for (const { row } of rows) expect(row).not.toContain(secret);
    }
    // The signature part alone must not leak either (a token cut at a dot is still a token's secret).
    expect(logs).not.toContain(accessToken.split('.')[2]!);

    for (const line of logs.split('\n').filter((l) => l.trim().startsWith('{'))) {
      expect(() => JSON.parse(line)).not.toThrow();
    }
  });
});
