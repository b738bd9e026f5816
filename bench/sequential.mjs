// Median latency of one credential request over N sequential requests through each door, against
// the built broker started as its own process: `npm run bench:sequential -- [--pglite] [--n 1000]`.
// The two doors (POST /v1/tasks/{id}/credentials, JSON; POST /oauth2/token, RFC 8693 form) are
// measured interleaved, alternating which goes first, so drift on a noisy machine hits both alike.
// On PostgreSQL it creates (and drops) a fresh database on DATABASE_URL's server (default local).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import pg from 'pg';

const args = process.argv.slice(2);
const embedded = args.includes('--pglite');
const n = Number(args[args.indexOf('--n') + 1] ?? 1000) || 1000;
const port = 18000 + Math.floor(Math.random() * 1000);
const url = `http://127.0.0.1:${port}`;
const adminKey = randomBytes(32).toString('hex');
const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-bench-'));
const env = {
  ...process.env,
  PORT: String(port),
  TOLLGATE_ADMIN_KEY: adminKey,
  TOLLGATE_KEK: randomBytes(32).toString('base64'),
  TOLLGATE_DATA_DIR: dataDir,
  TOLLGATE_LOG_LEVEL: 'warn',
};

let dropDatabase = async () => {};
if (!embedded) {
  const server = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const name = `tollgate_bench_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: server });
  await client.connect();
  await client.query(`CREATE DATABASE ${name}`);
  await client.end();
  const target = new URL(server);
  target.pathname = `/${name}`;
  env.DATABASE_URL = target.toString();
  dropDatabase = async () => {
    const c = new pg.Client({ connectionString: server });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  };
} else {
  delete env.DATABASE_URL;
}

const broker = spawn(process.execPath, ['dist/apps/broker/main.js'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
try {
  await waitReady();
  const admin = (method, path, body) => request(method, path, adminKey, body);
  await admin('PUT', '/v1/admin/boundaries/crm-orders', {
    tool: 'https://crm.acme.test',
    actions: ['orders:read'],
    intents: ['order_status'],
    default_ttl: 60,
    max_ttl: 600,
    credential: { kind: 'jwt' },
  });
  const { publicKey, privateKey } = await generateKeyPair('EdDSA');
  await admin('PUT', '/v1/admin/workloads/chatbot', { jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1' }] } });
  const now = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: 'EdDSA', kid: 'k1' })
    .setIssuer('chatbot')
    .setSubject('chatbot')
    .setAudience(url)
    .setIssuedAt(now)
    .setExpirationTime(now + 300)
    .sign(privateKey);
  const task = await request('POST', '/v1/tasks', assertion, { intent: 'order_status', subject: 'user-1', ttl: 3600 });

  const body = { boundary: 'crm-orders', action: 'orders:read', resource: 'order/1' };
  const v1 = () => request('POST', `/v1/tasks/${task.task_id}/credentials`, assertion, body);
  const exchange = () =>
    requestForm('/oauth2/token', {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: assertion,
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      audience: 'https://crm.acme.test',
      scope: 'orders:read',
      authorization_details: JSON.stringify([{ type: 'tool_call', task_id: task.task_id, ...body }]),
    });
  // Warm-up: JIT, prepared statements and caches on both doors.
  for (let i = 0; i < 50; i++) {
    await v1();
    await exchange();
  }
  const samples = { v1: [], token: [] };
  const timed = async (name, fn) => {
    const start = process.hrtime.bigint();
    await fn();
    samples[name].push(Number(process.hrtime.bigint() - start) / 1e6);
  };
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) {
      await timed('v1', v1);
      await timed('token', exchange);
    } else {
      await timed('token', exchange);
      await timed('v1', v1);
    }
  }
  const summary = (list) => {
    list.sort((a, b) => a - b);
    const at = (q) => list[Math.min(list.length - 1, Math.floor(q * list.length))];
    return { median_ms: round(at(0.5)), p90_ms: round(at(0.9)), p99_ms: round(at(0.99)), max_ms: round(list.at(-1)) };
  };
  const v1Summary = summary(samples.v1);
  const tokenSummary = summary(samples.token);
  console.log(
    JSON.stringify({
      database: embedded ? 'pglite' : 'postgres',
      requests_per_door: n,
      v1_credentials: v1Summary,
      oauth2_token: tokenSummary,
      token_over_v1_median: round(tokenSummary.median_ms / v1Summary.median_ms),
    }),
  );
} finally {
  broker.kill('SIGTERM');
  await new Promise((resolve) => broker.once('exit', resolve));
  await dropDatabase();
  rmSync(dataDir, { recursive: true, force: true });
}

function round(x) {
  return Math.round(x * 100) / 100;
}

async function request(method, path, token, body) {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

async function requestForm(path, form) {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  const json = await response.json();
  if (response.status >= 300) throw new Error(`POST ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

async function waitReady() {
  for (let i = 0; i < 300; i++) {
    try {
      const response = await fetch(`${url}/readyz`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the broker did not become ready');
}
