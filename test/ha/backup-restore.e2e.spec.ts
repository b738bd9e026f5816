import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from '../support/broker.js';
import { connect, freshDatabase, postgresReachable, type TestDatabase } from '../support/database.js';
import { call } from '../support/http.js';
import { readEvents, type SseEvent } from '../support/sse.js';
import { asAdmin, BOUNDARY, introspect, linkAuditChain, putBoundary, registerBot, type Bot } from '../support/scenario.js';
import { startVaultServer, type VaultServer } from '../support/vault-server.js';

/**
 * Fault 6 of issue 16, backup and restore, as docs/operations.md#backup-and-restore tells an
 * operator to do it: `pg_dump -Fc` of the broker's database while the broker serves, more activity
 * after the dump, then `pg_restore` into a new database, the event sequence moved past anything a
 * tool may have seen, and a broker started on it with the same KEK. The restored broker is the
 * ledger as of the backup: the audit chain verifies, lease states are those of the backup, the
 * signing keys open with the KEK, tokens issued before the backup verify against its JWKS and
 * introspect as the restored ledger says. What the restored ledger cannot know (a credential issued
 * after the backup) introspects inactive: the operator's duties that follow are in the docs.
 */

const execFileAsync = promisify(execFile);
const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
const VAULT_CREDENTIAL = { kind: 'vault', path: 'database/creds/readonly' };
const PAY = 'https://pay.acme.test';
/** The documented step after a restore: event ids a tool saw after the backup are never reused. */
const EVENT_SEQUENCE_GAP = 1_000_000_000;

let vault: VaultServer;
let source: TestBroker;
let restoredDb: TestDatabase;
let restored: TestBroker | undefined;
let dumpDir: string;
let dump: string | undefined;
let bot: Bot;

/** What the source broker handed out before and after the backup. */
const before = {
  activeToken: '',
  activeLease: '',
  completedToken: '',
  completedLease: '',
  revokedToken: '',
  revokedLease: '',
  rotatedToken: '',
  vaultLease: '',
  vaultTask: '',
  approvedLease: '',
  activeTask: '',
  kids: [] as string[],
  activeKid: '',
  auditEvents: 0,
};
const after = { token: '', lease: '', lastEventId: '', revokedAfterBackup: '' };

async function issue(taskId: string, body: Record<string, unknown> = {}): Promise<{ token: string; lease: string; body: any }> {
  const response = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read', ...body });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return { token: response.body.credential.access_token as string, lease: response.body.lease_id as string, body: response.body };
}

async function rows<T>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const client = await connect(url);
  try {
    return (await client.query(text, params)).rows as T[];
  } finally {
    await client.end();
  }
}

async function leaseStates(url: string, ids: string[]): Promise<Record<string, string>> {
  const found = await rows<{ id: string; state: string; revoke_reason: string | null }>(
    url,
    'SELECT id, state, revoke_reason FROM leases WHERE id = ANY($1::uuid[])',
    [ids],
  );
  return Object.fromEntries(found.map((row) => [row.id, row.revoke_reason ? `${row.state}:${row.revoke_reason}` : row.state]));
}

async function pgTool(tool: string, args: string[]): Promise<void> {
  await execFileAsync(join(PG_BIN, tool), args, { maxBuffer: 16 * 1024 * 1024 });
}

/** A tool following GET /v1/events from now on, as a resource server runs one. */
function follow(broker: TestBroker, lastEventId?: string) {
  const controller = new AbortController();
  const received: SseEvent[] = [];
  const opened = fetch(`${broker.url}/v1/events`, {
    headers: { authorization: `Bearer ${broker.adminKey}`, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
    signal: controller.signal,
  });
  const done = opened.then((response) => {
    expect(response.status).toBe(200);
    return readEvents(response.body!, (event) => received.push(event)).catch(() => {});
  });
  return {
    opened,
    received,
    async until(enough: (events: SseEvent[]) => boolean, timeoutMs = 5000): Promise<SseEvent[]> {
      const deadline = Date.now() + timeoutMs;
      while (!enough(received) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      return received;
    },
    async close(): Promise<void> {
      controller.abort();
      await done;
    },
  };
}

const haveTools = existsSync(join(PG_BIN, 'pg_dump')) && existsSync(join(PG_BIN, 'pg_restore'));

describe('backup and restore (pg_dump -Fc, pg_restore)', { timeout: 180_000 }, () => {
  beforeAll(async () => {
    if (!(await postgresReachable()) || !haveTools) {
      if (process.env.CI === 'true') throw new Error(`CI=true but PostgreSQL or ${PG_BIN}/pg_dump is missing`);
      return;
    }
    dumpDir = mkdtempSync(join(tmpdir(), 'tollgate-backup-'));
    vault = await startVaultServer({ leaseDuration: 600 });
    source = await startBroker({
      kind: 'postgres',
      env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken },
    });
    await putBoundary(source, 'crm-orders');
    await putBoundary(source, 'orders-db', { credential: VAULT_CREDENTIAL, default_ttl: 600, max_ttl: 600 });
    await putBoundary(source, 'payments', {
      tool: PAY,
      actions: ['refund:create'],
      intents: ['order_status'],
      approval: { when: 'context.params.amount > 100' },
    });
    bot = await registerBot(source);
  }, 120_000);

  afterAll(async () => {
    await restored?.stop().catch(() => {});
    await restoredDb?.drop().catch(() => {});
    await source?.close().catch(() => {});
    await vault?.close().catch(() => {});
    if (dumpDir) rmSync(dumpDir, { recursive: true, force: true });
  });

  it('a broker on the restored database is the ledger as of the backup, with the same KEK', async (context) => {
    if (!source) context.skip();
    const adminOf = asAdmin(source);

    // ---- History before the backup ---------------------------------------------------------
    before.activeTask = await bot.openTask();
    ({ token: before.activeToken, lease: before.activeLease } = await issue(before.activeTask));
    ({ token: before.revokedToken, lease: before.revokedLease } = await issue(before.activeTask, { action: 'orders:refund' }));
    expect((await adminOf('POST', `/v1/admin/leases/${before.revokedLease}/revoke`)).status).toBe(200);

    const completedTask = await bot.openTask();
    ({ token: before.completedToken, lease: before.completedLease } = await issue(completedTask));
    expect((await bot.call('POST', `/v1/tasks/${completedTask}/complete`)).status).toBe(200);

    before.vaultTask = await bot.openTask();
    const vaultIssued = await issue(before.vaultTask, { boundary: 'orders-db', action: 'orders:read' });
    before.vaultLease = vaultIssued.lease;
    expect(vaultIssued.body.credential.kind).toBe('vault');

    // An approval asked, approved by the admin and used once.
    const approvalTask = await bot.openTask();
    const refund = { boundary: 'payments', action: 'refund:create', resource: 'order/1001', params: { amount: 150 } };
    const pending = await bot.credential(approvalTask, refund);
    expect(pending.status).toBe(202);
    expect((await adminOf('POST', `/v1/approvals/${pending.body.approval_id}/approve`, { reason: 'verified' })).status).toBe(200);
    const redeemed = await bot.credential(approvalTask, { ...refund, approval_id: pending.body.approval_id });
    expect(redeemed.status).toBe(201);
    before.approvedLease = redeemed.body.lease_id;
    // A denial, so the decisions hold both.
    expect((await bot.credential(before.activeTask, { boundary: 'crm-orders', action: 'orders:delete' })).status).toBe(403);

    // A key rotation: the active token above was signed by the key now retired.
    const rotated = await adminOf('POST', '/v1/admin/keys/rotate');
    expect(rotated.status).toBe(200);
    ({ token: before.rotatedToken } = await issue(before.activeTask));
    expect(decodeProtectedHeader(before.rotatedToken).kid).toBe(rotated.body.active_kid);
    expect(decodeProtectedHeader(before.activeToken).kid).toBe(rotated.body.retired_kid);
    before.activeKid = rotated.body.active_kid;
    before.kids = (await call(source.url, 'GET', '/.well-known/jwks.json')).body.keys.map((key: { kid: string }) => key.kid);
    await linkAuditChain(source);
    // A tool follows GET /v1/events on the server (so its events are numbered as they come).
    const tool = follow(source, '0');
    await tool.opened;
    await tool.until((events) => events.some((event) => event.data.lease_id === before.completedLease));

    // ---- The backup, taken while the broker serves --------------------------------------------
    dump = join(dumpDir, 'tollgate.dump');
    const countAudit = async (url: string) => Number((await rows<{ n: string }>(url, 'SELECT count(*) AS n FROM audit_events'))[0]!.n);
    const auditBeforeDump = await countAudit(source.db.databaseUrl!);
    let serving = true;
    const during: number[] = [];
    const load = (async () => {
      const task = await bot.openTask();
      while (serving) during.push((await bot.credential(task, { boundary: 'crm-orders', action: 'orders:read' })).status);
    })();
    const dumpStarted = performance.now();
    await pgTool('pg_dump', ['-Fc', '-d', source.db.databaseUrl!, '-f', dump]);
    const dumpMs = performance.now() - dumpStarted;
    serving = false;
    await load;
    expect(during.length).toBeGreaterThan(0);
    expect(new Set(during)).toEqual(new Set([201]));

    // ---- After the backup: a credential the restored ledger will not know, and revocations it will miss
    const afterTask = await bot.openTask();
    ({ token: after.token, lease: after.lease } = await issue(afterTask));
    const completedAfter = await bot.openTask();
    for (let i = 0; i < 3; i++) await issue(completedAfter);
    expect((await bot.call('POST', `/v1/tasks/${completedAfter}/complete`)).status).toBe(200);
    expect((await adminOf('POST', `/v1/admin/leases/${before.activeLease}/revoke`)).status).toBe(200);
    after.revokedAfterBackup = before.activeLease;
    expect((await introspect(source, before.activeToken)).active).toBe(false);
    const seen = await tool.until((events) => events.some((event) => event.data.lease_id === before.activeLease));
    await tool.close();
    after.lastEventId = seen.at(-1)!.id;
    expect(seen.at(-1)!.data.lease_id).toBe(before.activeLease);
    // The old server is gone; the restore follows.
    await source.stop();

    // ---- The restore, as documented ------------------------------------------------------------
    restoredDb = await freshDatabase('postgres');
    const restoreStarted = performance.now();
    await pgTool('pg_restore', ['--exit-on-error', '--single-transaction', '--no-owner', '-d', restoredDb.databaseUrl!, dump]);
    const restoreMs = performance.now() - restoreStarted;
    const client = await connect(restoredDb.databaseUrl!);
    try {
      await client.query(`SELECT setval('revocation_event_seq', (SELECT last_value FROM revocation_event_seq) + ${EVENT_SEQUENCE_GAP})`);
    } finally {
      await client.end();
    }
    restored = await startBroker({
      db: restoredDb,
      env: {
        TOLLGATE_ADMIN_KEY: source.adminKey,
        TOLLGATE_KEK: source.kek,
        // The public URL is the same after a restore: tokens and workload assertions name it.
        TOLLGATE_ISSUER: source.url,
        VAULT_ADDR: vault.addr,
        VAULT_TOKEN: vault.rootToken,
      },
    });
    const onRestored = <T = any>(method: string, path: string, json?: unknown) =>
      call<T>(restored!.url, method, path, { token: source.adminKey, json });
    const asBot = async <T = any>(method: string, path: string, json?: unknown) =>
      call<T>(restored!.url, method, path, { token: await bot.token(), json });

    // The audit chain verifies, over everything the backup held (and what the restored broker adds).
    await linkAuditChain(restored);
    const verified = await onRestored('GET', '/v1/audit/verify');
    expect(verified.status).toBe(200);
    expect(verified.body).toMatchObject({ ok: true, unchained: 0 });
    expect(verified.body.verified).toBe(await countAudit(restoredDb.databaseUrl!));
    expect(verified.body.verified).toBeGreaterThanOrEqual(auditBeforeDump);

    // Lease states as of the backup: the revocation after the backup is not there.
    expect(
      await leaseStates(restoredDb.databaseUrl!, [
        before.activeLease,
        before.revokedLease,
        before.completedLease,
        before.vaultLease,
        before.approvedLease,
        after.lease,
      ]),
    ).toEqual({
      [before.activeLease]: 'active',
      [before.revokedLease]: 'revoked:revoked_by_admin',
      [before.completedLease]: 'revoked:task_completed',
      [before.vaultLease]: 'active',
      [before.approvedLease]: 'active',
    });

    // The signing keys open with the KEK: the same JWKS, the same active key, and it signs.
    const kids = (await call(restored.url, 'GET', '/.well-known/jwks.json')).body.keys.map((key: { kid: string }) => key.kid);
    expect(kids).toEqual(before.kids);
    const keySet = createRemoteJWKSet(new URL(`${restored.url}/.well-known/jwks.json`));
    const verify = (token: string) => jwtVerify(token, keySet, { issuer: source.url, audience: BOUNDARY.tool, typ: 'at+jwt' });
    await verify(before.activeToken);
    await verify(before.rotatedToken);
    const fresh = await asBot('POST', `/v1/tasks/${before.activeTask}/credentials`, { boundary: 'crm-orders', action: 'orders:read' });
    expect(fresh.status, JSON.stringify(fresh.body)).toBe(201);
    expect(decodeProtectedHeader(fresh.body.credential.access_token).kid).toBe(before.activeKid);
    await verify(fresh.body.credential.access_token);

    // Tokens from before the backup introspect as the restored ledger says; the one issued after
    // the backup is a lease the ledger never saw: inactive (it still verifies offline: docs).
    expect((await introspect(restored, before.activeToken)).active).toBe(true);
    expect((await introspect(restored, before.rotatedToken)).active).toBe(true);
    expect((await introspect(restored, before.revokedToken)).active).toBe(false);
    expect((await introspect(restored, before.completedToken)).active).toBe(false);
    expect((await introspect(restored, after.token)).active).toBe(false);
    await verify(after.token);

    // The operator's duty for a revocation made after the backup: make it again. And the event a
    // tool then receives is numbered after everything it saw from the old server (the sequence
    // step above; without it the new event reuses an id the tool has passed and is never sent).
    expect((await onRestored('POST', `/v1/admin/leases/${after.revokedAfterBackup}/revoke`)).status).toBe(200);
    expect((await introspect(restored, before.activeToken)).active).toBe(false);
    const resumed = follow(restored, after.lastEventId);
    await resumed.until((events) => events.some((event) => event.data.lease_id === after.revokedAfterBackup), 5000);
    await resumed.close();
    expect(resumed.received.filter((event) => event.data.lease_id === after.revokedAfterBackup).map((event) => event.event)).toEqual([
      'lease.revoked',
    ]);
    // Events the backup held unnumbered are numbered on the restored server and sent again: a
    // revocation delivered twice is harmless, one skipped is not.
    for (const event of resumed.received) expect(BigInt(event.id)).toBeGreaterThan(BigInt(after.lastEventId));

    // The outbox carries on from the restored state: completing the Vault lease's task revokes it
    // at Vault, exactly once.
    expect((await asBot('POST', `/v1/tasks/${before.vaultTask}/complete`)).status).toBe(200);
    const vaultId = (
      await rows<{ external_handle: string }>(restoredDb.databaseUrl!, 'SELECT external_handle FROM leases WHERE id = $1', [
        before.vaultLease,
      ])
    )[0]!.external_handle;
    for (let pass = 0; pass < 20 && (vault.leases.get(vaultId)?.revoked ?? 0) === 0; pass++) {
      await restored.app.broker.outbox.runOnce();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(vault.leases.get(vaultId)?.revoked).toBe(1);
    console.log(
      `backup-restore: pg_dump ${dumpMs.toFixed(0)} ms (${statSync(dump).size} bytes) while ${during.length} credentials were issued, ` +
        `all 201; pg_restore ${restoreMs.toFixed(0)} ms; chain verified ${verified.body.verified} events; ` +
        `pre-backup tokens introspect as restored, the post-backup one inactive`,
    );
  });

  it('a restore started with another KEK fails closed: no start, a clear error, the keys untouched', async (context) => {
    if (!restoredDb) context.skip();
    await restored?.stop();
    restored = undefined;
    const sealedBefore = await rows(restoredDb.databaseUrl!, 'SELECT kid, state, private_key_encrypted FROM signing_keys ORDER BY kid');
    const wrong = randomBytes(32).toString('base64');
    await expect(
      startBroker({ db: restoredDb, env: { TOLLGATE_ADMIN_KEY: source.adminKey, TOLLGATE_KEK: wrong, TOLLGATE_ISSUER: source.url } }),
    ).rejects.toThrow(/TOLLGATE_KEK: does not decrypt the stored signing keys/);
    expect(await rows(restoredDb.databaseUrl!, 'SELECT kid, state, private_key_encrypted FROM signing_keys ORDER BY kid')).toEqual(
      sealedBefore,
    );
    // The operator's view: `node dist/apps/broker/main.js` (npm start) exits 1 with that sentence,
    // and neither KEK appears in what it prints.
    const main = join(process.cwd(), 'dist/apps/broker/main.js');
    if (existsSync(main)) {
      const exited = await execFileAsync(process.execPath, [main], {
        env: {
          ...process.env,
          DATABASE_URL: restoredDb.databaseUrl!,
          TOLLGATE_ADMIN_KEY: source.adminKey,
          TOLLGATE_KEK: wrong,
          TOLLGATE_DATA_DIR: restoredDb.dataDir,
          PORT: '0',
        },
      }).then(
        () => ({ code: 0, output: '' }),
        (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, output: error.stdout + error.stderr }),
      );
      expect(exited.code).toBe(1);
      expect(exited.output).toMatch(/^tollgate: invalid configuration:\n {2}- TOLLGATE_KEK: does not decrypt the stored signing keys/m);
      expect(exited.output).not.toContain(wrong);
      expect(exited.output).not.toContain(source.kek);
    } else if (process.env.CI === 'true') {
      throw new Error('dist/apps/broker/main.js is missing: npm run build first');
    }
    // No key event was written either (a reseal would have recorded one).
    expect(await rows(restoredDb.databaseUrl!, `SELECT id FROM audit_events WHERE kind = 'signing_key.resealed'`)).toEqual([]);
  });

  it("onto a new server: its transaction ids must first pass the backup's (pg_resetwal -e), or the audit chain breaks", async (context) => {
    if (!dump || !existsSync(join(PG_BIN, 'initdb'))) context.skip();
    const cluster = await throwawayCluster();
    const brokers: TestBroker[] = [];
    try {
      /** Restores the dump into a new database of the cluster; runs a broker on it and links and verifies the chain. */
      const restoreAndVerify = async (name: string) => {
        const url = `postgres://postgres@127.0.0.1:${cluster.port}/${name}`;
        await cluster.sql('postgres', `CREATE DATABASE ${name}`);
        await pgTool('pg_restore', ['--exit-on-error', '--single-transaction', '--no-owner', '-d', url, dump!]);
        await cluster.sql(
          name,
          `SELECT setval('revocation_event_seq', (SELECT last_value FROM revocation_event_seq) + ${EVENT_SEQUENCE_GAP})`,
        );
        const [behind] = await rows<{ behind: boolean }>(
          url,
          'SELECT max(xid) >= pg_snapshot_xmin(pg_current_snapshot()) AS behind FROM audit_events',
        );
        const db: TestDatabase = {
          kind: 'postgres',
          databaseUrl: url,
          dataDir: mkdtempSync(join(tmpdir(), 'tollgate-test-')),
          name,
          drop: async () => {},
        };
        const broker = await startBroker({
          db,
          env: { TOLLGATE_ADMIN_KEY: source.adminKey, TOLLGATE_KEK: source.kek, TOLLGATE_ISSUER: source.url },
        });
        brokers.push(broker);
        const task = await call(broker.url, 'POST', '/v1/tasks', {
          token: await bot.token(),
          json: { intent: 'order_status', subject: 'user-42' },
        });
        expect(task.status).toBe(201);
        const issued = await call(broker.url, 'POST', `/v1/tasks/${task.body.task_id}/credentials`, {
          token: await bot.token(),
          json: { boundary: 'crm-orders', action: 'orders:read' },
        });
        expect(issued.status).toBe(201);
        await linkAuditChain(broker, 3000).catch(() => {});
        const verified = await call(broker.url, 'GET', '/v1/audit/verify', { token: source.adminKey });
        await broker.stop();
        return { behind: behind!.behind, verify: verified.body as { ok: boolean; unchained: number } };
      };

      // A new server counts transactions from the start: the backup's events carry ids it has not
      // reached, so its own new events sort before them and the chain no longer verifies.
      const plain = await restoreAndVerify('restored_plain');
      expect(plain.behind).toBe(true);
      expect(plain.verify.ok).toBe(false);
      console.log(`backup-restore onto a new server without the epoch step: ${JSON.stringify(plain.verify)}`);

      // The documented step, before the restore: a new transaction-id epoch on the stopped server.
      await cluster.stop();
      await cluster.ctl(join(PG_BIN, 'pg_resetwal'), '-e', '1', '-D', cluster.data);
      await cluster.start();
      const bumped = await restoreAndVerify('restored_epoch');
      expect(bumped.behind).toBe(false);
      expect(bumped.verify).toMatchObject({ ok: true, unchained: 0 });
    } finally {
      for (const broker of brokers) await broker.stop().catch(() => {});
      await cluster.remove();
    }
  });
});

/** A PostgreSQL server of our own (initdb, as the postgres OS user when run as root), on a free port. */
async function throwawayCluster() {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-restore-cluster-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  chmodSync(dir, 0o777);
  if (asRoot) await execFileAsync('chown', ['postgres', dir]);
  const ctl = async (command: string, ...args: string[]) => {
    if (asRoot) await execFileAsync('runuser', ['-u', 'postgres', '--', command, ...args]);
    else await execFileAsync(command, args);
  };
  await ctl(join(PG_BIN, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync');
  const port = 20_000 + Math.floor(Math.random() * 12_000);
  const start = () =>
    ctl(
      join(PG_BIN, 'pg_ctl'),
      'start',
      '-w',
      '-D',
      data,
      '-l',
      join(dir, 'log'),
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
    );
  const stop = () => ctl(join(PG_BIN, 'pg_ctl'), 'stop', '-w', '-m', 'fast', '-D', data);
  await start();
  return {
    port,
    data,
    ctl,
    start,
    stop,
    sql: async (database: string, text: string) => {
      const client = await connect(`postgres://postgres@127.0.0.1:${port}/${database}`);
      try {
        await client.query(text);
      } finally {
        await client.end();
      }
    },
    remove: async () => {
      await ctl(join(PG_BIN, 'pg_ctl'), 'stop', '-w', '-m', 'immediate', '-D', data).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
