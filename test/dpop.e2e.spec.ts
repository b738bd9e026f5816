import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import * as DPoP from 'dpop';
import { calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type TestBroker } from './support/broker.js';
import { call } from './support/http.js';
import { asAdmin, introspect, putBoundary, registerBot, type Bot } from './support/scenario.js';

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const insecure = { [oauth.allowInsecureRequests]: true };
const client: oauth.Client = { client_id: 'chatbot' };

let broker: TestBroker;
let bot: Bot;
let as: oauth.AuthorizationServer;

beforeAll(async () => {
  broker = await startBroker();
  await putBoundary(broker, 'crm-orders');
  bot = await registerBot(broker);
  const issuer = new URL(broker.url);
  as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }));
});
afterAll(() => broker?.close());

const credentialsUrl = (taskId: string) => `${broker.url}/v1/tasks/${taskId}/credentials`;

/** POST /v1/tasks/{id}/credentials with the given DPoP header lines (node:http sends each on its own line). */
function requestCredential(taskId: string, proofs: string[]): Promise<{ status: number; body: any }> {
  return bot.token().then(
    (token) =>
      new Promise((resolve, reject) => {
        const body = JSON.stringify({ boundary: 'crm-orders', action: 'orders:read' });
        const headers: Record<string, string | string[]> = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
        if (proofs.length > 0) headers.DPoP = proofs.length === 1 ? proofs[0]! : proofs;
        const req = httpRequest(credentialsUrl(taskId), { method: 'POST', headers }, (res) => {
          let text = '';
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.end(body);
      }),
  );
}

/** A proof made by hand with jose, to get each part wrong on purpose. */
async function handmade(options: {
  htu: string;
  header?: Record<string, unknown>;
  claims?: Record<string, unknown>;
  alg?: string;
  key?: { privateKey: CryptoKey | Uint8Array; jwk: JWK };
}): Promise<string> {
  const key = options.key ?? (await ecKey());
  return new SignJWT({ htm: 'POST', htu: options.htu, iat: Math.floor(Date.now() / 1000), jti: randomUUID(), ...options.claims })
    .setProtectedHeader({ alg: options.alg ?? 'ES256', typ: 'dpop+jwt', jwk: key.jwk, ...options.header })
    .sign(key.privateKey);
}

async function ecKey(): Promise<{ privateKey: CryptoKey; jwk: JWK; privateJwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  return { privateKey, jwk: await exportJWK(publicKey), privateJwk: await exportJWK(privateKey) };
}

async function counts(taskId: string): Promise<{ leases: number; decisions: number }> {
  const leases = await asAdmin(broker)('GET', `/v1/leases?task=${taskId}`);
  const decisions = await asAdmin(broker)('GET', `/v1/decisions?task=${taskId}`);
  return { leases: leases.body.items.length, decisions: decisions.body.items.length };
}

describe('DPoP-bound credentials (RFC 9449)', () => {
  it('are advertised in the metadata', async () => {
    const metadata = (await call(broker.url, 'GET', '/.well-known/oauth-authorization-server')).body;
    expect(metadata.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'EdDSA', 'PS256', 'RS256']));
    expect(metadata.dpop_signing_alg_values_supported.some((alg: string) => alg.startsWith('HS') || alg === 'none')).toBe(false);
  });

  it('on /v1: the token is bound to the proof key (cnf.jkt), says DPoP, and introspects with cnf', async () => {
    const keypair = await DPoP.generateKeyPair('ES256');
    const taskId = await bot.openTask();
    const proof = await DPoP.generateProof(keypair, credentialsUrl(taskId), 'POST');
    const response = await requestCredential(taskId, [proof]);
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    expect(response.body.credential.token_type).toBe('DPoP');
    const token = response.body.credential.access_token as string;
    const jkt = await DPoP.calculateThumbprint(keypair.publicKey);
    expect(decodeJwt(token).cnf).toEqual({ jkt });
    expect(await introspect(broker, token)).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt } });
    const { rows } = await broker.app.broker.db.query<{ data: { cnf_jkt?: string } }>(
      `SELECT data FROM audit_events WHERE kind = 'credential.permit' AND lease_id = $1`,
      [response.body.lease_id],
    );
    expect(rows[0]!.data.cnf_jkt).toBe(jkt);

    // Without a DPoP header: a bearer token, and no proof is recorded.
    const before = await broker.app.broker.db.query<{ n: number }>('SELECT count(*)::int AS n FROM dpop_proofs');
    const bearer = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    expect(bearer.body.credential.token_type).toBe('Bearer');
    expect(decodeJwt(bearer.body.credential.access_token)).not.toHaveProperty('cnf');
    const introspected = await introspect(broker, bearer.body.credential.access_token);
    expect(introspected).toMatchObject({ active: true, token_type: 'Bearer' });
    expect(introspected).not.toHaveProperty('cnf');
    expect((await broker.app.broker.db.query<{ n: number }>('SELECT count(*)::int AS n FROM dpop_proofs')).rows[0]!.n).toBe(
      before.rows[0]!.n,
    );
  });

  it('on /oauth2/token: oauth4webapi with a DPoP handle gets a DPoP-bound token', async () => {
    const taskId = await bot.openTask();
    const keypair = await oauth.generateKeyPair('ES256');
    const dpop = oauth.DPoP(client, keypair);
    const parameters = {
      subject_token: await bot.token(),
      subject_token_type: JWT_TYPE,
      audience: 'https://crm.acme.test',
      scope: 'orders:read',
      authorization_details: JSON.stringify([{ type: 'tool_call', task_id: taskId, boundary: 'crm-orders', action: 'orders:read' }]),
    };
    const response = await oauth.genericTokenEndpointRequest(as, client, oauth.None(), GRANT, parameters, { DPoP: dpop, ...insecure });
    const result = await oauth.processGenericTokenEndpointResponse(as, client, response);
    expect(result.token_type).toBe('dpop');
    const jkt = await dpop.calculateThumbprint();
    expect(jkt).toBe(await calculateJwkThumbprint(await exportJWK(keypair.publicKey)));
    expect(decodeJwt(result.access_token).cnf).toEqual({ jkt });
    expect(await introspect(broker, result.access_token)).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt } });

    // The same proof twice: refused the second time, and nothing is decided.
    const proof = await DPoP.generateProof(await DPoP.generateKeyPair('ES256'), `${broker.url}/oauth2/token`, 'POST');
    const form = new URLSearchParams({ grant_type: GRANT, ...parameters }).toString();
    const send = (dpopProof: string) =>
      fetch(`${broker.url}/oauth2/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: dpopProof },
        body: form,
      });
    expect((await send(proof)).status).toBe(200);
    const before = await counts(taskId);
    const replayed = await send(proof);
    expect(replayed.status).toBe(400);
    expect(((await replayed.json()) as { error: string }).error).toBe('invalid_dpop_proof');
    const wrongUri = await send(await DPoP.generateProof(await DPoP.generateKeyPair('ES256'), credentialsUrl(taskId), 'POST'));
    expect(wrongUri.status).toBe(400);
    expect(((await wrongUri.json()) as { error: string }).error).toBe('invalid_dpop_proof');
    expect(await counts(taskId)).toEqual(before);
  });

  it('refuses every bad proof with 400 invalid_dpop_proof, creating no lease and no decision', async () => {
    const taskId = await bot.openTask();
    const htu = credentialsUrl(taskId);
    const key = await ecKey();
    const keypair = await DPoP.generateKeyPair('ES256');
    const good = await DPoP.generateProof(keypair, htu, 'POST');
    // The control: a proof made the same way by hand is accepted.
    expect((await requestCredential(taskId, [await handmade({ htu, key })])).status).toBe(201);
    expect((await requestCredential(taskId, [good])).status).toBe(201);
    const before = await counts(taskId);

    const hmacKey = new Uint8Array(32).fill(7);
    const flipped = good.slice(0, -6) + (good.at(-6) === 'A' ? 'B' : 'A') + good.slice(-5);
    const cases: Array<[string, string[]]> = [
      ['wrong typ', [await handmade({ htu, key, header: { typ: 'JWT' } })]],
      ['wrong htm', [await DPoP.generateProof(keypair, htu, 'GET')]],
      ['wrong htu', [await DPoP.generateProof(keypair, `${broker.url}/v1/tasks/${randomUUID()}/credentials`, 'POST')]],
      ['another host in htu', [await DPoP.generateProof(keypair, htu.replace('127.0.0.1', 'localhost'), 'POST')]],
      ['stale iat', [await handmade({ htu, key, claims: { iat: Math.floor(Date.now() / 1000) - 120 } })]],
      ['iat in the future', [await handmade({ htu, key, claims: { iat: Math.floor(Date.now() / 1000) + 120 } })]],
      ['no jti', [await handmade({ htu, key, claims: { jti: undefined } })]],
      ['replayed jti', [good]],
      [
        'HS256',
        [
          await handmade({
            htu,
            alg: 'HS256',
            key: { privateKey: hmacKey, jwk: { kty: 'oct', k: Buffer.from(hmacKey).toString('base64url') } },
          }),
        ],
      ],
      ['private key in jwk', [await handmade({ htu, key: { privateKey: key.privateKey, jwk: key.privateJwk } })]],
      ['no jwk', [await handmade({ htu, key, header: { jwk: undefined } })]],
      [
        'alg none',
        [
          `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'dpop+jwt', jwk: key.jwk })).toString('base64url')}.${Buffer.from(JSON.stringify({ htm: 'POST', htu, iat: Math.floor(Date.now() / 1000), jti: randomUUID() })).toString('base64url')}.`,
        ],
      ],
      ['bad signature', [flipped]],
      ['not a JWT', ['garbage']],
      ['two headers', [await DPoP.generateProof(keypair, htu, 'POST'), await DPoP.generateProof(keypair, htu, 'POST')]],
    ];
    for (const [name, proofs] of cases) {
      const response = await requestCredential(taskId, proofs);
      expect(response.status, name).toBe(400);
      expect(response.body.error, name).toBe('invalid_dpop_proof');
      expect(typeof response.body.error_description, name).toBe('string');
    }
    expect(await counts(taskId)).toEqual(before);
  });

  it('refuses a proof replayed on another replica', async (context) => {
    // Two brokers on one database need PostgreSQL: PGlite is one process's database.
    if (broker.db.kind !== 'postgres') context.skip();
    const second = await startBroker({
      db: broker.db,
      env: { TOLLGATE_ADMIN_KEY: broker.adminKey, TOLLGATE_KEK: broker.kek, TOLLGATE_ISSUER: broker.url },
    });
    try {
      const taskId = await bot.openTask();
      const proof = await DPoP.generateProof(await DPoP.generateKeyPair('ES256'), credentialsUrl(taskId), 'POST');
      expect((await requestCredential(taskId, [proof])).status).toBe(201);
      const again = await call(second.url, 'POST', `/v1/tasks/${taskId}/credentials`, {
        token: await bot.token(),
        json: { boundary: 'crm-orders', action: 'orders:read' },
      });
      expect(again.status).toBe(201); // the bearer path on the second replica works
      const replayed = await fetch(`${second.url}/v1/tasks/${taskId}/credentials`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await bot.token()}`, 'content-type': 'application/json', dpop: proof },
        body: JSON.stringify({ boundary: 'crm-orders', action: 'orders:read' }),
      });
      expect(replayed.status).toBe(400);
      expect(((await replayed.json()) as { error: string }).error).toBe('invalid_dpop_proof');
    } finally {
      await second.stop();
    }
  });

  it('the sweeper forgets used proofs once their iat window is over', async () => {
    await broker.app.broker.db.query(
      `INSERT INTO dpop_proofs (jti_hash, expires_at) VALUES ('old', now() - interval '2 minutes'), ('fresh', now() + interval '1 minute')`,
    );
    await broker.app.broker.sweeper.sweepOnce();
    const { rows } = await broker.app.broker.db.query<{ jti_hash: string }>(
      `SELECT jti_hash FROM dpop_proofs WHERE jti_hash IN ('old', 'fresh')`,
    );
    expect(rows.map((row) => row.jti_hash)).toEqual(['fresh']);
  });
});
