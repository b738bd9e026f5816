import type { IncomingMessage, ServerResponse } from 'node:http';
import { DPOP_ALGORITHMS } from './dpop.js';
import { MissingToken, VerifierError, VerifierUnavailable } from './errors.js';
import type { Verifier, VerifiedCall } from './verifier.js';

export interface AdapterOptions {
  /**
   * The tool's public origin as clients call it (`https://crm.acme.test`): a DPoP proof's `htu`
   * names it. Without it the request's Host header is used over plain http.
   */
  baseUrl?: string;
  /** The `realm` of the challenges. */
  realm?: string;
}

/** An HTTP answer to a refused call: status, the `WWW-Authenticate` challenge(s), a JSON body. */
export interface Challenge {
  status: number;
  headers: Record<string, string | string[]>;
  body: { error: string; error_description?: string };
}

/** A challenge parameter's quoted value; quotes, backslashes and non-ASCII dropped (RFC 7235 quoted-string). */
export const quoted = (value: string) => `"${value.replace(/["\\]/g, '').replace(/[^\x20-\x7e]/g, '')}"`;

/**
 * The answer RFC 6750 §3 and RFC 9449 §7.1 ask for: 401 with a challenge in the scheme the
 * credential came with (both schemes, without an error code, when none came), 403
 * `insufficient_scope`, and 503 when the verifier could not tell (fail closed).
 */
export function challengeFor(error: unknown, options: AdapterOptions = {}): Challenge {
  if (!(error instanceof VerifierError)) {
    return { status: 500, headers: {}, body: { error: 'server_error' } };
  }
  if (error instanceof VerifierUnavailable) {
    return { status: 503, headers: { 'retry-after': '1' }, body: { error: error.code, error_description: error.message } };
  }
  const realm = options.realm ? [`realm=${quoted(options.realm)}`] : [];
  const algs = `algs=${quoted(DPOP_ALGORITHMS.join(' '))}`;
  if (error instanceof MissingToken) {
    return {
      status: 401,
      headers: { 'www-authenticate': [`Bearer${realm.length ? ` ${realm.join(', ')}` : ''}`, `DPoP ${[...realm, algs].join(', ')}`] },
      body: { error: 'invalid_token', error_description: error.message },
    };
  }
  const params = [...realm, `error=${quoted(error.code)}`, `error_description=${quoted(error.message)}`];
  if (error.scheme === 'DPoP') params.push(algs);
  return {
    status: error.status,
    headers: { 'www-authenticate': `${error.scheme} ${params.join(', ')}` },
    body: { error: error.code, error_description: error.message },
  };
}

/** The full URL a request was made to, as the client called it. */
export function requestUrl(path: string, host: string | undefined, options: AdapterOptions): string {
  // Joined, not resolved: a path like `//other.host/x` must not change the origin.
  const base = (options.baseUrl ?? `http://${host ?? 'localhost'}`).replace(/\/+$/, '');
  return `${base}${path.startsWith('/') ? path : `/${path}`}`;
}

// node:http --------------------------------------------------------------------------------------

/** For a plain `node:http` server: `const call = await authenticate(req)`; throws a VerifierError. */
export function nodeAuthenticator(verifier: Verifier, options: AdapterOptions = {}): (req: IncomingMessage) => Promise<VerifiedCall> {
  return (req) =>
    verifier.verifyRequest({
      method: req.method ?? 'GET',
      url: requestUrl(req.url ?? '/', req.headers.host, options),
      headers: req.headers,
    });
}

/** Writes the challenge for a refusal to a `node:http` response. */
export function writeChallenge(res: ServerResponse, error: unknown, options: AdapterOptions = {}): void {
  const challenge = challengeFor(error, options);
  res.writeHead(challenge.status, { ...challenge.headers, 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(challenge.body));
}

// Express ----------------------------------------------------------------------------------------

/** The parts of Express's request and response the middleware uses (so express stays optional). */
export interface ExpressLikeRequest {
  method: string;
  originalUrl?: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  tollgate?: VerifiedCall;
}
export interface ExpressLikeResponse {
  status(code: number): ExpressLikeResponse;
  set(field: Record<string, string | string[]>): ExpressLikeResponse;
  json(body: unknown): unknown;
}

/**
 * Express middleware: verifies the credential and puts the VerifiedCall on `req.tollgate`, or
 * answers the challenge. A handler that finds the call is not the credential's (`checkCall`
 * throws) passes the error to `next`; `expressErrors` answers it.
 */
export function expressVerifier(verifier: Verifier, options: AdapterOptions = {}) {
  return (req: ExpressLikeRequest, res: ExpressLikeResponse, next: (error?: unknown) => void): void => {
    verifier
      .verifyRequest({
        method: req.method,
        url: requestUrl(req.originalUrl ?? req.url, single(req.headers.host), options),
        headers: req.headers,
      })
      .then(
        (call) => {
          req.tollgate = call;
          next();
        },
        (error: unknown) => sendExpress(res, error, options),
      );
  };
}

/** Express error middleware that answers a VerifierError with its challenge (others go on). */
export function expressErrors(options: AdapterOptions = {}) {
  return (error: unknown, _req: ExpressLikeRequest, res: ExpressLikeResponse, next: (error?: unknown) => void): void => {
    if (error instanceof VerifierError) sendExpress(res, error, options);
    else next(error);
  };
}

function sendExpress(res: ExpressLikeResponse, error: unknown, options: AdapterOptions): void {
  const challenge = challengeFor(error, options);
  res
    .status(challenge.status)
    .set({ ...challenge.headers, 'cache-control': 'no-store' })
    .json(challenge.body);
}

// Fastify ----------------------------------------------------------------------------------------

/** The parts of Fastify's request and reply the hook uses (so fastify stays optional). */
export interface FastifyLikeRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  tollgate?: VerifiedCall;
}
export interface FastifyLikeReply {
  code(status: number): FastifyLikeReply;
  headers(values: Record<string, string | string[]>): FastifyLikeReply;
  send(body: unknown): unknown;
}

/**
 * A Fastify `onRequest` (or `preHandler`) hook: `app.addHook('onRequest', fastifyVerifier(verifier))`.
 * Puts the VerifiedCall on `request.tollgate`, or answers the challenge. Fastify answers a thrown
 * VerifierError from a handler through `fastifyErrors` (`app.setErrorHandler`), or the handler
 * calls `replyWithChallenge`.
 */
export function fastifyVerifier(verifier: Verifier, options: AdapterOptions = {}) {
  return async (request: FastifyLikeRequest, reply: FastifyLikeReply): Promise<FastifyLikeReply | undefined> => {
    try {
      request.tollgate = await verifier.verifyRequest({
        method: request.method,
        url: requestUrl(request.url, single(request.headers.host), options),
        headers: request.headers,
      });
      return undefined;
    } catch (error) {
      await replyWithChallenge(reply, error, options);
      // An async hook that answered returns the reply: Fastify then runs no handler.
      return reply;
    }
  };
}

/** Answers a refusal on a Fastify reply. */
export async function replyWithChallenge(reply: FastifyLikeReply, error: unknown, options: AdapterOptions = {}): Promise<void> {
  const challenge = challengeFor(error, options);
  await reply
    .code(challenge.status)
    .headers({ ...challenge.headers, 'cache-control': 'no-store' })
    .send(challenge.body);
}

/** A Fastify error handler answering VerifierErrors with their challenge; other errors are rethrown. */
export function fastifyErrors(options: AdapterOptions = {}) {
  return async (error: unknown, _request: FastifyLikeRequest, reply: FastifyLikeReply): Promise<void> => {
    if (!(error instanceof VerifierError)) throw error;
    await replyWithChallenge(reply, error, options);
  };
}

export function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
