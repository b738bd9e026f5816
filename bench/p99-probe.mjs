// Where the issuance p99 below saturation comes from: one broker on PostgreSQL, paced load, and per
// run the broker's own view (server-side request time, event-loop delay, GC pauses from its
// /metrics) next to the client's, plus PostgreSQL's slow statements, autovacuum and checkpoints
// from its log around the slow answers.
//   npm run build && node bench/p99-probe.mjs [--rate 500] [--rounds 4] [--duration 10] [--settle 3] [--main dist/apps/broker/main.js]
//     [--cpu-prof DIR]
// --cpu-prof: the broker's V8 CPU profile in DIR when it stops; `node bench/profile-summary.mjs
// FILE --stalls 20` then lists what held the event loop when answers were late.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { connect, freshDatabase } from './lib/database.mjs';
import { LoadGenerator } from './lib/load.mjs';
import { cleanup, installSignalHandlers, onCleanup, sleep } from './lib/procs.mjs';
import { BROKER_MAIN, newSecrets, setUpCredentialLoad, startBroker } from './lib/tollgate.mjs';

const args = process.argv.slice(2);
const value = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const RATE = Number(value('rate', 500));
const ROUNDS = Number(value('rounds', 4));
const DURATION = Number(value('duration', 10));
const SETTLE = Number(value('settle', 3));
const MAIN = value('main', BROKER_MAIN);
const CPU_PROF = value('cpu-prof', undefined);
const ENV = Object.fromEntries(
  (value('env', '') || '')
    .split(',')
    .filter(Boolean)
    .map((kv) => kv.split('=')),
);
installSignalHandlers();
const log = (m) => process.stdout.write(`${m}\n`);

async function metrics(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = {};
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m) out[m[1] + (m[2] ?? '')] = Number(m[3]);
  }
  return out;
}

function sumKeys(after, before, match) {
  return Object.keys(after)
    .filter(match)
    .reduce((s, k) => s + after[k] - (before[k] ?? 0), 0);
}

async function main() {
  const db = await freshDatabase();
  const admin = await connect(db.url);
  onCleanup(() => admin.end());
  await admin.query(`ALTER DATABASE "${db.name}" SET log_min_duration_statement = 15`);
  // --auto-explain MS: the plan (analyze, buffers, WAL) of every statement over MS, in the server log.
  const explainMs = value('auto-explain', undefined);
  if (explainMs !== undefined) {
    for (const setting of [
      `session_preload_libraries = 'auto_explain'`,
      `auto_explain.log_min_duration = ${Number(explainMs)}`,
      'auto_explain.log_analyze = on',
      'auto_explain.log_buffers = on',
      'auto_explain.log_wal = on',
    ])
      await admin.query(`ALTER DATABASE "${db.name}" SET ${setting}`);
  }
  const broker = await startBroker({
    name: 'tollgate',
    databaseUrl: db.url,
    ...newSecrets(),
    extraEnv: { TOLLGATE_SWEEP_INTERVAL_MS: '200', ...ENV },
    nodeArgs: CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${resolve(CPU_PROF)}`] : [],
    main: MAIN,
  });
  const setup = await setUpCredentialLoad(broker);
  const load = new LoadGenerator();
  const job = { ...setup.base, mix: setup.mixes.issuance, rate: RATE, timeline: true };
  await load.run({ ...job, duration: 3 });
  const runs = [];
  for (let round = 1; round <= ROUNDS; round++) {
    await load.run({ ...job, duration: 1 });
    await sleep(SETTLE * 1000);
    const sessions = async () =>
      Number((await admin.query('SELECT sessions FROM pg_stat_database WHERE datname = $1', [db.name])).rows[0].sessions);
    const sessionsBefore = await sessions();
    const before = await metrics(broker.url);
    const result = await load.run({ ...job, duration: DURATION });
    const after = await metrics(broker.url);
    const newSessions = (await sessions()) - sessionsBefore;
    const d = (k) => (after[k] ?? 0) - (before[k] ?? 0);
    // The 201 answers' series, whatever the route's label.
    const sum201 = (prefix, le) =>
      Object.keys(after)
        .filter((k) => k.startsWith(prefix) && k.includes('status="201"') && (le === undefined || k.includes(`le="${le}"`)))
        .reduce((s, k) => s + d(k), 0);
    const bucket = (le) => sum201('tollgate_http_request_duration_seconds_bucket', le);
    const n = sum201('tollgate_http_request_duration_seconds_count');
    const gcKinds = ['major', 'minor', 'incremental', 'weakcb'];
    const gc = Object.fromEntries(
      gcKinds.map((k) => [
        k,
        `${d(`nodejs_gc_duration_seconds_count{kind="${k}"}`)}x ${Math.round(d(`nodejs_gc_duration_seconds_sum{kind="${k}"}`) * 1000)}ms`,
      ]),
    );
    const gcSlow = gcKinds.reduce(
      (s, k) =>
        s +
        (d(`nodejs_gc_duration_seconds_count{kind="${k}"}`) -
          sumKeys(
            after,
            before,
            (key) => key.startsWith('nodejs_gc_duration_seconds_bucket') && key.includes(`kind="${k}"`) && key.includes('le="0.01"'),
          )),
      0,
    );
    const run = {
      new_sessions: newSessions,
      client: { p50: result.p50_ms, p99: result.p99_ms, max: result.max_ms },
      server_over_10ms: n - bucket('0.01'),
      server_over_25ms: n - bucket('0.025'),
      server_over_50ms: n - bucket('0.05'),
      client_over_25ms: result.timeline.filter(([, l]) => l > 25).length,
      eventloop: {
        p99: Math.round(after.nodejs_eventloop_lag_p99_seconds * 1000),
        max: Math.round(after.nodejs_eventloop_lag_max_seconds * 1000),
      },
      gc,
      gc_over_10ms: gcSlow,
    };
    runs.push({ ...run, started_at: result.started_at, timeline: result.timeline });
    log(`round ${round}: ${JSON.stringify(run)}`);
  }
  writeFileSync(value('out', '/tmp/p99-probe.json'), JSON.stringify({ db: db.name, runs }));
  await broker.stop();
}

main().then(
  () => cleanup().then(() => process.exit(0)),
  (error) => {
    process.stderr.write(`p99-probe: ${error?.stack ?? error}\n`);
    cleanup().then(() => process.exit(1));
  },
);
