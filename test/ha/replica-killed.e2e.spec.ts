import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, freshDatabase, type TestDatabase } from '../support/database.js';
import { call } from '../support/http.js';
import { putBoundary } from '../support/scenario.js';
import { startVaultServer, type VaultServer } from '../support/vault-server.js';
import { failed, IssuanceLoad, quantile, setUpIssuance, sleep } from './support/load.js';
import { startReplicaSet, type ReplicaSet } from './support/replicas.js';

/**
 * Fault 2 of issue 16: a replica SIGKILLed under issuance load through HAProxy. Only requests in
 * flight at the kill may fail; the others keep their p99 within 2x of the baseline; the background
 * duties (audit chainer, outbox, sweeper, key rotation) go on on the survivors. They need no
 * hand-over: each pass takes a transaction-scoped advisory lock or claims rows with SKIP LOCKED,
 * and a killed replica's transactions end with its connections, so a survivor's next pass proceeds.
 */
describe('fault 2: a replica killed under load', () => {
  let db: TestDatabase;
  let set: ReplicaSet;
  let vault: VaultServer;

  beforeAll(async () => {
    db = await freshDatabase('postgres');
    vault = await startVaultServer({ leaseDuration: 600 });
    set = await startReplicaSet({
      databaseUrl: db.databaseUrl!,
      env: {
        // Sweeper and outbox every 200 ms; the shortest automatic rotation period there is.
        TOLLGATE_SWEEP_INTERVAL_MS: '200',
        TOLLGATE_KEY_ROTATION: '30s',
        VAULT_ADDR: vault.addr,
        VAULT_TOKEN: vault.rootToken,
      },
    });
  });
  afterAll(async () => {
    await set?.stop();
    await vault?.close();
    await db?.drop();
  });

  it('fails only the requests in flight on it; the survivors keep p99 and carry its background duties', async () => {
    const front = { url: set.lbUrl, adminKey: set.adminKey };
    const { bot, taskIds } = await setUpIssuance(front);
    await putBoundary(front, 'orders-db', {
      credential: { kind: 'vault', path: 'database/creds/readonly' },
      max_ttl: 600,
      default_ttl: 600,
    });
    const load = new IssuanceLoad(set.lbUrl, bot, taskIds);
    load.start();
    await sleep(5_000);

    const victim = set.replicas[0]!;
    const killedAt = performance.now();
    expect(await victim.kill('SIGKILL')).toBeNull();
    const killedWall = Date.now();
    await set.waitServerState(0, 'DOWN', 10_000);
    const downMs = Math.round(performance.now() - killedAt);
    await sleep(5_000);
    await load.stop();

    const inFlight = load.inFlightAt(killedAt);
    const failures = load.outcomes.filter((outcome) => failed(outcome));
    const baseline = load.outcomes.filter((outcome) => outcome.end < killedAt);
    const after = load.outcomes.filter((outcome) => outcome.start > killedAt && !failed(outcome));

    // The duties, each started after the kill and timed until a survivor did it.
    const sql = await connect(db.databaseUrl!);
    try {
      const token = await bot.token();
      // Sweeper: a task of one second ends as expired.
      const short = await call(set.lbUrl, 'POST', '/v1/tasks', { token, json: { intent: 'order_status', subject: 'short', ttl: 1 } });
      expect(short.status).toBe(201);
      const sweepStart = Date.now();
      const swept = await until(async () => {
        const { rows } = await sql.query<{ state: string }>('SELECT state FROM tasks WHERE id = $1', [short.body.task_id]);
        return rows[0]?.state === 'expired';
      });
      const sweptAfterExpiryMs = swept - sweepStart - 1_000;

      // Outbox: a revoked Vault lease is revoked at Vault.
      const task = await call(set.lbUrl, 'POST', '/v1/tasks', { token, json: { intent: 'order_status', subject: 'vault', ttl: 600 } });
      const issued = await call(set.lbUrl, 'POST', `/v1/tasks/${task.body.task_id}/credentials`, {
        token,
        json: { boundary: 'orders-db', action: 'orders:read' },
      });
      expect(issued.status).toBe(201);
      const { rows: handles } = await sql.query<{ external_handle: string }>('SELECT external_handle FROM leases WHERE id = $1', [
        issued.body.lease_id,
      ]);
      const revokedAt = Date.now();
      expect((await call(set.lbUrl, 'POST', `/v1/admin/leases/${issued.body.lease_id}/revoke`, { token: set.adminKey })).status).toBe(200);
      const outboxDone = await until(async () => (vault.leases.get(handles[0]!.external_handle)?.revoked ?? 0) >= 1);
      const outboxMs = outboxDone - revokedAt;

      // Audit chainer: every event written so far, the kill's aftermath included, gets linked.
      const chainStart = Date.now();
      const chained = await until(async () => {
        const { rows } = await sql.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM audit_events a WHERE NOT EXISTS (SELECT 1 FROM audit_links l WHERE l.event_id = a.id)',
        );
        return rows[0]!.n === 0;
      });
      const chainMs = chained - chainStart;
      const verify = await call(set.lbUrl, 'GET', '/v1/audit/verify', { token: set.adminKey });

      // Key rotation: a new active key after the kill, within the 30 s period plus a maintenance poll.
      const rotated = await until(async () => {
        const { rows } = await sql.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM signing_keys WHERE created_at > to_timestamp($1 / 1000.0)`,
          [killedWall],
        );
        return rows[0]!.n > 0;
      }, 45_000);
      const rotationMs = rotated - killedWall;

      const summary = {
        fault: 'replica_sigkill',
        replicas: set.replicas.length,
        requests: load.outcomes.length,
        failed: failures.length,
        in_flight_at_kill: inFlight.length,
        in_flight_on_victim_at_kill_max: inFlight.filter((outcome) => outcome.replica !== 'r1' && outcome.replica !== 'r2').length,
        haproxy_down_after_ms: downMs,
        p99_before_ms: quantile(baseline, 0.99),
        p99_after_ms: quantile(after, 0.99),
        p50_before_ms: quantile(baseline, 0.5),
        p50_after_ms: quantile(after, 0.5),
        takeover_ms: {
          sweeper_after_expiry: sweptAfterExpiryMs,
          outbox: outboxMs,
          audit_chain: chainMs,
          key_rotation_after_kill: rotationMs,
        },
        audit_verify: verify.body,
        sent_after_kill_failed: failures.filter((f) => f.start > killedAt).length,
        failures: failures.map((f) => ({
          status: f.status,
          error: f.error?.slice(0, 80),
          sent_ms: Math.round(f.start - killedAt),
          answered_ms: Math.round(f.end - killedAt),
        })),
      };
      console.log(JSON.stringify(summary));

      // Only requests in flight when it died, or sent to it before HAProxy's check took it out
      // (HAProxy closes those client connections unanswered), failed: none sent after, and never
      // more than the load's concurrency.
      for (const failure of failures) expect(failure.end - killedAt).toBeGreaterThanOrEqual(0);
      for (const failure of failures) expect(failure.start - killedAt).toBeLessThanOrEqual(downMs);
      expect(failures.length).toBeLessThanOrEqual(6);
      expect(after.length).toBeGreaterThan(100);
      expect(quantile(after, 0.99)).toBeLessThanOrEqual(2 * quantile(baseline, 0.99));
      expect(sweptAfterExpiryMs).toBeLessThan(3_000);
      expect(outboxMs).toBeLessThan(3_000);
      expect(chainMs).toBeLessThan(5_000);
      expect(verify.body).toMatchObject({ ok: true });
      expect(rotationMs).toBeLessThan(30_000 + 2_000 + 5_000);
    } finally {
      await sql.end();
    }
  });
});

/** Polls `condition` every 50 ms; resolves with Date.now() when it holds. */
async function until(condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(50);
  }
  return Date.now();
}
