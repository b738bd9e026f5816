import { randomBytes } from 'node:crypto';
import { beforeAll, expect, it } from 'vitest';
import { describeOnBothBackends } from '../../test/support/backends.js';
import { SigningKeyStore } from './signing-key-store.js';
import { generateSigningKey, type GeneratedKey } from './signing-keys.js';

describeOnBothBackends('SigningKeyStore contract', ({ db }) => {
  let store: SigningKeyStore;
  const kek = randomBytes(32);
  let first: GeneratedKey;
  let second: GeneratedKey;
  beforeAll(async () => {
    store = new SigningKeyStore(db());
    first = await generateSigningKey('EdDSA');
    second = await generateSigningKey('ES256');
  });

  it('publishes nothing before the first key, and still tells the database clock in epoch ms', async () => {
    const before = Date.now();
    const { now, rows } = await store.published(true);
    expect(rows).toEqual([]);
    expect(now).toBeGreaterThan(before - 60_000);
    expect(now).toBeLessThan(Date.now() + 60_000);
  });

  it('stores an active key with its public JWK and sealed private half, handed out only when asked', async () => {
    await db().transaction((tx) => store.insert(tx, first, kek, 'active'));
    const withSealed = await store.published(true);
    expect(withSealed.rows).toHaveLength(1);
    const [row] = withSealed.rows;
    expect(row).toMatchObject({
      kid: first.kid,
      alg: 'EdDSA',
      state: 'active',
      public_jwk: first.publicJwk,
      retired_ms: null,
      publish_until_ms: null,
    });
    expect(typeof row!.sealed).toBe('string');
    expect(row!.activated_ms).toBeGreaterThanOrEqual(row!.created_ms);
    expect(Math.abs(row!.created_ms - withSealed.now)).toBeLessThan(60_000);
    expect((await store.published(false)).rows[0]!.sealed).toBeNull();
    await expect(db().transaction((tx) => store.insert(tx, second, kek, 'active'))).rejects.toThrow();
  });

  it('holds at most one next key; dropNext removes it', async () => {
    await db().transaction((tx) => store.insert(tx, second, kek, 'next'));
    await expect(db().transaction(async (tx) => store.insert(tx, await generateSigningKey('EdDSA'), kek, 'next'))).rejects.toThrow();
    expect((await store.published(false)).rows.map((r) => [r.kid, r.state])).toEqual([
      [first.kid, 'active'],
      [second.kid, 'next'],
    ]);
    await db().transaction((tx) => store.dropNext(tx));
    expect((await store.published(false)).rows.map((r) => r.kid)).toEqual([first.kid]);
    await db().transaction((tx) => store.insert(tx, second, kek, 'next'));
  });

  it('reseals kept private keys in kid order and leaves a retired one without', async () => {
    const sealed = await db().transaction((tx) => store.sealedKeys(tx));
    expect(sealed.map((s) => s.kid)).toEqual([first.kid, second.kid].sort());
    await db().transaction((tx) => store.reseal(tx, first.kid, 'resealed-✓'));
    expect((await store.published(true)).rows[0]!.sealed).toBe('resealed-✓');
  });

  it('promotes the next key: the active one retires and loses its private half', async () => {
    const retired = await db().transaction(async (tx) => {
      await store.lockRotation(tx);
      return store.promote(tx, second.kid);
    });
    expect(retired).toBe(first.kid);
    const { rows } = await store.published(true);
    expect(rows.map((r) => [r.kid, r.state])).toEqual([
      [second.kid, 'active'],
      [first.kid, 'retired'],
    ]);
    expect(rows[1]!.retired_ms).not.toBeNull();
    expect((await db().transaction((tx) => store.sealedKeys(tx))).map((s) => s.kid)).toEqual([second.kid]);
    await db().transaction((tx) => store.reseal(tx, first.kid, 'x'));
    expect((await db().transaction((tx) => store.sealedKeys(tx))).map((s) => s.kid)).toEqual([second.kid]);
  });

  it('sets a retired key publish_until once, in epoch ms, and stops publishing it after', async () => {
    const { now } = await store.published(false);
    const until = now + 120_000;
    expect(await db().transaction((tx) => store.setPublishUntil(tx, first.kid, until))).toBe(true);
    expect(await db().transaction((tx) => store.setPublishUntil(tx, first.kid, until + 1))).toBe(false);
    expect(await db().transaction((tx) => store.setPublishUntil(tx, second.kid, until))).toBe(false);
    expect((await store.published(false)).rows.find((r) => r.kid === first.kid)?.publish_until_ms).toBe(until);
    await db().query(`UPDATE signing_keys SET publish_until = now() - interval '1 second' WHERE kid = $1`, [first.kid]);
    expect((await store.published(false)).rows.map((r) => r.kid)).toEqual([second.kid]);
  });

  it('serialises rotations: concurrent lock-then-read-then-write transactions never interleave', async () => {
    await db().query(`CREATE TABLE IF NOT EXISTS rotation_probe (n int NOT NULL)`);
    await db().query(`INSERT INTO rotation_probe (n) VALUES (0)`);
    await Promise.all(
      Array.from({ length: 6 }, () =>
        db().transaction(async (tx) => {
          await store.lockRotation(tx);
          const { rows } = await tx.query<{ n: number }>('SELECT n FROM rotation_probe');
          await new Promise((resolve) => setTimeout(resolve, 5));
          await tx.query('UPDATE rotation_probe SET n = $1', [rows[0]!.n + 1]);
        }),
      ),
    );
    expect((await db().query<{ n: number }>('SELECT n FROM rotation_probe')).rows[0]!.n).toBe(6);
  });
});
