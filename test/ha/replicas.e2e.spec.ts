import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDatabase } from '../support/database.js';
import { call } from '../support/http.js';
import { introspect, putBoundary, registerBot } from '../support/scenario.js';
import { startReplicaSet, type ReplicaSet } from './support/replicas.js';

/** The harness itself: three replica processes on one database behind HAProxy, used through the front. */
describe('a replica set behind HAProxy', () => {
  let db: TestDatabase;
  let set: ReplicaSet;

  beforeAll(async () => {
    db = await freshDatabase('postgres');
    set = await startReplicaSet({ databaseUrl: db.databaseUrl! });
  });
  afterAll(async () => {
    await set?.stop();
    await db?.drop();
  });

  it('starts three replicas that HAProxy sees up, each its own process and port', async () => {
    expect(set.replicas).toHaveLength(3);
    expect(await set.serverStates()).toEqual(['UP', 'UP', 'UP']);
    const pids = set.replicas.map((replica) => replica.pid());
    expect(new Set(pids).size).toBe(3);
    const ports = new Set(set.replicas.map((replica) => replica.port));
    expect(ports.size).toBe(3);
    for (const replica of set.replicas) expect((await call(replica.url, 'GET', '/readyz')).status).toBe(200);
  });

  it('issues a credential through the front, which any replica then introspects', async () => {
    const front = { url: set.lbUrl, adminKey: set.adminKey };
    await putBoundary(front, 'crm-orders');
    const bot = await registerBot(front);
    const task = await bot.openTask();
    const issued = await bot.credential(task, { boundary: 'crm-orders', action: 'orders:read', resource: 'order/1' });
    expect(issued.status).toBe(201);
    const token = issued.body.credential.access_token as string;
    // Round robin: the three introspections land on three replicas, each reading the one ledger.
    for (const replica of set.replicas) {
      expect(await introspect({ url: replica.url, adminKey: set.adminKey }, token)).toMatchObject({ active: true });
    }
    // The issuer is the front's, whichever replica signed.
    const metadata = await call(set.lbUrl, 'GET', '/.well-known/oauth-authorization-server');
    expect(metadata.body.issuer).toBe(set.lbUrl);
  });

  it('spreads requests over the replicas (round robin)', async () => {
    const before = await Promise.all(set.replicas.map((replica) => requestsServed(replica.url)));
    for (let i = 0; i < 30; i++) expect((await call(set.lbUrl, 'GET', '/healthz')).status).toBe(200);
    const after = await Promise.all(set.replicas.map((replica) => requestsServed(replica.url)));
    const served = after.map((count, i) => count - before[i]!);
    for (const count of served) expect(count).toBeGreaterThanOrEqual(8);
  });

  it('takes a stopped replica out and a restarted one back in, and a stop ends everything', async () => {
    const replica = set.replicas[1]!;
    expect(await replica.kill('SIGKILL')).toBeNull();
    await set.waitServerState(1, 'DOWN', 10_000);
    for (let i = 0; i < 10; i++) expect((await call(set.lbUrl, 'GET', '/healthz')).status).toBe(200);
    await replica.start();
    expect(replica.running()).toBe(true);
    expect((await set.serverStates())[1]).toBe('UP');
  });
});

/** GET /healthz answers counted by the replica's own request histogram. */
async function requestsServed(url: string): Promise<number> {
  const text = (await call<string>(url, 'GET', '/metrics')).body;
  const line = text
    .split('\n')
    .find((row) => row.startsWith('tollgate_http_request_duration_seconds_count{') && row.includes('route="/healthz"'));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}
