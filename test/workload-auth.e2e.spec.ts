import { createHmac, KeyObject, randomUUID, sign as nodeSign } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { connect } from './support/database.js';
import { call, type Response } from './support/http.js';
import { asAdmin, registerBot, type Bot } from './support/scenario.js';
import { assertion, workloadKey, type WorkloadKey } from './support/workload.js';

/**
 * Workload authentication through the real HTTP app: every forged, stale, misdirected or
 * self-keyed assertion gets 401 invalid_client and opens no task; good ones (EdDSA and ES256,
 * within leeway, reused until expiry, SPIFFE ids) get in.
 */

let broker: TestBroker;
let pgClient: pg.Client | undefined;
/** Added to the broker's clock (ms), so expiry of a reused assertion can be tested without waiting. */
let skewMs = 0;
let ed: Bot;
let es: Bot;
let other: Bot;

beforeAll(async () => {
  broker = await startBroker({ clock: { now: () => Date.now() + skewMs } });
  if (broker.db.databaseUrl) pgClient = await connect(broker.db.databaseUrl);
  ed = await registerBot(broker, 'chatbot', 'EdDSA');
  es = await registerBot(broker, 'es-bot', 'ES256');
  other = await registerBot(broker, 'other-bot', 'EdDSA');
});
afterAll(async () => {
  await pgClient?.end().catch(() => {});
  await broker?.close();
});

/** Rows in the tasks table, read straight from the database (an independent connection on PostgreSQL). */
async function taskCount(): Promise<number> {
  const text = 'SELECT count(*)::int AS n FROM tasks';
  if (pgClient) return (await pgClient.query<{ n: number }>(text)).rows[0]!.n;
  return (await broker.app.broker.db.query<{ n: number }>(text)).rows[0]!.n;
}

async function openTaskWith(authorization: string | undefined): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (authorization !== undefined) headers.authorization = authorization;
  const response = await fetch(`${broker.url}/v1/tasks`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ intent: 'order_status', subject: 'user-42' }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
}

/** POST /v1/tasks must answer 401 invalid_client and leave the tasks table as it was. */
async function expectRefused(authorization: string | undefined, label: string): Promise<Response> {
  const before = await taskCount();
  const response = await openTaskWith(authorization);
  expect(response.status, `${label}: ${JSON.stringify(response.body)}`).toBe(401);
  expect(response.body, label).toMatchObject({ error: 'invalid_client' });
  expect(response.body.error_description, label).toBeTypeOf('string');
  expect(Object.keys(response.body).sort(), label).toEqual(['error', 'error_description']);
  expect(response.headers.get('www-authenticate'), label).toBe('Bearer error="invalid_client"');
  expect(await taskCount(), `${label}: no task may be created`).toBe(before);
  return response;
}

async function expectAccepted(token: string, label: string, workloadId: string): Promise<string> {
  const before = await taskCount();
  const response = await openTaskWith(`Bearer ${token}`);
  expect(response.status, `${label}: ${JSON.stringify(response.body)}`).toBe(201);
  expect(response.body).toMatchObject({ intent: 'order_status', subject: 'user-42', state: 'active', workload_id: workloadId });
  expect(await taskCount()).toBe(before + 1);
  return response.body.task_id as string;
}

const b64json = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
const nowS = () => Math.floor(Date.now() / 1000);

/** Standard claims of a workload assertion, overridable member by member (undefined removes one). */
function claims(workloadId: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowS();
  const base: Record<string, unknown> = { iss: workloadId, sub: workloadId, aud: broker.url, iat: now, exp: now + 120, jti: randomUUID() };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete base[name];
    else base[name] = value;
  }
  return base;
}

/**
 * A JWT built and signed by hand with node:crypto, so headers jose refuses to produce can be made.
 * ES256 signatures are JOSE's raw 64 bytes unless `der` asks for the DER encoding.
 */
function handToken(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  key: WorkloadKey,
  options: { der?: boolean } = {},
): string {
  const input = Buffer.from(`${b64json(header)}.${b64json(payload)}`, 'ascii');
  const privateKey = KeyObject.from(key.privateKey as Parameters<typeof KeyObject.from>[0]);
  const signature =
    key.alg === 'EdDSA'
      ? nodeSign(null, input, privateKey)
      : nodeSign('sha256', input, { key: privateKey, dsaEncoding: options.der ? 'der' : 'ieee-p1363' });
  return `${input.toString('ascii')}.${signature.toString('base64url')}`;
}

function hmacToken(header: Record<string, unknown>, payload: Record<string, unknown>, secret: Buffer | string): string {
  const input = `${b64json(header)}.${b64json(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function headerOf(bot: Bot, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { alg: bot.key.alg, kid: bot.key.kid, typ: 'JWT', ...extra };
}

describe('workload authentication: what gets in', () => {
  it('accepts EdDSA and ES256 workloads, through jose and through the hand-built tokens the refusals below use', async () => {
    await expectAccepted(await assertion(ed.id, ed.key, broker.url), 'EdDSA via jose', 'chatbot');
    await expectAccepted(await assertion(es.id, es.key, broker.url), 'ES256 via jose', 'es-bot');
    await expectAccepted(handToken(headerOf(ed), claims(ed.id), ed.key), 'EdDSA by hand', 'chatbot');
    await expectAccepted(handToken(headerOf(es), claims(es.id), es.key), 'ES256 by hand (raw 64-byte signature)', 'es-bot');
    // No kid: the workload's keys for the algorithm are tried.
    await expectAccepted(handToken({ alg: 'EdDSA' }, claims(ed.id), ed.key), 'EdDSA without kid', 'chatbot');
    // An nbf in the past, and the longest lifetime allowed.
    const now = nowS();
    await expectAccepted(handToken(headerOf(ed), claims(ed.id, { nbf: now - 5 }), ed.key), 'nbf in the past', 'chatbot');
    await expectAccepted(handToken(headerOf(ed), claims(ed.id, { iat: now, exp: now + 300 }), ed.key), 'exp - iat = 300 s', 'chatbot');
  });

  it('gives 30 s of clock leeway on exp, iat and nbf', async () => {
    const now = nowS();
    await expectAccepted(handToken(headerOf(ed), claims(ed.id, { iat: now - 100, exp: now - 20 }), ed.key), 'expired 20 s ago', 'chatbot');
    await expectAccepted(
      handToken(headerOf(ed), claims(ed.id, { iat: now + 20, exp: now + 120 }), ed.key),
      'issued 20 s in the future',
      'chatbot',
    );
    await expectAccepted(handToken(headerOf(es), claims(es.id, { nbf: now + 20 }), es.key), 'not before 20 s from now', 'es-bot');
  });

  it('lets an assertion be reused for several requests until it expires, leeway included', async () => {
    const now = nowS();
    const token = handToken(headerOf(ed), claims(ed.id, { iat: now, exp: now + 60 }), ed.key);
    const tasks = new Set<string>();
    for (let i = 0; i < 4; i++) tasks.add(await expectAccepted(token, `reuse #${i + 1}`, 'chatbot'));
    expect(tasks.size).toBe(4);
    // A reused (cached) assertion follows the same rules as a fresh one.
    try {
      skewMs = 80_000; // 20 s past exp: inside the leeway
      await expectAccepted(token, 'reused 20 s after exp', 'chatbot');
      skewMs = 95_000; // 35 s past exp: beyond it
      await expectRefused(`Bearer ${token}`, 'reused 35 s after exp');
      // The clock is not the problem: a fresh assertion made for that time gets in.
      const later = nowS() + 95;
      await expectAccepted(
        handToken(headerOf(ed), claims(ed.id, { iat: later, exp: later + 60 }), ed.key),
        'fresh assertion at the later time',
        'chatbot',
      );
    } finally {
      skewMs = 0;
    }
  });

  it('remembers a verified assertion: its reuse costs no second signature check', async () => {
    // White-box: swap the stored keys behind the broker's back, leaving the revision alone. A reused
    // assertion is still accepted from the cache; one never seen before must be verified and fails.
    const bot = await registerBot(broker, 'cached-bot');
    const used = await bot.token();
    const unused = await assertion(bot.id, bot.key, broker.url);
    await expectAccepted(used, 'first use', 'cached-bot');
    const stranger = await workloadKey('EdDSA', bot.key.kid);
    const tamper = 'UPDATE workloads SET jwks = $1 WHERE id = $2';
    const params = [JSON.stringify({ keys: [stranger.publicJwk] }), bot.id];
    if (pgClient) await pgClient.query(tamper, params);
    else await broker.app.broker.db.query(tamper, params);
    await expectAccepted(used, 'reuse from the cache', 'cached-bot');
    // The workload row itself is cached for a second (a change through the API is seen at once).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await expectRefused(`Bearer ${unused}`, 'an assertion never verified before');
  });

  it('authenticates a workload registered under a SPIFFE ID with iss = sub = that ID', async () => {
    const spiffeId = 'spiffe://acme.test/chatbot';
    const key = await workloadKey('EdDSA');
    const put = await asAdmin(broker)('PUT', '/v1/admin/workloads/spiffe%3A%2F%2Facme.test%2Fchatbot', { jwks: { keys: [key.publicJwk] } });
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    expect(put.body).toMatchObject({ id: spiffeId, enabled: true });
    const got = await asAdmin(broker)('GET', '/v1/admin/workloads/spiffe%3A%2F%2Facme.test%2Fchatbot');
    expect(got.status).toBe(200);
    expect(got.body.id).toBe(spiffeId);

    const taskId = await expectAccepted(await assertion(spiffeId, key, broker.url), 'SPIFFE workload', spiffeId);
    const shown = await call(broker.url, 'GET', `/v1/tasks/${taskId}`, { token: await assertion(spiffeId, key, broker.url) });
    expect(shown.status).toBe(200);
    expect(shown.body.workload_id).toBe(spiffeId);
    // The same key does not speak for a sibling SPIFFE ID, nor for the slug-shaped tail of the ID.
    await expectRefused(`Bearer ${await assertion('spiffe://acme.test/other', key, broker.url)}`, 'another SPIFFE ID');
    await expectRefused(`Bearer ${await assertion('chatbot', key, broker.url)}`, 'SPIFFE key used for slug workload');
  });
});

describe('workload authentication: what is refused with 401 invalid_client', () => {
  it('refuses a missing header, another scheme and garbage', async () => {
    const good = await assertion(ed.id, ed.key, broker.url);
    await expectRefused(undefined, 'no Authorization header');
    await expectRefused('', 'empty Authorization header');
    await expectRefused('Bearer', 'Bearer without a token');
    await expectRefused('Bearer ', 'Bearer with a blank token');
    await expectRefused(`Basic ${Buffer.from('chatbot:secret').toString('base64')}`, 'Basic scheme');
    await expectRefused(`Token ${good}`, 'a valid assertion under a non-Bearer scheme');
    await expectRefused(`DPoP ${good}`, 'a valid assertion under the DPoP scheme');
    await expectRefused(`Bearer ${good} ${good}`, 'two tokens');
    await expectRefused('Bearer garbage', 'garbage token');
    await expectRefused('Bearer a.b.c', 'three garbage segments');
    await expectRefused(`Bearer ${good.split('.').slice(0, 2).join('.')}`, 'a JWT without its signature segment');
    await expectRefused(`Bearer ${good}.extra`, 'a JWT with a fourth segment');
    await expectRefused(
      `Bearer ${b64json({ alg: 'EdDSA' })}.${Buffer.from('not json').toString('base64url')}.sig`,
      'a payload that is not JSON',
    );
    await expectRefused(`Bearer ${b64json({ alg: 'EdDSA' })}.${b64json(['array'])}.sig`, 'a payload that is not an object');
    await expectRefused(`Bearer ${'x'.repeat(9000)}`, 'an oversized token');
  });

  it('refuses alg none (unsigned) tokens', async () => {
    for (const alg of ['none', 'None', 'NONE']) {
      await expectRefused(`Bearer ${b64json({ alg, typ: 'JWT', kid: ed.key.kid })}.${b64json(claims(ed.id))}.`, `alg ${alg} with kid`);
      await expectRefused(`Bearer ${b64json({ alg, typ: 'JWT' })}.${b64json(claims(ed.id))}.`, `alg ${alg} without kid`);
    }
    // A real signature under a header that says none is no better.
    const signed = handToken(headerOf(ed), claims(ed.id), ed.key).split('.');
    await expectRefused(
      `Bearer ${b64json({ alg: 'none', kid: ed.key.kid })}.${signed[1]}.${signed[2]}`,
      'alg none with a signature attached',
    );
    // Nor is a header with no alg at all.
    await expectRefused(`Bearer ${handToken({ kid: ed.key.kid, typ: 'JWT' }, claims(ed.id), ed.key)}`, 'no alg');
  });

  it('refuses HMAC (HS256/384/512) tokens keyed with the public key or any secret', async () => {
    const publicKey = KeyObject.from(ed.key.privateKey as Parameters<typeof KeyObject.from>[0]);
    const spki = (await import('node:crypto')).createPublicKey(publicKey).export({ type: 'spki', format: 'pem' }) as string;
    const secrets: Array<[string, Buffer | string]> = [
      ['raw public key bytes', Buffer.from(ed.key.publicJwk.x!, 'base64url')],
      ['public key as base64url', ed.key.publicJwk.x!],
      ['public key JWK JSON', JSON.stringify(ed.key.publicJwk)],
      ['public key SPKI PEM', spki],
      ['a secret', 'secret'],
      ['the admin key', broker.adminKey],
    ];
    for (const [label, secret] of secrets) {
      for (const alg of ['HS256', 'HS384', 'HS512']) {
        await expectRefused(`Bearer ${hmacToken({ alg, typ: 'JWT', kid: ed.key.kid }, claims(ed.id), secret)}`, `${alg} with ${label}`);
      }
      await expectRefused(`Bearer ${hmacToken({ alg: 'HS256', typ: 'JWT' }, claims(ed.id), secret)}`, `HS256 without kid, ${label}`);
    }
  });

  it('refuses an algorithm that does not fit the key, whatever the header claims', async () => {
    // Signed correctly with the Ed25519 key, but the header names ES256 / RS256.
    await expectRefused(`Bearer ${handToken({ ...headerOf(ed), alg: 'ES256' }, claims(ed.id), ed.key)}`, 'Ed25519 key, header ES256');
    await expectRefused(`Bearer ${handToken({ ...headerOf(ed), alg: 'RS256' }, claims(ed.id), ed.key)}`, 'Ed25519 key, header RS256');
    await expectRefused(`Bearer ${handToken({ ...headerOf(es), alg: 'EdDSA' }, claims(es.id), es.key)}`, 'P-256 key, header EdDSA');
    await expectRefused(`Bearer ${handToken({ ...headerOf(es), alg: 'ES384' }, claims(es.id), es.key)}`, 'P-256 key, header ES384');
    await expectRefused(`Bearer ${handToken({ ...headerOf(ed), alg: ['EdDSA'] }, claims(ed.id), ed.key)}`, 'alg as an array');
    await expectRefused(`Bearer ${handToken({ ...headerOf(ed), alg: 'eddsa' }, claims(ed.id), ed.key)}`, 'alg in the wrong case');
    await expectRefused(`Bearer ${handToken({ ...headerOf(ed), kid: 1 }, claims(ed.id), ed.key)}`, 'kid as a number');
  });

  it('refuses an unknown kid and a key of another registered workload', async () => {
    await expectRefused(`Bearer ${handToken({ ...headerOf(ed), kid: 'no-such-kid' }, claims(ed.id), ed.key)}`, 'unknown kid');
    // other-bot signs, claiming to be chatbot: with its own kid, with chatbot's kid, and with none.
    await expectRefused(`Bearer ${handToken(headerOf(other), claims(ed.id), other.key)}`, "another workload's key and kid");
    await expectRefused(`Bearer ${handToken(headerOf(ed), claims(ed.id), other.key)}`, "another workload's key under the victim's kid");
    await expectRefused(`Bearer ${handToken({ alg: 'EdDSA' }, claims(ed.id), other.key)}`, "another workload's key without kid");
    await expectRefused(`Bearer ${await assertion(ed.id, other.key, broker.url)}`, "jose-signed with another workload's key");
    // The signature is checked over the payload: a good header+signature glued to a changed payload fails.
    const [h, , s] = handToken(headerOf(ed), claims(ed.id), ed.key).split('.');
    await expectRefused(`Bearer ${h}.${b64json(claims(other.id))}.${s}`, 'payload swapped under a valid signature');
  });

  it('refuses tokens whose header embeds jwk, jku, x5u or x5c, even when the signature verifies', async () => {
    const attacker = await workloadKey('EdDSA', ed.key.kid);
    const embedded: Array<[string, unknown]> = [
      ['jwk', ed.key.publicJwk],
      ['jku', `${broker.url}/.well-known/jwks.json`],
      ['x5u', 'https://attacker.test/cert.pem'],
      ['x5c', ['MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA']],
      ['x5t', 'AAAA'],
      ['x5t#S256', 'AAAA'],
    ];
    for (const [name, value] of embedded) {
      await expectRefused(
        `Bearer ${handToken(headerOf(ed, { [name]: value }), claims(ed.id), ed.key)}`,
        `${name} header, signed by the registered key`,
      );
    }
    // The classic attack: the attacker's own key embedded and used to sign.
    await expectRefused(
      `Bearer ${handToken(headerOf(ed, { jwk: attacker.publicJwk }), claims(ed.id), attacker)}`,
      'self-signed with an embedded jwk',
    );
  });

  it('refuses an unknown crit header', async () => {
    await expectRefused(`Bearer ${handToken(headerOf(ed, { crit: ['foo'], foo: 1 }), claims(ed.id), ed.key)}`, 'crit ["foo"]');
    await expectRefused(`Bearer ${handToken(headerOf(ed, { crit: ['foo'] }), claims(ed.id), ed.key)}`, 'crit naming an absent member');
    await expectRefused(`Bearer ${handToken(headerOf(ed, { crit: [] }), claims(ed.id), ed.key)}`, 'empty crit');
    await expectRefused(`Bearer ${handToken(headerOf(ed, { crit: 'foo', foo: 1 }), claims(ed.id), ed.key)}`, 'crit not an array');
    await expectRefused(
      `Bearer ${handToken(headerOf(ed, { crit: ['b64'], b64: false }), claims(ed.id), ed.key)}`,
      'unencoded payload (b64: false)',
    );
  });

  it('refuses stale, early, overlong and misdirected assertions', async () => {
    const now = nowS();
    const cases: Array<[string, Record<string, unknown>]> = [
      ['expired 40 s ago', { iat: now - 100, exp: now - 40 }],
      ['expired an hour ago', { iat: now - 3700, exp: now - 3600 }],
      ['issued 40 s in the future', { iat: now + 40, exp: now + 140 }],
      ['issued an hour in the future', { iat: now + 3600, exp: now + 3700 }],
      ['not before 40 s from now', { nbf: now + 40 }],
      ['lifetime 301 s', { iat: now, exp: now + 301 }],
      ['lifetime one day', { iat: now - 10, exp: now + 86_400 }],
      ['exp before iat', { iat: now, exp: now - 60 }],
      ['no exp', { exp: undefined }],
      ['no iat', { iat: undefined }],
      ['exp not a number', { exp: String(now + 60) }],
      ['iat not a number', { iat: String(now) }],
      ['wrong audience', { aud: 'https://elsewhere.test' }],
      ['audience with a trailing slash', { aud: `${broker.url}/` }],
      ['no audience', { aud: undefined }],
      ['iss != sub', { sub: other.id }],
      ['sub names another workload', { iss: other.id }],
      ['no iss', { iss: undefined }],
      ['no sub', { sub: undefined }],
      ['iss not a string', { iss: 42, sub: 42 }],
      ['iss names an unknown workload', { iss: 'ghost', sub: 'ghost' }],
      ['iss names an invalid id', { iss: '../chatbot', sub: '../chatbot' }],
    ];
    for (const [label, overrides] of cases) {
      await expectRefused(`Bearer ${handToken(headerOf(ed), claims(ed.id, overrides), ed.key)}`, label);
    }
  });

  it('refuses an ES256 signature in DER form instead of the 64-byte JOSE form', async () => {
    const der = handToken(headerOf(es), claims(es.id), es.key, { der: true });
    const raw = handToken(headerOf(es), claims(es.id), es.key);
    expect(Buffer.from(der.split('.')[2]!, 'base64url').length).toBeGreaterThan(64);
    expect(Buffer.from(raw.split('.')[2]!, 'base64url').length).toBe(64);
    await expectRefused(`Bearer ${der}`, 'DER-encoded ES256 signature');
    await expectAccepted(raw, 'the same claims with a raw signature', 'es-bot');
  });

  it('refuses an assertion signed by a key replaced by the admin, even one used (cached) before', async () => {
    const bot = await registerBot(broker, 'rotating', 'EdDSA');
    const used = await bot.token();
    const unused = await assertion(bot.id, bot.key, broker.url);
    await expectAccepted(used, 'before rotation', 'rotating');

    const fresh = await workloadKey('EdDSA');
    const put = await asAdmin(broker)('PUT', '/v1/admin/workloads/rotating', { jwks: { keys: [fresh.publicJwk] } });
    expect(put.status).toBe(200);
    await expectRefused(`Bearer ${used}`, 'old key, cached assertion');
    await expectRefused(`Bearer ${unused}`, 'old key, never used assertion');
    await expectAccepted(await assertion(bot.id, fresh, broker.url), 'new key', 'rotating');

    // The old key under the new key's kid fails too (the signature decides, not the kid).
    const rekeyed = { ...bot.key, kid: fresh.kid };
    await expectRefused(`Bearer ${await assertion(bot.id, rekeyed, broker.url)}`, "old key claiming the new key's kid");
  });

  it('refuses a disabled workload: after DELETE and after the kill switch, cached assertions included', async () => {
    for (const how of ['delete', 'kill-switch'] as const) {
      const id = `doomed-${how}`;
      const bot = await registerBot(broker, id, how === 'delete' ? 'EdDSA' : 'ES256');
      const used = await bot.token();
      await expectAccepted(used, `${how}: before`, id);
      const response =
        how === 'delete'
          ? await asAdmin(broker)('DELETE', `/v1/admin/workloads/${id}`)
          : await asAdmin(broker)('POST', `/v1/admin/workloads/${id}/revoke`);
      expect(response.status, JSON.stringify(response.body)).toBe(200);
      expect(response.body).toMatchObject({ workload_id: id, enabled: false });
      await expectRefused(`Bearer ${used}`, `${how}: cached assertion`);
      await expectRefused(`Bearer ${await assertion(id, bot.key, broker.url)}`, `${how}: fresh assertion`);
      expect((await asAdmin(broker)('GET', `/v1/admin/workloads/${id}`)).body.enabled).toBe(false);
    }
  });

  it('does not accept a workload assertion as an admin key, nor an admin key as a workload assertion', async () => {
    const token = await assertion(ed.id, ed.key, broker.url);
    const admin = await call(broker.url, 'GET', '/v1/admin/workloads', { token });
    expect(admin.status).toBe(401);
    expect(admin.body.error).toBe('invalid_client');
    await expectRefused(`Bearer ${broker.adminKey}`, 'admin key on a bot route');
  });
});
