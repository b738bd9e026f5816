import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { postgresReachable } from './support/database.js';
import { call } from './support/http.js';
import { BOUNDARY, putBoundary, registerBot } from './support/scenario.js';
import { assertion } from './support/workload.js';

const PERIOD_S = 35;
const brokers: TestBroker[] = [];
afterAll(async () => {
  for (const broker of brokers.splice(0).reverse()) await broker.close().catch(() => {});
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Two replicas on one database behind one public issuer, both rotating automatically every
 * PERIOD_S, under a steady stream of credential requests spread over both. Each stream is checked
 * the way a resource server would: jose's createRemoteJWKSet with its default caching (10 minutes,
 * a refetch on an unknown kid at most every 30 s) and jwtVerify, and introspection on the other
 * replica. Rotations: one through the API, then two automatic ones.
 */
describe('rotation under load', () => {
  it('causes no verification failure, and replicas rotate once per period', async (context) => {
    // Two brokers on one database need PostgreSQL: PGlite is one process's database.
    if (process.env.TOLLGATE_TEST_DB === 'pglite' || !(await postgresReachable())) context.skip();
    const first = await startBroker({ env: { TOLLGATE_KEY_ROTATION: `${PERIOD_S}s` } });
    brokers.push(first);
    const second = await startBroker({
      db: first.db,
      env: {
        TOLLGATE_ADMIN_KEY: first.adminKey,
        TOLLGATE_KEK: first.kek,
        TOLLGATE_ISSUER: first.url,
        TOLLGATE_KEY_ROTATION: `${PERIOD_S}s`,
      },
    });
    brokers.unshift(second); // closed before the first, which drops the database
    const replicas = [first, second];
    await putBoundary(first, 'crm-orders');
    const bot = await registerBot(first);

    let workloadToken = await assertion('chatbot', bot.key, first.url);
    const renew = setInterval(() => {
      void assertion('chatbot', bot.key, first.url).then((token) => (workloadToken = token));
    }, 30_000);

    let stop = false;
    const failures: string[] = [];
    const kids = new Set<string>();
    let issued = 0;
    const loop = async (n: number) => {
      const taskId = (
        await call(first.url, 'POST', '/v1/tasks', { token: workloadToken, json: { intent: 'order_status', subject: `user-${n}` } })
      ).body.task_id as string;
      // Each stream is its own resource server, reading the JWKS from the replica the balancer gives it.
      const keySet = createRemoteJWKSet(new URL(`${replicas[n % 2]!.url}/.well-known/jwks.json`));
      for (let i = 0; !stop; i++) {
        const issuer = replicas[(n + i) % 2]!;
        const other = replicas[(n + i + 1) % 2]!;
        const response = await call(issuer.url, 'POST', `/v1/tasks/${taskId}/credentials`, {
          token: workloadToken,
          json: { boundary: 'crm-orders', action: 'orders:read' },
        });
        if (response.status !== 201) {
          failures.push(`issue: ${response.status} ${JSON.stringify(response.body)}`);
          continue;
        }
        const token = response.body.credential.access_token as string;
        const kid = decodeProtectedHeader(token).kid!;
        kids.add(kid);
        try {
          await jwtVerify(token, keySet, { issuer: first.url, audience: BOUNDARY.tool, typ: 'at+jwt' });
        } catch (error) {
          failures.push(`jwks verify (kid ${kid}): ${(error as Error).message}`);
        }
        const introspected = await call(other.url, 'POST', '/oauth2/introspect', { token: first.adminKey, form: { token } });
        if (introspected.body?.active !== true) failures.push(`introspection (kid ${kid}): ${JSON.stringify(introspected.body)}`);
        issued++;
        await sleep(5);
      }
    };
    const loops = [0, 1, 2, 3].map(loop);

    // The key both replicas sign with, once they agree.
    const activeKid = () => {
      const kid = first.app.broker.keys.active.kid;
      return second.app.broker.keys.active.kid === kid ? kid : undefined;
    };
    const waitForRotation = async (from: string, withinMs: number): Promise<string> => {
      const until = Date.now() + withinMs;
      while ((activeKid() === from || activeKid() === undefined) && Date.now() < until) await sleep(200);
      const kid = activeKid();
      expect(kid, 'a rotation both replicas have seen').not.toBe(from);
      expect(kid).toBeDefined();
      return kid!;
    };
    try {
      await sleep(2_000);
      const manual = await call(second.url, 'POST', '/v1/admin/keys/rotate', { token: first.adminKey });
      expect(manual.status).toBe(200);
      const afterManual = manual.body.active_kid as string;
      const firstAuto = await waitForRotation(afterManual, (PERIOD_S + 8) * 1000);
      await waitForRotation(firstAuto, (PERIOD_S + 8) * 1000);
      await sleep(3_000);
    } finally {
      stop = true;
      clearInterval(renew);
      await Promise.all(loops);
    }

    process.stderr.write(`rotation under load: ${issued} credentials over ${kids.size} keys, ${failures.length} failures\n`);
    expect(failures.slice(0, 5)).toEqual([]);
    expect(issued).toBeGreaterThan(200);
    // Tokens of four keys were issued: the first, the one the API made active, two automatic ones.
    expect(kids.size).toBe(4);
    const { rows } = await first.app.broker.db.query<{ actor: string; n: number }>(
      `SELECT actor, count(*)::int AS n FROM audit_events WHERE kind = 'signing_key.rotated' GROUP BY actor ORDER BY actor`,
    );
    // Two replicas ticking every two seconds, and yet one rotation per period.
    expect(rows).toEqual([
      { actor: 'admin:bootstrap', n: 1 },
      { actor: 'system:key-rotation', n: 2 },
    ]);
    // Both replicas sign with the same key again.
    await sleep(second.app.broker.keys.timings.pollMs + 500);
    expect(second.app.broker.keys.active.kid).toBe(first.app.broker.keys.active.kid);
  }, 150_000);
});
