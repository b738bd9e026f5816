// Revocation propagation to tool servers: a task completes, how long until @tollgate/verifier refuses
// its token? `npm run bench:verifier-revocation -- [--n 1000] [--verifiers 1,50]`.
// Starts the built broker (dist/) as its own process on a fresh PostgreSQL database, then for each
// count of verifiers (each following GET /v1/events with its own resource_server key, as tool
// replicas would): n times, a task is opened, a credential issued and accepted by every verifier,
// the task completed (t0 = the moment the completion is sent), and every verifier polled until it
// refuses the token (TokenRevoked). A sample is t(refused) − t0, per verifier. No introspection is
// made (each verifier's fetch counts them). Prints p50/p99/max in ms.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createVerifier, TokenRevoked } from '../packages/verifier/dist/index.js';
import { freshDatabase } from './lib/database.mjs';
import { cleanup, installSignalHandlers, onCleanup, startNode, stop } from './lib/procs.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const n = Number(option('--n', 1000)) || 1000;
const counts = String(option('--verifiers', '1,50'))
  .split(',')
  .map(Number)
  .filter((count) => count > 0);
const TOOL = 'https://crm.acme.test';
const port = 19000 + Math.floor(Math.random() * 1000);
const url = `http://127.0.0.1:${port}`;
const adminKey = randomBytes(32).toString('hex');

installSignalHandlers();
try {
  const database = await freshDatabase();
  const broker = startNode('broker', 'dist/apps/broker/main.js', [], {
    ...process.env,
    PORT: String(port),
    DATABASE_URL: database.url,
    TOLLGATE_ADMIN_KEY: adminKey,
    TOLLGATE_KEK: randomBytes(32).toString('base64'),
    TOLLGATE_DATA_DIR: mkdtempSync(join(tmpdir(), 'tollgate-bench-')),
    TOLLGATE_LOG_LEVEL: 'warn',
  });
  onCleanup(() => stop(broker));
  await waitReady();

  const call = async (method, path, token, body) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = await response.json().catch(() => undefined);
    if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
    return json;
  };
  await call('PUT', '/v1/admin/boundaries/crm-orders', adminKey, {
    tool: TOOL,
    actions: ['orders:read'],
    intents: ['order_status'],
    default_ttl: 300,
    max_ttl: 600,
    credential: { kind: 'jwt' },
  });
  const { publicKey, privateKey } = await generateKeyPair('EdDSA');
  await call('PUT', '/v1/admin/workloads/chatbot', adminKey, { jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1' }] } });
  let assertion;
  let assertionExpires = 0;
  const sign = async () => {
    const now = Math.floor(Date.now() / 1000);
    if (now > assertionExpires - 30) {
      assertionExpires = now + 240;
      assertion = await new SignJWT({ jti: randomBytes(8).toString('hex') })
        .setProtectedHeader({ alg: 'EdDSA', kid: 'k1' })
        .setIssuer('chatbot')
        .setSubject('chatbot')
        .setAudience(url)
        .setIssuedAt(now)
        .setExpirationTime(assertionExpires)
        .sign(privateKey);
    }
    return assertion;
  };
  const issuer = url;

  console.log(`revocation propagation to @tollgate/verifier: ${n} task completions per run, node ${process.version}`);
  for (const count of counts) {
    let introspections = 0;
    const counting = (input, init) => {
      if (String(input).endsWith('/oauth2/introspect')) introspections++;
      return fetch(input, init);
    };
    const verifiers = [];
    for (let i = 0; i < count; i++) {
      const key = await call('POST', '/v1/admin/api-keys', adminKey, { role: 'resource_server', audience: TOOL, label: `bench ${i}` });
      verifiers.push(createVerifier({ issuer, audience: TOOL, revocation: { apiKey: key.key, fetch: counting } }));
    }
    await Promise.all(verifiers.map((v) => v.ready()));
    // Tokens issued in the second the streams connected would be introspected once: start after it.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const request = { method: 'GET', url: `${TOOL}/orders/1` };
    const samples = [];
    for (let i = 0; i < n; i++) {
      const task = await call('POST', '/v1/tasks', await sign(), { intent: 'order_status', subject: 'user-1' });
      const issued = await call('POST', `/v1/tasks/${task.task_id}/credentials`, await sign(), {
        boundary: 'crm-orders',
        action: 'orders:read',
        resource: 'order/1',
      });
      const token = issued.credential.access_token;
      await Promise.all(verifiers.map((v) => v.verify(token, request)));
      const t0 = performance.now();
      const completion = call('POST', `/v1/tasks/${task.task_id}/complete`, await sign());
      let pending = verifiers;
      while (pending.length > 0) {
        const still = [];
        for (const verifier of pending) {
          const refused = await verifier.verify(token, request).then(
            () => false,
            (error) => {
              if (!(error instanceof TokenRevoked)) throw error;
              return true;
            },
          );
          if (refused) samples.push(performance.now() - t0);
          else still.push(verifier);
        }
        pending = still;
        if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, 1));
        if (performance.now() - t0 > 30_000) throw new Error('a verifier did not refuse within 30 s');
      }
      await completion;
    }
    samples.sort((a, b) => a - b);
    const at = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))].toFixed(1);
    console.log(
      `${String(count).padStart(3)} verifier(s): ${samples.length} samples, p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${samples.at(-1).toFixed(1)} ms, introspections ${introspections}`,
    );
    await Promise.all(verifiers.map((v) => v.close()));
  }
} finally {
  await cleanup();
}

async function waitReady() {
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the broker did not become ready');
}
