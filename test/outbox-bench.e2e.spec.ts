import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { putBoundary, registerBot, type Bot } from './support/scenario.js';
import { startVaultServer, type VaultServer } from './support/vault-server.js';

/**
 * Measurements, not checks: issuance latency of kind vault (against the test Vault) beside kind jwt,
 * and the outbox's revocation throughput with 1,000 queued revocations. Off unless TOLLGATE_BENCH=1:
 *   TOLLGATE_BENCH=1 npx vitest run test/outbox-bench.e2e.spec.ts
 */
const N = Number(process.env.TOLLGATE_BENCH_N ?? 500);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

describe.runIf(process.env.TOLLGATE_BENCH === '1')('outbox and Vault measurements', () => {
  let vault: VaultServer;
  let broker: TestBroker;
  let bot: Bot;

  beforeAll(async () => {
    vault = await startVaultServer({ leaseDuration: 3600 });
    broker = await startBroker({ env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken } });
    await putBoundary(broker, 'crm-orders');
    await putBoundary(broker, 'orders-db', { credential: { kind: 'vault', path: 'database/creds/readonly' } });
    bot = await registerBot(broker);
  });
  afterAll(async () => {
    await broker.close();
    await vault.close();
  });

  it(`issuance: median of ${N} sequential requests per kind, interleaved`, { timeout: 600_000 }, async () => {
    const taskId = await bot.openTask('order_status', { ttl: 3600 });
    const times: Record<'jwt' | 'vault', number[]> = { jwt: [], vault: [] };
    const once = async (kind: 'jwt' | 'vault') => {
      const start = performance.now();
      const response = await bot.credential(taskId, { boundary: kind === 'jwt' ? 'crm-orders' : 'orders-db', action: 'orders:read' });
      times[kind].push(performance.now() - start);
      expect(response.status).toBe(201);
    };
    for (let i = 0; i < 50; i++) await once(i % 2 ? 'jwt' : 'vault');
    times.jwt = [];
    times.vault = [];
    for (let i = 0; i < N; i++) {
      if (i % 2) {
        await once('jwt');
        await once('vault');
      } else {
        await once('vault');
        await once('jwt');
      }
    }
    console.log(`issuance median over ${N}: jwt ${median(times.jwt).toFixed(2)} ms, vault ${median(times.vault).toFixed(2)} ms`);
    await bot.call('POST', `/v1/tasks/${taskId}/complete`);
    while ((await broker.app.broker.outbox.runOnce()).revoked > 0);
  });

  it('outbox: 1,000 queued revocations, leases/s (3 runs)', { timeout: 600_000 }, async () => {
    const rates: number[] = [];
    for (let run = 0; run < 3; run++) {
      const taskId = await bot.openTask('order_status', { ttl: 3600 });
      for (let i = 0; i < 1000; i++) await bot.credential(taskId, { boundary: 'orders-db', action: 'orders:read' });
      await bot.call('POST', `/v1/tasks/${taskId}/complete`);
      const start = performance.now();
      let done = 0;
      while (done < 1000) done += (await broker.app.broker.outbox.runOnce()).revoked;
      const seconds = (performance.now() - start) / 1000;
      rates.push(1000 / seconds);
      console.log(`run ${run + 1}: 1000 revocations in ${seconds.toFixed(2)} s (${(1000 / seconds).toFixed(0)} leases/s)`);
    }
    console.log(`outbox throughput median: ${median(rates).toFixed(0)} leases/s`);
    for (const [id, lease] of vault.leases) expect(lease.revoked, id).toBe(1);
  });
});
