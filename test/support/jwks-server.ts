import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

/** One of the issuer's signing keys. */
export interface IssuerKey {
  alg: 'RS256' | 'ES256' | 'EdDSA';
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function issuerKey(
  alg: IssuerKey['alg'],
  kid = `${alg.toLowerCase()}-${Math.random().toString(36).slice(2, 10)}`,
): Promise<IssuerKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { alg, kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/**
 * A trusted issuer's JWKS endpoint on loopback, as SPIRE's OIDC discovery provider or a Kubernetes API
 * server serves it: its own keys, a count of the fetches it answered, keys that rotate mid-test, and
 * an off switch (stop/start on the same port) to play an issuer that is down.
 */
export interface JwksServer {
  /** The `iss` its tokens carry (not a URL the broker ever fetches). */
  issuer: string;
  jwksUri: string;
  /** Key sets served so far. */
  fetches: number;
  /** The key tokens are signed with by default (the newest). */
  current: IssuerKey;
  /** Signs a token with the current key (or `key`): iss, iat and exp set unless overridden. */
  sign(claims: JWTPayload, options?: { key?: IssuerKey; header?: Record<string, unknown>; lifetime?: number }): Promise<string>;
  /** Publishes a new key and signs with it from now on; the old one stays published unless `replace`. */
  rotate(options?: { replace?: boolean }): Promise<IssuerKey>;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export async function startJwksServer(issuer: string, alg: IssuerKey['alg'] = 'ES256'): Promise<JwksServer> {
  let keys = [await issuerKey(alg)];
  let port = 0;
  let server: Server | undefined;
  const state: JwksServer = {
    issuer,
    jwksUri: '',
    fetches: 0,
    current: keys[0]!,
    async sign(claims, options = {}) {
      const key = options.key ?? state.current;
      const now = Math.floor(Date.now() / 1000);
      const payload: JWTPayload = { iss: issuer, iat: now, exp: now + (options.lifetime ?? 300), ...claims };
      for (const name of Object.keys(payload)) if (payload[name] === undefined) delete payload[name];
      return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...options.header }).sign(key.privateKey);
    },
    async rotate(options = {}) {
      const next = await issuerKey(alg);
      keys = options.replace ? [next] : [...keys, next];
      state.current = next;
      return next;
    },
    async stop() {
      const running = server;
      server = undefined;
      if (!running) return;
      const closed = new Promise<void>((resolve) => running.close(() => resolve()));
      running.closeAllConnections();
      await closed;
    },
    async start() {
      const next = createServer((request, response) => {
        if (request.method === 'GET' && request.url === '/jwks') {
          state.fetches++;
          response.writeHead(200, { 'content-type': 'application/jwk-set+json' });
          response.end(JSON.stringify({ keys: keys.map((key) => key.publicJwk) }));
          return;
        }
        response.writeHead(404).end();
      });
      next.keepAliveTimeout = 1;
      await new Promise<void>((resolve, reject) => {
        next.once('error', reject);
        next.listen(port, '127.0.0.1', () => resolve());
      });
      port = (next.address() as AddressInfo).port;
      state.jwksUri = `http://127.0.0.1:${port}/jwks`;
      server = next;
    },
  };
  await state.start();
  return state;
}
