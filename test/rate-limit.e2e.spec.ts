import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TollgateClient } from '../libs/sdk/index.js';
import { HOLD_MS } from '../libs/leases/rate-limit.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { call, type Response } from './support/http.js';
import { asAdmin, metric, putBoundary, registerBot, type Bot } from './support/scenario.js';
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

const LIMITED_BY_DEFAULT = 'tollgate_rate_limited_total{limit="default"}';
const LIMITED_BY_WORKLOAD = 'tollgate_rate_limited_total{limit="workload"}';

/**
 * Retry-After of a limit that refills one token every ten seconds: 10, or 9 when the requests
 * before it took more than a second on a loaded machine.
 */
const TEN_SECONDS = (answer: Response | undefined) => ['9', '10'].includes(answer?.headers.get('retry-after') ?? '');

/** PUTs the bot again with the same key and the given rate limit (absent: none of its own). */
function putLimit(on: TestBroker, bot: Bot, rateLimit?: unknown): Promise<Response> {
  return asAdmin(on)('PUT', `/v1/admin/workloads/${bot.id}`, {
    jwks: { keys: [bot.key.publicJwk] },
    ...(rateLimit === undefined ? {} : { rate_limit: rateLimit }),
  });
}

/** Credential requests in a row until the first that is not a 201 (at most `max`). */
async function untilRefused(bot: Bot, taskId: string, max = 20): Promise<{ permitted: number; refusal: Response | undefined }> {
  for (let permitted = 0; permitted < max; permitted++) {
    const answer = await bot.credential(taskId, READ);
    if (answer.status !== 201) return { permitted, refusal: answer };
  }
  return { permitted: max, refusal: undefined };
}

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
    const { bot, taskId, answers, limitedAt } = await burstOfSeven(async () => {
      const bot = await freshBot();
      const taskId = await bot.openTask();
      await bot.token();
      return { bot, taskId, take: () => bot.credential(taskId, READ) };
    });
    expect(answers.map((a) => a.status)).toEqual([201, 201, 201, 201, 201, 429, 429]);
    const limited = answers[5]!;
    expect(limited.headers.get('retry-after')).toBe('1');
    expect(limited.body).toEqual({ error: 'slow_down', error_description: expect.stringContaining('retry after 1 s'), retry_after: 1 });
    expect(await metric(broker, LIMITED_BY_DEFAULT)).toBeGreaterThanOrEqual(2);

    // The same bucket behind the standards door, answered the same way.
    const exchanged = await tokenExchange(taskId, await bot.token());
    expect([exchanged.status, exchanged.body.error, exchanged.headers.get('retry-after')]).toEqual([429, 'slow_down', '1']);

    // A flood must not write a row per request: only the decided requests left decisions.
    const decisions = await asAdmin(broker)('GET', `/v1/decisions?task=${taskId}`);
    expect(decisions.body.items).toHaveLength(5);

    // One token a second comes back.
    await sleep(1100);
    expect((await tokenExchange(taskId, await bot.token())).status).toBe(200);
    await refillsAtOnePerSecond(limitedAt, async () => (await bot.credential(taskId, READ)).status, 1);
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

  it('runs a workload\'s own tighter limit: 429 with Retry-After sooner than the default, counted as limit="workload"', async () => {
    const bot = await freshBot();
    const put = await putLimit(broker, bot, { per_minute: 6, burst: 2 });
    expect([put.status, put.body.rate_limit]).toEqual([200, { per_minute: 6, burst: 2 }]);
    expect((await asAdmin(broker)('GET', `/v1/admin/workloads/${bot.id}`)).body.rate_limit).toEqual({ per_minute: 6, burst: 2 });
    const before = { workload: await metric(broker, LIMITED_BY_WORKLOAD), default: await metric(broker, LIMITED_BY_DEFAULT) };

    const { permitted, refusal } = await untilRefused(bot, await bot.openTask());
    // The default (burst 5) would have permitted five.
    expect(permitted).toBe(2);
    // One token every ten seconds, where the default has one a second.
    expect([refusal?.status, refusal?.body.error]).toEqual([429, 'slow_down']);
    expect(TEN_SECONDS(refusal)).toBe(true);
    expect(refusal?.body.retry_after).toBe(Number(refusal?.headers.get('retry-after')));
    expect(await metric(broker, LIMITED_BY_WORKLOAD)).toBe(before.workload + 1);
    expect(await metric(broker, LIMITED_BY_DEFAULT)).toBe(before.default);
  });

  it("runs a workload's own looser limit: more than the default allows", async () => {
    const bot = await freshBot();
    const put = await putLimit(broker, bot, { per_minute: 6, burst: 8 });
    expect(put.body.rate_limit).toEqual({ per_minute: 6, burst: 8 });
    const { permitted, refusal } = await untilRefused(bot, await bot.openTask());
    expect(permitted).toBe(8);
    expect(refusal?.status).toBe(429);
    expect(TEN_SECONDS(refusal)).toBe(true);
  });

  it('names a bad rate_limit with a 400 and changes nothing', async () => {
    const bot = await freshBot();
    const admin = asAdmin(broker);
    expect((await putLimit(broker, bot, { per_hour: 360, burst: 3 })).status).toBe(200);
    const before = (await admin('GET', `/v1/admin/workloads/${bot.id}`)).body;
    const audits = async () =>
      (
        await broker.app.broker.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM audit_events WHERE kind = 'workload.put' AND data->>'workload_id' = $1`,
          [bot.id],
        )
      ).rows[0]!.n;
    const auditsBefore = await audits();

    const bad: Array<[unknown, string, string]> = [
      [{ per_second: 0 }, 'rate_limit.per_second', 'must be at least 0.001'],
      [{ per_second: 100_001 }, 'rate_limit.per_second', 'must be at most 100000'],
      [{ per_minute: 1.5 }, 'rate_limit.per_minute', 'must be an integer'],
      [{ per_hour: -1 }, 'rate_limit.per_hour', 'must be at least 1'],
      [{ per_second: '5' }, 'rate_limit.per_second', 'expected number'],
      [
        { per_second: 1, per_minute: 60 },
        'rate_limit',
        'give exactly one of per_second, per_minute, per_hour (got per_second and per_minute)',
      ],
      [{ burst: 3 }, 'rate_limit', 'give exactly one of per_second, per_minute, per_hour'],
      [{ per_second: 1, burst: 0 }, 'rate_limit.burst', 'must be at least 1'],
      [{ per_second: 1, burst: 2.5 }, 'rate_limit.burst', 'must be an integer'],
      [{ per_day: 5 }, 'rate_limit.per_day', 'unknown field'],
      [5, 'rate_limit', 'expected object'],
    ];
    for (const [rateLimit, field, message] of bad) {
      const answer = await putLimit(broker, bot, rateLimit);
      expect([answer.status, answer.body.error, answer.body.field], JSON.stringify(rateLimit)).toEqual([400, 'invalid_request', field]);
      expect(answer.body.error_description, JSON.stringify(rateLimit)).toContain(message);
    }
    expect((await admin('GET', `/v1/admin/workloads/${bot.id}`)).body).toEqual(before);
    expect(await audits()).toBe(auditsBefore);

    // The limit it kept still holds: 3 at once, then one every ten seconds (360 an hour).
    expect(before.rate_limit).toEqual({ per_hour: 360, burst: 3 });
    const { permitted, refusal } = await untilRefused(bot, await bot.openTask());
    expect([permitted, refusal?.status]).toEqual([3, 429]);
    expect(TEN_SECONDS(refusal)).toBe(true);
  });

  it('clears the override on a PUT without rate_limit (or with null), and audits each change', async () => {
    const bot = await freshBot();
    expect((await putLimit(broker, bot, { per_second: 2 })).body.rate_limit).toEqual({ per_second: 2, burst: 4 });
    expect((await putLimit(broker, bot, { per_minute: 30 })).body.rate_limit).toEqual({ per_minute: 30, burst: 1 });
    expect((await putLimit(broker, bot, null)).body).not.toHaveProperty('rate_limit');
    expect((await putLimit(broker, bot, { per_hour: 100, burst: 10 })).body.rate_limit).toEqual({ per_hour: 100, burst: 10 });
    expect((await putLimit(broker, bot)).body).not.toHaveProperty('rate_limit');
    expect((await asAdmin(broker)('GET', `/v1/admin/workloads/${bot.id}`)).body).not.toHaveProperty('rate_limit');
    const { rows } = await broker.app.broker.db.query<{ rate_limit: unknown }>(
      `SELECT data->'rate_limit' AS rate_limit FROM audit_events WHERE kind = 'workload.put' AND data->>'workload_id' = $1 ORDER BY id`,
      [bot.id],
    );
    expect(rows.map((row) => row.rate_limit)).toEqual([
      null,
      { requests: 2, per: 'second', burst: 4 },
      { requests: 30, per: 'minute', burst: 1 },
      null,
      { requests: 100, per: 'hour', burst: 10 },
      null,
    ]);
  });

  it("applies a workload's own limit when the service's is off", async () => {
    const unlimited = await startBroker();
    try {
      await putBoundary(unlimited, 'crm-orders');
      const [free, limited] = [await registerBot(unlimited, 'free'), await registerBot(unlimited, 'limited')];
      expect((await putLimit(unlimited, limited, { per_minute: 6, burst: 3 })).status).toBe(200);
      expect((await untilRefused(free, await free.openTask(), 12)).permitted).toBe(12);
      const { permitted, refusal } = await untilRefused(limited, await limited.openTask());
      expect([permitted, refusal?.status]).toEqual([3, 429]);
      expect(TEN_SECONDS(refusal)).toBe(true);
      expect(await metric(unlimited, LIMITED_BY_WORKLOAD)).toBe(1);
      expect(await metric(unlimited, LIMITED_BY_DEFAULT)).toBe(0);
    } finally {
      await unlimited.close();
    }
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

/**
 * Issue 12, finding 11: POST /v1/tasks was not rate-limited, yet each call writes a task row and an
 * audit event. Opening tasks now runs the workload's limit too, in a bucket of its own, so opening
 * tasks never eats the credential requests' allowance (or the other way round).
 */
describe('the per-workload rate limit on opening tasks', () => {
  const open = (bot: Bot) => bot.call('POST', '/v1/tasks', { intent: 'order_status', subject: 'user-42' });
  const tasksOf = async (bot: Bot) =>
    (await broker.app.broker.db.query<{ n: number }>('SELECT count(*)::int AS n FROM tasks WHERE workload_id = $1', [bot.id])).rows[0]!.n;

  it('answers opens beyond the limit with 429 slow_down and Retry-After, writing no task for them', async () => {
    const { bot, answers, limitedAt } = await burstOfSeven(async () => {
      const bot = await freshBot();
      await bot.token();
      return { bot, taskId: '', take: () => open(bot) };
    });
    expect(answers.map((a) => a.status)).toEqual([201, 201, 201, 201, 201, 429, 429]);
    const limited = answers[5]!;
    expect(limited.headers.get('retry-after')).toBe('1');
    expect(limited.body).toEqual({ error: 'slow_down', error_description: expect.stringContaining('retry after 1 s'), retry_after: 1 });
    expect(await tasksOf(bot)).toBe(5);
    const opened = await broker.app.broker.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_events WHERE kind = 'task.opened' AND actor = $1`,
      [`workload:${bot.id}`],
    );
    expect(opened.rows[0]!.n).toBe(5);

    // A bucket of its own: the credential requests' allowance is untouched.
    const taskId = answers[0]!.body.task_id as string;
    for (let i = 0; i < 5; i++) expect((await bot.credential(taskId, READ)).status).toBe(201);

    await sleep(1100);
    await refillsAtOnePerSecond(limitedAt, async () => (await open(bot)).status);
  });

  it("runs a workload's own limit", async () => {
    const bot = await freshBot();
    expect((await putLimit(broker, bot, { per_minute: 6, burst: 2 })).status).toBe(200);
    const answers: Response[] = [];
    for (let i = 0; i < 3; i++) answers.push(await open(bot));
    expect(answers.map((a) => a.status)).toEqual([201, 201, 429]);
    expect(TEN_SECONDS(answers[2])).toBe(true);
  });
});

/**
 * Seven requests against a bucket of five refilled at one a second: five 201s, two 429s. The
 * refill runs on the database clock, so a round slower than a second (a busy machine) may fairly
 * see a sixth 201: such a round proves nothing and is tried again with a fresh workload, up to five
 * times; a fast round must match exactly.
 */
async function burstOfSeven(fresh: () => Promise<{ bot: Bot; taskId: string; take: () => Promise<Response> }>) {
  for (let round = 1; ; round++) {
    const { bot, taskId, take } = await fresh();
    const answers: Response[] = [];
    const started = Date.now();
    for (let i = 0; i < 7; i++) answers.push(await take());
    const limitedAt = Date.now();
    const matched = answers.map((a) => a.status).join() === '201,201,201,201,201,429,429';
    if (matched || limitedAt - started < 900 || round === 5) return { bot, taskId, answers, limitedAt };
  }
}

/**
 * After a refusal at `limitedAt` (and `spent` tokens used since), requests succeed again at the
 * refill rate: at least one, at most one per second passed, and then a 429 again.
 */
async function refillsAtOnePerSecond(limitedAt: number, take: () => Promise<number>, spent = 0): Promise<void> {
  let granted = 0;
  let status = 201;
  while (status === 201 && granted < 10) {
    status = await take();
    if (status === 201) granted++;
  }
  expect(status).toBe(429);
  expect(granted + spent).toBeGreaterThanOrEqual(1);
  expect(granted + spent).toBeLessThanOrEqual(Math.ceil((Date.now() - limitedAt) / 1000));
}
