import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../support/http.js';
import { asAdmin, putBoundary, registerBot, type Bot, type BrokerAddress } from '../support/scenario.js';
import { startVaultServer, type VaultServer } from '../support/vault-server.js';
import { startPatroniCluster, type PatroniCluster, type PatroniNode } from './support/patroni.js';
import { startReplicaSet, type ReplicaSet } from './support/replicas.js';

/**
 * Fault 1 of issue 16: the PostgreSQL primary dies under issuance load. Two PostgreSQL nodes under
 * Patroni (etcd, synchronous mode), HAProxy in front of them, three broker replicas on that HAProxy
 * and their own HTTP front. Each run kills the primary node (Patroni, postmaster and backends, all
 * SIGKILL) while four clients open tasks, take credentials, complete tasks and revoke leases; Patroni
 * promotes the standby, and the brokers must answer 503 meanwhile and resume by themselves. Then:
 * every credential handed out (201) has its lease on the new primary, every acknowledged completion
 * and revocation held, the audit chain verifies, Vault leases due during the failover are revoked
 * at Vault once. The same run in asynchronous mode counts the leases lost.
 *
 * TOLLGATE_HA_FAILOVER_RUNS (default 5) sets the number of synchronous runs.
 */
const RUNS = Number(process.env.TOLLGATE_HA_FAILOVER_RUNS ?? 5);
const DATABASE = 'tollgate';
const WORKERS = 4;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Sample {
  /** What was asked: a task, a credential, a completion, an admin revocation, the direct probe. */
  kind: 'task' | 'credential' | 'complete' | 'revoke' | 'probe' | 'vault';
  start: number;
  end: number;
  /** HTTP status, or -1 when no answer came (a reset, a refused connection). */
  status: number;
  /** The broker's JSON error (503 temporarily_unavailable), as opposed to the front's own 503. */
  error?: string;
  /** The body of an unexpected 5xx, for the failure message. */
  detail?: string;
}

interface Recorded {
  samples: Sample[];
  /** Lease ids from every 201, with their task. */
  leases: Array<{ id: string; task: string; at: number }>;
  /** Tasks whose completion was acknowledged (200). */
  completed: Array<{ task: string; at: number }>;
  /** Leases whose admin revocation was acknowledged (200). */
  revoked: Array<{ lease: string; at: number }>;
  /** Vault leases (from 201s) of tasks whose completion was acknowledged. */
  vaultCompleted: string[];
}

async function timed(samples: Sample[], kind: Sample['kind'], work: () => Promise<{ status: number; body?: unknown }>) {
  const start = Date.now();
  try {
    const response = await work();
    const error = (response.body as { error?: unknown } | undefined)?.error;
    samples.push({
      kind,
      start,
      end: Date.now(),
      status: response.status,
      ...(typeof error === 'string' ? { error } : {}),
      ...(response.status >= 500 && response.status !== 503 ? { detail: JSON.stringify(response.body).slice(0, 300) } : {}),
    });
    return response;
  } catch {
    samples.push({ kind, start, end: Date.now(), status: -1 });
    return undefined;
  }
}

/** One client of the front: opens a task, takes three credentials, then completes the task, revokes a lease, or leaves it. */
async function worker(front: BrokerAddress, bot: Bot, record: Recorded, running: () => boolean, seed: number): Promise<void> {
  const admin = asAdmin(front);
  for (let round = seed; running(); round++) {
    const opened = await timed(record.samples, 'task', () =>
      bot.call('POST', '/v1/tasks', { intent: 'order_status', subject: `user-${round}` }),
    );
    if (opened?.status !== 201) {
      await sleep(20);
      continue;
    }
    const task = (opened.body as { task_id: string }).task_id;
    const mine: string[] = [];
    for (let i = 0; i < 3 && running(); i++) {
      const issued = await timed(record.samples, 'credential', () =>
        bot.credential(task, { boundary: 'crm-orders', action: 'orders:read' }),
      );
      if (issued?.status === 201) {
        const id = (issued.body as { lease_id: string }).lease_id;
        record.leases.push({ id, task, at: Date.now() });
        mine.push(id);
      }
    }
    if (round % 3 === 0) {
      const done = await timed(record.samples, 'complete', () => bot.call('POST', `/v1/tasks/${task}/complete`));
      if (done?.status === 200) record.completed.push({ task, at: Date.now() });
    } else if (round % 3 === 1 && mine[0]) {
      const lease = mine[0];
      const revoked = await timed(record.samples, 'revoke', () => admin('POST', `/v1/admin/leases/${lease}/revoke`, { reason: 'ha test' }));
      if (revoked?.status === 200) record.revoked.push({ lease, at: Date.now() });
    }
  }
}

/** A Vault-backed lease per task, each task completed: the outbox revokes at Vault across the failovers. */
async function vaultWorker(bot: Bot, record: Recorded, running: () => boolean): Promise<void> {
  while (running()) {
    const opened = await timed(record.samples, 'vault', () =>
      bot.call('POST', '/v1/tasks', { intent: 'order_status', subject: 'user-vault' }),
    );
    if (opened?.status !== 201) {
      await sleep(50);
      continue;
    }
    const task = (opened.body as { task_id: string }).task_id;
    const issued = await timed(record.samples, 'vault', () => bot.credential(task, { boundary: 'orders-db', action: 'orders:read' }));
    const lease = issued?.status === 201 ? (issued.body as { lease_id: string }).lease_id : undefined;
    if (lease) record.leases.push({ id: lease, task, at: Date.now() });
    await sleep(100);
    const done = await timed(record.samples, 'vault', () => bot.call('POST', `/v1/tasks/${task}/complete`));
    if (done?.status === 200) {
      record.completed.push({ task, at: Date.now() });
      if (lease) record.vaultCompleted.push(lease);
    }
  }
}

/** A broker replica asked directly, bypassing the front: the broker's own answers during the failover. */
async function prober(url: string, bot: Bot, record: Recorded, running: () => boolean): Promise<void> {
  let task: string | undefined;
  while (running()) {
    if (!task) {
      const token = await bot.token();
      const opened = await timed(record.samples, 'probe', () =>
        call(url, 'POST', '/v1/tasks', { token, json: { intent: 'order_status', subject: 'user-probe' } }),
      );
      if (opened?.status === 201) task = (opened.body as { task_id: string }).task_id;
    } else {
      const token = await bot.token();
      const issued = await timed(record.samples, 'probe', () =>
        call(url, 'POST', `/v1/tasks/${task}/credentials`, { token, json: { boundary: 'crm-orders', action: 'orders:read' } }),
      );
      if (issued?.status === 201) record.leases.push({ id: (issued.body as { lease_id: string }).lease_id, task, at: Date.now() });
    }
    await sleep(25);
  }
}

const failed = (sample: Sample) => sample.status === -1 || sample.status >= 500;
const succeeded = (sample: Sample) => sample.status >= 200 && sample.status < 300;

/**
 * From the first failed answer after the kill to the first success after the last failure: how long
 * clients could not be served. Undefined when nothing failed.
 */
function unavailability(samples: Sample[], killAt: number): { window: number; firstFailure: number; lastFailure: number } | undefined {
  const after = samples.filter((sample) => sample.end >= killAt).sort((a, b) => a.end - b.end);
  const failures = after.filter(failed);
  if (failures.length === 0) return undefined;
  const firstFailure = failures[0]!.end;
  const lastFailure = failures[failures.length - 1]!.end;
  const recovered = after.find((sample) => succeeded(sample) && sample.end > lastFailure);
  if (!recovered) throw new Error('no success after the last failure');
  return { window: recovered.end - firstFailure, firstFailure: firstFailure - killAt, lastFailure: lastFailure - killAt };
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs: number,
  detail: () => Promise<unknown> = async () => '',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms ${JSON.stringify(await detail().catch(String))}`);
    await sleep(100);
  }
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

interface RunResult {
  mode: 'sync' | 'async';
  run: number;
  /** How long the primary's WAL sender was stopped before the kill (0: as it was). */
  standbyBehindMs: number;
  killed: string;
  promoted: string;
  /** Kill → a write through HAProxy succeeds on the new primary. */
  promotionMs: number;
  /** Through the front: first failed answer → first success after the last failure. */
  windowMs: number;
  /** Straight to a replica: first 503 → first 201 after the last 503. */
  brokerWindowMs: number | undefined;
  requests: number;
  failedRequests: number;
  /** Failures that were the broker's own 503 temporarily_unavailable (the rest: the front's 503, no replica ready). */
  broker503: number;
  other5xx: number;
  resets: number;
  issued: number;
  lost: number;
  completionsLost: number;
  revocationsLost: number;
  vaultDue: number;
  vaultRevokedOnce: number;
  replicasAlive: number;
  /** Answers by status: through the front, and straight from a replica. */
  statuses: { front: Record<string, number>; replica: Record<string, number> };
  /** When the first failure came after the kill, and the last. */
  firstFailureMs: number | undefined;
  lastFailureMs: number | undefined;
}

function histogram(samples: Sample[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const sample of samples) counts[sample.status] = (counts[sample.status] ?? 0) + 1;
  return counts;
}

describe('fault 1: the PostgreSQL primary killed under issuance load', () => {
  let cluster: PatroniCluster;
  let set: ReplicaSet;
  let vault: VaultServer;
  let front: BrokerAddress;
  let bot: Bot;
  const all: Recorded = { samples: [], leases: [], completed: [], revoked: [], vaultCompleted: [] };
  const kills: number[] = [];

  beforeAll(async () => {
    const started = Date.now();
    cluster = await startPatroniCluster();
    const clusterMs = Date.now() - started;
    await withClient(cluster.databaseUrl(), (client) => client.query(`CREATE DATABASE ${DATABASE}`));
    vault = await startVaultServer({ leaseDuration: 3600 });
    set = await startReplicaSet({
      databaseUrl: cluster.databaseUrl(DATABASE),
      env: {
        VAULT_ADDR: vault.addr,
        VAULT_TOKEN: vault.rootToken,
        VAULT_CLIENT_TIMEOUT: '2',
        // The sweeper and the outbox every 200 ms: expiry and source revocation are seen within a run.
        TOLLGATE_SWEEP_INTERVAL_MS: '200',
      },
    });
    front = { url: set.lbUrl, adminKey: set.adminKey };
    await putBoundary(front, 'crm-orders');
    await putBoundary(front, 'orders-db', {
      credential: { kind: 'vault', path: 'database/creds/readonly' },
      default_ttl: 60,
      max_ttl: 600,
    });
    bot = await registerBot(front);
    process.stdout.write(`${JSON.stringify({ setup: { patroni_ms: clusterMs, total_ms: Date.now() - started } })}\n`);
  }, 180_000);

  afterAll(async () => {
    await set?.stop();
    await cluster?.stop();
    await vault?.close();
  });

  /** One failover: load, kill the primary node, wait for the promotion and the first credential after it, check. */
  /**
   * `standbyBehindMs`: the primary's WAL sender is stopped (SIGSTOP) for that long before the kill,
   * as a standby a moment behind under load or across a slow link would be.
   */
  async function failover(mode: 'sync' | 'async', run: number, standbyBehindMs = 0): Promise<RunResult> {
    const primary = await cluster.waitHealthy(90_000);
    // A bot of its own per run: a workload assertion is cached by the helper and expires in minutes.
    bot = await registerBot(front, `chatbot-${mode}-${run}`);
    await until('every replica UP behind the front', async () => (await set.serverStates()).every((state) => state === 'UP'), 30_000);
    const record: Recorded = { samples: [], leases: [], completed: [], revoked: [], vaultCompleted: [] };
    let running = true;
    const load = Promise.all([
      ...Array.from({ length: WORKERS }, (_, index) => worker(front, bot, record, () => running, index * 1000 + run * 100)),
      vaultWorker(bot, record, () => running),
      prober(set.replicas[0]!.url, bot, record, () => running),
    ]);
    await sleep(1_000);

    // Two Vault leases that expire while the database is away (4 s: the kill follows at once, the
    // failover lasts about 10 s): the sweeper and the outbox must revoke them at Vault once it is back.
    const dueTask = await bot.openTask();
    const due: string[] = [];
    for (let i = 0; i < 2; i++) {
      const issued = await bot.credential(dueTask, { boundary: 'orders-db', action: 'orders:read', ttl: 4 });
      expect(issued.status).toBe(201);
      due.push(issued.body.lease_id as string);
    }

    if (standbyBehindMs > 0) {
      // The primary's WAL sender stops sending: what commits meanwhile is on the primary alone. (The
      // standby's receiver stopped instead would lose nothing here: the WAL already sent waits in
      // its socket buffer.)
      const sender = await withClient(
        primary.url,
        async (client) => (await client.query<{ pid: number }>('SELECT pid FROM pg_stat_replication')).rows[0]?.pid,
      );
      expect(sender, 'the primary has a WAL sender').toBeDefined();
      process.kill(sender!, 'SIGSTOP');
      await sleep(standbyBehindMs);
    }
    const killAt = Date.now();
    kills.push(killAt);
    const killed = await primary.kill();
    expect(killed.postmaster).toBeDefined();
    const promoted = await cluster.waitWritable(60_000);
    const promotionMs = Date.now() - killAt;
    // Serving again: a credential through the front after the promotion.
    await until(
      'a credential issued through the front after the failover',
      async () =>
        record.samples.some((sample) => sample.kind === 'credential' && sample.status === 201 && sample.start > killAt + promotionMs),
      30_000,
      async () => ({
        since: histogram(record.samples.filter((sample) => sample.start > killAt + promotionMs)),
        unexpected: record.samples.filter((sample) => sample.detail).slice(-3),
        replicas: await set.serverStates().catch(String),
        log: set.replicas[0]!.log().split('\n').slice(-8),
      }),
    );
    // The dead node comes back while the load goes on: Patroni rewinds it and it follows the new
    // primary (the next run waits until it is the synchronous standby again).
    await primary.start();
    await sleep(1_000);
    running = false;
    await load;

    const summary = await check(mode, run, primary, promoted, record, killAt, promotionMs, due, standbyBehindMs);
    all.samples.push(...record.samples);
    all.leases.push(...record.leases);
    all.completed.push(...record.completed);
    all.revoked.push(...record.revoked);
    all.vaultCompleted.push(...record.vaultCompleted);
    return summary;
  }

  async function check(
    mode: 'sync' | 'async',
    run: number,
    killedNode: PatroniNode,
    promoted: PatroniNode,
    record: Recorded,
    killAt: number,
    promotionMs: number,
    due: string[],
    standbyBehindMs: number,
  ): Promise<RunResult> {
    const url = cluster.databaseUrl(DATABASE);
    const leaseIds = record.leases.map((lease) => lease.id);
    const found = await withClient(url, async (client) => {
      const { rows } = await client.query<{ id: string }>('SELECT id FROM leases WHERE id = ANY($1::uuid[])', [leaseIds]);
      return new Set(rows.map((row) => row.id));
    });
    const lost = leaseIds.filter((id) => !found.has(id));
    // A completion or revocation acknowledged with 200 holds: the task ended and no lease of it live.
    const completedTasks = record.completed.map((entry) => entry.task);
    const completionsLost = await withClient(url, async (client) => {
      const { rows } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM tasks t
          WHERE t.id = ANY($1::uuid[]) AND t.state = 'completed'
            AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.task_id = t.id AND l.state = 'active' AND l.expires_at > now())`,
        [completedTasks],
      );
      return completedTasks.length - rows[0]!.n;
    });
    const revocationsLost = await withClient(url, async (client) => {
      const ids = record.revoked.map((entry) => entry.lease);
      const { rows } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM leases WHERE id = ANY($1::uuid[]) AND state = 'revoked'`,
        [ids],
      );
      return ids.length - rows[0]!.n;
    });

    // The Vault leases that expired during the failover: marked expired once Vault confirmed, and
    // revoked there exactly once.
    // Asynchronous mode may lose them outright: then Vault keeps a credential no lease points to.
    const handles = await until(
      'the Vault leases due during the failover revoked at Vault',
      () =>
        withClient(url, async (client) => {
          const { rows } = await client.query<{ state: string; external_handle: string }>(
            'SELECT state, external_handle FROM leases WHERE id = ANY($1::uuid[])',
            [due],
          );
          return (rows.length === due.length || mode === 'async') && rows.every((row) => row.state === 'expired')
            ? rows.map((row) => row.external_handle)
            : undefined;
        }),
      20_000,
      () =>
        withClient(url, async (client) => {
          const { rows } = await client.query<{ external_handle: string }>(
            'SELECT id, state, external_handle, revoke_reason, revoke_next_at, revoke_attempts, revoke_error, expires_at, now() AS now FROM leases WHERE id = ANY($1::uuid[])',
            [due],
          );
          return rows.map((row) => ({ ...row, vault: vault.leases.get(row.external_handle) }));
        }),
    );
    const vaultRevokedOnce = handles.filter((handle) => vault.leases.get(handle)?.revoked === 1).length;

    const front = record.samples.filter((sample) => sample.kind !== 'probe');
    const probe = record.samples.filter((sample) => sample.kind === 'probe');
    const window = unavailability(front, killAt);
    const brokerWindow = unavailability(probe, killAt);
    const failures = front.filter(failed);
    const result: RunResult = {
      mode,
      run,
      standbyBehindMs,
      killed: killedNode.name,
      promoted: promoted.name,
      promotionMs,
      windowMs: window?.window ?? 0,
      brokerWindowMs: brokerWindow?.window,
      requests: front.length,
      failedRequests: failures.length,
      broker503: failures.filter((sample) => sample.status === 503 && sample.error === 'temporarily_unavailable').length,
      other5xx: [...front, ...probe].filter((sample) => sample.status >= 500 && sample.status !== 503).length,
      resets: [...front, ...probe].filter((sample) => sample.status === -1).length,
      issued: leaseIds.length,
      lost: lost.length,
      completionsLost,
      revocationsLost,
      vaultDue: due.length,
      vaultRevokedOnce,
      replicasAlive: set.replicas.filter((replica) => replica.running()).length,
      statuses: { front: histogram(front), replica: histogram(probe) },
      firstFailureMs: window?.firstFailure,
      lastFailureMs: window?.lastFailure,
    };
    process.stdout.write(`${JSON.stringify({ fault: 'primary-killed', ...result })}\n`);
    const unexpected = [...front, ...probe].filter((sample) => sample.status >= 500 && sample.status !== 503);
    if (unexpected.length > 0) {
      process.stdout.write(
        `unexpected answers: ${JSON.stringify(unexpected.map((sample) => ({ ...sample, atMs: sample.end - killAt })))}\n` +
          set.replicas.map((replica) => `--- r${replica.index}\n${replica.log()}`).join('\n') +
          '\n',
      );
    }
    return result;
  }

  it(`synchronous mode, ${RUNS} runs: no lease handed out is lost, revoked stays revoked, the brokers resume by themselves`, async () => {
    const results: RunResult[] = [];
    for (let run = 1; run <= RUNS; run++) {
      const result = await failover('sync', run);
      results.push(result);
      expect(result.replicasAlive, 'a broker process died in the failover').toBe(3);
      expect(result.lost, 'leases handed out (201) missing on the new primary').toBe(0);
      expect(result.completionsLost).toBe(0);
      expect(result.revocationsLost).toBe(0);
      expect(result.vaultRevokedOnce).toBe(result.vaultDue);
      expect(result.other5xx).toBe(0);
      expect(result.resets).toBe(0);
      expect(result.failedRequests).toBeGreaterThan(0);
      expect(result.killed).not.toBe(result.promoted);
    }

    // Acknowledged Vault completions: each credential revoked at Vault. A lease whose revocation
    // Vault performed but whose confirmation died with the primary stays `revoking` under the
    // outbox's claim (60 s), then is revoked again (Vault's revoke is idempotent): counted, not hidden.
    const vaultRows = await until(
      'every completed Vault lease revoked at Vault',
      () =>
        withClient(cluster.databaseUrl(DATABASE), async (client) => {
          const { rows } = await client.query<{ state: string; external_handle: string }>(
            'SELECT state, external_handle FROM leases WHERE id = ANY($1::uuid[])',
            [all.vaultCompleted],
          );
          return rows.length === all.vaultCompleted.length && rows.every((row) => (vault.leases.get(row.external_handle)?.revoked ?? 0) > 0)
            ? rows
            : undefined;
        }),
      90_000,
    );
    const calls = (row: { external_handle: string }) => vault.leases.get(row.external_handle)?.revoked ?? 0;
    expect(vaultRows.filter((row) => row.state !== 'revoked' && row.state !== 'revoking')).toEqual([]);
    const doubled = vaultRows.filter((row) => calls(row) > 1).length;
    // Revoked at Vault, not yet confirmed: each will be called once more when its claim runs out.
    const awaitingRetry = vaultRows.filter((row) => row.state === 'revoking').length;
    expect(vaultRows.filter((row) => calls(row) > 2)).toEqual([]);
    for (const row of vaultRows.filter((candidate) => calls(candidate) > 1 || candidate.state === 'revoking')) {
      const events = await withClient(cluster.databaseUrl(DATABASE), async (client) => {
        const { rows } = await client.query<{ kind: string; at: Date }>(
          `SELECT e.kind, e.at FROM audit_events e JOIN leases l ON l.id = e.lease_id WHERE l.external_handle = $1 ORDER BY e.seq`,
          [row.external_handle],
        );
        return rows.map((event) => `${event.kind}@${event.at.toISOString()}`);
      });
      process.stdout.write(
        `${JSON.stringify({ vault_lease: row.external_handle, state: row.state, vault_revoke_calls: calls(row), kills: kills.map((at) => new Date(at).toISOString()), events })}\n`,
      );
    }

    // The audit chain: every event linked, every link verifies.
    const verified = await until(
      'the audit chain linked and verified',
      async () => {
        const report = await call(front.url, 'GET', '/v1/audit/verify', { token: front.adminKey });
        return report.status === 200 && report.body.ok === true && report.body.unchained === 0 ? report.body : undefined;
      },
      30_000,
    );

    const windows = results.map((result) => result.windowMs);
    const brokerWindows = results.flatMap((result) => (result.brokerWindowMs === undefined ? [] : [result.brokerWindowMs]));
    const promotions = results.map((result) => result.promotionMs);
    process.stdout.write(
      `${JSON.stringify({
        fault: 'primary-killed',
        mode: 'sync',
        runs: results.length,
        window_p50_ms: percentile(windows, 50),
        window_max_ms: Math.max(...windows),
        broker_window_p50_ms: brokerWindows.length ? percentile(brokerWindows, 50) : null,
        broker_window_max_ms: brokerWindows.length ? Math.max(...brokerWindows) : null,
        promotion_p50_ms: percentile(promotions, 50),
        requests: results.reduce((sum, result) => sum + result.requests, 0),
        failed: results.reduce((sum, result) => sum + result.failedRequests, 0),
        issued: results.reduce((sum, result) => sum + result.issued, 0),
        lost: results.reduce((sum, result) => sum + result.lost, 0),
        vault_completed: vaultRows.length,
        vault_double_revocations: doubled,
        vault_awaiting_retry: awaitingRetry,
        audit_verified: verified.verified,
      })}\n`,
    );
  }, 600_000);

  it('asynchronous mode: the same failover, counting the leases lost (as it is, then with the standby 1 s behind)', async () => {
    // Patroni never promotes a standby more than maximum_lag_on_failover behind (1 MiB here): with
    // the standby held 1 s behind a fast primary it may refuse, and the cluster then stays without
    // a primary until the dead node returns (seen in CI). That bounds the loss at the price of
    // availability; to count what asynchronous replication loses, these runs allow any lag.
    await cluster.setSynchronous(false, { maximumLagOnFailover: 1 << 30 });
    const results = [await failover('async', 1), await failover('async', 2, 1_000)];
    for (const result of results) expect(result.replicasAlive).toBe(3);
    // Reported, not asserted: a chain that lost its tail with the old primary may still verify.
    await sleep(2_000);
    const audit = await call(front.url, 'GET', '/v1/audit/verify', { token: front.adminKey });
    process.stdout.write(
      `${JSON.stringify({
        fault: 'primary-killed',
        mode: 'async',
        runs: results.map((result) => ({
          standby_behind_ms: result.standbyBehindMs,
          window_ms: result.windowMs,
          issued: result.issued,
          lost: result.lost,
          completions_lost: result.completionsLost,
          revocations_lost: result.revocationsLost,
          vault_due: result.vaultDue,
          vault_due_revoked: result.vaultRevokedOnce,
        })),
        audit: audit.body,
      })}\n`,
    );
  }, 240_000);
});
