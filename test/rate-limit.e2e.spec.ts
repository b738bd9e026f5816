import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TollgateClient } from '../libs/sdk/index.js';
import { HOLD_MS } from '../libs/leases/rate-limit.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { call, type Response } from './support/http.js';
import { asAdmin, putBoundary, registerBot, type Bot } from './support/scenario.js';
import { assertion } from './support/workload.js';

// One request a second, five at once: slow enough that the time a test's requests take refills
// (much) less than one token.
const RATE = { TOLLGATE_RATE_LIMIT: '1', TOLLGATE_RATE_BURST: '5' };
const READ = { boundary: 'crm-orders', action: 'orders:read' };

let broker: TestBroker;

beforeAll(async () => {
  broker = await startBroker({ env: RATE });
  await putBoundary(broker, 'crm-orders');
});
afterAll(() => broker?.close());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Each test has its own workload, so its own bucket, full at the start. */
let workloads = 0;
const freshBot = (): Promise<Bot> => registerBot(broker, `bot-${++workloads}`);

function tokenExchange(taskId: string, subjectToken: string): Promise<Response> {
  return call(broker.url, 'POST', '/oauth2/token', {
    form: {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: subjectToken,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      authorization_details: JSON.stringify([{ type: 'tool_call', task_id: taskId, ...READ }]),
    },
  });
}

describe('the per-workload rate limit on credential requests', () => {
  it('answers a burst beyond the limit with 429 slow_down and Retry-After, writes no decision for it, and refills', async () => {
    const bot = await freshBot();
    const taskId = await bot.openTask();
    const answers: Response[] = [];
    for (let i = 0; i < 7; i++) answers.push(await bot.credential(taskId, READ));
    expect(answers.map((a) => a.status)).toEqual([201, 201, 201, 201, 201, 429, 429]);
    const limited = answers[5]!;
    expect(limited.headers.get('retry-after')).toBe('1');
    expect(limited.body).toEqual({ error: 'slow_down', error_description: expect.stringContaining('retry after 1 s'), retry_after: 1 });

    // The same bucket behind the standards door, answered the same way.
    const exchanged = await tokenExchange(taskId, await bot.token());
    expect([exchanged.status, exchanged.body.error, exchanged.headers.get('retry-after')]).toEqual([429, 'slow_down', '1']);

    // A flood must not write a row per request: only the decided requests left decisions.
    const decisions = await asAdmin(broker)('GET', `/v1/decisions?task=${taskId}`);
    expect(decisions.body.items).toHaveLength(5);

    // One token a second comes back.
    await sleep(1100);
    expect((await tokenExchange(taskId, await bot.token())).status).toBe(200);
    expect((await bot.credential(taskId, READ)).status).toBe(429);
  });

  it('leaves other workloads alone', async () => {
    const [bot, other] = [await freshBot(), await freshBot()];
    const [mine, theirs] = [await bot.openTask(), await other.openTask()];
    for (let i = 0; i < 5; i++) await bot.credential(mine, READ);
    expect((await bot.credential(mine, READ)).status).toBe(429);
    for (let i = 0; i < 5; i++) expect((await other.credential(theirs, READ)).status).toBe(201);
  });

  it('lets the SDK succeed after a 429, honouring Retry-After', async () => {
    const bot = await freshBot();
    const statuses: number[] = [];
    const client = new TollgateClient({
      url: broker.url,
      tokenSource: { workloadId: bot.id, privateKey: bot.key.privateKey, kid: bot.key.kid, alg: bot.key.alg },
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        if (String(input).endsWith('/credentials')) statuses.push(response.status);
        return response;
      },
    });
    const task = await client.openTask({ intent: 'order_status', subject: 'user-42' });
    for (let i = 0; i < 5; i++) await task.credential(READ);
    const started = Date.now();
    const credential = await task.credential(READ);
    expect(credential.accessToken).toEqual(expect.any(String));
    expect(statuses.slice(0, 6)).toEqual([201, 201, 201, 201, 201, 429]);
    expect(statuses.at(-1)).toBe(201);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('holds two replicas together to one allowance', async (context) => {
    // Two replicas need a database server: the embedded one opens in one process at a time.
    if (broker.db.databaseUrl === undefined) context.skip();
    const limit = { perSecond: 20, burst: 10 };
    const first = await startBroker({ env: { TOLLGATE_RATE_LIMIT: String(limit.perSecond), TOLLGATE_RATE_BURST: String(limit.burst) } });
    const second = await first.restart();
    try {
      await putBoundary(first, 'crm-orders');
      const flooder = await registerBot(first, 'flooder');
      const taskId = await flooder.openTask();
      const replicas = await Promise.all(
        [first, second].map(async (replica) => ({ url: replica.url, token: await assertion(flooder.id, flooder.key, replica.url) })),
      );
      const counts = { 201: 0, 429: 0, other: 0 };
      const durationMs = 1500;
      const started = Date.now();
      // Four request loops per replica, as a fleet of bots behind one workload identity would be.
      await Promise.all(
        replicas.flatMap((replica) =>
          Array.from({ length: 4 }, async () => {
            while (Date.now() - started < durationMs) {
              const answer = await call(replica.url, 'POST', `/v1/tasks/${taskId}/credentials`, { token: replica.token, json: READ });
              if (answer.status === 201 || answer.status === 429) counts[answer.status] += 1;
              else counts.other += 1;
            }
          }),
        ),
      );
      const elapsedS = (Date.now() - started) / 1000;
      // One shared bucket allows the burst plus the rate over the run. Tolerance: a replica may
      // spend tokens it claimed up to HOLD_MS before the run ended (rate × HOLD_MS each), and the
      // last requests finish a little after the loop's clock stopped. Two separate buckets would
      // allow twice the lot.
      const allowance = limit.burst + limit.perSecond * elapsedS;
      const tolerance = 2 * limit.perSecond * (HOLD_MS / 1000) + 2;
      expect(counts.other).toBe(0);
      expect(counts[429]).toBeGreaterThan(0);
      expect(counts[201]).toBeLessThanOrEqual(allowance + tolerance);
      expect(counts[201]).toBeGreaterThanOrEqual(limit.burst + limit.perSecond * 1);
      const leases = await first.app.broker.db.query<{ n: number }>('SELECT count(*)::int AS n FROM leases WHERE task_id = $1', [taskId]);
      expect(leases.rows[0]!.n).toBe(counts[201]);
    } finally {
      await second.stop();
      await first.close();
    }
  });
});
