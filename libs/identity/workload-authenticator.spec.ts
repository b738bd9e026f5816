import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../clock/clock.js';
import { InvalidClient } from '../errors/errors.js';
import type { Workload } from './workload.js';
import { WorkloadAuthenticator } from './workload-authenticator.js';

const AUDIENCE = 'https://tollgate.acme.test';

async function keyPair(kid: string) {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA');
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid } as JWK };
}

function fixedClock(ms: number): Clock & { set(ms: number): void } {
  let now = ms;
  return { now: () => now, set: (value) => (now = value) };
}

/** A workload store as the authenticator sees it: counts lookups, lets the test change the row. */
function store(workload: Workload) {
  let current = workload;
  return {
    lookups: 0,
    find(id: string) {
      this.lookups++;
      return Promise.resolve(id === current.id ? current : undefined);
    },
    replace(next: Partial<Workload>) {
      current = { ...current, ...next };
    },
  };
}

async function sign(privateKey: CryptoKey, kid: string, iat: number, exp: number): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', kid }).setIssuer('bot').setSubject('bot').setAudience(AUDIENCE).setIssuedAt(iat).setExpirationTime(exp).sign(privateKey);
}

describe('WorkloadAuthenticator', () => {
  const t0 = 1_800_000_000_000;

  it('remembers a verified assertion: reuse skips the signature check but not the workload state', async () => {
    const a = await keyPair('a');
    const b = await keyPair('b');
    const workloads = store({ id: 'bot', jwks: { keys: [a.jwk] }, issuerId: null, subject: null, enabled: true, rateLimit: null, revision: 1, createdAt: new Date(), updatedAt: new Date() });
    const clock = fixedClock(t0);
    const authenticator = new WorkloadAuthenticator(workloads, AUDIENCE, clock);
    const token = await sign(a.privateKey, 'a', t0 / 1000, t0 / 1000 + 120);
    expect(await authenticator.authenticate(token)).toEqual({ id: 'bot', exp: t0 / 1000 + 120 });

    // Swap the stored key WITHOUT a revision change: a cached assertion is still accepted, which
    // proves the second call did not verify the signature again.
    workloads.replace({ jwks: { keys: [b.jwk] } });
    expect((await authenticator.authenticate(token)).id).toBe('bot');

    // A new revision (keys changed through the API) invalidates the cached verification.
    workloads.replace({ revision: 2 });
    await expect(authenticator.authenticate(token)).rejects.toBeInstanceOf(InvalidClient);
  });

  it('stops accepting a cached assertion once the workload is disabled or the assertion expires', async () => {
    const a = await keyPair('a');
    const workloads = store({ id: 'bot', jwks: { keys: [a.jwk] }, issuerId: null, subject: null, enabled: true, rateLimit: null, revision: 1, createdAt: new Date(), updatedAt: new Date() });
    const clock = fixedClock(t0);
    const authenticator = new WorkloadAuthenticator(workloads, AUDIENCE, clock);
    const token = await sign(a.privateKey, 'a', t0 / 1000, t0 / 1000 + 60);
    await authenticator.authenticate(token);

    clock.set(t0 + 89_000); // within the 30 s leeway after exp
    expect((await authenticator.authenticate(token)).id).toBe('bot');
    clock.set(t0 + 91_000);
    await expect(authenticator.authenticate(token)).rejects.toBeInstanceOf(InvalidClient);

    clock.set(t0);
    const fresh = await sign(a.privateKey, 'a', t0 / 1000, t0 / 1000 + 60);
    await authenticator.authenticate(fresh);
    workloads.replace({ enabled: false, revision: 2 });
    await expect(authenticator.authenticate(fresh)).rejects.toBeInstanceOf(InvalidClient);
  });

  it('refuses assertions that live longer than 300 seconds or were issued in the future', async () => {
    const a = await keyPair('a');
    const workloads = store({ id: 'bot', jwks: { keys: [a.jwk] }, issuerId: null, subject: null, enabled: true, rateLimit: null, revision: 1, createdAt: new Date(), updatedAt: new Date() });
    const authenticator = new WorkloadAuthenticator(workloads, AUDIENCE, fixedClock(t0));
    const now = t0 / 1000;
    await expect(authenticator.authenticate(await sign(a.privateKey, 'a', now, now + 301))).rejects.toThrow(/at most 300 seconds/);
    await expect(authenticator.authenticate(await sign(a.privateKey, 'a', now + 31, now + 100))).rejects.toBeInstanceOf(InvalidClient);
    expect((await authenticator.authenticate(await sign(a.privateKey, 'a', now + 29, now + 100))).id).toBe('bot');
  });

  it("refuses an assertion made for another audience, or for none", async () => {
    const a = await keyPair('a');
    const workloads = store({ id: 'bot', jwks: { keys: [a.jwk] }, issuerId: null, subject: null, enabled: true, rateLimit: null, revision: 1, createdAt: new Date(), updatedAt: new Date() });
    const authenticator = new WorkloadAuthenticator(workloads, AUDIENCE, fixedClock(t0));
    const now = t0 / 1000;
    const assertion = (audience?: string) => {
      const jwt = new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', kid: 'a' }).setIssuer('bot').setSubject('bot').setIssuedAt(now).setExpirationTime(now + 60);
      return (audience === undefined ? jwt : jwt.setAudience(audience)).sign(a.privateKey);
    };
    // An assertion made for another service (or a second Tollgate) must not open this one.
    await expect(authenticator.authenticate(await assertion('https://other.acme.test'))).rejects.toThrow(/claim "aud" is invalid/);
    await expect(authenticator.authenticate(await assertion())).rejects.toThrow(/claim "aud" is invalid/);
    expect((await authenticator.authenticate(await assertion(AUDIENCE))).id).toBe('bot');
  });

  it("refuses an assertion before its nbf (30 s leeway), judged by the broker's clock", async () => {
    const a = await keyPair('a');
    const workloads = store({ id: 'bot', jwks: { keys: [a.jwk] }, issuerId: null, subject: null, enabled: true, rateLimit: null, revision: 1, createdAt: new Date(), updatedAt: new Date() });
    const authenticator = new WorkloadAuthenticator(workloads, AUDIENCE, fixedClock(t0));
    const now = t0 / 1000;
    const assertion = (nbf: number) =>
      new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', kid: 'a' }).setIssuer('bot').setSubject('bot').setAudience(AUDIENCE).setIssuedAt(now).setNotBefore(nbf).setExpirationTime(now + 120).sign(a.privateKey);
    await expect(authenticator.authenticate(await assertion(now + 31))).rejects.toThrow(/claim "nbf" is invalid/);
    expect((await authenticator.authenticate(await assertion(now + 29))).id).toBe('bot');
    // Past by the broker's clock though still ahead of the wall clock (t0 lies in 2027): accepted.
    expect((await authenticator.authenticate(await assertion(now - 10))).id).toBe('bot');
  });
});
