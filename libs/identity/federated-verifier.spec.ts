import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { describe, expect, it } from 'vitest';
import { InvalidClient } from '../errors/errors.js';
import { FederatedVerifier } from './federated-verifier.js';
import type { Issuer } from './issuer.js';
import type { Workload } from './workload.js';
import { WorkloadAuthenticator } from './workload-authenticator.js';

const TOLLGATE = 'https://tollgate.acme.test';
const ISS = 'https://oidc.spire.acme.test';
const SUB = 'spiffe://acme.test/bot';
const t0 = 1_800_000_000_000;

async function keyPair(kid: string) {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid } as JWK };
}

function sign(privateKey: CryptoKey, kid: string, claims: JWTPayload): Promise<string> {
  const now = t0 / 1000;
  const payload: JWTPayload = { iss: ISS, sub: SUB, aud: TOLLGATE, iat: now, exp: now + 300, ...claims };
  for (const name of Object.keys(payload)) if (payload[name] === undefined) delete payload[name];
  return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid }).sign(privateKey);
}

/** An issuer and a bound workload as the verifier sees them, both changeable by the test. */
async function setup() {
  const key = await keyPair('a');
  let issuer: Issuer = {
    id: 'spire',
    issuer: ISS,
    kind: 'spiffe',
    trustDomain: 'acme.test',
    jwksUri: null,
    jwks: { keys: [key.jwk] },
    audiences: [TOLLGATE],
    enabled: true,
    revision: 1,
    createdAt: new Date(0),
    updatedAt: new Date(0),
  };
  let workload: Workload = {
    id: 'bot',
    jwks: null,
    issuerId: 'spire',
    subject: SUB,
    enabled: true,
    rateLimit: null,
    revision: 1,
    createdAt: new Date(0),
    updatedAt: new Date(0),
  };
  const issuers = { findByIssuer: async (iss: string) => (iss === issuer.issuer ? issuer : undefined) };
  const workloads = {
    find: async (id: string) => (id === workload.id ? workload : undefined),
    findBound: async (issuerId: string, subject: string) =>
      issuerId === workload.issuerId && subject === workload.subject ? workload : undefined,
  };
  const clock = { now: () => t0 };
  const authenticator = new WorkloadAuthenticator(workloads, TOLLGATE, clock, 100, new FederatedVerifier(issuers, workloads, clock));
  return {
    key,
    authenticator,
    setIssuer: (next: Partial<Issuer>) => (issuer = { ...issuer, ...next }),
    setWorkload: (next: Partial<Workload>) => (workload = { ...workload, ...next }),
  };
}

describe('federated authentication', () => {
  it('remembers a verified token: reuse skips the signature check, an issuer or workload change does not', async () => {
    const { key, authenticator, setIssuer, setWorkload } = await setup();
    const token = await sign(key.privateKey, 'a', {});
    expect(await authenticator.authenticate(token)).toEqual({ id: 'bot', exp: t0 / 1000 + 300 });

    // Swap the issuer's keys WITHOUT a revision change: the cached verification still answers.
    const other = await keyPair('a');
    setIssuer({ jwks: { keys: [other.jwk] } });
    expect((await authenticator.authenticate(token)).id).toBe('bot');
    // A new issuer revision drops it (and the new key set does not verify the old signature).
    setIssuer({ revision: 2 });
    await expect(authenticator.authenticate(token)).rejects.toBeInstanceOf(InvalidClient);

    setIssuer({ jwks: { keys: [key.jwk] }, revision: 3 });
    expect((await authenticator.authenticate(token)).id).toBe('bot');
    setIssuer({ enabled: false });
    await expect(authenticator.authenticate(token)).rejects.toThrow(/not from a trusted issuer/);
    setIssuer({ enabled: true });
    setWorkload({ enabled: false, revision: 2 });
    await expect(authenticator.authenticate(token)).rejects.toThrow(/no enabled workload/);
  });

  it('caps the lifetime at a day, refuses a token issued in the future, and requires exp', async () => {
    const { key, authenticator } = await setup();
    const now = t0 / 1000;
    expect((await authenticator.authenticate(await sign(key.privateKey, 'a', { exp: now + 86_400 }))).id).toBe('bot');
    await expect(authenticator.authenticate(await sign(key.privateKey, 'a', { exp: now + 86_401 }))).rejects.toThrow(
      /at most 86400 seconds/,
    );
    // Without iat the lifetime counts from now.
    expect((await authenticator.authenticate(await sign(key.privateKey, 'a', { iat: undefined, exp: now + 600 }))).id).toBe('bot');
    await expect(authenticator.authenticate(await sign(key.privateKey, 'a', { iat: undefined, exp: now + 86_500 }))).rejects.toThrow(
      /at most/,
    );
    expect((await authenticator.authenticate(await sign(key.privateKey, 'a', { iat: now + 29, exp: now + 100 }))).id).toBe('bot');
    await expect(authenticator.authenticate(await sign(key.privateKey, 'a', { iat: now + 31, exp: now + 100 }))).rejects.toThrow(
      /in the future/,
    );
    await expect(authenticator.authenticate(await sign(key.privateKey, 'a', { exp: undefined }))).rejects.toThrow(/"exp"/);
  });

  it('refuses a token before its nbf (30 s leeway) and one for another audience', async () => {
    const { key, authenticator } = await setup();
    const now = t0 / 1000;
    await expect(authenticator.authenticate(await sign(key.privateKey, 'a', { nbf: now + 31 }))).rejects.toThrow(/claim "nbf" is invalid/);
    expect((await authenticator.authenticate(await sign(key.privateKey, 'a', { nbf: now + 29 }))).id).toBe('bot');
    // Past by the broker's clock though still ahead of the wall clock (t0 lies in 2027): accepted.
    expect((await authenticator.authenticate(await sign(key.privateKey, 'a', { nbf: now - 10, iat: now - 10 }))).id).toBe('bot');
    await expect(authenticator.authenticate(await sign(key.privateKey, 'a', { aud: 'https://other.acme.test' }))).rejects.toThrow(
      /claim "aud" is invalid/,
    );
  });

  it('tries each key when several match the header (no kid)', async () => {
    const { key, authenticator, setIssuer } = await setup();
    const second = await keyPair('b');
    setIssuer({
      jwks: {
        keys: [
          { ...second.jwk, kid: undefined },
          { ...key.jwk, kid: undefined },
        ],
      },
      revision: 5,
    });
    const token = await new SignJWT({ iss: ISS, sub: SUB, aud: TOLLGATE, iat: t0 / 1000, exp: t0 / 1000 + 60 })
      .setProtectedHeader({ alg: 'ES256' })
      .sign(key.privateKey);
    expect((await authenticator.authenticate(token)).id).toBe('bot');
  });

  it('still takes a registered-key assertion (iss = sub) when federation is on', async () => {
    const { publicKey, privateKey } = await generateKeyPair('EdDSA');
    const registered: Workload = {
      id: 'keyed',
      jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k' }] },
      issuerId: null,
      subject: null,
      enabled: true,
      rateLimit: null,
      revision: 1,
      createdAt: new Date(0),
      updatedAt: new Date(0),
    };
    const workloads = { find: async (id: string) => (id === 'keyed' ? registered : undefined), findBound: async () => undefined };
    const clock = { now: () => t0 };
    const authenticator = new WorkloadAuthenticator(
      workloads,
      TOLLGATE,
      clock,
      100,
      new FederatedVerifier({ findByIssuer: async () => undefined }, workloads, clock),
    );
    const now = t0 / 1000;
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'EdDSA', kid: 'k' })
      .setIssuer('keyed')
      .setSubject('keyed')
      .setAudience(TOLLGATE)
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(privateKey);
    expect(await authenticator.authenticate(token)).toEqual({ id: 'keyed', exp: now + 60 });
  });
});
