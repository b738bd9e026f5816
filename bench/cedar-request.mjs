// Cedar inside a credential request, through the built broker on PostgreSQL: the same sequential
// credential requests with 0, 10 and 100 global policies (bench/lib/cedar-policies.mjs, each its
// own policy set), reporting the median and p99 of the whole request (as the bot sees it) and of
// the Cedar step alone (the broker's tollgate_policy_evaluation_seconds histogram, diffed around
// each run; quantiles interpolated within its buckets, as Prometheus' histogram_quantile does).
// Usage: npm run build && node bench/cedar-request.mjs [--n 1000]
// It creates (and drops) a fresh database on DATABASE_URL's server (default the local one).
import { freshDatabase } from './lib/database.mjs';
import { BENCH_TOOL, benchPolicyTexts } from './lib/cedar-policies.mjs';
import { cleanup, installSignalHandlers } from './lib/procs.mjs';
import { newSecrets, startBroker } from './lib/tollgate.mjs';

const args = process.argv.slice(2);
const n = Number(args[args.indexOf('--n') + 1] ?? 1000) || 1000;
const SIZES = [0, 10, 100];
const WARM_UP = 50;
const HISTOGRAM = 'tollgate_policy_evaluation_seconds';

installSignalHandlers();
try {
  const { url: databaseUrl } = await freshDatabase();
  // Rate limiting off: one bot asks as fast as it can.
  const broker = await startBroker({ name: 'tollgate', databaseUrl, ...newSecrets(), extraEnv: { TOLLGATE_RATE_LIMIT: 'off' } });
  const put = async (path, json) => {
    const response = await broker.call('PUT', path, { token: broker.adminKey, json });
    if (response.status >= 300) throw new Error(`PUT ${path}: ${response.status} ${JSON.stringify(response.body)}`);
  };
  await put('/v1/admin/boundaries/bench-refunds', {
    tool: BENCH_TOOL,
    actions: ['refund:create'],
    intents: ['refund_request'],
    default_ttl: 60,
    max_ttl: 300,
    credential: { kind: 'jwt' },
  });
  const [bot] = await broker.registerBots(1, 'cedar-bot');
  const task = await broker.must(201, 'POST', '/v1/tasks', {
    token: await bot.token(),
    json: { intent: 'refund_request', subject: 'user-42', ttl: 3600 },
  });
  const ask = async (i) =>
    broker.must(201, 'POST', `/v1/tasks/${task.task_id}/credentials`, {
      token: await bot.token(),
      json: { boundary: 'bench-refunds', action: 'refund:create', resource: `order/${i}`, params: { amount: i % 100, owner: 'user-42' } },
    });

  const texts = benchPolicyTexts(Math.max(...SIZES));
  let written = 0;
  const results = [];
  for (const size of SIZES) {
    for (; written < size; written++) await put(`/v1/admin/policies/bench-${written}`, { policy: texts[written] });
    for (let i = 0; i < WARM_UP; i++) await ask(i);
    const before = await histogram(broker);
    const samples = [];
    for (let i = 0; i < n; i++) {
      const started = process.hrtime.bigint();
      await ask(i);
      samples.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
    const cedar = difference(await histogram(broker), before);
    samples.sort((a, b) => a - b);
    const at = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
    results.push({
      global_policies: size,
      requests: n,
      request_ms: { median: round(at(0.5)), p99: round(at(0.99)) },
      // No policy and no approval rule: the request does not reach Cedar at all.
      cedar_us:
        cedar.count === 0
          ? null
          : {
              median: round(quantile(cedar, 0.5) * 1e6),
              p99: round(quantile(cedar, 0.99) * 1e6),
              mean: round((cedar.sum / cedar.count) * 1e6),
              observed: cedar.count,
            },
    });
    console.log(JSON.stringify(results.at(-1)));
  }
} finally {
  await cleanup();
}

/** The histogram's cumulative buckets, count and sum, from the broker's /metrics. */
async function histogram(broker) {
  const response = await fetch(`${broker.url}/metrics`);
  const text = await response.text();
  const buckets = [];
  let count = 0;
  let sum = 0;
  for (const line of text.split('\n')) {
    const bucket = line.match(new RegExp(`^${HISTOGRAM}_bucket\\{le="([^"]+)"\\} (\\S+)`));
    if (bucket) buckets.push({ le: bucket[1] === '+Inf' ? Infinity : Number(bucket[1]), cumulative: Number(bucket[2]) });
    else if (line.startsWith(`${HISTOGRAM}_count `)) count = Number(line.split(' ')[1]);
    else if (line.startsWith(`${HISTOGRAM}_sum `)) sum = Number(line.split(' ')[1]);
  }
  return { buckets, count, sum };
}

function difference(after, before) {
  return {
    buckets: after.buckets.map((bucket, i) => ({ le: bucket.le, cumulative: bucket.cumulative - (before.buckets[i]?.cumulative ?? 0) })),
    count: after.count - before.count,
    sum: after.sum - before.sum,
  };
}

/** The q-quantile, interpolated linearly within the bucket it falls in (seconds). */
function quantile({ buckets, count }, q) {
  const rank = q * count;
  let lower = 0;
  let below = 0;
  for (const { le, cumulative } of buckets) {
    if (cumulative >= rank) {
      if (le === Infinity) return lower;
      const inBucket = cumulative - below;
      return inBucket === 0 ? le : lower + (le - lower) * ((rank - below) / inBucket);
    }
    lower = le;
    below = cumulative;
  }
  return lower;
}

function round(x) {
  return Math.round(x * 100) / 100;
}
