import { beforeAll, expect, it } from 'vitest';
import { describeOnBothBackends } from '../../test/support/backends.js';
import type { IssuerDefinition } from './issuer.js';
import { IssuerStore } from './issuer-store.js';

const OIDC: IssuerDefinition = {
  issuer: 'https://idp.example/realms/ünï',
  kind: 'oidc',
  trustDomain: null,
  jwksUri: null,
  jwks: {
    keys: [
      {
        kty: 'EC',
        crv: 'P-256',
        x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
        y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
        kid: '☃',
      },
    ],
  },
  audiences: ['tollgate', 'tollgate-ü'],
};
const SPIFFE: IssuerDefinition = {
  issuer: 'https://spire.example',
  kind: 'spiffe',
  trustDomain: 'example.org',
  jwksUri: 'https://spire.example/keys',
  jwks: null,
  audiences: ['tollgate'],
};

describeOnBothBackends('IssuerStore contract', ({ db }) => {
  let store: IssuerStore;
  beforeAll(() => {
    store = new IssuerStore(db());
  });

  it('creates an issuer and reads back its definition (JSON keys, unicode) by id and by iss', async () => {
    const { issuer, created } = await store.put('idp', OIDC, undefined, db());
    expect(created).toBe(true);
    expect(issuer).toMatchObject({ id: 'idp', ...OIDC, enabled: true, revision: 1 });
    expect(await store.find('idp')).toEqual(issuer);
    expect(await store.findByIssuer(OIDC.issuer)).toEqual(issuer);
    expect(await store.findByIssuer('https://idp.example/realms/other')).toBeUndefined();
    expect(await db().transaction((tx) => store.findForBinding('idp', tx))).toEqual(issuer);
  });

  it('replaces on a second put with a revision bump, keeping a disabled issuer disabled unless told', async () => {
    await store.put('spire', SPIFFE, undefined, db());
    expect(await db().transaction((tx) => store.disable('spire', tx))).toMatchObject({ enabled: false, revision: 2 });
    const again = await store.put('spire', { ...SPIFFE, audiences: ['other'] }, undefined, db());
    expect(again.created).toBe(false);
    expect(again.issuer).toMatchObject({ enabled: false, revision: 3, audiences: ['other'], trustDomain: 'example.org' });
    expect((await store.put('spire', SPIFFE, true, db())).issuer).toMatchObject({ enabled: true, revision: 4 });
    expect(await db().transaction((tx) => store.disable('nobody', tx))).toBeUndefined();
  });

  it('keeps one issuer per iss: otherWithIssuer names the holder and a second one is refused', async () => {
    expect(await store.otherWithIssuer('idp-2', OIDC.issuer, db())).toBe('idp');
    expect(await store.otherWithIssuer('idp', OIDC.issuer, db())).toBeUndefined();
    await expect(store.put('idp-2', OIDC, undefined, db())).rejects.toThrow();
  });

  it('refuses a definition with both or neither key source, and a spiffe issuer without a trust domain', async () => {
    await expect(store.put('bad-1', { ...OIDC, issuer: 'https://bad-1', jwksUri: 'https://x' }, undefined, db())).rejects.toThrow();
    await expect(store.put('bad-2', { ...OIDC, issuer: 'https://bad-2', jwks: null }, undefined, db())).rejects.toThrow();
    await expect(store.put('bad-3', { ...SPIFFE, issuer: 'https://bad-3', trustDomain: null }, undefined, db())).rejects.toThrow();
    expect(await store.find('bad-1')).toBeUndefined();
  });

  it('lists issuers in id order', async () => {
    expect((await store.list()).map((i) => i.id)).toEqual(['idp', 'spire']);
  });
});
