import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { InvalidClient, InvalidRequest } from '../errors/errors.js';
import type { ApiKey } from './api-key.js';
import type { ApiKeys } from './api-keys.js';
import { CLIENT_ASSERTION_TYPE, ClientAuthentication } from './client-authentication.js';
import type { WorkloadAuthenticator } from './workload-authenticator.js';

const ISSUER = 'https://tollgate.acme.test';
const ENDPOINT = '/oauth2/introspect';
const ID = '01a23940-7e8b-7056-b649-ce1abb19e075';
const SECRET = 'tgrs_secret';
const t0 = 1_800_000_000_000;
const now = t0 / 1000;

/** An API key store as client authentication sees it: one resource-server key, its JWKS, the jtis recorded. */
async function setup() {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'rs-1', alg: 'EdDSA' };
  const key: ApiKey = {
    id: ID,
    role: 'resource_server',
    audience: 'https://pay.acme.test',
    label: null,
    jwks: { keys: [jwk] },
    createdAt: new Date(0),
    revokedAt: null,
  };
  const recorded: [string, string, number][] = [];
  const keys = {
    authenticate: async (presented: string | undefined, challenge: 'Bearer' | 'Basic' = 'Bearer') => {
      if (presented !== SECRET) throw new InvalidClient('a valid API key is required', challenge);
      return key;
    },
    client: async (id: string) => (id === ID ? key : undefined),
    recordAssertion: async (clientId: string, jti: string, expiresAtMs: number) => {
      if (recorded.some(([, seen]) => seen === jti)) return false;
      recorded.push([clientId, jti, expiresAtMs]);
      return true;
    },
  } as unknown as ApiKeys;
  const workloads = {
    authenticate: async (token: string) => ({ id: `workload-of-${token.length}`, exp: now + 60 }),
  } as unknown as WorkloadAuthenticator;
  const auth = new ClientAuthentication({ keys, workloads, issuer: ISSUER, clock: { now: () => t0 } });
  return { auth, key, privateKey, recorded };
}

function assertion(privateKey: CryptoKey, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  const payload: Record<string, unknown> = { iss: ID, sub: ID, aud: ISSUER, iat: now, exp: now + 60, jti: 'jti-1', ...claims };
  for (const name of Object.keys(payload)) if (payload[name] === undefined) delete payload[name];
  return new SignJWT(payload).setProtectedHeader({ alg: 'EdDSA', ...header }).sign(privateKey);
}

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

describe('ClientAuthentication', () => {
  it('wants exactly one method', async () => {
    const { auth, privateKey } = await setup();
    await expect(auth.authenticate({ authorization: undefined }, ENDPOINT)).rejects.toBeInstanceOf(InvalidClient);
    await expect(
      auth.authenticate({ authorization: `Bearer ${SECRET}`, clientSecret: SECRET, clientId: ID }, ENDPOINT),
    ).rejects.toBeInstanceOf(InvalidRequest);
    await expect(
      auth.authenticate(
        {
          authorization: undefined,
          clientSecret: SECRET,
          clientId: ID,
          clientAssertionType: CLIENT_ASSERTION_TYPE,
          clientAssertion: await assertion(privateKey),
        },
        ENDPOINT,
      ),
    ).rejects.toBeInstanceOf(InvalidRequest);
  });

  it('client_secret_basic: the key and its id, a mismatch with a Basic challenge', async () => {
    const { auth, key } = await setup();
    expect(await auth.authenticate({ authorization: basic(ID, SECRET) }, ENDPOINT)).toEqual({
      kind: 'api_key',
      key,
      method: 'client_secret_basic',
    });
    const wrongId = await auth
      .authenticate({ authorization: basic('01a23940-0000-7056-b649-ce1abb19e075', SECRET) }, ENDPOINT)
      .catch((e: unknown) => e);
    expect(wrongId).toMatchObject({ constructor: InvalidClient, challenge: 'Basic' });
    const otherField = await auth
      .authenticate({ authorization: basic(ID, SECRET), clientId: 'someone-else' }, ENDPOINT)
      .catch((e: unknown) => e);
    expect(otherField).toMatchObject({ constructor: InvalidClient, challenge: 'Basic' });
  });

  it('bearer: an API key; a workload assertion only where workloads are let in', async () => {
    const { auth, key } = await setup();
    expect(await auth.authenticate({ authorization: `Bearer ${SECRET}` }, ENDPOINT)).toEqual({ kind: 'api_key', key, method: 'bearer' });
    expect(await auth.authenticateOrWorkload({ authorization: `Bearer ${SECRET}` }, ENDPOINT)).toEqual({
      kind: 'api_key',
      key,
      method: 'bearer',
    });
    expect(await auth.authenticateOrWorkload({ authorization: 'Bearer a.b.c' }, ENDPOINT)).toEqual({
      kind: 'workload',
      workloadId: 'workload-of-5',
    });
    await expect(auth.authenticate({ authorization: 'Bearer a.b.c' }, ENDPOINT)).rejects.toBeInstanceOf(InvalidClient);
    await expect(auth.authenticate({ authorization: `Bearer ${SECRET}`, clientId: 'someone-else' }, ENDPOINT)).rejects.toThrow(
      /client_id does not match/,
    );
    // A client_id beside it that names the same client is fine.
    expect(await auth.authenticate({ authorization: `Bearer ${SECRET}`, clientId: ID }, ENDPOINT)).toEqual({
      kind: 'api_key',
      key,
      method: 'bearer',
    });
    expect(await auth.authenticate({ authorization: basic(ID, SECRET), clientId: ID }, ENDPOINT)).toMatchObject({
      method: 'client_secret_basic',
    });
  });

  it('client_secret_post: client_id required and matching', async () => {
    const { auth, key } = await setup();
    expect(await auth.authenticate({ authorization: undefined, clientId: ID, clientSecret: SECRET }, ENDPOINT)).toEqual({
      kind: 'api_key',
      key,
      method: 'client_secret_post',
    });
    await expect(auth.authenticate({ authorization: undefined, clientSecret: SECRET }, ENDPOINT)).rejects.toBeInstanceOf(InvalidRequest);
    await expect(auth.authenticate({ authorization: undefined, clientId: 'other', clientSecret: SECRET }, ENDPOINT)).rejects.toBeInstanceOf(
      InvalidClient,
    );
    await expect(auth.authenticate({ authorization: undefined, clientId: ID, clientSecret: 'wrong' }, ENDPOINT)).rejects.toBeInstanceOf(
      InvalidClient,
    );
  });

  describe('private_key_jwt', () => {
    const form = (token: string | undefined, type: string | undefined = CLIENT_ASSERTION_TYPE) => ({
      authorization: undefined,
      clientAssertionType: type,
      clientAssertion: token,
    });

    it('accepts an assertion for the issuer or the endpoint URL, once, recording its jti until exp plus leeway', async () => {
      const { auth, key, privateKey, recorded } = await setup();
      expect(await auth.authenticate(form(await assertion(privateKey)), ENDPOINT)).toEqual({
        kind: 'api_key',
        key,
        method: 'private_key_jwt',
      });
      expect(recorded).toEqual([[ID, 'jti-1', (now + 60 + 30) * 1000]]);
      await expect(auth.authenticate(form(await assertion(privateKey)), ENDPOINT)).rejects.toThrow(/already used/);
      expect(
        (await auth.authenticate(form(await assertion(privateKey, { aud: `${ISSUER}${ENDPOINT}`, jti: 'jti-2' })), ENDPOINT)).method,
      ).toBe('private_key_jwt');
      // Ed25519 is EdDSA by its newer name: a key registered as EdDSA verifies it.
      expect((await auth.authenticate(form(await assertion(privateKey, { jti: 'jti-3' }, { alg: 'Ed25519' })), ENDPOINT)).method).toBe(
        'private_key_jwt',
      );
      // A client_id beside it must name the same client.
      await expect(
        auth.authenticate({ ...form(await assertion(privateKey, { jti: 'jti-4' })), clientId: 'other' }, ENDPOINT),
      ).rejects.toThrow(/client_id does not match/);
    });

    it('refuses a wrong type, a missing, empty, oversized or malformed assertion', async () => {
      const { auth, privateKey } = await setup();
      await expect(auth.authenticate(form(await assertion(privateKey), 'urn:other'), ENDPOINT)).rejects.toBeInstanceOf(InvalidRequest);
      await expect(auth.authenticate(form(undefined), ENDPOINT)).rejects.toBeInstanceOf(InvalidRequest);
      await expect(auth.authenticate(form(''), ENDPOINT)).rejects.toThrow(/malformed/);
      await expect(auth.authenticate(form('a'.repeat(8193)), ENDPOINT)).rejects.toThrow(/malformed/);
      await expect(auth.authenticate(form(await assertion(privateKey, { pad: 'x'.repeat(8200) })), ENDPOINT)).rejects.toThrow(/malformed/);
      await expect(auth.authenticate(form('a.b.c'), ENDPOINT)).rejects.toThrow(/malformed/);
      // An assertion without its type is still an attempt at private_key_jwt: the type is what is wrong.
      await expect(auth.authenticate({ authorization: undefined, clientAssertion: await assertion(privateKey) }, ENDPOINT)).rejects.toThrow(
        /client_assertion_type/,
      );
    });

    it('refuses a header that picks its key, iss other than sub, an unknown client, another audience, a bad signature', async () => {
      const { auth, privateKey } = await setup();
      for (const name of ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256']) {
        await expect(auth.authenticate(form(await assertion(privateKey, {}, { [name]: 'x' })), ENDPOINT), name).rejects.toThrow(
          /may not carry/,
        );
      }
      await expect(auth.authenticate(form(await assertion(privateKey, { sub: 'other' })), ENDPOINT)).rejects.toThrow(/iss and sub/);
      await expect(auth.authenticate(form(await assertion(privateKey, { iss: undefined, sub: undefined })), ENDPOINT)).rejects.toThrow(
        /iss and sub/,
      );
      await expect(auth.authenticate(form(await assertion(privateKey, { iss: 'unknown', sub: 'unknown' })), ENDPOINT)).rejects.toThrow(
        /unknown client/,
      );
      await expect(auth.authenticate(form(await assertion(privateKey, { aud: 'https://other.acme.test' })), ENDPOINT)).rejects.toThrow(
        /"aud"/,
      );
      await expect(auth.authenticate(form(await assertion(privateKey, { aud: `${ISSUER}/oauth2/revoke` })), ENDPOINT)).rejects.toThrow(
        /"aud"/,
      );
      const { privateKey: other } = await generateKeyPair('EdDSA');
      await expect(auth.authenticate(form(await assertion(other)), ENDPOINT)).rejects.toThrow(/signature/);
    });

    it('caps the lifetime at 300 s, refuses a future iat and wants a jti of 1 to 256 characters', async () => {
      const { auth, privateKey } = await setup();
      const ok = async (claims: Record<string, unknown>) =>
        (await auth.authenticate(form(await assertion(privateKey, claims)), ENDPOINT)).method;
      expect(await ok({ jti: 'a', exp: now + 300 })).toBe('private_key_jwt');
      await expect(ok({ jti: 'b', exp: now + 301 })).rejects.toThrow(/at most 300/);
      // Without iat the lifetime counts from now, with the leeway.
      expect(await ok({ jti: 'c', iat: undefined, exp: now + 330 })).toBe('private_key_jwt');
      await expect(ok({ jti: 'd', iat: undefined, exp: now + 331 })).rejects.toThrow(/at most 300/);
      expect(await ok({ jti: 'e', iat: now + 30, exp: now + 90 })).toBe('private_key_jwt');
      await expect(ok({ jti: 'f', iat: now + 31, exp: now + 90 })).rejects.toThrow(/in the future/);
      await expect(ok({ jti: undefined })).rejects.toThrow(/"jti"/);
      await expect(ok({ jti: '' })).rejects.toThrow(/jti/);
      await expect(ok({ jti: 42 })).rejects.toThrow(/jti/);
      await expect(ok({ jti: 'x'.repeat(257) })).rejects.toThrow(/jti/);
      expect(await ok({ jti: 'y'.repeat(256) })).toBe('private_key_jwt');
      await expect(ok({ jti: 'g', exp: undefined })).rejects.toThrow(/"exp"/);
      await expect(ok({ jti: 'h', exp: now - 31 })).rejects.toThrow(/expired/);
    });
  });
});
