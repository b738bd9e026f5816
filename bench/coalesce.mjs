// Coalesced commits, in process: the decision ledger's permits and denials with coalescing off
// (one statement per request) and on (StatementCoalescer), alternately in one process, on a fresh
// PostgreSQL database (and on PGlite with --pglite). Reports, per request, the broker-side CPU
// (process.cpuUsage) and the CPU of this database's PostgreSQL backends (/proc/<pid>/stat of the
// pids in pg_stat_activity for it: other sessions' load on a shared server does not count), the
// statements sent, and the rate. CPU per request is what to compare on a shared machine; the rate
// moves with everyone else's load.
//
//   npm run build && node bench/coalesce.mjs [--pglite] [--n 3000] [--rounds 3] [--concurrency 50] [--lanes 1] [--max 64]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshDatabase } from './lib/database.mjs';
import { cleanup, cpuSecondsOf, installSignalHandlers, onCleanup } from './lib/procs.mjs';

const DIST = process.env.COALESCE_DIST ?? new URL('../dist/', import.meta.url).pathname;
const { openDatabase } = await import(join(DIST, 'libs/db/index.js'));
const { DecisionLedger } = await import(join(DIST, 'libs/leases/index.js'));
const { WorkloadStore } = await import(join(DIST, 'libs/identity/index.js'));
const { BoundaryStore } = await import(join(DIST, 'libs/policy/index.js'));
const { TaskStore } = await import(join(DIST, 'libs/tasks/index.js'));
const { uuidv7 } = await import(join(DIST, 'libs/ids/index.js'));

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const PGLITE = args.includes('--pglite');
const N = option('n', 3000);
const ROUNDS = option('rounds', 3);
const CONCURRENCY = option('concurrency', 50);
// Statements in flight at once (CoalescerOptions.lanes; the broker runs with 1) and rows per statement.
const LANES = option('lanes', 1);
const MAX = option('max', 64);
const WORKLOAD = 'spiffe://acme.test/bench';
const BOUNDARY = 'bench-read';

installSignalHandlers();
const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-coalesce-'));
onCleanup(() => rmSync(dataDir, { recursive: true, force: true }));
const url = PGLITE ? undefined : (await freshDatabase()).url;
const db = await openDatabase({ databaseUrl: url, dataDir, poolSize: 10 });
onCleanup(() => db.close());

await new WorkloadStore(db).put(WORKLOAD, { jwks: { keys: [] } }, true, null);
const definition = {
  tool: 'https://crm.acme.test',
  actions: ['orders:read'],
  intents: ['order_status'],
  defaultTtl: 60,
  maxTtl: 300,
  credential: { kind: 'jwt' },
  sensitivity: 'low',
  driftThreshold: null,
  enabled: true,
  approval: null,
  policy: null,
  paramsSchemas: null,
};
await db.transaction((tx) => new BoundaryStore(db).put(BOUNDARY, definition, tx));
const tasks = [];
for (let i = 0; i < 200; i++) {
  const task = await db.transaction((tx) =>
    new TaskStore(db).insert(tx, { workloadId: WORKLOAD, intent: 'order_status', subject: `user-${i}`, context: {}, ttl: 3600 }),
  );
  tasks.push(task.id);
}

function decision(taskId, outcome) {
  const at = Date.now();
  return {
    id: uuidv7(at),
    taskId,
    workloadId: WORKLOAD,
    boundaryId: BOUNDARY,
    boundaryVersion: 1,
    action: 'orders:read',
    resource: 'order/42',
    outcome,
    reasons: outcome === 'deny' ? ['action_not_allowed'] : [],
    params: null,
    purpose: null,
    requestedTtl: null,
    at,
    intent: 'order_status',
    subject: 'user',
    taskAgeS: 1,
    denialsInTask: 0,
  };
}

const requests = {
  permit: (ledger, taskId) => {
    const d = decision(taskId, 'permit');
    const lease = { id: uuidv7(d.at), credentialKind: 'jwt', issuedAt: d.at, expiresAt: d.at + 60_000, paramsDigest: 'x' };
    return ledger.recordPermit(d, lease, 'order_status', { decision_id: d.id });
  },
  // As the bench's denials: counted by the drift guard (threshold 1000), decided on fresh rows.
  deny: (ledger, taskId) => ledger.recordDenial(decision(taskId, 'deny'), undefined, 1_000_000),
};

async function backendPids() {
  if (PGLITE) return [];
  const { rows } = await db.query('SELECT pid FROM pg_stat_activity WHERE datname = current_database()');
  return rows.map((row) => row.pid);
}

/** CPU ms of these processes (utime + stime). */
function cpuOf(pids) {
  return cpuSecondsOf(pids) * 1000;
}

async function round(kind, coalescing) {
  let statements = 0;
  const counted = { query: (text, params, name) => (statements++, db.query(text, params, name)) };
  const ledger = new DecisionLedger(counted, coalescing ? { max: MAX, lanes: LANES } : false);
  // Every pool connection open before the measure, so their backends are all counted.
  await Promise.all(Array.from({ length: 10 }, () => db.query('SELECT pg_sleep(0.01)')));
  const pids = await backendPids();
  let next = 0;
  let refused = 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  const pg = cpuOf(pids);
  const worker = async () => {
    while (next < N) {
      const i = next++;
      const outcome = await requests[kind](ledger, tasks[i % tasks.length]);
      if (!(outcome === true || outcome?.written === true)) refused++;
    }
  };
  statements = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const wall = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return {
    kind,
    coalescing: coalescing ? 'on' : 'off',
    rps: Math.round((N / wall) * 1000),
    node_cpu_ms: Math.round(((used.user + used.system) / 1000 / N) * 1000) / 1000,
    pg_cpu_ms: PGLITE ? null : Math.round(((cpuOf(pids) - pg) / N) * 1000) / 1000,
    statements_per_request: Math.round((statements / N) * 1000) / 1000,
    ...(refused > 0 ? { refused } : {}),
  };
}

const results = [];
for (const kind of ['permit', 'deny']) {
  // A warm-up of each, then off and on alternately.
  await round(kind, false);
  await round(kind, true);
  for (let r = 0; r < ROUNDS; r++) {
    for (const coalescing of [false, true]) {
      const result = await round(kind, coalescing);
      results.push(result);
      process.stdout.write(JSON.stringify(result) + '\n');
    }
  }
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
process.stdout.write(
  `\n${PGLITE ? 'PGlite' : 'PostgreSQL'}, ${N} requests × ${ROUNDS} rounds, ${CONCURRENCY} concurrent, lanes ${LANES}, max ${MAX}; medians:\n`,
);
for (const kind of ['permit', 'deny']) {
  for (const coalescing of ['off', 'on']) {
    const rows = results.filter((r) => r.kind === kind && r.coalescing === coalescing);
    const m = (key) => (rows[0][key] === null ? '-' : median(rows.map((r) => r[key])));
    process.stdout.write(
      `${kind.padEnd(7)} coalescing ${coalescing.padEnd(3)}  ${String(m('rps')).padStart(6)}/s  node ${m('node_cpu_ms')} ms  postgres ${m('pg_cpu_ms')} ms  statements ${m('statements_per_request')} per request\n`,
    );
  }
}
await cleanup();
process.exit(0);
