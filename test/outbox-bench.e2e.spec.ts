import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { putBoundary, registerBot, type Bot } from './support/scenario.js';
import { startAwsServer, type AwsTestServer } from './support/aws-server.js';
import { startVaultServer, type VaultServer } from './support/vault-server.js';

/**
 * Measurements, not checks: issuance latency of kinds vault and aws-sts (against the test Vault and
 * the test STS/IAM server, through the real node-vault and AWS SDK clients) beside kind jwt,
 * and the outbox's revocation throughput with 1,000 queued revocations. Off unless TOLLGATE_BENCH=1:
 *   TOLLGATE_BENCH=1 npx vitest run test/outbox-bench.e2e.spec.ts
 */
const N = Number(process.env.TOLLGATE_BENCH_N ?? 500);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

describe.runIf(process.env.TOLLGATE_BENCH === '1')('outbox and Vault measurements', () => {
  let vault: VaultServer;
  let aws: AwsTestServer;
  let broker: TestBroker;
  let bot: Bot;

  beforeAll(async () => {
    vault = await startVaultServer({ leaseDuration: 3600 });
    aws = await startAwsServer();
    const roleArn = aws.addRole('crm-exports-reader');
    // The AWS SDK reads its standard variables from the process environment.
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_STS: aws.url,
      AWS_ENDPOINT_URL_IAM: aws.url,
      AWS_ACCESS_KEY_ID: 'AKIATOLLGATEBENCH001',
      AWS_SECRET_ACCESS_KEY: 'bench-aws-secret',
      AWS_REGION: 'us-east-1',
    });
    broker = await startBroker({ env: { VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken } });
    await putBoundary(broker, 'crm-orders');
    await putBoundary(broker, 'orders-db', { credential: { kind: 'vault', path: 'database/creds/readonly' } });
    await putBoundary(broker, 'crm-exports', {
      credential: {
        kind: 'aws-sts',
        role_arn: roleArn,
        region: 'eu-west-1',
        session_policy: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::crm-exports/${subject}/*' }],
        },
      },
    });
    bot = await registerBot(broker);
  });
  afterAll(async () => {
    await broker.close();
    await vault.close();
    await aws.close();
  });

  it(`issuance: median of ${N} sequential requests per kind, interleaved`, { timeout: 600_000 }, async () => {
    const taskId = await bot.openTask('order_status', { ttl: 3600 });
    const kinds = { jwt: 'crm-orders', vault: 'orders-db', 'aws-sts': 'crm-exports' } as const;
    type Kind = keyof typeof kinds;
    const times: Record<Kind, number[]> = { jwt: [], vault: [], 'aws-sts': [] };
    const once = async (kind: Kind) => {
      const start = performance.now();
      const response = await bot.credential(taskId, { boundary: kinds[kind], action: 'orders:read' });
      times[kind].push(performance.now() - start);
      expect(response.status).toBe(201);
    };
    const order: Kind[] = ['jwt', 'vault', 'aws-sts'];
    for (let i = 0; i < 30; i++) await once(order[i % 3]!);
    for (const kind of order) times[kind] = [];
    // Interleaved, rotating which kind goes first, so drift on a noisy machine hits all alike.
    for (let i = 0; i < N; i++) for (let k = 0; k < 3; k++) await once(order[(i + k) % 3]!);
    console.log(
      `issuance median over ${N}: jwt ${median(times.jwt).toFixed(2)} ms, vault ${median(times.vault).toFixed(2)} ms, aws-sts ${median(times['aws-sts']).toFixed(2)} ms`,
    );
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
