import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, errors, jwtVerify } from 'jose';
import { fingerprint } from './fingerprint.js';

/** The demo's CRM: what a real tool (resource server) does with a Tollgate credential. */
export interface ToolServer {
  url: string;
  /** Requests that reached each route, whether or not their credential passed. */
  received: { orders: number; refunds: number };
  close(): Promise<void>;
}

export interface ToolServerOptions {
  /** Tollgate's base URL: its JWKS and introspection live there. */
  tollgate: string;
  /** The `iss` of its tokens (its metadata's `issuer`; the base URL unless behind a proxy). */
  issuer: string;
  /**
   * This tool's OAuth client credentials at Tollgate (a resource_server API key: its id and the key),
   * sent as client_secret_basic; known once the admin has created the key.
   */
  client(): { id: string; secret: string };
  say(text: string): void;
}

/** Totals in whole euros: the refund boundary's approval rule compares `params.amount` with 100. */
const ORDERS: Record<string, { status: string; total: number }> = {
  '1001': { status: 'shipped, arriving Tuesday', total: 49 },
  '1002': { status: 'delivered on Monday (an espresso machine)', total: 349 },
};

/**
 * GET /orders/{id} needs scope `orders:read`; POST /orders/{id}/refund needs `orders:refund`.
 * Each credential is checked twice: offline with the JWKS (signature, issuer, audience = this
 * server, type, scope, the order it was issued for), then by introspection, because a revoked token
 * still has a valid signature until it expires.
 */
export async function startToolServer(options: ToolServerOptions): Promise<ToolServer> {
  const jwks = createRemoteJWKSet(new URL(`${options.tollgate}/.well-known/jwks.json`));
  const received = { orders: 0, refunds: 0 };
  let url = '';
  let refunds = 0;

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const path = new URL(request.url ?? '/', 'http://tool').pathname;
    const read = request.method === 'GET' ? /^\/orders\/(\d+)$/.exec(path) : null;
    const refund = request.method === 'POST' ? /^\/orders\/(\d+)\/refund$/.exec(path) : null;
    const match = read ?? refund;
    if (!match) return send(response, 404, { error: 'not_found' });
    if (read) received.orders++;
    else received.refunds++;
    const orderId = match[1]!;
    const scope = read ? 'orders:read' : 'orders:refund';

    const token = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1];
    if (!token) {
      options.say(`${request.method} ${path} without a credential → 401`);
      return send(response, 401, { error: 'invalid_token', error_description: 'a bearer token is required' });
    }
    const name = fingerprint(token);
    let claims;
    try {
      ({ payload: claims } = await jwtVerify(token, jwks, {
        issuer: options.issuer,
        audience: url,
        typ: 'at+jwt',
        algorithms: ['EdDSA', 'ES256'],
      }));
    } catch (error) {
      const why = error instanceof errors.JOSEError ? error.code : 'unverifiable';
      options.say(`token ${name}: rejected offline (${why}) → 401`);
      return send(response, 401, { error: 'invalid_token', error_description: why });
    }
    const scopes = typeof claims.scope === 'string' ? claims.scope.split(' ') : [];
    const details = Array.isArray(claims.authorization_details) ? (claims.authorization_details as { resource?: unknown }[]) : [];
    if (!scopes.includes(scope) || !details.some((detail) => detail.resource === undefined || detail.resource === `order/${orderId}`)) {
      options.say(`token ${name}: valid, but not for ${scope} on order/${orderId} → 403`);
      return send(response, 403, { error: 'insufficient_scope', scope });
    }
    const introspection = await fetch(`${options.tollgate}/oauth2/introspect`, {
      method: 'POST',
      headers: { authorization: clientSecretBasic(options.client()), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token }).toString(),
    });
    const state = introspection.ok ? ((await introspection.json()) as { active?: unknown }) : { active: false };
    if (state.active !== true) {
      options.say(`token ${name}: signature, audience and scope ${scope} ok (JWKS), but introspection says inactive (revoked) → 401`);
      return send(response, 401, { error: 'invalid_token', error_description: 'the token is no longer active' });
    }
    options.say(`token ${name}: signature, audience and scope ${scope} ok (JWKS); introspection: active`);

    const order = ORDERS[orderId];
    if (!order) return send(response, 404, { error: 'no such order' });
    if (read) {
      options.say(`200: order ${orderId} is ${order.status}`);
      return send(response, 200, { order: orderId, status: order.status });
    }
    const refundId = `R-${orderId}-${++refunds}`;
    options.say(`201: refund ${refundId} of ${order.total} EUR issued for order ${orderId} (customer ${String(claims.sub)})`);
    return send(response, 201, { refund: refundId, order: orderId, amount: `${order.total} EUR` });
  };

  const server = createServer((request, response) => {
    // Drain the body (the refund carries none of importance), then answer.
    request.resume();
    request.on('end', () => {
      handle(request, response).catch(() => send(response, 500, { error: 'server_error' }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(response: ServerResponse, status: number, body: unknown): void {
  if (response.headersSent) return;
  response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

/** RFC 6749 §2.3.1: each half form-urlencoded, then base64. */
function clientSecretBasic({ id, secret }: { id: string; secret: string }): string {
  const encode = (text: string) => encodeURIComponent(text).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(id)}:${encode(secret)}`).toString('base64')}`;
}
