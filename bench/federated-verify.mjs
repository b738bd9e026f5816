// Verification cost of a federated workload token, in process: `npm run bench:federated -- [--n 5000]`.
// Serves a JWKS on loopback, then measures, after a warm-up that made the one fetch:
//   1. jose jwtVerify against createRemoteJWKSet with Tollgate's options (a warm key cache, no
//      verified-token cache): the signature check every fresh token costs;
//   2. WorkloadAuthenticator.authenticate (the compiled code in dist/) on a token it has not seen:
//      the same plus Tollgate's checks;
//   3. WorkloadAuthenticator.authenticate on a token it verified before: the verified-token cache hit;
//   4. the registered-key path's cache hit, for comparison.
// Lookups are in memory (the 1 s row caches make them so on the hot path too). Prints median and p99 in µs.
import { createServer } from 'node:http';
import { exportJWK, generateKeyPair, jwtVerify, createRemoteJWKSet, SignJWT } from 'jose';
import { DEFAULT_JWKS_FETCH, FederatedVerifier } from '../dist/libs/identity/federated-verifier.js';
import { ASYMMETRIC_ALGORITHMS } from '../dist/libs/identity/issuer.js';
import { WorkloadAuthenticator } from '../dist/libs/identity/workload-authenticator.js';

const args = process.argv.slice(2);
const n = Math.max(5000, Number(args[args.indexOf('--n') + 1] ?? 5000) || 5000);
const warmup = 500;
const TOLLGATE = 'https://tollgate.acme.test';
const clock = { now: () => Date.now() };

const algs = ['ES256', 'RS256', 'EdDSA'];
const keys = {};
for (const alg of algs) {
  const { publicKey, privateKey } = await generateKeyPair(alg);
  keys[alg] = { privateKey, jwk: { ...(await exportJWK(publicKey)), kid: `k-${alg}`, alg, use: 'sig' } };
}
let fetches = 0;
const server = createServer((_request, response) => {
  fetches++;
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ keys: Object.values(keys).map((key) => key.jwk) }));
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const jwksUri = `http://127.0.0.1:${server.address().port}/jwks`;

function sign(alg, claims = {}) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    sub: 'system:serviceaccount:bots:chatbot',
    aud: TOLLGATE,
    'kubernetes.io': { namespace: 'bots', serviceaccount: { name: 'chatbot' } },
    ...claims,
  })
    .setProtectedHeader({ alg, kid: `k-${alg}` })
    .setIssuer('https://kubernetes.default.svc')
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .setJti(crypto.randomUUID())
    .sign(keys[alg].privateKey);
}

async function measure(label, run, tokens) {
  for (let i = 0; i < warmup; i++) await run(tokens[i % tokens.length]);
  const samples = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const token = tokens[(warmup + i) % tokens.length];
    const start = process.hrtime.bigint();
    await run(token);
    samples[i] = Number(process.hrtime.bigint() - start) / 1000;
  }
  samples.sort();
  const row = { label, n, median_us: round(samples[Math.floor(n / 2)]), p99_us: round(samples[Math.floor(n * 0.99)]) };
  console.log(`${label.padEnd(60)} median ${String(row.median_us).padStart(8)} µs   p99 ${String(row.p99_us).padStart(8)} µs`);
  return row;
}
const round = (value) => Math.round(value * 10) / 10;

const issuer = {
  id: 'kube',
  issuer: 'https://kubernetes.default.svc',
  kind: 'kubernetes',
  trustDomain: null,
  jwksUri,
  jwks: null,
  audiences: [TOLLGATE],
  enabled: true,
  revision: 1,
  createdAt: new Date(),
  updatedAt: new Date(),
};
const bound = {
  id: 'k8s-bot',
  jwks: null,
  issuerId: 'kube',
  subject: 'system:serviceaccount:bots:chatbot',
  enabled: true,
  revision: 1,
  createdAt: new Date(),
  updatedAt: new Date(),
};
const registeredKey = await generateKeyPair('EdDSA');
const registered = {
  id: 'chatbot',
  jwks: { keys: [{ ...(await exportJWK(registeredKey.publicKey)), kid: 'r1' }] },
  issuerId: null,
  subject: null,
  enabled: true,
  revision: 1,
  createdAt: new Date(),
  updatedAt: new Date(),
};
const workloads = {
  find: async (id) => (id === bound.id ? bound : id === registered.id ? registered : undefined),
  findBound: async (issuerId, subject) => (issuerId === bound.issuerId && subject === bound.subject ? bound : undefined),
};
const issuers = { findByIssuer: async (iss) => (iss === issuer.issuer ? issuer : undefined) };

console.log(`node ${process.version}, ${n} timed runs after ${warmup} warm-up runs each; JWKS on loopback\n`);
const results = [];
try {
  for (const alg of algs) {
    const set = createRemoteJWKSet(new URL(jwksUri), {
      cooldownDuration: DEFAULT_JWKS_FETCH.cooldownMs,
      timeoutDuration: DEFAULT_JWKS_FETCH.timeoutMs,
      cacheMaxAge: DEFAULT_JWKS_FETCH.cacheMaxAgeMs,
    });
    const token = await sign(alg);
    const before = fetches;
    results.push(
      await measure(
        `${alg}: jose jwtVerify, remote JWKS set (warm)`,
        (t) =>
          jwtVerify(t, set, { algorithms: [...ASYMMETRIC_ALGORITHMS], issuer: issuer.issuer, audience: TOLLGATE, requiredClaims: ['exp'] }),
        [token],
      ),
    );
    if (fetches - before !== 1) throw new Error(`expected one JWKS fetch, saw ${fetches - before}`);

    const authenticator = new WorkloadAuthenticator(workloads, TOLLGATE, clock, 50_000, new FederatedVerifier(issuers, workloads, clock));
    const fresh = await Promise.all(Array.from({ length: warmup + n }, () => sign(alg)));
    results.push(
      await measure(`${alg}: authenticate, token not seen before (no token cache)`, (t) => authenticator.authenticate(t), fresh),
    );
    results.push(await measure(`${alg}: authenticate, verified-token cache hit`, (t) => authenticator.authenticate(t), [token]));
  }
  const authenticator = new WorkloadAuthenticator(workloads, TOLLGATE, clock, 50_000, new FederatedVerifier(issuers, workloads, clock));
  const now = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: 'EdDSA', kid: 'r1' })
    .setIssuer('chatbot')
    .setSubject('chatbot')
    .setAudience(TOLLGATE)
    .setIssuedAt(now)
    .setExpirationTime(now + 300)
    .sign(registeredKey.privateKey);
  results.push(await measure('registered key (EdDSA): authenticate, cache hit', (t) => authenticator.authenticate(t), [assertion]));
} finally {
  server.close();
}
