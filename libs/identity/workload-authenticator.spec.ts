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
  return new SignJWT({})
    .setProtectedHeader({ alg: 'EdDSA', kid })
    .setIssuer('bot')
    .setSubject('bot')
    .setAudience(AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(privateKey);
}

describe('WorkloadAuthenticator', () => {
  const t0 = 1_800_000_000_000;

  it('remembers a verified assertion: reuse skips the signature check but not the workload state', async () => {
    const a = await keyPair('a');
    const b = await keyPair('b');
    const workloads = store({
      id: 'bot',
      jwks: { keys: [a.jwk] },
      issuerId: null,
      subject: null,
      enabled: true,
      rateLimit: null,
      revision: 1,
      createdAt: new Date(),
      updatedAt: new Date(),
    });
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
    const workloads = store({
      id: 'bot',
      jwks: { keys: [a.jwk] },
      issuerId: null,
      subject: null,
      enabled: true,
      rateLimit: null,
      revision: 1,
      createdAt: new Date(),
      updatedAt: new Date(),
    });
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
    const workloads = store({
      id: 'bot',
      jwks: { keys: [a.jwk] },
      issuerId: null,
      subject: null,
      enabled: true,
      rateLimit: null,
      revision: 1,
      createdAt: new Date(),
      updatedAt: new Date(),
    });
    const authenticator = new WorkloadAuthenticator(workloads, AUDIENCE, fixedClock(t0));
    const now = t0 / 1000;
    await expect(authenticator.authenticate(await sign(a.privateKey, 'a', now, now + 301))).rejects.toThrow(/at most 300 seconds/);
    await expect(authenticator.authenticate(await sign(a.privateKey, 'a', now + 31, now + 100))).rejects.toBeInstanceOf(InvalidClient);
    expect((await authenticator.authenticate(await sign(a.privateKey, 'a', now + 29, now + 100))).id).toBe('bot');
  });

  it('refuses an assertion made for another audience, or for none', async () => {
    const a = await keyPair('a');
    const workloads = store({
      id: 'bot',
      jwks: { keys: [a.jwk] },
      issuerId: null,
      subject: null,
      enabled: true,
      rateLimit: null,
      revision: 1,
      createdAt: new Date(),
      updatedAt: new Date(),
    });
    const authenticator = new WorkloadAuthenticator(workloads, AUDIENCE, fixedClock(t0));
    const now = t0 / 1000;
    const assertion = (audience?: string) => {
      const jwt = new SignJWT({})
        .setProtectedHeader({ alg: 'EdDSA', kid: 'a' })
        .setIssuer('bot')
        .setSubject('bot')
        .setIssuedAt(now)
        .setExpirationTime(now + 60);
      return (audience === undefined ? jwt : jwt.setAudience(audience)).sign(a.privateKey);
    };
    // An assertion made for another service (or a second Tollgate) must not open this one.
    await expect(authenticator.authenticate(await assertion('https://other.acme.test'))).rejects.toThrow(/claim "aud" is invalid/);
    await expect(authenticator.authenticate(await assertion())).rejects.toThrow(/claim "aud" is invalid/);
    expect((await authenticator.authenticate(await assertion(AUDIENCE))).id).toBe('bot');
  });

  it("refuses an assertion before its nbf (30 s leeway), judged by the broker's clock", async () => {
    const a = await keyPair('a');
    const workloads = store({
      id: 'bot',
      jwks: { keys: [a.jwk] },
      issuerId: null,
      subject: null,
      enabled: true,
      rateLimit: null,
      revision: 1,
      createdAt: new Date(),
      updatedAt: new Date(),
    });
    const authenticator = new WorkloadAuthenticator(workloads, AUDIENCE, fixedClock(t0));
    const now = t0 / 1000;
    const assertion = (nbf: number) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'EdDSA', kid: 'a' })
        .setIssuer('bot')
        .setSubject('bot')
        .setAudience(AUDIENCE)
        .setIssuedAt(now)
        .setNotBefore(nbf)
        .setExpirationTime(now + 120)
        .sign(a.privateKey);
    await expect(authenticator.authenticate(await assertion(now + 31))).rejects.toThrow(/claim "nbf" is invalid/);
    expect((await authenticator.authenticate(await assertion(now + 29))).id).toBe('bot');
    // Past by the broker's clock though still ahead of the wall clock (t0 lies in 2027): accepted.
    expect((await authenticator.authenticate(await assertion(now - 10))).id).toBe('bot');
  });

  describe('the rules of a registered-key assertion', () => {
    const now = t0 / 1000;
    const bot = (jwks: JWK[], extra: Partial<Workload> = {}): Workload => ({
      id: 'bot',
      jwks: { keys: jwks },
      issuerId: null,
      subject: null,
      enabled: true,
      rateLimit: null,
      revision: 1,
      createdAt: new Date(),
      updatedAt: new Date(),
      ...extra,
    });
    /** An assertion with chosen header members and claims (iss = sub = bot, aud, iat and exp by default). */
    const made = (privateKey: CryptoKey, header: Record<string, unknown>, claims: Record<string, unknown> = {}) => {
      const payload: Record<string, unknown> = { iss: 'bot', sub: 'bot', aud: AUDIENCE, iat: now, exp: now + 60, ...claims };
      for (const name of Object.keys(payload)) if (payload[name] === undefined) delete payload[name];
      return new SignJWT(payload).setProtectedHeader({ alg: 'EdDSA', kid: 'a', ...header }).sign(privateKey);
    };

    it('refuses an empty or oversized token before decoding it', async () => {
      const authenticator = new WorkloadAuthenticator(store(bot([])), AUDIENCE, fixedClock(t0));
      await expect(authenticator.authenticate('')).rejects.toThrow(/malformed/);
      await expect(authenticator.authenticate('a'.repeat(8193))).rejects.toThrow(/malformed/);
      await expect(authenticator.authenticate('not a jwt')).rejects.toThrow(/malformed/);
      // Even a well-signed one: the bound is on the work done for any caller.
      const a = await keyPair('a');
      const big = new WorkloadAuthenticator(store(bot([a.jwk])), AUDIENCE, fixedClock(t0));
      const padded = await made(a.privateKey, {}, { pad: 'x'.repeat(8200) });
      expect(padded.length).toBeGreaterThan(8192);
      await expect(big.authenticate(padded)).rejects.toThrow(/malformed/);
    });

    it('refuses a header that picks its own key, iss other than sub, an unknown, disabled or federated workload', async () => {
      const a = await keyPair('a');
      const workloads = store(bot([a.jwk]));
      const authenticator = new WorkloadAuthenticator(workloads, AUDIENCE, fixedClock(t0));
      for (const name of ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256']) {
        await expect(authenticator.authenticate(await made(a.privateKey, { [name]: name === 'jwk' ? a.jwk : 'x' })), name).rejects.toThrow(
          new RegExp(`may not carry "${name}"`),
        );
      }
      // Without a federation configured, iss != sub is refused here, not handed on.
      await expect(authenticator.authenticate(await made(a.privateKey, {}, { iss: 'someone' }))).rejects.toThrow(/iss and sub/);
      await expect(authenticator.authenticate(await made(a.privateKey, {}, { iss: undefined, sub: undefined }))).rejects.toThrow(
        /iss and sub/,
      );
      await expect(authenticator.authenticate(await made(a.privateKey, {}, { iss: 'other', sub: 'other' }))).rejects.toThrow(
        /unknown or disabled/,
      );
      workloads.replace({ enabled: false });
      await expect(authenticator.authenticate(await made(a.privateKey, {}))).rejects.toThrow(/unknown or disabled/);
      workloads.replace({ enabled: true, jwks: null });
      await expect(authenticator.authenticate(await made(a.privateKey, {}))).rejects.toThrow(/trusted issuer/);
    });

    it('uses only a registered key with the header kid and alg; without kid, tries each', async () => {
      const a = await keyPair('a');
      const b = await keyPair('b');
      const authenticator = new WorkloadAuthenticator(store(bot([a.jwk, b.jwk])), AUDIENCE, fixedClock(t0));
      await expect(authenticator.authenticate(await made(a.privateKey, { kid: 'c' }))).rejects.toThrow(/no registered key/);
      await expect(authenticator.authenticate(await made(a.privateKey, { kid: 'b' }))).rejects.toThrow(/signature verification failed/);
      expect((await authenticator.authenticate(await made(b.privateKey, { kid: undefined }))).id).toBe('bot');
      const { privateKey: es } = await generateKeyPair('ES256');
      await expect(authenticator.authenticate(await made(es, { alg: 'ES256' }))).rejects.toThrow(/no registered key/);
    });

    it('requires iat and exp, takes exactly 300 s of life and an iat exactly 30 s ahead', async () => {
      const a = await keyPair('a');
      const authenticator = new WorkloadAuthenticator(store(bot([a.jwk])), AUDIENCE, fixedClock(t0));
      await expect(authenticator.authenticate(await made(a.privateKey, {}, { iat: undefined }))).rejects.toThrow(/"iat"/);
      await expect(authenticator.authenticate(await made(a.privateKey, {}, { exp: undefined }))).rejects.toThrow(/"exp"/);
      expect((await authenticator.authenticate(await made(a.privateKey, {}, { exp: now + 300 }))).id).toBe('bot');
      expect((await authenticator.authenticate(await made(a.privateKey, {}, { iat: now + 30, exp: now + 90 }))).id).toBe('bot');
    });

    it('a cached assertion of a workload since deleted is refused (not a crash)', async () => {
      const a = await keyPair('a');
      let current: Workload | undefined = bot([a.jwk]);
      const authenticator = new WorkloadAuthenticator({ find: async () => current }, AUDIENCE, fixedClock(t0));
      const token = await made(a.privateKey, {});
      await authenticator.authenticate(token);
      current = undefined;
      await expect(authenticator.authenticate(token)).rejects.toBeInstanceOf(InvalidClient);
    });

    it('remembers a verification until exp plus the leeway, no shorter', async () => {
      const a = await keyPair('a');
      const b = await keyPair('a');
      const workloads = store(bot([a.jwk]));
      const clock = fixedClock(t0);
      const authenticator = new WorkloadAuthenticator(workloads, AUDIENCE, clock);
      const token = await made(a.privateKey, {});
      await authenticator.authenticate(token);
      // Another key under the same kid and revision: only the cache can still accept the token.
      workloads.replace({ jwks: { keys: [b.jwk] } });
      clock.set(t0 + 85_000);
      expect((await authenticator.authenticate(token)).id).toBe('bot');
    });
  });
});
