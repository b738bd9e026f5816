import { createServer, connect as connectTcp, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/broker.js';
import { connect, freshDatabase, type TestDatabase } from '../support/database.js';
import { call } from '../support/http.js';
import { setUpIssuance, sleep, type FrontBot } from './support/load.js';
import { startReplicaSet, type ReplicaSet } from './support/replicas.js';

/**
 * Fault 4 of issue 16: one replica cut off from the database. Its DATABASE_URL points at a TCP proxy
 * in front of PostgreSQL; the proxy then refuses connections and resets the open ones (a firewall
 * that rejects), or keeps them open and forwards nothing (a firewall that drops: no RST ever comes).
 * The cut replica must fail closed (503, /readyz 503, no credential), the others keep serving
 * through the front, and the cut replica recovers by itself when the proxy forwards again.
 */
class DbProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<[Socket, Socket]>();
  mode: 'forward' | 'blackhole' = 'forward';

  constructor(
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  async listen(): Promise<void> {
    const server = createServer((client) => {
      if (this.mode === 'blackhole') {
        // Accepted, never answered: the client's connect succeeds and its startup hangs.
        client.on('error', () => {});
        this.pairs.add([client, client]);
        return;
      }
      const upstream = connectTcp(this.target.port, this.target.host);
      const pair: [Socket, Socket] = [client, upstream];
      this.pairs.add(pair);
      const forward = (from: Socket, to: Socket) =>
        from.on('data', (chunk) => {
          if (this.mode === 'forward') to.write(chunk);
        });
      forward(client, upstream);
      forward(upstream, client);
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    });
    this.server = server;
    await new Promise<void>((done) => server.listen(this.port, '127.0.0.1', done));
  }

  /** Refuses new connections and resets the open ones. */
  async refuse(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const [a, b] of this.pairs) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    this.pairs.clear();
    if (server) await new Promise((done) => server.close(done));
  }

  /** Everything stays open and nothing passes, either way. */
  blackhole(): void {
    this.mode = 'blackhole';
  }

  /** Forwards again (listening again when it was refusing); the held connections are dropped. */
  async restore(): Promise<void> {
    this.mode = 'forward';
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
    if (!this.server) await this.listen();
  }

  async close(): Promise<void> {
    await this.refuse();
  }
}

describe('fault 4: a replica partitioned from the database', () => {
  let db: TestDatabase;
  let set: ReplicaSet;
  let proxy: DbProxy;
  let bot: FrontBot;
  let taskIds: string[];

  beforeAll(async () => {
    db = await freshDatabase('postgres');
    const direct = new URL(db.databaseUrl!);
    proxy = new DbProxy(await freePort(), { host: direct.hostname, port: Number(direct.port || 5432) });
    await proxy.listen();
    const viaProxy = new URL(db.databaseUrl!);
    viaProxy.port = String(proxy.port);
    set = await startReplicaSet({
      databaseUrl: db.databaseUrl!,
      replicaEnv: (index): Record<string, string> => (index === 2 ? { DATABASE_URL: viaProxy.toString() } : {}),
    });
    ({ bot, taskIds } = await setUpIssuance({ url: set.lbUrl, adminKey: set.adminKey }));
  });
  afterAll(async () => {
    await set?.stop();
    await proxy?.close();
    await db?.drop();
  });

  async function leaseCount(): Promise<number> {
    const client = await connect(db.databaseUrl!);
    try {
      const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM leases');
      return rows[0]!.n;
    } finally {
      await client.end();
    }
  }

  /** Credential requests straight to the cut replica and through the front, for `ms`. */
  async function probe(ms: number) {
    const cut = set.replicas[2]!;
    const direct: number[] = [];
    const front: number[] = [];
    const deadline = Date.now() + ms;
    for (let i = 0; Date.now() < deadline; i++) {
      const token = await bot.token();
      const body = { boundary: 'crm-orders', action: 'orders:read', resource: `order/${i}` };
      const path = `/v1/tasks/${taskIds[i % taskIds.length]}/credentials`;
      const [viaFront, viaCut] = await Promise.all([
        call(set.lbUrl, 'POST', path, { token, json: body }).then((r) => r.status),
        fetch(`${cut.url}${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(20_000),
        }).then(
          async (r) => (await r.arrayBuffer(), r.status),
          () => 0,
        ),
      ]);
      front.push(viaFront);
      direct.push(viaCut);
    }
    return { direct, front };
  }

  it('fails closed when its database connections are refused, the others serve, and it recovers by itself', async () => {
    const cut = set.replicas[2]!;
    await proxy.refuse();
    const cutAt = Date.now();
    let readiness = await call(cut.url, 'GET', '/readyz');
    while (readiness.status === 200 && Date.now() - cutAt < 10_000) readiness = await call(cut.url, 'GET', '/readyz');
    const readyzMs = Date.now() - cutAt;
    expect(readiness.status).toBe(503);
    expect(readiness.body).toMatchObject({ status: 'unavailable', reason: 'database_unavailable' });
    await set.waitServerState(2, 'DOWN', 5_000);

    const before = await leaseCount();
    const { direct, front } = await probe(3_000);
    const after = await leaseCount();
    // The cut replica issued nothing: every lease written meanwhile is one the front answered 201.
    expect(direct.every((status) => status === 503)).toBe(true);
    expect(front.every((status) => status === 201)).toBe(true);
    expect(after - before).toBe(front.length);

    await proxy.restore();
    const restoredAt = Date.now();
    await set.waitServerState(2, 'UP', 20_000);
    const recoveredMs = Date.now() - restoredAt;
    const again = await call(cut.url, 'POST', `/v1/tasks/${taskIds[0]}/credentials`, {
      token: await bot.token(),
      json: { boundary: 'crm-orders', action: 'orders:read' },
    });
    expect(again.status).toBe(201);
    console.log(
      JSON.stringify({
        fault: 'db_partition_refused',
        readyz_503_after_ms: readyzMs,
        direct_requests: direct.length,
        direct_503: direct.filter((s) => s === 503).length,
        front_requests: front.length,
        front_failed: front.filter((s) => s !== 201).length,
        recovered_after_ms: recoveredMs,
      }),
    );
  });

  it('when its database connections hang (no RST), measures how long until it fails closed; never issues', async () => {
    const cut = set.replicas[2]!;
    proxy.blackhole();
    const cutAt = Date.now();
    const before = await leaseCount();
    // HAProxy's view, watched meanwhile: its checks of /readyz time out after 2 s.
    const down = set.waitServerState(2, 'DOWN', 20_000).then(() => Date.now() - cutAt);
    // One request straight to the cut replica: how long until it answers, and with what. A query
    // sent on a pooled connection that hangs is given up 12 s after it went out (PostgreSQL's
    // statement_timeout never hears of it); no answer within 25 s counts as hanging (status 0).
    const started = Date.now();
    const status = await fetch(`${cut.url}/v1/tasks/${taskIds[0]}/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await bot.token()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ boundary: 'crm-orders', action: 'orders:read' }),
      signal: AbortSignal.timeout(25_000),
    }).then(
      (r) => r.status,
      () => 0,
    );
    const answeredMs = Date.now() - started;
    const downMs = await down;
    const { front } = await probe(2_000).catch(() => ({ front: [] as number[] }));
    const after = await leaseCount();
    await proxy.restore();
    const restoredAt = Date.now();
    await set.waitServerState(2, 'UP', 60_000);
    const recoveredMs = Date.now() - restoredAt;
    console.log(
      JSON.stringify({
        fault: 'db_partition_hanging',
        direct_status: status,
        direct_answer_ms: answeredMs,
        haproxy_down_after_ms: downMs,
        front_requests: front.length,
        front_failed: front.filter((s) => s !== 201).length,
        recovered_after_ms: recoveredMs,
      }),
    );
    // Fail closed: no 201 from the cut replica, and no lease beyond what the front answered 201.
    expect(status).toBe(503);
    expect(answeredMs).toBeLessThan(20_000);
    expect(after - before).toBe(front.filter((s) => s === 201).length);
    await sleep(0);
  });
});
