// `npm run bench` (full) and `npm run bench -- --quick`: Tollgate's benchmark, with its peers, in
// one run on one machine. See bench/README.md for what each scenario measures.
//
// The orchestrator (this process) builds the service, starts every server as its own process,
// sets Tollgate up through its HTTP API, seeds large tables with SQL, and asks a separate
// load-generator process (bench/lib/load-worker.mjs, autocannon) for the load. It never serves
// requests itself. Everything is bounded in time, and every child process, temp folder and the
// fresh database are removed on the way out, also on error or Ctrl-C.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkSeed, connect, countDue, freshDatabase, redact, seedLeases, seedTasks, skipTriggers } from './lib/database.mjs';
import { completeRound, introspectionTokens, seedIntrospectionTable } from './lib/introspection.mjs';
import { LoadGenerator } from './lib/load.mjs';
import {
  cleanup,
  cpuSecondsOf,
  freePort,
  installSignalHandlers,
  onCleanup,
  postgresPids,
  sleep,
  startNode,
  stop,
  waitHttp,
} from './lib/procs.mjs';
import { BROKER_MAIN, botsForWorker, newSecrets, passedThrough, setUpCredentialLoad, startBroker } from './lib/tollgate.mjs';
import { printTable } from './lib/report.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(ROOT);

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const BUILD = !args.includes('--no-build');
for (const arg of args) {
  if (!['--quick', '--no-build'].includes(arg)) {
    process.stderr.write(`bench: unknown argument ${arg}\nusage: npm run bench [-- --quick] [--no-build]\n`);
    process.exit(2);
  }
}

/**
 * Durations in seconds, table sizes in rows. `warmup` precedes the first measurement of a fresh
 * process; `warmupHot` the later ones on a process already warm (and the peers, which are tiny).
 */
const P = QUICK
  ? {
      warmup: 2,
      warmupHot: 1,
      run: 4,
      connections: 50,
      bots: 4,
      tasksPerBot: 50,
      introspectionRows: 100_000,
      sweepRows: 100_000,
      introspectionTokens: 500,
      completeRounds: 1,
      soak: 30,
      soakSampleEvery: 5,
      pacedRate: 500,
      sweepMax: 60,
      watchdog: 6 * 60,
    }
  : {
      warmup: 5,
      warmupHot: 5,
      run: 20,
      connections: 50,
      bots: 4,
      tasksPerBot: 50,
      introspectionRows: 1_000_000,
      sweepRows: 1_000_000,
      introspectionTokens: 2000,
      completeRounds: 5,
      soak: 600,
      soakSampleEvery: 30,
      pacedRate: 500,
      sweepMax: 180,
      watchdog: 40 * 60,
    };

const results = { scenarios: {}, peers: {}, ratios: {}, machine: {} };
/** Unexpected answers and errors: any of them fails the run (non-zero exit). */
const failures = [];
const notes = [];
const started = Date.now();

function log(message) {
  const s = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  process.stdout.write(`[${s}s] ${message}\n`);
}

async function main() {
  installSignalHandlers();
  for (const event of ['uncaughtException', 'unhandledRejection']) {
    process.once(event, (error) => {
      process.stderr.write(`bench: ${event}: ${error?.stack ?? error}\n`);
      cleanup().finally(() => process.exit(1));
    });
  }
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: watchdog: the run exceeded ${P.watchdog} s; stopping\n`);
    cleanup().finally(() => process.exit(1));
  }, P.watchdog * 1000);
  watchdog.unref();

  log(`mode: ${QUICK ? 'quick' : 'full'}`);
  const extra = Object.keys(passedThrough());
  if (extra.length > 0) log(`passed to the broker from the environment: ${extra.map((key) => `${key}=${process.env[key]}`).join(' ')}`);
  if (BUILD) {
    log('npm run build');
    const build = spawnSync('npm', ['run', 'build'], { stdio: 'inherit', timeout: 300_000 });
    if (build.status !== 0) throw new Error(`npm run build failed (${build.status ?? build.signal ?? build.error?.message})`);
  }
  if (!existsSync(BROKER_MAIN)) throw new Error(`${BROKER_MAIN} is missing: run npm run build`);

  const cpus = os.cpus();
  Object.assign(results.machine, {
    cpus: cpus.length,
    model: cpus[0]?.model?.trim() ?? 'unknown',
    total_mem_gb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${process.platform}-${process.arch} ${os.release()}`,
    postgres_version: null,
    mode: QUICK ? 'quick' : 'full',
    date: new Date().toISOString(),
  });
  // Which code was measured: the published table names it (npm run bench:publish).
  results.commit = sourceCommit();

  const load = new LoadGenerator();

  // ---- Peers: each in its own process, measured alone, then stopped. ----
  results.peers.oidc_provider = await oidcProviderPeer(load);
  results.peers.hello = await helloPeer(load);

  // ---- Tollgate on PostgreSQL, in a fresh database. ----
  // One broker process serves every PostgreSQL scenario, so memory after scenario 1 and after the
  // soak are the same process, and issuance with and without the sweep backlog compare like for
  // like. Its sweeper runs every 200 ms (the sweep scenario's setting) throughout.
  const db = await freshDatabase();
  log(`database ${redact(db.url)}`);
  const broker = await startBroker({
    name: 'tollgate (postgres)',
    databaseUrl: db.url,
    ...newSecrets(),
    extraEnv: { TOLLGATE_SWEEP_INTERVAL_MS: '200' },
  });
  const sql = await connect(db.url);
  onCleanup(() => sql.end());
  results.machine.postgres_version = (await sql.query('SHOW server_version')).rows[0].server_version;

  await broker.defineBoundaries();
  const bots = await broker.registerBots(P.bots);
  const tasks = await broker.openTasks(bots, P.tasksPerBot);
  log(`set up: ${P.bots} bots, ${tasks.length} tasks in flight`);
  const base = { url: broker.url, audience: broker.url, bots: botsForWorker(bots), connections: P.connections };
  const issuanceMix = [{ name: 'issuance', kind: 'credential', tasks, boundary: 'crm-orders', action: 'orders:read', expect: 201 }];

  // 1. issuance
  results.scenarios.issuance = await measure(load, 'issuance', { ...base, mix: issuanceMix }, { cpuOf: broker.child, checkpoint: sql });
  results.scenarios.issuance.paced = await paced(load, 'issuance', { ...base, mix: issuanceMix });
  const rssAfterIssuance = broker.child.rssMb();

  // 2. token_exchange (RFC 8693), once it exists
  results.scenarios.token_exchange = await tokenExchange(load, broker, bots, tasks, base, sql);

  // 3. denial: intent mismatch, 403 expected, and each one must leave a decision. Denials of their
  // own tasks: each is a drift denial, and a task that collects the broker's threshold (1,000) is
  // suspended, as it should be. On the issuance tasks, the denial scenario and the soak's denials
  // together passed 1,000 a task once the broker answered 2,500 denials a second, and the soak's
  // issuance then met ended tasks. Twice as many tasks as issuance: 25 s at 6,500 denials a
  // second is 160,000 denials, 400 a task, so none is suspended mid-run (a suspended task's
  // denials are recorded but no longer counted, and cost less).
  const denialTasks = await broker.openTasks(bots, 2 * P.tasksPerBot);
  const denialsBefore = await denyDecisions(sql);
  const denial = await measure(
    load,
    'denial',
    {
      ...base,
      mix: [{ name: 'denial', kind: 'credential', tasks: denialTasks, boundary: 'payments', action: 'refund:create', expect: 403 }],
    },
    { warmup: P.warmupHot, cpuOf: broker.child, checkpoint: sql },
  );
  const answered403 = denial.warmup403 + denial.status_403;
  const recorded = (await denyDecisions(sql)) - denialsBefore;
  delete denial.warmup403;
  denial.decisions_recorded = recorded;
  if (recorded < answered403) {
    failures.push({ scenario: 'denial', problem: `${answered403} denials answered 403 but only ${recorded} deny decisions were recorded` });
  }
  results.scenarios.denial = denial;

  // 4. introspection over a big lease table
  const introspection = await introspectionScenario(load, broker, sql, bots, base);
  results.scenarios.introspection = introspection.result;

  // 5. complete a task holding 1,000 leases
  results.scenarios.complete_1000 = await complete1000(broker, bots[0]);

  // 6. sweep
  results.scenarios.sweep_1m = await sweepScenario(load, broker, db, bots, base, issuanceMix, sql);

  // 8. memory: after scenario 1, and after a mixed-load soak, on the same process
  // The soak's denials get tasks of their own too, twice as many: a tenth of 4,000 mixed requests
  // a second over the 600 s soak is 600 denials a task, under the drift threshold.
  const soakDenialTasks = await broker.openTasks(bots, 2 * P.tasksPerBot);
  results.scenarios.memory = await memorySoak(
    load,
    broker,
    base,
    { tasks, denialTasks: soakDenialTasks },
    introspection.tokens,
    rssAfterIssuance,
  );
  await broker.stop();

  // 7. the embedded default: PGlite in a temp data folder, no DATABASE_URL. Started only now: an
  // idle broker still runs its background passes (about 25 ms of CPU a second on PGlite), which
  // would otherwise share the cores with every PostgreSQL scenario.
  const embedded = await embeddedSetup();
  results.scenarios.embedded_issuance = await measure(load, 'embedded_issuance', embedded.job, { cpuOf: embedded.broker.child });
  await embedded.broker.stop();

  // Scenario order in the output follows the issue's numbering.
  const order = ['issuance', 'token_exchange', 'denial', 'introspection', 'complete_1000', 'sweep_1m', 'embedded_issuance', 'memory'];
  results.scenarios = Object.fromEntries(order.map((name) => [name, results.scenarios[name]]));
  const issuance = results.scenarios.issuance;
  results.ratios = {
    issuance_vs_oidc_provider: ratio(issuance.rps, results.peers.oidc_provider.rps),
    issuance_vs_hello: ratio(issuance.rps, results.peers.hello.rps),
  };
}

// ---------------------------------------------------------------------------------------------

/** A warm-up run (discarded) then the measured run; returns the scenario's record. */
/**
 * `checkpoint` (a connection to the broker's PostgreSQL): a CHECKPOINT before the warm-up, so that
 * the WAL of what ran before (the previous scenario, a 1M-row setup) does not force a checkpoint,
 * with its full-page writes and its checkpointer's CPU, into this scenario's window. Every
 * PostgreSQL scenario starts from one; the WAL of its own 25 s stays under the size that forces
 * the next (max_wal_size 1 GB here).
 */
async function measure(load, name, job, { duration = P.run, warmup = P.warmup, cpuOf, checkpoint } = {}) {
  if (checkpoint) await checkpointNow(checkpoint, name);
  log(`${name}: warm-up ${warmup} s`);
  const warm = await load.run({ ...job, duration: warmup });
  check(`${name} (warm-up)`, warm);
  log(`${name}: measuring ${duration} s with ${job.connections} connections`);
  // CPU per request, for sizing: the broker's own (with its Cedar children) and PostgreSQL's.
  const cpuBefore = cpuOf ? { broker: cpuOf.cpuSeconds(), postgres: cpuSecondsOf(postgresPids()) } : undefined;
  const measured = await load.run({ ...job, duration });
  check(name, measured);
  log(`${name}: ${measured.rps}/s, p50 ${measured.p50_ms} ms, p99 ${measured.p99_ms} ms`);
  const record = summary(measured);
  if (cpuBefore) {
    const requests = measured.rps * duration;
    record.broker_cpu_ms_per_request = Math.round(((cpuOf.cpuSeconds() - cpuBefore.broker) * 1000 * 100) / requests) / 100;
    record.postgres_cpu_ms_per_request = Math.round(((cpuSecondsOf(postgresPids()) - cpuBefore.postgres) * 1000 * 100) / requests) / 100;
    log(`${name}: CPU per request: broker ${record.broker_cpu_ms_per_request} ms, PostgreSQL ${record.postgres_cpu_ms_per_request} ms`);
  }
  const expects403 = job.mix.some((kind) => kind.expect === 403);
  if (expects403) {
    record.status_403 = measured.status_codes['403'] ?? 0;
    record.warmup403 = warm.status_codes['403'] ?? 0;
  }
  return record;
}

/** CHECKPOINT, timed and logged: see measure. */
async function checkpointNow(sql, name) {
  const t0 = performance.now();
  await sql.query('CHECKPOINT');
  log(`${name}: CHECKPOINT before the run took ${Math.round(performance.now() - t0)} ms`);
}

/**
 * The same job at a fixed `pacedRate` requests per second over the same connections, right after
 * the saturated run: the latency a request sees when the machine is not queueing (at saturation,
 * 50 closed-loop connections make mean latency = 50 / rate, whatever the service does).
 */
async function paced(load, name, job) {
  log(`${name}: paced at ${P.pacedRate}/s for ${P.run} s`);
  const measured = await load.run({ ...job, rate: P.pacedRate, duration: P.run });
  check(`${name} (paced)`, measured);
  log(`${name} (paced): ${measured.rps}/s, p50 ${measured.p50_ms} ms, p99 ${measured.p99_ms} ms`);
  return { rate: P.pacedRate, ...summary(measured) };
}

function summary(result) {
  return {
    rps: result.rps,
    p50_ms: result.p50_ms,
    p99_ms: result.p99_ms,
    max_ms: result.max_ms,
    // Non-2xx answers other than the expected status (the denial scenario's 403s are expected).
    non2xx: result.unexpected_non2xx,
  };
}

/** Records every unexpected answer, connection error and timeout as a failure of the run. */
function check(name, result) {
  if (result.unexpected > 0 || result.errors > 0 || result.timeouts > 0) {
    failures.push({
      scenario: name,
      problem: `${result.unexpected} unexpected answers, ${result.errors} errors, ${result.timeouts} timeouts of ${result.requests} requests`,
      status_codes: result.status_codes,
      samples: result.samples,
    });
    log(
      `${name}: FAILED: ${result.unexpected} unexpected answers (${JSON.stringify(result.status_codes)}), ${result.errors} errors, ${result.timeouts} timeouts`,
    );
  }
}

/** HEAD and whether the work tree differs from it (`dirty`); null outside a git checkout. */
function sourceCommit() {
  const git = (...gitArgs) => spawnSync('git', gitArgs, { encoding: 'utf8', timeout: 10_000 });
  const head = git('rev-parse', 'HEAD');
  if (head.status !== 0) return null;
  const status = git('status', '--porcelain');
  return { sha: head.stdout.trim(), dirty: status.status !== 0 || status.stdout.trim() !== '' };
}

function ratio(a, b) {
  return typeof a === 'number' && typeof b === 'number' && b > 0 ? Math.round((a / b) * 1000) / 1000 : null;
}

async function denyDecisions(sql) {
  const { rows } = await sql.query(`SELECT count(*)::int AS n FROM decisions WHERE outcome = 'deny'`);
  return rows[0].n;
}

// ---- peers ----------------------------------------------------------------------------------

async function oidcProviderPeer(load) {
  const port = await freePort();
  const secret = randomBytes(24).toString('hex');
  const child = startNode('oidc-provider peer', 'bench/peers/oidc-provider.mjs', [], {
    ...process.env,
    PORT: String(port),
    OIDC_CLIENT_SECRET: secret,
  });
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitHttp(child, `${url}/.well-known/openid-configuration`, 30_000);
    const basic = Buffer.from(`bench-client:${secret}`).toString('base64');
    const request = {
      method: 'POST',
      path: '/token',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'orders:read', resource: 'https://crm.acme.test' }).toString(),
    };
    // One request by hand first: the token must be an ES256 JWT access token.
    const probe = await fetch(`${url}/token`, { method: 'POST', headers: request.headers, body: request.body });
    const body = await probe.json();
    const header = probe.ok ? JSON.parse(Buffer.from(body.access_token.split('.')[0], 'base64url').toString()) : {};
    if (!probe.ok || header.alg !== 'ES256' || header.typ !== 'at+jwt') {
      throw new Error(`oidc-provider peer did not issue an ES256 JWT access token: ${probe.status} ${JSON.stringify(body)}`);
    }
    const job = { url, connections: P.connections, mix: [{ name: 'token', kind: 'static', ...request, expect: 200 }] };
    const record = await measure(load, 'peer oidc_provider', job, { warmup: P.warmupHot, cpuOf: child });
    record.paced = await paced(load, 'peer oidc_provider', job);
    return record;
  } finally {
    await stop(child);
  }
}

async function helloPeer(load) {
  const port = await freePort();
  const child = startNode('hello peer', 'bench/peers/hello.mjs', [], { ...process.env, PORT: String(port) });
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitHttp(child, `${url}/hello`, 30_000);
    return await measure(
      load,
      'peer hello',
      { url, connections: P.connections, mix: [{ name: 'hello', kind: 'static', method: 'GET', path: '/hello', expect: 200 }] },
      { warmup: P.warmupHot },
    );
  } finally {
    await stop(child);
  }
}

// ---- scenarios ------------------------------------------------------------------------------

/** Starts the broker on its embedded PGlite default and sets it up as the PostgreSQL one. */
async function embeddedSetup() {
  const broker = await startBroker({ name: 'tollgate (pglite)', ...newSecrets() });
  const { base, mixes } = await setUpCredentialLoad(broker, { bots: P.bots, tasksPerBot: P.tasksPerBot, connections: P.connections });
  return { broker, job: { ...base, mix: mixes.issuance } };
}

async function tokenExchange(load, broker, bots, tasks, base, sql) {
  const task = tasks[0];
  const bot = bots.find((b) => b.id === task.bot);
  const details = [{ type: 'tool_call', task_id: task.taskId, boundary: 'crm-orders', action: 'orders:read', resource: 'order/1' }];
  const probe = await broker.call('POST', '/oauth2/token', {
    form: {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await bot.token(),
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      audience: 'https://crm.acme.test',
      scope: 'orders:read',
      authorization_details: JSON.stringify(details),
    },
  });
  if (probe.status === 404) {
    log('token_exchange: POST /oauth2/token answers 404: skipped (not implemented)');
    return { skipped: 'not implemented' };
  }
  if (probe.status < 200 || probe.status >= 300) {
    failures.push({ scenario: 'token_exchange', problem: `the probe exchange answered ${probe.status}`, body: probe.body });
    return { error: `probe answered ${probe.status}` };
  }
  return measure(
    load,
    'token_exchange',
    {
      ...base,
      mix: [
        {
          name: 'token_exchange',
          kind: 'exchange',
          tasks,
          boundary: 'crm-orders',
          action: 'orders:read',
          audience: 'https://crm.acme.test',
          expect: probe.status,
        },
      ],
    },
    { checkpoint: sql },
  );
}

/**
 * Seeds `introspectionRows` leases (with decisions and tasks) by SQL, then issues real tokens through
 * the API, revokes a fifth of them (their tasks complete), and introspects the mix.
 */
async function introspectionScenario(load, broker, sql, bots, base) {
  const t0 = Date.now();
  const { rows, fast } = await seedIntrospectionTable(sql, { workloadId: bots[0].id, rows: P.introspectionRows });
  log(
    `introspection: seeded ${P.introspectionRows} leases by SQL in ${((Date.now() - t0) / 1000).toFixed(1)} s${fast ? '' : ' (with FK triggers)'} (table: ${rows} rows)`,
  );

  // Real tokens, from ten tasks; two of them complete, so a fifth of the tokens are revoked.
  // Active and revoked interleaved; a few answers are checked before the load.
  const tokens = await introspectionTokens(broker, bots, P.introspectionTokens);
  for (const { token, active } of tokens.slice(0, 20)) {
    const answer = await broker.introspect(token);
    if (answer.active !== active)
      failures.push({ scenario: 'introspection', problem: `a token introspected active=${answer.active}, expected ${active}` });
  }
  const result = await measure(
    load,
    'introspection',
    {
      ...base,
      mix: [{ name: 'introspection', kind: 'introspect', tokens: tokens.map((t) => t.token), adminKey: broker.adminKey, expect: 200 }],
    },
    { warmup: P.warmupHot, checkpoint: sql },
  );
  result.table_rows = rows;
  result.tokens = tokens.length;
  result.active_share = Math.round((tokens.filter((t) => t.active).length / tokens.length) * 100) / 100;
  return { result, tokens: tokens.map((t) => t.token) };
}

/**
 * A task holding 1,000 active leases, completed under a stream of introspections of its tokens
 * (see completeRound): `visible_ms` is from sending POST /v1/tasks/{id}/complete until all 1,000
 * introspect inactive (they turn together, at the revoking transaction's commit); `ms` is until the
 * client has also asked each of the 1,000 once more and seen it inactive (`verify_ms`, 50 at a time).
 */
async function complete1000(broker, bot) {
  const rounds = [];
  for (let round = 0; round < P.completeRounds; round++) {
    const { revoked, pending, passes, late_active: late, ...timed } = await completeRound(broker, bot, `bulk-${round}`);
    if (revoked !== 1000) {
      failures.push({ scenario: 'complete_1000', problem: `complete answered ${revoked} revoked leases, expected 1000` });
    }
    if (pending > 0) failures.push({ scenario: 'complete_1000', problem: `${pending} tokens still introspect active 10 s after complete` });
    if (passes > 1)
      failures.push({
        scenario: 'complete_1000',
        problem: `the check needed ${passes} passes: a token answered active after the first inactive answer`,
      });
    if (late > 0)
      failures.push({ scenario: 'complete_1000', problem: `${late} introspections sent after the first inactive answer answered active` });
    rounds.push(timed);
    log(
      `complete_1000: round ${round + 1}: all 1000 inactive after ${Math.round(timed.visible_ms)} ms (complete answered after ${Math.round(timed.complete_ms)} ms; ${timed.probes} probes meanwhile); the client saw each inactive after ${Math.round(timed.ms)} ms (check ${Math.round(timed.verify_ms)} ms)`,
    );
  }
  const med = (key) => round2(median(rounds.map((r) => r[key])));
  const all = rounds.map((r) => r.visible_ms).sort((a, b) => a - b);
  return {
    rps: null,
    p50_ms: round2(median(all)),
    p99_ms: round2(all.at(-1)),
    max_ms: round2(all.at(-1)),
    non2xx: 0,
    visible_ms: med('visible_ms'),
    last_active_sent_ms: med('last_active_sent_ms'),
    ms: med('ms'),
    complete_ms: med('complete_ms'),
    verify_ms: med('verify_ms'),
    probes: med('probes'),
    rounds: rounds.length,
  };
}

async function memorySoak(load, broker, base, { tasks, denialTasks }, tokens, rssAfterIssuance) {
  const samples = [broker.child.rssMb()];
  log(`memory: RSS after issuance ${rssAfterIssuance} MB, now ${samples[0]} MB; mixed soak ${P.soak} s`);
  const mix = [
    { name: 'issuance', kind: 'credential', tasks, boundary: 'crm-orders', action: 'orders:read', expect: 201, weight: 6 },
    { name: 'denial', kind: 'credential', tasks: denialTasks, boundary: 'payments', action: 'refund:create', expect: 403, weight: 1 },
    { name: 'introspection', kind: 'introspect', tokens, adminKey: broker.adminKey, expect: 200, weight: 3 },
  ];
  const sampler = setInterval(() => {
    try {
      samples.push(broker.child.rssMb());
    } catch {
      // the process is gone; the load job will say so
    }
  }, P.soakSampleEvery * 1000);
  let result;
  try {
    result = await load.run({ ...base, mix, duration: P.soak });
  } finally {
    clearInterval(sampler);
  }
  check('memory (soak)', result);
  const rss = broker.child.rssMb();
  samples.push(rss);
  log(`memory: after the soak ${rss} MB (${result.rps}/s mixed)`);
  return {
    ...summary(result),
    rss_mb: rss,
    rss_mb_after_issuance: rssAfterIssuance,
    soak_s: P.soak,
    rss_samples_mb: samples,
    processes: broker.child.processCount(),
  };
}

/**
 * `sweepRows` JWT leases (and 1,000 more held at a source, `external`) inserted by SQL, committed
 * and checkpointed before any load, all `active` and all expiring at one instant that falls two
 * seconds into a measured issuance run of `run` seconds. Before that instant the same issuance
 * runs as the baseline, on the same tables, so the two runs differ only in the expiry. Expiry
 * needs no row rewrite (issue 15): the JWT leases read expired by the clock, and the sweeper (every
 * 200 ms) hands only the external ones to the outbox. `seconds` runs from the instant until no
 * lease is left for the sweeper (`countDue`); `rows_rewritten` is how many lease row updates
 * PostgreSQL counted over the window (pg_stat_user_tables.n_tup_upd, issuance included: a JWT
 * permit updates none); `expired_unrewritten` checks that the seeded leases read expired.
 *
 * Why not insert the rows during the load, as this scenario once did: an open transaction that has
 * written holds every audit event committed after its start back from the chain (see
 * libs/audit/chainer.ts), so a bulk insert open through the warm-up left the chainer a backlog of
 * the warm-up's events to link inside the measured window. That measured the insert, not expiry.
 */
async function sweepScenario(load, broker, db, bots, base, issuanceMix, checkpoint) {
  const sql = await connect(db.url);
  const EXTERNAL = 1000;
  // How long before the instant the rows are inserted: their insert, the checkpoint after it, the
  // baseline (warm-up and run) and the window's warm-up all come before it (about 70 s here).
  const LEAD_S = QUICK ? 30 : 150;
  try {
    const fast = await skipTriggers(sql);
    // Nothing else may be due when the count starts (leases outlive the run up to here: TTL 600 s).
    const drained = Date.now();
    while ((await countDue(sql)) > 0) {
      if (Date.now() - drained > 60_000) throw new Error('sweep_1m: leases already due were not swept within 60 s');
      await sleep(200);
    }
    const version = (await sql.query(`SELECT max(version)::int AS v FROM boundaries WHERE id = 'crm-orders'`)).rows[0].v;
    // The instant on the database's clock, and where it falls on ours (one machine, or not).
    const dbNow = Number((await sql.query(`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms`)).rows[0].ms);
    const skewMs = dbNow - Date.now();
    const expiresAt = new Date(Math.ceil(dbNow / 1000) * 1000 + LEAD_S * 1000);
    const instant = () => expiresAt.getTime() - skewMs - Date.now(); // ms until the instant, on our clock
    const t0 = Date.now();
    await sql.query('BEGIN');
    await seedTasks(sql, { tag: 'sweep', workloadId: bots[0].id, count: 1000 });
    const seed = {
      taskCount: 1000,
      workloadId: bots[0].id,
      boundaryId: 'crm-orders',
      boundaryVersion: version,
      mode: 'expiring',
      expiresAt,
    };
    await seedLeases(sql, { ...seed, tag: 'sweep', count: P.sweepRows });
    await seedLeases(sql, { ...seed, tag: 'sweep-external', taskTag: 'sweep', count: EXTERNAL, external: true });
    await sql.query('COMMIT');
    log(
      `sweep_1m: inserted and committed ${P.sweepRows} active leases (+${EXTERNAL} external) in ${((Date.now() - t0) / 1000).toFixed(1)} s${fast ? '' : ' (with FK triggers)'}, all expiring at ${expiresAt.toISOString()}`,
    );
    await checkSeed(sql);

    // The baseline: the same issuance on the same tables, before the instant.
    const needed = (P.warmupHot + P.run + P.warmupHot + 2) * 1000 + 5_000; // + the checkpoint's time, about
    if (instant() < needed) {
      throw new Error(`sweep_1m: the insert left ${Math.round(instant() / 1000)} s before the instant, not ${needed / 1000}: raise LEAD_S`);
    }
    const baseline = await measure(
      load,
      'sweep_1m baseline (issuance before the expiry)',
      { ...base, mix: issuanceMix },
      { warmup: P.warmupHot, checkpoint },
    );

    // The window: a warm-up that ends two seconds before the instant, then the measured run.
    const idle = instant() - (P.warmupHot + 2) * 1000;
    if (idle < 0) throw new Error(`sweep_1m: the baseline ended ${Math.round(-idle / 1000)} s too late for the instant: raise LEAD_S`);
    await sleep(idle);
    const warm = await load.run({ ...base, mix: issuanceMix, duration: P.warmupHot });
    check('sweep_1m (warm-up)', warm);
    const updatesBefore = await leaseUpdates(sql);
    const dueBefore = await countDue(sql);
    if (dueBefore > 0) throw new Error(`sweep_1m: ${dueBefore} leases were due before the window`);
    const running = load.run({ ...base, mix: issuanceMix, duration: P.run });
    await sleep(Math.max(0, instant()));
    // The database's clock decides: the count starts once it has passed the instant.
    while (!(await sql.query('SELECT clock_timestamp() >= $1 AS passed', [expiresAt])).rows[0].passed) await sleep(5);
    const expired = performance.now();
    let left = await countDue(sql);
    while (left > 0 && performance.now() - expired < P.sweepMax * 1000) {
      await sleep(50);
      left = await countDue(sql);
    }
    const seconds = (performance.now() - expired) / 1000;
    const during = await running;
    check('sweep_1m (issuance during the expiry)', during);
    await sleep(1000); // statistics reach pg_stat_user_tables within a second of a transaction's end
    const rewritten = (await leaseUpdates(sql)) - updatesBefore;
    const expiredRead = (
      await sql.query(
        `SELECT count(*)::int AS n FROM leases l WHERE l.state = 'active' AND l.expires_at = $1 AND l.expires_at <= now() AND NOT l.external`,
        [expiresAt],
      )
    ).rows[0].n;
    if (left > 0) notes.push(`sweep_1m: ${left} expired external leases were still due after ${P.sweepMax} s`);
    log(
      `sweep_1m: ${left === 0 ? `nothing due after ${seconds.toFixed(2)} s` : `still due after ${P.sweepMax} s (${left} left)`}; ${rewritten} lease rows rewritten; issuance meanwhile ${during.rps}/s, p99 ${during.p99_ms} ms (baseline ${baseline.rps}/s, p99 ${baseline.p99_ms} ms)`,
    );
    const plain = results.scenarios.issuance.p99_ms;
    return {
      ...summary(during),
      seconds: left === 0 ? round2(seconds) : null,
      rows: P.sweepRows,
      external_rows: EXTERNAL,
      rows_rewritten: rewritten,
      expired_unrewritten: expiredRead,
      issuance_p99_during_ms: during.p99_ms,
      issuance_p99_baseline_ms: baseline.p99_ms,
      issuance_rps_baseline: baseline.rps,
      p99_during_vs_baseline: ratio(during.p99_ms, baseline.p99_ms),
      issuance_p99_plain_ms: plain,
      p99_during_vs_plain: ratio(during.p99_ms, plain),
    };
  } finally {
    await sql.query('ROLLBACK').catch(() => {}); // only matters when something failed mid-way
    await sql.end().catch(() => {});
  }
}

/** Lease row updates PostgreSQL has counted (HOT ones included), over every partition. */
async function leaseUpdates(sql) {
  // leases is partitioned by month: its rows, and their statistics, are its partitions'.
  const { rows } = await sql.query(
    `SELECT coalesce(sum(n_tup_upd), 0)::bigint AS n FROM pg_stat_user_tables
      WHERE relid IN (SELECT relid FROM pg_partition_tree('leases'))`,
  );
  return Number(rows[0].n);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function round2(x) {
  return typeof x === 'number' ? Math.round(x * 100) / 100 : x;
}

// ---------------------------------------------------------------------------------------------

let exitCode = 0;
try {
  await main();
} catch (error) {
  exitCode = 1;
  process.stderr.write(`\nbench: ${error?.stack ?? error}\n`);
} finally {
  await cleanup();
}

const outDir = join(ROOT, 'bench/results');
mkdirSync(outDir, { recursive: true });
const complete = exitCode === 0;
if (complete) {
  printTable(results);
  for (const note of notes) process.stdout.write(`note: ${note}\n`);
}
if (complete && failures.length === 0) {
  const json = JSON.stringify(results, null, 2) + '\n';
  writeFileSync(join(outDir, 'latest.json'), json);
  writeFileSync(join(outDir, `${results.machine.date.replace(/[:.]/g, '-')}-${QUICK ? 'quick' : 'full'}.json`), json);
  process.stdout.write(`\nwrote bench/results/latest.json (${((Date.now() - started) / 1000).toFixed(0)} s in all)\n`);
} else {
  if (failures.length > 0) {
    exitCode = 1;
    process.stderr.write(`\nbench: FAILED: ${failures.length} problem(s):\n${JSON.stringify(failures, null, 2)}\n`);
  }
  writeFileSync(join(outDir, 'failed.json'), JSON.stringify({ ...results, failures }, null, 2) + '\n');
  process.stderr.write('bench: results of the failed run are in bench/results/failed.json (latest.json left as it was)\n');
}
process.exit(exitCode);
