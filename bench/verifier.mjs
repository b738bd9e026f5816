// The verifier's cost per call in a tool server, warm JWKS: `npm run bench:verifier -- [--n 10000]`.
// Serves a JWKS and an event stream (held open, like the broker's GET /v1/events) on loopback, then
// measures @tollgate/verifier's verify() (the compiled package in packages/verifier/dist) on fresh
// tokens, each once, after a warm-up that made the one JWKS fetch:
//   1. a bearer token, no revocation feed: signature, claims, tool_call;
//   2. the same with the revocation feed connected (a map look-up more);
//   3. a DPoP-bound token with its proof (a second signature, the thumbprint, the replay cache);
//   4. checkCall on a verified call (canonical JSON and SHA-256 of small params).
// Prints median and p99 in µs per algorithm.
import { createHash, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createVerifier, paramsDigest } from '../packages/verifier/dist/index.js';

const args = process.argv.slice(2);
const n = Math.max(1000, Number(args[args.indexOf('--n') + 1] ?? 10_000) || 10_000);
const warmup = 500;
const TOOL = 'https://crm.acme.test';
const URL_ = `${TOOL}/orders/o-1/refund`;
const PARAMS = { order: 'o-1', amount: 49, currency: 'EUR', reason: 'late delivery' };

const keys = {};
for (const alg of ['EdDSA', 'ES256']) {
  const { publicKey, privateKey } = await generateKeyPair(alg);
  keys[alg] = { privateKey, jwk: { ...(await exportJWK(publicKey)), kid: `k-${alg}`, alg, use: 'sig' } };
}
const holderPair = await generateKeyPair('ES256');
const holder = { privateKey: holderPair.privateKey, jwk: await exportJWK(holderPair.publicKey) };
holder.jkt = await calculateJwkThumbprint(holder.jwk);

let jwksFetches = 0;
const streams = new Set();
const server = createServer((request, response) => {
  if (request.url === '/.well-known/jwks.json') {
    jwksFetches++;
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ keys: Object.values(keys).map((key) => key.jwk) }));
  } else if (request.url === '/v1/events') {
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    response.write(': open\n\n');
    streams.add(response);
  } else {
    response.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

function sign(alg, extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: issuer,
    aud: TOOL,
    sub: 'user-42',
    iat: now,
    nbf: now,
    exp: now + 600,
    jti: randomUUID(),
    task_id: randomUUID(),
    authorization_details: [{ type: 'tool_call', action: 'orders:refund', resource: 'order/o-1', params_digest: paramsDigest(PARAMS) }],
    ...extra,
  })
    .setProtectedHeader({ alg, kid: `k-${alg}`, typ: 'at+jwt' })
    .sign(keys[alg].privateKey);
}

function proof(token) {
  return new SignJWT({
    htm: 'POST',
    htu: URL_,
    iat: Math.floor(Date.now() / 1000),
    jti: randomUUID(),
    ath: createHash('sha256').update(token).digest('base64url'),
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: holder.jwk })
    .sign(holder.privateKey);
}

function stats(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return `median ${at(0.5).toFixed(1)} µs, p99 ${at(0.99).toFixed(1)} µs`;
}

async function measure(label, prepare, run) {
  const inputs = [];
  for (let i = 0; i < n + warmup; i++) inputs.push(await prepare());
  const samples = [];
  for (let i = 0; i < inputs.length; i++) {
    const started = process.hrtime.bigint();
    await run(inputs[i]);
    const took = Number(process.hrtime.bigint() - started) / 1000;
    if (i >= warmup) samples.push(took);
  }
  console.log(`${label.padEnd(58)} ${stats(samples)}`);
}

console.log(`@tollgate/verifier, ${n} verifications each after ${warmup} warm-up, node ${process.version}`);
const request = { method: 'POST', url: URL_ };
const plain = createVerifier({ issuer, audience: TOOL });
const followed = createVerifier({ issuer, audience: TOOL, revocation: { apiKey: 'tgrs_bench' } });
await followed.ready();
for (const alg of Object.keys(keys)) {
  await measure(
    `${alg}: bearer token`,
    () => sign(alg),
    (token) => plain.verify(token, request),
  );
  await measure(
    `${alg}: bearer token, revocation feed connected`,
    () => sign(alg),
    (token) => followed.verify(token, request),
  );
  await measure(
    `${alg}: DPoP-bound token + ES256 proof`,
    async () => {
      const token = await sign(alg, { cnf: { jkt: holder.jkt } });
      return { token, dpopProof: await proof(token) };
    },
    ({ token, dpopProof }) => plain.verify(token, { ...request, scheme: 'DPoP', dpopProof }),
  );
}
const verified = await plain.verify(await sign('EdDSA'), request);
await measure(
  'checkCall (4 params)',
  () => PARAMS,
  (params) => verified.checkCall({ action: 'orders:refund', resource: 'order/o-1', params }),
);
console.log(`JWKS fetches: ${jwksFetches}`);
await followed.close();
for (const stream of streams) stream.destroy();
server.close();
