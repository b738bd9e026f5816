// Peer: node-oidc-provider issuing ES256 JWT access tokens on its client_credentials token endpoint,
// with the built-in in-memory adapter — what a Node team would run instead of Tollgate.
//
//   PORT=... OIDC_CLIENT_SECRET=... node bench/peers/oidc-provider.mjs
//
// POST /token, Authorization: Basic (client_secret_basic),
//   grant_type=client_credentials&scope=orders:read&resource=https://crm.acme.test
// answers 200 with a JWT (typ at+jwt, ES256) for the resource (RFC 8707 resource indicators).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const RESOURCE = 'https://crm.acme.test';

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-es256', alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  // No adapter given: the provider's own in-memory adapter.
  clients: [
    {
      client_id: 'bench-client',
      client_secret: process.env.OIDC_CLIENT_SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      // Only an ES256 key is configured; the client's default (RS256) would not validate.
      id_token_signed_response_alg: 'ES256',
      scope: 'orders:read',
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['orders:read'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) throw new Error('unknown resource');
        return {
          scope: 'orders:read',
          audience: RESOURCE,
          accessTokenTTL: 120,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  ttl: { ClientCredentials: 120 },
});
// Errors are answered to the client; keep the console quiet under load.
provider.on('server_error', (_ctx, error) => process.stderr.write(`oidc-provider server_error: ${error?.message}\n`));

const server = provider.listen(port, '127.0.0.1', () => process.stdout.write(`oidc-provider peer on ${issuer}\n`));
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => server.close(() => process.exit(0)));
