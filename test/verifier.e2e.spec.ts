import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as DPoP from 'dpop';
import express from 'express';
import Fastify from 'fastify';
import fc from 'fast-check';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson as serverCanonicalJson } from '../libs/audit/index.js';
import {
  canonicalJson,
  createVerifier,
  expressErrors,
  expressVerifier,
  fastifyVerifier,
  InsufficientScope,
  InvalidDpopProof,
  InvalidToken,
  nodeAuthenticator,
  replyWithChallenge,
  TokenRevoked,
  VerifierUnavailable,
  writeChallenge,
  type Verifier,
  type VerifierOptions,
} from '../packages/verifier/index.js';
import type { TestBroker } from './support/broker.js';
import { call } from './support/http.js';
import { BOUNDARY, startWithBot, type Bot } from './support/scenario.js';

/**
 * @tollgate/verifier against a real broker: its tokens, its JWKS, its event stream and its
 * introspection. The verifier is the package's source, as a tool server would use its build.
 */

const TOOL = BOUNDARY.tool;
let broker: TestBroker;
let bot: Bot;
let issuer: string;
let apiKey: string;
const verifiers: Verifier[] = [];

/** A fetch that counts introspections and can cut the event stream (as a network would). */
function network() {
  const state = { introspections: 0, eventsDown: false, introspectionDown: false, streams: new Set<AbortController>() };
  const fetcher: typeof fetch = async (input, init) => {
    const url = String(input);
    if (url.endsWith('/oauth2/introspect')) {
      state.introspections += 1;
      if (state.introspectionDown) throw new TypeError('fetch failed (introspection down)');
    }
    if (url.endsWith('/v1/events')) {
      if (state.eventsDown) throw new TypeError('fetch failed (events down)');
      const controller = new AbortController();
      state.streams.add(controller);
      return fetch(input, { ...init, signal: AbortSignal.any([controller.signal, ...(init?.signal ? [init.signal] : [])]) });
    }
    return fetch(input, init);
  };
  return {
    state,
    fetch: fetcher,
    cutEvents() {
      state.eventsDown = true;
      for (const controller of state.streams) controller.abort();
      state.streams.clear();
    },
  };
}

function verifierWith(
  extra: Partial<VerifierOptions> = {},
  revocation: Partial<NonNullable<VerifierOptions['revocation']>> | false = {},
): Verifier {
  const verifier = createVerifier({
    issuer,
    audience: TOOL,
    ...(revocation === false ? {} : { revocation: { apiKey, url: broker.url, ...revocation } }),
    ...extra,
  });
  verifiers.push(verifier);
  return verifier;
}

async function credential(taskId: string, body: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  const response = await call(broker.url, 'POST', `/v1/tasks/${taskId}/credentials`, {
    token: await bot.token(),
    json: { boundary: 'crm-orders', action: 'orders:refund', resource: 'order/o-1', ...body },
    headers,
  });
  if (response.status !== 201) throw new Error(`credential: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body.credential.access_token as string;
}

const complete = async (taskId: string) => expect((await bot.call('POST', `/v1/tasks/${taskId}/complete`)).status).toBe(200);
const request = { method: 'POST', url: `${TOOL}/orders/o-1/refund` };

/**
 * A token's iat has one-second resolution: one issued in the second the stream connected may be
 * older than the stream and is introspected once. Tests that count no introspection start after it.
 */
async function nextSecond(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 1_000 - (Date.now() % 1_000) + 5));
}

beforeAll(async () => {
  ({ broker, bot } = await startWithBot());
  const key = await call(broker.url, 'POST', '/v1/admin/api-keys', {
    token: broker.adminKey,
    json: { role: 'resource_server', audience: TOOL, label: 'crm verifier' },
  });
  expect(key.status).toBe(201);
  apiKey = key.body.key;
  issuer = decodeJwt(await credential(await bot.openTask())).iss!;
}, 60_000);

afterAll(async () => {
  await Promise.all(verifiers.map((v) => v.close()));
  await broker?.close();
});

describe('the canonical JSON of the verifier and of the server', () => {
  it('agree on any JSON value (they are two copies that must stay in step)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(canonicalJson(value)).toBe(serverCanonicalJson(value));
      }),
      { numRuns: 500 },
    );
  });
});

describe('verifying real broker tokens', () => {
  it('accepts a good token and names its call; checkCall refuses another action or resource', async () => {
    const verifier = verifierWith();
    await verifier.ready();
    const token = await credential(await bot.openTask(), { params: { amount: 49 } });
    const verified = await verifier.verify(token, request);
    expect(verified.toolCall).toMatchObject({ type: 'tool_call', boundary: 'crm-orders', action: 'orders:refund', resource: 'order/o-1' });
    expect(() => verified.checkCall({ action: 'orders:read', resource: 'order/o-1', params: { amount: 49 } })).toThrow(InsufficientScope);
    expect(() => verified.checkCall({ action: 'orders:refund', resource: 'order/o-2', params: { amount: 49 } })).toThrow(InsufficientScope);
    expect(() => verified.checkCall({ action: 'orders:refund', resource: 'order/o-1', params: { amount: 5000 } })).toThrow(
      InsufficientScope,
    );
    // The broker names the params' digest: the exact call passes, and only it.
    expect(verified.toolCall.params_digest).toEqual(expect.any(String));
    expect(() => verified.checkCall({ action: 'orders:refund', resource: 'order/o-1', params: { amount: 49 } })).not.toThrow();
  });

  it('refuses an expired token and a token for another tool (InvalidToken)', async () => {
    const token = await credential(await bot.openTask(), { ttl: 60 });
    const later = verifierWith({ now: () => Date.now() + 120_000 }, false);
    await expect(later.verify(token, request)).rejects.toThrow(InvalidToken);
    await expect(later.verify(token, request)).rejects.toThrow(/exp/);
    const billing = verifierWith({ audience: 'https://billing.acme.test' }, false);
    await expect(billing.verify(token, request)).rejects.toThrow(/aud/);
  });

  it('refuses a DPoP-bound token presented as a bearer token, accepts it with its proof, and refuses the proof replayed', async () => {
    const verifier = verifierWith({}, false);
    const keypair = await DPoP.generateKeyPair('ES256');
    const taskId = await bot.openTask();
    const htu = `${broker.url}/v1/tasks/${taskId}/credentials`;
    const token = await credential(taskId, {}, { dpop: await DPoP.generateProof(keypair, htu, 'POST') });
    expect(decodeJwt(token).cnf).toEqual({ jkt: expect.any(String) });

    await expect(verifier.verifyRequest({ ...request, headers: { authorization: `Bearer ${token}` } })).rejects.toThrow(InvalidToken);
    const proof = await DPoP.generateProof(keypair, request.url, 'POST', undefined, token);
    const headers = { authorization: `DPoP ${token}`, dpop: proof };
    expect((await verifier.verifyRequest({ ...request, headers })).boundTo).toBe(
      decodeJwt(token).cnf && (decodeJwt(token).cnf as { jkt: string }).jkt,
    );
    await expect(verifier.verifyRequest({ ...request, headers })).rejects.toThrow(InvalidDpopProof);
    await expect(verifier.verifyRequest({ ...request, headers })).rejects.toThrow(/used before/);
  });
});

describe('revocation', () => {
  it('a completed task: its token is refused within a second, from the event stream, with no introspection', async () => {
    const net = network();
    const verifier = verifierWith({}, { fetch: net.fetch });
    await verifier.ready();
    await nextSecond();
    const taskId = await bot.openTask();
    const token = await credential(taskId);
    await verifier.verify(token, request);
    await complete(taskId);
    const started = performance.now();
    let refused: unknown;
    while (performance.now() - started < 1_000) {
      refused = await verifier.verify(token, request).then(
        () => undefined,
        (error: unknown) => error,
      );
      if (refused) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(refused).toBeInstanceOf(TokenRevoked);
    expect(net.state.introspections).toBe(0);
  });

  it('a stream down past the bound: each call is introspected (and a revoked token refused by it)', async () => {
    const net = network();
    const verifier = verifierWith({}, { fetch: net.fetch, staleAfterMs: 300 });
    await verifier.ready();
    await nextSecond();
    const taskId = await bot.openTask();
    const token = await credential(taskId);
    await verifier.verify(token, request);
    net.cutEvents();
    // Within the bound the stream's knowledge still counts.
    await verifier.verify(token, request);
    expect(net.state.introspections).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 400));
    await verifier.verify(token, request);
    expect(net.state.introspections).toBe(1);
    await complete(taskId);
    await expect(verifier.verify(token, request)).rejects.toThrow(TokenRevoked);
    expect(net.state.introspections).toBe(2);
  });

  it('a token issued before the stream connected is introspected once, then decided by the stream', async () => {
    const taskId = await bot.openTask();
    const token = await credential(taskId);
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // iat has one-second resolution
    const net = network();
    const verifier = verifierWith({}, { fetch: net.fetch });
    await verifier.ready();
    await verifier.verify(token, request);
    await verifier.verify(token, request);
    expect(net.state.introspections).toBe(1);
  });

  it('neither the stream nor introspection answering: refused (fail closed)', async () => {
    const net = network();
    const verifier = verifierWith({}, { fetch: net.fetch, staleAfterMs: 100 });
    await verifier.ready();
    const token = await credential(await bot.openTask());
    net.cutEvents();
    net.state.introspectionDown = true;
    await new Promise((resolve) => setTimeout(resolve, 200));
    await expect(verifier.verify(token, request)).rejects.toThrow(VerifierUnavailable);
  });
});

describe('adapters', () => {
  async function listen(server: Server): Promise<string> {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async function exercise(base: string) {
    const taskId = await bot.openTask();
    const token = await credential(taskId);
    const none = await fetch(`${base}/orders/o-1`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer realm="crm", DPoP realm="crm", algs=/);
    const good = await fetch(`${base}/orders/o-1`, { headers: { authorization: `Bearer ${token}` } });
    expect(good.status).toBe(200);
    expect(await good.json()).toMatchObject({ action: 'orders:refund' });
    const wrongCall = await fetch(`${base}/orders/o-2/refund`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 49 }),
    });
    expect(wrongCall.status).toBe(403);
    expect(wrongCall.headers.get('www-authenticate')).toMatch(/^Bearer realm="crm", error="insufficient_scope", error_description="/);
    const forged = await fetch(`${base}/orders/o-1`, { headers: { authorization: `Bearer ${token.slice(0, -4)}AAAA` } });
    expect(forged.status).toBe(401);
    expect(forged.headers.get('www-authenticate')).toMatch(/^Bearer realm="crm", error="invalid_token"/);
    expect(await forged.json()).toMatchObject({ error: 'invalid_token' });
  }

  it('node:http', async () => {
    const verifier = verifierWith({}, false);
    const authenticate = nodeAuthenticator(verifier, { realm: 'crm' });
    const server = createServer((req, res) => {
      authenticate(req)
        .then(
          (verified) => {
            const [, , id, op] = (req.url ?? '').split('/');
            if (op === 'refund') verified.checkCall({ action: 'orders:refund', resource: `order/${id}`, params: null });
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(verified.toolCall));
          },
          (error: unknown) => writeChallenge(res, error, { realm: 'crm' }),
        )
        .catch((error: unknown) => writeChallenge(res, error, { realm: 'crm' }));
    });
    try {
      await exercise(await listen(server));
    } finally {
      server.close();
    }
  });

  it('Express', async () => {
    const verifier = verifierWith({}, false);
    const app = express();
    app.use(express.json());
    app.use(expressVerifier(verifier, { realm: 'crm' }) as express.RequestHandler);
    app.get('/orders/:id', (req, res) => {
      res.json((req as unknown as { tollgate: { toolCall: unknown } }).tollgate.toolCall);
    });
    app.post('/orders/:id/refund', (req, res, next) => {
      try {
        (req as unknown as { tollgate: { checkCall: (c: unknown) => void } }).tollgate.checkCall({
          action: 'orders:refund',
          resource: `order/${req.params.id}`,
          params: req.body,
        });
        res.json({ refunded: true });
      } catch (error) {
        next(error);
      }
    });
    app.use(expressErrors({ realm: 'crm' }) as express.ErrorRequestHandler);
    const server = createServer(app);
    try {
      await exercise(await listen(server));
    } finally {
      server.close();
    }
  });

  it('Fastify', async () => {
    const verifier = verifierWith({}, false);
    const app = Fastify();
    app.decorateRequest('tollgate', undefined);
    app.addHook('onRequest', fastifyVerifier(verifier, { realm: 'crm' }));
    app.get('/orders/:id', async (request) => (request as unknown as { tollgate: { toolCall: unknown } }).tollgate.toolCall);
    app.post<{ Params: { id: string } }>('/orders/:id/refund', async (request, reply) => {
      try {
        (request as unknown as { tollgate: { checkCall: (c: unknown) => void } }).tollgate.checkCall({
          action: 'orders:refund',
          resource: `order/${request.params.id}`,
          params: request.body,
        });
        return { refunded: true };
      } catch (error) {
        return replyWithChallenge(reply, error, { realm: 'crm' });
      }
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      await exercise(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);
    } finally {
      await app.close();
    }
  });
});

// Last: it stops the broker.
describe('the broker gone', () => {
  it('a verifier whose stream and introspection both stop answering refuses (fail closed), though the token still verifies', async () => {
    const verifier = verifierWith({}, { staleAfterMs: 200 });
    await verifier.ready();
    const token = await credential(await bot.openTask());
    await verifier.verify(token, request);
    await broker.stop();
    await new Promise((resolve) => setTimeout(resolve, 400));
    await expect(verifier.verify(token, request)).rejects.toThrow(VerifierUnavailable);
  });
});
