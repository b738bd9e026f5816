// `npm run bench:embedded`: the credential hot path of one or more builds, alternately, on the
// embedded PGlite default (or on PostgreSQL with --postgres), with CPU per request. Each build's
// broker is started once as its own process and set up through the HTTP API as `npm run bench`
// does (bench/lib/tollgate.mjs); then every round measures each build in turn with the same
// autocannon load (bench/lib/load-worker.mjs, 50 connections). Reports per run and as medians:
// rate, p50/p99, CPU ms per request of the broker process (PGlite runs inside it) and, on
// PostgreSQL, of the backends serving the broker's database, and the transactions committed per
// request in it (pg_stat_database: one per statement outside a transaction, background work included).
//
//   npm run build && node bench/embedded.mjs [--postgres] [--scenario issuance|denial] [--scenarios A,B]
//     [--builds .,../other-worktree] [--rounds 3] [--duration 8] [--warmup 3] [--tasks-per-bot 50] [--cpu-prof DIR]
//     [--rate N] [--settle S] [--timeline FILE] [--node-args 'ARGS;ARGS'] [--statements]
//
// --builds: the worktrees whose dist/ to measure, alternately (default: this one). --cpu-prof
// writes each broker's V8 CPU profile (node --cpu-prof) into DIR when it stops. --rate: open-loop
// load at N requests per second instead of closed-loop saturation (latency below saturation);
// --settle: seconds of quiet before each measured run, so one broker's background work after its
// run (the audit chainer links what it issued) does not land on the next one's; --timeline: every
// answer's [scheduled ms, latency ms] per run, as JSON, to see when the slow ones come;
// --scenarios: a scenario per build, `,` between them (`--builds .,. --scenarios issuance,denial`
// measures a permit against a denial alternately, each on a broker and database of its own);
// --node-args: Node flags per build, `;` between builds and spaces between flags (`--builds .,.
// --node-args ';--max-semi-space-size=32'` measures one build with and without a flag);
// --statements (PostgreSQL, with pg_stat_statements in the server's shared_preload_libraries):
// after each measured run, the statements that took the backends' time, per request, so the
// PostgreSQL half of the CPU can be split by statement (what is left is commits, WAL and protocol).
import { resolve, join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect, freshDatabase } from './lib/database.mjs';
import { LoadGenerator } from './lib/load.mjs';
import { cleanup, cpuSecondsOf, installSignalHandlers, onCleanup, sleep } from './lib/procs.mjs';
import { BROKER_MAIN, newSecrets, setUpCredentialLoad, startBroker } from './lib/tollgate.mjs';

const args = process.argv.slice(2);
const value = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const POSTGRES = args.includes('--postgres');
const SCENARIO = value('scenario', 'issuance');
const BUILDS = value('builds', '.')
  .split(',')
  .map((dir) => resolve(dir));
const ROUNDS = Number(value('rounds', 3));
const DURATION = Number(value('duration', 8));
const WARMUP = Number(value('warmup', 3));
const CPU_PROF = value('cpu-prof', undefined);
const RATE = value('rate', undefined) === undefined ? undefined : Number(value('rate'));
const SETTLE = Number(value('settle', 0));
const TIMELINE = value('timeline', undefined);
const STATEMENTS = args.includes('--statements');
const NODE_ARGS = value('node-args', '')
  .split(';')
  .map((flags) => flags.split(' ').filter(Boolean));
// bench/run.mjs opens 50 per bot (4 bots); fewer make each task come back within the broker's
// 1 s context cache at the low rates of a contended machine, as it does at full speed.
const TASKS_PER_BOT = Number(value('tasks-per-bot', 50));
const SCENARIOS = BUILDS.map((_, i) => value('scenarios', '').split(',')[i] || SCENARIO);
for (const scenario of SCENARIOS) {
  if (!['issuance', 'denial'].includes(scenario)) throw new Error(`--scenario(s): issuance or denial, not ${scenario}`);
}

installSignalHandlers();
const log = (message) => process.stdout.write(`${message}\n`);

async function main() {
  const load = new LoadGenerator();
  const targets = [];
  for (const [i, root] of BUILDS.entries()) {
    const db = POSTGRES ? await freshDatabase() : undefined;
    // As bench/run.mjs: its PostgreSQL broker sweeps every 200 ms, its embedded one at the default.
    const extraEnv = POSTGRES ? { TOLLGATE_SWEEP_INTERVAL_MS: '200' } : {};
    const nodeArgs = [...(NODE_ARGS[i] ?? [])];
    if (CPU_PROF) {
      const dir = resolve(CPU_PROF, `build-${i}`);
      mkdirSync(dir, { recursive: true });
      nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
    }
    const broker = await startBroker({
      name: `tollgate ${root}`,
      databaseUrl: db?.url,
      ...newSecrets(),
      extraEnv,
      nodeArgs,
      main: join(root, BROKER_MAIN),
    });
    const setup = await setUpCredentialLoad(broker, { tasksPerBot: TASKS_PER_BOT });
    const sql = db ? await connect(db.url) : undefined;
    if (sql) onCleanup(() => sql.end());
    if (sql && STATEMENTS) await sql.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    const job = { ...setup.base, mix: setup.mixes[SCENARIOS[i]], ...(RATE ? { rate: RATE, timeline: Boolean(TIMELINE) } : {}) };
    const label = `${root}${NODE_ARGS[i]?.length ? ` (${NODE_ARGS[i].join(' ')})` : ''}${args.includes('--scenarios') ? ` ${SCENARIOS[i]}` : ''}`;
    targets.push({ root, label, broker, sql, dbName: db?.name, job, runs: [], timelines: [] });
    log(`${label}: broker up on ${POSTGRES ? 'PostgreSQL' : 'PGlite'}, ${setup.tasks.length} tasks`);
  }
  for (const target of targets) await expectOnly(target, await load.run({ ...target.job, duration: WARMUP }));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const target of targets) {
      await expectOnly(target, await load.run({ ...target.job, duration: 1 }));
      if (SETTLE > 0) await sleep(SETTLE * 1000);
      if (STATEMENTS)
        await target.sql.query('SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = $1), 0)', [target.dbName]);
      const before = await sample(target);
      const result = await load.run({ ...target.job, duration: DURATION });
      const after = await sample(target);
      await expectOnly(target, result);
      const requests = result.requests;
      const run = {
        rps: result.rps,
        p50_ms: result.p50_ms,
        p99_ms: result.p99_ms,
        broker_cpu_ms: round3(((after.broker - before.broker) * 1000) / requests),
        postgres_cpu_ms: POSTGRES ? round3(((after.postgres - before.postgres) * 1000) / requests) : null,
        commits: POSTGRES ? round3((after.commits - before.commits) / requests) : null,
      };
      target.runs.push(run);
      if (result.timeline) target.timelines.push(result.timeline);
      log(`round ${round} ${target.label}: ${JSON.stringify(run)}`);
      if (STATEMENTS) await logStatements(target, requests);
    }
  }
  log(
    `\n${[...new Set(SCENARIOS)].join(' and ')} on ${POSTGRES ? 'PostgreSQL' : 'embedded PGlite'}, ${ROUNDS} rounds of ${DURATION} s, medians:`,
  );
  for (const target of targets) {
    const m = (key) => median(target.runs.map((run) => run[key]));
    const pg = POSTGRES ? `, PostgreSQL CPU ${m('postgres_cpu_ms')} ms/request, ${m('commits')} commits/request` : '';
    log(`  ${target.label}: ${m('rps')}/s, p50 ${m('p50_ms')} ms, p99 ${m('p99_ms')} ms, broker CPU ${m('broker_cpu_ms')} ms/request${pg}`);
  }
  if (targets.length > 1) {
    const rate = (t) => median(t.runs.map((run) => run.rps));
    const cpu = (t) => median(t.runs.map((run) => run.broker_cpu_ms + (run.postgres_cpu_ms ?? 0)));
    log(
      `  ratio ${targets[0].label} / ${targets[1].label}: rate ${round3(rate(targets[0]) / rate(targets[1]))}x, CPU ${round3(cpu(targets[0]) / cpu(targets[1]))}x`,
    );
  }
  if (TIMELINE) writeFileSync(TIMELINE, JSON.stringify(targets.map((target) => ({ root: target.root, runs: target.timelines }))));
  for (const target of targets) await target.broker.stop();
}

/**
 * The broker's CPU seconds; on PostgreSQL also those of the backends serving its database (other
 * work on a shared server does not count; a backend that exits between two samples is missed) and
 * the transactions committed in it.
 */
async function sample(target) {
  const out = { broker: target.broker.child.cpuSeconds(), postgres: 0, commits: 0 };
  if (target.sql) {
    const { rows } = await target.sql.query(
      `SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = $1)::bigint AS n,
              (SELECT array_agg(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()) AS pids`,
      [target.dbName],
    );
    out.commits = Number(rows[0].n);
    out.postgres = cpuSecondsOf(rows[0].pids ?? []);
  }
  return out;
}

/** The statements the run's backends spent their time in, per request (pg_stat_statements). */
async function logStatements(target, requests) {
  const { rows } = await target.sql.query(
    `SELECT calls, rows, total_exec_time + total_plan_time AS ms, shared_blks_hit + shared_blks_read AS buffers, wal_records, wal_bytes,
            regexp_replace(query, '\\s+', ' ', 'g') AS query
       FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) AND toplevel ORDER BY ms DESC`,
    [target.dbName],
  );
  const per = (x) => round3(Number(x) / requests);
  const total = rows.reduce((sum, row) => sum + Number(row.ms), 0);
  log(`  statements: ${per(total * 1000)} µs of statement time per request (${rows.length} statements); the top ones:`);
  for (const row of rows.slice(0, 8)) {
    log(
      `    ${per(row.ms * 1000)} µs, ${per(row.calls)} calls, ${per(row.buffers)} buffers, ${per(row.wal_records)} WAL records, ${per(row.wal_bytes)} WAL bytes per request: ${row.query.slice(0, 110)}`,
    );
  }
}

/** Every answer must be the scenario's status: anything else fails the bench. */
async function expectOnly(target, result) {
  if (result.unexpected > 0 || result.errors > 0 || result.timeouts > 0) {
    throw new Error(
      `${target.root}: ${result.unexpected} unexpected answers ${JSON.stringify(result.status_codes)}, ${result.errors} errors, ${result.timeouts} timeouts: ${JSON.stringify(result.samples)}`,
    );
  }
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : round3((sorted[mid - 1] + sorted[mid]) / 2);
}

function round3(x) {
  return Math.round(x * 1000) / 1000;
}

main().then(
  () => cleanup().then(() => process.exit(0)),
  (error) => {
    process.stderr.write(`bench:embedded: ${error?.stack ?? error}\n`);
    cleanup().then(() => process.exit(1));
  },
);
