import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { TollgateClient } from './client.js';
import { DpopProver, generateDpopKey, htu } from './dpop.js';
import { CREDENTIAL, scriptedServer, TASK_ID } from './scripted-server.fixture.js';

const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function verifyProof(proof: string) {
  return jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256', 'EdDSA'], maxTokenAge: '60s' });
}

describe('DPoP proofs (RFC 9449)', () => {
  it('carries typ dpop+jwt, the public jwk, htm, htu without query and fragment, iat and a unique jti', async () => {
    const prover = new DpopProver(await generateDpopKey());
    const url = 'https://tollgate.acme.test/v1/tasks/abc/credentials?x=1#frag';
    const [one, two] = [await prover.proof('post', url), await prover.proof('POST', url)];
    const { payload, protectedHeader } = await verifyProof(one);
    expect(protectedHeader).toMatchObject({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256' } });
    expect(Object.keys(protectedHeader.jwk!).sort()).toEqual(['crv', 'kty', 'x', 'y']);
    expect(payload).toMatchObject({ htm: 'POST', htu: 'https://tollgate.acme.test/v1/tasks/abc/credentials' });
    expect(Math.abs(payload.iat! - Date.now() / 1000)).toBeLessThan(5);
    expect(payload.jti).toBeTypeOf('string');
    expect((await verifyProof(two)).payload.jti).not.toBe(payload.jti);
    expect(payload).not.toHaveProperty('ath');
    expect(payload).not.toHaveProperty('nonce');
  });

  it('works with an Ed25519 key and never puts private members in the header', async () => {
    const { privateKey } = await generateKeyPair('EdDSA', { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    // A caller who passes the private JWK as the public one must not leak "d".
    const prover = new DpopProver({ privateKey, publicJwk: privateJwk });
    const proof = await prover.proof('GET', 'https://crm.acme.test/orders/1001', { accessToken: 'at', nonce: 'n-1' });
    const { payload, protectedHeader } = await verifyProof(proof);
    expect(protectedHeader.alg).toBe('EdDSA');
    expect(protectedHeader.jwk).not.toHaveProperty('d');
    expect(payload).toMatchObject({ nonce: 'n-1', ath: createHash('sha256').update('at').digest('base64url') });
  });

  it('refuses a key type it cannot sign proofs with', () => {
    expect(() => new DpopProver({ privateKey: { kty: 'oct', k: 'AAAA' }, publicJwk: { kty: 'oct' } })).toThrow(/dpop\.publicJwk/);
  });

  it('strips query and fragment from htu only', () => {
    expect(htu('http://127.0.0.1:8080/v1/tasks/x/credentials?a=b')).toBe('http://127.0.0.1:8080/v1/tasks/x/credentials');
  });
});

describe('the client with dpop', () => {
  it('sends a fresh proof on each credential request attempt, bound to the same key, and none elsewhere', async () => {
    const server = await scriptedServer([
      { status: 503, body: { error: 'temporarily_unavailable', error_description: 'x' } },
      { status: 201, body: { ...CREDENTIAL, credential: { ...CREDENTIAL.credential, token_type: 'DPoP' } } },
      { status: 200, body: {} },
    ]);
    servers.push(server);
    const key = await generateDpopKey('EdDSA');
    const client = new TollgateClient({ url: server.url, tokenSource: () => 'a.b.c', dpop: key, retry: { baseDelayMs: 1 } });
    const headers = await client
      .task(TASK_ID)
      .withCredential({ boundary: 'crm-orders', action: 'orders:read' }, (credential) =>
        credential.headers('GET', 'https://crm.acme.test/orders/1001?verbose=1'),
      );

    const [first, second, revoke] = server.seen;
    const proofs = [first!.headers.dpop as string, second!.headers.dpop as string];
    const verified = await Promise.all(proofs.map(verifyProof));
    expect(verified[0]!.payload.jti).not.toBe(verified[1]!.payload.jti);
    for (const { payload, protectedHeader } of verified) {
      expect(payload).toMatchObject({ htm: 'POST', htu: `${server.url}/v1/tasks/${TASK_ID}/credentials` });
      expect(await calculateJwkThumbprint(protectedHeader.jwk!)).toBe(await calculateJwkThumbprint(key.publicJwk));
    }
    expect(revoke!.url).toBe('/oauth2/revoke');
    expect(revoke!.headers.dpop).toBeUndefined();

    // Presenting a DPoP-bound token to the tool: the DPoP scheme and a proof with ath.
    expect(headers.authorization).toBe('DPoP header.payload.signature');
    const toTool = await verifyProof(headers.dpop!);
    expect(toTool.payload).toMatchObject({
      htm: 'GET',
      htu: 'https://crm.acme.test/orders/1001',
      ath: createHash('sha256').update('header.payload.signature').digest('base64url'),
    });
  });

  it('generates a key with dpop: true, and answers a use_dpop_nonce refusal once with the nonce', async () => {
    const server = await scriptedServer([
      { status: 400, body: { error: 'use_dpop_nonce', error_description: 'a nonce is required' }, headers: { 'dpop-nonce': 'n-42' } },
      { status: 201, body: CREDENTIAL },
    ]);
    servers.push(server);
    const client = new TollgateClient({ url: server.url, tokenSource: () => 'a.b.c', dpop: true });
    await client.task(TASK_ID).credential({ boundary: 'crm-orders', action: 'orders:read' });
    expect(server.seen).toHaveLength(2);
    expect((await verifyProof(server.seen[0]!.headers.dpop as string)).payload).not.toHaveProperty('nonce');
    expect((await verifyProof(server.seen[1]!.headers.dpop as string)).payload.nonce).toBe('n-42');
    expect(decodeProtectedHeader(server.seen[1]!.headers.dpop as string).alg).toBe('ES256');
  });
});
