import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestBroker } from './support/broker.js';
import { startBroker } from './support/broker.js';
import { asAdmin, putBoundary, registerBot, type Bot } from './support/scenario.js';
import { startVaultServer, type VaultServer } from './support/vault-server.js';

const VAULT_CREDENTIAL = { kind: 'vault', path: 'database/creds/readonly' };
/** Retries come fast here: the backoff's shape is checked in libs/leases/outbox.spec.ts. */
const FAST = { firstRetryMs: 20, maxRetryMs: 80, maxAttempts: 3, failedRetryMs: 60_000, issuingGraceMs: 2500 };

/** Everything the broker writes to stdout and stderr while a test runs. */
const output: string[] = [];
const originals = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };

let vault: VaultServer;
let broker: TestBroker;
let bot: Bot;

async function start(env: Record<string, string> = {}, db?: TestBroker['db']): Promise<TestBroker> {
  return startBroker({
    db,
    env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken, VAULT_CLIENT_TIMEOUT: '1', TOLLGATE_LOG_LEVEL: 'debug', ...env },
    outboxTimings: FAST,
  });
}

async function leaseRow(b: TestBroker, id: string) {
  const { rows } = await b.app.broker.db.query<{
    state: string;
    external_handle: string | null;
    revoke_attempts: number;
    expires_at: Date;
    issued_at: Date;
  }>('SELECT state, external_handle, revoke_attempts, expires_at, issued_at FROM leases WHERE id = $1', [id]);
  return rows[0];
}

/** Runs outbox passes until nothing is due (retries included), or gives up after `ms`. */
async function drain(b: TestBroker, until: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await b.app.broker.outbox.runOnce();
    if (await until()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('outbox did not finish in time');
}

async function stateIs(b: TestBroker, id: string, state: string) {
  return (await leaseRow(b, id))?.state === state;
}

beforeAll(async () => {
  vault = await startVaultServer({ leaseDuration: 300 });
  broker = await start();
  await putBoundary(broker, 'crm-orders');
  await putBoundary(broker, 'orders-db', { credential: VAULT_CREDENTIAL, max_ttl: 600, default_ttl: 600 });
  await putBoundary(broker, 'orders-db-wrapped', { credential: { ...VAULT_CREDENTIAL, wrap_ttl: 60 } });
  bot = await registerBot(broker);
  const capture = (chunk: string | Uint8Array) => (
    output.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')),
    true
  );
  process.stdout.write = capture as typeof process.stdout.write;
  process.stderr.write = capture as typeof process.stderr.write;
});

afterAll(async () => {
  process.stdout.write = originals.out;
  process.stderr.write = originals.err;
  await broker.close();
  await vault.close();
});

describe('Vault dynamic secrets through the credential request', () => {
  it('issues a database credential like a JWT, capped by Vault lease_duration, and revokes it at Vault when the task completes', async () => {
    const taskId = await bot.openTask();
    const jwt = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    const issued = await bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read' });
    expect(jwt.status).toBe(201);
    expect(issued.status).toBe(201);
    expect(issued.body.credential).toMatchObject({
      kind: 'vault',
      data: { username: expect.stringMatching(/^v-tollgate-readonly-/), password: expect.any(String) },
    });
    // The boundary allows 600 s; Vault's lease is 300 s: the lease ends with Vault's.
    expect(issued.body.expires_in).toBe(300);
    const leaseId = issued.body.lease_id as string;
    const row = await leaseRow(broker, leaseId);
    expect(row).toMatchObject({ state: 'active', external_handle: expect.stringMatching(/^database\/creds\/readonly\//) });
    expect(row!.expires_at.getTime() - row!.issued_at.getTime()).toBe(300_000);
    const vaultLease = vault.leases.get(row!.external_handle!)!;
    expect(vaultLease.username).toBe(issued.body.credential.data.username);

    const done = await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    expect(done.body.revoked_leases).toEqual(expect.arrayContaining([leaseId, jwt.body.lease_id]));
    expect((await leaseRow(broker, leaseId))!.state).toBe('revoking');
    await drain(broker, () => stateIs(broker, leaseId, 'revoked'));
    expect(vaultLease.revoked).toBe(1);
    // The JWT's lease never touched the outbox's states.
    expect((await leaseRow(broker, jwt.body.lease_id))!.state).toBe('revoked');
  });

  it('wraps the secret when the boundary says so: a single-use token that unwraps to it', async () => {
    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'orders-db-wrapped', action: 'orders:read' });
    expect(issued.status).toBe(201);
    expect(issued.body.credential).toEqual({
      kind: 'vault',
      wrapping_token: expect.stringMatching(/^hvs\.wrap-/),
      wrap_ttl: 60,
      lease_duration: 120,
    });
    const unwrap = async () =>
      fetch(`${vault.addr}/v1/sys/wrapping/unwrap`, {
        method: 'POST',
        headers: { 'x-vault-token': issued.body.credential.wrapping_token },
        body: '{}',
      });
    const first = await unwrap();
    expect(first.status).toBe(200);
    const secret = (await first.json()) as { data: { username: string } };
    expect(secret.data.username).toMatch(/^v-tollgate-readonly-/);
    expect((await unwrap()).status).toBeGreaterThanOrEqual(400);
    const row = await leaseRow(broker, issued.body.lease_id);
    expect(vault.leases.get(row!.external_handle!)!.username).toBe(secret.data.username);
    await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    await drain(broker, () => stateIs(broker, issued.body.lease_id, 'revoked'));
  });

  it('refuses bad Vault settings on the boundary with a 400 naming the field, and changes nothing', async () => {
    const admin = asAdmin(broker);
    for (const [credential, field] of [
      [{ kind: 'vault' }, 'credential.path'],
      [{ kind: 'vault', path: 'sys/leases/revoke' }, 'credential.path'],
      [{ kind: 'vault', path: 'database/creds/../x' }, 'credential.path'],
      [{ kind: 'vault', path: 'database/creds/r', wrap_ttl: 0 }, 'credential.wrap_ttl'],
      [{ kind: 'vault', path: 'database/creds/r', data: { a: 1 } }, 'credential.data'],
      [{ kind: 'vault', path: 'database/creds/r', method: 'delete' }, 'credential.method'],
      [{ kind: 'nope' }, 'credential.kind'],
    ] as const) {
      const response = await admin('PUT', '/v1/admin/boundaries/bad-vault', {
        tool: 'https://db.test',
        actions: ['q'],
        intents: ['order_status'],
        default_ttl: 60,
        max_ttl: 60,
        credential,
      });
      expect(response.status, JSON.stringify(credential)).toBe(400);
      expect(response.body.error_description).toContain(field);
    }
    const extra = await admin('PUT', '/v1/admin/boundaries/bad-vault', {
      tool: 'https://db.test',
      actions: ['q'],
      intents: ['order_status'],
      default_ttl: 60,
      max_ttl: 60,
      credential: { ...VAULT_CREDENTIAL, secret: 'x' },
    });
    expect(extra.status).toBe(400);
    expect((await admin('GET', '/v1/admin/boundaries/bad-vault')).status).toBe(404);
  });

  it('answers 503 and leaves no lease when Vault is down or failing at issuance', async () => {
    const taskId = await bot.openTask();
    const before = vault.leases.size;
    vault.fail('database/creds/', 1, 500);
    const failing = await bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read' });
    expect(failing.status).toBe(503);
    expect(failing.body.error).toBe('temporarily_unavailable');
    await vault.stop();
    // Let the client see its kept-alive sockets closed: a reset mid-request is a different fault
    // (Vault may have acted), which sends the lease to the outbox instead.
    await new Promise((r) => setTimeout(r, 100));
    const down = await bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read' });
    await vault.start();
    expect(down.status).toBe(503);
    const { rows } = await broker.app.broker.db.query<{ n: number }>('SELECT count(*)::int AS n FROM leases WHERE task_id = $1', [taskId]);
    expect(rows[0]!.n).toBe(0);
    const { rows: audit } = await broker.app.broker.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_events WHERE kind = 'credential.mint_failed' AND task_id = $1`,
      [taskId],
    );
    expect(audit[0]!.n).toBe(2);
    expect(vault.leases.size).toBe(before);
    // And it works again once Vault answers.
    const ok = await bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read' });
    expect(ok.status).toBe(201);
    await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    await drain(broker, () => stateIs(broker, ok.body.lease_id, 'revoked'));
  });

  it('keeps retrying a failing revocation (revoking → revoked), and gives up to revoke_failed, visible in /v1/leases and the event stream', async () => {
    const taskId = await bot.openTask();
    const a = await bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read' });
    vault.fail('sys/leases/revoke', 2, 503);
    await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    await broker.app.broker.outbox.runOnce();
    expect(await leaseRow(broker, a.body.lease_id)).toMatchObject({ state: 'revoking', revoke_attempts: 1 });
    await drain(broker, () => stateIs(broker, a.body.lease_id, 'revoked'));
    expect(vault.leases.get((await leaseRow(broker, a.body.lease_id))!.external_handle!)!.revoked).toBe(1);

    const task2 = await bot.openTask();
    const b = await bot.credential(task2, { boundary: 'orders-db', action: 'orders:read' });
    vault.fail('sys/leases/revoke', FAST.maxAttempts, 500);
    await bot.call('POST', `/v1/tasks/${task2}/complete`);
    await drain(broker, () => stateIs(broker, b.body.lease_id, 'revoke_failed'));
    const listed = await asAdmin(broker)('GET', '/v1/leases?state=revoke_failed');
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((l: { lease_id: string }) => l.lease_id)).toContain(b.body.lease_id);
    // Events get positions once every older transaction has ended: poll, as a reader would.
    let events: Awaited<ReturnType<typeof broker.app.broker.events.after>> = [];
    for (let i = 0; i < 100 && !events.some((e) => e.type === 'lease.revoke_failed' && e.leaseId === b.body.lease_id); i++) {
      await broker.app.broker.events.sequence();
      events = await broker.app.broker.events.after('0', 10_000);
      await new Promise((r) => setTimeout(r, 30));
    }
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'lease.revoke_failed', leaseId: b.body.lease_id, reason: 'vault_http_500' }),
    );
    const metrics = await broker.app.broker.metrics.registry.metrics();
    expect(metrics).toMatch(/tollgate_leases_revoke_failed 1/);
    // The daily retry: once due, it goes through.
    await broker.app.broker.db.query(`UPDATE leases SET revoke_next_at = now() WHERE id = $1`, [b.body.lease_id]);
    await drain(broker, () => stateIs(broker, b.body.lease_id, 'revoked'));
  });

  it('survives a restart with Vault down: revocations wait in the outbox and complete on the next broker', async () => {
    const taskId = await bot.openTask();
    const issued = await Promise.all([1, 2, 3].map(() => bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read' })));
    await vault.stop();
    await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    await broker.app.broker.outbox.runOnce();
    for (const i of issued) expect((await leaseRow(broker, i.body.lease_id))!.state).toBe('revoking');
    await broker.stop();
    await vault.start();
    broker = await start({}, broker.db);
    await drain(broker, async () => {
      for (const i of issued) if (!(await stateIs(broker, i.body.lease_id, 'revoked'))) return false;
      return true;
    });
    // "revoked" in our rows must mean revoked at Vault: each of the three leases, exactly once.
    for (const i of issued)
      expect(vault.leases.get((await leaseRow(broker, i.body.lease_id))!.external_handle!)?.revoked, i.body.lease_id).toBe(1);
    bot = await registerBot(broker);
  });

  // Two brokers on one database need PostgreSQL: the embedded PGlite opens once per process.
  it.skipIf(process.env.TOLLGATE_TEST_DB === 'pglite')(
    'shares the retry work between two replicas without revoking anything twice',
    async () => {
      const replica = await start({}, broker.db);
      try {
        const taskId = await bot.openTask();
        const issued: string[] = [];
        for (let i = 0; i < 40; i++)
          issued.push((await bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read' })).body.lease_id);
        await bot.call('POST', `/v1/tasks/${taskId}/complete`);
        const [one, two] = await Promise.all([broker.app.broker.outbox.runOnce(), replica.app.broker.outbox.runOnce()]);
        expect(one.revoked + two.revoked).toBe(40);
        for (const id of issued) {
          const row = (await leaseRow(broker, id))!;
          expect(row.state).toBe('revoked');
          // Each Vault lease was revoked by one replica only: not twice, not never.
          expect(vault.leases.get(row.external_handle!)?.revoked, id).toBe(1);
        }
      } finally {
        await replica.stop();
      }
    },
  );

  it('sends a lease left issuing by a stopped broker to the outbox (and revokes what Vault handed out)', async () => {
    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read' });
    // As if the broker had died after Vault answered but before the lease became active.
    await broker.app.broker.db.query(
      `UPDATE leases SET state = 'issuing', issued_at = now() - interval '2 minutes', expires_at = now() + interval '1 minute' WHERE id = $1`,
      [issued.body.lease_id],
    );
    await drain(broker, () => stateIs(broker, issued.body.lease_id, 'revoked'));
    expect(vault.leases.get((await leaseRow(broker, issued.body.lease_id))!.external_handle!)!.revoked).toBe(1);
  });

  it('revokes at Vault when the lease expires, then reads expired', async () => {
    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read', ttl: 1 });
    expect(issued.body.expires_in).toBe(1);
    await new Promise((r) => setTimeout(r, 1100));
    await broker.app.broker.sweeper.sweepOnce();
    await drain(broker, () => stateIs(broker, issued.body.lease_id, 'expired'));
    expect(vault.leases.get((await leaseRow(broker, issued.body.lease_id))!.external_handle!)!.revoked).toBe(1);
  });

  it('answers 503 when Vault times out; a lease whose answer was lost is revoked, an unanswered one leaves nothing', async () => {
    const taskId = await bot.openTask();
    const before = vault.leases.size;
    vault.fail('database/creds/', 1, 'hang');
    const hung = await bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read' });
    expect(hung.status).toBe(503);
    expect(vault.leases.size).toBe(before);
    // Vault may have acted on a request that timed out: the lease is not dropped but revoked
    // through the outbox, which waits for a late answer, then revokes by what it found.
    const { rows } = await broker.app.broker.db.query<{ id: string; state: string }>('SELECT id, state FROM leases WHERE task_id = $1', [
      taskId,
    ]);
    expect(rows).toEqual([{ id: expect.any(String), state: 'revoking' }]);
    await drain(broker, () => stateIs(broker, rows[0]!.id, 'revoked'), 8000);
    const { rows: audit } = await broker.app.broker.db.query<{ data: { found: boolean } }>(
      `SELECT data FROM audit_events WHERE kind = 'lease.revoked_at_source' AND lease_id = $1`,
      [rows[0]!.id],
    );
    expect(audit[0]!.data.found).toBe(false);
    // A 5xx and then success: the next request is served.
    vault.fail('database/creds/', 1, 502);
    expect((await bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read' })).status).toBe(503);
    const ok = await bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read' });
    expect(ok.status).toBe(201);
    await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    await drain(broker, () => stateIs(broker, ok.body.lease_id, 'revoked'));
  });

  it('a revocation that times out is retried and confirmed once', async () => {
    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read' });
    vault.fail('sys/leases/revoke', 1, 'hang');
    await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    await drain(broker, () => stateIs(broker, issued.body.lease_id, 'revoked'), 8000);
    expect(await leaseRow(broker, issued.body.lease_id)).toMatchObject({ revoke_attempts: 1 });
    expect(vault.leases.get((await leaseRow(broker, issued.body.lease_id))!.external_handle!)!.revoked).toBe(1);
  });

  it('logs in with AppRole and with Kubernetes auth, and renews its token before it expires', async () => {
    vault.tokenTtl = 3;
    const jwtFile = join(mkdtempSync(join(tmpdir(), 'tollgate-k8s-')), 'token');
    writeFileSync(jwtFile, vault.kubernetes.jwt + '\n');
    const logins: Array<Record<string, string>> = [
      { VAULT_ROLE_ID: vault.approle.roleId, VAULT_SECRET_ID: vault.approle.secretId },
      { VAULT_K8S_ROLE: vault.kubernetes.role, VAULT_K8S_TOKEN_PATH: jwtFile },
    ];
    for (const login of logins) {
      await broker.stop();
      broker = await start({ VAULT_TOKEN: '', ...login }, broker.db);
      bot = await registerBot(broker);
      vault.requests.length = 0;
      const taskId = await bot.openTask();
      const ids: string[] = [];
      // Across more than two thirds of the token's TTL: the broker renews before using it again.
      for (let i = 0; i < 3; i++) {
        const issued = await bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read' });
        expect(issued.status).toBe(201);
        ids.push(issued.body.lease_id);
        await new Promise((r) => setTimeout(r, 1100));
      }
      expect(vault.requests.filter((r) => r.endsWith('/login'))).toEqual([
        login.VAULT_ROLE_ID ? 'POST auth/approle/login' : 'POST auth/kubernetes/login',
      ]);
      expect(vault.requests).toContain('POST auth/token/renew-self');
      await bot.call('POST', `/v1/tasks/${taskId}/complete`);
      await drain(broker, async () => (await Promise.all(ids.map((id) => stateIs(broker, id, 'revoked')))).every(Boolean));
    }
    vault.tokenTtl = 3600;
    await broker.stop();
    broker = await start({}, broker.db);
    bot = await registerBot(broker);
  });

  it('never writes the secret to audit rows, lease rows or logs; every Vault lease handed out is revoked exactly once', async () => {
    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read' });
    const { password, username } = issued.body.credential.data as { password: string; username: string };
    await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    await drain(broker, () => stateIs(broker, issued.body.lease_id, 'revoked'));
    const { rows } = await broker.app.broker.db.query<{ data: string }>(
      `SELECT data::text AS data FROM audit_events UNION ALL SELECT row_to_json(l)::text FROM leases l`,
    );
    const stored = rows.map((r) => r.data).join('\n');
    expect(stored).toContain('payload_sha256');
    expect(stored).not.toContain(password);
    expect(stored).not.toContain(username);
    const logs = output.join('');
    expect(logs).toContain('"msg":"request"');
    expect(logs).not.toContain(password);
    expect(logs).not.toContain(vault.rootToken);

    for (const [id, lease] of vault.leases) expect(lease.revoked, id).toBe(1);
  });
});
