// Starting Tollgate as its own process and setting it up through its HTTP API, as an admin and a
// bot would: boundaries, workloads (bots with Ed25519 keys), tasks, and credentials for setup.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { freePort, onCleanup, startNode, stop, waitHttp } from './procs.mjs';

export const BROKER_MAIN = 'dist/apps/broker/main.js';

export const BOUNDARIES = {
  // The permit path: order_status tasks may read orders. Leases live ten minutes, so none issued
  // before the sweep scenario falls due during it (its count must start from zero and reach it).
  'crm-orders': {
    tool: 'https://crm.acme.test',
    actions: ['orders:read', 'orders:refund'],
    intents: ['order_status'],
    default_ttl: 600,
    max_ttl: 600,
    credential: { kind: 'jwt' },
  },
  // The denial path: an order_status task asking for payments is an intent mismatch.
  payments: {
    tool: 'https://pay.acme.test',
    actions: ['refund:create'],
    intents: ['refund_request'],
    default_ttl: 60,
    max_ttl: 300,
    credential: { kind: 'jwt' },
  },
};

/** Settings the bench always sets itself; other TOLLGATE_* in its environment pass through. */
const OWN = new Set([
  'TOLLGATE_ADMIN_KEY',
  'TOLLGATE_KEK',
  'TOLLGATE_DATA_DIR',
  'TOLLGATE_LOG_LEVEL',
  'TOLLGATE_ISSUER',
  'TOLLGATE_SWEEP_INTERVAL_MS',
]);

/** TOLLGATE_* settings from the bench's environment that reach the broker (to measure a setting). */
export function passedThrough() {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => key.startsWith('TOLLGATE_') && !OWN.has(key)));
}

/**
 * Starts `node [nodeArgs] dist/apps/broker/main.js` (or `main`, another build's) with the admin key, KEK and
 * data folder given (newSecrets() for fresh ones). `databaseUrl` undefined means the embedded PGlite.
 */
export async function startBroker({
  name = 'tollgate',
  databaseUrl,
  adminKey,
  kek,
  dataDir,
  port,
  extraEnv = {},
  main = BROKER_MAIN,
  nodeArgs = [],
}) {
  port ??= await freePort();
  const url = `http://127.0.0.1:${port}`;
  if (!dataDir) {
    dataDir = mkdtempSync(join(tmpdir(), 'tollgate-bench-'));
    const dir = dataDir;
    onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  }
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('TOLLGATE_')) delete env[key];
  delete env.DATABASE_URL;
  Object.assign(
    env,
    // The load scenarios drive thousands of refusals through a few hundred tasks: with the default
    // drift threshold (3) the tasks would be suspended at once, and the mixed scenarios would measure
    // refusals of ended tasks. Each drift denial is still counted (that cost stays in the numbers).
    { TOLLGATE_DRIFT_THRESHOLD: '1000' },
    passedThrough(),
    {
      PORT: String(port),
      HOST: '127.0.0.1',
      TOLLGATE_ADMIN_KEY: adminKey,
      TOLLGATE_KEK: kek,
      TOLLGATE_DATA_DIR: dataDir,
      TOLLGATE_LOG_LEVEL: 'warn',
      ...extraEnv,
    },
  );
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  const child = startNode(name, main, [], env, nodeArgs);
  await waitHttp(child, `${url}/readyz`, 90_000);
  return new Broker(child, url, adminKey, dataDir);
}

export function newSecrets() {
  return { adminKey: `tgbench_${randomBytes(24).toString('hex')}`, kek: randomBytes(32).toString('base64') };
}

export class Broker {
  constructor(child, url, adminKey, dataDir) {
    this.child = child;
    this.url = url;
    this.adminKey = adminKey;
    this.dataDir = dataDir;
  }

  stop() {
    this.agent?.destroy();
    return stop(this.child, 10_000);
  }

  async call(method, path, { token, json, form } = {}) {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    let body;
    if (json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(json);
    } else if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const response = await fetch(`${this.url}${path}`, { method, headers, body, signal: AbortSignal.timeout(30_000) });
    const text = await response.text();
    let parsed = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON
    }
    return { status: response.status, body: parsed };
  }

  /** A call that must succeed with `expected`; anything else is a bench failure with the exchange. */
  async must(expected, method, path, options) {
    const response = await this.call(method, path, options);
    if (response.status !== expected) {
      throw new Error(
        `${method} ${path} answered ${response.status} (expected ${expected}): ${JSON.stringify(response.body)?.slice(0, 500)}`,
      );
    }
    return response.body;
  }

  admin(method, path, json) {
    return this.must(200, method, path, { token: this.adminKey, json });
  }

  async defineBoundaries() {
    for (const [id, body] of Object.entries(BOUNDARIES)) {
      const response = await this.call('PUT', `/v1/admin/boundaries/${id}`, { token: this.adminKey, json: body });
      if (response.status >= 300) throw new Error(`PUT boundary ${id}: ${response.status} ${JSON.stringify(response.body)}`);
    }
  }

  /** Registers `count` bots, each with its own Ed25519 key; returns what the load generator needs. */
  async registerBots(count, prefix = 'chatbot') {
    const bots = [];
    for (let i = 1; i <= count; i++) {
      const id = `${prefix}-${i}`;
      const { publicKey, privateKey } = await generateKeyPair('EdDSA', { extractable: true });
      const kid = `k-${i}`;
      const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' };
      const response = await this.call('PUT', `/v1/admin/workloads/${id}`, { token: this.adminKey, json: { jwks: { keys: [publicJwk] } } });
      if (response.status >= 300) throw new Error(`PUT workload ${id}: ${response.status} ${JSON.stringify(response.body)}`);
      const privateJwk = await exportJWK(privateKey);
      const audience = this.url;
      const bot = { id, kid, privateJwk, assertion: undefined, signedAt: 0 };
      // A real bot reuses its assertion and signs a new one well before the old expires.
      bot.token = async () => {
        if (Date.now() - bot.signedAt > 60_000) {
          bot.assertion = await sign(id, kid, privateKey, audience);
          bot.signedAt = Date.now();
        }
        return bot.assertion;
      };
      bots.push(bot);
    }
    return bots;
  }

  /** Opens `perBot` order_status tasks for each bot: [{taskId, bot}]. */
  async openTasks(bots, perBot, { ttl = 3600 } = {}) {
    const tasks = [];
    for (const bot of bots) {
      await mapLimit(Array.from({ length: perBot }), 10, async () => {
        const task = await this.must(201, 'POST', '/v1/tasks', {
          token: await bot.token(),
          json: { intent: 'order_status', subject: `user-${tasks.length + 1}`, ttl },
        });
        tasks.push({ taskId: task.task_id, bot: bot.id });
      });
    }
    return tasks;
  }

  /** Issues a credential for setup (not measured): returns {lease_id, token}. */
  async issue(task, bot, resource = 'order/1') {
    const body = await this.must(201, 'POST', `/v1/tasks/${task}/credentials`, {
      token: await bot.token(),
      json: { boundary: 'crm-orders', action: 'orders:read', resource },
    });
    return { leaseId: body.lease_id, token: body.credential.access_token };
  }

  async introspect(token) {
    return this.must(200, 'POST', '/oauth2/introspect', { token: this.adminKey, form: { token } });
  }

  /**
   * Introspection over plain node:http with a keep-alive pool (leaner than fetch): for timing
   * many introspections from the orchestrator. Resolves with the parsed answer; non-200 rejects.
   */
  introspectFast(token) {
    this.agent ??= new http.Agent({ keepAlive: true, maxSockets: 50 });
    const body = `token=${encodeURIComponent(token)}`;
    const { hostname, port } = new URL(this.url);
    return new Promise((resolve, reject) => {
      const request = http.request(
        {
          agent: this.agent,
          hostname,
          port,
          method: 'POST',
          path: '/oauth2/introspect',
          timeout: 30_000,
          headers: {
            authorization: `Bearer ${this.adminKey}`,
            'content-type': 'application/x-www-form-urlencoded',
            'content-length': Buffer.byteLength(body),
          },
        },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk) => (text += chunk));
          response.on('end', () => {
            if (response.statusCode !== 200)
              reject(new Error(`POST /oauth2/introspect answered ${response.statusCode}: ${text.slice(0, 300)}`));
            else resolve(JSON.parse(text));
          });
        },
      );
      request.on('timeout', () => request.destroy(new Error('introspection timed out')));
      request.on('error', reject);
      request.end(body);
    });
  }
}

/** Bots' public view for the load generator (no CryptoKey objects: they do not cross IPC). */
export function botsForWorker(bots) {
  return bots.map(({ id, kid, privateJwk }) => ({ id, kid, privateJwk }));
}

export async function sign(id, kid, privateKey, audience, lifetimeS = 280) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' })
    .setIssuer(id)
    .setSubject(id)
    .setAudience(audience)
    .setIssuedAt(now)
    .setExpirationTime(now + lifetimeS)
    .setJti(crypto.randomUUID())
    .sign(privateKey);
}

export async function mapLimit(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  });
  await Promise.all(workers);
  return results;
}
