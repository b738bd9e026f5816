// Introspection and complete_1000 on their own, this build against another one alternately, on one
// fresh PostgreSQL database seeded once: `npm run bench:introspection -- [options]`.
//
// Each round starts this checkout's broker (dist/) and, with --base, the other checkout's broker
// (its dist/, built there), one after the other on the same database, port, admin key and KEK (so
// the same tokens and bots are good for both), in alternating order. Per broker: a warm-up, then
// `--duration` seconds of introspection load (50 connections, the bench's mix: 80% active tokens
// over a table of `--rows` leases), with the CPU per answered request of the broker process and
// of this database's own PostgreSQL backends (other sessions on a shared server do not count);
// then `--complete` rounds of complete_1000. Medians per build, and new / base.
//
//   npm run build && node bench/introspection.mjs [--base /path/to/other/checkout] [--rounds 3]
//     [--rows 1000000] [--tokens 2000] [--duration 10] [--warmup 3] [--complete 1] [--connections 50]
//     [--profile <dir>]   (the brokers run with --cpu-prof, profiles written to <dir>/<build>-<round>)
//     [--pglite]          (the brokers on the embedded PGlite, one data folder shared in turn: no
//                          seeded table, the leases are the issued tokens'; the CPU is all the broker's)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, freshDatabase } from './lib/database.mjs';
import { completeRound, introspectionTokens, seedIntrospectionTable } from './lib/introspection.mjs';
import { LoadGenerator } from './lib/load.mjs';
import { cleanup, cpuSecondsOf, freePort, installSignalHandlers, onCleanup } from './lib/procs.mjs';
import { BOUNDARIES, BROKER_MAIN, botsForWorker, newSecrets, startBroker } from './lib/tollgate.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(ROOT);

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const BASE = option('base');
const ROUNDS = Number(option('rounds', 3));
const ROWS = Number(option('rows', 1_000_000));
const TOKENS = Number(option('tokens', 2000));
const DURATION = Number(option('duration', 10));
const WARMUP = Number(option('warmup', 3));
const COMPLETE = Number(option('complete', 1));
const CONNECTIONS = Number(option('connections', 50));
const PROFILE = option('profile');
const PGLITE = args.includes('--pglite');

const started = Date.now();
const log = (message) => process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${message}\n`);

const builds = [{ name: 'new', main: BROKER_MAIN }];
if (BASE) builds.unshift({ name: 'base', main: join(resolve(BASE), BROKER_MAIN) });

installSignalHandlers();
let exitCode = 0;
const records = [];
try {
  const db = PGLITE ? undefined : await freshDatabase();
  const sql = db && (await connect(db.url));
  if (sql) onCleanup(() => sql.end());
  // On PGlite the brokers take turns on one data folder (one process at a time may open it).
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-bench-introspection-'));
  onCleanup(() => rmSync(dataDir, { recursive: true, force: true }));
  const secrets = newSecrets();
  // One port for every broker: the issuer (and the bots' assertion audience) is the broker's URL.
  const port = await freePort();
  const start = (build, round) =>
    startBroker({
      name: `tollgate (${build.name})`,
      databaseUrl: db?.url,
      dataDir,
      ...secrets,
      port,
      main: build.main,
      nodeArgs: PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${join(resolve(PROFILE), `${build.name}-${round}`)}`] : [],
    });

  // Set up through the newest build: boundaries (crm-orders' leases outlive the run), bots, the table, the tokens.
  let broker = await start(builds.at(-1), 'setup');
  await broker.defineBoundaries();
  await broker.admin('PUT', '/v1/admin/boundaries/crm-orders', { ...BOUNDARIES['crm-orders'], default_ttl: 3600, max_ttl: 3600 });
  const bots = await broker.registerBots(4);
  const t0 = Date.now();
  let rows = 0;
  if (sql) {
    ({ rows } = await seedIntrospectionTable(sql, { workloadId: bots[0].id, rows: ROWS }));
    log(`seeded ${ROWS} leases in ${((Date.now() - t0) / 1000).toFixed(1)} s (table: ${rows} rows)`);
  }
  const tokens = await introspectionTokens(broker, bots, TOKENS);
  await broker.stop();
  log(`${tokens.length} tokens (${tokens.filter((t) => t.active).length} active)`);

  const load = new LoadGenerator();
  const job = {
    url: broker.url,
    audience: broker.url,
    bots: botsForWorker(bots),
    connections: CONNECTIONS,
    mix: [{ name: 'introspection', kind: 'introspect', tokens: tokens.map((t) => t.token), adminKey: secrets.adminKey, expect: 200 }],
  };

  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 === 1 ? builds : [...builds].reverse();
    for (const build of order) {
      broker = await start(build, round);
      for (const { token, active } of tokens.slice(0, 20)) {
        const answer = await broker.introspect(token);
        if (answer.active !== active) throw new Error(`${build.name}: a token introspected active=${answer.active}, expected ${active}`);
      }
      const warm = await load.run({ ...job, duration: WARMUP });
      failOn(build.name, warm);
      const pids = sql ? await backendPids(sql) : [];
      const before = { broker: broker.child.cpuSeconds(), postgres: cpuSecondsOf(pids) };
      const measured = await load.run({ ...job, duration: DURATION });
      failOn(build.name, measured);
      const answered = measured.rps * DURATION;
      const record = {
        build: build.name,
        round,
        rps: measured.rps,
        p50_ms: measured.p50_ms,
        p99_ms: measured.p99_ms,
        broker_cpu_ms: ((broker.child.cpuSeconds() - before.broker) * 1000) / answered,
        postgres_cpu_ms: ((cpuSecondsOf(pids) - before.postgres) * 1000) / answered,
      };
      const completes = [];
      for (let i = 0; i < COMPLETE; i++) {
        const done = await completeRound(broker, bots[0], `bulk-${build.name}-${round}-${i}`);
        if (done.revoked !== 1000 || done.pending > 0 || done.passes !== 1 || done.late_active > 0)
          throw new Error(
            `${build.name}: complete_1000 revoked ${done.revoked}, ${done.pending} still active, ${done.passes} check passes, ${done.late_active} late active answers`,
          );
        completes.push(done);
      }
      Object.assign(record, {
        complete_1000_ms: median(completes.map((c) => c.ms)),
        visible_ms: median(completes.map((c) => c.visible_ms)),
        complete_ms: median(completes.map((c) => c.complete_ms)),
        verify_ms: median(completes.map((c) => c.verify_ms)),
      });
      records.push(record);
      log(
        `${build.name} round ${round}: ${record.rps}/s p50 ${record.p50_ms} ms p99 ${record.p99_ms} ms, CPU per request broker ${record.broker_cpu_ms.toFixed(3)} ms + PostgreSQL ${record.postgres_cpu_ms.toFixed(3)} ms; complete_1000: all inactive after ${Math.round(record.visible_ms)} ms, seen by the client after ${Math.round(record.complete_1000_ms)} ms (complete ${Math.round(record.complete_ms)} ms, introspections ${Math.round(record.verify_ms)} ms)`,
      );
      await broker.stop();
    }
  }

  const keys = [
    'rps',
    'p50_ms',
    'p99_ms',
    'broker_cpu_ms',
    'postgres_cpu_ms',
    'complete_1000_ms',
    'visible_ms',
    'complete_ms',
    'verify_ms',
  ];
  const medians = Object.fromEntries(
    builds.map((build) => [
      build.name,
      Object.fromEntries(keys.map((key) => [key, round3(median(records.filter((r) => r.build === build.name).map((r) => r[key])))])),
    ]),
  );
  process.stdout.write(
    `\nmedians of ${ROUNDS} round(s), ${PGLITE ? 'PGlite' : `PostgreSQL, ${rows} leases`}, ${CONNECTIONS} connections, ${DURATION} s runs\n`,
  );
  process.stdout.write(`| build | ${keys.join(' | ')} |\n|${' --- |'.repeat(keys.length + 1)}\n`);
  for (const [name, m] of Object.entries(medians)) process.stdout.write(`| ${name} | ${keys.map((key) => m[key]).join(' | ')} |\n`);
  if (medians.base) {
    const ratios = Object.fromEntries(keys.map((key) => [key, round3(medians.new[key] / medians.base[key])]));
    process.stdout.write(`| new / base | ${keys.map((key) => ratios[key]).join(' | ')} |\n`);
    medians.ratio = ratios;
  }
  const out = join(ROOT, 'bench/results', `introspection-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(
    out,
    JSON.stringify(
      {
        backend: PGLITE ? 'pglite' : 'postgres',
        rows,
        tokens: tokens.length,
        rounds: ROUNDS,
        duration: DURATION,
        base: BASE ?? null,
        records,
        medians,
      },
      null,
      2,
    ) + '\n',
  );
  log(`wrote ${out}`);
} catch (error) {
  exitCode = 1;
  process.stderr.write(`\nbench:introspection: ${error?.stack ?? error}\n`);
} finally {
  await cleanup();
}
process.exit(exitCode);

/** Any unexpected answer, connection error or timeout ends the run: its numbers would not mean what they say. */
function failOn(name, result) {
  if (result.unexpected > 0 || result.errors > 0 || result.timeouts > 0)
    throw new Error(
      `${name}: ${result.unexpected} unexpected answers, ${result.errors} errors, ${result.timeouts} timeouts: ${JSON.stringify(result.samples ?? []).slice(0, 500)}`,
    );
}

/** The PostgreSQL backends serving the bench's database (its pool is open once the warm-up ran). */
async function backendPids(client) {
  const { rows } = await client.query('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
  return rows.map((row) => row.pid);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function round3(x) {
  return Math.round(x * 1000) / 1000;
}
